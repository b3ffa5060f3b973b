// Roofline probes (native/core/kernels/roofline.h): the bench measures this machine's limits with them.
import { getAddon } from '../native.js';
import { nativeArgs, type Tensor } from '../tensor.js';

/**
 * STREAM triad, a[i] = b[i] + scalar * c[i], written into `a` (12 bytes per element). Returns `a`.
 *
 * @example
 * const n = 1 << 24, a = new Float32Array(n), b = new Float32Array(n).fill(1), c = new Float32Array(n).fill(2);
 * streamTriad(a, b, c, 3); // a is now all 7
 */
export function streamTriad<T extends Float32Array | Tensor>(a: T, b: T, c: T, scalar: number): T {
  getAddon().streamTriad(nativeArgs(a), nativeArgs(b), nativeArgs(c), scalar);
  return a;
}

/** Promise form of {@link streamTriad}. */
export async function streamTriadAsync<T extends Float32Array | Tensor>(a: T, b: T, c: T, scalar: number): Promise<T> {
  await getAddon().streamTriadAsync(nativeArgs(a), nativeArgs(b), nativeArgs(c), scalar);
  return a;
}

/**
 * The FMA-throughput probe: every element of `out` is one worker (a CPU task, or a CUDA thread) running
 * independent chains of f32 fused multiply-adds in registers for `iterations` steps; the element receives
 * its chains' sum. Returns the FLOPs performed (2 per FMA lane), to divide by the elapsed time.
 *
 * @example
 * const out = new Float32Array(info().threads);
 * const start = performance.now();
 * const flops = fmaPeak(out, 1 << 22);
 * console.log(flops / (performance.now() - start) / 1e6, 'GFLOP/s');
 */
export function fmaPeak(out: Float32Array | Tensor, iterations: number): number {
  return getAddon().fmaPeak(nativeArgs(out), iterations) as number;
}
