// The contract between a training stage (SFT, reward model, PPO, pretraining) and the runner
// (lib/train/runner.ts) that drives it: the runner owns checkpoints, resume, Ctrl-C, the NaN stop,
// progress and metrics; a trainer owns its math and can say exactly what state it holds.
import { talariaError, type TalariaError } from '../native.js';
import type { TransformerModel } from '../nn/model.js';

/** What a trainer hands the runner to write a checkpoint, and gets back to resume. */
export interface TrainerCheckpoint {
  /** JSON-safe state: step, epoch, data position, RNG states, scheduler, reward normaliser, KL controller... */
  state: Record<string, unknown>;
  /** Named f32 buffers (optimizer moments, EMA weights...): stored together in one safetensors file. */
  tensors: Record<string, Float32Array>;
  /** Trainable models by role ('policy', 'value', 'reward'...): each saved as a Hugging Face model folder. */
  models: Record<string, TransformerModel>;
}

/** A checkpoint read back from disk: the models' parameters instead of the models. */
export interface RestoredCheckpoint {
  state: Record<string, unknown>;
  tensors: Record<string, Float32Array>;
  /** Parameters per model role, in each model's own layout order. */
  models: Record<string, Float32Array>;
}

/** Numbers logged for one step (or one evaluation); non-finite values are logged as null. */
export type StepMetrics = Record<string, number>;

export interface Trainer {
  /** 'pretrain' | 'sft' | 'rm' | 'ppo' | 'ppo-ptx': the metrics' stage and the progress bar's label. */
  readonly stage: string;
  /** Optimizer steps (PPO: iterations) the whole run takes. */
  readonly totalSteps: number;
  /** Steps done so far (restored on resume). */
  readonly stepsDone: number;
  /**
   * One optimizer step (PPO: one iteration of rollouts and updates). Returns its metrics, with at least
   * `loss` and `tokens` (tokens processed, for throughput). Must throw nonFiniteLoss() BEFORE applying
   * an update whose loss is NaN or infinite, so the last checkpoint stays the last good state.
   */
  trainStep(): StepMetrics;
  /** Held-out metrics (eval loss, accuracy...); optional. */
  evaluate?(): StepMetrics;
  /** Runs once after the last step, before the final models are saved (e.g. the reward model's bias shift). */
  finish?(): StepMetrics;
  /** Everything needed to continue exactly where this run is. */
  checkpoint(): TrainerCheckpoint;
  /** Continue from a checkpoint of the same configuration. */
  restore(checkpoint: RestoredCheckpoint): void;
  /** The models to save when the run ends (e.g. { policy } or { reward }), under outDir/final/<role>. */
  finalModels(): Record<string, TransformerModel>;
  dispose(): void;
}

/** The error a trainer throws when a loss is not finite; the runner adds where the last good checkpoint is. */
export function nonFiniteLoss(stage: string, step: number, what: string, value: number): TalariaError {
  return talariaError('ERR_TALARIA_RANGE', `${stage}: ${what} became ${value} at step ${step + 1}; the update was not applied`);
}
