// ropeForward and ropeBackward against the float64 reference (test/reference/attention.ts) on every
// backend: positions restart in each packed sequence, long positions (cos/sin of angles in the
// thousands), odd head counts, D from 2 to 128, in place, Tensors and typed arrays, sync and Promise, the
// backward as the adjoint of the forward, determinism, and bad input.
//
// Tolerance: cos and sin are rounded from f64 to f32 (0.5 ulp each) and each output is two f32 products
// and a sum: within 4 ulp of |x_i| + |x_{i+D/2}| <= 4, so 1e-6 absolute for x in [-2, 2).
import { afterEach, describe, expect, it } from 'vitest';
import { ropeBackward, ropeBackwardAsync, ropeForward, ropeForwardAsync, Tensor } from '../lib/index.js';
import { ropeReference } from './reference/attention.js';
import { Rng, cuSeqlensOf, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectThrows, type TalariaCode } from './helpers/assert.js';

afterEach(disposeTensors);

const TOL = { rel: 1e-6, scale: 1 };

const cases = [
  { lengths: [1], H: 1, D: 2, theta: 10000 },
  { lengths: [3, 0, 17], H: 3, D: 64, theta: 10000 },
  { lengths: [5000], H: 1, D: 8, theta: 10000 },
  { lengths: [33, 65], H: 2, D: 128, theta: 500000 },
];

describe.each(backendsUnderTest)('rope on $backend', ({ device }) => {
  const onDevice = (x: Float32Array, H: number, D: number) => Tensor.from(x, { device, shape: [x.length / (H * D), H, D] });

  it.each(cases)('forward and backward match the reference: %o', ({ lengths, H, D, theta }) => {
    const rng = new Rng(lengths.length * 31 + D);
    const cuSeqlens = cuSeqlensOf(lengths);
    const x = randomF32(rng, cuSeqlens[lengths.length] * H * D, -2, 2);
    const xt = onDevice(x, H, D), cu = Tensor.from(cuSeqlens, { device });
    const y = ropeForward({ x: xt, cuSeqlens: cu, theta });
    expectClose(readBack(y), ropeReference(x, cuSeqlens, H, D, theta), TOL);
    const dx = ropeBackward({ x: xt, cuSeqlens: cu, theta });
    expectClose(readBack(dx), ropeReference(x, cuSeqlens, H, D, theta, true), TOL);
    [xt, cu, y, dx].forEach((t) => t.dispose());
  });

  it('backward is the adjoint of forward: <R x, g> = <x, R^T g>, and undoes it', () => {
    const rng = new Rng(8);
    const cuSeqlens = cuSeqlensOf([40, 9]), H = 2, D = 32;
    const x = randomF32(rng, 49 * H * D, -2, 2), g = randomF32(rng, 49 * H * D, -2, 2);
    const on = (a: Float32Array) => onDevice(a, H, D);
    const cu = Tensor.from(cuSeqlens, { device });
    const rx = readBack(ropeForward({ x: on(x), cuSeqlens: cu })), rtg = readBack(ropeBackward({ x: on(g), cuSeqlens: cu }));
    let left = 0, right = 0, scale = 0;
    for (let i = 0; i < x.length; i++) { left += rx[i] * g[i]; right += x[i] * rtg[i]; scale += Math.abs(x[i] * g[i]); }
    expect(Math.abs(left - right)).toBeLessThanOrEqual(1e-6 * scale);
    const back = readBack(ropeBackward({ x: on(rx as Float32Array), cuSeqlens: cu }));
    expectClose(back, x, { rel: 2e-6, scale: 1 });
    cu.dispose();
  });

  it('rotates in place into out = x, sync and Promise alike, bitwise deterministic', async () => {
    const rng = new Rng(12);
    const cuSeqlens = cuSeqlensOf([20, 7]), H = 4, D = 16;
    const x = randomF32(rng, 27 * H * D, -2, 2);
    const cu = Tensor.from(cuSeqlens, { device });
    const fresh = readBack(ropeForward({ x: onDevice(x, H, D), cuSeqlens: cu }));
    const again = readBack(await ropeForwardAsync({ x: onDevice(x, H, D), cuSeqlens: cu }));
    expectBitwiseEqual(again, fresh);
    const inPlace = onDevice(x, H, D);
    expect(ropeForward({ x: inPlace, cuSeqlens: cu, out: inPlace })).toBe(inPlace);
    expectBitwiseEqual(readBack(inPlace), fresh);
    const undone = readBack(await ropeBackwardAsync({ x: onDevice(fresh as Float32Array, H, D), cuSeqlens: cu }));
    expectClose(undone, x, { rel: 2e-6, scale: 1 });
    cu.dispose();
  });
});

describe('rope rejects bad input', () => {
  const H = 2, D = 8, cuSeqlens = cuSeqlensOf([2, 3]);
  const x = randomF32(new Rng(1), 5 * H * D, -1, 1);
  const good = { x, cuSeqlens, numHeads: H, headDim: D };
  const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE', DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE', RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
  it.each([
    { what: 'an odd head dim', patch: { x: new Float32Array(5 * H * 7), headDim: 7 }, code: SHAPE, arg: 'headDim' },
    { what: 'x missing', patch: { x: undefined }, code: DTYPE, arg: 'x' },
    { what: 'x without numHeads', patch: { numHeads: undefined }, code: SHAPE, arg: 'numHeads' },
    { what: 'cuSeqlens not ending at N', patch: { cuSeqlens: Int32Array.from([0, 2, 4]) }, code: SHAPE, arg: 'cuSeqlens' },
    { what: 'theta = 1', patch: { theta: 1 }, code: RANGE, arg: 'theta' },
    { what: 'theta NaN', patch: { theta: Number.NaN }, code: RANGE, arg: 'theta' },
    { what: 'theta a string', patch: { theta: '10000' }, code: DTYPE, arg: 'theta' },
    { what: 'out too short', patch: { out: new Float32Array(5 * H * D - 1) }, code: SHAPE, arg: 'out' },
    { what: 'out a shorter view into x', patch: { out: x.subarray(H * D) }, code: SHAPE, arg: 'out' },
    { what: 'an unknown option', patch: { position: 3 }, code: RANGE, arg: 'position' },
  ])('$what', ({ patch, code, arg }) => {
    expectThrows(() => ropeForward({ ...good, ...patch } as never), code, arg);
    expectThrows(() => ropeBackward({ ...good, ...patch } as never), code, arg);
  });
  it('rejects an out that partly overlaps x', () => {
    const buffer = new Float32Array(6 * H * D);
    const inner = buffer.subarray(0, 5 * H * D), shifted = buffer.subarray(H * D, 6 * H * D);
    inner.set(x);
    expectThrows(() => ropeForward({ ...good, x: inner, out: shifted }), RANGE, 'out');
  });
});
