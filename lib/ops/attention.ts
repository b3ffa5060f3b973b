// Attention (native/core/kernels/attention.h): FlashAttention-2 style varlen forward over packed
// sequences. Inputs are typed arrays or Tensors; outputs are the same kind as q, on its device.
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32 } from './rl.js';

export interface AttentionForwardInput<T extends F32> {
  /** Queries f32 [N, H, D] (a typed array needs numHeads and headDim). */
  q: T;
  /** Keys f32 [Nk, Hkv, D]; Hkv divides H (grouped-query attention when Hkv < H). */
  k: F32;
  /** Values f32 [Nk, Hkv, D], like k. */
  v: F32;
  /** Packing of q (and of k and v without cuSeqlensK): i32[B+1], from 0 to N. */
  cuSeqlens: I32;
  /** Packing of k and v when it differs from q's: i32[B+1], from 0 to Nk. */
  cuSeqlensK?: I32;
  /** H: required with a typed-array q, else checked against q's shape. */
  numHeads?: number;
  /** Hkv: defaults to numHeads for a typed-array k, else checked against k's shape. */
  numKvHeads?: number;
  /** D, 32, 64 or 128: required with a typed-array q, else checked against q's shape. */
  headDim?: number;
  /** Softmax scale, > 0. Default 1 / sqrt(D). */
  scale?: number;
  /** Causal mask, bottom-right aligned (the last query sees every key). Default true. */
  causal?: boolean;
  /** Buffers for the outputs on q's device: o f32 [N, H, D], lse f32 [H, N]. They must not overlap the inputs. */
  out?: { o?: T; lse?: T };
}

export interface AttentionForwardOutput<T extends F32> {
  /** f32 [N, H, D]: softmax(scale q k^T + mask) v per sequence and head; 0 for a query that sees no key. */
  o: T;
  /** f32 [H, N]: the log-sum-exp of each query's scaled scores (what the backward pass needs); -inf for a query that sees no key. */
  lse: T;
}

/**
 * Scaled dot-product attention over packed variable-length sequences (FlashAttention's varlen layout).
 * Sequence b owns queries [cuSeqlens[b], cuSeqlens[b+1]) and keys [cuSeqlensK[b], cuSeqlensK[b+1]); query
 * head h reads kv head h / (H / Hkv). f32 throughout, online softmax, never materialising the scores.
 * Bitwise reproducible run to run and for any thread count.
 *
 * @example
 * // Two sequences of 3 and 5 tokens, 4 heads sharing 2 kv heads, D = 64.
 * const N = 8, H = 4, Hkv = 2, D = 64;
 * const { o, lse } = attentionForward({
 *   q: new Float32Array(N * H * D), k: new Float32Array(N * Hkv * D), v: new Float32Array(N * Hkv * D),
 *   cuSeqlens: new Int32Array([0, 3, 8]), numHeads: H, numKvHeads: Hkv, headDim: D,
 * });
 */
export function attentionForward<T extends F32>(input: AttentionForwardInput<T>): AttentionForwardOutput<T> {
  return wrapResult(getAddon().attentionForward(nativeArgs(input)));
}

/** Promise form of {@link attentionForward}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function attentionForwardAsync<T extends F32>(input: AttentionForwardInput<T>): Promise<AttentionForwardOutput<T>> {
  return wrapResult(await getAddon().attentionForwardAsync(nativeArgs(input)));
}

export interface AttentionBackwardInput<T extends F32> extends Omit<AttentionForwardInput<T>, 'out'> {
  /** The loss's gradient with respect to o, f32 [N, H, D]. */
  dO: F32;
  /** The forward's output o, f32 [N, H, D]. */
  o: F32;
  /** The forward's lse, f32 [H, N]. */
  lse: F32;
  /** Buffers for the gradients on q's device: dq like q, dk and dv like k. They must not overlap the inputs. */
  out?: { dq?: T; dk?: T; dv?: T };
}

export interface AttentionBackwardOutput<T extends F32> {
  /** d loss / d q, f32 [N, H, D]. */
  dq: T;
  /** d loss / d k, f32 [Nk, Hkv, D], summed over the query heads that share each kv head. */
  dk: T;
  /** d loss / d v, f32 [Nk, Hkv, D], summed the same way. */
  dv: T;
}

/**
 * The gradients of {@link attentionForward} from dO and the forward's o and lse (FlashAttention-2's
 * backward: P is recomputed from lse, never stored). Take the same q, k, v, packing, scale and causal
 * flag as the forward call. No atomics: bitwise reproducible run to run and for any thread count.
 *
 * @example
 * const fwd = attentionForward({ q, k, v, cuSeqlens, numHeads: H, numKvHeads: Hkv, headDim: D });
 * const { dq, dk, dv } = attentionBackward({
 *   dO, q, k, v, o: fwd.o, lse: fwd.lse, cuSeqlens, numHeads: H, numKvHeads: Hkv, headDim: D,
 * });
 */
export function attentionBackward<T extends F32>(input: AttentionBackwardInput<T>): AttentionBackwardOutput<T> {
  return wrapResult(getAddon().attentionBackward(nativeArgs(input)));
}

/** Promise form of {@link attentionBackward}. */
export async function attentionBackwardAsync<T extends F32>(input: AttentionBackwardInput<T>): Promise<AttentionBackwardOutput<T>> {
  return wrapResult(await getAddon().attentionBackwardAsync(nativeArgs(input)));
}

export interface RopeInput<T extends F32> {
  /** f32 [N, H, D] (q or k; a typed array needs numHeads and headDim). D must be even. */
  x: T;
  /** Packing i32[B+1]: a token's position is its index within its sequence (plus its positionOffsets entry). */
  cuSeqlens: I32;
  /**
   * i32[B] on x's device: sequence b's tokens start at position positionOffsets[b] instead of 0, so token
   * i of sequence b sits at positionOffsets[b] + (i - cuSeqlens[b]). For KV-cache decoding: a decode step
   * passes the cache's cacheSeqlens before the append, a chunked prefill the chunk's start. Each offset
   * must be >= 0, with offset + seqlen <= 2^31 - 1 (ERR_TALARIA_RANGE). Default: all 0.
   */
  positionOffsets?: I32;
  /** Frequency base, > 1. Default 10000. */
  theta?: number;
  numHeads?: number;
  headDim?: number;
  /** Buffer for the result on x's device, shaped like x; it may be x itself (in place). */
  out?: T;
}

/**
 * Rotary position embedding (rotate-half, as GPT-NeoX and Llama): for i < D/2 and position p, with
 * angle = p * theta^(-2i/D), y_i = x_i cos - x_{i+D/2} sin and y_{i+D/2} = x_{i+D/2} cos + x_i sin.
 * cos and sin are computed in f64 and rounded to f32, so long positions keep their accuracy.
 *
 * @example
 * // Rotate q [N, H, D] in place before attentionForward.
 * ropeForward({ x: q, cuSeqlens, numHeads: H, headDim: D, out: q });
 *
 * @example
 * // A decode step: one new token per sequence (q [B, H, D], k and v [B, Hkv, D]) sits right after the
 * // tokens its sequence has cached, so rotate q and k at the cache lengths before kvCacheAppend grows them.
 * const oneEach = Int32Array.from({ length: B + 1 }, (_, b) => b);
 * ropeForward({ x: q, cuSeqlens: oneEach, positionOffsets: cacheSeqlens, numHeads: H, headDim: D, out: q });
 * ropeForward({ x: k, cuSeqlens: oneEach, positionOffsets: cacheSeqlens, numHeads: Hkv, headDim: D, out: k });
 * kvCacheAppend({ cacheK, cacheV, cacheSeqlens, k, v, cuSeqlens: oneEach, ...sizes });
 * const { o } = attentionDecode({ q, cacheK, cacheV, cacheSeqlens, ...sizes });
 */
export function ropeForward<T extends F32>(input: RopeInput<T>): T {
  return wrapResult(getAddon().rope(nativeArgs(input)));
}

/** Promise form of {@link ropeForward}. */
export async function ropeForwardAsync<T extends F32>(input: RopeInput<T>): Promise<T> {
  return wrapResult(await getAddon().ropeAsync(nativeArgs(input)));
}

/**
 * The gradient of {@link ropeForward}: the inverse rotation of dY (`x` here is dY), so dX = R^T dY.
 *
 * @example
 * const dq = ropeBackward({ x: dqRotated, cuSeqlens, numHeads: H, headDim: D });
 */
export function ropeBackward<T extends F32>(input: RopeInput<T>): T {
  return wrapResult(getAddon().rope(nativeArgs({ ...input, backward: true })));
}

/** Promise form of {@link ropeBackward}. */
export async function ropeBackwardAsync<T extends F32>(input: RopeInput<T>): Promise<T> {
  return wrapResult(await getAddon().ropeAsync(nativeArgs({ ...input, backward: true })));
}

export interface KvCache {
  /** Cached keys f32 [B, Lmax, Hkv, D] (a typed array needs maxLen, numKvHeads and headDim). */
  cacheK: F32;
  /** Cached values, like cacheK. */
  cacheV: F32;
  /** i32[B]: how many rows of each sequence's slab are filled, each in [0, Lmax]. */
  cacheSeqlens: I32;
  maxLen?: number;
  numKvHeads?: number;
  headDim?: number;
}

export interface KvCacheAppendInput extends KvCache {
  /** New keys f32 [N, Hkv, D], packed by cuSeqlens (a prefill's prompt, or one token per sequence). */
  k: F32;
  /** New values, like k. */
  v: F32;
  /** i32[B+1] packing of k and v; a sequence may add 0 rows. */
  cuSeqlens: I32;
}

/**
 * Appends each sequence's new k and v rows to its KV-cache slab in place, after the rows it holds, and
 * grows cacheSeqlens in place. Throws ERR_TALARIA_RANGE (and writes nothing) if a sequence would exceed
 * Lmax. Returns cacheSeqlens.
 *
 * @example
 * const cacheK = new Float32Array(B * Lmax * Hkv * D), cacheV = new Float32Array(B * Lmax * Hkv * D);
 * const cacheSeqlens = new Int32Array(B);
 * kvCacheAppend({ cacheK, cacheV, cacheSeqlens, k, v, cuSeqlens, maxLen: Lmax, numKvHeads: Hkv, headDim: D });
 */
export function kvCacheAppend<T extends I32>(input: KvCacheAppendInput & { cacheSeqlens: T }): T {
  return wrapResult(getAddon().kvCacheAppend(nativeArgs(input)));
}

/** Promise form of {@link kvCacheAppend}. */
export async function kvCacheAppendAsync<T extends I32>(input: KvCacheAppendInput & { cacheSeqlens: T }): Promise<T> {
  return wrapResult(await getAddon().kvCacheAppendAsync(nativeArgs(input)));
}

export interface AttentionDecodeInput<T extends F32> extends KvCache {
  /** One query per sequence, f32 [B, H, D]; its own k and v must already be appended. */
  q: T;
  numHeads?: number;
  /** Softmax scale, > 0. Default 1 / sqrt(D). */
  scale?: number;
  out?: { o?: T; lse?: T };
}

/**
 * One decode step: each sequence's query attends to every cached key of its slab (they all precede it,
 * so no mask). o f32 [B, H, D], lse f32 [H, B]; a sequence with an empty cache gets o = 0, lse = -inf. The
 * CPU reads each cached row once for all query heads that share it; CUDA splits long contexts across
 * blocks and merges their partial softmax states by lse (FlashDecoding).
 *
 * @example
 * kvCacheAppend({ cacheK, cacheV, cacheSeqlens, k: kNew, v: vNew, cuSeqlens: oneEach, ...sizes });
 * const { o } = attentionDecode({ q: qNew, cacheK, cacheV, cacheSeqlens, ...sizes });
 */
export function attentionDecode<T extends F32>(input: AttentionDecodeInput<T>): AttentionForwardOutput<T> {
  return wrapResult(getAddon().attentionDecode(nativeArgs(input)));
}

/** Promise form of {@link attentionDecode}. */
export async function attentionDecodeAsync<T extends F32>(input: AttentionDecodeInput<T>): Promise<AttentionForwardOutput<T>> {
  return wrapResult(await getAddon().attentionDecodeAsync(nativeArgs(input)));
}
