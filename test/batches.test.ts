import { describe, expect, it } from 'vitest';
import {
  encodePretraining, encodeSft, packBatch, TokenBudgetBatcher, type BatcherBatch, type EncodedExample,
} from '../lib/data/batches.js';
import { ByteTokenizer } from '../lib/tokenizer/byte.js';
import { Rng } from '../lib/util/rng.js';
import { expectBitwiseEqual, expectThrows } from './helpers/assert.js';

const tokenizer = new ByteTokenizer();
const BOS = tokenizer.bosId, EOS = tokenizer.eosId;

function randomText(rng: Rng, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += rng.bernoulli(0.1) ? 'é' : String.fromCharCode(rng.intBetween(0x21, 0x7e));
  return text;
}

function randomExamples(rng: Rng, count: number, maxLen: number): EncodedExample[] {
  return Array.from({ length: count }, () => {
    const n = rng.intBetween(1, maxLen);
    const ids = Int32Array.from({ length: n }, () => rng.int(259));
    return rng.bernoulli(0.3) ? { ids } : { ids, lossMask: Uint8Array.from({ length: n }, () => (rng.bernoulli(0.7) ? 1 : 0)) };
  });
}

describe('encodeSft', () => {
  it('follows the hand-worked example: mask[t] = 1 iff token t+1 is completion or EOS', () => {
    const { ids, lossMask } = encodeSft(tokenizer, { prompt: 'ab', completion: 'c' }, 16);
    expect(Array.from(ids)).toEqual([BOS, 97, 98, 99, EOS]);
    expect(Array.from(lossMask)).toEqual([0, 0, 1, 1, 0]);
  });

  it('an empty prompt: BOS predicts the first completion token', () => {
    const { ids, lossMask } = encodeSft(tokenizer, { prompt: '', completion: 'xy' }, 16);
    expect(Array.from(ids)).toEqual([BOS, 120, 121, EOS]);
    expect(Array.from(lossMask)).toEqual([1, 1, 1, 0]);
  });

  it('truncates the completion from the right and drops EOS when too long', () => {
    const exact = encodeSft(tokenizer, { prompt: 'ab', completion: 'cd' }, 5); // the full sequence is 6
    expect(Array.from(exact.ids)).toEqual([BOS, 97, 98, 99, 100]);
    expect(Array.from(exact.lossMask)).toEqual([0, 0, 1, 1, 0]);
    const cut = encodeSft(tokenizer, { prompt: 'ab', completion: 'cdef' }, 4);
    expect(Array.from(cut.ids)).toEqual([BOS, 97, 98, 99]);
    expect(Array.from(cut.lossMask)).toEqual([0, 0, 1, 0]);
    const fits = encodeSft(tokenizer, { prompt: 'ab', completion: 'cd' }, 6);
    expect(Array.from(fits.ids)).toEqual([BOS, 97, 98, 99, 100, EOS]);
  });

  it('matches a token-by-token reference on random records and lengths', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 200; trial++) {
      const record = { prompt: randomText(rng, rng.int(12)), completion: randomText(rng, rng.intBetween(1, 12)) };
      const prompt = Array.from(tokenizer.encode(record.prompt));
      const completion = Array.from(tokenizer.encode(record.completion));
      const maxLen = rng.intBetween(prompt.length + 2, prompt.length + completion.length + 4);
      // Reference: label every token of the full sequence, cut it at maxLen, then apply the convention.
      const full = [[BOS, 'p'], ...prompt.map((id) => [id, 'p']), ...completion.map((id) => [id, 'c']), [EOS, 'c']] as const;
      const kept = full.slice(0, maxLen).filter(([id], i) => !(i === maxLen - 1 && id === EOS && full.length > maxLen));
      const { ids, lossMask } = encodeSft(tokenizer, record, maxLen, trial);
      expect(Array.from(ids)).toEqual(kept.map(([id]) => id));
      expect(Array.from(lossMask)).toEqual(kept.map((_, t) => (t + 1 < kept.length && kept[t + 1][1] === 'c' ? 1 : 0)));
      expect(ids.length).toBeLessThanOrEqual(maxLen);
      expect(lossMask.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  });

  it('rejects a prompt that leaves no room for the completion, naming the record index', () => {
    expectThrows(() => encodeSft(tokenizer, { prompt: 'abc', completion: 'd' }, 4, 17), 'ERR_TALARIA_RANGE', 'record 17');
    expectThrows(() => encodeSft(tokenizer, { prompt: 'abcdef', completion: 'd' }, 4, 3), 'ERR_TALARIA_RANGE', 'record 3');
    expect(encodeSft(tokenizer, { prompt: 'ab', completion: 'd' }, 4).ids.length).toBe(4); // one completion token fits
  });

  it('rejects bad arguments', () => {
    const record = { prompt: 'a', completion: 'b' };
    expectThrows(() => encodeSft({} as never, record, 8), 'ERR_TALARIA_DTYPE', 'tokenizer');
    expectThrows(() => encodeSft(null as never, record, 8), 'ERR_TALARIA_DTYPE', 'tokenizer');
    expectThrows(() => encodeSft(tokenizer, null as never, 8, 4), 'ERR_TALARIA_DTYPE', 'record 4');
    expectThrows(() => encodeSft(tokenizer, { prompt: 1, completion: 'b' } as never, 8), 'ERR_TALARIA_DTYPE', 'prompt');
    expectThrows(() => encodeSft(tokenizer, { prompt: 'a' } as never, 8), 'ERR_TALARIA_DTYPE', 'completion');
    expectThrows(() => encodeSft(tokenizer, record, 1), 'ERR_TALARIA_RANGE', 'maxLen');
    expectThrows(() => encodeSft(tokenizer, record, 7.5), 'ERR_TALARIA_RANGE', 'maxLen');
    expectThrows(() => encodeSft(tokenizer, record, '8' as never), 'ERR_TALARIA_DTYPE', 'maxLen');
    expectThrows(() => encodeSft(tokenizer, record, 8, -1), 'ERR_TALARIA_RANGE', 'index');
    expectThrows(() => encodeSft(tokenizer, record, 8, 'x' as never), 'ERR_TALARIA_DTYPE', 'index');
  });
});

describe('encodePretraining', () => {
  it('is BOS + text, truncated, with every position but the last in the loss', () => {
    const short = encodePretraining(tokenizer, 'hé', 16);
    expect(Array.from(short.ids)).toEqual([BOS, 104, 195, 169]);
    expect(Array.from(short.lossMask)).toEqual([1, 1, 1, 0]);
    const cut = encodePretraining(tokenizer, 'abcdef', 3);
    expect(Array.from(cut.ids)).toEqual([BOS, 97, 98]);
    expect(Array.from(cut.lossMask)).toEqual([1, 1, 0]);
  });

  it('rejects bad arguments', () => {
    expectThrows(() => encodePretraining({} as never, 'a', 8), 'ERR_TALARIA_DTYPE', 'tokenizer');
    expectThrows(() => encodePretraining(tokenizer, 5 as never, 8), 'ERR_TALARIA_DTYPE', 'text');
    expectThrows(() => encodePretraining(tokenizer, '', 8), 'ERR_TALARIA_RANGE', 'text');
    expectThrows(() => encodePretraining(tokenizer, 'a', 1), 'ERR_TALARIA_RANGE', 'maxLen');
    expectThrows(() => encodePretraining(tokenizer, 'a', null as never), 'ERR_TALARIA_DTYPE', 'maxLen');
  });
});

describe('packBatch', () => {
  it('concatenates, builds cuSeqlens and next-token targets, and masks each last token', () => {
    const rng = new Rng(9);
    for (const count of [1, 2, 7, 13]) {
      const examples = randomExamples(rng, count, 11);
      const batch = packBatch(examples);
      expect(batch.cuSeqlens[0]).toBe(0);
      const ids: number[] = [], targets: number[] = [], mask: number[] = [];
      examples.forEach((example, b) => {
        expect(batch.cuSeqlens[b + 1] - batch.cuSeqlens[b]).toBe(example.ids.length);
        example.ids.forEach((id, t) => {
          const last = t === example.ids.length - 1;
          ids.push(id);
          targets.push(last ? id : example.ids[t + 1]);
          mask.push(last ? 0 : example.lossMask ? example.lossMask[t] : 1);
        });
      });
      expectBitwiseEqual(batch.ids, Int32Array.from(ids));
      expectBitwiseEqual(batch.targets, Int32Array.from(targets));
      expectBitwiseEqual(batch.lossMask, Uint8Array.from(mask));
      expect(batch.cuSeqlens.length).toBe(count + 1);
      expect(batch.cuSeqlens[count]).toBe(ids.length);
    }
  });

  it('a one-token sequence has itself as target and no loss', () => {
    const batch = packBatch([{ ids: Int32Array.of(42) }, { ids: Int32Array.of(1, 2), lossMask: Uint8Array.of(1, 1) }]);
    expect(Array.from(batch.targets)).toEqual([42, 2, 2]);
    expect(Array.from(batch.lossMask)).toEqual([0, 1, 0]);
    expect(Array.from(batch.cuSeqlens)).toEqual([0, 1, 3]);
  });

  it('rejects bad arguments', () => {
    const ids = Int32Array.of(1, 2, 3);
    expectThrows(() => packBatch('x' as never), 'ERR_TALARIA_DTYPE', 'examples');
    expectThrows(() => packBatch([]), 'ERR_TALARIA_SHAPE', 'examples');
    expectThrows(() => packBatch([{ ids }, null as never]), 'ERR_TALARIA_DTYPE', 'examples[1]');
    expectThrows(() => packBatch([{ ids: [1, 2] as never }]), 'ERR_TALARIA_DTYPE', 'examples[0].ids');
    expectThrows(() => packBatch([{ ids: new Int32Array(0) }]), 'ERR_TALARIA_SHAPE', 'examples[0].ids');
    expectThrows(() => packBatch([{ ids: Int32Array.of(1, -4) }]), 'ERR_TALARIA_RANGE', 'examples[0].ids[1]');
    expectThrows(() => packBatch([{ ids, lossMask: new Int32Array(3) as never }]), 'ERR_TALARIA_DTYPE', 'examples[0].lossMask');
    expectThrows(() => packBatch([{ ids, lossMask: new Uint8Array(2) }]), 'ERR_TALARIA_SHAPE', 'examples[0].lossMask');
    expectThrows(() => packBatch([{ ids, lossMask: Uint8Array.of(0, 2, 1) }]), 'ERR_TALARIA_RANGE', 'examples[0].lossMask[1]');
  });
});

/** The batches of `count` next() calls, as plain data for toEqual. */
function draw(batcher: TokenBudgetBatcher, count: number): BatcherBatch[] {
  return Array.from({ length: count }, () => batcher.next());
}

function epochsOf(batches: BatcherBatch[]): Map<number, number[]> {
  const byEpoch = new Map<number, number[]>();
  for (const b of batches) byEpoch.set(b.epoch, [...(byEpoch.get(b.epoch) ?? []), ...b.exampleIndices]);
  return byEpoch;
}

describe('TokenBudgetBatcher', () => {
  const rng = new Rng(21);
  const examples = randomExamples(rng, 53, 40);

  it('never exceeds the budget and yields every example once per epoch', () => {
    for (const tokenBudget of [40, 97, 256]) {
      const batcher = new TokenBudgetBatcher(examples, { tokenBudget, seed: 1 });
      const batches = draw(batcher, 120);
      for (const batch of batches) {
        expect(batch.ids.length).toBeLessThanOrEqual(tokenBudget);
        expect(batch.cuSeqlens.length).toBe(batch.exampleIndices.length + 1); // one example per sequence
        expectBitwiseEqual(batch.ids, packBatch(batch.exampleIndices.map((i) => examples[i])).ids);
      }
      const byEpoch = epochsOf(batches);
      byEpoch.delete(batches[batches.length - 1].epoch); // the last epoch may be unfinished
      expect(byEpoch.size).toBeGreaterThan(1);
      for (const order of byEpoch.values()) expect([...order].sort((a, b) => a - b)).toEqual(examples.map((_, i) => i));
    }
  });

  it('shuffles differently each epoch, deterministically per seed', () => {
    const orders = (seed: number) => [...epochsOf(draw(new TokenBudgetBatcher(examples, { tokenBudget: 300, seed }), 60)).values()].slice(0, 3);
    const a = orders(7);
    expect(orders(7)).toEqual(a);
    expect(a[1]).not.toEqual(a[0]);
    expect(a[2]).not.toEqual(a[1]);
    expect(orders(8)[0]).not.toEqual(a[0]);
  });

  it('resumes from a saved position with bitwise-identical batches, across epoch ends', () => {
    for (const pack of [false, true]) {
      const options = pack ? { tokenBudget: 150, seed: 3, pack, maxLen: 60 } : { tokenBudget: 150, seed: 3 };
      const original = new TokenBudgetBatcher(examples, options);
      const reference = draw(new TokenBudgetBatcher(examples, options), 80);
      for (let k = 0; k < 60; k++) {
        if (k > 0) expect(original.next()).toEqual(reference[k - 1]);
        if (k % 7 !== 0 && reference[k].epoch === reference[k - 1]?.epoch) continue; // every 7th step and every epoch start
        const saved = JSON.parse(JSON.stringify(original.position()));
        const resumed = new TokenBudgetBatcher(examples, options);
        resumed.restore(saved);
        for (let j = 0; j < 15; j++) {
          const [got, want] = [resumed.next(), reference[k + j]];
          expectBitwiseEqual(got.ids, want.ids);
          expectBitwiseEqual(got.cuSeqlens, want.cuSeqlens);
          expectBitwiseEqual(got.targets, want.targets);
          expectBitwiseEqual(got.lossMask, want.lossMask);
          expect([got.epoch, got.exampleIndices]).toEqual([want.epoch, want.exampleIndices]);
        }
      }
    }
  });

  it('pack: concatenates documents into sequences of at most maxLen, masking each document end', () => {
    const docs = Array.from({ length: 31 }, (_, i) => encodePretraining(tokenizer, randomText(rng, rng.intBetween(1, 30)), 24 + (i % 3)));
    const batcher = new TokenBudgetBatcher(docs, { tokenBudget: 200, seed: 4, pack: true, maxLen: 64 });
    let merged = 0;
    for (const batch of draw(batcher, 20)) {
      expect(batch.ids.length).toBeLessThanOrEqual(200);
      const sequences = batch.cuSeqlens.length - 1;
      merged += batch.exampleIndices.length - sequences;
      for (let b = 0; b < sequences; b++) expect(batch.cuSeqlens[b + 1] - batch.cuSeqlens[b]).toBeLessThanOrEqual(64);
      // Concatenating the documents in batch order gives the ids; each document's last token is out of the loss.
      const parts = batch.exampleIndices.map((i) => docs[i]);
      expectBitwiseEqual(batch.ids, Int32Array.from(parts.flatMap((d) => Array.from(d.ids))));
      expectBitwiseEqual(batch.lossMask, Uint8Array.from(parts.flatMap((d) => Array.from(d.lossMask))));
      // Inside a sequence a document's last token targets the next document's BOS (masked), never past the sequence.
      for (let b = 0; b < sequences; b++) expect(batch.targets[batch.cuSeqlens[b + 1] - 1]).toBe(batch.ids[batch.cuSeqlens[b + 1] - 1]);
    }
    expect(merged).toBeGreaterThan(0); // some sequences really hold several documents
  });

  it('rejects bad arguments', () => {
    const good = { tokenBudget: 64, seed: 1 };
    const long = [{ ids: new Int32Array(65) }];
    expectThrows(() => new TokenBudgetBatcher('x' as never, good), 'ERR_TALARIA_DTYPE', 'examples');
    expectThrows(() => new TokenBudgetBatcher([], good), 'ERR_TALARIA_SHAPE', 'examples');
    expectThrows(() => new TokenBudgetBatcher([{ ids: new Float32Array(2) as never }], good), 'ERR_TALARIA_DTYPE', 'examples[0].ids');
    expectThrows(() => new TokenBudgetBatcher(long, good), 'ERR_TALARIA_RANGE', 'tokenBudget');
    expectThrows(() => new TokenBudgetBatcher([{ ids: new Int32Array(33) }], { ...good, pack: true, maxLen: 32 }), 'ERR_TALARIA_RANGE', 'maxLen');
    expectThrows(() => new TokenBudgetBatcher(examples, null as never), 'ERR_TALARIA_DTYPE', 'options');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, tokenBudget: 0 }), 'ERR_TALARIA_RANGE', 'tokenBudget');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, tokenBudget: '64' as never }), 'ERR_TALARIA_DTYPE', 'tokenBudget');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, seed: 0.5 }), 'ERR_TALARIA_RANGE', 'seed');
    expectThrows(() => new TokenBudgetBatcher(examples, { tokenBudget: 64 } as never), 'ERR_TALARIA_DTYPE', 'seed');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, pack: 'yes' as never }), 'ERR_TALARIA_DTYPE', 'pack');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, pack: true }), 'ERR_TALARIA_DTYPE', 'maxLen');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, pack: true, maxLen: -2 }), 'ERR_TALARIA_RANGE', 'maxLen');
    expectThrows(() => new TokenBudgetBatcher(examples, { ...good, maxLen: 32 }), 'ERR_TALARIA_RANGE', 'maxLen');

    const batcher = new TokenBudgetBatcher(examples, good);
    const position = batcher.position();
    expectThrows(() => batcher.restore(null as never), 'ERR_TALARIA_DTYPE', 'position');
    expectThrows(() => batcher.restore({ ...position, epoch: -1 }), 'ERR_TALARIA_RANGE', 'position.epoch');
    expectThrows(() => batcher.restore({ ...position, index: examples.length + 1 }), 'ERR_TALARIA_RANGE', 'position.index');
    expectThrows(() => batcher.restore({ ...position, index: 1.5 }), 'ERR_TALARIA_RANGE', 'position.index');
    expectThrows(() => batcher.restore({ ...position, rngState: [1, 2, 3] as never }), 'ERR_TALARIA_RANGE', 'position.rngState');
    expect(batcher.position()).toEqual(position); // a rejected restore leaves the batcher as it was
  });
});
