// From records to the packed token batches the engine consumes: ids i32[N] (sequences concatenated),
// cuSeqlens i32[B+1], and per token the next-token target and whether it counts in the loss.
//
// The loss-mask convention (one for every encoder here and for packBatch): position t of a sequence
// predicts token t+1, so lossMask[t] = 1 iff token t+1 is a token the model is trained to produce.
// The last position of a sequence has no next token: its mask is 0 and its target is the token itself,
// so targets are always valid ids and a kernel never reads past a sequence.
import { TalariaError } from '../native.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Rng, type RngState } from '../util/rng.js';
import { describeValue } from './describe.js';
import type { SftRecord } from './records.js';

/** One sequence's tokens and (optionally) its loss mask; without a mask every next token counts. */
export interface EncodedExample {
  ids: Int32Array;
  lossMask?: Uint8Array;
}

/** A packed batch: B sequences, N tokens. */
export interface PackedBatch {
  /** i32[N]: the tokens of every sequence, concatenated. */
  ids: Int32Array;
  /** i32[B+1]: sequence b is ids[cuSeqlens[b] .. cuSeqlens[b+1]). */
  cuSeqlens: Int32Array;
  /** u8[N]: 1 where targets[t] counts in the loss (never at a sequence's last token). */
  lossMask: Uint8Array;
  /** i32[N]: ids[t+1] within a sequence; at a sequence's last token, ids[t] itself (masked out). */
  targets: Int32Array;
}

/**
 * Encodes an SFT record as `BOS prompt completion EOS`, with lossMask[t] = 1 iff token t+1 belongs to
 * the completion or is the EOS (the prompt is context, not a target).
 *
 * Example: prompt "ab", completion "c" → ids [BOS a b c EOS], lossMask [0 0 1 1 0]: position 2 (b)
 * predicts c, position 3 (c) predicts EOS.
 *
 * When the sequence is longer than maxLen, the completion is cut from the right and the EOS dropped
 * (the model must not learn to stop where the data was merely truncated). BOS + prompt must leave room
 * for at least one completion token (1 + prompt tokens < maxLen), else ERR_TALARIA_RANGE names `index`.
 *
 * @example
 * const { ids, lossMask } = encodeSft(new ByteTokenizer(), { prompt: 'Q: 2+2?\nA:', completion: ' 4' }, 512);
 */
export function encodeSft(tokenizer: Tokenizer, record: SftRecord, maxLen: number, index = 0): Required<EncodedExample> {
  checkTokenizer('encodeSft', tokenizer);
  checkMaxLen('encodeSft', maxLen, 2);
  checkIndex('encodeSft', index);
  if (record === null || typeof record !== 'object') throw new TalariaError(`encodeSft: record ${index} must be an object, got ${describeValue(record)}`, 'ERR_TALARIA_DTYPE');
  for (const field of ['prompt', 'completion'] as const)
    if (typeof record[field] !== 'string') throw new TalariaError(`encodeSft: record ${index}: ${field} must be a string, got ${describeValue(record[field])}`, 'ERR_TALARIA_DTYPE');
  const prompt = tokenizer.encode(record.prompt);
  const completion = tokenizer.encode(record.completion);
  if (1 + prompt.length >= maxLen)
    throw new TalariaError(`encodeSft: record ${index}: BOS + prompt is ${1 + prompt.length} tokens, which leaves no room for the completion within maxLen ${maxLen}`, 'ERR_TALARIA_RANGE');
  const kept = Math.min(completion.length, maxLen - 1 - prompt.length);
  const withEos = kept === completion.length && 1 + prompt.length + kept < maxLen;
  const length = 1 + prompt.length + kept + (withEos ? 1 : 0);
  const ids = new Int32Array(length);
  ids[0] = tokenizer.bosId;
  ids.set(prompt, 1);
  ids.set(completion.subarray(0, kept), 1 + prompt.length);
  if (withEos) ids[length - 1] = tokenizer.eosId;
  const lossMask = new Uint8Array(length);
  // Positions prompt.length .. length-2 predict the completion tokens and the EOS.
  lossMask.fill(1, prompt.length, length - 1);
  return { ids, lossMask };
}

/**
 * Encodes pretraining text as `BOS text`, truncated to maxLen tokens; every position but the last
 * predicts its next token (lossMask all ones except the last).
 *
 * @example
 * const example = encodePretraining(new ByteTokenizer(), 'Once upon a time', 1024);
 */
export function encodePretraining(tokenizer: Tokenizer, text: string, maxLen: number): Required<EncodedExample> {
  checkTokenizer('encodePretraining', tokenizer);
  checkMaxLen('encodePretraining', maxLen, 2);
  if (typeof text !== 'string') throw new TalariaError(`encodePretraining: text must be a string, got ${describeValue(text)}`, 'ERR_TALARIA_DTYPE');
  if (text === '') throw new TalariaError('encodePretraining: text must be non-empty, got ""', 'ERR_TALARIA_RANGE');
  const tokens = tokenizer.encode(text);
  const length = Math.min(1 + tokens.length, maxLen);
  const ids = new Int32Array(length);
  ids[0] = tokenizer.bosId;
  ids.set(tokens.subarray(0, length - 1), 1);
  const lossMask = new Uint8Array(length).fill(1);
  lossMask[length - 1] = 0;
  return { ids, lossMask };
}

/**
 * Concatenates examples into one packed batch, one example per sequence, and derives the targets.
 * A mask of 1 on an example's last position is ignored (there is no next token to predict).
 *
 * @example
 * const batch = packBatch([encodeSft(tok, a, 512), encodeSft(tok, b, 512)]);
 * // batch.cuSeqlens = [0, len(a), len(a) + len(b)]
 */
export function packBatch(examples: readonly EncodedExample[]): PackedBatch {
  if (!Array.isArray(examples)) throw new TalariaError(`packBatch: examples must be an array, got ${describeValue(examples)}`, 'ERR_TALARIA_DTYPE');
  if (examples.length === 0) throw new TalariaError('packBatch: examples must hold at least one example, got an empty array', 'ERR_TALARIA_SHAPE');
  examples.forEach((example, i) => checkExample('packBatch', example, i));
  const cuSeqlens = new Int32Array(examples.length + 1);
  for (let b = 0; b < examples.length; b++) cuSeqlens[b + 1] = cuSeqlens[b] + examples[b].ids.length;
  const total = cuSeqlens[examples.length];
  const ids = new Int32Array(total);
  const lossMask = new Uint8Array(total);
  const targets = new Int32Array(total);
  examples.forEach((example, b) => {
    const start = cuSeqlens[b];
    const n = example.ids.length;
    ids.set(example.ids, start);
    if (example.lossMask) lossMask.set(example.lossMask, start);
    else lossMask.fill(1, start, start + n);
    targets.set(example.ids.subarray(1), start);
    targets[start + n - 1] = example.ids[n - 1];
    lossMask[start + n - 1] = 0;
  });
  return { ids, cuSeqlens, lossMask, targets };
}

/** Where a TokenBudgetBatcher stands, JSON-safe: save it with a checkpoint, pass it to restore(). */
export interface BatcherPosition {
  /** The epoch in progress (0-based). */
  epoch: number;
  /** How many examples of this epoch's order have been batched. */
  index: number;
  /** The Rng state at the start of this epoch (before its shuffle), so the order can be rebuilt. */
  rngState: RngState;
}

export interface TokenBudgetBatcherOptions {
  /** Most tokens in one batch (sum over its sequences). */
  tokenBudget: number;
  /** Seed of the shuffle. */
  seed: number;
  /** Concatenate several examples into one sequence of at most maxLen tokens (pretraining). */
  pack?: boolean;
  /** Longest packed sequence; required with pack. */
  maxLen?: number;
}

/** A batch with where it came from. */
export interface BatcherBatch extends PackedBatch {
  epoch: number;
  /** Indices into the batcher's examples, in batch order. */
  exampleIndices: number[];
}

/**
 * Yields packed batches of at most `tokenBudget` tokens, forever, in an order shuffled anew each epoch.
 * Batches never span two epochs (the last one of an epoch may be small). The position is checkpointable:
 * restore(position()) on a fresh batcher over the same examples yields exactly the batches the original
 * would have.
 *
 * @example
 * const batcher = new TokenBudgetBatcher(examples, { tokenBudget: 8192, seed: 1 });
 * const batch = batcher.next();
 * checkpoint.data = batcher.position();          // later: batcher.restore(checkpoint.data)
 */
export class TokenBudgetBatcher {
  private readonly examples: readonly EncodedExample[];
  private readonly tokenBudget: number;
  private readonly maxLen: number | undefined;
  private readonly rng: Rng;
  private epoch = 0;
  private index = 0;
  private epochStart: RngState;
  private order: number[] = [];

  constructor(examples: readonly EncodedExample[], options: TokenBudgetBatcherOptions) {
    const fn = 'TokenBudgetBatcher';
    if (!Array.isArray(examples)) throw new TalariaError(`${fn}: examples must be an array, got ${describeValue(examples)}`, 'ERR_TALARIA_DTYPE');
    if (examples.length === 0) throw new TalariaError(`${fn}: examples must hold at least one example, got an empty array`, 'ERR_TALARIA_SHAPE');
    if (options === null || typeof options !== 'object') throw new TalariaError(`${fn}: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
    checkPositiveInteger(fn, 'options.tokenBudget', options.tokenBudget);
    if (typeof options.seed !== 'number') throw new TalariaError(`${fn}: options.seed must be a number, got ${describeValue(options.seed)}`, 'ERR_TALARIA_DTYPE');
    if (!Number.isSafeInteger(options.seed)) throw new TalariaError(`${fn}: options.seed must be a safe integer, got ${options.seed}`, 'ERR_TALARIA_RANGE');
    if (options.pack !== undefined && typeof options.pack !== 'boolean')
      throw new TalariaError(`${fn}: options.pack must be a boolean, got ${describeValue(options.pack)}`, 'ERR_TALARIA_DTYPE');
    if (options.pack) checkPositiveInteger(fn, 'options.maxLen', options.maxLen);
    else if (options.maxLen !== undefined) throw new TalariaError(`${fn}: options.maxLen applies only with pack: true, got ${describeValue(options.maxLen)}`, 'ERR_TALARIA_RANGE');
    this.tokenBudget = options.tokenBudget;
    this.maxLen = options.pack ? options.maxLen : undefined;
    const longest = Math.min(this.tokenBudget, this.maxLen ?? Infinity);
    examples.forEach((example, i) => {
      checkExample(fn, example, i);
      if (example.ids.length > longest) {
        const limit = this.maxLen !== undefined && this.maxLen < this.tokenBudget ? `options.maxLen ${this.maxLen}` : `options.tokenBudget ${this.tokenBudget}`;
        throw new TalariaError(`${fn}: examples[${i}] has ${example.ids.length} tokens, more than ${limit}`, 'ERR_TALARIA_RANGE');
      }
    });
    this.examples = examples.slice();
    this.rng = new Rng(options.seed);
    this.epochStart = this.rng.state();
    this.order = this.rng.shuffle(this.examples.map((_, i) => i));
  }

  /** The current position (a copy; JSON-safe). */
  position(): BatcherPosition {
    return { epoch: this.epoch, index: this.index, rngState: [...this.epochStart] as RngState };
  }

  /** Continues from a position saved by position() on a batcher over the same examples and options. */
  restore(position: BatcherPosition): void {
    const fn = 'TokenBudgetBatcher.restore';
    if (position === null || typeof position !== 'object') throw new TalariaError(`${fn}: position must be an object, got ${describeValue(position)}`, 'ERR_TALARIA_DTYPE');
    if (!Number.isSafeInteger(position.epoch) || position.epoch < 0)
      throw new TalariaError(`${fn}: position.epoch must be a non-negative integer, got ${describeValue(position.epoch)}`, 'ERR_TALARIA_RANGE');
    if (!Number.isSafeInteger(position.index) || position.index < 0 || position.index > this.examples.length)
      throw new TalariaError(`${fn}: position.index must be an integer in [0, ${this.examples.length}], got ${describeValue(position.index)}`, 'ERR_TALARIA_RANGE');
    try {
      this.rng.restore(position.rngState);
    } catch {
      throw new TalariaError(`${fn}: position.rngState must be four unsigned 32-bit integers, got ${describeValue(position.rngState)}`, 'ERR_TALARIA_RANGE');
    }
    this.epoch = position.epoch;
    this.index = position.index;
    this.epochStart = this.rng.state();
    this.order = this.rng.shuffle(this.examples.map((_, i) => i));
  }

  /** The next batch; after the last batch of an epoch comes the first of the next, reshuffled. */
  next(): BatcherBatch {
    if (this.index === this.examples.length) {
      this.epoch++;
      this.index = 0;
      this.epochStart = this.rng.state();
      this.order = this.rng.shuffle(this.examples.map((_, i) => i));
    }
    const sequences: EncodedExample[][] = [];
    const exampleIndices: number[] = [];
    let tokens = 0;
    let sequenceLength = Infinity; // length of the last open sequence (Infinity: none open)
    while (this.index < this.order.length) {
      const i = this.order[this.index];
      const n = this.examples[i].ids.length;
      if (tokens + n > this.tokenBudget) break;
      if (this.maxLen !== undefined && sequenceLength + n <= this.maxLen) {
        sequences[sequences.length - 1].push(this.examples[i]);
        sequenceLength += n;
      } else {
        sequences.push([this.examples[i]]);
        sequenceLength = n;
      }
      tokens += n;
      exampleIndices.push(i);
      this.index++;
    }
    return { ...packBatch(sequences.map(concatenate)), epoch: this.epoch, exampleIndices };
  }
}

/** Several documents as one sequence; each keeps its own mask, so no loss crosses a document boundary. */
function concatenate(documents: EncodedExample[]): EncodedExample {
  if (documents.length === 1) return documents[0];
  const length = documents.reduce((sum, d) => sum + d.ids.length, 0);
  const ids = new Int32Array(length);
  const lossMask = new Uint8Array(length);
  let offset = 0;
  for (const d of documents) {
    ids.set(d.ids, offset);
    if (d.lossMask) lossMask.set(d.lossMask, offset);
    else lossMask.fill(1, offset, offset + d.ids.length);
    offset += d.ids.length;
    lossMask[offset - 1] = 0; // a document's last token does not predict the next document's BOS
  }
  return { ids, lossMask };
}

function checkExample(fn: string, example: EncodedExample, i: number): void {
  if (example === null || typeof example !== 'object') throw new TalariaError(`${fn}: examples[${i}] must be an object {ids, lossMask?}, got ${describeValue(example)}`, 'ERR_TALARIA_DTYPE');
  const { ids, lossMask } = example;
  if (!(ids instanceof Int32Array)) throw new TalariaError(`${fn}: examples[${i}].ids must be an Int32Array, got ${describeValue(ids)}`, 'ERR_TALARIA_DTYPE');
  if (ids.length === 0) throw new TalariaError(`${fn}: examples[${i}].ids must hold at least one token, got 0`, 'ERR_TALARIA_SHAPE');
  const negative = ids.findIndex((id) => id < 0);
  if (negative >= 0) throw new TalariaError(`${fn}: examples[${i}].ids[${negative}] must be a non-negative token id, got ${ids[negative]}`, 'ERR_TALARIA_RANGE');
  if (lossMask === undefined) return;
  if (!(lossMask instanceof Uint8Array)) throw new TalariaError(`${fn}: examples[${i}].lossMask must be a Uint8Array, got ${describeValue(lossMask)}`, 'ERR_TALARIA_DTYPE');
  if (lossMask.length !== ids.length)
    throw new TalariaError(`${fn}: examples[${i}].lossMask must have ids' length ${ids.length}, got ${lossMask.length}`, 'ERR_TALARIA_SHAPE');
  const bad = lossMask.findIndex((m) => m > 1);
  if (bad >= 0) throw new TalariaError(`${fn}: examples[${i}].lossMask[${bad}] must be 0 or 1, got ${lossMask[bad]}`, 'ERR_TALARIA_RANGE');
}

function checkTokenizer(fn: string, tokenizer: Tokenizer): void {
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function' || !Number.isInteger(tokenizer.bosId) || !Number.isInteger(tokenizer.eosId))
    throw new TalariaError(`${fn}: tokenizer must be a Tokenizer (encode, bosId, eosId), got ${describeValue(tokenizer)}`, 'ERR_TALARIA_DTYPE');
}

function checkMaxLen(fn: string, maxLen: number, least: number): void {
  if (typeof maxLen !== 'number') throw new TalariaError(`${fn}: maxLen must be a number, got ${describeValue(maxLen)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isSafeInteger(maxLen) || maxLen < least) throw new TalariaError(`${fn}: maxLen must be an integer ≥ ${least}, got ${maxLen}`, 'ERR_TALARIA_RANGE');
}

function checkIndex(fn: string, index: number): void {
  if (typeof index !== 'number') throw new TalariaError(`${fn}: index must be a number, got ${describeValue(index)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isSafeInteger(index) || index < 0) throw new TalariaError(`${fn}: index must be a non-negative integer, got ${describeValue(index)}`, 'ERR_TALARIA_RANGE');
}

function checkPositiveInteger(fn: string, name: string, value: unknown): void {
  if (typeof value !== 'number') throw new TalariaError(`${fn}: ${name} must be a number, got ${describeValue(value)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isSafeInteger(value) || value < 1) throw new TalariaError(`${fn}: ${name} must be a positive integer, got ${value}`, 'ERR_TALARIA_RANGE');
}

/** a then b, as one new array (prompt + response, for example). */
export function concatTokens(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** BOS + the prompt's tokens: what a policy is prompted with. */
export function promptTokens(tokenizer: Tokenizer, prompt: string): Int32Array {
  return Int32Array.from([tokenizer.bosId, ...tokenizer.encode(prompt)]);
}

/** A response's tokens, EOS appended when the response ended (a cut-off response has none). */
export function responseTokens(tokenizer: Tokenizer, response: string, ended: boolean): Int32Array {
  const body = tokenizer.encode(response);
  return ended ? Int32Array.from([...body, tokenizer.eosId]) : body;
}
