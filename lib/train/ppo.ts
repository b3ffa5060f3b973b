// PPO and PPO-ptx the way InstructGPT (arXiv 2203.02155) describes them, on packed sequences:
//   rollouts  generate responses from the policy (Philox seed/offset owned and checkpointed here);
//   score     reward model (or rewardFn) at each sequence's last token, reference log-probs of the
//             response tokens at the sampling temperature, value estimates;
//   rewards   per-token KL penalty -beta*k1 plus the score on the last action token (shapeRewards);
//   advantage GAE over action tokens only, then whitening over action tokens;
//   update    epochs x minibatches of clipped-surrogate steps; with ptx, the pretraining cross-entropy
//             gradient (times its coefficient) is accumulated into the SAME gradient buffers and one
//             AdamW step applies both (the paper's recipe, which DeepSpeed-Chat replaces by two steps);
//             the value model takes its own clipped-value-loss step.
//
// Layouts. Rollout arrays are per TOKEN, like generate(): index t of a packed sequence is token ids[t];
// actionMask[t] = 1 on response tokens. oldLogp[t] and refLogp[t] are log pi(ids[t] | ids[<t]) (computed
// from the logits at row t-1); values[t] is the value head's output at row t-1, i.e. the value of the
// state right BEFORE action t was taken. The model's rows are per POSITION (row p predicts token p+1), so
// every forward is shifted by one token (rowsToTokens / tokensToRows). Sequences are packed without any
// padding: a response that did not end simply has fewer tokens, so nothing masked can enter KL, GAE or
// whitening, and the score lands on the last response token (the EOS when the sequence ended).
import { describeValue } from '../data/describe.js';
import { packBatch, type EncodedExample } from '../data/batches.js';
import { talariaError } from '../native.js';
import { generate, type GenerateResult } from '../nn/generate.js';
import type { TransformerModel } from '../nn/model.js';
import { AdamW, WeightEma } from '../nn/optim.js';
import { axpby } from '../ops/layers.js';
import { crossEntropy, logprobEntropy, logprobEntropyBackward } from '../ops/logits.js';
import { shapeRewards } from '../ops/rewards.js';
import { ppoLoss, valueLoss } from '../ops/rl-loss.js';
import { gae, whiten } from '../ops/rl.js';
import { Tensor } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Rng, type RngState } from '../util/rng.js';
import { nonFiniteLoss, type RestoredCheckpoint, type StepMetrics, type Trainer, type TrainerCheckpoint } from './trainer.js';

/** The sampled sequences of one iteration, as rewardFn sees them (token layout, see the file comment). */
export interface PpoSequences {
  /** Prompt then response tokens of each sequence, packed, no padding: i32[N]. */
  ids: Int32Array;
  /** i32[B+1] sequence offsets. */
  cuSeqlens: Int32Array;
  /** u8[N]: 1 on response tokens (the policy's actions). */
  actionMask: Uint8Array;
  promptLengths: Int32Array;
  responseLengths: Int32Array;
  /** u8[B]: 1 when the response ended with EOS. */
  ended: Uint8Array;
  /** The response tokens of each sequence (views into ids), EOS included when it ended. */
  responses: Int32Array[];
}

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

export interface PtxOptions {
  /** Pretraining documents (e.g. encodePretraining): their next-token loss is kept up during PPO. */
  examples: readonly EncodedExample[];
  /** gamma of PPO-ptx, the pretraining loss weight (>= 0). Default 27.8 (InstructGPT); task A uses 1.0. */
  coef?: number;
  /** Pretraining documents per minibatch update. Default 8 x minibatchSize (InstructGPT's 8x episodes). */
  docsPerMinibatch?: number;
}

export interface AdaptiveKlOptions {
  /** Target KL per sequence (nats, the `kl` metric's unit), > 0. */
  target: number;
  /** Horizon in episodes (Ziegler et al. use 10,000), > 0. */
  horizon: number;
}

export interface PpoTrainerOptions {
  /**
   * The policy (trainable, LM head). The caller sets `suppressTokens: tokenizer.neverSample` on it and on
   * the reference, so PAD/BOS are never sampled and are scored the same way (checked here).
   */
  policy: TransformerModel;
  /** The frozen SFT policy (LM head), same suppressTokens as the policy. */
  reference: TransformerModel;
  /** The value model (trainable, score head), initialised from the reward model by the caller. */
  value: TransformerModel;
  /** The frozen reward model (score head), read at each sequence's last token. Exactly one of reward and rewardFn. */
  reward?: TransformerModel;
  /** One finite score per sequence, instead of a reward model (custom rewards, tests). */
  rewardFn?: (sequences: PpoSequences) => Float32Array | readonly number[];
  tokenizer: Tokenizer;
  /** Prompt token ids (BOS + prompt), drawn in shuffled epochs, rolloutsPerIteration per iteration. */
  prompts: readonly Int32Array[];
  /** PPO iterations (the runner's totalSteps). */
  iterations: number;
  /** Episodes per iteration. Default 512 (InstructGPT); task A uses 128. */
  rolloutsPerIteration?: number;
  /** Sequences per minibatch update. Default 64. */
  minibatchSize?: number;
  /** Passes over each iteration's rollouts. Default 1 (InstructGPT); task A uses 2. */
  epochs?: number;
  /** Sampling temperature, also used for every log-prob (old, reference, current). Default 1. */
  temperature?: number;
  /** Response budget, EOS included. */
  maxNewTokens: number;
  /** KL penalty beta (the initial one with adaptiveKl). Default 0.02 (InstructGPT); task A uses 0.05. */
  klCoef?: number;
  /** Adapt beta toward a target KL (Ziegler et al. 2019). Default: beta fixed. */
  adaptiveKl?: AdaptiveKlOptions;
  /** Discount. Default 1. */
  gamma?: number;
  /** GAE lambda. Default 0.95. */
  lambda?: number;
  /** Ratio clip epsilon, in (0, 1). Default 0.2. */
  clip?: number;
  /** Dual-clip bound c > 1 for negative advantages. Default: off. */
  dualClip?: number;
  /** Value clip range (> 0; Infinity disables). Default 0.2. */
  valueClip?: number;
  /** Subtracted from the score of responses that ran out of budget without EOS (>= 0). Default 0. */
  missingEosPenalty?: number;
  /** Whiten advantages over the iteration's action tokens. Default true. */
  whiten?: boolean;
  /** Policy learning rate (constant). */
  lr: number;
  /** Value model learning rate. Default: lr. */
  valueLr?: number;
  /** AdamW weight decay (matrices only). Default 0. */
  weightDecay?: number;
  /** Global gradient-norm clip per model (> 0). Default 1. */
  maxGradNorm?: number;
  /** EMA of the policy weights after every policy step (InstructGPT: 0.992); the EMA is the final policy. */
  emaDecay?: number;
  /** PPO-ptx: pretraining gradients accumulated into the same update. */
  ptx?: PtxOptions;
  /** Seeds the prompt order, the minibatch order, the ptx order and the Philox sampler. Default 0. */
  seed?: number;
}

/**
 * InstructGPT's PPO hyperparameters (spread them into PpoTrainerOptions). Its ptx numbers (coef 27.8,
 * 8 pretraining documents per episode) are instructgptPtx and are PtxOptions' defaults.
 *
 * Scaling to small models: a model with a few hundred thousand parameters and a noisy reward model drifts
 * faster per update, so task A (a 0.53M model) uses a larger beta (0.05), a smaller batch (128 rollouts,
 * minibatch 64) with 2 epochs to reuse each batch, and a ptx coef of 1.0 with 16 documents per minibatch:
 * 27.8 was tuned for 175B-token pretraining mixtures and would swamp the RL signal of a tiny model.
 * The learning rate is model-size dependent and not part of the preset (InstructGPT: ~9e-6 at 1.3B).
 */
export const instructgptPreset = Object.freeze({
  klCoef: 0.02,
  clip: 0.2,
  valueClip: 0.2,
  gamma: 1,
  lambda: 0.95,
  epochs: 1,
  temperature: 1,
  whiten: true,
  rolloutsPerIteration: 512,
  minibatchSize: 64,
  emaDecay: 0.992,
});

/** InstructGPT's PPO-ptx numbers: gamma = 27.8 and 8 pretraining documents per RL episode. */
export const instructgptPtx = Object.freeze({ coef: 27.8, docsPerEpisode: 8 });

/** The task-A reference run's PPO settings (lib/world task A, /notes/task-a.md). */
export const taskAPreset = Object.freeze({
  klCoef: 0.05,
  clip: 0.2,
  valueClip: 0.2,
  gamma: 1,
  lambda: 0.95,
  epochs: 2,
  temperature: 1,
  whiten: true,
  rolloutsPerIteration: 128,
  minibatchSize: 64,
  iterations: 40,
  maxNewTokens: 16,
});

/** Task A's PPO-ptx: coefficient 1.0, 16 pretraining documents per minibatch update. */
export const taskAPtx = Object.freeze({ coef: 1, docsPerMinibatch: 16 });

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
  ) {}

  update(kl: number, episodes: number): number {
    const error = Math.min(0.2, Math.max(-0.2, kl / this.options.target - 1));
    if (Number.isFinite(error)) this.value *= 1 + (error * episodes) / this.options.horizon;
    return this.value;
  }
}

interface CyclePosition {
  epoch: number;
  index: number;
  /** The Rng state at the start of the epoch (before its shuffle). */
  rngState: RngState;
}

const isRngState = (x: unknown): x is RngState => Array.isArray(x) && x.length === 4 && x.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32);

/** Sequence orders in shuffled epochs, checkpointable (as TokenBudgetBatcher, but by count). */
class ShuffledCycle {
  private readonly rng: Rng;
  private epochStart: RngState;
  private order: number[];
  private index = 0;
  private epoch = 0;

  constructor(
    private readonly size: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  take(count: number): number[] {
    const out: number[] = [];
    while (out.length < count) {
      if (this.index === this.size) {
        this.epoch++;
        this.index = 0;
        this.epochStart = this.rng.state();
        this.order = this.shuffled();
      }
      out.push(this.order[this.index++]);
    }
    return out;
  }

  position(): CyclePosition {
    return { epoch: this.epoch, index: this.index, rngState: [...this.epochStart] as RngState };
  }

  /** A saved position, checked against this cycle (ERR_TALARIA_FORMAT naming `what`); restore() applies it. */
  check(position: unknown, what: string): CyclePosition {
    const p = position as Partial<CyclePosition> | null;
    if (p === null || typeof p !== 'object' || !Number.isSafeInteger(p.epoch) || !Number.isSafeInteger(p.index) || p.index! < 0 || p.index! > this.size)
      throw talariaError('ERR_TALARIA_FORMAT', `PpoTrainer.restore: state.${what} must be {epoch, index in [0, ${this.size}], rngState}, got ${describeValue(position)}`);
    if (!isRngState(p.rngState)) throw talariaError('ERR_TALARIA_FORMAT', `PpoTrainer.restore: state.${what}.rngState must be four unsigned 32-bit integers`);
    return p as CyclePosition;
  }

  restore(p: CyclePosition): void {
    this.rng.restore(p.rngState);
    this.epoch = p.epoch;
    this.index = p.index;
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  private shuffled(): number[] {
    return this.rng.shuffle(Array.from({ length: this.size }, (_, i) => i));
  }
}

// ---- layout helpers (token layout <-> row layout, gathering sequences) ----

/** out[t] = rows[t-1] inside each sequence; 0 at each sequence's first token. */
function rowsToTokens(rows: Float32Array, cuSeqlens: Int32Array): Float32Array {
  const out = new Float32Array(rows.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) out.set(rows.subarray(cuSeqlens[b], cuSeqlens[b + 1] - 1), cuSeqlens[b] + 1);
  return out;
}

/** out[p] = tokens[p+1] inside each sequence; 0 at each sequence's last row (it predicts nothing). */
function tokensToRows(tokens: Float32Array, cuSeqlens: Int32Array): Float32Array {
  const out = new Float32Array(tokens.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) out.set(tokens.subarray(cuSeqlens[b] + 1, cuSeqlens[b + 1]), cuSeqlens[b]);
  return out;
}

/** Row p's target: ids[p+1]; a sequence's last row targets its own token (ignored: its gradient is 0). */
function nextTokenTargets(ids: Int32Array, cuSeqlens: Int32Array): Int32Array {
  const targets = new Int32Array(ids.length);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const [start, end] = [cuSeqlens[b], cuSeqlens[b + 1]];
    targets.set(ids.subarray(start + 1, end), start);
    targets[end - 1] = ids[end - 1];
  }
  return targets;
}

type PerToken = Float32Array | Int32Array | Uint8Array;

/** The chosen sequences repacked (in the given order), with the same per-token arrays gathered. */
function gatherSequences<T extends Record<string, PerToken>>(cuSeqlens: Int32Array, sequences: readonly number[], arrays: T): { cuSeqlens: Int32Array } & T {
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

function chunks(count: number, size: number): number[][] {
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
function scoreHead(model: TransformerModel, tokens: { ids: Int32Array; cuSeqlens: Int32Array }, batchSequences: number): { last: Float32Array; rows: Float32Array } {
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
  const { advantages, returns } = gae({ rewards: input.rewards, values: input.values, cuSeqlens: input.cuSeqlens, actionMask: input.actionMask, gamma: input.gamma, lambda: input.lambda });
  return { advantages: input.whiten ? whiten(advantages, { mask: input.actionMask }) : advantages, returns };
}

/** Losses and stats of one minibatch's policy gradient. */
export interface PolicyGradientReport {
  /** The clipped-surrogate loss (NaN when the PPO part was skipped). */
  loss: number;
  /** The pretraining cross-entropy, unscaled (NaN without ptx documents). */
  ptxLoss: number;
  clipfrac: number;
  entropy: number;
  approxKl: number;
  /** Tokens the forward passes processed. */
  tokens: number;
}

interface Resolved {
  rollouts: number;
  minibatch: number;
  epochs: number;
  temperature: number;
  maxNewTokens: number;
  gamma: number;
  lambda: number;
  clip: number;
  dualClip: number | undefined;
  valueClip: number;
  missingEosPenalty: number;
  whiten: boolean;
  lr: number;
  valueLr: number;
  seed: number;
  ptxCoef: number;
  ptxDocs: number;
}

const OPTION_NAMES = [
  'policy', 'reference', 'value', 'reward', 'rewardFn', 'tokenizer', 'prompts', 'iterations', 'rolloutsPerIteration',
  'minibatchSize', 'epochs', 'temperature', 'maxNewTokens', 'klCoef', 'adaptiveKl', 'gamma', 'lambda', 'clip', 'dualClip',
  'valueClip', 'missingEosPenalty', 'whiten', 'lr', 'valueLr', 'weightDecay', 'maxGradNorm', 'emaDecay', 'ptx', 'seed',
];

/**
 * PPO (stage 'ppo') or PPO-ptx (stage 'ppo-ptx') as a Trainer: one trainStep() is one iteration of
 * rollouts, scoring, advantages and `epochs` passes of minibatch updates.
 *
 * Metrics per iteration: loss (policy clipped surrogate, mean over minibatches), valueLoss, reward (mean
 * score), kl (mean over sequences of sum_t k1, the penalty's estimator), klCoef (the beta this iteration's
 * penalty used), clipfrac, entropy, approxKl, ptxLoss (ptx only), responseLength, endedRate, tokens
 * (rollout tokens + tokens of every update forward), rolloutSeconds, updateSeconds, lr, gradNorm, valueGradNorm.
 *
 * @example
 * const trainer = new PpoTrainer({
 *   ...taskAPreset, policy, reference, value, reward, tokenizer, prompts, lr: 1e-4,
 *   ptx: { examples: pretrainingDocs, ...taskAPtx },
 * });
 * while (trainer.stepsDone < trainer.totalSteps) console.log(trainer.trainStep());
 */
export class PpoTrainer implements Trainer {
  readonly stage: string;
  readonly totalSteps: number;
  private done = 0;
  private readonly o: Resolved;
  private readonly policy: TransformerModel;
  private readonly reference: TransformerModel;
  private readonly value: TransformerModel;
  private readonly reward?: TransformerModel;
  private readonly rewardFn?: PpoTrainerOptions['rewardFn'];
  private readonly tokenizer: Tokenizer;
  private readonly prompts: readonly Int32Array[];
  private readonly ptxExamples: readonly EncodedExample[];
  private readonly promptOrder: ShuffledCycle;
  private readonly ptxOrder: ShuffledCycle | null;
  private readonly minibatchRng: Rng;
  private philoxOffset = 0;
  private readonly klController: AdaptiveKlController | null;
  private fixedKlCoef: number;
  private readonly policyOptimizer: AdamW;
  private readonly valueOptimizer: AdamW;
  private readonly ema: WeightEma | null;
  private emaModel: TransformerModel | null = null;
  private last: PpoRollouts | null = null;

  constructor(options: PpoTrainerOptions) {
    this.o = validateOptions(options);
    ({ policy: this.policy, reference: this.reference, value: this.value, reward: this.reward, rewardFn: this.rewardFn, tokenizer: this.tokenizer } = options);
    this.prompts = [...options.prompts];
    this.ptxExamples = options.ptx ? [...options.ptx.examples] : [];
    this.stage = options.ptx ? 'ppo-ptx' : 'ppo';
    this.totalSteps = options.iterations;
    // Independent streams per consumer, all from the one seed.
    const seeds = new Rng(this.o.seed);
    this.promptOrder = new ShuffledCycle(this.prompts.length, seeds.nextUint32());
    this.minibatchRng = new Rng(seeds.nextUint32());
    const ptxSeed = seeds.nextUint32();
    this.ptxOrder = options.ptx ? new ShuffledCycle(this.ptxExamples.length, ptxSeed) : null;
    this.fixedKlCoef = options.klCoef ?? 0.02;
    this.klController = options.adaptiveKl ? new AdaptiveKlController(this.fixedKlCoef, { ...options.adaptiveKl }) : null;
    const common = { weightDecay: options.weightDecay ?? 0, maxGradNorm: options.maxGradNorm ?? 1 };
    this.policyOptimizer = new AdamW(this.policy, { lr: this.o.lr, ...common });
    this.valueOptimizer = new AdamW(this.value, { lr: this.o.valueLr, ...common });
    this.ema = options.emaDecay !== undefined ? new WeightEma(this.policy, options.emaDecay) : null;
  }

  get stepsDone(): number {
    return this.done;
  }

  /** The KL coefficient the next iteration's penalty uses. */
  get klCoef(): number {
    return this.klController ? this.klController.value : this.fixedKlCoef;
  }

  /** The rollouts of the last iteration (for inspection and tests); null before the first. */
  get lastRollouts(): PpoRollouts | null {
    return this.last;
  }

  /**
   * Samples rolloutsPerIteration responses for the next prompts and computes everything the update needs.
   * Advances the prompt order and the Philox offset (trainStep calls it; tests call it to inspect).
   */
  collectRollouts(): PpoRollouts {
    const promptIds = this.promptOrder.take(this.o.rollouts);
    const gen: GenerateResult = generate(this.policy, promptIds.map((i) => this.prompts[i]), {
      maxNewTokens: this.o.maxNewTokens,
      stopTokens: [this.tokenizer.eosId],
      seed: this.o.seed,
      offset: this.philoxOffset,
      temperature: this.o.temperature,
    });
    this.philoxOffset = gen.nextOffset;
    const { ids, cuSeqlens, actionMask, ended, promptLengths, responseLengths } = gen;
    const responses = Array.from(responseLengths, (len, b) => ids.subarray(cuSeqlens[b + 1] - len, cuSeqlens[b + 1]));
    const sequences: PpoSequences = { ids, cuSeqlens, actionMask, promptLengths, responseLengths, ended, responses };
    const tokens = { ids, cuSeqlens };
    const scores = this.reward ? scoreHead(this.reward, tokens, this.o.minibatch).last : this.callRewardFn(sequences);
    const refLogp = sequenceLogprobs(this.reference, tokens, { temperature: this.o.temperature, batchSequences: this.o.minibatch });
    const values = rowsToTokens(scoreHead(this.value, tokens, this.o.minibatch).rows, cuSeqlens);
    // Prompt tokens are not actions: nothing there is ever read, and zeros keep the arrays honest.
    for (let t = 0; t < values.length; t++) if (!actionMask[t]) values[t] = refLogp[t] = 0;
    const klCoef = this.klCoef;
    const shaped = shapeRewards({
      scores, logp: gen.logprobs, refLogp, cuSeqlens, actionMask, klCoef, klEstimator: 'k1',
      endedWithEos: ended, missingEosPenalty: this.o.missingEosPenalty,
    });
    const { advantages, returns } = ppoAdvantages({ rewards: shaped.rewards, values, cuSeqlens, actionMask, gamma: this.o.gamma, lambda: this.o.lambda, whiten: this.o.whiten });
    this.last = { ...sequences, oldLogp: gen.logprobs, refLogp, values, scores, rewards: shaped.rewards, advantages, returns, klCoef, kl: shaped.stats.klPerSequence };
    return this.last;
  }

  /**
   * Zeroes the policy's gradients and accumulates into them, WITHOUT applying them, the gradient of one
   * minibatch: the clipped surrogate over `sequences` of `rollouts` ('ppo'), plus coef x the pretraining
   * cross-entropy over `ptxDocuments` ('ptx'), in the same buffers. trainStep uses it for every update;
   * tests use it to check the accumulation. Throws nonFiniteLoss for a NaN or infinite loss.
   */
  computePolicyGradients(rollouts: PpoRollouts, options: { sequences?: readonly number[]; ptxDocuments?: readonly EncodedExample[]; include?: 'both' | 'ppo' | 'ptx' } = {}): PolicyGradientReport {
    const include = options.include ?? 'both';
    const report: PolicyGradientReport = { loss: NaN, ptxLoss: NaN, clipfrac: NaN, entropy: NaN, approxKl: NaN, tokens: 0 };
    this.policy.zeroGrad();
    if (include !== 'ptx') {
      const sequences = options.sequences ?? Array.from({ length: rollouts.cuSeqlens.length - 1 }, (_, i) => i);
      const mb = gatherSequences(rollouts.cuSeqlens, sequences, { ids: rollouts.ids, actionMask: rollouts.actionMask, oldLogp: rollouts.oldLogp, advantages: rollouts.advantages });
      const fw = this.policy.forward({ ids: mb.ids, cuSeqlens: mb.cuSeqlens }, { lm: true, score: false, grad: true });
      const device = this.policy.device;
      const held: Tensor[] = [fw.logits!, Tensor.from(nextTokenTargets(mb.ids, mb.cuSeqlens), { device })];
      try {
        const [logits, targets] = held;
        const fwd = logprobEntropy({ logits, targets, temperature: this.o.temperature });
        held.push(fwd.logp, fwd.entropy, fwd.lse);
        const out = ppoLoss({
          logp: rowsToTokens(fwd.logp.toArray() as Float32Array, mb.cuSeqlens), oldLogp: mb.oldLogp, advantages: mb.advantages,
          cuSeqlens: mb.cuSeqlens, actionMask: mb.actionMask, entropy: rowsToTokens(fwd.entropy.toArray() as Float32Array, mb.cuSeqlens),
          clipLow: this.o.clip, ...(this.o.dualClip !== undefined && { dualClip: this.o.dualClip }),
        });
        if (!Number.isFinite(out.loss)) throw nonFiniteLoss(this.stage, this.done, 'the policy loss', out.loss);
        Object.assign(report, { loss: out.loss, clipfrac: out.stats.clipFrac, entropy: out.stats.entropy ?? NaN, approxKl: out.stats.approxKl, tokens: mb.ids.length });
        const gLogp = Tensor.from(tokensToRows(out.dLogp, mb.cuSeqlens), { device });
        const gEntropy = Tensor.empty([mb.ids.length], 'f32', device).zero();
        held.push(gLogp, gEntropy);
        logprobEntropyBackward({ logits, targets, gLogp, gEntropy, lse: fwd.lse, entropy: fwd.entropy, temperature: this.o.temperature, inPlace: true });
        this.policy.backward(fw, { dLogits: logits });
      } finally {
        fw.dispose();
        for (const t of held) t.dispose();
      }
    }
    if (include !== 'ppo' && options.ptxDocuments?.length) {
      const batch = packBatch(options.ptxDocuments);
      const fw = this.policy.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens }, { lm: true, score: false, grad: true });
      try {
        const { loss, dLogits } = crossEntropy({ logits: fw.logits!, targets: batch.targets, mask: batch.lossMask, inPlace: true });
        if (!Number.isFinite(loss)) throw nonFiniteLoss(this.stage, this.done, 'the ptx loss', loss);
        // The objective is PPO + coef * CE: scale CE's gradient and let backward add it to the PPO gradient.
        axpby({ x: dLogits, y: dLogits, alpha: this.o.ptxCoef, beta: 0 });
        this.policy.backward(fw, { dLogits });
        report.ptxLoss = loss;
        report.tokens += batch.ids.length;
      } finally {
        fw.dispose();
        fw.logits?.dispose();
      }
    }
    return report;
  }

  trainStep(): StepMetrics {
    const t0 = performance.now();
    const r = this.collectRollouts();
    if (!Number.isFinite(r.kl)) throw nonFiniteLoss(this.stage, this.done, 'the KL to the reference', r.kl);
    const reward = mean(r.scores);
    const t1 = performance.now();
    const sums = { loss: 0, valueLoss: 0, ptxLoss: 0, clipfrac: 0, entropy: 0, approxKl: 0, gradNorm: 0, valueGradNorm: 0 };
    let updates = 0;
    let updateTokens = 0;
    const b = r.cuSeqlens.length - 1;
    for (let epoch = 0; epoch < this.o.epochs; epoch++) {
      const order = this.minibatchRng.shuffle(Array.from({ length: b }, (_, i) => i));
      for (const part of chunks(b, this.o.minibatch)) {
        const sequences = part.map((i) => order[i]);
        const ptxDocuments = this.ptxOrder ? this.ptxOrder.take(this.o.ptxDocs).map((i) => this.ptxExamples[i]) : undefined;
        const p = this.computePolicyGradients(r, { sequences, ptxDocuments });
        const v = this.computeValueGradients(r, sequences);
        // Both models' losses are checked before either steps, so a NaN leaves this minibatch unapplied.
        const step = this.policyOptimizer.apply(this.o.lr);
        if (!step.applied) throw nonFiniteLoss(this.stage, this.done, 'the policy gradient norm', step.gradNorm);
        this.ema?.update();
        const valueStep = this.valueOptimizer.apply(this.o.valueLr);
        if (!valueStep.applied) throw nonFiniteLoss(this.stage, this.done, 'the value gradient norm', valueStep.gradNorm);
        sums.loss += p.loss;
        sums.ptxLoss += p.ptxLoss;
        sums.clipfrac += p.clipfrac;
        sums.entropy += p.entropy;
        sums.approxKl += p.approxKl;
        sums.valueLoss += v.loss;
        sums.gradNorm += step.gradNorm;
        sums.valueGradNorm += valueStep.gradNorm;
        updateTokens += p.tokens + v.tokens;
        updates++;
      }
    }
    const klCoef = r.klCoef;
    this.klController?.update(r.kl, b);
    this.done++;
    const t2 = performance.now();
    const metrics: StepMetrics = {
      loss: sums.loss / updates,
      valueLoss: sums.valueLoss / updates,
      reward,
      kl: r.kl,
      klCoef,
      clipfrac: sums.clipfrac / updates,
      entropy: sums.entropy / updates,
      approxKl: sums.approxKl / updates,
      responseLength: mean(r.responseLengths),
      endedRate: mean(r.ended),
      tokens: r.ids.length + updateTokens,
      rolloutSeconds: (t1 - t0) / 1000,
      updateSeconds: (t2 - t1) / 1000,
      lr: this.o.lr,
      gradNorm: sums.gradNorm / updates,
      valueGradNorm: sums.valueGradNorm / updates,
    };
    if (this.ptxOrder) metrics.ptxLoss = sums.ptxLoss / updates;
    return metrics;
  }

  /** The policy to evaluate: a frozen copy holding the EMA weights when emaDecay is set, else the policy itself. */
  evaluationPolicy(): TransformerModel {
    if (!this.ema) return this.policy;
    if (!this.emaModel) {
      const Model = this.policy.constructor as typeof TransformerModel;
      this.emaModel = new Model(this.policy.config, this.policy.heads, {
        device: this.policy.device, params: this.ema.toArray(), trainable: false, suppressTokens: this.policy.suppressTokens,
      });
    } else {
      this.emaModel.loadParameters(this.ema.weights);
    }
    return this.emaModel;
  }

  checkpoint(): TrainerCheckpoint {
    const p = this.policyOptimizer.state();
    const v = this.valueOptimizer.state();
    const tensors: Record<string, Float32Array> = { 'policy.adam.m': p.m, 'policy.adam.v': p.v, 'value.adam.m': v.m, 'value.adam.v': v.v };
    if (this.ema) tensors['policy.ema'] = this.ema.toArray();
    return {
      state: {
        stepsDone: this.done,
        promptOrder: this.promptOrder.position(),
        ptxOrder: this.ptxOrder?.position() ?? null,
        minibatchRng: this.minibatchRng.state(),
        philoxOffset: this.philoxOffset,
        klCoef: this.klCoef,
        policyAdamStep: p.step,
        valueAdamStep: v.step,
      },
      tensors,
      models: { policy: this.policy, value: this.value },
    };
  }

  restore(checkpoint: RestoredCheckpoint): void {
    const bad = (why: string): never => {
      throw talariaError('ERR_TALARIA_FORMAT', `PpoTrainer.restore: ${why}`);
    };
    const s = checkpoint?.state ?? bad('the checkpoint has no state');
    const int = (key: string, max = Number.MAX_SAFE_INTEGER): number => {
      const value = s[key];
      if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max) bad(`state.${key} must be an integer in [0, ${max}], got ${describeValue(value)}`);
      return value as number;
    };
    const stepsDone = int('stepsDone', this.totalSteps);
    const philoxOffset = int('philoxOffset');
    const klCoef = s.klCoef;
    if (typeof klCoef !== 'number' || !(klCoef >= 0 && Number.isFinite(klCoef))) bad(`state.klCoef must be a finite number >= 0, got ${describeValue(klCoef)}`);
    const tensor = (name: string): Float32Array => (checkpoint.tensors?.[name] instanceof Float32Array ? checkpoint.tensors[name] : bad(`tensors.${name} is missing`));
    for (const role of ['policy', 'value'] as const) {
      const params = checkpoint.models?.[role];
      const model = this[role];
      if (!(params instanceof Float32Array) || params.length !== model.layout.totalNumel) bad(`models.${role} must hold ${model.layout.totalNumel} parameters`);
    }
    const ema = this.ema ? tensor('policy.ema') : null;
    const adam = (role: 'policy' | 'value') => ({ step: int(`${role}AdamStep`), m: tensor(`${role}.adam.m`), v: tensor(`${role}.adam.v`) });
    const [policyAdam, valueAdam] = [adam('policy'), adam('value')];
    for (const [name, state] of [['policy', policyAdam], ['value', valueAdam]] as const)
      if (state.m.length !== this[name].layout.totalNumel || state.v.length !== this[name].layout.totalNumel) bad(`tensors.${name}.adam.m/v must hold ${this[name].layout.totalNumel} values`);
    if (ema && ema.length !== this.policy.layout.totalNumel) bad(`tensors.policy.ema must hold ${this.policy.layout.totalNumel} values`);
    const promptOrder = this.promptOrder.check(s.promptOrder, 'promptOrder');
    const ptxOrder = this.ptxOrder?.check(s.ptxOrder, 'ptxOrder');
    if (!isRngState(s.minibatchRng)) bad('state.minibatchRng must be four unsigned 32-bit integers');
    // Everything checked: from here on nothing throws, so a bad checkpoint leaves the trainer as it was.
    this.promptOrder.restore(promptOrder);
    if (ptxOrder) this.ptxOrder!.restore(ptxOrder);
    this.minibatchRng.restore(s.minibatchRng as RngState);
    this.policyOptimizer.restore(policyAdam);
    this.valueOptimizer.restore(valueAdam);
    this.policy.loadParameters(checkpoint.models.policy);
    this.value.loadParameters(checkpoint.models.value);
    if (ema) this.ema!.restore(ema);
    if (this.klController) this.klController.value = klCoef as number;
    else this.fixedKlCoef = klCoef as number;
    this.philoxOffset = philoxOffset;
    this.done = stepsDone;
    this.last = null;
  }

  /** { policy, value }: the policy is the EMA of its weights when emaDecay is set (InstructGPT evaluates the EMA). */
  finalModels(): Record<string, TransformerModel> {
    return { policy: this.evaluationPolicy(), value: this.value };
  }

  dispose(): void {
    this.policyOptimizer.dispose();
    this.valueOptimizer.dispose();
    this.ema?.dispose();
    this.emaModel?.dispose();
    this.emaModel = null;
  }

  // ---- internals ----

  private callRewardFn(sequences: PpoSequences): Float32Array {
    const raw = this.rewardFn!(sequences);
    const b = sequences.responses.length;
    if (!(raw instanceof Float32Array || Array.isArray(raw)) || raw.length !== b)
      throw talariaError('ERR_TALARIA_SHAPE', `rewardFn: must return a Float32Array or array of ${b} scores (one per sequence), got ${describeValue(raw)}${raw && typeof raw === 'object' && 'length' in raw ? ` of length ${(raw as ArrayLike<number>).length}` : ''}`);
    const scores = Float32Array.from(raw as ArrayLike<number>);
    const badIndex = scores.findIndex((x) => !Number.isFinite(x));
    if (badIndex >= 0) throw nonFiniteLoss(this.stage, this.done, `the reward of sequence ${badIndex}`, scores[badIndex]);
    return scores;
  }

  /** Zeroes the value model's gradients and accumulates the clipped value loss of `sequences` (not applied). */
  private computeValueGradients(r: PpoRollouts, sequences: readonly number[]): { loss: number; tokens: number } {
    const mb = gatherSequences(r.cuSeqlens, sequences, { ids: r.ids, actionMask: r.actionMask, values: r.values, returns: r.returns });
    this.value.zeroGrad();
    const fw = this.value.forward({ ids: mb.ids, cuSeqlens: mb.cuSeqlens }, { lm: false, score: true, grad: true });
    let dValues: Tensor | null = null;
    try {
      const current = rowsToTokens(fw.values!.toArray() as Float32Array, mb.cuSeqlens);
      const out = valueLoss({ values: current, oldValues: mb.values, returns: mb.returns, actionMask: mb.actionMask, cuSeqlens: mb.cuSeqlens, clipRange: this.o.valueClip });
      if (!Number.isFinite(out.loss)) throw nonFiniteLoss(this.stage, this.done, 'the value loss', out.loss);
      dValues = Tensor.from(tokensToRows(out.dValues, mb.cuSeqlens), { device: this.value.device });
      this.value.backward(fw, { dValues });
      return { loss: out.loss, tokens: mb.ids.length };
    } finally {
      fw.dispose();
      dValues?.dispose();
    }
  }
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

// ---- option validation: every message names the option ----

function validateOptions(options: PpoTrainerOptions): Resolved {
  const fn = 'PpoTrainer';
  const fail = (code: 'ERR_TALARIA_DTYPE' | 'ERR_TALARIA_RANGE' | 'ERR_TALARIA_SHAPE' | 'ERR_TALARIA_DEVICE', message: string): never => {
    throw talariaError(code, `${fn}: ${message}`);
  };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) fail('ERR_TALARIA_DTYPE', `options must be an object, got ${describeValue(options)}`);
  for (const key of Object.keys(options)) if (!OPTION_NAMES.includes(key)) fail('ERR_TALARIA_RANGE', `unknown option '${key}'`);
  const o = options as unknown as Record<string, unknown>;
  const num = (name: string, value: unknown, fallback: number | undefined, ok: (x: number) => boolean, expected: string): number => {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== 'number') return fail('ERR_TALARIA_DTYPE', `${name} must be a number (${expected}), got ${describeValue(value)}`);
    if (Number.isNaN(value) || !ok(value)) fail('ERR_TALARIA_RANGE', `${name} must be ${expected}, got ${value}`);
    return value;
  };
  const int = (name: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER) =>
    num(name, o[name], fallback, (x) => Number.isSafeInteger(x) && x >= min && x <= max, `an integer in [${min}, ${max}]`);
  const finite = (name: string, value: unknown, fallback: number | undefined, min: number, strict: boolean) =>
    num(name, value, fallback, (x) => Number.isFinite(x) && (strict ? x > min : x >= min), `a finite number ${strict ? '>' : '>='} ${min}`);

  const tokenizer = options.tokenizer;
  if (tokenizer === null || typeof tokenizer !== 'object' || !Number.isInteger(tokenizer.vocabSize) || !Number.isInteger(tokenizer.eosId) || !Array.isArray(tokenizer.neverSample))
    fail('ERR_TALARIA_DTYPE', `tokenizer must be a Tokenizer (vocabSize, eosId, neverSample...), got ${describeValue(tokenizer)}`);
  const isModel = (m: unknown): m is TransformerModel => m !== null && typeof m === 'object' && typeof (m as TransformerModel).forward === 'function' && typeof (m as TransformerModel).config === 'object';
  const model = (name: string, head: 'lm' | 'score', trainable: boolean): TransformerModel => {
    const m = o[name];
    if (!isModel(m)) return fail('ERR_TALARIA_DTYPE', `${name} must be a TransformerModel, got ${describeValue(m)}`);
    if (!m.heads[head]) fail('ERR_TALARIA_RANGE', `${name} must have ${head === 'lm' ? 'an LM head' : 'a score head'}`);
    if (trainable && !m.trainable) fail('ERR_TALARIA_RANGE', `${name} must be trainable (it is frozen)`);
    if (m.config.vocabSize !== tokenizer.vocabSize) fail('ERR_TALARIA_SHAPE', `${name} has vocabSize ${m.config.vocabSize}, the tokenizer ${tokenizer.vocabSize}`);
    return m;
  };
  const policy = model('policy', 'lm', true);
  const reference = model('reference', 'lm', false);
  const value = model('value', 'score', true);
  const models = [policy, reference, value];
  if ((o.reward === undefined) === (o.rewardFn === undefined)) fail('ERR_TALARIA_RANGE', 'give exactly one of reward (a reward model) and rewardFn');
  if (o.reward !== undefined) models.push(model('reward', 'score', false));
  else if (typeof o.rewardFn !== 'function') fail('ERR_TALARIA_DTYPE', `rewardFn must be a function, got ${describeValue(o.rewardFn)}`);
  for (const m of models) if (m.device !== policy.device) fail('ERR_TALARIA_DEVICE', `every model must be on the policy's device ${policy.device}; one is on ${m.device}`);
  if (new Set(models).size !== models.length)
    fail('ERR_TALARIA_RANGE', 'policy, reference, value and reward must be distinct model objects');
  const missing = tokenizer.neverSample.find((id) => !policy.suppressTokens.includes(id));
  if (missing !== undefined) fail('ERR_TALARIA_RANGE', `policy.suppressTokens must include the tokenizer's neverSample ids (${tokenizer.neverSample.join(', ')}); ${missing} is missing`);
  const sameSet = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x) => b.includes(x));
  if (!sameSet(policy.suppressTokens, reference.suppressTokens))
    fail('ERR_TALARIA_RANGE', `reference.suppressTokens must equal the policy's [${policy.suppressTokens.join(', ')}] (both are scored the same way), got [${reference.suppressTokens.join(', ')}]`);

  int('iterations', undefined, 1);
  const maxNewTokens = int('maxNewTokens', undefined, 1);
  const prompts = o.prompts;
  if (!Array.isArray(prompts)) fail('ERR_TALARIA_DTYPE', `prompts must be an array of Int32Array, got ${describeValue(prompts)}`);
  if ((prompts as unknown[]).length === 0) fail('ERR_TALARIA_SHAPE', 'prompts must hold at least one prompt');
  const maxPositions = Math.min(...models.map((m) => m.config.maxPositions));
  (prompts as unknown[]).forEach((p, i) => {
    if (!(p instanceof Int32Array)) fail('ERR_TALARIA_DTYPE', `prompts[${i}] must be an Int32Array, got ${describeValue(p)}`);
    const prompt = p as Int32Array;
    if (prompt.length === 0) fail('ERR_TALARIA_SHAPE', `prompts[${i}] must hold at least one token (BOS)`);
    const bad = prompt.findIndex((id) => id < 0 || id >= tokenizer.vocabSize);
    if (bad >= 0) fail('ERR_TALARIA_RANGE', `prompts[${i}][${bad}] must be a token id in [0, ${tokenizer.vocabSize}), got ${prompt[bad]}`);
    if (prompt.length + maxNewTokens > maxPositions)
      fail('ERR_TALARIA_RANGE', `prompts[${i}] has ${prompt.length} tokens: with maxNewTokens ${maxNewTokens} it exceeds max_position_embeddings ${maxPositions}`);
  });
  const rollouts = int('rolloutsPerIteration', 512, 1);
  const minibatch = int('minibatchSize', Math.min(64, rollouts), 1, rollouts);
  const epochs = int('epochs', 1, 1);
  const temperature = num('temperature', o.temperature, 1, (x) => x >= 2 ** -100 && x <= 2 ** 100, 'a number in [2^-100, 2^100]');
  finite('klCoef', o.klCoef, 0.02, 0, false);
  if (o.adaptiveKl !== undefined) {
    const a = o.adaptiveKl as Record<string, unknown> | null;
    if (a === null || typeof a !== 'object') fail('ERR_TALARIA_DTYPE', `adaptiveKl must be an object {target, horizon}, got ${describeValue(a)}`);
    finite('adaptiveKl.target', a!.target, undefined, 0, true);
    finite('adaptiveKl.horizon', a!.horizon, undefined, 0, true);
  }
  const unit = (name: string, fallback: number) => num(name, o[name], fallback, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const gamma = unit('gamma', 1);
  const lambda = unit('lambda', 0.95);
  const clip = num('clip', o.clip, 0.2, (x) => x > 0 && x < 1, 'a number in (0, 1)');
  const dualClip = o.dualClip === undefined ? undefined : num('dualClip', o.dualClip, undefined, (x) => Number.isFinite(x) && x > 1, 'a finite number > 1');
  const valueClip = num('valueClip', o.valueClip, 0.2, (x) => x > 0, 'a number > 0 (Infinity disables clipping)');
  const missingEosPenalty = finite('missingEosPenalty', o.missingEosPenalty, 0, 0, false);
  if (o.whiten !== undefined && typeof o.whiten !== 'boolean') fail('ERR_TALARIA_DTYPE', `whiten must be a boolean, got ${describeValue(o.whiten)}`);
  const lr = finite('lr', o.lr, undefined, 0, true);
  const valueLr = finite('valueLr', o.valueLr, lr, 0, true);
  finite('weightDecay', o.weightDecay, 0, 0, false);
  finite('maxGradNorm', o.maxGradNorm, 1, 0, true);
  if (o.emaDecay !== undefined) num('emaDecay', o.emaDecay, undefined, (x) => x >= 0 && x < 1, 'a number in [0, 1)');
  const seed = int('seed', 0, 0);
  let ptxCoef = 0;
  let ptxDocs = 0;
  if (o.ptx !== undefined) {
    const p = o.ptx as Record<string, unknown> | null;
    if (p === null || typeof p !== 'object') fail('ERR_TALARIA_DTYPE', `ptx must be an object {examples, coef?, docsPerMinibatch?}, got ${describeValue(p)}`);
    const examples = p!.examples;
    if (!Array.isArray(examples)) fail('ERR_TALARIA_DTYPE', `ptx.examples must be an array of {ids, lossMask?}, got ${describeValue(examples)}`);
    if ((examples as unknown[]).length === 0) fail('ERR_TALARIA_SHAPE', 'ptx.examples must hold at least one document');
    (examples as EncodedExample[]).forEach((e, i) => {
      if (e === null || typeof e !== 'object' || !(e.ids instanceof Int32Array)) fail('ERR_TALARIA_DTYPE', `ptx.examples[${i}].ids must be an Int32Array, got ${describeValue(e?.ids)}`);
      if (e.ids.length < 2 || e.ids.length > policy.config.maxPositions) fail('ERR_TALARIA_SHAPE', `ptx.examples[${i}] must hold 2 to ${policy.config.maxPositions} tokens, got ${e.ids.length}`);
      const bad = e.ids.findIndex((id) => id < 0 || id >= tokenizer.vocabSize);
      if (bad >= 0) fail('ERR_TALARIA_RANGE', `ptx.examples[${i}].ids[${bad}] must be a token id in [0, ${tokenizer.vocabSize}), got ${e.ids[bad]}`);
      if (e.lossMask !== undefined && (!(e.lossMask instanceof Uint8Array) || e.lossMask.length !== e.ids.length))
        fail('ERR_TALARIA_SHAPE', `ptx.examples[${i}].lossMask must be a Uint8Array of ${e.ids.length} values`);
    });
    ptxCoef = finite('ptx.coef', p!.coef, instructgptPtx.coef, 0, false);
    ptxDocs = num('ptx.docsPerMinibatch', p!.docsPerMinibatch, instructgptPtx.docsPerEpisode * minibatch, (x) => Number.isSafeInteger(x) && x >= 1, 'an integer >= 1');
  }
  return {
    rollouts, minibatch, epochs, temperature, maxNewTokens, gamma, lambda, clip, dualClip, valueClip, missingEosPenalty,
    whiten: (o.whiten as boolean | undefined) ?? true, lr, valueLr, seed, ptxCoef, ptxDocs,
  };
}
