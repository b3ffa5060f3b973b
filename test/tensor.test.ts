// Tensor: copies and zero-copy views, devices, dispose, the kinds of output kernels return, inputs kept
// alive by the Promise forms, and streamTriad (the kernel that writes into its first argument).
import { afterEach, describe, expect, it } from 'vitest';
import { gae, gaeAsync, info, streamTriad, streamTriadAsync, Tensor, whiten, whitenAsync } from '../lib/index.js';
import { gaeReference, whitenReference } from './reference/rl.js';
import { type DType, Rng, randomF32, randomLengths, randomMask, randomOfDtype, randomPackedBatch, randomWhitenInput } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectThrows } from './helpers/assert.js';

afterEach(disposeTensors);

const DTYPES: DType[] = ['f32', 'i32', 'u8'];
const ARRAY_OF: Record<DType, string> = { f32: 'Float32Array', i32: 'Int32Array', u8: 'Uint8Array' };
const SHAPES = [[0], [1], [7], [3, 5], [2, 3, 4], [4, 0, 2]];
const numelOf = (shape: number[]) => shape.reduce((p, s) => p * s, 1);

/** One case per dtype and shape, each with its own seeded random contents. */
const layouts = DTYPES.flatMap((dtype, d) =>
  SHAPES.map((shape, s) => ({ dtype, shape, data: randomOfDtype(new Rng(100 + 10 * d + s), dtype, numelOf(shape)) })),
);

function expectTensor(t: Tensor, dtype: DType, shape: number[], device: string) {
  expect(t).toBeInstanceOf(Tensor);
  expect({ dtype: t.dtype, shape: t.shape, device: t.device, numel: t.numel, disposed: t.disposed }).toEqual({
    dtype,
    shape,
    device,
    numel: numelOf(shape),
    disposed: false,
  });
}

describe.each(backendsUnderTest)('Tensor on $backend ($device)', ({ device }) => {
  it.each(layouts)('from() copies a $dtype array of shape $shape, and toArray() gives it back', ({ dtype, shape, data }) => {
    const source = data.slice();
    const t = Tensor.from(source, { shape, device });
    expectTensor(t, dtype, shape, device);
    source.fill(3); // from() copied: changing the source afterwards changes nothing
    const back = t.toArray();
    expect(back.constructor.name).toBe(ARRAY_OF[dtype]);
    expectBitwiseEqual(back, data);
    back.fill(5); // toArray() copied: changing its result changes nothing either
    expectBitwiseEqual(t.toArray(), data);
    t.dispose();
  });

  it.each(DTYPES)('empty() makes a %s tensor of the requested shape', (dtype) => {
    const t = Tensor.empty([3, 1, 4], dtype, device);
    expectTensor(t, dtype, [3, 1, 4], device);
    const back = t.toArray();
    expect([back.constructor.name, back.length]).toEqual([ARRAY_OF[dtype], 12]);
    t.dispose();
  });

  it('to() moves a copy to cpu and back', () => {
    const data = randomF32(new Rng(5), 1001);
    const t = Tensor.from(data, { device });
    const onCpu = t.to('cpu');
    expectTensor(onCpu, 'f32', [1001], 'cpu');
    const again = onCpu.to(device);
    expectTensor(again, 'f32', [1001], device);
    t.dispose();
    onCpu.dispose();
    expectBitwiseEqual(again.toArray(), data);
    again.dispose();
  });
});

describe.each(backendsUnderTest)('views, zero() and copyFrom() on $backend ($device)', ({ device }) => {
  it('view() shares memory both ways, at an offset and with a new shape', () => {
    const data = randomF32(new Rng(11), 24);
    const flat = Tensor.from(data, { device });
    const w = flat.view([2, 3], 6);
    expectTensor(w, 'f32', [2, 3], device);
    expectBitwiseEqual(w.toArray(), data.subarray(6, 12));
    const patch = randomF32(new Rng(12), 6);
    w.copyFrom(patch); // through the view into the flat buffer
    const expected = data.slice();
    expected.set(patch, 6);
    expectBitwiseEqual(flat.toArray(), expected);
    const inner = w.view([2], 3); // a view of a view keeps counting from its own start
    expectBitwiseEqual(inner.toArray(), patch.subarray(3, 5));
    flat.dispose(); // the views keep the memory alive
    expectBitwiseEqual(w.toArray(), patch);
    w.dispose();
    inner.dispose();
  });

  it('zero() clears only the view it is called on', () => {
    const data = randomF32(new Rng(13), 10).map((x) => x + 2); // no zeros to begin with
    const flat = Tensor.from(data, { device });
    expect(flat.view([4], 3).zero()).toBeInstanceOf(Tensor);
    const expected = data.slice();
    expected.fill(0, 3, 7);
    expectBitwiseEqual(flat.toArray(), expected);
    flat.dispose();
  });

  it('copyFrom() takes a typed array or a tensor on another device, and returns the target', () => {
    const data = randomF32(new Rng(14), 12);
    const target = Tensor.empty([3, 4], 'f32', device);
    expect(target.copyFrom(data)).toBe(target);
    expectBitwiseEqual(target.toArray(), data);
    const other = Tensor.from(randomF32(new Rng(15), 12), { device: 'cpu', shape: [12] });
    target.copyFrom(other);
    expectBitwiseEqual(target.toArray(), other.toArray());
    const ints = Tensor.empty([5], 'i32', device).copyFrom(new Int32Array([1, -2, 3, -4, 5]));
    expectBitwiseEqual(ints.toArray(), new Int32Array([1, -2, 3, -4, 5]));
    for (const t of [target, other, ints]) t.dispose();
  });

  it('rejects views that do not fit, and copies of the wrong size or dtype', () => {
    const flat = Tensor.empty([10], 'f32', device);
    expectThrows(() => flat.view([4], 7), 'ERR_TALARIA_RANGE', 'do not fit');
    expectThrows(() => flat.view([11]), 'ERR_TALARIA_RANGE', 'do not fit');
    expectThrows(() => flat.view([2], -1), 'ERR_TALARIA_RANGE', 'offset');
    expectThrows(() => flat.view([2], 1.5), 'ERR_TALARIA_RANGE', 'offset');
    expectThrows(() => flat.view([2], '1' as never), 'ERR_TALARIA_RANGE', 'offset');
    expectThrows(() => flat.view([-1]), 'ERR_TALARIA_SHAPE', 'shape');
    expectThrows(() => flat.view('x' as never), 'ERR_TALARIA_SHAPE', 'shape');
    expectThrows(() => flat.view([2], 1).view([3], 8), 'ERR_TALARIA_RANGE', 'do not fit');
    expectThrows(() => flat.copyFrom(new Float32Array(9)), 'ERR_TALARIA_SHAPE', '10 elements');
    expectThrows(() => flat.copyFrom(new Int32Array(10)), 'ERR_TALARIA_DTYPE', 'src');
    expectThrows(() => flat.copyFrom(null as never), 'ERR_TALARIA_DTYPE', 'src');
    flat.dispose();
    expectThrows(() => flat.view([1]), 'ERR_TALARIA_DISPOSED', 'view');
    expectThrows(() => flat.zero(), 'ERR_TALARIA_DISPOSED', 'zero');
    expectThrows(() => flat.copyFrom(new Float32Array(10)), 'ERR_TALARIA_DISPOSED', 'copyFrom');
  });
});

describe('Tensor defaults and zero-copy views', () => {
  it('from() defaults to shape [length] on cpu', () => {
    const data = randomF32(new Rng(6), 9);
    const t = Tensor.from(data);
    expectTensor(t, 'f32', [9], 'cpu');
    t.dispose();
  });

  it('empty() defaults to cpu', () => {
    const t = Tensor.empty([5], 'u8');
    expectTensor(t, 'u8', [5], 'cpu');
    t.dispose();
  });

  it.each(layouts)('wrap() views a $dtype array of shape $shape', ({ dtype, shape, data }) => {
    const t = Tensor.wrap(data, { shape });
    expectTensor(t, dtype, shape, 'cpu');
    expectBitwiseEqual(t.toArray(), data);
    t.dispose();
  });

  it('wrap() sees writes made to the array after wrapping', () => {
    const rng = new Rng(7);
    const data = randomWhitenInput(rng, 513);
    const t = Tensor.wrap(data);
    data.set(randomWhitenInput(rng, 513));
    expectBitwiseEqual(t.toArray(), data);
    expectBitwiseEqual(readBack(whiten(t)), whiten(data) as Float32Array);
    t.dispose();
  });

  it('a kernel writing into a wrapped tensor writes into the array, and only inside the view', () => {
    const rng = new Rng(8);
    const buffer = randomF32(rng, 40);
    const original = buffer.slice();
    const a = Tensor.wrap(buffer.subarray(5, 30)); // a view with a non-zero byte offset
    const b = randomF32(rng, 25);
    const c = randomF32(rng, 25);
    streamTriad(a, Tensor.wrap(b), Tensor.wrap(c), 0.75);
    const expected = original.slice();
    for (let i = 0; i < 25; i++) expected[5 + i] = Math.fround(b[i] + 0.75 * c[i]);
    expectClose(buffer, expected, { rel: 1e-6 });
    expectBitwiseEqual(buffer.subarray(0, 5), original.subarray(0, 5));
    expectBitwiseEqual(buffer.subarray(30), original.subarray(30));
    a.dispose();
  });

  it("to('cpu') is a copy, independent of the original", () => {
    const data = randomF32(new Rng(9), 64);
    const original = data.slice();
    const t = Tensor.wrap(data);
    const copy = t.to('cpu');
    expect(copy).not.toBe(t);
    data.fill(2);
    t.dispose();
    expectBitwiseEqual(copy.toArray(), original);
    copy.dispose();
  });

  it("to('cuda') fails with ERR_TALARIA_DEVICE exactly when info() lists no CUDA device", () => {
    const data = randomF32(new Rng(10), 16);
    const t = Tensor.from(data);
    if (info().devices.length === 0) {
      expectThrows(() => t.to('cuda'), 'ERR_TALARIA_DEVICE');
      expectThrows(() => t.to('cuda:0'), 'ERR_TALARIA_DEVICE');
      expectThrows(() => Tensor.from(data, { device: 'cuda:0' }), 'ERR_TALARIA_DEVICE');
    } else {
      const onGpu = t.to('cuda');
      expect(onGpu.device).toBe('cuda:0');
      expectBitwiseEqual(onGpu.toArray(), data);
      onGpu.dispose();
    }
    t.dispose();
  });
});

describe('dispose', () => {
  it('marks the tensor disposed, keeps its metadata readable, and is idempotent', () => {
    const t = Tensor.from(randomF32(new Rng(11), 6), { shape: [2, 3] });
    t.dispose();
    expect(t.disposed).toBe(true);
    expect([t.shape, t.dtype, t.device]).toEqual([[2, 3], 'f32', 'cpu']);
    expect(() => t.dispose()).not.toThrow();
    expect(t.disposed).toBe(true);
  });

  it('makes every later use throw ERR_TALARIA_DISPOSED', async () => {
    const rng = new Rng(12);
    const batch = randomPackedBatch(rng, { lengths: [3, 4], mask: 'interleaved', bootstrap: true });
    const disposed = Tensor.from(randomF32(rng, 7));
    disposed.dispose();
    const fresh = () => tensorOn(randomF32(rng, 7), 'cpu');
    expectThrows(() => disposed.toArray(), 'ERR_TALARIA_DISPOSED');
    expectThrows(() => disposed.to('cpu'), 'ERR_TALARIA_DISPOSED');
    expectThrows(() => gae({ ...batch, rewards: disposed }), 'ERR_TALARIA_DISPOSED');
    expectThrows(() => whiten(disposed), 'ERR_TALARIA_DISPOSED');
    expectThrows(() => streamTriad(disposed, fresh(), fresh(), 1.5), 'ERR_TALARIA_DISPOSED');
    await expect(gaeAsync({ ...batch, values: disposed })).rejects.toMatchObject({ code: 'ERR_TALARIA_DISPOSED' });
    await expect(whitenAsync(disposed)).rejects.toMatchObject({ code: 'ERR_TALARIA_DISPOSED' });
  });
});

describe('kernels return the kind of value they were given', () => {
  const rng = new Rng(13);
  const batch = randomPackedBatch(rng, { lengths: randomLengths(rng, 9, 40), mask: 'prompt-response', bootstrap: true });
  const x = randomWhitenInput(rng, 101);
  const mask = randomMask(rng, 101);

  it('gae: Tensors in, Tensors out; typed arrays in, Float32Arrays out', () => {
    const fromTensors = gae(recordOn(batch, 'cpu'));
    const fromArrays = gae(batch);
    expect(fromTensors.advantages).toBeInstanceOf(Tensor);
    expect(fromTensors.returns).toBeInstanceOf(Tensor);
    expect(fromArrays.advantages).toBeInstanceOf(Float32Array);
    expect(fromArrays.returns).toBeInstanceOf(Float32Array);
    expectBitwiseEqual(readBack(fromTensors.advantages), fromArrays.advantages as Float32Array);
  });

  it('gae: the kind of rewards decides when cpu Tensors and typed arrays are mixed', () => {
    const rewardsTensor = gae({ ...batch, rewards: tensorOn(batch.rewards, 'cpu') });
    const rewardsArray = gae({ ...batch, values: tensorOn(batch.values, 'cpu'), cuSeqlens: tensorOn(batch.cuSeqlens, 'cpu') });
    expect(rewardsTensor.advantages).toBeInstanceOf(Tensor);
    expect(rewardsArray.advantages).toBeInstanceOf(Float32Array);
    expectBitwiseEqual(readBack(rewardsTensor.returns), rewardsArray.returns as Float32Array);
  });

  it('whiten: a Tensor gives a Tensor, a typed array a Float32Array', () => {
    const fromTensor = whiten(tensorOn(x, 'cpu'), { mask: tensorOn(mask, 'cpu') });
    const fromArray = whiten(x, { mask: tensorOn(mask, 'cpu') });
    expect(fromTensor).toBeInstanceOf(Tensor);
    expect(fromArray).toBeInstanceOf(Float32Array);
    expectBitwiseEqual(readBack(fromTensor), fromArray as Float32Array);
  });
});

describe.each(backendsUnderTest)('Promise forms keep their inputs alive on $backend', ({ device }) => {
  it('gaeAsync resolves correctly when its input tensors are disposed right after the call', async () => {
    const rng = new Rng(14);
    const batch = randomPackedBatch(rng, { lengths: randomLengths(rng, 64, 8000), mask: 'prompt-response', bootstrap: true });
    const inputs = recordOn(batch, device);
    const promise = gaeAsync({ ...inputs, gamma: 0.99, lambda: 0.9 });
    for (const t of Object.values(inputs)) t.dispose();
    const out = await promise;
    const ref = gaeReference({ ...batch, gamma: Math.fround(0.99), lambda: Math.fround(0.9) });
    expectClose(readBack(out.advantages), ref.advantages, { rel: 1e-5 });
    expectClose(readBack(out.returns), ref.returns, { rel: 1e-5 });
  });

  it('whitenAsync resolves correctly when its input tensors are disposed right after the call', async () => {
    const rng = new Rng(15);
    const x = randomWhitenInput(rng, 1_000_003);
    const mask = randomMask(rng, x.length, 0.8);
    const [xt, maskt] = [tensorOn(x, device), tensorOn(mask, device)];
    const promise = whitenAsync(xt, { mask: maskt, unbiased: false });
    xt.dispose();
    maskt.dispose();
    expectClose(readBack(await promise), whitenReference(x, { mask, unbiased: false }), { rel: 1e-5 });
  }, 30_000);
});

describe.each(backendsUnderTest)('streamTriad on $backend', ({ device }) => {
  it.each([0, 1, 7, 100_003])('a = b + scalar * c, n = %i, with Tensors, typed arrays and the Promise form', async (n) => {
    const rng = new Rng(16 + n);
    const [b, c] = [randomF32(rng, n), randomF32(rng, n)];
    const scalar = Math.fround(rng.uniform(-3, 3));
    const expected = b.map((bi, i) => bi + scalar * c[i]);
    const a = tensorOn(randomF32(rng, n), device);
    streamTriad(a, tensorOn(b, device), tensorOn(c, device), scalar);
    expectClose(a.toArray(), expected, { rel: 1e-6 });
    const array = randomF32(rng, n);
    expect(streamTriad(array, b, c, scalar)).toBe(array);
    expectClose(array, expected, { rel: 1e-6 });
    const viaPromise = tensorOn(randomF32(rng, n), device);
    await expect(streamTriadAsync(viaPromise, tensorOn(b, device), tensorOn(c, device), scalar)).resolves.toBe(viaPromise);
    expectClose(viaPromise.toArray(), expected, { rel: 1e-6 });
  });
});
