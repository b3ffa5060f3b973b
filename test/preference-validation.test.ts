// Bad input for every argument of dpoLoss and rankingLoss: a TalariaError with the exact code and a message
// naming the argument; the Promise forms reject instead of throwing. Nothing here may crash the process.
import { describe, expect, it } from 'vitest';
import { dpoLoss, dpoLossAsync, rankingLoss, rankingLossAsync, Tensor } from '../lib/index.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest } from './helpers/backends.js';
import { type TalariaCode, expectRejects, expectThrows } from './helpers/assert.js';
import { type Bad, DEVICE, DTYPE, RANGE, SHAPE, number } from './helpers/bad-input.js';

const DISPOSED: TalariaCode = 'ERR_TALARIA_DISPOSED';

const rng = new Rng(7007);
const P = 5;
const M = 9;  // prompts of K = 3, 0, 1, 5
const pairArray = () => randomF32(rng, P, -80, -20);
const goodDpo = { policyChosen: pairArray(), policyRejected: pairArray(), refChosen: pairArray(), refRejected: pairArray() };
const goodRanking = { scores: randomF32(rng, M), offsets: Int32Array.from([0, 3, 3, 4, 9]), ranks: Int32Array.from([2, 0, 1, 0, 4, 1, 1, 0, 3]) };

function disposed(data: Float32Array | Int32Array): Tensor {
  const t = Tensor.from(data);
  t.dispose();
  return t;
}

/** Wrong kinds, dtypes, lengths and a disposed Tensor for an f32 or i32 array argument of `length`. */
function arrayBad(key: string, dtype: 'f32' | 'i32', length: number, required: boolean): Bad[] {
  const right = (n: number) => (dtype === 'f32' ? randomF32(rng, n) : new Int32Array(n));
  const bad: Bad[] = [
    { what: `${key} as a plain array`, patch: { [key]: Array.from(right(length)) }, code: DTYPE, arg: key },
    { what: `${key} as a string`, patch: { [key]: 'nope' }, code: DTYPE, arg: key },
    { what: `${key} as a Float64Array`, patch: { [key]: new Float64Array(length) }, code: DTYPE, arg: key },
    { what: `${key} of the other 32-bit dtype`, patch: { [key]: dtype === 'f32' ? new Int32Array(length) : new Float32Array(length) }, code: DTYPE, arg: key },
    { what: `${key} as a Uint8Array`, patch: { [key]: new Uint8Array(length) }, code: DTYPE, arg: key },
    { what: `${key} as a Tensor of the wrong dtype`, patch: { [key]: Tensor.from(new Uint8Array(length)) }, code: DTYPE, arg: key },
    { what: `${key} as a 2-D Tensor`, patch: { [key]: Tensor.from(right(2 * length + 2), { shape: [2, length + 1] }) }, code: SHAPE, arg: key },
    { what: `${key} as a disposed Tensor`, patch: { [key]: disposed(right(length)) }, code: DISPOSED, arg: key },
    { what: `${key} one too long`, patch: { [key]: right(length + 1) }, code: SHAPE, arg: key },
  ];
  if (length > 0) bad.push({ what: `${key} one too short`, patch: { [key]: right(length - 1) }, code: SHAPE, arg: key });
  if (required) bad.push({ what: `${key} missing`, patch: { [key]: undefined }, code: DTYPE, arg: key },
    { what: `${key} null`, patch: { [key]: null }, code: DTYPE, arg: key });
  return bad;
}

// The first array sets P (or M), so a wrong length there blames the others: its length rows are left out.
const dpoBad: Bad[] = [
  ...arrayBad('policyChosen', 'f32', P, true).filter((b) => !b.what.includes('one too')),
  ...['policyRejected', 'refChosen', 'refRejected'].flatMap((key) => arrayBad(key, 'f32', P, true)),
  ...number('beta', [0, -0.1, 1e-40, Number.NaN, Infinity, -Infinity, 1e39, '0.1', true, null]),
  ...number('labelSmoothing', [-0.01, 0.5, 0.7, 1, Number.NaN, Infinity, '0', false]),
  // Legal in f64 but 0.5 (excluded) once rounded to f32.
  ...number('labelSmoothing', [0.4999999999]),
  { what: 'an unknown option (a typo)', patch: { lableSmoothing: 0.1 }, code: RANGE, arg: 'lableSmoothing' },
  { what: 'out not an object', patch: { out: 42 }, code: DTYPE, arg: 'out' },
  { what: 'an unknown out key', patch: { out: { dChosen: new Float32Array(P) } }, code: RANGE, arg: 'dChosen' },
  { what: 'out.dPolicyChosen too short', patch: { out: { dPolicyChosen: new Float32Array(P - 1) } }, code: SHAPE, arg: 'out.dPolicyChosen' },
  { what: 'out.dPolicyRejected of the wrong dtype', patch: { out: { dPolicyRejected: new Int32Array(P) } }, code: DTYPE, arg: 'out.dPolicyRejected' },
  { what: 'out.dPolicyChosen aliasing refChosen', patch: { out: { dPolicyChosen: goodDpo.refChosen } }, code: RANGE, arg: 'out.dPolicyChosen' },
  { what: 'out.dPolicyRejected aliasing policyRejected', patch: { out: { dPolicyRejected: goodDpo.policyRejected } }, code: RANGE, arg: 'out.dPolicyRejected' },
  (() => {
    const shared = new Float32Array(2 * P);
    return { what: 'the two outputs overlapping', patch: { out: { dPolicyChosen: shared.subarray(0, P), dPolicyRejected: shared.subarray(P - 1, 2 * P - 1) } },
      code: RANGE, arg: 'out.dPolicyChosen' };
  })(),
];

const offsets = (values: number[]) => ({ offsets: Int32Array.from(values) });
const rankingBad: Bad[] = [
  ...arrayBad('scores', 'f32', M, true).filter((b) => !b.what.includes('one too')),
  ...arrayBad('offsets', 'i32', 5, true).filter((b) => !b.what.includes('one too')),
  ...arrayBad('ranks', 'i32', M, false),
  { what: 'offsets empty', patch: offsets([]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets not starting at 0', patch: offsets([1, 3, 3, 4, 9]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets ending before M', patch: offsets([0, 3, 3, 4, 8]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets ending after M', patch: offsets([0, 3, 3, 4, 10]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets only [0] while M > 0', patch: offsets([0]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets decreasing', patch: offsets([0, 4, 3, 4, 9]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets negative inside', patch: offsets([0, -1, 3, 4, 9]), code: SHAPE, arg: 'offsets' },
  { what: 'offsets decreasing, as a Tensor', patch: { offsets: Tensor.from(Int32Array.from([0, 4, 3, 4, 9])) }, code: SHAPE, arg: 'offsets' },
  { what: 'a rank of -1', patch: { ranks: Int32Array.from([2, 0, -1, 0, 4, 1, 1, 0, 3]) }, code: RANGE, arg: 'ranks' },
  { what: 'a rank equal to K', patch: { ranks: Int32Array.from([3, 0, 1, 0, 4, 1, 1, 0, 3]) }, code: RANGE, arg: 'ranks' },
  { what: 'a rank of 1 in a K = 1 prompt', patch: { ranks: Int32Array.from([2, 0, 1, 1, 4, 1, 1, 0, 3]) }, code: RANGE, arg: 'ranks' },
  { what: 'a rank valid only in another prompt', patch: { ranks: Int32Array.from([4, 0, 1, 0, 4, 1, 1, 0, 3]) }, code: RANGE, arg: 'ranks' },
  { what: 'a huge rank', patch: { ranks: Int32Array.from([2, 0, 1, 0, 2 ** 31 - 1, 1, 1, 0, 3]) }, code: RANGE, arg: 'ranks' },
  { what: 'a rank out of range, as a Tensor', patch: { ranks: Tensor.from(Int32Array.from([2, 0, 1, 0, 5, 1, 1, 0, 3])) }, code: RANGE, arg: 'ranks' },
  { what: 'an unknown option (a typo)', patch: { rank: goodRanking.ranks }, code: RANGE, arg: 'rank' },
  { what: 'out not an object', patch: { out: 'dScores' }, code: DTYPE, arg: 'out' },
  { what: 'an unknown out key', patch: { out: { dScore: new Float32Array(M) } }, code: RANGE, arg: 'dScore' },
  { what: 'out.dScores too long', patch: { out: { dScores: new Float32Array(M + 1) } }, code: SHAPE, arg: 'out.dScores' },
  { what: 'out.dScores of the wrong dtype', patch: { out: { dScores: new Int32Array(M) } }, code: DTYPE, arg: 'out.dScores' },
  { what: 'out.dScores aliasing scores', patch: { out: { dScores: goodRanking.scores } }, code: RANGE, arg: 'out.dScores' },
  { what: 'out.dScores overlapping the ranks', patch: { out: { dScores: new Float32Array(goodRanking.ranks.buffer, 0, M) } }, code: RANGE, arg: 'out.dScores' },
];

describe('dpoLoss rejects bad input', () => {
  it.each(dpoBad)('$what -> $code', async ({ patch, code, arg }) => {
    const input = { ...goodDpo, ...patch } as Parameters<typeof dpoLoss>[0];
    expectThrows(() => dpoLoss(input), code, arg);
    await expectRejects(() => dpoLossAsync(input), code, arg);
  });
  it.each([null, 42, 'pairs', [], undefined])('the input %j -> ERR_TALARIA_DTYPE', async (value) => {
    expectThrows(() => dpoLoss(value as never), DTYPE);
    await expectRejects(() => dpoLossAsync(value as never), DTYPE);
  });
  it('the good input these cases start from is accepted, with every option', async () => {
    const out = { dPolicyChosen: new Float32Array(P), dPolicyRejected: new Float32Array(P) };
    const got = dpoLoss({ ...goodDpo, beta: 0.5, labelSmoothing: 0.49, out });
    expect(got.dPolicyChosen).toBe(out.dPolicyChosen);
    expect(Number.isFinite((await dpoLossAsync(goodDpo)).loss)).toBe(true);
  });
});

describe('rankingLoss rejects bad input', () => {
  it.each(rankingBad)('$what -> $code', async ({ patch, code, arg }) => {
    const input = { ...goodRanking, ...patch } as Parameters<typeof rankingLoss>[0];
    expectThrows(() => rankingLoss(input), code, arg);
    await expectRejects(() => rankingLossAsync(input), code, arg);
  });
  it.each([null, 42, 'scores', [], undefined])('the input %j -> ERR_TALARIA_DTYPE', async (value) => {
    expectThrows(() => rankingLoss(value as never), DTYPE);
    await expectRejects(() => rankingLossAsync(value as never), DTYPE);
  });
  it('the good input these cases start from is accepted, with and without ranks (null = absent)', async () => {
    const out = { dScores: new Float32Array(M) };
    expect(rankingLoss({ ...goodRanking, out }).dScores).toBe(out.dScores);
    expect((await rankingLossAsync({ ...goodRanking, ranks: undefined })).stats.pairs).toBe(3 + 10);
    expect(rankingLoss({ ...goodRanking, ranks: null as never }).stats.tiedPairs).toBe(0);
  });
});

describe.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('device mixes on $backend', ({ device }) => {
  it('dpoLoss and rankingLoss reject inputs on two devices, and outputs on another device', async () => {
    const onDevice = <T extends Float32Array | Int32Array>(a: T) => Tensor.from(a, { device });
    const badRanks = Int32Array.from([0, 0, 3, 0, 0, 0, 0, 0, 0]);
    const tensors = [goodDpo.policyChosen, goodDpo.refRejected, goodRanking.scores, goodRanking.offsets, goodRanking.ranks, badRanks].map(onDevice);
    const [policyChosen, refRejected, scores, offsetsOnDevice, ranks, badRanksOnDevice] = tensors;
    try {
      expectThrows(() => dpoLoss({ ...goodDpo, policyChosen }), DEVICE, 'policyRejected');
      await expectRejects(() => dpoLossAsync({ ...goodDpo, refRejected }), DEVICE, 'refRejected');
      expectThrows(() => rankingLoss({ ...goodRanking, scores }), DEVICE, 'offsets');
      expectThrows(() => rankingLoss({ ...goodRanking, scores, offsets: offsetsOnDevice }), DEVICE, 'ranks');
      expectThrows(() => rankingLoss({ ...goodRanking, ranks }), DEVICE, 'ranks');
      expectThrows(() => rankingLoss({ scores, offsets: offsetsOnDevice, ranks, out: { dScores: new Float32Array(M) as never } }), DEVICE, 'out.dScores');
      // The device path validates ranks from a host copy too.
      expectThrows(() => rankingLoss({ scores, offsets: offsetsOnDevice, ranks: badRanksOnDevice }), RANGE, 'ranks');
    } finally {
      for (const t of tensors) t.dispose();
    }
  });
});
