// The engine as a trainer would use it: a tiny model learns a tiny fixed corpus (loss far below its
// start), LR schedules and the weight EMA behave as documented, AdamW state survives a round trip, and
// checkpoints round-trip through Hugging Face-named safetensors files.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { crossEntropy } from '../lib/index.js';
import { modelConfigToHf } from '../lib/nn/config.js';
import { estimateMemory } from '../lib/nn/memory.js';
import { TransformerModel } from '../lib/nn/model.js';
import { AdamW, learningRate, WeightEma } from '../lib/nn/optim.js';
import { writeSafetensors } from '../lib/nn/safetensors.js';
import { Rng } from '../lib/util/rng.js';
import { disposeTensors } from './helpers/backends.js';
import { expectThrows, maxAbs } from './helpers/assert.js';
import { tinyConfig } from './helpers/model.js';
import { randomRefParameters, refForward } from './reference/transformer.js';

afterEach(disposeTensors);
const scratch = mkdtempSync(join(tmpdir(), 'talaria-model-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const heads = { lm: true, score: false };

/** 24 sequences of 12 tokens: arithmetic progressions mod V with a per-sequence start and stride in {1, 2, 3}. */
function corpus(vocab: number) {
  const rng = new Rng(42);
  const lengths = 12;
  const sequences = 24;
  const ids = new Int32Array(sequences * lengths);
  const targets = new Int32Array(ids.length);
  const mask = new Uint8Array(ids.length);
  for (let s = 0; s < sequences; s++) {
    const start = rng.int(vocab);
    const stride = 1 + rng.int(3);
    for (let t = 0; t < lengths; t++) {
      ids[s * lengths + t] = (start + stride * t) % vocab;
      targets[s * lengths + t] = (start + stride * (t + 1)) % vocab;
      mask[s * lengths + t] = t < lengths - 1 ? 1 : 0;
    }
  }
  const cuSeqlens = Int32Array.from({ length: sequences + 1 }, (_, i) => i * lengths);
  return { ids, targets, mask, cuSeqlens };
}

describe('training a tiny model', () => {
  it('brings the loss on a fixed corpus from ~log V to under 0.25 nats in 300 AdamW steps', () => {
    const config = tinyConfig({ vocabSize: 31 });
    const model = new TransformerModel(config, heads, { seed: 1 });
    const optimizer = new AdamW(model, { lr: 3e-3, weightDecay: 0, maxGradNorm: 1 });
    const data = corpus(config.vocabSize);
    const losses: number[] = [];
    const steps = 300;
    for (let step = 0; step < steps; step++) {
      model.zeroGrad();
      const out = model.forward({ ids: data.ids, cuSeqlens: data.cuSeqlens });
      const { loss, dLogits } = crossEntropy({ logits: out.logits!, targets: data.targets, mask: data.mask, inPlace: true });
      losses.push(loss);
      model.backward(out, { dLogits });
      const report = optimizer.apply(learningRate({ kind: 'cosine', lr: 3e-3, totalSteps: steps, warmupSteps: 20 }, step));
      expect(report.applied).toBe(true);
      out.logits!.dispose();
    }
    expect(losses[0]).toBeGreaterThan(0.9 * Math.log(config.vocabSize));
    expect(losses[steps - 1]).toBeLessThan(0.25);
    optimizer.dispose();
    model.dispose();
  });

  it('AdamW skips a step with a non-finite gradient and restores its state exactly', () => {
    const config = tinyConfig();
    const model = new TransformerModel(config, heads, { seed: 2 });
    const optimizer = new AdamW(model, { lr: 1e-2 });
    const data = corpus(config.vocabSize);
    const step = () => {
      model.zeroGrad();
      const out = model.forward({ ids: data.ids, cuSeqlens: data.cuSeqlens });
      const { dLogits } = crossEntropy({ logits: out.logits!, targets: data.targets, inPlace: true });
      model.backward(out, { dLogits });
      return optimizer.apply();
    };
    step();
    const saved = optimizer.state();
    const params = model.parametersToArray();
    step();
    const after = model.parametersToArray();
    // Rewind the model and the optimizer: the same step again gives the same parameters, bit for bit.
    model.loadParameters(params);
    optimizer.restore(saved);
    step();
    expect(Buffer.from(model.parametersToArray().buffer).equals(Buffer.from(after.buffer))).toBe(true);
    // A NaN gradient: not applied, parameters unchanged.
    const before = model.parametersToArray();
    model.gradient('model.norm.weight').copyFrom(new Float32Array(config.hiddenSize).fill(Number.NaN));
    const report = optimizer.apply();
    expect(report.applied).toBe(false);
    expect(Buffer.from(model.parametersToArray().buffer).equals(Buffer.from(before.buffer))).toBe(true);
    expectThrows(() => optimizer.restore({ step: 1, m: new Float32Array(3), v: saved.v }), 'ERR_TALARIA_FORMAT', 'm');
    expectThrows(() => optimizer.restore({ ...saved, step: -1 }), 'ERR_TALARIA_FORMAT', 'step');
    expectThrows(() => new AdamW(model, { lr: 1, maxGradNorm: 0 }), 'ERR_TALARIA_RANGE', 'maxGradNorm');
    expectThrows(() => new AdamW(new TransformerModel(config, heads, { trainable: false }), { lr: 1 }), 'ERR_TALARIA_RANGE', 'frozen');
    optimizer.dispose();
    model.dispose();
  });

  it('weight decay touches matrices only, never norms and biases', () => {
    const config = tinyConfig({ qkvBias: true, modelType: 'qwen2' });
    const model = new TransformerModel(config, heads, { seed: 3 });
    const before = model.parametersToArray();
    const optimizer = new AdamW(model, { lr: 0.1, weightDecay: 0.5 });
    model.zeroGrad(); // zero gradient: AdamW moves nothing but the decay
    optimizer.apply();
    const after = model.parametersToArray();
    for (const entry of model.layout.entries) {
      const i = entry.offset;
      if (entry.decay) expect(after[i]).toBeCloseTo(before[i] * (1 - 0.1 * 0.5), 6);
      else expect(after[i]).toBe(before[i]);
    }
    model.dispose();
  });
});

describe('LR schedules and EMA', () => {
  it('warms up linearly, then holds or decays by a cosine to the final fraction', () => {
    const cosine = { kind: 'cosine' as const, lr: 1, totalSteps: 110, warmupSteps: 10 };
    expect(learningRate(cosine, 0)).toBeCloseTo(0.1, 12);
    expect(learningRate(cosine, 9)).toBeCloseTo(1, 12);
    expect(learningRate(cosine, 10)).toBeCloseTo(1, 12);
    expect(learningRate(cosine, 60)).toBeCloseTo(0.55, 12);
    expect(learningRate(cosine, 110)).toBeCloseTo(0.1, 12);
    expect(learningRate(cosine, 500)).toBeCloseTo(0.1, 12);
    expect(learningRate({ ...cosine, finalFraction: 0 }, 110)).toBeCloseTo(0, 12);
    expect(learningRate({ kind: 'constant', lr: 2e-3 }, 1000)).toBe(2e-3);
    expect(learningRate({ kind: 'constant', lr: 2e-3, warmupSteps: 4 }, 1)).toBeCloseTo(1e-3, 15);
    expectThrows(() => learningRate({ kind: 'constant', lr: -1 }, 0), 'ERR_TALARIA_RANGE', 'lr');
    expectThrows(() => learningRate({ kind: 'constant', lr: 1, warmupSteps: 1.5 }, 0), 'ERR_TALARIA_RANGE', 'warmupSteps');
    expectThrows(() => learningRate(cosine, -1), 'ERR_TALARIA_RANGE', 'step');
    expectThrows(() => learningRate({ ...cosine, totalSteps: 0 }, 0), 'ERR_TALARIA_RANGE', 'totalSteps');
    expectThrows(() => learningRate({ ...cosine, finalFraction: 2 }, 0), 'ERR_TALARIA_RANGE', 'finalFraction');
  });

  it('the EMA follows decay * ema + (1 - decay) * params', () => {
    const config = tinyConfig();
    const model = new TransformerModel(config, heads, { seed: 4 });
    const ema = new WeightEma(model, 0.9);
    const start = model.parametersToArray();
    const moved = start.map((x) => x + 1);
    model.loadParameters(moved);
    ema.update();
    ema.update();
    const got = ema.toArray();
    for (let i = 0; i < got.length; i += 97) expect(got[i]).toBeCloseTo(start[i] + 1 - 0.81, 5);
    expectThrows(() => new WeightEma(model, 1), 'ERR_TALARIA_RANGE', 'decay');
    ema.dispose();
    model.dispose();
  });
});

describe('checkpoints', () => {
  const config = tinyConfig({ tieEmbeddings: true, qkvBias: true, modelType: 'qwen2' });
  const batch = { ids: Int32Array.from({ length: 20 }, (_, i) => (i * 7) % 41), cuSeqlens: new Int32Array([0, 9, 20]) };

  it('save -> fromPretrained gives identical logits (f32), and close ones from bf16', () => {
    const model = new TransformerModel(config, heads, { seed: 5, initStd: 0.3 });
    const want = model.forward(batch, { grad: false }).logits!.toArray() as Float32Array;
    model.save(join(scratch, 'f32'));
    model.save(join(scratch, 'bf16'), { dtype: 'BF16' });
    const loaded = TransformerModel.fromPretrained(join(scratch, 'f32'), heads, { trainable: false });
    expect(loaded.config).toEqual(config);
    const got = loaded.forward(batch).logits!.toArray() as Float32Array;
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    const half = TransformerModel.fromPretrained(join(scratch, 'bf16'), heads, { trainable: false });
    const approx = half.forward(batch).logits!.toArray() as Float32Array;
    expect(maxAbs(approx.map((x, i) => x - want[i]))).toBeLessThan(0.05 * maxAbs(want));
    for (const m of [model, loaded, half]) m.dispose();
  });

  it('a Hugging Face-named safetensors file written by hand loads and gives the reference logits', () => {
    const untied = tinyConfig({ numKvHeads: 2 });
    const ref = randomRefParameters(untied, heads, new Rng(6));
    const dir = join(scratch, 'hf');
    rmSync(dir, { recursive: true, force: true });
    const tensors = [...ref.entries()].map(([name, data]) => ({ name, shape: [data.length], data: Float32Array.from(data) }));
    // Real shapes, in an order different from the layout's, plus the rotary buffer old HF files carry.
    const shapes = new Map([
      ['model.embed_tokens.weight', [41, 48]], ['lm_head.weight', [41, 48]], ['model.norm.weight', [48]],
    ]);
    for (let l = 0; l < 2; l++) {
      const p = `model.layers.${l}.`;
      for (const [n, s] of [['self_attn.q_proj.weight', [64, 48]], ['self_attn.k_proj.weight', [64, 48]], ['self_attn.v_proj.weight', [64, 48]],
        ['self_attn.o_proj.weight', [48, 64]], ['mlp.gate_proj.weight', [71, 48]], ['mlp.up_proj.weight', [71, 48]], ['mlp.down_proj.weight', [48, 71]],
        ['input_layernorm.weight', [48]], ['post_attention_layernorm.weight', [48]]] as [string, number[]][])
        shapes.set(p + n, s);
    }
    for (const t of tensors) t.shape = shapes.get(t.name)!;
    tensors.reverse();
    tensors.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [16], data: new Float32Array(16).fill(1) });
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...modelConfigToHf(untied), torch_dtype: 'float32', use_cache: true }));
    const model = TransformerModel.fromPretrained(dir, heads, { trainable: false });
    const got = model.forward(batch).logits!.toArray() as Float32Array;
    const f64 = new Map([...ref].map(([n, d]) => [n, Float64Array.from(Float32Array.from(d))]));
    const want = refForward(untied, f64, heads, batch.ids, batch.cuSeqlens).logits!;
    expect(maxAbs(got.map((x, i) => x - want[i]))).toBeLessThan(2e-5 * maxAbs(want));
    // A reward model initialised from this policy checkpoint: the score head starts at zero.
    const rm = TransformerModel.fromPretrained(dir, { lm: false, score: true }, { initMissingScore: true, trainable: false });
    expect(Array.from(rm.forward(batch).values!.toArray())).toEqual(new Array(20).fill(0));
    for (const m of [model, rm]) m.dispose();
  });

  it('a checkpoint of another shape is refused, naming the tensor', () => {
    const model = new TransformerModel(config, heads, { seed: 7 });
    model.save(join(scratch, 'other'));
    const wider = { ...config, intermediateSize: 72 };
    expectThrows(() => TransformerModel.fromPretrained(join(scratch, 'other'), heads, { config: wider }), 'ERR_TALARIA_FORMAT', 'mlp.gate_proj.weight');
    expectThrows(() => TransformerModel.fromPretrained(join(scratch, 'missing'), heads), 'ERR_TALARIA_IO', 'config.json');
    model.dispose();
  });
});

describe('memory estimate', () => {
  it('counts weights, gradients, AdamW moments, EMA and activations, and recompute saves activations', () => {
    const config = tinyConfig();
    const full = estimateMemory(config, heads, { tokens: 1024, ema: true });
    const model = new TransformerModel(config, heads);
    expect(full.parameters).toBe(model.layout.totalNumel);
    expect(full.weights).toBe(4 * model.layout.totalNumel);
    expect(full.gradients).toBe(full.weights);
    expect(full.optimizer).toBe(2 * full.weights);
    expect(full.ema).toBe(full.weights);
    expect(full.logits).toBe(4 * 1024 * config.vocabSize);
    expect(full.total).toBe(full.weights * 5 + full.activations + full.logits);
    const recompute = estimateMemory(config, heads, { tokens: 1024, recompute: true });
    expect(recompute.activations).toBeLessThan(full.activations);
    const inference = estimateMemory(config, heads, { tokens: 1024, training: false });
    expect(inference.gradients + inference.optimizer).toBe(0);
    expectThrows(() => estimateMemory(config, heads, { tokens: 0 }), 'ERR_TALARIA_RANGE', 'tokens');
    model.dispose();
  });
});
