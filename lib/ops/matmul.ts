// Matrix multiply (native/core/kernels/matmul.h): C = alpha * op(A) * op(B) + beta * C on f32 row-major
// matrices, op(X) = X or its transpose. The CPU kernel is a cache-blocked SGEMM (AVX-512/AVX2 chosen at
// run time), bitwise deterministic for any thread count; the CUDA kernel runs on tensor cores with bf16
// operands and f32 accumulation (error up to ~2^-7 relative per product).
import { getAddon } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32 } from './rl.js';

export interface MatmulInput<T extends F32> {
  /** A: f32 [M, K] row-major ([K, M] when transA). A 2-D Tensor, or a Float32Array (then pass k, or m when transA). */
  a: T;
  /** B: f32 [K, N] row-major ([N, K] when transB). A 2-D Tensor, or a Float32Array (then pass n unless transB). */
  b: F32;
  /** Use A transposed: a holds [K, M]. Default false. */
  transA?: boolean;
  /** Use B transposed: b holds [N, K] (x W^T with W [out, in], as a linear layer). Default false. */
  transB?: boolean;
  /** Scales op(A) op(B); finite. Default 1. */
  alpha?: number;
  /** Scales the old C; finite. Default 0, which never reads c (NaN there is ignored). beta != 0 needs c. */
  beta?: number;
  /** [M, N] buffer for C, on a's device, overlapping neither a nor b. Default: a fresh one of a's kind. */
  c?: T;
  /** Rows of op(A) and C (>= 1). Tensors carry it; if given, it must agree. */
  m?: number;
  /** Columns of op(B) and C (>= 1). */
  n?: number;
  /** Columns of op(A), rows of op(B) (>= 1). */
  k?: number;
}

/**
 * C = alpha * op(A) * op(B) + beta * C. Returns C: `c` when given, else a fresh [M, N] output of a's kind
 * (a Tensor on a's device, or a Float32Array). The three layouts a transformer needs: forward x W^T
 * (`transB`), backward dX = dY W and dW = dY^T X (`transA`).
 *
 * @example
 * const y = matmul({ a: x, b: w, transB: true });                                   // [T, out]
 * matmul({ a: dy, b: x, transA: true, c: dw, beta: 1 });                             // accumulate dW
 * const c = matmul({ a: new Float32Array(6), b: new Float32Array(12), k: 3, n: 4 }); // [2, 4]
 */
export function matmul<T extends F32>(input: MatmulInput<T>): T {
  return wrapResult(getAddon().matmul(nativeArgs(input)));
}

/** Promise form of {@link matmul}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function matmulAsync<T extends F32>(input: MatmulInput<T>): Promise<T> {
  return wrapResult(await getAddon().matmulAsync(nativeArgs(input)));
}
