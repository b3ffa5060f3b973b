// Tiny model configs and the bridge from the float64 reference's parameters to the engine's flat layout.
import type { ModelConfig } from '../../lib/nn/config.js';
import type { TransformerModel } from '../../lib/nn/model.js';
import type { RefParameters } from '../reference/transformer.js';

export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    modelType: 'llama',
    vocabSize: 41,
    hiddenSize: 48,
    intermediateSize: 71,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    numLayers: 2,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositions: 64,
    tieEmbeddings: false,
    qkvBias: false,
    oBias: false,
    ...overrides,
  };
}

/** The reference's parameters in the engine's flat layout (f32), and the same values back in f64. */
export function flatParameters(model: TransformerModel, ref: RefParameters): { flat: Float32Array; ref64: RefParameters } {
  const flat = new Float32Array(model.layout.totalNumel);
  const ref64: RefParameters = new Map();
  for (const entry of model.layout.entries) {
    const values = ref.get(entry.name);
    if (!values) throw new Error(`reference has no ${entry.name}`);
    flat.set(values, entry.offset);
    ref64.set(entry.name, Float64Array.from(flat.subarray(entry.offset, entry.offset + entry.numel)));
  }
  return { flat, ref64 };
}

