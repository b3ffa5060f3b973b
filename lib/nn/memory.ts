// What a model needs in memory before it runs: weights, gradients, AdamW moments, the EMA copy and the
// activations the forward pass keeps for backward (counted from exactly what lib/nn/model.ts saves).
import { talariaError } from '../native.js';
import type { ModelConfig } from './config.js';
import { type ModelHeads, parameterLayout } from './params.js';

export interface MemoryOptions {
  /** Tokens in one micro-batch (N of the packed batch). */
  tokens: number;
  /** Gradients, optimizer state and saved activations (default true); false: a frozen model's forward. */
  training?: boolean;
  /** Activation recomputation (keeps only each layer's input). Default false. */
  recompute?: boolean;
  /** Keep a weight EMA copy. Default false. */
  ema?: boolean;
}

export interface MemoryEstimate {
  parameters: number;
  /** Bytes, f32 everywhere. */
  weights: number;
  gradients: number;
  optimizer: number;
  ema: number;
  /** Saved for backward (training) or the largest live set of one layer (inference). */
  activations: number;
  /** The LM head's logits [N, V] (its gradient is written over it in place). */
  logits: number;
  total: number;
}

const F32 = 4;

/**
 * An estimate of the bytes a configuration needs on its device, so users can see what fits.
 *
 * @example
 * const est = estimateMemory(config, { lm: true, score: false }, { tokens: 4096 });
 * console.log((est.total / 2 ** 30).toFixed(2), 'GiB');
 */
export function estimateMemory(config: ModelConfig, heads: ModelHeads, options: MemoryOptions): MemoryEstimate {
  const { tokens } = options;
  if (!Number.isInteger(tokens) || tokens < 1) throw talariaError('ERR_TALARIA_RANGE', `tokens: expected an integer >= 1, got ${tokens}`);
  const training = options.training ?? true;
  const layout = parameterLayout(config, heads);
  const { hiddenSize: d, intermediateSize: f, numHeads: h, numKvHeads: hkv, headDim: dh, numLayers: layers } = config;
  // Per token, one layer's saved tensors: a, q, k, v, o, lse, xMid, m, gateUp, h and two rstd.
  const layerFloats = 3 * d + 2 * h * dh + 2 * hkv * dh + h + 3 * f + 2;
  // Inference holds one layer's tensors at a time plus the residual stream.
  const perToken = training
    ? options.recompute
      ? (layers + 1) * d + layerFloats + d + 1 // layer inputs, one rebuilt layer, final norm
      : (layers + 1) * d + layers * layerFloats + d + 1
    : 2 * d + layerFloats;
  const weights = layout.totalNumel * F32;
  const estimate = {
    parameters: layout.totalNumel,
    weights,
    gradients: training ? weights : 0,
    optimizer: training ? 2 * weights : 0,
    ema: options.ema ? weights : 0,
    activations: tokens * perToken * F32,
    logits: heads.lm ? tokens * config.vocabSize * F32 : 0,
    total: 0,
  };
  estimate.total = estimate.weights + estimate.gradients + estimate.optimizer + estimate.ema + estimate.activations + estimate.logits;
  return estimate;
}
