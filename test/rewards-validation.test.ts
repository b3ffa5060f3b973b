// Bad input for every argument of shapeRewards, groupAdvantages and RewardNormalizer: a TalariaError with the
// exact code and a message naming the argument; the Promise forms reject instead of throwing. Nothing here
// may crash the process.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../lib/index.js';
import { getAddon } from '../lib/native.js';
import { groupAdvantages, groupAdvantagesAsync, RewardNormalizer, shapeRewards, shapeRewardsAsync } from '../lib/ops/rewards.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';
import { backendsUnderTest } from './helpers/backends.js';
import { type TalariaCode, expectRejects, expectThrows } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, SHAPE, number } from './helpers/bad-input.js';

const FORMAT: TalariaCode = 'ERR_TALARIA_FORMAT';

const rng = new Rng(7007);
const N = 7, B = 2;
const good = {
  scores: randomF32(rng, B, -2, 2), logp: randomF32(rng, N, -3, 0), refLogp: randomF32(rng, N, -3, 0),
  cuSeqlens: Int32Array.from([0, 3, 7]), actionMask: randomMask(rng, N), endedWithEos: Uint8Array.from([1, 0]),
};
const goodGroup = {
  scores: randomF32(rng, 6, -2, 2), groupSize: 3, cuSeqlens: Int32Array.from([0, 2, 2, 3, 5, 6, 9]), actionMask: randomMask(rng, 9),
};

const arrays = (keys: string[], dtype: 'f32' | 'u8', length: number): Bad[] => keys.flatMap((key) => [
  { what: `${key} of the wrong dtype`, patch: { [key]: dtype === 'f32' ? new Int32Array(length) : new Float32Array(length) }, code: DTYPE, arg: key },
  { what: `${key} of the wrong length`, patch: { [key]: dtype === 'f32' ? new Float32Array(length + 1) : new Uint8Array(length - 1) }, code: SHAPE, arg: key },
  { what: `${key} not an array`, patch: { [key]: [1, 2] }, code: DTYPE, arg: key },
]);
// Offsets of the right length (B + 1 or G + 1) that are wrong in one way each.
const offsets = (key: string, notEnding: number[], decreasing: number[], notFromZero: number[]): Bad[] => [
  { what: `${key} of the wrong dtype`, patch: { [key]: Float32Array.from(notEnding) }, code: DTYPE, arg: key },
  { what: `${key} not ending at its total`, patch: { [key]: Int32Array.from(notEnding) }, code: SHAPE, arg: key },
  { what: `${key} decreasing`, patch: { [key]: Int32Array.from(decreasing) }, code: SHAPE, arg: key },
  { what: `${key} not starting at 0`, patch: { [key]: Int32Array.from(notFromZero) }, code: SHAPE, arg: key },
];
const state = { count: 3, mean: 0.5, m2: 1.5, shiftMean: true, eps: 1e-8 };

const shapeBad: Bad[] = [
  ...arrays(['scores'], 'f32', B).filter((b) => b.code !== SHAPE),  // scores defines B
  ...arrays(['logp'], 'f32', N).filter((b) => b.code !== SHAPE),    // logp defines N
  ...arrays(['refLogp'], 'f32', N),
  ...arrays(['actionMask'], 'u8', N),
  ...arrays(['endedWithEos'], 'u8', B),
  { what: 'scores missing', patch: { scores: undefined }, code: DTYPE, arg: 'scores' },
  { what: 'refLogp missing', patch: { refLogp: undefined }, code: DTYPE, arg: 'refLogp' },
  { what: 'cuSeqlens missing', patch: { cuSeqlens: undefined }, code: DTYPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens not B + 1 long', patch: { cuSeqlens: Int32Array.from([0, 2, 5, 7]) }, code: SHAPE, arg: 'cuSeqlens' },
  ...offsets('cuSeqlens', [0, 3, 6], [0, 8, 7], [1, 3, 7]),
  ...number('klCoef', [-0.1, Number.NaN, Infinity, '0.1']),
  ...number('klClamp', [0, -1, Number.NaN]),
  ...number('missingEosPenalty', [-1, Number.NaN, Infinity]),
  ...number('scoreClip', [0, -2, Number.NaN]),
  // Legal in f64 but 0 once rounded to the f32 the kernel takes.
  ...number('klClamp', [1e-46]).map((b) => ({ ...b, what: `${b.what} (0 in f32)` })),
  ...number('scoreClip', [1e-50]).map((b) => ({ ...b, what: `${b.what} (0 in f32)` })),
  ...[Number.NaN, Infinity, -Infinity].map((bad) => ({
    what: `a score of ${bad}`, patch: { scores: Float32Array.from([0.5, bad]) }, code: RANGE, arg: 'scores[1]',
  })),
  { what: 'an unknown klEstimator', patch: { klEstimator: 'k4' }, code: RANGE, arg: 'klEstimator' },
  { what: 'klEstimator not a string', patch: { klEstimator: 1 }, code: DTYPE, arg: 'klEstimator' },
  { what: 'missingEosPenalty > 0 without endedWithEos', patch: { missingEosPenalty: 1, endedWithEos: undefined }, code: RANGE, arg: 'endedWithEos' },
  { what: 'normalizer not a RewardNormalizer', patch: { normalizer: state }, code: DTYPE, arg: 'normalizer' },
  { what: 'normalizerState passed directly', patch: { normalizerState: state }, code: RANGE, arg: 'normalizerState' },
  { what: 'an unknown option (a typo)', patch: { klcoef: 0.1 }, code: RANGE, arg: 'klcoef' },
  { what: 'out.rewards too short', patch: { out: { rewards: new Float32Array(N - 1) } }, code: SHAPE, arg: 'out.rewards' },
  { what: 'out.rewards of the wrong dtype', patch: { out: { rewards: new Int32Array(N) } }, code: DTYPE, arg: 'out.rewards' },
  { what: 'out.rewards overlapping logp', patch: { out: { rewards: good.logp } }, code: RANGE, arg: 'out.rewards' },
  { what: 'out.shapedScores too long', patch: { out: { shapedScores: new Float32Array(B + 1) } }, code: SHAPE, arg: 'out.shapedScores' },
  { what: 'out.shapedScores aliasing scores', patch: { out: { shapedScores: good.scores } }, code: RANGE, arg: 'out.shapedScores' },
  { what: 'an unknown out key', patch: { out: { reward: new Float32Array(N) } }, code: RANGE, arg: 'reward' },
  { what: 'out not an object', patch: { out: 3 }, code: DTYPE, arg: 'out' },
];

const groupBad: Bad[] = [
  ...arrays(['scores'], 'f32', 6).filter((b) => b.code !== SHAPE),
  { what: 'scores missing', patch: { scores: undefined }, code: DTYPE, arg: 'scores' },
  { what: 'neither groupSize nor groupOffsets', patch: { groupSize: undefined }, code: RANGE, arg: 'groupSize' },
  { what: 'both groupSize and groupOffsets', patch: { groupOffsets: Int32Array.from([0, 3, 6]) }, code: RANGE, arg: 'groupOffsets' },
  ...number('groupSize', [0, -3, 1.5, Number.NaN, Infinity, '3']),
  { what: 'groupSize not dividing B', patch: { groupSize: 4 }, code: SHAPE, arg: 'groupSize' },
  ...[...offsets('groupOffsets', [0, 3, 5], [0, 4, 3, 6], [1, 3, 6]), { what: 'groupOffsets empty', patch: { groupOffsets: new Int32Array(0) }, code: SHAPE, arg: 'groupOffsets' }]
    .map((b) => ({ ...b, patch: { ...b.patch, groupSize: undefined } })),
  { what: 'an unknown estimator', patch: { estimator: 'ppo' }, code: RANGE, arg: 'estimator' },
  { what: 'estimator not a string', patch: { estimator: 0 }, code: DTYPE, arg: 'estimator' },
  ...number('eps', [0, -1e-6, 1e-45, Number.NaN, Infinity]),
  { what: 'unbiased not a boolean', patch: { unbiased: 1 }, code: DTYPE, arg: 'unbiased' },
  { what: 'cuSeqlens of the wrong dtype', patch: { cuSeqlens: new Float32Array(7) }, code: DTYPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens not B + 1 long', patch: { cuSeqlens: Int32Array.from([0, 2, 9]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens decreasing', patch: { cuSeqlens: Int32Array.from([0, 2, 1, 3, 5, 6, 9]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens not starting at 0', patch: { cuSeqlens: Int32Array.from([1, 2, 2, 3, 5, 6, 9]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'actionMask shorter than cuSeqlens says', patch: { actionMask: new Uint8Array(8) }, code: SHAPE, arg: 'actionMask' },
  { what: 'actionMask of the wrong dtype', patch: { actionMask: new Int32Array(9) }, code: DTYPE, arg: 'actionMask' },
  { what: 'actionMask without cuSeqlens', patch: { cuSeqlens: undefined }, code: RANGE, arg: 'actionMask' },
  { what: 'an unknown option', patch: { group_size: 3 }, code: RANGE, arg: 'group_size' },
  { what: 'out.advantages too short', patch: { out: { advantages: new Float32Array(5) } }, code: SHAPE, arg: 'out.advantages' },
  { what: 'out.advantages aliasing scores', patch: { out: { advantages: goodGroup.scores } }, code: RANGE, arg: 'out.advantages' },
  { what: 'out.tokenAdvantages too long', patch: { out: { tokenAdvantages: new Float32Array(10) } }, code: SHAPE, arg: 'out.tokenAdvantages' },
  { what: 'out.tokenAdvantages without cuSeqlens', patch: { cuSeqlens: undefined, actionMask: undefined, out: { tokenAdvantages: new Float32Array(9) } }, code: SHAPE, arg: 'out.tokenAdvantages' },
  { what: 'the two outputs overlapping', patch: { out: (() => { const m = new Float32Array(15); return { advantages: m.subarray(0, 6), tokenAdvantages: m.subarray(5, 14) }; })() }, code: RANGE, arg: 'out.tokenAdvantages' },
];

const stateBad: Bad[] = [
  { what: 'count missing', patch: { count: undefined }, code: DTYPE, arg: 'count' },
  { what: 'a fractional count', patch: { count: 2.5 }, code: RANGE, arg: 'count' },
  { what: 'a negative count', patch: { count: -1 }, code: RANGE, arg: 'count' },
  { what: 'a NaN mean', patch: { mean: Number.NaN }, code: RANGE, arg: 'mean' },
  { what: 'an infinite mean', patch: { mean: Infinity }, code: RANGE, arg: 'mean' },
  { what: 'a negative m2', patch: { m2: -0.5 }, code: RANGE, arg: 'm2' },
  { what: 'a string m2', patch: { m2: '1' }, code: DTYPE, arg: 'm2' },
  { what: 'shiftMean not a boolean', patch: { shiftMean: 'yes' }, code: DTYPE, arg: 'shiftMean' },
  { what: 'eps 0', patch: { eps: 0 }, code: RANGE, arg: 'eps' },
  { what: 'count 0 with a nonzero mean', patch: { count: 0, m2: 0 }, code: RANGE, arg: 'count' },
  { what: 'an unknown field', patch: { variance: 1 }, code: RANGE, arg: 'variance' },
];

describe('shapeRewards rejects bad input', () => {
  it.each(shapeBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...good, ...patch } as Parameters<typeof shapeRewards>[0];
    expectThrows(() => shapeRewards(input), code, arg);
    await expectRejects(() => shapeRewardsAsync(input), code, arg);
  });
  it('a non-object input', async () => {
    expectThrows(() => shapeRewards(42 as never), DTYPE);
    expectThrows(() => shapeRewards(undefined as never), DTYPE);
    await expectRejects(() => shapeRewardsAsync(null as never), DTYPE);
  });
  // The addon's own check of the state it is handed (the trust boundary), past RewardNormalizer's.
  it.each(stateBad)('raw addon: normalizerState with $what', async ({ patch, code, arg }) => {
    const addon = getAddon() as unknown as Record<string, (input: unknown) => unknown>;
    const input = { ...good, normalizerState: { ...state, ...patch } };
    expectThrows(() => addon.shapeRewards(input), code, arg);
  });
});

describe('groupAdvantages rejects bad input', () => {
  it.each(groupBad)('$what', async ({ patch, code, arg }) => {
    const input = { ...goodGroup, ...patch } as Parameters<typeof groupAdvantages>[0];
    expectThrows(() => groupAdvantages(input), code, arg);
    await expectRejects(() => groupAdvantagesAsync(input), code, arg);
  });
  it('a non-object input', () => expectThrows(() => groupAdvantages('scores' as never), DTYPE));
});

describe('RewardNormalizer rejects bad options and garbage states', () => {
  it.each([
    { what: 'eps 0', options: { eps: 0 }, code: RANGE, arg: 'eps' },
    { what: 'eps NaN', options: { eps: Number.NaN }, code: RANGE, arg: 'eps' },
    { what: 'eps below the smallest f32', options: { eps: 1e-40 }, code: RANGE, arg: 'eps' },
    { what: 'eps a string', options: { eps: '1e-8' }, code: DTYPE, arg: 'eps' },
    { what: 'shiftMean not a boolean', options: { shiftMean: 1 }, code: DTYPE, arg: 'shiftMean' },
    { what: 'an unknown option', options: { shift: true }, code: RANGE, arg: 'shift' },
    { what: 'options not an object', options: 5, code: DTYPE, arg: 'RewardNormalizer' },
  ])('constructor: $what', ({ options, code, arg }) => {
    expectThrows(() => new RewardNormalizer(options as never), code, arg);
  });

  it.each([
    ...stateBad.map(({ what, patch, arg }) => ({ what, value: { ...state, ...patch } as unknown, arg })),
    { what: 'null', value: null, arg: 'fromState' },
    { what: 'an array', value: [3, 0.5, 1.5, true, 1e-8], arg: 'fromState' },
    { what: 'a JSON string', value: JSON.stringify(state), arg: 'fromState' },
    { what: 'eps Infinity (JSON turns it into null)', value: { ...state, eps: null }, arg: 'eps' },
  ])('fromState: $what is ERR_TALARIA_FORMAT', ({ value, arg }) => {
    expectThrows(() => RewardNormalizer.fromState(value), FORMAT, arg);
  });

  it('accepts what state() produced, through JSON', () => {
    const normalizer = RewardNormalizer.fromState(state);
    expect(RewardNormalizer.fromState(JSON.parse(JSON.stringify(normalizer.state()))).state()).toEqual(state);
    expect(new RewardNormalizer().state()).toEqual({ count: 0, mean: 0, m2: 0, shiftMean: true, eps: 1e-8 });
  });
});

describe('a failed call leaves the RewardNormalizer as it was', () => {
  it('a non-finite score is rejected before the normalizer sees it', () => {
    const normalizer = RewardNormalizer.fromState(state);
    expectThrows(() => shapeRewards({ ...good, scores: Float32Array.from([Number.NaN, 1]), normalizer }), RANGE, 'scores[0]');
    expect(normalizer.state()).toEqual(state);
  });
  it('finite scores whose penalized value overflows f32 do not poison the running moments', () => {
    const normalizer = RewardNormalizer.fromState(state);
    const input = { ...good, scores: Float32Array.from([-3e38, 1]), endedWithEos: Uint8Array.from([0, 1]), missingEosPenalty: 3e38, normalizer };
    expectThrows(() => shapeRewards(input), RANGE, 'non-finite');
    expect(normalizer.state()).toEqual(state);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  it('shapeRewards and groupAdvantages reject inputs on two devices', () => {
    const on = (x: Float32Array | Int32Array) => Tensor.from(x, { device });
    const t = { scores: on(good.scores), logp: on(good.logp), refLogp: on(good.refLogp), cuSeqlens: on(good.cuSeqlens), groupScores: on(goodGroup.scores),
      groupOffsets: on(Int32Array.from([0, 3, 6])) };
    try {
      expectThrows(() => shapeRewards({ ...good, scores: t.scores }), DEVICE, 'logp');
      expectThrows(() => shapeRewards({ ...good, refLogp: t.refLogp }), DEVICE, 'refLogp');
      expectThrows(() => shapeRewards({ ...good, cuSeqlens: t.cuSeqlens }), DEVICE, 'cuSeqlens');
      expectThrows(() => groupAdvantages({ ...goodGroup, scores: t.groupScores }), DEVICE, 'cuSeqlens');
      expectThrows(() => groupAdvantages({ scores: goodGroup.scores, groupOffsets: t.groupOffsets }), DEVICE, 'groupOffsets');
      const deviceInputs = { scores: t.scores, logp: t.logp, refLogp: t.refLogp, cuSeqlens: t.cuSeqlens };
      expectThrows(() => shapeRewards({ ...deviceInputs, actionMask: good.actionMask }), DEVICE, 'actionMask');
      expectThrows(() => shapeRewards({ ...deviceInputs, endedWithEos: good.endedWithEos }), DEVICE, 'endedWithEos');
      expectThrows(() => shapeRewards({ ...deviceInputs, out: { rewards: new Float32Array(N) as never } }), DEVICE, 'out.rewards');
      expectThrows(() => shapeRewards({ ...deviceInputs, out: { shapedScores: new Float32Array(B) as never } }), DEVICE, 'out.shapedScores');
      const groupOnDevice = { scores: t.groupScores, groupSize: 3 };
      expectThrows(() => groupAdvantages({ ...groupOnDevice, out: { advantages: new Float32Array(6) as never } }), DEVICE, 'out.advantages');
    } finally {
      for (const tensor of Object.values(t)) tensor.dispose();
    }
  });
});
