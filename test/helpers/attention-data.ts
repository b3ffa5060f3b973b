// Random packed attention problems shared by the attention suites: q, k, v drawn from the seeded Rng (never
// zeros), laid out [N, H, D] and [Nk, Hkv, D] with FlashAttention's cu_seqlens packing.
import { Tensor } from '../../lib/index.js';
import { Rng, cuSeqlensOf, randomF32 } from './random.js';
import { tensorOn } from './backends.js';

export interface AttentionProblem {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  cuSeqlens: Int32Array;
  cuSeqlensK?: Int32Array;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  causal: boolean;
}

export interface ProblemShape {
  lengths: number[];
  /** Key lengths per sequence when they differ from the query lengths (cross-length, bottom-right causal). */
  keyLengths?: number[];
  H: number;
  Hkv: number;
  D: number;
  causal: boolean;
}

/** q and k in [-2, 2) make peaked softmax rows (scores of several units), v in [-1, 1). */
export function attentionProblem(rng: Rng, shape: ProblemShape): AttentionProblem {
  const { lengths, keyLengths, H, Hkv, D, causal } = shape;
  const cuSeqlens = cuSeqlensOf(lengths);
  const cuSeqlensK = keyLengths ? cuSeqlensOf(keyLengths) : undefined;
  const n = cuSeqlens[lengths.length], nk = cuSeqlensK ? cuSeqlensK[lengths.length] : n;
  return {
    q: randomF32(rng, n * H * D, -2, 2),
    k: randomF32(rng, nk * Hkv * D, -2, 2),
    v: randomF32(rng, nk * Hkv * D, -1, 1),
    cuSeqlens,
    ...(cuSeqlensK ? { cuSeqlensK } : {}),
    numHeads: H,
    numKvHeads: Hkv,
    headDim: D,
    causal,
  };
}

export const describeShape = (s: ProblemShape) =>
  `lengths [${s.lengths}]${s.keyLengths ? ` keys [${s.keyLengths}]` : ''} H=${s.H} Hkv=${s.Hkv} D=${s.D}${s.causal ? ' causal' : ''}`;

/**
 * The problem's arrays on `device`: typed arrays stay as they are on the cpu; elsewhere they become
 * Tensors shaped [N, H, D] / [Nk, Hkv, D] (and cu_seqlens 1-D), remembered for disposeTensors.
 */
export function problemOn<P extends AttentionProblem>(problem: P, device: string): P {
  if (device === 'cpu') return problem;
  const shaped = (x: Float32Array, heads: number) => {
    const t = Tensor.from(x, { device, shape: [x.length / (heads * problem.headDim), heads, problem.headDim] });
    tensorsMade.push(t);
    return t;
  };
  return {
    ...problem,
    q: shaped(problem.q, problem.numHeads),
    k: shaped(problem.k, problem.numKvHeads),
    v: shaped(problem.v, problem.numKvHeads),
    cuSeqlens: tensorOn(problem.cuSeqlens, device),
    ...(problem.cuSeqlensK ? { cuSeqlensK: tensorOn(problem.cuSeqlensK, device) } : {}),
  } as unknown as P;
}

const tensorsMade: Tensor[] = [];
/** Disposes the Tensors problemOn made. */
export function disposeProblemTensors(): void {
  for (const t of tensorsMade.splice(0)) t.dispose();
}
