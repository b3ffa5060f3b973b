// The transformer engine (lib/nn/model.ts) against the float64 reference (test/reference/transformer.ts):
// logits, values and the gradient of every parameter, on the CPU and (in emulator builds) on CUDA; gradient
// accumulation, activation recomputation, frozen models, and finite differences of the reference's loss
// along the engine's gradient.
import { afterEach, describe, expect, it } from 'vitest';
import { Tensor } from '../lib/index.js';
import type { ModelConfig } from '../lib/nn/config.js';
import { TransformerModel } from '../lib/nn/model.js';
import type { ModelHeads } from '../lib/nn/params.js';
import { Rng } from '../lib/util/rng.js';
import { backendsUnderTest, disposeTensors } from './helpers/backends.js';
import { expectThrows, maxAbs } from './helpers/assert.js';
import { cuSeqlensOf } from './helpers/random.js';
import { randomRefParameters, refBackward, refForward, type RefParameters } from './reference/transformer.js';
import { flatParameters, tinyConfig } from './helpers/model.js';

afterEach(disposeTensors);

interface Case {
  label: string;
  config: ModelConfig;
  heads: ModelHeads;
}

const CASES: Case[] = [
  { label: 'untied, GQA 2/1, LM head', config: tinyConfig(), heads: { lm: true, score: false } },
  { label: 'tied, MHA, q/k/v bias, both heads', config: tinyConfig({ tieEmbeddings: true, numKvHeads: 2, qkvBias: true, modelType: 'qwen2' }), heads: { lm: true, score: true } },
  { label: 'GQA 4/2, q/k/v/o bias, score head', config: tinyConfig({ numHeads: 4, numKvHeads: 2, qkvBias: true, oBias: true, vocabSize: 29 }), heads: { lm: false, score: true } },
];

const LENGTHS = [5, 1, 12, 7];

function batchFor(config: ModelConfig, seed: number) {
  const rng = new Rng(seed);
  const cuSeqlens = cuSeqlensOf(LENGTHS);
  const ids = Int32Array.from({ length: cuSeqlens[cuSeqlens.length - 1] }, () => rng.int(config.vocabSize));
  return { ids, cuSeqlens };
}

function randomUpstream(config: ModelConfig, heads: ModelHeads, n: number, seed: number) {
  const rng = new Rng(seed);
  const dLogits = heads.lm ? Float32Array.from({ length: n * config.vocabSize }, () => rng.normal()) : undefined;
  const dValues = heads.score ? Float32Array.from({ length: n }, () => rng.normal()) : undefined;
  return { dLogits, dValues };
}

/** Each gradient within `rel` of its own scale (max |ref| of that tensor). */
function expectGradientsClose(model: TransformerModel, got: Float32Array, ref: RefParameters, rel: number): void {
  for (const entry of model.layout.entries) {
    const want = ref.get(entry.name)!;
    const have = got.subarray(entry.offset, entry.offset + entry.numel);
    const scale = maxAbs(want);
    expect(scale, `${entry.name} has a zero reference gradient`).toBeGreaterThan(0);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(have[i] - want[i]));
    expect(worst / scale, `${entry.name}: max error ${worst} vs scale ${scale}`).toBeLessThan(rel);
  }
}

function expectOutputClose(got: Float32Array, want: Float64Array, rel: number, what: string): void {
  const scale = maxAbs(want);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst / scale, `${what}: max error ${worst} vs scale ${scale}`).toBeLessThan(rel);
}

describe.each(backendsUnderTest)('TransformerModel on $backend', ({ backend, device }) => {
  // CUDA GEMMs and attention take bf16 operands (2^-8 relative); the CPU is f32 throughout.
  const tol = backend === 'cpu' ? { out: 2e-5, grad: 1e-4 } : { out: 5e-2, grad: 1e-1 };

  it.each(CASES)('$label: outputs and every gradient match the float64 reference', ({ config, heads }) => {
    const model = new TransformerModel(config, heads, { device });
    const { flat, ref64 } = flatParameters(model, randomRefParameters(config, heads, new Rng(1)));
    model.loadParameters(flat);
    const { ids, cuSeqlens } = batchFor(config, 2);
    const n = ids.length;
    const ref = refForward(config, ref64, heads, ids, cuSeqlens);
    const out = model.forward({ ids, cuSeqlens });
    if (heads.lm) expectOutputClose(out.logits!.toArray() as Float32Array, ref.logits!, tol.out, 'logits');
    if (heads.score) expectOutputClose(out.values!.toArray() as Float32Array, ref.values!, tol.out, 'values');

    const up = randomUpstream(config, heads, n, 3);
    model.backward(out, {
      dLogits: up.dLogits && Tensor.from(up.dLogits, { device, shape: [n, config.vocabSize] }),
      dValues: up.dValues && Tensor.from(up.dValues, { device }),
    });
    const refGrads = refBackward(config, ref64, heads, ref.cache, {
      dLogits: up.dLogits && Float64Array.from(up.dLogits),
      dValues: up.dValues && Float64Array.from(up.dValues),
    });
    expectGradientsClose(model, model.grads!.toArray() as Float32Array, refGrads, tol.grad);
    model.dispose();
  });

  it('accumulates gradients across micro-batches, and recomputation changes nothing', () => {
    const { config, heads } = CASES[1];
    const seedParams = randomRefParameters(config, heads, new Rng(4));
    const run = (recompute: boolean | number[], batches: number[]) => {
      const model = new TransformerModel(config, heads, { device, recompute });
      model.loadParameters(flatParameters(model, seedParams).flat);
      for (const seed of batches) {
        const { ids, cuSeqlens } = batchFor(config, seed);
        const up = randomUpstream(config, heads, ids.length, seed + 100);
        const out = model.forward({ ids, cuSeqlens });
        model.backward(out, {
          dLogits: Tensor.from(up.dLogits!, { device, shape: [ids.length, config.vocabSize] }),
          dValues: Tensor.from(up.dValues!, { device }),
        });
      }
      const grads = model.grads!.toArray() as Float32Array;
      model.dispose();
      return grads;
    };
    const both = run(false, [10, 11]);
    const first = run(false, [10]);
    const second = run(false, [11]);
    const sum = first.map((x, i) => x + second[i]);
    let worst = 0;
    for (let i = 0; i < sum.length; i++) worst = Math.max(worst, Math.abs(both[i] - sum[i]));
    expect(worst).toBeLessThan(1e-5 * maxAbs(sum));
    // Recomputation replays the same kernels on the same inputs: bitwise the same gradients, for every
    // layer or for some of them.
    expect(Buffer.from(run(true, [10, 11]).buffer).equals(Buffer.from(both.buffer))).toBe(true);
    expect(Buffer.from(run([1], [10, 11]).buffer).equals(Buffer.from(both.buffer))).toBe(true);
  });

  it('a frozen model runs forward only, the same logits as a trainable one', () => {
    const config = tinyConfig();
    const heads = { lm: true, score: false };
    const trainable = new TransformerModel(config, heads, { device, seed: 9 });
    const frozen = new TransformerModel(config, heads, { device, trainable: false, params: trainable.parametersToArray() });
    expect(frozen.grads).toBeNull();
    const batch = batchFor(config, 5);
    const a = trainable.forward(batch, { grad: false });
    const b = frozen.forward(batch);
    expect(b.tape).toBeUndefined();
    expect(Buffer.from((a.logits!.toArray() as Float32Array).buffer).equals(Buffer.from((b.logits!.toArray() as Float32Array).buffer))).toBe(true);
    expectThrows(() => frozen.forward(batch, { grad: true }), 'ERR_TALARIA_RANGE', 'frozen');
    expectThrows(() => frozen.backward(b, { dLogits: b.logits }), 'ERR_TALARIA_RANGE', 'without grad');
    expectThrows(() => frozen.gradient('model.norm.weight'), 'ERR_TALARIA_RANGE', 'frozen');
    a.dispose();
    b.dispose();
    trainable.dispose();
    frozen.dispose();
  });
});

describe('TransformerModel gradients against finite differences', () => {
  it('the engine gradient predicts the reference loss change along random directions', () => {
    // L(θ) = Σ dLogits ⊙ logits + Σ dValues ⊙ values in f64; the engine's f32 gradient g must satisfy
    // (L(θ + εu) − L(θ − εu)) / 2ε ≈ g · u for random directions u confined to one parameter tensor.
    const { config, heads } = CASES[1];
    const model = new TransformerModel(config, heads);
    const { flat, ref64 } = flatParameters(model, randomRefParameters(config, heads, new Rng(21)));
    model.loadParameters(flat);
    const { ids, cuSeqlens } = batchFor(config, 22);
    const n = ids.length;
    const up = randomUpstream(config, heads, n, 23);
    const out = model.forward({ ids, cuSeqlens });
    model.backward(out, {
      dLogits: Tensor.from(up.dLogits!, { shape: [n, config.vocabSize] }),
      dValues: Tensor.from(up.dValues!),
    });
    const grads = model.grads!.toArray() as Float32Array;
    const loss = (params: RefParameters) => {
      const r = refForward(config, params, heads, ids, cuSeqlens);
      let l = 0;
      for (let i = 0; i < r.logits!.length; i++) l += up.dLogits![i] * r.logits![i];
      for (let i = 0; i < r.values!.length; i++) l += up.dValues![i] * r.values![i];
      return l;
    };
    const rng = new Rng(24);
    const eps = 1e-4;
    for (const entry of model.layout.entries) {
      const u = Float64Array.from({ length: entry.numel }, () => rng.normal());
      const shifted = (sign: number) => {
        const p = new Map(ref64);
        p.set(entry.name, ref64.get(entry.name)!.map((x, i) => x + sign * eps * u[i]));
        return p;
      };
      const numeric = (loss(shifted(1)) - loss(shifted(-1))) / (2 * eps);
      let analytic = 0;
      for (let i = 0; i < entry.numel; i++) analytic += grads[entry.offset + i] * u[i];
      expect(Math.abs(analytic - numeric), `${entry.name}: ${analytic} vs ${numeric}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(numeric)));
    }
    model.dispose();
  });
});

describe('TransformerModel bad input', () => {
  const config = tinyConfig();
  const heads = { lm: true, score: false };

  it('rejects token ids outside the vocabulary and sequences over max positions', () => {
    const model = new TransformerModel(config, heads);
    expectThrows(() => model.forward({ ids: new Int32Array([1, 41, 2]), cuSeqlens: new Int32Array([0, 3]) }), 'ERR_TALARIA_RANGE', 'ids');
    expectThrows(() => model.forward({ ids: new Int32Array([1, -1]), cuSeqlens: new Int32Array([0, 2]) }), 'ERR_TALARIA_RANGE', 'ids');
    const long = new Int32Array(65).fill(3);
    expectThrows(() => model.forward({ ids: long, cuSeqlens: new Int32Array([0, 65]) }), 'ERR_TALARIA_RANGE', 'max_position_embeddings');
    expectThrows(() => model.forward({ ids: new Int32Array([1, 2]), cuSeqlens: new Int32Array([0, 3]) }), 'ERR_TALARIA_SHAPE', 'cuSeqlens');
    expectThrows(() => model.forward({ ids: new Int32Array(0), cuSeqlens: new Int32Array([0]) }), 'ERR_TALARIA_SHAPE', 'ids');
    expectThrows(() => model.forward({ ids: new Float32Array(2) as never, cuSeqlens: new Int32Array([0, 2]) }), 'ERR_TALARIA_DTYPE', 'ids');
    expectThrows(() => model.forward({ ids: new Int32Array([1]), cuSeqlens: new Int32Array([0, 1]) }, { score: true }), 'ERR_TALARIA_RANGE', 'score');
    expectThrows(() => model.forward({ ids: new Int32Array([1]), cuSeqlens: new Int32Array([0, 1]) }, { lm: false }), 'ERR_TALARIA_RANGE', 'nothing');
    model.dispose();
  });

  it('rejects parameters of the wrong size, bad heads and bad suppressed tokens', () => {
    expectThrows(() => new TransformerModel(config, heads, { params: new Float32Array(10) }), 'ERR_TALARIA_SHAPE', 'params');
    expectThrows(() => new TransformerModel(config, { lm: false, score: false }), 'ERR_TALARIA_RANGE', 'heads');
    expectThrows(() => new TransformerModel(config, heads, { suppressTokens: [41] }), 'ERR_TALARIA_RANGE', 'suppressTokens');
    expectThrows(() => new TransformerModel(config, heads, { recompute: [2] }), 'ERR_TALARIA_RANGE', 'recompute');
    const model = new TransformerModel(config, heads);
    expectThrows(() => model.parameter('model.layers.9.mlp.up_proj.weight'), 'ERR_TALARIA_RANGE', 'no parameter');
    expectThrows(() => model.loadParameters(new Float32Array(3)), 'ERR_TALARIA_SHAPE', 'src');
    model.dispose();
  });

  it('rejects backward gradients of the wrong shape, for a missing head, or twice', () => {
    const model = new TransformerModel(config, heads);
    const batch = { ids: new Int32Array([1, 2, 3]), cuSeqlens: new Int32Array([0, 3]) };
    const out = model.forward(batch);
    expectThrows(() => model.backward(out, {}), 'ERR_TALARIA_RANGE', 'dLogits');
    expectThrows(() => model.backward(out, { dLogits: Tensor.empty([2, 41], 'f32') }), 'ERR_TALARIA_SHAPE', 'dLogits');
    expectThrows(() => model.backward(out, { dValues: Tensor.empty([3], 'f32') }), 'ERR_TALARIA_RANGE', 'dValues');
    expectThrows(() => model.backward(out, { dLogits: new Float32Array(123) as never }), 'ERR_TALARIA_DTYPE', 'dLogits');
    model.backward(out, { dLogits: out.logits });
    expectThrows(() => model.backward(out, { dLogits: Tensor.empty([3, 41], 'f32') }), 'ERR_TALARIA_RANGE', 'already');
    model.dispose();
  });
});
