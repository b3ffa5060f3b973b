// A model's weights on disk as Hugging Face expects them: dir/config.json + dir/model.safetensors
// (one file, HF Llama tensor names, metadata format "pt"), so transformers loads what Talaria saves and
// Talaria loads HF checkpoints of the Llama, Qwen2 and Mistral families. Loading maps each tensor into
// the flat parameter buffer of lib/nn/params.ts and refuses anything that does not match the layout,
// except the tensors HF files carry that this model has no use for (see ignorable()).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { talariaError } from '../native.js';
import { type ModelConfig, modelConfigToHf, readModelConfig, validateModelConfig } from './config.js';
import { makeDirectoryChecked, writeFileAtomicChecked } from './files.js';
import { type ModelHeads, type ParamEntry, type ParamLayout, parameterLayout, validateHeads } from './params.js';
import { openSafetensors, writeSafetensors } from './safetensors.js';

export const MODEL_WEIGHTS_FILE = 'model.safetensors';
export const MODEL_CONFIG_FILE = 'config.json';
const SHARDED_INDEX_FILE = 'model.safetensors.index.json';

export interface LoadModelOptions {
  /** Use this config instead of reading dir/config.json. */
  config?: ModelConfig;
  /**
   * heads.score but the file has no score.weight/score.bias (a reward model initialised from an SFT
   * checkpoint): leave them zero and list them in `missing` instead of failing.
   */
  initMissingScore?: boolean;
}

export interface LoadedModel {
  config: ModelConfig;
  layout: ParamLayout;
  /** Fresh buffer of layout.totalNumel elements; padding is zero. */
  params: Float32Array;
  /** Layout entries the file did not provide and that were left zero (only with initMissingScore). */
  missing: string[];
}

/**
 * Saves `params` (laid out by `layout`) as dir/model.safetensors and `config` as dir/config.json, each
 * replaced atomically; creates `dir` when missing. dtype 'BF16' halves the file (rounded to nearest-even).
 * A layout with a score head is saved as an HF *ForSequenceClassification (one label).
 *
 * @throws TalariaError ERR_TALARIA_SHAPE when params does not have layout.totalNumel elements,
 * ERR_TALARIA_IO when a file cannot be written.
 * @example
 * saveModelFiles('checkpoints/sft', config, layout, params, { dtype: 'BF16' });
 */
export function saveModelFiles(dir: string, config: ModelConfig, layout: ParamLayout, params: Float32Array,
  options: { dtype?: 'F32' | 'BF16' } = {}): void {
  if (typeof dir !== 'string' || dir === '') throw talariaError('ERR_TALARIA_DTYPE', `dir: expected a non-empty string, got ${String(dir)}`);
  validateModelConfig(config);
  checkLayoutMatches(layout, config);
  if (!(params instanceof Float32Array))
    throw talariaError('ERR_TALARIA_DTYPE', `params: expected a Float32Array, got ${(params as object)?.constructor?.name ?? String(params)}`);
  if (params.length !== layout.totalNumel)
    throw talariaError('ERR_TALARIA_SHAPE', `params: expected layout.totalNumel (${layout.totalNumel}) elements, got ${params.length}`);
  const hfConfig = modelConfigToHf(config, { torchDtype: options.dtype === 'BF16' ? 'bfloat16' : 'float32' });
  if (layout.byName.has('score.weight')) {
    // A reward model: transformers' *ForSequenceClassification with one label has the same score.weight
    // (it has no score.bias, which it skips with a warning).
    hfConfig.architectures = [String((hfConfig.architectures as string[])[0]).replace('ForCausalLM', 'ForSequenceClassification')];
    hfConfig.id2label = { 0: 'LABEL_0' };
    hfConfig.label2id = { LABEL_0: 0 };
  }
  const tensors = layout.entries.map(({ name, shape, offset, numel }) => ({ name, shape, data: params.subarray(offset, offset + numel) }));
  makeDirectoryChecked(dir);
  // transformers refuses safetensors files whose metadata lacks format "pt".
  writeSafetensors(join(dir, MODEL_WEIGHTS_FILE), tensors, { dtype: options.dtype, metadata: { format: 'pt' } });
  writeFileAtomicChecked(join(dir, MODEL_CONFIG_FILE), `${JSON.stringify(hfConfig, null, 2)}\n`);
}

/** Throws unless `layout` is the layout `config` gives (with the heads the layout itself shows). */
function checkLayoutMatches(layout: ParamLayout, config: ModelConfig): void {
  if (typeof layout !== 'object' || layout === null || !Array.isArray(layout.entries) || !(layout.byName instanceof Map))
    throw talariaError('ERR_TALARIA_DTYPE', 'layout: expected a ParamLayout from parameterLayout()');
  // A tied model's layout is the same with or without the LM head, so either reading of it matches.
  const heads = { lm: config.tieEmbeddings || layout.byName.has('lm_head.weight'), score: layout.byName.has('score.weight') };
  const expected = parameterLayout(config, heads);
  const key = (e: ParamEntry | undefined) => (e === undefined ? 'nothing' : `${e.name} [${e.shape.join(', ')}] at ${e.offset}`);
  const count = Math.max(expected.entries.length, layout.entries.length);
  for (let i = 0; i < count; i++)
    if (key(expected.entries[i]) !== key(layout.entries[i]))
      throw talariaError('ERR_TALARIA_SHAPE', `layout: does not match config: entry ${i} is ${key(layout.entries[i])}, expected ${key(expected.entries[i])}`);
  if (layout.totalNumel !== expected.totalNumel)
    throw talariaError('ERR_TALARIA_SHAPE', `layout: totalNumel is ${layout.totalNumel}, expected ${expected.totalNumel} for this config`);
}

/** Tensors a checkpoint may carry that this model does not use. */
function ignorable(name: string, config: ModelConfig, heads: ModelHeads): boolean {
  if (/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name)) return true; // recomputed from rope_theta
  if (name === 'lm_head.weight') return config.tieEmbeddings || !heads.lm; // a tied copy, or a policy loaded as a reward model
  if (name.startsWith('score.')) return !heads.score;
  return false;
}

/**
 * Loads dir/model.safetensors (and dir/config.json unless options.config is given) into a fresh flat
 * parameter buffer laid out by parameterLayout(config, heads).
 *
 * @throws TalariaError ERR_TALARIA_FORMAT naming the tensor when one is missing, misshaped or
 * unexpected; ERR_TALARIA_IO when a file cannot be read.
 * @example
 * const { config, layout, params } = loadModelFiles('SmolLM-135M', { lm: true, score: false });
 * const rm = loadModelFiles('checkpoints/sft', { lm: false, score: true }, { initMissingScore: true });
 * rm.missing; // ['score.weight', 'score.bias']
 */
export function loadModelFiles(dir: string, heads: ModelHeads, options: LoadModelOptions = {}): LoadedModel {
  validateHeads(heads);
  if (typeof dir !== 'string' || dir === '') throw talariaError('ERR_TALARIA_DTYPE', `dir: expected a non-empty string, got ${String(dir)}`);
  if (options.initMissingScore !== undefined && typeof options.initMissingScore !== 'boolean')
    throw talariaError('ERR_TALARIA_DTYPE', `initMissingScore: expected a boolean, got ${String(options.initMissingScore)}`);
  const config = options.config ?? readModelConfig(join(dir, MODEL_CONFIG_FILE));
  const layout = parameterLayout(config, heads);
  const weightsPath = join(dir, MODEL_WEIGHTS_FILE);
  if (!existsSync(weightsPath) && existsSync(join(dir, SHARDED_INDEX_FILE)))
    throw talariaError('ERR_TALARIA_FORMAT', `${dir}: holds a sharded checkpoint (${SHARDED_INDEX_FILE}); only a single ${MODEL_WEIGHTS_FILE} is supported`);
  const file = openSafetensors(weightsPath);
  try {
    const fail = (message: string): never => {
      throw talariaError('ERR_TALARIA_FORMAT', `${file.path}: ${message}`);
    };
    // Match names and shapes against the header first, so a wrong file fails before any data is read.
    const missing: string[] = [];
    for (const { name, shape } of layout.entries) {
      const tensor = file.tensors.get(name);
      if (tensor === undefined) {
        if (heads.score && options.initMissingScore && name.startsWith('score.')) missing.push(name);
        else fail(`missing tensor ${name}`);
      } else if (tensor.shape.length !== shape.length || tensor.shape.some((n, i) => n !== shape[i])) {
        fail(`tensor ${name} has shape [${tensor.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
    }
    for (const name of file.tensors.keys())
      if (!layout.byName.has(name) && !ignorable(name, config, heads))
        fail(`unexpected tensor ${name} (not part of this ${config.modelType} model with heads lm=${heads.lm}, score=${heads.score})`);

    // Each tensor goes straight into its slice of the flat buffer; padding and missing score stay zero.
    const params = new Float32Array(layout.totalNumel);
    for (const { name, offset, numel } of layout.entries)
      if (file.tensors.has(name)) file.read(name, params.subarray(offset, offset + numel));
    return { config, layout, params, missing };
  } finally {
    file.close();
  }
}
