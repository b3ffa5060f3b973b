// The training runner (lib/train/runner.ts) driving a small real trainer: atomic checkpoints and their
// rotation, exact resume after an interruption (bitwise-identical metrics and parameters on the CPU),
// SIGINT saving a loadable checkpoint, the NaN stop naming the last good checkpoint, and the best model.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { crossEntropy, TalariaError } from '../lib/index.js';
import { TransformerModel } from '../lib/nn/model.js';
import { AdamW } from '../lib/nn/optim.js';
import { readMetrics } from '../lib/train/metrics.js';
import { latestCheckpoint, runTrainer } from '../lib/train/runner.js';
import { nonFiniteLoss, type RestoredCheckpoint, type StepMetrics, type Trainer, type TrainerCheckpoint } from '../lib/train/trainer.js';
import { Rng } from '../lib/util/rng.js';
import { disposeTensors } from './helpers/backends.js';
import { expectThrows } from './helpers/assert.js';
import { tinyConfig } from './helpers/model.js';

afterEach(disposeTensors);
const scratch = mkdtempSync(join(tmpdir(), 'talaria-runner-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let runs = 0;
const freshDir = () => join(scratch, `run-${runs++}`);

const config = tinyConfig({ vocabSize: 19 });
const heads = { lm: true, score: false };

/** Next-token prediction on random sequences drawn from a seeded Rng: every step depends on the RNG and the optimizer. */
class ToyTrainer implements Trainer {
  readonly stage = 'toy';
  stepsDone = 0;
  readonly model: TransformerModel;
  private readonly optimizer: AdamW;
  private rng: Rng;
  poisonAt = -1;
  onStep: (() => void) | null = null;

  constructor(readonly totalSteps: number) {
    this.model = new TransformerModel(config, heads, { seed: 1 });
    this.optimizer = new AdamW(this.model, { lr: 1e-2 });
    this.rng = new Rng(5);
  }

  private batch() {
    const ids = Int32Array.from({ length: 24 }, () => this.rng.int(config.vocabSize));
    return { ids, cuSeqlens: new Int32Array([0, 10, 24]), targets: ids.map((x) => (x + 1) % config.vocabSize) };
  }

  trainStep(): StepMetrics {
    this.onStep?.();
    const { ids, cuSeqlens, targets } = this.batch();
    this.model.zeroGrad();
    const out = this.model.forward({ ids, cuSeqlens });
    const { loss, dLogits } = crossEntropy({ logits: out.logits!, targets, inPlace: true });
    const value = this.stepsDone === this.poisonAt ? Number.NaN : loss;
    if (!Number.isFinite(value)) {
      out.dispose();
      throw nonFiniteLoss(this.stage, this.stepsDone, 'the loss', value);
    }
    this.model.backward(out, { dLogits });
    out.logits!.dispose();
    const { gradNorm } = this.optimizer.apply();
    this.stepsDone++;
    return { loss, gradNorm, tokens: ids.length };
  }

  evaluate(): StepMetrics {
    const { ids, cuSeqlens, targets } = this.batch();
    const out = this.model.forward({ ids, cuSeqlens }, { grad: false });
    const { loss } = crossEntropy({ logits: out.logits!, targets });
    out.dispose();
    return { evalLoss: loss };
  }

  checkpoint(): TrainerCheckpoint {
    const { m, v, step } = this.optimizer.state();
    return { state: { stepsDone: this.stepsDone, rng: this.rng.state(), adamStep: step }, tensors: { 'adam.m': m, 'adam.v': v }, models: { policy: this.model } };
  }

  restore(c: RestoredCheckpoint): void {
    this.stepsDone = c.state.stepsDone as number;
    this.rng = Rng.fromState(c.state.rng as [number, number, number, number]);
    this.optimizer.restore({ step: c.state.adamStep as number, m: c.tensors['adam.m'], v: c.tensors['adam.v'] });
    this.model.loadParameters(c.models.policy);
  }

  finalModels() {
    return { policy: this.model };
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}

const quiet = { progress: false, handleSigint: false } as const;

describe('runTrainer', () => {
  it('runs to the end with rotated checkpoints, final models and one metrics line per step', async () => {
    const outDir = freshDir();
    const trainer = new ToyTrainer(7);
    const result = await runTrainer(trainer, { outDir, checkpointEvery: 2, keepCheckpoints: 2, ...quiet });
    expect(result).toMatchObject({ stage: 'toy', stepsDone: 7, totalSteps: 7, interrupted: false, finalDir: join(outDir, 'final') });
    expect(readdirSync(join(outDir, 'checkpoints')).sort()).toEqual(['latest.json', 'step-00000006', 'step-00000007']);
    expect(latestCheckpoint(outDir)).toBe(join(outDir, 'checkpoints', 'step-00000007'));
    const final = TransformerModel.fromPretrained(join(outDir, 'final', 'policy'), heads, { trainable: false });
    expect(Buffer.from(final.parametersToArray().buffer).equals(Buffer.from(trainer.model.parametersToArray().buffer))).toBe(true);
    const lines = readMetrics(join(outDir, 'metrics.jsonl'));
    expect(lines.filter((l) => l.stage === 'toy').map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(lines.filter((l) => l.stage === 'toy-eval')).toHaveLength(1);
    expect(result.tokensPerSecond).toBeGreaterThan(0);
    final.dispose();
    trainer.dispose();
  });

  it('resumes exactly: an interrupted run continued gives the metrics and parameters of an uninterrupted one', async () => {
    const straightDir = freshDir();
    const straight = new ToyTrainer(9);
    await runTrainer(straight, { outDir: straightDir, checkpointEvery: 0, ...quiet });
    const resumedDir = freshDir();
    const first = new ToyTrainer(9);
    const partial = await runTrainer(first, { outDir: resumedDir, checkpointEvery: 0, stopAfterSteps: 4, ...quiet });
    expect(partial).toMatchObject({ interrupted: true, stepsDone: 4, finalDir: null });
    first.dispose();
    const second = new ToyTrainer(9); // fresh models, optimizer and RNG: everything must come from the checkpoint
    const rest = await runTrainer(second, { outDir: resumedDir, resume: true, checkpointEvery: 0, ...quiet });
    expect(rest.stepsDone).toBe(9);
    expect(Buffer.from(second.model.parametersToArray().buffer).equals(Buffer.from(straight.model.parametersToArray().buffer))).toBe(true);
    const losses = (dir: string) => readMetrics(join(dir, 'metrics.jsonl')).filter((l) => l.stage === 'toy').map((l) => [l.step, l.loss, l.gradNorm]);
    expect(losses(resumedDir)).toEqual(losses(straightDir));
    straight.dispose();
    second.dispose();
  });

  it('SIGINT saves a loadable checkpoint after the current step and stops', async () => {
    const outDir = freshDir();
    const trainer = new ToyTrainer(50);
    trainer.onStep = () => {
      if (trainer.stepsDone === 3) process.emit('SIGINT', 'SIGINT');
    };
    const result = await runTrainer(trainer, { outDir, checkpointEvery: 0, progress: false });
    expect(result).toMatchObject({ interrupted: true, stepsDone: 4 });
    expect(result.checkpointDir).toBe(join(outDir, 'checkpoints', 'step-00000004'));
    const saved = TransformerModel.fromPretrained(join(result.checkpointDir!, 'policy'), heads, { trainable: false });
    expect(Buffer.from(saved.parametersToArray().buffer).equals(Buffer.from(trainer.model.parametersToArray().buffer))).toBe(true);
    expect(process.listenerCount('SIGINT')).toBe(0);
    saved.dispose();
    trainer.dispose();
  });

  it('a NaN loss stops the run, names the last good checkpoint and leaves it intact', async () => {
    const outDir = freshDir();
    const trainer = new ToyTrainer(10);
    trainer.poisonAt = 5;
    let error: unknown;
    await runTrainer(trainer, { outDir, checkpointEvery: 2, ...quiet }).catch((e) => (error = e));
    expect(error).toBeInstanceOf(TalariaError);
    expect((error as TalariaError).message).toMatch(/the loss became NaN at step 6.*last good checkpoint is .*step-00000004/);
    expect(existsSync(join(outDir, 'checkpoints', 'step-00000004', 'policy', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(outDir, 'final'))).toBe(false);
    const early = new ToyTrainer(10);
    early.poisonAt = 0;
    await expect(runTrainer(early, { outDir: freshDir(), ...quiet })).rejects.toThrow(/no checkpoint was written yet/);
    trainer.dispose();
    early.dispose();
  });

  it('keeps the best evaluation model and refuses a metric evaluate() does not report', async () => {
    const outDir = freshDir();
    const trainer = new ToyTrainer(6);
    const result = await runTrainer(trainer, { outDir, evalEvery: 2, best: { metric: 'evalLoss', mode: 'min' }, ...quiet });
    expect(existsSync(join(outDir, 'best', 'policy', 'model.safetensors'))).toBe(true);
    const evals = readMetrics(join(outDir, 'metrics.jsonl')).filter((l) => l.stage === 'toy-eval');
    expect(evals.map((l) => l.step)).toEqual([2, 4, 6]);
    expect(result.evalMetrics.evalLoss).toBe(evals[2].evalLoss);
    await expect(runTrainer(new ToyTrainer(2), { outDir: freshDir(), best: { metric: 'accuracy', mode: 'max' }, ...quiet })).rejects.toThrow(/accuracy/);
    trainer.dispose();
  });

  it('rejects bad options and a checkpoint of another stage', async () => {
    const trainer = new ToyTrainer(2);
    await expect(runTrainer(trainer, { outDir: '', ...quiet })).rejects.toThrow(/outDir/);
    await expect(runTrainer(trainer, { outDir: freshDir(), checkpointEvery: -1, ...quiet })).rejects.toThrow(/checkpointEvery/);
    await expect(runTrainer(trainer, { outDir: freshDir(), evalEvery: 1.5, ...quiet })).rejects.toThrow(/evalEvery/);
    await expect(runTrainer(trainer, { outDir: freshDir(), keepCheckpoints: 0, ...quiet })).rejects.toThrow(/keepCheckpoints/);
    await expect(runTrainer(trainer, { outDir: freshDir(), stopAfterSteps: 0, ...quiet })).rejects.toThrow(/stopAfterSteps/);
    const outDir = freshDir();
    await runTrainer(trainer, { outDir, ...quiet });
    const other = Object.assign(new ToyTrainer(2), { stage: 'other' });
    await expect(runTrainer(other, { outDir, resume: true, ...quiet })).rejects.toThrow(/cannot resume/);
    const broken = freshDir();
    await runTrainer(new ToyTrainer(1), { outDir: broken, ...quiet });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(broken, 'checkpoints', 'latest.json'), '{"checkpoint": "../../etc"}');
    expectThrows(() => latestCheckpoint(broken), 'ERR_TALARIA_FORMAT', 'latest.json');
    expect(readFileSync(join(outDir, 'checkpoints', 'latest.json'), 'utf8')).toContain('step-00000002');
    trainer.dispose();
    other.dispose();
  });
});
