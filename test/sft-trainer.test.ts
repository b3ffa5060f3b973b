// The SFT / pretraining trainer: the loss falls on a tiny prompt→completion corpus, only completion (and
// EOS) tokens are targets, evaluation is a token-weighted NLL, packed pretraining trains, a resumed run
// is bitwise identical to an uninterrupted one, a NaN stops the step before the update, and every option
// is checked.
import { afterEach, describe, expect, it } from 'vitest';
import { ByteTokenizer, crossEntropy, encodeSft, packBatch, TalariaError } from '../lib/index.js';
import { TransformerModel } from '../lib/nn/model.js';
import { encodePretrainingTexts, encodeSftRecords, SftTrainer, type SftTrainerOptions } from '../lib/train/sft.js';
import type { RestoredCheckpoint, TrainerCheckpoint } from '../lib/train/trainer.js';
import { Rng } from '../lib/util/rng.js';
import { expectBitwiseEqual, expectThrows, type TalariaCode } from './helpers/assert.js';
import { disposeTensors } from './helpers/backends.js';
import { DTYPE, RANGE, SHAPE } from './helpers/bad-input.js';
import { tinyConfig } from './helpers/model.js';

afterEach(disposeTensors);

const tokenizer = new ByteTokenizer();
const config = tinyConfig({ vocabSize: tokenizer.vocabSize, maxPositions: 32 });
const lmHeads = { lm: true, score: false };
const models: TransformerModel[] = [];
afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});

function newModel(seed = 1, params?: Float32Array, heads = lmHeads): TransformerModel {
  const model = new TransformerModel(config, heads, params ? { params } : { seed });
  models.push(model);
  return model;
}

/** Prompt: 3 letters of a..f; completion: the prompt reversed, then '.'. */
function sftRecords(count: number, seed: number) {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const prompt = Array.from({ length: 3 }, () => 'abcdef'[rng.int(6)]).join('');
    return { prompt, completion: `${[...prompt].reverse().join('')}.` };
  });
}

function sftOptions(overrides: Partial<SftTrainerOptions> = {}): SftTrainerOptions {
  return {
    model: overrides.model ?? newModel(),
    train: encodeSftRecords(tokenizer, sftRecords(24, 7), 16),
    epochs: 3,
    batchTokens: 40,
    maxLen: 16,
    lr: 3e-3,
    schedule: 'cosine',
    warmupSteps: 2,
    weightDecay: 0.01,
    maxGradNorm: 1,
    seed: 5,
    ...overrides,
  };
}

/** What the runner would write and read back: JSON state, copied tensors, the models' parameters. */
function roundTrip(checkpoint: TrainerCheckpoint): RestoredCheckpoint {
  const models: Record<string, Float32Array> = {};
  for (const [role, model] of Object.entries(checkpoint.models)) models[role] = model.parametersToArray();
  const tensors: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(checkpoint.tensors)) tensors[name] = t.slice();
  return { state: JSON.parse(JSON.stringify(checkpoint.state)) as Record<string, unknown>, tensors, models };
}

describe('SftTrainer', () => {
  it('brings the loss on a prompt→completion corpus below 40% of its start, and the eval loss down', () => {
    const trainer = new SftTrainer(sftOptions({ epochs: 25, eval: encodeSftRecords(tokenizer, sftRecords(8, 99), 16) }));
    expect(trainer.stage).toBe('sft');
    const evalBefore = trainer.evaluate().evalLoss;
    const losses: number[] = [];
    while (trainer.stepsDone < trainer.totalSteps) {
      const m = trainer.trainStep();
      expect(m.tokens).toBeGreaterThan(0);
      expect(Number.isFinite(m.gradNorm)).toBe(true);
      losses.push(m.loss);
    }
    const tail = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(tail).toBeLessThan(0.4 * losses[0]);
    const evalAfter = trainer.evaluate().evalLoss;
    expect(evalAfter).toBeLessThan(0.6 * evalBefore);
    expect(() => trainer.trainStep()).toThrow(TalariaError);
    trainer.dispose();
  });

  it('counts totalSteps as exactly the batches of `epochs` epochs (and a fraction of the next)', () => {
    const options = sftOptions({ epochs: 2 });
    const trainer = new SftTrainer(options);
    const epochs: number[] = [];
    while (trainer.stepsDone < trainer.totalSteps) epochs.push(trainer.trainStep().epoch);
    expect(epochs[epochs.length - 1]).toBe(1);
    // The run ends on an epoch boundary: every example of epoch 1 was batched.
    const position = trainer.checkpoint().state.batcher as { epoch: number; index: number };
    expect(position).toMatchObject({ epoch: 1, index: options.train.length });
    const firstEpoch = epochs.filter((e) => e === 0).length;
    const secondEpoch = epochs.length - firstEpoch;
    const half = new SftTrainer(sftOptions({ epochs: 1.5 }));
    expect(half.totalSteps).toBe(firstEpoch + Math.ceil(0.5 * secondEpoch));
    expect(new SftTrainer(sftOptions({ epochs: undefined, steps: 7 })).totalSteps).toBe(7);
  });

  it('trains on the completion and EOS only: the loss and gradient equal a manual masked cross-entropy', () => {
    const record = { prompt: 'abcabd', completion: 'xyz' };
    const example = encodeSft(tokenizer, record, 16);
    const model = newModel(3);
    const twin = newModel(0, model.parametersToArray());
    // No clipping: model.grads keeps the raw gradient after the step.
    const trainer = new SftTrainer(sftOptions({ model, train: [example], epochs: 1, maxGradNorm: Infinity }));
    const metrics = trainer.trainStep();
    // 3 completion tokens + EOS are targets; the 7 positions predicting prompt tokens are not.
    expect(metrics.tokens).toBe(4);

    // The same loss by hand, in f64, from the twin's logits: positions 6..9 predict x, y, z, EOS.
    const ids = example.ids;
    const out = twin.forward({ ids, cuSeqlens: Int32Array.of(0, ids.length) }, { grad: true });
    const logits = out.logits!.toArray() as Float32Array;
    const V = config.vocabSize;
    let nll = 0;
    let nllAll = 0;
    for (let t = 0; t < ids.length - 1; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
      const lse = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
      const term = lse - row[ids[t + 1]];
      nllAll += term;
      if (t >= 1 + record.prompt.length - 1) nll += term;
    }
    expect(metrics.loss).toBeCloseTo(nll / 4, 5);
    expect(Math.abs(metrics.loss - nllAll / (ids.length - 1))).toBeGreaterThan(0.01);

    // The gradient the trainer applied: model.grads still holds it; the twin's from an explicit mask.
    const mask = new Uint8Array(ids.length);
    mask.fill(1, record.prompt.length, ids.length - 1);
    const { targets } = packBatch([{ ids }]);
    const { dLogits } = crossEntropy({ logits: out.logits!, targets, mask, inPlace: true });
    twin.backward(out, { dLogits });
    out.dispose();
    expectBitwiseEqual(model.grads!.toArray(), twin.grads!.toArray());
    trainer.dispose();
  });

  it('reports evalLoss as the token-weighted mean NLL over the eval set, whatever the eval batch size', () => {
    const evalSet = encodeSftRecords(tokenizer, [...sftRecords(5, 3), { prompt: 'a', completion: 'a much longer one' }], 32);
    const model = newModel(4);
    const options = sftOptions({ model, eval: evalSet, maxLen: 32, batchTokens: 64 });
    const whole = new SftTrainer({ ...options, evalBatchTokens: 1000 }).evaluate();
    const small = new SftTrainer({ ...options, evalBatchTokens: 32 }).evaluate();
    // Reference: each example alone, weighted by its loss tokens.
    let nll = 0;
    let count = 0;
    for (const e of evalSet) {
      const batch = packBatch([e]);
      const out = model.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens }, { grad: false });
      const ce = crossEntropy({ logits: out.logits!, targets: batch.targets, mask: batch.lossMask });
      out.dispose();
      ce.dLogits.dispose();
      nll += ce.loss * ce.count;
      count += ce.count;
    }
    expect(whole.evalTokens).toBe(count);
    expect(whole.evalLoss).toBeCloseTo(nll / count, 5);
    expect(small.evalLoss).toBeCloseTo(nll / count, 5);
    expect(new SftTrainer({ ...options, eval: undefined }).evaluate()).toEqual({});
  });

  it('pretrains on packed plain texts', () => {
    const rng = new Rng(11);
    const texts = Array.from({ length: 30 }, () => {
      const start = rng.int(20);
      return Array.from({ length: 4 + rng.int(5) }, (_, i) => String.fromCharCode(97 + ((start + 2 * i) % 26))).join('');
    });
    const train = encodePretrainingTexts(tokenizer, texts, 32);
    const trainer = new SftTrainer(sftOptions({ train, stage: 'pretrain', epochs: undefined, steps: 60, batchTokens: 64, maxLen: 32, schedule: 'constant' }));
    expect(trainer.stage).toBe('pretrain');
    expect(trainer.totalSteps).toBe(60);
    const losses: number[] = [];
    while (trainer.stepsDone < trainer.totalSteps) losses.push(trainer.trainStep().loss);
    expect(losses[losses.length - 1]).toBeLessThan(0.4 * losses[0]);
    // 60 steps of at most 64 tokens cycled through the ~270-token corpus several times.
    expect((trainer.checkpoint().state.batcher as { epoch: number }).epoch).toBeGreaterThan(3);
  });

  it('resumes bitwise exactly: k steps + checkpoint + restore into a fresh model + N-k steps = N steps', () => {
    const N = 9;
    const k = 4;
    const initial = newModel(8).parametersToArray();
    const straight = new SftTrainer(sftOptions({ model: newModel(0, initial), epochs: 2 }));
    expect(straight.totalSteps).toBeGreaterThan(N);
    const straightMetrics = Array.from({ length: N }, () => straight.trainStep());

    const first = new SftTrainer(sftOptions({ model: newModel(0, initial), epochs: 2 }));
    for (let i = 0; i < k; i++) first.trainStep();
    const saved = roundTrip(first.checkpoint());
    first.dispose();
    const resumed = new SftTrainer(sftOptions({ model: newModel(123), epochs: 2 }));
    resumed.restore(saved);
    expect(resumed.stepsDone).toBe(k);
    const resumedMetrics = Array.from({ length: N - k }, () => resumed.trainStep());
    expect(resumedMetrics).toEqual(straightMetrics.slice(k));
    expectBitwiseEqual(resumed.finalModels().policy.parametersToArray(), straight.finalModels().policy.parametersToArray());
    expect(resumed.stepsDone).toBe(N);
  });

  it('throws nonFiniteLoss before the update when the weights hold a NaN, leaving the parameters untouched', () => {
    const model = newModel(2);
    const trainer = new SftTrainer(sftOptions({ model }));
    trainer.trainStep();
    // One poisoned weight vector (the final norm) turns every logit into NaN.
    const norm = model.parameter('model.norm.weight');
    norm.copyFrom(new Float32Array(config.hiddenSize).fill(NaN));
    norm.dispose();
    const before = model.parametersToArray();
    expectThrows(() => trainer.trainStep(), RANGE, 'loss');
    expectBitwiseEqual(model.parametersToArray(), before);
    expect(trainer.stepsDone).toBe(1);
  });
});

describe('SftTrainer rejects bad options', () => {
  const bad: { what: string; patch: () => Partial<Record<keyof SftTrainerOptions, unknown>>; code: TalariaCode; arg: string }[] = [
    { what: 'model missing', patch: () => ({ model: undefined }), code: DTYPE, arg: 'model' },
    { what: 'model without an LM head', patch: () => ({ model: newModel(1, undefined, { lm: false, score: true }) }), code: RANGE, arg: 'model' },
    { what: 'a frozen model', patch: () => ({ model: track(new TransformerModel(config, lmHeads, { trainable: false })) }), code: RANGE, arg: 'model' },
    { what: 'train not an array', patch: () => ({ train: 'text' }), code: DTYPE, arg: 'train' },
    { what: 'empty train set', patch: () => ({ train: [] }), code: SHAPE, arg: 'train' },
    { what: 'train ids not Int32Array', patch: () => ({ train: [{ ids: [1, 2, 3] }] }), code: DTYPE, arg: 'train[0].ids' },
    { what: 'train example with no tokens', patch: () => ({ train: [{ ids: new Int32Array(0) }] }), code: SHAPE, arg: 'train[0].ids' },
    { what: 'token id outside the vocabulary', patch: () => ({ train: [{ ids: Int32Array.of(1, 400) }] }), code: RANGE, arg: 'train[0].ids' },
    { what: 'example longer than maxLen', patch: () => ({ train: [{ ids: new Int32Array(17) }] }), code: RANGE, arg: 'maxLen' },
    { what: 'lossMask of the wrong length', patch: () => ({ train: [{ ids: new Int32Array(4), lossMask: new Uint8Array(3) }] }), code: SHAPE, arg: 'lossMask' },
    { what: 'lossMask of the wrong type', patch: () => ({ train: [{ ids: new Int32Array(4), lossMask: [1, 1, 1, 0] }] }), code: DTYPE, arg: 'lossMask' },
    { what: 'lossMask value 2', patch: () => ({ train: [{ ids: new Int32Array(2), lossMask: Uint8Array.of(2, 0) }] }), code: RANGE, arg: 'lossMask' },
    { what: 'eval not an array', patch: () => ({ eval: {} }), code: DTYPE, arg: 'eval' },
    { what: 'eval example too long', patch: () => ({ eval: [{ ids: new Int32Array(20) }] }), code: RANGE, arg: 'eval[0]' },
    { what: 'stage unknown', patch: () => ({ stage: 'rm' }), code: RANGE, arg: 'stage' },
    { what: 'epochs 0', patch: () => ({ epochs: 0 }), code: RANGE, arg: 'epochs' },
    { what: 'epochs NaN', patch: () => ({ epochs: NaN }), code: RANGE, arg: 'epochs' },
    { what: 'epochs a string', patch: () => ({ epochs: '3' }), code: DTYPE, arg: 'epochs' },
    { what: 'neither epochs nor steps', patch: () => ({ epochs: undefined }), code: RANGE, arg: 'epochs' },
    { what: 'both epochs and steps', patch: () => ({ steps: 10 }), code: RANGE, arg: 'steps' },
    { what: 'steps 0', patch: () => ({ epochs: undefined, steps: 0 }), code: RANGE, arg: 'steps' },
    { what: 'steps fractional', patch: () => ({ epochs: undefined, steps: 2.5 }), code: RANGE, arg: 'steps' },
    { what: 'batchTokens below maxLen', patch: () => ({ batchTokens: 15 }), code: RANGE, arg: 'batchTokens' },
    { what: 'batchTokens missing', patch: () => ({ batchTokens: undefined }), code: DTYPE, arg: 'batchTokens' },
    { what: 'maxLen 1', patch: () => ({ maxLen: 1 }), code: RANGE, arg: 'maxLen' },
    { what: 'maxLen over max_position_embeddings', patch: () => ({ maxLen: 33, batchTokens: 64 }), code: RANGE, arg: 'maxLen' },
    { what: 'pack not a boolean', patch: () => ({ pack: 1 }), code: DTYPE, arg: 'pack' },
    { what: 'lr 0', patch: () => ({ lr: 0 }), code: RANGE, arg: 'lr' },
    { what: 'lr Infinity', patch: () => ({ lr: Infinity }), code: RANGE, arg: 'lr' },
    { what: 'schedule unknown', patch: () => ({ schedule: 'linear' }), code: RANGE, arg: 'schedule' },
    { what: 'warmupSteps negative', patch: () => ({ warmupSteps: -1 }), code: RANGE, arg: 'warmupSteps' },
    { what: 'warmupSteps fractional', patch: () => ({ warmupSteps: 1.5 }), code: RANGE, arg: 'warmupSteps' },
    { what: 'weightDecay negative', patch: () => ({ weightDecay: -0.1 }), code: RANGE, arg: 'weightDecay' },
    { what: 'maxGradNorm 0', patch: () => ({ maxGradNorm: 0 }), code: RANGE, arg: 'maxGradNorm' },
    { what: 'maxGradNorm NaN', patch: () => ({ maxGradNorm: NaN }), code: RANGE, arg: 'maxGradNorm' },
    { what: 'seed fractional', patch: () => ({ seed: 0.5 }), code: RANGE, arg: 'seed' },
    { what: 'seed a string', patch: () => ({ seed: 'x' }), code: DTYPE, arg: 'seed' },
    { what: 'evalBatchTokens below maxLen', patch: () => ({ evalBatchTokens: 8 }), code: RANGE, arg: 'evalBatchTokens' },
  ];
  it.each(bad)('$what', ({ patch, code, arg }) => {
    expectThrows(() => new SftTrainer({ ...sftOptions(), ...patch() } as SftTrainerOptions), code, arg);
  });

  it('rejects a non-object options', () => {
    expectThrows(() => new SftTrainer(null as unknown as SftTrainerOptions), DTYPE, 'options');
  });

  it('accepts Infinity as maxGradNorm (no clipping)', () => {
    expect(new SftTrainer(sftOptions({ maxGradNorm: Infinity })).trainStep().gradNorm).toBeGreaterThan(0);
  });

  it('rejects a checkpoint of another layout or without its state', () => {
    const trainer = new SftTrainer(sftOptions());
    const saved = roundTrip(trainer.checkpoint());
    expectThrows(() => trainer.restore({ ...saved, models: { policy: new Float32Array(3) } }), 'ERR_TALARIA_FORMAT', 'policy');
    expectThrows(() => trainer.restore({ ...saved, state: { ...saved.state, batcher: undefined } }), 'ERR_TALARIA_FORMAT', 'batcher');
    expectThrows(() => trainer.restore({ ...saved, state: { ...saved.state, stepsDone: -1 } }), 'ERR_TALARIA_FORMAT', 'stepsDone');
  });
});

describe('the SFT encoders', () => {
  it('encodeSftRecords masks the prompt, encodePretrainingTexts every next token', () => {
    const [sft] = encodeSftRecords(tokenizer, [{ prompt: 'ab', completion: 'c' }], 8);
    expect([...sft.ids]).toEqual([tokenizer.bosId, 97, 98, 99, tokenizer.eosId]);
    expect([...sft.lossMask!]).toEqual([0, 0, 1, 1, 0]);
    const [text] = encodePretrainingTexts(tokenizer, ['xyz'], 8);
    expect([...text.ids]).toEqual([tokenizer.bosId, 120, 121, 122]);
    expect([...text.lossMask!]).toEqual([1, 1, 1, 0]);
  });

  it('reject bad input, naming it', () => {
    expectThrows(() => encodeSftRecords(tokenizer, 'x' as never, 8), DTYPE, 'records');
    expectThrows(() => encodeSftRecords(tokenizer, [{ prompt: 'a prompt longer than maxLen', completion: 'c' }], 8), RANGE, 'maxLen');
    expectThrows(() => encodeSftRecords(null as never, [{ prompt: 'a', completion: 'c' }], 8), DTYPE, 'tokenizer');
    expectThrows(() => encodePretrainingTexts(tokenizer, 'x' as never, 8), DTYPE, 'texts');
    expectThrows(() => encodePretrainingTexts(tokenizer, ['x'], 1), RANGE, 'maxLen');
    expectThrows(() => encodePretrainingTexts(tokenizer, [''], 8), RANGE, 'text');
  });
});

function track(model: TransformerModel): TransformerModel {
  models.push(model);
  return model;
}
