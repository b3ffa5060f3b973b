// Reference sampler (native/core/kernels/sampling.h): the test oracle for every backend and the bench's
// plain-TypeScript baseline is separate (bench/sampling.bench.ts).
//
// The kernels' tokens are exact by construction, so this reference reproduces the per-token f32 values
// bit for bit: Math.fround gives correctly rounded f32 +, -, *, / (double has enough spare bits), and
// fmaf is emulated exactly (an exact product, then a round-to-odd sum before the f32 rounding). The
// support rules are computed independently of the kernels' radix selects: by sorting the values. The
// draw uses Philox4x32-10 in BigInt. logpPlain is float64 throughout.

const f32 = Math.fround;
const TWO_31 = 2 ** 31;
const f64Bits = new Float64Array(1);
const u64Bits = new BigUint64Array(f64Bits.buffer);
const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** f32 fused multiply-add, correctly rounded, for f32 inputs. */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;  // exact: two 24-bit significands
  const s = p + c;
  if (!Number.isFinite(s)) return f32(s);
  const bb = s - p;
  const err = (p - (s - bb)) + (c - bb);  // TwoSum: p + c = s + err exactly
  if (err === 0) return f32(s);
  // Round to odd: of s and its neighbour toward err, the one with an odd last bit. Rounding that to f32 is
  // the correctly rounded f32 of p + c (53 >= 24 + 2 bits).
  f64Bits[0] = s;
  if ((u64Bits[0] & 1n) === 0n) u64Bits[0] += (err > 0) === (s > 0) ? 1n : -1n;
  return f32(f64Bits[0]);
}

// ---- Philox4x32-10 ---------------------------------------------------------------------------------

const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** Philox4x32-10 of a 4-word counter and a 2-word key (Random123's philox4x32 with 10 rounds). */
export function philox4x32(counter: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    if (round > 0) k0 = (k0 + W0) >>> 0, k1 = (k1 + W1) >>> 0;
    const p0 = M0 * BigInt(c0), p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n), lo0 = Number(p0 & 0xffffffffn);
    const hi1 = Number(p1 >> 32n), lo1 = Number(p1 & 0xffffffffn);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

const lo32 = (x: number) => x % 2 ** 32;
const hi32 = (x: number) => Math.floor(x / 2 ** 32);

/** The row's 64-bit random number: key = seed, counter = (offset lo, offset hi, row lo, row hi). */
export function rowRandom(seed: number, offset: number, row: number): bigint {
  const [v0, v1] = philox4x32([lo32(offset), hi32(offset), lo32(row), hi32(row)], [lo32(seed), hi32(seed)]);
  return BigInt(v0) | (BigInt(v1) << 32n);
}

// ---- Per-token values (sampling_math.h) -----------------------------------------------------------

const LOG2E = 0xb8aa3b * 2 ** -23, LN2_HI = 0x163 * 2 ** -9, LN2_LO = -0xde8083 * 2 ** -36, ROUND = 12582912;
const POLY = [0xb743ce * 2 ** -33, 0x888908 * 2 ** -30, 0xaaa9c1 * 2 ** -28, 0xaaaaaa * 2 ** -26, 0.5, 1, 1];

export function expNonpositive(x: number): number {
  if (!(x >= -87)) return 0;
  const n = f32(fmaf(x, LOG2E, ROUND) - ROUND);
  const r = fmaf(-n, LN2_LO, fmaf(-n, LN2_HI, x));
  let p = 0xd06967 * 2 ** -36;
  for (const c of POLY) p = fmaf(p, r, c);
  return f32(p * 2 ** n);
}

export const canonical = (z: number) => (Number.isNaN(z) ? -Infinity : z === 0 ? 0 : z);

export function sortKey(z: number): number {
  f32Bits[0] = z;
  const bits = u32Bits[0];
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

export function tokenWeight(z: number, m: number): number {
  if (z === m) return TWO_31;
  return Math.min(Math.trunc(expNonpositive(f32(z - m)) * TWO_31), TWO_31);
}

export interface Penalties { repetition: number; presence: number; frequency: number }

export function penalizedLogit(logit: number, count: number, p: Penalties): number {
  if (count <= 0) return logit;
  const subtract = fmaf(p.frequency, f32(count), p.presence);
  return logit > 0 ? f32(f32(logit / p.repetition) - subtract) : fmaf(logit, p.repetition, -subtract);
}

// ---- The sampler -------------------------------------------------------------------------------------

export interface SampleReferenceInput {
  logits: Float32Array;
  vocabSize: number;
  seed: number;
  offset?: number;
  mode?: 'sample' | 'greedy';
  temperature?: number | Float32Array;
  topK?: number;
  topP?: number;
  minP?: number;
  history?: Int32Array;
  historyOffsets?: Int32Array;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
}

export interface SampleReferenceRow {
  token: number;
  logp: number;
  logpPlain: number;
  /** Integer weight of every token in the processed distribution (0 outside the support); empty for greedy. */
  weights: number[];
  /** Their sum, W_S. */
  total: number;
}

/** The processed values z of one row (penalties, then temperature), as the kernels compute them. */
export function rowValues(input: SampleReferenceInput, row: number, divisor: number): number[] {
  const v = input.vocabSize;
  const counts = new Map<number, number>();
  if (input.history && input.historyOffsets) {
    for (let j = input.historyOffsets[row]; j < input.historyOffsets[row + 1]; j++) {
      counts.set(input.history[j], (counts.get(input.history[j]) ?? 0) + 1);
    }
  }
  const p: Penalties = {
    repetition: f32(input.repetitionPenalty ?? 1), presence: f32(input.presencePenalty ?? 0), frequency: f32(input.frequencyPenalty ?? 0),
  };
  const z: number[] = [];
  for (let i = 0; i < v; i++) {
    const logit = input.logits[row * v + i];
    z.push(canonical(f32(penalizedLogit(logit, counts.get(i) ?? 0, p) / divisor)));
  }
  return z;
}

// Math.max(...x) overflows the stack at V = 128k.
const maxOf = (x: number[]) => x.reduce((m, v) => (v > m ? v : m), -Infinity);

const temperatureOf = (input: SampleReferenceInput, row: number) =>
  f32(typeof input.temperature === 'object' ? input.temperature[row] : input.temperature ?? 1);

/** The support and integer weights of one row after top-k, top-p and min-p (steps 3-6). */
export function processedWeights(input: SampleReferenceInput, z: number[]): number[] {
  const m = maxOf(z);
  const weights = z.map((zi) => tokenWeight(zi, m));
  const byValue = z.map((_, i) => i).sort((a, b) => z[b] - z[a] || a - b);
  let floor = -Infinity;
  const k = input.topK ?? 0;
  if (k > 0 && k < z.length) floor = z[byValue[k - 1]];
  const topP = f32(input.topP ?? 1);
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < z.length; i++) if (z[i] >= floor) total += weights[i];
    const target = Math.ceil(topP * total);
    let mass = 0;
    for (let j = 0; j < byValue.length; j++) {
      mass += weights[byValue[j]];
      const lastOfValue = j + 1 === byValue.length || z[byValue[j + 1]] !== z[byValue[j]];
      if (lastOfValue && mass >= target) {
        floor = Math.max(floor, z[byValue[j]]);
        break;
      }
    }
  }
  const minP = f32(input.minP ?? 0);
  const minWeight = minP > 0 ? Math.ceil(minP * TWO_31) : 0;
  return weights.map((w, i) => (z[i] >= floor && w >= minWeight ? w : 0));
}

function plainLogp(input: SampleReferenceInput, row: number, token: number): number {
  const t = temperatureOf(input, row);
  const x = Array.from(input.logits.subarray(row * input.vocabSize, (row + 1) * input.vocabSize), (l) => canonical(f32(l / t)));
  const m = maxOf(x);
  let sum = 0;
  for (const xi of x) sum += xi === m ? 1 : Math.exp(xi - m);
  return (x[token] === m ? 0 : x[token] - m) - Math.log(sum);
}

export function sampleReferenceRow(input: SampleReferenceInput, row: number): SampleReferenceRow {
  const greedy = input.mode === 'greedy';
  const z = rowValues(input, row, greedy ? 1 : temperatureOf(input, row));
  const m = maxOf(z);
  if (m === -Infinity) return { token: -1, logp: NaN, logpPlain: NaN, weights: [], total: 0 };
  if (greedy) {
    const token = z.indexOf(m);
    return { token, logp: 0, logpPlain: plainLogp(input, row, token), weights: [], total: 0 };
  }
  const weights = processedWeights(input, z);
  const total = weights.reduce((a, b) => a + b, 0);
  const target = (rowRandom(input.seed, input.offset ?? 0, row) * BigInt(total)) >> 64n;
  let running = 0n, token = -1;
  for (let i = 0; i < weights.length && token < 0; i++) {
    running += BigInt(weights[i]);
    if (running > target) token = i;
  }
  return { token, logp: Math.log(weights[token] / total), logpPlain: plainLogp(input, row, token), weights, total };
}

export function sampleReference(input: SampleReferenceInput): SampleReferenceRow[] {
  const rows = input.logits.length / input.vocabSize;
  return Array.from({ length: rows }, (_, row) => sampleReferenceRow(input, row));
}
