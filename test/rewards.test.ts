// shapeRewards, RewardNormalizer and groupAdvantages against the float64 reference (test/reference/rewards.ts)
// on every backend, through Tensors and typed arrays, sync and Promise; the trainer bugs of notes/anchors.md
// (score on the last action token, padding never counted, the reported KL is the penalty's estimator);
// determinism, and parity of every other backend with cpu. The kernels are forward-only (no gradients).
import { afterEach, describe, expect, it } from 'vitest';
import {
  groupAdvantages, groupAdvantagesAsync, RewardNormalizer, shapeRewards, shapeRewardsAsync,
  type GroupEstimator, type ShapeRewardsInput,
} from '../lib/ops/rewards.js';
import type { KlEstimator } from '../lib/ops/rl-loss.js';
import {
  groupAdvantagesReference, momentsOf, shapeRewardsReference, type NormalizerStateReference,
} from './reference/rewards.js';
import { Rng, cuSeqlensOf, randomF32, randomLengths, randomMask } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectNonTrivial } from './helpers/assert.js';

afterEach(disposeTensors);

const ESTIMATORS: KlEstimator[] = ['k1', 'k2', 'k3'];
const GROUP_ESTIMATORS: GroupEstimator[] = ['grpo', 'dr-grpo', 'rloo'];

// Rewards are f32 sums of a KL term (k3's exp: a few ulp) and the shaped score; shaped scores and
// advantages are f64 math rounded to f32 once. Stats are f64 sums of f32 terms.
const VALUE_TOL = { rel: 4e-6 };
const STAT_TOL = 1e-5;

function expectScalarClose(got: number, want: number, what: string, rel = STAT_TOL) {
  expect(Math.abs(got - want), `${what}: got ${got}, reference ${want}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(want)));
}

/** A rollout: per sequence a prompt (mask 0), the response (1) and trailing padding (0); scores and EOS flags. */
function rollout(rng: Rng, lengths: number[]) {
  const cuSeqlens = cuSeqlensOf(lengths);
  const n = cuSeqlens[lengths.length];
  const actionMask = new Uint8Array(n);
  for (let b = 0; b < lengths.length; b++) {
    const start = cuSeqlens[b], len = lengths[b];
    const prompt = rng.int(0, Math.floor(len / 2)), pad = rng.int(0, Math.floor((len - prompt) / 3));
    actionMask.fill(1, start + prompt, start + len - pad);
  }
  const logp = randomF32(rng, n, -4, 0);
  const refLogp = logp.map((x) => x + rng.uniform(-0.8, 0.8));
  return {
    scores: randomF32(rng, lengths.length, -3, 3), logp, refLogp, cuSeqlens, actionMask,
    endedWithEos: randomMask(rng, lengths.length, 0.7),
  };
}

const freshState = (shiftMean = true, eps = 1e-8): NormalizerStateReference => ({ count: 0, mean: 0, m2: 0, shiftMean, eps });

/** Checks one shapeRewards result (arrays already read back) against the reference. */
function expectShapeMatches(got: { rewards: ArrayLike<number>; shapedScores: ArrayLike<number>; stats: Record<string, number> },
  want: ReturnType<typeof shapeRewardsReference>) {
  expectClose(got.rewards, want.rewards, VALUE_TOL);
  expectClose(got.shapedScores, want.shapedScores, VALUE_TOL);
  for (const key of ['kl', 'klPerSequence', 'score', 'shapedScore'] as const) expectScalarClose(got.stats[key], want.stats[key], key);
  for (const key of ['missingEos', 'actionTokens', 'activeSeqs'] as const) expect(got.stats[key], key).toBe(want.stats[key]);
}

function expectNormalizerMatches(normalizer: RewardNormalizer, want: NormalizerStateReference) {
  expect(normalizer.count).toBe(want.count);
  expectScalarClose(normalizer.mean, want.mean, 'normalizer mean', 1e-12);
  expectScalarClose(normalizer.variance, want.m2 / want.count, 'normalizer variance', 1e-12);
  expect(normalizer.state().shiftMean).toBe(want.shiftMean);
}

describe.each(backendsUnderTest)('shapeRewards on $backend', ({ device }) => {
  type Options = Pick<ShapeRewardsInput<Float32Array>, 'klEstimator' | 'klClamp' | 'klCoef' | 'missingEosPenalty' | 'scoreClip'>;
  interface Case { name: string; lengths: number[]; options: Options; normalize?: { shiftMean: boolean } }
  const rng = new Rng(404);
  const cases: Case[] = [];
  for (const klEstimator of ESTIMATORS)
    for (const klClamp of [Infinity, 0.05])
      cases.push({ name: `${klEstimator}, klClamp ${klClamp}, ragged`, lengths: [...randomLengths(rng, 17, 70), 0, 1], options: { klEstimator, klClamp, klCoef: 0.1 } });
  cases.push({ name: 'missing-EOS penalty and score clip', lengths: randomLengths(rng, 23, 40), options: { missingEosPenalty: 1.5, scoreClip: 2 } });
  cases.push({ name: 'normalizer with shift', lengths: randomLengths(rng, 31, 50), options: { klEstimator: 'k3', missingEosPenalty: 0.5 }, normalize: { shiftMean: true } });
  cases.push({ name: 'normalizer without shift, clipped', lengths: randomLengths(rng, 9, 50), options: { scoreClip: 1 }, normalize: { shiftMean: false } });
  cases.push({ name: 'one token', lengths: [1], options: { klEstimator: 'k2' } });
  cases.push({ name: 'large (prime count, long sequences)', lengths: [...randomLengths(rng, 61, 1500), 4099, 9001], options: { klEstimator: 'k3', klCoef: 0.05 } });

  it.each(cases)('$name matches the reference', async ({ lengths, options, normalize }) => {
    const batch = rollout(new Rng(lengths.length * 13 + 1), lengths);
    const input = { ...batch, ...options };
    // A normalizer that has already seen scores, so the merge (not just this batch's moments) is checked.
    const seen = momentsOf([0.5, -1.25, 2, 3.5]);
    const before = normalize ? { ...seen, shiftMean: normalize.shiftMean, eps: 1e-8 } : undefined;
    const want = shapeRewardsReference({ ...input, normalizerState: before });
    expect(want.stats.actionTokens).toBeGreaterThan(0);
    expectNonTrivial(want.rewards);
    // Tensors on the backend, sync and Promise; on cpu also typed arrays (which always run on the cpu).
    for (const form of device === 'cpu' ? ['sync', 'async', 'typed arrays'] as const : ['sync', 'async'] as const) {
      const normalizer = before ? RewardNormalizer.fromState(before) : undefined;
      const got = form === 'typed arrays' ? await shapeRewardsAsync({ ...input, normalizer })
        : form === 'sync' ? shapeRewards({ ...recordOn(input, device), normalizer }) : await shapeRewardsAsync({ ...recordOn(input, device), normalizer });
      expectShapeMatches({ rewards: readBack(got.rewards), shapedScores: readBack(got.shapedScores), stats: { ...got.stats } }, want);
      if (normalizer) expectNormalizerMatches(normalizer, want.normalizerState!);
      expect(Object.keys(got).sort()).toEqual(['rewards', 'shapedScores', 'stats']);
    }
  });

  it('typed arrays in, typed arrays out, the same as Tensors', () => {
    const input = { ...rollout(new Rng(6), [12, 30, 5]), klEstimator: 'k3' as const };
    const viaArrays = shapeRewards(input);
    expect(viaArrays.rewards).toBeInstanceOf(Float32Array);
    expect(viaArrays.shapedScores).toBeInstanceOf(Float32Array);
    const viaTensors = shapeRewards(recordOn(input, device));
    if (device === 'cpu') expectBitwiseEqual(readBack(viaTensors.rewards), viaArrays.rewards);
    else expectClose(readBack(viaTensors.rewards), viaArrays.rewards, VALUE_TOL);
  });

  it('the score lands on the last action token: never on the padding after it, nor on a prompt token', () => {
    const batch = rollout(new Rng(12), [9, 14, 6, 20, 11]);
    // Make sure the layout under test is there: a prompt, then the response, then padding, in each sequence.
    const lengths = [9, 14, 6, 20, 11], cu = batch.cuSeqlens;
    for (let b = 0; b < lengths.length; b++) batch.actionMask.fill(0, cu[b], cu[b + 1]).fill(1, cu[b] + 2, cu[b + 1] - 2);
    const want = shapeRewardsReference({ ...batch, klCoef: 0 });
    const got = shapeRewards(recordOn({ ...batch, klCoef: 0 }, device));
    const rewards = readBack(got.rewards), shaped = readBack(got.shapedScores);
    for (let b = 0; b < lengths.length; b++) {
      const last = cu[b + 1] - 3;
      expect(want.lastAction[b]).toBe(last);
      for (let t = cu[b]; t < cu[b + 1]; t++) {
        // Object.is: exactly +0 off the last action token (a zero penalty is never -0).
        if (t === last) expect(rewards[t], `sequence ${b}: its score at ${t}`).toBe(shaped[b]);
        else expect(Object.is(rewards[t], 0), `sequence ${b}: token ${t} is exactly 0, got ${rewards[t]}`).toBe(true);
      }
      expect(shaped[b]).toBe(batch.scores[b]);
    }
    // With a KL penalty, prompt and padding tokens still get exactly 0.
    const withKl = readBack(shapeRewards(recordOn({ ...batch, klCoef: 0.3 }, device)).rewards);
    for (let t = 0; t < withKl.length; t++) if (!batch.actionMask[t]) expect(Object.is(withKl[t], 0)).toBe(true);
  });

  it('padding is never counted: garbage on non-action tokens changes nothing', () => {
    const batch = rollout(new Rng(13), [40, 25, 31, 7]);
    const base = shapeRewards(recordOn({ ...batch, klEstimator: 'k3' as const, klCoef: 0.2 }, device));
    const logp = batch.logp.slice(), refLogp = batch.refLogp.slice();
    for (let t = 0; t < logp.length; t++) if (!batch.actionMask[t]) [logp[t], refLogp[t]] = [Number.NaN, t % 2 ? Infinity : -1e30];
    const noisy = shapeRewards(recordOn({ ...batch, logp, refLogp, klEstimator: 'k3' as const, klCoef: 0.2 }, device));
    expectBitwiseEqual(readBack(noisy.rewards), readBack(base.rewards));
    expect(noisy.stats).toEqual(base.stats);
    const want = shapeRewardsReference({ ...batch, klEstimator: 'k3', klCoef: 0.2 });
    expect(noisy.stats.actionTokens).toBe(batch.actionMask.reduce((a, m) => a + m, 0));
    expectScalarClose(noisy.stats.kl, want.stats.kl, 'kl');
  });

  it.each(ESTIMATORS)('the reported kl is the penalty estimator %s itself', (klEstimator) => {
    const batch = rollout(new Rng(14), randomLengths(new Rng(15), 12, 60));
    const klCoef = 0.25;
    const got = shapeRewards(recordOn({ ...batch, klEstimator, klCoef }, device));
    const rewards = readBack(got.rewards), shaped = readBack(got.shapedScores);
    // Sum of the rewards = -klCoef * (kl mean * action tokens) + the shaped scores of the active sequences.
    const want = shapeRewardsReference({ ...batch, klEstimator, klCoef });
    let rewardSum = 0, scoreSum = 0;
    for (const r of rewards) rewardSum += r;
    want.lastAction.forEach((last, b) => { if (last >= 0) scoreSum += shaped[b]; });
    const charged = -klCoef * got.stats.kl * got.stats.actionTokens;
    expect(Math.abs(rewardSum - (charged + scoreSum))).toBeLessThanOrEqual(1e-5 * (Math.abs(charged) + Math.abs(scoreSum) + 1));
    expectScalarClose(got.stats.kl, want.stats.kl, 'kl');
    expectScalarClose(got.stats.klPerSequence * got.stats.activeSeqs, got.stats.kl * got.stats.actionTokens, 'kl per sequence');
    // And the estimator matters: the other two give different numbers.
    for (const other of ESTIMATORS.filter((e) => e !== klEstimator))
      expect(shapeRewards(recordOn({ ...batch, klEstimator: other, klCoef }, device)).stats.kl).not.toBeCloseTo(got.stats.kl, 3);
  });

  it('missing-EOS penalty: subtracted exactly from sequences without EOS, and counted', () => {
    const batch = rollout(new Rng(16), randomLengths(new Rng(17), 20, 30));
    const penalty = 0.75;
    const got = shapeRewards(recordOn({ ...batch, missingEosPenalty: penalty }, device));
    const shaped = readBack(got.shapedScores);
    const missing = batch.endedWithEos.filter((e) => e === 0).length;
    expect(missing).toBeGreaterThan(0);
    expect(got.stats.missingEos).toBe(missing);
    for (let b = 0; b < shaped.length; b++)
      expect(shaped[b]).toBe(batch.endedWithEos[b] ? batch.scores[b] : Math.fround(batch.scores[b] - penalty));
    // Flags with no penalty: scores pass unchanged, the count is still reported.
    const unpenalized = shapeRewards(recordOn(batch, device));
    expectBitwiseEqual(readBack(unpenalized.shapedScores), batch.scores);
    expect(unpenalized.stats.missingEos).toBe(missing);
    expectScalarClose(unpenalized.stats.score, got.stats.score, 'raw score mean does not include the penalty', 1e-12);
  });

  it('score clip: exactly on the bound passes, beyond it clips', () => {
    const scores = Float32Array.from([2, -2, 2.5, -7, 1.25, Math.fround(2.0000002)]);
    const lengths = [3, 1, 4, 2, 5, 2];
    const input = { ...rollout(new Rng(18), lengths), scores, scoreClip: 2 };
    const shaped = readBack(shapeRewards(recordOn(input, device)).shapedScores);
    expect(Array.from(shaped)).toEqual([2, -2, 2, -2, 1.25, 2]);
  });

  it('normalizer: the running state over several batches is the f64 moments of every score seen', async () => {
    for (const shiftMean of [true, false]) {
      const normalizer = new RewardNormalizer({ shiftMean, eps: 1e-6 });
      const rng = new Rng(shiftMean ? 19 : 20);
      const seen: number[] = [];
      let state = freshState(shiftMean, 1e-6);
      for (const [b, form] of [[7, 'sync'], [1, 'async'], [33, 'sync'], [12, 'async'], [0, 'sync']] as const) {
        const batch = { ...rollout(rng, randomLengths(rng, b, 20)), missingEosPenalty: 0.5 };
        const want = shapeRewardsReference({ ...batch, normalizerState: state });
        const input = { ...recordOn(batch, device), normalizer };
        const got = form === 'sync' ? shapeRewards(input) : await shapeRewardsAsync(input);
        expectClose(readBack(got.shapedScores), want.shapedScores, VALUE_TOL);
        for (let i = 0; i < b; i++) seen.push(batch.endedWithEos[i] ? batch.scores[i] : Math.fround(batch.scores[i] - 0.5));
        const all = momentsOf(seen);
        expectNormalizerMatches(normalizer, { ...all, shiftMean, eps: 1e-6 });
        state = want.normalizerState!;
      }
      expect(normalizer.count).toBe(53);
    }
  });

  it('normalizer: while the scores seen have no spread it only shifts them (never scales by 1 / sqrt(eps))', () => {
    for (const shiftMean of [true, false]) {
      const normalizer = new RewardNormalizer({ shiftMean });
      const batch = { ...rollout(new Rng(23), [3, 5]), scores: Float32Array.from([2, 2]) };
      const first = readBack(shapeRewards({ ...recordOn(batch, device), normalizer }).shapedScores);
      expect(Array.from(first)).toEqual(shiftMean ? [0, 0] : [2, 2]);
      // The next batch brings spread (running variance 0.5): now the scores are scaled by the running std.
      const next = { ...batch, scores: Float32Array.from([1, 3]) };
      const want = shapeRewardsReference({ ...next, normalizerState: normalizer.state() });
      const got = readBack(shapeRewards({ ...recordOn(next, device), normalizer }).shapedScores);
      expectClose(got, want.shapedScores, VALUE_TOL);
      expect(normalizer.variance).toBe(0.5);
      expect(Array.from(got)).not.toEqual(Array.from(next.scores));
    }
  });

  it('normalizer: save/restore through JSON continues identically', () => {
    const rng = new Rng(21);
    const batches = [5, 9, 3, 14].map((b) => rollout(rng, randomLengths(rng, b, 25)));
    const original = new RewardNormalizer({ shiftMean: false });
    for (const batch of batches.slice(0, 2)) shapeRewards({ ...recordOn(batch, device), normalizer: original });
    const restored = RewardNormalizer.fromState(JSON.parse(JSON.stringify(original.state())));
    expect(restored.state()).toEqual(original.state());
    for (const batch of batches.slice(2)) {
      const a = shapeRewards({ ...recordOn(batch, device), normalizer: original });
      const b = shapeRewards({ ...recordOn(batch, device), normalizer: restored });
      expectBitwiseEqual(readBack(b.rewards), readBack(a.rewards));
      expectBitwiseEqual(readBack(b.shapedScores), readBack(a.shapedScores));
      expect(restored.state()).toEqual(original.state());
    }
  });

  it('a normalizer in use by an unsettled async call cannot be used by another call', async () => {
    const normalizer = new RewardNormalizer();
    const batch = recordOn(rollout(new Rng(22), [4, 6]), device);
    const first = shapeRewardsAsync({ ...batch, normalizer });
    expect(() => shapeRewards({ ...batch, normalizer })).toThrow(/has not settled/);
    await first;
    expect(normalizer.count).toBe(2);
    shapeRewards({ ...batch, normalizer });
    expect(normalizer.count).toBe(4);
  });

  it('an all-masked sequence gets no reward anywhere; a one-token response gets -klCoef * kl + its score', () => {
    const batch = rollout(new Rng(23), [8, 5, 1, 6]);
    const cu = batch.cuSeqlens;
    batch.actionMask.fill(0, cu[1], cu[2]);  // sequence 1: nothing is an action
    batch.actionMask.fill(0, cu[3], cu[4]).fill(1, cu[3] + 2, cu[3] + 3);  // sequence 3: one action token
    batch.actionMask[cu[2]] = 1;  // sequence 2: a single token, which is an action
    const klCoef = 0.5;
    const got = shapeRewards(recordOn({ ...batch, klCoef, klEstimator: 'k2' as const }, device));
    const rewards = readBack(got.rewards), shaped = readBack(got.shapedScores);
    for (let t = cu[1]; t < cu[2]; t++) expect(Object.is(rewards[t], 0)).toBe(true);
    expect(shaped[1]).toBe(batch.scores[1]);  // still reported
    for (const t of [cu[2], cu[3] + 2]) {
      const d = Math.fround(batch.logp[t] - batch.refLogp[t]);
      const b = t === cu[2] ? 2 : 3;
      expect(Math.abs(rewards[t] - (-klCoef * 0.5 * d * d + shaped[b]))).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(shaped[b])));
    }
    expect(got.stats.activeSeqs).toBe(3);
    expectShapeMatches({ rewards, shapedScores: shaped, stats: { ...got.stats } }, shapeRewardsReference({ ...batch, klCoef, klEstimator: 'k2' }));
  });

  it('empty batches and empty sequences', () => {
    const none = shapeRewards(recordOn({ scores: new Float32Array(0), logp: new Float32Array(0), refLogp: new Float32Array(0), cuSeqlens: Int32Array.from([0]) }, device));
    expect(readBack(none.rewards).length).toBe(0);
    expect(none.stats).toEqual({ kl: 0, klPerSequence: 0, score: 0, shapedScore: 0, missingEos: 0, actionTokens: 0, activeSeqs: 0 });
    const scores = Float32Array.from([1.5, -0.5, 2]);
    const empty = shapeRewards(recordOn({ scores, logp: new Float32Array(0), refLogp: new Float32Array(0), cuSeqlens: Int32Array.from([0, 0, 0, 0]) }, device));
    expectBitwiseEqual(readBack(empty.shapedScores), scores);
    expect(empty.stats.activeSeqs).toBe(0);
  });

  it('is bitwise reproducible run to run', () => {
    const input = recordOn({ ...rollout(new Rng(24), randomLengths(new Rng(25), 50, 400)), klEstimator: 'k3' as const }, device);
    const first = shapeRewards(input), second = shapeRewards(input);
    expectBitwiseEqual(readBack(second.rewards), readBack(first.rewards));
    expect(second.stats).toEqual(first.stats);
  });
});

describe.each(backendsUnderTest)('groupAdvantages on $backend', ({ device }) => {
  const rng = new Rng(505);
  const ragged = Int32Array.from([0, 4, 5, 5, 12, 14, 31, 38]);  // sizes 4, 1, 0, 7, 2, 17, 7
  const cases = [
    ...GROUP_ESTIMATORS.flatMap((estimator) => [true, false].map((unbiased) => ({ name: `${estimator}, unbiased ${unbiased}, groupSize 8`, B: 64, options: { estimator, unbiased, groupSize: 8 } }))),
    ...GROUP_ESTIMATORS.map((estimator) => ({ name: `${estimator}, ragged groupOffsets`, B: 38, options: { estimator, groupOffsets: ragged } })),
    { name: 'grpo, large groups (wider than a warp), prime count', B: 211 * 3, options: { groupSize: 211, eps: 1e-3 } },
  ];

  it.each(cases)('$name matches the reference, and broadcasts to action tokens only', async ({ B, options }) => {
    const scores = randomF32(rng, B, -2, 3);
    const lengths = randomLengths(rng, B, 12);
    const cuSeqlens = cuSeqlensOf(lengths);
    const actionMask = randomMask(rng, cuSeqlens[B], 0.7);
    const input = { scores, cuSeqlens, actionMask, ...options };
    const want = groupAdvantagesReference(input);
    expectNonTrivial(want.advantages);
    for (const form of device === 'cpu' ? ['sync', 'async', 'typed arrays'] as const : ['sync', 'async'] as const) {
      const got = form === 'typed arrays' ? await groupAdvantagesAsync(input)
        : form === 'sync' ? groupAdvantages(recordOn(input, device)) : await groupAdvantagesAsync(recordOn(input, device));
      if (form === 'typed arrays') expect(got.advantages).toBeInstanceOf(Float32Array);
      expectClose(readBack(got.advantages), want.advantages, { rel: 1e-6 });
      const tokens = readBack(got.tokenAdvantages!);
      expectClose(tokens, want.tokenAdvantages!, { rel: 1e-6 });
      for (let t = 0; t < tokens.length; t++) if (!actionMask[t]) expect(Object.is(tokens[t], 0)).toBe(true);
    }
    const plain = groupAdvantages(recordOn({ scores, ...options }, device));
    expect(plain.tokenAdvantages).toBeUndefined();
    expectClose(readBack(plain.advantages), want.advantages, { rel: 1e-6 });
  });

  it('groups of one completion give 0 under every estimator (documented: no baseline)', () => {
    const scores = randomF32(new Rng(30), 9, -3, 3);
    for (const estimator of GROUP_ESTIMATORS) {
      const got = readBack(groupAdvantages(recordOn({ scores, groupSize: 1, estimator }, device)).advantages);
      expect(Array.from(got)).toEqual(new Array(9).fill(0));
      const ragged = readBack(groupAdvantages(recordOn({ scores, groupOffsets: Int32Array.from([0, 3, 4, 9]), estimator }, device)).advantages);
      expect(ragged[3]).toBe(0);
      expect(ragged[0]).not.toBe(0);
    }
  });

  it('GRPO vs Dr.GRPO vs RLOO, and unbiased on/off, relate as their definitions say', () => {
    const scores = randomF32(new Rng(31), 40, -1, 2);
    const G = 5;
    const run = (options: object) => readBack(groupAdvantages(recordOn({ scores, groupSize: G, ...options }, device)).advantages);
    const dr = run({ estimator: 'dr-grpo' }), rloo = run({ estimator: 'rloo' });
    const unbiased = run({ estimator: 'grpo', eps: 1e-30 }), biased = run({ estimator: 'grpo', eps: 1e-30, unbiased: false });
    for (let g = 0; g < 40 / G; g++) {
      const group = Array.from(scores.slice(g * G, g * G + G));
      const { m2 } = momentsOf(group);
      let sumDr = 0;
      for (let i = g * G; i < g * G + G; i++) {
        sumDr += dr[i];
        expect(Math.abs(rloo[i] - (G / (G - 1)) * dr[i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(rloo[i])));
        expect(Math.abs(unbiased[i] - dr[i] / Math.sqrt(m2 / (G - 1)))).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(unbiased[i])));
        expect(Math.abs(biased[i] - dr[i] / Math.sqrt(m2 / G))).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(biased[i])));
      }
      expect(Math.abs(sumDr)).toBeLessThanOrEqual(1e-5);  // Dr.GRPO advantages are centred per group
    }
  });

  it('a constant group gives 0, not NaN (std 0 + eps)', () => {
    const scores = Float32Array.from([0.7, 0.7, 0.7, 0.7, -1, 2, 0.5, 0.25]);
    for (const estimator of GROUP_ESTIMATORS) {
      const got = readBack(groupAdvantages(recordOn({ scores, groupSize: 4, estimator }, device)).advantages);
      expect(Array.from(got.slice(0, 4))).toEqual([0, 0, 0, 0]);
      expect(got.slice(4).every((x) => Number.isFinite(x) && x !== 0)).toBe(true);
    }
  });

  it('without a mask every token of a completion gets its advantage; typed arrays stay typed arrays', () => {
    const scores = randomF32(new Rng(32), 6, -1, 1);
    const cuSeqlens = cuSeqlensOf([3, 0, 1, 4, 2, 5]);
    const viaArrays = groupAdvantages({ scores, groupSize: 3, cuSeqlens });
    expect(viaArrays.advantages).toBeInstanceOf(Float32Array);
    const tokens = viaArrays.tokenAdvantages as Float32Array;
    for (let b = 0; b < 6; b++) for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) expect(tokens[t]).toBe(viaArrays.advantages[b]);
    const viaTensors = groupAdvantages(recordOn({ scores, groupSize: 3, cuSeqlens }, device));
    expectClose(readBack(viaTensors.tokenAdvantages!), tokens, { rel: 1e-6 });
  });

  it('an empty batch', () => {
    const got = groupAdvantages(recordOn({ scores: new Float32Array(0), groupOffsets: Int32Array.from([0, 0]), cuSeqlens: Int32Array.from([0]) }, device));
    expect(readBack(got.advantages).length).toBe(0);
    expect(readBack(got.tokenAdvantages!).length).toBe(0);
  });

  it('is bitwise reproducible run to run', () => {
    const scores = randomF32(new Rng(33), 512, -1, 1);
    const cuSeqlens = cuSeqlensOf(randomLengths(new Rng(34), 512, 40));
    const input = recordOn({ scores, groupSize: 16, cuSeqlens, actionMask: randomMask(new Rng(35), cuSeqlens[512], 0.8) }, device);
    const first = groupAdvantages(input), second = groupAdvantages(input);
    expectBitwiseEqual(readBack(second.advantages), readBack(first.advantages));
    expectBitwiseEqual(readBack(second.tokenAdvantages!), readBack(first.tokenAdvantages!));
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('$backend matches cpu on the reward kernels', ({ device }) => {
  it.each(ESTIMATORS)('shapeRewards, %s, with every option', (klEstimator) => {
    const batch = rollout(new Rng(40), [...randomLengths(new Rng(41), 150, 90), 2000, 0, 1]);
    const options = { klEstimator, klCoef: 0.1, klClamp: 0.3, missingEosPenalty: 1, scoreClip: 1.5 };
    const state = { count: 10, mean: 0.25, m2: 30, shiftMean: true, eps: 1e-8 };
    const cpu = RewardNormalizer.fromState(state), other = RewardNormalizer.fromState(state);
    const want = shapeRewards({ ...recordOn(batch, 'cpu'), ...options, normalizer: cpu });
    const got = shapeRewards({ ...recordOn(batch, device), ...options, normalizer: other });
    expectClose(readBack(got.rewards), readBack(want.rewards), VALUE_TOL);
    expectClose(readBack(got.shapedScores), readBack(want.shapedScores), VALUE_TOL);
    for (const key of ['kl', 'klPerSequence', 'score', 'shapedScore'] as const) expectScalarClose(got.stats[key], want.stats[key], key);
    for (const key of ['missingEos', 'actionTokens', 'activeSeqs'] as const) expect(got.stats[key]).toBe(want.stats[key]);
    expect(other.count).toBe(cpu.count);
    expectScalarClose(other.mean, cpu.mean, 'mean', 1e-14);
    expectScalarClose(other.variance, cpu.variance, 'variance', 1e-14);
  });

  it.each(GROUP_ESTIMATORS)('groupAdvantages, %s', (estimator) => {
    const scores = randomF32(new Rng(42), 300, -5, 5);
    const groupOffsets = Int32Array.from([0, 1, 1, 33, 40, 64, 65, 100, 164, 300]);
    const cuSeqlens = cuSeqlensOf(randomLengths(new Rng(43), 300, 30));
    const actionMask = randomMask(new Rng(44), cuSeqlens[300], 0.6);
    const input = { scores, groupOffsets, estimator, cuSeqlens, actionMask };
    const want = groupAdvantages(recordOn(input, 'cpu')), got = groupAdvantages(recordOn(input, device));
    expectClose(readBack(got.advantages), readBack(want.advantages), { rel: 1e-6 });
    expectClose(readBack(got.tokenAdvantages!), readBack(want.tokenAdvantages!), { rel: 1e-6 });
  });
});
