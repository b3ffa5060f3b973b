// attentionForward against the float64 reference (test/reference/attention.ts): o and lse for packed
// sequences of length 1, lengths that are not multiples of the 64-row tile, several lengths in one pack,
// empty sequences, GQA ratios 1, 2 and 4, D = 32, 64 and 128, causal and not, separate key packing
// (bottom-right causal, including queries that see no key), typed arrays and Tensors, out buffers, sync
// and Promise, and bitwise determinism, on every backend (CUDA: the bf16 tensor-core kernel, also checked
// against the cpu).
//
// Tolerances: f32 storage and accumulation over at most D products per score and a few hundred keys per
// row, with exp within 2 ulp: |scores| <= ~20 here, so lse is within 1e-5 * max(1, |lse|) and o (a convex
// combination of v in [-1, 1)) within 2e-5 absolute. The CUDA forward uses bf16 tensor cores: see
// O_TOL_BF16.
import { afterEach, describe, expect, it } from 'vitest';
import { attentionForward, attentionForwardAsync, Tensor } from '../lib/index.js';
import { attentionForwardReference } from './reference/attention.js';
import { Rng } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn } from './helpers/backends.js';
import { attentionProblem, describeShape, disposeProblemTensors, problemOn, type ProblemShape } from './helpers/attention-data.js';
import { expectBitwiseEqual, expectClose, expectNonTrivial } from './helpers/assert.js';

afterEach(() => {
  disposeTensors();
  disposeProblemTensors();
});

const O_TOL = { rel: 2e-5, scale: 1 };
const LSE_TOL = { rel: 1e-5 };
// CUDA runs q * scale, k, P and v through bf16 tensor cores (2^-9 relative rounding each, f32 accumulation):
// a score moves by at most 2^-8 * scale * sum_d |q_d k_d| <= 2^-8 * sqrt(D) ~ 0.045 here, and typically far
// less (the rounding errors cancel); o and lse are bounded accordingly.
const O_TOL_BF16 = { rel: 2e-2, scale: 1 };
const LSE_TOL_BF16 = { rel: 1e-2 };

const shapes: ProblemShape[] = [
  { lengths: [1], H: 2, Hkv: 2, D: 64, causal: true },
  { lengths: [1, 2, 3], H: 4, Hkv: 2, D: 32, causal: true },
  { lengths: [63, 64, 65], H: 4, Hkv: 1, D: 64, causal: true },
  { lengths: [130, 0, 7], H: 2, Hkv: 1, D: 128, causal: true },
  { lengths: [97, 33], H: 4, Hkv: 4, D: 128, causal: false },
  { lengths: [5, 200], H: 4, Hkv: 2, D: 32, causal: false },
  // Separate key packing: more keys than queries (decode-like), fewer (leading queries see nothing), none.
  { lengths: [3, 70], keyLengths: [5, 100], H: 2, Hkv: 1, D: 64, causal: true },
  { lengths: [10, 80], keyLengths: [4, 66], H: 4, Hkv: 2, D: 32, causal: true },
  { lengths: [6, 2], keyLengths: [0, 9], H: 2, Hkv: 2, D: 32, causal: false },
];

describe.each(backendsUnderTest)('attentionForward on $backend', ({ device }) => {
  const [oTol, lseTol] = device === 'cpu' ? [O_TOL, LSE_TOL] : [O_TOL_BF16, LSE_TOL_BF16];

  it.each(shapes.map((s) => [describeShape(s), s] as const))('matches the reference: %s', (_, shape) => {
    const rng = new Rng(shapes.indexOf(shape) + 11);
    const problem = attentionProblem(rng, shape);
    const want = attentionForwardReference(problem);
    expectNonTrivial(want.o);
    const got = attentionForward(problemOn(problem, device));
    expectClose(readBack(got.o), want.o, oTol);
    // lse is -inf exactly where the reference has no key.
    const lse = Array.from(readBack(got.lse));
    expect(lse.map((x) => x === -Infinity)).toEqual(Array.from(want.lse, (x) => x === -Infinity));
    expectClose(lse.map((x) => (x === -Infinity ? 0 : x)), Array.from(want.lse, (x) => (x === -Infinity ? 0 : x)), lseTol);
    if (device !== 'cpu') expectClose(readBack(got.o), attentionForward(problem).o, oTol);  // parity with the cpu
  });

  it('takes Tensors, returns Tensors shaped [N, H, D] and [H, N], and writes into out buffers', () => {
    const shape: ProblemShape = { lengths: [40, 90], H: 4, Hkv: 2, D: 64, causal: true };
    const problem = attentionProblem(new Rng(3), shape);
    const want = attentionForwardReference(problem);
    const { numHeads, numKvHeads, headDim, ...arrays } = problem;
    const onDevice = recordOn(arrays, device);
    const q = Tensor.from(problem.q, { device, shape: [130, numHeads, headDim] });
    const k = Tensor.from(problem.k, { device, shape: [130, numKvHeads, headDim] });
    const v = Tensor.from(problem.v, { device, shape: [130, numKvHeads, headDim] });
    const got = attentionForward({ ...onDevice, q, k, v });
    expect(got.o).toBeInstanceOf(Tensor);
    expect([(got.o as Tensor).shape, (got.lse as Tensor).shape]).toEqual([[130, 4, 64], [4, 130]]);
    expectClose(readBack(got.o), want.o, oTol);
    const o = new Float32Array(problem.q.length), lse = new Float32Array(4 * 130);
    const written = attentionForward({ ...problem, out: { o, lse } });
    expect(written.o).toBe(o);
    expect(written.lse).toBe(lse);
    expectClose(o, want.o, O_TOL);
    [q, k, v].forEach((t) => t.dispose());
  });

  it('is bitwise deterministic, sync and Promise alike', async () => {
    const problem = problemOn(attentionProblem(new Rng(5), { lengths: [150, 77, 1], H: 8, Hkv: 2, D: 64, causal: true }), device);
    const first = attentionForward(problem);
    const second = attentionForward(problem);
    const promised = await attentionForwardAsync(problem);
    for (const other of [second, promised]) {
      expectBitwiseEqual(readBack(other.o), readBack(first.o));
      expectBitwiseEqual(readBack(other.lse), readBack(first.lse));
    }
  });

});
