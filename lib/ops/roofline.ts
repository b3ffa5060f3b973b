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
