// Generation (lib/nn/generate.ts) and the cached forward behind it: KV-cache decoding gives the logits
// of a full forward, the same seed gives the same tokens, stop tokens end sequences with correct flags,
// and the packed output (cu_seqlens, action mask, log-probs) describes what was sampled.
import { afterEach, describe, expect, it } from 'vitest';
import { generate } from '../lib/nn/generate.js';
import { TransformerModel } from '../lib/nn/model.js';
import { logprobEntropy } from '../lib/ops/logits.js';
import { Rng } from '../lib/util/rng.js';
import { backendsUnderTest, disposeTensors } from './helpers/backends.js';
import { expectThrows, maxAbs } from './helpers/assert.js';
import { tinyConfig } from './helpers/model.js';

afterEach(disposeTensors);

const heads = { lm: true, score: false };

function randomPrompts(seed: number, lengths: number[], vocab: number): Int32Array[] {
  const rng = new Rng(seed);
  return lengths.map((len) => Int32Array.from({ length: len }, () => rng.int(vocab)));
}

describe.each(backendsUnderTest)('generation on $backend', ({ backend, device }) => {
  const config = tinyConfig({ vocabSize: 23 });
  // Larger init than HF's 0.02 so the tiny model's distribution is far from uniform.
  const makeModel = () => new TransformerModel(config, heads, { device, seed: 3, initStd: 0.5, trainable: false });
  const tol = backend === 'cpu' ? 1e-4 : 1e-1; // CUDA: bf16 tensor-core operands in the full forward, f32 in decode

  it('KV-cache decoding gives the logits of a full forward over the whole sequence', () => {
    const model = makeModel();
    const prompts = randomPrompts(1, [3, 1, 6], config.vocabSize);
    const continuations = randomPrompts(2, [4, 4, 4], config.vocabSize);
    const cache = model.createKvCache(3, 10);
    const cu = (lens: number[]) => Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    const steps: Float32Array[] = [];
    const prefill = model.forwardCached({ ids: Int32Array.from(prompts.flatMap((p) => [...p])), cuSeqlens: cu([3, 1, 6]) }, cache);
    steps.push(prefill.toArray() as Float32Array);
    for (let t = 0; t < 4; t++) {
      const logits = model.forwardCached({ ids: Int32Array.from(continuations, (c) => c[t]), cuSeqlens: cu([1, 1, 1]) }, cache);
      steps.push(logits.toArray() as Float32Array);
    }
    expect(Array.from(cache.lengths)).toEqual([7, 5, 10]);
    cache.dispose();
    // The full forward over prompt + continuation: row (prompt_len - 1 + t) of each sequence.
    const full = prompts.map((p, i) => Int32Array.from([...p, ...continuations[i]]));
    const out = model.forward({ ids: Int32Array.from(full.flatMap((s) => [...s])), cuSeqlens: cu(full.map((s) => s.length)) });
    const logits = out.logits!.toArray() as Float32Array;
    const v = config.vocabSize;
    let start = 0;
    full.forEach((seq, i) => {
      for (let t = 0; t <= 4; t++) {
        const row = start + prompts[i].length - 1 + t;
        const want = logits.subarray(row * v, (row + 1) * v);
        const got = steps[t].subarray(i * v, (i + 1) * v);
        const err = maxAbs(got.map((x, j) => x - want[j]));
        expect(err, `sequence ${i} step ${t}`).toBeLessThan(tol * Math.max(1, maxAbs(want)));
      }
      start += seq.length;
    });
    out.dispose();
    model.dispose();
  });

  it('the same seed gives the same tokens; another seed or offset gives others', () => {
    const model = makeModel();
    const prompts = randomPrompts(3, [2, 5, 1, 4], config.vocabSize);
    const a = generate(model, prompts, { maxNewTokens: 8, seed: 11 });
    const b = generate(model, prompts, { maxNewTokens: 8, seed: 11 });
    const c = generate(model, prompts, { maxNewTokens: 8, seed: 12 });
    const d = generate(model, prompts, { maxNewTokens: 8, seed: 11, offset: a.nextOffset });
    expect(Array.from(b.ids)).toEqual(Array.from(a.ids));
    expect(Array.from(b.logprobs)).toEqual(Array.from(a.logprobs));
    expect(Array.from(c.ids)).not.toEqual(Array.from(a.ids));
    expect(Array.from(d.ids)).not.toEqual(Array.from(a.ids));
    expect(a.nextOffset).toBe(8);
    model.dispose();
  });

  it('packs prompts and responses, with the action mask and the sampled log-probs under the temperature', () => {
    const model = makeModel();
    const prompts = randomPrompts(4, [3, 1, 5], config.vocabSize);
    const temperature = 0.7;
    const out = generate(model, prompts, { maxNewTokens: 6, seed: 5, temperature });
    expect(Array.from(out.promptLengths)).toEqual([3, 1, 5]);
    expect(Array.from(out.responseLengths)).toEqual([6, 6, 6]);
    expect(Array.from(out.ended)).toEqual([0, 0, 0]);
    expect(Array.from(out.cuSeqlens)).toEqual([0, 9, 16, 27]);
    prompts.forEach((p, i) => {
      const s = out.cuSeqlens[i];
      expect(Array.from(out.ids.subarray(s, s + p.length))).toEqual(Array.from(p));
      expect(Array.from(out.actionMask.subarray(s, out.cuSeqlens[i + 1]))).toEqual([...new Array(p.length).fill(0), ...new Array(6).fill(1)]);
    });
    // Score the packed output with a full forward: the log-prob of token t comes from the logits at t - 1.
    const full = model.forward({ ids: out.ids, cuSeqlens: out.cuSeqlens });
    const logits = full.logits!.toArray() as Float32Array;
    const v = config.vocabSize;
    const rows: number[] = [];
    for (let t = 0; t < out.ids.length; t++) if (out.actionMask[t]) rows.push(t);
    const prevLogits = new Float32Array(rows.length * v);
    rows.forEach((t, r) => prevLogits.set(logits.subarray((t - 1) * v, t * v), r * v));
    const scored = logprobEntropy({ logits: prevLogits, vocabSize: v, targets: Int32Array.from(rows, (t) => out.ids[t]), temperature });
    rows.forEach((t, r) => expect(Math.abs(out.logprobs[t] - scored.logp[r])).toBeLessThan(tol * 10));
    for (let t = 0; t < out.ids.length; t++) if (!out.actionMask[t]) expect(out.logprobs[t]).toBe(0);
    full.dispose();
    model.dispose();
  });

  it('stop tokens end a sequence (kept as its last token) and set its ended flag', () => {
    const model = makeModel();
    const prompts = randomPrompts(6, [2, 3, 4, 1, 2, 5, 3, 2], config.vocabSize);
    const free = generate(model, prompts, { maxNewTokens: 10, seed: 21 });
    // Stop on a token that the free run emits somewhere, so some sequences must end early.
    const firstResponseToken = free.ids[free.cuSeqlens[0] + free.promptLengths[0]];
    const out = generate(model, prompts, { maxNewTokens: 10, seed: 21, stopTokens: [firstResponseToken] });
    let endedCount = 0;
    for (let i = 0; i < prompts.length; i++) {
      const start = out.cuSeqlens[i] + out.promptLengths[i];
      const response = Array.from(out.ids.subarray(start, out.cuSeqlens[i + 1]));
      const stopAt = response.indexOf(firstResponseToken);
      if (out.ended[i]) {
        endedCount++;
        expect(stopAt).toBe(response.length - 1);
      } else {
        expect(stopAt).toBe(-1);
        expect(response.length).toBe(10);
      }
      // Up to the stop, the same draws as the free run (same seed, same offsets).
      const freeStart = free.cuSeqlens[i] + free.promptLengths[i];
      expect(response).toEqual(Array.from(free.ids.subarray(freeStart, freeStart + response.length)));
    }
    expect(endedCount).toBeGreaterThan(0);
    expect(out.ended[0]).toBe(1);
    model.dispose();
  });

  it('suppressed tokens are never sampled', () => {
    const model = new TransformerModel(config, heads, { device, seed: 3, initStd: 0.5, trainable: false, suppressTokens: [0, 1, 2] });
    const out = generate(model, randomPrompts(8, new Array(16).fill(2), config.vocabSize), { maxNewTokens: 12, seed: 1 });
    for (let t = 0; t < out.ids.length; t++) if (out.actionMask[t]) expect(out.ids[t]).toBeGreaterThan(2);
    model.dispose();
  });
});

describe('generation bad input', () => {
  const config = tinyConfig({ vocabSize: 23 });
  it('rejects bad prompts, budgets, stop tokens, offsets and caches', () => {
    const model = new TransformerModel(config, heads, { trainable: false });
    const ok = [new Int32Array([1, 2])];
    expectThrows(() => generate(model, [], { maxNewTokens: 4, seed: 1 }), 'ERR_TALARIA_SHAPE', 'prompts');
    expectThrows(() => generate(model, [new Int32Array(0)], { maxNewTokens: 4, seed: 1 }), 'ERR_TALARIA_SHAPE', 'prompts[0]');
    expectThrows(() => generate(model, [[1, 2] as never], { maxNewTokens: 4, seed: 1 }), 'ERR_TALARIA_SHAPE', 'prompts[0]');
    expectThrows(() => generate(model, [new Int32Array([1, 99])], { maxNewTokens: 4, seed: 1 }), 'ERR_TALARIA_RANGE', 'ids');
    expectThrows(() => generate(model, ok, { maxNewTokens: 0, seed: 1 }), 'ERR_TALARIA_RANGE', 'maxNewTokens');
    expectThrows(() => generate(model, ok, { maxNewTokens: 1.5, seed: 1 }), 'ERR_TALARIA_RANGE', 'maxNewTokens');
    expectThrows(() => generate(model, ok, { maxNewTokens: 64, seed: 1 }), 'ERR_TALARIA_RANGE', 'max_position_embeddings');
    expectThrows(() => generate(model, ok, { maxNewTokens: 4, seed: 1, stopTokens: [23] }), 'ERR_TALARIA_RANGE', 'stopTokens');
    expectThrows(() => generate(model, ok, { maxNewTokens: 4, seed: 1, offset: -1 }), 'ERR_TALARIA_RANGE', 'offset');
    expectThrows(() => generate(model, ok, { maxNewTokens: 4, seed: -1 }), 'ERR_TALARIA_RANGE', 'seed');
    expectThrows(() => generate(model, ok, { maxNewTokens: 4, seed: 1, temperature: 0 }), 'ERR_TALARIA_RANGE', 'temperature');
    expectThrows(() => model.createKvCache(0, 4), 'ERR_TALARIA_RANGE', 'batch');
    expectThrows(() => model.createKvCache(2, 65), 'ERR_TALARIA_RANGE', 'maxLen');
    const cache = model.createKvCache(2, 4);
    expectThrows(() => model.forwardCached({ ids: new Int32Array([1, 2]), cuSeqlens: new Int32Array([0, 2]) }, cache), 'ERR_TALARIA_SHAPE', 'cuSeqlens');
    expectThrows(() => model.forwardCached({ ids: new Int32Array([1, 2, 3]), cuSeqlens: new Int32Array([0, 3, 3]) }, cache), 'ERR_TALARIA_SHAPE', 'sequence 1');
    expectThrows(() => model.forwardCached({ ids: new Int32Array([1, 2, 3, 4, 5]), cuSeqlens: new Int32Array([0, 5, 5]) }, cache), 'ERR_TALARIA_RANGE', 'cache');
    model.forwardCached({ ids: new Int32Array([1, 2, 3]), cuSeqlens: new Int32Array([0, 2, 3]) }, cache).dispose();
    expectThrows(() => model.forwardCached({ ids: new Int32Array([1, 2, 3]), cuSeqlens: new Int32Array([0, 2, 3]) }, cache), 'ERR_TALARIA_SHAPE', 'exactly one');
    cache.dispose();
    expectThrows(() => model.forwardCached({ ids: new Int32Array([1, 2]), cuSeqlens: new Int32Array([0, 1, 2]) }, cache), 'ERR_TALARIA_DISPOSED', 'cache');
    model.dispose();
  });
});
