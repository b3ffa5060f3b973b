// Config files for the CLI: a JSON file, then `--key value` overrides (dotted keys reach nested fields),
// then a zod schema. Every failure is a TalariaError that names the file and the field.
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { talariaError, TalariaError } from '../native.js';
import { parseJsonChecked } from '../nn/files.js';

/** Reads a JSON config file; ERR_TALARIA_IO when it cannot be read, ERR_TALARIA_FORMAT when it is not a JSON object. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw talariaError('ERR_TALARIA_IO', `cannot read config ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const value = parseJsonChecked(text, path);
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw talariaError('ERR_TALARIA_FORMAT', `${path}: expected a JSON object at the top level`);
  return value as Record<string, unknown>;
}

/**
 * Applies `--a.b value` overrides to a config object (a copy). A value is read as JSON when it parses
 * (numbers, booleans, arrays), else kept as a string, so `--lr 1e-4 --out runs/a` both work.
 */
export function applyOverrides(config: Record<string, unknown>, overrides: Record<string, string>): Record<string, unknown> {
  const out = structuredClone(config);
  for (const [key, raw] of Object.entries(overrides)) {
    const path = key.split('.');
    if (path.some((part) => part === '' || part === '__proto__' || part === 'constructor' || part === 'prototype'))
      throw talariaError('ERR_TALARIA_RANGE', `--${key}: not a valid config field path`);
    let target: Record<string, unknown> = out;
    for (const part of path.slice(0, -1)) {
      const next = target[part];
      if (next === undefined) target[part] = {};
      else if (next === null || typeof next !== 'object' || Array.isArray(next))
        throw talariaError('ERR_TALARIA_RANGE', `--${key}: ${part} is not an object in the config`);
      target = target[part] as Record<string, unknown>;
    }
    target[path[path.length - 1]] = parseValue(raw);
  }
  return out;
}

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Validates with `schema`; the error names the source and the first bad field's path. */
export function validateConfig<T>(schema: z.ZodType<T>, value: unknown, source: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 3).map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    return `${where}: ${issue.message}`;
  });
  throw talariaError('ERR_TALARIA_FORMAT', `${source}: ${issues.join('; ')}`);
}

/** The config of a command: file (optional) + overrides, validated. */
export function loadCommandConfig<T>(schema: z.ZodType<T>, path: string | undefined, overrides: Record<string, string>): T {
  const base = path ? readConfigFile(path) : {};
  return validateConfig(schema, applyOverrides(base, overrides), path ?? 'config');
}

/** True for errors the CLI reports as one line (everything Talaria raises on purpose). */
export function isUserFacing(error: unknown): error is TalariaError {
  return error instanceof TalariaError;
}

/**
 * `--key value`, `--key=value` and boolean `--flag` arguments (booleans are the names in `booleans`).
 * Config overrides are open-ended (`--ppo.lr 1e-5`), so no fixed option table can parse them.
 */
export function parseFlags(command: string, argv: readonly string[], booleans: ReadonlySet<string>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') throw talariaError('ERR_TALARIA_RANGE', `${command}: unexpected argument '${arg}' (options are --name value)`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (name === '') throw talariaError('ERR_TALARIA_RANGE', `${command}: empty option name in '${arg}'`);
    if (booleans.has(name)) {
      out[name] = eq >= 0 ? arg.slice(eq + 1) !== 'false' : true;
    } else if (eq >= 0) {
      out[name] = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw talariaError('ERR_TALARIA_RANGE', `${command}: --${name} needs a value`);
      out[name] = argv[++i];
    }
  }
  return out;
}
