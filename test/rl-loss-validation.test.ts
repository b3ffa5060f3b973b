// Bad input for every argument of ppoLoss and valueLoss: a TalariaError with the exact code and a message
// naming the argument; the Promise forms reject instead of throwing. Nothing here may crash the process.
// Legal edge values are accepted (so the checks are not simply stricter than the API), and values that are
// legal as f64 but leave the legal range once rounded to the kernels' f32 are rejected too.
import { afterEach, describe, expect, it } from 'vitest';
import { ppoLoss, ppoLossAsync, Tensor, valueLoss, valueLossAsync } from '../lib/index.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, recordOn, tensorOn } from './helpers/backends.js';
import { expectRejects, expectThrows } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, SHAPE, number, tokenArrays as tokenArraysOf } from './helpers/bad-input.js';

afterEach(disposeTensors);

const rng = new Rng(9001);
const N = 7;
const tokenArrays = (keys: string[], dtype: 'f32' | 'u8'): Bad[] => tokenArraysOf(keys, dtype, N);
const f32 = () => randomF32(rng, N, -2, 0);
const good = {
  logp: f32(), oldLogp: f32(), advantages: f32(), cuSeqlens: Int32Array.from([0, 3, 7]), actionMask: randomMask(rng, N),
  refLogp: f32(), entropy: f32(),
};
const goodValue = { values: f32(), oldValues: f32(), returns: f32(), actionMask: good.actionMask, cuSeqlens: good.cuSeqlens };
// One buffer holding an f32 array and, 8 bytes in, another that overlaps it partly.
const shared = new ArrayBuffer(4 * (N + 2));
const sharedA = new Float32Array(shared, 0, N), sharedB = new Float32Array(shared, 8, N);
sharedA.set(good.oldLogp);
// Valid offsets [0, N] whose bytes an f32 output overlaps.
const offsetsBuffer = new ArrayBuffer(4 * N);
const overlappedOffsets = new Int32Array(offsetsBuffer, 0, 2).fill(N).fill(0, 0, 1);
const overOffsets = new Float32Array(offsetsBuffer, 0, N);

const offsets = (key: string): Bad[] => [
  { what: `${key} of the wrong dtype`, patch: { [key]: new Float32Array([0, 7]) }, code: DTYPE, arg: key },
  { what: `${key} a Uint32Array`, patch: { [key]: new Uint32Array([0, 7]) }, code: DTYPE, arg: key },
  { what: `${key} not ending at N`, patch: { [key]: Int32Array.from([0, 3, 6]) }, code: SHAPE, arg: key },
  { what: `${key} past N`, patch: { [key]: Int32Array.from([0, 3, 8]) }, code: SHAPE, arg: key },
  { what: `${key} decreasing`, patch: { [key]: Int32Array.from([0, 5, 3, 7]) }, code: SHAPE, arg: key },
  { what: `${key} with a negative entry`, patch: { [key]: Int32Array.from([0, -1, 7]) }, code: SHAPE, arg: key },
  { what: `${key} not starting at 0`, patch: { [key]: Int32Array.from([1, 7]) }, code: SHAPE, arg: key },
  { what: `${key} empty`, patch: { [key]: new Int32Array(0) }, code: SHAPE, arg: key },
];
const aggregation: Bad[] = [
  { what: 'an unknown aggregation', patch: { aggregation: 'token-sum' }, code: RANGE, arg: 'aggregation' },
  { what: 'an aggregation in the wrong case', patch: { aggregation: 'Token-Mean' }, code: RANGE, arg: 'aggregation' },
  { what: 'aggregation not a string', patch: { aggregation: 3 }, code: DTYPE, arg: 'aggregation' },
  { what: 'the norm mode without a normalizer', patch: { aggregation: 'seq-mean-token-sum-norm' }, code: RANGE, arg: 'normalizer' },
  { what: 'a normalizer without the norm mode', patch: { normalizer: 10 }, code: RANGE, arg: 'normalizer' },
  ...number('normalizer', [0, -1, Number.NaN, Infinity, -Infinity, 1e39, '5', null]).map((b) => ({ ...b, patch: { ...b.patch, aggregation: 'seq-mean-token-sum-norm' } })),
];
// Legal as f64, but the kernels take f32 (rl_loss.h): 1 - 1e-9 rounds to 1, 1e-50 to 0. A normalizer
// under 1/FLT_MAX makes the f32 weight 1/(activeSeqs * normalizer) infinite.
const f32Range = (keys: Record<string, unknown[]>): Bad[] =>
  Object.entries(keys).flatMap(([key, values]) => number(key, values).map((b) => ({ ...b, what: `${b.what} (out of range in f32)` })));
const normalizerF32: Bad[] = number('normalizer', [1e-39, 1e-50])
  .map((b) => ({ ...b, what: `${b.what} (the f32 weight overflows)`, patch: { ...b.patch, aggregation: 'seq-mean-token-sum-norm' } }));

const ppoBad: Bad[] = [
  ...tokenArrays(['logp', 'oldLogp', 'advantages', 'refLogp', 'entropy'], 'f32').filter((b) => !(b.arg === 'logp' && b.code === SHAPE && !b.what.includes('2-D'))),
  ...tokenArrays(['actionMask'], 'u8'),
  ...['logp', 'oldLogp', 'advantages', 'cuSeqlens'].flatMap((key) => [
    { what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key },
    { what: `${key} null`, patch: { [key]: null }, code: DTYPE, arg: key },
  ]),
  ...offsets('cuSeqlens'),
  ...number('clipLow', [0, -0.1, 1, 1.5, Number.NaN, Infinity, '0.2', true]),
  ...number('clipHigh', [0, -0.2, Number.NaN, Infinity, 1e39, '0.2']),
  ...number('dualClip', [1, 0.5, -3, Number.NaN, Infinity, '3']),
  ...number('klCoef', [-0.1, Number.NaN, Infinity, 1e39, '0.1']),
  ...number('klClamp', [0, -1, Number.NaN, -Infinity, '10']),
  ...number('entropyCoef', [-1, Number.NaN, Infinity, 1e39, '0.01']),
  ...f32Range({ clipLow: [1 - 1e-9, 1e-50], clipHigh: [1e-50], dualClip: [1 + 1e-9], klClamp: [1e-50] }),
  { what: 'an unknown klEstimator', patch: { klEstimator: 'k4' }, code: RANGE, arg: 'klEstimator' },
  { what: 'klEstimator in the wrong case', patch: { klEstimator: 'K3' }, code: RANGE, arg: 'klEstimator' },
  { what: 'klEstimator a number', patch: { klEstimator: 3 }, code: DTYPE, arg: 'klEstimator' },
  { what: 'klCoef > 0 without refLogp', patch: { klCoef: 0.1, refLogp: undefined }, code: RANGE, arg: 'klCoef' },
  { what: 'entropyCoef > 0 without entropy', patch: { entropyCoef: 0.1, entropy: undefined }, code: RANGE, arg: 'entropyCoef' },
  ...aggregation,
  ...normalizerF32,
  { what: 'an unknown option (a typo)', patch: { cliplow: 0.2 }, code: RANGE, arg: 'cliplow' },
  { what: 'an option of another kernel', patch: { clipRange: 0.2 }, code: RANGE, arg: 'clipRange' },
  { what: 'out not an object', patch: { out: 5 }, code: DTYPE, arg: 'out' },
  { what: 'out a typed array', patch: { out: new Float32Array(N) }, code: DTYPE, arg: 'out' },
  { what: 'out.dLogp too short', patch: { out: { dLogp: new Float32Array(N - 1) } }, code: SHAPE, arg: 'out.dLogp' },
  { what: 'out.dLogp of the wrong dtype', patch: { out: { dLogp: new Int32Array(N) } }, code: DTYPE, arg: 'out.dLogp' },
  { what: 'out.dEntropy too long', patch: { out: { dEntropy: new Float32Array(N + 1) } }, code: SHAPE, arg: 'out.dEntropy' },
  { what: 'out.dLogp aliasing oldLogp', patch: { out: { dLogp: good.oldLogp } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dLogp aliasing logp', patch: { out: { dLogp: good.logp } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dLogp partly overlapping oldLogp', patch: { oldLogp: sharedA, out: { dLogp: sharedB } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dLogp overlapping the mask bytes', patch: { actionMask: new Uint8Array(shared, 0, N), out: { dLogp: sharedA } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dEntropy aliasing entropy', patch: { out: { dEntropy: good.entropy } }, code: RANGE, arg: 'out.dEntropy' },
  { what: 'out.dEntropy aliasing refLogp', patch: { out: { dEntropy: good.refLogp } }, code: RANGE, arg: 'out.dEntropy' },
  { what: 'out.dLogp and out.dEntropy the same buffer', patch: { out: { dLogp: sharedA, dEntropy: sharedA } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dEntropy without entropy', patch: { entropy: undefined, out: { dEntropy: new Float32Array(N) } }, code: SHAPE, arg: 'out.dEntropy' },
  { what: 'an unknown out key', patch: { out: { grad: new Float32Array(N) } }, code: RANGE, arg: 'grad' },
];

const valueBad: Bad[] = [
  ...tokenArrays(['values', 'oldValues', 'returns'], 'f32').filter((b) => !(b.arg === 'values' && b.code === SHAPE && !b.what.includes('2-D'))),
  ...tokenArrays(['actionMask'], 'u8'),
  ...['values', 'oldValues', 'returns'].map((key) => ({ what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key })),
  ...offsets('cuSeqlens'),
  { what: 'cuSeqlens a 2-D Tensor', patch: { cuSeqlens: Tensor.from(Int32Array.from([0, 7]), { shape: [1, 2] }) }, code: SHAPE, arg: 'cuSeqlens' },
  ...number('clipRange', [0, -0.2, Number.NaN, -Infinity, '0.2']),
  ...f32Range({ clipRange: [1e-50] }),
  ...aggregation,
  ...normalizerF32,
  { what: 'an unknown option', patch: { clip: 0.2 }, code: RANGE, arg: 'clip' },
  { what: 'a ppoLoss option', patch: { clipLow: 0.2 }, code: RANGE, arg: 'clipLow' },
  { what: 'out not an object', patch: { out: 'dValues' }, code: DTYPE, arg: 'out' },
  { what: 'out.dValues too short', patch: { out: { dValues: new Float32Array(3) } }, code: SHAPE, arg: 'out.dValues' },
  { what: 'out.dValues of the wrong dtype', patch: { out: { dValues: new Uint8Array(N) } }, code: DTYPE, arg: 'out.dValues' },
  { what: 'out.dValues aliasing returns', patch: { out: { dValues: goodValue.returns } }, code: RANGE, arg: 'out.dValues' },
  { what: 'out.dValues aliasing values', patch: { out: { dValues: goodValue.values } }, code: RANGE, arg: 'out.dValues' },
  { what: 'out.dValues partly overlapping oldValues', patch: { oldValues: sharedA, out: { dValues: sharedB } }, code: RANGE, arg: 'out.dValues' },
  { what: 'out.dValues overlapping cuSeqlens', patch: { cuSeqlens: overlappedOffsets, out: { dValues: overOffsets } }, code: RANGE, arg: 'out.dValues' },
  { what: 'an unknown out key', patch: { out: { dLogp: new Float32Array(N) } }, code: RANGE, arg: 'dLogp' },
];

describe('ppoLoss rejects bad input', () => {
  it.each(ppoBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...good, ...patch } as Parameters<typeof ppoLoss>[0];
    expectThrows(() => ppoLoss(input), code, arg);
    await expectRejects(() => ppoLossAsync(input), code, arg);
  });
  it('a non-object input, or none', async () => {
    for (const bad of [42, undefined, null, 'logp', [good.logp]]) {
      expectThrows(() => ppoLoss(bad as never), DTYPE);
      await expectRejects(() => ppoLossAsync(bad as never), DTYPE);
    }
  });
  it('a disposed Tensor', async () => {
    const disposed = Tensor.from(good.advantages);
    disposed.dispose();
    expectThrows(() => ppoLoss({ ...good, advantages: disposed }), 'ERR_TALARIA_DISPOSED', 'advantages');
    await expectRejects(() => ppoLossAsync({ ...good, advantages: disposed }), 'ERR_TALARIA_DISPOSED', 'advantages');
  });
});

describe('valueLoss rejects bad input', () => {
  it.each(valueBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...goodValue, ...patch } as Parameters<typeof valueLoss>[0];
    expectThrows(() => valueLoss(input), code, arg);
    await expectRejects(() => valueLossAsync(input), code, arg);
  });
  it('a non-object input, or none', async () => {
    for (const bad of [[], undefined, 3.5, goodValue.values]) {
      expectThrows(() => valueLoss(bad as never), DTYPE);
      await expectRejects(() => valueLossAsync(bad as never), DTYPE);
    }
  });
  it('a disposed Tensor', () => {
    const disposed = Tensor.from(goodValue.returns);
    disposed.dispose();
    expectThrows(() => valueLoss({ ...goodValue, returns: disposed }), 'ERR_TALARIA_DISPOSED', 'returns');
  });
});

describe('legal edge values are accepted', () => {
  const ppoGood: Record<string, unknown>[] = [
    { clipLow: 1e-6 }, { clipLow: 0.999 }, { clipHigh: 10 }, { clipLow: 0.1, clipHigh: 0.4 }, { dualClip: 1.001 }, { dualClip: 1e6 },
    { klCoef: 0, refLogp: undefined }, { entropyCoef: 0, entropy: undefined }, { klCoef: 5, klClamp: Infinity }, { klClamp: 1e-3, klCoef: 1 },
    { klEstimator: 'k1' }, { klEstimator: 'k2' }, { klEstimator: 'k3' }, { aggregation: 'seq-mean-token-sum-norm', normalizer: 1e-3 },
    { actionMask: undefined, refLogp: undefined, entropy: undefined }, { clipLow: undefined, out: {} }, { out: { dLogp: new Float32Array(N) } },
  ];
  it.each(ppoGood)('ppoLoss with %o', (patch) => {
    const got = ppoLoss({ ...good, ...patch } as Parameters<typeof ppoLoss>[0]);
    expect(Number.isFinite(got.loss)).toBe(true);
  });
  const valueGood: Record<string, unknown>[] = [
    { clipRange: Infinity }, { clipRange: 1e-6 }, { clipRange: 1e30 }, { cuSeqlens: undefined }, { actionMask: undefined },
    { cuSeqlens: Int32Array.from([0, 0, 7, 7]) }, { aggregation: 'seq-mean-token-sum-norm', normalizer: 2 },
  ];
  it.each(valueGood)('valueLoss with %o', (patch) => {
    const got = valueLoss({ ...goodValue, ...patch } as Parameters<typeof valueLoss>[0]);
    expect(Number.isFinite(got.loss)).toBe(true);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const ppoKeys = ['oldLogp', 'advantages', 'cuSeqlens', 'actionMask', 'refLogp', 'entropy'] as const;
  it.each(ppoKeys)('ppoLoss: %s on the cpu, the rest on the device, and the other way round', (key) => {
    const onDevice = recordOn(good, device);
    expectThrows(() => ppoLoss({ ...onDevice, [key]: good[key] }), DEVICE, key);
    expectThrows(() => ppoLoss({ ...good, [key]: onDevice[key] }), DEVICE, key);
  });
  it('ppoLoss: out buffers on the wrong device, or aliasing an input Tensor', () => {
    const onDevice = recordOn(good, device);
    expectThrows(() => ppoLoss({ ...onDevice, out: { dLogp: new Float32Array(N) as never } }), DEVICE, 'out.dLogp');
    expectThrows(() => ppoLoss({ ...onDevice, out: { dEntropy: tensorOn(new Float32Array(N), 'cpu') } }), DEVICE, 'out.dEntropy');
    expectThrows(() => ppoLoss({ ...good, out: { dLogp: tensorOn(new Float32Array(N), device) as never } }), DEVICE, 'out.dLogp');
    expectThrows(() => ppoLoss({ ...onDevice, out: { dLogp: onDevice.advantages } }), RANGE, 'out.dLogp');
  });
  it.each(['oldValues', 'returns', 'actionMask', 'cuSeqlens'] as const)('valueLoss: %s on the cpu, the rest on the device, and the other way round', (key) => {
    const onDevice = recordOn(goodValue, device);
    expectThrows(() => valueLoss({ ...onDevice, [key]: goodValue[key] }), DEVICE, key);
    expectThrows(() => valueLoss({ ...goodValue, [key]: onDevice[key] }), DEVICE, key);
  });
  it('valueLoss: out.dValues on the wrong device, or aliasing an input Tensor', async () => {
    const onDevice = recordOn(goodValue, device);
    expectThrows(() => valueLoss({ ...onDevice, out: { dValues: new Float32Array(N) as never } }), DEVICE, 'out.dValues');
    await expectRejects(() => valueLossAsync({ ...onDevice, out: { dValues: new Float32Array(N) as never } }), DEVICE, 'out.dValues');
    expectThrows(() => valueLoss({ ...onDevice, out: { dValues: onDevice.oldValues } }), RANGE, 'out.dValues');
  });
});
