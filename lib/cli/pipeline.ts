// `talaria pipeline [--world a|./my-world.mjs] [--config file.json] [--out dir] [--seed n] [--backend cpu|cuda]
// [--quick] [--section.field value ...]`: InstructGPT in miniature with the embedded defaults (world A,
// the sizes of the PyTorch reference), a config file and flag overrides on top, in that order.
import { info, talariaError } from '../native.js';
import { pipelineConfigSchema, QUICK_OVERRIDES } from '../pipeline/config.js';
import { runPipeline } from '../pipeline/run.js';
import { loadWorld } from '../world/load.js';
import { applyOverrides, parseFlags, readConfigFile, validateConfig } from './config.js';

const FLAGS = new Set(['world', 'config', 'out', 'seed', 'backend', 'quick', 'help']);

const HELP = `usage: talaria pipeline [options]

  --world a|<module>   the world: built-in 'a' (default) or a JS module exporting one (see README)
  --config file.json   overrides of the embedded config (model, pretrain, sft, rm, ppo, eval)
  --out dir            output folder (default talaria-pipeline); a folder with finished stages resumes
  --seed n             seed of every dataset and stage (default 0)
  --backend cpu|cuda   default cpu
  --quick              a smoke-size run (a few minutes on 2 cores)
  --<section>.<field> value   any config field, e.g. --ppo.iterations 20`;

/** Deep-merges plain objects (b wins). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const prev = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? merge(prev as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

export async function pipelineCommand(argv: string[]): Promise<number> {
  const values = parseFlags('pipeline', argv, new Set(['quick', 'help']));
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const overrides: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (FLAGS.has(key)) continue;
    if (!key.includes('.')) throw talariaError('ERR_TALARIA_RANGE', `pipeline: unknown option --${key}\n${HELP}`);
    overrides[key] = String(value);
  }
  const flag = (name: string): string | undefined => {
    const v = values[name];
    return v === undefined ? undefined : String(v);
  };
  const seedText = flag('seed') ?? '0';
  const seed = Number(seedText);
  if (!Number.isSafeInteger(seed) || seed < 0) throw talariaError('ERR_TALARIA_RANGE', `pipeline: --seed must be an integer >= 0, got ${seedText}`);
  const backend = flag('backend') ?? 'cpu';
  if (backend !== 'cpu' && !/^cuda(:\d+)?$/.test(backend)) throw talariaError('ERR_TALARIA_RANGE', `pipeline: --backend must be cpu or cuda[:N], got ${backend}`);
  if (backend !== 'cpu' && info().devices.length === 0) throw talariaError('ERR_TALARIA_DEVICE', `pipeline: --backend ${backend}, but this machine has no CUDA device`);
  const device = backend === 'cuda' ? 'cuda:0' : backend;

  let raw: Record<string, unknown> = values.quick ? structuredClone(QUICK_OVERRIDES) as Record<string, unknown> : {};
  const configPath = flag('config');
  if (configPath) raw = merge(raw, readConfigFile(configPath));
  raw = applyOverrides(raw, overrides);
  const config = validateConfig(pipelineConfigSchema, raw, configPath ?? 'pipeline config');
  const world = await loadWorld(flag('world'));
  const outDir = flag('out') ?? 'talaria-pipeline';
  console.log(`talaria pipeline: world ${world.name}, seed ${seed}, ${device}${values.quick ? ', quick' : ''}, output in ${outDir}`);
  const results = await runPipeline({ world, config, outDir, seed, device });
  return results ? 0 : 130;
}
