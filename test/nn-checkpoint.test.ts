import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadModelFiles, type ModelConfig, type ModelHeads, modelConfigToHf, type NamedTensor, type ParamLayout,
  parameterLayout, parseModelConfig, readSafetensors, saveModelFiles, writeSafetensors,
} from '../lib/index.js';
import { f32ToBf16Bits } from '../lib/nn/safetensors.js';
import { expectBitwiseEqual, expectThrows } from './helpers/assert.js';
import { randomF32, Rng } from './helpers/random.js';

const root = mkdtempSync(join(tmpdir(), 'talaria-checkpoint-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `c${dirCount++}`);
const FORMAT = 'ERR_TALARIA_FORMAT';

// A tiny Llama in HF config.json form, with the extra fields real configs carry.
const hfTiny = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 96, intermediate_size: 131, num_attention_heads: 3,
  num_key_value_heads: 1, head_dim: 32, num_hidden_layers: 2, vocab_size: 53, max_position_embeddings: 128,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, attention_bias: false, bos_token_id: 1,
  eos_token_id: 2, initializer_range: 0.02, use_cache: true, transformers_version: '4.44.0',
};
const llama = parseModelConfig(hfTiny);
const qwenTied: ModelConfig = { ...llama, modelType: 'qwen2', qkvBias: true, oBias: false, tieEmbeddings: true };
const LM: ModelHeads = { lm: true, score: false };
const RM: ModelHeads = { lm: false, score: true };

/** Random values in every parameter, zeros in the padding (as a model's buffer holds them). */
function randomParams(layout: ParamLayout, seed: number): Float32Array {
  const rng = new Rng(seed);
  const params = new Float32Array(layout.totalNumel);
  for (const e of layout.entries) params.set(randomF32(rng, e.numel, -0.5, 0.5), e.offset);
  return params;
}

/** HF-style tensors for `config` drawn independently of any layout, keyed by name. */
function hfTensors(config: ModelConfig, heads: ModelHeads, seed: number, extra: [string, number[]][] = []): NamedTensor[] {
  const rng = new Rng(seed);
  const layout = parameterLayout(config, heads);
  const named = [...layout.entries.map((e) => [e.name, e.shape] as [string, number[]]), ...extra];
  // HF writes tensors sorted by name, not in model order.
  named.sort(([a], [b]) => (a < b ? -1 : 1));
  return named.map(([name, shape]) => ({ name, shape, data: randomF32(rng, shape.reduce((a, b) => a * b, 1), -1, 1) }));
}

function writeCheckpoint(dir: string, config: object, tensors: NamedTensor[], dtype: 'F32' | 'BF16' = 'F32'): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
}

function slice(params: Float32Array, layout: ParamLayout, name: string): Float32Array {
  const e = layout.byName.get(name)!;
  return params.subarray(e.offset, e.offset + e.numel);
}

describe('saveModelFiles / loadModelFiles', () => {
  it('round-trips f32 params bit for bit and writes an HF config.json', () => {
    for (const [config, heads] of [[llama, LM], [qwenTied, LM], [llama, { lm: true, score: true }], [qwenTied, RM]] as const) {
      const layout = parameterLayout(config, heads);
      const params = randomParams(layout, 21);
      const dir = join(freshDir(), 'nested', 'step-10');
      saveModelFiles(dir, config, layout, params);
      expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
      const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      if (!heads.score) expect(written).toEqual(modelConfigToHf(config));
      else {
        // A reward model is saved as transformers' sequence classifier with one label.
        const arch = config.modelType === 'qwen2' ? 'Qwen2ForSequenceClassification' : 'LlamaForSequenceClassification';
        expect(written).toEqual({ ...modelConfigToHf(config), architectures: [arch], id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } });
      }
      const loaded = loadModelFiles(dir, heads);
      expect(loaded.config).toEqual(config);
      expect(loaded.layout.entries).toEqual(layout.entries);
      expect(loaded.missing).toEqual([]);
      expectBitwiseEqual(loaded.params, params);
    }
  });

  it('saves bf16 as round-to-nearest-even of each parameter', () => {
    const layout = parameterLayout(llama, LM);
    const params = randomParams(layout, 22);
    const dir = freshDir();
    saveModelFiles(dir, llama, layout, params, { dtype: 'BF16' });
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(readSafetensors(join(dir, 'model.safetensors')).get('model.norm.weight')!.dtype).toBe('BF16');
    const want = new Float32Array(new Uint32Array(new Uint32Array(params.buffer).map((b) => f32ToBf16Bits(b) << 16)).buffer);
    expectBitwiseEqual(loadModelFiles(dir, LM).params, want);
  });

  it('replaces an existing checkpoint whole, leaving no temp files', () => {
    const layout = parameterLayout(llama, LM);
    const dir = freshDir();
    saveModelFiles(dir, llama, layout, randomParams(layout, 23), { dtype: 'BF16' });
    const second = randomParams(layout, 24);
    saveModelFiles(dir, llama, layout, second);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    expectBitwiseEqual(loadModelFiles(dir, LM).params, second);
  });

  it('loads HF-named files: any tensor order, bf16, rotary inv_freq and tied lm_head ignored', () => {
    const dir = freshDir();
    const hfConfig = { ...modelConfigToHf(qwenTied), use_sliding_window: false, sliding_window: 4096, max_window_layers: 2 };
    const tensors = hfTensors(qwenTied, LM, 25, [['model.layers.0.self_attn.rotary_emb.inv_freq', [16]], ['model.layers.1.self_attn.rotary_emb.inv_freq', [16]], ['lm_head.weight', [53, 96]]]);
    writeCheckpoint(dir, hfConfig, tensors, 'BF16');
    const { config, layout, params } = loadModelFiles(dir, LM);
    expect(config).toEqual(qwenTied);
    const fromFile = readSafetensors(join(dir, 'model.safetensors'));
    for (const e of layout.entries) expectBitwiseEqual(slice(params, layout, e.name), fromFile.get(e.name)!.data);
    // The padding between entries stays zero.
    let covered = 0;
    for (const e of layout.entries) covered += e.numel;
    expect(params.reduce((n, x) => n + (x === 0 ? 1 : 0), 0)).toBe(layout.totalNumel - covered);
  });

  it('loads a policy as a reward model: lm_head ignored, score initialised to zero when asked', () => {
    const dir = freshDir();
    const tensors = hfTensors(llama, LM, 26);
    writeCheckpoint(dir, hfTiny, tensors);
    expectThrows(() => loadModelFiles(dir, RM), FORMAT, 'missing tensor score.weight');
    const rm = loadModelFiles(dir, RM, { initMissingScore: true });
    expect(rm.missing).toEqual(['score.weight', 'score.bias']);
    expect(Array.from(slice(rm.params, rm.layout, 'score.weight')).every((x) => x === 0)).toBe(true);
    expect(slice(rm.params, rm.layout, 'score.bias')[0]).toBe(0);
    expectBitwiseEqual(slice(rm.params, rm.layout, 'model.embed_tokens.weight'), tensors.find((t) => t.name === 'model.embed_tokens.weight')!.data);
    // initMissingScore never excuses a missing transformer tensor.
    writeCheckpoint(dir, hfTiny, tensors.filter((t) => t.name !== 'model.norm.weight'));
    expectThrows(() => loadModelFiles(dir, RM, { initMissingScore: true }), FORMAT, 'missing tensor model.norm.weight');
  });

  it('loads a reward model as a policy backbone: score tensors ignored when heads.score is false', () => {
    const dir = freshDir();
    writeCheckpoint(dir, hfTiny, hfTensors(llama, { lm: true, score: true }, 27));
    const loaded = loadModelFiles(dir, LM);
    expect(loaded.layout.byName.has('score.weight')).toBe(false);
  });

  it('takes the config from options instead of config.json', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const tensors = hfTensors(qwenTied, LM, 28);
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
    expect(loadModelFiles(dir, LM, { config: qwenTied }).config).toBe(qwenTied);
  });
});

describe('loadModelFiles rejects checkpoints that do not match the model', () => {
  const base = () => hfTensors(llama, LM, 29);
  const cases: [string, (t: NamedTensor[]) => NamedTensor[], string][] = [
    ['a missing tensor', (t) => t.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight'), 'model.safetensors: missing tensor model.layers.1.mlp.up_proj.weight'],
    ['a missing lm_head (untied)', (t) => t.filter((x) => x.name !== 'lm_head.weight'), 'missing tensor lm_head.weight'],
    ['an unexpected tensor', (t) => [...t, { name: 'model.layers.0.mlp.extra.weight', shape: [2], data: Float32Array.of(0.5, -0.25) }], 'unexpected tensor model.layers.0.mlp.extra.weight'],
    ['a layer past num_hidden_layers', (t) => [...t, { name: 'model.layers.2.input_layernorm.weight', shape: [96], data: randomF32(new Rng(3), 96) }], 'unexpected tensor model.layers.2.input_layernorm.weight'],
    ['a misshaped tensor', (t) => t.map((x) => (x.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...x, shape: [96, 32] } : x)), 'tensor model.layers.0.self_attn.k_proj.weight has shape [96, 32], expected [32, 96]'],
    ['a tensor of the wrong rank', (t) => t.map((x) => (x.name === 'model.norm.weight' ? { ...x, shape: [1, 96] } : x)), 'tensor model.norm.weight has shape [1, 96], expected [96]'],
  ];
  it.each(cases)('%s', (_what, edit, fragment) => {
    const dir = freshDir();
    writeCheckpoint(dir, hfTiny, edit(base()));
    expectThrows(() => loadModelFiles(dir, LM), FORMAT, fragment);
  });

  it('rejects q/k/v biases in a model without them, and requires them where the config says so', () => {
    const dir = freshDir();
    writeCheckpoint(dir, hfTiny, hfTensors({ ...llama, qkvBias: true, oBias: true }, LM, 30));
    expectThrows(() => loadModelFiles(dir, LM), FORMAT, 'unexpected tensor model.layers.0.self_attn.k_proj.bias'); // first in the file's (alphabetical) order
    writeCheckpoint(dir, { ...hfTiny, attention_bias: true }, hfTensors(llama, LM, 31));
    expectThrows(() => loadModelFiles(dir, LM), FORMAT, 'missing tensor model.layers.0.self_attn.q_proj.bias');
  });

  it('reports unreadable files and bad configs with the path', () => {
    const dir = freshDir();
    expectThrows(() => loadModelFiles(dir, LM), 'ERR_TALARIA_IO', join(dir, 'config.json'));
    expectThrows(() => loadModelFiles(dir, LM, { config: llama }), 'ERR_TALARIA_IO', join(dir, 'model.safetensors'));
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: {} }));
    expectThrows(() => loadModelFiles(dir, LM, { config: llama }), FORMAT, 'sharded checkpoint');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hfTiny, head_dim: 48 }));
    expectThrows(() => loadModelFiles(dir, LM), FORMAT, `${join(dir, 'config.json')}: head_dim`);
  });
});

describe('saveModelFiles rejects bad arguments', () => {
  const layout = parameterLayout(llama, LM);
  const params = randomParams(layout, 32);
  it('params of the wrong length or type', () => {
    expectThrows(() => saveModelFiles(freshDir(), llama, layout, params.subarray(1)), 'ERR_TALARIA_SHAPE', 'params');
    expectThrows(() => saveModelFiles(freshDir(), llama, layout, Array.from(params) as unknown as Float32Array), 'ERR_TALARIA_DTYPE', 'params');
  });
  it('a config HF cannot express', () => {
    expectThrows(() => saveModelFiles(freshDir(), { ...llama, modelType: 'gpt2' }, layout, params), 'ERR_TALARIA_RANGE', 'modelType');
  });
  it('a dtype other than F32/BF16', () => {
    expectThrows(() => saveModelFiles(freshDir(), llama, layout, params, { dtype: 'F16' as 'F32' }), 'ERR_TALARIA_RANGE', 'dtype');
  });
  it('a layout that is not the config\'s', () => {
    expectThrows(() => saveModelFiles(freshDir(), llama, parameterLayout(qwenTied, LM), params), 'ERR_TALARIA_SHAPE', 'layout');
    expectThrows(() => saveModelFiles(freshDir(), { ...llama, numLayers: 3 }, layout, params), 'ERR_TALARIA_SHAPE', 'layout: does not match config: entry 15 is lm_head.weight');
    const shifted = { ...layout, entries: layout.entries.map((e, i) => (i === 3 ? { ...e, offset: e.offset + 16 } : e)) };
    expectThrows(() => saveModelFiles(freshDir(), llama, shifted, params), 'ERR_TALARIA_SHAPE', 'entry 3');
    expectThrows(() => saveModelFiles(freshDir(), llama, { ...layout, totalNumel: layout.totalNumel + 16 }, params), 'ERR_TALARIA_SHAPE', 'totalNumel');
    expectThrows(() => saveModelFiles(freshDir(), llama, {} as ParamLayout, params), 'ERR_TALARIA_DTYPE', 'layout');
    // The reward-model layout of the same config is accepted.
    const rmLayout = parameterLayout(llama, RM);
    expect(() => saveModelFiles(freshDir(), llama, rmLayout, randomParams(rmLayout, 33))).not.toThrow();
  });
  it('a config that breaks the model rules', () => {
    expectThrows(() => saveModelFiles(freshDir(), { ...llama, numKvHeads: 2 }, layout, params), 'ERR_TALARIA_RANGE', 'numKvHeads');
  });
  it('a dir that is not a string', () => {
    expectThrows(() => saveModelFiles(7 as unknown as string, llama, layout, params), 'ERR_TALARIA_DTYPE', 'dir');
  });
  it('a directory that cannot be created', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a directory');
    expectThrows(() => saveModelFiles(join(file, 'ckpt'), llama, layout, params), 'ERR_TALARIA_IO', join(file, 'ckpt'));
  });
});

describe('loadModelFiles rejects bad arguments', () => {
  it('heads, dir and initMissingScore', () => {
    const dir = freshDir();
    writeCheckpoint(dir, hfTiny, hfTensors(llama, LM, 34));
    expectThrows(() => loadModelFiles(dir, { lm: true } as ModelHeads), 'ERR_TALARIA_DTYPE', 'heads.score');
    expectThrows(() => loadModelFiles(undefined as unknown as string, LM), 'ERR_TALARIA_DTYPE', 'dir');
    expectThrows(() => loadModelFiles(dir, RM, { initMissingScore: 'yes' as unknown as boolean }), 'ERR_TALARIA_DTYPE', 'initMissingScore');
    expectThrows(() => loadModelFiles(dir, LM, { config: { ...llama, headDim: 16 } }), 'ERR_TALARIA_RANGE', 'headDim');
  });
});
