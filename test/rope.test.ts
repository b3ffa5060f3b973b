// ropeForward and ropeBackward against the float64 reference (test/reference/attention.ts) on every
// backend: positions restart in each packed sequence, long positions (cos/sin of angles in the
// thousands), odd head counts, D from 2 to 128, in place, Tensors and typed arrays, sync and Promise, the
// backward as the adjoint of the forward, determinism, and bad input. positionOffsets (KV-cache decoding):
// random offsets from 0 to 100000 and up to the i32 limit, decode steps of one token per sequence, and
// a sequence rotated whole equal bit for bit to the same sequence rotated in two chunks.
//
// Tolerance: cos and sin are rounded from f64 to f32 (0.5 ulp each) and each output is two f32 products
// and a sum: within 4 ulp of |x_i| + |x_{i+D/2}| <= 4, so 1e-6 absolute for x in [-2, 2). Near the i32
// limit the f64 angle p * theta^(-2i/D) itself carries p * 1 ulp of the frequency (up to 2^31 * 2^-53 =
// 2.4e-7 rad when the two sides' pow differ by an ulp), which can move the output by up to 4 * 2.4e-7:
// those positions get 2e-6.
import { afterEach, describe, expect, it } from 'vitest';
import { ropeBackward, ropeBackwardAsync, ropeForward, ropeForwardAsync, Tensor } from '../lib/index.js';
import { ropeReference } from './reference/attention.js';
import { Rng, cuSeqlensOf, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectRejects, expectThrows, type TalariaCode } from './helpers/assert.js';
import { tokenArrays } from './helpers/bad-input.js';

afterEach(disposeTensors);

const TOL = { rel: 1e-6, scale: 1 };
const I32_MAX = 2 ** 31 - 1;

// Offsets for each sequence: 0, large ones (100000), and 'random' ones in [0, 200000].
interface OffsetCase { what: string; lengths: number[]; H: number; D: number; offsets: (number | 'random')[]; tol?: typeof TOL }
const offsetCases: OffsetCase[] = [
  {
    what: 'one token per sequence (a decode step)', lengths: [1, 1, 1, 1, 1, 1, 1], H: 2, D: 128,
    offsets: [0, 100000, 3, 99999, 1, 4097, 17],
  },
  { what: 'a chunk continuing one sequence', lengths: [45], H: 3, D: 32, offsets: [100000] },
  { what: 'packed chunks, one empty', lengths: [3, 0, 17, 8], H: 1, D: 64, offsets: [0, 5, 100000, 'random'] },
  { what: 'random offsets, odd sizes', lengths: [13, 2, 29], H: 5, D: 2, offsets: ['random', 'random', 'random'] },
  {
    what: 'positions up to the i32 limit', lengths: [4, 1, 6], H: 2, D: 16, offsets: [I32_MAX - 4, I32_MAX - 1, 2 ** 30],
    tol: { rel: 2e-6, scale: 1 },
  },
];

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

  it.each(offsetCases)('positionOffsets, forward and backward match the reference: $what', ({ lengths, H, D, offsets, tol = TOL }) => {
    const rng = new Rng(lengths.length * 17 + D + H);
    const cuSeqlens = cuSeqlensOf(lengths);
    const positionOffsets = Int32Array.from(offsets.map((o) => (o === 'random' ? rng.int(0, 200000) : o)));
    const x = randomF32(rng, cuSeqlens[lengths.length] * H * D, -2, 2);
    const xt = onDevice(x, H, D), cu = Tensor.from(cuSeqlens, { device }), off = Tensor.from(positionOffsets, { device });
    const y = ropeForward({ x: xt, cuSeqlens: cu, positionOffsets: off });
    expectClose(readBack(y), ropeReference(x, cuSeqlens, H, D, 10000, false, positionOffsets), tol);
    const dx = ropeBackward({ x: xt, cuSeqlens: cu, positionOffsets: off, theta: 500000 });
    expectClose(readBack(dx), ropeReference(x, cuSeqlens, H, D, 500000, true, positionOffsets), tol);
    [xt, cu, off, y, dx].forEach((t) => t.dispose());
  });

  it('positionOffsets of 0 change nothing, bit for bit; typed arrays and Promise forms take them too', async () => {
    const rng = new Rng(21);
    const cuSeqlens = cuSeqlensOf([9, 0, 30]), H = 3, D = 8;
    const x = randomF32(rng, 39 * H * D, -2, 2);
    const cu = Tensor.from(cuSeqlens, { device }), zeros = Tensor.from(new Int32Array(3), { device });
    const plain = readBack(ropeForward({ x: onDevice(x, H, D), cuSeqlens: cu }));
    expectBitwiseEqual(readBack(ropeForward({ x: onDevice(x, H, D), cuSeqlens: cu, positionOffsets: zeros })), plain);
    const positionOffsets = Int32Array.from([7, 1, 100000]), off = Tensor.from(positionOffsets, { device });
    const dx = readBack(await ropeBackwardAsync({ x: onDevice(x, H, D), cuSeqlens: cu, positionOffsets: off }));
    expectClose(dx, ropeReference(x, cuSeqlens, H, D, 10000, true, positionOffsets), TOL);
    const y = readBack(await ropeForwardAsync({ x: onDevice(x, H, D), cuSeqlens: cu, positionOffsets: off }));
    expectClose(y, ropeReference(x, cuSeqlens, H, D, 10000, false, positionOffsets), TOL);
    if (device === 'cpu') {
      expectBitwiseEqual(ropeForward({ x, cuSeqlens, positionOffsets, numHeads: H, headDim: D }), y);
    }
    [cu, zeros, off].forEach((t) => t.dispose());
  });

  // Chunked prefill (and decode, a chunk of one): rotating a sequence whole equals rotating its first
  // part, then the rest at offset = the first part's length, bit for bit (the same f64 angle per position).
  it.each([
    { lengths: [100], split: [41] },
    { lengths: [37, 64, 1, 20], split: [10, 63, 0, 20] },
  ])('rotating in two chunks equals rotating whole: $lengths split at $split', ({ lengths, split }) => {
    const H = 2, D = 32, rng = new Rng(lengths.length + split[0]);
    const cuSeqlens = cuSeqlensOf(lengths), N = cuSeqlens[lengths.length];
    const x = randomF32(rng, N * H * D, -2, 2);
    const rows = (t0: number, t1: number) => x.subarray(t0 * H * D, t1 * H * D);
    const first = Float32Array.from(lengths.flatMap((_, b) => Array.from(rows(cuSeqlens[b], cuSeqlens[b] + split[b]))));
    const rest = Float32Array.from(lengths.flatMap((_, b) => Array.from(rows(cuSeqlens[b] + split[b], cuSeqlens[b + 1]))));
    const cuFirst = Tensor.from(cuSeqlensOf(split), { device });
    const cuRest = Tensor.from(cuSeqlensOf(lengths.map((n, b) => n - split[b])), { device });
    const offsets = Tensor.from(Int32Array.from(split), { device }), cu = Tensor.from(cuSeqlens, { device });
    for (const rotate of [ropeForward, ropeBackward]) {
      const whole = readBack(rotate({ x: onDevice(x, H, D), cuSeqlens: cu }));
      const head = readBack(rotate({ x: onDevice(first, H, D), cuSeqlens: cuFirst }));
      const tail = readBack(rotate({ x: onDevice(rest, H, D), cuSeqlens: cuRest, positionOffsets: offsets }));
      const chunked = new Float32Array(N * H * D);
      let h = 0, r = 0;
      lengths.forEach((n, b) => {
        const at = cuSeqlens[b] * H * D, headSize = split[b] * H * D, tailSize = (n - split[b]) * H * D;
        chunked.set(head.subarray(h, h + headSize), at);
        chunked.set(tail.subarray(r, r + tailSize), at + headSize);
        h += headSize;
        r += tailSize;
      });
      expectBitwiseEqual(chunked, whole);
    }
    [cuFirst, cuRest, offsets, cu].forEach((t) => t.dispose());
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
  // An out buffer whose first two words are also legal offsets.
  const outOverOffsets = () => {
    const out = new Float32Array(x.length), positionOffsets = new Int32Array(out.buffer, 0, 2);
    positionOffsets.set([1, 2]);
    return { positionOffsets, out };
  };
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
  it.each([
    ...tokenArrays(['positionOffsets'], 'i32', 2),
    { what: 'a negative offset', patch: { positionOffsets: Int32Array.from([0, -1]) }, code: RANGE, arg: 'positionOffsets[1]' },
    {
      what: 'offset + seqlen past 2^31 - 1', patch: { positionOffsets: Int32Array.from([0, I32_MAX - 2]) }, code: RANGE,
      arg: 'positionOffsets[1]',
    },
    { what: 'an offset of 2^31 - 1', patch: { positionOffsets: Int32Array.from([I32_MAX, 0]) }, code: RANGE, arg: 'positionOffsets[0]' },
    { what: 'out over positionOffsets', patch: outOverOffsets(), code: RANGE, arg: 'out' },
  ])('positionOffsets: $what', async ({ patch, code, arg }) => {
    expectThrows(() => ropeForward({ ...good, ...patch } as never), code, arg);
    expectThrows(() => ropeBackward({ ...good, ...patch } as never), code, arg);
    await expectRejects(() => ropeForwardAsync({ ...good, ...patch } as never), code, arg);
  });
  it('accepts offsets right at the limit (offset + seqlen = 2^31 - 1) and an empty batch', () => {
    const positionOffsets = Int32Array.from([I32_MAX - 2, I32_MAX - 3]);
    const y = ropeForward({ ...good, positionOffsets });
    expectClose(y, ropeReference(x, cuSeqlens, H, D, 10000, false, positionOffsets), { rel: 2e-6, scale: 1 });
    const empty = ropeForward({ x: new Float32Array(0), cuSeqlens: Int32Array.from([0]), positionOffsets: new Int32Array(0), numHeads: H, headDim: D });
    expect(empty.length).toBe(0);
  });
  it('rejects an out that partly overlaps x', () => {
    const buffer = new Float32Array(6 * H * D);
    const inner = buffer.subarray(0, 5 * H * D), shifted = buffer.subarray(H * D, 6 * H * D);
    inner.set(x);
    expectThrows(() => ropeForward({ ...good, x: inner, out: shifted }), RANGE, 'out');
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('rope device mixes on $backend', ({ device }) => {
  it('positionOffsets on the cpu while x is on the device', async () => {
    const H = 2, D = 8, cuSeqlens = cuSeqlensOf([2, 3]);
    const x = Tensor.from(randomF32(new Rng(2), 5 * H * D, -1, 1), { device, shape: [5, H, D] });
    const cu = Tensor.from(cuSeqlens, { device }), onCpu = Tensor.from(Int32Array.from([4, 9]));
    for (const positionOffsets of [Int32Array.from([4, 9]), onCpu]) {
      expectThrows(() => ropeForward({ x, cuSeqlens: cu, positionOffsets }), 'ERR_TALARIA_DEVICE', 'positionOffsets');
      await expectRejects(() => ropeBackwardAsync({ x, cuSeqlens: cu, positionOffsets }), 'ERR_TALARIA_DEVICE', 'positionOffsets');
    }
    [x, cu, onCpu].forEach((t) => t.dispose());
  });
});
