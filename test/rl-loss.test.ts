// ppoLoss and valueLoss against the float64 reference (test/reference/rl_loss.ts) on every backend,
// through Tensors and typed arrays, sync and Promise: values, gradients (also against finite differences
// of the reference), stats, clip boundaries, and the trainer bugs of notes/anchors.md.
import { afterEach, describe, expect, it } from 'vitest';
import { ppoLoss, ppoLossAsync, valueLoss, valueLossAsync } from '../lib/index.js';
import type { LossAggregation, KlEstimator } from '../lib/ops/rl-loss.js';
import { ppoLossReference, valueLossReference, type PpoLossReferenceInput } from './reference/rl_loss.js';
import { Rng, cuSeqlensOf, randomF32, randomLengths } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, maxAbs } from './helpers/assert.js';

afterEach(disposeTensors);

const AGGREGATIONS: LossAggregation[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'];
const ESTIMATORS: KlEstimator[] = ['k1', 'k2', 'k3'];

/** A packed batch: each sequence a prompt (mask 0), a response (1) and trailing padding (0). */
function randomBatch(rng: Rng, lengths: number[]) {
  const cuSeqlens = cuSeqlensOf(lengths);
  const n = cuSeqlens[lengths.length];
  const actionMask = new Uint8Array(n);
  for (let b = 0; b < lengths.length; b++) {
    const start = cuSeqlens[b], len = lengths[b];
    const prompt = rng.int(0, Math.floor(len / 2)), pad = rng.int(0, Math.floor((len - prompt) / 3));
    actionMask.fill(1, start + prompt, start + len - pad);
  }
  return {
    logp: randomF32(rng, n, -4, 0), oldLogp: randomF32(rng, n, -4, 0), advantages: randomF32(rng, n, -2, 2),
    refLogp: randomF32(rng, n, -4, 0), entropy: randomF32(rng, n, 0, 3), cuSeqlens, actionMask,
    values: randomF32(rng, n, -1, 1), oldValues: randomF32(rng, n, -1, 1), returns: randomF32(rng, n, -1, 1),
  };
}

// The CPU exp is a polynomial (within 2 ulp) and f32 throughout; the loss is an f64 sum of f32 terms.
const GRAD_TOL = { rel: 2e-5 };
function expectScalarClose(got: number | null, want: number | null, what: string, rel = 2e-5) {
  if (want === null) return expect(got, what).toBeNull();
  expect(Math.abs((got as number) - want), `${what}: got ${got}, reference ${want}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(want)));
}

function ppoInput(rng: Rng, lengths: number[], options: Partial<PpoLossReferenceInput>, withRef: boolean, withEntropy: boolean) {
  const batch = randomBatch(rng, lengths);
  return {
    logp: batch.logp, oldLogp: batch.oldLogp, advantages: batch.advantages, cuSeqlens: batch.cuSeqlens,
    actionMask: batch.actionMask, ...(withRef ? { refLogp: batch.refLogp } : {}),
    ...(withEntropy ? { entropy: batch.entropy } : {}), ...options,
  };
}

describe.each(backendsUnderTest)('ppoLoss on $backend', ({ device }) => {
  const cases: { name: string; lengths: number[]; options: Partial<PpoLossReferenceInput>; ref: boolean; ent: boolean }[] = [];
  const rng = new Rng(101);
  for (const aggregation of AGGREGATIONS)
    cases.push({ name: `${aggregation}, ragged`, lengths: [...randomLengths(rng, 13, 90), 0, 1, 200],
      options: { aggregation, ...(aggregation === 'seq-mean-token-sum-norm' ? { normalizer: 150 } : {}) }, ref: false, ent: false });
  for (const klEstimator of ESTIMATORS)
    cases.push({ name: `kl ${klEstimator}, entropy, dual clip, clip-higher`, lengths: randomLengths(rng, 9, 130),
      options: { klEstimator, klCoef: 0.1, entropyCoef: 0.01, dualClip: 3, clipLow: 0.2, clipHigh: 0.28, klClamp: 0.5 }, ref: true, ent: true });
  cases.push({ name: 'one token', lengths: [1], options: {}, ref: true, ent: false });
  cases.push({ name: 'large (70k tokens, prime count)', lengths: [...randomLengths(rng, 67, 2000), 4099], options: { klCoef: 0.05 }, ref: true, ent: false });

  it.each(cases)('$name matches the reference', async ({ lengths, options, ref, ent }) => {
    const input = ppoInput(new Rng(lengths.length * 7 + 3), lengths, options, ref, ent);
    const want = ppoLossReference(input);
    expect(want.stats.actionTokens).toBeGreaterThan(0);
    for (const form of ['sync', 'async'] as const) {
      const onDevice = recordOn(input, device);
      const got = form === 'sync' ? ppoLoss(onDevice) : await ppoLossAsync(onDevice);
      expectScalarClose(got.loss, want.loss, 'loss');
      expectClose(readBack(got.dLogp), want.dLogp, { ...GRAD_TOL, scale: maxAbs(want.dLogp) });
      if (ent) expectClose(readBack(got.dEntropy!), want.dEntropy, { rel: 1e-6, scale: maxAbs(want.dEntropy) });
      else expect(got.dEntropy).toBeUndefined();
      for (const key of ['pgLoss', 'clipFrac', 'clipFracLower', 'approxKl', 'ratioMean', 'ratioMax', 'kl', 'entropy'] as const)
        expectScalarClose(got.stats[key], want.stats[key], key);
      expect(got.stats.actionTokens).toBe(want.stats.actionTokens);
      expect(got.stats.activeSeqs).toBe(want.stats.activeSeqs);
    }
  });

  it('typed arrays in, typed arrays out, same result as Tensors', () => {
    const input = ppoInput(new Rng(5), [17, 33, 4], { klCoef: 0.02 }, true, false);
    const viaArrays = ppoLoss(input);
    expect(viaArrays.dLogp).toBeInstanceOf(Float32Array);
    const viaTensors = ppoLoss(recordOn(input, device));
    // Typed arrays always run on the CPU; Tensors run on `device`, whose exp differs by a few ulp.
    if (device === 'cpu') expectBitwiseEqual(readBack(viaTensors.dLogp), viaArrays.dLogp as Float32Array);
    else expectClose(readBack(viaTensors.dLogp), viaArrays.dLogp as Float32Array, { ...GRAD_TOL, scale: maxAbs(viaArrays.dLogp as Float32Array) });
  });

  it('gradients match central finite differences of the reference', () => {
    const input = ppoInput(new Rng(77), [12, 9, 15], { klCoef: 0.3, klEstimator: 'k3', klClamp: Infinity, aggregation: 'seq-mean-token-mean' }, true, false);
    const got = readBack(ppoLoss(recordOn(input, device)).dLogp);
    const logp = Float64Array.from(input.logp);
    const lossAt = (x: Float64Array) => ppoLossReference({ ...input, logp: x }).loss;
    let checked = 0;
    for (let t = 0; t < logp.length; t++) {
      if (!input.actionMask[t]) continue;
      // The reference rounds logp - oldLogp to f32 (as the kernels do), so the step must dwarf an f32 ulp.
      const h = 1e-3, up = logp.slice(), down = logp.slice();
      up[t] += h;
      down[t] -= h;
      // Skip tokens whose clip decision flips inside the step (the loss is not differentiable there).
      const r = Math.exp(input.logp[t] - input.oldLogp[t]);
      if (Math.abs(r - 0.8) < 3e-3 || Math.abs(r - 1.2) < 3e-3) continue;
      const fd = (lossAt(up) - lossAt(down)) / (2 * h);
      expect(Math.abs(got[t] - fd), `token ${t}: kernel ${got[t]}, finite difference ${fd}`).toBeLessThanOrEqual(3e-3 * Math.abs(fd) + 1e-6);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('a ratio exactly on 1 - clipLow, 1 + clipHigh or c is not clipped; one ulp beyond is', () => {
    const clipLow = 0.2, clipHigh = 0.28, dualClip = 3;
    const onBound = [Math.log1p(clipHigh), Math.log1p(-clipLow), Math.log(dualClip)].map(Math.fround);
    // One ulp farther from zero, which is past each bound (the lower bound's log is negative).
    const next = (x: number) => { const a = new Float32Array([x]); new Int32Array(a.buffer)[0] += 1; return a[0]; };
    // old = 0, so delta = logp exactly. Advantages: + for the upper bound, - for the lower and dual bounds.
    const logp = Float32Array.from([onBound[0], onBound[1], onBound[2], next(onBound[0]), next(onBound[1]), next(onBound[2]), 0.3]);
    const advantages = Float32Array.from([1.5, -1.5, -1.5, 1.5, -1.5, -1.5, 0]);
    const input = { logp, oldLogp: new Float32Array(7), advantages, cuSeqlens: Int32Array.from([0, 7]), clipLow, clipHigh, dualClip };
    const got = ppoLoss(recordOn(input, device));
    const d = readBack(got.dLogp);
    for (let t = 0; t < 3; t++) expect(d[t], `token ${t} on its bound passes the unclipped gradient`).not.toBe(0);
    // Math.abs: a zero gradient may be -0 (-A * r with A = 0), which is still zero.
    for (let t = 3; t < 6; t++) expect(Math.abs(d[t]), `token ${t} past its bound is clipped`).toBe(0);
    expect(Math.abs(d[6]), 'advantage 0 gives gradient 0').toBe(0);
    expect(got.stats.clipFrac).toBeCloseTo(2 / 7, 12);      // tokens 3 and 4
    expect(got.stats.clipFracLower).toBeCloseTo(1 / 7, 12); // token 5
    const want = ppoLossReference(input);
    expectClose(d, want.dLogp, { rel: 2e-5 });
    expectScalarClose(got.loss, want.loss, 'loss');
  });

  it('log-ratios beyond +-20 are clamped and pass no gradient', () => {
    const input = { logp: Float32Array.from([30, -30, 19.5]), oldLogp: new Float32Array(3), advantages: Float32Array.from([-1, 1, -1]),
      cuSeqlens: Int32Array.from([0, 3]), dualClip: 1e9 };
    const got = ppoLoss(recordOn(input, device));
    const d = readBack(got.dLogp);
    expect([Math.abs(d[0]), Math.abs(d[1])]).toEqual([0, 0]);
    expect(d[2]).not.toBe(0);
    expect(Number.isFinite(got.loss)).toBe(true);
    expectScalarClose(got.stats.ratioMax, Math.exp(20), 'ratioMax', 1e-5);
  });

  it('padding is never counted: garbage on non-action tokens changes nothing and gets gradient 0', () => {
    const input = ppoInput(new Rng(9), [40, 25, 31], { klCoef: 0.1, entropyCoef: 0.02, klEstimator: 'k2' }, true, true);
    const base = ppoLoss(recordOn(input, device));
    const noisy = { ...input, logp: input.logp.slice(), oldLogp: input.oldLogp.slice(), advantages: input.advantages.slice(),
      refLogp: input.refLogp!.slice(), entropy: input.entropy!.slice() };
    for (let t = 0; t < input.logp.length; t++) {
      if (input.actionMask[t]) continue;
      noisy.logp[t] = 1e30; noisy.oldLogp[t] = Number.NaN; noisy.advantages[t] = -1e30; noisy.refLogp[t] = Number.NaN; noisy.entropy[t] = Infinity;
    }
    const got = ppoLoss(recordOn(noisy, device));
    expect(got.loss).toBe(base.loss);
    expect(got.stats).toEqual(base.stats);
    const d = readBack(got.dLogp), de = readBack(got.dEntropy!);
    for (let t = 0; t < d.length; t++) if (!input.actionMask[t]) { expect(Math.abs(d[t])).toBe(0); expect(Math.abs(de[t])).toBe(0); }
  });

  it.each(ESTIMATORS)('the reported kl uses the penalty estimator %s (and its clamp), and the loss charges klCoef times it', (klEstimator) => {
    const input = ppoInput(new Rng(31), [64, 64], { klEstimator, klClamp: 0.7 }, true, false);
    const withKl = ppoLoss(recordOn({ ...input, klCoef: 0.5 }, device));
    const without = ppoLoss(recordOn({ ...input, klCoef: 0 }, device));
    expectScalarClose(withKl.stats.kl, ppoLossReference({ ...input, klCoef: 0.5 }).stats.kl, 'kl');
    expectScalarClose(withKl.stats.kl, without.stats.kl, 'kl does not depend on klCoef', 1e-12);
    // token-mean: the KL part of the loss is exactly klCoef times the mean estimate.
    expectScalarClose(withKl.loss - without.loss, 0.5 * (without.stats.kl as number), 'kl share of the loss', 1e-5);
  });

  it('all-masked and empty batches give 0 and zero gradients', () => {
    for (const lengths of [[5, 3], []]) {
      const cuSeqlens = cuSeqlensOf(lengths), n = cuSeqlens[lengths.length];
      const rng = new Rng(3);
      const got = ppoLoss(recordOn({ logp: randomF32(rng, n), oldLogp: randomF32(rng, n), advantages: randomF32(rng, n),
        cuSeqlens, actionMask: new Uint8Array(n), aggregation: 'seq-mean-token-mean' as const }, device));
      expect(got.loss).toBe(0);
      expect(Array.from(readBack(got.dLogp))).toEqual(new Array(n).fill(0));
      expect(got.stats.actionTokens).toBe(0);
      expect(got.stats.ratioMax).toBe(0);
    }
  });

  it('is bitwise reproducible run to run', () => {
    const input = recordOn(ppoInput(new Rng(55), randomLengths(new Rng(56), 40, 3000), { klCoef: 0.1, aggregation: 'seq-mean-token-mean' }, true, true), device);
    const first = ppoLoss(input), second = ppoLoss(input);
    expect(second.loss).toBe(first.loss);
    expect(second.stats).toEqual(first.stats);
    expectBitwiseEqual(readBack(second.dLogp), readBack(first.dLogp));
  });
});

describe.each(backendsUnderTest)('valueLoss on $backend', ({ device }) => {
  const rng = new Rng(202);
  const cases = [
    ...AGGREGATIONS.map((aggregation) => ({ name: aggregation, lengths: [...randomLengths(rng, 11, 80), 0, 1],
      options: { aggregation, clipRange: 0.1, ...(aggregation === 'seq-mean-token-sum-norm' ? { normalizer: 64 } : {}) } })),
    { name: 'unclipped (Infinity)', lengths: [50, 70], options: { clipRange: Infinity } },
    { name: 'large', lengths: randomLengths(rng, 40, 4000), options: { clipRange: 0.2 } },
  ];
  it.each(cases)('$name matches the reference', async ({ lengths, options }) => {
    const batch = randomBatch(new Rng(lengths.length), lengths);
    const input = { values: batch.values, oldValues: batch.oldValues, returns: batch.returns, actionMask: batch.actionMask,
      cuSeqlens: batch.cuSeqlens, ...options };
    const want = valueLossReference(input);
    for (const got of [valueLoss(recordOn(input, device)), await valueLossAsync(recordOn(input, device))]) {
      expectScalarClose(got.loss, want.loss, 'loss');
      expectClose(readBack(got.dValues), want.dValues, { rel: 1e-5, scale: maxAbs(want.dValues) });
      expectScalarClose(got.stats.clipFrac, want.stats.clipFrac, 'clipFrac', 1e-12);
      expect(got.stats.actionTokens).toBe(want.stats.actionTokens);
    }
    if (options.clipRange === Infinity) expect(want.stats.clipFrac).toBe(0);
    else expect(want.stats.clipFrac).toBeGreaterThan(0);
  });

  it('without cuSeqlens the batch is one sequence; |v - old| exactly at clipRange is not clipped', () => {
    const clipRange = 0.25;
    const input = { values: Float32Array.from([0.25, -0.25, 0.5, 0.3]), oldValues: new Float32Array(4),
      returns: Float32Array.from([1, -1, 1, 0.3]), clipRange, aggregation: 'seq-mean-token-sum' as const };
    const got = valueLoss(recordOn(input, device));
    const d = readBack(got.dValues);
    expect([d[0], d[1]]).toEqual([(0.25 - 1) / 1, (-0.25 + 1) / 1]);
    expect(d[2]).toBe(0);  // 0.5 clips to 0.25, which is farther from the return 1: the clipped term wins
    const want = valueLossReference(input);
    expectClose(d, want.dValues, { rel: 1e-6 });
    expectScalarClose(got.loss, want.loss, 'loss');
  });

  it('the value gradient matches finite differences of the reference', () => {
    const batch = randomBatch(new Rng(8), [20, 30]);
    const input = { values: batch.values, oldValues: batch.oldValues, returns: batch.returns, actionMask: batch.actionMask, clipRange: 0.3 };
    const got = readBack(valueLoss(recordOn(input, device)).dValues);
    const values = Float64Array.from(input.values);
    for (let t = 0; t < values.length; t++) {
      if (!input.actionMask[t] || Math.abs(Math.abs(input.values[t] - input.oldValues[t]) - 0.3) < 3e-3) continue;
      const h = 1e-3, up = values.slice(), down = values.slice();  // f32-rounded clip decision: see ppoLoss
      up[t] += h;
      down[t] -= h;
      const fd = (valueLossReference({ ...input, values: up }).loss - valueLossReference({ ...input, values: down }).loss) / (2 * h);
      expect(Math.abs(got[t] - fd), `token ${t}`).toBeLessThanOrEqual(3e-3 * Math.abs(fd) + 1e-6);
    }
  });
});
