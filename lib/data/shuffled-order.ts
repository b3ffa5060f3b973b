// Indices 0..size-1 in an order reshuffled every epoch from a seeded Rng, checkpointable: a restored
// order continues exactly where the saved one was. Used for prompt, minibatch and document orders (the
// token-budget batching of lib/data/batches.ts counts tokens instead of items).
import { describeValue } from './describe.js';
import { talariaError } from '../native.js';
import { isRngState, Rng, type RngState } from '../util/rng.js';

/** Where an order stands, JSON-safe: the epoch, the index within it, and the RNG state that shuffled it. */
export interface OrderPosition {
  epoch: number;
  index: number;
  rngState: RngState;
}

export class ShuffledOrder {
  private readonly rng: Rng;
  private epochStart: RngState;
  private order: number[];
  private index = 0;
  private epoch = 0;

  constructor(
    private readonly size: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  /** The next `count` indices, continuing into new epochs as needed. */
  take(count: number): number[] {
    const out: number[] = [];
    while (out.length < count) {
      this.startEpochIfDone();
      out.push(this.order[this.index++]);
    }
    return out;
  }

  /** Up to `size` next indices of the current epoch (a batch never spans two epochs), and that epoch. */
  nextInEpoch(size: number): { epoch: number; indices: number[] } {
    this.startEpochIfDone();
    const indices = this.order.slice(this.index, this.index + size);
    this.index += indices.length;
    return { epoch: this.epoch, indices };
  }

  position(): OrderPosition {
    return { epoch: this.epoch, index: this.index, rngState: [...this.epochStart] as RngState };
  }

  /** A saved position, validated against this order (ERR_TALARIA_FORMAT naming `what`); restore() applies it. */
  check(position: unknown, what: string): OrderPosition {
    const p = position as Partial<OrderPosition> | null;
    if (p === null || typeof p !== 'object' || !Number.isSafeInteger(p.epoch) || p.epoch! < 0 || !Number.isSafeInteger(p.index) || p.index! < 0 || p.index! > this.size)
      throw talariaError('ERR_TALARIA_FORMAT', `${what} must be {epoch, index in [0, ${this.size}], rngState}, got ${describeValue(position)}`);
    if (!isRngState(p.rngState))
      throw talariaError('ERR_TALARIA_FORMAT', `${what}.rngState must be four unsigned 32-bit integers, got ${describeValue(p.rngState)}`);
    return p as OrderPosition;
  }

  /** Continues exactly from a position check() accepted. */
  restore(position: OrderPosition): void {
    this.rng.restore(position.rngState);
    this.epoch = position.epoch;
    this.index = position.index;
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  private startEpochIfDone(): void {
    if (this.index < this.size) return;
    this.epoch++;
    this.index = 0;
    this.epochStart = this.rng.state();
    this.order = this.shuffled();
  }

  private shuffled(): number[] {
    return this.rng.shuffle(Array.from({ length: this.size }, (_, i) => i));
  }
}
