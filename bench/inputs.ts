// Inputs the suites share: seeded random arrays (the same numbers on every run, so runs compare),
// the packed-sequence layout of DESIGN.md, and placing an array on a backend's device.
import { Tensor } from '../lib/index.js';
import { deviceOf } from './harness.js';

/** mulberry32: a tiny seeded generator of uniform numbers in [0, 1). Good enough for bench data. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n floats uniform in [lo, hi). */
export function uniformFloat32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

/** cu_seqlens for B sequences of T tokens each: [0, T, 2T, …, BT]. */
export function uniformCuSeqlens(B: number, T: number): Int32Array {
  return Int32Array.from({ length: B + 1 }, (_, b) => b * T);
}

/** A response mask over packed sequences of `seqLen` tokens: 0 on each one's first `promptLen`, 1 after. */
export function responseMask(n: number, seqLen: number, promptLen: number): Uint8Array {
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = i % seqLen >= promptLen ? 1 : 0;
  return mask;
}

/** The array as a Tensor on the backend's device: a zero-copy view on the CPU, a copy elsewhere. */
export function tensorOn(data: Float32Array | Int32Array | Uint8Array, backend: string): Tensor {
  return backend === 'cpu' ? Tensor.wrap(data) : Tensor.from(data, { device: deviceOf(backend) });
}
