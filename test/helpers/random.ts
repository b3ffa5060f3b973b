// Seeded random test data. Every kernel test draws its inputs from here, so a failure can be replayed
// from its seed, and no test ever runs on zeros or constants (DESIGN.md, "Testing").

/** A seeded uniform generator (mulberry32: 32-bit state, good enough for test data, not for crypto). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi] (both ends included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Random f32 values, uniform in [lo, hi). */
export function randomF32(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(lo, hi);
  return out;
}

/** A random u8 mask where each entry is 1 with probability p. */
export function randomMask(rng: Rng, n: number, p = 0.5): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.chance(p) ? 1 : 0;
  return out;
}

/** An f32-representable hyperparameter in (lo, hi), so the f32 kernel and the f64 reference agree on it. */
export function randomUnit(rng: Rng, lo = 0.5, hi = 1): number {
  return Math.fround(rng.uniform(lo, hi));
}

/** cu_seqlens (i32[B+1], starting at 0) for the given sequence lengths. */
export function cuSeqlensOf(lengths: readonly number[]): Int32Array {
  const cu = new Int32Array(lengths.length + 1);
  for (let b = 0; b < lengths.length; b++) cu[b + 1] = cu[b] + lengths[b];
  return cu;
}

/** B random sequence lengths in [0, maxLen], always including a 0 and a 1 when B >= 2. */
export function randomLengths(rng: Rng, count: number, maxLen: number): number[] {
  const lengths = Array.from({ length: count }, () => rng.int(0, maxLen));
  if (count >= 2) {
    const zero = rng.int(0, count - 1);
    lengths[zero] = 0;
    lengths[(zero + rng.int(1, count - 1)) % count] = 1;
  }
  return lengths;
}

/**
 * How the action mask of a batch is laid out:
 * - 'omitted': no mask at all (every token is an action);
 * - 'all-ones': a mask that is present but marks every token;
 * - 'prompt-response': each sequence is a random-length prompt (0) followed by its response (1);
 * - 'interleaved': random 0/1 anywhere;
 * - 'all-masked': a mask of zeros only (no action anywhere).
 */
export type MaskKind = 'omitted' | 'all-ones' | 'prompt-response' | 'interleaved' | 'all-masked';

export interface PackedBatch {
  rewards: Float32Array;
  values: Float32Array;
  cuSeqlens: Int32Array;
  actionMask?: Uint8Array;
  bootstrap?: Float32Array;
}

export interface PackedBatchSpec {
  lengths: readonly number[];
  mask: MaskKind;
  bootstrap: boolean;
  /** Rewards are uniform in [-rewardScale, rewardScale). Values are always uniform in [-1, 1). */
  rewardScale?: number;
}

function actionMaskFor(rng: Rng, kind: MaskKind, cuSeqlens: Int32Array): Uint8Array | undefined {
  const n = cuSeqlens[cuSeqlens.length - 1];
  switch (kind) {
    case 'omitted':
      return undefined;
    case 'all-ones':
      return new Uint8Array(n).fill(1);
    case 'all-masked':
      return new Uint8Array(n);
    case 'interleaved':
      return randomMask(rng, n, 0.6);
    case 'prompt-response': {
      const mask = new Uint8Array(n);
      for (let b = 0; b + 1 < cuSeqlens.length; b++) {
        const start = cuSeqlens[b];
        const end = cuSeqlens[b + 1];
        mask.fill(1, rng.int(start, end), end);
      }
      return mask;
    }
  }
}

/** A random packed batch of sequences with the given lengths, mask layout and bootstrap choice. */
export function randomPackedBatch(rng: Rng, spec: PackedBatchSpec): PackedBatch {
  const cuSeqlens = cuSeqlensOf(spec.lengths);
  const n = cuSeqlens[cuSeqlens.length - 1];
  const scale = spec.rewardScale ?? 1;
  const batch: PackedBatch = {
    rewards: randomF32(rng, n, -scale, scale),
    values: randomF32(rng, n),
    cuSeqlens,
  };
  const actionMask = actionMaskFor(rng, spec.mask, cuSeqlens);
  if (actionMask) batch.actionMask = actionMask;
  if (spec.bootstrap) batch.bootstrap = randomF32(rng, spec.lengths.length);
  return batch;
}

/** Random values to whiten, offset and scaled so that mean and variance are far from 0 and 1. */
export function randomWhitenInput(rng: Rng, n: number): Float32Array {
  const center = rng.uniform(-5, 5);
  const spread = rng.uniform(0.5, 3);
  return randomF32(rng, n, center - spread, center + spread);
}

export type DType = 'f32' | 'i32' | 'u8';

/** Random contents for a tensor of the given dtype: f32 in [-1, 1), any i32, any u8. */
export function randomOfDtype(rng: Rng, dtype: DType, n: number): Float32Array | Int32Array | Uint8Array {
  switch (dtype) {
    case 'f32':
      return randomF32(rng, n);
    case 'i32':
      return Int32Array.from({ length: n }, () => rng.int(-(2 ** 31), 2 ** 31 - 1));
    case 'u8':
      return Uint8Array.from({ length: n }, () => rng.int(0, 255));
  }
}

/** The MaskKind layouts, plus 'prompt-response-padding': prompt (0), response (1), trailing padding (0). */
export type ActionMaskKind = MaskKind | 'prompt-response-padding';

/** An action mask of the given layout for a packed batch; in 'prompt-response-padding' any part may be empty. */
export function randomActionMask(rng: Rng, kind: ActionMaskKind, cuSeqlens: Int32Array): Uint8Array | undefined {
  if (kind !== 'prompt-response-padding') return actionMaskFor(rng, kind, cuSeqlens);
  const mask = new Uint8Array(cuSeqlens[cuSeqlens.length - 1]);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const responseStart = rng.int(cuSeqlens[b], cuSeqlens[b + 1]);
    mask.fill(1, responseStart, rng.int(responseStart, cuSeqlens[b + 1]));
  }
  return mask;
}

/** The f32 next to x on the side away from zero (one ulp farther out). */
export function f32AwayFromZero(x: number): number {
  const a = new Float32Array([x]);
  new Int32Array(a.buffer)[0] += 1;
  return a[0];
}

/** f32 values (a, b), a random in [lo, hi), whose f32 difference b - a is exactly `difference` (an f32). */
export function f32PairWithDifference(rng: Rng, difference: number, lo = -1, hi = 0.25): [number, number] {
  for (let attempt = 0; attempt < 100_000; attempt++) {
    const a = Math.fround(rng.uniform(lo, hi));
    for (const b of [Math.fround(a + difference), f32AwayFromZero(Math.fround(a + difference))])
      if (Math.fround(b - a) === difference) return [a, b];
  }
  throw new Error(`no f32 pair in [${lo}, ${hi}) has the difference ${difference}`);
}
