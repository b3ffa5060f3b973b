// Float64 reference for attention (native/core/kernels/attention.h): the naive three loops per sequence
// and head, with the full score row materialised. The test oracle for every backend. The scale is
// rounded to f32 first, as the kernels receive it; everything else is f64.

export interface AttentionReferenceInput {
  q: ArrayLike<number>;          // [N, H, D]
  k: ArrayLike<number>;          // [Nk, Hkv, D]
  v: ArrayLike<number>;          // [Nk, Hkv, D]
  cuSeqlens: ArrayLike<number>;  // [B+1] for q
  cuSeqlensK?: ArrayLike<number>;// [B+1] for k and v; default cuSeqlens
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale?: number;
  causal?: boolean;
}

export interface AttentionReferenceOutput {
  o: Float64Array;    // [N, H, D]
  lse: Float64Array;  // [H, N]
}

/** The keys [0, end) of a sequence that its query i may see (bottom-right causal alignment). */
export function visibleKeys(i: number, lq: number, lk: number, causal: boolean): number {
  return causal ? Math.max(0, Math.min(lk, i + (lk - lq) + 1)) : lk;
}

export function attentionForwardReference(input: AttentionReferenceInput): AttentionReferenceOutput {
  const { q, k, v, cuSeqlens, numHeads: H, numKvHeads: Hkv, headDim: D } = input;
  const cuK = input.cuSeqlensK ?? cuSeqlens;
  const scale = Math.fround(input.scale ?? 1 / Math.sqrt(D));
  const causal = input.causal ?? true;
  const N = cuSeqlens[cuSeqlens.length - 1];
  const o = new Float64Array(N * H * D);
  const lse = new Float64Array(H * N).fill(-Infinity);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const q0 = cuSeqlens[b], lq = cuSeqlens[b + 1] - q0, k0 = cuK[b], lk = cuK[b + 1] - k0;
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < lq; i++) {
        const keys = visibleKeys(i, lq, lk, causal);
        if (keys === 0) continue;
        const s = new Float64Array(keys);
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((q0 + i) * H + h) * D + d] * k[((k0 + j) * Hkv + kvh) * D + d];
          s[j] = scale * dot;
          max = Math.max(max, s[j]);
        }
        let sum = 0;
        for (let j = 0; j < keys; j++) sum += Math.exp(s[j] - max);
        lse[h * N + q0 + i] = max + Math.log(sum);
        for (let j = 0; j < keys; j++) {
          const p = Math.exp(s[j] - max) / sum;
          for (let d = 0; d < D; d++) o[((q0 + i) * H + h) * D + d] += p * v[((k0 + j) * Hkv + kvh) * D + d];
        }
      }
    }
  }
  return { o, lse };
}

export interface AttentionGradients {
  dq: Float64Array;  // [N, H, D]
  dk: Float64Array;  // [Nk, Hkv, D]
  dv: Float64Array;  // [Nk, Hkv, D]
}

/** The exact gradients of sum(o ∘ dO) for the forward above, by the chain rule through the softmax. */
export function attentionBackwardReference(input: AttentionReferenceInput, dO: ArrayLike<number>): AttentionGradients {
  const { q, k, v, cuSeqlens, numHeads: H, numKvHeads: Hkv, headDim: D } = input;
  const cuK = input.cuSeqlensK ?? cuSeqlens;
  const scale = Math.fround(input.scale ?? 1 / Math.sqrt(D));
  const causal = input.causal ?? true;
  const { o, lse } = attentionForwardReference(input);
  const N = cuSeqlens[cuSeqlens.length - 1];
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const qi = (t: number, h: number) => (t * H + h) * D, ki = (t: number, g: number) => (t * Hkv + g) * D;
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const q0 = cuSeqlens[b], lq = cuSeqlens[b + 1] - q0, k0 = cuK[b], lk = cuK[b + 1] - k0;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let i = 0; i < lq; i++) {
        const keys = visibleKeys(i, lq, lk, causal);
        let delta = 0;
        for (let d = 0; d < D; d++) delta += dO[qi(q0 + i, h) + d] * o[qi(q0 + i, h) + d];
        for (let j = 0; j < keys; j++) {
          let dot = 0, dp = 0;
          for (let d = 0; d < D; d++) {
            dot += q[qi(q0 + i, h) + d] * k[ki(k0 + j, g) + d];
            dp += dO[qi(q0 + i, h) + d] * v[ki(k0 + j, g) + d];
          }
          const p = Math.exp(scale * dot - lse[h * N + q0 + i]);
          const ds = p * (dp - delta);
          for (let d = 0; d < D; d++) {
            dv[ki(k0 + j, g) + d] += p * dO[qi(q0 + i, h) + d];
            dk[ki(k0 + j, g) + d] += scale * ds * q[qi(q0 + i, h) + d];
            dq[qi(q0 + i, h) + d] += scale * ds * k[ki(k0 + j, g) + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/**
 * Rotary position embedding in f64 (rotate-half): position = positionOffsets[b] (0 when absent) + index
 * within the sequence. `inverse` rotates
 * the other way, which is the gradient (the rotation is orthogonal). theta is used as given (f64).
 */
export function ropeReference(x: ArrayLike<number>, cuSeqlens: ArrayLike<number>, H: number, D: number,
  theta = 10000, inverse = false, positionOffsets?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length), half = D / 2;
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) {
      const p = (positionOffsets ? positionOffsets[b] : 0) + t - cuSeqlens[b];
      for (let h = 0; h < H; h++) {
        const at = (t * H + h) * D;
        for (let i = 0; i < half; i++) {
          const angle = p * theta ** (-2 * i / D);
          const c = Math.cos(angle), s = inverse ? -Math.sin(angle) : Math.sin(angle);
          y[at + i] = x[at + i] * c - x[at + i + half] * s;
          y[at + i + half] = x[at + i + half] * c + x[at + i] * s;
        }
      }
    }
  }
  return y;
}
