// The pieces of a PPO iteration that are not the trainer's state: the token/row layout shift, gathering
// packed sequences, scoring with a frozen model, GAE + whitening, the adaptive KL controller and the
// checkpointable prompt order. Layouts are described at the top of ppo.ts.
import { describeValue } from '../data/describe.js';
import { talariaError } from '../native.js';
import type { TransformerModel } from '../nn/model.js';
import { logprobEntropy } from '../ops/logits.js';
import { gae, whiten } from '../ops/rl.js';
import { Tensor } from '../tensor.js';
import type { AdaptiveKlOptions, PpoSequences } from './ppo-options.js';

/** Everything one iteration computed before its updates, all f32[N] in token layout unless noted. */
export interface PpoRollouts extends PpoSequences {
  /** log pi_old(ids[t]) at the sampling temperature, from generation; 0 on prompt tokens. */
  oldLogp: Float32Array;
  /** log pi_ref(ids[t]) at the same temperature; 0 on prompt tokens. */
  refLogp: Float32Array;
  /** Value of the state before action t (value head at row t-1); 0 on prompt tokens. */
  values: Float32Array;
  /** f32[B]: reward model (or rewardFn) score of each sequence, before any penalty. */
  scores: Float32Array;
  /** -klCoef * (oldLogp - refLogp) on action tokens, plus the shaped score on the last action token. */
  rewards: Float32Array;
  /** GAE advantages, whitened over action tokens when `whiten`; 0 on prompt tokens. */
  advantages: Float32Array;
  /** Value targets: GAE advantages before whitening + values; 0 on prompt tokens. */
  returns: Float32Array;
  /** The KL coefficient the penalty used. */
  klCoef: number;
  /** Mean over sequences of sum_t k1 over its response tokens (the penalty's own estimator). */
  kl: number;
}

/**
 * The adaptive KL controller of Ziegler et al. (2019): beta <- beta * (1 + clip(KL/target - 1, -0.2, 0.2) * n/horizon)
 * after each batch of n episodes, so beta grows while the policy drifts past the target and shrinks below it.
 *
 * @example
 * const kl = new AdaptiveKlController(0.05, { target: 6, horizon: 10000 });
 * kl.update(8.1, 128); // kl.value grew
 */
export class AdaptiveKlController {
  constructor(
    public value: number,
    readonly options: AdaptiveKlOptions,
  ) {
    const fn = 'AdaptiveKlController';
    checkNumber(fn, 'value', value, (x) => Number.isFinite(x) && x >= 0, 'a finite number >= 0');
    if (options === null || typeof options !== 'object') throw talariaError('ERR_TALARIA_DTYPE', `${fn}: options must be {target, horizon}, got ${describeValue(options)}`);
    checkNumber(fn, 'options.target', options.target, (x) => Number.isFinite(x) && x > 0, 'a finite number > 0');
    checkNumber(fn, 'options.horizon', options.horizon, (x) => Number.isFinite(x) && x > 0, 'a finite number > 0');
  }

  /** Moves beta after `episodes` episodes whose mean KL was `kl`; a non-finite kl leaves it as it is. Returns the new beta. */
  update(kl: number, episodes: number): number {
    checkNumber('AdaptiveKlController.update', 'kl', kl, () => true, 'a number');
    checkNumber('AdaptiveKlController.update', 'episodes', episodes, (x) => Number.isSafeInteger(x) && x >= 0, 'an integer >= 0');
    const error = Math.min(0.2, Math.max(-0.2, kl / this.options.target - 1));
    if (Number.isFinite(error)) this.value *= 1 + (error * episodes) / this.options.horizon;
    return this.value;
  }
}

// ---- layout helpers (token layout <-> row layout, gathering sequences) ----

/** out[t] = rows[t-1] inside each sequence; 0 at each sequence's first token. */
export function rowsToTokens(rows: Float32Array, cuSeqlens: Int32Array): Float32Array {
  const out = new Float32Array(rows.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) out.set(rows.subarray(cuSeqlens[b], cuSeqlens[b + 1] - 1), cuSeqlens[b] + 1);
  return out;
}

/** out[p] = tokens[p+1] inside each sequence; 0 at each sequence's last row (it predicts nothing). */
export function tokensToRows(tokens: Float32Array, cuSeqlens: Int32Array): Float32Array {
  const out = new Float32Array(tokens.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) out.set(tokens.subarray(cuSeqlens[b] + 1, cuSeqlens[b + 1]), cuSeqlens[b]);
  return out;
}

/** Row p's target: ids[p+1]; a sequence's last row targets its own token (ignored: its gradient is 0). */
export function nextTokenTargets(ids: Int32Array, cuSeqlens: Int32Array): Int32Array {
  const targets = new Int32Array(ids.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const [start, end] = [cuSeqlens[b], cuSeqlens[b + 1]];
    targets.set(ids.subarray(start + 1, end), start);
    targets[end - 1] = ids[end - 1];
  }
  return targets;
}

export type PerToken = Float32Array | Int32Array | Uint8Array;

/** The chosen sequences repacked (in the given order), with the same per-token arrays gathered. */
export function gatherSequences<T extends Record<string, PerToken>>(cuSeqlens: Int32Array, sequences: readonly number[], arrays: T): { cuSeqlens: Int32Array } & T {
  const cu = new Int32Array(sequences.length + 1);
  sequences.forEach((s, i) => (cu[i + 1] = cu[i] + cuSeqlens[s + 1] - cuSeqlens[s]));
  const out: Record<string, PerToken> = {};
  for (const [name, source] of Object.entries(arrays)) {
    const gathered = new (source.constructor as new (n: number) => PerToken)(cu[sequences.length]);
    sequences.forEach((s, i) => gathered.set(source.subarray(cuSeqlens[s], cuSeqlens[s + 1]), cu[i]));
    out[name] = gathered;
  }
  return { cuSeqlens: cu, ...(out as T) };
}

export function chunks(count: number, size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < count; i += size) out.push(Array.from({ length: Math.min(size, count - i) }, (_, j) => i + j));
  return out;
}

/**
 * log pi(ids[t] | ids[<t]) at `temperature` for every token of packed sequences (token layout: 0 at each
 * sequence's first token), forwarding `batchSequences` sequences at a time without gradients. The same
 * numbers PPO uses for the reference and for evaluation KL.
 *
 * @example
 * const refLogp = sequenceLogprobs(sft, { ids, cuSeqlens }, { temperature: 1 });
 */
export function sequenceLogprobs(model: TransformerModel, tokens: { ids: Int32Array; cuSeqlens: Int32Array }, options: { temperature?: number; batchSequences?: number } = {}): Float32Array {
  checkPacked('sequenceLogprobs', tokens);
  if (options === null || typeof options !== 'object') throw talariaError('ERR_TALARIA_DTYPE', `sequenceLogprobs: options must be an object, got ${describeValue(options)}`);
  if (options.batchSequences !== undefined)
    checkNumber('sequenceLogprobs', 'batchSequences', options.batchSequences, (x) => Number.isSafeInteger(x) && x >= 1, 'an integer >= 1');
  const out = new Float32Array(tokens.ids.length);
  const b = tokens.cuSeqlens.length - 1;
  for (const part of chunks(b, options.batchSequences ?? 64)) {
    const g = gatherSequences(tokens.cuSeqlens, part, { ids: tokens.ids });
    const fw = model.forward({ ids: g.ids, cuSeqlens: g.cuSeqlens }, { lm: true, score: false, grad: false });
    const targets = Tensor.from(nextTokenTargets(g.ids, g.cuSeqlens), { device: model.device });
    try {
      const r = logprobEntropy({ logits: fw.logits!, targets, temperature: options.temperature ?? 1 });
      out.set(rowsToTokens(r.logp.toArray() as Float32Array, g.cuSeqlens), tokens.cuSeqlens[part[0]]);
      for (const t of [r.logp, r.entropy, r.lse]) t.dispose();
    } finally {
      targets.dispose();
      fw.dispose();
    }
  }
  return out;
}

/** The score head at each sequence's last token (the EOS when it ended), and the per-row values. */
export function scoreHead(model: TransformerModel, tokens: { ids: Int32Array; cuSeqlens: Int32Array }, batchSequences: number): { last: Float32Array; rows: Float32Array } {
  const b = tokens.cuSeqlens.length - 1;
  const last = new Float32Array(b);
  const rows = new Float32Array(tokens.ids.length);
  for (const part of chunks(b, batchSequences)) {
    const g = gatherSequences(tokens.cuSeqlens, part, { ids: tokens.ids });
    const fw = model.forward({ ids: g.ids, cuSeqlens: g.cuSeqlens }, { lm: false, score: true, grad: false });
    const values = fw.values!.toArray() as Float32Array;
    fw.dispose();
    rows.set(values, tokens.cuSeqlens[part[0]]);
    part.forEach((s, i) => (last[s] = values[g.cuSeqlens[i + 1] - 1]));
  }
  return { last, rows };
}

/**
 * GAE over action tokens only (non-action tokens neither reset nor advance the recurrence, and no value
 * at a non-action token is ever read), then optional whitening over action tokens. Returns are the
 * advantages before whitening plus the values.
 *
 * @example
 * const { advantages, returns } = ppoAdvantages({ rewards, values, cuSeqlens, actionMask, gamma: 1, lambda: 0.95, whiten: true });
 */
export function ppoAdvantages(input: { rewards: Float32Array; values: Float32Array; cuSeqlens: Int32Array; actionMask: Uint8Array; gamma: number; lambda: number; whiten: boolean }): { advantages: Float32Array; returns: Float32Array } {
  if (typeof input?.whiten !== 'boolean') throw talariaError('ERR_TALARIA_DTYPE', `ppoAdvantages: whiten must be a boolean, got ${describeValue(input?.whiten)}`);
  const { advantages, returns } = gae({ rewards: input.rewards, values: input.values, cuSeqlens: input.cuSeqlens, actionMask: input.actionMask, gamma: input.gamma, lambda: input.lambda });
  return { advantages: input.whiten ? whiten(advantages, { mask: input.actionMask }) : advantages, returns };
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

function checkNumber(fn: string, name: string, value: unknown, ok: (x: number) => boolean, expected: string): void {
  if (typeof value !== 'number') throw talariaError('ERR_TALARIA_DTYPE', `${fn}: ${name} must be ${expected}, got ${describeValue(value)}`);
  if (!ok(value)) throw talariaError('ERR_TALARIA_RANGE', `${fn}: ${name} must be ${expected}, got ${value}`);
}

/** Packed sequences: ids i32[N], cuSeqlens i32[B+1] from 0 to N, each sequence at least one token. */
export function checkPacked(fn: string, tokens: { ids: Int32Array; cuSeqlens: Int32Array }): void {
  if (tokens === null || typeof tokens !== 'object') throw talariaError('ERR_TALARIA_DTYPE', `${fn}: tokens must be {ids, cuSeqlens}, got ${describeValue(tokens)}`);
  const { ids, cuSeqlens } = tokens;
  if (!(ids instanceof Int32Array)) throw talariaError('ERR_TALARIA_DTYPE', `${fn}: ids must be an Int32Array, got ${describeValue(ids)}`);
  if (!(cuSeqlens instanceof Int32Array)) throw talariaError('ERR_TALARIA_DTYPE', `${fn}: cuSeqlens must be an Int32Array, got ${describeValue(cuSeqlens)}`);
  if (cuSeqlens.length < 2 || cuSeqlens[0] !== 0 || cuSeqlens[cuSeqlens.length - 1] !== ids.length)
    throw talariaError('ERR_TALARIA_SHAPE', `${fn}: cuSeqlens must run from 0 to ids.length ${ids.length} over at least one sequence`);
  for (let b = 1; b < cuSeqlens.length; b++)
    if (cuSeqlens[b] <= cuSeqlens[b - 1]) throw talariaError('ERR_TALARIA_SHAPE', `${fn}: cuSeqlens must increase (sequence ${b - 1} has no tokens)`);
}
