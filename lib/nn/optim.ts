// Training utilities over a model's flat parameter buffer: AdamW with decoupled weight decay on the
// matrices only (the layout puts them first, so that is two kernel calls), learning-rate schedules, and
// an exponential moving average of the weights (InstructGPT evaluates the EMA, decay 0.992).
import { talariaError } from '../native.js';
import { axpby } from '../ops/layers.js';
import { adamw, clipGradNorm } from '../ops/optimizer.js';
import { Tensor } from '../tensor.js';
import type { TransformerModel } from './model.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Applied to the weight matrices and embeddings; never to norms and biases. Default 0.01. */
  weightDecay?: number;
  /** Clip the global gradient norm to this before the step (omit for no clipping). */
  maxGradNorm?: number;
}

/** What an optimizer checkpoint holds: the moments (layout order) and the step count. */
export interface AdamWState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export interface StepReport {
  /** The global gradient norm before clipping. */
  gradNorm: number;
  /** False when the gradient was not finite: the parameters were left as they were. */
  applied: boolean;
  lr: number;
}

export class AdamW {
  readonly options: Required<Omit<AdamWOptions, 'maxGradNorm'>> & { maxGradNorm?: number };
  step = 0;
  private readonly m: Tensor;
  private readonly v: Tensor;

  constructor(
    private readonly model: TransformerModel,
    options: AdamWOptions,
  ) {
    if (!model.grads) throw talariaError('ERR_TALARIA_RANGE', 'AdamW: the model is frozen (trainable: false)');
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...options };
    const { maxGradNorm } = this.options;
    if (maxGradNorm !== undefined && !(maxGradNorm > 0 && Number.isFinite(maxGradNorm)))
      throw talariaError('ERR_TALARIA_RANGE', `maxGradNorm: expected a finite number > 0, got ${maxGradNorm}`);
    const n = model.layout.totalNumel;
    this.m = Tensor.empty([n], 'f32', model.device).zero();
    this.v = Tensor.empty([n], 'f32', model.device).zero();
  }

  /**
   * Clips (when configured) and applies one AdamW step with learning rate `lr` (default options.lr). A
   * non-finite gradient norm skips the step and reports applied: false, so the caller can stop the run.
   */
  apply(lr = this.options.lr): StepReport {
    const grads = this.model.grads!;
    const { norm } = clipGradNorm({ grads, maxNorm: this.options.maxGradNorm });
    if (!Number.isFinite(norm)) return { gradNorm: norm, applied: false, lr };
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const { decayNumel, totalNumel } = this.model.layout;
    const ranges: [number, number, number][] = [
      [0, decayNumel, weightDecay],
      [decayNumel, totalNumel - decayNumel, 0],
    ];
    for (const [offset, count, wd] of ranges) {
      if (count === 0) continue;
      const part = (t: Tensor) => t.view([count], offset);
      const views = [part(this.model.params), part(grads), part(this.m), part(this.v)];
      adamw({ params: views[0], grads: views[1], m: views[2], v: views[3], step: this.step, lr, beta1, beta2, eps, weightDecay: wd });
      for (const t of views) t.dispose();
    }
    return { gradNorm: norm, applied: true, lr };
  }

  state(): AdamWState {
    return { step: this.step, m: this.m.toArray() as Float32Array, v: this.v.toArray() as Float32Array };
  }

  restore(state: AdamWState): void {
    const n = this.model.layout.totalNumel;
    if (!Number.isInteger(state.step) || state.step < 0) throw talariaError('ERR_TALARIA_FORMAT', `optimizer state: step must be an integer >= 0, got ${state.step}`);
    for (const key of ['m', 'v'] as const)
      if (!(state[key] instanceof Float32Array) || state[key].length !== n)
        throw talariaError('ERR_TALARIA_FORMAT', `optimizer state: ${key} must be a Float32Array of ${n} values (this model's layout)`);
    this.m.copyFrom(state.m);
    this.v.copyFrom(state.v);
    this.step = state.step;
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}

export type LrSchedule =
  | { kind: 'constant'; lr: number; warmupSteps?: number }
  | { kind: 'cosine'; lr: number; totalSteps: number; warmupSteps?: number; finalFraction?: number };

/**
 * The learning rate at `step` (0-based): a linear warmup from lr/warmup to lr, then constant, or a cosine
 * decay to finalFraction · lr (default 10%, as InstructGPT's SFT) at totalSteps.
 *
 * @example
 * const lr = learningRate({ kind: 'cosine', lr: 1e-3, totalSteps: 1000, warmupSteps: 50 }, step);
 */
export function learningRate(schedule: LrSchedule, step: number): number {
  const warmup = schedule.warmupSteps ?? 0;
  if (!(schedule.lr >= 0 && Number.isFinite(schedule.lr))) throw talariaError('ERR_TALARIA_RANGE', `lr: expected a finite number >= 0, got ${schedule.lr}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw talariaError('ERR_TALARIA_RANGE', `warmupSteps: expected an integer >= 0, got ${warmup}`);
  if (!Number.isInteger(step) || step < 0) throw talariaError('ERR_TALARIA_RANGE', `step: expected an integer >= 0, got ${step}`);
  if (schedule.kind === 'cosine') {
    if (!Number.isInteger(schedule.totalSteps) || schedule.totalSteps < 1)
      throw talariaError('ERR_TALARIA_RANGE', `totalSteps: expected an integer >= 1, got ${schedule.totalSteps}`);
    const floor = schedule.finalFraction ?? 0.1;
    if (!(floor >= 0 && floor <= 1)) throw talariaError('ERR_TALARIA_RANGE', `finalFraction: expected a number in [0, 1], got ${floor}`);
  } else if (schedule.kind !== 'constant') {
    throw talariaError('ERR_TALARIA_RANGE', `kind: expected 'constant' or 'cosine', got ${String((schedule as { kind: unknown }).kind)}`);
  }
  if (step < warmup) return (schedule.lr * (step + 1)) / warmup;
  if (schedule.kind === 'constant') return schedule.lr;
  const floor = schedule.finalFraction ?? 0.1;
  const progress = Math.min(1, (step - warmup) / Math.max(1, schedule.totalSteps - warmup));
  return schedule.lr * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** An exponential moving average of a model's parameters: ema ← decay · ema + (1 − decay) · params. */
export class WeightEma {
  readonly weights: Tensor;

  constructor(
    private readonly model: TransformerModel,
    readonly decay = 0.992,
  ) {
    if (!(decay >= 0 && decay < 1)) throw talariaError('ERR_TALARIA_RANGE', `decay: expected a number in [0, 1), got ${decay}`);
    this.weights = Tensor.empty([model.layout.totalNumel], 'f32', model.device).copyFrom(model.params);
  }

  update(): void {
    axpby({ x: this.model.params, y: this.weights, alpha: 1 - this.decay, beta: this.decay });
  }

  /** The averaged weights as a host array (layout order). */
  toArray(): Float32Array {
    return this.weights.toArray() as Float32Array;
  }

  restore(weights: Float32Array): void {
    this.weights.copyFrom(weights);
  }

  dispose(): void {
    this.weights.dispose();
  }
}
