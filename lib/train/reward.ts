// Reward modelling (InstructGPT stage 2). Labelers rank K completions of a prompt; all C(K, 2)
// comparisons of one prompt form ONE batch element, so a prompt costs K forward passes (its K sequences
// prompt+completion packed into the batch), not C(K, 2)·2. Each sequence is scored at its LAST token: the
// EOS when the response ended, else its last response token; the packed layout has no padding, so a
// score can never be read at a pad or at a prompt token. The loss is the K-wise ranking loss
// −1/C(K,2) Σ log σ(r_w − r_l) (lib/ops/preference.ts), its dScores go back into the score head at those
// last tokens only. After training, finish() shifts the score bias so the demonstrations score 0 on
// average (InstructGPT), which makes the reward's zero meaningful for PPO.
import { concatTokens, promptTokens } from '../data/batches.js';
import { describeValue } from '../data/describe.js';
import type { RewardRecord } from '../data/records.js';
import { ShuffledOrder } from '../data/shuffled-order.js';
import { TalariaError, talariaError } from '../native.js';
import { type ForwardResult, TransformerModel } from '../nn/model.js';
import { rankingLoss } from '../ops/preference.js';
import { Tensor } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import {
  checkNumberOption, checkOptimization, checkRestored, checkTokenIds, checkTrainerBasics, forEachBudgetChunk, type OptimizationOptions,
  optionalNumber, ScheduledAdamW, stepsForEpochs,
} from './sft.js';
import { nonFiniteLoss, type RestoredCheckpoint, type StepMetrics, type Trainer, type TrainerCheckpoint } from './trainer.js';

/** One prompt's ranked completions, as tokens. */
export interface RewardExample {
  /** BOS + the prompt's tokens. */
  prompt: Int32Array;
  /** K >= 2 responses, each non-empty; EOS included when the response ended (else it is scored at its last token). */
  completions: Int32Array[];
  /** The rank of each completion, length K, integers in [0, K), lower is better; equal ranks are ties (excluded). */
  ranks: number[];
}

/** A demonstration (prompt and the labeler-written completion) for the bias shift. */
export interface ReferenceCompletion {
  prompt: Int32Array;
  completion: Int32Array;
}

export interface RewardTrainerOptions extends OptimizationOptions {
  /** A trainable model with a score head (TransformerModel.fromPretrained(sftDir, { lm: false, score: true }, { initMissingScore: true })). Not disposed by the trainer. */
  model: TransformerModel;
  /** Ranked prompts (encodeRewardRecords). */
  train: readonly RewardExample[];
  /** Held-out ranked prompts for evaluate(). */
  eval?: readonly RewardExample[];
  /** Passes over `train`, a number > 0 (InstructGPT: 1). totalSteps = ceil(epochs × ceil(prompts / promptsPerBatch)). Default 1. */
  epochs?: number;
  /** Prompts per optimizer step, an integer >= 1 (InstructGPT: 64). The last batch of an epoch may hold fewer. Default 64. */
  promptsPerBatch?: number;
  /**
   * Most tokens in one forward pass, an integer >= the largest prompt's K sequences (a prompt's sequences
   * are never split). A batch over budget runs as several forwards whose gradients add up to the same
   * step. Default Infinity: one forward per batch.
   */
  batchTokens?: number;
  /** The demonstrations: finish() shifts the score bias so they score 0 on average. Without them, no shift. */
  referenceCompletions?: readonly ReferenceCompletion[];
}

export interface RankingGradientOptions {
  /** Most tokens in one forward pass (an integer >= each prompt's K sequences together, or Infinity). Default Infinity. */
  batchTokens?: number;
  /** The stage and step a nonFiniteLoss error names. Default 'rm', 0. */
  stage?: string;
  step?: number;
}

/** What one batch's loss and gradient came to. */
export interface RankingGradientReport {
  /** The K-wise loss: mean over prompts with a non-tied pair of Σ_pairs −log σ(r_w − r_l) / C(K, 2). */
  loss: number;
  /** Fraction of the non-tied pairs with r_w > r_l. */
  accuracy: number;
  /** Non-tied pairs. */
  pairs: number;
  /** Tokens through the model. */
  tokens: number;
}

/**
 * The reward model as a Trainer: one AdamW step per batch of promptsPerBatch ranked prompts, each prompt
 * one batch element of the K-wise ranking loss. Checkpoints hold the step, the data order's position and
 * AdamW's moments: restore() continues bitwise exactly (CPU).
 *
 * @example
 * const model = TransformerModel.fromPretrained('out/sft/final/policy', { lm: false, score: true }, { initMissingScore: true });
 * const trainer = new RewardTrainer({
 *   model, train: encodeRewardRecords(tokenizer, records), epochs: 1, promptsPerBatch: 64, lr: 9e-6,
 *   referenceCompletions: demonstrations,
 * });
 * while (trainer.stepsDone < trainer.totalSteps) console.log(trainer.trainStep().accuracy);
 * trainer.finish(); // demonstrations now score 0 on average
 */
export class RewardTrainer implements Trainer {
  readonly stage = 'rm';
  readonly totalSteps: number;
  private done = 0;
  private readonly model: TransformerModel;
  private readonly train: readonly RewardExample[];
  private readonly evalExamples: readonly RewardExample[];
  private readonly references: readonly ReferenceCompletion[];
  private readonly promptsPerBatch: number;
  private readonly batchTokens: number;
  private readonly order: ShuffledOrder;
  private readonly optimizer: ScheduledAdamW;

  constructor(options: RewardTrainerOptions) {
    const fn = 'RewardTrainer';
    checkTrainerBasics(fn, options, 'score');
    const model = options.model;
    const epochs = optionalNumber(fn, options, 'epochs', 1, { above: 0 });
    const promptsPerBatch = optionalNumber(fn, options, 'promptsPerBatch', 64, { integer: true, min: 1 });
    const batchTokens = optionalNumber(fn, options, 'batchTokens', Infinity, { integer: true, min: 1, infinite: true });
    const optimization = checkOptimization(fn, options);
    checkRewardExamples(fn, 'options.train', options.train, model, batchTokens, false);
    if (options.eval !== undefined) checkRewardExamples(fn, 'options.eval', options.eval, model, batchTokens, true);
    if (options.referenceCompletions !== undefined) checkReferences(fn, options.referenceCompletions, model, batchTokens);
    this.model = model;
    this.train = options.train.slice();
    this.evalExamples = options.eval?.slice() ?? [];
    this.references = options.referenceCompletions?.slice() ?? [];
    this.promptsPerBatch = promptsPerBatch;
    this.batchTokens = batchTokens;
    this.order = new ShuffledOrder(this.train.length, optimization.seed);
    this.totalSteps = stepsForEpochs(epochs, () => Math.ceil(this.train.length / promptsPerBatch));
    this.optimizer = new ScheduledAdamW(model, optimization, this.totalSteps);
  }

  get stepsDone(): number {
    return this.done;
  }

  /** One AdamW step on the next promptsPerBatch prompts: {loss, accuracy, pairs, tokens, lr, gradNorm, epoch}. */
  trainStep(): StepMetrics {
    if (this.done >= this.totalSteps) throw talariaError('ERR_TALARIA_RANGE', `rm: trainStep called after the last of ${this.totalSteps} steps`);
    const { epoch, indices } = this.order.nextInEpoch(this.promptsPerBatch);
    this.model.zeroGrad();
    const report = rankingGradient(this.model, indices.map((i) => this.train[i]), this.batchTokens, this.stage, this.done);
    const { lr, gradNorm } = this.optimizer.step(this.stage, this.done);
    this.done++;
    return { loss: report.loss, accuracy: report.accuracy, pairs: report.pairs, tokens: report.tokens, lr, gradNorm, epoch };
  }

  /** {evalLoss, evalAccuracy}: the K-wise loss and the pairwise accuracy over the whole eval set, no gradients. */
  evaluate(): StepMetrics {
    if (this.evalExamples.length === 0) return {};
    const { offsets, ranks } = rankLayout(this.evalExamples);
    const scores = new Float32Array(ranks.length);
    // promptsPerBatch prompts per scoring call, so evaluation never holds more than a training batch.
    for (let start = 0; start < this.evalExamples.length; start += this.promptsPerBatch) {
      const chunk = this.evalExamples.slice(start, start + this.promptsPerBatch);
      scores.set(scoreSequences(this.model, chunk.flatMap(sequencesOf), this.batchTokens), offsets[start]);
    }
    const result = rankingLoss({ scores, offsets, ranks });
    return { evalLoss: result.loss, evalAccuracy: result.stats.accuracy, evalPairs: result.stats.pairs };
  }

  /**
   * The InstructGPT bias shift: score.bias −= the mean score of the reference completions, so they score
   * 0 on average. Returns {biasShift, meanReferenceScore} (the mean after the shift, ≈ 0); without
   * reference completions nothing changes and biasShift is 0.
   */
  finish(): StepMetrics {
    if (this.references.length === 0) return { biasShift: 0 };
    const before = this.meanReferenceScore();
    if (!Number.isFinite(before)) throw nonFiniteLoss(this.stage, this.done, 'mean reference score', before);
    const bias = this.model.parameter('score.bias');
    try {
      const old = (bias.toArray() as Float32Array)[0];
      bias.copyFrom(Float32Array.of(old - before));
    } finally {
      bias.dispose();
    }
    return { biasShift: -before, meanReferenceScore: this.meanReferenceScore() };
  }

  checkpoint(): TrainerCheckpoint {
    const { optimizerStep, tensors } = this.optimizer.checkpoint();
    return {
      state: { stage: this.stage, stepsDone: this.done, totalSteps: this.totalSteps, optimizerStep, order: this.order.position() },
      tensors,
      models: { reward: this.model },
    };
  }

  restore(checkpoint: RestoredCheckpoint): void {
    const fn = 'rm: restore';
    checkRestored(fn, checkpoint, 'reward', this.model, ['order']);
    this.optimizer.restore(checkpoint);
    this.order.restore(this.order.check(checkpoint.state.order, `${fn}: checkpoint.state.order`));
    this.model.loadParameters(checkpoint.models.reward);
    this.done = checkpoint.state.stepsDone as number;
  }

  finalModels(): Record<string, TransformerModel> {
    return { reward: this.model };
  }

  /** Frees the optimizer state (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }

  /** Mean (f64) of the reference completions' scores, scored promptsPerBatch at a time. */
  private meanReferenceScore(): number {
    let sum = 0;
    for (let start = 0; start < this.references.length; start += this.promptsPerBatch) {
      const chunk = this.references.slice(start, start + this.promptsPerBatch).map((r) => concatTokens(r.prompt, r.completion));
      for (const s of scoreSequences(this.model, chunk, this.batchTokens)) sum += s;
    }
    return sum / this.references.length;
  }
}

/**
 * Accumulates into model.grads the gradient of the K-wise ranking loss of `examples` (call zeroGrad()
 * first) and returns the loss and accuracy. The prompts run in forwards of at most batchTokens tokens
 * (a prompt's K sequences stay together); each forward's share of the loss is weighted by its ranked
 * prompts over the batch's, so the sum is the gradient of the whole batch's mean. Throws nonFiniteLoss
 * when a loss is not finite (the gradients are then partial: do not apply them).
 *
 * @example
 * model.zeroGrad();
 * const { loss, accuracy } = accumulateRankingGradient(model, batch);
 */
export function accumulateRankingGradient(model: TransformerModel, examples: readonly RewardExample[], options: RankingGradientOptions = {}): RankingGradientReport {
  const fn = 'accumulateRankingGradient';
  checkTrainerBasics(fn, { model }, 'score', 'model');
  if (options === null || typeof options !== 'object') throw new TalariaError(`${fn}: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
  const batchTokens = optionalNumber(fn, options, 'batchTokens', Infinity, { integer: true, min: 1, infinite: true });
  checkRewardExamples(fn, 'examples', examples, model, batchTokens, true);
  if (options.stage !== undefined && typeof options.stage !== 'string')
    throw new TalariaError(`${fn}: options.stage must be a string, got ${describeValue(options.stage)}`, 'ERR_TALARIA_DTYPE');
  const step = optionalNumber(fn, options, 'step', 0, { integer: true, min: 0 });
  return rankingGradient(model, examples, batchTokens, options.stage ?? 'rm', step);
}

/** accumulateRankingGradient on checked input. */
function rankingGradient(model: TransformerModel, examples: readonly RewardExample[], batchTokens: number, stage: string, step: number): RankingGradientReport {
  const rankedPrompts = examples.filter((e) => new Set(e.ranks).size > 1).length;
  const groupTokens = examples.map((e) => sequencesOf(e).reduce((n, s) => n + s.length, 0));
  let loss = 0;
  let correct = 0;
  let pairs = 0;
  let tokens = 0;
  // Each chunk's backward runs before the next forward, so only one chunk's activations are alive. A
  // non-finite loss stops before its backward; the caller's optimizer step never runs.
  forEachBudgetChunk(groupTokens, batchTokens, (start, end) => {
    const group = examples.slice(start, end);
    const { out, scores, last, n } = forwardScores(model, group.flatMap(sequencesOf), true);
    try {
      const { offsets, ranks } = rankLayout(group);
      const result = rankingLoss({ scores, offsets, ranks });
      if (!Number.isFinite(result.loss)) throw nonFiniteLoss(stage, step, 'loss', result.loss);
      const weight = rankedPrompts > 0 ? result.stats.rankedPrompts / rankedPrompts : 0;
      loss += weight * result.loss;
      correct += Math.round(result.stats.accuracy * result.stats.pairs);
      pairs += result.stats.pairs;
      tokens += n;
      // d loss / d values: each sequence's dScore at its last token, 0 everywhere else.
      const dValues = new Float32Array(n);
      last.forEach((t, i) => (dValues[t] = weight === 1 ? result.dScores[i] : weight * result.dScores[i]));
      const dv = Tensor.from(dValues, { device: model.device });
      try {
        model.backward(out, { dValues: dv });
      } finally {
        dv.dispose();
      }
    } finally {
      out.dispose();
    }
  });
  return { loss, accuracy: pairs > 0 ? correct / pairs : 0, pairs, tokens };
}

/**
 * The score-head output of each sequence at its last token (the EOS of a finished response, else its last
 * token), run without gradients in forwards of at most batchTokens tokens. Each sequence is its full
 * tokens (BOS + prompt + response), unpadded.
 *
 * @example
 * const rewards = scoreSequences(rm, completions.map((c) => concatTokens(prompt, c)), 16384);
 */
export function scoreSequences(model: TransformerModel, sequences: readonly Int32Array[], batchTokens: number): Float32Array {
  const fn = 'scoreSequences';
  if (!(model instanceof TransformerModel))
    throw new TalariaError(`${fn}: model must be a TransformerModel, got ${describeValue(model)}`, 'ERR_TALARIA_DTYPE');
  if (!model.heads.score) throw new TalariaError(`${fn}: model must have a score head (heads { score: true }), got heads ${JSON.stringify(model.heads)}`, 'ERR_TALARIA_RANGE');
  if (!Array.isArray(sequences)) throw new TalariaError(`${fn}: sequences must be an array of Int32Array, got ${describeValue(sequences)}`, 'ERR_TALARIA_DTYPE');
  checkNumberOption(fn, 'batchTokens', batchTokens, { integer: true, min: 1, infinite: true });
  sequences.forEach((s, i) => {
    checkTokenIds(fn, `sequences[${i}]`, s, model.config.vocabSize);
    checkLength(fn, `sequences[${i}]`, s.length, model, batchTokens);
  });
  const scores = new Float32Array(sequences.length);
  forEachBudgetChunk(sequences.map((s) => s.length), batchTokens, (start, end) => {
    const scored = forwardScores(model, sequences.slice(start, end), false);
    scored.out.dispose();
    scores.set(scored.scores, start);
  });
  return scores;
}

/**
 * Reward records as token-level examples: prompt = BOS + prompt tokens, each completion its tokens + EOS,
 * ranks from the record's ranking (completions[ranking[0]] is the best, rank 0). With maxLen, a prompt
 * must leave room for one completion token (1 + prompt tokens < maxLen) and a completion that does not
 * fit is cut from the right and loses its EOS (it is then scored at its last kept token).
 *
 * @example
 * const train = encodeRewardRecords(new ByteTokenizer(), [{ prompt: 'Hi', completions: [' hello', ' go away'], ranking: [0, 1] }]);
 */
export function encodeRewardRecords(tokenizer: Tokenizer, records: readonly RewardRecord[], maxLen?: number): RewardExample[] {
  const fn = 'encodeRewardRecords';
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function' || !Number.isInteger(tokenizer.bosId) || !Number.isInteger(tokenizer.eosId))
    throw new TalariaError(`${fn}: tokenizer must be a Tokenizer (encode, bosId, eosId), got ${describeValue(tokenizer)}`, 'ERR_TALARIA_DTYPE');
  if (!Array.isArray(records)) throw new TalariaError(`${fn}: records must be an array, got ${describeValue(records)}`, 'ERR_TALARIA_DTYPE');
  if (maxLen !== undefined) checkNumberOption(fn, 'maxLen', maxLen, { integer: true, min: 2 });
  const limit = maxLen ?? Infinity;
  return records.map((record, i) => {
    const at = `records[${i}]`;
    if (record === null || typeof record !== 'object') throw new TalariaError(`${fn}: ${at} must be an object, got ${describeValue(record)}`, 'ERR_TALARIA_DTYPE');
    if (typeof record.prompt !== 'string') throw new TalariaError(`${fn}: ${at}.prompt must be a string, got ${describeValue(record.prompt)}`, 'ERR_TALARIA_DTYPE');
    if (!Array.isArray(record.completions) || !record.completions.every((c: unknown) => typeof c === 'string' && c !== ''))
      throw new TalariaError(`${fn}: ${at}.completions must be an array of non-empty strings, got ${describeValue(record.completions)}`, 'ERR_TALARIA_DTYPE');
    const k = record.completions.length;
    if (k < 2) throw new TalariaError(`${fn}: ${at}.completions must hold at least 2 completions, got ${k}`, 'ERR_TALARIA_SHAPE');
    const ranking = record.ranking;
    if (!Array.isArray(ranking) || ranking.length !== k || new Set(ranking).size !== k || !ranking.every((r) => Number.isInteger(r) && r >= 0 && r < k))
      throw new TalariaError(`${fn}: ${at}.ranking must be a permutation of 0..${k - 1} (indices of completions, best first), got ${describeValue(ranking)}`, 'ERR_TALARIA_RANGE');
    const prompt = promptTokens(tokenizer, record.prompt);
    if (prompt.length >= limit)
      throw new TalariaError(`${fn}: ${at}: BOS + prompt is ${prompt.length} tokens, which leaves no room for a completion within maxLen ${limit}`, 'ERR_TALARIA_RANGE');
    const room = limit - prompt.length;
    const completions = record.completions.map((text: string) => {
      const tokens = tokenizer.encode(text);
      if (tokens.length + 1 <= room) return concatTokens(tokens, Int32Array.of(tokenizer.eosId));
      return tokens.slice(0, room); // cut: no EOS, the model must not learn that the response ended here
    });
    const ranks = new Array<number>(k);
    ranking.forEach((completion, rank) => (ranks[completion] = rank));
    return { prompt, completions, ranks };
  });
}

// ---- internals ----

/** A prompt's K sequences: prompt + completion each. */
function sequencesOf(example: RewardExample): Int32Array[] {
  return example.completions.map((c) => concatTokens(example.prompt, c));
}

/** The ranking kernel's offsets (completions per prompt) and ranks for a list of prompts. */
function rankLayout(examples: readonly RewardExample[]): { offsets: Int32Array; ranks: Int32Array } {
  const offsets = new Int32Array(examples.length + 1);
  examples.forEach((e, p) => (offsets[p + 1] = offsets[p] + e.completions.length));
  return { offsets, ranks: Int32Array.from(examples.flatMap((e) => e.ranks)) };
}

/** Packs the sequences into one batch, runs the score head and reads each sequence's score at its last token. */
function forwardScores(model: TransformerModel, sequences: readonly Int32Array[], grad: boolean): { out: ForwardResult; scores: Float32Array; last: Int32Array; n: number } {
  const cuSeqlens = new Int32Array(sequences.length + 1);
  sequences.forEach((s, i) => (cuSeqlens[i + 1] = cuSeqlens[i] + s.length));
  const n = cuSeqlens[sequences.length];
  const ids = new Int32Array(n);
  sequences.forEach((s, i) => ids.set(s, cuSeqlens[i]));
  const out = model.forward({ ids, cuSeqlens }, { lm: false, score: true, grad });
  try {
    const values = out.values!.toArray() as Float32Array;
    const last = Int32Array.from({ length: sequences.length }, (_, i) => cuSeqlens[i + 1] - 1);
    const scores = Float32Array.from(last, (t) => values[t]);
    return { out, scores, last, n };
  } catch (err) {
    out.dispose();
    throw err;
  }
}

function checkLength(fn: string, name: string, length: number, model: TransformerModel, batchTokens: number): void {
  if (length > model.config.maxPositions)
    throw new TalariaError(`${fn}: ${name} is ${length} tokens, more than the model's max_position_embeddings ${model.config.maxPositions}`, 'ERR_TALARIA_RANGE');
  if (length > batchTokens) throw new TalariaError(`${fn}: ${name} is ${length} tokens, more than batchTokens ${batchTokens}`, 'ERR_TALARIA_RANGE');
}

function checkRewardExamples(fn: string, name: string, examples: unknown, model: TransformerModel, batchTokens: number, allowEmpty: boolean): void {
  if (!Array.isArray(examples)) throw new TalariaError(`${fn}: ${name} must be an array of {prompt, completions, ranks}, got ${describeValue(examples)}`, 'ERR_TALARIA_DTYPE');
  if (examples.length === 0 && !allowEmpty) throw new TalariaError(`${fn}: ${name} must hold at least one prompt, got an empty array`, 'ERR_TALARIA_SHAPE');
  const vocab = model.config.vocabSize;
  examples.forEach((example: RewardExample, i) => {
    const at = `${name}[${i}]`;
    if (example === null || typeof example !== 'object') throw new TalariaError(`${fn}: ${at} must be an object {prompt, completions, ranks}, got ${describeValue(example)}`, 'ERR_TALARIA_DTYPE');
    checkTokenIds(fn, `${at}.prompt`, example.prompt, vocab);
    if (!Array.isArray(example.completions)) throw new TalariaError(`${fn}: ${at}.completions must be an array of Int32Array, got ${describeValue(example.completions)}`, 'ERR_TALARIA_DTYPE');
    const k = example.completions.length;
    if (k < 2) throw new TalariaError(`${fn}: ${at}.completions must hold at least 2 completions to rank, got ${k}`, 'ERR_TALARIA_SHAPE');
    let group = 0;
    example.completions.forEach((c, j) => {
      checkTokenIds(fn, `${at}.completions[${j}]`, c, vocab);
      checkLength(fn, `${at}: prompt + completions[${j}]`, example.prompt.length + c.length, model, Infinity);
      group += example.prompt.length + c.length;
    });
    if (group > batchTokens) throw new TalariaError(`${fn}: ${at}: its ${k} sequences are ${group} tokens, more than options.batchTokens ${batchTokens}`, 'ERR_TALARIA_RANGE');
    if (!Array.isArray(example.ranks)) throw new TalariaError(`${fn}: ${at}.ranks must be an array of numbers, got ${describeValue(example.ranks)}`, 'ERR_TALARIA_DTYPE');
    if (example.ranks.length !== k) throw new TalariaError(`${fn}: ${at}.ranks must hold one rank per completion (${k}), got ${example.ranks.length}`, 'ERR_TALARIA_SHAPE');
    const bad = example.ranks.findIndex((r) => !Number.isInteger(r) || r < 0 || r >= k);
    if (bad >= 0) throw new TalariaError(`${fn}: ${at}.ranks[${bad}] must be an integer in [0, ${k}), got ${describeValue(example.ranks[bad])}`, 'ERR_TALARIA_RANGE');
  });
}

function checkReferences(fn: string, references: unknown, model: TransformerModel, batchTokens: number): void {
  const name = 'options.referenceCompletions';
  if (!Array.isArray(references)) throw new TalariaError(`${fn}: ${name} must be an array of {prompt, completion}, got ${describeValue(references)}`, 'ERR_TALARIA_DTYPE');
  references.forEach((r: ReferenceCompletion, i) => {
    const at = `${name}[${i}]`;
    if (r === null || typeof r !== 'object') throw new TalariaError(`${fn}: ${at} must be an object {prompt, completion}, got ${describeValue(r)}`, 'ERR_TALARIA_DTYPE');
    checkTokenIds(fn, `${at}.prompt`, r.prompt, model.config.vocabSize);
    checkTokenIds(fn, `${at}.completion`, r.completion, model.config.vocabSize);
    checkLength(fn, `${at}: prompt + completion`, r.prompt.length + r.completion.length, model, batchTokens);
  });
}

