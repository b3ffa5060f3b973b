import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ModelConfig, modelConfigToHf, parseModelConfig, readModelConfig, validateModelConfig } from '../lib/index.js';
import { expectTalariaError, expectThrows, thrownBy } from './helpers/assert.js';

// HuggingFaceTB/SmolLM-135M's config.json, as published (extra fields included on purpose).
const smolLm = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.02,
  intermediate_size: 1536,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
  transformers_version: '4.40.1',
  use_cache: true,
  vocab_size: 49152,
};

// Qwen/Qwen2-0.5B's config.json, as published.
const qwen2 = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const FORMAT = 'ERR_TALARIA_FORMAT';

describe('parseModelConfig', () => {
  it('reads SmolLM-135M (Llama, GQA 9/3, tied)', () => {
    expect(parseModelConfig(smolLm)).toEqual({
      modelType: 'llama', vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHeads: 9, numKvHeads: 3,
      headDim: 64, numLayers: 30, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 2048, tieEmbeddings: true,
      qkvBias: false, oBias: false, bosTokenId: 0, eosTokenId: 0,
    } satisfies ModelConfig);
  });

  it('reads Qwen2-0.5B (q/k/v biases, no o_proj bias, full-length window)', () => {
    expect(parseModelConfig(qwen2)).toEqual({
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numHeads: 14, numKvHeads: 2,
      headDim: 64, numLayers: 24, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 131072, tieEmbeddings: true,
      qkvBias: true, oBias: false, bosTokenId: 151643, eosTokenId: 151643,
    } satisfies ModelConfig);
  });

  it('applies the HF defaults for absent (or null) optional fields', () => {
    const minimal = { hidden_size: 256, intermediate_size: 688, num_attention_heads: 4, num_hidden_layers: 3, vocab_size: 1000, max_position_embeddings: 512 };
    const config = parseModelConfig({ ...minimal, num_key_value_heads: null, head_dim: null, pad_token_id: null });
    expect(config).toEqual({
      modelType: 'llama', vocabSize: 1000, hiddenSize: 256, intermediateSize: 688, numHeads: 4, numKvHeads: 4, headDim: 64,
      numLayers: 3, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 512, tieEmbeddings: false, qkvBias: false, oBias: false,
    });
    expect(parseModelConfig(minimal)).toEqual(config);
  });

  it('takes head_dim from the file when given, and attention_bias sets every Llama bias', () => {
    const config = parseModelConfig({ ...smolLm, head_dim: 128, attention_bias: true, eos_token_id: [0, 2], pad_token_id: 1 });
    expect([config.headDim, config.qkvBias, config.oBias, config.eosTokenId, config.padTokenId]).toEqual([128, true, true, [0, 2], 1]);
    expect(parseModelConfig({ ...qwen2, attention_bias: true }).oBias).toBe(false); // qwen2 ignores the Llama flag
    expect(parseModelConfig({ ...smolLm, model_type: 'mistral', sliding_window: null }).modelType).toBe('mistral');
  });

  it('round-trips through modelConfigToHf', () => {
    for (const source of [smolLm, qwen2, { ...smolLm, attention_bias: true, eos_token_id: [0, 5], pad_token_id: 3, head_dim: 32 }]) {
      const config = parseModelConfig(source);
      const hf = modelConfigToHf(config);
      expect(parseModelConfig(hf)).toEqual(config);
      expect(hf.model_type).toBe(config.modelType);
      expect(hf.torch_dtype).toBe('float32');
    }
    expect(modelConfigToHf(parseModelConfig(qwen2)).architectures).toEqual(['Qwen2ForCausalLM']);
    expect(modelConfigToHf(parseModelConfig(smolLm), { torchDtype: 'bfloat16' })).toMatchObject({ architectures: ['LlamaForCausalLM'], torch_dtype: 'bfloat16' });
  });

  // Each bad value: the field the message must name, and a fragment of the expectation or the value.
  const badFields: [string, Record<string, unknown>, string][] = [
    ['model_type', { model_type: 'gpt2' }, 'gpt2'],
    ['vocab_size', { vocab_size: 0 }, 'positive'],
    ['vocab_size', { vocab_size: 2 ** 31 }, '2147483647'],
    ['vocab_size', { vocab_size: undefined }, 'missing'],
    ['hidden_size', { hidden_size: 576.5 }, '576.5'],
    ['hidden_size', { hidden_size: '576' }, '"576"'],
    ['intermediate_size', { intermediate_size: -1 }, '-1'],
    ['num_attention_heads', { num_attention_heads: 0 }, 'positive'],
    ['num_key_value_heads', { num_key_value_heads: 5 }, 'must divide num_attention_heads (9), got 5'],
    ['num_key_value_heads', { num_key_value_heads: 0 }, 'positive'],
    ['num_hidden_layers', { num_hidden_layers: 0 }, 'positive'],
    ['head_dim', { head_dim: 80 }, 'attention kernels'],
    ['head_dim', { head_dim: 63 }, 'got 63'],
    ['head_dim', { hidden_size: 720, num_attention_heads: 10, num_key_value_heads: 5 }, 'hidden_size 720'], // derived 72
    ['hidden_size', { hidden_size: 577 }, 'multiple of num_attention_heads'],
    ['rms_norm_eps', { rms_norm_eps: 0 }, 'finite number > 0'],
    ['rms_norm_eps', { rms_norm_eps: Infinity }, 'Infinity'],
    ['rms_norm_eps', { rms_norm_eps: NaN }, 'NaN'],
    ['rope_theta', { rope_theta: 1 }, '> 1'],
    ['rope_scaling', { rope_scaling: { type: 'llama3', factor: 8 } }, 'not supported'],
    ['max_position_embeddings', { max_position_embeddings: 0 }, 'positive'],
    ['tie_word_embeddings', { tie_word_embeddings: 'yes' }, 'boolean'],
    ['attention_bias', { attention_bias: 1 }, 'boolean'],
    ['mlp_bias', { mlp_bias: true }, 'not supported'],
    ['hidden_act', { hidden_act: 'gelu' }, 'silu'],
    ['sliding_window', { model_type: 'mistral', sliding_window: 1024 }, 'not supported'],
    ['bos_token_id', { bos_token_id: 49152 }, 'below vocab_size (49152), got 49152'],
    ['bos_token_id', { bos_token_id: -1 }, 'non-negative'],
    ['eos_token_id', { eos_token_id: [0, 50000] }, 'got 50000'],
    ['eos_token_id', { eos_token_id: [] }, 'non-empty'],
    ['pad_token_id', { pad_token_id: 1.5 }, '1.5'],
  ];
  it.each(badFields)('rejects a bad %s (%j)', (field, patch, fragment) => {
    const err = thrownBy(() => parseModelConfig({ ...smolLm, ...patch }, 'SmolLM/config.json'));
    expectTalariaError(err, FORMAT, field);
    expect((err as Error).message.startsWith('SmolLM/config.json: ')).toBe(true);
    expect((err as Error).message).toContain(fragment);
  });

  it('rejects Qwen2 sliding-window attention and non-object input', () => {
    expectThrows(() => parseModelConfig({ ...qwen2, use_sliding_window: true }), FORMAT, 'use_sliding_window');
    for (const bad of [null, 42, 'config', [smolLm]]) expectThrows(() => parseModelConfig(bad), FORMAT, 'config.json');
  });

  it('modelConfigToHf rejects bias patterns and model types HF cannot express', () => {
    const llama = parseModelConfig(smolLm);
    expectThrows(() => modelConfigToHf({ ...llama, qkvBias: true }), 'ERR_TALARIA_RANGE', 'qkvBias');
    expectThrows(() => modelConfigToHf({ ...parseModelConfig(qwen2), oBias: true }), 'ERR_TALARIA_RANGE', 'oBias');
    expectThrows(() => modelConfigToHf({ ...llama, modelType: 'gpt2' }), 'ERR_TALARIA_RANGE', 'modelType');
  });
});

describe('validateModelConfig', () => {
  const good = parseModelConfig(smolLm);
  it('accepts parsed configs', () => {
    for (const source of [smolLm, qwen2]) expect(() => validateModelConfig(parseModelConfig(source))).not.toThrow();
  });
  // A config built in code: the message names the ModelConfig field, not the HF one.
  const bad: [string, Partial<Record<keyof ModelConfig, unknown>>, string][] = [
    ['numKvHeads', { numKvHeads: 5 }, 'numKvHeads must divide numHeads (9), got 5'],
    ['hiddenSize', { hiddenSize: 0 }, 'hiddenSize must be a positive integer, got 0'],
    ['headDim', { headDim: 96 }, 'headDim must be one of 32, 64, 128'],
    ['vocabSize', { vocabSize: 2.5 }, 'vocabSize'],
    ['numLayers', { numLayers: '30' }, 'numLayers'],
    ['intermediateSize', { intermediateSize: -4 }, 'intermediateSize'],
    ['numHeads', { numHeads: 0 }, 'numHeads'],
    ['rmsNormEps', { rmsNormEps: -1e-5 }, 'rmsNormEps'],
    ['ropeTheta', { ropeTheta: 0.5 }, 'ropeTheta'],
    ['maxPositions', { maxPositions: 0 }, 'maxPositions'],
    ['tieEmbeddings', { tieEmbeddings: 1 }, 'tieEmbeddings'],
    ['qkvBias', { qkvBias: 'yes', oBias: 'yes' }, 'qkvBias'],
    ['oBias', { oBias: true }, 'qkvBias must equal oBias'],
    ['modelType', { modelType: 'gpt2' }, 'modelType'],
    ['bosTokenId', { bosTokenId: 49152 }, 'bosTokenId must be below vocabSize (49152)'],
    ['eosTokenId', { eosTokenId: [1, -1] }, 'eosTokenId'],
    ['padTokenId', { padTokenId: null }, 'padTokenId'],
  ];
  it.each(bad)('rejects a bad %s', (_field, patch, fragment) => {
    const err = thrownBy(() => validateModelConfig({ ...good, ...patch } as ModelConfig));
    expectTalariaError(err, 'ERR_TALARIA_RANGE', fragment);
    expect((err as Error).message.startsWith('config: ')).toBe(true);
  });
  it('rejects a non-object and a bad torchDtype', () => {
    expectThrows(() => validateModelConfig(null as unknown as ModelConfig, 'policy.config'), 'ERR_TALARIA_DTYPE', 'policy.config');
    expectThrows(() => modelConfigToHf(good, { torchDtype: 'float16' as 'float32' }), 'ERR_TALARIA_RANGE', 'torchDtype');
  });
});

describe('readModelConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talaria-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a config.json file', () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, JSON.stringify(qwen2, null, 2));
    expect(readModelConfig(path)).toEqual(parseModelConfig(qwen2));
  });

  it('names the file for invalid JSON, a bad field, and a missing file', () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"hidden_size": 576,');
    expectThrows(() => readModelConfig(broken), FORMAT, broken);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...smolLm, num_key_value_heads: 4 }));
    expectThrows(() => readModelConfig(bad), FORMAT, `${bad}: num_key_value_heads`);
    expectThrows(() => readModelConfig(join(dir, 'absent.json')), 'ERR_TALARIA_IO', join(dir, 'absent.json'));
  });
});
