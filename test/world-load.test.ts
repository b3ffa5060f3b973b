// Loading worlds: world A by default, a custom plain-JS world by path, and every rejection: members
// missing or of the wrong type, a judge that returns garbage, train/eval leakage, missing modules. Plus
// the labeler-side pieces the RM stage uses: noisy rankings and the distinct-completion selection.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Rng } from '../lib/util/rng.js';
import { checkWorldSplit, loadWorld, rankCompletions, selectDistinct, validateWorld } from '../lib/world/load.js';
import { demonstrate, worldA } from '../lib/world/task-a.js';
import type { Completion, World } from '../lib/world/types.js';
import { expectRejects, expectThrows, thrownBy } from './helpers/assert.js';

const countingPath = 'examples/worlds/counting.mjs';
const countingUrl = pathToFileURL(resolve(countingPath)).href;
const scratch = mkdtempSync(join(tmpdir(), 'talaria-worlds-'));

/** Writes a world module into a scratch directory and returns its path. */
function writeModule(name: string, source: string): string {
  const path = join(scratch, name);
  writeFileSync(path, source);
  return path;
}

/** The first "cnt a {x}>" prompt (x over a, b) that the split holds out. */
function countingEvalPrompt(): string {
  for (let i = 1; ; i++) {
    const prompt = `cnt a ${i.toString(2).replaceAll('0', 'b').replaceAll('1', 'a')}>`;
    if (crc32(prompt) % 10 === 0) return prompt;
  }
}

async function countingWorld(): Promise<World> {
  return (await import(countingUrl)).default as World;
}

describe('loadWorld', () => {
  it('gives world A by default and for "a"', async () => {
    expect(await loadWorld(undefined)).toBe(worldA);
    expect(await loadWorld('a')).toBe(worldA);
  });

  it('loads the plain-JS counting world by path and runs it through the interface', async () => {
    const world = await loadWorld(countingPath);
    expect(world.name).toBe('counting');
    expect(world.responseBudget).toBe(4);
    const rng = new Rng(1);
    const { prompt, answer } = world.samplePrompt(rng, 'eval');
    expect(world.isEvalPrompt(prompt)).toBe(true);
    expect(prompt).toMatch(/^cnt [abc] [abc]+>$/);
    expect(world.judge(answer, answer, true)).toEqual({ score: 1, flags: { correct: true, noend: false } });
    expect(world.samplePretrainingDocument(rng, 'train')).toHaveLength(32);
    expect(world.promptsInDocument!('cnt a ab=1\ncnt b bb')).toEqual(['cnt a ab>']);
    // An absolute path and a named `world` export work too.
    const named = writeModule('named.mjs', `import w from ${JSON.stringify(countingUrl)};\nexport const world = w;\n`);
    expect((await loadWorld(named)).name).toBe('counting');
  });

  it('rejects a missing module file with ERR_TALARIA_IO naming the path', async () => {
    await expectRejects(() => loadWorld('./no-such-world.mjs'), 'ERR_TALARIA_IO', 'no-such-world.mjs');
  });

  it('rejects a module without a world, one that fails to import, and a spec that is not a string', async () => {
    const empty = writeModule('empty.mjs', 'export const notAWorld = 1;\n');
    await expectRejects(() => loadWorld(empty), 'ERR_TALARIA_FORMAT', 'default export');
    const broken = writeModule('broken.mjs', 'throw new Error("boom at import");\n');
    await expectRejects(() => loadWorld(broken), 'ERR_TALARIA_FORMAT', 'boom at import');
    const invalid = writeModule('invalid.mjs', 'export default { name: "x" };\n');
    await expectRejects(() => loadWorld(invalid), 'ERR_TALARIA_FORMAT', 'responseBudget');
    await expectRejects(() => loadWorld(42 as unknown as string), 'ERR_TALARIA_DTYPE', 'spec');
  });

  it('rejects a leaky world module, naming the leaking prompt', async () => {
    const leaked = countingEvalPrompt();
    const leaky = writeModule('leaky.mjs', [
      `import base from ${JSON.stringify(countingUrl)};`,
      'let calls = 0;',
      `export default { ...base, samplePrompt(rng, split) {`,
      `  if (split === 'train' && ++calls === 7) return { prompt: ${JSON.stringify(leaked)}, answer: '1' };`,
      '  return base.samplePrompt(rng, split);',
      '} };',
    ].join('\n'));
    await expectRejects(() => loadWorld(leaky), 'ERR_TALARIA_FORMAT', leaked);
  });
});

describe('validateWorld', () => {
  const members = ['name', 'responseBudget', 'contextLength', 'rankingNoise', 'reportedFlags', 'isEvalPrompt', 'samplePrompt',
    'sampleDemonstration', 'samplePretrainingDocument', 'judge'];

  it('accepts world A and the counting world, keeping their behaviour', async () => {
    const wrapped = validateWorld(worldA, 'world A');
    expect(wrapped.judge('abc', 'a@bc', true)).toEqual(worldA.judge('abc', 'a@bc', true));
    expect(wrapped.samplePrompt(new Rng(5), 'train')).toEqual(worldA.samplePrompt(new Rng(5), 'train'));
    expect(wrapped.promptsInDocument!('cp ab=ab\n')).toEqual(['cp ab>']);
    expect(validateWorld(await countingWorld(), countingPath).name).toBe('counting');
  });

  it.each(members)('rejects a world without %s, naming the source and the member', async (member) => {
    const world: Record<string, unknown> = { ...(await countingWorld()) };
    delete world[member];
    expectThrows(() => validateWorld(world, './my-world.mjs'), 'ERR_TALARIA_FORMAT', `./my-world.mjs: ${member}`);
  });

  const wrongTypes: [string, unknown][] = [
    ['name', 7], ['name', ''], ['responseBudget', '16'], ['responseBudget', 2.5], ['responseBudget', 0], ['contextLength', null],
    ['contextLength', 3], ['rankingNoise', Number.NaN], ['rankingNoise', -0.1], ['reportedFlags', 'accuracy'],
    ['reportedFlags', { correct: 1 }], ['isEvalPrompt', true], ['samplePrompt', {}], ['sampleDemonstration', 'demo'],
    ['samplePretrainingDocument', 3], ['judge', 42], ['promptsInDocument', 'no'],
  ];
  it.each(wrongTypes)('rejects %s = %j', async (member, value) => {
    const world = { ...(await countingWorld()), [member]: value };
    expectThrows(() => validateWorld(world, './my-world.mjs'), 'ERR_TALARIA_FORMAT', member);
  });

  it('says "judge must be a function" for a non-function judge', async () => {
    const err = thrownBy(() => validateWorld({ ...worldA, judge: 'score' }, './my-world.mjs')) as Error;
    expect(err.message).toContain('./my-world.mjs: judge must be a function');
  });

  it('rejects a non-object world and a non-string source', () => {
    expectThrows(() => validateWorld(null, './w.mjs'), 'ERR_TALARIA_FORMAT', './w.mjs');
    expectThrows(() => validateWorld(() => worldA, './w.mjs'), 'ERR_TALARIA_FORMAT', 'object');
    expectThrows(() => validateWorld(worldA, 3 as unknown as string), 'ERR_TALARIA_DTYPE', 'source');
  });

  it('wraps judge: a NaN score or a missing flag fails naming the world and the inputs', async () => {
    const base = await countingWorld();
    const nan = validateWorld({ ...base, judge: () => ({ score: Number.NaN, flags: { correct: true, noend: false } }) }, './nan.mjs');
    const err = thrownBy(() => nan.judge('2', '3', true)) as Error;
    expectThrows(() => nan.judge('2', '3', true), 'ERR_TALARIA_FORMAT', 'score');
    expect(err.message).toContain('counting');
    expect(err.message).toContain('judge("2", "3", true)');
    expect(err.message).toContain('NaN');
    const infinite = validateWorld({ ...base, judge: () => ({ score: Infinity, flags: { correct: true, noend: false } }) }, './inf.mjs');
    expectThrows(() => infinite.judge('2', '2', false), 'ERR_TALARIA_FORMAT', 'Infinity');
    const noFlags = validateWorld({ ...base, judge: () => ({ score: 1 }) }, './noflags.mjs');
    expectThrows(() => noFlags.judge('2', '2', true), 'ERR_TALARIA_FORMAT', 'flags');
    const missingFlag = validateWorld({ ...base, judge: () => ({ score: 1, flags: { correct: true } }) }, './missing.mjs');
    expectThrows(() => missingFlag.judge('2', '2', true), 'ERR_TALARIA_FORMAT', 'noend');
    const notAVerdict = validateWorld({ ...base, judge: () => 1 }, './number.mjs');
    expectThrows(() => notAVerdict.judge('2', '2', true), 'ERR_TALARIA_FORMAT', 'score, flags');
  });
});

describe('checkWorldSplit', () => {
  it('passes world A and the counting world', async () => {
    expect(() => checkWorldSplit(worldA, new Rng(2), 500)).not.toThrow();
    const counting = validateWorld(await countingWorld(), countingPath);
    expect(() => checkWorldSplit(counting, new Rng(2))).not.toThrow();
  });

  it('rejects a world whose train sampler, demonstrations or documents leak an eval prompt, naming it', async () => {
    const base = await countingWorld();
    const leaked = countingEvalPrompt();
    const trainLeak = { ...base, samplePrompt: (rng: Rng, split: 'train' | 'eval') => (split === 'train' ? { prompt: leaked, answer: '1' } : base.samplePrompt(rng, split)) };
    expectThrows(() => checkWorldSplit(trainLeak, new Rng(0)), 'ERR_TALARIA_FORMAT', leaked);
    const demoLeak = { ...base, sampleDemonstration: () => ({ prompt: leaked, response: '1', ended: true }) };
    expectThrows(() => checkWorldSplit(demoLeak, new Rng(0)), 'ERR_TALARIA_FORMAT', leaked);
    const fact = `${leaked.slice(0, -1)}=1`;
    const docLeak = { ...base, samplePretrainingDocument: () => `${fact}\n`.padEnd(32, 'x') };
    expectThrows(() => checkWorldSplit(docLeak, new Rng(0)), 'ERR_TALARIA_FORMAT', leaked);
    const evalLeak = { ...base, samplePrompt: (rng: Rng) => base.samplePrompt(rng, 'train') };
    expectThrows(() => checkWorldSplit(evalLeak, new Rng(0)), 'ERR_TALARIA_FORMAT', "samplePrompt(rng, 'eval')");
    // A leak that shows up only rarely is still caught within the default 2000 samples.
    let calls = 0;
    const rareLeak = { ...base, samplePrompt: (rng: Rng, split: 'train' | 'eval') => (split === 'train' && ++calls === 1500 ? { prompt: leaked, answer: '1' } : base.samplePrompt(rng, split)) };
    expectThrows(() => checkWorldSplit(rareLeak, new Rng(0)), 'ERR_TALARIA_FORMAT', leaked);
  });

  it('rejects samplers that return the wrong shape', async () => {
    const base = await countingWorld();
    expectThrows(() => checkWorldSplit({ ...base, samplePrompt: () => 'cnt a ab>' } as unknown as World, new Rng(0)), 'ERR_TALARIA_FORMAT', 'samplePrompt');
    expectThrows(() => checkWorldSplit({ ...base, sampleDemonstration: () => ({ prompt: 'cnt a b>', response: '0' }) } as unknown as World, new Rng(0)), 'ERR_TALARIA_FORMAT', 'sampleDemonstration');
    expectThrows(() => checkWorldSplit({ ...base, samplePretrainingDocument: () => 5 } as unknown as World, new Rng(0)), 'ERR_TALARIA_FORMAT', 'samplePretrainingDocument');
  });

  it('rejects bad arguments', () => {
    expectThrows(() => checkWorldSplit(null as unknown as World, new Rng(0)), 'ERR_TALARIA_DTYPE', 'world');
    expectThrows(() => checkWorldSplit(worldA, {} as Rng), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => checkWorldSplit(worldA, new Rng(0), 0), 'ERR_TALARIA_RANGE', 'samples');
    expectThrows(() => checkWorldSplit(worldA, new Rng(0), 1.5), 'ERR_TALARIA_RANGE', 'samples');
    expectThrows(() => checkWorldSplit(worldA, new Rng(0), '10' as unknown as number), 'ERR_TALARIA_DTYPE', 'samples');
  });
});

describe('rankCompletions', () => {
  const noiseless: World = { ...worldA, rankingNoise: 0 };

  it('sorts by the noise-free score when rankingNoise is 0 (ties keep their order)', () => {
    const completions: Completion[] = [
      { response: 'ab', ended: true }, // 2/3
      { response: 'a@bc', ended: true }, // -1
      { response: 'abc', ended: true }, // 2
      { response: 'abc ok', ended: true }, // 1.2
      { response: 'xyz', ended: false }, // -1
      { response: 'abc', ended: true }, // 2
    ];
    expect(rankCompletions(noiseless, new Rng(3), 'abc', completions)).toEqual([2, 5, 3, 0, 1, 4]);
  });

  it('adds one independent N(0, rankingNoise²) draw per completion, in order', () => {
    const completions: Completion[] = [{ response: 'ab', ended: true }, { response: 'abc', ended: true }, { response: 'b', ended: true }];
    const rng = new Rng(4);
    const ranking = rankCompletions(worldA, rng, 'abc', completions);
    const replay = new Rng(4);
    const noisy = completions.map((c) => worldA.judge('abc', c.response, c.ended).score + 0.9 * replay.normal());
    expect(ranking).toEqual([0, 1, 2].sort((i, j) => noisy[j] - noisy[i]));
    expect(rng.state()).toEqual(replay.state());
    // Noise 0 still draws, so the stream does not depend on the noise level.
    const quiet = new Rng(4);
    rankCompletions(noiseless, quiet, 'abc', completions);
    expect(quiet.state()).toEqual(replay.state());
  });

  it('agrees with an independent noisy ranking of SFT-like completions on a plausible share of pairs', () => {
    const rng = new Rng(5);
    let agree = 0, pairs = 0;
    for (let p = 0; p < 600; p++) {
      const { prompt, answer } = worldA.samplePrompt(rng, 'train');
      const completions = selectDistinct(Array.from({ length: 6 }, () => demonstrate(rng, prompt)), 4);
      const first = rankCompletions(worldA, rng, answer, completions);
      const second = rankCompletions(worldA, rng, answer, completions);
      const position = (ranking: number[]) => ranking.reduce((pos, index, rank) => ((pos[index] = rank), pos), [] as number[]);
      const [a, b] = [position(first), position(second)];
      for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++, pairs++) if ((a[i] < a[j]) === (b[i] < b[j])) agree++;
    }
    // The spec quotes about 73% for SFT samples (InstructGPT's labelers: 72.6–77.3%); demonstrations give
    // 0.736 over 6000 prompts. Plausible means clearly above chance and clearly below certainty.
    expect(agree / pairs).toBeGreaterThan(0.65);
    expect(agree / pairs).toBeLessThan(0.8);
  });

  it('rejects bad arguments', () => {
    const ok: Completion[] = [{ response: 'a', ended: true }];
    expectThrows(() => rankCompletions(undefined as unknown as World, new Rng(0), 'a', ok), 'ERR_TALARIA_DTYPE', 'world');
    expectThrows(() => rankCompletions(worldA, 7 as unknown as Rng, 'a', ok), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => rankCompletions(worldA, new Rng(0), ['a'] as unknown as string, ok), 'ERR_TALARIA_DTYPE', 'answer');
    expectThrows(() => rankCompletions(worldA, new Rng(0), 'a', 'a' as unknown as Completion[]), 'ERR_TALARIA_DTYPE', 'completions');
    expectThrows(() => rankCompletions(worldA, new Rng(0), 'a', [{ response: 'a', ended: 1 }] as unknown as Completion[]), 'ERR_TALARIA_DTYPE', 'completions[0]');
  });
});

describe('selectDistinct', () => {
  const c = (response: string, ended = true, id = 0) => ({ response, ended, id });

  it('keeps the first k distinct by (text, ended), in sample order', () => {
    const samples = [c('a', true, 0), c('a', true, 1), c('b', true, 2), c('a', false, 3), c('c', true, 4), c('d', true, 5)];
    expect(selectDistinct(samples, 4).map((s) => s.id)).toEqual([0, 2, 3, 4]);
    expect(selectDistinct(samples, 1).map((s) => s.id)).toEqual([0]);
  });

  it('pads with duplicates in sample order only when fewer than k are distinct', () => {
    const samples = [c('a', true, 0), c('a', true, 1), c('b', true, 2), c('a', true, 3), c('b', true, 4), c('a', true, 5)];
    expect(selectDistinct(samples, 4).map((s) => s.id)).toEqual([0, 2, 1, 3]);
    expect(selectDistinct([c('x', true, 0), c('x', true, 1)], 2).map((s) => s.id)).toEqual([0, 1]);
  });

  it('rejects bad arguments', () => {
    expectThrows(() => selectDistinct([c('a')], 2), 'ERR_TALARIA_RANGE', 'samples');
    expectThrows(() => selectDistinct([c('a')], 0), 'ERR_TALARIA_RANGE', 'k');
    expectThrows(() => selectDistinct([c('a')], '1' as unknown as number), 'ERR_TALARIA_DTYPE', 'k');
    expectThrows(() => selectDistinct(null as unknown as Completion[], 1), 'ERR_TALARIA_DTYPE', 'completions');
    expectThrows(() => selectDistinct([{ response: 3, ended: true }] as unknown as Completion[], 1), 'ERR_TALARIA_DTYPE', 'completions[0]');
  });
});
