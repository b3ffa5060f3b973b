// The pipeline (lib/pipeline/run.ts): a custom world module runs end to end through every stage (the
// plug-in interface), finished stages are skipped on a second run, the world stays honest (no held-out
// prompt in any training set), and bad worlds and flags are refused with a message naming the problem.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { pipelineConfigSchema, QUICK_OVERRIDES } from '../lib/pipeline/config.js';
import { buildDatasets, runPipeline } from '../lib/pipeline/run.js';
import type { PipelineResults } from '../lib/pipeline/report.js';
import { readMetrics } from '../lib/train/metrics.js';
import { Rng } from '../lib/util/rng.js';
import { loadWorld } from '../lib/world/load.js';
import { worldA } from '../lib/world/task-a.js';

const repo = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'talaria-pipeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = pipelineConfigSchema.parse({
  model: { hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 32 },
  pretrain: { documents: 400, evalDocuments: 16, steps: 20, docsPerStep: 8, warmupSteps: 2 },
  sft: { demonstrations: 200, epochs: 1, batchTokens: 256 },
  rm: { prompts: 48, samplesPerPrompt: 4, k: 3, epochs: 1, promptsPerBatch: 16, evalPrompts: 12 },
  ppo: { iterations: 2, rolloutsPerIteration: 16, minibatchSize: 8, epochs: 1, ptxDocsPerMinibatch: 4 },
  eval: { prompts: 24 },
});

describe('runPipeline', () => {
  it('runs a custom world module through every stage and writes results.json, report.html and metrics', async () => {
    const world = await loadWorld(join(repo, 'examples', 'worlds', 'counting.mjs'));
    const outDir = join(dir, 'counting');
    const lines: string[] = [];
    const results = (await runPipeline({ world, config: tiny, outDir, seed: 1, progress: false, log: (l) => lines.push(l) }))!;
    const saved = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as PipelineResults;
    expect(saved).toEqual(JSON.parse(JSON.stringify(results)));
    expect(Object.keys(saved.policies)).toEqual(['base', 'sft', 'ppo', 'ppoPtx']);
    for (const policy of Object.values(saved.policies)) {
      expect(Number.isFinite(policy.score)).toBe(true);
      for (const name of Object.values(world.reportedFlags)) expect(policy[name]).toBeGreaterThanOrEqual(0);
      expect(policy.pretrainLoss).toBeGreaterThan(0);
    }
    expect(saved.policies.sft.klVsSft).toBeCloseTo(0, 5);
    expect(saved.rmAccuracy.noisy).toBeGreaterThanOrEqual(0);
    for (const stage of ['pretrain', 'sft', 'rm-sampling', 'rm', 'ppo', 'ppo-ptx', 'eval']) expect(saved.seconds[stage]).toBeGreaterThan(0);
    for (const stage of ['pretrain', 'sft', 'rm', 'ppo', 'ppo-ptx']) expect(saved.tokensPerSecond[stage]).toBeGreaterThan(0);
    const html = readFileSync(join(outDir, 'report.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html).toContain('<svg');
    const stages = new Set(readFileSync(join(outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).stage));
    for (const stage of ['pretrain', 'sft', 'rm', 'ppo', 'ppo-ptx']) expect(stages).toContain(stage);
    expect(lines.join('\n')).toMatch(/\| PPO-ptx \|/);

    // A second run finds every stage's final model and only evaluates again.
    const before = statSync(join(outDir, 'ppo', 'final', 'policy', 'model.safetensors')).mtimeMs;
    const again = (await runPipeline({ world, config: tiny, outDir, seed: 1, progress: false, log: () => {} }))!;
    expect(statSync(join(outDir, 'ppo', 'final', 'policy', 'model.safetensors')).mtimeMs).toBe(before);
    expect(again.policies.ppo.score).toBe(results.policies.ppo.score);
  }, 180_000);

  it('keeps world A honest: no held-out prompt appears in any training set', () => {
    const config = pipelineConfigSchema.parse(QUICK_OVERRIDES);
    const data = buildDatasets(worldA, config, 0, (k) => new Rng(k));
    const evalSet = new Set([...data.evalPrompts, ...data.rmEvalPrompts].map((p) => p.prompt));
    expect(evalSet.size).toBe(config.eval.prompts + config.rm.evalPrompts);
    for (const p of evalSet) expect(worldA.isEvalPrompt(p)).toBe(true);
    const training = [
      ...data.demonstrations.map((d) => d.prompt),
      ...data.demonstrationsEval.map((d) => d.prompt),
      ...data.rmPrompts.map((p) => p.prompt),
      ...data.ppoPrompts.map((p) => p.prompt),
      ...data.pretrain.flatMap((doc) => worldA.promptsInDocument!(doc)),
    ];
    expect(training.length).toBeGreaterThan(10_000);
    for (const prompt of training) {
      expect(evalSet.has(prompt), prompt).toBe(false);
      expect(worldA.isEvalPrompt(prompt), prompt).toBe(false);
    }
    // And the held-out pretraining documents state only held-out facts.
    for (const doc of data.pretrainEval) for (const prompt of worldA.promptsInDocument!(doc)) expect(worldA.isEvalPrompt(prompt)).toBe(true);
  });
});

describe('talaria pipeline (command line)', () => {
  const cli = join(repo, 'dist', 'cli.js');
  const run = promisify(execFile);
  const talaria = async (...args: string[]) => {
    try {
      const r = await run(process.execPath, [cli, 'pipeline', ...args], { cwd: dir, encoding: 'utf8' });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  };

  it('refuses a world module missing a function, a judge returning NaN and a world that leaks held-out prompts', async () => {
    const base = readFileSync(join(repo, 'examples', 'worlds', 'counting.mjs'), 'utf8');
    const variant = (name: string, source: string) => {
      const path = join(dir, name);
      writeFileSync(path, source);
      return path;
    };
    const missing = variant('missing.mjs', base.replace('  judge(answer, response, ended) {', '  judgeRenamed(answer, response, ended) {'));
    let result = await talaria('--world', missing, '--out', join(dir, 'o1'));
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/ERR_TALARIA_FORMAT: .*missing\.mjs.*judge/);
    const nanJudge = variant('nan.mjs', base.replace('return { score: (correct ? 1 : 0)', 'return { score: NaN * (correct ? 1 : 0)'));
    result = await talaria('--world', nanJudge, '--out', join(dir, 'o2'), '--quick');
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/ERR_TALARIA_FORMAT: .*judge.*NaN|ERR_TALARIA_FORMAT: .*NaN.*judge/);
    const leaky = variant('leaky.mjs', base.replace("if (isEvalPrompt(prompt) === (split === 'eval')) {", "if (split === 'train' || isEvalPrompt(prompt)) {"));
    result = await talaria('--world', leaky, '--out', join(dir, 'o3'));
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/ERR_TALARIA_FORMAT: .*train\/eval leakage/);
    expect(existsSync(join(dir, 'o3', 'pretrain'))).toBe(false);
  }, 120_000);

  it('Ctrl-C stops a stage with a checkpoint and exit code 130; the same command resumes and finishes', async () => {
    const outDir = join(dir, 'interrupted');
    const config = join(dir, 'long.json');
    writeFileSync(config, JSON.stringify({ ...tiny, pretrain: { ...tiny.pretrain, steps: 100000 } }));
    const args = [cli, 'pipeline', '--world', join(repo, 'examples', 'worlds', 'counting.mjs'), '--config', config, '--out', outDir];
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const metrics = join(outDir, 'metrics.jsonl');
    for (let i = 0; i < 600 && !(existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > 3); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(output).toMatch(/pretrain: interrupted; run the same command again to resume from .*step-\d{8}/);
    expect(code).toBe(130);
    expect(existsSync(join(outDir, 'results.json'))).toBe(false);
    const done = readMetrics(metrics).filter((r) => r.stage === 'pretrain').length;
    const resumed = await talaria('--world', join(repo, 'examples', 'worlds', 'counting.mjs'), '--config', config, '--out', outDir, '--pretrain.steps', String(done + 2));
    expect(resumed.code, resumed.out).toBe(0);
    expect(readMetrics(metrics).filter((r) => r.stage === 'pretrain').map((r) => r.step)).toEqual(Array.from({ length: done + 2 }, (_, i) => i + 1));
    expect(existsSync(join(outDir, 'results.json'))).toBe(true);
  }, 120_000);

  it('refuses bad flags and config fields', async () => {
    expect((await talaria('--seed', '-1')).out).toMatch(/--seed must be an integer >= 0/);
    expect((await talaria('--backend', 'tpu')).out).toMatch(/--backend must be cpu or cuda/);
    expect((await talaria('--frobnicate', '1')).out).toMatch(/unknown option --frobnicate/);
    expect((await talaria('--ppo.iterations', '0')).out).toMatch(/ERR_TALARIA_FORMAT: .*ppo\.iterations/);
    expect((await talaria('--ppo.nope', '3')).out).toMatch(/ERR_TALARIA_FORMAT: .*nope/);
    expect((await talaria('--world', join(dir, 'absent.mjs'))).out).toMatch(/ERR_TALARIA_IO: .*absent\.mjs/);
    expect((await talaria('extra')).out).toMatch(/unexpected argument 'extra'/);
  }, 60_000);
});
