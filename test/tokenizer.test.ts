import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from '../lib/tokenizer/byte.js';
import { Rng } from '../lib/util/rng.js';
import { expectThrows } from './helpers/assert.js';

const tokenizer = new ByteTokenizer();

/** A random string over ASCII, accented Latin, CJK and astral-plane emoji (1- to 4-byte UTF-8). */
function randomText(rng: Rng, length: number): string {
  const pools = [[0x20, 0x7e], [0xc0, 0x17f], [0x4e00, 0x9fff], [0x1f300, 0x1f64f]];
  let text = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = rng.pick(pools);
    text += String.fromCodePoint(rng.intBetween(lo, hi));
  }
  return text;
}

describe('ByteTokenizer', () => {
  it('has the documented vocabulary and specials', () => {
    expect(tokenizer.vocabSize).toBe(259);
    expect([tokenizer.padId, tokenizer.bosId, tokenizer.eosId]).toEqual([256, 257, 258]);
    expect([...tokenizer.neverSample].sort()).toEqual([256, 257]);
  });

  it('encodes to the UTF-8 bytes with no specials', () => {
    expect(Array.from(tokenizer.encode('héllo'))).toEqual([104, 195, 169, 108, 108, 111]);
    expect(Array.from(tokenizer.encode('😀'))).toEqual([0xf0, 0x9f, 0x98, 0x80]);
    expect(tokenizer.encode('')).toEqual(new Int32Array(0));
    expect(tokenizer.encode('x')).toBeInstanceOf(Int32Array);
  });

  it('round-trips random multi-byte text of sizes 1, odd and prime', () => {
    const rng = new Rng(11);
    for (const length of [1, 7, 31, 257]) {
      const text = randomText(rng, length);
      const ids = tokenizer.encode(text);
      expect(ids.length).toBe(Buffer.byteLength(text, 'utf8'));
      expect(tokenizer.decode(ids)).toBe(text);
      expect(tokenizer.decode(Array.from(ids))).toBe(text); // plain arrays work too
    }
  });

  it('drops specials anywhere on decode', () => {
    const ids = Array.from(tokenizer.encode('a😀b'));
    const withSpecials = [257, ids[0], 256, ...ids.slice(1, 3), 258, ...ids.slice(3), 258, 256];
    expect(tokenizer.decode(withSpecials)).toBe('a😀b');
    expect(tokenizer.decode([257, 258, 256])).toBe('');
  });

  it('turns invalid or truncated UTF-8 into U+FFFD without throwing', () => {
    const emoji = Array.from(tokenizer.encode('😀'));
    expect(tokenizer.decode([104, ...emoji.slice(0, 2)])).toBe('h\ufffd'); // cut mid-character
    expect(tokenizer.decode([0xff, 0x41])).toBe('\ufffdA');
    expect(tokenizer.decode([0xef, 0xbb, 0xbf, 0x41])).toBe('\ufeffA'); // a BOM in the text is kept
  });

  it('rejects bad input', () => {
    expectThrows(() => tokenizer.encode(5 as never), 'ERR_TALARIA_DTYPE', 'text');
    expectThrows(() => tokenizer.encode(undefined as never), 'ERR_TALARIA_DTYPE', 'text');
    expectThrows(() => tokenizer.decode('abc' as never), 'ERR_TALARIA_DTYPE', 'ids');
    expectThrows(() => tokenizer.decode(null as never), 'ERR_TALARIA_DTYPE', 'ids');
    expectThrows(() => tokenizer.decode([65, 259]), 'ERR_TALARIA_RANGE', 'ids[1]');
    expectThrows(() => tokenizer.decode([-1]), 'ERR_TALARIA_RANGE', 'ids[0]');
    expectThrows(() => tokenizer.decode([1.5]), 'ERR_TALARIA_RANGE', 'ids[0]');
    expectThrows(() => tokenizer.decode([Number.NaN]), 'ERR_TALARIA_RANGE', 'ids[0]');
  });
});
