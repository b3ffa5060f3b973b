// The decoder-layer kernels against their float64 references (test/reference/layers.ts) on every backend,
// through Tensors and typed arrays, sync and Promise; rmsnorm's gradients also against finite differences.
//
// Tolerances, relative to each output's error scale (the magnitudes an f32 kernel rounds):
// - rmsnorm y = (x rstd) w: rstd rounded once from f64, two products: |y| 2^-21 (8 ulp). rstd: 2^-22.
// - dx = rstd (g - c x) (g = dy w, c = rstd^2 mean(g x) from f64 over the rounded g):
//   (|rstd g| + rstd^3 sum|g x| / d |x|) 2^-21.
// - dWeight: each term dy (x rstd) is two f32 products (2^-23 relative), summed in f64: 2^-21 sum |terms|.
// - swiglu: sigmoid from a 2-ulp exp, then three roundings: |h| 2^-20 (+1e-34 absolute: e^-|g| underflows
//   to 0 below g = -87, where |silu| < 1e-34 and the kernel gives 0). Its backward: 1 - s near s = 1
//   cancels, an absolute error of ~2^-24 |g| in s (1 + g (1 - s)): |dh up| (1 + |g|) 2^-20 for d gate.
// - embedding is a copy (exact); its backward adds rows in token order: bitwise the f32 sequence.
// - axpby: two products and a sum (maybe one FMA): (|alpha x| + |beta y|) 2^-22.
// A wrong formula (a missing weight, rstd instead of rstd^3, gate and up swapped) is off by O(1).
import { afterEach, describe, expect, it } from 'vitest';
import {
  axpby, axpbyAsync, embedding, embeddingAsync, embeddingBackward, embeddingBackwardAsync, rmsnorm, rmsnormAsync,
  rmsnormBackward, rmsnormBackwardAsync, swiglu, swigluAsync, swigluBackward, swigluBackwardAsync, Tensor,
} from '../lib/index.js';
import {
  axpbyReference, embeddingBackwardReference, embeddingReference, rmsnormBackwardReference, rmsnormReference,
  swigluBackwardReference, swigluReference,
} from './reference/layers.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, matrixOn, readBack, tensorOn } from './helpers/backends.js';
import {
  expectBitwiseEqual, expectGradientMatchesFiniteDifferences, expectNonTrivial, expectWithinScales,
} from './helpers/assert.js';

afterEach(disposeTensors);

const f32 = (x: unknown) => readBack(x as Tensor | Float32Array) as Float32Array;
const abs = (values: ArrayLike<number>) => Float64Array.from(values, Math.abs);

// ---- rmsnorm -------------------------------------------------------------------------------------------------

interface NormProblem { n: number; d: number; eps: number; x: Float32Array; weight: Float32Array; dy: Float32Array }
const normSizes: [number, number][] = [[1, 1], [1, 1024], [3, 7], [13, 96], [131, 257], [67, 1024]];

function normProblem(n: number, d: number, seed: number, eps = 1e-6): NormProblem {
  const rng = new Rng(seed);
  // Rows of different magnitudes, so rstd varies and eps matters for the small ones.
  const x = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const scale = 10 ** rng.uniform(-2, 1);
    for (let j = 0; j < d; j++) x[r * d + j] = rng.uniform(-scale, scale);
  }
  return { n, d, eps, x, weight: randomF32(rng, d, 0.5, 1.5), dy: randomF32(rng, n * d) };
}

function checkRmsnorm(p: NormProblem, y: Float32Array, rstd: Float32Array): void {
  const ref = rmsnormReference(p.x, p.weight, p.eps);
  expectNonTrivial(ref.y);
  expectWithinScales(rstd, ref.rstd, 2 ** -22, abs(ref.rstd));
  expectWithinScales(y, ref.y, 2 ** -21, abs(ref.y));
}

/** Checks dx (as added to dxBefore when given) and dWeight (added to dWeightBefore when given). */
function checkRmsnormBackward(p: NormProblem, rstd: Float32Array, dx: Float32Array, dWeight: Float32Array,
  dxBefore?: Float32Array, dWeightBefore?: Float32Array): void {
  const { n, d } = p;
  const ref = rmsnormBackwardReference(p.x, p.weight, p.dy, p.eps, rstd);
  const dxScale = new Float64Array(n * d), dwScale = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    // coef's error scale: the sum of |g x| (the f32 rounding of each g = dy w), not the (cancelling) dot itself.
    let dotScale = 0;
    for (let j = 0; j < d; j++) dotScale += Math.abs(p.dy[r * d + j] * p.weight[j] * p.x[r * d + j]);
    const coef = rstd[r] ** 3 * dotScale / d;
    for (let j = 0; j < d; j++) {
      const i = r * d + j;
      dxScale[i] = Math.abs(rstd[r] * p.dy[i] * p.weight[j]) + coef * Math.abs(p.x[i]) + Math.abs(dxBefore?.[i] ?? 0);
      dwScale[j] += Math.abs(p.dy[i] * p.x[i] * rstd[r]);
    }
  }
  const wantDx = dxBefore ? ref.dx.map((v, i) => v + dxBefore[i]) : ref.dx;
  const wantDw = dWeightBefore ? ref.dWeight.map((v, j) => v + dWeightBefore[j]) : ref.dWeight;
  if (dWeightBefore) for (let j = 0; j < d; j++) dwScale[j] += Math.abs(dWeightBefore[j]);
  expectNonTrivial(ref.dx);
  expectWithinScales(dx, wantDx, 2 ** -21, dxScale);
  expectWithinScales(dWeight, wantDw, 2 ** -21, dwScale);
}

describe.each(backendsUnderTest)('rmsnorm on $backend', ({ device }) => {
  it.each(normSizes)('N = %i, d = %i: forward and backward (Tensors)', (n, d) => {
    const p = normProblem(n, d, 1000 * n + d);
    const x = matrixOn(p.x, d, device), weight = tensorOn(p.weight, device);
    const fwd = rmsnorm({ x, weight });
    expect(fwd.y).toBeInstanceOf(Tensor);
    expect([(fwd.y as Tensor).shape, (fwd.y as Tensor).device, (fwd.rstd as Tensor).shape]).toEqual([[n, d], device, [n]]);
    const rstd = f32(fwd.rstd);
    checkRmsnorm(p, f32(fwd.y), rstd);
    const bwd = rmsnormBackward({ x, weight, rstd: fwd.rstd, dy: matrixOn(p.dy, d, device) });
    checkRmsnormBackward(p, rstd, f32(bwd.dx), f32(bwd.dWeight));
  });

  it('a large eps and tiny rows: eps dominates the mean square', async () => {
    const p = normProblem(5, 33, 7, 0.5);
    for (let i = 0; i < p.x.length; i++) p.x[i] *= 1e-3;
    const x = matrixOn(p.x, 33, device), weight = tensorOn(p.weight, device);
    const fwd = await rmsnormAsync({ x, weight, eps: p.eps });
    const rstd = f32(fwd.rstd);
    checkRmsnorm(p, f32(fwd.y), rstd);
    const bwd = await rmsnormBackwardAsync({ x, weight, rstd: fwd.rstd, dy: matrixOn(p.dy, 33, device) });
    checkRmsnormBackward(p, rstd, f32(bwd.dx), f32(bwd.dWeight));
  });

  it('accumulate adds dx into out.dx; a given dWeight is added to and returned; out buffers are used', () => {
    const p = normProblem(131, 96, 99);
    const x = matrixOn(p.x, 96, device), weight = tensorOn(p.weight, device);
    const outY = matrixOn(new Float32Array(131 * 96), 96, device), outRstd = tensorOn(new Float32Array(131), device);
    const fwd = rmsnorm({ x, weight, out: { y: outY, rstd: outRstd } });
    expect(fwd.y).toBe(outY);
    expect(fwd.rstd).toBe(outRstd);
    const rstd = f32(outRstd);
    const rng = new Rng(5);
    const dxBefore = randomF32(rng, 131 * 96), dwBefore = randomF32(rng, 96);
    const dx = matrixOn(dxBefore, 96, device), dWeight = tensorOn(dwBefore, device);
    const bwd = rmsnormBackward({ x, weight, rstd: outRstd, dy: matrixOn(p.dy, 96, device), dWeight, accumulate: true, out: { dx } });
    expect(bwd.dx).toBe(dx);
    expect(bwd.dWeight).toBe(dWeight);
    checkRmsnormBackward(p, rstd, f32(dx), f32(dWeight), dxBefore, dwBefore);
    // Without accumulate, out.dx is overwritten (its old values do not leak in).
    const again = rmsnormBackward({ x, weight, rstd: outRstd, dy: matrixOn(p.dy, 96, device), out: { dx } });
    expect(again.dx).toBe(dx);
    checkRmsnormBackward(p, rstd, f32(dx), f32(again.dWeight));
  });

  it('rows of huge and tiny magnitude: the squares are summed in f64, so nothing overflows or underflows', () => {
    const p = normProblem(4, 300, 12);
    const scales = [1e25, 1e-25, 3e18, 1];
    for (let r = 0; r < 4; r++) for (let j = 0; j < 300; j++) p.x[r * 300 + j] *= scales[r];
    const x = matrixOn(p.x, 300, device), weight = tensorOn(p.weight, device);
    const fwd = rmsnorm({ x, weight });
    const rstd = f32(fwd.rstd);
    checkRmsnorm(p, f32(fwd.y), rstd);
    const bwd = rmsnormBackward({ x, weight, rstd: fwd.rstd, dy: matrixOn(p.dy, 300, device) });
    checkRmsnormBackward(p, rstd, f32(bwd.dx), f32(bwd.dWeight));
  });

  it('zero rows: empty outputs, a zero dWeight, or the given dWeight unchanged', () => {
    const weight = tensorOn(randomF32(new Rng(1), 9), device);
    const x = tensorOn(new Float32Array(0), device, [0, 9]);
    const fwd = rmsnorm({ x, weight });
    expect([(fwd.y as Tensor).shape, (fwd.rstd as Tensor).shape]).toEqual([[0, 9], [0]]);
    const dy = tensorOn(new Float32Array(0), device, [0, 9]);
    expect(Array.from(f32(rmsnormBackward({ x, weight, rstd: fwd.rstd, dy }).dWeight))).toEqual(new Array(9).fill(0));
    const given = randomF32(new Rng(2), 9);
    const dWeight = tensorOn(given, device);
    rmsnormBackward({ x, weight, rstd: fwd.rstd, dy, dWeight });
    expectBitwiseEqual(f32(dWeight), given);
  });

  it('gradients match finite differences of the reference (N = 3, d = 7 and N = 2, d = 33)', () => {
    for (const [n, d] of [[3, 7], [2, 33]]) {
      const p = normProblem(n, d, 31 * n + d, 1e-3);
      const x = matrixOn(p.x, d, device), weight = tensorOn(p.weight, device);
      const fwd = rmsnorm({ x, weight, eps: p.eps });
      const bwd = rmsnormBackward({ x, weight, rstd: fwd.rstd, dy: matrixOn(p.dy, d, device) });
      const ref = rmsnormBackwardReference(p.x, p.weight, p.dy, p.eps);
      const lossAt = (xs: ArrayLike<number>, ws: ArrayLike<number>) =>
        rmsnormReference(xs, ws, p.eps).y.reduce((sum, y, i) => sum + y * p.dy[i], 0);
      const lossScale = p.dy.reduce((s, g, i) => s + Math.abs(g * p.x[i]), 0);
      const dxScale = Float64Array.from(ref.dx, (v) => Math.abs(v) + 1e-3);
      const dwScale = Float64Array.from(ref.dWeight, (v) => Math.abs(v) + 1e-3);
      const common = { lossScale, kernelRel: 2 ** -16, kinkBound: () => 1e3 };
      const viaX = expectGradientMatchesFiniteDifferences({ ...common, lossAt: (xs) => lossAt(xs, p.weight), x: p.x, reference: ref.dx,
        kernel: f32(bwd.dx), scale: dxScale });
      const viaW = expectGradientMatchesFiniteDifferences({ ...common, lossAt: (ws) => lossAt(p.x, ws), x: p.weight, reference: ref.dWeight,
        kernel: f32(bwd.dWeight), scale: dwScale });
      expect([viaX.kinks, viaW.kinks]).toEqual([0, 0]);
    }
  });
});

describe('rmsnorm on typed arrays (cpu)', () => {
  it('d comes from weight; outputs are Float32Arrays; Promise forms agree bitwise with sync', async () => {
    const p = normProblem(13, 257, 4);
    const fwd = rmsnorm({ x: p.x, weight: p.weight });
    expect(fwd.y).toBeInstanceOf(Float32Array);
    checkRmsnorm(p, fwd.y, fwd.rstd);
    const fromAsync = await rmsnormAsync({ x: p.x, weight: p.weight });
    expectBitwiseEqual(fromAsync.y, fwd.y);
    const bwd = rmsnormBackward({ x: p.x, weight: p.weight, rstd: fwd.rstd, dy: p.dy });
    checkRmsnormBackward(p, fwd.rstd, bwd.dx, bwd.dWeight);
  });

  it('dWeight accumulated over two 64-row calls matches one call; a repeated call is bitwise identical', () => {
    // Accumulating the second half onto the first's dWeight rounds the first half's sum to f32 in between,
    // so it matches the one-call result within the tolerance, not bitwise.
    const p = normProblem(128, 40, 8);
    const fwd = rmsnorm({ x: p.x, weight: p.weight });
    const full = rmsnormBackward({ x: p.x, weight: p.weight, rstd: fwd.rstd, dy: p.dy });
    expectBitwiseEqual(rmsnormBackward({ x: p.x, weight: p.weight, rstd: fwd.rstd, dy: p.dy }).dWeight, full.dWeight);
    const half = (k: number) => ({ x: p.x.subarray(k * 64 * 40, (k + 1) * 64 * 40), weight: p.weight,
      rstd: fwd.rstd.subarray(k * 64, (k + 1) * 64), dy: p.dy.subarray(k * 64 * 40, (k + 1) * 64 * 40) });
    const dWeight = rmsnormBackward(half(0)).dWeight;
    rmsnormBackward({ ...half(1), dWeight });
    checkRmsnormBackward(p, fwd.rstd, full.dx, dWeight);
  });
});

// ---- swiglu --------------------------------------------------------------------------------------------------

const swigluSizes: [number, number][] = [[1, 1], [3, 7], [13, 97], [37, 257], [5, 1025]];

function gateUpProblem(n: number, f: number, seed: number) {
  const rng = new Rng(seed);
  const gateUp = randomF32(rng, n * 2 * f, -6, 6);
  return { gateUp, dh: randomF32(rng, n * f) };
}

/** e^-|g| underflows to 0 below g = -87, where |silu(g)| < 1e-34: an absolute error below 2^-20 of this is fine. */
const SILU_FLOOR = 1e-28;

function checkSwiglu(gateUp: Float32Array, f: number, h: Float32Array): void {
  const ref = swigluReference(gateUp, f);
  expectNonTrivial(ref);
  expectWithinScales(h, ref, 2 ** -20, Float64Array.from(ref, (v) => Math.abs(v) + SILU_FLOOR));
}

function checkSwigluBackward(gateUp: Float32Array, dh: Float32Array, f: number, d: Float32Array): void {
  const ref = swigluBackwardReference(gateUp, dh, f);
  expectNonTrivial(ref);
  const n = dh.length / f;
  const scale = new Float64Array(ref.length);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) {
      const g = gateUp[r * 2 * f + j], up = gateUp[r * 2 * f + f + j], grad = Math.abs(dh[r * f + j]);
      scale[r * 2 * f + j] = grad * Math.abs(up) * (1 + Math.abs(g)) + SILU_FLOOR;
      scale[r * 2 * f + f + j] = Math.abs(ref[r * 2 * f + f + j]) + SILU_FLOOR;
    }
  expectWithinScales(d, ref, 2 ** -20, scale);
}

describe.each(backendsUnderTest)('swiglu on $backend', ({ device }) => {
  it.each(swigluSizes)('N = %i, F = %i: forward and backward (Tensors)', async (n, f) => {
    const { gateUp, dh } = gateUpProblem(n, f, 17 * n + f);
    const onDevice = matrixOn(gateUp, 2 * f, device);
    const h = swiglu({ gateUp: onDevice });
    expect([(h as Tensor).shape, (h as Tensor).device]).toEqual([[n, f], device]);
    checkSwiglu(gateUp, f, f32(h));
    const d = await swigluBackwardAsync({ gateUp: onDevice, dh: matrixOn(dh, f, device) });
    expect((d as Tensor).shape).toEqual([n, 2 * f]);
    checkSwigluBackward(gateUp, dh, f, f32(d));
  });

  it('is stable for large |gate| (no NaN, silu -> 0 and -> g)', () => {
    const gates = [-1e30, -1000, -100, -90, -88, -50, -20, 0, 20, 50, 88, 90, 100, 1000, 1e30];
    const f = gates.length;
    const gateUp = new Float32Array(2 * f);
    gateUp.set(gates);
    gateUp.set(randomF32(new Rng(2), f, 0.5, 2), f);
    const dh = randomF32(new Rng(3), f, 0.5, 2);
    const h = f32(swiglu({ gateUp: matrixOn(gateUp, 2 * f, device) }));
    const d = f32(swigluBackward({ gateUp: matrixOn(gateUp, 2 * f, device), dh: matrixOn(dh, f, device) }));
    expect([...h, ...d].every(Number.isFinite)).toBe(true);
    checkSwiglu(gateUp, f, h);
    checkSwigluBackward(gateUp, dh, f, d);
  });

  it('writes into out', () => {
    const { gateUp, dh } = gateUpProblem(4, 9, 77);
    const out = matrixOn(new Float32Array(4 * 9), 9, device);
    expect(swiglu({ gateUp: matrixOn(gateUp, 18, device), out })).toBe(out);
    checkSwiglu(gateUp, 9, f32(out));
    const dOut = matrixOn(new Float32Array(4 * 18), 18, device);
    expect(swigluBackward({ gateUp: matrixOn(gateUp, 18, device), dh: matrixOn(dh, 9, device), out: dOut })).toBe(dOut);
    checkSwigluBackward(gateUp, dh, 9, f32(dOut));
  });
});

describe('swiglu on typed arrays (cpu)', () => {
  it('intermediateSize gives F; Promise agrees bitwise with sync', async () => {
    const { gateUp, dh } = gateUpProblem(11, 33, 5);
    const h = swiglu({ gateUp, intermediateSize: 33 });
    expect(h).toBeInstanceOf(Float32Array);
    checkSwiglu(gateUp, 33, h);
    expectBitwiseEqual(await swigluAsync({ gateUp, intermediateSize: 33 }), h);
    const d = swigluBackward({ gateUp, dh, intermediateSize: 33 });
    checkSwigluBackward(gateUp, dh, 33, d);
  });
});

// ---- embedding -----------------------------------------------------------------------------------------------

const embeddingSizes: [number, number, number][] = [[1, 1, 1], [7, 3, 5], [97, 259, 96], [300, 11, 257]];

/** dTable + dOut rows in token order, each add rounded to f32: what both backends must give bitwise. */
function sequentialScatterAdd(ids: Int32Array, dOut: Float32Array, dTable: Float32Array, dim: number): Float32Array {
  const out = dTable.slice();
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) out[ids[t] * dim + j] += dOut[t * dim + j];
  return out;
}

describe.each(backendsUnderTest)('embedding on $backend', ({ device }) => {
  it.each(embeddingSizes)('N = %i, V = %i, d = %i, with repeated ids: gather exact, scatter-add in token order', async (n, v, d) => {
    const rng = new Rng(n + v + d);
    // Few distinct ids (some repeated many times) plus the first and last rows.
    const ids = Int32Array.from({ length: n }, () => (rng.chance(0.5) ? rng.int(0, Math.min(v - 1, 3)) : rng.int(0, v - 1)));
    ids[0] = v - 1;
    const table = randomF32(rng, v * d), dOut = randomF32(rng, n * d), dTable = randomF32(rng, v * d);
    const rows = embedding({ ids: tensorOn(ids, device), table: matrixOn(table, d, device) });
    expect([(rows as Tensor).shape, (rows as Tensor).device]).toEqual([[n, d], device]);
    expect(Float64Array.from(f32(rows))).toEqual(embeddingReference(ids, table, d));

    const onDevice = matrixOn(dTable, d, device);
    expect(await embeddingBackwardAsync({ ids: tensorOn(ids, device), dOut: matrixOn(dOut, d, device), dTable: onDevice })).toBe(onDevice);
    const got = f32(onDevice);
    expectBitwiseEqual(got, sequentialScatterAdd(ids, dOut, dTable, d));
    const ref = embeddingBackwardReference(ids, dOut, dTable, d);
    const scale = new Float64Array(v * d).map((_, i) => Math.abs(dTable[i]));
    for (let t = 0; t < n; t++) for (let j = 0; j < d; j++) scale[ids[t] * d + j] += Math.abs(dOut[t * d + j]);
    expectWithinScales(got, ref, n * 2 ** -24, scale);
  });
});

describe('embedding on typed arrays (cpu)', () => {
  it('dim gives the columns; out is used; Promise agrees', async () => {
    const rng = new Rng(9);
    const ids = Int32Array.from([4, 0, 4, 2]), table = randomF32(rng, 5 * 3);
    const out = new Float32Array(4 * 3);
    expect(embedding({ ids, table, dim: 3, out })).toBe(out);
    expect(Float64Array.from(out)).toEqual(embeddingReference(ids, table, 3));
    expectBitwiseEqual(await embeddingAsync({ ids, table, dim: 3 }), out);
    const dTable = randomF32(rng, 15), dOut = randomF32(rng, 12);
    const want = sequentialScatterAdd(ids, dOut, dTable, 3);
    expect(embeddingBackward({ ids, dOut, dTable, dim: 3 })).toBe(dTable);
    expectBitwiseEqual(dTable, want);
  });
});

describe('embedding ids are validated once, on a copy the kernel reads', () => {
  it('changing ids after starting a Promise-form call can neither move nor break it', async () => {
    const rng = new Rng(10);
    const ids = Int32Array.from({ length: 500 }, () => rng.int(0, 6)), original = ids.slice();
    const table = randomF32(rng, 7 * 64), dOut = randomF32(rng, 500 * 64), dTable = randomF32(rng, 7 * 64);
    const want = sequentialScatterAdd(original, dOut, dTable, 64);
    const rows = embeddingAsync({ ids, table, dim: 64 });
    const scattered = embeddingBackwardAsync({ ids, dOut, dTable, dim: 64 });
    ids.fill(1_000_000_000);
    expect(Float64Array.from(await rows)).toEqual(embeddingReference(original, table, 64));
    expectBitwiseEqual(await scattered, want);
  });
});

// ---- axpby ---------------------------------------------------------------------------------------------------

describe.each(backendsUnderTest)('axpby on $backend', ({ device }) => {
  it.each([1, 7, 1000, 100_003])('n = %i: y <- alpha x + beta y in place, on 2-D Tensors', async (n) => {
    const rng = new Rng(n);
    const x = randomF32(rng, n, -2, 2), y = randomF32(rng, n, -2, 2);
    for (const [alpha, beta] of [[1, 1], [-0.37, 1.9], [0.001, 0.999], [2.5, 0]]) {
      const yOn = n % 7 === 0 ? tensorOn(y, device, [n / 7, 7]) : tensorOn(y, device);
      const xOn = tensorOn(x, device);
      const out = alpha === 1 && beta === 1 ? await axpbyAsync({ x: xOn, y: yOn }) : axpby({ x: xOn, y: yOn, alpha, beta });
      expect(out).toBe(yOn);
      const ref = axpbyReference(x, y, alpha, beta);
      expectNonTrivial(ref);
      expectWithinScales(f32(yOn), ref, 2 ** -22, Float64Array.from(x, (v, i) => Math.abs(alpha * v) + Math.abs(beta * y[i])));
    }
  });

  it('x may be y itself (y <- (alpha + beta) y); beta = 0 ignores NaN in y', () => {
    const data = randomF32(new Rng(3), 500);
    const y = tensorOn(data, device);
    axpby({ x: y, y, alpha: 0.5, beta: 2 });
    expectWithinScales(f32(y), Float64Array.from(data, (v) => 2.5 * v), 2 ** -22, Float64Array.from(data, (v) => 2.5 * Math.abs(v)));
    const nan = tensorOn(new Float32Array(500).fill(Number.NaN), device);
    axpby({ x: tensorOn(data, device), y: nan, alpha: -3, beta: 0 });
    expectWithinScales(f32(nan), Float64Array.from(data, (v) => -3 * v), 2 ** -23, Float64Array.from(data, (v) => 3 * Math.abs(v)));
  });
});

describe('axpby on typed arrays (cpu)', () => {
  it('updates y in place and returns it', () => {
    const rng = new Rng(44);
    const x = randomF32(rng, 333), y = randomF32(rng, 333), before = y.slice();
    expect(axpby({ x, y, alpha: 0.25, beta: -1.5 })).toBe(y);
    expectWithinScales(y, axpbyReference(x, before, 0.25, -1.5), 2 ** -22, Float64Array.from(x, (v, i) => Math.abs(0.25 * v) + Math.abs(1.5 * before[i])));
  });
});
