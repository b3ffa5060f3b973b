// Logit kernels (native/core/kernels/logits.h): per-token log-prob, entropy and log-sum-exp under the
// sampling temperature, forward and backward; the fused SFT cross-entropy; the full-vocabulary KL between a
// policy and a reference, forward and backward. Logits are [N, V] row-major: a 2-D Tensor, or a
// Float32Array of N * V values with `vocabSize: V`. Outputs are the same kind as `logits`, on its device.
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32, U8 } from './rl.js';

interface LogitsOptions<T extends F32> {
  /** f32 [N, V], row-major: a 2-D Tensor, or a Float32Array of N * V values (then vocabSize is required). */
  logits: T;
  /** V, the columns of typed-array logits (an integer >= 1). A Tensor carries its own; if given, it must agree. */
  vocabSize?: number;
}

interface TemperatureOptions {
  /** z = logits / temperature for every row, in [2^-100, 2^100] (about 7.9e-31 to 1.3e30). Default 1. Not together with temperatures. */
  temperature?: number;
  /** f32[N]: a temperature per row, each in [2^-100, 2^100]. */
  temperatures?: F32;
}

export interface LogprobEntropyInput<T extends F32> extends LogitsOptions<T>, TemperatureOptions {
  /** i32[N]: the token of each row, in [0, V). */
  targets: I32;
  /** Buffers (f32[N] each, on the logits' device) to write into instead of fresh ones; no overlaps. */
  out?: { logp?: T; entropy?: T; lse?: T };
}

export interface LogprobEntropyOutput<T extends F32> {
  /** log p(target) = z_y - lse, f32[N]. */
  logp: T;
  /** Entropy of each row's distribution, -sum p log p, f32[N]. */
  entropy: T;
  /** log sum_i exp(z_i), f32[N]: save it (and entropy) for {@link logprobEntropyBackward}. */
  lse: T;
}

/**
 * Log-prob of each row's target, the row's entropy and its log-sum-exp under a temperature, from one
 * pass over the logits (an online softmax that merges exactly). Rows may hold -Infinity (masked
 * vocabulary). Deterministic: bitwise the same run to run and for any thread count.
 *
 * @example
 * const { logp, entropy, lse } = logprobEntropy({ logits, vocabSize: 32000, targets, temperature: 0.7 });
 */
export function logprobEntropy<T extends F32>(input: LogprobEntropyInput<T>): LogprobEntropyOutput<T> {
  return wrapResult(getAddon().logprobEntropy(nativeArgs(input)));
}

/** Promise form of {@link logprobEntropy}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function logprobEntropyAsync<T extends F32>(input: LogprobEntropyInput<T>): Promise<LogprobEntropyOutput<T>> {
  return wrapResult(await getAddon().logprobEntropyAsync(nativeArgs(input)));
}

interface InPlaceOptions<T extends F32> {
  /** Write dLogits over the logits (as llm.c does); same as passing the logits as out.dLogits. Default false. */
  inPlace?: boolean;
  /** A [N, V] buffer for dLogits: the logits themselves, or memory that overlaps no input. */
  out?: { dLogits?: T };
}

export interface LogprobEntropyBackwardInput<T extends F32> extends LogitsOptions<T>, TemperatureOptions, InPlaceOptions<T> {
  /** The forward's targets, i32[N]. */
  targets: I32;
  /** d loss / d logp, f32[N]. */
  gLogp: F32;
  /** d loss / d entropy, f32[N]. */
  gEntropy: F32;
  /** The forward's lse, f32[N]. */
  lse: F32;
  /** The forward's entropy, f32[N]. */
  entropy: F32;
}

export interface LogitsGradient<T extends F32> {
  /** d loss / d logits, [N, V] (the logits object itself when computed in place). */
  dLogits: T;
}

/**
 * The gradient of gLogp * logp + gEntropy * entropy with respect to the logits:
 * (1/T) [gLogp (onehot - p) - gEntropy p (log p + H)], from the forward's lse and entropy. One read of the
 * logits and one write of dLogits per row; `inPlace: true` reuses the logits' memory.
 *
 * @example
 * const fwd = logprobEntropy({ logits, vocabSize, targets });
 * const { dLogits } = logprobEntropyBackward({ logits, vocabSize, targets, gLogp, gEntropy, lse: fwd.lse, entropy: fwd.entropy, inPlace: true });
 */
export function logprobEntropyBackward<T extends F32>(input: LogprobEntropyBackwardInput<T>): LogitsGradient<T> {
  return wrapResult(getAddon().logprobEntropyBackward(nativeArgs(input)));
}

/** Promise form of {@link logprobEntropyBackward}. */
export async function logprobEntropyBackwardAsync<T extends F32>(input: LogprobEntropyBackwardInput<T>): Promise<LogitsGradient<T>> {
  return wrapResult(await getAddon().logprobEntropyBackwardAsync(nativeArgs(input)));
}

export interface CrossEntropyInput<T extends F32> extends LogitsOptions<T>, InPlaceOptions<T> {
  /** i32[N]: the next token of each row, in [0, V) (also on ignored rows). */
  targets: I32;
  /** u8[N]: 0 ignores the row (prompt or padding). Default: every row counts. */
  mask?: U8;
}

export interface CrossEntropyOutput<T extends F32> {
  /** Mean over counted rows of lse - logit[target] (temperature 1); 0 when no row counts. */
  loss: number;
  /** (softmax - onehot) / count on counted rows, exactly 0 on ignored rows, [N, V]. */
  dLogits: T;
  /** The rows that count. */
  count: number;
}

/**
 * The SFT cross-entropy loss and its gradient in one fused call (forward and backward per row). The
 * loss sums rows in a fixed order in f64: deterministic.
 *
 * @example
 * const { loss, dLogits } = crossEntropy({ logits, vocabSize: 32000, targets, mask, inPlace: true });
 */
export function crossEntropy<T extends F32>(input: CrossEntropyInput<T>): CrossEntropyOutput<T> {
  return wrapResult(getAddon().crossEntropy(nativeArgs(input)));
}

/** Promise form of {@link crossEntropy}. */
export async function crossEntropyAsync<T extends F32>(input: CrossEntropyInput<T>): Promise<CrossEntropyOutput<T>> {
  return wrapResult(await getAddon().crossEntropyAsync(nativeArgs(input)));
}

export interface KlDivergenceInput<T extends F32> extends LogitsOptions<T>, TemperatureOptions {
  /** The reference model's logits, shaped like logits, on the same device (same temperature). */
  refLogits: F32;
  /** Buffers (f32[N] each) to write into instead of fresh ones; no overlaps. */
  out?: { kl?: T; lse?: T; refLse?: T };
}

export interface KlDivergenceOutput<T extends F32> {
  /** KL(p || q) = sum_i p_i (log p_i - log q_i) per row, f32[N]; p from logits, q from refLogits. */
  kl: T;
  /** The policy's log-sum-exp, f32[N] (for the backward). */
  lse: T;
  /** The reference's log-sum-exp, f32[N] (for the backward). */
  refLse: T;
}

/**
 * Full-vocabulary KL divergence per row between the policy (logits) and a reference (refLogits), from one
 * pass over both. A reference entry of -Infinity where the policy has mass gives Infinity.
 *
 * @example
 * const { kl, lse, refLse } = klDivergence({ logits, refLogits, vocabSize, temperature: 1 });
 */
export function klDivergence<T extends F32>(input: KlDivergenceInput<T>): KlDivergenceOutput<T> {
  return wrapResult(getAddon().klDivergence(nativeArgs(input)));
}

/** Promise form of {@link klDivergence}. */
export async function klDivergenceAsync<T extends F32>(input: KlDivergenceInput<T>): Promise<KlDivergenceOutput<T>> {
  return wrapResult(await getAddon().klDivergenceAsync(nativeArgs(input)));
}

export interface KlDivergenceBackwardInput<T extends F32> extends LogitsOptions<T>, TemperatureOptions, InPlaceOptions<T> {
  refLogits: F32;
  /** d loss / d kl, f32[N]. */
  gKl: F32;
  /** The forward's lse, refLse and kl, f32[N] each. */
  lse: F32;
  refLse: F32;
  kl: F32;
}

/**
 * The gradient of gKl * kl with respect to the policy logits: (gKl / T) p (log p - log q - kl).
 *
 * @example
 * const fwd = klDivergence({ logits, refLogits, vocabSize });
 * const { dLogits } = klDivergenceBackward({ logits, refLogits, vocabSize, gKl, ...fwd });
 */
export function klDivergenceBackward<T extends F32>(input: KlDivergenceBackwardInput<T>): LogitsGradient<T> {
  return wrapResult(getAddon().klDivergenceBackward(nativeArgs(input)));
}

/** Promise form of {@link klDivergenceBackward}. */
export async function klDivergenceBackwardAsync<T extends F32>(input: KlDivergenceBackwardInput<T>): Promise<LogitsGradient<T>> {
  return wrapResult(await getAddon().klDivergenceBackwardAsync(nativeArgs(input)));
}
