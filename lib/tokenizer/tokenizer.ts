// The tokenizer contract the trainers depend on. Only ids cross it: the model, the batcher and the
// sampler never look at text, so any tokenizer (bytes today, BPE later) plugs in behind this interface.

/**
 * Turns text into token ids and back. `encode` adds no special tokens: callers place BOS/EOS where
 * their format needs them (see lib/data/batches.ts).
 */
export interface Tokenizer {
  /** Number of distinct ids; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** The ids of `text`, with no special tokens added. */
  encode(text: string): Int32Array;
  /** The text of `ids`: special tokens are dropped, invalid UTF-8 becomes U+FFFD; never throws on content. */
  decode(ids: ArrayLike<number>): string;
  /** Token ids that must never be sampled (PAD, BOS). */
  readonly neverSample: readonly number[];
}
