// Bad input for every argument of adamw and clipGradNorm: a TalariaError with the exact code and a message
// naming the argument; the Promise forms reject instead of throwing. Legal edge values are accepted.
import { afterEach, describe, expect, it } from 'vitest';
import { adamw, adamwAsync, clipGradNorm, clipGradNormAsync, Tensor } from '../lib/index.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, tensorOn } from './helpers/backends.js';
import { expectThrows } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, describeRejections, number, tokenArrays } from './helpers/bad-input.js';

afterEach(disposeTensors);

const rng = new Rng(7007);
const N = 9;
// params, then m, in one buffer: views one element off overlap both.
const buffer = new ArrayBuffer(4 * 2 * N);
const params = new Float32Array(buffer, 0, N);
params.set(randomF32(rng, N));
const m = new Float32Array(buffer, 4 * N, N);
const shifted = new Float32Array(buffer, 4, N);
const grads = randomF32(rng, N);
const good = { params, grads, m, v: new Float32Array(N), step: 1 };

const adamwBad: Bad[] = [
  ...tokenArrays(['params', 'grads', 'm', 'v'], 'f32', N).filter((b) => !(b.patch.params && /too (short|long)/.test(b.what))),
  ...['params', 'grads', 'm', 'v'].map((key): Bad => ({ what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key })),
  { what: 'm overlapping params', patch: { m: shifted }, code: RANGE, arg: 'm' },
  { what: 'v the same buffer as m', patch: { v: m }, code: RANGE, arg: 'v' },
  { what: 'params overlapping grads', patch: { grads: shifted }, code: RANGE, arg: 'params' },
  { what: 'step missing', patch: { step: undefined }, code: RANGE, arg: 'step' },
  ...number('step', [0, -1, 1.5, Number.NaN, Infinity, 2 ** 53, '1', null]),
  ...number('lr', [-1e-3, Number.NaN, Infinity, 1e39, '0.1']),
  ...number('beta1', [-0.1, 1, 1.5, Number.NaN, '0.9']),
  ...number('beta2', [-0.1, 1, 1 - 1e-9, Number.NaN, true]),
  ...number('eps', [0, -1e-8, 1e-50, Number.NaN, Infinity]),
  ...number('weightDecay', [-0.01, Number.NaN, Infinity, '0.01']),
  { what: 'lr * weightDecay above 1', patch: { lr: 0.5, weightDecay: 3 }, code: RANGE, arg: 'weightDecay' },
  { what: 'an unknown option', patch: { momentum: 0.9 }, code: RANGE, arg: 'momentum' },
];

const clipBad: Bad[] = [
  ...tokenArrays(['grads'], 'f32', N).filter((b) => !/too (short|long)/.test(b.what)),
  { what: 'grads missing', patch: { grads: undefined }, code: DTYPE, arg: 'grads' },
  ...number('maxNorm', [0, -1, Number.NaN, Infinity, 1e39, '1', null]),
  { what: 'an unknown option', patch: { normType: 1 }, code: RANGE, arg: 'normType' },
];

const kernels = [
  { name: 'adamw', good, sync: adamw, async: adamwAsync, bad: adamwBad },
  { name: 'clipGradNorm', good: { grads }, sync: clipGradNorm, async: clipGradNormAsync, bad: clipBad },
];

describeRejections(kernels, [42, undefined, null, 'grads', [grads], grads]);

describe('legal edge values are accepted', () => {
  const fresh = () => ({ params: randomF32(rng, N), grads, m: new Float32Array(N), v: new Float32Array(N) });
  const cases: [string, () => unknown][] = [
    ['adamw with lr = 0 and weightDecay = 0', () => adamw({ ...fresh(), step: 1, lr: 0, weightDecay: 0 })],
    ['adamw with beta1 = beta2 = 0', () => adamw({ ...fresh(), step: 1, beta1: 0, beta2: 0 })],
    ['adamw at step 2^53 - 1', () => adamw({ ...fresh(), step: 2 ** 53 - 1 })],
    ['adamw with lr * weightDecay = 1', () => adamw({ ...fresh(), step: 5, lr: 0.5, weightDecay: 2 })],
    ['adamw on empty buffers', () => adamw({ params: new Float32Array(0), grads: new Float32Array(0), m: new Float32Array(0), v: new Float32Array(0), step: 1 })],
    ['adamw on 1-D Tensors', () => adamw({ params: Tensor.from(randomF32(rng, N)), grads: Tensor.from(grads), m: Tensor.from(new Float32Array(N)),
      v: Tensor.from(new Float32Array(N)), step: 1 })],
    ['clipGradNorm on an empty buffer', () => clipGradNorm({ grads: new Float32Array(0), maxNorm: 1 })],
    ['clipGradNorm with a tiny maxNorm', () => clipGradNorm({ grads: grads.slice(), maxNorm: 1e-30 })],
  ];
  it.each(cases)('%s', (_, run) => {
    expect(run).not.toThrow();
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  it('adamw with grads on the cpu', () => {
    const on = { params: tensorOn(params, device), m: tensorOn(m, device), v: tensorOn(good.v, device) };
    expectThrows(() => adamw({ ...on, grads, step: 1 }), DEVICE, 'grads');
  });
  it('adamw with v on the cpu', () => {
    const on = { params: tensorOn(params, device), grads: tensorOn(grads, device), m: tensorOn(m, device) };
    expectThrows(() => adamw({ ...on, v: Tensor.from(good.v), step: 1 }), DEVICE, 'v');
  });
});
