// Logit kernels at the PyTorch anchor's size (N = 512 tokens, V = 32,000) and at N = 2048: logprobEntropy
// forward, forward + backward, and the fused SFT cross-entropy. The baseline is plain TypeScript over
// f32 arrays (the f64 reference of test/reference/logits.ts allocates per row and would take seconds at
// N = 2048): the same one-row-at-a-time math a JS trainer would write.
//
// Napkin math (compulsory traffic, what GB/s counts; the per-row outputs are negligible):
//   fwd       read the logits once                                    4 N V B   (65.5 MB at N = 512)
//   fwd+bwd   fwd, then read the logits again and write dLogits       12 N V B
//   ce        read the logits, write dLogits (the second touch of a row is in L2)  8 N V B
// Rows of 128 KB stream from DRAM, so the triad bandwidth is the roof; one exp per logit per pass
// (~20 f32 ops in AVX-512, ~1 ms per 16M logits on two cores) is the other bound and sits close to it.
// dLogits goes into a reused out buffer, as a training loop would (no allocation or page faults per call).
import { crossEntropy, logprobEntropy, logprobEntropyBackward, Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, formatFigure, type BenchCase, type CaseResult } from './harness.js';
import { tensorOn, uniformFloat32 } from './inputs.js';

const V = 32_000;
const SIZES = [512, 2048];
/** notes/anchors.md: PyTorch 1.13 eager, 2 threads, log_softmax + gather + entropy at N = 512, V = 32,000. */
const PYTORCH_MS = { fwd: 61, 'fwd+bwd': 189 };

// ---- The plain-TypeScript baseline (f32 storage, f64 scalars, one row at a time) ----------------------

function rowStats(x: Float32Array, base: number, invT: number) {
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, x[base + i]);
  let d = 0, s = 0;
  for (let i = 0; i < V; i++) {
    const dz = (x[base + i] - m) * invT, w = Math.exp(dz);
    d += w;
    s += w * dz;
  }
  const logD = Math.log(d);
  return { m, logD, entropy: logD - s / d };
}

function forwardTs(x: Float32Array, targets: Int32Array, out: { logp: Float32Array; entropy: Float32Array; lse: Float32Array }) {
  for (let r = 0; r < targets.length; r++) {
    const { m, logD, entropy } = rowStats(x, r * V, 1);
    out.logp[r] = x[r * V + targets[r]] - m - logD;
    out.entropy[r] = entropy;
    out.lse[r] = m + logD;
  }
}

function backwardTs(x: Float32Array, targets: Int32Array, gLogp: Float32Array, gEntropy: Float32Array,
  saved: { lse: Float32Array; entropy: Float32Array }, dLogits: Float32Array) {
  for (let r = 0; r < targets.length; r++) {
    const base = r * V, lse = saved.lse[r], h = saved.entropy[r];
    for (let i = 0; i < V; i++) {
      const lp = x[base + i] - lse, p = Math.exp(lp);
      dLogits[base + i] = gLogp[r] * ((i === targets[r] ? 1 : 0) - p) - gEntropy[r] * p * (lp + h);
    }
  }
}

function crossEntropyTs(x: Float32Array, targets: Int32Array, dLogits: Float32Array): number {
  const n = targets.length;
  let loss = 0;
  for (let r = 0; r < n; r++) {
    const base = r * V, { m, logD } = rowStats(x, base, 1);
    loss += m + logD - x[base + targets[r]];
    for (let i = 0; i < V; i++) dLogits[base + i] = (Math.exp(x[base + i] - m - logD) - (i === targets[r] ? 1 : 0)) / n;
  }
  return loss / n;
}

// ---- Cases ----------------------------------------------------------------------------------------------

function logitsCases(backends: string[]): BenchCase[] {
  return SIZES.flatMap((n) => {
    const logits = uniformFloat32(n * V, 31 + n, -8, 8);
    const targets = Int32Array.from(uniformFloat32(n, 32 + n, 0, V), Math.floor);
    const gLogp = uniformFloat32(n, 33 + n), gEntropy = uniformFloat32(n, 34 + n);
    const saved = { logp: new Float32Array(n), entropy: new Float32Array(n), lse: new Float32Array(n) };
    const dLogitsTs = new Float32Array(n * V);
    const params = { N: n, V };
    const fwdBaseline = { name: `typescript fwd N=${n}`, run: () => forwardTs(logits, targets, saved) };
    const bothBaseline = {
      name: `typescript fwd+bwd N=${n}`,
      run: () => {
        forwardTs(logits, targets, saved);
        backwardTs(logits, targets, gLogp, gEntropy, saved, dLogitsTs);
      },
    };
    const ceBaseline = { name: 'typescript ce N=512', run: () => void crossEntropyTs(logits, targets, dLogitsTs) };
    return backends.flatMap((backend) => {
      const on = { targets: tensorOn(targets, backend), gLogp: tensorOn(gLogp, backend), gEntropy: tensorOn(gEntropy, backend) };
      // The cpu takes the typed arrays themselves (zero copy); a device needs [N, V] Tensors there.
      const onDevice = (x: Float32Array) => Tensor.from(x, { shape: [n, V], device: deviceOf(backend) });
      const matrix = backend === 'cpu' ? { logits, vocabSize: V } : { logits: onDevice(logits) };
      const dLogits = backend === 'cpu' ? new Float32Array(n * V) : onDevice(new Float32Array(n * V));
      const fwd = () => logprobEntropy({ ...matrix, targets: on.targets } as never);
      const both = () => {
        const out = fwd() as { lse: Float32Array; entropy: Float32Array };
        logprobEntropyBackward({ ...matrix, targets: on.targets, gLogp: on.gLogp, gEntropy: on.gEntropy, lse: out.lse,
          entropy: out.entropy, out: { dLogits } } as never);
      };
      const cases: BenchCase[] = [
        { name: `fwd N=${n}`, backend, params, bytes: 4 * n * V, run: () => void fwd(), baseline: fwdBaseline },
        { name: `fwd+bwd N=${n}`, backend, params, bytes: 12 * n * V, run: both, baseline: bothBaseline },
      ];
      if (n === 512) {
        cases.push({ name: `ce N=${n}`, backend, params, bytes: 8 * n * V, baseline: ceBaseline,
          run: () => void crossEntropy({ ...matrix, targets: on.targets, out: { dLogits } } as never) });
      }
      return cases;
    });
  });
}

/** The ratio to the anchor, apart from the table: the anchor was not measured in this run. */
function pytorchAnchorFooter(results: CaseResult[]): string[] {
  const lines = ['logits baselines: plain TypeScript loops over the f32 arrays, one row at a time (this file).',
    'vs the PyTorch ANCHOR from notes/anchors.md (1.13 eager, 2 threads, log_softmax + gather + entropy, N = 512,',
    'V = 32,000): fwd 61 ms, fwd+bwd 189 ms; NOT measured in this run, so the ratios are only indicative:'];
  for (const r of results.filter((result) => result.backend === 'cpu' && result.params.N === 512)) {
    const anchor = r.case.startsWith('fwd+bwd') ? PYTORCH_MS['fwd+bwd'] : r.case.startsWith('fwd') ? PYTORCH_MS.fwd : null;
    if (anchor !== null) lines.push(`  ${r.case} (cpu): anchor ${anchor} ms / ${formatFigure(r.ms)} ms here = ${formatFigure(anchor / r.ms)}×`);
  }
  return lines;
}

export default defineSuite({ name: 'logits', cases: logitsCases, footer: pytorchAnchorFooter });
