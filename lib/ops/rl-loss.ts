// RL objective kernels: the PPO clipped policy loss and the clipped value loss, forward and backward in
// one fused pass (native/core/kernels/rl_loss.h). Inputs are typed arrays or Tensors; gradient outputs
// are the same kind as the first tensor argument (logp, values), on its device.
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32, U8 } from './rl.js';

/** Schulman's KL estimators, from delta = logp - refLogp: k1 = delta, k2 = delta^2/2, k3 = e^-delta + delta - 1. */
export type KlEstimator = 'k1' | 'k2' | 'k3';

/**
 * How per-token losses become one scalar. Only action tokens count, and a sequence counts only when it
 * has at least one action token (an *active* sequence).
 * - `token-mean`: sum over tokens / action tokens in the batch.
 * - `seq-mean-token-mean`: mean over active sequences of each sequence's token mean.
 * - `seq-mean-token-sum`: mean over active sequences of each sequence's token sum.
 * - `seq-mean-token-sum-norm`: mean over active sequences of token sum / `normalizer` (Dr.GRPO).
 */
export type LossAggregation = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';

interface AggregationOptions {
  /** Default 'token-mean'. */
  aggregation?: LossAggregation;
  /** A constant such as the maximum response length; required by, and only allowed with, 'seq-mean-token-sum-norm'. */
  normalizer?: number;
}

export interface PpoLossInput<T extends F32> extends AggregationOptions {
  /** Log-probs of the taken tokens under the current policy, f32[N] (packed sequences). */
  logp: T;
  /** The same under the policy that sampled them, f32[N]. */
  oldLogp: F32;
  /** f32[N], typically whitened GAE advantages. */
  advantages: F32;
  /** Sequence offsets i32[B+1]: starts at 0, never decreases, ends at N. */
  cuSeqlens: I32;
  /** u8[N], 1 marks an action (response) token. Default: every token is an action. */
  actionMask?: U8;
  /** Reference-policy log-probs f32[N], for a KL term in the loss (required when klCoef > 0). */
  refLogp?: F32;
  /** Per-token policy entropies f32[N] (from the logit kernels), for the entropy bonus. */
  entropy?: F32;
  /** The ratio's lower clip is 1 - clipLow; in (0, 1). Default 0.2. */
  clipLow?: number;
  /** The ratio's upper clip is 1 + clipHigh; > 0. Default: clipLow (DAPO's clip-higher sets it larger). */
  clipHigh?: number;
  /** Dual-clip bound c > 1: for negative advantages the loss is at most -c*A. Default: off. */
  dualClip?: number;
  /** Weight of the KL term in the loss, >= 0. Default 0. */
  klCoef?: number;
  /** Default 'k3' (low-variance, as verl's low_var_kl). */
  klEstimator?: KlEstimator;
  /** The KL estimate is clamped to [-klClamp, klClamp] (gradient 0 beyond); > 0, Infinity for none. Default 10. */
  klClamp?: number;
  /** Entropy bonus coefficient: the loss subtracts entropyCoef * entropy; >= 0. Default 0. */
  entropyCoef?: number;
  /** Buffers for the gradients (f32[N] on logp's device) instead of fresh ones; they must not overlap the inputs. */
  out?: { dLogp?: T; dEntropy?: T };
}

export interface PpoLossStats {
  /** The clipped-surrogate part of the loss, aggregated like the loss. */
  pgLoss: number;
  /** Fraction of action tokens whose ratio was clipped (either side). */
  clipFrac: number;
  /** Fraction of action tokens held by the dual clip (A < 0, ratio > c): verl's pg_clipfrac_lower. */
  clipFracLower: number;
  /** Mean over action tokens of k3 between the sampling and current policy: ratio - 1 - log ratio. */
  approxKl: number;
  ratioMean: number;
  /** 0 when there are no action tokens. */
  ratioMax: number;
  /** Mean KL estimate against refLogp, with the penalty's own estimator and clamp; null without refLogp. */
  kl: number | null;
  /** Mean entropy over action tokens; null without entropy. */
  entropy: number | null;
  actionTokens: number;
  activeSeqs: number;
}

export interface PpoLossOutput<T extends F32> {
  /** The aggregated objective: mean clipped surrogate + klCoef * KL - entropyCoef * entropy. */
  loss: number;
  /** d loss / d logp, f32[N]; exactly 0 on non-action tokens. */
  dLogp: T;
  /** d loss / d entropy, f32[N]; present only when entropy was given. */
  dEntropy: T | undefined;
  /** Token means over action tokens, independent of the aggregation mode. */
  stats: PpoLossStats;
}

/**
 * The PPO clipped policy loss, its gradient and its stats in one fused pass over packed sequences.
 *
 * Per action token: max(-A r, -A clip(r, 1 - clipLow, 1 + clipHigh)), and for A < 0 with dual clip
 * min(that, -c A), where r = exp(logp - oldLogp) with the log-ratio clamped to +-20. A ratio exactly on a
 * clip bound counts as unclipped and passes its gradient. Non-action tokens never count, in the loss or
 * the stats. Deterministic: the same inputs give bitwise-identical results run after run.
 *
 * @example
 * const { loss, dLogp, stats } = ppoLoss({
 *   logp, oldLogp, advantages, cuSeqlens, actionMask,
 *   refLogp, klCoef: 0.02, klEstimator: 'k3',
 *   clipLow: 0.2, clipHigh: 0.28, aggregation: 'token-mean',
 * });
 * console.log(loss, stats.clipFrac, stats.kl);
 */
export function ppoLoss<T extends F32>(input: PpoLossInput<T>): PpoLossOutput<T> {
  return ppoOutput(getAddon().ppoLoss(nativeArgs(input)));
}

/** Promise form of {@link ppoLoss}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function ppoLossAsync<T extends F32>(input: PpoLossInput<T>): Promise<PpoLossOutput<T>> {
  return ppoOutput(await getAddon().ppoLossAsync(nativeArgs(input)));
}

// The addon returns its results as flat arrays in this order (named properties cost more through N-API).
type PpoRaw = [number, unknown, unknown, number, number, number, number, number, number, number | null, number | null,
  number, number];
type ValueRaw = [number, unknown, number, number, number];

function ppoOutput<T extends F32>(raw: unknown): PpoLossOutput<T> {
  const [loss, dLogp, dEntropy, pgLoss, clipFrac, clipFracLower, approxKl, ratioMean, ratioMax, kl, entropy,
    actionTokens, activeSeqs] = raw as PpoRaw;
  return {
    loss, dLogp: wrapResult(dLogp), dEntropy: dEntropy === undefined ? undefined : wrapResult(dEntropy),
    stats: { pgLoss, clipFrac, clipFracLower, approxKl, ratioMean, ratioMax, kl, entropy, actionTokens, activeSeqs },
  };
}

export interface ValueLossInput<T extends F32> extends AggregationOptions {
  /** Current value predictions f32[N]. */
  values: T;
  /** Value predictions at sampling time f32[N]. */
  oldValues: F32;
  /** Targets f32[N], typically GAE returns. */
  returns: F32;
  /** u8[N], 1 marks a token that counts. Default: all. */
  actionMask?: U8;
  /** Sequence offsets i32[B+1], for the seq-mean aggregations. Default: the batch is one sequence. */
  cuSeqlens?: I32;
  /** Values move at most this far from oldValues in the clipped term; > 0, Infinity disables it. Default 0.2. */
  clipRange?: number;
  /** Buffer for the gradient (f32[N] on values' device); it must not overlap the inputs. */
  out?: { dValues?: T };
}

export interface ValueLossOutput<T extends F32> {
  /** The aggregated 0.5 * max((v - R)^2, (v_clipped - R)^2). */
  loss: number;
  /** d loss / d values, f32[N]; 0 on non-action tokens and where the clipped term wins. */
  dValues: T;
  stats: {
    /** Fraction of action tokens where the clipped term was strictly larger. */
    clipFrac: number;
    actionTokens: number;
    activeSeqs: number;
  };
}

/**
 * The clipped value loss and its gradient in one pass: 0.5 * max((v - R)^2, (vc - R)^2) with
 * vc = oldValues + clip(v - oldValues, -clipRange, clipRange), aggregated like {@link ppoLoss}.
 *
 * @example
 * const { loss, dValues, stats } = valueLoss({ values, oldValues, returns, actionMask, clipRange: 0.2 });
 */
export function valueLoss<T extends F32>(input: ValueLossInput<T>): ValueLossOutput<T> {
  return valueOutput(getAddon().valueLoss(nativeArgs(input)));
}

/** Promise form of {@link valueLoss}. */
export async function valueLossAsync<T extends F32>(input: ValueLossInput<T>): Promise<ValueLossOutput<T>> {
  return valueOutput(await getAddon().valueLossAsync(nativeArgs(input)));
}

function valueOutput<T extends F32>(raw: unknown): ValueLossOutput<T> {
  const [loss, dValues, clipFrac, actionTokens, activeSeqs] = raw as ValueRaw;
  return { loss, dValues: wrapResult(dValues), stats: { clipFrac, actionTokens, activeSeqs } };
}
