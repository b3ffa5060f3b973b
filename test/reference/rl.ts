// Float64 reference implementations of the RL advantage kernels: the test oracle for every backend,
// and the plain-TypeScript baseline the bench compares against. Written for clarity, not speed.

export interface GaeReferenceInput {
  rewards: ArrayLike<number>;
  values: ArrayLike<number>;
  cuSeqlens: ArrayLike<number>;
  actionMask?: ArrayLike<number>;
  bootstrap?: ArrayLike<number>;
  gamma: number;
  lambda: number;
}

/** GAE over packed sequences, verl's rule: non-action tokens are skipped and get 0. */
export function gaeReference(input: GaeReferenceInput): { advantages: Float64Array; returns: Float64Array } {
  const { rewards, values, cuSeqlens, actionMask, bootstrap, gamma, lambda } = input;
  const n = rewards.length;
  const advantages = new Float64Array(n);
  const returns = new Float64Array(n);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    let nextValue = bootstrap ? bootstrap[b] : 0;
    let nextAdvantage = 0;
    for (let t = cuSeqlens[b + 1] - 1; t >= cuSeqlens[b]; t--) {
      if (actionMask && !actionMask[t]) continue;
      const delta = rewards[t] + gamma * nextValue - values[t];
      nextAdvantage = delta + gamma * lambda * nextAdvantage;
      nextValue = values[t];
      advantages[t] = nextAdvantage;
      returns[t] = nextAdvantage + values[t];
    }
  }
  return { advantages, returns };
}

export interface WhitenReferenceOptions {
  mask?: ArrayLike<number>;
  shiftMean?: boolean;
  unbiased?: boolean;
  eps?: number;
}

/** Masked whitening: (x - mean) / sqrt(var + eps), mean added back unless shiftMean; masked-out -> 0. */
export function whitenReference(x: ArrayLike<number>, options: WhitenReferenceOptions = {}): Float64Array {
  const { mask, shiftMean = true, unbiased = true, eps = 1e-8 } = options;
  const counted = (i: number) => !mask || mask[i] !== 0;
  let count = 0;
  let sum = 0;
  for (let i = 0; i < x.length; i++) if (counted(i)) { count++; sum += x[i]; }
  const mean = count > 0 ? sum / count : 0;
  let squares = 0;
  for (let i = 0; i < x.length; i++) if (counted(i)) squares += (x[i] - mean) ** 2;
  const divisor = unbiased ? count - 1 : count;
  const variance = divisor > 0 ? squares / divisor : 0;
  const scale = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    if (counted(i)) out[i] = (x[i] - mean) * scale + (shiftMean ? 0 : mean);
  }
  return out;
}
