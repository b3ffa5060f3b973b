// The byte-level tokenizer: ids 0..255 are the UTF-8 bytes of the text, then PAD, BOS and EOS. It needs
// no vocabulary file, covers every string, and keeps the model's softmax small (259), which suits the
// tiny models the CPU path trains.
import { TalariaError } from '../native.js';
import { describeValue } from '../data/describe.js';
import type { Tokenizer } from './tokenizer.js';

const utf8Encoder = new TextEncoder();
// fatal: false turns invalid or truncated UTF-8 (a completion cut mid-character) into U+FFFD.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Ids 0..255 are UTF-8 bytes, 256 is PAD, 257 BOS, 258 EOS; vocabSize is 259.
 *
 * @example
 * const tokenizer = new ByteTokenizer();
 * const ids = tokenizer.encode('héllo');      // Int32Array [104, 195, 169, 108, 108, 111]
 * tokenizer.decode([tokenizer.bosId, ...ids]); // 'héllo' (specials are dropped)
 */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 259;
  readonly padId = 256;
  readonly bosId = 257;
  readonly eosId = 258;
  readonly neverSample: readonly number[] = Object.freeze([256, 257]);

  /** The UTF-8 bytes of `text` as ids (lone surrogates encode as U+FFFD, as TextEncoder does). */
  encode(text: string): Int32Array {
    if (typeof text !== 'string') throw new TalariaError(`ByteTokenizer.encode: text must be a string, got ${describeValue(text)}`, 'ERR_TALARIA_DTYPE');
    return Int32Array.from(utf8Encoder.encode(text));
  }

  /** The text of `ids`, dropping PAD/BOS/EOS; throws ERR_TALARIA_RANGE only for an id outside [0, 259). */
  decode(ids: ArrayLike<number>): string {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number')
      throw new TalariaError(`ByteTokenizer.decode: ids must be an array of token ids, got ${describeValue(ids)}`, 'ERR_TALARIA_DTYPE');
    const bytes = new Uint8Array(ids.length);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new TalariaError(`ByteTokenizer.decode: ids[${i}] must be an integer in [0, ${this.vocabSize}), got ${String(id)}`, 'ERR_TALARIA_RANGE');
      if (id < 256) bytes[n++] = id;
    }
    return utf8Decoder.decode(bytes.subarray(0, n));
  }
}
