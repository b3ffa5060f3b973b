import { describe, expect, it } from 'vitest';
import { expectThrows } from './helpers/assert.js';
import { type ModelConfig, type ModelHeads, type ParamLayout, parameterCount, parameterLayout, parseModelConfig } from '../lib/index.js';

const smolLm135m = parseModelConfig({
  model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_attention_heads: 9, num_key_value_heads: 3,
  num_hidden_layers: 30, vocab_size: 49152, max_position_embeddings: 2048, tie_word_embeddings: true,
});
const qwen2_05b = parseModelConfig({
  model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_attention_heads: 14, num_key_value_heads: 2,
  num_hidden_layers: 24, vocab_size: 151936, max_position_embeddings: 131072, tie_word_embeddings: true,
});
// Odd, prime-ish sizes so no tensor happens to be a multiple of 16 elements.
const tiny: ModelConfig = {
  modelType: 'llama', vocabSize: 37, hiddenSize: 67, intermediateSize: 131, numHeads: 4, numKvHeads: 2, headDim: 32,
  numLayers: 3, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 64, tieEmbeddings: false, qkvBias: true, oBias: true,
};

const LM: ModelHeads = { lm: true, score: false };
const RM: ModelHeads = { lm: false, score: true };

/** Every structural rule of the layout, checked from the entries alone. */
function checkLayoutRules(layout: ParamLayout): void {
  const { entries, decayNumel, totalNumel } = layout;
  expect(decayNumel % 16).toBe(0);
  expect(totalNumel % 16).toBe(0);
  expect(layout.byName.size).toBe(entries.length);
  const firstNoDecay = entries.findIndex((e) => !e.decay);
  if (firstNoDecay >= 0) expect(entries.slice(firstNoDecay).every((e) => !e.decay), 'decayed entries come first').toBe(true);
  let end = 0;
  for (const [i, e] of entries.entries()) {
    expect(layout.byName.get(e.name)).toBe(e);
    expect(e.numel).toBe(e.shape.reduce((a, b) => a * b, 1));
    expect(e.decay).toBe(e.shape.length >= 2);
    expect(e.offset, `${e.name} overlaps its predecessor`).toBeGreaterThanOrEqual(end);
    if (e.name.endsWith('.mlp.up_proj.weight')) {
      const gate = entries[i - 1];
      expect(gate.name).toBe(e.name.replace('up_proj', 'gate_proj'));
      expect(e.offset, `${e.name} follows gate_proj with no gap`).toBe(gate.offset + gate.numel);
    } else {
      expect(e.offset % 16, `${e.name} is 64-byte aligned`).toBe(0);
      expect(e.offset - end, `${e.name}: no more padding than alignment needs`).toBeLessThan(16);
    }
    if (e.decay) expect(e.offset + e.numel).toBeLessThanOrEqual(decayNumel);
    else expect(e.offset).toBeGreaterThanOrEqual(decayNumel);
    end = e.offset + e.numel;
  }
  expect(end).toBeLessThanOrEqual(totalNumel);
  expect(totalNumel - end).toBeLessThan(16);
}

describe('parameterLayout', () => {
  it('counts SmolLM-135M (tied) and Qwen2-0.5B (tied) as published', () => {
    // SmolLM-135M: embed 49152*576 + 30 layers * (2*576 + 576*576*2 + 192*576*2 + 3*1536*576) + 576.
    expect(parameterCount(smolLm135m, LM)).toBe(28_311_552 + 30 * 3_540_096 + 576);
    expect(parameterCount(smolLm135m, LM)).toBe(134_515_008);
    // Qwen2-0.5B: 494,032,768 parameters (tied), q/k/v biases included.
    const qwenLayer = 2 * 896 + (896 * 896 + 896) + 2 * (128 * 896 + 128) + 896 * 896 + 3 * 4864 * 896;
    expect(parameterCount(qwen2_05b, LM)).toBe(151936 * 896 + 24 * qwenLayer + 896);
    expect(parameterCount(qwen2_05b, LM)).toBe(494_032_768);
  });

  it('adds lm_head only when untied, and score.weight/bias for a reward head', () => {
    const untied = { ...smolLm135m, tieEmbeddings: false };
    expect(parameterCount(untied, LM) - parameterCount(smolLm135m, LM)).toBe(49152 * 576);
    expect(parameterLayout(untied, LM).byName.get('lm_head.weight')?.shape).toEqual([49152, 576]);
    expect(parameterLayout(smolLm135m, LM).byName.has('lm_head.weight')).toBe(false);
    const rm = parameterLayout(untied, RM);
    expect(rm.byName.has('lm_head.weight')).toBe(false);
    expect(rm.byName.get('score.weight')).toMatchObject({ shape: [1, 576], decay: true });
    expect(rm.byName.get('score.bias')).toMatchObject({ shape: [1], decay: false });
    expect(parameterCount(untied, { lm: true, score: true })).toBe(parameterCount(untied, LM) + 577);
  });

  it('follows the alignment, adjacency and decay-split rules', () => {
    for (const config of [tiny, { ...tiny, qkvBias: false, oBias: false, tieEmbeddings: true }, smolLm135m, qwen2_05b])
      for (const heads of [LM, RM, { lm: true, score: true }, { lm: false, score: false }])
        checkLayoutRules(parameterLayout(config, heads));
  });

  it('lists HF names and shapes in model order, decayed tensors first', () => {
    const layout = parameterLayout(tiny, { lm: true, score: true });
    const names = layout.entries.map((e) => e.name);
    const layer = (i: number, kind: 'decay' | 'norm') => {
      const p = `model.layers.${i}`;
      return kind === 'decay'
        ? [`${p}.self_attn.q_proj.weight`, `${p}.self_attn.k_proj.weight`, `${p}.self_attn.v_proj.weight`, `${p}.self_attn.o_proj.weight`,
          `${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`, `${p}.mlp.down_proj.weight`]
        : [`${p}.input_layernorm.weight`, `${p}.self_attn.q_proj.bias`, `${p}.self_attn.k_proj.bias`, `${p}.self_attn.v_proj.bias`,
          `${p}.self_attn.o_proj.bias`, `${p}.post_attention_layernorm.weight`];
    };
    expect(names).toEqual([
      'model.embed_tokens.weight', ...[0, 1, 2].flatMap((i) => layer(i, 'decay')), 'lm_head.weight', 'score.weight',
      ...[0, 1, 2].flatMap((i) => layer(i, 'norm')), 'model.norm.weight', 'score.bias',
    ]);
    const shape = (name: string) => layout.byName.get(name)?.shape;
    expect(shape('model.embed_tokens.weight')).toEqual([37, 67]);
    expect(shape('model.layers.1.self_attn.q_proj.weight')).toEqual([128, 67]);
    expect(shape('model.layers.1.self_attn.k_proj.weight')).toEqual([64, 67]);
    expect(shape('model.layers.1.self_attn.v_proj.bias')).toEqual([64]);
    expect(shape('model.layers.1.self_attn.o_proj.weight')).toEqual([67, 128]);
    expect(shape('model.layers.1.self_attn.o_proj.bias')).toEqual([67]);
    expect(shape('model.layers.2.mlp.gate_proj.weight')).toEqual([131, 67]);
    expect(shape('model.layers.2.mlp.down_proj.weight')).toEqual([67, 131]);
    expect(shape('model.norm.weight')).toEqual([67]);
  });

  it('packs the entries exactly (hand-computed offsets for the first layer)', () => {
    const layout = parameterLayout(tiny, LM);
    const at = (name: string) => layout.byName.get(name)!.offset;
    expect(at('model.embed_tokens.weight')).toBe(0);
    expect(at('model.layers.0.self_attn.q_proj.weight')).toBe(2480); // 37*67 = 2479 -> 2480
    expect(at('model.layers.0.self_attn.k_proj.weight')).toBe(11056); // 2480 + 128*67 = 11056
    expect(at('model.layers.0.self_attn.v_proj.weight')).toBe(15344); // 11056 + 4288
    expect(at('model.layers.0.self_attn.o_proj.weight')).toBe(19632); // 15344 + 4288
    expect(at('model.layers.0.mlp.gate_proj.weight')).toBe(28208); // 19632 + 8576
    expect(at('model.layers.0.mlp.up_proj.weight')).toBe(28208 + 8777); // unaligned, right after gate
    expect(at('model.layers.0.mlp.down_proj.weight')).toBe(45776); // 28208 + 2*8777 = 45762 -> 45776
    const padding = layout.totalNumel - parameterCount(tiny, LM);
    expect(padding).toBeGreaterThan(0);
    expect(padding).toBeLessThan(16 * layout.entries.length);
  });

  it('rejects a config that breaks the model rules, and malformed heads', () => {
    expectThrows(() => parameterLayout({ ...tiny, numKvHeads: 3 }, LM), 'ERR_TALARIA_RANGE', 'numKvHeads');
    expectThrows(() => parameterCount({ ...tiny, headDim: 48 }, LM), 'ERR_TALARIA_RANGE', 'headDim');
    expectThrows(() => parameterLayout(undefined as unknown as ModelConfig, LM), 'ERR_TALARIA_DTYPE', 'config');
    expectThrows(() => parameterLayout(tiny, null as unknown as ModelHeads), 'ERR_TALARIA_DTYPE', 'heads');
    expectThrows(() => parameterLayout(tiny, { lm: 1, score: false } as unknown as ModelHeads), 'ERR_TALARIA_DTYPE', 'heads.lm');
    expectThrows(() => parameterCount(tiny, { lm: true } as unknown as ModelHeads), 'ERR_TALARIA_DTYPE', 'heads.score');
  });
});
