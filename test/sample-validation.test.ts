// Bad input for every argument of sample: a TalariaError with the exact code and a message naming the
// argument; the Promise form rejects instead of throwing. Nothing here may crash the process. Legal edge
// values are accepted, so the checks are not simply stricter than the API.
import { afterEach, describe, expect, it } from 'vitest';
import { sample, sampleAsync, Tensor } from '../lib/index.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, matrixOn, readBack, tensorOn } from './helpers/backends.js';
import { type TalariaCode, expectRejects, expectThrows } from './helpers/assert.js';

afterEach(disposeTensors);

const DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE';
const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE';
const RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
const DEVICE: TalariaCode = 'ERR_TALARIA_DEVICE';

const rng = new Rng(4242);
const N = 3, V = 5;
const good = {
  logits: randomF32(rng, N * V, -2, 2), vocabSize: V, seed: 1,
  history: Int32Array.from([0, 4, 4, 2]), historyOffsets: Int32Array.from([0, 2, 2, 4]),
};

interface Bad { what: string; patch: Record<string, unknown>; code: TalariaCode; arg: string }

const number = (key: string, bad: unknown[], code: TalariaCode = RANGE): Bad[] =>
  bad.map((value) => ({ what: `${key} = ${String(value)}`, patch: { [key]: value }, code: typeof value === 'number' ? code : DTYPE, arg: key }));

const bad: Bad[] = [
  { what: 'logits missing', patch: { logits: undefined }, code: DTYPE, arg: 'logits' },
  { what: 'logits of the wrong dtype', patch: { logits: new Int32Array(N * V) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a Float64Array', patch: { logits: new Float64Array(N * V) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a plain array', patch: { logits: Array.from({ length: N * V }, () => 0) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a 1-D Tensor', patch: { logits: Tensor.from(new Float32Array(N * V)), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'logits a 3-D Tensor', patch: { logits: Tensor.from(new Float32Array(N * V), { shape: [1, N, V] }), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'logits an i32 Tensor', patch: { logits: Tensor.from(new Int32Array(N * V), { shape: [N, V] }), vocabSize: undefined }, code: DTYPE, arg: 'logits' },
  { what: 'a typed array without vocabSize', patch: { vocabSize: undefined }, code: SHAPE, arg: 'vocabSize' },
  { what: 'logits not a multiple of vocabSize', patch: { vocabSize: 4 }, code: SHAPE, arg: 'logits' },
  { what: 'vocabSize = 0 (V = 0)', patch: { vocabSize: 0 }, code: SHAPE, arg: 'vocabSize' },
  { what: 'a Tensor with 0 columns (V = 0)', patch: { logits: Tensor.from(new Float32Array(0), { shape: [2, 0] }), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'a Tensor disagreeing with vocabSize', patch: { logits: Tensor.from(new Float32Array(N * V), { shape: [N, V] }), vocabSize: 3 }, code: SHAPE, arg: 'logits' },
  ...number('vocabSize', [-5, 2.5, Number.NaN, 2 ** 31, '5']),
  { what: 'seed missing', patch: { seed: undefined }, code: DTYPE, arg: 'seed' },
  ...number('seed', [-1, 1.5, 2 ** 53, 1e300, Number.NaN, Infinity, '1', 1n, null]),
  ...number('offset', [-1, 0.5, 2 ** 53, Number.NaN, '0', 2n]),
  { what: 'an unknown mode', patch: { mode: 'beam' }, code: RANGE, arg: 'mode' },
  { what: 'mode in the wrong case', patch: { mode: 'Greedy' }, code: RANGE, arg: 'mode' },
  { what: 'mode a number', patch: { mode: 1 }, code: DTYPE, arg: 'mode' },
  ...number('temperature', [0, -1, -0, Number.NaN, Infinity, 1e39, 1e-50]),
  { what: 'temperature a string', patch: { temperature: '1' }, code: DTYPE, arg: 'temperature' },
  { what: 'per-row temperatures too short', patch: { temperature: new Float32Array([1, 1]) }, code: SHAPE, arg: 'temperature' },
  { what: 'per-row temperatures of the wrong dtype', patch: { temperature: new Int32Array(N) }, code: DTYPE, arg: 'temperature' },
  { what: 'a per-row temperature of 0', patch: { temperature: Float32Array.from([1, 0, 1]) }, code: RANGE, arg: 'temperature' },
  { what: 'a per-row temperature NaN', patch: { temperature: Float32Array.from([1, 1, NaN]) }, code: RANGE, arg: 'temperature' },
  { what: 'a per-row temperature -1', patch: { temperature: Float32Array.from([-1, 1, 1]) }, code: RANGE, arg: 'temperature' },
  { what: 'a per-row temperature inf', patch: { temperature: Float32Array.from([1, Infinity, 1]) }, code: RANGE, arg: 'temperature' },
  ...number('topK', [-1, 2.5, Number.NaN, Infinity, 2 ** 31, '3']),
  ...number('topP', [0, -0.5, 1.5, 1 + 1e-6, Number.NaN, 1e-50, '0.9']),
  ...number('minP', [1, -0.1, 1 - 1e-9, 2, Number.NaN, '0.1']),
  ...number('repetitionPenalty', [0, -1, Number.NaN, Infinity, 1e-50, '1.2']),
  ...number('presencePenalty', [Number.NaN, Infinity, -Infinity, 1e39, '0.5']),
  ...number('frequencyPenalty', [Number.NaN, -Infinity, 1e39, '0.5']),
  { what: 'history of the wrong dtype', patch: { history: new Float32Array(4) }, code: DTYPE, arg: 'history' },
  { what: 'history with a token = V', patch: { history: Int32Array.from([0, 5, 4, 2]) }, code: RANGE, arg: 'history' },
  { what: 'history with a negative token', patch: { history: Int32Array.from([0, 1, -1, 2]) }, code: RANGE, arg: 'history' },
  { what: 'history without historyOffsets', patch: { historyOffsets: undefined }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets without history', patch: { history: undefined }, code: SHAPE, arg: 'history' },
  { what: 'historyOffsets of the wrong dtype', patch: { historyOffsets: new Float32Array(N + 1) }, code: DTYPE, arg: 'historyOffsets' },
  { what: 'historyOffsets not N + 1 long', patch: { historyOffsets: Int32Array.from([0, 2, 4]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets too long', patch: { historyOffsets: Int32Array.from([0, 1, 2, 3, 4]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets not ending at H', patch: { historyOffsets: Int32Array.from([0, 1, 2, 3]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets past H', patch: { historyOffsets: Int32Array.from([0, 1, 2, 5]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets decreasing', patch: { historyOffsets: Int32Array.from([0, 3, 1, 4]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'historyOffsets not starting at 0', patch: { historyOffsets: Int32Array.from([1, 2, 3, 4]) }, code: SHAPE, arg: 'historyOffsets' },
  { what: 'an unknown option (a typo)', patch: { top_k: 5 }, code: RANGE, arg: 'top_k' },
  { what: 'an option of another kernel', patch: { clipLow: 0.2 }, code: RANGE, arg: 'clipLow' },
  { what: 'an out option (outputs are always fresh)', patch: { out: {} }, code: RANGE, arg: 'out' },
];

describe('sample rejects bad input', () => {
  it.each(bad)('$what', async ({ patch, code, arg }) => {
    const input = { ...good, ...patch } as Parameters<typeof sample>[0];
    expectThrows(() => sample(input), code, arg);
    await expectRejects(() => sampleAsync(input), code, arg);
  });
  it('a non-object input, or none', async () => {
    for (const value of [42, undefined, null, 'logits', [good.logits]]) {
      expectThrows(() => sample(value as never), DTYPE);
      await expectRejects(() => sampleAsync(value as never), DTYPE);
    }
  });
  it('a disposed Tensor', () => {
    const disposed = Tensor.from(good.logits, { shape: [N, V] });
    disposed.dispose();
    expectThrows(() => sample({ ...good, logits: disposed, vocabSize: undefined }), 'ERR_TALARIA_DISPOSED', 'logits');
  });
});

describe('legal edge values are accepted', () => {
  const edges: Record<string, unknown>[] = [
    { seed: 0 }, { seed: 2 ** 53 - 1, offset: 2 ** 53 - 1 }, { temperature: 1e-30 }, { temperature: 3e38 }, { topK: 0 }, { topK: 1 },
    { topK: 2 ** 31 - 1 }, { topP: 1 }, { topP: 1e-30 }, { minP: 0 }, { minP: 0.999 }, { repetitionPenalty: 1e-30 },
    { presencePenalty: -3e38, frequencyPenalty: 3e38 }, { mode: 'greedy', topK: 3 }, { history: undefined, historyOffsets: undefined },
    { history: new Int32Array(0), historyOffsets: new Int32Array(N + 1) }, { logits: new Float32Array(0), history: undefined, historyOffsets: undefined },
    { temperature: Float32Array.from([0.5, 1e-30, 3e38]) },
  ];
  it.each(edges)('sample with %o', (patch) => {
    const tokens = readBack(sample({ ...good, ...patch } as Parameters<typeof sample>[0]).tokens);
    expect(tokens.length).toBe((patch.logits as Float32Array | undefined)?.length === 0 ? 0 : N);
    for (const token of tokens) expect(token >= 0 && token < V).toBe(true);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const onDevice = () => ({
    ...good, logits: matrixOn(good.logits, V, device), vocabSize: undefined,
    history: tensorOn(good.history, device), historyOffsets: tensorOn(good.historyOffsets, device),
  });
  it.each(['history', 'historyOffsets'] as const)('%s on the cpu, the rest on the device, and the other way round', async (key) => {
    expectThrows(() => sample({ ...onDevice(), [key]: good[key] }), DEVICE, key);
    await expectRejects(() => sampleAsync({ ...onDevice(), [key]: good[key] }), DEVICE, key);
    expectThrows(() => sample({ ...good, [key]: tensorOn(good[key], device) }), DEVICE, key);
  });
  it('per-row temperatures on the wrong device', () => {
    expectThrows(() => sample({ ...onDevice(), temperature: new Float32Array(N).fill(1) }), DEVICE, 'temperature');
    expectThrows(() => sample({ ...good, temperature: tensorOn(new Float32Array(N).fill(1), device) }), DEVICE, 'temperature');
  });
  it('device history is validated too', () => {
    expectThrows(() => sample({ ...onDevice(), history: tensorOn(Int32Array.from([0, 9, 1, 1]), device) }), RANGE, 'history');
    expectThrows(() => sample({ ...onDevice(), temperature: tensorOn(Float32Array.from([1, -1, 1]), device) }), RANGE, 'temperature');
  });
});
