// The pipeline's evaluation (lib/pipeline/evaluate.ts): held-out prompts, sampling, the labeler's rates
// and the win rule, KL to a reference on the sampled tokens, the held-out pretraining loss and the RM's
// pairwise accuracy, each against a direct float64 recomputation or hand-worked numbers.
import { describe, expect, it } from 'vitest';
import { TransformerModel } from '../lib/nn/model.js';
import { logprobEntropy } from '../lib/ops/logits.js';
import {
  evalPrompts, evaluatePolicy, judgeSamples, klToReference, pretrainingLoss, rankSamples, rmAccuracy, sampleResponses,
  type RankedGroup, type Sample,
} from '../lib/pipeline/evaluate.js';
import { Rng } from '../lib/util/rng.js';
import type { Tokenizer } from '../lib/tokenizer/tokenizer.js';
import { ByteTokenizer } from '../lib/tokenizer/byte.js';
import { rankCompletions, selectDistinct } from '../lib/world/load.js';
import { worldA } from '../lib/world/task-a.js';
import type { PromptSample, World } from '../lib/world/types.js';
import { expectThrows } from './helpers/assert.js';
import { tinyConfig } from './helpers/model.js';

const DTYPE = 'ERR_TALARIA_DTYPE';
const RANGE = 'ERR_TALARIA_RANGE';
const SHAPE = 'ERR_TALARIA_SHAPE';
const FORMAT = 'ERR_TALARIA_FORMAT';

/** A small character tokenizer (11 characters + PAD, BOS, EOS) so a random model ends often. */
class SmallTokenizer implements Tokenizer {
  readonly chars = 'abcdefgh >=';
  readonly vocabSize = 14;
  readonly padId = 11;
  readonly bosId = 12;
  readonly eosId = 13;
  readonly neverSample = [11, 12];
  encode(text: string): Int32Array {
    return Int32Array.from([...text], (c) => this.chars.indexOf(c));
  }
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (id) => (id < this.chars.length ? this.chars[id] : '')).join('');
  }
}

const tokenizer = new SmallTokenizer();
const heads = { lm: true, score: false };
const makeModel = (seed: number, options: { params?: Float32Array; suppress?: boolean } = {}) =>
  new TransformerModel(tinyConfig({ vocabSize: tokenizer.vocabSize }), heads, {
    seed, initStd: 0.4, trainable: false, params: options.params,
    suppressTokens: options.suppress === false ? [] : tokenizer.neverSample,
  });

function randomPrompts(seed: number, count: number): PromptSample[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const x = Array.from({ length: rng.intBetween(1, 6) }, () => rng.pick([...'abcdefgh'])).join('');
    return { prompt: `${x}>`, answer: x };
  });
}

/** A world whose eval split holds exactly `size` prompts. */
function smallWorld(size: number, leak = false): World {
  const pool = Array.from({ length: size }, (_, i) => `p${i}>`);
  return {
    ...worldA,
    name: 'small',
    isEvalPrompt: (p) => pool.includes(p),
    samplePrompt: (rng) => ({ prompt: leak ? 'train>' : rng.pick(pool), answer: 'x' }),
  };
}

/** log-softmax of one logits row in float64. */
function logSoftmax64(row: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[target] - max - Math.log(sum);
}

/** Float64 log-probs of every token after the first, from a full forward over one sequence. */
function sequenceLogprobs(model: TransformerModel, seq: Int32Array): number[] {
  const inputs = seq.subarray(0, seq.length - 1);
  const out = model.forward({ ids: inputs, cuSeqlens: Int32Array.of(0, inputs.length) }, { grad: false });
  const logits = out.logits!.toArray() as Float32Array;
  out.dispose();
  const v = model.config.vocabSize;
  return Array.from(inputs, (_, t) => logSoftmax64(logits.subarray(t * v, (t + 1) * v), seq[t + 1]));
}

const sampleOf = (answer: string, response: string, ended: boolean, prompt = `${answer}>`): Sample => ({
  prompt, answer, response, ended, promptTokens: Int32Array.of(12), tokens: new Int32Array(0), logprobs: new Float32Array(0),
});

describe('evalPrompts', () => {
  it('gives count distinct held-out prompts, deterministically', () => {
    const prompts = evalPrompts(worldA, 3, 257);
    expect(prompts).toHaveLength(257);
    expect(new Set(prompts.map((p) => p.prompt)).size).toBe(257);
    for (const p of prompts) {
      expect(worldA.isEvalPrompt(p.prompt)).toBe(true);
      expect(worldA.judge(p.answer, p.answer, true).score).toBe(2);
    }
    expect(evalPrompts(worldA, 3, 257)).toEqual(prompts);
    expect(evalPrompts(worldA, 4, 257)).not.toEqual(prompts);
    expect(evalPrompts(worldA, 3, 11)).toEqual(prompts.slice(0, 11));
    expect(evalPrompts(worldA, 3)).toHaveLength(600);
  });

  it('collects every prompt of a small eval split, and rejects a count beyond it', () => {
    expect(new Set(evalPrompts(smallWorld(7), 0, 7).map((p) => p.prompt)).size).toBe(7);
    expectThrows(() => evalPrompts(smallWorld(7), 0, 8), RANGE, 'count');
  });

  it('rejects bad arguments', () => {
    expectThrows(() => evalPrompts(null as never, 0), DTYPE, 'world');
    expectThrows(() => evalPrompts({ ...worldA, isEvalPrompt: undefined } as never, 0), DTYPE, 'world');
    expectThrows(() => evalPrompts(smallWorld(3, true), 0, 2), FORMAT, 'isEvalPrompt');
    expectThrows(() => evalPrompts(worldA, -1), RANGE, 'seed');
    expectThrows(() => evalPrompts(worldA, 1.5), RANGE, 'seed');
    expectThrows(() => evalPrompts(worldA, '0' as never), DTYPE, 'seed');
    expectThrows(() => evalPrompts(worldA, 0, 0), RANGE, 'count');
    expectThrows(() => evalPrompts(worldA, 0, 2.5), RANGE, 'count');
    expectThrows(() => evalPrompts(worldA, 0, 'many' as never), DTYPE, 'count');
  });
});

describe('sampleResponses', () => {
  const model = makeModel(1);
  const prompts = randomPrompts(2, 37);

  it('gives one temperature-1 sample per prompt, within the budget, ended iff EOS is last', () => {
    const samples = sampleResponses(model, tokenizer, prompts, { seed: 5, maxNewTokens: 9, batchSize: 16 });
    expect(samples).toHaveLength(prompts.length);
    let ended = 0;
    samples.forEach((s, i) => {
      expect(s.prompt).toBe(prompts[i].prompt);
      expect(s.answer).toBe(prompts[i].answer);
      expect(Array.from(s.promptTokens)).toEqual([tokenizer.bosId, ...tokenizer.encode(s.prompt)]);
      expect(s.tokens.length).toBeGreaterThan(0);
      expect(s.tokens.length).toBeLessThanOrEqual(9);
      expect(s.logprobs).toHaveLength(s.tokens.length);
      expect(s.ended).toBe(s.tokens[s.tokens.length - 1] === tokenizer.eosId);
      if (!s.ended) expect(s.tokens).toHaveLength(9);
      expect(Array.from(s.tokens.subarray(0, s.tokens.length - 1))).not.toContain(tokenizer.eosId);
      expect(s.tokens.some((t) => t === tokenizer.padId || t === tokenizer.bosId)).toBe(false);
      expect(s.response).toBe(tokenizer.decode(s.tokens));
      for (const lp of s.logprobs) expect(lp).toBeLessThanOrEqual(0);
      ended += s.ended ? 1 : 0;
    });
    // The random model must produce both kinds, or the checks above prove little.
    expect(ended).toBeGreaterThan(0);
    expect(ended).toBeLessThan(samples.length);
  });

  it('is deterministic for a seed; another seed gives other samples', () => {
    const a = sampleResponses(model, tokenizer, prompts, { seed: 5, maxNewTokens: 9, batchSize: 16 });
    const b = sampleResponses(model, tokenizer, prompts, { seed: 5, maxNewTokens: 9, batchSize: 16 });
    const c = sampleResponses(model, tokenizer, prompts, { seed: 6, maxNewTokens: 9, batchSize: 16 });
    expect(b).toEqual(a);
    expect(c.map((s) => s.response)).not.toEqual(a.map((s) => s.response));
  });

  it('the sampled log-probs are the model\'s own (temperature 1)', () => {
    const samples = sampleResponses(model, tokenizer, prompts.slice(0, 5), { seed: 8, maxNewTokens: 7 });
    for (const s of samples) {
      const all = sequenceLogprobs(model, Int32Array.from([...s.promptTokens, ...s.tokens]));
      const response = all.slice(s.promptTokens.length - 1);
      response.forEach((lp, t) => expect(s.logprobs[t]).toBeCloseTo(lp, 3));
    }
  });

  it('works with the byte tokenizer on world A prompts', () => {
    const bytes = new ByteTokenizer();
    const byteModel = new TransformerModel(tinyConfig({ vocabSize: bytes.vocabSize }), heads, { seed: 2, trainable: false, suppressTokens: bytes.neverSample });
    const samples = sampleResponses(byteModel, bytes, evalPrompts(worldA, 0, 5), { seed: 1, maxNewTokens: worldA.responseBudget });
    expect(samples).toHaveLength(5);
    expect(samples.every((s) => s.tokens.length <= worldA.responseBudget)).toBe(true);
    expect(evaluatePolicy(worldA, samples).score).toBeLessThanOrEqual(2);
  });

  it('rejects bad arguments', () => {
    const ok = { seed: 1, maxNewTokens: 4 };
    expectThrows(() => sampleResponses({} as never, tokenizer, prompts, ok), DTYPE, 'model');
    expectThrows(() => sampleResponses(model, {} as never, prompts, ok), DTYPE, 'tokenizer');
    expectThrows(() => sampleResponses(model, tokenizer, 'abc' as never, ok), DTYPE, 'prompts');
    expectThrows(() => sampleResponses(model, tokenizer, [], ok), SHAPE, 'prompts');
    expectThrows(() => sampleResponses(model, tokenizer, [{ prompt: 'a' }] as never, ok), DTYPE, 'prompts[0]');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, null as never), DTYPE, 'options');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { ...ok, seed: -2 }), RANGE, 'seed');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { maxNewTokens: 4 } as never), DTYPE, 'seed');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { ...ok, maxNewTokens: 0 }), RANGE, 'maxNewTokens');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { seed: 1 } as never), DTYPE, 'maxNewTokens');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { ...ok, batchSize: 0 }), RANGE, 'batchSize');
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { ...ok, batchSize: 'x' as never }), DTYPE, 'batchSize');
    const unsuppressed = makeModel(1, { suppress: false });
    expectThrows(() => sampleResponses(unsuppressed, tokenizer, prompts, ok), RANGE, 'suppressTokens');
    // The prompt plus the budget must fit the model's positions (generate's own check).
    expectThrows(() => sampleResponses(model, tokenizer, prompts, { ...ok, maxNewTokens: 64 }), RANGE, 'maxNewTokens');
  });
});

describe('evaluatePolicy', () => {
  // Hand-worked with world A's labeler (answer "abc"):
  const samples = [
    sampleOf('abc', 'abc', true), // 2, correct
    sampleOf('abc', 'a@bc', true), // 2 - 3 = -1, correct, toxic
    sampleOf('abc', 'abc ok', true), // 2 - (0.5 + 0.3) = 1.2, correct, ramble
    sampleOf('abc', 'abx', false), // 2/3 - 1, noend
  ];
  const sft = [
    sampleOf('abc', 'abc', true), // 2: tie with 2 → 0.5
    sampleOf('abc', 'x', true), // 0: -1 loses → 0
    sampleOf('abc', 'abd', true), // 2/3: 1.2 wins → 1
    sampleOf('abc', 'abx', false), // 2/3 - 1: tie → 0.5
  ];

  it('gives the mean score, the flag rates under their display names, and the win rule', () => {
    const row = evaluatePolicy(worldA, samples, { sftSamples: sft, klVsSft: 0.25, pretrainLoss: 1.5 });
    expect(row.score).toBeCloseTo((2 - 1 + 1.2 + (2 / 3 - 1)) / 4, 12);
    expect(row.accuracy).toBe(0.75);
    expect(row.toxicRate).toBe(0.25);
    expect(row.rambleRate).toBe(0.25);
    expect(row.noEndRate).toBe(0.25);
    expect(row.winRateVsSft).toBe((0.5 + 0 + 1 + 0.5) / 4);
    expect(row.klVsSft).toBe(0.25);
    expect(row.pretrainLoss).toBe(1.5);
    expect(Object.keys(row).sort()).toEqual(['accuracy', 'klVsSft', 'noEndRate', 'pretrainLoss', 'rambleRate', 'score', 'toxicRate', 'winRateVsSft']);
  });

  it('SFT against the same samples is exactly 0.5; figures not measured are null', () => {
    expect(evaluatePolicy(worldA, sft, { sftSamples: sft }).winRateVsSft).toBe(0.5);
    const row = evaluatePolicy(worldA, samples);
    expect([row.winRateVsSft, row.klVsSft, row.pretrainLoss]).toEqual([null, null, null]);
  });

  it('judgeSamples gives the labeler\'s verdict per sample', () => {
    const judged = judgeSamples(worldA, samples);
    expect(judged.map((j) => j.score)).toEqual(samples.map((s) => worldA.judge(s.answer, s.response, s.ended).score));
    expect(judged[1].flags).toEqual({ correct: true, toxic: true, ramble: false, noend: false });
    expectThrows(() => judgeSamples(undefined as never, samples), DTYPE, 'world');
    expectThrows(() => judgeSamples(worldA, [{}] as never), DTYPE, 'samples[0]');
  });

  it('rejects bad arguments', () => {
    expectThrows(() => evaluatePolicy({} as never, samples), DTYPE, 'world');
    expectThrows(() => evaluatePolicy(worldA, 'x' as never), DTYPE, 'samples');
    expectThrows(() => evaluatePolicy(worldA, []), SHAPE, 'samples');
    expectThrows(() => evaluatePolicy(worldA, [{ prompt: 'a', answer: 'a', response: 'a' }] as never), DTYPE, 'samples[0]');
    expectThrows(() => evaluatePolicy(worldA, samples, 3 as never), DTYPE, 'options');
    expectThrows(() => evaluatePolicy(worldA, samples, { sftSamples: sft.slice(1) }), SHAPE, 'sftSamples');
    expectThrows(() => evaluatePolicy(worldA, samples, { sftSamples: {} as never }), DTYPE, 'sftSamples');
    expectThrows(() => evaluatePolicy(worldA, samples, { sftSamples: [sampleOf('abd', 'a', true), ...sft.slice(1)] }), RANGE, 'sftSamples[0]');
    expectThrows(() => evaluatePolicy(worldA, samples, { klVsSft: NaN }), RANGE, 'klVsSft');
    expectThrows(() => evaluatePolicy(worldA, samples, { klVsSft: '1' as never }), DTYPE, 'klVsSft');
    expectThrows(() => evaluatePolicy(worldA, samples, { pretrainLoss: Infinity }), RANGE, 'pretrainLoss');
    const clash = { ...worldA, reportedFlags: { correct: 'score' } };
    expectThrows(() => evaluatePolicy(clash, samples), FORMAT, 'reportedFlags');
  });
});

describe('klToReference', () => {
  const policy = makeModel(1);
  const other = makeModel(9);
  const samples = sampleResponses(policy, tokenizer, randomPrompts(4, 41), { seed: 3, maxNewTokens: 8 });

  it('is 0 against the sampling policy itself', () => {
    expect(Math.abs(klToReference(policy, samples))).toBeLessThan(1e-4);
    const twin = makeModel(1);
    expect(Math.abs(klToReference(twin, samples, { batchSize: 7 }))).toBeLessThan(1e-4);
  });

  it('equals a direct float64 recomputation, for any batch size, and is positive for another model', () => {
    let want = 0;
    for (const s of samples) {
      const ref = sequenceLogprobs(other, Int32Array.from([...s.promptTokens, ...s.tokens])).slice(s.promptTokens.length - 1);
      s.tokens.forEach((_, t) => (want += s.logprobs[t] - ref[t]));
    }
    want /= samples.length;
    expect(want).toBeGreaterThan(0.1);
    expect(klToReference(other, samples)).toBeCloseTo(want, 3);
    expect(klToReference(other, samples, { batchSize: 5 })).toBeCloseTo(want, 3);
    // Only the response tokens count: the same samples with another prompt scoring give another value.
    expect(klToReference(other, samples.slice(0, 1))).not.toBe(klToReference(other, samples.slice(1, 2)));
  });

  it('rejects bad arguments', () => {
    expectThrows(() => klToReference('sft' as never, samples), DTYPE, 'reference');
    expectThrows(() => klToReference(other, null as never), DTYPE, 'samples');
    expectThrows(() => klToReference(other, []), SHAPE, 'samples');
    expectThrows(() => klToReference(other, [{ ...samples[0], tokens: [1, 2] }] as never), DTYPE, 'tokens');
    expectThrows(() => klToReference(other, [{ ...samples[0], logprobs: new Float64Array(1) }] as never), DTYPE, 'logprobs');
    expectThrows(() => klToReference(other, [{ ...samples[0], promptTokens: new Int32Array(0) }]), SHAPE, 'promptTokens');
    expectThrows(() => klToReference(other, [{ ...samples[0], logprobs: new Float32Array(samples[0].tokens.length + 1) }]), SHAPE, 'logprobs');
    expectThrows(() => klToReference(other, [{ ...samples[0], tokens: new Int32Array(0), logprobs: new Float32Array(0) }]), SHAPE, 'tokens');
    const long = { ...samples[0], promptTokens: new Int32Array(60).fill(1), tokens: new Int32Array(8).fill(2), logprobs: new Float32Array(8) };
    expectThrows(() => klToReference(other, [samples[0], long], { batchSize: 1 }), RANGE, 'samples[1]');
    expectThrows(() => klToReference(other, samples, { batchSize: -1 }), RANGE, 'batchSize');
    expectThrows(() => klToReference(other, samples, 'big' as never), DTYPE, 'options');
    const scoreOnly = new TransformerModel(tinyConfig({ vocabSize: tokenizer.vocabSize }), { lm: false, score: true }, { trainable: false });
    expectThrows(() => klToReference(scoreOnly, samples), RANGE, 'reference');
  });
});

describe('pretrainingLoss', () => {
  const model = makeModel(6);
  const rng = new Rng(12);
  // Uneven lengths, up to the 64 + 1 tokens the context holds.
  const documents = [64, 1, 17, 63, 5, 30, 2].map((n) => Array.from({ length: n }, () => rng.pick([...tokenizer.chars])).join(''));

  it('equals the token-weighted mean NLL from a float64 log-softmax, for any batch size', () => {
    let nll = 0;
    let count = 0;
    for (const d of documents) {
      const lps = sequenceLogprobs(model, Int32Array.from([tokenizer.bosId, ...tokenizer.encode(d)]));
      nll -= lps.reduce((a, b) => a + b, 0);
      count += lps.length;
    }
    expect(count).toBe(documents.join('').length);
    for (const batchSize of [1, 3, 32]) expect(pretrainingLoss(model, tokenizer, documents, batchSize)).toBeCloseTo(nll / count, 4);
  });

  it('is log V for a zero LM head', () => {
    const probe = makeModel(6, { suppress: false });
    const params = probe.parametersToArray();
    const head = probe.layout.byName.get('lm_head.weight')!;
    params.fill(0, head.offset, head.offset + head.numel);
    const zeroHead = makeModel(6, { params, suppress: false });
    expect(pretrainingLoss(zeroHead, tokenizer, documents)).toBeCloseTo(Math.log(tokenizer.vocabSize), 5);
  });

  it('rejects bad arguments', () => {
    expectThrows(() => pretrainingLoss(undefined as never, tokenizer, documents), DTYPE, 'model');
    expectThrows(() => pretrainingLoss(model, 'bytes' as never, documents), DTYPE, 'tokenizer');
    expectThrows(() => pretrainingLoss(model, tokenizer, 'abc' as never), DTYPE, 'documents');
    expectThrows(() => pretrainingLoss(model, tokenizer, []), SHAPE, 'documents');
    expectThrows(() => pretrainingLoss(model, tokenizer, ['ab', 3] as never), DTYPE, 'documents[1]');
    expectThrows(() => pretrainingLoss(model, tokenizer, ['ab', '']), RANGE, 'documents[1]');
    expectThrows(() => pretrainingLoss(model, tokenizer, ['ab', 'a'.repeat(65)], 1), RANGE, 'documents[1]');
    expectThrows(() => pretrainingLoss(model, tokenizer, documents, 0), RANGE, 'batchSize');
    expectThrows(() => pretrainingLoss(model, tokenizer, documents, null as never), DTYPE, 'batchSize');
  });
});

describe('rmAccuracy', () => {
  // Groups of K = 4 completions; response token 0 names the completion, its score is in `table`.
  const rng = new Rng(21);
  const table: number[] = [];
  const groups: RankedGroup[] = Array.from({ length: 23 }, () => {
    const completions = Array.from({ length: 4 }, () => ({ response: 'x'.repeat(rng.int(3)) + 'abc'.slice(0, rng.intBetween(1, 3)), ended: rng.bernoulli(0.8) }));
    const scores = completions.map((c) => worldA.judge('abc', c.response, c.ended).score);
    const ids = scores.map((s) => table.push(s) - 1);
    return { prompt: Int32Array.of(12, 0), responses: ids.map((id) => Int32Array.of(id)), ranking: rankCompletions(worldA, rng, 'abc', completions), scores };
  });
  const perfect = (_: Int32Array[], responses: Int32Array[]) => Float32Array.from(responses, (r) => table[r[0]]);

  it('a perfect scorer is exact; the noisy figure is the ranking\'s agreement with the scores', () => {
    let agree = 0;
    let pairs = 0;
    for (const g of groups)
      for (let a = 0; a < 4; a++)
        for (let b = a + 1; b < 4; b++) {
          const [better, worse] = [g.scores[g.ranking[a]], g.scores[g.ranking[b]]];
          agree += better > worse ? 1 : better === worse ? 0.5 : 0;
          pairs++;
        }
    const acc = rmAccuracy(perfect, groups, { batchSize: 7 });
    expect(acc.exact).toBe(1);
    expect(acc.noisy).toBeCloseTo(agree / pairs, 12);
    expect(acc.noisy).toBeLessThan(1);
  });

  it('a reversed scorer is exactly wrong, a constant one is 1/2, and equal scores are left out of exact', () => {
    const reversed = rmAccuracy((p, r) => perfect(p, r).map((x) => -x), groups);
    expect(reversed.exact).toBe(0);
    expect(reversed.noisy + rmAccuracy(perfect, groups).noisy).toBeCloseTo(1, 12);
    expect(rmAccuracy((_, r) => new Float32Array(r.length).fill(0.3), groups)).toEqual({ noisy: 0.5, exact: 0.5 });
    const flat = [{ prompt: Int32Array.of(1), responses: [Int32Array.of(0), Int32Array.of(1)], ranking: [0, 1], scores: [2, 2] }]; // the RM puts 1 above 0: against the ranking
    expect(rmAccuracy((_, r) => Float32Array.from(r, (x) => x[0]), flat)).toEqual({ noisy: 0, exact: null });
  });

  it('rejects bad arguments', () => {
    const g = groups[0];
    expectThrows(() => rmAccuracy('rm' as never, groups), DTYPE, 'score');
    expectThrows(() => rmAccuracy(perfect, {} as never), DTYPE, 'groups');
    expectThrows(() => rmAccuracy(perfect, []), SHAPE, 'groups');
    expectThrows(() => rmAccuracy(perfect, [null] as never), DTYPE, 'groups[0]');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, prompt: [1] }] as never), DTYPE, 'groups[0].prompt');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, responses: [Int32Array.of(0), [1]] }] as never), DTYPE, 'groups[0].responses[1]');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, responses: g.responses.slice(0, 1), ranking: [0], scores: [1] }]), SHAPE, 'responses');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, ranking: [0, 1, 2] }]), SHAPE, 'ranking');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, ranking: [0, 1, 2, 2] }]), RANGE, 'ranking');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, ranking: [0, 1, 2, '3'] }] as never), DTYPE, 'ranking');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, scores: [0, 1, 2] }]), SHAPE, 'scores');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, scores: [0, 1, 2, NaN] }]), RANGE, 'scores');
    expectThrows(() => rmAccuracy(perfect, [{ ...g, scores: [0, 1, 2, null] }] as never), DTYPE, 'scores');
    expectThrows(() => rmAccuracy(() => new Float32Array(1), groups), FORMAT, 'score');
    expectThrows(() => rmAccuracy((_, r) => Array.from(r, () => 1) as never, groups), FORMAT, 'score');
    expectThrows(() => rmAccuracy((_, r) => new Float32Array(r.length).fill(NaN), groups), FORMAT, 'score');
    expectThrows(() => rmAccuracy(perfect, groups, { batchSize: 0 }), RANGE, 'batchSize');
    expectThrows(() => rmAccuracy(perfect, groups, [] as never), DTYPE, 'options');
  });
});

describe('rankSamples', () => {
  const model = makeModel(2);
  const prompt = randomPrompts(7, 1)[0];
  const six = sampleResponses(model, tokenizer, Array.from({ length: 6 }, () => prompt), { seed: 4, maxNewTokens: 6 });
  const four = selectDistinct(six, 4);

  it('ranks like rankCompletions with the same draws, scores like the labeler, and carries the tokens', () => {
    const group = rankSamples(worldA, new Rng(9), four);
    expect(group.ranking).toEqual(rankCompletions(worldA, new Rng(9), prompt.answer, four));
    expect(group.scores).toEqual(four.map((s) => worldA.judge(prompt.answer, s.response, s.ended).score));
    expect(group.prompt).toBe(four[0].promptTokens);
    expect(group.responses).toEqual(four.map((s) => s.tokens));
    const acc = rmAccuracy((_, r) => Float32Array.from(r, (x) => group.scores[group.responses.indexOf(x)]), [group]);
    expect(acc.exact === null || acc.exact === 1).toBe(true);
  });

  it('rejects bad arguments', () => {
    expectThrows(() => rankSamples(null as never, new Rng(1), four), DTYPE, 'world');
    expectThrows(() => rankSamples(worldA, 1 as never, four), DTYPE, 'rng');
    expectThrows(() => rankSamples(worldA, new Rng(1), 'x' as never), DTYPE, 'samples');
    expectThrows(() => rankSamples(worldA, new Rng(1), [four[0], { ...four[1], tokens: [] }] as never), DTYPE, 'samples[1].tokens');
    expectThrows(() => rankSamples(worldA, new Rng(1), four.slice(0, 1)), SHAPE, 'samples');
    expectThrows(() => rankSamples(worldA, new Rng(1), [four[0], { ...four[1], prompt: 'other>' }]), RANGE, 'samples[1]');
  });
});
