// Float64 references of the decoder-layer kernels (native/core/kernels/layers.h): RMSNorm (HF
// LlamaRMSNorm) and its gradients, SwiGLU and its gradient, the embedding gather and scatter-add, and
// axpby. Inputs are f32 arrays (row-major); the math runs in f64 from them, eps as the kernel receives it
// (rounded to f32).

export function rmsnormReference(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number): { y: Float64Array; rstd: Float64Array } {
  const d = weight.length, n = x.length / d, e = Math.fround(eps);
  const y = new Float64Array(n * d), rstd = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += x[r * d + j] ** 2;
    rstd[r] = 1 / Math.sqrt(sum / d + e);
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * rstd[r] * weight[j];
  }
  return { y, rstd };
}

/**
 * The gradients of rmsnorm at (x, weight) for the upstream gradient dy, with rstd recomputed in f64 (the
 * kernel takes the forward's f32 rstd; the tests pass that to rstdGiven to match it).
 */
export function rmsnormBackwardReference(x: ArrayLike<number>, weight: ArrayLike<number>, dy: ArrayLike<number>, eps: number,
  rstdGiven?: ArrayLike<number>): { dx: Float64Array; dWeight: Float64Array } {
  const d = weight.length, n = x.length / d;
  const rstd = rstdGiven ?? rmsnormReference(x, weight, eps).rstd;
  const dx = new Float64Array(n * d), dWeight = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const s = rstd[r];
    let dot = 0;
    for (let j = 0; j < d; j++) dot += dy[r * d + j] * weight[j] * x[r * d + j];
    const coef = s ** 3 * dot / d;
    for (let j = 0; j < d; j++) {
      dx[r * d + j] = s * dy[r * d + j] * weight[j] - coef * x[r * d + j];
      dWeight[j] += dy[r * d + j] * x[r * d + j] * s;
    }
  }
  return { dx, dWeight };
}

/** silu(g) = g sigmoid(g), stable for any finite g. */
export function siluReference(g: number): number {
  return g >= 0 ? g / (1 + Math.exp(-g)) : (g * Math.exp(g)) / (1 + Math.exp(g));
}

function sigmoidReference(g: number): number {
  return g >= 0 ? 1 / (1 + Math.exp(-g)) : Math.exp(g) / (1 + Math.exp(g));
}

export function swigluReference(gateUp: ArrayLike<number>, f: number): Float64Array {
  const n = gateUp.length / (2 * f);
  const h = new Float64Array(n * f);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) h[r * f + j] = siluReference(gateUp[r * 2 * f + j]) * gateUp[r * 2 * f + f + j];
  return h;
}

export function swigluBackwardReference(gateUp: ArrayLike<number>, dh: ArrayLike<number>, f: number): Float64Array {
  const n = gateUp.length / (2 * f);
  const d = new Float64Array(n * 2 * f);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) {
      const g = gateUp[r * 2 * f + j], up = gateUp[r * 2 * f + f + j], s = sigmoidReference(g);
      d[r * 2 * f + j] = dh[r * f + j] * up * s * (1 + g * (1 - s));
      d[r * 2 * f + f + j] = dh[r * f + j] * siluReference(g);
    }
  return d;
}

export function embeddingReference(ids: ArrayLike<number>, table: ArrayLike<number>, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) out[t * dim + j] = table[ids[t] * dim + j];
  return out;
}

export function embeddingBackwardReference(ids: ArrayLike<number>, dOut: ArrayLike<number>, dTable: ArrayLike<number>, dim: number): Float64Array {
  const out = Float64Array.from(dTable);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) out[ids[t] * dim + j] += dOut[t * dim + j];
  return out;
}

export function axpbyReference(x: ArrayLike<number>, y: ArrayLike<number>, alpha: number, beta: number): Float64Array {
  const a = Math.fround(alpha), b = Math.fround(beta);
  return Float64Array.from(y, (v, i) => (b === 0 ? a * x[i] : a * x[i] + b * v));
}
