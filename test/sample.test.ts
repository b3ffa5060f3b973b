// sample() on every backend against the reference (test/reference/sampling.ts), which reproduces the
// kernels' integer weights and Philox draw, so tokens must match exactly; logp and logpPlain within f32
// rounding. Also: Philox's published answers, CPU == CUDA token for token, seeds and offsets, chi-square
// fits of the draws to the processed distribution, support sets with ties at the boundaries, penalties,
// greedy, -inf logits, V = 1 and V = 128k.
//
// Tolerances: logp = log(e / W) in f64, rounded to f32 once: 1 ulp of f32, so 2e-7 * max(1, |ref|) with
// room. logpPlain sums V f32 exps (each within 2 ulp of e^x) in f64 where the reference uses Math.exp:
// 1e-6 * max(1, |ref|).
import { afterEach, describe, expect, it } from 'vitest';
import { sample, sampleAsync } from '../lib/index.js';
import {
  type SampleReferenceInput, philox4x32, processedWeights, rowValues, sampleReference,
} from './reference/sampling.js';
import { Rng } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, matrixOn, readBack, tensorOn } from './helpers/backends.js';
import { expectClose } from './helpers/assert.js';
import { chiSquare } from './helpers/stats.js';

afterEach(disposeTensors);

const LOGP_REL = 2e-7;
const PLAIN_REL = 1e-6;

interface Sampled { tokens: Int32Array; logp: Float32Array; logpPlain: Float32Array }

/** Runs sample() on `device`: typed arrays on the cpu, Tensors elsewhere. */
function sampleOn(device: string, input: SampleReferenceInput): Sampled {
  const args = onDevice(device, input);
  const out = sample(args);
  return {
    tokens: readBack(out.tokens) as Int32Array, logp: readBack(out.logp) as Float32Array,
    logpPlain: readBack(out.logpPlain) as Float32Array,
  };
}

function onDevice(device: string, input: SampleReferenceInput): Parameters<typeof sample>[0] {
  if (device === 'cpu') return { ...input };  // the reference's input is a legal typed-array input
  const { logits, vocabSize, temperature, history, historyOffsets, ...rest } = input;
  return {
    ...rest,
    logits: matrixOn(logits, vocabSize, device),
    temperature: temperature instanceof Float32Array ? tensorOn(temperature, device) : temperature,
    history: history && tensorOn(history, device),
    historyOffsets: historyOffsets && tensorOn(historyOffsets, device),
  } as Parameters<typeof sample>[0];
}

function expectMatchesReference(got: Sampled, input: SampleReferenceInput): void {
  const ref = sampleReference(input);
  expect(Array.from(got.tokens)).toEqual(ref.map((r) => r.token));
  expectClose(got.logp, ref.map((r) => r.logp), { rel: LOGP_REL });
  expectClose(got.logpPlain, ref.map((r) => r.logpPlain), { rel: PLAIN_REL });
}

/** Random logits in [-4, 4); `coarse` rounds them to quarters (many exact ties); some entries -inf. */
function randomLogits(rng: Rng, rows: number, vocab: number, opts: { coarse?: boolean; negInf?: number } = {}): Float32Array {
  return Float32Array.from({ length: rows * vocab }, () => {
    if (rng.chance(opts.negInf ?? 0)) return -Infinity;
    const x = rng.uniform(-4, 4);
    return opts.coarse ? Math.round(x * 4) / 4 : x;
  });
}

/** Random histories of 0-12 tokens per row (repeats included). */
function randomHistory(rng: Rng, rows: number, vocab: number): { history: Int32Array; historyOffsets: Int32Array } {
  const offsets = [0];
  const tokens: number[] = [];
  for (let r = 0; r < rows; r++) {
    const length = rng.int(0, 12);
    for (let j = 0; j < length; j++) tokens.push(rng.chance(0.3) && tokens.length > 0 ? tokens[tokens.length - 1] : rng.int(0, vocab - 1));
    offsets.push(tokens.length);
  }
  return { history: Int32Array.from(tokens), historyOffsets: Int32Array.from(offsets) };
}

type Options = Omit<SampleReferenceInput, 'logits' | 'vocabSize' | 'seed'>;
const CASES: { name: string; options: (rng: Rng, rows: number, vocab: number) => Options }[] = [
  { name: 'plain', options: () => ({}) },
  { name: 'temperature 0.7', options: () => ({ temperature: 0.7 }) },
  { name: 'per-row temperatures', options: (rng, rows) => ({ temperature: Float32Array.from({ length: rows }, () => rng.uniform(0.2, 3)) }) },
  { name: 'top-k 5', options: () => ({ topK: 5 }) },
  { name: 'top-p 0.8', options: () => ({ topP: 0.8 }) },
  { name: 'min-p 0.05', options: () => ({ minP: 0.05 }) },
  { name: 'top-k, top-p and min-p', options: () => ({ temperature: 0.9, topK: 20, topP: 0.9, minP: 0.02 }) },
  {
    name: 'penalties', options: (rng, rows, vocab) =>
      ({ ...randomHistory(rng, rows, vocab), repetitionPenalty: 1.5, presencePenalty: 0.5, frequencyPenalty: 0.25 }),
  },
  {
    name: 'penalties and filters', options: (rng, rows, vocab) =>
      ({ ...randomHistory(rng, rows, vocab), repetitionPenalty: 0.8, frequencyPenalty: -0.3, temperature: 1.3, topK: 7, topP: 0.7, minP: 0.1 }),
  },
  { name: 'greedy', options: () => ({ mode: 'greedy', temperature: 0.5 }) },
  { name: 'greedy with penalties', options: (rng, rows, vocab) => ({ mode: 'greedy', ...randomHistory(rng, rows, vocab), repetitionPenalty: 2 }) },
];

describe('Philox4x32-10', () => {
  // Random123's kat_vectors (as quoted by TensorFlow's stateful_random_ops_test, which cites them).
  it('matches the published known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))
      .toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))
      .toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });
});

describe.each(backendsUnderTest)('sample on $backend', ({ device }) => {
  describe.each(CASES)('$name', ({ name, options }) => {
    it.each([
      { rows: 23, vocab: 97, coarse: true, negInf: 0 },
      { rows: 11, vocab: 1000, coarse: false, negInf: 0.03 },
    ])('tokens equal the reference (N = $rows, V = $vocab, ties $coarse)', ({ rows, vocab, coarse, negInf }) => {
      const rng = new Rng(rows * 7919 + vocab + name.length);
      const input: SampleReferenceInput = {
        logits: randomLogits(rng, rows, vocab, { coarse, negInf }), vocabSize: vocab, seed: rng.int(0, 2 ** 31),
        offset: rng.int(0, 1000), ...options(rng, rows, vocab),
      };
      expectMatchesReference(sampleOn(device, input), input);
    });
  });

  it('the Promise form gives the same result', async () => {
    const rng = new Rng(5);
    const input: SampleReferenceInput = { logits: randomLogits(rng, 9, 50), vocabSize: 50, seed: 77, topP: 0.9 };
    const out = await sampleAsync(onDevice(device, input));
    expect(Array.from(readBack(out.tokens))).toEqual(Array.from(sampleOn(device, input).tokens));
  });

  it('the same seed and offset give the same tokens; another offset or seed gives another stream', () => {
    const rows = 64, vocab = 1000;
    const input: SampleReferenceInput = { logits: new Float32Array(rows * vocab), vocabSize: vocab, seed: 2 ** 53 - 1, offset: 3 };
    const first = sampleOn(device, input).tokens;
    expect(sampleOn(device, input).tokens).toEqual(first);
    // Uniform logits: two independent streams agree on a row with probability 1/1000.
    const differing = (other: Int32Array) => other.filter((t, r) => t !== first[r]).length;
    expect(differing(sampleOn(device, { ...input, offset: 4 }).tokens)).toBeGreaterThan(rows - 5);
    expect(differing(sampleOn(device, { ...input, offset: 3 + 2 ** 32 }).tokens)).toBeGreaterThan(rows - 5);
    expect(differing(sampleOn(device, { ...input, seed: 2 ** 32 }).tokens)).toBeGreaterThan(rows - 5);
    expectMatchesReference(sampleOn(device, { ...input, offset: 2 ** 53 - 1 }), { ...input, offset: 2 ** 53 - 1 });
  });

  it('top-k keeps every token tied with the k-th value, and nothing below it', () => {
    const logits = [1, 3, 2, 2, 0, 2, -1, 3, 0.5, -Infinity];
    expectSupport(device, logits, { topK: 3 }, [1, 2, 3, 5, 7]);
    expectSupport(device, logits, { topK: 2 }, [1, 7]);
    expectSupport(device, logits, { topK: 8 }, [0, 1, 2, 3, 4, 5, 7, 8]);
  });

  it('top-p keeps the smallest top set reaching p, with ties at its last value, and always the max', () => {
    // Probabilities e^z / S: 2 -> 0.4506, each 1 -> 0.1658 (top three: 0.7823), each 0 -> 0.0610, ...
    const logits = [1, 2, 0, 1, -1, 0, -2, 0, -3, -4];
    expectSupport(device, logits, { topP: 0.43 }, [1]);
    expectSupport(device, logits, { topP: 0.5 }, [0, 1, 3]);  // both tokens tied at 1
    expectSupport(device, logits, { topP: 0.76 }, [0, 1, 3]);
    expectSupport(device, logits, { topP: 0.8 }, [0, 1, 2, 3, 5, 7]);
    expectSupport(device, logits, { topP: 1e-30 }, [1]);
    expectSupport(device, logits, { topK: 3, topP: 0.6 }, [0, 1, 3]);
  });

  it('min-p keeps tokens at least minP times as likely as the max', () => {
    const logits = [0, Math.log(0.5), Math.log(0.25), Math.log(0.125), -5, -Infinity, 0];
    expectSupport(device, logits, { minP: 0.3 }, [0, 1, 6]);
    expectSupport(device, logits, { minP: 0.2 }, [0, 1, 2, 6]);
    expectSupport(device, logits, { minP: 0.999 }, [0, 6]);
  });

  it('penalties change exactly the tokens in the history', () => {
    // Every row holds the same logits, so within one call a token's logp is one value, log(e_j / W). With
    // penalties on tokens 2 and 5 (not the max), every other token keeps its weight e_j, so its logp moves
    // by the same log(W / W') and the two penalised tokens' by more.
    const row = [0.5, 1.5, 2.5, -0.5, 0.25, 1, 3, -1];
    const rows = 1000, vocab = row.length;
    const logits = Float32Array.from({ length: rows * vocab }, (_, i) => row[i % vocab]);
    const history = Int32Array.from({ length: rows * 3 }, (_, j) => [2, 5, 5][j % 3]);
    const historyOffsets = Int32Array.from({ length: rows + 1 }, (_, r) => 3 * r);
    const logpOf = (input: SampleReferenceInput) => {
      const got = sampleOn(device, input), out = new Array<number>(vocab).fill(NaN);
      got.tokens.forEach((t, r) => { out[t] = got.logp[r]; });
      return out;
    };
    const plain = logpOf({ logits, vocabSize: vocab, seed: 3 });
    const penalised = logpOf({ logits, vocabSize: vocab, seed: 3, history, historyOffsets, repetitionPenalty: 1.5, frequencyPenalty: 0.2 });
    const shift = penalised.map((p, j) => p - plain[j]);
    const others = [0, 1, 3, 4, 6, 7].map((j) => shift[j]);
    expect(others.every(Number.isFinite)).toBe(true);
    for (const s of others) expect(Math.abs(s - others[0])).toBeLessThan(1e-6);
    expect(others[0]).toBeGreaterThan(0);  // the penalised tokens' mass went to the others
    for (const j of [2, 5]) expect(shift[j]).toBeLessThan(others[0] - 0.1);
  });

  it('greedy takes the argmax of the penalised logits, the lowest index on ties', () => {
    const vocab = 6;
    const logits = Float32Array.from([1, 5, 2, 5, -1, 0, /* row 1 */ 3, 3, 3, 3, 3, 3, /* row 2 */ 4, 2, 3.5, 4, 1, 0]);
    const base: SampleReferenceInput = { logits, vocabSize: vocab, seed: 1, mode: 'greedy' };
    const got = sampleOn(device, base);
    expect(Array.from(got.tokens)).toEqual([1, 0, 0]);
    expect(Array.from(got.logp)).toEqual([0, 0, 0]);
    // Halving token 1 of row 0 leaves token 3 on top; halving tokens 0 and 3 of row 2 leaves token 2.
    const penalised = { ...base, history: Int32Array.from([1, 0, 3]), historyOffsets: Int32Array.from([0, 1, 1, 3]), repetitionPenalty: 2 };
    expect(Array.from(sampleOn(device, penalised).tokens)).toEqual([3, 0, 2]);
    expectMatchesReference(sampleOn(device, penalised), penalised);
  });

  it('never samples -inf or NaN logits; a row of only -inf has no token', () => {
    const vocab = 8, rows = 300;
    const row = [-Infinity, 0.5, NaN, -Infinity, 1, -Infinity, -Infinity, NaN];
    const logits = Float32Array.from({ length: rows * vocab }, (_, i) => (i < vocab ? -Infinity : row[i % vocab]));
    const got = sampleOn(device, { logits, vocabSize: vocab, seed: 9 });
    expect(got.tokens[0]).toBe(-1);
    expect(got.logp[0]).toBeNaN();
    expect(got.logpPlain[0]).toBeNaN();
    expect(new Set(got.tokens.subarray(1))).toEqual(new Set([1, 4]));
  });

  it('V = 1 always gives token 0 with log-probs 0', () => {
    const got = sampleOn(device, { logits: Float32Array.from([3, -2, 0.5]), vocabSize: 1, seed: 4, topK: 1, topP: 0.5, minP: 0.5 });
    expect(Array.from(got.tokens)).toEqual([0, 0, 0]);
    expect(Array.from(got.logp)).toEqual([0, 0, 0]);
    expect(Array.from(got.logpPlain)).toEqual([0, 0, 0]);
  });

  it('V = 128k at small N equals the reference', () => {
    const rows = 2, vocab = 128 * 1024, rng = new Rng(128);
    const input: SampleReferenceInput = {
      logits: randomLogits(rng, rows, vocab, { negInf: 0.01 }), vocabSize: vocab, seed: 31337, temperature: 0.3,
      topK: 1000, topP: 0.95, ...randomHistory(rng, rows, vocab), presencePenalty: 1,
    };
    expectMatchesReference(sampleOn(device, input), input);
  });
});

// Draws of a V = 10 row on many rows and offsets: which tokens appear, against the reference's support.
function expectSupport(device: string, row: number[], options: Options, support: number[]): void {
  const rows = 1000, vocab = row.length;  // every token of probability >= 0.015 shows up (misses one with p < 1e-6)
  const input: SampleReferenceInput = { logits: Float32Array.from({ length: rows * vocab }, (_, i) => row[i % vocab]), vocabSize: vocab, seed: 8, ...options };
  const weights = processedWeights(input, rowValues(input, 0, 1));
  expect(weights.flatMap((w, i) => (w > 0 ? [i] : []))).toEqual(support);
  const seen = new Set(sampleOn(device, input).tokens);
  expect([...seen].sort((a, b) => a - b)).toEqual(support);
}

describe('draws follow the processed distribution (cpu)', () => {
  // 50,000 draws of one V = 10 row: 5,000 rows (the Philox counter's row words) times 10 offsets, one fixed
  // seed. Pearson's chi-square against the exact processed distribution (the reference's integer
  // weights); the test fails when p < 1e-6, so a correct sampler fails it for one seed in a million. The
  // cuda backends' tokens equal the cpu's token for token (below), so they follow the same distribution.
  const row = [1.2, 0.3, -0.5, 2.0, 2.0, -1, 0.7, -Infinity, 0.1, 1.5];
  const rows = 5000, offsets = 10, vocab = row.length;
  const logits = Float32Array.from({ length: rows * vocab }, (_, i) => row[i % vocab]);
  const history = Int32Array.from({ length: rows * 4 }, (_, j) => [3, 3, 0, 9][j % 4]);
  const historyOffsets = Int32Array.from({ length: rows + 1 }, (_, r) => 4 * r);
  it.each<{ name: string; options: Options }>([
    { name: 'temperature 1', options: {} },
    { name: 'temperature 0.6, top-k 4 (ties at the 4th value)', options: { temperature: 0.6, topK: 4 } },
    { name: 'top-p 0.75', options: { topP: 0.75 } },
    { name: 'min-p 0.2, temperature 1.7', options: { minP: 0.2, temperature: 1.7 } },
    { name: 'penalties', options: { history, historyOffsets, repetitionPenalty: 1.4, presencePenalty: 0.3, frequencyPenalty: 0.2 } },
  ])('$name', ({ options }) => {
    const input: SampleReferenceInput = { logits, vocabSize: vocab, seed: 20261204, ...options };
    const weights = processedWeights(input, rowValues(input, 0, Math.fround(typeof options.temperature === 'number' ? options.temperature : 1)));
    const total = weights.reduce((a, b) => a + b, 0);
    const counts = new Array<number>(vocab).fill(0);
    for (let offset = 0; offset < offsets; offset++) {
      for (const token of sample({ ...input, offset }).tokens) counts[token]++;
    }
    const outside = counts.filter((c, i) => c > 0 && weights[i] === 0);
    expect(outside, `tokens outside the support: ${counts}`).toEqual([]);
    const fit = chiSquare(counts, weights.map((w) => w / total));
    expect(fit.pValue, `chi-square ${fit.statistic.toFixed(2)} on ${fit.degreesOfFreedom} df, counts ${counts}`).toBeGreaterThan(1e-6);
  });
});

describe.each(backendsUnderTest.filter((b) => b.backend !== 'cpu'))('$backend equals cpu token for token', ({ device }) => {
  it.each([0, 1, 2 ** 40 + 17, 2 ** 53 - 1])('seed %d', (seed) => {
    const rng = new Rng(seed % 1000 + 3), rows = 120, vocab = 333;
    const input: SampleReferenceInput = {
      logits: randomLogits(rng, rows, vocab, { coarse: seed % 2 === 0, negInf: 0.02 }), vocabSize: vocab, seed, offset: rng.int(0, 2 ** 40),
      temperature: Float32Array.from({ length: rows }, () => rng.uniform(0.3, 2)), topK: rng.int(1, 40), topP: 0.85, minP: 0.01,
      ...randomHistory(rng, rows, vocab), repetitionPenalty: 1.2, presencePenalty: 0.1, frequencyPenalty: 0.05,
    };
    const cpu = sampleOn('cpu', input), gpu = sampleOn(device, input);
    expect(gpu.tokens).toEqual(cpu.tokens);
    expectClose(gpu.logp, cpu.logp, { rel: LOGP_REL });
    expectClose(gpu.logpPlain, cpu.logpPlain, { rel: PLAIN_REL });
  });
});
