import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readJsonl, streamJsonl } from '../lib/data/jsonl.js';
import {
  ppoRecordSchema, pretrainingRecordSchema, rewardRecordSchema, sftRecordSchema,
} from '../lib/data/records.js';
import { TalariaError } from '../lib/native.js';
import { Rng } from '../lib/util/rng.js';
import { expectThrows, expectTalariaError } from './helpers/assert.js';

const dir = mkdtempSync(join(tmpdir(), 'talaria-jsonl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
function file(text: string, name = `f${fileCount++}.jsonl`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const lines = (...records: unknown[]) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}

/** Both readers throw the same TalariaError for `path` (the stream form from its iteration). */
async function expectBothFail(path: string, schema: z.ZodType<unknown>, code: 'ERR_TALARIA_FORMAT' | 'ERR_TALARIA_IO', ...fragments: string[]): Promise<void> {
  const errors: unknown[] = [];
  try { readJsonl(path, schema); } catch (err) { errors.push(err); }
  try { await collect(streamJsonl(path, schema)); } catch (err) { errors.push(err); }
  expect(errors).toHaveLength(2);
  for (const err of errors) {
    expectTalariaError(err, code);
    for (const fragment of fragments) expect((err as TalariaError).message).toContain(fragment);
  }
  const withoutCaller = (err: unknown) => (err as Error).message.replace(/^(read|stream)Jsonl: /, '');
  expect(withoutCaller(errors[0])).toBe(withoutCaller(errors[1]));
}

describe('readJsonl / streamJsonl', () => {
  it('reads random records in order with both forms, skipping blank lines, with a BOM and CRLF', async () => {
    const rng = new Rng(3);
    const records = Array.from({ length: 37 }, (_, i) => ({ prompt: `p${rng.nextUint32()}`, completion: `c${i} ${rng.uniform()}`, extra: i }));
    const text = '\ufeff' + records.map((r) => JSON.stringify(r) + (rng.bernoulli(0.5) ? '\r\n' : '\n') + (rng.bernoulli(0.2) ? '  \n' : '')).join('');
    const path = file(text);
    expect(readJsonl(path, sftRecordSchema)).toEqual(records); // extra fields pass through
    expect(await collect(streamJsonl(path, sftRecordSchema))).toEqual(records);
  });

  it('reads a single record without a trailing newline', async () => {
    const path = file('{"text":"solo"}');
    expect(readJsonl(path, pretrainingRecordSchema)).toEqual([{ text: 'solo' }]);
    expect(await collect(streamJsonl(path, pretrainingRecordSchema))).toEqual([{ text: 'solo' }]);
  });

  it('names file:line and the parser message for bad JSON', async () => {
    const path = file(lines({ prompt: 'a', completion: 'b' }, '', '{"prompt": "a", completion: 1}'));
    await expectBothFail(path, sftRecordSchema, 'ERR_TALARIA_FORMAT', `${path}:3: invalid JSON: `);
  });

  it('names the field, the expected type and what was given for a wrong type', async () => {
    const good = { prompt: 'a', completion: 'b' };
    const path = file(lines(...Array.from({ length: 16 }, () => good), { prompt: 'a', completion: 5 }));
    await expectBothFail(path, sftRecordSchema, 'ERR_TALARIA_FORMAT', `${path}:17: completion: expected a string, got number 5`);
  });

  it('names a missing field', async () => {
    const path = file(lines({ prompt: 'a', completion: 'b' }, { prompt: 'a' }));
    await expectBothFail(path, sftRecordSchema, 'ERR_TALARIA_FORMAT', `${path}:2: completion: missing (expected a string)`);
  });

  it('rejects a record that is not an object, and empty texts that must not be empty', async () => {
    await expectBothFail(file('[1, 2]\n'), sftRecordSchema, 'ERR_TALARIA_FORMAT', ':1: record: expected an object, got an array');
    await expectBothFail(file('null\n'), ppoRecordSchema, 'ERR_TALARIA_FORMAT', ':1: record: expected an object, got null');
    await expectBothFail(file(lines({ prompt: '', completion: '' })), sftRecordSchema, 'ERR_TALARIA_FORMAT', ':1: completion: must be a non-empty string');
    await expectBothFail(file(lines({ text: '' })), pretrainingRecordSchema, 'ERR_TALARIA_FORMAT', ':1: text: must be a non-empty string');
  });

  it('rejects an empty file or one of blank lines only', async () => {
    await expectBothFail(file(''), ppoRecordSchema, 'ERR_TALARIA_FORMAT', 'no records');
    await expectBothFail(file('\ufeff\n \r\n\n'), ppoRecordSchema, 'ERR_TALARIA_FORMAT', 'no records');
    expectThrows(() => readJsonl(file(''), ppoRecordSchema, { what: 'PPO prompts' }), 'ERR_TALARIA_FORMAT', 'no PPO prompts');
  });

  it('throws ERR_TALARIA_IO naming the path for a missing file or a directory', async () => {
    const missing = join(dir, 'missing.jsonl');
    await expectBothFail(missing, sftRecordSchema, 'ERR_TALARIA_IO', missing, 'ENOENT');
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    await expectBothFail(sub, sftRecordSchema, 'ERR_TALARIA_IO', sub);
  });

  it('rejects bad arguments', async () => {
    const path = file(lines({ prompt: 'x' }));
    for (const read of [readJsonl, (...args: Parameters<typeof readJsonl>) => collect(streamJsonl(...args))] as const) {
      const failure = async (fn: () => unknown) => { try { await fn(); } catch (err) { return err; } return undefined; };
      expectTalariaError(await failure(() => read(42 as never, ppoRecordSchema)), 'ERR_TALARIA_DTYPE', 'path');
      expectTalariaError(await failure(() => read('', ppoRecordSchema)), 'ERR_TALARIA_DTYPE', 'path');
      expectTalariaError(await failure(() => read(path, {} as never)), 'ERR_TALARIA_DTYPE', 'schema');
      expectTalariaError(await failure(() => read(path, ppoRecordSchema, null as never)), 'ERR_TALARIA_DTYPE', 'options');
      expectTalariaError(await failure(() => read(path, ppoRecordSchema, { what: 3 as never })), 'ERR_TALARIA_DTYPE', 'options.what');
    }
  });
});

describe('record schemas', () => {
  it('normalises both RM forms and keeps a ranking best-first', () => {
    const path = file(lines(
      { prompt: 'q', completions: ['x', 'y', 'z'], ranking: [2, 0, 1] },
      { prompt: '', chosen: 'good', rejected: 'bad', id: 7 },
    ));
    expect(readJsonl(path, rewardRecordSchema)).toEqual([
      { prompt: 'q', completions: ['x', 'y', 'z'], ranking: [2, 0, 1] },
      { prompt: '', completions: ['good', 'bad'], ranking: [0, 1] },
    ]);
  });

  it.each([
    ['ranking not a permutation (repeat)', { prompt: 'q', completions: ['x', 'y', 'z'], ranking: [0, 0, 1] }, 'ranking: must be a permutation of 0..2'],
    ['ranking out of range', { prompt: 'q', completions: ['x', 'y'], ranking: [1, 2] }, 'ranking: must be a permutation of 0..1'],
    ['ranking too short', { prompt: 'q', completions: ['x', 'y', 'z'], ranking: [0, 1] }, 'ranking: must be a permutation'],
    ['ranking not integers', { prompt: 'q', completions: ['x', 'y'], ranking: [0.5, 1] }, 'ranking[0]'],
    ['duplicate completions', { prompt: 'q', completions: ['x', 'y', 'x'], ranking: [0, 1, 2] }, 'completions[2]: duplicates completions[0]'],
    ['a single completion', { prompt: 'q', completions: ['x'], ranking: [0] }, 'completions: must hold at least 2 completions'],
    ['an empty completion', { prompt: 'q', completions: ['x', ''], ranking: [0, 1] }, 'completions[1]: must be a non-empty string'],
    ['a completion of the wrong type', { prompt: 'q', completions: ['x', 3], ranking: [0, 1] }, 'completions[1]: expected a string, got number 3'],
    ['missing ranking', { prompt: 'q', completions: ['x', 'y'] }, 'ranking: missing (expected an array)'],
    ['pairwise chosen equals rejected', { prompt: 'q', chosen: 'same', rejected: 'same' }, 'rejected: must differ from chosen'],
    ['pairwise missing rejected', { prompt: 'q', chosen: 'a' }, 'rejected: missing (expected a string)'],
    ['prompt of the wrong type', { prompt: null, chosen: 'a', rejected: 'b' }, 'prompt: expected a string, got null'],
  ])('RM: %s is an error on its line', async (_, bad, message) => {
    const path = file(lines({ prompt: 'ok', chosen: 'a', rejected: 'b' }, bad));
    await expectBothFail(path, rewardRecordSchema, 'ERR_TALARIA_FORMAT', `${path}:2: ${message}`);
  });

  it('PPO prompts may be empty; the prompt field must exist', async () => {
    expect(readJsonl(file(lines({ prompt: '' }, { prompt: 'hi', meta: 1 })), ppoRecordSchema)).toEqual([{ prompt: '' }, { prompt: 'hi', meta: 1 }]);
    await expectBothFail(file(lines({ text: 'x' })), ppoRecordSchema, 'ERR_TALARIA_FORMAT', ':1: prompt: missing');
  });
});
