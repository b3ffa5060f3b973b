// The rooflines, measured in the same run as the kernels.
// Bandwidth: STREAM's triad, a[i] = b[i] + s*c[i], through the native `streamTriad` kernel (threads +
// SIMD, like the kernels it is the ceiling for).
// Compute: the native `fmaPeak` probe, independent f32 FMA chains in registers on every thread (CPU: the
// widest SIMD level this machine has, 16 lanes a chain), best of several passes. It is the FP32 peak
// that matmul-like kernels (attention) are a fraction of; a tuned sgemm gets within ~10% of it.
//
// Napkin math: 3 arrays of 32 Mi floats are 128 MiB each, 384 MiB in all, far beyond any cache, so
// every pass streams from DRAM (about 9 ms a pass at 45 GB/s). Bytes are counted the STREAM way, 12 per
// element: read b, read c, write a. The write-allocate read of a (the cache line is fetched before it
// is overwritten) is real traffic but is not counted, as in STREAM; kernels' GB/s count the same way.
// As STREAM does, the first pass is a warm-up and the figure is the best of the rest.
import { freemem } from 'node:os';
import { fmaPeak, info, streamTriad } from '../lib/index.js';
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

/** The FMA peak of `backend` in GFLOP/s: the best of several passes of ~50 ms (CPU: one task a thread). */
export function measureFmaPeak(backend: string, quick: boolean): CaseResult {
  const cpu = backend === 'cpu';
  const workers = cpu ? info().threads : 1 << 20;
  const iterations = cpu ? (quick ? 1 << 20 : 1 << 23) : 1 << 14;
  const host = new Float32Array(workers);
  const out = cpu ? host : tensorOn(host, backend);
  const passes = quick ? 3 : 8;   // the first is the warm-up
  let best = 0, bestMs = Infinity;
  for (let pass = 0; pass < passes; pass++) {
    const start = process.hrtime.bigint();
    const flops = fmaPeak(out, iterations);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (pass > 0 && flops / ms / 1e6 > best) { best = flops / ms / 1e6; bestMs = ms; }
  }
  // Every chain converges to the fixed point of x * (1 - 2^-20) + 2^-20, which is 1: a finite, positive sum.
  const first = cpu ? host[0] : (out as ReturnType<typeof tensorOn>).toArray()[0];
  if (!(first > 0 && Number.isFinite(first))) throw new Error(`fmaPeak wrote ${first}, expected a positive chain sum`);
  if (!cpu) (out as ReturnType<typeof tensorOn>).dispose();
  return {
    suite: 'roofline',
    case: 'fma-peak',
    backend,
    params: { workers, iterations },
    ms: bestMs,
    gbps: null,
    gflops: best,
    rooflineFraction: null,   // it is the roofline
    baseline: null,
  };
}
