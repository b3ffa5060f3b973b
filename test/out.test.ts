// Caller-provided outputs (`out`): results land in the given buffers, which come back as the very same
// objects; outputs that overlap an input are rejected.
import { describe, expect, it } from 'vitest';
import { gae, gaeAsync, Tensor, whiten, whitenAsync } from '../lib/index.js';
import { expectBitwiseEqual, expectRejects, expectThrows } from './helpers/assert.js';
import { Rng, randomF32, randomMask, randomPackedBatch } from './helpers/random.js';

const rng = new Rng(4242);
const batch = randomPackedBatch(rng, { lengths: [5, 0, 17, 9], mask: 'interleaved', bootstrap: true });
const n = batch.rewards.length;
const gaeInput = { ...batch, gamma: 0.99, lambda: 0.9 };

describe('gae out', () => {
  const expected = gae(gaeInput);

  it('writes into typed arrays and returns them', () => {
    const out = { advantages: randomF32(rng, n), returns: randomF32(rng, n) };
    const result = gae({ ...gaeInput, out });
    expect(result.advantages).toBe(out.advantages);
    expect(result.returns).toBe(out.returns);
    expectBitwiseEqual(out.advantages, expected.advantages);
    expectBitwiseEqual(out.returns, expected.returns);
  });

  it('writes into Tensors and returns the same Tensor objects, also from the Promise form', async () => {
    const out = { advantages: Tensor.empty([n], 'f32'), returns: Tensor.empty([n], 'f32') };
    const result = await gaeAsync({ ...gaeInput, rewards: Tensor.from(batch.rewards), out });
    expect(result.advantages).toBe(out.advantages);
    expect(result.returns).toBe(out.returns);
    expectBitwiseEqual(out.advantages.toArray(), expected.advantages);
  });

  it('accepts only one of the two outputs and allocates the other', () => {
    const advantages = new Float32Array(n);
    const result = gae({ ...gaeInput, out: { advantages } });
    expect(result.advantages).toBe(advantages);
    expectBitwiseEqual(result.returns, expected.returns);
  });

  it('rejects bad outputs with the right code', async () => {
    const cases: [unknown, string, string][] = [
      [{ advantages: new Float64Array(n) }, 'ERR_TALARIA_DTYPE', 'out.advantages'],
      [{ returns: [1, 2, 3] }, 'ERR_TALARIA_DTYPE', 'out.returns'],
      [{ advantages: new Float32Array(n + 1) }, 'ERR_TALARIA_SHAPE', 'out.advantages'],
      [{ advantages: batch.rewards }, 'ERR_TALARIA_RANGE', 'out.advantages'],
      [{ returns: batch.values }, 'ERR_TALARIA_RANGE', 'out.returns'],
      [{ advantage: new Float32Array(n) }, 'ERR_TALARIA_RANGE', 'advantage'],
      [42, 'ERR_TALARIA_DTYPE', 'out'],
    ];
    for (const [out, code, arg] of cases) {
      expectThrows(() => gae({ ...gaeInput, out } as never), code as never, arg);
      await expectRejects(() => gaeAsync({ ...gaeInput, out } as never), code as never, arg);
    }
  });

  it('rejects outputs that overlap each other or an input', () => {
    const shared = new Float32Array(2 * n);
    const overlapping = { advantages: shared.subarray(0, n), returns: shared.subarray(n - 1, 2 * n - 1) };
    expectThrows(() => gae({ ...gaeInput, out: overlapping }), 'ERR_TALARIA_RANGE', 'out.advantages');
    const same = new Float32Array(n);
    expectThrows(() => gae({ ...gaeInput, out: { advantages: same, returns: same } }), 'ERR_TALARIA_RANGE', 'out.advantages');
    const buffer = new ArrayBuffer(4 * n);
    const actionMask = new Uint8Array(buffer, 0, n);
    actionMask.set(batch.actionMask!);
    expectThrows(() => gae({ ...gaeInput, actionMask, out: { advantages: new Float32Array(buffer) } }), 'ERR_TALARIA_RANGE', 'actionMask');
    const disposed = Tensor.empty([n], 'f32');
    disposed.dispose();
    expectThrows(() => gae({ ...gaeInput, rewards: Tensor.from(batch.rewards), out: { advantages: disposed } }), 'ERR_TALARIA_DISPOSED', 'out.advantages');
  });
});

describe('whiten out', () => {
  const x = randomF32(rng, 1000, -3, 5);
  const mask = randomMask(rng, 1000, 0.7);
  const expected = whiten(x, { mask });

  it('whitens in place when out is x', async () => {
    const inPlace = x.slice();
    expect(whiten(inPlace, { mask, out: inPlace })).toBe(inPlace);
    expectBitwiseEqual(inPlace, expected);
    const tensor = Tensor.from(x);
    expect(await whitenAsync(tensor, { mask, out: tensor })).toBe(tensor);
    expectBitwiseEqual(tensor.toArray(), expected);
  });

  it('rejects an out that partly overlaps x or overlaps the mask', () => {
    const backing = new Float32Array(1001);
    backing.set(x, 0);
    const shifted = backing.subarray(1, 1001);
    expectThrows(() => whiten(backing.subarray(0, 1000), { out: shifted }), 'ERR_TALARIA_RANGE', 'out');
    const bytes = new Uint8Array(4000);
    const maskView = bytes.subarray(0, 1000);
    maskView.set(mask);
    expectThrows(() => whiten(x, { mask: maskView, out: new Float32Array(bytes.buffer) }), 'ERR_TALARIA_RANGE', 'out');
  });
});
