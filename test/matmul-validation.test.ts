// Bad input for every argument of matmul: a TalariaError with the exact code and a message naming the
// argument; the Promise form rejects instead of throwing. Nothing here may crash the process. Legal edge
// values are accepted, so the checks are not simply stricter than the API.
import { afterEach, describe, expect, it } from 'vitest';
import { matmul, matmulAsync, Tensor } from '../lib/index.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, tensorOn } from './helpers/backends.js';
import { expectThrows } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, SHAPE, describeRejections, number } from './helpers/bad-input.js';

afterEach(disposeTensors);

const rng = new Rng(6006);
const M = 3, N = 4, K = 5;
// a, then b, then room for c in one buffer: a c placed one element early overlaps b (or a).
const buffer = new ArrayBuffer(4 * (M * K + K * N + M * N));
const a = new Float32Array(buffer, 0, M * K);
a.set(randomF32(rng, M * K));
const b = new Float32Array(buffer, 4 * M * K, K * N);
b.set(randomF32(rng, K * N));
const good = { a, b, m: M, n: N, k: K };

const bad: Bad[] = [
  // a
  { what: 'a missing', patch: { a: undefined }, code: DTYPE, arg: 'a' },
  { what: 'a an Int32Array', patch: { a: new Int32Array(M * K) }, code: DTYPE, arg: 'a' },
  { what: 'a a Float64Array', patch: { a: new Float64Array(M * K) }, code: DTYPE, arg: 'a' },
  { what: 'a a plain array', patch: { a: Array.from(a) }, code: DTYPE, arg: 'a' },
  { what: 'a a Tensor of the wrong dtype', patch: { a: Tensor.from(new Int32Array(M * K), { shape: [M, K] }) }, code: DTYPE, arg: 'a' },
  { what: 'a a 1-D Tensor', patch: { a: Tensor.from(a), k: undefined }, code: SHAPE, arg: 'a' },
  { what: 'a a 3-D Tensor', patch: { a: Tensor.from(a, { shape: [M, 1, K] }) }, code: SHAPE, arg: 'a' },
  { what: 'a typed array without k', patch: { k: undefined }, code: SHAPE, arg: 'k' },
  { what: 'a typed array without m under transA', patch: { transA: true, m: undefined }, code: SHAPE, arg: 'm' },
  { what: 'a length that is not a multiple of k', patch: { a: a.subarray(1) }, code: SHAPE, arg: 'a' },
  { what: 'a with fewer rows than m', patch: { a: a.subarray(K) }, code: SHAPE, arg: 'a' },
  { what: 'a with no rows', patch: { a: new Float32Array(0), m: undefined }, code: SHAPE, arg: 'a' },
  { what: 'a Tensor whose K disagrees with k', patch: { a: Tensor.from(a, { shape: [M, K] }), k: K + 1 }, code: SHAPE, arg: 'a' },
  { what: 'a Tensor whose M disagrees with m', patch: { a: Tensor.from(a, { shape: [M, K] }), m: M + 1 }, code: SHAPE, arg: 'a' },
  // b
  { what: 'b missing', patch: { b: undefined }, code: DTYPE, arg: 'b' },
  { what: 'b an Int32Array', patch: { b: new Int32Array(K * N) }, code: DTYPE, arg: 'b' },
  { what: 'b a Tensor of the wrong dtype', patch: { b: Tensor.from(new Uint8Array(K * N), { shape: [K, N] }) }, code: DTYPE, arg: 'b' },
  { what: 'b a 1-D Tensor', patch: { b: Tensor.from(b), n: undefined }, code: SHAPE, arg: 'b' },
  { what: 'a typed array b without n', patch: { n: undefined }, code: SHAPE, arg: 'n' },
  { what: 'b with K + 1 rows (shape mismatch)', patch: { b: randomF32(rng, (K + 1) * N) }, code: SHAPE, arg: 'b' },
  { what: 'b under transB with columns other than K', patch: { transB: true, b: randomF32(rng, N * (K + 1)) }, code: SHAPE, arg: 'b' },
  { what: 'b under transA whose K disagrees', patch: { transA: true, b: randomF32(rng, (M + 1) * N) }, code: SHAPE, arg: 'b' },
  { what: 'a Tensor b whose N disagrees with n', patch: { b: Tensor.from(b, { shape: [K, N] }), n: N + 1 }, code: SHAPE, arg: 'b' },
  // c
  { what: 'c of the wrong length', patch: { c: new Float32Array(M * N + 1) }, code: SHAPE, arg: 'c' },
  { what: 'c an Int32Array', patch: { c: new Int32Array(M * N) }, code: DTYPE, arg: 'c' },
  { what: 'c a Tensor of another shape', patch: { c: Tensor.from(new Float32Array(M * N), { shape: [N, M] }) }, code: SHAPE, arg: 'c' },
  { what: 'c overlapping b', patch: { c: new Float32Array(buffer, 4 * (M * K + K * N - 1), M * N) }, code: RANGE, arg: 'c' },
  { what: 'c overlapping a', patch: { c: new Float32Array(buffer, 0, M * N) }, code: RANGE, arg: 'c' },
  { what: 'beta != 0 without c', patch: { beta: 0.5 }, code: RANGE, arg: 'c' },
  // dimensions and scalars
  ...number('m', [0, -1, 2.5, Number.NaN, Infinity, 2 ** 31, '3', null]),
  ...number('n', [0, -4, 1.5, Number.NaN, '4']),
  ...number('k', [0, -5, 0.5, Infinity, '5']),
  ...number('alpha', [Number.NaN, Infinity, -Infinity, 1e39, '1', null]),
  ...number('beta', [Number.NaN, Infinity, -Infinity, -1e39, true]),
  { what: 'transA not a boolean', patch: { transA: 1 }, code: DTYPE, arg: 'transA' },
  { what: 'transB not a boolean', patch: { transB: 'yes' }, code: DTYPE, arg: 'transB' },
  { what: 'an unknown option', patch: { transposeA: true }, code: RANGE, arg: 'transposeA' },
];

describeRejections([{ name: 'matmul', good, sync: matmul, async: matmulAsync, bad }], [42, undefined, null, 'a', [a], a]);

it('matmul rejects a disposed Tensor', () => {
  const disposed = Tensor.from(a, { shape: [M, K] });
  disposed.dispose();
  expectThrows(() => matmul({ ...good, a: disposed } as never), 'ERR_TALARIA_DISPOSED', 'a');
});

describe('legal edge values are accepted', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['Tensors with matching m, n and k', { a: Tensor.from(a, { shape: [M, K] }), b: Tensor.from(b, { shape: [K, N] }) }],
    ['Tensors without m, n or k', { a: Tensor.from(a, { shape: [M, K] }), b: Tensor.from(b, { shape: [K, N] }), m: undefined, n: undefined, k: undefined }],
    ['alpha and beta at +-FLT_MAX with c', { alpha: 3.4028234663852886e38, beta: -3.4028234663852886e38, c: new Float32Array(M * N) }],
    ['c right after b (touching, not overlapping)', { c: new Float32Array(buffer, 4 * (M * K + K * N), M * N) }],
    ['beta = 0 with c', { beta: 0, c: new Float32Array(M * N) }],
  ];
  it.each(cases)('%s', (_, patch) => {
    expect(() => matmul({ ...good, ...patch } as never)).not.toThrow();
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const onDevice = () => ({ a: tensorOn(a, device, [M, K]), b: tensorOn(b, device, [K, N]) });
  it('b on the cpu', () => {
    expectThrows(() => matmul({ ...onDevice(), b: Tensor.from(b, { shape: [K, N] }) }), DEVICE, 'b');
  });
  it('a typed-array b with a device a', () => {
    expectThrows(() => matmul({ ...onDevice(), b, n: N }), DEVICE, 'b');
  });
  it('c on the cpu', () => {
    expectThrows(() => matmul({ ...onDevice(), c: Tensor.from(new Float32Array(M * N), { shape: [M, N] }) }), DEVICE, 'c');
  });
});
