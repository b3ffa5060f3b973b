// Supervised fine-tuning (InstructGPT stage 1) and plain language-model pretraining: next-token
// cross-entropy over token-budget batches, one AdamW step per batch. The loss covers only the tokens an
// example's lossMask marks (an SFT completion and its EOS; every token of a pretraining text), so the
// prompt is context and never a target.
//
// This file also holds what every trainer shares (option checks, AdamW behind a learning-rate schedule
// with its checkpoint round trip); lib/train/reward.ts imports them from here.
import { describeValue } from '../data/describe.js';
import { encodePretraining, encodeSft, packBatch, TokenBudgetBatcher, type BatcherPosition, type EncodedExample } from '../data/batches.js';
import type { SftRecord } from '../data/records.js';
import { TalariaError, talariaError } from '../native.js';
import { TransformerModel } from '../nn/model.js';
import { AdamW, learningRate, type LrSchedule } from '../nn/optim.js';
import { crossEntropy } from '../ops/logits.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { nonFiniteLoss, type RestoredCheckpoint, type StepMetrics, type Trainer, type TrainerCheckpoint } from './trainer.js';

// ---- shared by the trainers ----

/** The optimizer half of every trainer's options. */
export interface OptimizationOptions {
  /** Peak learning rate (after warmup), > 0. */
  lr: number;
  /** 'cosine' decays to 10% of lr at the last step (InstructGPT); 'constant' holds lr. Default 'cosine'. */
  schedule?: 'cosine' | 'constant';
  /** Steps of linear warmup from lr/warmupSteps to lr, an integer >= 0. Default 0. */
  warmupSteps?: number;
  /** AdamW decoupled weight decay on the weight matrices and embeddings (never norms or biases), >= 0. Default 0. */
  weightDecay?: number;
  /** Clip the global gradient norm to this, > 0 (Infinity: no clipping). Default 1. */
  maxGradNorm?: number;
  /** Seed of the data order, a safe integer. Default 0. */
  seed?: number;
}

/** @internal A number option: DTYPE when not a number, RANGE when outside [min, max] (or not an integer). */
export function checkNumberOption(fn: string, name: string, value: unknown, rule: { min?: number; max?: number; integer?: boolean; above?: number; infinite?: boolean }): number {
  if (typeof value !== 'number') throw new TalariaError(`${fn}: ${name} must be a number, got ${describeValue(value)}`, 'ERR_TALARIA_DTYPE');
  const infinite = rule.infinite === true && value === Infinity;
  const ok =
    (Number.isFinite(value) || infinite) &&
    (!rule.integer || infinite || Number.isSafeInteger(value)) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.max === undefined || value <= rule.max) &&
    (rule.above === undefined || value > rule.above);
  if (!ok) {
    const parts = [rule.integer ? (rule.infinite ? 'an integer (or Infinity)' : 'an integer') : rule.infinite ? 'a number' : 'a finite number'];
    if (rule.above !== undefined) parts.push(`> ${rule.above}`);
    if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
    if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
    throw new TalariaError(`${fn}: ${name} must be ${parts.join(' ')}, got ${value}`, 'ERR_TALARIA_RANGE');
  }
  return value;
}

/** @internal The options object itself, and a trainable model with the head the stage needs. */
export function checkTrainerBasics(fn: string, options: unknown, head: 'lm' | 'score', name = 'options.model'): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new TalariaError(`${fn}: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
  const model = (options as { model?: TransformerModel }).model;
  if (!(model instanceof TransformerModel)) throw new TalariaError(`${fn}: ${name} must be a TransformerModel, got ${describeValue(model)}`, 'ERR_TALARIA_DTYPE');
  if (!model.heads[head])
    throw new TalariaError(`${fn}: ${name} must have ${head === 'lm' ? 'an LM head' : 'a score head'} (heads { ${head}: true }), got heads ${JSON.stringify(model.heads)}`, 'ERR_TALARIA_RANGE');
  if (!model.trainable) throw new TalariaError(`${fn}: ${name} must be trainable, got a frozen model (trainable: false)`, 'ERR_TALARIA_RANGE');
}

/** @internal An optional number option with its default. */
export function optionalNumber(fn: string, options: object, name: string, fallback: number, rule: Parameters<typeof checkNumberOption>[3]): number {
  const value = (options as Record<string, unknown>)[name];
  return value === undefined ? fallback : checkNumberOption(fn, `options.${name}`, value, rule);
}

/** @internal Optimization options checked, with their defaults filled in. */
export interface CheckedOptimization {
  lr: number;
  schedule: 'cosine' | 'constant';
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
}

/** @internal Checks the optimization options (before any expensive set-up). */
export function checkOptimization(fn: string, options: OptimizationOptions): CheckedOptimization {
  const lr = checkNumberOption(fn, 'options.lr', options.lr, { above: 0 });
  const schedule = options.schedule ?? 'cosine';
  if (schedule !== 'cosine' && schedule !== 'constant')
    throw new TalariaError(`${fn}: options.schedule must be 'cosine' or 'constant', got ${describeValue(schedule)}`, 'ERR_TALARIA_RANGE');
  return {
    lr,
    schedule,
    warmupSteps: optionalNumber(fn, options, 'warmupSteps', 0, { integer: true, min: 0 }),
    weightDecay: optionalNumber(fn, options, 'weightDecay', 0, { min: 0 }),
    maxGradNorm: optionalNumber(fn, options, 'maxGradNorm', 1, { above: 0, infinite: true }),
    seed: optionalNumber(fn, options, 'seed', 0, { integer: true }),
  };
}

/**
 * @internal AdamW behind the learning-rate schedule of a run of `totalSteps` steps. step() applies one
 * update with the rate of step `stepsDone` and throws nonFiniteLoss (parameters untouched) when the
 * gradient norm is not finite.
 */
export class ScheduledAdamW {
  private readonly adam: AdamW;
  private readonly schedule: LrSchedule;

  constructor(model: TransformerModel, options: CheckedOptimization, totalSteps: number) {
    const { lr, warmupSteps } = options;
    this.schedule = options.schedule === 'cosine' ? { kind: 'cosine', lr, totalSteps, warmupSteps } : { kind: 'constant', lr, warmupSteps };
    const maxGradNorm = options.maxGradNorm === Infinity ? undefined : options.maxGradNorm;
    this.adam = new AdamW(model, { lr, weightDecay: options.weightDecay, maxGradNorm });
  }

  step(stage: string, stepsDone: number): { lr: number; gradNorm: number } {
    const lr = learningRate(this.schedule, stepsDone);
    const report = this.adam.apply(lr);
    if (!report.applied) throw nonFiniteLoss(stage, stepsDone, 'gradient norm', report.gradNorm);
    return { lr, gradNorm: report.gradNorm };
  }

  /** The moments for the checkpoint's tensors, and the step count for its state. */
  checkpoint(): { optimizerStep: number; tensors: Record<string, Float32Array> } {
    const { step, m, v } = this.adam.state();
    return { optimizerStep: step, tensors: { 'adam.m': m, 'adam.v': v } };
  }

  restore(checkpoint: RestoredCheckpoint): void {
    const { 'adam.m': m, 'adam.v': v } = checkpoint.tensors;
    this.adam.restore({ step: checkpoint.state.optimizerStep as number, m, v });
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/** @internal The checkpoint's state and model parameters, checked before anything is overwritten. */
export function checkRestored(fn: string, checkpoint: RestoredCheckpoint, role: string, model: TransformerModel, stateKeys: string[]): void {
  if (checkpoint === null || typeof checkpoint !== 'object' || !checkpoint.state || !checkpoint.tensors || !checkpoint.models)
    throw talariaError('ERR_TALARIA_FORMAT', `${fn}: checkpoint must be {state, tensors, models}, got ${describeValue(checkpoint)}`);
  for (const key of ['stepsDone', 'optimizerStep', ...stateKeys])
    if (checkpoint.state[key] === undefined) throw talariaError('ERR_TALARIA_FORMAT', `${fn}: checkpoint.state.${key} is missing`);
  const stepsDone = checkpoint.state.stepsDone;
  if (!Number.isSafeInteger(stepsDone) || (stepsDone as number) < 0)
    throw talariaError('ERR_TALARIA_FORMAT', `${fn}: checkpoint.state.stepsDone must be an integer >= 0, got ${describeValue(stepsDone)}`);
  const params = checkpoint.models[role];
  if (!(params instanceof Float32Array) || params.length !== model.layout.totalNumel)
    throw talariaError('ERR_TALARIA_FORMAT', `${fn}: checkpoint.models.${role} must be a Float32Array of ${model.layout.totalNumel} parameters (this model's layout), got ${describeValue(params)}`);
}

/** @internal Steps of a run of `epochs` (a positive number) over epochs of the given batch counts. */
export function stepsForEpochs(epochs: number, batchesInEpoch: (epoch: number) => number): number {
  const whole = Math.floor(epochs);
  let steps = 0;
  for (let e = 0; e < whole; e++) steps += batchesInEpoch(e);
  const fraction = epochs - whole;
  if (fraction > 0) steps += Math.ceil(fraction * batchesInEpoch(whole));
  return Math.max(1, steps);
}

// ---- SFT / pretraining ----

export interface SftTrainerOptions extends OptimizationOptions {
  /** The model to train, trainable, with an LM head. The trainer does not dispose it. */
  model: TransformerModel;
  /** Training examples (encodeSftRecords / encodePretrainingTexts), each at most maxLen tokens. */
  train: readonly EncodedExample[];
  /** Held-out examples for evaluate(). */
  eval?: readonly EncodedExample[];
  /** 'sft' (default) or 'pretrain': the metrics' stage; 'pretrain' also packs by default. */
  stage?: 'sft' | 'pretrain';
  /**
   * Passes over `train` (a number > 0; fractions end part-way through the last epoch). Give epochs or
   * steps, not both. Batches per epoch are counted exactly: the token budget batches a shuffled order,
   * so the count can differ from epoch to epoch, and the constructor replays the data order of every
   * epoch once (cheap next to one forward pass) to count them. totalSteps = the batches of the whole
   * epochs + ceil(fraction × the batches of the next one).
   */
  epochs?: number;
  /** Optimizer steps, an integer >= 1 (pretraining); the data order cycles through epochs as needed. */
  steps?: number;
  /** Most tokens in one batch (sum over its sequences), an integer >= maxLen. */
  batchTokens: number;
  /** Longest sequence, an integer in [2, max_position_embeddings]; every example must fit. */
  maxLen: number;
  /**
   * Concatenate several examples into one sequence of at most maxLen tokens (each keeps its own loss
   * mask, and no loss crosses a document boundary). Default: stage === 'pretrain'.
   */
  pack?: boolean;
  /** Token budget of an evaluation batch, an integer >= maxLen. Default batchTokens. */
  evalBatchTokens?: number;
}

/**
 * SFT (and pretraining) as a Trainer: one AdamW step per token-budget batch, next-token cross-entropy on
 * the tokens each example's lossMask marks. Checkpoints hold the step, the data position and AdamW's
 * moments, so restore() continues bitwise exactly (CPU).
 *
 * @example
 * const tokenizer = new ByteTokenizer();
 * const model = TransformerModel.fromPretrained('base', { lm: true, score: false });
 * const trainer = new SftTrainer({
 *   model, train: encodeSftRecords(tokenizer, records, 512), epochs: 16, batchTokens: 8192, maxLen: 512,
 *   lr: 1e-4, schedule: 'cosine', warmupSteps: 10, weightDecay: 0, maxGradNorm: 1, seed: 1,
 * });
 * while (trainer.stepsDone < trainer.totalSteps) console.log(trainer.trainStep().loss);
 */
export class SftTrainer implements Trainer {
  readonly stage: 'sft' | 'pretrain';
  readonly totalSteps: number;
  private done = 0;
  private readonly model: TransformerModel;
  private readonly batcher: TokenBudgetBatcher;
  private readonly optimizer: ScheduledAdamW;
  private readonly evalExamples: readonly EncodedExample[];
  private readonly evalBatchTokens: number;

  constructor(options: SftTrainerOptions) {
    const fn = 'SftTrainer';
    checkTrainerBasics(fn, options, 'lm');
    const model = options.model;
    const stage = options.stage ?? 'sft';
    if (stage !== 'sft' && stage !== 'pretrain') throw new TalariaError(`${fn}: options.stage must be 'sft' or 'pretrain', got ${describeValue(stage)}`, 'ERR_TALARIA_RANGE');
    const maxLen = checkNumberOption(fn, 'options.maxLen', options.maxLen, { integer: true, min: 2, max: model.config.maxPositions });
    const batchTokens = checkNumberOption(fn, 'options.batchTokens', options.batchTokens, { integer: true, min: maxLen });
    const evalBatchTokens = optionalNumber(fn, options, 'evalBatchTokens', batchTokens, { integer: true, min: maxLen });
    if (options.pack !== undefined && typeof options.pack !== 'boolean')
      throw new TalariaError(`${fn}: options.pack must be a boolean, got ${describeValue(options.pack)}`, 'ERR_TALARIA_DTYPE');
    const pack = options.pack ?? stage === 'pretrain';
    checkExamples(fn, 'options.train', options.train, maxLen, model.config.vocabSize, false);
    if (options.eval !== undefined) checkExamples(fn, 'options.eval', options.eval, maxLen, model.config.vocabSize, true);
    if (options.epochs !== undefined && options.steps !== undefined)
      throw new TalariaError(`${fn}: options.epochs and options.steps are exclusive: give one, got epochs ${options.epochs} and steps ${options.steps}`, 'ERR_TALARIA_RANGE');
    if (options.epochs === undefined && options.steps === undefined)
      throw new TalariaError(`${fn}: options.epochs or options.steps is required, got neither`, 'ERR_TALARIA_RANGE');
    if (options.steps !== undefined) checkNumberOption(fn, 'options.steps', options.steps, { integer: true, min: 1 });
    if (options.epochs !== undefined) checkNumberOption(fn, 'options.epochs', options.epochs, { above: 0 });
    const optimization = checkOptimization(fn, options);

    const batcher = new TokenBudgetBatcher(options.train, { tokenBudget: batchTokens, seed: optimization.seed, ...(pack && { pack, maxLen }) });
    this.totalSteps = options.steps ?? countSteps(batcher, options.epochs!);
    this.optimizer = new ScheduledAdamW(model, optimization, this.totalSteps);
    this.stage = stage;
    this.model = model;
    this.batcher = batcher;
    this.evalExamples = options.eval ?? [];
    this.evalBatchTokens = evalBatchTokens;
  }

  get stepsDone(): number {
    return this.done;
  }

  /** One AdamW step on the next batch: {loss, tokens (the tokens in the loss), lr, gradNorm, epoch}. */
  trainStep(): StepMetrics {
    if (this.done >= this.totalSteps) throw talariaError('ERR_TALARIA_RANGE', `${this.stage}: trainStep called after the last of ${this.totalSteps} steps`);
    const batch = this.batcher.next();
    const model = this.model;
    model.zeroGrad();
    const out = model.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens }, { lm: true, score: false, grad: true });
    let loss: number;
    let tokens: number;
    try {
      const ce = crossEntropy({ logits: out.logits!, targets: batch.targets, mask: batch.lossMask, inPlace: true });
      loss = ce.loss;
      tokens = ce.count;
      if (!Number.isFinite(loss)) throw nonFiniteLoss(this.stage, this.done, 'loss', loss);
      model.backward(out, { dLogits: ce.dLogits });
    } finally {
      out.dispose();
    }
    const { lr, gradNorm } = this.optimizer.step(this.stage, this.done);
    this.done++;
    return { loss, tokens, lr, gradNorm, epoch: batch.epoch };
  }

  /** {evalLoss}: the mean next-token NLL over every loss token of the eval set (token-weighted), no gradients. */
  evaluate(): StepMetrics {
    if (this.evalExamples.length === 0) return {};
    let nll = 0;
    let tokens = 0;
    forEachBudgetChunk(this.evalExamples.map((e) => e.ids.length), this.evalBatchTokens, (start, end) => {
      const batch = packBatch(this.evalExamples.slice(start, end));
      const out = this.model.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens }, { lm: true, score: false, grad: false });
      try {
        const ce = crossEntropy({ logits: out.logits!, targets: batch.targets, mask: batch.lossMask, inPlace: true });
        nll += ce.loss * ce.count;
        tokens += ce.count;
      } finally {
        out.dispose();
      }
    });
    return { evalLoss: tokens > 0 ? nll / tokens : 0, evalTokens: tokens };
  }

  checkpoint(): TrainerCheckpoint {
    const { optimizerStep, tensors } = this.optimizer.checkpoint();
    return {
      state: { stage: this.stage, stepsDone: this.done, totalSteps: this.totalSteps, optimizerStep, batcher: this.batcher.position() },
      tensors,
      models: { policy: this.model },
    };
  }

  restore(checkpoint: RestoredCheckpoint): void {
    const fn = `${this.stage}: restore`;
    checkRestored(fn, checkpoint, 'policy', this.model, ['batcher']);
    this.optimizer.restore(checkpoint);
    try {
      this.batcher.restore(checkpoint.state.batcher as BatcherPosition);
    } catch (err) {
      throw talariaError('ERR_TALARIA_FORMAT', `${fn}: checkpoint.state.batcher: ${(err as Error).message}`);
    }
    this.model.loadParameters(checkpoint.models.policy);
    this.done = checkpoint.state.stepsDone as number;
  }

  finalModels(): Record<string, TransformerModel> {
    return { policy: this.model };
  }

  /** Frees the optimizer state (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Batches of `epochs` epochs, counted by replaying the batcher's order and rewinding it. */
function countSteps(batcher: TokenBudgetBatcher, epochs: number): number {
  const start = batcher.position();
  const perEpoch: number[] = [];
  const batchesInEpoch = (epoch: number): number => {
    while (perEpoch.length <= epoch) {
      let count = 0;
      const e = perEpoch.length;
      // The first batch of epoch e+1 is drawn to see the epoch end; rewind to its start afterwards.
      for (;;) {
        const position = batcher.position();
        if (batcher.next().epoch !== e) {
          batcher.restore(position);
          break;
        }
        count++;
      }
      perEpoch.push(count);
    }
    return perEpoch[epoch];
  };
  const steps = stepsForEpochs(epochs, batchesInEpoch);
  batcher.restore(start);
  return steps;
}

/** @internal Calls visit(start, end) for consecutive runs of items whose sizes sum to at most budget (each item fits alone). */
export function forEachBudgetChunk(sizes: readonly number[], budget: number, visit: (start: number, end: number) => void): void {
  let start = 0;
  while (start < sizes.length) {
    let end = start;
    let total = 0;
    while (end < sizes.length && (end === start || total + sizes[end] <= budget)) total += sizes[end++];
    visit(start, end);
    start = end;
  }
}

function checkExamples(fn: string, name: string, examples: unknown, maxLen: number, vocabSize: number, allowEmpty: boolean): void {
  if (!Array.isArray(examples)) throw new TalariaError(`${fn}: ${name} must be an array of {ids, lossMask?}, got ${describeValue(examples)}`, 'ERR_TALARIA_DTYPE');
  if (examples.length === 0 && !allowEmpty) throw new TalariaError(`${fn}: ${name} must hold at least one example, got an empty array`, 'ERR_TALARIA_SHAPE');
  examples.forEach((example: EncodedExample, i) => {
    const at = `${name}[${i}]`;
    if (example === null || typeof example !== 'object') throw new TalariaError(`${fn}: ${at} must be an object {ids, lossMask?}, got ${describeValue(example)}`, 'ERR_TALARIA_DTYPE');
    checkTokenIds(fn, `${at}.ids`, example.ids, vocabSize);
    if (example.ids.length > maxLen) throw new TalariaError(`${fn}: ${at}.ids has ${example.ids.length} tokens, more than options.maxLen ${maxLen}`, 'ERR_TALARIA_RANGE');
    if (example.lossMask === undefined) return;
    if (!(example.lossMask instanceof Uint8Array)) throw new TalariaError(`${fn}: ${at}.lossMask must be a Uint8Array, got ${describeValue(example.lossMask)}`, 'ERR_TALARIA_DTYPE');
    if (example.lossMask.length !== example.ids.length)
      throw new TalariaError(`${fn}: ${at}.lossMask must have the length of ids (${example.ids.length}), got ${example.lossMask.length}`, 'ERR_TALARIA_SHAPE');
    const bad = example.lossMask.findIndex((m) => m > 1);
    if (bad >= 0) throw new TalariaError(`${fn}: ${at}.lossMask[${bad}] must be 0 or 1, got ${example.lossMask[bad]}`, 'ERR_TALARIA_RANGE');
  });
}

/** @internal A non-empty Int32Array of token ids in [0, vocabSize). */
export function checkTokenIds(fn: string, name: string, ids: unknown, vocabSize: number): asserts ids is Int32Array {
  if (!(ids instanceof Int32Array)) throw new TalariaError(`${fn}: ${name} must be an Int32Array, got ${describeValue(ids)}`, 'ERR_TALARIA_DTYPE');
  if (ids.length === 0) throw new TalariaError(`${fn}: ${name} must hold at least one token, got 0`, 'ERR_TALARIA_SHAPE');
  const bad = ids.findIndex((id) => id < 0 || id >= vocabSize);
  if (bad >= 0) throw new TalariaError(`${fn}: ${name}[${bad}] must be a token id in [0, ${vocabSize}) (the model's vocabulary), got ${ids[bad]}`, 'ERR_TALARIA_RANGE');
}

// ---- encoders ----

/**
 * SFT records as training examples: `BOS prompt completion EOS`, the loss on the completion and EOS only
 * (see encodeSft; a completion cut at maxLen loses its EOS).
 *
 * @example
 * const train = encodeSftRecords(new ByteTokenizer(), [{ prompt: 'Q: 2+2?\nA:', completion: ' 4' }], 512);
 */
export function encodeSftRecords(tokenizer: Tokenizer, records: readonly SftRecord[], maxLen: number): EncodedExample[] {
  if (!Array.isArray(records)) throw new TalariaError(`encodeSftRecords: records must be an array, got ${describeValue(records)}`, 'ERR_TALARIA_DTYPE');
  return records.map((record, i) => encodeSft(tokenizer, record, maxLen, i));
}

/**
 * Pretraining texts as training examples: `BOS text`, truncated to maxLen, every next token in the loss.
 *
 * @example
 * const train = encodePretrainingTexts(new ByteTokenizer(), ['Once upon a time', 'The end.'], 1024);
 */
export function encodePretrainingTexts(tokenizer: Tokenizer, texts: readonly string[], maxLen: number): EncodedExample[] {
  if (!Array.isArray(texts)) throw new TalariaError(`encodePretrainingTexts: texts must be an array, got ${describeValue(texts)}`, 'ERR_TALARIA_DTYPE');
  return texts.map((text) => encodePretraining(tokenizer, text, maxLen));
}
