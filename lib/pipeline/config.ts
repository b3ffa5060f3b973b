// The pipeline's configuration: one zod schema with the defaults of the full run on world A (sized like
// the PyTorch reference in notes/task-a.md: a ~0.5M-parameter model, 1,200 pretraining steps, 6,000
// demonstrations and RM prompts, 40 PPO iterations of 128 rollouts) and the --quick preset for CI.
import { z } from 'zod';

const positive = z.number().int().positive();
const rate = z.number().positive().finite();

export const pipelineConfigSchema = z
  .object({
    model: z
      .object({
        hiddenSize: positive.default(96),
        intermediateSize: positive.default(320),
        numLayers: positive.default(4),
        numHeads: positive.default(3),
        numKvHeads: positive.default(3),
        headDim: z.union([z.literal(32), z.literal(64), z.literal(128)]).default(32),
        ropeTheta: z.number().gt(1).default(10000),
      })
      .strict()
      .prefault({}),
    pretrain: z
      .object({
        documents: positive.default(40_000),
        evalDocuments: positive.default(256),
        steps: positive.default(1200),
        docsPerStep: positive.default(32),
        lr: rate.default(3e-3),
        warmupSteps: z.number().int().nonnegative().default(50),
        weightDecay: z.number().nonnegative().default(0.1),
      })
      .strict()
      .prefault({}),
    sft: z
      .object({
        demonstrations: positive.default(6000),
        epochs: positive.default(3),
        batchTokens: positive.default(1536),
        lr: rate.default(1e-3),
        warmupSteps: z.number().int().nonnegative().default(20),
      })
      .strict()
      .prefault({}),
    rm: z
      .object({
        prompts: positive.default(6000),
        samplesPerPrompt: positive.default(6),
        k: z.number().int().min(2).default(4),
        epochs: positive.default(2),
        promptsPerBatch: positive.default(32),
        lr: rate.default(5e-4),
        evalPrompts: positive.default(300),
      })
      .strict()
      .prefault({}),
    ppo: z
      .object({
        iterations: positive.default(40),
        rolloutsPerIteration: positive.default(128),
        minibatchSize: positive.default(64),
        epochs: positive.default(2),
        klCoef: z.number().nonnegative().default(0.05),
        gamma: z.number().min(0).max(1).default(1),
        lambda: z.number().min(0).max(1).default(0.95),
        clip: rate.default(0.2),
        valueClip: rate.default(0.2),
        lr: rate.default(1e-4),
        valueLr: rate.default(3e-4),
        ptxCoef: z.number().nonnegative().default(1),
        ptxDocsPerMinibatch: positive.default(16),
      })
      .strict()
      .prefault({}),
    eval: z
      .object({
        prompts: positive.default(600),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type PipelineConfig = z.infer<typeof pipelineConfigSchema>;

/** Overrides for `--quick`: a smoke-size run (a few minutes on 2 cores) that still shows each stage's effect. */
export const QUICK_OVERRIDES = {
  pretrain: { documents: 12_000, evalDocuments: 128, steps: 400, docsPerStep: 32 },
  sft: { demonstrations: 3000, epochs: 3 },
  rm: { prompts: 1500, epochs: 2, evalPrompts: 150 },
  ppo: { iterations: 20, rolloutsPerIteration: 64, minibatchSize: 32, epochs: 2 },
  eval: { prompts: 300 },
} as const;
