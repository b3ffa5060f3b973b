// The optimizer kernels against their float64 references (test/reference/optimizer.ts) on every backend,
// through typed arrays and Tensors, sync and Promise: one AdamW step at t = 1, 2 and 10,000 (bias
// corrections from ~0.1 to 1), with and without weight decay, beta1 = 0; the global norm, with and without
// clipping, at sizes 1, odd, and several norm chunks (100,003 elements), and a non-finite gradient.
//
// Tolerances, relative to each output's error scale (the magnitudes an f32 kernel rounds):
// - m, v: two products and a sum in f32, with 1 - beta rounded once: |beta m| + |(1 - beta) g| (or g^2)
//   times 2^-21 (8 ulp; each of the ~4 roundings is 2^-24 of the scale).
// - params: p (1 - lr wd) minus the update u = (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps); u carries m's
//   error relative to m's scale plus ~6 roundings: |p| + (lr / bc1) scale(m) / denominator, times 2^-20.
// - norm: squares of f32 values are exact in f64, the sum of n terms rounds by n 2^-53: 1e-10 relative.
// A wrong formula (a missing bias correction, coupled decay) moves an output by O(lr) or more.
import { afterEach, describe, expect, it } from 'vitest';
import { adamw, adamwAsync, clipGradNorm, clipGradNormAsync } from '../lib/index.js';
import { type AdamwProblem, adamwReference, gradNormReference } from './reference/optimizer.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, tensorOn } from './helpers/backends.js';
import { expectClose, expectNonTrivial, expectWithin, expectWithinScales } from './helpers/assert.js';

afterEach(disposeTensors);

interface AdamwSpec { name: string; n: number; step: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }
const adamwSpecs: AdamwSpec[] = [
  { name: 'n = 1, step 1', n: 1, step: 1, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
  { name: 'n = 1,001, step 2, no weight decay', n: 1001, step: 2, lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 },
  { name: 'n = 100,003, step 10,000, strong decay', n: 100_003, step: 10_000, lr: 1e-2, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.5 },
  { name: 'beta1 = 0 (RMSProp-like), large eps', n: 257, step: 7, lr: 0.1, beta1: 0, beta2: 0.9, eps: 0.5, weightDecay: 0.1 },
];

function adamwProblem(spec: AdamwSpec, seed: number): AdamwProblem {
  const rng = new Rng(seed);
  const { n } = spec;
  return {
    ...spec, params: randomF32(rng, n, -2, 2), grads: randomF32(rng, n, -1, 1), m: randomF32(rng, n, -0.1, 0.1),
    v: randomF32(rng, n, 0, 0.01),
  };
}

function checkAdamw(p: AdamwProblem, got: { params: Float32Array; m: Float32Array; v: Float32Array }): void {
  const ref = adamwReference(p);
  expectNonTrivial(ref.params);
  const b1 = Math.fround(p.beta1), b2 = Math.fround(p.beta2);
  const mScale = Float64Array.from(p.m, (m, i) => Math.abs(b1 * m) + Math.abs((1 - b1) * p.grads[i]));
  const vScale = Float64Array.from(p.v, (v, i) => Math.abs(b2 * v) + Math.abs((1 - b2) * p.grads[i] ** 2));
  const bc1 = 1 - b1 ** p.step, bc2 = 1 - b2 ** p.step;
  const pScale = Float64Array.from(p.params, (x, i) =>
    Math.abs(x) + (p.lr / bc1) * mScale[i] / (Math.sqrt(ref.v[i]) / Math.sqrt(bc2) + Math.fround(p.eps)));
  expectWithinScales(got.m, ref.m, 2 ** -21, mScale);
  expectWithinScales(got.v, ref.v, 2 ** -21, vScale);
  expectWithinScales(got.params, ref.params, 2 ** -20, pScale);
}

describe.each(backendsUnderTest)('adamw on $backend', ({ device }) => {
  it.each(adamwSpecs)('$name: Tensors, sync; updates in place', (spec) => {
    const p = adamwProblem(spec, spec.n + spec.step);
    const on = { params: tensorOn(p.params, device), grads: tensorOn(p.grads, device), m: tensorOn(p.m, device), v: tensorOn(p.v, device) };
    const out = adamw({ ...on, step: p.step, lr: p.lr, beta1: p.beta1, beta2: p.beta2, eps: p.eps, weightDecay: p.weightDecay });
    expect(out.params).toBe(on.params);
    expect(out.m).toBe(on.m);
    expect(out.v).toBe(on.v);
    checkAdamw(p, { params: readBack(on.params) as Float32Array, m: readBack(on.m) as Float32Array, v: readBack(on.v) as Float32Array });
  });
});

describe('adamw on typed arrays (cpu)', () => {
  it.each(adamwSpecs)('$name: Promise; grads unchanged', async (spec) => {
    const p = adamwProblem(spec, 3 * spec.n + spec.step);
    const got = { params: p.params.slice(), m: p.m.slice(), v: p.v.slice() };
    const grads = p.grads.slice();
    const out = await adamwAsync({ ...got, grads, step: p.step, lr: p.lr, beta1: p.beta1, beta2: p.beta2, eps: p.eps, weightDecay: p.weightDecay });
    expect(out.params).toBe(got.params);
    checkAdamw(p, got);
    expect(grads).toEqual(p.grads);
  });

  it('defaults are torch.optim.AdamW\'s: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 0.01', () => {
    const p = adamwProblem({ name: '', n: 99, step: 3, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, 42);
    const got = { params: p.params.slice(), m: p.m.slice(), v: p.v.slice() };
    adamw({ ...got, grads: p.grads, step: 3 });
    checkAdamw(p, got);
  });
});

const normSizes = [1, 7, 16_385, 100_003];

describe.each(backendsUnderTest)('clipGradNorm on $backend', ({ device }) => {
  it.each(normSizes)('n = %i: measures without maxNorm, clips with it', async (n) => {
    const grads = randomF32(new Rng(n), n, -3, 3);
    const ref = gradNormReference(grads);
    const measured = clipGradNorm({ grads: tensorOn(grads, device) });
    expectWithin(measured.norm, ref.norm, 1e-10 * ref.norm, 'norm');
    expect(measured.scale).toBe(1);
    expect(readBack(measured.grads)).toEqual(grads);

    const maxNorm = ref.norm / 3;
    const clipRef = gradNormReference(grads, maxNorm);
    const onDevice = tensorOn(grads, device);
    const clipped = await clipGradNormAsync({ grads: onDevice, maxNorm });
    expect(clipped.grads).toBe(onDevice);
    expectWithin(clipped.norm, ref.norm, 1e-10 * ref.norm, 'norm');
    expectWithin(clipped.scale, clipRef.scale, 2 ** -23 * clipRef.scale, 'scale');
    expectClose(readBack(onDevice), clipRef.grads, { rel: 2 ** -22 });
  });

  it('a norm below maxNorm leaves the gradients bitwise unchanged', () => {
    const grads = randomF32(new Rng(3), 1000, -1, 1);
    const onDevice = tensorOn(grads, device);
    const out = clipGradNorm({ grads: onDevice, maxNorm: 1e6 });
    expect(out.scale).toBe(1);
    expect(readBack(onDevice)).toEqual(grads);
  });

  it('an infinite or NaN gradient gives a non-finite norm and no scaling', () => {
    for (const bad of [Infinity, Number.NaN]) {
      const grads = randomF32(new Rng(4), 5000, -1, 1);
      grads[1234] = bad;
      const onDevice = tensorOn(grads, device);
      const out = clipGradNorm({ grads: onDevice, maxNorm: 1 });
      expect(Number.isFinite(out.norm)).toBe(false);
      expect(out.scale).toBe(1);
      expect(readBack(onDevice)).toEqual(grads);
    }
  });
});

describe('clipGradNorm on a typed array (cpu)', () => {
  it('clips in place and returns the same array', () => {
    const grads = randomF32(new Rng(5), 40_000, -2, 2);
    const copy = grads.slice();
    const out = clipGradNorm({ grads, maxNorm: 1 });
    expect(out.grads).toBe(grads);
    const ref = gradNormReference(copy, 1);
    expectWithin(out.norm, ref.norm, 1e-10 * ref.norm, 'norm');
    expectClose(grads, ref.grads, { rel: 2 ** -22 });
  });
});
