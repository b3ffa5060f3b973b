// Training metrics as JSON Lines: one object per logged step, `{stage, step, time, ...values}`, appended
// and flushed line by line so a crash loses at most the line being written and `tail -f` shows progress.
// A NaN or infinite loss is exactly what someone reading the log needs to see, so it is written as null
// (JSON has no NaN) instead of throwing away the line or the run.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { describeValue } from '../data/describe.js';
import { parseJsonlLine } from '../data/jsonl.js';
import { TalariaError } from '../native.js';

/** A metric value: non-finite numbers are stored as null. */
export type MetricValue = number | string | boolean | null;

/** One line of metrics.jsonl. `time` is Unix time in seconds (with milliseconds). */
export interface MetricsRecord {
  stage: string;
  step: number;
  time: number;
  [name: string]: MetricValue;
}

export interface MetricsWriterOptions {
  /** Clock in milliseconds (tests inject one); default Date.now. */
  now?: () => number;
}

const reserved = new Set(['stage', 'step', 'time']);

/**
 * Appends metrics to a JSONL file (created with its directory if missing; an existing file is appended
 * to, so a resumed run continues the same log).
 *
 * @example
 * const metrics = new MetricsWriter('runs/sft/metrics.jsonl');
 * metrics.write('sft', 10, { loss: 2.31, lr: 3e-4 });
 */
export class MetricsWriter {
  readonly path: string;
  private readonly now: () => number;

  constructor(path: string, options: MetricsWriterOptions = {}) {
    if (typeof path !== 'string' || path === '') throw new TalariaError(`MetricsWriter: path must be a non-empty string, got ${describeValue(path)}`, 'ERR_TALARIA_DTYPE');
    if (options === null || typeof options !== 'object') throw new TalariaError(`MetricsWriter: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
    if (options.now !== undefined && typeof options.now !== 'function')
      throw new TalariaError(`MetricsWriter: options.now must be a function, got ${describeValue(options.now)}`, 'ERR_TALARIA_DTYPE');
    this.path = path;
    this.now = options.now ?? Date.now;
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (err) {
      throw new TalariaError(`MetricsWriter: cannot create the directory of ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'ERR_TALARIA_IO');
    }
  }

  /** Appends `{stage, step, time, ...values}` as one line; returns the record as written. */
  write(stage: string, step: number, values: Record<string, MetricValue> = {}): MetricsRecord {
    const fn = 'MetricsWriter.write';
    if (typeof stage !== 'string' || stage === '') throw new TalariaError(`${fn}: stage must be a non-empty string, got ${describeValue(stage)}`, 'ERR_TALARIA_DTYPE');
    if (typeof step !== 'number') throw new TalariaError(`${fn}: step must be a number, got ${describeValue(step)}`, 'ERR_TALARIA_DTYPE');
    if (!Number.isSafeInteger(step) || step < 0) throw new TalariaError(`${fn}: step must be a non-negative integer, got ${step}`, 'ERR_TALARIA_RANGE');
    if (values === null || typeof values !== 'object' || Array.isArray(values))
      throw new TalariaError(`${fn}: values must be an object of name → number | string | boolean | null, got ${describeValue(values)}`, 'ERR_TALARIA_DTYPE');
    const record: MetricsRecord = { stage, step, time: this.now() / 1000 };
    for (const [name, value] of Object.entries(values)) {
      if (reserved.has(name)) throw new TalariaError(`${fn}: values.${name} would overwrite the record's own ${name}`, 'ERR_TALARIA_RANGE');
      if (typeof value === 'number') record[name] = Number.isFinite(value) ? value : null;
      else if (value === null || typeof value === 'string' || typeof value === 'boolean') record[name] = value;
      else throw new TalariaError(`${fn}: values.${name} must be a number, string, boolean or null, got ${describeValue(value)}`, 'ERR_TALARIA_DTYPE');
    }
    try {
      appendFileSync(this.path, `${JSON.stringify(record)}\n`);
    } catch (err) {
      throw new TalariaError(`${fn}: cannot append to ${this.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'ERR_TALARIA_IO');
    }
    return record;
  }
}

const metricsRecordSchema = z.looseObject({ stage: z.string(), step: z.number().int(), time: z.number() }) as unknown as z.ZodType<MetricsRecord>;

/**
 * Every record of a metrics.jsonl, in order. An empty file gives []. A last line without its newline
 * that does not parse (a run killed mid-write) is skipped; any other bad line is ERR_TALARIA_FORMAT.
 *
 * @example
 * const losses = readMetrics('runs/sft/metrics.jsonl').filter((m) => m.stage === 'sft').map((m) => m.loss);
 */
export function readMetrics(path: string): MetricsRecord[] {
  if (typeof path !== 'string' || path === '') throw new TalariaError(`readMetrics: path must be a non-empty string, got ${describeValue(path)}`, 'ERR_TALARIA_DTYPE');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TalariaError(`readMetrics: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'ERR_TALARIA_IO');
  }
  const lines = text.split('\n');
  const records: MetricsRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const unterminated = i === lines.length - 1 && lines[i] !== '';
    try {
      const record = parseJsonlLine(path, i + 1, lines[i], metricsRecordSchema);
      if (record) records.push(record.value);
    } catch (err) {
      if (!unterminated) throw err;
    }
  }
  return records;
}
