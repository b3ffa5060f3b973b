// Random packed attention problems shared by the attention suites: q, k, v drawn from the seeded Rng (never
// zeros), laid out [N, H, D] and [Nk, Hkv, D] with FlashAttention's cu_seqlens packing.
import { Rng, cuSeqlensOf, randomF32 } from './random.js';

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
