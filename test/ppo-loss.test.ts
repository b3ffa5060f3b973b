// ppoLoss against the float64 reference (test/reference/rl_loss.ts) on every backend, through Tensors and
// typed arrays, sync and Promise: loss, dLogp, dEntropy and every stat; gradients against central finite
// differences of the reference; ratios exactly on the clip bounds; the ±20 log-ratio clamp; the trainer
// bugs of notes/anchors.md (padding counted, a reported KL that is not the penalty's); determinism; and
// cuda-emu (or cuda) against cpu.
//
// Tolerances are relative to the reference's error scales (the sum of the magnitudes an f32 kernel
// rounds, output by output), so they hold under cancellation and demand exact zeros where the scale is 0:
// - ELEMENT_REL (a gradient element, ratioMax): an exp (the CPU's polynomial and CUDA's expf are each
//   within 2 ulp) and four or five f32 roundings, at most ~8 ulp = 1e-6 of the scale; 2e-6 leaves room.
// - SUM_REL (the loss and the mean stats): on top, the f32 partial sums of 8 tokens before f64 (7 more
//   roundings of the partial's magnitude).
// - PARITY_REL (one backend against the other): the two exps differ by at most 4 ulp; every other
//   operation and every decision is the same, so clip fractions and counts must agree exactly.
// A bug (a wrong branch, weight or estimator) moves an output by O(1) of its scale.
import { afterEach, describe, expect, it } from 'vitest';
import { ppoLoss, ppoLossAsync } from '../lib/index.js';
import type { KlEstimator, LossAggregation } from '../lib/ops/rl-loss.js';
import { type PpoLossReferenceInput, klEstimateReference, ppoLossOfLogp, ppoLossReference, ppoLossWithScales } from './reference/rl_loss.js';
import { type ActionMaskKind, Rng, cuSeqlensOf, f32AwayFromZero, f32PairWithDifference, randomActionMask, randomF32, randomLengths } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectF32Output, expectGradientMatchesFiniteDifferences, expectWithin, expectWithinScales, expectZeroWhereMasked, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

const ELEMENT_REL = 2e-6;
const SUM_REL = 2e-6;
const PARITY_REL = 1e-6;

const AGGREGATIONS: LossAggregation[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'];
const ESTIMATORS: KlEstimator[] = ['k1', 'k2', 'k3'];
const f32 = Math.fround;

interface PpoArrays {
  logp: Float32Array;
  oldLogp: Float32Array;
  advantages: Float32Array;
  cuSeqlens: Int32Array;
  actionMask?: Uint8Array;
  refLogp?: Float32Array;
  entropy?: Float32Array;
}
type PpoOptions = Omit<PpoLossReferenceInput, keyof PpoArrays>;

interface BatchSpec {
  lengths: number[];
  mask: ActionMaskKind;
  ref?: boolean;
  entropy?: boolean;
  /** About 2% of the log-ratios beyond ±20. */
  wild?: boolean;
  /** How many sequences get an all-zero mask (all-masked sequences among active ones). */
  maskedSeqs?: number;
}

/**
 * Random inputs: log-ratios uniform in [-2, 2) (ratios 0.14-7.4, so every clip branch and the dual clip at
 * c = 3 occur), 5% zero advantages, reference log-ratios in [-3, 3) (k3 up to ~17, past the default clamp).
 */
function ppoBatch(rng: Rng, spec: BatchSpec): PpoArrays {
  const cuSeqlens = cuSeqlensOf(spec.lengths);
  const n = cuSeqlens[spec.lengths.length];
  const oldLogp = randomF32(rng, n, -4, 0);
  const logp = new Float32Array(n), advantages = new Float32Array(n);
  for (let t = 0; t < n; t++) {
    const spread = spec.wild && rng.chance(0.02) ? (rng.chance(0.5) ? 1 : -1) * rng.uniform(19, 30) : rng.uniform(-2, 2);
    logp[t] = oldLogp[t] + spread;
    advantages[t] = rng.chance(0.05) ? 0 : rng.uniform(-2, 2);
  }
  const batch: PpoArrays = { logp, oldLogp, advantages, cuSeqlens };
  const actionMask = randomActionMask(rng, spec.mask, cuSeqlens);
  if (actionMask) {
    for (let i = 0; i < (spec.maskedSeqs ?? 0); i++) {
      const b = rng.int(0, spec.lengths.length - 1);
      actionMask.fill(0, cuSeqlens[b], cuSeqlens[b + 1]);
    }
    batch.actionMask = actionMask;
  }
  if (spec.ref) batch.refLogp = Float32Array.from(logp, (x) => x + rng.uniform(-3, 3));
  if (spec.entropy) batch.entropy = randomF32(rng, n, 0, 3);
  return batch;
}

interface PpoCase {
  name: string;
  seed: number;
  spec: Omit<BatchSpec, 'lengths'> & { lengths: number[] | { count: number; maxLen: number } };
  options: PpoOptions;
}

const cases: PpoCase[] = [];
let nextSeed = 7000;
const add = (name: string, spec: PpoCase['spec'], options: PpoOptions = {}) => cases.push({ name, seed: nextSeed++, spec, options });
const normalizerFor = (aggregation: LossAggregation) => (aggregation === 'seq-mean-token-sum-norm' ? { normalizer: 120 } : {});
const RAGGED = { count: 23, maxLen: 150 };

for (const mask of ['omitted', 'all-ones', 'interleaved', 'prompt-response-padding', 'all-masked'] as const)
  for (const aggregation of AGGREGATIONS)
    add(`mask ${mask}, ${aggregation}, kl + entropy`, { lengths: RAGGED, mask, ref: true, entropy: true, maskedSeqs: mask === 'omitted' ? 0 : 3 },
      { aggregation, ...normalizerFor(aggregation), klCoef: 0.05, entropyCoef: 0.01 });
for (const klEstimator of ESTIMATORS)
  for (const klClamp of [Infinity, 0.5, undefined])
    add(`kl ${klEstimator}, klClamp ${klClamp ?? 'default (10)'}, dual clip, clip-higher`,
      { lengths: RAGGED, mask: 'prompt-response-padding', ref: true },
      { klEstimator, klCoef: 0.2, ...(klClamp !== undefined ? { klClamp } : {}), dualClip: 3, clipLow: 0.2, clipHigh: 0.28, aggregation: 'seq-mean-token-mean' });
add('defaults only (no mask, ref or entropy)', { lengths: RAGGED, mask: 'omitted' });
add('a reported kl without a penalty (klCoef 0)', { lengths: RAGGED, mask: 'interleaved', ref: true }, { klEstimator: 'k2' });
add('entropy bonus only, dual clip', { lengths: RAGGED, mask: 'prompt-response', entropy: true }, { entropyCoef: 0.05, dualClip: 2.5 });
add('log-ratios beyond ±20, all estimators clamped', { lengths: RAGGED, mask: 'interleaved', ref: true, wild: true }, { klCoef: 0.1, klEstimator: 'k3', klClamp: Infinity });
add('one token', { lengths: [1], mask: 'omitted', ref: true, entropy: true }, { klCoef: 0.1, entropyCoef: 0.1 });
add('one token per sequence', { lengths: new Array(41).fill(1), mask: 'interleaved', ref: true }, { klCoef: 0.1, aggregation: 'seq-mean-token-mean' });
add('odd and prime lengths, one empty', { lengths: [3, 7, 0, 31, 1, 127, 8191], mask: 'prompt-response-padding', ref: true, entropy: true },
  { klCoef: 0.02, entropyCoef: 0.01, aggregation: 'seq-mean-token-sum' });
add('no sequences at all (B = 0, N = 0)', { lengths: [], mask: 'omitted', ref: true, entropy: true }, { klCoef: 0.1, entropyCoef: 0.1 });
add('only empty sequences', { lengths: [0, 0, 0], mask: 'interleaved' }, { aggregation: 'seq-mean-token-mean' });
add('large: 64 x 1024 plus 4099 and 1 (69,636 tokens), seq-mean-token-mean', { lengths: [...new Array(64).fill(1024), 4099, 0, 1],
  mask: 'prompt-response-padding', ref: true, entropy: true, maskedSeqs: 5 }, { klCoef: 0.05, entropyCoef: 0.01, dualClip: 3, aggregation: 'seq-mean-token-mean' });
add('large: one sequence of 70,001 tokens', { lengths: [70_001], mask: 'interleaved', ref: true }, { klCoef: 0.05, klEstimator: 'k1', aggregation: 'seq-mean-token-sum-norm', normalizer: 65_536 });

function prepare(c: PpoCase) {
  const rng = new Rng(c.seed);
  const lengths = Array.isArray(c.spec.lengths) ? c.spec.lengths : randomLengths(rng, c.spec.lengths.count, c.spec.lengths.maxLen);
  const arrays = ppoBatch(rng, { ...c.spec, lengths });
  return { arrays, want: ppoLossWithScales({ ...arrays, ...c.options }) };
}
type Want = ReturnType<typeof ppoLossWithScales>;
type Got = Awaited<ReturnType<typeof ppoLossAsync>>;

/** Every output of one call against the reference. */
function checkPpo(got: Got, want: Want, arrays: PpoArrays) {
  const { scales } = want;
  // A KL estimate within an ulp of klClamp may clamp on one side only; random data has next to none.
  expect(scales.ambiguousCount).toBeLessThanOrEqual(2);
  expectWithin(got.loss, want.loss, SUM_REL * scales.loss, 'loss');
  const dLogp = readBack(got.dLogp);
  expectWithinScales(dLogp, want.dLogp, ELEMENT_REL, scales.dLogp, scales.ambiguous);
  if (arrays.actionMask) expectZeroWhereMasked(dLogp, arrays.actionMask);
  if (arrays.entropy) {
    expectWithinScales(readBack(got.dEntropy!), want.dEntropy, ELEMENT_REL, want.dEntropy.map(Math.abs));
  } else {
    expect(got.dEntropy).toBeUndefined();
  }
  const s = got.stats, w = want.stats;
  expectWithin(s.pgLoss, w.pgLoss, SUM_REL * scales.pgLoss, 'pgLoss');
  // Clip decisions compare the same f32 numbers everywhere, and the counts are exact.
  expect(s.clipFrac, 'clipFrac').toBe(w.clipFrac);
  expect(s.clipFracLower, 'clipFracLower').toBe(w.clipFracLower);
  expectWithin(s.approxKl, w.approxKl, SUM_REL * scales.approxKl, 'approxKl');
  expectWithin(s.ratioMean, w.ratioMean, SUM_REL * scales.ratio, 'ratioMean');
  expectWithin(s.ratioMax, w.ratioMax, ELEMENT_REL * w.ratioMax, 'ratioMax');
  if (w.kl === null) expect(s.kl).toBeNull();
  else expectWithin(s.kl as number, w.kl, SUM_REL * scales.kl, 'kl');
  if (w.entropy === null) expect(s.entropy).toBeNull();
  else expectWithin(s.entropy as number, w.entropy, SUM_REL * scales.entropy, 'entropy');
  expect([s.actionTokens, s.activeSeqs]).toEqual([w.actionTokens, w.activeSeqs]);
  if (w.actionTokens > 0) expect(scales.loss, 'the case exercises the loss').toBeGreaterThan(0);
  else expect([got.loss, s.ratioMax, s.clipFrac, s.ratioMean]).toEqual([0, 0, 0, 0]);
}

describe.each(backendsUnderTest)('ppoLoss on $backend, Tensors on $device', ({ device }) => {
  it.each(cases)('$name', async (c) => {
    const { arrays, want } = prepare(c);
    const args = { ...recordOn(arrays, device), ...c.options };
    for (const got of [ppoLoss(args), await ppoLossAsync(args)]) {
      expectF32Output(got.dLogp, arrays.logp.length, device);
      if (arrays.entropy) expectF32Output(got.dEntropy, arrays.logp.length, device);
      checkPpo(got, want, arrays);
    }
  });
});

describe('ppoLoss on plain typed arrays (cpu)', () => {
  it.each(cases)('$name', async (c) => {
    const { arrays, want } = prepare(c);
    const expectInputsUnchanged = snapshotInputs(arrays);
    for (const got of [ppoLoss({ ...arrays, ...c.options }), await ppoLossAsync({ ...arrays, ...c.options })]) {
      expectF32Output(got.dLogp, arrays.logp.length, null);
      checkPpo(got, want, arrays);
    }
    expectInputsUnchanged();
  });
});

describe('the reference data covers every branch', () => {
  it('clipped high, clipped low, dual-clipped, unclipped, A = 0, KL clamped and unclamped all occur', () => {
    const c = cases.find((x) => x.name.startsWith('kl k3, klClamp 0.5'))!;
    const { arrays } = prepare(c);
    const { logp, oldLogp, advantages, refLogp } = arrays;
    const seen = new Set<string>();
    for (let t = 0; t < logp.length; t++) {
      if (!arrays.actionMask![t]) continue;
      const delta = f32(logp[t] - oldLogp[t]), a = advantages[t];
      if (a === 0) seen.add('zero advantage');
      else if (a > 0) seen.add(delta > f32(Math.log1p(f32(0.28))) ? 'clipped high' : 'unclipped');
      else seen.add(delta > f32(Math.log(3)) ? 'dual' : delta < f32(Math.log1p(-f32(0.2))) ? 'clipped low' : 'unclipped');
      seen.add(klEstimateReference('k3', f32(logp[t] - refLogp![t]), 0.5).grad === 0 ? 'kl clamped' : 'kl free');
    }
    expect([...seen].sort()).toEqual(['clipped high', 'clipped low', 'dual', 'kl clamped', 'kl free', 'unclipped', 'zero advantage']);
  });
});

describe.each(backendsUnderTest)('ppoLoss boundaries on $backend', ({ device }) => {
  const clipLow = 0.2, clipHigh = 0.28, dualClip = 3;
  // The kernels' thresholds: f64 logs of the f32 hyperparameters, rounded to f32 once (rl_loss.h).
  const logHi = f32(Math.log1p(f32(clipHigh))), logLo = f32(Math.log1p(-f32(clipLow))), logDual = f32(Math.log(f32(dualClip)));

  it('a ratio exactly on 1 - clipLow, 1 + clipHigh or c is not clipped; one ulp beyond is; A = 0 never is', () => {
    const rng = new Rng(31337);
    // [delta, advantage, clipped by the ordinary clip, dual-clipped]
    const tokens: [number, number, boolean, boolean][] = [
      [logHi, 1.5, false, false], [f32AwayFromZero(logHi), 1.5, true, false],
      [logLo, -1.25, false, false], [f32AwayFromZero(logLo), -1.25, true, false],
      [logDual, -0.75, false, false], [f32AwayFromZero(logDual), -0.75, false, true],
      // The other sign of advantage is never held on that side.
      [f32AwayFromZero(logHi), -1.5, false, false], [f32AwayFromZero(logLo), 1.25, false, false],
      [f32AwayFromZero(logHi), 0, false, false], [f32AwayFromZero(logLo), 0, false, false], [f32AwayFromZero(logDual), 0, false, false],
    ];
    const n = tokens.length;
    const logp = new Float32Array(n), oldLogp = new Float32Array(n);
    tokens.forEach(([delta], t) => ([oldLogp[t], logp[t]] = f32PairWithDifference(rng, delta)));
    const arrays = { logp, oldLogp, advantages: Float32Array.from(tokens, ([, a]) => a), cuSeqlens: Int32Array.from([0, 4, n]) };
    const options = { clipLow, clipHigh, dualClip, aggregation: 'seq-mean-token-mean' as const };
    const got = ppoLoss({ ...recordOn(arrays, device), ...options });
    const d = readBack(got.dLogp);
    const want = ppoLossWithScales({ ...arrays, ...options });
    tokens.forEach(([, a, clipped, dual], t) => {
      const held = clipped || dual;
      if (a === 0 || held) expect(d[t] === 0, `token ${t}: gradient ${d[t]} must be 0`).toBe(true);
      // Unclipped: the gradient is w * -A * r with r the ratio exactly on the bound.
      else expect(Math.abs(d[t] / want.dLogp[t] - 1), `token ${t}: unclipped gradient`).toBeLessThanOrEqual(ELEMENT_REL);
    });
    expect(got.stats.clipFrac).toBe(2 / n);
    expect(got.stats.clipFracLower).toBe(1 / n);
    expect([want.stats.clipFrac, want.stats.clipFracLower]).toEqual([2 / n, 1 / n]);
    checkPpo(got, want, arrays);
  });

  it('an advantage of 0 gives loss 0 and gradient 0 whatever the ratio, and is never clipped', () => {
    const rng = new Rng(8);
    const arrays = ppoBatch(rng, { lengths: [50, 1, 77], mask: 'omitted', wild: true });
    arrays.advantages.fill(0);
    for (const aggregation of AGGREGATIONS) {
      const got = ppoLoss({ ...recordOn(arrays, device), dualClip: 1.5, clipLow: 0.1, aggregation, ...normalizerFor(aggregation) });
      expect(got.loss === 0 && got.stats.pgLoss === 0, `loss ${got.loss}`).toBe(true);
      expect(readBack(got.dLogp).every((x) => x === 0)).toBe(true);
      expect([got.stats.clipFrac, got.stats.clipFracLower]).toEqual([0, 0]);
    }
  });

  it('log-ratios beyond ±20 are clamped (ratio e^±20) and pass no gradient; exactly ±20 passes it', () => {
    // [delta, advantage]: A < 0 above and A > 0 below are never clipped without dual clip.
    const tokens: [number, number][] = [[20, -1], [f32AwayFromZero(20), -1], [30, -1], [-20, 1], [f32AwayFromZero(-20), 1], [-30, 1], [19.5, -1]];
    const n = tokens.length, rng = new Rng(4);
    const logp = new Float32Array(n), oldLogp = new Float32Array(n);
    tokens.forEach(([delta], t) => ([oldLogp[t], logp[t]] = f32PairWithDifference(rng, f32(delta))));
    // The k3 penalty sees the same log-ratios against refLogp = oldLogp: its gradient gates the same way.
    const arrays = { logp, oldLogp, advantages: Float32Array.from(tokens, ([, a]) => a), cuSeqlens: Int32Array.from([0, n]), refLogp: oldLogp.slice() };
    const options = { klCoef: 0.01, klClamp: Infinity };
    const got = ppoLoss({ ...recordOn(arrays, device), ...options });
    const d = readBack(got.dLogp);
    const want = ppoLossWithScales({ ...arrays, ...options });
    tokens.forEach(([delta], t) => {
      const beyond = Math.abs(delta) > 20;
      expect(beyond ? d[t] === 0 : d[t] !== 0, `token ${t}, delta ${delta}: gradient ${d[t]}`).toBe(true);
    });
    expect(Number.isFinite(got.loss)).toBe(true);
    expectWithin(got.stats.ratioMax, Math.exp(20), ELEMENT_REL * Math.exp(20), 'ratioMax');
    checkPpo(got, want, arrays);
  });

  it('a k1 estimate exactly at ±klClamp is not clamped (gradient klCoef * w); one ulp beyond is (gradient 0)', () => {
    const klClamp = f32(0.375), rng = new Rng(5);
    const deltas = [klClamp, f32AwayFromZero(klClamp), -klClamp, f32AwayFromZero(-klClamp)];
    const refLogp = new Float32Array(4), logp = new Float32Array(4);
    deltas.forEach((delta, t) => ([refLogp[t], logp[t]] = f32PairWithDifference(rng, delta)));
    // Ratio 1 and A = 0: the gradient is the KL term's alone, klCoef * w * (1 or 0) = 0.5 * 0.25 exactly.
    const arrays = { logp, oldLogp: logp.slice(), advantages: new Float32Array(4), cuSeqlens: Int32Array.from([0, 4]), refLogp };
    const got = ppoLoss({ ...recordOn(arrays, device), klCoef: 0.5, klEstimator: 'k1', klClamp });
    expect(Array.from(readBack(got.dLogp), (x) => x + 0)).toEqual([0.125, 0, 0.125, 0]);
    expect(got.stats.kl === 0, `kl ${got.stats.kl}: +c, +c (clamped), -c, -c (clamped)`).toBe(true);
  });
});

describe.each(backendsUnderTest)('ppoLoss gradients vs finite differences of the reference on $backend', ({ device }) => {
  const variants: { name: string; options: PpoOptions }[] = [
    ...AGGREGATIONS.map((aggregation) => ({ name: aggregation, options: { aggregation, ...normalizerFor(aggregation), dualClip: 3 } })),
    ...ESTIMATORS.map((klEstimator) => ({ name: `kl ${klEstimator}, clamp 0.4`, options: { klCoef: 0.3, klEstimator, klClamp: 0.4, aggregation: 'seq-mean-token-mean' as const } })),
    { name: 'kl k3 unclamped, entropy bonus, beyond ±20', options: { klCoef: 0.3, klEstimator: 'k3', klClamp: Infinity, entropyCoef: 0.1 } },
  ];
  it.each(variants)('$name', ({ name, options }) => {
    const rng = new Rng(name.length * 131);
    const arrays = ppoBatch(rng, { lengths: [12, 1, 0, 29, 16], mask: 'prompt-response-padding', ref: true, entropy: true, wild: name.includes('20') });
    const input = { ...arrays, ...options };
    const want = ppoLossWithScales(input);
    const got = readBack(ppoLoss({ ...recordOn(arrays, device), ...options }).dLogp);
    const { checked, kinks } = expectGradientMatchesFiniteDifferences({
      lossAt: ppoLossOfLogp(input), x: arrays.logp, reference: want.dLogp, kernel: got, scale: want.scales.dLogp,
      lossScale: want.scales.loss, kernelRel: ELEMENT_REL, kinkBound: (t) => 1e-4 * want.scales.dLogp[t],
      // The analytic gradients are taken at the f32-rounded log-ratio, half an ulp of it away from x.
      slack: (t) => 2 ** -24 * Math.abs(arrays.logp[t] - arrays.oldLogp[t]) * want.scales.dLogp[t],
    });
    expect(kinks).toBeLessThanOrEqual(1);
    expect(checked).toBeGreaterThan(30);
    // The loss is linear in the entropy: dEntropy by finite differences too.
    if (options.entropyCoef) {
      const e = Float64Array.from(arrays.entropy!);
      for (let t = 0; t < e.length; t++) {
        const at = (step: number) => { const y = e.slice(); y[t] += step; return ppoLossReference({ ...input, entropy: y }).loss; };
        expectWithin(want.dEntropy[t], (at(1e-3) - at(-1e-3)) / 2e-3, 1e-12 * want.scales.loss / 1e-3, `dEntropy ${t}`);
      }
    }
  });
});

describe.each(backendsUnderTest)('ppoLoss and the trainer bugs of anchors.md on $backend', ({ device }) => {
  const options = { klCoef: 0.1, klEstimator: 'k2' as const, entropyCoef: 0.02, dualClip: 3, aggregation: 'seq-mean-token-mean' as const };

  it('padding is never counted: garbage on non-action tokens changes nothing and gets gradient 0', () => {
    const arrays = ppoBatch(new Rng(9), { lengths: [40, 25, 0, 31, 1], mask: 'prompt-response-padding', ref: true, entropy: true, maskedSeqs: 1 });
    const base = ppoLoss({ ...recordOn(arrays, device), ...options });
    const garbage = [Number.NaN, Infinity, -Infinity, 1e30, -1e30];
    const noisy: PpoArrays = { ...arrays };
    for (const key of ['logp', 'oldLogp', 'advantages', 'refLogp', 'entropy'] as const) {
      const copy = arrays[key]!.slice();
      copy.forEach((_, t) => { if (!arrays.actionMask![t]) copy[t] = garbage[(t + key.length) % garbage.length]; });
      noisy[key] = copy;
    }
    const got = ppoLoss({ ...recordOn(noisy, device), ...options });
    expect(got.loss).toBe(base.loss);
    expect(got.stats).toEqual(base.stats);
    expectBitwiseEqual(readBack(got.dLogp), readBack(base.dLogp));
    expectBitwiseEqual(readBack(got.dEntropy!), readBack(base.dEntropy!));
    expectZeroWhereMasked(readBack(got.dLogp), arrays.actionMask!);
  });

  it('appending padding tokens (mask 0, garbage values) to every sequence changes nothing', () => {
    const lengths = [17, 3, 0, 60, 1];
    const arrays = ppoBatch(new Rng(10), { lengths, mask: 'prompt-response', ref: true, entropy: true });
    const pads = [5, 0, 2, 4097, 1];
    const padded: PpoArrays = { ...arrays, cuSeqlens: cuSeqlensOf(lengths.map((l, b) => l + pads[b])) };
    const n = padded.cuSeqlens[lengths.length];
    const where: number[] = [];  // padded position of each original token
    for (let b = 0; b < lengths.length; b++) for (let i = 0; i < lengths[b]; i++) where.push(padded.cuSeqlens[b] + i);
    for (const key of ['logp', 'oldLogp', 'advantages', 'refLogp', 'entropy'] as const) {
      const out = new Float32Array(n).fill(key === 'advantages' ? -1e30 : Number.NaN);
      where.forEach((p, t) => (out[p] = arrays[key]![t]));
      padded[key] = out;
    }
    padded.actionMask = new Uint8Array(n);
    where.forEach((p, t) => (padded.actionMask![p] = arrays.actionMask![t]));
    const base = ppoLoss({ ...recordOn(arrays, device), ...options });
    const got = ppoLoss({ ...recordOn(padded, device), ...options });
    const want = ppoLossWithScales({ ...arrays, ...options });
    // Sums may be grouped differently (the tokens moved); per-token values are computed identically.
    expectWithin(got.loss, base.loss, 2 * SUM_REL * want.scales.loss, 'loss');
    expect([got.stats.actionTokens, got.stats.activeSeqs, got.stats.clipFrac, got.stats.clipFracLower])
      .toEqual([base.stats.actionTokens, base.stats.activeSeqs, base.stats.clipFrac, base.stats.clipFracLower]);
    expectWithin(got.stats.kl as number, base.stats.kl as number, 2 * SUM_REL * want.scales.kl, 'kl');
    expectWithin(got.stats.ratioMax, base.stats.ratioMax, 0, 'ratioMax');
    const d = readBack(got.dLogp), dBase = readBack(base.dLogp);
    expectBitwiseEqual(Float32Array.from(where, (p) => d[p]), dBase as Float32Array);
    expectZeroWhereMasked(d, padded.actionMask);
    expectZeroWhereMasked(readBack(got.dEntropy!), padded.actionMask);
  });

  it.each(ESTIMATORS.flatMap((e) => [{ e, clamp: Infinity }, { e, clamp: 0.3 }]))(
    'the reported kl is the penalty estimator $e with clamp $clamp, and the loss charges klCoef times its aggregate',
    ({ e, clamp }) => {
      const arrays = ppoBatch(new Rng(31), { lengths: [64, 9, 33, 1], mask: 'prompt-response-padding', ref: true });
      const base = { klEstimator: e, klClamp: clamp, aggregation: 'seq-mean-token-sum' as const };
      const withKl = ppoLoss({ ...recordOn(arrays, device), ...base, klCoef: 0.5 });
      const without = ppoLoss({ ...recordOn(arrays, device), ...base, klCoef: 0 });
      const want = ppoLossWithScales({ ...arrays, ...base, klCoef: 0.5 });
      expectWithin(withKl.stats.kl as number, want.stats.kl as number, SUM_REL * want.scales.kl, 'kl');
      expect(withKl.stats.kl, 'kl does not depend on klCoef').toBe(without.stats.kl);
      // Not another estimator's or clamp's mean in disguise.
      for (const other of ESTIMATORS.flatMap((o) => [{ o, c: Infinity }, { o, c: 0.3 }]).filter(({ o, c }) => o !== e || c !== clamp)) {
        const theirs = ppoLossReference({ ...arrays, klEstimator: other.o, klClamp: other.c }).stats.kl as number;
        expect(Math.abs((withKl.stats.kl as number) - theirs), `${other.o} clamp ${other.c}`).toBeGreaterThan(1e-3 * Math.abs(theirs));
      }
      // The KL part of the loss: klCoef times the aggregated estimate (the same aggregation as the loss).
      const zero = ppoLossReference({ ...arrays, ...base, klCoef: 0 });
      const aggregatedKl = (want.loss - zero.loss) / 0.5;
      expectWithin(withKl.loss - without.loss, 0.5 * aggregatedKl, 2 * SUM_REL * want.scales.loss, 'KL share of the loss');
      // token-mean: the aggregate is the reported mean itself.
      const tokenMean = { ...base, aggregation: 'token-mean' as const };
      const share = ppoLoss({ ...recordOn(arrays, device), ...tokenMean, klCoef: 0.5 }).loss - ppoLoss({ ...recordOn(arrays, device), ...tokenMean }).loss;
      expectWithin(share, 0.5 * (withKl.stats.kl as number), 2 * SUM_REL * want.scales.loss, 'token-mean KL share');
    });

  it('any nonzero mask byte marks an action, exactly like 1', () => {
    const arrays = ppoBatch(new Rng(13), { lengths: [20, 0, 13], mask: 'interleaved', ref: true, entropy: true });
    const bytes = arrays.actionMask!.map((m, t) => (m ? [1, 2, 127, 128, 255][t % 5] : 0));
    const ones = ppoLoss({ ...recordOn(arrays, device), ...options });
    const got = ppoLoss({ ...recordOn({ ...arrays, actionMask: bytes }, device), ...options });
    expect([got.loss, got.stats]).toEqual([ones.loss, ones.stats]);
    expectBitwiseEqual(readBack(got.dLogp), readBack(ones.dLogp));
  });

  it('an all-masked batch gives 0, zero gradients and zero (not null) kl and entropy stats', () => {
    const arrays = ppoBatch(new Rng(3), { lengths: [5, 3, 0, 1], mask: 'all-masked', ref: true, entropy: true });
    for (const aggregation of AGGREGATIONS) {
      const got = ppoLoss({ ...recordOn(arrays, device), klCoef: 0.1, entropyCoef: 0.1, aggregation, ...normalizerFor(aggregation) });
      expect([got.loss, got.stats.kl, got.stats.entropy, got.stats.ratioMax, got.stats.actionTokens, got.stats.activeSeqs]).toEqual([0, 0, 0, 0, 0, 0]);
      expect(readBack(got.dLogp).every((x) => x === 0) && readBack(got.dEntropy!).every((x) => x === 0)).toBe(true);
    }
  });
});

describe.each(backendsUnderTest)('ppoLoss determinism and out buffers on $backend', ({ device }) => {
  it('is bitwise reproducible run to run, sync and async, in every aggregation', async () => {
    const arrays = ppoBatch(new Rng(55), { lengths: randomLengths(new Rng(56), 40, 3000), mask: 'prompt-response-padding', ref: true, entropy: true });
    const args = recordOn(arrays, device);
    for (const aggregation of AGGREGATIONS) {
      const options = { klCoef: 0.1, entropyCoef: 0.01, dualClip: 2, aggregation, ...normalizerFor(aggregation) };
      const first = ppoLoss({ ...args, ...options });
      for (const again of [ppoLoss({ ...args, ...options }), await ppoLossAsync({ ...args, ...options })]) {
        expect(again.loss).toBe(first.loss);
        expect(again.stats).toEqual(first.stats);
        expectBitwiseEqual(readBack(again.dLogp), readBack(first.dLogp));
        expectBitwiseEqual(readBack(again.dEntropy!), readBack(first.dEntropy!));
      }
    }
  });

  it('writes into caller buffers (overwriting stale values, zeros on masked tokens) and returns them', async () => {
    const arrays = ppoBatch(new Rng(12), { lengths: [30, 0, 9], mask: 'interleaved', ref: true, entropy: true });
    const n = arrays.logp.length;
    const options = { klCoef: 0.1, entropyCoef: 0.05 };
    const fresh = ppoLoss({ ...recordOn(arrays, device), ...options });
    const out = { dLogp: tensorOn(new Float32Array(n).fill(Number.NaN), device), dEntropy: tensorOn(new Float32Array(n).fill(7), device) };
    const got = await ppoLossAsync({ ...recordOn(arrays, device), ...options, out });
    expect(got.dLogp).toBe(out.dLogp);
    expect(got.dEntropy).toBe(out.dEntropy);
    expectBitwiseEqual(readBack(out.dLogp), readBack(fresh.dLogp));
    expectBitwiseEqual(readBack(out.dEntropy), readBack(fresh.dEntropy!));
    const typed = { dLogp: new Float32Array(n).fill(Number.NaN) };
    const viaArrays = ppoLoss({ ...arrays, ...options, out: typed });
    expect(viaArrays.dLogp).toBe(typed.dLogp);
    expectZeroWhereMasked(typed.dLogp, arrays.actionMask!);
    expect(viaArrays.dEntropy).toBeInstanceOf(Float32Array);
  });
});

const others = backendsUnderTest.filter(({ backend }) => backend !== 'cpu');

describe.each(others)('ppoLoss: $backend matches cpu', ({ device }) => {
  const shapes: { name: string; lengths: (rng: Rng) => number[]; mask: ActionMaskKind }[] = [
    { name: 'many short sequences', lengths: (rng) => randomLengths(rng, 300, 64), mask: 'prompt-response-padding' },
    { name: 'few long sequences', lengths: () => [4000, 17, 8192, 0, 2500], mask: 'interleaved' },
    { name: 'one very long sequence among short ones', lengths: () => [3, 60_001, 0, 129, 4097], mask: 'prompt-response' },
    { name: 'one token per sequence, no mask', lengths: () => new Array(257).fill(1), mask: 'omitted' },
  ];
  it.each(shapes.flatMap((shape) => AGGREGATIONS.map((aggregation) => ({ ...shape, aggregation }))))('$name, $aggregation', ({ lengths, mask, aggregation }) => {
    const rng = new Rng(4242);
    const arrays = ppoBatch(rng, { lengths: lengths(rng), mask, ref: true, entropy: true, wild: true });
    const options = { klCoef: 0.05, entropyCoef: 0.01, dualClip: 3, clipHigh: 0.28, aggregation, ...normalizerFor(aggregation) };
    const want = ppoLossWithScales({ ...arrays, ...options });
    const cpu = ppoLoss({ ...recordOn(arrays, 'cpu'), ...options });
    const got = ppoLoss({ ...recordOn(arrays, device), ...options });
    expectWithin(got.loss, cpu.loss, SUM_REL * want.scales.loss, 'loss');
    expectWithinScales(readBack(got.dLogp), readBack(cpu.dLogp), PARITY_REL, want.scales.dLogp, want.scales.ambiguous);
    expectBitwiseEqual(readBack(got.dEntropy!), readBack(cpu.dEntropy!));
    const same = (s: Got['stats']) => [s.clipFrac, s.clipFracLower, s.actionTokens, s.activeSeqs];
    expect(same(got.stats)).toEqual(same(cpu.stats));
    expectWithin(got.stats.ratioMax, cpu.stats.ratioMax, PARITY_REL * cpu.stats.ratioMax, 'ratioMax');
    expectWithin(got.stats.kl as number, cpu.stats.kl as number, SUM_REL * want.scales.kl, 'kl');
  });
});
