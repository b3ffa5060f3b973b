// Bad input for every argument of the logit kernels: a TalariaError with the exact code and a message
// naming the argument; the Promise forms reject instead of throwing. Nothing here may crash the process.
// Legal edge values are accepted, so the checks are not simply stricter than the API.
import { afterEach, describe, expect, it } from 'vitest';
import {
  crossEntropy, crossEntropyAsync, klDivergence, klDivergenceAsync, klDivergenceBackward, klDivergenceBackwardAsync,
  logprobEntropy, logprobEntropyAsync, logprobEntropyBackward, logprobEntropyBackwardAsync, Tensor,
} from '../lib/index.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, tensorOn } from './helpers/backends.js';
import { expectRejects, expectThrows } from './helpers/assert.js';
import {
  type Bad, DEVICE, DTYPE, type KernelUnderTest, RANGE, SHAPE, describeRejections, number, tokenArrays,
} from './helpers/bad-input.js';

afterEach(disposeTensors);

const rng = new Rng(5005);
const N = 5;
const V = 11;
const rowF32 = () => randomF32(rng, N, 0.5, 2);
// logits and, right after them in the same buffer, lse: an output one element into logits overlaps both.
const logitsBuffer = new ArrayBuffer(4 * (N * V + N));
const logits = new Float32Array(logitsBuffer, 0, N * V);
logits.set(randomF32(rng, N * V, -3, 3));
const lse = new Float32Array(logitsBuffer, 4 * N * V, N);
lse.set(rowF32());
const shifted = new Float32Array(logitsBuffer, 4, N * V);
const targets = Int32Array.from({ length: N }, () => rng.int(0, V - 1));
const forward = { logits, vocabSize: V, targets, temperature: 0.9 };
const backward = { ...forward, gLogp: rowF32(), gEntropy: rowF32(), lse, entropy: rowF32() };
const cross = { logits, vocabSize: V, targets, mask: randomMask(rng, N) };
const refLogits = randomF32(rng, N * V, -3, 3);
const kl = { logits, vocabSize: V, refLogits, temperature: 1.1 };
const klBackward = { ...kl, gKl: rowF32(), lse, refLse: rowF32(), kl: rowF32() };

/** The logits and vocabSize, for every kernel. */
const logitsBad: Bad[] = [
  { what: 'logits missing', patch: { logits: undefined }, code: DTYPE, arg: 'logits' },
  { what: 'logits an Int32Array', patch: { logits: new Int32Array(N * V) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a Float64Array', patch: { logits: new Float64Array(N * V) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a plain array', patch: { logits: Array.from(logits) }, code: DTYPE, arg: 'logits' },
  { what: 'logits a Tensor of the wrong dtype', patch: { logits: Tensor.from(new Int32Array(N * V), { shape: [N, V] }), vocabSize: undefined }, code: DTYPE, arg: 'logits' },
  { what: 'logits a 1-D Tensor', patch: { logits: Tensor.from(logits), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'logits a 3-D Tensor', patch: { logits: Tensor.from(logits, { shape: [N, 1, V] }), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'logits a Tensor with 0 columns', patch: { logits: Tensor.from(new Float32Array(0), { shape: [N, 0] }), vocabSize: undefined }, code: SHAPE, arg: 'logits' },
  { what: 'a Tensor whose columns disagree with vocabSize', patch: { logits: Tensor.from(logits, { shape: [N, V] }), vocabSize: V + 1 }, code: SHAPE, arg: 'logits' },
  { what: 'a typed array without vocabSize', patch: { vocabSize: undefined }, code: SHAPE, arg: 'vocabSize' },
  { what: 'a length that is not a multiple of vocabSize', patch: { logits: logits.subarray(1) }, code: SHAPE, arg: 'logits' },
  ...number('vocabSize', [0, -1, 2.5, Number.NaN, Infinity, 2 ** 31, '11', null]),
];
const targetsBad: Bad[] = [
  ...tokenArrays(['targets'], 'i32', N),
  { what: 'targets missing', patch: { targets: undefined }, code: DTYPE, arg: 'targets' },
  { what: 'a target of -1', patch: { targets: Int32Array.from(targets, (t, i) => (i === 2 ? -1 : t)) }, code: RANGE, arg: 'targets' },
  { what: 'a target of V', patch: { targets: Int32Array.from(targets, (t, i) => (i === 4 ? V : t)) }, code: RANGE, arg: 'targets' },
  { what: 'a target of 2^31 - 1', patch: { targets: Int32Array.from(targets, (t, i) => (i === 0 ? 2 ** 31 - 1 : t)) }, code: RANGE, arg: 'targets' },
];
const withOne = (x: Float32Array, at: number, value: number) => Float32Array.from(x, (t, i) => (i === at ? value : t));
const temperatureBad: Bad[] = [
  ...number('temperature', [0, -0.5, -0, Number.NaN, Infinity, -Infinity, 1e31, 1e-31, 1e-50, '1', true, null]),
  ...tokenArrays(['temperatures'], 'f32', N).map((b) => ({ ...b, patch: { ...b.patch, temperature: undefined } })),
  ...[0, -1, Number.NaN, Infinity, 1e31, 1e-40].map((value): Bad => ({
    what: `temperatures holding ${value}`, patch: { temperature: undefined, temperatures: withOne(rowF32(), 3, value) }, code: RANGE, arg: 'temperatures',
  })),
  { what: 'temperature and temperatures together', patch: { temperature: 1, temperatures: rowF32() }, code: RANGE, arg: 'temperature' },
];
/** out.<key>: f32[N] outputs. */
const rowOutputsBad = (keys: string[], input: string): Bad[] => [
  { what: 'out not an object', patch: { out: 5 }, code: DTYPE, arg: 'out' },
  { what: 'out a typed array', patch: { out: new Float32Array(N) }, code: DTYPE, arg: 'out' },
  { what: 'an unknown out key', patch: { out: { dLogits: new Float32Array(N * V) } }, code: RANGE, arg: 'dLogits' },
  ...keys.flatMap((key): Bad[] => [
    { what: `out.${key} too short`, patch: { out: { [key]: new Float32Array(N - 1) } }, code: SHAPE, arg: `out.${key}` },
    { what: `out.${key} of the wrong dtype`, patch: { out: { [key]: new Int32Array(N) } }, code: DTYPE, arg: `out.${key}` },
    { what: `out.${key} inside the logits`, patch: { out: { [key]: logits.subarray(V, V + N) } }, code: RANGE, arg: `out.${key}` },
    { what: `out.${key} aliasing ${input}`, patch: { out: { [key]: logits.subarray(0, N) } }, code: RANGE, arg: `out.${key}` },
  ]),
  { what: 'two outputs in the same buffer', patch: { out: { [keys[0]]: lse, [keys[1]]: lse } }, code: RANGE, arg: `out.${keys[0]}` },
];
/** dLogits, inPlace and what the gradient must not overlap. */
const dLogitsBad = (inputs: Record<string, Float32Array | Int32Array | Uint8Array>): Bad[] => [
  { what: 'out.dLogits too short', patch: { out: { dLogits: new Float32Array(N * V - V) } }, code: SHAPE, arg: 'out.dLogits' },
  { what: 'out.dLogits not a multiple of V', patch: { out: { dLogits: new Float32Array(N * V + 1) } }, code: SHAPE, arg: 'out.dLogits' },
  { what: 'out.dLogits of the wrong dtype', patch: { out: { dLogits: new Int32Array(N * V) } }, code: DTYPE, arg: 'out.dLogits' },
  { what: 'out.dLogits a Tensor with other columns', patch: { out: { dLogits: Tensor.from(new Float32Array(N * V), { shape: [V, N] }) } }, code: SHAPE, arg: 'out.dLogits' },
  { what: 'out.dLogits one element into the logits', patch: { out: { dLogits: shifted } }, code: RANGE, arg: 'out.dLogits' },
  { what: 'an unknown out key', patch: { out: { logp: new Float32Array(N) } }, code: RANGE, arg: 'logp' },
  { what: 'inPlace and out.dLogits together', patch: { inPlace: true, out: { dLogits: new Float32Array(N * V) } }, code: RANGE, arg: 'inPlace' },
  { what: 'inPlace not a boolean', patch: { inPlace: 1 }, code: DTYPE, arg: 'inPlace' },
  // An [N, V] f32 view whose first bytes are the input's (each lives at the start of an N * V * 4 byte buffer).
  ...Object.entries(inputs).map(([key, value]): Bad => ({
    what: `out.dLogits over ${key}`, patch: { out: { dLogits: new Float32Array(value.buffer, 0, N * V) } }, code: RANGE, arg: 'out.dLogits',
  })),
];

// Short inputs at the start of buffers big enough for an [N, V] output, for the overlap checks.
const sharedTargets = new Int32Array(new ArrayBuffer(4 * N * V), 0, N).fill(1);
const sharedRow = new Float32Array(new ArrayBuffer(4 * N * V), 0, N).fill(0.7);
const sharedMask = new Uint8Array(new ArrayBuffer(4 * N * V), 0, N).fill(1);

type Kernel = KernelUnderTest;
const kernels: Kernel[] = [
  {
    name: 'logprobEntropy', good: forward, sync: logprobEntropy, async: logprobEntropyAsync,
    bad: [...logitsBad, ...targetsBad, ...temperatureBad, ...rowOutputsBad(['logp', 'entropy', 'lse'], 'logits'),
      { what: 'out.lse aliasing the temperatures', patch: { temperature: undefined, temperatures: sharedRow, out: { lse: sharedRow } }, code: RANGE, arg: 'out.lse' },
      { what: 'an unknown option (a typo)', patch: { temprature: 1 }, code: RANGE, arg: 'temprature' },
      { what: 'inPlace (the forward writes no logits)', patch: { inPlace: true }, code: RANGE, arg: 'inPlace' }],
  },
  {
    name: 'logprobEntropyBackward', good: backward, sync: logprobEntropyBackward, async: logprobEntropyBackwardAsync,
    bad: [...logitsBad, ...targetsBad, ...temperatureBad,
      ...['gLogp', 'gEntropy', 'lse', 'entropy'].flatMap((key) => [...tokenArrays([key], 'f32', N),
        { what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key }]),
      ...dLogitsBad({ targets: sharedTargets, gLogp: sharedRow }).map((b) => ({ ...b, patch: { targets: sharedTargets, gLogp: sharedRow, ...b.patch } })),
      { what: 'out.dLogits over lse', patch: { out: { dLogits: new Float32Array(logitsBuffer, 4 * N, N * V) } }, code: RANGE, arg: 'out.dLogits' },
      { what: 'an option of another kernel', patch: { mask: cross.mask }, code: RANGE, arg: 'mask' }],
  },
  {
    name: 'crossEntropy', good: cross, sync: crossEntropy, async: crossEntropyAsync,
    bad: [...logitsBad, ...targetsBad, ...tokenArrays(['mask'], 'u8', N),
      ...dLogitsBad({ targets: sharedTargets, mask: sharedMask }).map((b) => ({ ...b, patch: { targets: sharedTargets, mask: sharedMask, ...b.patch } })),
      { what: 'a temperature (cross-entropy is at T = 1)', patch: { temperature: 0.5 }, code: RANGE, arg: 'temperature' },
      { what: 'an unknown option', patch: { ignoreIndex: -100 }, code: RANGE, arg: 'ignoreIndex' }],
  },
  {
    name: 'klDivergence', good: kl, sync: klDivergence, async: klDivergenceAsync,
    bad: [...logitsBad, ...temperatureBad, ...rowOutputsBad(['kl', 'lse', 'refLse'], 'logits'),
      { what: 'refLogits missing', patch: { refLogits: undefined }, code: DTYPE, arg: 'refLogits' },
      { what: 'refLogits an Int32Array', patch: { refLogits: new Int32Array(N * V) }, code: DTYPE, arg: 'refLogits' },
      { what: 'refLogits one row short', patch: { refLogits: refLogits.subarray(V) }, code: SHAPE, arg: 'refLogits' },
      { what: 'refLogits not a multiple of V', patch: { refLogits: refLogits.subarray(1) }, code: SHAPE, arg: 'refLogits' },
      { what: 'refLogits a Tensor with other columns', patch: { refLogits: Tensor.from(refLogits, { shape: [V, N] }) }, code: SHAPE, arg: 'refLogits' },
      { what: 'out.kl inside refLogits', patch: { out: { kl: refLogits.subarray(3, 3 + N) } }, code: RANGE, arg: 'out.kl' },
      { what: 'targets (KL needs none)', patch: { targets }, code: RANGE, arg: 'targets' }],
  },
  {
    name: 'klDivergenceBackward', good: klBackward, sync: klDivergenceBackward, async: klDivergenceBackwardAsync,
    bad: [...logitsBad, ...temperatureBad,
      ...['gKl', 'lse', 'refLse', 'kl'].flatMap((key) => [...tokenArrays([key], 'f32', N),
        { what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key }]),
      ...dLogitsBad({ gKl: sharedRow }).map((b) => ({ ...b, patch: { gKl: sharedRow, ...b.patch } })),
      { what: 'out.dLogits the refLogits (only the logits may be written in place)', patch: { out: { dLogits: refLogits } }, code: RANGE, arg: 'out.dLogits' },
      { what: 'refLogits one row short', patch: { refLogits: refLogits.subarray(V) }, code: SHAPE, arg: 'refLogits' }],
  },
];

describeRejections(kernels, [42, undefined, null, 'logits', [logits], logits]);

describe.each(kernels)('$name', ({ good, sync }) => {
  it('rejects a disposed Tensor', () => {
    const disposed = Tensor.from(logits, { shape: [N, V] });
    disposed.dispose();
    expectThrows(() => sync({ ...good, logits: disposed, vocabSize: undefined } as never), 'ERR_TALARIA_DISPOSED', 'logits');
  });
});

describe('legal edge values are accepted', () => {
  const logitsCopy = logits.slice();
  const cases: [string, Kernel, Record<string, unknown>][] = [
    ['temperature 1e-30', kernels[0], { temperature: 1e-30 }],
    ['temperature 1e30', kernels[0], { temperature: 1e30 }],
    ['per-row temperatures at both ends', kernels[0], { temperature: undefined, temperatures: Float32Array.from([1e-30, 1e30, 1, 3, 0.2]) }],
    ['targets 0 and V - 1', kernels[0], { targets: Int32Array.from([0, V - 1, 0, V - 1, 3]) }],
    ['a 2-D Tensor with a matching vocabSize', kernels[0], { logits: Tensor.from(logits, { shape: [N, V] }), vocabSize: V }],
    ['no rows (N = 0)', kernels[0], { logits: new Float32Array(0), targets: new Int32Array(0) }],
    ['out buffers', kernels[0], { out: { logp: new Float32Array(N), entropy: new Float32Array(N), lse: new Float32Array(N) } }],
    ['inPlace on a copy', kernels[1], { logits: logits.slice(), inPlace: true }],
    ['the logits as out.dLogits', kernels[2], { logits: logitsCopy, out: { dLogits: logitsCopy } }],
    ['no mask', kernels[2], { mask: undefined }],
    ['inPlace: false', kernels[4], { inPlace: false }],
  ];
  it.each(cases)('%s', (_, kernel, patch) => {
    expect(() => kernel.sync({ ...kernel.good, ...patch } as never)).not.toThrow();
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  const onDevice = (record: Record<string, unknown>) => {
    const out: Record<string, unknown> = { vocabSize: undefined };
    for (const [key, value] of Object.entries(record)) {
      if (value instanceof Float32Array && value.length === N * V) out[key] = tensorOn(value, device, [N, V]);
      else if (ArrayBuffer.isView(value)) out[key] = tensorOn(value as Float32Array, device);
      else out[key] = value;
    }
    return out;
  };
  it.each(kernels.map((k) => [k.name, k] as const))('%s: each array on the cpu while the rest are on the device', async (_, kernel) => {
    const good = kernel.good.temperature === undefined || kernel.name === 'crossEntropy'
      ? kernel.good : { ...kernel.good, temperature: undefined, temperatures: rowF32() };
    const placed = onDevice(good);
    expect(() => kernel.sync(placed as never)).not.toThrow();
    for (const [key, value] of Object.entries(good)) {
      if (!ArrayBuffer.isView(value) || key === 'logits') continue;
      expectThrows(() => kernel.sync({ ...placed, [key]: value } as never), DEVICE, key);
      await expectRejects(() => kernel.async({ ...placed, [key]: value } as never), DEVICE, key);
    }
    // Device logits with cpu outputs, and cpu logits with device outputs.
    const outKey = kernel.name.endsWith('Backward') || kernel.name === 'crossEntropy' ? 'dLogits' : Object.keys(kernel.sync(good as never) as object)[0];
    const cpuOut = outKey === 'dLogits' ? new Float32Array(N * V) : new Float32Array(N);
    expectThrows(() => kernel.sync({ ...placed, out: { [outKey]: cpuOut } } as never), DEVICE, `out.${outKey}`);
    const deviceOut = outKey === 'dLogits' ? tensorOn(cpuOut, device, [N, V]) : tensorOn(cpuOut, device);
    expectThrows(() => kernel.sync({ ...good, out: { [outKey]: deviceOut } } as never), DEVICE, `out.${outKey}`);
  });
});
