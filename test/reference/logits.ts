// Float64 references for the logit kernels (native/core/kernels/logits.h): the test oracle for every
// backend and the plain-TypeScript bench baseline. z = x / T exactly in f64 (the kernels multiply by
// f32(1/T), a relative 6e-8 away); T is the f32 the kernels see (Math.fround of the scalar option).
//
// Alongside each output the references return error scales: the magnitudes an f32 kernel rounds for it
// (for example |z_y - z_max| + log d for a log-prob), so a test bound is a small multiple of f32's
// epsilon times the scale, meaningful at any |z|. Gradient scales include the factor (1 + |z_i| + |lse|):
// the kernels recompute log p_i = z_i - lse from the f32 lse, which costs an ulp of those magnitudes.

export interface LogitsRows {
  /** [N * V] row-major. */
  logits: ArrayLike<number>;
  vocabSize: number;
  temperature?: number;
  temperatures?: ArrayLike<number>;
}

// f32 holds nothing below 2^-126 (results there flush to 0 or keep few bits), so gradient scales are at
// least 2^-100: times the tests' relative bounds (~2^-18) that admits any error below f32's normal range.
const F32_FLOOR = 2 ** -100;
const finite = (z: number) => (Number.isFinite(z) ? Math.abs(z) : 0);

const rowsOf = (x: LogitsRows) => (x.vocabSize > 0 ? x.logits.length / x.vocabSize : 0);
const temperatureOf = (x: LogitsRows, r: number) => (x.temperatures ? x.temperatures[r] : Math.fround(x.temperature ?? 1));

/** One row's softmax in f64: z = x / T, its max, log d = log sum e^(z - max), lse, and log p. */
export interface RowSoftmax {
  z: Float64Array;
  zMax: number;
  logD: number;
  lse: number;
  /** log p_i = z_i - lse (-Infinity for masked entries). */
  logp: Float64Array;
  /** -sum p log p (masked entries contribute 0). */
  entropy: number;
}

export function rowSoftmax(row: ArrayLike<number>, temperature: number): RowSoftmax {
  const z = Float64Array.from(row, (v) => v / temperature);
  let zMax = -Infinity;
  for (const v of z) zMax = Math.max(zMax, v);
  let d = 0;
  for (const v of z) d += Math.exp(v - zMax);
  const logD = Math.log(d), lse = zMax + logD;
  const logp = z.map((v) => (v - zMax) - logD);
  let entropy = 0;
  for (const lp of logp) if (lp > -Infinity) entropy -= Math.exp(lp) * lp;
  return { z, zMax, logD, lse, logp, entropy };
}

function rowOf(x: ArrayLike<number>, r: number, v: number): ArrayLike<number> {
  return Array.prototype.slice.call(x, r * v, (r + 1) * v) as number[];
}

export function logprobEntropyReference(x: LogitsRows & { targets: ArrayLike<number> }) {
  const n = rowsOf(x);
  const logp = new Float64Array(n), entropy = new Float64Array(n), lse = new Float64Array(n);
  const scales = { logp: new Float64Array(n), entropy: new Float64Array(n), lse: new Float64Array(n) };
  for (let r = 0; r < n; r++) {
    const s = rowSoftmax(rowOf(x.logits, r, x.vocabSize), temperatureOf(x, r));
    const y = x.targets[r];
    logp[r] = s.logp[y];
    entropy[r] = s.entropy;
    lse[r] = s.lse;
    scales.logp[r] = 1 + Math.abs(s.z[y] - s.zMax) + s.logD;
    scales.entropy[r] = 1 + s.entropy;
    scales.lse[r] = 1 + Math.abs(s.zMax) + s.logD;
  }
  return { logp, entropy, lse, scales };
}

/** d/dx of sum_r gLogp[r] logp[r] + gEntropy[r] H[r]. */
export function logprobEntropyBackwardReference(x: LogitsRows & {
  targets: ArrayLike<number>; gLogp: ArrayLike<number>; gEntropy: ArrayLike<number>;
}) {
  const n = rowsOf(x), v = x.vocabSize;
  const dLogits = new Float64Array(n * v), scale = new Float64Array(n * v);
  for (let r = 0; r < n; r++) {
    const t = temperatureOf(x, r);
    const s = rowSoftmax(rowOf(x.logits, r, v), t);
    const gL = x.gLogp[r], gH = x.gEntropy[r];
    for (let i = 0; i < v; i++) {
      const lp = s.logp[i], p = Math.exp(lp), onehot = i === x.targets[r] ? 1 : 0;
      const entTerm = p > 0 ? p * (lp + s.entropy) : 0;
      dLogits[r * v + i] = (gL * (onehot - p) - gH * entTerm) / t;
      const mag = (Math.abs(gL) * (onehot + p) + Math.abs(gH) * (p > 0 ? p * (Math.abs(lp) + s.entropy + 1) : 0)) / t;
      scale[r * v + i] = mag * (1 + finite(s.z[i]) + Math.abs(s.lse)) + F32_FLOOR;
    }
  }
  return { dLogits, scale };
}

/** Mean over unmasked rows of lse - x_y (T = 1), and (p - onehot) / count on unmasked rows. */
export function crossEntropyReference(x: { logits: ArrayLike<number>; vocabSize: number; targets: ArrayLike<number>;
  mask?: ArrayLike<number> }) {
  const n = rowsOf(x), v = x.vocabSize;
  let count = 0;
  for (let r = 0; r < n; r++) if (!x.mask || x.mask[r] !== 0) count++;
  const dLogits = new Float64Array(n * v), scale = new Float64Array(n * v);
  let sum = 0, lossScale = 0;
  for (let r = 0; r < n; r++) {
    if (x.mask && x.mask[r] === 0) continue;
    const s = rowSoftmax(rowOf(x.logits, r, v), 1);
    const y = x.targets[r];
    sum -= s.logp[y];
    lossScale += 1 + Math.abs(s.z[y] - s.zMax) + s.logD;
    for (let i = 0; i < v; i++) {
      const p = Math.exp(s.logp[i]), onehot = i === y ? 1 : 0;
      dLogits[r * v + i] = (p - onehot) / count;
      scale[r * v + i] = ((p + onehot) / count) * (1 + finite(s.z[i] - s.zMax) + s.logD) + F32_FLOOR;
    }
  }
  return { loss: count > 0 ? sum / count : 0, count, dLogits, scale, lossScale: count > 0 ? lossScale / count : 0 };
}

/** KL(p || q) per row, p = softmax(logits / T), q = softmax(refLogits / T). */
export function klDivergenceReference(x: LogitsRows & { refLogits: ArrayLike<number> }) {
  const n = rowsOf(x), v = x.vocabSize;
  const kl = new Float64Array(n), lse = new Float64Array(n), refLse = new Float64Array(n);
  const scales = { kl: new Float64Array(n), lse: new Float64Array(n), refLse: new Float64Array(n) };
  for (let r = 0; r < n; r++) {
    const t = temperatureOf(x, r);
    const p = rowSoftmax(rowOf(x.logits, r, v), t), q = rowSoftmax(rowOf(x.refLogits, r, v), t);
    let sum = 0, magnitude = 0;
    for (let i = 0; i < v; i++) {
      if (p.logp[i] === -Infinity) continue;
      const pi = Math.exp(p.logp[i]);
      sum += pi * (p.logp[i] - q.logp[i]);
      magnitude += pi * (Math.abs(p.z[i] - p.zMax) + Math.abs(q.z[i] - q.zMax));
    }
    kl[r] = sum;
    lse[r] = p.lse;
    refLse[r] = q.lse;
    scales.kl[r] = 1 + magnitude + p.logD + q.logD;
    scales.lse[r] = 1 + Math.abs(p.zMax) + p.logD;
    scales.refLse[r] = 1 + Math.abs(q.zMax) + q.logD;
  }
  return { kl, lse, refLse, scales };
}

/** d/dx of sum_r gKl[r] KL[r] with respect to the policy logits. */
export function klDivergenceBackwardReference(x: LogitsRows & { refLogits: ArrayLike<number>; gKl: ArrayLike<number> }) {
  const n = rowsOf(x), v = x.vocabSize;
  const dLogits = new Float64Array(n * v), scale = new Float64Array(n * v);
  const { kl } = klDivergenceReference(x);
  for (let r = 0; r < n; r++) {
    const t = temperatureOf(x, r);
    const p = rowSoftmax(rowOf(x.logits, r, v), t), q = rowSoftmax(rowOf(x.refLogits, r, v), t);
    for (let i = 0; i < v; i++) {
      const lp = p.logp[i], lq = q.logp[i], pi = Math.exp(lp);
      scale[r * v + i] = F32_FLOOR;
      if (pi === 0) continue;
      dLogits[r * v + i] = (x.gKl[r] / t) * pi * (lp - lq - kl[r]);
      scale[r * v + i] += (Math.abs(x.gKl[r]) / t) * pi * (Math.abs(lp) + Math.abs(lq) + Math.abs(kl[r]) + 1) *
        (1 + Math.abs(p.z[i]) + Math.abs(p.lse) + Math.abs(q.z[i]) + Math.abs(q.lse));
    }
  }
  return { dLogits, scale };
}
