// Optimizer kernels (native/core/kernels/optimizer.h): fused AdamW and the global gradient norm with
// clipping, both in place over flat f32 buffers (Float32Arrays or 1-D Tensors, all on one device).
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32 } from './rl.js';

export interface AdamwInput<T extends F32> {
  /** f32[N] parameters, updated in place. */
  params: T;
  /** f32[N] gradients (read only). */
  grads: F32;
  /** f32[N] first moments, updated in place (zeros before step 1). */
  m: T;
  /** f32[N] second moments, updated in place (zeros before step 1). */
  v: T;
  /** The step number t >= 1 (an integer), for the bias corrections 1 - beta^t. */
  step: number;
  /** Learning rate >= 0. Default 1e-3. */
  lr?: number;
  /** In [0, 1). Default 0.9. */
  beta1?: number;
  /** In [0, 1). Default 0.999. */
  beta2?: number;
  /** > 0. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay >= 0 (lr * weightDecay <= 1). Default 0.01, as torch.optim.AdamW. */
  weightDecay?: number;
}

export interface AdamwOutput<T extends F32> {
  params: T;
  m: T;
  v: T;
}

/**
 * One AdamW step, as torch.optim.AdamW: p ← p(1 − lr·wd); m ← β1·m + (1 − β1)g; v ← β2·v + (1 − β2)g²;
 * p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps). One fused pass over params, grads, m and v, all
 * updated in place (the returned objects are the ones passed in).
 *
 * @example
 * const m = new Float32Array(n), v = new Float32Array(n);
 * for (let step = 1; step <= steps; step++) adamw({ params, grads, m, v, step, lr: 3e-4 });
 */
export function adamw<T extends F32>(input: AdamwInput<T>): AdamwOutput<T> {
  return wrapResult(getAddon().adamw(nativeArgs(input)));
}

/** Promise form of {@link adamw}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function adamwAsync<T extends F32>(input: AdamwInput<T>): Promise<AdamwOutput<T>> {
  return wrapResult(await getAddon().adamwAsync(nativeArgs(input)));
}

export interface ClipGradNormInput<T extends F32> {
  /** f32[N] gradients (all of a model's, in one flat buffer), scaled in place when clipped. */
  grads: T;
  /** Clip to this global norm (> 0). Omitted: only measure the norm. */
  maxNorm?: number;
}

export interface ClipGradNormOutput<T extends F32> {
  grads: T;
  /** The global L2 norm before clipping, summed in f64 (deterministic for any thread count). */
  norm: number;
  /** The factor applied: maxNorm / (norm + 1e-6) when norm > maxNorm, else 1. */
  scale: number;
}

/**
 * The global gradient norm, and PyTorch's clip_grad_norm_: when norm > maxNorm, grads ← grads · maxNorm /
 * (norm + 1e-6). A non-finite norm (an overflowed or NaN gradient) leaves the gradients unchanged and is
 * returned, so the trainer can skip the step.
 *
 * @example
 * const { norm } = clipGradNorm({ grads, maxNorm: 1 });
 */
export function clipGradNorm<T extends F32>(input: ClipGradNormInput<T>): ClipGradNormOutput<T> {
  return wrapResult(getAddon().clipGradNorm(nativeArgs(input)));
}

/** Promise form of {@link clipGradNorm}. */
export async function clipGradNormAsync<T extends F32>(input: ClipGradNormInput<T>): Promise<ClipGradNormOutput<T>> {
  return wrapResult(await getAddon().clipGradNormAsync(nativeArgs(input)));
}
