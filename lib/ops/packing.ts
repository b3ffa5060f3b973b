// Conversions between the padded [B, T] + mask layout the Python trainers use and Talaria's packed
// layout (DESIGN.md): B sequences concatenated into N tokens with cuSeqlens i32[B+1]. Plain data
// movement, so it lives in TypeScript; compute the layout once and apply it to every per-token array.
import { TalariaError } from '../native.js';
import type { SupportedTypedArray } from '../tensor.js';

export interface PackedLayout {
  /** Rows in the padded layout. */
  batch: number;
  /** Columns (time steps) in the padded layout. */
  seqLen: number;
  /** i32[B+1] offsets of each row's tokens in the packed arrays. */
  cuSeqlens: Int32Array;
  /** i32[N]: for each packed token, its flat index b * seqLen + t in the padded arrays. */
  paddedIndex: Int32Array;
}

function requireInteger(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TalariaError(`${name}: expected a number, got ${typeof value}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff)
    throw new TalariaError(`${name}: expected a non-negative integer below 2^31, got ${value}`, 'ERR_TALARIA_RANGE');
  return value;
}

/**
 * The packed layout of a padded batch: the tokens where `attentionMask` is nonzero (left or right
 * padding, or holes), in order, row by row.
 *
 * @example
 * // two rows of 4, left-padded: [pad, a, b, c] and [d, e, pad, pad]
 * const layout = packedLayout(new Uint8Array([0, 1, 1, 1, 1, 1, 0, 0]), 2, 4);
 * layout.cuSeqlens; // Int32Array [0, 3, 5]
 */
export function packedLayout(attentionMask: Uint8Array, batch: number, seqLen: number): PackedLayout {
  if (!(attentionMask instanceof Uint8Array))
    throw new TalariaError('attentionMask: expected a Uint8Array', 'ERR_TALARIA_DTYPE');
  requireInteger(batch, 'batch');
  requireInteger(seqLen, 'seqLen');
  if (attentionMask.length !== batch * seqLen)
    throw new TalariaError(
      `attentionMask: expected length batch * seqLen = ${batch * seqLen}, got ${attentionMask.length}`,
      'ERR_TALARIA_SHAPE',
    );
  const cuSeqlens = new Int32Array(batch + 1);
  let n = 0;
  for (let i = 0; i < attentionMask.length; i++) if (attentionMask[i]) n++;
  const paddedIndex = new Int32Array(n);
  let k = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0, i = b * seqLen; t < seqLen; t++, i++) if (attentionMask[i]) paddedIndex[k++] = i;
    cuSeqlens[b + 1] = k;
  }
  return { batch, seqLen, cuSeqlens, paddedIndex };
}

/**
 * Gathers a padded [B, T] array into packed [N] order.
 *
 * @example
 * const rewards = pack(layout, paddedRewards); // Float32Array of length layout.cuSeqlens[B]
 */
export function pack<T extends SupportedTypedArray>(layout: PackedLayout, padded: T): T {
  requireTyped(padded, 'padded', layout.batch * layout.seqLen);
  const packed = new (padded.constructor as new (n: number) => T)(layout.paddedIndex.length);
  for (let k = 0; k < layout.paddedIndex.length; k++) packed[k] = padded[layout.paddedIndex[k]];
  return packed;
}

/**
 * Scatters a packed [N] array back to padded [B, T] order; padding positions get `fill` (default 0).
 *
 * @example
 * const paddedAdvantages = unpack(layout, advantages);
 */
export function unpack<T extends SupportedTypedArray>(layout: PackedLayout, packed: T, fill = 0): T {
  requireTyped(packed, 'packed', layout.paddedIndex.length);
  const padded = new (packed.constructor as new (n: number) => T)(layout.batch * layout.seqLen);
  if (fill !== 0) padded.fill(fill);
  for (let k = 0; k < layout.paddedIndex.length; k++) padded[layout.paddedIndex[k]] = packed[k];
  return padded;
}

function requireTyped(array: unknown, name: string, length: number): void {
  if (!(array instanceof Float32Array || array instanceof Int32Array || array instanceof Uint8Array))
    throw new TalariaError(`${name}: expected a Float32Array, Int32Array or Uint8Array`, 'ERR_TALARIA_DTYPE');
  if (array.length !== length)
    throw new TalariaError(`${name}: expected length ${length}, got ${array.length}`, 'ERR_TALARIA_SHAPE');
}
