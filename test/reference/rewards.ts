// Float64 references for the reward kernels (native/core/kernels/rewards.h): the test oracle for every
// backend. As in rl_loss.ts, what the header computes in f32 before any decision (the log-ratio
// logp - refLogp that the KL clamps read, and the penalized score that the normalizer's moments are
// taken over) is reproduced with Math.fround, and the f32 hyperparameters are rounded as the kernels
// receive them; everything else is f64.
import type { ShapeRewardsStats } from '../../lib/ops/rewards.js';
import { klEstimateReference, type KlEstimatorName } from './rl_loss.js';

const f32 = Math.fround;

export interface MomentsReference {
  count: number;
  mean: number;
  m2: number;
}

export interface NormalizerStateReference extends MomentsReference {
  shiftMean: boolean;
  eps: number;
}

/** (count, mean, M2) of `xs`, two-pass in f64. */
export function momentsOf(xs: ArrayLike<number>): MomentsReference {
  const count = xs.length;
  if (count === 0) return { count: 0, mean: 0, m2: 0 };
  let sum = 0;
  for (let i = 0; i < count; i++) sum += xs[i];
  const mean = sum / count;
  let m2 = 0;
  for (let i = 0; i < count; i++) m2 += (xs[i] - mean) ** 2;
  return { count, mean, m2 };
}

/** Chan et al.'s merge of two summaries. */
export function mergeMoments(a: MomentsReference, b: MomentsReference): MomentsReference {
  if (b.count === 0) return { ...a };
  if (a.count === 0) return { ...b };
  const count = a.count + b.count, delta = b.mean - a.mean;
  return { count, mean: a.mean + delta * (b.count / count), m2: a.m2 + b.m2 + delta * delta * ((a.count * b.count) / count) };
}

export interface ShapeRewardsReferenceInput {
  scores: ArrayLike<number>;
  logp: ArrayLike<number>;
  refLogp: ArrayLike<number>;
  cuSeqlens: ArrayLike<number>;
  actionMask?: ArrayLike<number>;
  klCoef?: number;
  klEstimator?: KlEstimatorName;
  klClamp?: number;
  endedWithEos?: ArrayLike<number>;
  missingEosPenalty?: number;
  scoreClip?: number;
  /** The normalizer's state before this batch; omitted means no normalization. */
  normalizerState?: NormalizerStateReference;
}

export interface ShapeRewardsReference {
  rewards: Float64Array;
  shapedScores: Float64Array;
  /** The last action token of each sequence, -1 when it has none. */
  lastAction: number[];
  stats: ShapeRewardsStats;
  /** The normalizer's state after this batch (only with normalizerState). */
  normalizerState?: NormalizerStateReference;
}

export function shapeRewardsReference(input: ShapeRewardsReferenceInput): ShapeRewardsReference {
  const { scores, logp, refLogp, cuSeqlens, actionMask, endedWithEos } = input;
  const klCoef = f32(input.klCoef ?? 0.02), estimator = input.klEstimator ?? 'k1', klClamp = f32(input.klClamp ?? Infinity);
  const penalty = f32(input.missingEosPenalty ?? 0), clip = f32(input.scoreClip ?? Infinity);
  const numSeqs = scores.length;
  const isAction = (t: number) => !actionMask || actionMask[t] !== 0;

  const missing = (b: number) => endedWithEos !== undefined && endedWithEos[b] === 0;
  // The penalized score is f32 data in the kernels (the normalizer's moments are taken over it): rounded here too.
  const penalized = Array.from({ length: numSeqs }, (_, b) => (missing(b) ? f32(scores[b] - penalty) : scores[b]));
  let normalizerState: NormalizerStateReference | undefined;
  let shaped = penalized.slice();
  if (input.normalizerState) {
    const { shiftMean, eps } = input.normalizerState;
    const merged = mergeMoments(input.normalizerState, momentsOf(penalized));
    const variance = merged.count > 0 ? merged.m2 / merged.count : 0;
    const std = variance > 0 ? Math.sqrt(variance + f32(eps)) : 1;  // no spread yet: shift only
    shaped = penalized.map((s) => (s - (shiftMean ? merged.mean : 0)) / std);
    normalizerState = { ...merged, shiftMean, eps };
  }
  shaped = shaped.map((s) => Math.min(clip, Math.max(-clip, s)));

  const rewards = new Float64Array(logp.length);
  const lastAction: number[] = [];
  let klSum = 0, actionTokens = 0, activeSeqs = 0;
  for (let b = 0; b < numSeqs; b++) {
    let last = -1, seqActions = 0;
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) {
      if (!isAction(t)) continue;
      const kl = klEstimateReference(estimator, f32(logp[t] - refLogp[t]), klClamp).value;
      rewards[t] = -klCoef * kl;
      klSum += kl;
      seqActions++;
      last = t;
    }
    if (last >= 0) rewards[last] += shaped[b];
    lastAction.push(last);
    actionTokens += seqActions;
    if (seqActions > 0) activeSeqs++;
  }
  const mean = (sum: number, count: number) => (count > 0 ? sum / count : 0);
  const sum = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, x) => a + x, 0);
  return {
    rewards,
    shapedScores: Float64Array.from(shaped),
    lastAction,
    stats: {
      kl: mean(klSum, actionTokens),
      klPerSequence: mean(klSum, activeSeqs),
      score: mean(sum(scores), numSeqs),
      shapedScore: mean(sum(shaped), numSeqs),
      missingEos: endedWithEos ? Array.from(endedWithEos).filter((e) => e === 0).length : 0,
      actionTokens,
      activeSeqs,
    },
    ...(normalizerState ? { normalizerState } : {}),
  };
}

export type GroupEstimatorName = 'grpo' | 'dr-grpo' | 'rloo';

export interface GroupAdvantagesReferenceInput {
  scores: ArrayLike<number>;
  groupSize?: number;
  groupOffsets?: ArrayLike<number>;
  estimator?: GroupEstimatorName;
  eps?: number;
  unbiased?: boolean;
  cuSeqlens?: ArrayLike<number>;
  actionMask?: ArrayLike<number>;
}

/** Group offsets from either groupSize or groupOffsets. */
export function groupBounds(numScores: number, groupSize?: number, groupOffsets?: ArrayLike<number>): number[] {
  if (groupOffsets) return Array.from(groupOffsets);
  const bounds = [0];
  for (let i = groupSize as number; i <= numScores; i += groupSize as number) bounds.push(i);
  return bounds;
}

export function groupAdvantagesReference(input: GroupAdvantagesReferenceInput): { advantages: Float64Array; tokenAdvantages?: Float64Array } {
  const { scores, cuSeqlens, actionMask } = input;
  const estimator = input.estimator ?? 'grpo', eps = f32(input.eps ?? 1e-6), unbiased = input.unbiased ?? true;
  const bounds = groupBounds(scores.length, input.groupSize, input.groupOffsets);
  const advantages = new Float64Array(scores.length);
  for (let g = 0; g + 1 < bounds.length; g++) {
    const lo = bounds[g], size = bounds[g + 1] - lo;
    if (size < 2) continue;  // no baseline: 0
    const { mean, m2 } = momentsOf(Array.from(scores).slice(lo, lo + size));
    const std = Math.sqrt(m2 / (unbiased ? size - 1 : size));
    for (let i = lo; i < lo + size; i++) {
      const r = scores[i];
      advantages[i] = estimator === 'dr-grpo' ? r - mean
        : estimator === 'rloo' ? r - (mean * size - r) / (size - 1)
          : (r - mean) / (std + eps);
    }
  }
  if (!cuSeqlens) return { advantages };
  const n = cuSeqlens[cuSeqlens.length - 1];
  const tokenAdvantages = new Float64Array(n);
  for (let b = 0; b + 1 < cuSeqlens.length; b++)
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) tokenAdvantages[t] = !actionMask || actionMask[t] ? advantages[b] : 0;
  return { advantages, tokenAdvantages };
}
