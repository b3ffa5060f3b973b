// Decoder-layer building blocks (native/core/kernels/layers.h): RMSNorm, SwiGLU, the token embedding and
// axpby, each with its backward where it has one. f32 row-major matrices: 2-D Tensors on any device, or
// Float32Arrays whose column count comes from another argument or an option. Outputs are the same kind as
// the main input (x, gateUp, table), on its device. Every reduction has a fixed order, so results are
// bitwise the same for any thread count.
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32 } from './rl.js';

export interface RmsnormInput<T extends F32> {
  /** f32 [N, d]: a 2-D Tensor, or a Float32Array of N * d (d is weight's length). */
  x: T;
  /** f32 [d], the learned scale, on x's device. */
  weight: F32;
  /** Added to the mean square; > 0 and finite. Default 1e-6 (Llama's rms_norm_eps). */
  eps?: number;
  /** Buffers on x's device: y [N, d] and rstd [N]. They must not overlap x, weight or each other. */
  out?: { y?: T; rstd?: T };
}

export interface RmsnormOutput<T extends F32> {
  /** f32 [N, d]: (x * rstd) * weight. */
  y: T;
  /** f32 [N]: 1 / sqrt(mean(x^2) + eps) per row (the mean in f64), what rmsnormBackward needs. */
  rstd: T;
}

/**
 * RMSNorm as HF's LlamaRMSNorm: rstd = 1 / sqrt(mean_j x_j² + eps) per row, y = x · rstd · weight. The mean
 * square is summed in f64. y never overlaps x: the backward pass needs x.
 *
 * @example
 * const { y, rstd } = rmsnorm({ x: hidden, weight: normWeight });              // hidden: Tensor [N, d]
 * const { y: y2 } = rmsnorm({ x: new Float32Array(2 * 4), weight: new Float32Array([1, 1, 1, 1]) }); // [2, 4]
 */
export function rmsnorm<T extends F32>(input: RmsnormInput<T>): RmsnormOutput<T> {
  return wrapResult(getAddon().rmsnorm(nativeArgs(input)));
}

/** Promise form of {@link rmsnorm}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function rmsnormAsync<T extends F32>(input: RmsnormInput<T>): Promise<RmsnormOutput<T>> {
  return wrapResult(await getAddon().rmsnormAsync(nativeArgs(input)));
}

export interface RmsnormBackwardInput<T extends F32> {
  /** The forward's input, f32 [N, d]. */
  x: T;
  /** f32 [d], as in the forward. */
  weight: F32;
  /** The forward's rstd, f32 [N]. */
  rstd: F32;
  /** The loss's gradient with respect to y, f32 [N, d]. */
  dy: F32;
  /** f32 [d] on x's device: when given, the weight gradient is ADDED into it (gradient accumulation) and it is returned. */
  dWeight?: T;
  /** Add dx into out.dx (required then) instead of overwriting it: the residual stream's dResidual += dx. Default false. */
  accumulate?: boolean;
  /** dx [N, d] on x's device, overlapping no input. */
  out?: { dx?: T };
}

export interface RmsnormBackwardOutput<T extends F32> {
  /** f32 [N, d]: rstd g − x rstd³ mean(g x), g = dy · weight (added to out.dx with accumulate). */
  dx: T;
  /** f32 [d]: Σ_rows dy · x · rstd (plus the given dWeight's old value). */
  dWeight: T;
}

/**
 * The gradients of {@link rmsnorm}. dWeight sums the rows in fixed blocks of 64 (f64 partials added in
 * block order), so it is bitwise the same for any thread count, and on the CPU and CUDA backends.
 *
 * @example
 * const { dx, dWeight } = rmsnormBackward({ x, weight, rstd, dy });
 * rmsnormBackward({ x, weight, rstd, dy, dWeight: gradW, accumulate: true, out: { dx: dResidual } });
 */
export function rmsnormBackward<T extends F32>(input: RmsnormBackwardInput<T>): RmsnormBackwardOutput<T> {
  return wrapResult(getAddon().rmsnormBackward(nativeArgs(input)));
}

/** Promise form of {@link rmsnormBackward}. */
export async function rmsnormBackwardAsync<T extends F32>(input: RmsnormBackwardInput<T>): Promise<RmsnormBackwardOutput<T>> {
  return wrapResult(await getAddon().rmsnormBackwardAsync(nativeArgs(input)));
}

export interface SwigluInput<T extends F32> {
  /** f32 [N, 2F]: gate in columns [0, F), up in [F, 2F) (gate_proj and up_proj stacked, one GEMM). */
  gateUp: T;
  /** F: required with a Float32Array gateUp, else checked against its shape. */
  intermediateSize?: number;
  /** h [N, F] on gateUp's device, not overlapping gateUp. */
  out?: T;
}

/**
 * SwiGLU, Llama's MLP activation: h = silu(gate) · up with silu(g) = g · sigmoid(g), computed without
 * overflow for any finite g (silu → 0 for g → −∞, → g for g → +∞).
 *
 * @example
 * const gateUp = matmul({ a: x, b: wGateUp, transB: true });   // [N, 2F]
 * const h = swiglu({ gateUp });                                 // [N, F]
 */
export function swiglu<T extends F32>(input: SwigluInput<T>): T {
  return wrapResult(getAddon().swiglu(nativeArgs(input)));
}

/** Promise form of {@link swiglu}. */
export async function swigluAsync<T extends F32>(input: SwigluInput<T>): Promise<T> {
  return wrapResult(await getAddon().swigluAsync(nativeArgs(input)));
}

export interface SwigluBackwardInput<T extends F32> {
  /** The forward's input, f32 [N, 2F]. */
  gateUp: T;
  /** The loss's gradient with respect to h, f32 [N, F]. */
  dh: F32;
  /** F: required with a Float32Array gateUp. */
  intermediateSize?: number;
  /** dGateUp [N, 2F] on gateUp's device, overlapping neither input. */
  out?: T;
}

/**
 * The gradient of {@link swiglu} with respect to gateUp, in the same [gate | up] layout:
 * d gate = dh · up · s (1 + g (1 − s)), d up = dh · silu(g), s = sigmoid(g).
 *
 * @example
 * const dGateUp = swigluBackward({ gateUp, dh });   // [N, 2F]
 */
export function swigluBackward<T extends F32>(input: SwigluBackwardInput<T>): T {
  return wrapResult(getAddon().swigluBackward(nativeArgs(input)));
}

/** Promise form of {@link swigluBackward}. */
export async function swigluBackwardAsync<T extends F32>(input: SwigluBackwardInput<T>): Promise<T> {
  return wrapResult(await getAddon().swigluBackwardAsync(nativeArgs(input)));
}

export interface EmbeddingInput<T extends F32> {
  /** i32 [N] token ids, each in [0, V), on table's device. */
  ids: I32;
  /** f32 [V, d]: a 2-D Tensor, or a Float32Array (then pass dim). */
  table: T;
  /** d: required with a Float32Array table, else checked against its shape. */
  dim?: number;
  /** [N, d] on table's device, overlapping neither input. */
  out?: T;
}

/**
 * The token embedding: row t of the result is table[ids[t]]. An id outside [0, V) throws ERR_TALARIA_RANGE
 * naming its index and value, before anything is written (device ids are checked on a host copy).
 *
 * @example
 * const h = embedding({ ids: Int32Array.from([5, 0, 5]), table: wte });   // [3, d]
 */
export function embedding<T extends F32>(input: EmbeddingInput<T>): T {
  return wrapResult(getAddon().embedding(nativeArgs(input)));
}

/** Promise form of {@link embedding}. */
export async function embeddingAsync<T extends F32>(input: EmbeddingInput<T>): Promise<T> {
  return wrapResult(await getAddon().embeddingAsync(nativeArgs(input)));
}

export interface EmbeddingBackwardInput<T extends F32> {
  /** i32 [N] token ids, each in [0, V). */
  ids: I32;
  /** The loss's gradient with respect to the embedding output, f32 [N, d]. */
  dOut: F32;
  /** f32 [V, d], updated in place: dTable[ids[t]] += dOut[t]. */
  dTable: T;
  /** d: required with a Float32Array dTable. */
  dim?: number;
}

/**
 * The gradient of {@link embedding}: adds each dOut row into its id's row of dTable, in place, and returns
 * dTable. A repeated id receives its rows in token order, so the sums are bitwise the same on every
 * backend and thread count.
 *
 * @example
 * embeddingBackward({ ids, dOut: dHidden, dTable: gradWte });
 */
export function embeddingBackward<T extends F32>(input: EmbeddingBackwardInput<T>): T {
  return wrapResult(getAddon().embeddingBackward(nativeArgs(input)));
}

/** Promise form of {@link embeddingBackward}. */
export async function embeddingBackwardAsync<T extends F32>(input: EmbeddingBackwardInput<T>): Promise<T> {
  return wrapResult(await getAddon().embeddingBackwardAsync(nativeArgs(input)));
}

export interface AxpbyInput<T extends F32> {
  /** f32, any shape, as many elements as y, on y's device. May be y itself, but must not partially overlap it. */
  x: F32;
  /** f32, any shape, updated in place. */
  y: T;
  /** Finite. Default 1. */
  alpha?: number;
  /** Finite. Default 1. beta = 0 writes alpha · x without reading y (NaN in y is ignored). */
  beta?: number;
}

/**
 * y ← alpha · x + beta · y, in place; returns y. Residual adds (the defaults: y += x), gradient
 * accumulation, and weight EMAs (alpha = 1 − decay, beta = decay).
 *
 * @example
 * axpby({ x: attentionOut, y: residual });                        // residual += attentionOut
 * axpby({ x: params, y: emaParams, alpha: 0.001, beta: 0.999 });  // EMA of the weights
 */
export function axpby<T extends F32>(input: AxpbyInput<T>): T {
  return wrapResult(getAddon().axpby(nativeArgs(input)));
}

/** Promise form of {@link axpby}. */
export async function axpbyAsync<T extends F32>(input: AxpbyInput<T>): Promise<T> {
  return wrapResult(await getAddon().axpbyAsync(nativeArgs(input)));
}
