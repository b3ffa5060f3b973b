// A tiny PPO world for the trainer tests: a 12-token vocabulary (PAD 0, BOS 1, EOS 2, content 3..11), so a
// random policy emits EOS about once in ten tokens and a batch mixes ended and cut responses; tiny models.
import { TransformerModel } from '../../lib/nn/model.js';
import type { PpoSequences, PpoTrainerOptions } from '../../lib/train/ppo.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { Rng } from '../../lib/util/rng.js';
import { tinyConfig } from './model.js';

export const tinyTokenizer: Tokenizer = {
  vocabSize: 12,
  padId: 0,
  bosId: 1,
  eosId: 2,
  neverSample: [0, 1],
  encode: (text: string) => Int32Array.from(text, (c) => 3 + (c.charCodeAt(0) % 9)),
  decode: (ids: ArrayLike<number>) => Array.from(ids).filter((id) => id > 2).map((id) => String.fromCharCode(97 + id - 3)).join(''),
};

export const TARGET_TOKEN = 5;

/** The fraction of TARGET_TOKEN among each response's non-EOS tokens (0 for an empty answer). */
export function targetFraction(s: PpoSequences): Float32Array {
  return Float32Array.from(s.responses, (r) => {
    const content = Array.from(r).filter((id) => id !== tinyTokenizer.eosId);
    return content.length ? content.filter((id) => id === TARGET_TOKEN).length / content.length : 0;
  });
}

/** Pretraining-style documents: BOS then 6..14 content tokens. */
export function tinyDocuments(count: number, seed: number): { ids: Int32Array }[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => ({ ids: Int32Array.from({ length: 1 + rng.intBetween(6, 14) }, (_, i) => (i === 0 ? 1 : rng.intBetween(3, 11))) }));
}

export function tinyPrompts(count: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Int32Array.from({ length: 1 + rng.intBetween(1, 4) }, (_, i) => (i === 0 ? 1 : rng.intBetween(3, 11))));
}

export interface TinyModels {
  policy: TransformerModel;
  reference: TransformerModel;
  value: TransformerModel;
  reward: TransformerModel;
}

/**
 * Policy and reference share weights (the SFT policy) unless referenceSeed gives the reference its own;
 * value and reward start from the same RM weights.
 */
export function tinyModels(seed = 1, options: { initStd?: number; referenceSeed?: number } = {}): TinyModels {
  const initStd = options.initStd ?? 0.3;
  const config = tinyConfig({ vocabSize: tinyTokenizer.vocabSize, hiddenSize: 32, intermediateSize: 40, numHeads: 1, headDim: 32 });
  const suppressTokens = tinyTokenizer.neverSample;
  const policy = new TransformerModel(config, { lm: true, score: false }, { seed, initStd, suppressTokens });
  const referenceInit = options.referenceSeed === undefined ? { params: policy.parametersToArray() } : { seed: options.referenceSeed, initStd };
  const reference = new TransformerModel(config, { lm: true, score: false }, { ...referenceInit, trainable: false, suppressTokens });
  const value = new TransformerModel(config, { lm: false, score: true }, { seed: seed + 100, initStd });
  const reward = new TransformerModel(config, { lm: false, score: true }, { params: value.parametersToArray(), trainable: false });
  return { policy, reference, value, reward };
}

export function disposeModels(models: TinyModels): void {
  for (const m of Object.values(models)) m.dispose();
}

/** Options for a small, fast run (rewardFn = targetFraction); override anything. */
export function tinyOptions(models: TinyModels, overrides: Partial<PpoTrainerOptions> = {}): PpoTrainerOptions {
  return {
    policy: models.policy,
    reference: models.reference,
    value: models.value,
    rewardFn: targetFraction,
    tokenizer: tinyTokenizer,
    prompts: tinyPrompts(24, 7),
    iterations: 4,
    rolloutsPerIteration: 16,
    minibatchSize: 8,
    maxNewTokens: 6,
    lr: 3e-3,
    seed: 5,
    ...overrides,
  };
}
