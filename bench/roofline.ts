// The bandwidth roofline, measured in the same run as the kernels: STREAM's triad, a[i] = b[i] + s*c[i],
// through the native `streamTriad` kernel (threads + SIMD, like the kernels it is the ceiling for).
//
// Napkin math: 3 arrays of 32 Mi floats are 128 MiB each, 384 MiB in all, far beyond any cache, so
// every pass streams from DRAM (about 9 ms a pass at 45 GB/s). Bytes are counted the STREAM way, 12 per
// element: read b, read c, write a. The write-allocate read of a (the cache line is fetched before it
// is overwritten) is real traffic but is not counted, as in STREAM; kernels' GB/s count the same way.
// As STREAM does, the first pass is a warm-up and the figure is the best of the rest.
import { freemem } from 'node:os';
import { streamTriad } from '../lib/index.js';
import { tensorOn } from './inputs.js';
import type { CaseResult } from './harness.js';

const TRIAD_ELEMENTS = 32 * 1024 * 1024;
const BYTES_PER_ELEMENT = 12;
const SCALAR = 3;

export function measureStreamTriad(backend: string, quick: boolean): CaseResult {
  // Keep the three arrays well inside free memory (with room for device copies' staging).
  let n = TRIAD_ELEMENTS;
  while (n > 1 << 20 && 2 * 3 * 4 * n > freemem()) n /= 2;
  const a = new Float32Array(n);
  const b = new Float32Array(n).fill(1);   // fill() also touches every page before timing
  const c = new Float32Array(n).fill(2);
  // The CPU kernel takes the typed arrays themselves; other backends need device copies.
  const onDevice = backend === 'cpu' ? null : [a, b, c].map((x) => tensorOn(x, backend));
  const triad = onDevice
    ? () => streamTriad(onDevice[0], onDevice[1], onDevice[2], SCALAR)
    : () => streamTriad(a, b, c, SCALAR);

  const passes = quick ? 4 : 11;   // the first is the warm-up
  let bestMs = Infinity;
  for (let pass = 0; pass < passes; pass++) {
    const start = process.hrtime.bigint();
    triad();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (pass > 0) bestMs = Math.min(bestMs, ms);
  }
  checkTriad(onDevice ? onDevice[0].toArray() : a, 1 + SCALAR * 2);
  onDevice?.forEach((t) => t.dispose());

  return {
    suite: 'roofline',
    case: 'stream-triad',
    backend,
    params: { n },
    ms: bestMs,
    gbps: (BYTES_PER_ELEMENT * n) / bestMs / 1e6,
    gflops: null,
    rooflineFraction: null,   // it is the roofline
    baseline: null,
  };
}

/** A wrong triad would make every roofline fraction wrong, so check the result once. */
function checkTriad(a: ArrayLike<number>, expected: number): void {
  for (const i of [0, a.length >> 1, a.length - 1]) {
    if (a[i] !== expected) throw new Error(`streamTriad wrote a[${i}] = ${a[i]}, expected ${expected}`);
  }
}
