// valueLoss against the float64 reference (test/reference/rl_loss.ts) on every backend, through Tensors
// and typed arrays, sync and Promise: loss, dValues and stats in every aggregation, with and without
// cuSeqlens, clipped, unclipped and clipRange = Infinity; |v - old| exactly at clipRange (not clipped) and
// one ulp beyond; gradients against central finite differences of the reference; padding never counted;
// determinism; and cuda-emu (or cuda) against cpu.
//
// Tolerances are relative to the reference's error scales (see ppo-loss.test.ts): a gradient element is
// w * (v - R), one subtraction and one multiply (2 ulp; ELEMENT_REL 1e-6), the loss adds f32 partial sums
// of 8 tokens (SUM_REL 2e-6). There is no exp and no multiply-add, so the backends must agree exactly on
// every gradient and decision.
import { afterEach, describe, expect, it } from 'vitest';
import { valueLoss, valueLossAsync } from '../lib/index.js';
import type { LossAggregation } from '../lib/ops/rl-loss.js';
import { type ValueLossReferenceInput, valueLossOfValues, valueLossWithScales } from './reference/rl_loss.js';
import { type ActionMaskKind, Rng, cuSeqlensOf, f32AwayFromZero, f32PairWithDifference, randomActionMask, randomF32, randomLengths } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectF32Output, expectGradientMatchesFiniteDifferences, expectWithin, expectWithinScales, expectZeroWhereMasked, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

const ELEMENT_REL = 1e-6;
const SUM_REL = 2e-6;

const AGGREGATIONS: LossAggregation[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'];
const f32 = Math.fround;

interface ValueArrays {
  values: Float32Array;
  oldValues: Float32Array;
  returns: Float32Array;
  actionMask?: Uint8Array;
  cuSeqlens?: Int32Array;
}
type ValueOptions = Omit<ValueLossReferenceInput, keyof ValueArrays>;

/** Values within ±0.5 of the old ones and returns in [-1.5, 1.5): both sides of a 0.2 clip, both winners. */
function valueBatch(rng: Rng, lengths: number[], mask: ActionMaskKind, withCuSeqlens = true): ValueArrays {
  const cuSeqlens = cuSeqlensOf(lengths);
  const n = cuSeqlens[lengths.length];
  const oldValues = randomF32(rng, n, -1, 1);
  const batch: ValueArrays = {
    values: Float32Array.from(oldValues, (x) => x + rng.uniform(-0.5, 0.5)), oldValues, returns: randomF32(rng, n, -1.5, 1.5),
  };
  const actionMask = randomActionMask(rng, mask, cuSeqlens);
  if (actionMask) batch.actionMask = actionMask;
  if (withCuSeqlens) batch.cuSeqlens = cuSeqlens;
  return batch;
}

interface ValueCase {
  name: string;
  seed: number;
  lengths: number[] | { count: number; maxLen: number };
  mask: ActionMaskKind;
  cuSeqlens: boolean;
  options: ValueOptions;
}
const cases: ValueCase[] = [];
let nextSeed = 9000;
const add = (c: Omit<ValueCase, 'seed'>) => cases.push({ ...c, seed: nextSeed++ });
const normalizerFor = (aggregation: LossAggregation) => (aggregation === 'seq-mean-token-sum-norm' ? { normalizer: 100 } : {});
const RAGGED = { count: 19, maxLen: 130 };

for (const mask of ['omitted', 'all-ones', 'interleaved', 'prompt-response-padding', 'all-masked'] as const)
  for (const aggregation of AGGREGATIONS)
    for (const cuSeqlens of [true, false])
      add({ name: `mask ${mask}, ${aggregation}, ${cuSeqlens ? 'with' : 'without'} cuSeqlens`, lengths: RAGGED, mask, cuSeqlens,
        options: { aggregation, ...normalizerFor(aggregation) } });
for (const clipRange of [0.01, 0.2, 1, 1e30, Infinity])
  add({ name: `clipRange ${clipRange}`, lengths: RAGGED, mask: 'prompt-response', cuSeqlens: true, options: { clipRange, aggregation: 'seq-mean-token-mean' } });
add({ name: 'defaults only (no mask, no cuSeqlens, clipRange 0.2)', lengths: [300], mask: 'omitted', cuSeqlens: false, options: {} });
add({ name: 'one token', lengths: [1], mask: 'omitted', cuSeqlens: true, options: { clipRange: 0.05 } });
add({ name: 'one token per sequence', lengths: new Array(37).fill(1), mask: 'interleaved', cuSeqlens: true, options: { aggregation: 'seq-mean-token-mean' } });
add({ name: 'odd and prime lengths, one empty', lengths: [3, 7, 0, 31, 1, 127, 8191], mask: 'prompt-response-padding', cuSeqlens: true, options: { aggregation: 'seq-mean-token-sum' } });
add({ name: 'no tokens at all, with cuSeqlens [0]', lengths: [], mask: 'omitted', cuSeqlens: true, options: {} });
add({ name: 'no tokens at all, without cuSeqlens', lengths: [], mask: 'omitted', cuSeqlens: false, options: { aggregation: 'seq-mean-token-mean' } });
add({ name: 'only empty sequences', lengths: [0, 0, 0], mask: 'interleaved', cuSeqlens: true, options: { aggregation: 'seq-mean-token-mean' } });
add({ name: 'large: 64 x 1024 plus 4099 and 1 (69,636 tokens)', lengths: [...new Array(64).fill(1024), 4099, 0, 1], mask: 'prompt-response-padding',
  cuSeqlens: true, options: { clipRange: 0.1, aggregation: 'seq-mean-token-mean' } });
add({ name: 'large: 70,001 tokens without cuSeqlens', lengths: [70_001], mask: 'interleaved', cuSeqlens: false, options: { aggregation: 'seq-mean-token-sum-norm', normalizer: 65_536 } });

function prepare(c: ValueCase) {
  const rng = new Rng(c.seed);
  const lengths = Array.isArray(c.lengths) ? c.lengths : randomLengths(rng, c.lengths.count, c.lengths.maxLen);
  const arrays = valueBatch(rng, lengths, c.mask, c.cuSeqlens);
  return { arrays, want: valueLossWithScales({ ...arrays, ...c.options }) };
}
type Want = ReturnType<typeof valueLossWithScales>;
type Got = Awaited<ReturnType<typeof valueLossAsync>>;

function checkValue(got: Got, want: Want, arrays: ValueArrays, maxAmbiguous = 2) {
  const { scales } = want;
  // Two squared errors within an ulp of each other may compare either way in f32; random data has next to none.
  expect(scales.ambiguousCount).toBeLessThanOrEqual(maxAmbiguous);
  expectWithin(got.loss, want.loss, SUM_REL * scales.loss, 'loss');
  const dValues = readBack(got.dValues);
  expectWithinScales(dValues, want.dValues, ELEMENT_REL, scales.dValues, scales.ambiguous);
  if (arrays.actionMask) expectZeroWhereMasked(dValues, arrays.actionMask);
  const actions = want.stats.actionTokens;
  expectWithin(got.stats.clipFrac, want.stats.clipFrac, actions > 0 ? scales.ambiguousCount / actions : 0, 'clipFrac');
  expect([got.stats.actionTokens, got.stats.activeSeqs]).toEqual([want.stats.actionTokens, want.stats.activeSeqs]);
  if (actions > 0) expect(scales.loss, 'the case exercises the loss').toBeGreaterThan(0);
  else expect([got.loss, got.stats.clipFrac]).toEqual([0, 0]);
}

describe.each(backendsUnderTest)('valueLoss on $backend, Tensors on $device', ({ device }) => {
  it.each(cases)('$name', async (c) => {
    const { arrays, want } = prepare(c);
    const args = { ...recordOn(arrays, device), ...c.options };
    for (const got of [valueLoss(args), await valueLossAsync(args)]) {
      expectF32Output(got.dValues, arrays.values.length, device);
      checkValue(got, want, arrays);
    }
    const clipRange = c.options.clipRange ?? 0.2;
    if (clipRange === Infinity || clipRange === 1e30) expect(want.stats.clipFrac).toBe(0);
    else if (clipRange < 0.5 && want.stats.actionTokens > 50) expect(want.stats.clipFrac, 'some tokens clipped').toBeGreaterThan(0);
    else if (clipRange >= 0.5) expect(want.stats.clipFrac, 'values moved at most 0.5').toBe(0);
  });
});

describe('valueLoss on plain typed arrays (cpu)', () => {
  it.each(cases)('$name', async (c) => {
    const { arrays, want } = prepare(c);
    const expectInputsUnchanged = snapshotInputs(arrays);
    for (const got of [valueLoss({ ...arrays, ...c.options }), await valueLossAsync({ ...arrays, ...c.options })]) {
      expectF32Output(got.dValues, arrays.values.length, null);
      checkValue(got, want, arrays);
    }
    expectInputsUnchanged();
  });
});

describe.each(backendsUnderTest)('valueLoss boundaries and special cases on $backend', ({ device }) => {
  it('|v - old| exactly at clipRange is not clipped; one ulp beyond is, when the clipped term is strictly larger', () => {
    const rng = new Rng(77);
    const step = 2 ** -12;  // R - v: small, so every error and square below is exact in f32
    // [v - old, R - v, clipped]. clipRange 0.25: old + clipRange is exact, so vc = v - (one ulp) exactly.
    const clip = 0.25, beyond = f32AwayFromZero(clip);
    const tokens: [number, number, boolean][] = [
      [clip, step, false], [-clip, -step, false],   // on the bound: vc = v, never clipped
      [beyond, step, true], [-beyond, -step, true], // vc is one ulp farther from R than v: clipped
      [beyond, -step, false], [-beyond, step, false], // vc is one ulp closer to R: v's term wins
    ];
    const n = tokens.length;
    const values = new Float32Array(n), oldValues = new Float32Array(n);
    // |old| < 0.2 keeps every value below 0.5 in magnitude, where f32 resolves one ulp of 0.25.
    tokens.forEach(([d], t) => ([oldValues[t], values[t]] = f32PairWithDifference(rng, f32(d), -0.2, 0.2)));
    const returns = Float32Array.from(tokens, ([, r], t) => values[t] + r);
    const arrays = { values, oldValues, returns };
    tokens.forEach(([, r], t) => expect(returns[t] - values[t]).toBe(r));
    const got = valueLoss({ ...recordOn(arrays, device), clipRange: clip });
    const w = f32(1 / n);
    expect(Array.from(readBack(got.dValues), (x) => x + 0)).toEqual(tokens.map(([, r, clipped]) => (clipped ? 0 : f32(w * -r))));
    expect(got.stats.clipFrac).toBe(2 / n);
    const want = valueLossWithScales({ ...arrays, clipRange: clip });
    expect(want.stats.clipFrac).toBe(2 / n);
    checkValue(got, want, arrays, 4);  // the four one-ulp tokens, checked exactly above
  });

  it('a non-dyadic clipRange: |v - old| exactly at f32(clipRange) is not clipped', () => {
    const rng = new Rng(78), clipRange = 0.2;
    const n = 40;
    const values = new Float32Array(n), oldValues = new Float32Array(n);
    for (let t = 0; t < n; t++) [oldValues[t], values[t]] = f32PairWithDifference(rng, (t % 2 ? 1 : -1) * f32(clipRange));
    // Returns beyond v, away from old. (Clipping at equality would give vc = old + clipRange = v: the same
    // loss, so only the one-ulp-beyond test above can tell > from >=; this one checks the f32 rounding of 0.2.)
    const returns = Float32Array.from(values, (v, t) => v + (t % 2 ? 1 : -1) * rng.uniform(0.01, 1));
    const got = valueLoss({ ...recordOn({ values, oldValues, returns }, device), clipRange });
    expect(got.stats.clipFrac).toBe(0);
    expect(readBack(got.dValues).every((x) => x !== 0)).toBe(true);
    checkValue(got, valueLossWithScales({ values, oldValues, returns, clipRange }), { values, oldValues, returns });
  });

  it('clipRange Infinity never clips, however far the values moved', () => {
    const rng = new Rng(79);
    const oldValues = randomF32(rng, 50, -1, 1);
    const values = Float32Array.from(oldValues, (x, t) => x + (t % 2 ? 1e6 : -1e6));
    const returns = Float32Array.from(oldValues, (x) => x);
    const got = valueLoss({ ...recordOn({ values, oldValues, returns }, device), clipRange: Infinity });
    expect(got.stats.clipFrac).toBe(0);
    expect(readBack(got.dValues).every((x) => x !== 0)).toBe(true);
    checkValue(got, valueLossWithScales({ values, oldValues, returns, clipRange: Infinity }), { values, oldValues, returns });
  });

  it('without cuSeqlens the batch is one sequence: the same as cuSeqlens [0, N], bitwise', () => {
    const arrays = valueBatch(new Rng(80), [40, 3, 77], 'interleaved', false);
    for (const aggregation of AGGREGATIONS) {
      const options = { aggregation, ...normalizerFor(aggregation) };
      const implicit = valueLoss({ ...recordOn(arrays, device), ...options });
      const explicit = valueLoss({ ...recordOn({ ...arrays, cuSeqlens: Int32Array.from([0, arrays.values.length]) }, device), ...options });
      expect(implicit.loss).toBe(explicit.loss);
      expect(implicit.stats).toEqual(explicit.stats);
      expect(implicit.stats.activeSeqs).toBe(1);
      expectBitwiseEqual(readBack(implicit.dValues), readBack(explicit.dValues));
    }
  });

  it('padding is never counted: garbage on non-action tokens changes nothing and gets gradient 0', () => {
    const arrays = valueBatch(new Rng(81), [40, 25, 0, 31, 1], 'prompt-response-padding');
    const base = valueLoss({ ...recordOn(arrays, device), aggregation: 'seq-mean-token-mean' });
    const garbage = [Number.NaN, Infinity, -Infinity, 1e30, -1e30];
    const noisy: ValueArrays = { ...arrays };
    for (const key of ['values', 'oldValues', 'returns'] as const) {
      noisy[key] = arrays[key].map((x, t) => (arrays.actionMask![t] ? x : garbage[(t + key.length) % garbage.length]));
    }
    const got = valueLoss({ ...recordOn(noisy, device), aggregation: 'seq-mean-token-mean' });
    expect(got.loss).toBe(base.loss);
    expect(got.stats).toEqual(base.stats);
    expectBitwiseEqual(readBack(got.dValues), readBack(base.dValues));
    expectZeroWhereMasked(readBack(got.dValues), arrays.actionMask!);
  });

  it('any nonzero mask byte marks an action, exactly like 1', () => {
    const arrays = valueBatch(new Rng(86), [20, 0, 13], 'interleaved');
    const bytes = arrays.actionMask!.map((m, t) => (m ? [1, 2, 127, 128, 255][t % 5] : 0));
    const ones = valueLoss({ ...recordOn(arrays, device), aggregation: 'seq-mean-token-mean' });
    const got = valueLoss({ ...recordOn({ ...arrays, actionMask: bytes }, device), aggregation: 'seq-mean-token-mean' });
    expect([got.loss, got.stats]).toEqual([ones.loss, ones.stats]);
    expectBitwiseEqual(readBack(got.dValues), readBack(ones.dValues));
  });

  it('an all-masked batch gives 0 and zero gradients in every aggregation', () => {
    const arrays = valueBatch(new Rng(82), [5, 3, 0, 1], 'all-masked');
    for (const aggregation of AGGREGATIONS) {
      const got = valueLoss({ ...recordOn(arrays, device), aggregation, ...normalizerFor(aggregation) });
      expect([got.loss, got.stats.clipFrac, got.stats.actionTokens, got.stats.activeSeqs]).toEqual([0, 0, 0, 0]);
      expect(readBack(got.dValues).every((x) => x === 0)).toBe(true);
    }
  });
});

describe.each(backendsUnderTest)('valueLoss gradients vs finite differences of the reference on $backend', ({ device }) => {
  const variants = AGGREGATIONS.flatMap((aggregation) => [true, false].map((withCuSeqlens) => ({ aggregation, withCuSeqlens })));
  it.each(variants)('$aggregation, cuSeqlens $withCuSeqlens', ({ aggregation, withCuSeqlens }) => {
    const arrays = valueBatch(new Rng(aggregation.length * 7 + (withCuSeqlens ? 1 : 0)), [12, 1, 0, 29, 16], 'prompt-response-padding', withCuSeqlens);
    const options = { clipRange: 0.15, aggregation, ...normalizerFor(aggregation) };
    const input = { ...arrays, ...options };
    const want = valueLossWithScales(input);
    const got = readBack(valueLoss({ ...recordOn(arrays, device), ...options }).dValues);
    const { checked, kinks } = expectGradientMatchesFiniteDifferences({
      lossAt: valueLossOfValues(input), x: arrays.values, reference: want.dValues, kernel: got,
      scale: want.scales.dValues, lossScale: want.scales.loss, kernelRel: ELEMENT_REL,
      kinkBound: (t) => 1e-3 * (want.scales.dValues[t] + 1e-5),
    });
    expect(kinks).toBeLessThanOrEqual(1);
    expect(checked).toBeGreaterThan(30);
    expect(want.stats.clipFrac, 'the clipped branch is covered').toBeGreaterThan(0);
  });
});

describe.each(backendsUnderTest)('valueLoss determinism and out buffers on $backend', ({ device }) => {
  it('is bitwise reproducible run to run, sync and async, in every aggregation', async () => {
    const args = recordOn(valueBatch(new Rng(83), randomLengths(new Rng(84), 40, 3000), 'prompt-response-padding'), device);
    for (const aggregation of AGGREGATIONS) {
      const options = { aggregation, ...normalizerFor(aggregation) };
      const first = valueLoss({ ...args, ...options });
      for (const again of [valueLoss({ ...args, ...options }), await valueLossAsync({ ...args, ...options })]) {
        expect(again.loss).toBe(first.loss);
        expect(again.stats).toEqual(first.stats);
        expectBitwiseEqual(readBack(again.dValues), readBack(first.dValues));
      }
    }
  });

  it('writes into a caller buffer (overwriting stale values, zeros on masked tokens) and returns it', async () => {
    const arrays = valueBatch(new Rng(85), [30, 0, 9], 'interleaved');
    const n = arrays.values.length;
    const fresh = valueLoss(recordOn(arrays, device));
    const out = { dValues: tensorOn(new Float32Array(n).fill(Number.NaN), device) };
    const got = await valueLossAsync({ ...recordOn(arrays, device), out });
    expect(got.dValues).toBe(out.dValues);
    expectBitwiseEqual(readBack(out.dValues), readBack(fresh.dValues));
    const typed = { dValues: new Float32Array(n).fill(Number.NaN) };
    expect(valueLoss({ ...arrays, out: typed }).dValues).toBe(typed.dValues);
    expectZeroWhereMasked(typed.dValues, arrays.actionMask!);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('valueLoss: $backend matches cpu', ({ device }) => {
  const shapes: { name: string; lengths: (rng: Rng) => number[]; mask: ActionMaskKind }[] = [
    { name: 'many short sequences', lengths: (rng) => randomLengths(rng, 300, 64), mask: 'prompt-response-padding' },
    { name: 'few long sequences', lengths: () => [4000, 17, 8192, 0, 2500], mask: 'interleaved' },
    { name: 'one very long sequence among short ones', lengths: () => [3, 60_001, 0, 129, 4097], mask: 'prompt-response' },
    { name: 'one token per sequence, no mask', lengths: () => new Array(257).fill(1), mask: 'omitted' },
  ];
  it.each(shapes.flatMap((shape) => AGGREGATIONS.map((aggregation) => ({ ...shape, aggregation }))))('$name, $aggregation', ({ lengths, mask, aggregation }) => {
    const rng = new Rng(4343);
    const arrays = valueBatch(rng, lengths(rng), mask);
    const options = { clipRange: 0.1, aggregation, ...normalizerFor(aggregation) };
    const want = valueLossWithScales({ ...arrays, ...options });
    const cpu = valueLoss({ ...recordOn(arrays, 'cpu'), ...options });
    const got = valueLoss({ ...recordOn(arrays, device), ...options });
    expectWithin(got.loss, cpu.loss, SUM_REL * want.scales.loss, 'loss');
    // The same f32 operations per token, with the same f32 weight (rl_math.h): identical gradients.
    expectBitwiseEqual(readBack(got.dValues), readBack(cpu.dValues));
    expect(got.stats).toEqual(cpu.stats);
  });
});
