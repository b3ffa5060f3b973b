// Where each parameter lives in the one flat f32 buffer that holds the whole model.
//
// The optimizer runs once over the buffer, so the layout groups what it treats alike: every tensor of
// two or more dimensions (weight-decayed) first, in model order, over [0, decayNumel); then the norms
// and biases (no decay) up to totalNumel. Each entry starts on a 16-element (64-byte) boundary so SIMD
// and tensor-core loads of any tensor are aligned. The one exception: mlp.up_proj follows
// mlp.gate_proj with no gap, so the engine computes both projections with one GEMM over the [2F, d]
// block. Names and shapes are Hugging Face Llama's, so checkpoints map one-to-one.
import { talariaError } from '../native.js';
import { type ModelConfig, validateModelConfig } from './config.js';

/** Which output heads the model carries: the language-model head, and/or a scalar reward head. */
export interface ModelHeads {
  lm: boolean;
  score: boolean;
}

export interface ParamEntry {
  name: string;
  shape: number[];
  /** First element in the flat buffer (a multiple of 16, except mlp.up_proj: right after gate_proj). */
  offset: number;
  numel: number;
  /** AdamW weight decay applies (every tensor of rank >= 2). */
  decay: boolean;
}

export interface ParamLayout {
  entries: ParamEntry[];
  byName: Map<string, ParamEntry>;
  /** Length of the flat buffer, padding included (a multiple of 16). */
  totalNumel: number;
  /** Decayed entries occupy [0, decayNumel) (a multiple of 16); the rest [decayNumel, totalNumel). */
  decayNumel: number;
}

/** Elements per 64 bytes of f32. */
export const PARAM_ALIGNMENT = 16;

const alignUp = (n: number) => Math.ceil(n / PARAM_ALIGNMENT) * PARAM_ALIGNMENT;

/** Throws ERR_TALARIA_DTYPE naming the field unless `heads` is { lm: boolean, score: boolean }. */
export function validateHeads(heads: ModelHeads): void {
  if (typeof heads !== 'object' || heads === null)
    throw talariaError('ERR_TALARIA_DTYPE', `heads: expected { lm: boolean, score: boolean }, got ${String(heads)}`);
  for (const key of ['lm', 'score'] as const)
    if (typeof heads[key] !== 'boolean')
      throw talariaError('ERR_TALARIA_DTYPE', `heads.${key}: expected a boolean, got ${JSON.stringify(heads[key]) ?? String(heads[key])}`);
}

/** Names and shapes in model (Hugging Face state-dict) order, after checking both arguments. */
function parameterShapes(config: ModelConfig, heads: ModelHeads): { name: string; shape: number[] }[] {
  validateModelConfig(config);
  validateHeads(heads);
  const { vocabSize: V, hiddenSize: d, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: Dh } = config;
  const list: { name: string; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', shape: [V, d] }];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    list.push({ name: `${p}.input_layernorm.weight`, shape: [d] });
    for (const [proj, rows] of [['q_proj', H * Dh], ['k_proj', Hkv * Dh], ['v_proj', Hkv * Dh]] as const) {
      list.push({ name: `${p}.self_attn.${proj}.weight`, shape: [rows, d] });
      if (config.qkvBias) list.push({ name: `${p}.self_attn.${proj}.bias`, shape: [rows] });
    }
    list.push({ name: `${p}.self_attn.o_proj.weight`, shape: [d, H * Dh] });
    if (config.oBias) list.push({ name: `${p}.self_attn.o_proj.bias`, shape: [d] });
    list.push({ name: `${p}.post_attention_layernorm.weight`, shape: [d] });
    list.push({ name: `${p}.mlp.gate_proj.weight`, shape: [F, d] });
    list.push({ name: `${p}.mlp.up_proj.weight`, shape: [F, d] });
    list.push({ name: `${p}.mlp.down_proj.weight`, shape: [d, F] });
  }
  list.push({ name: 'model.norm.weight', shape: [d] });
  if (heads.lm && !config.tieEmbeddings) list.push({ name: 'lm_head.weight', shape: [V, d] });
  if (heads.score) {
    list.push({ name: 'score.weight', shape: [1, d] });
    list.push({ name: 'score.bias', shape: [1] });
  }
  return list;
}

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The flat-buffer layout of a model's parameters (see the file comment for the rules).
 *
 * @example
 * const layout = parameterLayout(config, { lm: true, score: false });
 * const params = new Float32Array(layout.totalNumel);
 * const q0 = layout.byName.get('model.layers.0.self_attn.q_proj.weight')!;
 * params.subarray(q0.offset, q0.offset + q0.numel); // layer 0's W_q, row-major [H*Dh, d]
 */
export function parameterLayout(config: ModelConfig, heads: ModelHeads): ParamLayout {
  const shapes = parameterShapes(config, heads);
  const entries: ParamEntry[] = [];
  let end = 0;
  const place = (name: string, shape: number[], decay: boolean) => {
    const numel = product(shape);
    const offset = name.endsWith('.mlp.up_proj.weight') ? end : alignUp(end);
    entries.push({ name, shape, offset, numel, decay });
    end = offset + numel;
  };
  for (const { name, shape } of shapes) if (shape.length >= 2) place(name, shape, true);
  const decayNumel = alignUp(end);
  end = decayNumel;
  for (const { name, shape } of shapes) if (shape.length < 2) place(name, shape, false);
  return { entries, byName: new Map(entries.map((e) => [e.name, e])), totalNumel: alignUp(end), decayNumel };
}

/**
 * The number of trainable parameters (padding excluded): the figure papers quote, e.g. 134,515,008
 * for SmolLM-135M with tied embeddings.
 *
 * @example
 * parameterCount(config, { lm: true, score: false });
 */
export function parameterCount(config: ModelConfig, heads: ModelHeads): number {
  return parameterShapes(config, heads).reduce((sum, { shape }) => sum + product(shape), 0);
}
