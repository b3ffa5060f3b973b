// Argument guards shared by the pipeline's evaluation and report: wrong JS types are ERR_TALARIA_DTYPE,
// wrong values ERR_TALARIA_RANGE, as in lib/world and lib/ops.
import { TransformerModel } from '../nn/model.js';
import { TalariaError } from '../native.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { describe } from '../world/guards.js';
import type { World } from '../world/types.js';

export function requireArray(value: unknown, name: string, where: string): asserts value is unknown[] {
  if (!Array.isArray(value)) throw new TalariaError(`${where}: ${name} must be an array, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
}

export function requireOptions(options: unknown, where: string): asserts options is Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new TalariaError(`${where}: options must be an object, got ${describe(options)}`, 'ERR_TALARIA_DTYPE');
}

export function requireWorld(world: unknown, where: string): asserts world is World {
  const w = world as Partial<World> | null;
  if (typeof w !== 'object' || w === null || typeof w.judge !== 'function' || typeof w.samplePrompt !== 'function' || typeof w.isEvalPrompt !== 'function' || typeof w.reportedFlags !== 'object' || w.reportedFlags === null)
    throw new TalariaError(`${where}: world must be a World (see lib/world/types.ts), got ${describe(world)}`, 'ERR_TALARIA_DTYPE');
}

export function requireModel(model: unknown, name: string, where: string): asserts model is TransformerModel {
  if (!(model instanceof TransformerModel))
    throw new TalariaError(`${where}: ${name} must be a TransformerModel, got ${describe(model)}`, 'ERR_TALARIA_DTYPE');
}

export function requireTokenizer(tokenizer: unknown, where: string): asserts tokenizer is Tokenizer {
  const t = tokenizer as Partial<Tokenizer> | null;
  if (typeof t !== 'object' || t === null || typeof t.encode !== 'function' || typeof t.decode !== 'function' || !Number.isInteger(t.bosId) || !Number.isInteger(t.eosId))
    throw new TalariaError(`${where}: tokenizer must be a Tokenizer (encode, decode, bosId, eosId), got ${describe(tokenizer)}`, 'ERR_TALARIA_DTYPE');
}

/** A Philox/Rng seed: a safe integer >= 0. */
export function requireSeed(seed: unknown, name: string, where: string): asserts seed is number {
  if (typeof seed !== 'number') throw new TalariaError(`${where}: ${name} must be a number, got ${describe(seed)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TalariaError(`${where}: ${name} must be a safe integer >= 0, got ${seed}`, 'ERR_TALARIA_RANGE');
}

/** undefined and null give null; otherwise a finite number. */
export function requireFiniteOrNull(value: unknown, name: string, where: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number') throw new TalariaError(`${where}: ${name} must be a number or null, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isFinite(value)) throw new TalariaError(`${where}: ${name} must be finite, got ${value}`, 'ERR_TALARIA_RANGE');
  return value;
}
