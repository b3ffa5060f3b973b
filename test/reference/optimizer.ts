// Float64 references of the optimizer kernels (native/core/kernels/optimizer.h): one AdamW step as
// torch.optim.AdamW, and the global L2 norm with clip_grad_norm_'s scaling. Inputs are f32 arrays; the
// math runs in f64 from them, with the hyperparameters as the kernels receive them (beta1, beta2 and eps
// rounded to f32).

export interface AdamwProblem {
  params: Float32Array;
  grads: Float32Array;
  m: Float32Array;
  v: Float32Array;
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export function adamwReference(p: AdamwProblem): { params: Float64Array; m: Float64Array; v: Float64Array } {
  const b1 = Math.fround(p.beta1), b2 = Math.fround(p.beta2), eps = Math.fround(p.eps);
  const n = p.params.length;
  const params = new Float64Array(n), m = new Float64Array(n), v = new Float64Array(n);
  const bc1 = 1 - b1 ** p.step, bc2 = 1 - b2 ** p.step;
  for (let i = 0; i < n; i++) {
    const g = p.grads[i];
    m[i] = b1 * p.m[i] + (1 - b1) * g;
    v[i] = b2 * p.v[i] + (1 - b2) * g * g;
    params[i] = p.params[i] * (1 - p.lr * p.weightDecay) - (p.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
  }
  return { params, m, v };
}

export function gradNormReference(grads: Float32Array, maxNorm?: number): { norm: number; scale: number; grads: Float64Array } {
  let sum = 0;
  for (let i = 0; i < grads.length; i++) sum += grads[i] * grads[i];
  const norm = Math.sqrt(sum);
  const scale = maxNorm !== undefined && Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { norm, scale, grads: Float64Array.from(grads, (g) => g * scale) };
}
