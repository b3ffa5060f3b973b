// Batched generation with a KV cache: one prefill over the packed prompts, then one decode step per
// new token, sampling with the Philox sampler (lib/ops/sampling.ts). Returns the packed sequences the
// RL kernels consume: prompt + response tokens, cu_seqlens, the action mask, each sampled token's
// log-prob under the sampling temperature, and whether each sequence ended with a stop token.
import { talariaError } from '../native.js';
import { sample } from '../ops/sampling.js';
import type { Tensor } from '../tensor.js';
import type { TransformerModel } from './model.js';

export interface GenerateOptions {
  /** Response budget per sequence, stop token included (an integer >= 1). */
  maxNewTokens: number;
  /** Token ids that end a sequence (kept as its last response token). Default: none. */
  stopTokens?: readonly number[];
  /** Philox key (a safe integer >= 0). */
  seed: number;
  /** Philox counter of the first step; step s uses offset + s. Default 0. Advance it between calls with the same seed. */
  offset?: number;
  /** Default 1 (what PPO rollouts use). */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** 'greedy' takes the argmax. Default 'sample'. */
  mode?: 'sample' | 'greedy';
}

export interface GenerateResult {
  /** Prompt then response tokens of each sequence, packed: i32[N]. */
  ids: Int32Array;
  /** i32[B+1] offsets of the sequences in ids. */
  cuSeqlens: Int32Array;
  /** u8[N]: 1 on response tokens (the policy's actions), 0 on prompt tokens. */
  actionMask: Uint8Array;
  /** f32[N]: log π(token | prefix) under softmax(logits / temperature), untruncated (PPO's old log-prob); 0 on prompt tokens. */
  logprobs: Float32Array;
  /** u8[B]: 1 when the sequence ended with a stop token, 0 when it ran out of budget. */
  ended: Uint8Array;
  promptLengths: Int32Array;
  responseLengths: Int32Array;
  /** The Philox offset after the last step: pass it as the next call's offset to continue the stream. */
  nextOffset: number;
}

/**
 * Generates a response for each prompt (token ids, e.g. BOS + prompt). Sequences stop at a stop token or
 * after maxNewTokens; a finished sequence keeps its slot until the batch is done but its further tokens
 * are discarded.
 *
 * @example
 * const out = generate(model, prompts, { maxNewTokens: 16, stopTokens: [tok.eosId], seed: 7 });
 * // out.ids / out.cuSeqlens / out.actionMask / out.logprobs feed logprob and GAE kernels directly.
 */
export function generate(model: TransformerModel, prompts: readonly Int32Array[], options: GenerateOptions): GenerateResult {
  const { maxNewTokens, seed } = options;
  const stop = new Set(options.stopTokens ?? []);
  const vocab = model.config.vocabSize;
  if (!Array.isArray(prompts) || prompts.length === 0)
    throw talariaError('ERR_TALARIA_SHAPE', 'prompts: expected a non-empty array of Int32Array token ids');
  prompts.forEach((p, i) => {
    if (!(p instanceof Int32Array) || p.length === 0)
      throw talariaError('ERR_TALARIA_SHAPE', `prompts[${i}]: expected a non-empty Int32Array of token ids`);
  });
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)
    throw talariaError('ERR_TALARIA_RANGE', `maxNewTokens: expected an integer >= 1, got ${maxNewTokens}`);
  for (const id of stop)
    if (!Number.isInteger(id) || id < 0 || id >= vocab)
      throw talariaError('ERR_TALARIA_RANGE', `stopTokens: ${id} is not a token id in [0, ${vocab})`);
  const offset0 = options.offset ?? 0;
  if (!Number.isSafeInteger(offset0) || offset0 < 0)
    throw talariaError('ERR_TALARIA_RANGE', `offset: expected a safe integer >= 0, got ${offset0}`);

  const b = prompts.length;
  const promptLengths = Int32Array.from(prompts, (p) => p.length);
  const longest = Math.max(...promptLengths);
  if (longest + maxNewTokens - 1 > model.config.maxPositions)
    throw talariaError(
      'ERR_TALARIA_RANGE',
      `prompts: the longest prompt (${longest} tokens) plus maxNewTokens (${maxNewTokens}) exceeds max_position_embeddings (${model.config.maxPositions})`,
    );
  const responses = prompts.map(() => [] as number[]);
  const responseLogprobs = prompts.map(() => [] as number[]);
  const ended = new Uint8Array(b);
  const cache = model.createKvCache(b, longest + maxNewTokens - 1);
  const sampling = {
    seed,
    temperature: options.temperature ?? 1,
    topK: options.topK,
    topP: options.topP,
    minP: options.minP,
    mode: options.mode,
  };
  let step = 0;
  try {
    // Prefill: the packed prompts.
    const prefillOffsets = new Int32Array(b + 1);
    for (let i = 0; i < b; i++) prefillOffsets[i + 1] = prefillOffsets[i] + promptLengths[i];
    const packedPrompts = new Int32Array(prefillOffsets[b]);
    prompts.forEach((p, i) => packedPrompts.set(p, prefillOffsets[i]));
    let logits: Tensor = model.forwardCached({ ids: packedPrompts, cuSeqlens: prefillOffsets }, cache);
    const oneEach = Int32Array.from({ length: b + 1 }, (_, i) => i);
    for (;;) {
      const drawn = sample({ logits, ...sampling, offset: offset0 + step });
      logits.dispose();
      const tokens = drawn.tokens.toArray() as Int32Array;
      const logp = drawn.logpPlain.toArray() as Float32Array;
      for (const t of [drawn.tokens, drawn.logp, drawn.logpPlain]) t.dispose();
      step++;
      let active = 0;
      for (let i = 0; i < b; i++) {
        if (ended[i] || responses[i].length >= maxNewTokens) continue;
        if (tokens[i] < 0) throw talariaError('ERR_TALARIA_RANGE', `generate: sequence ${i} has no finite logit to sample from (NaN weights?)`);
        responses[i].push(tokens[i]);
        responseLogprobs[i].push(logp[i]);
        if (stop.has(tokens[i])) ended[i] = 1;
        else if (responses[i].length < maxNewTokens) active++;
      }
      if (active === 0) break;
      // Finished sequences feed their last token again; what they sample is discarded.
      const next = Int32Array.from(responses, (r, i) => (r.length ? r[r.length - 1] : prompts[i][prompts[i].length - 1]));
      logits = model.forwardCached({ ids: next, cuSeqlens: oneEach }, cache);
    }
  } finally {
    cache.dispose();
  }
  return pack(prompts, responses, responseLogprobs, ended, promptLengths, offset0 + step);
}

function pack(
  prompts: readonly Int32Array[],
  responses: number[][],
  responseLogprobs: number[][],
  ended: Uint8Array,
  promptLengths: Int32Array,
  nextOffset: number,
): GenerateResult {
  const b = prompts.length;
  const responseLengths = Int32Array.from(responses, (r) => r.length);
  const cuSeqlens = new Int32Array(b + 1);
  for (let i = 0; i < b; i++) cuSeqlens[i + 1] = cuSeqlens[i] + promptLengths[i] + responseLengths[i];
  const n = cuSeqlens[b];
  const ids = new Int32Array(n);
  const actionMask = new Uint8Array(n);
  const logprobs = new Float32Array(n);
  for (let i = 0; i < b; i++) {
    const start = cuSeqlens[i];
    const respStart = start + promptLengths[i];
    ids.set(prompts[i], start);
    ids.set(responses[i], respStart);
    actionMask.fill(1, respStart, cuSeqlens[i + 1]);
    logprobs.set(responseLogprobs[i], respStart);
  }
  return { ids, cuSeqlens, actionMask, logprobs, ended, promptLengths, responseLengths, nextOffset };
}
