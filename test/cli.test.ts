// The `talaria` command (dist/cli.js, built by `npm test`'s pretest) in child processes: sft, rm and ppo
// from config files with overrides, the errors a user sees (bad config field, missing file, malformed
// JSONL line with its number), resume, and Ctrl-C leaving a loadable checkpoint.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { modelConfigToHf } from '../lib/nn/config.js';
import { readMetrics } from '../lib/train/metrics.js';
import { latestCheckpoint } from '../lib/train/runner.js';
import { TransformerModel } from '../lib/index.js';
import { tinyConfig } from './helpers/model.js';

const cli = resolve(import.meta.dirname, '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'talaria-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = promisify(execFile);

async function talaria(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const write = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const jsonl = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

// A byte-level model small enough to train in a second.
const modelConfig = write('model.json', JSON.stringify(modelConfigToHf(tinyConfig({ vocabSize: 259, maxPositions: 64 }))));
const letters = 'abcdefgh';
const sftData = write(
  'sft.jsonl',
  jsonl(Array.from({ length: 40 }, (_, i) => ({ prompt: `${letters[i % 8]}${letters[(i * 3) % 8]}>`, completion: `${letters[(i * 3) % 8]}${letters[i % 8]}` }))),
);

describe('talaria sft', () => {
  it('trains from a config file with command-line overrides', async () => {
    const out = join(dir, 'sft-run');
    const config = write('sft.json', JSON.stringify({ model: { config: modelConfig }, data: { train: sftData }, out, epochs: 2, lr: 3e-3, batchTokens: 64, maxLen: 32 }));
    const first = await talaria('sft', '--config', config, '--lr', '5e-3', '--seed', '3');
    expect(first.stderr + first.stdout).toMatch(/sft: \d+ steps in/);
    expect(first.code).toBe(0);
    const steps = readMetrics(join(out, 'metrics.jsonl')).filter((r) => r.stage === 'sft');
    expect(steps.length).toBeGreaterThan(2);
    expect(steps[0].lr).toBeLessThanOrEqual(5e-3);
    expect(Number(steps.at(-1)!.loss)).toBeLessThan(Number(steps[0].loss));
    const model = TransformerModel.fromPretrained(join(out, 'final', 'policy'), { lm: true, score: false }, { trainable: false });
    model.dispose();
  }, 60_000);

  it('names the bad field of a config', async () => {
    const bad = write('bad.json', JSON.stringify({ model: { config: modelConfig }, data: { train: sftData }, out: join(dir, 'x'), epochs: 1, lr: -1 }));
    const result = await talaria('sft', '--config', bad);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ERR_TALARIA_FORMAT: .*bad\.json: lr: /);
    const unknown = await talaria('sft', '--config', bad, '--lr', '1e-3', '--learningRate', '3');
    expect(unknown.stderr).toMatch(/ERR_TALARIA_FORMAT: .*learningRate/);
    const both = await talaria('sft', '--config', bad, '--lr', '1e-3', '--steps', '3');
    expect(both.stderr).toMatch(/epochs: give exactly one of epochs and steps/);
    const notJson = await talaria('sft', '--config', write('notjson.json', '{ "lr": '));
    expect(notJson.stderr).toMatch(/ERR_TALARIA_FORMAT: .*notjson\.json: not valid JSON/);
  }, 60_000);

  it('reports a missing file and a malformed JSONL line with its number', async () => {
    const missing = await talaria('sft', '--config', join(dir, 'nope.json'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_TALARIA_IO: cannot read config .*nope\.json/);
    const broken = write('broken.jsonl', `${JSON.stringify({ prompt: 'a>', completion: 'b' })}\n{"prompt": "c>", "completion": 7}\n`);
    const config = write('sft-broken.json', JSON.stringify({ model: { config: modelConfig }, data: { train: broken }, out: join(dir, 'y'), epochs: 1, lr: 1e-3 }));
    const result = await talaria('sft', '--config', config);
    expect(result.stderr).toMatch(/ERR_TALARIA_FORMAT: .*broken\.jsonl:2: completion: expected a string/);
    const noData = write('sft-nodata.json', JSON.stringify({ model: { config: modelConfig }, data: { train: join(dir, 'absent.jsonl') }, out: join(dir, 'z'), epochs: 1, lr: 1e-3 }));
    expect((await talaria('sft', '--config', noData)).stderr).toMatch(/ERR_TALARIA_IO: .*absent\.jsonl/);
    expect((await talaria('sft')).stderr).toMatch(/--config file\.json is required/);
    expect((await talaria('sft', 'config.json')).stderr).toMatch(/unexpected argument 'config\.json'/);
    expect((await talaria('frobnicate')).code).toBe(2);
  }, 60_000);

  it('Ctrl-C (SIGINT) saves a loadable checkpoint and exits 130; --resume finishes the run', async () => {
    const out = join(dir, 'sigint-run');
    const config = write('sft-long.json', JSON.stringify({ model: { config: modelConfig }, data: { train: sftData }, out, steps: 100000, lr: 1e-3, batchTokens: 64, maxLen: 32, checkpointEvery: 0 }));
    const child = spawn(process.execPath, [cli, 'sft', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    // Wait until training has run a few steps, then interrupt.
    const metrics = join(out, 'metrics.jsonl');
    for (let i = 0; i < 600 && !(existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > 3); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(output).toMatch(/interrupted at step \d+/);
    expect(code).toBe(130);
    const checkpoint = latestCheckpoint(out);
    expect(checkpoint).not.toBeNull();
    const model = TransformerModel.fromPretrained(join(checkpoint!, 'policy'), { lm: true, score: false }, { trainable: false });
    model.dispose();
    const steps = readMetrics(metrics).filter((r) => r.stage === 'sft').length;
    expect(JSON.parse(readFileSync(join(checkpoint!, 'trainer.json'), 'utf8')).stepsDone).toBe(steps);
    const resumed = await talaria('sft', '--config', config, '--steps', String(steps + 3), '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(readMetrics(metrics).filter((r) => r.stage === 'sft').map((r) => r.step)).toEqual(Array.from({ length: steps + 3 }, (_, i) => i + 1));
  }, 90_000);
});

describe('talaria rm and ppo', () => {
  it('trains a reward model on ranked JSONL, then PPO against it from the SFT policy', async () => {
    const sftOut = join(dir, 'sft-for-rm');
    const sftConfig = write('sft-rm.json', JSON.stringify({ model: { config: modelConfig }, data: { train: sftData }, out: sftOut, epochs: 1, lr: 3e-3, batchTokens: 64, maxLen: 32 }));
    expect((await talaria('sft', '--config', sftConfig)).code).toBe(0);
    const rmData = write(
      'rm.jsonl',
      jsonl(Array.from({ length: 24 }, (_, i) => ({ prompt: `${letters[i % 8]}>`, completions: ['good', 'bad', 'meh'], ranking: [0, 2, 1] }))),
    );
    const pairs = write('pairs.jsonl', jsonl([{ prompt: 'a>', chosen: 'good', rejected: 'bad' }]));
    const rmOut = join(dir, 'rm-run');
    const rmConfig = write('rm.json', JSON.stringify({ model: join(sftOut, 'final', 'policy'), data: { train: rmData, eval: pairs }, out: rmOut, epochs: 2, promptsPerBatch: 8, lr: 3e-3 }));
    const rm = await talaria('rm', '--config', rmConfig);
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(join(rmOut, 'final', 'reward', 'model.safetensors'))).toBe(true);
    const prompts = write('prompts.jsonl', jsonl(letters.split('').map((c) => ({ prompt: `${c}>` }))));
    const ppoOut = join(dir, 'ppo-run');
    mkdirSync(ppoOut, { recursive: true });
    const ppoConfig = write(
      'ppo.json',
      JSON.stringify({ policy: join(sftOut, 'final', 'policy'), reward: join(rmOut, 'final', 'reward'), data: { prompts }, out: ppoOut, iterations: 2, rolloutsPerIteration: 8, minibatchSize: 4, maxNewTokens: 6, lr: 1e-4, preset: 'task-a' }),
    );
    const ppo = await talaria('ppo', '--config', ppoConfig, '--klCoef', '0.1');
    expect(ppo.code, ppo.stderr).toBe(0);
    const iterations = readMetrics(join(ppoOut, 'metrics.jsonl')).filter((r) => r.stage === 'ppo');
    expect(iterations.map((r) => r.klCoef)).toEqual([0.1, 0.1]);
    for (const key of ['loss', 'valueLoss', 'reward', 'kl', 'clipfrac', 'entropy', 'tokensPerSecond']) expect(iterations[0]).toHaveProperty(key);
    const badPpo = await talaria('ppo', '--config', ppoConfig, '--iterations', '0');
    expect(badPpo.stderr).toMatch(/ERR_TALARIA_FORMAT: .*iterations/);
  }, 120_000);
});
