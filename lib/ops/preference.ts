// Preference losses, forward and backward (native/core/kernels/preference.h): DPO on summed sequence
// log-probs, and the InstructGPT K-wise reward-model ranking loss. Inputs are typed arrays or Tensors;
// gradient outputs are the same kind as the first tensor argument (policyChosen, scores), on its device.
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32 } from './rl.js';

export interface DpoLossInput<T extends F32> {
  /** Summed log-probs of each pair's chosen completion under the policy, f32[P]. */
  policyChosen: T;
  /** The same for the rejected completion, f32[P]. */
  policyRejected: F32;
  /** Chosen completions under the frozen reference model, f32[P]. */
  refChosen: F32;
  /** Rejected completions under the reference model, f32[P]. */
  refRejected: F32;
  /** Inverse temperature of the implicit reward, > 0 (used as an f32). Default 0.1. */
  beta?: number;
  /** Conservative DPO: the probability that a label is flipped, in [0, 0.5). Default 0. */
  labelSmoothing?: number;
  /** Buffers for the gradients (f32[P] on policyChosen's device); they must not overlap the inputs or each other. */
  out?: { dPolicyChosen?: T; dPolicyRejected?: T };
}

export interface DpoLossOutput<T extends F32> {
  /** mean over pairs of -(1 - ls) log sigmoid(z) - ls log sigmoid(-z). 0 when P = 0. */
  loss: number;
  /** d loss / d policyChosen, f32[P]. */
  dPolicyChosen: T;
  /** d loss / d policyRejected, f32[P] (the negation of dPolicyChosen). */
  dPolicyRejected: T;
  /** Means over pairs (0 when P = 0) of the implicit rewards beta * (policy - ref). */
  stats: {
    /** Fraction of pairs whose chosen reward is strictly above the rejected one. */
    rewardAccuracy: number;
    /** Mean of z = chosenReward - rejectedReward. */
    rewardMargin: number;
    chosenReward: number;
    rejectedReward: number;
  };
}

/**
 * The DPO loss and its gradient for P preference pairs. With chosen = beta (policyChosen - refChosen) and
 * rejected = beta (policyRejected - refRejected), z = chosen - rejected and the loss is the mean over pairs
 * of -(1 - labelSmoothing) log sigmoid(z) - labelSmoothing log sigmoid(-z), evaluated stably (finite at any
 * finite z). Per-pair math is f64 and the sums run in a fixed order: bitwise reproducible run to run.
 *
 * @example
 * const { loss, dPolicyChosen, dPolicyRejected, stats } = dpoLoss({
 *   policyChosen, policyRejected, refChosen, refRejected, beta: 0.1,
 * });
 * console.log(loss, stats.rewardAccuracy, stats.rewardMargin);
 */
export function dpoLoss<T extends F32>(input: DpoLossInput<T>): DpoLossOutput<T> {
  return wrapResult(getAddon().dpoLoss(nativeArgs(input)));
}

/** Promise form of {@link dpoLoss}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function dpoLossAsync<T extends F32>(input: DpoLossInput<T>): Promise<DpoLossOutput<T>> {
  return wrapResult(await getAddon().dpoLossAsync(nativeArgs(input)));
}

export interface RankingLossInput<T extends F32> {
  /** One reward-model score per completion, f32[M], the prompts' completions concatenated. */
  scores: T;
  /** Prompt offsets i32[P+1]: starts at 0, never decreases, ends at M; prompt p owns [offsets[p], offsets[p+1]). */
  offsets: I32;
  /**
   * i32[M]: the labelers' rank of each completion within its prompt, in [0, K_p), lower is better; equal
   * ranks are ties, which are excluded. Default: the position within the prompt (the first is best), so
   * [chosen, rejected] pairs are K = 2 prompts.
   */
  ranks?: I32;
  /** Buffer for the gradient (f32[M] on scores' device); it must not overlap the inputs. */
  out?: { dScores?: T };
}

export interface RankingLossOutput<T extends F32> {
  /**
   * Mean over the prompts with at least one non-tied pair of: sum over those pairs of
   * -log sigmoid(s_w - s_l) / C(K_p, 2). Prompts with K_p < 2 or only ties add nothing and are not counted.
   */
  loss: number;
  /** d loss / d scores, f32[M]; 0 for prompts with fewer than two completions. */
  dScores: T;
  stats: {
    /** Fraction of all non-tied pairs of the batch with s_w > s_l strictly; 0 when there are none. */
    accuracy: number;
    /** Non-tied pairs. */
    pairs: number;
    /** Pairs with equal ranks (excluded from loss and accuracy). */
    tiedPairs: number;
    /** Prompts with at least two completions, the loss's denominator. */
    rankedPrompts: number;
  };
}

/**
 * The InstructGPT reward-model loss: all C(K, 2) comparisons of a prompt's K ranked completions form one
 * batch element (K forward passes, not C(K, 2)), each weighted 1 / C(K, 2). K may differ per prompt; a
 * prompt with K < 2 has no pairs and does not count. Plain chosen/rejected data is K = 2 with ranks
 * omitted. Deterministic: bitwise reproducible run to run.
 *
 * @example
 * // Prompt 0 has 3 completions ranked [1, 0, 2] (the second is best); prompt 1 is a chosen/rejected pair.
 * const { loss, dScores, stats } = rankingLoss({
 *   scores: new Float32Array([0.2, 1.3, -0.4, 0.9, 0.1]),
 *   offsets: new Int32Array([0, 3, 5]),
 *   ranks: new Int32Array([1, 0, 2, 0, 1]),
 * });
 * console.log(loss, stats.accuracy); // accuracy: 4 of 4 pairs ordered correctly -> 1
 */
export function rankingLoss<T extends F32>(input: RankingLossInput<T>): RankingLossOutput<T> {
  return wrapResult(getAddon().rankingLoss(nativeArgs(input)));
}

/** Promise form of {@link rankingLoss}. */
export async function rankingLossAsync<T extends F32>(input: RankingLossInput<T>): Promise<RankingLossOutput<T>> {
  return wrapResult(await getAddon().rankingLossAsync(nativeArgs(input)));
}
