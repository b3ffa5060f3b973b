// attentionBackward against the float64 reference gradients (test/reference/attention.ts), which are in
// turn checked against central finite differences of the reference forward at tiny sizes: dq, dk and dv
// for single tokens, lengths off the 64-row tile, several packed lengths, GQA ratios 1, 2 and 4 (dk and dv
// summed over each group), D = 32, 64 and 128, causal and not, separate key packing; Tensors and typed
// arrays, sync and Promise, bitwise determinism, and bad input. Every backend (CUDA: the bf16 tensor-core
// kernels, also checked against the cpu's gradients).
//
// Tolerances: the cpu is f32 storage and accumulation; each gradient sums up to a few hundred terms of
// products of O(1) values, so the bound is 5e-5 of the largest reference gradient of that tensor (at least
// 1). CUDA recomputes S and dP from bf16 q * scale, k, v, dO and multiplies bf16 P and dS by bf16 dO, q, k
// (2^-9 relative rounding per operand, f32 accumulation); dS = P (dP - delta) subtracts the f32 delta from
// a bf16-operand dP, so even a gradient that is exactly 0 (a length-1 sequence's dq) comes out ~1e-3: the
// bound is 2e-2 of the largest reference gradient of that tensor (at least 1), as the forward's o bound.
import { afterEach, describe, expect, it } from 'vitest';
import { attentionBackward, attentionBackwardAsync, attentionForward, Tensor } from '../lib/index.js';
import { attentionBackwardReference, attentionForwardReference } from './reference/attention.js';
import { Rng, randomF32 } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack } from './helpers/backends.js';
import {
  attentionProblem, describeShape, disposeProblemTensors, problemOn, type AttentionProblem, type ProblemShape,
} from './helpers/attention-data.js';
import {
  expectBitwiseEqual, expectClose, expectGradientMatchesFiniteDifferences, expectNonTrivial, expectThrows, maxAbs,
  type TalariaCode,
} from './helpers/assert.js';

afterEach(() => {
  disposeTensors();
  disposeProblemTensors();
  for (const t of extraTensors.splice(0)) t.dispose();
});

const GRAD_REL = 5e-5;
const GRAD_REL_BF16 = 2e-2;

const shapes: ProblemShape[] = [
  // A length-1 sequence has dq = dk = 0 exactly (a softmax over one key is constant); packed with a longer one.
  { lengths: [1, 5], H: 2, Hkv: 2, D: 64, causal: true },
  { lengths: [1, 2, 3], H: 4, Hkv: 2, D: 32, causal: true },
  { lengths: [63, 64, 65], H: 4, Hkv: 1, D: 64, causal: true },
  { lengths: [130, 0, 7], H: 2, Hkv: 1, D: 128, causal: true },
  { lengths: [97, 33], H: 4, Hkv: 4, D: 128, causal: false },
  { lengths: [3, 70], keyLengths: [5, 100], H: 2, Hkv: 1, D: 64, causal: true },
  { lengths: [10, 80], keyLengths: [4, 66], H: 4, Hkv: 2, D: 32, causal: true },
];

/** The forward's outputs and a random dO for a problem: everything the backward takes. */
function backwardInput(rng: Rng, problem: AttentionProblem) {
  const { o, lse } = attentionForward(problem);
  return { ...problem, dO: randomF32(rng, problem.q.length), o, lse };
}

function expectGradientsClose(got: { dq: ArrayLike<number>; dk: ArrayLike<number>; dv: ArrayLike<number> },
  want: { dq: Float64Array; dk: Float64Array; dv: Float64Array }, rel: number) {
  for (const key of ['dq', 'dk', 'dv'] as const) {
    expectNonTrivial(want[key]);
    expectClose(got[key], want[key], { rel, scale: Math.max(1, maxAbs(want[key])) });
  }
}

/** The backward's input on `device`: [N, H, D] Tensors for q, k, v, dO, o and [H, N] for lse off the cpu. */
function backwardOn(input: ReturnType<typeof backwardInput>, device: string) {
  if (device === 'cpu') return input;
  const onDevice = problemOn(input, device);
  const shaped = (x: Float32Array, shape: number[]) => extraTensors[extraTensors.push(Tensor.from(x, { device, shape })) - 1];
  const n = input.q.length / (input.numHeads * input.headDim);
  return { ...onDevice, dO: shaped(input.dO, [n, input.numHeads, input.headDim]), o: shaped(input.o, [n, input.numHeads, input.headDim]),
    lse: shaped(input.lse, [input.numHeads, n]) };
}
const extraTensors: Tensor[] = [];

describe.each(backendsUnderTest)('attentionBackward on $backend', ({ device }) => {
  it.each(shapes.map((s) => [describeShape(s), s] as const))('matches the reference: %s', (_, shape) => {
    const rng = new Rng(shapes.indexOf(shape) + 101);
    const input = backwardInput(rng, attentionProblem(rng, shape));
    const got = attentionBackward(backwardOn(input, device));
    const grads = { dq: readBack(got.dq), dk: readBack(got.dk), dv: readBack(got.dv) };
    const rel = device === 'cpu' ? GRAD_REL : GRAD_REL_BF16;
    expectGradientsClose(grads, attentionBackwardReference(input, input.dO), rel);
    if (device !== 'cpu') {  // parity with the cpu kernel
      const cpu = attentionBackward(input);
      for (const key of ['dq', 'dk', 'dv'] as const) expectClose(grads[key], cpu[key], { rel, scale: Math.max(1, maxAbs(cpu[key])) });
    }
  });

  it.each([
    { lengths: [3, 4], H: 2, Hkv: 1, D: 32, causal: true },
    { lengths: [2], keyLengths: [5], H: 2, Hkv: 2, D: 32, causal: false },
  ])('the reference and the kernel match finite differences of the reference loss sum(o * dO): %o', (shape) => {
    const rng = new Rng(7);
    const input = backwardInput(rng, attentionProblem(rng, shape));
    const reference = attentionBackwardReference(input, input.dO);
    const kernel = attentionBackward(input);
    for (const [key, grad] of [['q', 'dq'], ['k', 'dk'], ['v', 'dv']] as const) {
      const lossAt = (x: Float64Array) => {
        const { o } = attentionForwardReference({ ...input, [key]: x });
        return o.reduce((sum, value, i) => sum + value * input.dO[i], 0);
      };
      const scale = new Array(input[key].length).fill(Math.max(1, maxAbs(reference[grad])));
      const { checked } = expectGradientMatchesFiniteDifferences({
        lossAt, x: input[key], reference: reference[grad], kernel: kernel[grad], scale, lossScale: 10,
        kernelRel: GRAD_REL, kinkBound: () => Infinity,
      });
      expect(checked).toBe(input[key].length);
    }
  });

  it('takes Tensors shaped like the forward\'s, returns Tensors, and writes into out buffers', () => {
    const rng = new Rng(21);
    const input = backwardInput(rng, attentionProblem(rng, { lengths: [40, 90], H: 4, Hkv: 2, D: 64, causal: true }));
    const want = attentionBackwardReference(input, input.dO);
    const shaped = (x: Float32Array, heads: number) => Tensor.from(x, { shape: [130, heads, 64] });
    const tensors = { q: shaped(input.q, 4), k: shaped(input.k, 2), v: shaped(input.v, 2), dO: shaped(input.dO, 4), o: shaped(input.o, 4),
      lse: Tensor.from(input.lse, { shape: [4, 130] }) };
    const got = attentionBackward({ ...input, ...tensors });
    expect([(got.dq as Tensor).shape, (got.dk as Tensor).shape]).toEqual([[130, 4, 64], [130, 2, 64]]);
    expectGradientsClose({ dq: readBack(got.dq), dk: readBack(got.dk), dv: readBack(got.dv) }, want, GRAD_REL);
    const out = { dq: new Float32Array(input.q.length), dk: new Float32Array(input.k.length), dv: new Float32Array(input.v.length) };
    const written = attentionBackward({ ...input, out });
    expect(written.dq).toBe(out.dq);
    expectGradientsClose(out, want, GRAD_REL);
    Object.values(tensors).forEach((t) => t.dispose());
  });

  it('is bitwise deterministic, sync and Promise alike', async () => {
    const rng = new Rng(33);
    const input = backwardOn(backwardInput(rng, attentionProblem(rng, { lengths: [150, 77, 1], H: 8, Hkv: 2, D: 64, causal: true })), device);
    const first = attentionBackward(input);
    for (const other of [attentionBackward(input), await attentionBackwardAsync(input)])
      for (const key of ['dq', 'dk', 'dv'] as const) expectBitwiseEqual(readBack(other[key]), readBack(first[key]));
  });

  const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE', DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE', RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
  it.each([
    { what: 'dO missing', patch: { dO: undefined }, code: DTYPE, arg: 'dO' },
    { what: 'dO shorter than q', patch: { dO: new Float32Array(8) }, code: SHAPE, arg: 'dO' },
    { what: 'o of the wrong dtype', patch: { o: new Int32Array(5 * 2 * 32) }, code: DTYPE, arg: 'o' },
    { what: 'lse of the wrong length', patch: { lse: new Float32Array(9) }, code: SHAPE, arg: 'lse' },
    { what: 'out.dk overlapping k', patch: { out: { dk: 'k' } }, code: RANGE, arg: 'out.dk' },
    { what: 'out.dk overlapping out.dv', patch: { out: { dk: 'shared', dv: 'shared' } }, code: RANGE, arg: 'out.dk' },
    { what: 'an unknown out key', patch: { out: { dQ: 'fresh' } }, code: RANGE, arg: 'dQ' },
    { what: 'an unknown option', patch: { dOut: 1 }, code: RANGE, arg: 'dOut' },
  ])('rejects $what', ({ patch, code, arg }) => {
    const rng = new Rng(5);
    const input = backwardInput(rng, attentionProblem(rng, { lengths: [2, 3], H: 2, Hkv: 1, D: 32, causal: true }));
    const shared = new Float32Array(input.k.length);
    const buffer = (name: unknown) => (name === 'k' ? input.k : name === 'shared' ? shared : new Float32Array(input.q.length));
    const out = 'out' in patch ? Object.fromEntries(Object.entries(patch.out ?? {}).map(([key, name]) => [key, buffer(name)])) : undefined;
    expectThrows(() => attentionBackward({ ...input, ...patch, ...(out ? { out } : {}) } as never), code, arg);
  });
});
