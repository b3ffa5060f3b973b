// Argument guards shared by the world layer: wrong JS types are ERR_TALARIA_DTYPE, wrong values
// ERR_TALARIA_RANGE, as in lib/ops.
import { TalariaError } from '../native.js';
import { Rng } from '../util/rng.js';
import type { Split } from './types.js';

export function requireRng(rng: unknown, where: string): asserts rng is Rng {
  if (!(rng instanceof Rng))
    throw new TalariaError(`${where}: rng must be an Rng (lib/util/rng.ts), got ${describe(rng)}`, 'ERR_TALARIA_DTYPE');
}

export function requireSplit(split: unknown, where: string): asserts split is Split {
  if (split !== 'train' && split !== 'eval')
    throw new TalariaError(`${where}: split must be 'train' or 'eval', got ${describe(split)}`,
      typeof split === 'string' ? 'ERR_TALARIA_RANGE' : 'ERR_TALARIA_DTYPE');
}

export function requireString(value: unknown, name: string, where: string): asserts value is string {
  if (typeof value !== 'string')
    throw new TalariaError(`${where}: ${name} must be a string, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
}

export function requireBoolean(value: unknown, name: string, where: string): asserts value is boolean {
  if (typeof value !== 'boolean')
    throw new TalariaError(`${where}: ${name} must be a boolean, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
}

export function requirePositiveInteger(value: unknown, name: string, where: string): asserts value is number {
  if (typeof value !== 'number')
    throw new TalariaError(`${where}: ${name} must be a number, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isSafeInteger(value) || value < 1)
    throw new TalariaError(`${where}: ${name} must be a positive integer, got ${value}`, 'ERR_TALARIA_RANGE');
}

/** A short, readable rendering of any value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
