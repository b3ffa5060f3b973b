// Runs a test/fixtures/*.ts script in a fresh Node process (through tsx), for what one process cannot
// show: settings read once when the addon loads, or a crash that would take the test runner down.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface FixtureRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runFixture(
  fixture: string,
  options: { args?: string[]; env?: Record<string, string>; nodeArgs?: string[] } = {},
): FixtureRun {
  const script = join(REPO, 'test', 'fixtures', fixture);
  const result = spawnSync(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...(options.args ?? [])], {
    cwd: REPO,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** A one-line summary of a run, for assertion messages. */
export function describeRun(run: FixtureRun): string {
  return `exit status ${run.status}, signal ${run.signal}, stderr: ${run.stderr.slice(-2000)}`;
}
