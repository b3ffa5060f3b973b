// matmul against the float64 reference (test/reference/matmul.ts) on every backend, for all four
// transpose combinations, through 2-D Tensors and typed arrays with m/n/k, sync and Promise. Sizes: 1, odd
// and prime (7x13x5, 97x31x129), several cache blocks (256^3, K = 600 > one K block) and skinny shapes
// (a GEMV row 1 x 300 x 4096 and column 4096 x 1 x 300); alpha and beta, beta = 0 over NaN.
//
// Tolerances, relative to each element's scale S = |alpha| sum_k |a_ik b_kj| + |beta c_ij|:
// - CPU (f32 FMAs in k order, one alpha scaling per 256-deep K block, one beta add): a dot product of
//   length K rounds at most ~(K + 8) times, each by 2^-24 of a partial sum <= S: (K + 8) 2^-24.
// - CUDA (tensor cores): both operands rounded to bf16 (8 significant bits: up to 2^-8 relative each)
//   make every product off by up to ~2^-7 relative, then the same f32 sums: 1.01 * 2^-7 + (K + 8) 2^-24.
// A wrong index (a transpose or a stride) moves an element by O(S).
import { afterEach, describe, expect, it } from 'vitest';
import { matmul, matmulAsync, Tensor } from '../lib/index.js';
import { type MatmulProblem, matmulReference } from './reference/matmul.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, tensorOn } from './helpers/backends.js';
import { expectNonTrivial, expectWithinScales, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

const cpuRel = (k: number) => (k + 8) * 2 ** -24;
const cudaRel = (k: number) => 1.01 * 2 ** -7 + cpuRel(k);
const relFor = (backend: string, k: number) => (backend === 'cpu' ? cpuRel(k) : cudaRel(k));

interface Shape { m: number; n: number; k: number; /** CPU only: too slow for the CUDA emulator. */ big?: boolean }
const shapes: Shape[] = [
  { m: 1, n: 1, k: 1 },
  { m: 7, n: 13, k: 5 },
  { m: 97, n: 31, k: 129 },
  { m: 33, n: 70, k: 40 },
  { m: 256, n: 256, k: 256, big: true },
  { m: 131, n: 67, k: 600, big: true },
  { m: 1, n: 4096, k: 300, big: true },
  { m: 4096, n: 1, k: 300, big: true },
];
const transposes = [[false, false], [false, true], [true, false], [true, true]] as const;

function problem(shape: Shape, transA: boolean, transB: boolean, seed: number, alpha = 1, beta = 0): MatmulProblem {
  const rng = new Rng(seed);
  const { m, n, k } = shape;
  return {
    a: randomF32(rng, m * k, -1, 1), b: randomF32(rng, k * n, -2, 2), c: randomF32(rng, m * n, -3, 3),
    m, n, k, transA, transB, alpha, beta,
  };
}

/** The [rows, cols] each operand is stored as. */
const aShape = (p: MatmulProblem) => (p.transA ? [p.k, p.m] : [p.m, p.k]);
const bShape = (p: MatmulProblem) => (p.transB ? [p.n, p.k] : [p.k, p.n]);

function check(got: Float32Array | Tensor, p: MatmulProblem, backend: string): void {
  const ref = matmulReference(p);
  expectNonTrivial(ref.c);
  expectWithinScales(readBack(got) as Float32Array, ref.c, relFor(backend, p.k), ref.scale);
}

describe.each(backendsUnderTest)('matmul on $backend', ({ backend, device }) => {
  const run = shapes.filter((s) => backend === 'cpu' || !s.big);
  describe.each(run)('$m x $n x $k', (shape) => {
    it.each(transposes)('transA = %s, transB = %s: Tensors, sync', (transA, transB) => {
      const p = problem(shape, transA, transB, shape.m * 31 + shape.n * 7 + shape.k);
      const c = matmul({ a: tensorOn(p.a, device, aShape(p)), b: tensorOn(p.b, device, bShape(p)), transA, transB });
      expect(c).toBeInstanceOf(Tensor);
      expect((c as Tensor).shape).toEqual([p.m, p.n]);
      expect((c as Tensor).device).toBe(device);
      check(c, p, backend);
    });

    it.each(transposes)('transA = %s, transB = %s: alpha, beta and c, Promise', async (transA, transB) => {
      const p = problem(shape, transA, transB, shape.k * 13 + 5, -0.75, 0.5);
      const c = tensorOn(p.c!, device, [p.m, p.n]);
      const got = await matmulAsync({ a: tensorOn(p.a, device, aShape(p)), b: tensorOn(p.b, device, bShape(p)), transA, transB,
        alpha: p.alpha, beta: p.beta, c });
      expect(got).toBe(c);
      check(got, p, backend);
    });
  });
});

describe('matmul on typed arrays (cpu)', () => {
  it.each(transposes)('transA = %s, transB = %s: m, n and k give the shapes; inputs stay unchanged', (transA, transB) => {
    const p = problem({ m: 23, n: 19, k: 41 }, transA, transB, 77);
    const unchanged = snapshotInputs({ a: p.a, b: p.b });
    const c = matmul({ a: p.a, b: p.b, transA, transB, m: p.m, n: p.n, k: p.k });
    expect(c).toBeInstanceOf(Float32Array);
    expect(c.length).toBe(p.m * p.n);
    check(c, p, 'cpu');
    unchanged();
  });

  it('only the dimension that gives each operand its columns is needed', async () => {
    const nn = problem({ m: 5, n: 9, k: 12 }, false, false, 78);
    check(matmul({ a: nn.a, b: nn.b, k: 12, n: 9 }), nn, 'cpu');
    const tt = problem({ m: 5, n: 9, k: 12 }, true, true, 79);
    check(await matmulAsync({ a: tt.a, b: tt.b, transA: true, transB: true, m: 5 }), tt, 'cpu');
  });

  it('beta = 0 ignores NaN and Infinity in c; beta != 0 accumulates into c in place', () => {
    const p = problem({ m: 17, n: 40, k: 9 }, false, true, 80, 2);
    const c = Float32Array.from(p.c!, (x, i) => (i % 3 === 0 ? Number.NaN : i % 3 === 1 ? Infinity : x));
    const got = matmul({ a: p.a, b: p.b, transB: true, alpha: 2, c, k: 9 });
    expect(got).toBe(c);
    check(got, p, 'cpu');
    const acc = problem({ m: 17, n: 40, k: 9 }, false, true, 80, 2, -1);
    const c2 = acc.c!.slice();
    matmul({ a: acc.a, b: acc.b, transB: true, alpha: 2, beta: -1, c: c2, k: 9 });
    check(c2, acc, 'cpu');
  });

  it('alpha = 0 scales c by beta without reading a or b (NaN there is ignored)', () => {
    const p = problem({ m: 6, n: 10, k: 4 }, false, false, 81, 0, 0.25);
    const a = p.a.slice();
    a[3] = Number.NaN;
    const c = p.c!.slice();
    matmul({ a, b: p.b, alpha: 0, beta: 0.25, c, k: 4, n: 10 });
    expect(Array.from(c)).toEqual(Array.from(p.c!, (x) => Math.fround(x * 0.25)));
  });
});
