// Reward kernels (native/core/kernels/rewards.h): InstructGPT reward shaping with a running reward
// normalizer, and group-relative advantages (GRPO, Dr.GRPO, RLOO). Inputs are typed arrays or Tensors;
// outputs are the same kind as `scores`, on its device.
import { getAddon, TalariaError } from '../native.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32, U8 } from './rl.js';
import type { KlEstimator } from './rl-loss.js';

const FLT_MIN = 1.1754943508222875e-38;  // the smallest positive normal f32: eps is an f32 in the kernel
const FLT_MAX = 3.4028234663852886e38;

/** The saved state of a {@link RewardNormalizer}: plain JSON, for checkpoints. */
export interface RewardNormalizerState {
  /** How many scores the normalizer has seen. */
  count: number;
  /** Their mean. */
  mean: number;
  /** Their sum of squared deviations from the mean (variance = m2 / count). */
  m2: number;
  shiftMean: boolean;
  eps: number;
}

export interface RewardNormalizerOptions {
  /** Subtract the running mean as well as dividing by the running std. Default true. */
  shiftMean?: boolean;
  /** Added to the variance under the square root; a positive f32. Default 1e-8. */
  eps?: number;
}

// Symbol.for: the ESM and CJS builds must recognise each other's normalizers.
const LOAD = Symbol.for('talaria.rewardNormalizer.load');
// On the instance under a Symbol.for key, so the ESM and CJS builds see each other's pending calls.
const IN_FLIGHT = Symbol.for('talaria.rewardNormalizer.inFlight');

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an Array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value));
}

function checkEps(eps: unknown, what: string, code: 'ERR_TALARIA_RANGE' | 'ERR_TALARIA_FORMAT'): number {
  if (typeof eps !== 'number') throw new TalariaError(`${what}: expected a number, got ${describe(eps)}`, code === 'ERR_TALARIA_RANGE' ? 'ERR_TALARIA_DTYPE' : code);
  if (!(eps >= FLT_MIN && eps <= FLT_MAX)) throw new TalariaError(`${what}: expected a number in [${FLT_MIN}, ${FLT_MAX}], got ${eps}`, code);
  return eps;
}

/** A checkpointed state, checked field by field; anything else is ERR_TALARIA_FORMAT. */
function checkState(state: unknown): RewardNormalizerState {
  const bad = (why: string): never => {
    throw new TalariaError(`RewardNormalizer.fromState: ${why}`, 'ERR_TALARIA_FORMAT');
  };
  if (!isPlainObject(state)) return bad(`expected a plain object {count, mean, m2, shiftMean, eps}, got ${describe(state)}`);
  const keys = ['count', 'mean', 'm2', 'shiftMean', 'eps'];
  for (const key of Object.keys(state)) if (!keys.includes(key)) bad(`unknown field '${key}' (expected ${keys.join(', ')})`);
  for (const key of keys) if (!(key in state)) bad(`the field '${key}' is missing`);
  const { count, mean, m2, shiftMean, eps } = state;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) bad(`count: expected an integer >= 0, got ${describe(count)}`);
  if (typeof mean !== 'number' || !Number.isFinite(mean)) bad(`mean: expected a finite number, got ${describe(mean)}`);
  if (typeof m2 !== 'number' || !Number.isFinite(m2) || m2 < 0) bad(`m2: expected a finite number >= 0, got ${describe(m2)}`);
  if (typeof shiftMean !== 'boolean') bad(`shiftMean: expected a boolean, got ${describe(shiftMean)}`);
  checkEps(eps, 'RewardNormalizer.fromState: eps', 'ERR_TALARIA_FORMAT');
  if (count === 0 && (mean !== 0 || m2 !== 0)) bad('count is 0 but mean or m2 is not (a state that saw no scores is all 0)');
  return { count, mean, m2, shiftMean, eps } as RewardNormalizerState;
}

/**
 * Running mean and variance of every reward-model score seen so far (Chan's parallel merge, in float64),
 * which {@link shapeRewards} uses to normalize scores: s = (s - mean) / sqrt(variance + eps), with the
 * population variance and this batch already merged in. Save it with state() and restore it with
 * fromState() so a resumed run normalizes exactly as the original would have.
 *
 * @example
 * const normalizer = new RewardNormalizer({ shiftMean: true });
 * shapeRewards({ scores, logp, refLogp, cuSeqlens, normalizer });
 * const saved = JSON.stringify(normalizer.state());
 * const resumed = RewardNormalizer.fromState(JSON.parse(saved));
 */
export class RewardNormalizer {
  #state: RewardNormalizerState;

  constructor(options: RewardNormalizerOptions = {}) {
    if (!isPlainObject(options)) throw new TalariaError(`RewardNormalizer: expected an options object, got ${describe(options)}`, 'ERR_TALARIA_DTYPE');
    for (const key of Object.keys(options))
      if (key !== 'shiftMean' && key !== 'eps') throw new TalariaError(`RewardNormalizer: unknown option '${key}' (expected one of: shiftMean, eps)`, 'ERR_TALARIA_RANGE');
    const { shiftMean = true, eps = 1e-8 } = options;
    if (typeof shiftMean !== 'boolean') throw new TalariaError(`shiftMean: expected a boolean, got ${describe(shiftMean)}`, 'ERR_TALARIA_DTYPE');
    this.#state = { count: 0, mean: 0, m2: 0, shiftMean, eps: checkEps(eps, 'eps', 'ERR_TALARIA_RANGE') };
  }

  /** Scores seen so far. */
  get count(): number {
    return this.#state.count;
  }
  get mean(): number {
    return this.#state.mean;
  }
  /** Population variance (m2 / count); 0 before any score. */
  get variance(): number {
    return this.#state.count > 0 ? this.#state.m2 / this.#state.count : 0;
  }

  /** A copy of the state, plain JSON. */
  state(): RewardNormalizerState {
    return { ...this.#state };
  }

  /**
   * A normalizer that continues from a saved state. Throws TalariaError ERR_TALARIA_FORMAT when the state
   * is not one that state() could have produced.
   *
   * @example
   * const normalizer = RewardNormalizer.fromState(JSON.parse(readFileSync('normalizer.json', 'utf8')));
   */
  static fromState(state: unknown): RewardNormalizer {
    const checked = checkState(state);
    const normalizer = new RewardNormalizer({ shiftMean: checked.shiftMean, eps: checked.eps });
    normalizer.#state = checked;
    return normalizer;
  }

  /** @internal Loads the state the kernel returned. */
  [LOAD](state: RewardNormalizerState): void {
    // Finite scores can still overflow f32 once penalized; keep the last good state rather than a NaN one.
    if (!Number.isFinite(state.mean) || !Number.isFinite(state.m2))
      throw new TalariaError(`shapeRewards: the running moments became non-finite (mean ${state.mean}, m2 ${state.m2}); the normalizer keeps its previous state`, 'ERR_TALARIA_RANGE');
    this.#state = { ...state };
  }

  /** True while a shapeRewardsAsync call that updates this normalizer is pending. */
  [IN_FLIGHT] = false;
}

export interface ShapeRewardsInput<T extends F32> {
  /** The reward model's score of each sequence, f32[B]. */
  scores: T;
  /** Log-probs of the sampled tokens under the sampling policy, f32[N] (packed sequences). */
  logp: F32;
  /** The same under the reference (SFT) policy, f32[N]. */
  refLogp: F32;
  /** Sequence offsets i32[B+1]: starts at 0, never decreases, ends at N. */
  cuSeqlens: I32;
  /** u8[N], 1 marks an action (response) token. Default: every token is an action. */
  actionMask?: U8;
  /** The KL penalty's weight beta, >= 0. Default 0.02 (InstructGPT). */
  klCoef?: number;
  /** Which KL estimate the penalty (and stats.kl) uses. Default 'k1' (InstructGPT's log-ratio). */
  klEstimator?: KlEstimator;
  /** The per-token KL estimate is clamped to [-klClamp, klClamp]; > 0. Default Infinity (no clamp). */
  klClamp?: number;
  /** u8[B]: 1 when the sequence ended with EOS. Needed by missingEosPenalty. */
  endedWithEos?: U8;
  /** Subtracted from the score of every sequence whose endedWithEos is 0; >= 0. Default 0. */
  missingEosPenalty?: number;
  /** The final score is clipped to [-scoreClip, scoreClip]; > 0. Default Infinity (no clip). */
  scoreClip?: number;
  /** Normalize scores with this running normalizer, which the call updates with this batch's scores. */
  normalizer?: RewardNormalizer;
  /** Buffers for the outputs (on the device of scores) instead of fresh ones; they must not overlap the inputs. */
  out?: { rewards?: T; shapedScores?: T };
}

export interface ShapeRewardsStats {
  /** Mean over action tokens of the per-token KL estimate: the penalty's own estimator and clamp. */
  kl: number;
  /** Mean over active sequences of each one's summed KL estimate. */
  klPerSequence: number;
  /** Mean of the raw scores over all B sequences. */
  score: number;
  /** Mean of the shaped scores over all B sequences. */
  shapedScore: number;
  /** Sequences whose endedWithEos flag is 0 (0 without endedWithEos). */
  missingEos: number;
  actionTokens: number;
  /** Sequences with at least one action token. */
  activeSeqs: number;
}

export interface ShapeRewardsOutput<T extends F32> {
  /** f32[N]: -klCoef * KL on action tokens, plus the shaped score on each sequence's last action token; 0 elsewhere. */
  rewards: T;
  /** f32[B]: each sequence's score after the missing-EOS penalty, normalization and clipping. */
  shapedScores: T;
  stats: ShapeRewardsStats;
}

// Not instanceof: a normalizer made by the other (ESM or CJS) build of the package is one too.
function isRewardNormalizer(value: unknown): value is RewardNormalizer {
  return value !== null && typeof value === 'object' && typeof (value as Record<symbol, unknown>)[LOAD] === 'function';
}

// The addon's input: the normalizer travels as its plain state and comes back updated.
function nativeShapeInput(input: unknown): { args: unknown; normalizer?: RewardNormalizer } {
  if (!isPlainObject(input)) return { args: input };  // the addon rejects it with the usual message
  const { normalizer, ...rest } = input;
  if ('normalizerState' in rest)
    throw new TalariaError("shapeRewards: unknown option 'normalizerState' (pass normalizer, a RewardNormalizer)", 'ERR_TALARIA_RANGE');
  if (normalizer === undefined) return { args: nativeArgs(rest) };
  if (!isRewardNormalizer(normalizer))
    throw new TalariaError(`normalizer: expected a RewardNormalizer, got ${describe(normalizer)}`, 'ERR_TALARIA_DTYPE');
  if (normalizer[IN_FLIGHT])
    throw new TalariaError('normalizer: a shapeRewardsAsync call that uses it has not settled yet; await it first', 'ERR_TALARIA_RANGE');
  return { args: nativeArgs({ ...rest, normalizerState: normalizer.state() }), normalizer };
}

function shapeResult<T extends F32>(raw: unknown, normalizer: RewardNormalizer | undefined): ShapeRewardsOutput<T> {
  const { normalizerState, ...out } = wrapResult<ShapeRewardsOutput<T> & { normalizerState?: RewardNormalizerState }>(raw);
  if (normalizer && normalizerState) normalizer[LOAD](normalizerState);
  return out;
}

/**
 * InstructGPT's per-token rewards for PPO: every action token pays -klCoef * KL(policy || reference)
 * (Schulman's k1/k2/k3 estimate from logp - refLogp), and each sequence's score lands on its LAST ACTION
 * token, never on padding after it or on a prompt token. Before it lands, the score may lose
 * missingEosPenalty (sequences that ended without EOS), be normalized by a running RewardNormalizer
 * (which this batch updates first), and be clipped to +-scoreClip. A sequence without action tokens gets
 * no reward anywhere. Non-action tokens are never read into the rewards or the stats.
 *
 * @example
 * const normalizer = new RewardNormalizer();
 * const { rewards, stats } = shapeRewards({
 *   scores, logp, refLogp, cuSeqlens, actionMask,
 *   klCoef: 0.02, klEstimator: 'k1', endedWithEos, missingEosPenalty: 1, scoreClip: 5, normalizer,
 * });
 * // rewards feed gae(); stats.kl is the mean KL the penalty charged
 */
export function shapeRewards<T extends F32>(input: ShapeRewardsInput<T>): ShapeRewardsOutput<T> {
  const { args, normalizer } = nativeShapeInput(input);
  return shapeResult(getAddon().shapeRewards(args), normalizer);
}

/**
 * Promise form of {@link shapeRewards}: runs on a worker thread and keeps its inputs alive until it settles.
 * The normalizer's state is read when the call starts and updated when it settles; until then it cannot be
 * used by another call (ERR_TALARIA_RANGE).
 *
 * @example
 * const { rewards } = await shapeRewardsAsync({ scores, logp, refLogp, cuSeqlens, actionMask, normalizer });
 */
export async function shapeRewardsAsync<T extends F32>(input: ShapeRewardsInput<T>): Promise<ShapeRewardsOutput<T>> {
  const { args, normalizer } = nativeShapeInput(input);
  if (normalizer) normalizer[IN_FLIGHT] = true;
  try {
    return shapeResult(await getAddon().shapeRewardsAsync(args), normalizer);
  } finally {
    if (normalizer) normalizer[IN_FLIGHT] = false;
  }
}

/** How a completion's advantage is measured against its group (see {@link groupAdvantages}). */
export type GroupEstimator = 'grpo' | 'dr-grpo' | 'rloo';

export interface GroupAdvantagesInput<T extends F32> {
  /** One score (reward) per completion, f32[B], grouped by prompt: each group's completions are contiguous. */
  scores: T;
  /** Completions per group when every group has the same size: an integer > 0 that divides B. */
  groupSize?: number;
  /** Group offsets i32[G+1] (0, ..., B) for ragged groups. Exactly one of groupSize and groupOffsets. */
  groupOffsets?: I32;
  /** Default 'grpo'. */
  estimator?: GroupEstimator;
  /** grpo divides by (std + eps); a positive f32. Default 1e-6. */
  eps?: number;
  /** grpo's std divides by G - 1 (true) or G (false). Default true (as torch.std). */
  unbiased?: boolean;
  /** Token offsets i32[B+1] of the completions, to broadcast each advantage to its tokens. */
  cuSeqlens?: I32;
  /** u8[N]: only these tokens get the advantage (needs cuSeqlens). Default: every token. */
  actionMask?: U8;
  /** Buffers for the outputs (on the device of scores); they must not overlap the inputs. */
  out?: { advantages?: T; tokenAdvantages?: T };
}

export interface GroupAdvantagesOutput<T extends F32> {
  /** f32[B], one advantage per completion. */
  advantages: T;
  /** f32[N]: advantages[b] on the action tokens of completion b, 0 elsewhere; only with cuSeqlens. */
  tokenAdvantages: T | undefined;
}

/**
 * Group-relative advantages for the G completions of each prompt (critic-free RL):
 * - 'grpo':    (r - mean) / (std + eps), std unbiased (G - 1) by default;
 * - 'dr-grpo': r - mean (Dr.GRPO drops the std, which biases toward easy and hard prompts);
 * - 'rloo':    r - mean of the other G - 1 scores (REINFORCE leave-one-out).
 * A group of one completion has no baseline: its advantage is 0 under every estimator. Sums are float64.
 * With cuSeqlens, each advantage is also broadcast to its completion's (action) tokens.
 *
 * @example
 * // 8 prompts x 4 completions, advantages on the response tokens
 * const { advantages, tokenAdvantages } = groupAdvantages({
 *   scores, groupSize: 4, estimator: 'grpo', cuSeqlens, actionMask,
 * });
 */
export function groupAdvantages<T extends F32>(input: GroupAdvantagesInput<T>): GroupAdvantagesOutput<T> {
  return wrapResult(getAddon().groupAdvantages(nativeArgs(input)));
}

/**
 * Promise form of {@link groupAdvantages}.
 *
 * @example
 * const { advantages } = await groupAdvantagesAsync({ scores, groupOffsets, estimator: 'rloo' });
 */
export async function groupAdvantagesAsync<T extends F32>(input: GroupAdvantagesInput<T>): Promise<GroupAdvantagesOutput<T>> {
  return wrapResult(await getAddon().groupAdvantagesAsync(nativeArgs(input)));
}
