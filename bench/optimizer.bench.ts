// Optimizer kernels over 16M parameters (a 16M-parameter model's flat buffers, 64 MB each): one AdamW step
// and the global gradient norm (measure only, so the gradients are unchanged between calls).
//
// Napkin math (compulsory traffic, what GB/s counts): AdamW reads params, grads, m, v and writes params,
// m, v: 28 B per parameter (448 MB, ~10 ms at 45 GB/s); the norm reads the gradients once, 4 B per
// element. Both stream from DRAM, so the triad bandwidth is the roof. Baselines: the same loops in plain
// TypeScript over the Float32Arrays.
import { adamw, clipGradNorm, Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, type BenchCase } from './harness.js';
import { uniformFloat32 } from './inputs.js';

const N = 16 * 1024 * 1024;
const EMULATED_N = 65_536;
const HYPER = { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

function adamwTs(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, step: number): void {
  const { lr, beta1, beta2, eps, weightDecay } = HYPER;
  const stepSize = lr / (1 - beta1 ** step), invSqrtBc2 = 1 / Math.sqrt(1 - beta2 ** step), decay = 1 - lr * weightDecay;
  for (let i = 0; i < p.length; i++) {
    m[i] = beta1 * m[i] + (1 - beta1) * g[i];
    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    p[i] = p[i] * decay - stepSize * m[i] / (Math.sqrt(v[i]) * invSqrtBc2 + eps);
  }
}

function normTs(g: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

function optimizerCases(backends: string[]): BenchCase[] {
  const grads = uniformFloat32(N, 81);
  const ts = { p: uniformFloat32(N, 82), m: new Float32Array(N), v: new Float32Array(N) };
  const adamwBaseline = { name: 'typescript adamw loop', run: () => adamwTs(ts.p, grads, ts.m, ts.v, 10) };
  const normBaseline = { name: 'typescript norm loop', run: () => void normTs(grads) };
  return backends.flatMap((backend) => {
    // The emulator runs every GPU thread on the CPU: a small case only checks that the path runs.
    const n = backend === 'cuda-emu' ? EMULATED_N : N;
    const on = (x: Float32Array) => (backend === 'cpu' ? x : Tensor.from(x, { device: deviceOf(backend) }));
    const state = { params: on(uniformFloat32(n, 83)), grads: on(grads.subarray(0, n)), m: on(new Float32Array(n)), v: on(new Float32Array(n)) };
    const params = { N: n };
    return [
      { name: `adamw N=${n}`, backend, params, bytes: 28 * n, ...(n === N && { baseline: adamwBaseline }),
        run: () => void adamw({ ...state, step: 10, ...HYPER } as never) },
      { name: `gradNorm N=${n}`, backend, params, bytes: 4 * n, ...(n === N && { baseline: normBaseline }),
        run: () => void clipGradNorm({ grads: state.grads } as never) },
    ];
  });
}

export default defineSuite({ name: 'optimizer', cases: optimizerCases });
