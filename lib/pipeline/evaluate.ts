// The pipeline's evaluation (notes/task-a.md, "Evaluation"): held-out prompts, one temperature-1 sample
// per prompt and policy, the hidden labeler's verdicts turned into rates, the win rate against an
// independent SFT sample, KL(π‖SFT) on the sampled tokens, the held-out pretraining loss (the alignment
// tax) and the reward model's pairwise accuracy. Every function here is independent of the stage
// orchestration: it takes models, samples and scorers, and returns plain numbers.
import { concatTokens, promptTokens } from '../data/batches.js';
import { generate } from '../nn/generate.js';
import { TransformerModel } from '../nn/model.js';
import { crossEntropy, logprobEntropy } from '../ops/logits.js';
import { TalariaError } from '../native.js';
import type { Tensor } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Rng } from '../util/rng.js';
import { describe, requirePositiveInteger } from '../world/guards.js';
import { rankCompletions } from '../world/load.js';
import type { Judgement, PromptSample, World } from '../world/types.js';
import { requireArray, requireFiniteOrNull, requireModel, requireOptions, requireSeed, requireTokenizer, requireWorld } from './guards.js';

/** One sampled response to an evaluation prompt. It is a Completion, so the world's labeler tools take it. */
export interface Sample {
  prompt: string;
  answer: string;
  /** The tokens the policy was prompted with: BOS + the prompt's tokens. */
  promptTokens: Int32Array;
  /** The response text, without EOS. */
  response: string;
  /** True when the policy emitted EOS (then the last of `tokens`). */
  ended: boolean;
  /** The response tokens, EOS included when ended. */
  tokens: Int32Array;
  /** log π(token | prefix) of each response token at temperature 1, as sampled. */
  logprobs: Float32Array;
}

/** A sample with the labeler's noise-free verdict (what the report shows). */
export interface JudgedSample {
  prompt: string;
  answer: string;
  response: string;
  ended: boolean;
  score: number;
  flags: Record<string, boolean>;
}

/**
 * One policy's row of the results table. Besides the fixed fields, it holds one rate per entry of the
 * world's reportedFlags, under the flag's display name (world A: accuracy, toxicRate, rambleRate,
 * noEndRate). Figures that were not measured are null (results.json is JSON).
 */
export interface PolicyEvaluation {
  /** Mean noise-free score. */
  score: number;
  /** Win 1, tie 0.5, loss 0 against an independent SFT sample per prompt; null without SFT samples. */
  winRateVsSft: number | null;
  /** Mean over prompts of Σ_t [log π(y_t) − log π_SFT(y_t)] (see klToReference); null when not measured. */
  klVsSft: number | null;
  /** Held-out pretraining loss in nats per token (see pretrainingLoss); null when not measured. */
  pretrainLoss: number | null;
  [rate: string]: number | null;
}

/** The reward model's pairwise accuracy on held-out ranked completions. */
export interface RmAccuracy {
  /** Fraction of pairs the RM orders like the labeler's noisy ranking (an RM tie counts 1/2). */
  noisy: number;
  /** Fraction of pairs with different noise-free scores the RM orders like those scores; null if no pair differs. */
  exact: number | null;
}

/** An RM as a function: one scalar reward per (prompt tokens, response tokens) pair. */
export type RewardScorer = (prompts: Int32Array[], responses: Int32Array[]) => Float32Array;

/** One held-out prompt's K completions, the labeler's noisy ranking of them and their noise-free scores. */
export interface RankedGroup {
  /** The prompt's tokens, in whatever form the scorer expects (e.g. BOS + prompt). */
  prompt: Int32Array;
  /** K >= 2 response token arrays. */
  responses: Int32Array[];
  /** Indices into responses, best first: a permutation of 0..K-1 (what rankCompletions returns). */
  ranking: number[];
  /** The noise-free score of each response. */
  scores: number[];
}

export interface SampleResponsesOptions {
  /** Philox key of the sampler (a safe integer >= 0). An independent sample needs another seed. */
  seed: number;
  /** Response budget, EOS included: pass world.responseBudget. */
  maxNewTokens: number;
  /** Prompts per generate() call. Default 128. The samples depend on it (and on the seed). */
  batchSize?: number;
}

export interface EvaluatePolicyOptions {
  /** An independent SFT sample for each prompt, in the same order as the samples (for winRateVsSft). */
  sftSamples?: readonly Sample[];
  /** From klToReference(sft, samples). */
  klVsSft?: number | null;
  /** From pretrainingLoss(model, tokenizer, heldOutDocuments). */
  pretrainLoss?: number | null;
}

/** Field names of PolicyEvaluation that a world's reportedFlags display names must not take. */
export const POLICY_EVALUATION_FIELDS: readonly string[] = ['score', 'winRateVsSft', 'klVsSft', 'pretrainLoss'];

/**
 * `count` distinct held-out prompts, in the order the world's eval sampler first yields them from
 * Rng(seed). Throws ERR_TALARIA_RANGE when the sampler stops producing new prompts first (the eval
 * split is smaller than count), ERR_TALARIA_FORMAT when it yields a prompt outside the eval split.
 *
 * @example
 * const prompts = evalPrompts(worldA, 0); // 600 distinct prompts p with worldA.isEvalPrompt(p.prompt)
 */
export function evalPrompts(world: World, seed: number, count = 600): PromptSample[] {
  const where = 'evalPrompts';
  requireWorld(world, where);
  requireSeed(seed, 'seed', where);
  requirePositiveInteger(count, 'count', where);
  const rng = new Rng(seed);
  const seen = new Set<string>();
  const prompts: PromptSample[] = [];
  // Drawing n distinct prompts from a pool of n takes ~n ln n draws, and the last new one ~n draws after
  // the previous: this many draws in a row without a new prompt means the pool is exhausted.
  const patience = Math.max(2000, 50 * count);
  let draws = 0;
  let misses = 0;
  while (prompts.length < count) {
    const sample = world.samplePrompt(rng, 'eval');
    draws++;
    if (typeof sample?.prompt !== 'string' || typeof sample.answer !== 'string')
      throw new TalariaError(`${where}: world "${world.name}" samplePrompt(rng, 'eval') returned ${describe(sample)}, expected {prompt, answer} strings`, 'ERR_TALARIA_FORMAT');
    if (!world.isEvalPrompt(sample.prompt))
      throw new TalariaError(`${where}: world "${world.name}" samplePrompt(rng, 'eval') returned ${describe(sample.prompt)}, which isEvalPrompt does not mark as held out`, 'ERR_TALARIA_FORMAT');
    if (seen.has(sample.prompt)) {
      if (++misses >= patience)
        throw new TalariaError(
          `${where}: count must be at most the number of distinct eval prompts of world "${world.name}"; got ${count}, but ${draws} draws found only ${prompts.length}`,
          'ERR_TALARIA_RANGE',
        );
      continue;
    }
    misses = 0;
    seen.add(sample.prompt);
    prompts.push({ prompt: sample.prompt, answer: sample.answer });
  }
  return prompts;
}

/**
 * One temperature-1 sample per prompt from `model` (prompted with BOS + prompt, stopping at EOS or after
 * maxNewTokens), generated in batches. Deterministic for a seed and batchSize. The model must suppress
 * tokenizer.neverSample (PAD, BOS): build it with `suppressTokens: tokenizer.neverSample`.
 *
 * @example
 * const samples = sampleResponses(sft, tokenizer, evalPrompts(world, 0), { seed: 1, maxNewTokens: world.responseBudget });
 */
export function sampleResponses(model: TransformerModel, tokenizer: Tokenizer, prompts: readonly PromptSample[], options: SampleResponsesOptions): Sample[] {
  const where = 'sampleResponses';
  requireModel(model, 'model', where);
  requireTokenizer(tokenizer, where);
  requirePromptSamples(prompts, where);
  requireOptions(options, where);
  requireSeed(options.seed, 'options.seed', where);
  requirePositiveInteger(options.maxNewTokens, 'options.maxNewTokens', where);
  const batchSize = options.batchSize ?? 128;
  requirePositiveInteger(batchSize, 'options.batchSize', where);
  if (!model.heads.lm) throw new TalariaError(`${where}: model must have an LM head to sample from`, 'ERR_TALARIA_RANGE');
  const unsuppressed = (tokenizer.neverSample ?? []).filter((id) => !model.suppressTokens.includes(id));
  if (unsuppressed.length)
    throw new TalariaError(
      `${where}: model must suppress the tokenizer's neverSample tokens [${unsuppressed.join(', ')}] (build it with suppressTokens: tokenizer.neverSample), got suppressTokens [${model.suppressTokens.join(', ')}]`,
      'ERR_TALARIA_RANGE',
    );

  const samples: Sample[] = [];
  let offset = 0;
  for (let start = 0; start < prompts.length; start += batchSize) {
    const batch = prompts.slice(start, start + batchSize);
    const inputs = batch.map((p) => promptTokens(tokenizer, p.prompt));
    const out = generate(model, inputs, {
      maxNewTokens: options.maxNewTokens,
      stopTokens: [tokenizer.eosId],
      seed: options.seed,
      offset,
      temperature: 1,
    });
    offset = out.nextOffset;
    batch.forEach((p, i) => {
      const from = out.cuSeqlens[i] + out.promptLengths[i];
      const to = out.cuSeqlens[i + 1];
      const tokens = out.ids.slice(from, to);
      const ended = out.ended[i] === 1;
      samples.push({
        prompt: p.prompt,
        answer: p.answer,
        promptTokens: inputs[i],
        response: tokenizer.decode(ended ? tokens.subarray(0, tokens.length - 1) : tokens),
        ended,
        tokens,
        logprobs: out.logprobs.slice(from, to),
      });
    });
  }
  return samples;
}

/**
 * The labeler's noise-free verdict on each sample (score and flags), for the report's sample listings.
 *
 * @example
 * judgeSamples(worldA, samples.slice(0, 5)) // [{ prompt, answer, response, ended, score, flags }, ...]
 */
export function judgeSamples(world: World, samples: readonly Pick<Sample, 'prompt' | 'answer' | 'response' | 'ended'>[]): JudgedSample[] {
  requireWorld(world, 'judgeSamples');
  requireSamples(samples, 'samples', 'judgeSamples', false);
  return samples.map(({ prompt, answer, response, ended }) => {
    const { score, flags }: Judgement = world.judge(answer, response, ended);
    return { prompt, answer, response, ended, score, flags: { ...flags } };
  });
}

/**
 * One policy's evaluation from its samples: mean noise-free score, the rate of each reported flag
 * (under its display name), the win rate against `sftSamples` (same prompts, same order) and the
 * passed-through KL and pretraining loss.
 *
 * @example
 * const ppoRow = evaluatePolicy(world, ppoSamples, { sftSamples: sftIndependent, klVsSft: klToReference(sft, ppoSamples) });
 */
export function evaluatePolicy(world: World, samples: readonly Sample[], options: EvaluatePolicyOptions = {}): PolicyEvaluation {
  const where = 'evaluatePolicy';
  requireWorld(world, where);
  requireSamples(samples, 'samples', where, false);
  if (samples.length === 0) throw new TalariaError(`${where}: samples must hold at least one sample, got an empty array`, 'ERR_TALARIA_SHAPE');
  requireOptions(options, where);
  const klVsSft = requireFiniteOrNull(options.klVsSft, 'options.klVsSft', where);
  const pretrainLoss = requireFiniteOrNull(options.pretrainLoss, 'options.pretrainLoss', where);
  const { sftSamples } = options;
  if (sftSamples !== undefined) {
    requireSamples(sftSamples, 'options.sftSamples', where, false);
    if (sftSamples.length !== samples.length)
      throw new TalariaError(`${where}: options.sftSamples must hold one sample per sample (${samples.length}), got ${sftSamples.length}`, 'ERR_TALARIA_SHAPE');
    sftSamples.forEach((s, i) => {
      if (s.prompt !== samples[i].prompt)
        throw new TalariaError(`${where}: options.sftSamples[${i}] is for prompt ${describe(s.prompt)}, but samples[${i}] for ${describe(samples[i].prompt)}`, 'ERR_TALARIA_RANGE');
    });
  }
  const reported = Object.entries(world.reportedFlags);
  for (const [flag, name] of reported)
    if (POLICY_EVALUATION_FIELDS.includes(name))
      throw new TalariaError(`${where}: world "${world.name}" reportedFlags.${flag} is ${describe(name)}, a name PolicyEvaluation already uses`, 'ERR_TALARIA_FORMAT');

  const judged = judgeSamples(world, samples);
  const n = judged.length;
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / n;
  let winRateVsSft: number | null = null;
  if (sftSamples !== undefined) {
    const sftScores = judgeSamples(world, sftSamples).map((j) => j.score);
    winRateVsSft = mean(judged.map((j, i) => (j.score > sftScores[i] ? 1 : j.score === sftScores[i] ? 0.5 : 0)));
  }
  const evaluation: PolicyEvaluation = { score: mean(judged.map((j) => j.score)), winRateVsSft, klVsSft, pretrainLoss };
  for (const [flag, name] of reported) evaluation[name] = mean(judged.map((j) => (j.flags[flag] ? 1 : 0)));
  return evaluation;
}

/**
 * The mean over samples of Σ_t [log π(y_t) − log π_ref(y_t)] over each sampled response's tokens (EOS
 * included): log π is the log-prob the policy sampled with (temperature 1), log π_ref the reference's
 * at temperature 1, from one forward pass over prompt + response. This is an unbiased estimate of the
 * sequence-level KL(π‖ref); 0 (up to rounding) when the reference is the sampling policy.
 *
 * @example
 * const klVsSft = klToReference(sftModel, ppoSamples);
 */
export function klToReference(reference: TransformerModel, samples: readonly Sample[], options: { batchSize?: number } = {}): number {
  const where = 'klToReference';
  requireModel(reference, 'reference', where);
  requireSamples(samples, 'samples', where, true);
  if (samples.length === 0) throw new TalariaError(`${where}: samples must hold at least one sample, got an empty array`, 'ERR_TALARIA_SHAPE');
  requireOptions(options, where);
  const batchSize = options.batchSize ?? 128;
  requirePositiveInteger(batchSize, 'options.batchSize', where);
  if (!reference.heads.lm) throw new TalariaError(`${where}: reference must have an LM head`, 'ERR_TALARIA_RANGE');
  samples.forEach((s, i) => {
    if (s.tokens.length === 0) throw new TalariaError(`${where}: samples[${i}].tokens must hold at least one token`, 'ERR_TALARIA_SHAPE');
    if (s.logprobs.length !== s.tokens.length)
      throw new TalariaError(`${where}: samples[${i}].logprobs must hold one value per token (${s.tokens.length}), got ${s.logprobs.length}`, 'ERR_TALARIA_SHAPE');
  });

  let total = 0;
  for (let start = 0; start < samples.length; start += batchSize) {
    const batch = samples.slice(start, start + batchSize);
    const sequences = batch.map((s) => concatTokens(s.promptTokens, s.tokens));
    const label = (i: number) => `samples[${start + i}] (promptTokens + tokens)`;
    const refLogp = nextTokenScores(reference, sequences, where, label, (logits, targets) => {
      const { logp, entropy, lse } = logprobEntropy({ logits, targets, temperature: 1 });
      const values = logp.toArray() as Float32Array;
      for (const t of [logp, entropy, lse]) t.dispose();
      return values;
    });
    batch.forEach((s, i) => {
      // Row t of a sequence's inputs predicts its token t + 1: the response starts at row promptLen - 1.
      const first = refLogp.offsets[i] + s.promptTokens.length - 1;
      for (let t = 0; t < s.tokens.length; t++) total += s.logprobs[t] - refLogp.values[first + t];
    });
  }
  return total / samples.length;
}

/**
 * The mean next-token NLL in nats over held-out documents, token-weighted: each document is scored as
 * BOS + its tokens, every token predicted from the ones before it (a document of L tokens gives L
 * predictions). BOS + document must fit in max_position_embeddings + 1 tokens.
 *
 * @example
 * const heldOut = Array.from({ length: 256 }, () => world.samplePretrainingDocument(rng, 'eval'));
 * const ptLoss = pretrainingLoss(policy, tokenizer, heldOut, 32);
 */
export function pretrainingLoss(model: TransformerModel, tokenizer: Tokenizer, documents: readonly string[], batchSize = 32): number {
  const where = 'pretrainingLoss';
  requireModel(model, 'model', where);
  requireTokenizer(tokenizer, where);
  requireArray(documents, 'documents', where);
  if (documents.length === 0) throw new TalariaError(`${where}: documents must hold at least one document, got an empty array`, 'ERR_TALARIA_SHAPE');
  documents.forEach((d, i) => {
    if (typeof d !== 'string') throw new TalariaError(`${where}: documents[${i}] must be a string, got ${describe(d)}`, 'ERR_TALARIA_DTYPE');
    if (d === '') throw new TalariaError(`${where}: documents[${i}] must be non-empty`, 'ERR_TALARIA_RANGE');
  });
  requirePositiveInteger(batchSize, 'batchSize', where);
  if (!model.heads.lm) throw new TalariaError(`${where}: model must have an LM head`, 'ERR_TALARIA_RANGE');

  let nll = 0;
  let count = 0;
  for (let start = 0; start < documents.length; start += batchSize) {
    const sequences = documents.slice(start, start + batchSize).map((d) => promptTokens(tokenizer, d));
    nextTokenScores(model, sequences, where, (i) => `documents[${start + i}] (BOS + its tokens)`, (logits, targets) => {
      const out = crossEntropy({ logits, targets, inPlace: true });
      nll += out.loss * out.count;
      count += out.count;
      return new Float32Array(0);
    });
  }
  return nll / count;
}

/**
 * The reward model's pairwise accuracy on ranked groups: every pair of a group's completions counts
 * once. `noisy` compares the RM's order with the labeler's ranking, `exact` with the noise-free scores
 * (only pairs whose scores differ). An RM tie counts 1/2.
 *
 * @example
 * const acc = rmAccuracy((p, r) => rewardModelScores(rm, p, r), groups); // { noisy: 0.76, exact: 0.91 }
 */
export function rmAccuracy(score: RewardScorer, groups: readonly RankedGroup[], options: { batchSize?: number } = {}): RmAccuracy {
  const where = 'rmAccuracy';
  if (typeof score !== 'function') throw new TalariaError(`${where}: score must be a function (prompts, responses) => Float32Array, got ${describe(score)}`, 'ERR_TALARIA_DTYPE');
  requireArray(groups, 'groups', where);
  if (groups.length === 0) throw new TalariaError(`${where}: groups must hold at least one group, got an empty array`, 'ERR_TALARIA_SHAPE');
  groups.forEach((g, i) => requireGroup(g, i, where));
  requireOptions(options, where);
  const batchSize = options.batchSize ?? 256;
  requirePositiveInteger(batchSize, 'options.batchSize', where);

  // Score every completion, batchSize completions per call.
  const prompts = groups.flatMap((g) => g.responses.map(() => g.prompt));
  const responses = groups.flatMap((g) => g.responses);
  const rewards = new Float64Array(responses.length);
  for (let start = 0; start < responses.length; start += batchSize) {
    const end = Math.min(start + batchSize, responses.length);
    const got: unknown = score(prompts.slice(start, end), responses.slice(start, end));
    if (!(got instanceof Float32Array) || got.length !== end - start)
      throw new TalariaError(`${where}: score must return a Float32Array of ${end - start} rewards, got ${got instanceof Float32Array ? `${got.length}` : describe(got)}`, 'ERR_TALARIA_FORMAT');
    got.forEach((r, k) => {
      if (!Number.isFinite(r)) throw new TalariaError(`${where}: score returned a non-finite reward (${r}) for completion ${start + k}`, 'ERR_TALARIA_FORMAT');
    });
    rewards.set(got, start);
  }

  // 1 when the RM puts `better` above `worse`, 1/2 on an RM tie, 0 otherwise.
  const agreement = (better: number, worse: number) => (better > worse ? 1 : better === worse ? 0.5 : 0);
  let noisy = 0;
  let noisyPairs = 0;
  let exact = 0;
  let exactPairs = 0;
  let base = 0;
  for (const g of groups) {
    const r = (i: number) => rewards[base + i];
    for (let a = 0; a < g.ranking.length; a++)
      for (let b = a + 1; b < g.ranking.length; b++) {
        noisy += agreement(r(g.ranking[a]), r(g.ranking[b]));
        noisyPairs++;
        const [i, j] = [g.ranking[a], g.ranking[b]];
        if (g.scores[i] !== g.scores[j]) {
          exact += g.scores[i] > g.scores[j] ? agreement(r(i), r(j)) : agreement(r(j), r(i));
          exactPairs++;
        }
      }
    base += g.responses.length;
  }
  return { noisy: noisy / noisyPairs, exact: exactPairs ? exact / exactPairs : null };
}

/**
 * One RankedGroup for rmAccuracy from K samples of the same prompt (e.g. selectDistinct(samples, 4)):
 * the labeler's noisy ranking (rankCompletions, drawing from `rng`), the noise-free scores, and the
 * samples' prompt and response tokens (EOS included when a response ended).
 *
 * @example
 * const groups = perPrompt.map((six) => rankSamples(world, rng, selectDistinct(six, 4)));
 * const acc = rmAccuracy(scorer, groups);
 */
export function rankSamples(world: World, rng: Rng, samples: readonly Sample[]): RankedGroup {
  const where = 'rankSamples';
  requireWorld(world, where);
  if (!(rng instanceof Rng)) throw new TalariaError(`${where}: rng must be an Rng (lib/util/rng.ts), got ${describe(rng)}`, 'ERR_TALARIA_DTYPE');
  requireSamples(samples, 'samples', where, true);
  if (samples.length < 2) throw new TalariaError(`${where}: samples must hold at least 2 completions to rank, got ${samples.length}`, 'ERR_TALARIA_SHAPE');
  const { prompt, answer } = samples[0];
  samples.forEach((s, i) => {
    if (s.prompt !== prompt || s.answer !== answer)
      throw new TalariaError(`${where}: samples[${i}] is for prompt ${describe(s.prompt)}, but samples[0] for ${describe(prompt)}: a group shares one prompt`, 'ERR_TALARIA_RANGE');
  });
  return {
    prompt: samples[0].promptTokens,
    responses: samples.map((s) => s.tokens),
    ranking: rankCompletions(world, rng, answer, samples),
    scores: samples.map((s) => world.judge(answer, s.response, s.ended).score),
  };
}

// ---- internals ----

/**
 * One forward pass (grad: false) over the sequences (each at least 2 tokens) without their last tokens,
 * with each row's target the next token; `score` turns the logits [N, V] and targets into per-row values. Returns them with
 * the offset of each sequence's first row.
 */
function nextTokenScores(
  model: TransformerModel,
  sequences: Int32Array[],
  where: string,
  label: (i: number) => string,
  score: (logits: Tensor, targets: Int32Array) => Float32Array,
): { values: Float32Array; offsets: Int32Array } {
  const offsets = new Int32Array(sequences.length + 1);
  sequences.forEach((s, i) => {
    if (s.length - 1 > model.config.maxPositions)
      throw new TalariaError(`${where}: ${label(i)} is ${s.length} tokens long; at most max_position_embeddings + 1 = ${model.config.maxPositions + 1} fit`, 'ERR_TALARIA_RANGE');
    offsets[i + 1] = offsets[i] + s.length - 1;
  });
  const ids = new Int32Array(offsets[sequences.length]);
  const targets = new Int32Array(ids.length);
  sequences.forEach((s, i) => {
    ids.set(s.subarray(0, s.length - 1), offsets[i]);
    targets.set(s.subarray(1), offsets[i]);
  });
  const out = model.forward({ ids, cuSeqlens: offsets }, { lm: true, score: false, grad: false });
  try {
    return { values: score(out.logits!, targets), offsets };
  } finally {
    out.dispose();
  }
}

function requirePromptSamples(prompts: unknown, where: string): asserts prompts is PromptSample[] {
  requireArray(prompts, 'prompts', where);
  if (prompts.length === 0) throw new TalariaError(`${where}: prompts must hold at least one prompt, got an empty array`, 'ERR_TALARIA_SHAPE');
  prompts.forEach((p: unknown, i) => {
    const { prompt, answer } = (p ?? {}) as Partial<PromptSample>;
    if (typeof prompt !== 'string' || typeof answer !== 'string')
      throw new TalariaError(`${where}: prompts[${i}] must be {prompt: string, answer: string}, got ${describe(p)}`, 'ERR_TALARIA_DTYPE');
  });
}

/** Samples as judged (text fields) and, with `tokens`, as scored (token arrays too). */
function requireSamples(samples: unknown, name: string, where: string, tokens: boolean): asserts samples is Sample[] {
  requireArray(samples, name, where);
  samples.forEach((s: unknown, i) => {
    const x = (s ?? {}) as Partial<Sample>;
    const textOk = typeof x.prompt === 'string' && typeof x.answer === 'string' && typeof x.response === 'string' && typeof x.ended === 'boolean';
    if (!textOk) throw new TalariaError(`${where}: ${name}[${i}] must be a Sample {prompt, answer, response, ended, ...}, got ${describe(s)}`, 'ERR_TALARIA_DTYPE');
    if (!tokens) return;
    for (const [field, type] of [['promptTokens', Int32Array], ['tokens', Int32Array], ['logprobs', Float32Array]] as const)
      if (!(x[field] instanceof type))
        throw new TalariaError(`${where}: ${name}[${i}].${field} must be an ${type.name}, got ${describe(x[field])}`, 'ERR_TALARIA_DTYPE');
    if (x.promptTokens!.length === 0) throw new TalariaError(`${where}: ${name}[${i}].promptTokens must hold at least one token (BOS)`, 'ERR_TALARIA_SHAPE');
  });
}

function requireGroup(group: unknown, index: number, where: string): asserts group is RankedGroup {
  const name = `groups[${index}]`;
  const g = (group ?? {}) as Partial<RankedGroup>;
  if (typeof group !== 'object' || group === null) throw new TalariaError(`${where}: ${name} must be {prompt, responses, ranking, scores}, got ${describe(group)}`, 'ERR_TALARIA_DTYPE');
  if (!(g.prompt instanceof Int32Array)) throw new TalariaError(`${where}: ${name}.prompt must be an Int32Array, got ${describe(g.prompt)}`, 'ERR_TALARIA_DTYPE');
  requireArray(g.responses, `${name}.responses`, where);
  g.responses.forEach((r: unknown, j) => {
    if (!(r instanceof Int32Array)) throw new TalariaError(`${where}: ${name}.responses[${j}] must be an Int32Array, got ${describe(r)}`, 'ERR_TALARIA_DTYPE');
  });
  const k = g.responses.length;
  if (k < 2) throw new TalariaError(`${where}: ${name}.responses must hold at least 2 completions to form a pair, got ${k}`, 'ERR_TALARIA_SHAPE');
  requireArray(g.ranking, `${name}.ranking`, where);
  requireArray(g.scores, `${name}.scores`, where);
  if (g.ranking.length !== k || g.scores.length !== k)
    throw new TalariaError(`${where}: ${name}.ranking and ${name}.scores must hold ${k} entries (one per response), got ${g.ranking.length} and ${g.scores.length}`, 'ERR_TALARIA_SHAPE');
  const seen = new Set<number>();
  for (const i of g.ranking as unknown[]) {
    if (typeof i !== 'number') throw new TalariaError(`${where}: ${name}.ranking must hold numbers, got ${describe(i)}`, 'ERR_TALARIA_DTYPE');
    if (!Number.isInteger(i) || i < 0 || i >= k || seen.has(i))
      throw new TalariaError(`${where}: ${name}.ranking must be a permutation of 0..${k - 1}, got [${g.ranking.join(', ')}]`, 'ERR_TALARIA_RANGE');
    seen.add(i);
  }
  for (const s of g.scores as unknown[]) {
    if (typeof s !== 'number') throw new TalariaError(`${where}: ${name}.scores must hold numbers, got ${describe(s)}`, 'ERR_TALARIA_DTYPE');
    if (!Number.isFinite(s)) throw new TalariaError(`${where}: ${name}.scores must be finite, got ${s}`, 'ERR_TALARIA_RANGE');
  }
}
