// Matrix multiply, C = op(A) op(B) (beta = 0, into a reused C as a training loop would): square 1024^3
// and 2048^3 in the layouts the transformer uses (NN, NT = x W^T, TN = dY^T X), and transformer-shaped
// cases at T = 4096 tokens, d = 1024: the FFN up projection x W1^T (4096 x 4096 x 1024, NT) and its
// weight gradient dW1 = dY^T x (4096 x 1024 x 4096, TN). FLOPs = 2 M N K.
//
// Napkin math: at 1024^3, 2.1 GFLOP on 12 MB of operands (~170 FLOP/byte): compute-bound, so the table's
// GB/s and bandwidth-roofline columns do not apply; the footer gives GFLOP/s and the fraction of the
// OpenBLAS sgemm anchor (notes/anchors.md: ~220 GFLOP/s at 2048^3 on 2 threads; NOT measured in this run).
// The baseline is a plain-TypeScript i-k-j triple loop over Float32Arrays, timed at 256^3 (a 1024^3 call
// would take seconds) next to the kernel at the same size.
import { matmul, Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, formatFigure, type BenchCase, type CaseResult } from './harness.js';
import { uniformFloat32 } from './inputs.js';

/** notes/anchors.md: OpenBLAS sgemm at 2048^3, 2 threads. */
const OPENBLAS_GFLOPS = 220;

interface Shape { m: number; n: number; k: number; transA: boolean; transB: boolean; label: string }
const shape = (m: number, n: number, k: number, layout: 'NN' | 'NT' | 'TN', note = ''): Shape => ({
  m, n, k, transA: layout === 'TN', transB: layout === 'NT', label: `${layout} ${m}x${n}x${k}${note}`,
});
const BASELINE_SHAPE = shape(256, 256, 256, 'NN');
const CPU_SHAPES = [
  BASELINE_SHAPE,
  shape(1024, 1024, 1024, 'NN'), shape(1024, 1024, 1024, 'NT'), shape(1024, 1024, 1024, 'TN'),
  shape(2048, 2048, 2048, 'NN'), shape(2048, 2048, 2048, 'NT'),
  shape(4096, 4096, 1024, 'NT', ' (FFN up, x W1^T)'), shape(4096, 1024, 4096, 'TN', ' (FFN dW1 = dY^T x)'),
];
// The emulator runs every GPU thread on the CPU: one small case only checks that the path runs.
const EMULATED_SHAPES = [shape(64, 64, 64, 'NN')];

/** C = A B, row-major, the loop order a JS trainer would write (the inner loop streams rows of B and C). */
function matmulTs(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  c.fill(0);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      const bRow = p * n, cRow = i * n;
      for (let j = 0; j < n; j++) c[cRow + j] += aip * b[bRow + j];
    }
  }
}

function matmulCases(backends: string[]): BenchCase[] {
  const base = BASELINE_SHAPE;
  const baseA = uniformFloat32(base.m * base.k, 71), baseB = uniformFloat32(base.k * base.n, 72);
  const baseC = new Float32Array(base.m * base.n);
  const baseline = { name: 'typescript i-k-j loop 256^3', run: () => matmulTs(baseA, baseB, baseC, base.m, base.n, base.k) };
  return backends.flatMap((backend) => {
    const shapes = backend === 'cpu' ? CPU_SHAPES : backend === 'cuda-emu' ? EMULATED_SHAPES : CPU_SHAPES;
    return shapes.map((s, index): BenchCase => {
      const [aRows, aCols] = s.transA ? [s.k, s.m] : [s.m, s.k];
      const [bRows, bCols] = s.transB ? [s.n, s.k] : [s.k, s.n];
      const a = uniformFloat32(aRows * aCols, 100 + index), b = uniformFloat32(bRows * bCols, 200 + index);
      const matrix = (data: Float32Array, rows: number, cols: number) =>
        (backend === 'cpu' ? Tensor.wrap(data, { shape: [rows, cols] }) : Tensor.from(data, { shape: [rows, cols], device: deviceOf(backend) }));
      const input = { a: matrix(a, aRows, aCols), b: matrix(b, bRows, bCols), transA: s.transA, transB: s.transB,
        c: matrix(new Float32Array(s.m * s.n), s.m, s.n) };
      return {
        name: s.label, backend, params: { M: s.m, N: s.n, K: s.k, layout: s.label.slice(0, 2) },
        flops: 2 * s.m * s.n * s.k, run: () => void matmul(input),
        ...(s === BASELINE_SHAPE && { baseline }),
      };
    });
  });
}

function anchorFooter(results: CaseResult[]): string[] {
  const lines = [`matmul: GFLOP/s = 2MNK / time; vs the OpenBLAS sgemm ANCHOR from notes/anchors.md (~${OPENBLAS_GFLOPS} GFLOP/s at`,
    '2048^3 on 2 threads), NOT measured in this run, so the fractions are only indicative. Baseline: plain TypeScript',
    'i-k-j loop at 256^3 (this file).'];
  for (const r of results) {
    const vsAnchor = r.backend === 'cpu' ? `, ${(100 * r.gflops! / OPENBLAS_GFLOPS).toFixed(0)}% of the anchor` : '';
    lines.push(`  ${r.case} (${r.backend}): ${formatFigure(r.gflops)} GFLOP/s${vsAnchor}`);
    if (r.baseline) lines.push(`  ${r.baseline.name}: ${formatFigure(r.gflops! * r.ms / r.baseline.ms)} GFLOP/s`);
  }
  return lines;
}

export default defineSuite({ name: 'matmul', cases: matmulCases, footer: anchorFooter });
