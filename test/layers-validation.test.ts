// Bad input for every argument of the decoder-layer kernels: a TalariaError with the exact code and a
// message naming the argument; the Promise forms reject instead of throwing. Out-of-range ids are caught
// before anything is written, also for device tensors. Legal edge values are accepted.
import { afterEach, describe, expect, it } from 'vitest';
import {
  axpby, axpbyAsync, embedding, embeddingAsync, embeddingBackward, embeddingBackwardAsync, rmsnorm, rmsnormAsync,
  rmsnormBackward, rmsnormBackwardAsync, swiglu, swigluAsync, swigluBackward, swigluBackwardAsync, TalariaError, Tensor,
} from '../lib/index.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, matrixOn, readBack, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectThrows, thrownBy } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, SHAPE, describeRejections, number } from './helpers/bad-input.js';

afterEach(disposeTensors);

const rng = new Rng(9009);
const N = 3, D = 5, F = 4, V = 3;
// x, then weight, then room for outputs, in one buffer: views placed one element early overlap.
const buffer = new ArrayBuffer(4 * (2 * N * D + D + N));
const x = new Float32Array(buffer, 0, N * D);
x.set(randomF32(rng, N * D));
const weight = new Float32Array(buffer, 4 * N * D, D);
weight.set(randomF32(rng, D, 0.5, 1.5));
const overlapsX = new Float32Array(buffer, 4 * (N * D - 1), N * D);
const overlapsWeight = new Float32Array(buffer, 4 * (N * D + D - 1), N);
const matrix = (rows: number, cols: number, data = randomF32(rng, rows * cols)) => Tensor.from(data, { shape: [rows, cols] });

/** Wrong kinds of a [rows, cols] f32 matrix argument `key` whose columns come from elsewhere. */
const matrixKinds = (key: string, rows: number, cols: number): Bad[] => [
  { what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key },
  { what: `${key} an Int32Array`, patch: { [key]: new Int32Array(rows * cols) }, code: DTYPE, arg: key },
  { what: `${key} a Float64Array`, patch: { [key]: new Float64Array(rows * cols) }, code: DTYPE, arg: key },
  { what: `${key} a plain array`, patch: { [key]: Array.from({ length: rows * cols }, () => 0.5) }, code: DTYPE, arg: key },
  { what: `${key} a Tensor of the wrong dtype`, patch: { [key]: Tensor.from(new Int32Array(rows * cols), { shape: [rows, cols] }) }, code: DTYPE, arg: key },
  { what: `${key} a 3-D Tensor`, patch: { [key]: Tensor.from(new Float32Array(rows * cols), { shape: [rows, 1, cols] }) }, code: SHAPE, arg: key },
  { what: `${key} a length that is not a multiple of its columns`, patch: { [key]: new Float32Array(rows * cols + 1) }, code: SHAPE, arg: key },
];

// ---- rmsnorm and rmsnormBackward ----------------------------------------------------------------------------

const rmsnormGood = { x, weight };
const rmsnormBad: Bad[] = [
  ...matrixKinds('x', N, D),
  { what: 'x a 1-D Tensor', patch: { x: Tensor.from(x) }, code: SHAPE, arg: 'x' },
  { what: 'x a Tensor of d + 1 columns', patch: { x: matrix(N, D + 1) }, code: SHAPE, arg: 'x' },
  { what: 'weight missing', patch: { weight: undefined }, code: DTYPE, arg: 'weight' },
  { what: 'weight an Int32Array', patch: { weight: new Int32Array(D) }, code: DTYPE, arg: 'weight' },
  { what: 'weight a 2-D Tensor', patch: { weight: matrix(1, D) }, code: SHAPE, arg: 'weight' },
  { what: 'weight empty', patch: { weight: new Float32Array(0) }, code: SHAPE, arg: 'weight' },
  { what: 'weight of a length that does not divide x', patch: { weight: new Float32Array(D + 1) }, code: SHAPE, arg: 'x' },
  ...number('eps', [0, -1e-6, 1e-50, Number.NaN, Infinity, 1e39, '1e-6', null]),
  { what: 'out not an object', patch: { out: 5 }, code: DTYPE, arg: 'out' },
  { what: 'out with an unknown key', patch: { out: { z: new Float32Array(N * D) } }, code: RANGE, arg: 'z' },
  { what: 'out.y too long', patch: { out: { y: new Float32Array(N * D + D) } }, code: SHAPE, arg: 'out.y' },
  { what: 'out.y an Int32Array', patch: { out: { y: new Int32Array(N * D) } }, code: DTYPE, arg: 'out.y' },
  { what: 'out.y a Tensor of another shape', patch: { out: { y: matrix(D, N) } }, code: SHAPE, arg: 'out.y' },
  { what: 'out.y overlapping x', patch: { out: { y: overlapsX } }, code: RANGE, arg: 'out.y' },
  { what: 'out.y being x (no in place: the backward needs x)', patch: { out: { y: x } }, code: RANGE, arg: 'out.y' },
  { what: 'out.rstd too short', patch: { out: { rstd: new Float32Array(N - 1) } }, code: SHAPE, arg: 'out.rstd' },
  { what: 'out.rstd a 2-D Tensor', patch: { out: { rstd: matrix(N, 1) } }, code: SHAPE, arg: 'out.rstd' },
  { what: 'out.rstd overlapping weight', patch: { out: { rstd: overlapsWeight } }, code: RANGE, arg: 'out.rstd' },
  { what: 'out.rstd overlapping out.y', patch: { out: { y: new Float32Array(buffer, 4 * (N * D + D), N * D), rstd: new Float32Array(buffer, 4 * (2 * N * D + D - 1), N) } },
    code: RANGE, arg: 'out.rstd' },
  { what: 'an unknown option', patch: { epsilon: 1e-5 }, code: RANGE, arg: 'epsilon' },
];

const dy = randomF32(rng, N * D), rstd = randomF32(rng, N, 0.5, 2);
const backwardGood = { x, weight, rstd, dy };
const rmsnormBackwardBad: Bad[] = [
  ...matrixKinds('x', N, D),
  { what: 'weight missing', patch: { weight: undefined }, code: DTYPE, arg: 'weight' },
  { what: 'weight empty', patch: { weight: new Float32Array(0) }, code: SHAPE, arg: 'weight' },
  { what: 'rstd missing', patch: { rstd: undefined }, code: DTYPE, arg: 'rstd' },
  { what: 'rstd an Int32Array', patch: { rstd: new Int32Array(N) }, code: DTYPE, arg: 'rstd' },
  { what: 'rstd too long', patch: { rstd: new Float32Array(N + 1) }, code: SHAPE, arg: 'rstd' },
  ...matrixKinds('dy', N, D),
  { what: 'dy with another row count', patch: { dy: new Float32Array((N + 1) * D) }, code: SHAPE, arg: 'dy' },
  { what: 'dy a Tensor of d + 1 columns', patch: { dy: matrix(N, D + 1) }, code: SHAPE, arg: 'dy' },
  { what: 'dWeight too short', patch: { dWeight: new Float32Array(D - 1) }, code: SHAPE, arg: 'dWeight' },
  { what: 'dWeight an Int32Array', patch: { dWeight: new Int32Array(D) }, code: DTYPE, arg: 'dWeight' },
  { what: 'dWeight being weight', patch: { dWeight: weight }, code: RANGE, arg: 'dWeight' },
  { what: 'accumulate not a boolean', patch: { accumulate: 1, out: { dx: new Float32Array(N * D) } }, code: DTYPE, arg: 'accumulate' },
  { what: 'accumulate without out.dx', patch: { accumulate: true }, code: RANGE, arg: 'out.dx' },
  { what: 'out not an object', patch: { out: 'dx' }, code: DTYPE, arg: 'out' },
  { what: 'out with an unknown key', patch: { out: { dWeight: new Float32Array(D) } }, code: RANGE, arg: 'dWeight' },
  { what: 'out.dx too short', patch: { out: { dx: new Float32Array(N * D - D) } }, code: SHAPE, arg: 'out.dx' },
  { what: 'out.dx a Uint8Array', patch: { out: { dx: new Uint8Array(N * D) } }, code: DTYPE, arg: 'out.dx' },
  { what: 'out.dx overlapping x', patch: { out: { dx: overlapsX } }, code: RANGE, arg: 'out.dx' },
  { what: 'out.dx being dy', patch: { out: { dx: dy } }, code: RANGE, arg: 'out.dx' },
  { what: 'out.dx overlapping dWeight', patch: { dWeight: new Float32Array(buffer, 4 * (N * D + D), D),
    out: { dx: new Float32Array(buffer, 4 * (N * D + D + 1), N * D) } }, code: RANGE, arg: 'out.dx' },
  { what: 'an unknown option', patch: { inPlace: true }, code: RANGE, arg: 'inPlace' },
];

// ---- swiglu and swigluBackward ------------------------------------------------------------------------------

const gateUp = randomF32(rng, N * 2 * F), dh = randomF32(rng, N * F);
const swigluGood = { gateUp, intermediateSize: F };
const gateUpBad: Bad[] = [
  ...matrixKinds('gateUp', N, 2 * F),
  { what: 'gateUp a 1-D Tensor', patch: { gateUp: Tensor.from(gateUp), intermediateSize: undefined }, code: SHAPE, arg: 'gateUp' },
  { what: 'gateUp a Tensor of an odd column count', patch: { gateUp: matrix(2, 5), intermediateSize: undefined }, code: SHAPE, arg: 'gateUp' },
  { what: 'gateUp a Tensor whose 2F disagrees with intermediateSize', patch: { gateUp: matrix(N, 2 * F + 2) }, code: SHAPE, arg: 'gateUp' },
  { what: 'a typed array without intermediateSize', patch: { intermediateSize: undefined }, code: SHAPE, arg: 'intermediateSize' },
  ...number('intermediateSize', [0, -1, 1.5, Number.NaN, Infinity, 2 ** 31, '4', null]),
];
const swigluBad: Bad[] = [
  ...gateUpBad,
  { what: 'out too long', patch: { out: new Float32Array(N * F + F) }, code: SHAPE, arg: 'out' },
  { what: 'out an Int32Array', patch: { out: new Int32Array(N * F) }, code: DTYPE, arg: 'out' },
  { what: 'out a Tensor of [N, 2F]', patch: { out: matrix(N, 2 * F) }, code: SHAPE, arg: 'out' },
  { what: 'out overlapping gateUp', patch: { out: gateUp.subarray(F, F + N * F) }, code: RANGE, arg: 'out' },
  { what: 'an unknown option', patch: { hiddenSize: F }, code: RANGE, arg: 'hiddenSize' },
];
const swigluBackwardGood = { gateUp, dh, intermediateSize: F };
const swigluBackwardBad: Bad[] = [
  ...gateUpBad,
  ...matrixKinds('dh', N, F),
  { what: 'dh with another row count', patch: { dh: new Float32Array((N - 1) * F) }, code: SHAPE, arg: 'dh' },
  { what: 'dh a Tensor of 2F columns', patch: { dh: matrix(N, 2 * F) }, code: SHAPE, arg: 'dh' },
  { what: 'out too short', patch: { out: new Float32Array(N * F) }, code: SHAPE, arg: 'out' },
  { what: 'out overlapping gateUp', patch: { out: gateUp }, code: RANGE, arg: 'out' },
  { what: 'an unknown option', patch: { dGateUp: gateUp }, code: RANGE, arg: 'dGateUp' },
];
// out overlapping dh needs them in one buffer.
{
  const shared = new ArrayBuffer(4 * (N * F + N * 2 * F));
  const dhShared = new Float32Array(shared, 0, N * F);
  dhShared.set(dh);
  swigluBackwardBad.push({ what: 'out overlapping dh', patch: { dh: dhShared, out: new Float32Array(shared, 4 * (N * F - 1), N * 2 * F) },
    code: RANGE, arg: 'out' });
}

// ---- embedding and embeddingBackward ------------------------------------------------------------------------

const ids = Int32Array.from([0, 2, 1, 2]), T = ids.length;
const table = randomF32(rng, V * D), dOut = randomF32(rng, T * D);
const idsBad = (tableName: string): Bad[] => [
  { what: 'ids missing', patch: { ids: undefined }, code: DTYPE, arg: 'ids' },
  { what: 'ids a Float32Array', patch: { ids: new Float32Array(T) }, code: DTYPE, arg: 'ids' },
  { what: 'ids a 2-D Tensor', patch: { ids: Tensor.from(ids, { shape: [T, 1] }) }, code: SHAPE, arg: 'ids' },
  { what: `an id equal to V (${tableName}'s rows)`, patch: { ids: Int32Array.from([0, 1, V, 2]) }, code: RANGE, arg: 'ids[2] = 3' },
  { what: 'a negative id', patch: { ids: Int32Array.from([-1, 0, 0, 0]) }, code: RANGE, arg: 'ids[0] = -1' },
  ...number('dim', [0, -1, 2.5, Number.NaN, '5', null]),
];
const tableBad = (key: string, rows: number): Bad[] => [
  ...matrixKinds(key, rows, D),
  { what: `${key} a 1-D Tensor`, patch: { [key]: Tensor.from(new Float32Array(rows * D)), dim: undefined }, code: SHAPE, arg: key },
  { what: `${key} a Tensor whose d disagrees with dim`, patch: { [key]: matrix(rows, D + 1) }, code: SHAPE, arg: key },
  { what: `a typed-array ${key} without dim`, patch: { dim: undefined }, code: SHAPE, arg: 'dim' },
];
const embeddingGood = { ids, table, dim: D };
const embeddingBad: Bad[] = [
  ...idsBad('table'),
  ...tableBad('table', V),
  { what: 'out too short', patch: { out: new Float32Array(T * D - 1) }, code: SHAPE, arg: 'out' },
  { what: 'out an Int32Array', patch: { out: new Int32Array(T * D) }, code: DTYPE, arg: 'out' },
  { what: 'an unknown option', patch: { vocabSize: V }, code: RANGE, arg: 'vocabSize' },
];
{
  // out placed one element into the table's buffer.
  const shared = new Float32Array(V * D + T * D);
  embeddingBad.push({ what: 'out overlapping table', patch: { table: shared.subarray(0, V * D), out: shared.subarray(V * D - 1, V * D - 1 + T * D) },
    code: RANGE, arg: 'out' });
}
const embeddingBackwardGood = { ids, dOut, dTable: new Float32Array(V * D), dim: D };
const embeddingBackwardBad: Bad[] = [
  ...idsBad('dTable'),
  ...tableBad('dTable', V),
  ...matrixKinds('dOut', T, D),
  { what: 'dOut with a row per id plus one', patch: { dOut: new Float32Array((T + 1) * D) }, code: SHAPE, arg: 'dOut' },
  { what: 'dOut a Tensor of d + 1 columns', patch: { dOut: matrix(T, D + 1) }, code: SHAPE, arg: 'dOut' },
  { what: 'an unknown option', patch: { out: new Float32Array(V * D) }, code: RANGE, arg: 'out' },
];
{
  const shared = new Float32Array(T * D + V * D);
  embeddingBackwardBad.push({ what: 'dTable overlapping dOut', patch: { dOut: shared.subarray(0, T * D), dTable: shared.subarray(T * D - 2, T * D - 2 + V * D) },
    code: RANGE, arg: 'dTable' });
}

// ---- axpby -------------------------------------------------------------------------------------------------

const axpbyBuffer = new Float32Array(13);
const axpbyGood = { x: randomF32(rng, 6), y: randomF32(rng, 6) };
const axpbyBad: Bad[] = [
  { what: 'x missing', patch: { x: undefined }, code: DTYPE, arg: 'x' },
  { what: 'y missing', patch: { y: undefined }, code: DTYPE, arg: 'y' },
  { what: 'x an Int32Array', patch: { x: new Int32Array(6) }, code: DTYPE, arg: 'x' },
  { what: 'y a Float64Array', patch: { y: new Float64Array(6) }, code: DTYPE, arg: 'y' },
  { what: 'y a plain array', patch: { y: [1, 2, 3, 4, 5, 6] }, code: DTYPE, arg: 'y' },
  { what: 'y a Tensor of the wrong dtype', patch: { y: Tensor.from(new Uint8Array(6)) }, code: DTYPE, arg: 'y' },
  { what: 'x with another element count', patch: { x: new Float32Array(7) }, code: SHAPE, arg: 'x' },
  { what: 'x a Tensor of another element count', patch: { x: matrix(2, 4) }, code: SHAPE, arg: 'x' },
  { what: 'x partially overlapping y', patch: { x: axpbyBuffer.subarray(0, 6), y: axpbyBuffer.subarray(3, 9) }, code: RANGE, arg: 'y' },
  ...number('alpha', [Number.NaN, Infinity, -Infinity, 1e39, '1', null]),
  ...number('beta', [Number.NaN, Infinity, -1e39, true]),
  { what: 'an unknown option', patch: { gamma: 1 }, code: RANGE, arg: 'gamma' },
];

describeRejections([
  { name: 'rmsnorm', good: rmsnormGood, sync: rmsnorm, async: rmsnormAsync, bad: rmsnormBad },
  { name: 'rmsnormBackward', good: backwardGood, sync: rmsnormBackward, async: rmsnormBackwardAsync, bad: rmsnormBackwardBad },
  { name: 'swiglu', good: swigluGood, sync: swiglu, async: swigluAsync, bad: swigluBad },
  { name: 'swigluBackward', good: swigluBackwardGood, sync: swigluBackward, async: swigluBackwardAsync, bad: swigluBackwardBad },
  { name: 'embedding', good: embeddingGood, sync: embedding, async: embeddingAsync, bad: embeddingBad },
  { name: 'embeddingBackward', good: embeddingBackwardGood, sync: embeddingBackward, async: embeddingBackwardAsync, bad: embeddingBackwardBad },
  { name: 'axpby', good: axpbyGood, sync: axpby, async: axpbyAsync, bad: axpbyBad },
], [42, undefined, null, 'x', [x], x]);

describe('legal edge values are accepted', () => {
  const cases: [string, () => unknown][] = [
    ['rmsnorm on zero rows', () => rmsnorm({ x: new Float32Array(0), weight })],
    ['rmsnorm with d = 1 and the largest f32 eps', () => rmsnorm({ x, weight: new Float32Array([2]), eps: 3.4028234663852886e38 })],
    ['rmsnorm with out.y right after weight (touching, not overlapping)', () => rmsnorm({ x, weight, out: { y: new Float32Array(buffer, 4 * (N * D + D), N * D) } })],
    ['rmsnormBackward on zero rows gives a zero dWeight', () => {
      const { dWeight } = rmsnormBackward({ x: new Float32Array(0), weight, rstd: new Float32Array(0), dy: new Float32Array(0) });
      expect(Array.from(dWeight)).toEqual(new Array(D).fill(0));
    }],
    ['swiglu with F = 1 as a Tensor, no intermediateSize', () => swiglu({ gateUp: matrix(3, 2) })],
    ['swiglu on zero rows', () => swiglu({ gateUp: new Float32Array(0), intermediateSize: 3 })],
    ['embedding with no ids', () => embedding({ ids: new Int32Array(0), table, dim: D })],
    ['embedding with every id V - 1', () => embedding({ ids: new Int32Array(9).fill(V - 1), table, dim: D })],
    ['embeddingBackward with no ids', () => embeddingBackward({ ids: new Int32Array(0), dOut: new Float32Array(0), dTable: new Float32Array(V * D), dim: D })],
    ['axpby with x the same buffer as y', () => axpby({ x: axpbyBuffer, y: axpbyBuffer, alpha: 2, beta: -1 })],
    ['axpby on empty buffers', () => axpby({ x: new Float32Array(0), y: new Float32Array(0) })],
    ['axpby with alpha and beta at +-FLT_MAX', () => axpby({ x: new Float32Array(3), y: new Float32Array(3), alpha: 3.4028234663852886e38, beta: -3.4028234663852886e38 })],
    ['axpby between a [2, 3] Tensor and a Float32Array-backed [6] Tensor', () => axpby({ x: Tensor.from(new Float32Array(6)), y: matrix(2, 3) })],
  ];
  it.each(cases)('%s', (_, run) => {
    expect(run).not.toThrow();
  });
});

describe.each(backendsUnderTest)('ids are checked before anything is written on $backend', ({ device }) => {
  it('embedding: the message names the index and the value; out is untouched', () => {
    const bad = Int32Array.from({ length: 9 }, (_, t) => t % 3);
    bad[7] = 300;
    const sentinel = randomF32(rng, 9 * D);
    const out = matrixOn(sentinel, D, device);
    const err = thrownBy(() => embedding({ ids: tensorOn(bad, device), table: matrixOn(table, D, device), out }));
    expect(err).toBeInstanceOf(TalariaError);
    expect((err as TalariaError).code).toBe('ERR_TALARIA_RANGE');
    expect((err as TalariaError).message).toContain('ids[7] = 300');
    expect((err as TalariaError).message).toContain('[0, 3)');
    expectBitwiseEqual(readBack(out), sentinel);
  });

  it('embeddingBackward: dTable is untouched', () => {
    const bad = Int32Array.from([0, 1, 2, -5]);
    const before = randomF32(rng, V * D);
    const dTable = matrixOn(before, D, device);
    expectThrows(() => embeddingBackward({ ids: tensorOn(bad, device), dOut: matrixOn(dOut, D, device), dTable }), RANGE, 'ids[3] = -5');
    expectBitwiseEqual(readBack(dTable), before);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const onDevice = (data: Float32Array, cols: number) => matrixOn(data, cols, device);
  it('rmsnorm: weight, out.y and out.rstd on the cpu', () => {
    expectThrows(() => rmsnorm({ x: onDevice(x, D), weight }), DEVICE, 'weight');
    expectThrows(() => rmsnorm({ x: onDevice(x, D), weight: tensorOn(weight, device), out: { y: matrix(N, D) } }), DEVICE, 'out.y');
    expectThrows(() => rmsnorm({ x: onDevice(x, D), weight: tensorOn(weight, device), out: { rstd: Tensor.from(new Float32Array(N)) } }), DEVICE, 'out.rstd');
  });
  it('rmsnormBackward: rstd, dy, dWeight and out.dx on the cpu', () => {
    const on = { x: onDevice(x, D), weight: tensorOn(weight, device), rstd: tensorOn(rstd, device), dy: onDevice(dy, D) };
    expectThrows(() => rmsnormBackward({ ...on, rstd }), DEVICE, 'rstd');
    expectThrows(() => rmsnormBackward({ ...on, dy: matrix(N, D) }), DEVICE, 'dy');
    expectThrows(() => rmsnormBackward({ ...on, dWeight: Tensor.from(new Float32Array(D)) }), DEVICE, 'dWeight');
    expectThrows(() => rmsnormBackward({ ...on, out: { dx: matrix(N, D) } }), DEVICE, 'out.dx');
  });
  it('swiglu and swigluBackward: dh and out on the cpu', () => {
    expectThrows(() => swiglu({ gateUp: onDevice(gateUp, 2 * F), out: matrix(N, F) }), DEVICE, 'out');
    expectThrows(() => swigluBackward({ gateUp: onDevice(gateUp, 2 * F), dh: matrix(N, F, dh) }), DEVICE, 'dh');
    expectThrows(() => swigluBackward({ gateUp: onDevice(gateUp, 2 * F), dh: onDevice(dh, F), out: matrix(N, 2 * F) }), DEVICE, 'out');
  });
  it('embedding and embeddingBackward: ids, out and dOut on the cpu', () => {
    expectThrows(() => embedding({ ids, table: onDevice(table, D) }), DEVICE, 'ids');
    expectThrows(() => embedding({ ids: tensorOn(ids, device), table: onDevice(table, D), out: matrix(T, D) }), DEVICE, 'out');
    expectThrows(() => embeddingBackward({ ids: tensorOn(ids, device), dOut: matrix(T, D, dOut), dTable: onDevice(table, D) }), DEVICE, 'dOut');
    expectThrows(() => embeddingBackward({ ids, dOut: onDevice(dOut, D), dTable: onDevice(table, D) }), DEVICE, 'ids');
  });
  it('axpby: x on the cpu', () => {
    expectThrows(() => axpby({ x: axpbyGood.x, y: tensorOn(axpbyGood.y, device) }), DEVICE, 'x');
  });
});
