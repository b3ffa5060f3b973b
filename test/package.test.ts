// The published entry points: dist/ works from ESM and CJS, and the README quick start runs verbatim in
// a project that depends on talaria. `npm test` rebuilds dist/ first (pretest).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
// A throwaway project whose node_modules/talaria is this repository, as after `npm install talaria`.
const project = mkdtempSync(join(tmpdir(), 'talaria-user-'));
mkdirSync(join(project, 'node_modules'));
symlinkSync(repo, join(project, 'node_modules', 'talaria'), 'dir');
afterAll(() => rmSync(project, { recursive: true, force: true }));

function runIn(file: string, source: string): string {
  writeFileSync(join(project, file), source);
  return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8' });
}

const probe = `
  const n = 5;
  const r = t.gae({ rewards: new Float32Array(n).fill(1), values: new Float32Array(n), cuSeqlens: new Int32Array([0, n]), gamma: 1, lambda: 1 });
  let code = null, isTalaria = false;
  try { t.whiten(new Float64Array(3)); } catch (e) { code = e.code; isTalaria = e instanceof t.TalariaError; }
  const tensor = t.Tensor.from(new Float32Array([1, 2]));
  console.log(JSON.stringify({ adv: Array.from(r.advantages), code, isTalaria, shape: tensor.shape, backends: t.info().backends }));
`;
const expected = { adv: [5, 4, 3, 2, 1], code: 'ERR_TALARIA_DTYPE', isTalaria: true, shape: [2], backends: expect.arrayContaining(['cpu']) };

describe('package entry points', () => {
  it('works from ESM', () => {
    expect(JSON.parse(runIn('esm.mjs', `import * as t from 'talaria';\n${probe}`))).toEqual(expected);
  });

  it('works from CJS', () => {
    expect(JSON.parse(runIn('cjs.cjs', `const t = require('talaria');\n${probe}`))).toEqual(expected);
  });

  it('recognises a TalariaError thrown through the other module format', () => {
    const out = runIn(
      'mixed.mjs',
      `import { createRequire } from 'node:module';
       import { TalariaError, whiten } from 'talaria';
       const cjs = createRequire(import.meta.url)('talaria');
       let a, b;
       try { cjs.whiten(null); } catch (e) { a = e instanceof TalariaError; }
       try { whiten(null); } catch (e) { b = e instanceof cjs.TalariaError; }
       console.log(JSON.stringify([a, b]));`,
    );
    expect(JSON.parse(out)).toEqual([true, true]);
  });

  it('runs the README quick start verbatim and prints what the README says', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quick start'));
    const code = section.match(/```js\n([\s\S]*?)```/)![1];
    const printed = section.match(/```text\n([\s\S]*?)```/)![1];
    const out = runIn('quickstart.mjs', code);
    const [expectedBackends, ...expectedRest] = printed.trimEnd().split('\n').reverse();
    const [backends, ...rest] = out.trimEnd().split('\n').reverse();
    expect(rest).toEqual(expectedRest);
    // The README shows a CPU-only machine; a GPU machine also lists cuda.
    expect(backends.startsWith(expectedBackends)).toBe(true);
  });
});
