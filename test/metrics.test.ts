import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MetricsWriter, readMetrics } from '../lib/train/metrics.js';
import { Rng } from '../lib/util/rng.js';
import { expectThrows } from './helpers/assert.js';

const dir = mkdtempSync(join(tmpdir(), 'talaria-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('MetricsWriter / readMetrics', () => {
  it('appends one JSON line per write, in a directory it creates, and reads them back', () => {
    const path = join(dir, 'run', 'nested', 'metrics.jsonl');
    let clock = 1_700_000_000_000;
    const writer = new MetricsWriter(path, { now: () => (clock += 1250) });
    const rng = new Rng(2);
    const written = Array.from({ length: 9 }, (_, step) => writer.write(step < 5 ? 'sft' : 'ppo', step * 3, { loss: rng.normal(), lr: rng.uniform(), note: `s${step}`, ok: step % 2 === 0 }));
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(10);
    expect(lines[9]).toBe(''); // every line is terminated as soon as it is written
    expect(JSON.parse(lines[0])).toEqual({ stage: 'sft', step: 0, time: 1_700_000_001.25, loss: written[0].loss, lr: written[0].lr, note: 's0', ok: true });
    expect(readMetrics(path)).toEqual(written);
    // A second writer (a resumed run) appends to the same log.
    new MetricsWriter(path).write('ppo', 100, { loss: 1 });
    expect(readMetrics(path)).toHaveLength(10);
  });

  it('writes NaN and ±Infinity as null and never throws on them', () => {
    const path = join(dir, 'nonfinite.jsonl');
    const record = new MetricsWriter(path).write('rm', 1, { a: Number.NaN, b: Infinity, c: -Infinity, d: -0.5, e: null });
    expect(record).toMatchObject({ a: null, b: null, c: null, d: -0.5, e: null });
    expect(readMetrics(path)[0]).toMatchObject({ a: null, b: null, c: null, d: -0.5, e: null });
  });

  it('skips a last line cut by a crash, but rejects a malformed line before it with file:line', () => {
    const path = join(dir, 'crashed.jsonl');
    new MetricsWriter(path).write('sft', 1, { loss: 2 });
    appendFileSync(path, '{"stage":"sft","step":2,"lo');
    expect(readMetrics(path).map((r) => r.step)).toEqual([1]);
    appendFileSync(path, '\n{"stage":"sft","step":3,"time":1}\n');
    expectThrows(() => readMetrics(path), 'ERR_TALARIA_FORMAT', `${path}:2`);
    const wrong = join(dir, 'wrong.jsonl');
    writeFileSync(wrong, '{"stage":"sft","step":"one","time":1}\n');
    expectThrows(() => readMetrics(wrong), 'ERR_TALARIA_FORMAT', `${wrong}:1: step: expected a number`);
  });

  it('reads an empty file as no records', () => {
    const path = join(dir, 'empty.jsonl');
    writeFileSync(path, '');
    expect(readMetrics(path)).toEqual([]);
  });

  it('rejects bad arguments', () => {
    const writer = new MetricsWriter(join(dir, 'bad.jsonl'));
    expectThrows(() => new MetricsWriter(3 as never), 'ERR_TALARIA_DTYPE', 'path');
    expectThrows(() => new MetricsWriter(''), 'ERR_TALARIA_DTYPE', 'path');
    expectThrows(() => new MetricsWriter(join(dir, 'x.jsonl'), null as never), 'ERR_TALARIA_DTYPE', 'options');
    expectThrows(() => new MetricsWriter(join(dir, 'x.jsonl'), { now: 5 as never }), 'ERR_TALARIA_DTYPE', 'options.now');
    writeFileSync(join(dir, 'a-file'), '');
    expectThrows(() => new MetricsWriter(join(dir, 'a-file', 'metrics.jsonl')), 'ERR_TALARIA_IO', 'a-file');
    expectThrows(() => writer.write('', 1), 'ERR_TALARIA_DTYPE', 'stage');
    expectThrows(() => writer.write(7 as never, 1), 'ERR_TALARIA_DTYPE', 'stage');
    expectThrows(() => writer.write('sft', -1), 'ERR_TALARIA_RANGE', 'step');
    expectThrows(() => writer.write('sft', 1.5), 'ERR_TALARIA_RANGE', 'step');
    expectThrows(() => writer.write('sft', Number.NaN), 'ERR_TALARIA_RANGE', 'step');
    expectThrows(() => writer.write('sft', '1' as never), 'ERR_TALARIA_DTYPE', 'step');
    expectThrows(() => writer.write('sft', 1, [1] as never), 'ERR_TALARIA_DTYPE', 'values');
    expectThrows(() => writer.write('sft', 1, { loss: { x: 1 } } as never), 'ERR_TALARIA_DTYPE', 'values.loss');
    expectThrows(() => writer.write('sft', 1, { step: 3 }), 'ERR_TALARIA_RANGE', 'values.step');
    expectThrows(() => readMetrics(join(dir, 'missing.jsonl')), 'ERR_TALARIA_IO', 'missing.jsonl');
    expectThrows(() => readMetrics(undefined as never), 'ERR_TALARIA_DTYPE', 'path');
    expect(existsSync(join(dir, 'bad.jsonl'))).toBe(false); // rejected writes write nothing
  });
});
