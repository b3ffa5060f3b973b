// Token sampling from logits [N, V] (native/core/kernels/sampling.h): repetition/presence/frequency
// penalties, temperature, top-k, top-p, min-p and a counter-based Philox draw, one token per row. The same
// seed and logits give the same tokens on the CPU and on CUDA, bit for bit.
import { getAddon } from '../native.js';
import type { Tensor } from '../tensor.js';
import { nativeArgs, wrapResult } from '../tensor.js';
import type { F32, I32 } from './rl.js';

/** 'sample' draws from the processed distribution; 'greedy' takes the argmax of the penalised logits. */
export type SampleMode = 'sample' | 'greedy';

export interface SampleInput<T extends F32> {
  /** Logits f32[N, V]: a 2-D Tensor, or a Float32Array of N * vocabSize values. */
  logits: T;
  /** V, required when logits is a typed array (which has no shape). */
  vocabSize?: number;
  /**
   * The Philox key: an integer in [0, 2^53) (a JS safe integer). Together with `offset` and the row index it
   * fixes the draw, so replaying the same (seed, offset) reproduces the tokens on any backend.
   */
  seed: number;
  /** The Philox counter's high half: an integer in [0, 2^53); advance it per decoding step. Default 0. */
  offset?: number;
  /** Default 'sample'. Greedy is an explicit mode, never "temperature 0". */
  mode?: SampleMode;
  /** > 0 and finite, or f32[N] per-row temperatures. Default 1. */
  temperature?: number | F32;
  /** Keep the tokens whose value is >= the k-th largest (ties all kept); integer >= 0, 0 (default) is off. */
  topK?: number;
  /** Keep the smallest top set whose probability reaches topP (ties with its last value kept); (0, 1], 1 is off. */
  topP?: number;
  /** Keep tokens whose probability is >= minP times the top token's; [0, 1), 0 is off. */
  minP?: number;
  /** Previous token ids i32[H] in [0, V), for the penalties; rows' slices are given by historyOffsets. */
  history?: I32;
  /** i32[N+1] from 0 to H: row r's history is history[historyOffsets[r] .. historyOffsets[r+1]). */
  historyOffsets?: I32;
  /** HF's repetition penalty (> 0, 1 is off): a seen token's positive logit is divided by it, a negative one multiplied. */
  repetitionPenalty?: number;
  /** Subtracted from a seen token's logit (OpenAI/vLLM). Default 0. */
  presencePenalty?: number;
  /** Subtracted from a seen token's logit once per occurrence. Default 0. */
  frequencyPenalty?: number;
}

/** Outputs are typed arrays for typed-array logits, else Tensors on the logits' device. */
export interface SampleOutput<T extends F32> {
  /** The chosen token per row, i32[N]; -1 for a row whose logits are all -inf or NaN. */
  tokens: T extends Tensor ? Tensor : Int32Array;
  /** Log-prob of the token under the processed distribution (penalties, temperature, truncation); 0 in greedy mode. */
  logp: T;
  /** Log-prob of the token under plain softmax(logits / T): no penalties, no truncation (for PPO's old logp). */
  logpPlain: T;
}

/**
 * Samples one token per row, in this order: penalties -> temperature -> top-k -> top-p -> min-p -> draw.
 * Probabilities are quantised to integer weights (the top token weighs 2^31), so a token less likely than
 * 2^-31 times the top token is never drawn; no other token's probability moves by more than 1e-9.
 *
 * @example
 * const { tokens, logp } = sample({ logits, vocabSize: 32000, seed: 1234, offset: step, temperature: 0.7, topP: 0.9 });
 */
export function sample<T extends F32>(input: SampleInput<T>): SampleOutput<T> {
  return wrapResult(getAddon().sample(nativeArgs(input)));
}

/** Promise form of {@link sample}: runs on a worker thread and keeps its inputs alive until it settles. */
export async function sampleAsync<T extends F32>(input: SampleInput<T>): Promise<SampleOutput<T>> {
  return wrapResult(await getAddon().sampleAsync(nativeArgs(input)));
}
