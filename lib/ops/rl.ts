// RL advantage kernels: GAE and whitening (native/core/kernels/rl.h). Inputs are typed arrays or
// Tensors; outputs are the same kind as the first tensor argument (rewards, x), on its device.
import { getAddon } from '../native.js';
import { nativeArgs, Tensor, wrapResult } from '../tensor.js';

export type F32 = Float32Array | Tensor;
export type I32 = Int32Array | Tensor;
export type U8 = Uint8Array | Tensor;

export interface GaeInput<T extends F32> {
  /** Per-token rewards f32[N] (packed sequences). */
  rewards: T;
  /** Per-token value estimates f32[N]. */
  values: F32;
  /** Sequence offsets i32[B+1]: starts at 0, never decreases, ends at N. */
  cuSeqlens: I32;
  /** u8[N], 1 marks an action (response) token. Default: every token is an action. */
  actionMask?: U8;
  /** f32[B]: the value after each sequence's last token, for truncated sequences. Default 0 (terminal). */
  bootstrap?: F32;
  /** Discount in [0, 1]. Default 1 (InstructGPT). */
  gamma?: number;
  /** GAE lambda in [0, 1]. Default 0.95. */
  lambda?: number;
  /**
   * Buffers to write the results into (f32[N] each, on the inputs' device) instead of allocating new
   * ones: reusing them avoids an allocation and its page faults per call. They must not overlap the
   * inputs or each other. The result then holds these same objects.
   */
  out?: { advantages?: T; returns?: T };
}

export interface GaeOutput<T extends F32> {
  /** f32[N]; 0 on non-action tokens. */
  advantages: T;
  /** advantages + values, f32[N]; 0 on non-action tokens. */
  returns: T;
}

/**
 * Generalised advantage estimation over packed sequences.
 *
 * Inside each sequence the recurrence runs backwards over its action tokens only; non-action tokens
 * (prompt, padding) are skipped, neither resetting nor advancing it, and get 0 (verl's rule). Trainers
 * that instead zero everything after EOS and run over padded rows (TRL, DeepSpeed-Chat) let a masked
 * value leak into the last action's delta; here the last action token bootstraps from `bootstrap` (or 0).
 *
 * @example
 * const { advantages, returns } = gae({
 *   rewards: new Float32Array([0, 0, 1]),
 *   values: new Float32Array([0.5, 0.5, 0.5]),
 *   cuSeqlens: new Int32Array([0, 3]),
 *   actionMask: new Uint8Array([0, 1, 1]), // token 0 is the prompt
 *   gamma: 1, lambda: 0.95,
 * });
 */
export function gae<T extends F32>(input: GaeInput<T>): GaeOutput<T> {
  return wrapResult(getAddon().gae(nativeArgs(input)));
}

/** Promise form of {@link gae}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function gaeAsync<T extends F32>(input: GaeInput<T>): Promise<GaeOutput<T>> {
  return wrapResult(await getAddon().gaeAsync(nativeArgs(input)));
}

export interface WhitenOptions {
  /** u8[N]: statistics over entries with mask 1; masked-out entries come back as 0. Default: all. */
  mask?: U8;
  /** Subtract the mean (true, default) or keep it (as some trainers do for advantages). */
  shiftMean?: boolean;
  /** Unbiased (n - 1) variance, as TRL and verl use. Default true. */
  unbiased?: boolean;
  /** Added to the variance before the square root. Default 1e-8; must be > 0. */
  eps?: number;
  /** Buffer for the result (f32[N], x's device); may be x itself to whiten in place. */
  out?: F32;
}

/**
 * Masked whitening: (x - mean) / sqrt(var + eps). Deterministic: the result does not depend on the
 * thread count.
 *
 * @example
 * const whitened = whiten(advantages, { mask: actionMask });
 */
export function whiten<T extends F32>(x: T, options: WhitenOptions = {}): T {
  return wrapResult(getAddon().whiten(nativeArgs(x), nativeArgs(options)));
}

/** Promise form of {@link whiten}. */
export async function whitenAsync<T extends F32>(x: T, options: WhitenOptions = {}): Promise<T> {
  return wrapResult(await getAddon().whitenAsync(nativeArgs(x), nativeArgs(options)));
}
