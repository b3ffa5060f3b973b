// Float64 references for the preference losses (native/core/kernels/preference.h): DPO and the InstructGPT
// K-wise ranking loss, as plain loops over pairs. The test oracle for every backend. beta and
// labelSmoothing are rounded to f32 first, as the kernels receive them; everything else is f64.

/** -log sigmoid(x) = log(1 + e^-x), without overflow for large |x|. */
function negLogSigmoid(x: number): number {
  return x >= 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export interface DpoReferenceInput {
  policyChosen: ArrayLike<number>;
  policyRejected: ArrayLike<number>;
  refChosen: ArrayLike<number>;
  refRejected: ArrayLike<number>;
  beta?: number;
  labelSmoothing?: number;
}

export interface DpoReference {
  loss: number;
  dPolicyChosen: Float64Array;
  dPolicyRejected: Float64Array;
  stats: { rewardAccuracy: number; rewardMargin: number; chosenReward: number; rejectedReward: number };
}

export function dpoLossReference(input: DpoReferenceInput): DpoReference {
  const beta = Math.fround(input.beta ?? 0.1);
  const ls = Math.fround(input.labelSmoothing ?? 0);
  const p = input.policyChosen.length;
  const out: DpoReference = {
    loss: 0,
    dPolicyChosen: new Float64Array(p),
    dPolicyRejected: new Float64Array(p),
    stats: { rewardAccuracy: 0, rewardMargin: 0, chosenReward: 0, rejectedReward: 0 },
  };
  if (p === 0) return out;
  let loss = 0, wins = 0, margin = 0, chosenSum = 0, rejectedSum = 0;
  for (let i = 0; i < p; i++) {
    const chosen = beta * (input.policyChosen[i] - input.refChosen[i]);
    const rejected = beta * (input.policyRejected[i] - input.refRejected[i]);
    const z = chosen - rejected;
    loss += (1 - ls) * negLogSigmoid(z) + (ls > 0 ? ls * negLogSigmoid(-z) : 0);
    const g = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z);  // d (pair loss) / dz
    out.dPolicyChosen[i] = (beta * g) / p;
    out.dPolicyRejected[i] = (-beta * g) / p;
    if (chosen > rejected) wins++;
    margin += z;
    chosenSum += chosen;
    rejectedSum += rejected;
  }
  out.loss = loss / p;
  out.stats = { rewardAccuracy: wins / p, rewardMargin: margin / p, chosenReward: chosenSum / p, rejectedReward: rejectedSum / p };
  return out;
}

export interface RankingReferenceInput {
  scores: ArrayLike<number>;
  offsets: ArrayLike<number>;
  ranks?: ArrayLike<number>;
}

export interface RankingReference {
  loss: number;
  dScores: Float64Array;
  stats: { accuracy: number; pairs: number; tiedPairs: number; rankedPrompts: number };
}

export function rankingLossReference(input: RankingReferenceInput): RankingReference {
  const { scores, offsets } = input;
  const rankOf = (j: number, start: number) => (input.ranks ? input.ranks[j] : j - start);
  const dScores = new Float64Array(scores.length);
  // A prompt counts when it has a non-tied pair (an all-tied prompt carries no preference).
  let rankedPrompts = 0;
  for (let p = 0; p + 1 < offsets.length; p++) {
    const ranks = Array.from({ length: offsets[p + 1] - offsets[p] }, (_, j) => rankOf(offsets[p] + j, offsets[p]));
    if (new Set(ranks).size >= 2) rankedPrompts++;
  }
  let loss = 0, pairs = 0, tiedPairs = 0, correct = 0;
  for (let p = 0; p + 1 < offsets.length; p++) {
    const start = offsets[p], k = offsets[p + 1] - start;
    if (k < 2) continue;
    const pairWeight = 1 / ((k * (k - 1)) / 2);
    let promptLoss = 0;
    for (let a = start; a < start + k; a++) {
      for (let b = a + 1; b < start + k; b++) {
        const ra = rankOf(a, start), rb = rankOf(b, start);
        if (ra === rb) {
          tiedPairs++;
          continue;
        }
        const [w, l] = ra < rb ? [a, b] : [b, a];
        const diff = scores[w] - scores[l];
        promptLoss += negLogSigmoid(diff);
        // d/d s_w of -log sigmoid(s_w - s_l) = -sigmoid(s_l - s_w); d/d s_l is its negation.
        const g = sigmoid(-diff) * pairWeight / rankedPrompts;
        dScores[w] -= g;
        dScores[l] += g;
        pairs++;
        if (diff > 0) correct++;
      }
    }
    loss += promptLoss * pairWeight;
  }
  return {
    loss: rankedPrompts > 0 ? loss / rankedPrompts : 0,
    dScores,
    stats: { accuracy: pairs > 0 ? correct / pairs : 0, pairs, tiedPairs, rankedPrompts },
  };
}
