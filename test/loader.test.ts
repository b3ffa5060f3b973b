// The loader tries TALARIA_BINARY, build/Release, then prebuilds/<platform>-<arch>, and reports every
// failed attempt in one TalariaError.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon, TalariaError } from '../lib/native.js';

const emptyRoot = mkdtempSync(join(tmpdir(), 'talaria-loader-'));
afterAll(() => rmSync(emptyRoot, { recursive: true, force: true }));

function loadError(root: string, env: NodeJS.ProcessEnv): TalariaError {
  try {
    loadAddon(root, env);
  } catch (error) {
    return error as TalariaError;
  }
  throw new Error('loadAddon did not throw');
}

describe('loadAddon', () => {
  it('lists every candidate in one ERR_TALARIA_IO error when none exists', () => {
    const error = loadError(emptyRoot, { TALARIA_BINARY: join(emptyRoot, 'missing.node') });
    expect(error).toBeInstanceOf(TalariaError);
    expect(error.code).toBe('ERR_TALARIA_IO');
    expect(error.message).toContain(`TALARIA_BINARY: ${join(emptyRoot, 'missing.node')}: not found`);
    expect(error.message).toContain(join(emptyRoot, 'build', 'Release', 'talaria.node'));
    expect(error.message).toContain(join(emptyRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'talaria.node'));
    expect(error.message).toContain('npm install');
  });

  it('skips TALARIA_BINARY when it is unset', () => {
    const error = loadError(emptyRoot, {});
    expect(error.message).not.toContain('- TALARIA_BINARY:');
    expect(error.message.match(/not found/g)).toHaveLength(2);
  });

  it('reports a binary that exists but cannot be loaded, then tries the next candidate', () => {
    const prebuilt = join(emptyRoot, 'prebuilds', `${process.platform}-${process.arch}`);
    mkdirSync(prebuilt, { recursive: true });
    writeFileSync(join(prebuilt, 'talaria.node'), 'not a shared library');
    const garbage = join(emptyRoot, 'garbage.node');
    writeFileSync(garbage, 'not a shared library either');
    const error = loadError(emptyRoot, { TALARIA_BINARY: garbage });
    expect(error.code).toBe('ERR_TALARIA_IO');
    const lines = error.message.split('\n');
    expect(lines.find((l) => l.includes(garbage))).not.toMatch(/not found/);
    expect(lines.find((l) => l.includes('prebuilds'))).not.toMatch(/not found/);
  });

  it('falls back to build/Release when TALARIA_BINARY is broken', () => {
    const garbage = join(emptyRoot, 'garbage2.node');
    writeFileSync(garbage, 'not a shared library');
    const addon = loadAddon(undefined, { TALARIA_BINARY: garbage });
    expect(addon.info().backends).toContain('cpu');
  });
});
