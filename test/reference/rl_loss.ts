// Float64 references for the RL objective kernels (native/core/kernels/rl_loss.h): the test oracle for
// every backend and the plain-TypeScript bench baseline. The decisions the header defines in f32 (the
// log-ratio difference, the log-space clip thresholds, the value-clip difference) are reproduced with
// Math.fround so that boundary cases agree exactly; everything else is f64.

export type KlEstimatorName = 'k1' | 'k2' | 'k3';
export type AggregationName = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';

const MAX_LOG_RATIO = 20;
const f32 = Math.fround;

const clampLogRatio = (d: number) => Math.min(MAX_LOG_RATIO, Math.max(-MAX_LOG_RATIO, d));
const gate = (d: number) => (d < -MAX_LOG_RATIO || d > MAX_LOG_RATIO ? 0 : 1);

/** Schulman's KL estimate from delta = logp - refLogp, clamped to [-clamp, clamp]; grad is d/d logp. */
export function klEstimateReference(estimator: KlEstimatorName, delta: number, clamp: number): { value: number; grad: number } {
  const d = clampLogRatio(delta), g = gate(delta);
  let value: number, grad: number;
  if (estimator === 'k1') [value, grad] = [d, g];
  else if (estimator === 'k2') [value, grad] = [0.5 * d * d, g * d];
  else [value, grad] = [Math.exp(-d) + d - 1, g * (1 - Math.exp(-d))];
  if (value > clamp) [value, grad] = [clamp, 0];
  if (value < -clamp) [value, grad] = [-clamp, 0];
  return { value, grad };
}

interface Aggregation {
  /** Weight of each token (0 on non-action tokens). */
  weights: Float64Array;
  actionTokens: number;
  activeSeqs: number;
}

function aggregationWeights(n: number, cuSeqlens: ArrayLike<number>, actionMask: ArrayLike<number> | undefined,
  mode: AggregationName, normalizer: number): Aggregation {
  const isAction = (t: number) => !actionMask || actionMask[t] !== 0;
  const seqActions: number[] = [];
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    let count = 0;
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) if (isAction(t)) count++;
    seqActions.push(count);
  }
  const actionTokens = seqActions.reduce((a, c) => a + c, 0);
  const activeSeqs = seqActions.filter((c) => c > 0).length;
  const weights = new Float64Array(n);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const k = seqActions[b];
    if (k === 0) continue;
    const w = mode === 'token-mean' ? 1 / actionTokens
      : mode === 'seq-mean-token-mean' ? 1 / (activeSeqs * k)
        : mode === 'seq-mean-token-sum' ? 1 / activeSeqs
          : 1 / (activeSeqs * normalizer);
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) if (isAction(t)) weights[t] = w;
  }
  return { weights, actionTokens, activeSeqs };
}

export interface PpoLossReferenceInput {
  logp: ArrayLike<number>;
  oldLogp: ArrayLike<number>;
  advantages: ArrayLike<number>;
  cuSeqlens: ArrayLike<number>;
  actionMask?: ArrayLike<number>;
  refLogp?: ArrayLike<number>;
  entropy?: ArrayLike<number>;
  clipLow?: number;
  clipHigh?: number;
  dualClip?: number;
  klCoef?: number;
  klEstimator?: KlEstimatorName;
  klClamp?: number;
  entropyCoef?: number;
  aggregation?: AggregationName;
  normalizer?: number;
}

export interface PpoLossReference {
  loss: number;
  dLogp: Float64Array;
  dEntropy: Float64Array;
  stats: {
    pgLoss: number; clipFrac: number; clipFracLower: number; approxKl: number; ratioMean: number; ratioMax: number;
    kl: number | null; entropy: number | null; actionTokens: number; activeSeqs: number;
  };
}

/** The PPO clipped policy loss, its gradients and its stats (rl_loss.h). */
export function ppoLossReference(input: PpoLossReferenceInput): PpoLossReference {
  const { logp, oldLogp, advantages, cuSeqlens, actionMask, refLogp, entropy } = input;
  const clipLow = input.clipLow ?? 0.2, clipHigh = input.clipHigh ?? clipLow;
  const dualClip = input.dualClip, klCoef = input.klCoef ?? 0, entropyCoef = input.entropyCoef ?? 0;
  const estimator = input.klEstimator ?? 'k3', klClamp = input.klClamp ?? 10;
  const n = logp.length;
  const { weights, actionTokens, activeSeqs } =
    aggregationWeights(n, cuSeqlens, actionMask, input.aggregation ?? 'token-mean', input.normalizer ?? 1);
  // The kernels' f32 thresholds, computed in f64 and rounded once.
  const lo = f32(1 - f32(clipLow)), hi = f32(1 + f32(clipHigh));
  const logLo = f32(Math.log1p(-f32(clipLow))), logHi = f32(Math.log1p(f32(clipHigh)));
  const logDual = dualClip !== undefined ? f32(Math.log(f32(dualClip))) : Infinity;
  const dual = dualClip !== undefined ? f32(dualClip) : 0;
  const dLogp = new Float64Array(n), dEntropy = new Float64Array(n);
  let loss = 0, pgLoss = 0, clipped = 0, dualClipped = 0, approxKl = 0, ratioSum = 0, ratioMax = 0, klSum = 0, entSum = 0;
  for (let t = 0; t < n; t++) {
    if (actionMask && !actionMask[t]) continue;
    const w = weights[t], adv = advantages[t];
    const delta = f32(logp[t] - oldLogp[t]);
    const logRatio = clampLogRatio(delta), ratio = Math.exp(logRatio);
    const high = adv > 0 && delta > logHi, low = adv < 0 && delta < logLo, isDual = adv < 0 && delta > logDual;
    const held = high || low || isDual;
    const pg = -adv * (isDual ? dual : low ? lo : high ? hi : ratio);
    let grad = held ? 0 : -adv * ratio * gate(delta);
    let term = pg;
    if (refLogp) {
      const k = klEstimateReference(estimator, f32(logp[t] - refLogp[t]), klClamp);
      term += klCoef * k.value;
      grad += klCoef * k.grad;
      klSum += k.value;
    }
    if (entropy) {
      term -= entropyCoef * entropy[t];
      dEntropy[t] = -w * entropyCoef;
      entSum += entropy[t];
    }
    dLogp[t] = w * grad;
    loss += w * term;
    pgLoss += w * pg;
    clipped += high || low ? 1 : 0;
    dualClipped += isDual ? 1 : 0;
    approxKl += ratio - 1 - logRatio;
    ratioSum += ratio;
    ratioMax = Math.max(ratioMax, ratio);
  }
  const mean = (x: number) => (actionTokens > 0 ? x / actionTokens : 0);
  return {
    loss, dLogp, dEntropy,
    stats: {
      pgLoss, clipFrac: mean(clipped), clipFracLower: mean(dualClipped), approxKl: mean(approxKl),
      ratioMean: mean(ratioSum), ratioMax, kl: refLogp ? mean(klSum) : null, entropy: entropy ? mean(entSum) : null,
      actionTokens, activeSeqs,
    },
  };
}

export interface ValueLossReferenceInput {
  values: ArrayLike<number>;
  oldValues: ArrayLike<number>;
  returns: ArrayLike<number>;
  actionMask?: ArrayLike<number>;
  cuSeqlens?: ArrayLike<number>;
  clipRange?: number;
  aggregation?: AggregationName;
  normalizer?: number;
}

/** The clipped value loss 0.5 * max((v - R)^2, (vc - R)^2), its gradient and clip fraction. */
export function valueLossReference(input: ValueLossReferenceInput) {
  const { values, oldValues, returns, actionMask } = input;
  const n = values.length;
  const clip = f32(input.clipRange ?? 0.2);
  const { weights, actionTokens, activeSeqs } = aggregationWeights(n, input.cuSeqlens ?? [0, n], actionMask,
    input.aggregation ?? 'token-mean', input.normalizer ?? 1);
  const dValues = new Float64Array(n);
  let loss = 0, clipped = 0;
  for (let t = 0; t < n; t++) {
    if (actionMask && !actionMask[t]) continue;
    const v = values[t], old = oldValues[t], ret = returns[t];
    const d = f32(v - old);
    const vc = d > clip ? old + clip : d < -clip ? old - clip : v;
    const err = v - ret, clippedErr = vc - ret;
    const isClipped = clippedErr * clippedErr > err * err;
    loss += weights[t] * 0.5 * (isClipped ? clippedErr * clippedErr : err * err);
    dValues[t] = isClipped ? 0 : weights[t] * err;
    clipped += isClipped ? 1 : 0;
  }
  return { loss, dValues, stats: { clipFrac: actionTokens > 0 ? clipped / actionTokens : 0, actionTokens, activeSeqs } };
}
