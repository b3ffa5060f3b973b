// Bad input for every argument of ppoLoss and valueLoss: a TalariaError with the exact code and a message
// naming the argument; the Promise forms reject instead of throwing. Nothing here may crash the process.
import { describe, it } from 'vitest';
import { ppoLoss, ppoLossAsync, Tensor, valueLoss, valueLossAsync } from '../lib/index.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';
import { backendsUnderTest } from './helpers/backends.js';
import { type TalariaCode, expectRejects, expectThrows } from './helpers/assert.js';

const DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE';
const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE';
const RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
const DEVICE: TalariaCode = 'ERR_TALARIA_DEVICE';

const rng = new Rng(9001);
const N = 7;
const f32 = () => randomF32(rng, N, -2, 0);
const good = {
  logp: f32(), oldLogp: f32(), advantages: f32(), cuSeqlens: Int32Array.from([0, 3, 7]), actionMask: randomMask(rng, N),
  refLogp: f32(), entropy: f32(),
};
const goodValue = { values: f32(), oldValues: f32(), returns: f32(), actionMask: good.actionMask, cuSeqlens: good.cuSeqlens };

interface Bad { what: string; patch: Record<string, unknown>; code: TalariaCode; arg: string }

const tokenArrays = (keys: string[], dtype: 'f32' | 'u8'): Bad[] => keys.flatMap((key) => [
  { what: `${key} of the wrong dtype`, patch: { [key]: dtype === 'f32' ? new Int32Array(N) : new Float32Array(N) }, code: DTYPE, arg: key },
  { what: `${key} too short`, patch: { [key]: dtype === 'f32' ? new Float32Array(N - 1) : new Uint8Array(N - 1) }, code: SHAPE, arg: key },
  { what: `${key} not an array`, patch: { [key]: 'nope' }, code: DTYPE, arg: key },
]);
const offsets = (key: string): Bad[] => [
  { what: `${key} of the wrong dtype`, patch: { [key]: new Float32Array([0, 7]) }, code: DTYPE, arg: key },
  { what: `${key} not ending at N`, patch: { [key]: Int32Array.from([0, 3, 6]) }, code: SHAPE, arg: key },
  { what: `${key} decreasing`, patch: { [key]: Int32Array.from([0, 5, 3, 7]) }, code: SHAPE, arg: key },
  { what: `${key} not starting at 0`, patch: { [key]: Int32Array.from([1, 7]) }, code: SHAPE, arg: key },
  { what: `${key} empty`, patch: { [key]: new Int32Array(0) }, code: SHAPE, arg: key },
];
const number = (key: string, bad: unknown[], code: TalariaCode = RANGE): Bad[] =>
  bad.map((value) => ({ what: `${key} = ${String(value)}`, patch: { [key]: value }, code: typeof value === 'number' ? code : DTYPE, arg: key }));
const aggregation: Bad[] = [
  { what: 'an unknown aggregation', patch: { aggregation: 'token-sum' }, code: RANGE, arg: 'aggregation' },
  { what: 'aggregation not a string', patch: { aggregation: 3 }, code: DTYPE, arg: 'aggregation' },
  { what: 'the norm mode without a normalizer', patch: { aggregation: 'seq-mean-token-sum-norm' }, code: RANGE, arg: 'normalizer' },
  { what: 'a normalizer without the norm mode', patch: { normalizer: 10 }, code: RANGE, arg: 'normalizer' },
  ...number('normalizer', [0, -1, Number.NaN, Infinity, '5']).map((b) => ({ ...b, patch: { ...b.patch, aggregation: 'seq-mean-token-sum-norm' } })),
];

const ppoBad: Bad[] = [
  ...tokenArrays(['logp', 'oldLogp', 'advantages', 'refLogp', 'entropy'], 'f32').filter((b) => !(b.arg === 'logp' && b.code === SHAPE)),
  ...tokenArrays(['actionMask'], 'u8'),
  { what: 'logp missing', patch: { logp: undefined }, code: DTYPE, arg: 'logp' },
  { what: 'cuSeqlens missing', patch: { cuSeqlens: undefined }, code: DTYPE, arg: 'cuSeqlens' },
  ...offsets('cuSeqlens'),
  ...number('clipLow', [0, -0.1, 1, 1.5, Number.NaN, '0.2']),
  ...number('clipHigh', [0, -0.2, Number.NaN, Infinity, 1e39]),
  ...number('dualClip', [1, 0.5, Number.NaN, Infinity]),
  ...number('klCoef', [-0.1, Number.NaN, Infinity]),
  ...number('klClamp', [0, -1, Number.NaN]),
  ...number('entropyCoef', [-1, Number.NaN]),
  { what: 'an unknown klEstimator', patch: { klEstimator: 'k4' }, code: RANGE, arg: 'klEstimator' },
  { what: 'klEstimator not a string', patch: { klEstimator: 3 }, code: DTYPE, arg: 'klEstimator' },
  { what: 'klCoef > 0 without refLogp', patch: { klCoef: 0.1, refLogp: undefined }, code: RANGE, arg: 'klCoef' },
  { what: 'entropyCoef > 0 without entropy', patch: { entropyCoef: 0.1, entropy: undefined }, code: RANGE, arg: 'entropyCoef' },
  ...aggregation,
  { what: 'an unknown option (a typo)', patch: { cliplow: 0.2 }, code: RANGE, arg: 'cliplow' },
  { what: 'out.dLogp too short', patch: { out: { dLogp: new Float32Array(N - 1) } }, code: SHAPE, arg: 'out.dLogp' },
  { what: 'out.dLogp of the wrong dtype', patch: { out: { dLogp: new Int32Array(N) } }, code: DTYPE, arg: 'out.dLogp' },
  { what: 'out.dLogp overlapping an input', patch: { out: { dLogp: good.oldLogp } }, code: RANGE, arg: 'out.dLogp' },
  { what: 'out.dEntropy without entropy', patch: { entropy: undefined, out: { dEntropy: new Float32Array(N) } }, code: SHAPE, arg: 'out.dEntropy' },
  { what: 'an unknown out key', patch: { out: { grad: new Float32Array(N) } }, code: RANGE, arg: 'grad' },
];

const valueBad: Bad[] = [
  ...tokenArrays(['values', 'oldValues', 'returns'], 'f32').filter((b) => !(b.arg === 'values' && b.code === SHAPE)),
  ...tokenArrays(['actionMask'], 'u8'),
  ...offsets('cuSeqlens'),
  ...number('clipRange', [0, -0.2, Number.NaN]),
  ...aggregation,
  { what: 'an unknown option', patch: { clip: 0.2 }, code: RANGE, arg: 'clip' },
  { what: 'out.dValues too short', patch: { out: { dValues: new Float32Array(3) } }, code: SHAPE, arg: 'out.dValues' },
  { what: 'out.dValues aliasing returns', patch: { out: { dValues: goodValue.returns } }, code: RANGE, arg: 'out.dValues' },
];

describe('ppoLoss rejects bad input', () => {
  it.each(ppoBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...good, ...patch } as Parameters<typeof ppoLoss>[0];
    expectThrows(() => ppoLoss(input), code, arg);
    await expectRejects(() => ppoLossAsync(input), code, arg);
  });
  it('a non-object input', () => {
    expectThrows(() => ppoLoss(42 as never), DTYPE);
    expectThrows(() => ppoLoss(undefined as never), DTYPE);
  });
});

describe('valueLoss rejects bad input', () => {
  it.each(valueBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...goodValue, ...patch } as Parameters<typeof valueLoss>[0];
    expectThrows(() => valueLoss(input), code, arg);
    await expectRejects(() => valueLossAsync(input), code, arg);
  });
  it('a non-object input', () => expectThrows(() => valueLoss([] as never), DTYPE));
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  it('ppoLoss and valueLoss reject inputs on two devices', () => {
    const onDevice = Tensor.from(good.oldLogp, { device });
    try {
      expectThrows(() => ppoLoss({ ...good, oldLogp: onDevice }), DEVICE, 'oldLogp');
      expectThrows(() => valueLoss({ ...goodValue, values: Tensor.from(goodValue.values, { device }) }), DEVICE, 'oldValues');
    } finally {
      onDevice.dispose();
    }
  });
});
