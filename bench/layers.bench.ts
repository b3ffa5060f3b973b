// Decoder-layer kernels at a Llama-style layer's size: N = 2048 tokens, d = 1024, F = 2816 (SwiGLU's
// intermediate size). Outputs go to preallocated out buffers, so the cases time the kernels, not allocation.
//
// Napkin math (compulsory traffic, what GB/s counts):
//   rmsnorm forward   read x, write y: 8 N d B (+ weight, rstd) = 16.8 MB
//   rmsnorm backward  read x, dy, write dx: 12 N d B (+ weight, rstd, dWeight) = 25.2 MB
//   swiglu forward    read gate|up, write h: 12 N F B = 69 MB
//   swiglu backward   read gate|up, dh, write dgate|dup: 20 N F B = 115 MB
// All stream from DRAM at ~1 FLOP per byte (rmsnorm) or one exp per 12-20 B (swiglu): the STREAM triad is
// the roof. Baselines: the same loops in plain TypeScript over the Float32Arrays.
import { rmsnorm, rmsnormBackward, swiglu, swigluBackward, Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, type BenchCase } from './harness.js';
import { uniformFloat32 } from './inputs.js';

const N = 2048, D = 1024, F = 2816;
const EMULATED_N = 16;
const EPS = 1e-6;

function rmsnormTs(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array, d: number): void {
  for (let r = 0; r < rstd.length; r++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += x[r * d + j] * x[r * d + j];
    const s = 1 / Math.sqrt(sum / d + EPS);
    rstd[r] = s;
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * s * w[j];
  }
}

function rmsnormBackwardTs(x: Float32Array, w: Float32Array, rstd: Float32Array, dy: Float32Array, dx: Float32Array,
  dw: Float32Array, d: number): void {
  for (let r = 0; r < rstd.length; r++) {
    const s = rstd[r];
    let dot = 0;
    for (let j = 0; j < d; j++) dot += dy[r * d + j] * w[j] * x[r * d + j];
    const coef = s * s * s * dot / d;
    for (let j = 0; j < d; j++) {
      dx[r * d + j] = s * dy[r * d + j] * w[j] - coef * x[r * d + j];
      dw[j] += dy[r * d + j] * x[r * d + j] * s;
    }
  }
}

function swigluTs(gateUp: Float32Array, h: Float32Array, f: number): void {
  const n = h.length / f;
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) {
      const g = gateUp[r * 2 * f + j];
      h[r * f + j] = (g / (1 + Math.exp(-g))) * gateUp[r * 2 * f + f + j];
    }
}

function swigluBackwardTs(gateUp: Float32Array, dh: Float32Array, d: Float32Array, f: number): void {
  const n = dh.length / f;
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) {
      const g = gateUp[r * 2 * f + j], up = gateUp[r * 2 * f + f + j], s = 1 / (1 + Math.exp(-g)), grad = dh[r * f + j];
      d[r * 2 * f + j] = grad * up * s * (1 + g * (1 - s));
      d[r * 2 * f + f + j] = grad * g * s;
    }
}

function layersCases(backends: string[]): BenchCase[] {
  const x = uniformFloat32(N * D, 91, -2, 2), w = uniformFloat32(D, 92, 0.5, 1.5), dy = uniformFloat32(N * D, 93);
  const gateUp = uniformFloat32(N * 2 * F, 94, -6, 6), dh = uniformFloat32(N * F, 95);
  const ts = { y: new Float32Array(N * D), rstd: new Float32Array(N), dx: new Float32Array(N * D), dw: new Float32Array(D),
    h: new Float32Array(N * F), dGateUp: new Float32Array(N * 2 * F) };
  rmsnormTs(x, w, ts.y, ts.rstd, D);
  const baselines = {
    rmsnorm: { name: 'typescript rmsnorm loop', run: () => rmsnormTs(x, w, ts.y, ts.rstd, D) },
    rmsnormBackward: { name: 'typescript rmsnorm backward loop', run: () => rmsnormBackwardTs(x, w, ts.rstd, dy, ts.dx, ts.dw, D) },
    swiglu: { name: 'typescript swiglu loop', run: () => swigluTs(gateUp, ts.h, F) },
    swigluBackward: { name: 'typescript swiglu backward loop', run: () => swigluBackwardTs(gateUp, dh, ts.dGateUp, F) },
  };
  return backends.flatMap((backend) => {
    // The emulator runs every GPU thread on the CPU: a small case only checks that the path runs.
    const n = backend === 'cuda-emu' ? EMULATED_N : N;
    const full = n === N;
    const on = (data: Float32Array, shape: number[]) =>
      (backend === 'cpu' ? Tensor.wrap(data.subarray(0, shape.reduce((a, b) => a * b, 1)), { shape })
        : Tensor.from(data.subarray(0, shape.reduce((a, b) => a * b, 1)), { shape, device: deviceOf(backend) }));
    const norm = { x: on(x, [n, D]), weight: on(w, [D]) };
    const out = { y: on(new Float32Array(n * D), [n, D]), rstd: on(new Float32Array(n), [n]) };
    rmsnorm({ ...norm, eps: EPS, out });
    const backward = { ...norm, rstd: out.rstd, dy: on(dy, [n, D]), dWeight: on(new Float32Array(D), [D]),
      out: { dx: on(new Float32Array(n * D), [n, D]) } };
    const gu = on(gateUp, [n, 2 * F]), dhOn = on(dh, [n, F]);
    const h = on(new Float32Array(n * F), [n, F]), dGateUp = on(new Float32Array(n * 2 * F), [n, 2 * F]);
    const normParams = { N: n, d: D }, mlpParams = { N: n, F };
    return [
      { name: `rmsnorm N=${n} d=${D}`, backend, params: normParams, bytes: 8 * n * D + 4 * D + 4 * n,
        ...(full && { baseline: baselines.rmsnorm }), run: () => void rmsnorm({ ...norm, eps: EPS, out }) },
      { name: `rmsnormBackward N=${n} d=${D}`, backend, params: normParams, bytes: 12 * n * D + 12 * D + 4 * n,
        ...(full && { baseline: baselines.rmsnormBackward }), run: () => void rmsnormBackward(backward) },
      { name: `swiglu N=${n} F=${F}`, backend, params: mlpParams, bytes: 12 * n * F,
        ...(full && { baseline: baselines.swiglu }), run: () => void swiglu({ gateUp: gu, out: h }) },
      { name: `swigluBackward N=${n} F=${F}`, backend, params: mlpParams, bytes: 20 * n * F,
        ...(full && { baseline: baselines.swigluBackward }), run: () => void swigluBackward({ gateUp: gu, dh: dhOn, out: dGateUp }) },
    ];
  });
}

export default defineSuite({
  name: 'layers',
  cases: layersCases,
  footer: () => ['layers baselines: the same loops in plain TypeScript (f64 arithmetic, Math.exp) over Float32Arrays.'],
});
