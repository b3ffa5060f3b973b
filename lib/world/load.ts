// Loading and checking worlds, and the labeler-side pieces of the RM stage.
// A custom world is any JS module whose default (or named `world`) export satisfies World; it is
// checked member by member, its judge is wrapped so a broken score fails loudly, and its samplers are
// probed for train/eval leakage before the pipeline trusts it.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TalariaError } from '../native.js';
import { Rng } from '../util/rng.js';
import { describe, requirePositiveInteger, requireRng, requireString } from './guards.js';
import { worldA } from './task-a.js';
import type { Completion, Judgement, World } from './types.js';

const numberMembers = ['responseBudget', 'contextLength', 'rankingNoise'] as const;
const functionMembers = ['isEvalPrompt', 'samplePrompt', 'sampleDemonstration', 'samplePretrainingDocument', 'judge'] as const;

function formatError(message: string): TalariaError {
  return new TalariaError(message, 'ERR_TALARIA_FORMAT');
}

/**
 * Checks that `candidate` is a World (every member present with the right type) and returns a copy
 * whose methods are bound to it and whose judge rejects a non-finite score or missing flags.
 * Errors are ERR_TALARIA_FORMAT naming `source` and the member.
 *
 * @example
 * const world = validateWorld(await import('./my-world.mjs').then((m) => m.default), './my-world.mjs');
 */
export function validateWorld(candidate: unknown, source: string): World {
  requireString(source, 'source', 'validateWorld');
  if (typeof candidate !== 'object' || candidate === null)
    throw formatError(`${source}: a world must be an object, got ${describe(candidate)}`);
  const c = candidate as Record<string, unknown>;
  if (typeof c.name !== 'string' || c.name.length === 0)
    throw formatError(`${source}: name must be a non-empty string, got ${describe(c.name)}`);
  for (const key of numberMembers)
    if (typeof c[key] !== 'number') throw formatError(`${source}: ${key} must be a number, got ${describe(c[key])}`);
  for (const key of ['responseBudget', 'contextLength'] as const)
    if (!Number.isSafeInteger(c[key]) || (c[key] as number) < 1)
      throw formatError(`${source}: ${key} must be a positive integer, got ${describe(c[key])}`);
  if ((c.responseBudget as number) >= (c.contextLength as number))
    throw formatError(`${source}: responseBudget (${c.responseBudget}) must be below contextLength (${c.contextLength})`);
  if (!Number.isFinite(c.rankingNoise) || (c.rankingNoise as number) < 0)
    throw formatError(`${source}: rankingNoise must be a finite number >= 0, got ${describe(c.rankingNoise)}`);
  const flags = c.reportedFlags;
  if (typeof flags !== 'object' || flags === null || Array.isArray(flags))
    throw formatError(`${source}: reportedFlags must be an object of flag → display name, got ${describe(flags)}`);
  for (const [flag, label] of Object.entries(flags))
    if (typeof label !== 'string') throw formatError(`${source}: reportedFlags.${flag} must be a string, got ${describe(label)}`);
  for (const key of functionMembers)
    if (typeof c[key] !== 'function') throw formatError(`${source}: ${key} must be a function, got ${describe(c[key])}`);
  if (c.promptsInDocument !== undefined && typeof c.promptsInDocument !== 'function')
    throw formatError(`${source}: promptsInDocument must be a function when present, got ${describe(c.promptsInDocument)}`);

  const world = candidate as World;
  const name = world.name;
  const reported = Object.keys(flags);
  const judge = (answer: string, response: string, ended: boolean): Judgement => {
    const verdict: unknown = world.judge(answer, response, ended);
    const call = `world "${name}" (${source}): judge(${JSON.stringify(answer)}, ${JSON.stringify(response)}, ${ended})`;
    if (typeof verdict !== 'object' || verdict === null) throw formatError(`${call} returned ${describe(verdict)}, expected {score, flags}`);
    const { score, flags: got } = verdict as Partial<Judgement>;
    if (typeof score !== 'number' || !Number.isFinite(score)) throw formatError(`${call} returned score ${describe(score)}, expected a finite number`);
    if (typeof got !== 'object' || got === null) throw formatError(`${call} returned flags ${describe(got)}, expected an object of booleans`);
    const missing = reported.find((flag) => typeof got[flag] !== 'boolean');
    if (missing !== undefined) throw formatError(`${call} returned no boolean flag "${missing}" (reportedFlags lists it)`);
    return { score, flags: got };
  };
  return {
    name,
    responseBudget: world.responseBudget,
    contextLength: world.contextLength,
    rankingNoise: world.rankingNoise,
    reportedFlags: { ...world.reportedFlags },
    isEvalPrompt: world.isEvalPrompt.bind(world),
    samplePrompt: world.samplePrompt.bind(world),
    sampleDemonstration: world.sampleDemonstration.bind(world),
    samplePretrainingDocument: world.samplePretrainingDocument.bind(world),
    judge,
    ...(world.promptsInDocument ? { promptsInDocument: world.promptsInDocument.bind(world) } : {}),
  };
}

/**
 * Probes a world for train/eval leakage: `samples` train prompts, demonstrations, train pretraining
 * documents (through promptsInDocument when the world has it) and eval prompts. Throws
 * ERR_TALARIA_FORMAT naming the leaking text when a train item is an eval prompt, an eval prompt is
 * not, or a sampler returns the wrong shape.
 *
 * @example
 * checkWorldSplit(world, new Rng(0)); // throws if the world leaks
 */
export function checkWorldSplit(world: World, rng: Rng, samples = 2000): void {
  if (typeof world !== 'object' || world === null) throw new TalariaError(`checkWorldSplit: world must be a World, got ${describe(world)}`, 'ERR_TALARIA_DTYPE');
  requireRng(rng, 'checkWorldSplit');
  requirePositiveInteger(samples, 'samples', 'checkWorldSplit');
  const leak = (what: string, text: unknown, problem: string) =>
    formatError(`world "${world.name}": ${what} returned ${describe(text)}, ${problem}`);
  const heldOut = 'which isEvalPrompt marks as an evaluation prompt (train/eval leakage)';
  for (let i = 0; i < samples; i++) {
    const train = world.samplePrompt(rng, 'train');
    if (typeof train?.prompt !== 'string' || typeof train.answer !== 'string')
      throw leak("samplePrompt(rng, 'train')", train, 'expected {prompt, answer} strings');
    if (world.isEvalPrompt(train.prompt)) throw leak("samplePrompt(rng, 'train')", train.prompt, heldOut);

    const demo = world.sampleDemonstration(rng);
    if (typeof demo?.prompt !== 'string' || typeof demo.response !== 'string' || typeof demo.ended !== 'boolean')
      throw leak('sampleDemonstration(rng)', demo, 'expected {prompt, response, ended}');
    if (world.isEvalPrompt(demo.prompt)) throw leak('sampleDemonstration(rng)', demo.prompt, heldOut);
    // Probe the labeler too (a validated world's judge throws on a non-finite score), so a broken judge
    // fails before any training instead of at the RM stage.
    world.judge(train.answer, demo.response, demo.ended);

    const document = world.samplePretrainingDocument(rng, 'train');
    if (typeof document !== 'string') throw leak("samplePretrainingDocument(rng, 'train')", document, 'expected a string');
    for (const prompt of world.promptsInDocument?.(document) ?? [])
      if (world.isEvalPrompt(prompt))
        throw leak("samplePretrainingDocument(rng, 'train')", document, `stating the fact of ${JSON.stringify(prompt)}, ${heldOut}`);

    const evaluation = world.samplePrompt(rng, 'eval');
    if (typeof evaluation?.prompt !== 'string' || typeof evaluation.answer !== 'string')
      throw leak("samplePrompt(rng, 'eval')", evaluation, 'expected {prompt, answer} strings');
    if (!world.isEvalPrompt(evaluation.prompt))
      throw leak("samplePrompt(rng, 'eval')", evaluation.prompt, 'which isEvalPrompt does not mark as an evaluation prompt');
  }
}

/**
 * The world a run uses: undefined or 'a' is the built-in world A; anything else is a path (relative to
 * the working directory) to a JS module whose default export, or named export `world`, is a World.
 * A custom world is validated and probed for leakage with a private Rng(0) (the caller's random stream
 * is untouched). Missing file → ERR_TALARIA_IO; a bad module or world → ERR_TALARIA_FORMAT.
 * TypeScript modules load only under a TS-aware loader (vitest, tsx).
 *
 * @example
 * const world = await loadWorld(process.argv[2]); // 'a', undefined, or './examples/worlds/counting.mjs'
 */
export async function loadWorld(spec: string | undefined): Promise<World> {
  if (spec === undefined || spec === 'a') return worldA;
  requireString(spec, 'spec', 'loadWorld');
  const path = resolve(process.cwd(), spec);
  if (!existsSync(path)) throw new TalariaError(`loadWorld: no world module at ${path} (from ${JSON.stringify(spec)})`, 'ERR_TALARIA_IO');
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    throw formatError(`${spec}: the world module could not be imported: ${err instanceof Error ? err.message : String(err)}`);
  }
  const candidate = module.default ?? module.world;
  if (candidate === undefined) throw formatError(`${spec}: the module has neither a default export nor a named export "world"`);
  const world = validateWorld(candidate, spec);
  checkWorldSplit(world, new Rng(0));
  return world;
}

function requireCompletions(completions: unknown, where: string): asserts completions is Completion[] {
  if (!Array.isArray(completions)) throw new TalariaError(`${where}: completions must be an array, got ${describe(completions)}`, 'ERR_TALARIA_DTYPE');
  completions.forEach((c: unknown, i) => {
    const { response, ended } = (c ?? {}) as Partial<Completion>;
    if (typeof response !== 'string' || typeof ended !== 'boolean')
      throw new TalariaError(`${where}: completions[${i}] must be {response: string, ended: boolean}, got ${describe(c)}`, 'ERR_TALARIA_DTYPE');
  });
}

/**
 * The labeler's ranking: indices of `completions`, best first, by judge score + N(0, rankingNoise²),
 * one independent draw per completion in order (drawn even when rankingNoise is 0, so the stream
 * does not depend on it). Equal noisy scores keep their original order.
 *
 * @example
 * rankCompletions(worldA, rng, 'abc', [{ response: 'ab', ended: true }, { response: 'abc', ended: true }]) // [1, 0]
 */
export function rankCompletions(world: World, rng: Rng, answer: string, completions: readonly Completion[]): number[] {
  if (typeof world !== 'object' || world === null) throw new TalariaError(`rankCompletions: world must be a World, got ${describe(world)}`, 'ERR_TALARIA_DTYPE');
  requireRng(rng, 'rankCompletions');
  requireString(answer, 'answer', 'rankCompletions');
  requireCompletions(completions, 'rankCompletions');
  const noisy = completions.map((c) => world.judge(answer, c.response, c.ended).score + world.rankingNoise * rng.normal());
  return noisy.map((_, i) => i).sort((i, j) => noisy[j] - noisy[i] || i - j);
}

/**
 * The completions the labeler ranks: the first k distinct by (response, ended), in sample order; only
 * if fewer than k are distinct, padded with the remaining (duplicate) samples in sample order.
 * Needs at least k samples. Extra fields of the samples (token ids, logprobs) are carried along.
 *
 * @example
 * selectDistinct([a, a, b, c, d], 4) // [a, b, c, d]
 */
export function selectDistinct<T extends Completion>(samples: readonly T[], k: number): T[] {
  requireCompletions(samples, 'selectDistinct');
  requirePositiveInteger(k, 'k', 'selectDistinct');
  if (samples.length < k) throw new TalariaError(`selectDistinct: samples must hold at least k = ${k} completions, got ${samples.length}`, 'ERR_TALARIA_RANGE');
  const seen = new Set<string>();
  const distinct: T[] = [];
  const duplicates: T[] = [];
  for (const sample of samples) {
    const key = `${sample.ended ? 1 : 0}${sample.response}`;
    if (seen.has(key)) duplicates.push(sample);
    else {
      seen.add(key);
      distinct.push(sample);
    }
  }
  return [...distinct, ...duplicates].slice(0, k);
}
