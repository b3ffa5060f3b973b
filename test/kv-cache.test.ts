// kvCacheAppend and attentionDecode on every backend: a prefill then token-by-token decode reproduces a
// full causal attentionForward (and the float64 reference) at every position, with GQA and sequences of
// different lengths in one batch; the cache holds exactly the appended rows; empty caches; overflow and
// other bad input are rejected without writing. Tolerances as in attention.test.ts (f32 throughout).
import { afterEach, describe, expect, it } from 'vitest';
import { attentionDecode, attentionDecodeAsync, attentionForward, kvCacheAppend, Tensor } from '../lib/index.js';
import { attentionForwardReference } from './reference/attention.js';
import { Rng, cuSeqlensOf } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack } from './helpers/backends.js';
import { attentionProblem } from './helpers/attention-data.js';
import { expectBitwiseEqual, expectClose, expectThrows } from './helpers/assert.js';

const made: Tensor[] = [];
afterEach(() => {
  disposeTensors();
  for (const t of made.splice(0)) t.dispose();
});

const O_TOL = { rel: 2e-5, scale: 1 };

describe.each(backendsUnderTest)('KV cache on $backend', ({ device }) => {
  const on = <A extends Float32Array | Int32Array>(x: A, shape: number[]) => {
    const t = Tensor.from(x, { device, shape });
    made.push(t);
    return t;
  };

  it('prefill + one-token decode steps match a full causal forward at every position', () => {
    const lengths = [5, 33, 70], prefill = [1, 10, 0], B = 3, H = 4, Hkv = 2, D = 64, Lmax = 72;
    const problem = attentionProblem(new Rng(71), { lengths, H, Hkv, D, causal: true });
    const full = attentionForward(problem);
    const reference = attentionForwardReference(problem);
    const cu = problem.cuSeqlens;
    const cacheK = on(new Float32Array(B * Lmax * Hkv * D), [B, Lmax, Hkv, D]);
    const cacheV = on(new Float32Array(B * Lmax * Hkv * D), [B, Lmax, Hkv, D]);
    const cacheSeqlens = on(new Int32Array(B), [B]);
    // Rows [from_b, to_b) of each sequence, packed, as Tensors on the device.
    const rowsOf = (x: Float32Array, heads: number, from: number[], to: number[]) => {
      const parts = lengths.map((_, b) => x.subarray((cu[b] + from[b]) * heads * D, (cu[b] + to[b]) * heads * D));
      const packed = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) { packed.set(p, at); at += p.length; }
      return on(packed, [packed.length / (heads * D), heads, D]);
    };
    const append = (from: number[], to: number[]) => kvCacheAppend({
      cacheK, cacheV, cacheSeqlens, k: rowsOf(problem.k, Hkv, from, to), v: rowsOf(problem.v, Hkv, from, to),
      cuSeqlens: on(cuSeqlensOf(to.map((t, b) => t - from[b])), [B + 1]),
    });
    append([0, 0, 0], prefill);
    expect(Array.from(readBack(cacheSeqlens))).toEqual(prefill);
    let checked = 0;
    for (let t = 0; t < Math.max(...lengths); t++) {
      const active = lengths.map((len, b) => t >= prefill[b] && t < len);
      const from = lengths.map((len, b) => (active[b] ? t : Math.min(Math.max(prefill[b], t), len)));
      append(from, from.map((f, b) => (active[b] ? f + 1 : f)));
      // Every sequence decodes; a finished one re-reads its last position, a not-yet-started one (t < prefill) its
      // prefill's last: its query is then that position's.
      const position = lengths.map((len, b) => Math.min(Math.max(t, prefill[b] - 1), len - 1));
      const q = new Float32Array(B * H * D);
      lengths.forEach((_, b) => q.set(problem.q.subarray((cu[b] + position[b]) * H * D, (cu[b] + position[b] + 1) * H * D), b * H * D));
      const got = attentionDecode({ q: on(q, [B, H, D]), cacheK, cacheV, cacheSeqlens });
      const o = readBack(got.o), lse = readBack(got.lse);
      lengths.forEach((len, b) => {
        if (position[b] < 0) return;  // prefill 0 and t = 0 handled by the active branch
        const row = cu[b] + position[b];
        expectClose(o.subarray(b * H * D, (b + 1) * H * D), (full.o as Float32Array).subarray(row * H * D, (row + 1) * H * D), O_TOL);
        expectClose(o.subarray(b * H * D, (b + 1) * H * D), reference.o.subarray(row * H * D, (row + 1) * H * D), O_TOL);
        for (let h = 0; h < H; h++) expectClose([lse[h * B + b]], [reference.lse[h * cu[B] + row]], { rel: 1e-5 });
        checked++;
      });
    }
    expect(checked).toBe(Math.max(...lengths) * B);
    expect(Array.from(readBack(cacheSeqlens))).toEqual(lengths);
    // The cache holds exactly the sequences' k and v rows, in order.
    const k = readBack(cacheK);
    lengths.forEach((len, b) => expectBitwiseEqual(k.subarray(b * Lmax * Hkv * D, (b * Lmax + len) * Hkv * D),
      problem.k.subarray(cu[b] * Hkv * D, (cu[b] + len) * Hkv * D)));
  });

  it('an empty cache gives o = 0 and lse = -inf; the Promise form agrees bitwise', async () => {
    const B = 2, H = 2, Hkv = 1, D = 32, Lmax = 4;
    const problem = attentionProblem(new Rng(5), { lengths: [3], H, Hkv, D, causal: true });
    const cacheK = on(new Float32Array(B * Lmax * Hkv * D), [B, Lmax, Hkv, D]);
    const cacheV = on(new Float32Array(B * Lmax * Hkv * D), [B, Lmax, Hkv, D]);
    const cacheSeqlens = on(new Int32Array(B), [B]);
    kvCacheAppend({ cacheK, cacheV, cacheSeqlens, k: on(problem.k, [3, Hkv, D]), v: on(problem.v, [3, Hkv, D]),
      cuSeqlens: on(Int32Array.from([0, 3, 3]), [3]) });
    const input = { q: on(problem.q.slice(0, B * H * D), [B, H, D]), cacheK, cacheV, cacheSeqlens };
    const got = attentionDecode(input);
    const o = readBack(got.o), lse = readBack(got.lse);
    expect(Array.from(o.subarray(H * D))).toEqual(new Array(H * D).fill(0));
    expect([lse[1], lse[3]]).toEqual([-Infinity, -Infinity]);
    const again = await attentionDecodeAsync(input);
    expectBitwiseEqual(readBack(again.o), o);
  });

  it('rejects a cache overflow, and writes nothing', () => {
    const B = 1, Hkv = 1, D = 32, Lmax = 2;
    const cacheK = on(new Float32Array(Lmax * D), [B, Lmax, Hkv, D]), cacheV = on(new Float32Array(Lmax * D), [B, Lmax, Hkv, D]);
    const cacheSeqlens = on(Int32Array.from([1]), [B]);
    const rows = on(Float32Array.from({ length: 2 * D }, (_, i) => i + 1), [2, Hkv, D]);
    expectThrows(() => kvCacheAppend({ cacheK, cacheV, cacheSeqlens, k: rows, v: rows, cuSeqlens: on(Int32Array.from([0, 2]), [2]) }),
      'ERR_TALARIA_RANGE', 'maxLen');
    expect(Array.from(readBack(cacheSeqlens))).toEqual([1]);
    expect(readBack(cacheK).every((x) => x === 0)).toBe(true);
  });
});

describe('KV cache rejects bad input', () => {
  const B = 2, H = 2, Hkv = 1, D = 32, Lmax = 3;
  const cache = () => ({ cacheK: new Float32Array(B * Lmax * Hkv * D), cacheV: new Float32Array(B * Lmax * Hkv * D),
    cacheSeqlens: Int32Array.from([1, 0]), maxLen: Lmax, numKvHeads: Hkv, headDim: D });
  const q = new Float32Array(B * H * D).map((_, i) => Math.sin(i));
  it.each([
    { what: 'cacheK without maxLen', patch: { maxLen: undefined }, code: 'ERR_TALARIA_SHAPE', arg: 'maxLen' },
    { what: 'cacheV shorter than cacheK', patch: { cacheV: new Float32Array(D) }, code: 'ERR_TALARIA_SHAPE', arg: 'cacheV' },
    { what: 'a cache length past maxLen', patch: { cacheSeqlens: Int32Array.from([4, 0]) }, code: 'ERR_TALARIA_RANGE', arg: 'cacheSeqlens' },
    { what: 'a negative cache length', patch: { cacheSeqlens: Int32Array.from([-1, 0]) }, code: 'ERR_TALARIA_RANGE', arg: 'cacheSeqlens' },
    { what: 'cacheSeqlens of the wrong length', patch: { cacheSeqlens: Int32Array.from([0]) }, code: 'ERR_TALARIA_SHAPE', arg: 'cacheSeqlens' },
    { what: 'q with another batch', patch: { q: new Float32Array(3 * H * D) }, code: 'ERR_TALARIA_SHAPE', arg: 'q' },
    { what: 'H not a multiple of Hkv', patch: { q: new Float32Array(B * 3 * D), numHeads: 3, numKvHeads: 2,
      cacheK: new Float32Array(B * Lmax * 2 * D), cacheV: new Float32Array(B * Lmax * 2 * D) }, code: 'ERR_TALARIA_SHAPE', arg: 'numKvHeads' },
    { what: 'an unknown option', patch: { cuSeqlens: new Int32Array(3) }, code: 'ERR_TALARIA_RANGE', arg: 'cuSeqlens' },
    { what: 'scale = 0', patch: { scale: 0 }, code: 'ERR_TALARIA_RANGE', arg: 'scale' },
    { what: 'an unsupported head dim', patch: { q: new Float32Array(B * H * 48), headDim: 48, cacheK: new Float32Array(B * Lmax * 48),
      cacheV: new Float32Array(B * Lmax * 48) }, code: 'ERR_TALARIA_SHAPE', arg: 'headDim' },
    { what: 'out.o too short', patch: { out: { o: new Float32Array(3) } }, code: 'ERR_TALARIA_SHAPE', arg: 'out.o' },
  ] as const)('attentionDecode: $what', ({ patch, code, arg }) => {
    expectThrows(() => attentionDecode({ q, numHeads: H, ...cache(), ...patch } as never), code, arg);
  });
  it.each([
    { what: 'cuSeqlens for another batch', patch: { cuSeqlens: Int32Array.from([0, 1]) }, code: 'ERR_TALARIA_SHAPE', arg: 'cuSeqlens' },
    { what: 'k with another head dim', patch: { k: new Float32Array(2 * 64) }, code: 'ERR_TALARIA_SHAPE', arg: 'k' },
    { what: 'v shorter than k', patch: { v: new Float32Array(D) }, code: 'ERR_TALARIA_SHAPE', arg: 'v' },
    { what: 'k overlapping cacheK', patch: 'overlap', code: 'ERR_TALARIA_RANGE', arg: 'cacheK' },
  ] as const)('kvCacheAppend: $what', ({ patch, code, arg }) => {
    const c = cache();
    const rows = new Float32Array(2 * D).map((_, i) => Math.cos(i));
    const base = { ...c, k: rows, v: rows.slice(), cuSeqlens: Int32Array.from([0, 1, 2]) };
    const input = patch === 'overlap' ? { ...base, k: c.cacheK.subarray(0, 2 * D) } : { ...base, ...patch };
    expectThrows(() => kvCacheAppend(input as never), code, arg);
  });
});
