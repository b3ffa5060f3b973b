// dpoLoss and rankingLoss against the float64 reference (test/reference/preference.ts) on every backend,
// through Tensors and typed arrays, sync and Promise: values, gradients (also against central finite
// differences of the reference), stats, label smoothing, ties, mixed K, large margins, empty batches,
// determinism, and cuda-emu (or cuda) against cpu.
//
// Tolerances: each pair is evaluated in f64 from the f32 inputs, as the reference does, so the kernels differ
// from it only by the final f32 rounding of a gradient (<= 0.5 ulp, 6e-8 relative: bound 2e-7) and by f64
// summation order in the loss and stats (bound 1e-12 relative, 1e-10 for signed means that may cancel).
// Backends: the same f64 formulas, so counts match exactly and gradients within 1e-6 relative (a real GPU's
// f64 exp/log1p may differ by an ulp and flip an f32 rounding).
import { afterEach, describe, expect, it } from 'vitest';
import { dpoLoss, dpoLossAsync, rankingLoss, rankingLossAsync } from '../lib/index.js';
import { dpoLossReference, rankingLossReference, type DpoReferenceInput, type RankingReferenceInput } from './reference/preference.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectNonTrivial, maxAbs } from './helpers/assert.js';

afterEach(disposeTensors);

/**
 * |got - want| <= rel * |want| + slack * max|want| + 2^-149, per element: the slack covers partner terms that
 * cancel, and 2^-149 (the smallest f32 denormal) gradients like e^-200 that underflow in f32.
 */
function expectRelClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, slack = 1e-12) {
  expect(got.length).toBe(want.length);
  const floor = slack * maxAbs(want) + 2 ** -149;
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= rel * Math.abs(want[i]) + floor) && bad.length < 5) bad.push(`[${i}] got ${got[i]}, want ${want[i]}`);
  }
  expect(bad).toEqual([]);
}

function expectScalar(got: number, want: number, what: string, rel = 1e-12) {
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(want)));
}

const GRAD_REL = 2e-7;

// ---- data ------------------------------------------------------------------------------------------------

/** P pairs of summed sequence log-probs in [-300, -20); the reference within +-5 of the policy. */
function dpoBatch(rng: Rng, p: number) {
  const policyChosen = randomF32(rng, p, -300, -20), policyRejected = randomF32(rng, p, -300, -20);
  const near = (x: Float32Array) => Float32Array.from(x, (v) => v + rng.uniform(-5, 5));
  return { policyChosen, policyRejected, refChosen: near(policyChosen), refRejected: near(policyRejected) };
}

type RankMode = 'positional' | 'permutation' | 'ties';

/** Prompts of the given sizes, scores in [-2, 2); ranks omitted, a random permutation, or drawn with repeats. */
function rankingBatch(rng: Rng, sizes: number[], mode: RankMode): RankingReferenceInput & { scores: Float32Array; offsets: Int32Array; ranks?: Int32Array } {
  const offsets = new Int32Array(sizes.length + 1);
  sizes.forEach((k, p) => { offsets[p + 1] = offsets[p] + k; });
  const scores = randomF32(rng, offsets[sizes.length], -2, 2);
  if (mode === 'positional') return { scores, offsets };
  const ranks = new Int32Array(scores.length);
  sizes.forEach((k, p) => {
    const perm = Array.from({ length: k }, (_, j) => j);
    for (let j = k - 1; j > 0; j--) { const r = rng.int(0, j); [perm[j], perm[r]] = [perm[r], perm[j]]; }
    for (let j = 0; j < k; j++) ranks[offsets[p] + j] = mode === 'ties' ? rng.int(0, k - 1) : perm[j];
  });
  return { scores, offsets, ranks };
}

const mixedSizes = (rng: Rng, prompts: number) => [0, 1, 2, 9, 33, 0, 1, ...Array.from({ length: prompts }, () => rng.int(0, 12))];

// ---- DPO ---------------------------------------------------------------------------------------------------

function checkDpo(got: ReturnType<typeof dpoLoss>, want: ReturnType<typeof dpoLossReference>) {
  expectScalar(got.loss, want.loss, 'loss');
  expectRelClose(readBack(got.dPolicyChosen), want.dPolicyChosen, GRAD_REL, 0);
  expectRelClose(readBack(got.dPolicyRejected), want.dPolicyRejected, GRAD_REL, 0);
  expect(got.stats.rewardAccuracy).toBe(want.stats.rewardAccuracy);
  for (const key of ['rewardMargin', 'chosenReward', 'rejectedReward'] as const) expectScalar(got.stats[key], want.stats[key], key, 1e-10);
}

describe.each(backendsUnderTest)('dpoLoss on $backend', ({ device }) => {
  const cases = [
    { p: 1, beta: 0.1, labelSmoothing: 0 },
    { p: 2, beta: 0.5, labelSmoothing: 0.1 },
    { p: 7, beta: 1, labelSmoothing: 0.3 },
    { p: 97, beta: 0.1, labelSmoothing: 0 },
    { p: 2049, beta: 0.25, labelSmoothing: 0.05 },
    { p: 70_001, beta: 0.1, labelSmoothing: 0 },
  ];
  it.each(cases)('P = $p, beta $beta, labelSmoothing $labelSmoothing matches the reference', async ({ p, beta, labelSmoothing }) => {
    const input = { ...dpoBatch(new Rng(p), p), beta, labelSmoothing };
    const want = dpoLossReference(input);
    expectNonTrivial(want.dPolicyChosen);
    if (p > 50) expect(want.stats.rewardAccuracy).toBeGreaterThan(0);
    checkDpo(dpoLoss(recordOn(input, device)), want);
    checkDpo(await dpoLossAsync(recordOn(input, device)), want);
  });

  it('gradients match central finite differences of the reference', () => {
    for (const labelSmoothing of [0, 0.2]) {
      const input = { ...dpoBatch(new Rng(61), 13), beta: 0.5, labelSmoothing };
      const got = dpoLoss(recordOn(input, device));
      const h = 1e-3;
      for (const [key, grad] of [['policyChosen', readBack(got.dPolicyChosen)], ['policyRejected', readBack(got.dPolicyRejected)]] as const) {
        for (let i = 0; i < 13; i++) {
          const at = (delta: number) => {
            const x = Float64Array.from(input[key]);
            x[i] += delta;
            return dpoLossReference({ ...input, [key]: x } as DpoReferenceInput).loss;
          };
          const fd = (at(h) - at(-h)) / (2 * h);
          expect(Math.abs(grad[i] - fd), `${key}[${i}]: kernel ${grad[i]}, finite difference ${fd}`).toBeLessThanOrEqual(1e-5 * Math.abs(fd) + 1e-12);
        }
      }
    }
  });

  it('label smoothing: the per-pair optimum moves to z = log((1 - ls) / ls)', () => {
    // beta 1, references 0 (so z is the policy difference); with ls = 0.2 the optimum is z = log 4 = 1.386.
    const z = [-3, 0, 1, 1.25, 1.5, 3, 10];
    const input = { policyChosen: Float32Array.from(z, (v) => v - 40), policyRejected: Float32Array.from(z, () => -40),
      refChosen: new Float32Array(z.length), refRejected: new Float32Array(z.length), beta: 1 };
    const smoothed = dpoLoss(recordOn({ ...input, labelSmoothing: 0.2 }, device));
    const plain = dpoLoss(recordOn(input, device));
    expect(Array.from(readBack(smoothed.dPolicyChosen), Math.sign)).toEqual([-1, -1, -1, -1, 1, 1, 1]);
    expect(Array.from(readBack(plain.dPolicyChosen), Math.sign)).toEqual(new Array(z.length).fill(-1));
    checkDpo(smoothed, dpoLossReference({ ...input, labelSmoothing: 0.2 }));
    expect(smoothed.loss).toBeGreaterThan(plain.loss);
  });

  it('margins of +-200 and +-1e4 stay finite and match the reference', () => {
    const margins = [200, -200, 1e4, -1e4, 0.5];
    for (const labelSmoothing of [0, 0.1]) {
      const input = { policyChosen: Float32Array.from(margins, (m) => m / 2 - 60), policyRejected: Float32Array.from(margins, (m) => -m / 2 - 60),
        refChosen: new Float32Array(5).fill(-60), refRejected: new Float32Array(5).fill(-60), beta: 1, labelSmoothing };
      const got = dpoLoss(recordOn(input, device));
      expect(Number.isFinite(got.loss)).toBe(true);
      for (const d of [readBack(got.dPolicyChosen), readBack(got.dPolicyRejected)]) expect(Array.from(d).every(Number.isFinite)).toBe(true);
      checkDpo(got, dpoLossReference(input));
      // Without smoothing a pair at z = -200 costs 200 and one at z = +200 costs e^-200.
      if (labelSmoothing === 0) expectScalar(got.loss, (200 + Math.exp(-200) + 1e4 + Math.exp(-1e4) + Math.log1p(Math.exp(-0.5))) / 5, 'loss');
    }
  });

  it('P = 0 gives loss 0, zero stats and empty gradients', async () => {
    const empty = { policyChosen: new Float32Array(0), policyRejected: new Float32Array(0), refChosen: new Float32Array(0), refRejected: new Float32Array(0) };
    for (const got of [dpoLoss(recordOn(empty, device)), await dpoLossAsync(recordOn(empty, device))]) {
      expect(got.loss).toBe(0);
      expect(got.stats).toEqual({ rewardAccuracy: 0, rewardMargin: 0, chosenReward: 0, rejectedReward: 0 });
      expect(readBack(got.dPolicyChosen).length).toBe(0);
      expect(readBack(got.dPolicyRejected).length).toBe(0);
    }
  });

  it('is bitwise reproducible run to run', () => {
    const input = recordOn({ ...dpoBatch(new Rng(8), 9000), beta: 0.1, labelSmoothing: 0.1 }, device);
    const first = dpoLoss(input), second = dpoLoss(input);
    expect(second.loss).toBe(first.loss);
    expect(second.stats).toEqual(first.stats);
    expectBitwiseEqual(readBack(second.dPolicyChosen), readBack(first.dPolicyChosen));
    expectBitwiseEqual(readBack(second.dPolicyRejected), readBack(first.dPolicyRejected));
  });
});

describe('dpoLoss through typed arrays', () => {
  it('returns typed arrays, bitwise equal to cpu Tensors, sync and Promise', async () => {
    const input = { ...dpoBatch(new Rng(5), 33), beta: 0.2 };
    const viaArrays = dpoLoss(input);
    expect(viaArrays.dPolicyChosen).toBeInstanceOf(Float32Array);
    const viaTensors = dpoLoss(recordOn(input, 'cpu'));
    expectBitwiseEqual(readBack(viaTensors.dPolicyChosen), viaArrays.dPolicyChosen);
    const viaPromise = await dpoLossAsync(input);
    expectBitwiseEqual(viaPromise.dPolicyRejected, viaArrays.dPolicyRejected);
    expect(viaPromise.loss).toBe(viaArrays.loss);
    checkDpo(viaArrays, dpoLossReference(input));
  });
});

// ---- ranking -------------------------------------------------------------------------------------------------

function checkRanking(got: ReturnType<typeof rankingLoss>, want: ReturnType<typeof rankingLossReference>) {
  expectScalar(got.loss, want.loss, 'loss');
  expectRelClose(readBack(got.dScores), want.dScores, GRAD_REL);
  expect(got.stats.pairs).toBe(want.stats.pairs);
  expect(got.stats.tiedPairs).toBe(want.stats.tiedPairs);
  expect(got.stats.rankedPrompts).toBe(want.stats.rankedPrompts);
  expectScalar(got.stats.accuracy, want.stats.accuracy, 'accuracy', 1e-15);
}

describe.each(backendsUnderTest)('rankingLoss on $backend', ({ device }) => {
  const rng = new Rng(303);
  const cases: { name: string; sizes: number[]; mode: RankMode }[] = [
    { name: 'K = 2, positional (chosen, rejected)', sizes: new Array(37).fill(2), mode: 'positional' },
    { name: 'K = 9, positional', sizes: new Array(64).fill(9), mode: 'positional' },
    { name: 'K = 9, permuted ranks', sizes: new Array(64).fill(9), mode: 'permutation' },
    { name: 'mixed K with K = 0 and K = 1 prompts, ties', sizes: mixedSizes(rng, 50), mode: 'ties' },
    { name: 'one prompt', sizes: [5], mode: 'permutation' },
    { name: 'large: 3001 prompts, K up to 100', sizes: [...mixedSizes(rng, 3000), 40, 100], mode: 'ties' },
  ];
  it.each(cases)('$name matches the reference', async ({ sizes, mode }) => {
    const input = rankingBatch(new Rng(sizes.length), sizes, mode);
    const want = rankingLossReference(input);
    expectNonTrivial(want.dScores);
    expect(want.stats.pairs).toBeGreaterThan(0);
    if (mode === 'ties' && sizes.length > 40) expect(want.stats.tiedPairs).toBeGreaterThan(0);
    checkRanking(rankingLoss(recordOn(input, device)), want);
    checkRanking(await rankingLossAsync(recordOn(input, device)), want);
  });

  it('ties are excluded from the loss and accuracy and counted in tiedPairs', () => {
    // One prompt, K = 4, ranks [0, 1, 1, 2]: C(4, 2) = 6 pairs, one tie (completions 1 and 2).
    const scores = Float32Array.from([0.5, -0.25, 1.5, 0.75]);
    const input = { scores, offsets: Int32Array.from([0, 4]), ranks: Int32Array.from([0, 1, 1, 2]) };
    const got = rankingLoss(recordOn(input, device));
    expect(got.stats).toEqual({ accuracy: 2 / 5, pairs: 5, tiedPairs: 1, rankedPrompts: 1 });  // 0 > 1 and 2 > 3 hold
    const sp = (x: number) => Math.log1p(Math.exp(x));  // -log sigmoid(w - l) = softplus(l - w)
    const pairs = [[0, 1], [0, 2], [0, 3], [1, 3], [2, 3]];
    expectScalar(got.loss, pairs.reduce((sum, [w, l]) => sum + sp(scores[l] - scores[w]), 0) / 6, 'loss');
    checkRanking(got, rankingLossReference(input));
    // A prompt whose completions all tie carries no preference: no pairs, and it is not counted.
    const allTied = rankingLoss(recordOn({ ...input, ranks: new Int32Array(4) }, device));
    expect(allTied.stats).toEqual({ accuracy: 0, pairs: 0, tiedPairs: 6, rankedPrompts: 0 });
    expect(allTied.loss).toBe(0);
    expect(Array.from(readBack(allTied.dScores))).toEqual([0, 0, 0, 0]);
  });

  it('an all-tied prompt next to ranked ones does not dilute their loss or gradients', () => {
    const ranked = { scores: Float32Array.from([0.5, -0.25, 1.5]), offsets: Int32Array.from([0, 3]), ranks: Int32Array.from([2, 0, 1]) };
    const alone = rankingLoss(recordOn(ranked, device));
    const mixed = rankingLoss(recordOn({
      scores: Float32Array.from([0.5, -0.25, 1.5, 0.3, -0.7]),
      offsets: Int32Array.from([0, 3, 5]),
      ranks: Int32Array.from([2, 0, 1, 1, 1]),
    }, device));
    expect(mixed.stats).toEqual({ ...alone.stats, tiedPairs: 1 });
    expect(mixed.loss).toBe(alone.loss);
    expect(Array.from(readBack(mixed.dScores))).toEqual([...Array.from(readBack(alone.dScores)), 0, 0]);
  });

  it('without ranks the position is the rank (bitwise the same as explicit positional ranks)', async () => {
    const input = rankingBatch(new Rng(17), mixedSizes(new Rng(18), 30), 'positional');
    const ranks = new Int32Array(input.scores.length);
    for (let p = 0; p + 1 < input.offsets.length; p++) for (let j = input.offsets[p]; j < input.offsets[p + 1]; j++) ranks[j] = j - input.offsets[p];
    const without = rankingLoss(recordOn(input, device));
    const withRanks = await rankingLossAsync(recordOn({ ...input, ranks }, device));
    expectBitwiseEqual(readBack(withRanks.dScores), readBack(without.dScores));
    expect(withRanks.loss).toBe(without.loss);
    expect(withRanks.stats).toEqual(without.stats);
  });

  it('K = 2 prompts give -mean log sigmoid(s_chosen - s_rejected), the same as dpoLoss with beta 1 and zero references', () => {
    const p = 41, rng2 = new Rng(23);
    const chosen = randomF32(rng2, p, -3, 3), rejected = randomF32(rng2, p, -3, 3);
    const scores = new Float32Array(2 * p);
    for (let i = 0; i < p; i++) [scores[2 * i], scores[2 * i + 1]] = [chosen[i], rejected[i]];
    const offsets = Int32Array.from({ length: p + 1 }, (_, i) => 2 * i);
    const ranked = rankingLoss(recordOn({ scores, offsets }, device));
    let direct = 0;
    for (let i = 0; i < p; i++) direct -= Math.log(1 / (1 + Math.exp(-(chosen[i] - rejected[i]))));
    expectScalar(ranked.loss, direct / p, 'loss vs -mean log sigmoid', 1e-12);
    const dpo = dpoLoss(recordOn({ policyChosen: chosen, policyRejected: rejected, refChosen: new Float32Array(p), refRejected: new Float32Array(p), beta: 1 }, device));
    expectScalar(ranked.loss, dpo.loss, 'loss vs dpoLoss');
    const d = readBack(ranked.dScores), dc = readBack(dpo.dPolicyChosen), dr = readBack(dpo.dPolicyRejected);
    expectRelClose(d.filter((_, j) => j % 2 === 0), dc, 1e-12, 0);
    expectRelClose(d.filter((_, j) => j % 2 === 1), dr, 1e-12, 0);
    expect(ranked.stats.accuracy).toBe(dpo.stats.rewardAccuracy);
  });

  it('gradients match central finite differences of the reference', () => {
    const input = rankingBatch(new Rng(29), [9, 0, 1, 4, 2, 9], 'ties');
    const got = readBack(rankingLoss(recordOn(input, device)).dScores);
    const h = 1e-4;
    let checked = 0;
    for (let j = 0; j < input.scores.length; j++) {
      const at = (delta: number) => {
        const scores = Float64Array.from(input.scores);
        scores[j] += delta;
        return rankingLossReference({ ...input, scores }).loss;
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      expect(Math.abs(got[j] - fd), `dScores[${j}]: kernel ${got[j]}, finite difference ${fd}`).toBeLessThanOrEqual(1e-5 * Math.abs(fd) + 1e-10);
      if (fd !== 0) checked++;
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('score gaps of +-200 stay finite and match the reference', () => {
    const input = { scores: Float32Array.from([100, -100, 0.5, -100, 100, 0]), offsets: Int32Array.from([0, 3, 6]) };
    const got = rankingLoss(recordOn(input, device));
    expect(Number.isFinite(got.loss)).toBe(true);
    expect(Array.from(readBack(got.dScores)).every(Number.isFinite)).toBe(true);
    checkRanking(got, rankingLossReference(input));
    // Prompt 0 loses 100.5 on one of its 3 pairs; prompt 1 ranks -100 above 100 and 0: 200 + 100 over 3 pairs.
    expectScalar(got.loss, (100.5 / 3 + 300 / 3) / 2, 'loss', 1e-12);
  });

  it('no pairs: P = 0, prompts of K = 0 only, and of K = 0 and 1 only', async () => {
    const batches = [
      { scores: new Float32Array(0), offsets: Int32Array.from([0]) },
      { scores: new Float32Array(0), offsets: Int32Array.from([0, 0, 0, 0]) },
      { scores: Float32Array.from([0.5, -1.25, 2]), offsets: Int32Array.from([0, 1, 1, 2, 3]), ranks: new Int32Array(3) },
    ];
    for (const input of batches) {
      for (const got of [rankingLoss(recordOn(input, device)), await rankingLossAsync(recordOn(input, device))]) {
        expect(got.loss).toBe(0);
        expect(got.stats).toEqual({ accuracy: 0, pairs: 0, tiedPairs: 0, rankedPrompts: 0 });
        expect(Array.from(readBack(got.dScores))).toEqual(new Array(input.scores.length).fill(0));
      }
    }
  });

  it('is bitwise reproducible run to run', () => {
    const input = recordOn(rankingBatch(new Rng(31), mixedSizes(new Rng(32), 2000), 'ties'), device);
    const first = rankingLoss(input), second = rankingLoss(input);
    expect(second.loss).toBe(first.loss);
    expect(second.stats).toEqual(first.stats);
    expectBitwiseEqual(readBack(second.dScores), readBack(first.dScores));
  });
});

describe('rankingLoss through typed arrays', () => {
  it('returns typed arrays, bitwise equal to cpu Tensors, sync and Promise; the documented example holds', async () => {
    const input = rankingBatch(new Rng(7), [9, 2, 0, 5, 1], 'permutation');
    const viaArrays = rankingLoss(input);
    expect(viaArrays.dScores).toBeInstanceOf(Float32Array);
    expectBitwiseEqual(readBack(rankingLoss(recordOn(input, 'cpu')).dScores), viaArrays.dScores);
    expectBitwiseEqual((await rankingLossAsync(input)).dScores, viaArrays.dScores);
    checkRanking(viaArrays, rankingLossReference(input));
    const example = { scores: new Float32Array([0.2, 1.3, -0.4, 0.9, 0.1]), offsets: new Int32Array([0, 3, 5]), ranks: new Int32Array([1, 0, 2, 0, 1]) };
    const got = rankingLoss(example);
    expect(got.stats).toEqual({ accuracy: 1, pairs: 4, tiedPairs: 0, rankedPrompts: 2 });
    checkRanking(got, rankingLossReference(example));
  });
});

// ---- backends against each other -------------------------------------------------------------------------

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('$backend matches cpu', ({ device }) => {
  it.each([1, 255, 257, 4099])('dpoLoss, P = %i', (p) => {
    const input = { ...dpoBatch(new Rng(p + 1), p), beta: 0.3, labelSmoothing: 0.15 };
    const cpu = dpoLoss(recordOn(input, 'cpu')), gpu = dpoLoss(recordOn(input, device));
    expectScalar(gpu.loss, cpu.loss, 'loss');
    expectRelClose(readBack(gpu.dPolicyChosen), readBack(cpu.dPolicyChosen), 1e-6, 0);
    expectRelClose(readBack(gpu.dPolicyRejected), readBack(cpu.dPolicyRejected), 1e-6, 0);
    expect(gpu.stats.rewardAccuracy).toBe(cpu.stats.rewardAccuracy);
    for (const key of ['rewardMargin', 'chosenReward', 'rejectedReward'] as const) expectScalar(gpu.stats[key], cpu.stats[key], key, 1e-10);
  });

  it.each(['positional', 'permutation', 'ties'] as const)('rankingLoss, mixed K, %s ranks', (mode) => {
    const input = rankingBatch(new Rng(99), mixedSizes(new Rng(98), 700), mode);
    const cpu = rankingLoss(recordOn(input, 'cpu')), gpu = rankingLoss(recordOn(input, device));
    expectScalar(gpu.loss, cpu.loss, 'loss');
    expectRelClose(readBack(gpu.dScores), readBack(cpu.dScores), 1e-6);
    expect(gpu.stats).toEqual(cpu.stats);
  });
});
