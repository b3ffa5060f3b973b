// The transformer's hyperparameters, read from and written to Hugging Face config.json fields, so a
// checkpoint moves between Talaria and transformers unchanged. One zod schema checks each field's type
// and range; cross-field rules (GQA divisibility, the head sizes the attention kernels support, token
// ids inside the vocabulary) run after it. Every failure is one ERR_TALARIA_FORMAT naming the file, the
// field, what was expected and what was found. Unknown fields are ignored: real configs carry dozens.
import { z } from 'zod';
import { talariaError } from '../native.js';
import { readJsonChecked } from './files.js';

export type ModelType = 'llama' | 'qwen2' | 'mistral';

export interface ModelConfig {
  /** 'llama' | 'qwen2' | 'mistral' (a config without model_type is read as 'llama'). */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  numLayers: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  tieEmbeddings: boolean;
  /** q_proj, k_proj and v_proj carry a bias (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama with attention_bias). */
  oBias: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

/** The head sizes the attention kernels are compiled for. */
export const SUPPORTED_HEAD_DIMS: readonly number[] = [32, 64, 128];

const MODEL_TYPES: readonly ModelType[] = ['llama', 'qwen2', 'mistral'];
const ARCHITECTURES: Record<ModelType, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  mistral: 'MistralForCausalLM',
};
const MAX_VOCAB = 2 ** 31 - 1; // token ids are i32

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

// zod numbers reject NaN and ±Infinity already; .nullish() because HF writes `null` for "use the default".
const hfConfigSchema = z.object({
  model_type: z.enum(MODEL_TYPES as [ModelType, ...ModelType[]]).optional(),
  vocab_size: positiveInt.max(MAX_VOCAB),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  num_hidden_layers: positiveInt,
  head_dim: positiveInt.nullish(),
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().gt(1).nullish(),
  rope_scaling: z.null().optional(),
  max_position_embeddings: positiveInt,
  tie_word_embeddings: z.boolean().nullish(),
  attention_bias: z.boolean().nullish(),
  mlp_bias: z.literal(false).nullish(),
  hidden_act: z.literal('silu').nullish(),
  sliding_window: positiveInt.nullish(),
  use_sliding_window: z.boolean().nullish(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId).min(1)]).nullish(),
  pad_token_id: tokenId.nullish(),
});
type HfConfig = z.infer<typeof hfConfigSchema>;

/** What each field must be, for the messages of the schema's own checks. */
const EXPECTED: Record<keyof HfConfig, string> = {
  model_type: `one of ${MODEL_TYPES.map((t) => `'${t}'`).join(', ')} (or absent, meaning 'llama')`,
  vocab_size: `a positive integer at most 2^31-1 (${MAX_VOCAB})`,
  hidden_size: 'a positive integer',
  intermediate_size: 'a positive integer',
  num_attention_heads: 'a positive integer',
  num_key_value_heads: 'a positive integer (or absent, meaning num_attention_heads)',
  num_hidden_layers: 'a positive integer',
  head_dim: 'a positive integer (or absent, meaning hidden_size / num_attention_heads)',
  rms_norm_eps: 'a finite number > 0',
  rope_theta: 'a finite number > 1',
  rope_scaling: 'null or absent: RoPE scaling (linear, dynamic, yarn, llama3) is not supported',
  max_position_embeddings: 'a positive integer',
  tie_word_embeddings: 'a boolean',
  attention_bias: 'a boolean',
  mlp_bias: 'false or absent: MLP biases are not supported',
  hidden_act: "'silu' (the only activation the engine implements)",
  sliding_window: 'a positive integer or null',
  use_sliding_window: 'a boolean',
  bos_token_id: 'a non-negative integer token id',
  eos_token_id: 'a non-negative integer token id or a non-empty array of them',
  pad_token_id: 'a non-negative integer token id',
};

function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (typeof value === 'number') return String(value); // JSON.stringify would turn NaN into null
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

function formatError(source: string, message: string): Error {
  return talariaError('ERR_TALARIA_FORMAT', `${source}: ${message}`);
}

/**
 * Model hyperparameters from the fields of a Hugging Face config.json (Llama, Qwen2 and Mistral
 * families). Unknown fields are ignored.
 *
 * @throws TalariaError ERR_TALARIA_FORMAT naming `source` and the field when a value is missing, out
 * of range or unsupported.
 * @example
 * const config = parseModelConfig(JSON.parse(text), 'SmolLM-135M/config.json');
 * config.numKvHeads; // 3
 */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw formatError(source, `expected a JSON object of config fields, got ${describe(json)}`);
  const parsed = hfConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue.path[0]) as keyof HfConfig;
    const value = (json as Record<string, unknown>)[field];
    throw formatError(source, `${field} must be ${EXPECTED[field]}, got ${describe(value)}`);
  }
  const hf = parsed.data;
  const fail = (message: string): never => {
    throw formatError(source, message);
  };

  const modelType: ModelType = hf.model_type ?? 'llama';
  const numHeads = hf.num_attention_heads;
  const numKvHeads = hf.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0)
    fail(`num_key_value_heads must divide num_attention_heads (${numHeads}), got ${numKvHeads}`);
  let headDim = hf.head_dim;
  if (headDim == null) {
    if (hf.hidden_size % numHeads !== 0)
      fail(`hidden_size must be a multiple of num_attention_heads (${numHeads}) when head_dim is absent, got ${hf.hidden_size}`);
    headDim = hf.hidden_size / numHeads;
  }
  if (!SUPPORTED_HEAD_DIMS.includes(headDim))
    fail(`head_dim must be one of ${SUPPORTED_HEAD_DIMS.join(', ')} (the attention kernels support only these), got ${headDim}` +
      (hf.head_dim == null ? ` (hidden_size ${hf.hidden_size} / num_attention_heads ${numHeads})` : ''));
  // Sliding-window attention would need a windowed kernel; a window as long as the context is no window.
  if (modelType === 'mistral' && hf.sliding_window != null && hf.sliding_window < hf.max_position_embeddings)
    fail(`sliding_window must be null or at least max_position_embeddings (${hf.max_position_embeddings}): sliding-window attention is not supported, got ${hf.sliding_window}`);
  if (modelType === 'qwen2' && hf.use_sliding_window === true)
    fail('use_sliding_window must be false or absent: sliding-window attention is not supported, got true');

  const vocabSize = hf.vocab_size;
  const checkToken = (field: string, id: number | undefined | null) => {
    if (id != null && id >= vocabSize) fail(`${field} must be below vocab_size (${vocabSize}), got ${id}`);
  };
  checkToken('bos_token_id', hf.bos_token_id);
  checkToken('pad_token_id', hf.pad_token_id);
  for (const id of [hf.eos_token_id ?? []].flat()) checkToken('eos_token_id', id);

  // Qwen2 always has q/k/v biases and never an o_proj bias; Llama's attention_bias switches all four.
  const llamaBias = hf.attention_bias ?? false;
  const config: ModelConfig = {
    modelType,
    vocabSize,
    hiddenSize: hf.hidden_size,
    intermediateSize: hf.intermediate_size,
    numHeads,
    numKvHeads,
    headDim,
    numLayers: hf.num_hidden_layers,
    rmsNormEps: hf.rms_norm_eps ?? 1e-6,
    ropeTheta: hf.rope_theta ?? 10000,
    maxPositions: hf.max_position_embeddings,
    tieEmbeddings: hf.tie_word_embeddings ?? false,
    qkvBias: modelType === 'qwen2' ? true : llamaBias,
    oBias: modelType === 'qwen2' ? false : llamaBias,
  };
  if (hf.bos_token_id != null) config.bosTokenId = hf.bos_token_id;
  if (hf.eos_token_id != null) config.eosTokenId = hf.eos_token_id;
  if (hf.pad_token_id != null) config.padTokenId = hf.pad_token_id;
  return config;
}

/**
 * The Hugging Face config.json fields of `config` (plus `architectures`, `model_type`, `hidden_act`
 * and `torch_dtype`), such that parseModelConfig(modelConfigToHf(c)) equals c and transformers can
 * load the checkpoint.
 *
 * @throws TalariaError ERR_TALARIA_RANGE when the model type or its bias pattern has no HF equivalent.
 * @example
 * writeFileSync('out/config.json', JSON.stringify(modelConfigToHf(config), null, 2));
 */
export function modelConfigToHf(config: ModelConfig, options: { torchDtype?: 'float32' | 'bfloat16' } = {}): Record<string, unknown> {
  const torchDtype = options.torchDtype ?? 'float32';
  if (torchDtype !== 'float32' && torchDtype !== 'bfloat16')
    throw talariaError('ERR_TALARIA_RANGE', `torchDtype: expected 'float32' or 'bfloat16', got ${describe(torchDtype)}`);
  const modelType = config.modelType as ModelType;
  if (!MODEL_TYPES.includes(modelType))
    throw talariaError('ERR_TALARIA_RANGE', `config: modelType must be one of ${MODEL_TYPES.join(', ')}, got ${describe(config.modelType)}`);
  const hf: Record<string, unknown> = {
    architectures: [ARCHITECTURES[modelType]],
    model_type: modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    num_hidden_layers: config.numLayers,
    hidden_act: 'silu',
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    max_position_embeddings: config.maxPositions,
    tie_word_embeddings: config.tieEmbeddings,
    torch_dtype: torchDtype,
  };
  if (modelType === 'qwen2') {
    if (!config.qkvBias || config.oBias)
      throw talariaError('ERR_TALARIA_RANGE', `config: a qwen2 model has qkvBias true and oBias false, got qkvBias ${config.qkvBias}, oBias ${config.oBias}`);
  } else {
    if (config.qkvBias !== config.oBias)
      throw talariaError('ERR_TALARIA_RANGE', `config: a ${modelType} model has all attention biases or none (qkvBias must equal oBias), got qkvBias ${config.qkvBias}, oBias ${config.oBias}`);
    hf.attention_bias = config.qkvBias;
  }
  if (config.bosTokenId !== undefined) hf.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== undefined) hf.eos_token_id = config.eosTokenId;
  if (config.padTokenId !== undefined) hf.pad_token_id = config.padTokenId;
  return hf;
}

/** ModelConfig's name for each HF field, so errors about a config built in code name its own fields. */
const TS_FIELD: Record<string, keyof ModelConfig> = {
  model_type: 'modelType', vocab_size: 'vocabSize', hidden_size: 'hiddenSize', intermediate_size: 'intermediateSize',
  num_attention_heads: 'numHeads', num_key_value_heads: 'numKvHeads', head_dim: 'headDim', num_hidden_layers: 'numLayers',
  rms_norm_eps: 'rmsNormEps', rope_theta: 'ropeTheta', max_position_embeddings: 'maxPositions',
  tie_word_embeddings: 'tieEmbeddings', attention_bias: 'qkvBias', bos_token_id: 'bosTokenId', eos_token_id: 'eosTokenId',
  pad_token_id: 'padTokenId',
};

/**
 * Checks a ModelConfig built in code against the same rules as parseModelConfig (by way of its HF
 * form, so the rules live in one place).
 *
 * @throws TalariaError ERR_TALARIA_RANGE (ERR_TALARIA_DTYPE for a non-object) whose message names the
 * ModelConfig field, e.g. `config: numKvHeads must divide numHeads (12), got 5`.
 * @example
 * validateModelConfig({ ...config, numLayers: 4 });
 */
export function validateModelConfig(config: ModelConfig, what = 'config'): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw talariaError('ERR_TALARIA_DTYPE', `${what}: expected a ModelConfig object, got ${describe(config)}`);
  let roundTrip: ModelConfig;
  try {
    roundTrip = parseModelConfig(modelConfigToHf(config), what);
  } catch (error) {
    let message = (error as Error).message;
    for (const [hf, ts] of Object.entries(TS_FIELD)) message = message.replace(new RegExp(`\\b${hf}\\b`, 'g'), ts);
    throw talariaError('ERR_TALARIA_RANGE', message.startsWith(`${what}: `) ? message : `${what}: ${message}`);
  }
  // Anything the HF form cannot carry (a field of the wrong type that survived the mapping) differs here.
  for (const key of [...Object.values(TS_FIELD), 'oBias'] as (keyof ModelConfig)[])
    if (JSON.stringify(roundTrip[key]) !== JSON.stringify(config[key]))
      throw talariaError('ERR_TALARIA_RANGE', `${what}: ${key} is ${describe(config[key])}, which does not survive validation (read back as ${describe(roundTrip[key])})`);
}

/**
 * Reads and parses a Hugging Face config.json.
 *
 * @throws TalariaError ERR_TALARIA_IO when the file cannot be read, ERR_TALARIA_FORMAT (naming the
 * path) when it is not JSON or a field is invalid.
 * @example
 * const config = readModelConfig('checkpoints/sft/config.json');
 */
export function readModelConfig(path: string): ModelConfig {
  return parseModelConfig(readJsonChecked(path), path);
}
