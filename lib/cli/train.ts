// `talaria sft|rm|ppo --config file.json [--field value ...] [--resume]`: read the config, validate it
// (zod; an error names the field), load the data (JSONL, line-numbered errors) and the models, and run
// the trainer under the runner (checkpoints, resume, Ctrl-C, NaN stop, progress, metrics.jsonl).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { promptTokens, responseTokens } from '../data/batches.js';
import { readJsonl } from '../data/jsonl.js';
import { ppoRecordSchema, pretrainingRecordSchema, rewardRecordSchema, sftRecordSchema } from '../data/records.js';
import { talariaError } from '../native.js';
import { readModelConfig } from '../nn/config.js';
import { TransformerModel } from '../nn/model.js';
import { ByteTokenizer } from '../tokenizer/byte.js';
import { instructgptPreset, PpoTrainer, taskAPreset, type PpoTrainerOptions } from '../train/ppo.js';
import { encodeRewardRecords, RewardTrainer } from '../train/reward.js';
import { runTrainer, type RunResult } from '../train/runner.js';
import { encodePretrainingTexts, encodeSftRecords, type OptimizationOptions, SftTrainer } from '../train/sft.js';
import type { Trainer } from '../train/trainer.js';
import { loadCommandConfig, parseFlags } from './config.js';

const positiveInt = z.number().int().positive();

/** Fields every training command shares: where results go and how the run is checkpointed. */
const runFields = {
  out: z.string().min(1),
  device: z.string().default('cpu'),
  seed: z.number().int().nonnegative().default(0),
  checkpointEvery: z.number().int().nonnegative().optional(),
  evalEvery: z.number().int().nonnegative().default(0),
  lr: z.number().positive().finite(),
  schedule: z.enum(['cosine', 'constant']).default('cosine'),
  warmupSteps: z.number().int().nonnegative().default(0),
  weightDecay: z.number().nonnegative().default(0),
  maxGradNorm: z.number().positive().default(1),
};

/** A model to start from: a Hugging Face folder, or a config.json to initialise from scratch. */
const modelSource = z.union([
  z.string().min(1),
  z.object({ config: z.string().min(1), initStd: z.number().positive().default(0.02) }).strict(),
]);

export const sftConfigSchema = z
  .object({
    ...runFields,
    model: modelSource,
    data: z.object({ train: z.string().min(1), eval: z.string().min(1).optional(), format: z.enum(['sft', 'text']).default('sft') }).strict(),
    epochs: z.number().positive().optional(),
    steps: positiveInt.optional(),
    batchTokens: positiveInt.default(4096),
    maxLen: positiveInt.default(512),
  })
  .strict()
  .refine((c) => (c.epochs === undefined) !== (c.steps === undefined), { message: 'give exactly one of epochs and steps', path: ['epochs'] });

export const rmConfigSchema = z
  .object({
    ...runFields,
    model: z.string().min(1),
    data: z.object({ train: z.string().min(1), eval: z.string().min(1).optional(), reference: z.string().min(1).optional() }).strict(),
    epochs: z.number().positive().default(1),
    promptsPerBatch: positiveInt.default(64),
    batchTokens: positiveInt.optional(),
    maxLen: positiveInt.default(512),
  })
  .strict();

export const ppoConfigSchema = z
  .object({
    ...runFields,
    lr: z.number().positive().finite(),
    policy: z.string().min(1),
    reward: z.string().min(1),
    value: z.string().min(1).optional(),
    data: z.object({ prompts: z.string().min(1), ptx: z.string().min(1).optional() }).strict(),
    preset: z.enum(['instructgpt', 'task-a']).default('instructgpt'),
    iterations: positiveInt,
    rolloutsPerIteration: positiveInt.optional(),
    minibatchSize: positiveInt.optional(),
    epochs: positiveInt.optional(),
    maxNewTokens: positiveInt.default(64),
    temperature: z.number().positive().optional(),
    klCoef: z.number().nonnegative().optional(),
    adaptiveKl: z.object({ target: z.number().positive(), horizon: z.number().positive() }).strict().optional(),
    gamma: z.number().min(0).max(1).optional(),
    lambda: z.number().min(0).max(1).optional(),
    clip: z.number().positive().optional(),
    valueClip: z.number().positive().optional(),
    missingEosPenalty: z.number().nonnegative().optional(),
    valueLr: z.number().positive().optional(),
    emaDecay: z.number().min(0).lt(1).optional(),
    ptxCoef: z.number().nonnegative().optional(),
    ptxDocsPerMinibatch: positiveInt.optional(),
    maxLen: positiveInt.default(512),
  })
  .strict();

/** Splits argv into the config path, --resume, and every other --field value pair (config overrides). */
function parseCommandArgs(command: string, argv: string[]): { config: string; resume: boolean; overrides: Record<string, string> } {
  const { config, resume, ...rest } = parseFlags(command, argv, new Set(['resume']));
  if (typeof config !== 'string') throw talariaError('ERR_TALARIA_RANGE', `${command}: --config file.json is required`);
  return { config, resume: resume === true, overrides: rest as Record<string, string> };
}

/** The optimizer fields every config shares, as the trainers take them. */
function optimization(c: z.infer<z.ZodObject<typeof runFields>>): OptimizationOptions {
  return { lr: c.lr, schedule: c.schedule, warmupSteps: c.warmupSteps, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm, seed: c.seed };
}

async function run(trainer: Trainer, out: string, resume: boolean, options: { checkpointEvery?: number; evalEvery: number; best?: { metric: string; mode: 'min' | 'max' } }): Promise<number> {
  let result: RunResult;
  try {
    result = await runTrainer(trainer, { outDir: out, resume, checkpointEvery: options.checkpointEvery, evalEvery: options.evalEvery, best: options.best });
  } finally {
    trainer.dispose();
  }
  const metrics = { ...result.lastMetrics, ...result.evalMetrics, ...result.finishMetrics };
  const shown = Object.entries(metrics).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`).join(', ');
  if (result.interrupted) {
    console.log(`${result.stage}: interrupted at step ${result.stepsDone}/${result.totalSteps}; checkpoint ${result.checkpointDir} (continue with --resume)`);
    return 130;
  }
  console.log(`${result.stage}: ${result.stepsDone} steps in ${result.seconds.toFixed(1)} s, ${Math.round(result.tokensPerSecond)} tokens/s; ${shown}`);
  console.log(`models in ${result.finalDir}, metrics in ${join(out, 'metrics.jsonl')}`);
  return 0;
}

function requireFolder(path: string, what: string): void {
  if (!existsSync(join(path, 'config.json'))) throw talariaError('ERR_TALARIA_IO', `${what}: ${path} has no config.json (expected a model folder)`);
}

export async function sftCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs('sft', argv);
  const c = loadCommandConfig(sftConfigSchema, args.config, args.overrides);
  const tokenizer = new ByteTokenizer();
  const model =
    typeof c.model === 'string'
      ? (requireFolder(c.model, 'model'), TransformerModel.fromPretrained(c.model, { lm: true, score: false }, { device: c.device }))
      : new TransformerModel(readModelConfig(c.model.config), { lm: true, score: false }, { device: c.device, seed: c.seed, initStd: c.model.initStd });
  const encode = (path: string) =>
    c.data.format === 'text'
      ? encodePretrainingTexts(tokenizer, readJsonl(path, pretrainingRecordSchema).map((r) => r.text), c.maxLen)
      : encodeSftRecords(tokenizer, readJsonl(path, sftRecordSchema), c.maxLen);
  try {
    const trainer = new SftTrainer({
      model, train: encode(c.data.train), eval: c.data.eval ? encode(c.data.eval) : undefined, stage: c.data.format === 'text' ? 'pretrain' : 'sft',
      epochs: c.epochs, steps: c.steps, batchTokens: c.batchTokens, maxLen: c.maxLen,
      ...optimization(c),
    });
    return await run(trainer, c.out, args.resume, { checkpointEvery: c.checkpointEvery, evalEvery: c.evalEvery, best: c.data.eval ? { metric: 'evalLoss', mode: 'min' } : undefined });
  } finally {
    model.dispose();
  }
}

export async function rmCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs('rm', argv);
  const c = loadCommandConfig(rmConfigSchema, args.config, args.overrides);
  requireFolder(c.model, 'model');
  const tokenizer = new ByteTokenizer();
  const model = TransformerModel.fromPretrained(c.model, { lm: false, score: true }, { device: c.device, initMissingScore: true });
  try {
    const reference = c.data.reference
      ? readJsonl(c.data.reference, sftRecordSchema).map((r) => ({ prompt: promptTokens(tokenizer, r.prompt), completion: responseTokens(tokenizer, r.completion, true) }))
      : undefined;
    const trainer = new RewardTrainer({
      model, train: encodeRewardRecords(tokenizer, readJsonl(c.data.train, rewardRecordSchema), c.maxLen),
      eval: c.data.eval ? encodeRewardRecords(tokenizer, readJsonl(c.data.eval, rewardRecordSchema), c.maxLen) : undefined,
      epochs: c.epochs, promptsPerBatch: c.promptsPerBatch, batchTokens: c.batchTokens,
      referenceCompletions: reference,
      ...optimization(c),
    });
    return await run(trainer, c.out, args.resume, { checkpointEvery: c.checkpointEvery, evalEvery: c.evalEvery, best: c.data.eval ? { metric: 'evalAccuracy', mode: 'max' } : undefined });
  } finally {
    model.dispose();
  }
}

export async function ppoCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs('ppo', argv);
  const c = loadCommandConfig(ppoConfigSchema, args.config, args.overrides);
  for (const [what, path] of [['policy', c.policy], ['reward', c.reward], ['value', c.value ?? c.reward]] as const) requireFolder(path, what);
  const tokenizer = new ByteTokenizer();
  const suppressTokens = tokenizer.neverSample;
  const policy = TransformerModel.fromPretrained(c.policy, { lm: true, score: false }, { device: c.device, suppressTokens });
  const reference = TransformerModel.fromPretrained(c.policy, { lm: true, score: false }, { device: c.device, suppressTokens, trainable: false });
  const value = TransformerModel.fromPretrained(c.value ?? c.reward, { lm: false, score: true }, { device: c.device, initMissingScore: true });
  const reward = TransformerModel.fromPretrained(c.reward, { lm: false, score: true }, { device: c.device, trainable: false });
  try {
    const prompts = readJsonl(c.data.prompts, ppoRecordSchema).map((r) => promptTokens(tokenizer, r.prompt));
    const ptx = c.data.ptx
      ? { examples: encodePretrainingTexts(tokenizer, readJsonl(c.data.ptx, pretrainingRecordSchema).map((r) => r.text), c.maxLen), coef: c.ptxCoef, docsPerMinibatch: c.ptxDocsPerMinibatch }
      : undefined;
    const preset = c.preset === 'task-a' ? taskAPreset : instructgptPreset;
    // Only the fields the config sets override the preset (undefined would erase a preset value).
    const optional = Object.fromEntries(
      Object.entries({
        rolloutsPerIteration: c.rolloutsPerIteration, minibatchSize: c.minibatchSize, epochs: c.epochs, temperature: c.temperature, klCoef: c.klCoef,
        adaptiveKl: c.adaptiveKl, gamma: c.gamma, lambda: c.lambda, clip: c.clip, valueClip: c.valueClip, missingEosPenalty: c.missingEosPenalty,
        valueLr: c.valueLr, emaDecay: c.emaDecay, ptx,
      }).filter(([, v]) => v !== undefined),
    );
    const options: PpoTrainerOptions = {
      ...preset, ...optional, policy, reference, value, reward, tokenizer, prompts,
      iterations: c.iterations, maxNewTokens: c.maxNewTokens, lr: c.lr, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm, seed: c.seed,
    };
    const trainer = new PpoTrainer(options);
    return await run(trainer, c.out, args.resume, { checkpointEvery: c.checkpointEvery, evalEvery: c.evalEvery });
  } finally {
    for (const m of [policy, reference, value, reward]) m.dispose();
  }
}
