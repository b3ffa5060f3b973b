// Bad input for every argument of attentionForward: a TalariaError with the exact code and a message naming
// the argument; the Promise form rejects instead of throwing. Legal edge values are accepted.
import { afterEach, describe, expect, it } from 'vitest';
import { attentionForward, attentionForwardAsync, Tensor } from '../lib/index.js';
import { Rng } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, tensorOn } from './helpers/backends.js';
import { attentionProblem } from './helpers/attention-data.js';
import { type TalariaCode, expectRejects, expectThrows } from './helpers/assert.js';

afterEach(disposeTensors);

const DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE';
const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE';
const RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
const DEVICE: TalariaCode = 'ERR_TALARIA_DEVICE';

const N = 5, H = 4, Hkv = 2, D = 32;
const good = attentionProblem(new Rng(77), { lengths: [2, 3], H, Hkv, D, causal: true });
const tensor = (data: Float32Array, shape: number[]) => Tensor.from(data, { shape });

interface Bad { what: string; patch: Record<string, unknown>; code: TalariaCode; arg: string }

const bad: Bad[] = [
  { what: 'q missing', patch: { q: undefined }, code: DTYPE, arg: 'q' },
  { what: 'q of the wrong dtype', patch: { q: new Int32Array(N * H * D) }, code: DTYPE, arg: 'q' },
  { what: 'q not a multiple of H * D', patch: { q: new Float32Array(N * H * D - 1) }, code: SHAPE, arg: 'q' },
  { what: 'q a typed array without numHeads', patch: { numHeads: undefined }, code: SHAPE, arg: 'numHeads' },
  { what: 'q a typed array without headDim', patch: { headDim: undefined }, code: SHAPE, arg: 'headDim' },
  { what: 'q a 2-D Tensor', patch: { q: tensor(good.q, [N, H * D]) }, code: SHAPE, arg: 'q' },
  { what: 'q a Tensor disagreeing with numHeads', patch: { q: tensor(good.q, [N, 2, 2 * D]), headDim: undefined }, code: SHAPE, arg: 'q' },
  { what: 'an unsupported head dim (48)', patch: { q: new Float32Array(N * H * 48), headDim: 48 }, code: SHAPE, arg: 'headDim' },
  { what: 'an unsupported head dim (256)', patch: { q: new Float32Array(N * H * 256), headDim: 256 }, code: SHAPE, arg: 'headDim' },
  { what: 'numHeads = 0', patch: { numHeads: 0 }, code: RANGE, arg: 'numHeads' },
  { what: 'numHeads fractional', patch: { numHeads: 2.5 }, code: RANGE, arg: 'numHeads' },
  { what: 'numHeads a string', patch: { numHeads: '4' }, code: DTYPE, arg: 'numHeads' },
  { what: 'H not divisible by Hkv', patch: { numKvHeads: 3, k: new Float32Array(N * 3 * D), v: new Float32Array(N * 3 * D) }, code: SHAPE, arg: 'numKvHeads' },
  { what: 'k of the wrong length for numKvHeads', patch: { numKvHeads: 1 }, code: SHAPE, arg: 'k' },
  { what: 'k a typed array of the wrong row size', patch: { k: new Float32Array(N * Hkv * D + 3) }, code: SHAPE, arg: 'k' },
  { what: 'k with other rows than q', patch: { k: new Float32Array((N + 1) * Hkv * D), v: new Float32Array((N + 1) * Hkv * D) }, code: SHAPE, arg: 'k' },
  { what: 'k a Tensor of another head dim', patch: { k: tensor(new Float32Array(N * Hkv * 64), [N, Hkv, 64]) }, code: SHAPE, arg: 'k' },
  { what: 'v shorter than k', patch: { v: new Float32Array(N * Hkv * D - D) }, code: SHAPE, arg: 'v' },
  { what: 'v of the wrong dtype', patch: { v: new Uint8Array(N * Hkv * D) }, code: DTYPE, arg: 'v' },
  { what: 'cuSeqlens missing', patch: { cuSeqlens: undefined }, code: DTYPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens not ending at N', patch: { cuSeqlens: Int32Array.from([0, 2, 4]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens not starting at 0', patch: { cuSeqlens: Int32Array.from([1, 2, 5]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens decreasing', patch: { cuSeqlens: Int32Array.from([0, 4, 3, 5]) }, code: SHAPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlens of the wrong dtype', patch: { cuSeqlens: Float32Array.from([0, 2, 5]) }, code: DTYPE, arg: 'cuSeqlens' },
  { what: 'cuSeqlensK of another batch size', patch: { cuSeqlensK: Int32Array.from([0, 5]) }, code: SHAPE, arg: 'cuSeqlensK' },
  { what: 'cuSeqlensK not ending at Nk', patch: { cuSeqlensK: Int32Array.from([0, 1, 4]) }, code: SHAPE, arg: 'cuSeqlensK' },
  { what: 'scale = 0', patch: { scale: 0 }, code: RANGE, arg: 'scale' },
  { what: 'scale negative', patch: { scale: -0.1 }, code: RANGE, arg: 'scale' },
  { what: 'scale NaN', patch: { scale: Number.NaN }, code: RANGE, arg: 'scale' },
  { what: 'scale infinite', patch: { scale: Infinity }, code: RANGE, arg: 'scale' },
  { what: 'scale underflowing f32', patch: { scale: 1e-50 }, code: RANGE, arg: 'scale' },
  { what: 'scale a string', patch: { scale: '0.1' }, code: DTYPE, arg: 'scale' },
  { what: 'causal a number', patch: { causal: 1 }, code: DTYPE, arg: 'causal' },
  { what: 'an unknown option', patch: { sclae: 0.1 }, code: RANGE, arg: 'sclae' },
  { what: 'an unknown out key', patch: { out: { O: new Float32Array(N * H * D) } }, code: RANGE, arg: 'O' },
  { what: 'out.o too short', patch: { out: { o: new Float32Array(N * H * D - 1) } }, code: SHAPE, arg: 'out.o' },
  { what: 'out.lse too short', patch: { out: { lse: new Float32Array(H * N - 1) } }, code: SHAPE, arg: 'out.lse' },
  { what: 'out.o overlapping q', patch: { out: { o: good.q } }, code: RANGE, arg: 'out.o' },
  { what: 'out.lse overlapping out.o', patch: (() => { const o = new Float32Array(N * H * D); return { out: { o, lse: o.subarray(0, H * N) } }; })(), code: RANGE, arg: 'out' },
];

describe('attentionForward rejects bad input', () => {
  it.each(bad.map((b) => [b.what, b] as const))('%s', async (_, b) => {
    const input = { ...good, ...b.patch };
    expectThrows(() => attentionForward(input as never), b.code, b.arg);
    await expectRejects(() => attentionForwardAsync(input as never), b.code, b.arg);
  });

  it('rejects a non-object argument', () => {
    expectThrows(() => attentionForward(undefined as never), DTYPE, 'attentionForward');
    expectThrows(() => attentionForward(good.q as never), DTYPE, 'attentionForward');
  });

  it('accepts the legal edges: a single token, an empty batch, numKvHeads = 1 and a huge scale', () => {
    const one = attentionProblem(new Rng(1), { lengths: [1], H: 2, Hkv: 1, D: 128, causal: true });
    const { o } = attentionForward({ ...one, scale: 1e30 });
    expect(Array.from(o.slice(0, 128))).toEqual(Array.from(one.v.slice(0, 128)));
    const empty = attentionForward({ ...good, q: new Float32Array(0), k: new Float32Array(0), v: new Float32Array(0), cuSeqlens: Int32Array.from([0]) });
    expect([empty.o.length, empty.lse.length]).toEqual([0, 0]);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const shaped = (data: Float32Array, heads: number) => Tensor.from(data, { device, shape: [N, heads, D] });
  it.each(['k', 'v', 'cuSeqlens'] as const)('%s on the cpu while q is on the device', async (key) => {
    const onDevice = { ...good, q: shaped(good.q, H), k: shaped(good.k, Hkv), v: shaped(good.v, Hkv), cuSeqlens: tensorOn(good.cuSeqlens, device) };
    const input = { ...onDevice, [key]: key === 'cuSeqlens' ? good.cuSeqlens : tensor(good[key], [N, Hkv, D]) };
    expectThrows(() => attentionForward(input as never), DEVICE, key);
    await expectRejects(() => attentionForwardAsync(input as never), DEVICE, key);
    [onDevice.q, onDevice.k, onDevice.v].forEach((t) => t.dispose());
  });
});
