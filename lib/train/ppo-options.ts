// The PpoTrainer's options, their validation (every message names the option) and the presets:
// InstructGPT's hyperparameters and the task-A reference run's.
import { describeValue } from '../data/describe.js';
import type { EncodedExample } from '../data/batches.js';
import { talariaError } from '../native.js';
import type { TransformerModel } from '../nn/model.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** The sampled sequences of one iteration, as rewardFn sees them (token layout, described at the top of ppo.ts). */
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

export interface PtxOptions {
  /**
   * Pretraining documents (e.g. encodePretraining): their next-token loss is kept up during PPO. Each may
   * hold up to max_position_embeddings + 1 tokens: its last token is only a target.
   */
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

/** The options with their defaults applied. */
export interface ResolvedPpoOptions {
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

// ---- option validation: every message names the option ----

export function validatePpoOptions(options: PpoTrainerOptions): ResolvedPpoOptions {
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
      // The last token is only a target, so a document may be one token longer than the context.
      if (e.ids.length < 2 || e.ids.length > policy.config.maxPositions + 1)
        fail('ERR_TALARIA_SHAPE', `ptx.examples[${i}] must hold 2 to ${policy.config.maxPositions + 1} tokens (max_position_embeddings + 1), got ${e.ids.length}`);
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
