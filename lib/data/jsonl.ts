// Reading JSON Lines datasets with a zod schema. Every error names the file and the 1-based line, and
// says what is wrong in a user's terms ("sft.jsonl:17: completion: expected a string, got number"), so a
// bad record in a 100k-line file is found in seconds. Blank lines are skipped, a UTF-8 BOM is tolerated
// and CRLF line ends work (Windows editors and spreadsheet exports produce both).
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { z } from 'zod';
import { TalariaError } from '../native.js';
import { describeValue } from './describe.js';

export interface JsonlOptions {
  /** What one record is, for messages (default 'records'), e.g. 'SFT records'. */
  what?: string;
}

/**
 * Reads a whole JSONL file and validates each record with `schema` (its output, so transforms apply).
 * Throws ERR_TALARIA_IO when the file cannot be read and ERR_TALARIA_FORMAT (with `file:line`) for a
 * malformed line or a file with no records.
 *
 * @example
 * const records = readJsonl('data/sft.jsonl', sftRecordSchema, { what: 'SFT records' });
 */
export function readJsonl<T>(path: string, schema: z.ZodType<T>, options: JsonlOptions = {}): T[] {
  checkArguments('readJsonl', path, schema, options);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw ioError('readJsonl', path, err);
  }
  const records: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const record = parseJsonlLine(path, i + 1, lines[i], schema);
    if (record !== undefined) records.push(record.value);
  }
  if (records.length === 0) throw emptyError(path, options);
  return records;
}

/**
 * The streaming form of readJsonl for files too big to hold as text: yields each validated record in
 * file order, with the same errors (thrown from the iteration).
 *
 * @example
 * for await (const { text } of streamJsonl('corpus.jsonl', pretrainingRecordSchema)) count += text.length;
 */
export async function* streamJsonl<T>(path: string, schema: z.ZodType<T>, options: JsonlOptions = {}): AsyncGenerator<T> {
  checkArguments('streamJsonl', path, schema, options);
  try {
    // Fail on a missing file or a directory before reading, with the same message as readJsonl.
    if (!statSync(path).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
  } catch (err) {
    throw ioError('streamJsonl', path, err);
  }
  const input = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNumber = 0;
  let count = 0;
  try {
    for await (const line of lines) {
      const record = parseJsonlLine(path, ++lineNumber, line, schema);
      if (record === undefined) continue;
      count++;
      yield record.value;
    }
  } catch (err) {
    if (err instanceof TalariaError) throw err;
    throw ioError('streamJsonl', path, err);
  } finally {
    lines.close();
    input.destroy();
  }
  if (count === 0) throw emptyError(path, options);
}

/**
 * One line of a JSONL file: undefined for a blank line, else `{ value }` validated by `schema`.
 * A BOM on line 1 and a trailing CR are removed first. Shared with readers of other JSONL files
 * (metrics) so every JSONL error reads the same.
 */
export function parseJsonlLine<T>(path: string, lineNumber: number, line: string, schema: z.ZodType<T>): { value: T } | undefined {
  if (lineNumber === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
  if (line.endsWith('\r')) line = line.slice(0, -1);
  if (line.trim() === '') return undefined;
  const where = `${path}:${lineNumber}`;
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    throw new TalariaError(`${where}: invalid JSON: ${(err as Error).message}`, 'ERR_TALARIA_FORMAT');
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new TalariaError(`${where}: ${formatIssue(result.error.issues[0], json)}`, 'ERR_TALARIA_FORMAT');
  return { value: result.data };
}

/** "completion: expected a string, got number 5" — the field path, then what was expected and given. */
function formatIssue(issue: z.core.$ZodIssue, json: unknown): string {
  const field = issue.path.length === 0 ? 'record' : issue.path.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
  if (issue.code === 'invalid_type') {
    const actual = valueAt(json, issue.path);
    if (actual === undefined && issue.path.length > 0) return `${field}: missing (expected ${withArticle(issue.expected)})`;
    return `${field}: expected ${withArticle(issue.expected)}, got ${describeValue(actual)}`;
  }
  return `${field}: ${issue.message}`;
}

function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let value = json;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function withArticle(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function checkArguments(fn: string, path: unknown, schema: unknown, options: unknown): void {
  if (typeof path !== 'string' || path === '')
    throw new TalariaError(`${fn}: path must be a non-empty string, got ${describeValue(path)}`, 'ERR_TALARIA_DTYPE');
  if (schema === null || typeof schema !== 'object' || typeof (schema as { safeParse?: unknown }).safeParse !== 'function')
    throw new TalariaError(`${fn}: schema must be a zod schema, got ${describeValue(schema)}`, 'ERR_TALARIA_DTYPE');
  if (options === null || typeof options !== 'object')
    throw new TalariaError(`${fn}: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
  const what = (options as JsonlOptions).what;
  if (what !== undefined && typeof what !== 'string')
    throw new TalariaError(`${fn}: options.what must be a string, got ${describeValue(what)}`, 'ERR_TALARIA_DTYPE');
}

function ioError(fn: string, path: string, err: unknown): TalariaError {
  const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new TalariaError(`${fn}: cannot read ${path} (${reason})`, 'ERR_TALARIA_IO');
}

function emptyError(path: string, options: JsonlOptions): TalariaError {
  return new TalariaError(`${path}: no ${options.what ?? 'records'} (the file is empty or holds only blank lines)`, 'ERR_TALARIA_FORMAT');
}
