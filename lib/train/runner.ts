// Drives a Trainer (lib/train/trainer.ts) and owns everything that makes a run safe to leave alone:
// checkpoints written atomically every N steps and at the end, exact resume, Ctrl-C that saves and
// stops cleanly, a NaN stop that names the last good checkpoint, the best model by an eval metric,
// the progress bar, and one metrics.jsonl line per step.
//
// On disk (outDir):
//   checkpoints/step-00000120/{trainer.json, trainer.safetensors, <role>/config.json, <role>/model.safetensors}
//   checkpoints/latest.json     which checkpoint to resume from (replaced atomically after the folder is complete)
//   final/<role>/               the models when the run ends;  best/<role>/  the best evaluation's models
//   metrics.jsonl
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { createProgress, type Progress } from '../cli/progress.js';
import { talariaError, TalariaError } from '../native.js';
import { loadModelFiles } from '../nn/checkpoint-tensors.js';
import { makeDirectoryChecked, readJsonChecked, writeFileAtomicChecked } from '../nn/files.js';
import type { ModelHeads } from '../nn/params.js';
import { readSafetensors, writeSafetensors } from '../nn/safetensors.js';
import { MetricsWriter } from './metrics.js';
import type { StepMetrics, Trainer } from './trainer.js';

export interface RunOptions {
  /** Folder for checkpoints, final and best models, and metrics.jsonl (created when missing). */
  outDir: string;
  /** Write a checkpoint every this many steps (0: only at the end). Default: about 10 per run. */
  checkpointEvery?: number;
  /** Run trainer.evaluate() every this many steps (0: only at the end). Default 0. */
  evalEvery?: number;
  /** Checkpoints kept (the newest ones). Default 2. */
  keepCheckpoints?: number;
  /** Keep outDir/best/<role> for the best value of this evaluate() metric. */
  best?: { metric: string; mode: 'min' | 'max' };
  /** Continue from outDir/checkpoints/latest.json when it exists. Default false. */
  resume?: boolean;
  /** Where step metrics go. Default: a MetricsWriter on outDir/metrics.jsonl. */
  metrics?: MetricsWriter;
  /** Show a progress bar (stderr). Default true. */
  progress?: boolean;
  /** Save and stop after the current step on SIGINT. Default true. */
  handleSigint?: boolean;
  /** Also stop (after saving) once this many steps are done in this call: for tests and time-boxed runs. */
  stopAfterSteps?: number;
}

export interface RunResult {
  stage: string;
  stepsDone: number;
  totalSteps: number;
  /** True when SIGINT (or stopAfterSteps) stopped the run before its end; a checkpoint was written. */
  interrupted: boolean;
  /** The newest checkpoint folder, if any. */
  checkpointDir: string | null;
  /** outDir/final, when the run completed. */
  finalDir: string | null;
  /** The last step's metrics, the last evaluation's, and finish()'s. */
  lastMetrics: StepMetrics;
  evalMetrics: StepMetrics;
  finishMetrics: StepMetrics;
  seconds: number;
  /** Tokens per second over this call's steps (from each step's `tokens`). */
  tokensPerSecond: number;
}

interface CheckpointManifest {
  format: 'talaria-checkpoint-1';
  stage: string;
  stepsDone: number;
  state: Record<string, unknown>;
  heads: Record<string, ModelHeads>;
}

const CHECKPOINTS = 'checkpoints';
const LATEST = 'latest.json';
const MANIFEST = 'trainer.json';
const TENSORS = 'trainer.safetensors';

/**
 * Runs `trainer` to its end (or until Ctrl-C), checkpointing as configured. Async so that signals are
 * delivered between steps; each step itself runs synchronously on the kernels.
 *
 * @example
 * const result = await runTrainer(new SftTrainer({ ... }), { outDir: 'runs/sft', evalEvery: 100, best: { metric: 'evalLoss', mode: 'min' } });
 */
export async function runTrainer(trainer: Trainer, options: RunOptions): Promise<RunResult> {
  const outDir = options.outDir;
  if (typeof outDir !== 'string' || outDir === '') throw talariaError('ERR_TALARIA_RANGE', `outDir: expected a folder path, got ${String(outDir)}`);
  const total = trainer.totalSteps;
  const checkpointEvery = options.checkpointEvery ?? Math.max(1, Math.ceil(total / 10));
  const evalEvery = options.evalEvery ?? 0;
  const keep = options.keepCheckpoints ?? 2;
  for (const [name, value, min] of [['checkpointEvery', checkpointEvery, 0], ['evalEvery', evalEvery, 0], ['keepCheckpoints', keep, 1]] as const)
    if (!Number.isInteger(value) || value < min) throw talariaError('ERR_TALARIA_RANGE', `${name}: expected an integer >= ${min}, got ${value}`);
  if (options.stopAfterSteps !== undefined && (!Number.isInteger(options.stopAfterSteps) || options.stopAfterSteps < 1))
    throw talariaError('ERR_TALARIA_RANGE', `stopAfterSteps: expected an integer >= 1, got ${options.stopAfterSteps}`);
  makeDirectoryChecked(outDir);
  const metrics = options.metrics ?? new MetricsWriter(join(outDir, 'metrics.jsonl'));
  let checkpointDir: string | null = null;
  if (options.resume) checkpointDir = resumeFrom(trainer, outDir);

  let interruptRequested = false;
  const onSigint = () => {
    interruptRequested = true;
  };
  if (options.handleSigint ?? true) process.on('SIGINT', onSigint);
  const progress: Progress = createProgress({ label: trainer.stage, total, unit: 'steps', initial: trainer.stepsDone, silent: options.progress === false });
  const started = performance.now();
  let tokens = 0;
  let stepsThisCall = 0;
  let lastMetrics: StepMetrics = {};
  let evalMetrics: StepMetrics = {};
  let bestValue: number | null = null;
  const evaluate = () => {
    if (!trainer.evaluate) return;
    evalMetrics = trainer.evaluate();
    metrics.write(`${trainer.stage}-eval`, trainer.stepsDone, evalMetrics);
    if (options.best) {
      const value = evalMetrics[options.best.metric];
      if (value === undefined) throw talariaError('ERR_TALARIA_RANGE', `best.metric: evaluate() reports no ${options.best.metric} (it has ${Object.keys(evalMetrics).join(', ')})`);
      const better = bestValue === null || (options.best.mode === 'min' ? value < bestValue : value > bestValue);
      if (Number.isFinite(value) && better) {
        bestValue = value;
        saveModels(trainer, join(outDir, 'best'));
      }
    }
  };
  try {
    while (trainer.stepsDone < total) {
      try {
        lastMetrics = trainer.trainStep();
      } catch (error) {
        throw withCheckpointHint(error, checkpointDir);
      }
      stepsThisCall++;
      tokens += lastMetrics.tokens ?? 0;
      const seconds = (performance.now() - started) / 1e3;
      metrics.write(trainer.stage, trainer.stepsDone, { ...lastMetrics, tokensPerSecond: tokens / seconds });
      progress.update(trainer.stepsDone, { loss: lastMetrics.loss, 'tok/s': Math.round(tokens / seconds) });
      const done = trainer.stepsDone === total;
      if (evalEvery > 0 && trainer.stepsDone % evalEvery === 0 && !done) evaluate();
      const stopNow = interruptRequested || (options.stopAfterSteps !== undefined && stepsThisCall >= options.stopAfterSteps);
      if (done) break;
      if (stopNow || (checkpointEvery > 0 && trainer.stepsDone % checkpointEvery === 0)) checkpointDir = writeCheckpoint(trainer, outDir, keep);
      if (stopNow) return finishResult(true, null);
      await yieldToEventLoop(); // lets a pending SIGINT reach onSigint
    }
    // The last checkpoint holds the state before finish(), so a resumed finished run finishes once.
    checkpointDir = writeCheckpoint(trainer, outDir, keep);
    evaluate();
    const finishMetrics = trainer.finish ? trainer.finish() : {};
    if (trainer.finish) metrics.write(`${trainer.stage}-finish`, trainer.stepsDone, finishMetrics);
    saveModels(trainer, join(outDir, 'final'));
    return finishResult(false, finishMetrics);
  } finally {
    progress.stop();
    if (options.handleSigint ?? true) process.off('SIGINT', onSigint);
  }

  function finishResult(interrupted: boolean, finishMetrics: StepMetrics | null): RunResult {
    const seconds = (performance.now() - started) / 1e3;
    return {
      stage: trainer.stage,
      stepsDone: trainer.stepsDone,
      totalSteps: total,
      interrupted,
      checkpointDir,
      finalDir: interrupted ? null : join(outDir, 'final'),
      lastMetrics,
      evalMetrics,
      finishMetrics: finishMetrics ?? {},
      seconds,
      tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
    };
  }
}

/** Names the last good checkpoint in a trainer's non-finite-loss error (and passes other errors through). */
function withCheckpointHint(error: unknown, checkpointDir: string | null): unknown {
  if (!(error instanceof TalariaError) || !/ became (NaN|-?Infinity) /.test(error.message)) return error;
  const where = checkpointDir ? `the last good checkpoint is ${checkpointDir}` : 'no checkpoint was written yet (lower checkpointEvery to keep one)';
  return talariaError(error.code, `${error.message}. The run stopped; ${where}.`);
}

/** Saves the trainer's final models as outDir/<folder>/<role>, replacing the folder only once it is complete. */
function saveModels(trainer: Trainer, folder: string): void {
  const staging = `${folder}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  for (const [role, model] of Object.entries(trainer.finalModels())) model.save(join(staging, role));
  replaceFolder(staging, folder);
}

function replaceFolder(staging: string, target: string): void {
  const old = `${target}.old-${process.pid}`;
  if (existsSync(target)) renameSync(target, old);
  renameSync(staging, target);
  rmSync(old, { recursive: true, force: true });
}

function stepFolder(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Writes a complete checkpoint folder under a temporary name, renames it into place, then points latest.json at it. */
export function writeCheckpoint(trainer: Trainer, outDir: string, keep: number): string {
  const root = join(outDir, CHECKPOINTS);
  const name = stepFolder(trainer.stepsDone);
  const staging = join(root, `.tmp-${name}-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  makeDirectoryChecked(staging);
  const { state, tensors, models } = trainer.checkpoint();
  const heads: Record<string, ModelHeads> = {};
  for (const [role, model] of Object.entries(models)) {
    model.save(join(staging, role));
    heads[role] = model.heads;
  }
  writeSafetensors(join(staging, TENSORS), Object.entries(tensors).map(([tensorName, data]) => ({ name: tensorName, shape: [data.length], data })));
  const manifest: CheckpointManifest = { format: 'talaria-checkpoint-1', stage: trainer.stage, stepsDone: trainer.stepsDone, state, heads };
  writeFileAtomicChecked(join(staging, MANIFEST), `${JSON.stringify(manifest)}\n`);
  const target = join(root, name);
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
  writeFileAtomicChecked(join(root, LATEST), `${JSON.stringify({ checkpoint: name, stepsDone: trainer.stepsDone })}\n`);
  const old = readdirSync(root).filter((entry) => /^step-\d{8}$/.test(entry)).sort();
  for (const entry of old.slice(0, Math.max(0, old.length - keep))) rmSync(join(root, entry), { recursive: true, force: true });
  return target;
}

/** The checkpoint folder latest.json points at, or null when outDir has none. */
export function latestCheckpoint(outDir: string): string | null {
  const pointer = join(outDir, CHECKPOINTS, LATEST);
  if (!existsSync(pointer)) return null;
  const parsed = (readJsonChecked(pointer) ?? {}) as { checkpoint?: unknown };
  if (typeof parsed.checkpoint !== 'string' || !/^step-\d{8}$/.test(parsed.checkpoint))
    throw talariaError('ERR_TALARIA_FORMAT', `${pointer}: checkpoint must name a step-NNNNNNNN folder`);
  return join(outDir, CHECKPOINTS, parsed.checkpoint);
}

/** Restores `trainer` from outDir's latest checkpoint; returns its folder, or null when there is none. */
function resumeFrom(trainer: Trainer, outDir: string): string | null {
  const dir = latestCheckpoint(outDir);
  if (!dir) return null;
  const manifestPath = join(dir, MANIFEST);
  const manifest = (readJsonChecked(manifestPath) ?? {}) as CheckpointManifest;
  if (manifest.format !== 'talaria-checkpoint-1')
    throw talariaError('ERR_TALARIA_FORMAT', `${manifestPath}: unknown checkpoint format ${String(manifest.format)}`);
  if (manifest.stage !== trainer.stage)
    throw talariaError('ERR_TALARIA_FORMAT', `${manifestPath}: a ${manifest.stage} checkpoint cannot resume a ${trainer.stage} run`);
  const tensors: Record<string, Float32Array> = {};
  for (const [name, tensor] of readSafetensors(join(dir, TENSORS))) tensors[name] = tensor.data;
  const models: Record<string, Float32Array> = {};
  for (const [role, heads] of Object.entries(manifest.heads)) models[role] = loadModelFiles(join(dir, role), heads).params;
  trainer.restore({ state: manifest.state, tensors, models });
  return dir;
}
