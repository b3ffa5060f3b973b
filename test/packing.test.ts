// Padded [B, T] + mask <-> packed [N] + cuSeqlens, checked against a direct per-row construction, and
// composed with gae: packing then running GAE equals running the reference row by row.
import { describe, expect, it } from 'vitest';
import { gae, pack, packedLayout, unpack } from '../lib/index.js';
import { gaeReference } from './reference/rl.js';
import { expectClose, expectThrows } from './helpers/assert.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';

describe('packedLayout, pack and unpack', () => {
  const rng = new Rng(77);
  const batch = 6, seqLen = 13;
  const mask = randomMask(rng, batch * seqLen, 0.6);
  mask.fill(0, 2 * seqLen, 3 * seqLen); // one row of pure padding
  const layout = packedLayout(mask, batch, seqLen);

  it('keeps each row\'s unmasked tokens in order', () => {
    const padded = randomF32(rng, batch * seqLen);
    const packed = pack(layout, padded);
    for (let b = 0; b < batch; b++) {
      const row = [...padded.subarray(b * seqLen, (b + 1) * seqLen)].filter((_, t) => mask[b * seqLen + t]);
      expect([...packed.subarray(layout.cuSeqlens[b], layout.cuSeqlens[b + 1])]).toEqual(row);
    }
    expect(layout.cuSeqlens[2]).toBe(layout.cuSeqlens[3]);
  });

  it('round-trips through unpack, with padding set to fill', () => {
    const padded = randomF32(rng, batch * seqLen);
    const back = unpack(layout, pack(layout, padded), -7);
    for (let i = 0; i < padded.length; i++) expect(back[i]).toBe(mask[i] ? padded[i] : -7);
    const ids = new Int32Array(batch * seqLen).map((_, i) => 3 * i + 1);
    expect(pack(layout, ids)).toBeInstanceOf(Int32Array);
  });

  it('packs rows so that gae matches the reference on each padded row', () => {
    const rewards = randomF32(rng, batch * seqLen);
    const values = randomF32(rng, batch * seqLen);
    const { advantages } = gae({ rewards: pack(layout, rewards), values: pack(layout, values), cuSeqlens: layout.cuSeqlens, gamma: 0.97, lambda: 0.9 });
    const padded = unpack(layout, advantages);
    const ref = gaeReference({ rewards, values, cuSeqlens: new Int32Array(batch + 1).map((_, b) => b * seqLen), actionMask: mask, gamma: 0.97, lambda: 0.9 });
    expectClose(padded, ref.advantages, { rel: 1e-5 });
  });

  it('rejects bad arguments', () => {
    expectThrows(() => packedLayout([1, 0] as never, 1, 2), 'ERR_TALARIA_DTYPE', 'attentionMask');
    expectThrows(() => packedLayout(mask, batch, seqLen + 1), 'ERR_TALARIA_SHAPE', 'attentionMask');
    expectThrows(() => packedLayout(mask, -1, seqLen), 'ERR_TALARIA_RANGE', 'batch');
    expectThrows(() => packedLayout(mask, batch, 2.5), 'ERR_TALARIA_RANGE', 'seqLen');
    expectThrows(() => packedLayout(mask, '6' as never, seqLen), 'ERR_TALARIA_DTYPE', 'batch');
    expectThrows(() => pack(layout, new Float64Array(batch * seqLen) as never), 'ERR_TALARIA_DTYPE', 'padded');
    expectThrows(() => pack(layout, new Float32Array(3)), 'ERR_TALARIA_SHAPE', 'padded');
    expectThrows(() => unpack(layout, new Float32Array(layout.paddedIndex.length + 1)), 'ERR_TALARIA_SHAPE', 'packed');
    expectThrows(() => unpack(layout, null as never), 'ERR_TALARIA_DTYPE', 'packed');
  });
});
