// The reward-model trainer: it learns a separable preference (held-out accuracy >= 90%), one K-wise batch
// has exactly the gradient of the explicit average over its C(K,2) pairs, the score is read at the
// sequence's last token (EOS, or the last response token when there is none), the bias shift centres
// the demonstrations at 0, a resumed run is bitwise identical, a NaN stops before the update, and every
// option is checked.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ByteTokenizer, rankingLoss, TalariaError } from '../lib/index.js';
import { TransformerModel } from '../lib/nn/model.js';
import {
  accumulateRankingGradient, encodeRewardRecords, type RewardExample, RewardTrainer, type RewardTrainerOptions, scoreSequences,
} from '../lib/train/reward.js';
import type { RestoredCheckpoint, TrainerCheckpoint } from '../lib/train/trainer.js';
import { Rng } from '../lib/util/rng.js';
import { expectBitwiseEqual, expectClose, expectThrows, maxAbs, type TalariaCode } from './helpers/assert.js';
import { disposeTensors } from './helpers/backends.js';
import { DTYPE, RANGE, SHAPE } from './helpers/bad-input.js';
import { tinyConfig } from './helpers/model.js';

afterEach(disposeTensors);

const tokenizer = new ByteTokenizer();
const { bosId: BOS, eosId: EOS } = tokenizer;
const config = tinyConfig({ vocabSize: tokenizer.vocabSize, maxPositions: 32 });
const rmHeads = { lm: false, score: true };
const models: TransformerModel[] = [];
afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});

function newModel(seed = 1, params?: Float32Array, heads = rmHeads, initStd = 0.02): TransformerModel {
  const model = new TransformerModel(config, heads, params ? { params } : { seed, initStd });
  models.push(model);
  return model;
}

const letters = (rng: Rng, n: number, alphabet = 'abcdefgh') => Array.from({ length: n }, () => alphabet[rng.int(alphabet.length)]).join('');

/** K = 4 completions per prompt; those holding a 'z' are all ranked above those without (ties within each side). */
function preferenceRecords(count: number, seed: number) {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const completions = new Set<string>();
    while (completions.size < 4) {
      const text = letters(rng, 3 + rng.int(3));
      completions.add(completions.size < 2 ? `${text.slice(0, 2)}z${text.slice(2)}` : text);
    }
    const list = rng.shuffle([...completions]);
    return { prompt: letters(rng, 2 + rng.int(3)), completions: list, ranking: [0, 1, 2, 3] };
  }).map((record) => {
    // The ranking lists completion indices best first: the 'z' ones first.
    const withZ = record.completions.map((c, i) => [c.includes('z') ? 0 : 1, i] as const);
    return { ...record, ranking: [...withZ].sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, i]) => i) };
  });
}

/** The record's ranking as the trainer's ranks, but with ties between same-class completions. */
function tiedByClass(examples: RewardExample[]): RewardExample[] {
  return examples.map((e) => ({ ...e, ranks: e.completions.map((c) => (c.includes(122) ? 0 : 1)) }));
}

function rmOptions(overrides: Partial<RewardTrainerOptions> = {}): RewardTrainerOptions {
  return {
    model: overrides.model ?? newModel(),
    train: encodeRewardRecords(tokenizer, preferenceRecords(12, 3)),
    epochs: 1,
    promptsPerBatch: 4,
    lr: 1e-3,
    schedule: 'cosine',
    warmupSteps: 1,
    weightDecay: 0.01,
    maxGradNorm: 1,
    seed: 9,
    ...overrides,
  };
}

function roundTrip(checkpoint: TrainerCheckpoint): RestoredCheckpoint {
  const models: Record<string, Float32Array> = {};
  for (const [role, model] of Object.entries(checkpoint.models)) models[role] = model.parametersToArray();
  const tensors: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(checkpoint.tensors)) tensors[name] = t.slice();
  return { state: JSON.parse(JSON.stringify(checkpoint.state)) as Record<string, unknown>, tensors, models };
}

const concat = (...parts: ArrayLike<number>[]) => Int32Array.from(parts.flatMap((p) => Array.from(p)));

describe('RewardTrainer', () => {
  it('learns a separable preference: held-out pairwise accuracy >= 90%', () => {
    const train = tiedByClass(encodeRewardRecords(tokenizer, preferenceRecords(48, 1)));
    const held = tiedByClass(encodeRewardRecords(tokenizer, preferenceRecords(24, 2)));
    const trainer = new RewardTrainer(rmOptions({ train, eval: held, epochs: 6, promptsPerBatch: 8, lr: 3e-3, warmupSteps: 3 }));
    expect(trainer.stage).toBe('rm');
    expect(trainer.totalSteps).toBe(36);
    const before = trainer.evaluate();
    const metrics = [];
    while (trainer.stepsDone < trainer.totalSteps) metrics.push(trainer.trainStep());
    const after = trainer.evaluate();
    // 4 non-tied pairs per prompt (2 'z' × 2 plain), 24 held-out prompts.
    expect(after.evalPairs).toBe(96);
    expect(after.evalAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(after.evalLoss).toBeLessThan(before.evalLoss);
    expect(metrics[metrics.length - 1].accuracy).toBeGreaterThanOrEqual(0.9);
    expect(metrics[0].pairs).toBe(32);
    expect(() => trainer.trainStep()).toThrow(TalariaError);
  });

  it('trains a reward model loaded from an SFT checkpoint with a fresh (zero) score head', () => {
    const dir = mkdtempSync(join(tmpdir(), 'talaria-rm-'));
    try {
      newModel(12, undefined, { lm: true, score: false }).save(dir);
      const model = track(TransformerModel.fromPretrained(dir, rmHeads, { initMissingScore: true }));
      const train = tiedByClass(encodeRewardRecords(tokenizer, preferenceRecords(32, 41)));
      const held = tiedByClass(encodeRewardRecords(tokenizer, preferenceRecords(16, 42)));
      const trainer = new RewardTrainer(rmOptions({ model, train, eval: held, epochs: 6, promptsPerBatch: 8, lr: 3e-3 }));
      // A zero head scores everything alike: no pair is ordered yet.
      expect(trainer.evaluate().evalAccuracy).toBe(0);
      while (trainer.stepsDone < trainer.totalSteps) trainer.trainStep();
      expect(trainer.evaluate().evalAccuracy).toBeGreaterThanOrEqual(0.9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the score at EOS: it learns "ended beats cut short" for responses identical up to the EOS', () => {
    // Every pair is a response with its EOS against the same response without it. A score read at the
    // prompt, or at any position the two share, sees identical tokens on both sides and can never rank
    // them (accuracy would stay 0): only the last token tells them apart.
    const rng = new Rng(4);
    const pairs = (n: number) =>
      Array.from({ length: n }, () => {
        const prompt = concat([BOS], tokenizer.encode(letters(rng, 3)));
        const response = tokenizer.encode(letters(rng, 2 + rng.int(4)));
        const cut = rng.bernoulli(0.5);
        const completions = cut ? [response, concat(response, [EOS])] : [concat(response, [EOS]), response];
        return { prompt, completions, ranks: cut ? [1, 0] : [0, 1] };
      });
    const trainer = new RewardTrainer(rmOptions({ train: pairs(40), eval: pairs(20), epochs: 4, promptsPerBatch: 8, lr: 3e-3 }));
    while (trainer.stepsDone < trainer.totalSteps) trainer.trainStep();
    expect(trainer.evaluate().evalAccuracy).toBeGreaterThanOrEqual(0.9);
  });

  it('finish() shifts the score bias so the demonstrations score 0 on average', () => {
    const model = newModel(6, undefined, rmHeads, 0.5); // large weights: scores far from 0
    const rng = new Rng(8);
    const references = Array.from({ length: 7 }, () => ({ prompt: concat([BOS], tokenizer.encode(letters(rng, 3))), completion: concat(tokenizer.encode(letters(rng, 4)), [EOS]) }));
    const trainer = new RewardTrainer(rmOptions({ model, referenceCompletions: references, promptsPerBatch: 3 }));
    while (trainer.stepsDone < trainer.totalSteps) trainer.trainStep();
    const sequences = references.map((r) => concat(r.prompt, r.completion));
    const mean = (xs: Float32Array) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const meanBefore = mean(scoreSequences(model, sequences, 64));
    expect(Math.abs(meanBefore)).toBeGreaterThan(0.01);
    const report = trainer.finish();
    expect(report.biasShift).toBeCloseTo(-meanBefore, 5);
    expect(Math.abs(report.meanReferenceScore)).toBeLessThan(1e-4);
    expect(Math.abs(mean(scoreSequences(model, sequences, 64)))).toBeLessThan(1e-4);

    const plain = new RewardTrainer(rmOptions({ model }));
    const params = model.parametersToArray();
    expect(plain.finish()).toEqual({ biasShift: 0 });
    expectBitwiseEqual(model.parametersToArray(), params);
  });

  it('resumes bitwise exactly: k steps + checkpoint + restore into a fresh model + N-k steps = N steps', () => {
    const N = 7;
    const k = 3;
    const train = encodeRewardRecords(tokenizer, preferenceRecords(10, 5));
    const initial = newModel(8).parametersToArray();
    // 3 batches per epoch (4+4+2 prompts): the run crosses two epoch boundaries and reshuffles.
    const options = (model: TransformerModel) => rmOptions({ model, train, epochs: 3, promptsPerBatch: 4 });
    const straight = new RewardTrainer(options(newModel(0, initial)));
    expect(straight.totalSteps).toBe(9);
    const straightMetrics = Array.from({ length: N }, () => straight.trainStep());

    const first = new RewardTrainer(options(newModel(0, initial)));
    for (let i = 0; i < k; i++) first.trainStep();
    const saved = roundTrip(first.checkpoint());
    expect(Object.keys(saved.models)).toEqual(['reward']);
    const resumed = new RewardTrainer(options(newModel(77)));
    resumed.restore(saved);
    const resumedMetrics = Array.from({ length: N - k }, () => resumed.trainStep());
    expect(resumedMetrics).toEqual(straightMetrics.slice(k));
    expectBitwiseEqual(resumed.finalModels().reward.parametersToArray(), straight.finalModels().reward.parametersToArray());
  });

  it('throws nonFiniteLoss before the update when the weights hold a NaN, leaving the parameters untouched', () => {
    const model = newModel(2);
    const trainer = new RewardTrainer(rmOptions({ model }));
    trainer.trainStep();
    const w = model.parameter('score.weight');
    w.copyFrom(new Float32Array(config.hiddenSize).fill(NaN));
    w.dispose();
    const before = model.parametersToArray();
    expectThrows(() => trainer.trainStep(), RANGE, 'loss');
    expectBitwiseEqual(model.parametersToArray(), before);
    expect(trainer.stepsDone).toBe(1);
  });
});

describe('the K-wise batch', () => {
  const rng = new Rng(21);
  const K = 5;
  const example: RewardExample = {
    prompt: concat([BOS], tokenizer.encode('hello')),
    completions: Array.from({ length: K }, (_, i) => concat(tokenizer.encode(letters(rng, 2 + i)), i === 3 ? [] : [EOS])),
    ranks: [3, 0, 4, 1, 2],
  };

  it('has the gradient of the explicit average of −log σ(r_w − r_l) / C(K,2) over its pairs, pair by pair', () => {
    const model = newModel(13, undefined, rmHeads, 0.1);
    model.zeroGrad();
    const kwise = accumulateRankingGradient(model, [example]);
    const kwiseGrad = model.grads!.toArray() as Float32Array;

    // The same loss pair by pair: each pair is its own K = 2 batch (2 forwards), weighted 1 / C(K,2).
    const pairsCount = (K * (K - 1)) / 2;
    const accumulated = new Float64Array(kwiseGrad.length);
    let loss = 0;
    for (let i = 0; i < K; i++)
      for (let j = i + 1; j < K; j++) {
        model.zeroGrad();
        const pair = { prompt: example.prompt, completions: [example.completions[i], example.completions[j]], ranks: example.ranks[i] < example.ranks[j] ? [0, 1] : [1, 0] };
        loss += accumulateRankingGradient(model, [pair]).loss / pairsCount;
        const g = model.grads!.toArray() as Float32Array;
        for (let p = 0; p < g.length; p++) accumulated[p] += g[p] / pairsCount;
      }
    expect(kwise.loss).toBeCloseTo(loss, 6);
    expect(kwise.pairs).toBe(pairsCount);
    expect(maxAbs(kwiseGrad)).toBeGreaterThan(1e-4);
    expectClose(kwiseGrad, accumulated, { rel: 1e-4, scale: maxAbs(kwiseGrad) });

    // And by hand from the scores, in f64.
    const scores = scoreSequences(model, example.completions.map((c) => concat(example.prompt, c)), 1000);
    let byHand = 0;
    for (let i = 0; i < K; i++)
      for (let j = 0; j < K; j++)
        if (example.ranks[i] < example.ranks[j]) byHand += Math.log1p(Math.exp(-(scores[i] - scores[j]))) / pairsCount;
    expect(kwise.loss).toBeCloseTo(byHand, 5);
  });

  it('rejects bad input, naming it', () => {
    const model = newModel(1);
    expectThrows(() => accumulateRankingGradient({} as never, [example]), DTYPE, 'model');
    expectThrows(() => accumulateRankingGradient(newModel(1, undefined, { lm: true, score: false }), [example]), RANGE, 'model');
    expectThrows(() => accumulateRankingGradient(model, 'x' as never), DTYPE, 'examples');
    expectThrows(() => accumulateRankingGradient(model, [{ ...example, ranks: [0, 1] }]), SHAPE, 'examples[0].ranks');
    expectThrows(() => accumulateRankingGradient(model, [{ ...example, completions: [example.completions[0]], ranks: [0] }]), SHAPE, 'examples[0].completions');
    expectThrows(() => accumulateRankingGradient(model, [example], null as never), DTYPE, 'options');
    expectThrows(() => accumulateRankingGradient(model, [example], { batchTokens: 10 }), RANGE, 'batchTokens');
    expectThrows(() => accumulateRankingGradient(model, [example], { stage: 3 as never }), DTYPE, 'stage');
    expectThrows(() => accumulateRankingGradient(model, [example], { step: -1 }), RANGE, 'step');
    expect(accumulateRankingGradient(model, [])).toEqual({ loss: 0, accuracy: 0, pairs: 0, tokens: 0 });
  });

  it('gives the same gradient whether the batch runs as one forward or several (batchTokens)', () => {
    const examples = encodeRewardRecords(tokenizer, preferenceRecords(6, 17));
    const model = newModel(14, undefined, rmHeads, 0.1);
    model.zeroGrad();
    const whole = accumulateRankingGradient(model, examples);
    const one = model.grads!.toArray() as Float32Array;
    model.zeroGrad();
    const split = accumulateRankingGradient(model, examples, { batchTokens: 60 });
    const several = model.grads!.toArray() as Float32Array;
    expect(split.loss).toBeCloseTo(whole.loss, 6);
    expect(split.accuracy).toBe(whole.accuracy);
    expect(split.tokens).toBe(whole.tokens);
    expectClose(several, one, { rel: 1e-5, scale: maxAbs(one) });
  });
});

describe('scoreSequences', () => {
  const rng = new Rng(31);
  const prompt = concat([BOS], tokenizer.encode('pq'));
  const response = tokenizer.encode(letters(rng, 5));
  const ended = concat(prompt, response, [EOS]);
  const cut = concat(prompt, response);

  it('reads each sequence at its last token: the EOS when present, else the last response token', () => {
    const model = newModel(15, undefined, rmHeads, 0.2);
    const [sEnded, sCut] = scoreSequences(model, [ended, cut], 1000);
    const out = model.forward({ ids: ended, cuSeqlens: Int32Array.of(0, ended.length) }, { grad: false });
    const values = out.values!.toArray() as Float32Array;
    out.dispose();
    expect(sEnded).toBeCloseTo(values[ended.length - 1], 5); // at the EOS
    expect(sCut).toBeCloseTo(values[ended.length - 2], 5); // at the last response token, the same prefix
    expect(Math.abs(sEnded - sCut)).toBeGreaterThan(1e-4);
  });

  it('moves with the last token and with tokens before it, never with a neighbour in the batch', () => {
    const model = newModel(16, undefined, rmHeads, 0.2);
    const lastChanged = concat(prompt, response, [EOS - 1]);
    const earlyChanged = Int32Array.from(ended);
    earlyChanged[2] = 120;
    const other = concat(prompt, tokenizer.encode('zzzzzzzz'), [EOS]);
    const [base, last, early] = scoreSequences(model, [ended, lastChanged, earlyChanged], 1000);
    expect(Math.abs(last - base)).toBeGreaterThan(1e-4);
    expect(Math.abs(early - base)).toBeGreaterThan(1e-4);
    // The same sequence next to another one, alone, and in chunks of any budget: the same score.
    const [withNeighbour] = scoreSequences(model, [ended, other], 1000);
    const [alone] = scoreSequences(model, [ended], ended.length);
    expect(withNeighbour).toBeCloseTo(base, 5);
    expect(alone).toBeCloseTo(base, 5);
    expect(scoreSequences(model, [], 10)).toHaveLength(0);
  });

  it('rejects bad input, naming it', () => {
    const model = newModel(1);
    expectThrows(() => scoreSequences(null as never, [ended], 64), DTYPE, 'model');
    expectThrows(() => scoreSequences(newModel(1, undefined, { lm: true, score: false }), [ended], 64), RANGE, 'model');
    expectThrows(() => scoreSequences(model, 'x' as never, 64), DTYPE, 'sequences');
    expectThrows(() => scoreSequences(model, [new Int32Array(0)], 64), SHAPE, 'sequences[0]');
    expectThrows(() => scoreSequences(model, [Int32Array.of(1, 999)], 64), RANGE, 'sequences[0]');
    expectThrows(() => scoreSequences(model, [new Int32Array(33)], 64), RANGE, 'max_position_embeddings');
    expectThrows(() => scoreSequences(model, [ended], 3), RANGE, 'batchTokens');
    expectThrows(() => scoreSequences(model, [ended], 0), RANGE, 'batchTokens');
    expectThrows(() => scoreSequences(model, [ended], '64' as never), DTYPE, 'batchTokens');
  });
});

describe('encodeRewardRecords', () => {
  it('prepends BOS to the prompt, appends EOS to each completion, and turns the ranking into ranks', () => {
    const [e] = encodeRewardRecords(tokenizer, [{ prompt: 'ab', completions: ['x', 'yy', 'z'], ranking: [2, 0, 1] }]);
    expect([...e.prompt]).toEqual([BOS, 97, 98]);
    expect(e.completions.map((c) => [...c])).toEqual([[120, EOS], [121, 121, EOS], [122, EOS]]);
    // completions[2] is best, then [0], then [1].
    expect(e.ranks).toEqual([1, 2, 0]);
    // The kernel agrees: scores that follow the ranking give accuracy 1.
    const { stats } = rankingLoss({ scores: Float32Array.of(1, 0, 2), offsets: Int32Array.of(0, 3), ranks: Int32Array.from(e.ranks) });
    expect(stats.accuracy).toBe(1);
  });

  it('cuts a completion that does not fit maxLen and drops its EOS', () => {
    const [e] = encodeRewardRecords(tokenizer, [{ prompt: 'ab', completions: ['xyz', 'w'], ranking: [0, 1] }], 5);
    expect(e.completions.map((c) => [...c])).toEqual([[120, 121], [119, EOS]]);
  });

  it('rejects bad input, naming it', () => {
    const good = { prompt: 'ab', completions: ['x', 'y'], ranking: [0, 1] };
    expectThrows(() => encodeRewardRecords(null as never, [good]), DTYPE, 'tokenizer');
    expectThrows(() => encodeRewardRecords(tokenizer, 'x' as never), DTYPE, 'records');
    expectThrows(() => encodeRewardRecords(tokenizer, [null as never]), DTYPE, 'records[0]');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, prompt: 3 as never }]), DTYPE, 'prompt');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, completions: ['x'], ranking: [0] }]), SHAPE, 'completions');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, completions: ['x', ''] }]), DTYPE, 'completions');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, ranking: [0, 0] }]), RANGE, 'ranking');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, ranking: [0] }]), RANGE, 'ranking');
    expectThrows(() => encodeRewardRecords(tokenizer, [{ ...good, prompt: 'a long prompt' }], 8), RANGE, 'maxLen');
    expectThrows(() => encodeRewardRecords(tokenizer, [good], 1), RANGE, 'maxLen');
  });
});

describe('RewardTrainer rejects bad options', () => {
  const ok = (): RewardExample => ({ prompt: Int32Array.of(BOS, 97), completions: [Int32Array.of(98, EOS), Int32Array.of(99, EOS)], ranks: [0, 1] });
  const withExample = (patch: Partial<Record<keyof RewardExample, unknown>>) => ({ train: [{ ...ok(), ...patch }] });
  const bad: { what: string; patch: () => Record<string, unknown>; code: TalariaCode; arg: string }[] = [
    { what: 'model missing', patch: () => ({ model: undefined }), code: DTYPE, arg: 'model' },
    { what: 'model without a score head', patch: () => ({ model: newModel(1, undefined, { lm: true, score: false }) }), code: RANGE, arg: 'model' },
    { what: 'a frozen model', patch: () => ({ model: track(new TransformerModel(config, rmHeads, { trainable: false })) }), code: RANGE, arg: 'model' },
    { what: 'train not an array', patch: () => ({ train: 3 }), code: DTYPE, arg: 'train' },
    { what: 'empty train set', patch: () => ({ train: [] }), code: SHAPE, arg: 'train' },
    { what: 'a train entry not an object', patch: () => ({ train: [null] }), code: DTYPE, arg: 'train[0]' },
    { what: 'prompt not Int32Array', patch: () => withExample({ prompt: [BOS] }), code: DTYPE, arg: 'prompt' },
    { what: 'empty prompt', patch: () => withExample({ prompt: new Int32Array(0) }), code: SHAPE, arg: 'prompt' },
    { what: 'completions not an array', patch: () => withExample({ completions: 'ab' }), code: DTYPE, arg: 'completions' },
    { what: 'a single completion', patch: () => withExample({ completions: [Int32Array.of(98)], ranks: [0] }), code: SHAPE, arg: 'completions' },
    { what: 'an empty completion', patch: () => withExample({ completions: [Int32Array.of(98), new Int32Array(0)] }), code: SHAPE, arg: 'completions[1]' },
    { what: 'a completion token outside the vocabulary', patch: () => withExample({ completions: [Int32Array.of(98), Int32Array.of(-1)] }), code: RANGE, arg: 'completions[1]' },
    { what: 'a sequence longer than max_position_embeddings', patch: () => withExample({ completions: [Int32Array.of(98), new Int32Array(31)] }), code: RANGE, arg: 'max_position_embeddings' },
    { what: 'ranks not an array', patch: () => withExample({ ranks: Int32Array.of(0, 1) }), code: DTYPE, arg: 'ranks' },
    { what: 'ranks of the wrong length', patch: () => withExample({ ranks: [0, 1, 2] }), code: SHAPE, arg: 'ranks' },
    { what: 'a rank out of range', patch: () => withExample({ ranks: [0, 2] }), code: RANGE, arg: 'ranks[1]' },
    { what: 'a fractional rank', patch: () => withExample({ ranks: [0.5, 1] }), code: RANGE, arg: 'ranks[0]' },
    { what: 'eval not an array', patch: () => ({ eval: 'x' }), code: DTYPE, arg: 'eval' },
    { what: 'an eval prompt with ranks of the wrong length', patch: () => ({ eval: [{ ...ok(), ranks: [0] }] }), code: SHAPE, arg: 'eval[0].ranks' },
    { what: 'epochs 0', patch: () => ({ epochs: 0 }), code: RANGE, arg: 'epochs' },
    { what: 'epochs negative', patch: () => ({ epochs: -1 }), code: RANGE, arg: 'epochs' },
    { what: 'epochs a string', patch: () => ({ epochs: '1' }), code: DTYPE, arg: 'epochs' },
    { what: 'promptsPerBatch 0', patch: () => ({ promptsPerBatch: 0 }), code: RANGE, arg: 'promptsPerBatch' },
    { what: 'promptsPerBatch fractional', patch: () => ({ promptsPerBatch: 2.5 }), code: RANGE, arg: 'promptsPerBatch' },
    { what: 'batchTokens 0', patch: () => ({ batchTokens: 0 }), code: RANGE, arg: 'batchTokens' },
    { what: 'batchTokens below a prompt group', patch: () => ({ batchTokens: 7 }), code: RANGE, arg: 'batchTokens' },
    { what: 'lr negative', patch: () => ({ lr: -1 }), code: RANGE, arg: 'lr' },
    { what: 'lr missing', patch: () => ({ lr: undefined }), code: DTYPE, arg: 'lr' },
    { what: 'schedule unknown', patch: () => ({ schedule: 'step' }), code: RANGE, arg: 'schedule' },
    { what: 'warmupSteps negative', patch: () => ({ warmupSteps: -2 }), code: RANGE, arg: 'warmupSteps' },
    { what: 'weightDecay NaN', patch: () => ({ weightDecay: NaN }), code: RANGE, arg: 'weightDecay' },
    { what: 'maxGradNorm negative', patch: () => ({ maxGradNorm: -1 }), code: RANGE, arg: 'maxGradNorm' },
    { what: 'seed fractional', patch: () => ({ seed: 1.5 }), code: RANGE, arg: 'seed' },
    { what: 'referenceCompletions not an array', patch: () => ({ referenceCompletions: {} }), code: DTYPE, arg: 'referenceCompletions' },
    { what: 'a reference without a completion', patch: () => ({ referenceCompletions: [{ prompt: Int32Array.of(BOS) }] }), code: DTYPE, arg: 'referenceCompletions[0].completion' },
    { what: 'an empty reference completion', patch: () => ({ referenceCompletions: [{ prompt: Int32Array.of(BOS), completion: new Int32Array(0) }] }), code: SHAPE, arg: 'referenceCompletions[0].completion' },
    { what: 'a reference too long', patch: () => ({ referenceCompletions: [{ prompt: Int32Array.of(BOS), completion: new Int32Array(40) }] }), code: RANGE, arg: 'referenceCompletions[0]' },
  ];
  it.each(bad)('$what', ({ patch, code, arg }) => {
    expectThrows(() => new RewardTrainer({ ...rmOptions({ train: [ok()] }), ...patch() } as RewardTrainerOptions), code, arg);
  });

  it('rejects a non-object options and a checkpoint of another layout', () => {
    expectThrows(() => new RewardTrainer(undefined as unknown as RewardTrainerOptions), DTYPE, 'options');
    const trainer = new RewardTrainer(rmOptions());
    const saved = roundTrip(trainer.checkpoint());
    expectThrows(() => trainer.restore({ ...saved, models: { policy: saved.models.reward } }), 'ERR_TALARIA_FORMAT', 'reward');
    expectThrows(() => trainer.restore({ ...saved, state: { ...saved.state, order: { epoch: 0, index: 99, rngState: [1, 2, 3, 4] } } }), 'ERR_TALARIA_FORMAT', 'order');
    expectThrows(() => trainer.restore({ ...saved, tensors: {} }), 'ERR_TALARIA_FORMAT', 'm');
  });
});

function track(model: TransformerModel): TransformerModel {
  models.push(model);
  return model;
}
