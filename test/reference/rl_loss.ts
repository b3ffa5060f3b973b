// Float64 references for the RL objective kernels (native/core/kernels/rl_loss.h): the test oracle for
// every backend and the plain-TypeScript bench baseline.
//
// The header's hyperparameters are f32, so they are rounded with Math.fround first. The decisions the
// header defines in f32 (delta = logp - oldLogp, the log-space clip thresholds, the value clip on
// values - oldValues) are reproduced with Math.fround, so boundary cases agree exactly. Everything else is
// f64. Two decisions compare values the kernels compute in f32 and may therefore go either way within a
// few ulp (a KL estimate against klClamp, the two squared value errors): such tokens are reported as
// `ambiguous`, and the tests do not compare their gradients (the losses are continuous there).
//
// The *WithScales variants also return, per output, the sum of the magnitudes an f32 kernel rounds:
// a test bound is a small multiple of f32's epsilon times that scale, which stays meaningful under
// cancellation. The *Of* functions give the loss as a smooth function of logp or values (no f32
// rounding of the differences), for finite differences away from the clip boundaries.

export type KlEstimatorName = 'k1' | 'k2' | 'k3';
export type AggregationName = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';

const MAX_LOG_RATIO = 20;
/** Relative closeness (to the magnitudes involved) within which an f32 comparison may go either way. */
const AMBIGUITY = 1e-6;
const f32 = Math.fround;
const identity = (x: number) => x;

const clampLogRatio = (d: number) => Math.min(MAX_LOG_RATIO, Math.max(-MAX_LOG_RATIO, d));
const gate = (d: number) => (d < -MAX_LOG_RATIO || d > MAX_LOG_RATIO ? 0 : 1);

export interface KlEstimate {
  value: number;
  /** The estimate before the clamp. */
  unclamped: number;
  /** d value / d logp. */
  grad: number;
  /** Sum of the magnitudes of the value's terms (what an f32 evaluation rounds). */
  magnitude: number;
  /** The same for the gradient. */
  gradMagnitude: number;
}

/** Schulman's KL estimate from delta = logp - refLogp, clamped to [-clamp, clamp] (rl_math.h). */
export function klEstimateReference(estimator: KlEstimatorName, delta: number, clamp: number): KlEstimate {
  const d = clampLogRatio(delta), g = gate(delta);
  let k: KlEstimate;
  if (estimator === 'k1') k = { value: d, unclamped: d, grad: g, magnitude: Math.abs(d), gradMagnitude: g };
  else if (estimator === 'k2') {
    k = { value: 0.5 * d * d, unclamped: 0.5 * d * d, grad: g * d, magnitude: 0.5 * d * d, gradMagnitude: g * Math.abs(d) };
  } else {
    const e = Math.exp(-d);
    k = { value: e + d - 1, unclamped: e + d - 1, grad: g * (1 - e), magnitude: e + Math.abs(d) + 1, gradMagnitude: g * (1 + e) };
  }
  if (k.value > clamp) k = { ...k, value: clamp, grad: 0, gradMagnitude: 0 };
  if (k.value < -clamp) k = { ...k, value: -clamp, grad: 0, gradMagnitude: 0 };
  return k;
}

interface Aggregation {
  /** d loss / d l_t of every token (0 on non-action tokens). */
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

// ---- PPO policy loss ----------------------------------------------------------------------------

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

export interface PpoLossStatsReference {
  pgLoss: number; clipFrac: number; clipFracLower: number; approxKl: number; ratioMean: number; ratioMax: number;
  kl: number | null; entropy: number | null; actionTokens: number; activeSeqs: number;
}

export interface PpoLossReference {
  loss: number;
  dLogp: Float64Array;
  dEntropy: Float64Array;
  stats: PpoLossStatsReference;
}

export interface PpoErrorScales {
  /** Σ w·(|pg| + klCoef·|kl terms| + entropyCoef·|H|). */
  loss: number;
  pgLoss: number;
  /** Per token: w·(|A|·r when unclipped + klCoef·|kl gradient terms|); 0 means the gradient is exactly 0. */
  dLogp: Float64Array;
  /** Token means of the magnitudes behind each mean stat. */
  approxKl: number;
  ratio: number;
  kl: number;
  entropy: number;
  /** 1 on tokens whose KL estimate is within a few ulp of ±klClamp. */
  ambiguous: Uint8Array;
  ambiguousCount: number;
}

function ppoCore(input: PpoLossReferenceInput, logp: ArrayLike<number>, round: (x: number) => number, withScales: boolean) {
  const { oldLogp, advantages, cuSeqlens, actionMask, refLogp, entropy } = input;
  const clipLow = f32(input.clipLow ?? 0.2), clipHigh = f32(input.clipHigh ?? clipLow);
  const klCoef = f32(input.klCoef ?? 0), entropyCoef = f32(input.entropyCoef ?? 0);
  const estimator = input.klEstimator ?? 'k3', klClamp = f32(input.klClamp ?? 10);
  const n = logp.length;
  const { weights, actionTokens, activeSeqs } =
    aggregationWeights(n, cuSeqlens, actionMask, input.aggregation ?? 'token-mean', input.normalizer ?? 1);
  // The header's PpoThresholds: computed in f64 from the f32 hyperparameters and rounded once.
  const lo = f32(1 - clipLow), hi = f32(1 + clipHigh);
  const logLo = f32(Math.log1p(-clipLow)), logHi = f32(Math.log1p(clipHigh));
  const dual = input.dualClip !== undefined ? f32(input.dualClip) : 0;
  const logDual = dual > 1 ? f32(Math.log(dual)) : Infinity;
  const dLogp = new Float64Array(n), dEntropy = new Float64Array(n);
  const scaleDLogp = new Float64Array(withScales ? n : 0), ambiguous = new Uint8Array(withScales ? n : 0);
  let loss = 0, pgLoss = 0, clipped = 0, dualClipped = 0, approxKl = 0, ratioSum = 0, ratioMax = 0, klSum = 0, entSum = 0;
  let lossScale = 0, pgScale = 0, approxKlScale = 0, klScale = 0, entScale = 0, ambiguousCount = 0;
  for (let t = 0; t < n; t++) {
    if (actionMask && !actionMask[t]) continue;
    const w = weights[t], adv = advantages[t];
    const delta = round(logp[t] - oldLogp[t]);
    const logRatio = clampLogRatio(delta), ratio = Math.exp(logRatio);
    const high = adv > 0 && delta > logHi, low = adv < 0 && delta < logLo, isDual = adv < 0 && delta > logDual;
    const held = high || low || isDual;
    const pg = -adv * (isDual ? dual : low ? lo : high ? hi : ratio);
    const pgGrad = held ? 0 : -adv * ratio * gate(delta);
    let term = pg, grad = pgGrad, termScale = Math.abs(pg), gradScale = Math.abs(pgGrad);
    if (refLogp) {
      const k = klEstimateReference(estimator, round(logp[t] - refLogp[t]), klClamp);
      term += klCoef * k.value;
      grad += klCoef * k.grad;
      klSum += k.value;
      termScale += klCoef * k.magnitude;
      gradScale += klCoef * k.gradMagnitude;
      klScale += k.magnitude;
      if (withScales && estimator !== 'k1' && Math.abs(Math.abs(k.unclamped) - klClamp) <= AMBIGUITY * k.magnitude) {
        ambiguous[t] = 1;
        ambiguousCount++;
      }
    }
    if (entropy) {
      term -= entropyCoef * entropy[t];
      dEntropy[t] = -w * entropyCoef;
      entSum += entropy[t];
      termScale += entropyCoef * Math.abs(entropy[t]);
      entScale += Math.abs(entropy[t]);
    }
    dLogp[t] = w * grad;
    loss += w * term;
    pgLoss += w * pg;
    clipped += high || low ? 1 : 0;
    dualClipped += isDual ? 1 : 0;
    approxKl += ratio - 1 - logRatio;
    ratioSum += ratio;
    ratioMax = Math.max(ratioMax, ratio);
    if (withScales) {
      scaleDLogp[t] = w * gradScale;
      lossScale += w * termScale;
      pgScale += w * Math.abs(pg);
      approxKlScale += ratio + 1 + Math.abs(logRatio);
    }
  }
  const mean = (x: number) => (actionTokens > 0 ? x / actionTokens : 0);
  const reference: PpoLossReference = {
    loss, dLogp, dEntropy,
    stats: {
      pgLoss, clipFrac: mean(clipped), clipFracLower: mean(dualClipped), approxKl: mean(approxKl),
      ratioMean: mean(ratioSum), ratioMax, kl: refLogp ? mean(klSum) : null, entropy: entropy ? mean(entSum) : null,
      actionTokens, activeSeqs,
    },
  };
  const scales: PpoErrorScales = {
    loss: lossScale, pgLoss: pgScale, dLogp: scaleDLogp, approxKl: mean(approxKlScale), ratio: mean(ratioSum),
    kl: mean(klScale), entropy: mean(entScale), ambiguous, ambiguousCount,
  };
  return { reference, scales };
}

/** The PPO clipped policy loss, its gradients and its stats (rl_loss.h). */
export function ppoLossReference(input: PpoLossReferenceInput): PpoLossReference {
  return ppoCore(input, input.logp, f32, false).reference;
}

/** ppoLossReference plus the error scales of each output, for test tolerances. */
export function ppoLossWithScales(input: PpoLossReferenceInput): PpoLossReference & { scales: PpoErrorScales } {
  const { reference, scales } = ppoCore(input, input.logp, f32, true);
  return { ...reference, scales };
}

/**
 * The loss as a function of logp (f64, the log-ratios not rounded to f32): smooth wherever no token is
 * near a clip threshold, the ±20 log-ratio clamp or the KL clamp. For finite differences.
 */
export function ppoLossOfLogp(input: PpoLossReferenceInput): (logp: ArrayLike<number>) => number {
  return (logp) => ppoCore(input, logp, identity, false).reference.loss;
}

// ---- Value loss ---------------------------------------------------------------------------------

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

export interface ValueLossReference {
  loss: number;
  dValues: Float64Array;
  stats: { clipFrac: number; actionTokens: number; activeSeqs: number };
}

export interface ValueErrorScales {
  /** Σ w·(½e² + |e|·(|v| + |old| + clipRange + |R|)), e the chosen error: f32 rounds the operands of e. */
  loss: number;
  /** Per token w·|v - R| (0 where the gradient is exactly 0). */
  dValues: Float64Array;
  /** 1 on value-clipped tokens whose two squared errors are within a few ulp of each other. */
  ambiguous: Uint8Array;
  ambiguousCount: number;
}

function valueCore(input: ValueLossReferenceInput, values: ArrayLike<number>, round: (x: number) => number, withScales: boolean) {
  const { oldValues, returns, actionMask } = input;
  const n = values.length;
  const clip = f32(input.clipRange ?? 0.2);
  const { weights, actionTokens, activeSeqs } = aggregationWeights(n, input.cuSeqlens ?? [0, n], actionMask,
    input.aggregation ?? 'token-mean', input.normalizer ?? 1);
  const dValues = new Float64Array(n);
  const scaleDValues = new Float64Array(withScales ? n : 0), ambiguous = new Uint8Array(withScales ? n : 0);
  let loss = 0, clipped = 0, lossScale = 0, ambiguousCount = 0;
  for (let t = 0; t < n; t++) {
    if (actionMask && !actionMask[t]) continue;
    const v = values[t], old = oldValues[t], ret = returns[t];
    const d = round(v - old);
    const valueClipped = d > clip || d < -clip;
    const vc = d > clip ? old + clip : d < -clip ? old - clip : v;
    const err = v - ret, clippedErr = vc - ret;
    const isClipped = clippedErr * clippedErr > err * err;
    const chosen = isClipped ? clippedErr : err;
    loss += weights[t] * 0.5 * chosen * chosen;
    dValues[t] = isClipped ? 0 : weights[t] * err;
    clipped += isClipped ? 1 : 0;
    if (withScales) {
      const operands = Math.abs(v) + Math.abs(old) + (valueClipped ? clip : 0) + Math.abs(ret);
      lossScale += weights[t] * (0.5 * chosen * chosen + Math.abs(chosen) * operands);
      scaleDValues[t] = isClipped ? 0 : weights[t] * Math.abs(err);
      if (valueClipped && Math.abs(Math.abs(clippedErr) - Math.abs(err)) <= AMBIGUITY * operands) {
        ambiguous[t] = 1;
        ambiguousCount++;
      }
    }
  }
  const reference: ValueLossReference = {
    loss, dValues, stats: { clipFrac: actionTokens > 0 ? clipped / actionTokens : 0, actionTokens, activeSeqs },
  };
  const scales: ValueErrorScales = { loss: lossScale, dValues: scaleDValues, ambiguous, ambiguousCount };
  return { reference, scales };
}

/** The clipped value loss 0.5 * max((v - R)^2, (vc - R)^2), its gradient and clip fraction (rl_loss.h). */
export function valueLossReference(input: ValueLossReferenceInput): ValueLossReference {
  return valueCore(input, input.values, f32, false).reference;
}

/** valueLossReference plus the error scales of each output, for test tolerances. */
export function valueLossWithScales(input: ValueLossReferenceInput): ValueLossReference & { scales: ValueErrorScales } {
  const { reference, scales } = valueCore(input, input.values, f32, true);
  return { ...reference, scales };
}

/** The value loss as a smooth function of values (f64, away from the clip kinks), for finite differences. */
export function valueLossOfValues(input: ValueLossReferenceInput): (values: ArrayLike<number>) => number {
  return (values) => valueCore(input, values, identity, false).reference.loss;
}
