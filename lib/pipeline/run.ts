// InstructGPT in miniature: pretrain -> SFT -> reward model -> PPO and PPO-ptx -> evaluation, on a world
// (lib/world). Every stage is a trainer of lib/train driven by the same runner the CLI uses, so each
// one checkpoints, resumes and stops on Ctrl-C like `talaria sft|rm|ppo`. The models never see the
// labeler except through the rankings it gives the RM stage; evaluation asks it for noise-free verdicts.
//
// outDir/
//   pretrain/ sft/ rm/ ppo/ ppo-ptx/   each: checkpoints/, final/<role>/ (Hugging Face folders), best/
//   metrics.jsonl  results.json  report.html
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProgress } from '../cli/progress.js';
import { concatTokens, promptTokens, responseTokens, type EncodedExample } from '../data/batches.js';
import type { ModelConfig } from '../nn/config.js';
import { TransformerModel } from '../nn/model.js';
import { ByteTokenizer } from '../tokenizer/byte.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { MetricsWriter, readMetrics } from '../train/metrics.js';
import { PpoTrainer, taskAPreset } from '../train/ppo.js';
import { RewardTrainer, scoreSequences, type ReferenceCompletion, type RewardExample } from '../train/reward.js';
import { runTrainer, type RunResult } from '../train/runner.js';
import { encodePretrainingTexts, SftTrainer } from '../train/sft.js';
import type { Trainer } from '../train/trainer.js';
import { Rng } from '../util/rng.js';
import { selectDistinct } from '../world/load.js';
import type { Demonstration, PromptSample, World } from '../world/types.js';
import { type PipelineConfig } from './config.js';
import {
  evalPrompts, evaluatePolicy, judgeSamples, klToReference, pretrainingLoss, rankSamples, rmAccuracy, sampleResponses, type JudgedSample, type RankedGroup, type Sample,
} from './evaluate.js';
import { formatResultsTable, POLICY_NAMES, pytorchReferenceA, renderReport, type PipelineResults, type PolicyName } from './report.js';

export interface PipelineOptions {
  world: World;
  config: PipelineConfig;
  outDir: string;
  seed: number;
  device?: string;
  /** Progress bars on stderr. Default true. */
  progress?: boolean;
  /** Where the stage headers and the final table go. Default console.log. */
  log?: (line: string) => void;
}

const POLICY_HEADS = { lm: true, score: false };
const SCORE_HEADS = { lm: false, score: true };

/** Thrown inside runPipeline when Ctrl-C stopped a stage (after it saved a checkpoint). */
class StageInterrupted extends Error {}

/**
 * Runs every stage that has no final model in outDir yet, then the evaluation; writes results.json and
 * report.html. Returns null when Ctrl-C stopped a stage: it saved a checkpoint, and running the pipeline
 * again on the same outDir resumes there.
 */
export async function runPipeline(options: PipelineOptions): Promise<PipelineResults | null> {
  try {
    return await runStages(options);
  } catch (error) {
    if (!(error instanceof StageInterrupted)) throw error;
    (options.log ?? console.log)(error.message);
    return null;
  }
}

async function runStages(options: PipelineOptions): Promise<PipelineResults> {
  const { world, config, outDir, seed } = options;
  const device = options.device ?? 'cpu';
  const log = options.log ?? ((line: string) => console.log(line));
  const progress = options.progress ?? true;
  const tokenizer = new ByteTokenizer();
  const metrics = new MetricsWriter(join(outDir, 'metrics.jsonl'));
  const seconds: Record<string, number> = {};
  const tokensPerSecond: Record<string, number> = {};
  const started = performance.now();
  // Independent random streams per dataset, so changing one size never reshuffles another.
  const stream = (k: number) => new Rng(seed * 1009 + k);
  const maxLen = world.contextLength + 1;
  const modelConfig = policyConfig(config, tokenizer, Math.max(128, maxLen));

  const data = buildDatasets(world, config, seed, stream);
  const stageDir = (stage: string) => join(outDir, stage);
  const finalDir = (stage: string, role: string) => join(outDir, stage, 'final', role);
  // A stage's wall time, and its throughput when it ran (null: skipped, its models were already there).
  const timed = async (stage: string, run: () => Promise<{ tokensPerSecond: number } | null>): Promise<void> => {
    const t0 = performance.now();
    log(`\n== ${stage}`);
    const result = await run();
    seconds[stage] = (performance.now() - t0) / 1e3;
    if (result) tokensPerSecond[stage] = result.tokensPerSecond;
  };
  const train = async (stage: string, trainer: Trainer, extra: Partial<Parameters<typeof runTrainer>[1]> = {}): Promise<RunResult> => {
    try {
      const result = await runTrainer(trainer, { outDir: stageDir(stage), resume: true, metrics, progress, ...extra });
      if (result.interrupted) throw new StageInterrupted(`${stage}: interrupted; run the same command again to resume from ${result.checkpointDir}`);
      log(`${stage}: ${result.stepsDone} steps in ${result.seconds.toFixed(1)} s, ${Math.round(result.tokensPerSecond)} tokens/s, ${summarize(result)}`);
      return result;
    } finally {
      trainer.dispose();
    }
  };
  const done = (stage: string, role: string) => existsSync(join(finalDir(stage, role), 'model.safetensors'));

  // 1. Pretraining: the base model learns the facts, never to follow instructions or to stop.
  await timed('pretrain', async () => {
    if (done('pretrain', 'policy')) return null;
    const model = new TransformerModel(modelConfig, POLICY_HEADS, { device, seed, suppressTokens: tokenizer.neverSample });
    const trainer = new SftTrainer({
      model, stage: 'pretrain', train: encodePretrainingTexts(tokenizer, data.pretrain, maxLen), eval: encodePretrainingTexts(tokenizer, data.pretrainEval, maxLen),
      steps: config.pretrain.steps, batchTokens: config.pretrain.docsPerStep * maxLen, maxLen, lr: config.pretrain.lr, schedule: 'cosine',
      warmupSteps: config.pretrain.warmupSteps, weightDecay: config.pretrain.weightDecay, maxGradNorm: 1, seed,
    });
    try {
      return await train('pretrain', trainer, { evalEvery: Math.max(1, Math.floor(config.pretrain.steps / 4)) });
    } finally {
      model.dispose();
    }
  });

  // 2. SFT on the (flawed) demonstrations; the best eval-loss model is kept.
  await timed('sft', async () => {
    if (done('sft', 'policy')) return null;
    const model = TransformerModel.fromPretrained(finalDir('pretrain', 'policy'), POLICY_HEADS, { device, suppressTokens: tokenizer.neverSample });
    const trainer = new SftTrainer({
      model, stage: 'sft', train: data.demonstrations.map((d) => encodeDemonstration(tokenizer, d)),
      eval: data.demonstrationsEval.map((d) => encodeDemonstration(tokenizer, d)), epochs: config.sft.epochs,
      batchTokens: config.sft.batchTokens, maxLen, lr: config.sft.lr, schedule: 'cosine', warmupSteps: config.sft.warmupSteps,
      weightDecay: 0, maxGradNorm: 1, seed: seed + 1,
    });
    try {
      return await train('sft', trainer, { evalEvery: 0 });
    } finally {
      model.dispose();
    }
  });

  // 3. Reward model: SFT samples ranked by the noisy labeler, K-wise batches, then the bias shift.
  const sft = TransformerModel.fromPretrained(finalDir('sft', 'policy'), POLICY_HEADS, { device, trainable: false, suppressTokens: tokenizer.neverSample });
  let rmEvalGroups: RankedGroup[] = [];
  let rmTrain: RewardExample[] = [];
  try {
    await timed('rm-sampling', async () => {
      rmEvalGroups = rankedGroups(world, sft, tokenizer, data.rmEvalPrompts, config, seed + 30, stream(30), progress, 'rm-sampling (eval)').groups;
      if (done('rm', 'reward')) return null;
      const sampled = rankedGroups(world, sft, tokenizer, data.rmPrompts, config, seed + 20, stream(20), progress, 'rm-sampling');
      rmTrain = sampled.groups.map(toRewardExample);
      return { tokensPerSecond: sampled.tokensPerSecond };
    });
    await timed('rm', async () => {
      if (done('rm', 'reward')) return null;
      const model = TransformerModel.fromPretrained(finalDir('sft', 'policy'), SCORE_HEADS, { device, initMissingScore: true });
      const trainer = new RewardTrainer({
        model, train: rmTrain, eval: rmEvalGroups.map(toRewardExample), epochs: config.rm.epochs, promptsPerBatch: config.rm.promptsPerBatch,
        lr: config.rm.lr, schedule: 'cosine', warmupSteps: 10, weightDecay: 0, maxGradNorm: 1, seed: seed + 2,
        referenceCompletions: data.demonstrations.map((d) => referenceCompletion(tokenizer, d)),
      });
      try {
        return await train('rm', trainer, { evalEvery: 0 });
      } finally {
        model.dispose();
      }
    });

    // 4-5. PPO and PPO-ptx from SFT, value model from the RM, per-token KL to SFT.
    for (const stage of ['ppo', 'ppo-ptx'] as const) {
      await timed(stage, async () => {
        if (done(stage, 'policy')) return null;
        const policy = TransformerModel.fromPretrained(finalDir('sft', 'policy'), POLICY_HEADS, { device, suppressTokens: tokenizer.neverSample });
        const value = TransformerModel.fromPretrained(finalDir('rm', 'reward'), SCORE_HEADS, { device });
        const reward = TransformerModel.fromPretrained(finalDir('rm', 'reward'), SCORE_HEADS, { device, trainable: false });
        const p = config.ppo;
        const trainer = new PpoTrainer({
          ...taskAPreset, policy, reference: sft, value, reward, tokenizer, prompts: data.ppoPrompts.map((s) => promptTokens(tokenizer, s.prompt)),
          iterations: p.iterations, rolloutsPerIteration: p.rolloutsPerIteration, minibatchSize: p.minibatchSize, epochs: p.epochs,
          maxNewTokens: world.responseBudget, klCoef: p.klCoef, gamma: p.gamma, lambda: p.lambda, clip: p.clip, valueClip: p.valueClip,
          lr: p.lr, valueLr: p.valueLr, seed: seed + (stage === 'ppo' ? 3 : 4),
          ...(stage === 'ppo-ptx' && {
            ptx: { examples: encodePretrainingTexts(tokenizer, data.pretrain.slice(0, 4096), maxLen), coef: p.ptxCoef, docsPerMinibatch: p.ptxDocsPerMinibatch },
          }),
        });
        try {
          return await train(stage, trainer, { evalEvery: 0 });
        } finally {
          for (const m of [policy, value, reward]) m.dispose();
        }
      });
    }

    // 6. Evaluation on held-out prompts, exactly as task-a.md defines it.
    let evaluation!: Evaluation;
    await timed('eval', async () => {
      evaluation = evaluateAll(world, tokenizer, sft, data, config, seed, device, options, rmEvalGroups, finalDir, progress);
      return null;
    });
    const { results, judged } = evaluation;
    results.seconds = seconds;
    results.tokensPerSecond = tokensPerSecond;
    results.totalSeconds = (performance.now() - started) / 1e3;
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    const samples = Object.fromEntries(POLICY_NAMES.map((name) => [name, judged[name] ?? []]));
    writeFileSync(
      join(outDir, 'report.html'),
      renderReport({ world: world.name, results, metrics: readMetrics(join(outDir, 'metrics.jsonl')), samples, reference: world.name === 'a' ? pytorchReferenceA : undefined }),
    );
    log(`\n${formatResultsTable(results)}`);
    log(`\nwrote ${join(outDir, 'results.json')} and ${join(outDir, 'report.html')}`);
    return results;
  } finally {
    sft.dispose();
  }
}

interface Datasets {
  pretrain: string[];
  pretrainEval: string[];
  demonstrations: Demonstration[];
  demonstrationsEval: Demonstration[];
  rmPrompts: PromptSample[];
  rmEvalPrompts: PromptSample[];
  ppoPrompts: PromptSample[];
  evalPrompts: PromptSample[];
}

/** Every dataset of the run, drawn from the world with independent seeded streams. */
export function buildDatasets(world: World, config: PipelineConfig, seed: number, stream: (k: number) => Rng): Datasets {
  const draw = <T>(count: number, rng: Rng, sample: (rng: Rng) => T): T[] => Array.from({ length: count }, () => sample(rng));
  const evalAll = evalPrompts(world, seed + 100, config.eval.prompts + config.rm.evalPrompts);
  return {
    pretrain: draw(config.pretrain.documents, stream(1), (r) => world.samplePretrainingDocument(r, 'train')),
    pretrainEval: draw(config.pretrain.evalDocuments, stream(2), (r) => world.samplePretrainingDocument(r, 'eval')),
    demonstrations: draw(config.sft.demonstrations, stream(3), (r) => world.sampleDemonstration(r)),
    demonstrationsEval: draw(Math.max(64, Math.floor(config.sft.demonstrations / 20)), stream(4), (r) => world.sampleDemonstration(r)),
    rmPrompts: draw(config.rm.prompts, stream(5), (r) => world.samplePrompt(r, 'train')),
    ppoPrompts: draw(Math.max(512, config.ppo.rolloutsPerIteration * 8), stream(6), (r) => world.samplePrompt(r, 'train')),
    evalPrompts: evalAll.slice(0, config.eval.prompts),
    rmEvalPrompts: evalAll.slice(config.eval.prompts),
  };
}

function policyConfig(config: PipelineConfig, tokenizer: Tokenizer, maxPositions: number): ModelConfig {
  const m = config.model;
  return {
    modelType: 'llama', vocabSize: tokenizer.vocabSize, hiddenSize: m.hiddenSize, intermediateSize: m.intermediateSize,
    numHeads: m.numHeads, numKvHeads: m.numKvHeads, headDim: m.headDim, numLayers: m.numLayers, rmsNormEps: 1e-5,
    ropeTheta: m.ropeTheta, maxPositions, tieEmbeddings: true, qkvBias: false, oBias: false,
    bosTokenId: tokenizer.bosId, eosTokenId: tokenizer.eosId, padTokenId: tokenizer.padId,
  };
}

/** BOS prompt response [EOS], with the loss on the response (and EOS) only: a demonstration may lack EOS. */
export function encodeDemonstration(tokenizer: Tokenizer, demo: Demonstration): EncodedExample {
  const prompt = promptTokens(tokenizer, demo.prompt);
  const response = responseTokens(tokenizer, demo.response, demo.ended);
  const ids = Int32Array.from([...prompt, ...response]);
  const lossMask = new Uint8Array(ids.length);
  lossMask.fill(1, prompt.length - 1, ids.length - 1); // position t predicts token t + 1
  return { ids, lossMask };
}

function referenceCompletion(tokenizer: Tokenizer, demo: Demonstration): ReferenceCompletion {
  return { prompt: promptTokens(tokenizer, demo.prompt), completion: responseTokens(tokenizer, demo.response, demo.ended) };
}

/**
 * For each prompt: samplesPerPrompt SFT completions at temperature 1, the first K distinct (by text and
 * ended flag), ranked by the noisy labeler (score + N(0, noise²) per completion).
 */
function rankedGroups(world: World, sft: TransformerModel, tokenizer: Tokenizer, prompts: PromptSample[], config: PipelineConfig,
  sampleSeed: number, rng: Rng, progress: boolean, label: string): { groups: RankedGroup[]; tokensPerSecond: number } {
  const perPrompt = config.rm.samplesPerPrompt;
  const promptsPerCall = Math.max(1, Math.floor(512 / perPrompt));
  const bar = createProgress({ label, total: prompts.length, unit: 'prompts', silent: !progress });
  const groups: RankedGroup[] = [];
  let tokens = 0;
  const t0 = performance.now();
  for (let start = 0; start < prompts.length; start += promptsPerCall) {
    const chunk = prompts.slice(start, start + promptsPerCall);
    const repeated = chunk.flatMap((p) => new Array<PromptSample>(perPrompt).fill(p));
    // One call per chunk, each with its own seed: the whole set is one batch, so the draws never depend on the chunking.
    const samples = sampleResponses(sft, tokenizer, repeated, { seed: sampleSeed + start, maxNewTokens: world.responseBudget, batchSize: repeated.length });
    for (const s of samples) tokens += s.tokens.length;
    chunk.forEach((_, i) => groups.push(rankSamples(world, rng, selectDistinct(samples.slice(i * perPrompt, (i + 1) * perPrompt), config.rm.k))));
    bar.update(Math.min(prompts.length, start + promptsPerCall));
  }
  bar.stop();
  return { groups, tokensPerSecond: tokens / ((performance.now() - t0) / 1e3) };
}

function toRewardExample(group: RankedGroup): RewardExample {
  const ranks = new Array<number>(group.responses.length);
  group.ranking.forEach((index, position) => {
    ranks[index] = position;
  });
  return { prompt: group.prompt, completions: group.responses, ranks };
}

/** results.json's figures, and a few judged samples per policy for the report. */
interface Evaluation {
  results: PipelineResults;
  judged: Partial<Record<PolicyName, JudgedSample[]>>;
}

function evaluateAll(world: World, tokenizer: Tokenizer, sft: TransformerModel, data: Datasets, config: PipelineConfig, seed: number, device: string,
  options: PipelineOptions, rmEvalGroups: RankedGroup[], finalDir: (stage: string, role: string) => string, progress: boolean): Evaluation {
  const budget = world.responseBudget;
  const load = (stage: string) => TransformerModel.fromPretrained(finalDir(stage, 'policy'), POLICY_HEADS, { device, trainable: false, suppressTokens: tokenizer.neverSample });
  const policies: Record<PolicyName, string> = { base: 'pretrain', sft: 'sft', ppo: 'ppo', ppoPtx: 'ppo-ptx' };
  const evalSeed = seed + 200;
  const sftIndependent = sampleResponses(sft, tokenizer, data.evalPrompts, { seed: evalSeed + 99, maxNewTokens: budget });
  const bar = createProgress({ label: 'eval', total: POLICY_NAMES.length + 1, unit: 'policies', silent: !progress });
  const evaluations = {} as PipelineResults['policies'];
  const judged: Evaluation['judged'] = {};
  let params = 0;
  for (const name of POLICY_NAMES) {
    const model = name === 'sft' ? sft : load(policies[name]);
    params = model.layout.totalNumel;
    try {
      const samples: Sample[] = sampleResponses(model, tokenizer, data.evalPrompts, { seed: evalSeed, maxNewTokens: budget });
      evaluations[name] = evaluatePolicy(world, samples, {
        sftSamples: sftIndependent,
        klVsSft: klToReference(sft, samples),
        pretrainLoss: pretrainingLoss(model, tokenizer, data.pretrainEval),
      });
      judged[name] = judgeSamples(world, samples.slice(0, 8));
    } finally {
      if (model !== sft) model.dispose();
    }
    bar.tick();
  }
  const rm = TransformerModel.fromPretrained(finalDir('rm', 'reward'), SCORE_HEADS, { device, trainable: false });
  let accuracy;
  try {
    accuracy = rmAccuracy((prompts, responses) => scoreSequences(rm, prompts.map((p, i) => concatTokens(p, responses[i])), 4096), rmEvalGroups);
  } finally {
    rm.dispose();
  }
  bar.tick();
  bar.stop();
  const results: PipelineResults = {
    world: world.name, seed, params, rmAccuracy: accuracy, policies: evaluations, seconds: {}, tokensPerSecond: {}, totalSeconds: 0,
    config: { ...config, device: options.device ?? 'cpu' },
  };
  return { results, judged };
}

function summarize(result: RunResult): string {
  const pick = (m: Record<string, number>, keys: string[]) =>
    keys.filter((k) => m[k] !== undefined).map((k) => `${k} ${Number(m[k]).toPrecision(4)}`);
  return [...pick(result.lastMetrics, ['loss', 'accuracy', 'reward', 'kl']), ...pick(result.evalMetrics, ['evalLoss', 'evalAccuracy'])].join(', ');
}
