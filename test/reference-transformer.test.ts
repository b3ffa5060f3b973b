// The float64 Llama reference (test/reference/transformer.ts) checked on its own, since it is the oracle
// for the engine: refBackward against central finite differences of refForward for every parameter
// tensor (tied and untied embeddings, GQA, MHA and MQA, with and without q/k/v and o biases, each head
// combination, packed sequences with lengths 0 and 1); packing invariance; causality; GQA equal to MHA
// with repeated kv weights (repeat_kv); tied equal to untied with a copied head; layer 0 against the
// independent attention and RoPE references; a two-token forward spelled out from the HF formulas;
// refCrossEntropy; and bad input.
//
// Finite-difference tolerance: central differences with step 1e-5 in f64 carry a truncation error of
// ~h^2 |L'''| ~ 1e-10 and a rounding error of ~eps |L| / h ~ 1e-10 (|L| ~ 10), so each sampled element
// must agree within 1e-6 relative to max(|gradient|, 1e-3 of the largest gradient of the run).
import { describe, expect, it } from 'vitest';
import { Rng } from '../lib/util/rng.js';
import {
  randomRefParameters, refBackward, refCrossEntropy, refForward, refParameterShapes,
  type RefHeads, type RefModelConfig, type RefParameters,
} from './reference/transformer.js';
import { attentionForwardReference, ropeReference } from './reference/attention.js';
import { cuSeqlensOf } from './helpers/random.js';
import { expectClose, maxAbs } from './helpers/assert.js';

const baseConfig: RefModelConfig = {
  vocabSize: 11, hiddenSize: 12, intermediateSize: 20, numHeads: 4, numKvHeads: 2, headDim: 6, numLayers: 2,
  rmsNormEps: 1e-5, ropeTheta: 10000, tieEmbeddings: false, qkvBias: true, oBias: true,
};
const BOTH: RefHeads = { lm: true, score: true };
const LM: RefHeads = { lm: true, score: false };
const SCORE: RefHeads = { lm: false, score: true };

function randomIds(rng: Rng, n: number, vocabSize: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(vocabSize));
}

function randomVector(rng: Rng, n: number): Float64Array {
  return Float64Array.from({ length: n }, () => 2 * rng.uniform() - 1);
}

function cloneParameters(params: RefParameters): RefParameters {
  return new Map([...params].map(([name, x]) => [name, x.slice()]));
}

describe('refParameterShapes and randomRefParameters', () => {
  it('lists every parameter in HF order with its shape', () => {
    const config = { ...baseConfig, numLayers: 1 };
    expect(refParameterShapes(config, BOTH)).toEqual([
      { name: 'model.embed_tokens.weight', shape: [11, 12] },
      { name: 'model.layers.0.input_layernorm.weight', shape: [12] },
      { name: 'model.layers.0.self_attn.q_proj.weight', shape: [24, 12] },
      { name: 'model.layers.0.self_attn.q_proj.bias', shape: [24] },
      { name: 'model.layers.0.self_attn.k_proj.weight', shape: [12, 12] },
      { name: 'model.layers.0.self_attn.k_proj.bias', shape: [12] },
      { name: 'model.layers.0.self_attn.v_proj.weight', shape: [12, 12] },
      { name: 'model.layers.0.self_attn.v_proj.bias', shape: [12] },
      { name: 'model.layers.0.self_attn.o_proj.weight', shape: [12, 24] },
      { name: 'model.layers.0.self_attn.o_proj.bias', shape: [12] },
      { name: 'model.layers.0.post_attention_layernorm.weight', shape: [12] },
      { name: 'model.layers.0.mlp.gate_proj.weight', shape: [20, 12] },
      { name: 'model.layers.0.mlp.up_proj.weight', shape: [20, 12] },
      { name: 'model.layers.0.mlp.down_proj.weight', shape: [12, 20] },
      { name: 'model.norm.weight', shape: [12] },
      { name: 'lm_head.weight', shape: [11, 12] },
      { name: 'score.weight', shape: [1, 12] },
      { name: 'score.bias', shape: [1] },
    ]);
  });

  it('omits biases that are off, lm_head when tied or without an LM head, and score without a score head', () => {
    const names = (config: RefModelConfig, heads: RefHeads) => refParameterShapes(config, heads).map((s) => s.name);
    const plain = { ...baseConfig, qkvBias: false, oBias: false };
    expect(names(plain, LM).filter((n) => n.endsWith('.bias'))).toEqual([]);
    expect(names({ ...baseConfig, oBias: false }, LM).filter((n) => n.endsWith('.bias'))).toHaveLength(6);
    expect(names({ ...baseConfig, tieEmbeddings: true }, BOTH)).not.toContain('lm_head.weight');
    expect(names(baseConfig, SCORE)).not.toContain('lm_head.weight');
    expect(names(baseConfig, LM)).not.toContain('score.weight');
    expect(names(baseConfig, LM)).toHaveLength(1 + 2 * 13 + 1 + 1);
  });

  it('draws every parameter at its size, seeded, with no zeros and norms near 1', () => {
    const a = randomRefParameters(baseConfig, BOTH, new Rng(1));
    const b = randomRefParameters(baseConfig, BOTH, new Rng(1));
    const shapes = refParameterShapes(baseConfig, BOTH);
    expect([...a.keys()]).toEqual(shapes.map((s) => s.name));
    for (const { name, shape } of shapes) {
      const x = a.get(name)!;
      expect(x.length, name).toBe(shape.reduce((p, q) => p * q, 1));
      expect(x.every((v) => v !== 0 && Number.isFinite(v)), name).toBe(true);
      if (name.endsWith('norm.weight')) expect(x.every((v) => v >= 0.8 && v <= 1.2), name).toBe(true);
      expect(b.get(name), name).toEqual(x);
    }
    expect(randomRefParameters(baseConfig, BOTH, new Rng(2)).get('model.norm.weight')).not.toEqual(a.get('model.norm.weight'));
  });
});

interface GradientCase {
  label: string;
  config: RefModelConfig;
  heads: RefHeads;
  lengths: number[];
}

const gradientCases: GradientCase[] = [
  { label: 'untied, GQA 4/2, q/k/v and o biases, both heads', config: baseConfig, heads: BOTH, lengths: [4, 1, 6] },
  {
    label: 'tied, MHA 2/2, no biases, LM head only',
    config: { ...baseConfig, tieEmbeddings: true, numHeads: 2, numKvHeads: 2, headDim: 4, qkvBias: false, oBias: false },
    heads: LM, lengths: [1, 5, 0, 3],
  },
  {
    label: 'untied, GQA 4/2, q/k/v biases only (Qwen2), score head only',
    config: { ...baseConfig, oBias: false }, heads: SCORE, lengths: [6, 1],
  },
  {
    label: 'tied, GQA 4/2, q/k/v and o biases, both heads, theta 500000',
    config: { ...baseConfig, tieEmbeddings: true, ropeTheta: 500000 }, heads: BOTH, lengths: [2, 7, 1],
  },
  {
    label: 'untied, MQA 3/1, 3 layers, no biases, LM head only',
    config: { ...baseConfig, numHeads: 3, numKvHeads: 1, headDim: 4, numLayers: 3, qkvBias: false, oBias: false },
    heads: LM, lengths: [5, 1, 3],
  },
];

describe('refBackward matches central finite differences of refForward', () => {
  it.each(gradientCases)('$label', ({ config, heads, lengths }) => {
    const rng = new Rng(lengths.length * 101 + config.numHeads);
    const params = randomRefParameters(config, heads, rng);
    const cuSeqlens = cuSeqlensOf(lengths);
    const n = cuSeqlens[lengths.length];
    const ids = randomIds(rng, n, config.vocabSize);
    const dLogits = heads.lm ? randomVector(rng, n * config.vocabSize) : undefined;
    const dValues = heads.score ? randomVector(rng, n) : undefined;
    const loss = () => {
      const { logits, values } = refForward(config, params, heads, ids, cuSeqlens);
      let sum = 0;
      if (logits) for (let j = 0; j < logits.length; j++) sum += dLogits![j] * logits[j];
      if (values) for (let j = 0; j < values.length; j++) sum += dValues![j] * values[j];
      return sum;
    };
    const { cache } = refForward(config, params, heads, ids, cuSeqlens);
    const grads = refBackward(config, params, heads, cache, { dLogits, dValues });
    expect([...grads.keys()]).toEqual(refParameterShapes(config, heads).map((s) => s.name));
    const largest = Math.max(...[...grads.values()].map(maxAbs));
    expect(largest).toBeGreaterThan(0.1);

    const step = 1e-5;
    const failures: string[] = [];
    for (const [name, x] of params) {
      const g = grads.get(name)!;
      // Untied without an LM head, the embedding gradient lives only in the rows of the ids: sample those.
      const usedRowsOnly = name === 'model.embed_tokens.weight' && !(heads.lm && config.tieEmbeddings);
      const samples = Math.min(8, x.length);
      let nonzero = 0;
      for (let s = 0; s < samples; s++) {
        const j = usedRowsOnly
          ? ids[rng.int(n)] * config.hiddenSize + rng.int(config.hiddenSize)
          : samples === x.length ? s : rng.int(x.length);
        const saved = x[j];
        x[j] = saved + step;
        const plus = loss();
        x[j] = saved - step;
        const minus = loss();
        x[j] = saved;
        const fd = (plus - minus) / (2 * step);
        if (Math.abs(g[j]) > 1e-6 * largest) nonzero++;
        const bound = 1e-6 * Math.max(Math.abs(g[j]), 1e-3 * largest);
        if (!(Math.abs(fd - g[j]) <= bound)) failures.push(`${name}[${j}]: backward ${g[j]}, finite difference ${fd}`);
      }
      // Every sampled tensor carries signal (a zero gradient would pass against a zero difference).
      expect(nonzero, `${name}: nonzero sampled gradients`).toBeGreaterThan(0);
    }
    expect(failures).toEqual([]);
  });

  it('gives zero gradients to a head with no upstream gradient, and to embedding rows no id uses (untied)', () => {
    const config = baseConfig;
    const rng = new Rng(7);
    const params = randomRefParameters(config, BOTH, rng);
    const ids = Int32Array.from([3, 5, 3, 9, 0]), cuSeqlens = cuSeqlensOf([3, 2]);
    const { cache } = refForward(config, params, BOTH, ids, cuSeqlens);
    const onlyLm = refBackward(config, params, BOTH, cache, { dLogits: randomVector(rng, 5 * config.vocabSize) });
    expect(maxAbs(onlyLm.get('score.weight')!)).toBe(0);
    expect(maxAbs(onlyLm.get('score.bias')!)).toBe(0);
    expect(maxAbs(onlyLm.get('lm_head.weight')!)).toBeGreaterThan(0);
    const onlyScore = refBackward(config, params, BOTH, cache, { dValues: randomVector(rng, 5) });
    expect(maxAbs(onlyScore.get('lm_head.weight')!)).toBe(0);
    expect(maxAbs(onlyScore.get('score.bias')!)).toBeGreaterThan(0);
    const embed = onlyScore.get('model.embed_tokens.weight')!, d = config.hiddenSize;
    for (let row = 0; row < config.vocabSize; row++) {
      const rowMax = maxAbs(embed.subarray(row * d, (row + 1) * d));
      if ([0, 3, 5, 9].includes(row)) expect(rowMax, `row ${row}`).toBeGreaterThan(0);
      else expect(rowMax, `row ${row}`).toBe(0);
    }
    const none = refBackward(config, params, BOTH, cache, {});
    for (const [name, g] of none) expect(maxAbs(g), name).toBe(0);
  });
});

describe('refForward semantics', () => {
  const config = { ...baseConfig, vocabSize: 13 };

  it('packing: every sequence of a pack gives the logits and values it gives alone', () => {
    const rng = new Rng(11);
    const params = randomRefParameters(config, BOTH, rng);
    const lengths = [5, 0, 1, 7, 3];
    const cuSeqlens = cuSeqlensOf(lengths);
    const ids = randomIds(rng, cuSeqlens[lengths.length], config.vocabSize);
    const packed = refForward(config, params, BOTH, ids, cuSeqlens);
    const V = config.vocabSize;
    for (let b = 0; b < lengths.length; b++) {
      const [start, end] = [cuSeqlens[b], cuSeqlens[b + 1]];
      const alone = refForward(config, params, BOTH, ids.slice(start, end), cuSeqlensOf([end - start]));
      expect(alone.logits, `sequence ${b}`).toEqual(packed.logits!.slice(start * V, end * V));
      expect(alone.values, `sequence ${b}`).toEqual(packed.values!.slice(start, end));
    }
    expect(maxAbs(packed.logits!)).toBeGreaterThan(0.1);
  });

  it('causality: changing the last token of a sequence changes only that token\'s outputs', () => {
    const rng = new Rng(12);
    const params = randomRefParameters(config, BOTH, rng);
    const cuSeqlens = cuSeqlensOf([4, 6, 1]);
    const ids = randomIds(rng, 11, config.vocabSize);
    const before = refForward(config, params, BOTH, ids, cuSeqlens);
    const V = config.vocabSize;
    for (const last of [3, 9, 10]) {
      const changed = ids.slice();
      changed[last] = (ids[last] + 1 + rng.int(V - 1)) % V;
      const after = refForward(config, params, BOTH, changed, cuSeqlens);
      for (let t = 0; t < 11; t++) {
        const rowBefore = before.logits!.slice(t * V, (t + 1) * V), rowAfter = after.logits!.slice(t * V, (t + 1) * V);
        if (t === last) {
          expect(rowAfter, `token ${t}`).not.toEqual(rowBefore);
          expect(after.values![t], `token ${t}`).not.toBe(before.values![t]);
        } else {
          expect(rowAfter, `token ${t} after changing ${last}`).toEqual(rowBefore);
          expect(after.values![t], `token ${t} after changing ${last}`).toBe(before.values![t]);
        }
      }
    }
  });

  it('a token attends to earlier tokens of its sequence: changing the first token changes the later ones', () => {
    const rng = new Rng(13);
    const params = randomRefParameters(config, LM, rng);
    const ids = randomIds(rng, 5, config.vocabSize);
    const changed = ids.slice();
    changed[0] = (ids[0] + 1) % config.vocabSize;
    const a = refForward(config, params, LM, ids, cuSeqlensOf([5])).logits!;
    const b = refForward(config, params, LM, changed, cuSeqlensOf([5])).logits!;
    const V = config.vocabSize;
    for (let t = 0; t < 5; t++) expect(b.slice(t * V, (t + 1) * V), `token ${t}`).not.toEqual(a.slice(t * V, (t + 1) * V));
  });

  it('GQA equals MHA with each kv head\'s weights repeated (repeat_kv), forward and gradients', () => {
    const gqa = { ...baseConfig, numHeads: 4, numKvHeads: 2 };
    const mha = { ...gqa, numKvHeads: 4 };
    const rng = new Rng(14);
    const params = randomRefParameters(gqa, BOTH, rng);
    const group = gqa.numHeads / gqa.numKvHeads, rowsPerHead = gqa.headDim * gqa.hiddenSize, Dh = gqa.headDim;
    const repeated = cloneParameters(params);
    for (let l = 0; l < gqa.numLayers; l++) {
      for (const proj of ['k_proj', 'v_proj']) {
        const w = params.get(`model.layers.${l}.self_attn.${proj}.weight`)!, bias = params.get(`model.layers.${l}.self_attn.${proj}.bias`)!;
        const w4 = new Float64Array(mha.numKvHeads * rowsPerHead), b4 = new Float64Array(mha.numKvHeads * Dh);
        for (let h = 0; h < mha.numKvHeads; h++) {
          const src = Math.floor(h / group);
          w4.set(w.subarray(src * rowsPerHead, (src + 1) * rowsPerHead), h * rowsPerHead);
          b4.set(bias.subarray(src * Dh, (src + 1) * Dh), h * Dh);
        }
        repeated.set(`model.layers.${l}.self_attn.${proj}.weight`, w4);
        repeated.set(`model.layers.${l}.self_attn.${proj}.bias`, b4);
      }
    }
    const cuSeqlens = cuSeqlensOf([3, 1, 5]);
    const ids = randomIds(rng, 9, gqa.vocabSize);
    const dLogits = randomVector(rng, 9 * gqa.vocabSize), dValues = randomVector(rng, 9);
    const a = refForward(gqa, params, BOTH, ids, cuSeqlens), b = refForward(mha, repeated, BOTH, ids, cuSeqlens);
    expectClose(b.logits!, a.logits!, { rel: 1e-12 });
    expectClose(b.values!, a.values!, { rel: 1e-12 });
    const ga = refBackward(gqa, params, BOTH, a.cache, { dLogits, dValues });
    const gb = refBackward(mha, repeated, BOTH, b.cache, { dLogits, dValues });
    for (const [name, g] of ga) {
      const other = gb.get(name)!;
      if (/[kv]_proj/.test(name)) {
        // A repeated kv head's gradient is the sum over the query heads of its group.
        const per = g.length / gqa.numKvHeads;
        const summed = new Float64Array(g.length);
        for (let h = 0; h < mha.numKvHeads; h++) {
          for (let j = 0; j < per; j++) summed[Math.floor(h / group) * per + j] += other[h * per + j];
        }
        expectClose(summed, g, { rel: 1e-10, scale: maxAbs(g) });
      } else {
        expectClose(other, g, { rel: 1e-10, scale: maxAbs(g) });
      }
    }
  });

  it('tied embeddings equal an untied LM head holding a copy of the embedding; the tied gradient is the sum', () => {
    const tied = { ...baseConfig, tieEmbeddings: true }, untied = { ...baseConfig, tieEmbeddings: false };
    const rng = new Rng(15);
    const params = randomRefParameters(tied, LM, rng);
    const withHead = cloneParameters(params);
    withHead.set('lm_head.weight', params.get('model.embed_tokens.weight')!.slice());
    const cuSeqlens = cuSeqlensOf([2, 5]);
    const ids = randomIds(rng, 7, tied.vocabSize);
    const dLogits = randomVector(rng, 7 * tied.vocabSize);
    const a = refForward(tied, params, LM, ids, cuSeqlens), b = refForward(untied, withHead, LM, ids, cuSeqlens);
    expect(a.logits).toEqual(b.logits);
    const ga = refBackward(tied, params, LM, a.cache, { dLogits });
    const gb = refBackward(untied, withHead, LM, b.cache, { dLogits });
    const embedUntied = gb.get('model.embed_tokens.weight')!, head = gb.get('lm_head.weight')!;
    const embedTied = ga.get('model.embed_tokens.weight')!;
    expectClose(embedTied, embedUntied.map((g, j) => g + head[j]), { rel: 1e-12, scale: maxAbs(embedTied) });
  });

  it('layer 0 agrees with the independent RoPE and attention references', () => {
    const config = { ...baseConfig, numHeads: 4, numKvHeads: 2, headDim: 8 };
    const rng = new Rng(16);
    const params = randomRefParameters(config, LM, rng);
    const cuSeqlens = cuSeqlensOf([6, 1, 9]);
    const ids = randomIds(rng, 16, config.vocabSize);
    const { cache } = refForward(config, params, LM, ids, cuSeqlens);
    const { a, q, k, v, o } = cache.layers[0];
    const { numHeads: H, numKvHeads: Hkv, headDim: Dh, hiddenSize: d } = config;
    // Undo RoPE with the attention family's reference and compare with the plain projections of a.
    for (const [proj, rotated, heads] of [['q_proj', q, H], ['k_proj', k, Hkv]] as const) {
      const w = params.get(`model.layers.0.self_attn.${proj}.weight`)!, bias = params.get(`model.layers.0.self_attn.${proj}.bias`)!;
      const projected = new Float64Array(16 * heads * Dh);
      for (let t = 0; t < 16; t++) {
        for (let r = 0; r < heads * Dh; r++) {
          let acc = bias[r];
          for (let i = 0; i < d; i++) acc += a[t * d + i] * w[r * d + i];
          projected[t * heads * Dh + r] = acc;
        }
      }
      expectClose(ropeReference(rotated, cuSeqlens, heads, Dh, config.ropeTheta, true), projected, { rel: 1e-12 });
      expectClose(rotated, ropeReference(projected, cuSeqlens, heads, Dh, config.ropeTheta), { rel: 1e-12 });
    }
    // The attention reference rounds its scale to f32 (a relative 3e-8 on the scores).
    const attention = attentionForwardReference({ q, k, v, cuSeqlens, numHeads: H, numKvHeads: Hkv, headDim: Dh });
    expectClose(o, attention.o, { rel: 1e-6 });
    expect(maxAbs(o)).toBeGreaterThan(0.1);
  });

  it('a two-token sequence through one layer equals the HF formulas spelled out token by token', () => {
    // Written from the HF modelling code with plain arrays, independent of the reference's loops: a
    // different shape of the same math catches swapped gate/up, a misplaced eps, a dropped residual.
    const cfg = { ...baseConfig, numLayers: 1, ropeTheta: 100 };
    const { hiddenSize: d, numHeads: H, numKvHeads: Hkv, headDim: Dh, rmsNormEps: eps } = cfg;
    const params = randomRefParameters(cfg, BOTH, new Rng(21));
    const W = (name: string) => Array.from(params.get(name)!);
    const L = (suffix: string) => W(`model.layers.0.${suffix}`);
    const matVec = (w: number[], x: number[], b?: number[]) =>
      Array.from({ length: w.length / x.length }, (_, r) => x.reduce((s, xi, i) => s + w[r * x.length + i] * xi, b ? b[r] : 0));
    const norm = (x: number[], w: number[]) => {
      const rms = Math.sqrt(x.reduce((s, xi) => s + xi * xi, 0) / x.length + eps);
      return x.map((xi, i) => (xi / rms) * w[i]);
    };
    const add = (x: number[], y: number[]) => x.map((xi, i) => xi + y[i]);
    const headOf = (x: number[], h: number) => x.slice(h * Dh, (h + 1) * Dh);
    const rotate = (x: number[], pos: number) => x.map((_, i) => {
      const j = i % (Dh / 2), angle = pos * cfg.ropeTheta ** (-2 * j / Dh);
      return i < Dh / 2 ? x[i] * Math.cos(angle) - x[i + Dh / 2] * Math.sin(angle) : x[i] * Math.cos(angle) + x[i - Dh / 2] * Math.sin(angle);
    });
    const ids = [7, 2];
    const embed = W('model.embed_tokens.weight');
    const h0 = ids.map((id) => embed.slice(id * d, (id + 1) * d));
    const a = h0.map((x) => norm(x, L('input_layernorm.weight')));
    const q = a.map((x) => matVec(L('self_attn.q_proj.weight'), x, L('self_attn.q_proj.bias')));
    const k = a.map((x) => matVec(L('self_attn.k_proj.weight'), x, L('self_attn.k_proj.bias')));
    const v = a.map((x) => matVec(L('self_attn.v_proj.weight'), x, L('self_attn.v_proj.bias')));
    const o = [0, 1].map((t) => Array.from({ length: H }, (_, h) => {
      const kvh = Math.floor(h / (H / Hkv));
      const qh = rotate(headOf(q[t], h), t);
      const scores = [0, 1].slice(0, t + 1).map((s) => rotate(headOf(k[s], kvh), s).reduce((acc, ki, i) => acc + ki * qh[i], 0) / Math.sqrt(Dh));
      const weights = scores.map((s) => Math.exp(s) / scores.reduce((acc, r) => acc + Math.exp(r), 0));
      return Array.from({ length: Dh }, (_, e) => weights.reduce((acc, p, s) => acc + p * headOf(v[s], kvh)[e], 0));
    }).flat());
    const h1 = h0.map((x, t) => add(x, matVec(L('self_attn.o_proj.weight'), o[t], L('self_attn.o_proj.bias'))));
    const h2 = h1.map((x) => {
      const m = norm(x, L('post_attention_layernorm.weight'));
      const gate = matVec(L('mlp.gate_proj.weight'), m), up = matVec(L('mlp.up_proj.weight'), m);
      const act = gate.map((g, j) => (g / (1 + Math.exp(-g))) * up[j]);
      return add(x, matVec(L('mlp.down_proj.weight'), act));
    });
    const x = h2.map((hh) => norm(hh, W('model.norm.weight')));
    const logits = x.flatMap((xt) => matVec(W('lm_head.weight'), xt));
    const values = x.map((xt) => matVec(W('score.weight'), xt, W('score.bias'))[0]);

    const got = refForward(cfg, params, BOTH, Int32Array.from(ids), cuSeqlensOf([2]));
    expectClose(got.logits!, logits, { rel: 1e-12 });
    expectClose(got.values!, values, { rel: 1e-12 });
    expect(maxAbs(logits)).toBeGreaterThan(0.1);
  });

  it('handles an empty batch and all-empty sequences', () => {
    const params = randomRefParameters(baseConfig, BOTH, new Rng(17));
    for (const cuSeqlens of [Int32Array.from([0]), Int32Array.from([0, 0, 0])]) {
      const { logits, values, cache } = refForward(baseConfig, params, BOTH, new Int32Array(0), cuSeqlens);
      expect(logits!.length).toBe(0);
      expect(values!.length).toBe(0);
      const grads = refBackward(baseConfig, params, BOTH, cache, { dLogits: new Float64Array(0), dValues: new Float64Array(0) });
      for (const [name, g] of grads) expect(maxAbs(g), name).toBe(0);
    }
  });

  it('runs a d = 64, 2-layer, 40-token, V = 64 forward and backward', () => {
    const big: RefModelConfig = {
      vocabSize: 64, hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, headDim: 16, numLayers: 2,
      rmsNormEps: 1e-6, ropeTheta: 10000, tieEmbeddings: true, qkvBias: true, oBias: false,
    };
    const rng = new Rng(18);
    const params = randomRefParameters(big, BOTH, rng);
    const cuSeqlens = cuSeqlensOf([17, 1, 22]);
    const ids = randomIds(rng, 40, 64);
    const { logits, values, cache } = refForward(big, params, BOTH, ids, cuSeqlens);
    expect(logits!.every(Number.isFinite) && values!.every(Number.isFinite)).toBe(true);
    const grads = refBackward(big, params, BOTH, cache, { dLogits: randomVector(rng, 40 * 64), dValues: randomVector(rng, 40) });
    for (const [name, g] of grads) expect(g.every(Number.isFinite) && maxAbs(g) > 0, name).toBe(true);
  });
});

describe('refCrossEntropy', () => {
  it('is log V on uniform logits and matches finite differences, counting only masked-in rows', () => {
    const V = 7, n = 5;
    const uniform = refCrossEntropy(new Float64Array(n * V).fill(0.3), Int32Array.from([0, 6, 3, 2, 1]));
    expect(uniform.loss).toBeCloseTo(Math.log(V), 14);

    const rng = new Rng(19);
    const logits = Float64Array.from({ length: n * V }, () => 4 * rng.normal());
    const targets = Int32Array.from([2, 0, 6, 6, 4]);
    const mask = Uint8Array.from([1, 0, 1, 1, 0]);
    const { loss, dLogits } = refCrossEntropy(logits, targets, mask);
    // Direct: mean of -log softmax(row)[target] over rows 0, 2, 3.
    let direct = 0;
    for (const t of [0, 2, 3]) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const sum = row.reduce((s, z) => s + Math.exp(z), 0);
      direct -= Math.log(Math.exp(row[targets[t]]) / sum) / 3;
    }
    expect(loss).toBeCloseTo(direct, 12);
    for (const t of [1, 4]) expect(maxAbs(dLogits.subarray(t * V, (t + 1) * V))).toBe(0);
    for (let j = 0; j < logits.length; j++) {
      const saved = logits[j];
      logits[j] = saved + 1e-5;
      const plus = refCrossEntropy(logits, targets, mask).loss;
      logits[j] = saved - 1e-5;
      const minus = refCrossEntropy(logits, targets, mask).loss;
      logits[j] = saved;
      expect(Math.abs((plus - minus) / 2e-5 - dLogits[j]), `dLogits[${j}]`).toBeLessThanOrEqual(1e-8);
    }
    expect(refCrossEntropy(logits, targets).loss).toBeCloseTo(
      [0, 1, 2, 3, 4].reduce((s, t) => s + refCrossEntropy(logits, targets, [0, 1, 2, 3, 4].map((u) => (u === t ? 1 : 0))).loss, 0) / 5, 12);
    const none = refCrossEntropy(logits, targets, new Uint8Array(n));
    expect(none.loss).toBe(0);
    expect(maxAbs(none.dLogits)).toBe(0);
  });

  it('rejects bad input', () => {
    const logits = new Float64Array(12);
    expect(() => refCrossEntropy(logits, Int32Array.from([0, 1, 4]))).toThrow(/targets\[2\]/);
    expect(() => refCrossEntropy(logits, Int32Array.from([0, -1, 1]))).toThrow(/targets\[1\]/);
    expect(() => refCrossEntropy(logits, Int32Array.from([0, 1, 2, 0, 1]))).toThrow(/logits/);
    expect(() => refCrossEntropy(new Float64Array(0), Int32Array.from([0]))).toThrow(/logits/);
    expect(() => refCrossEntropy(logits, Int32Array.from([0, 1, 2]), [1, 1])).toThrow(/mask/);
  });
});

describe('reference input validation', () => {
  const rng = new Rng(20);
  const params = randomRefParameters(baseConfig, BOTH, rng);
  const ids = Int32Array.from([1, 2, 3, 4]), cuSeqlens = cuSeqlensOf([3, 1]);
  const forward = (over: Partial<{ config: RefModelConfig; params: RefParameters; heads: RefHeads; ids: Int32Array; cuSeqlens: Int32Array }>) =>
    () => refForward(over.config ?? baseConfig, over.params ?? params, over.heads ?? BOTH, over.ids ?? ids, over.cuSeqlens ?? cuSeqlens);

  it('rejects bad configs', () => {
    expect(forward({ config: { ...baseConfig, headDim: 5 } })).toThrow(/headDim must be even/);
    expect(forward({ config: { ...baseConfig, numKvHeads: 3 } })).toThrow(/multiple of config.numKvHeads/);
    for (const key of ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHeads', 'numKvHeads', 'headDim', 'numLayers'] as const) {
      expect(forward({ config: { ...baseConfig, [key]: 0 } }), key).toThrow(new RegExp(`config.${key}`));
      expect(forward({ config: { ...baseConfig, [key]: 2.5 } }), key).toThrow(new RegExp(`config.${key}`));
    }
    expect(forward({ config: { ...baseConfig, rmsNormEps: 0 } })).toThrow(/rmsNormEps/);
    expect(forward({ config: { ...baseConfig, ropeTheta: NaN } })).toThrow(/ropeTheta/);
    expect(forward({ config: { ...baseConfig, qkvBias: 1 as unknown as boolean } })).toThrow(/qkvBias/);
    expect(forward({ heads: { lm: true } as RefHeads })).toThrow(/heads/);
  });

  it('rejects bad ids and cuSeqlens', () => {
    expect(forward({ ids: Int32Array.from([1, 2, 11, 4]) })).toThrow(/ids\[2\]/);
    expect(forward({ ids: Int32Array.from([1, -1, 3, 4]) })).toThrow(/ids\[1\]/);
    expect(forward({ ids: [1, 2, 3, 4] as unknown as Int32Array })).toThrow(/ids must be an Int32Array/);
    expect(forward({ cuSeqlens: Int32Array.from([1, 4]) })).toThrow(/cuSeqlens must start at 0/);
    expect(forward({ cuSeqlens: new Int32Array(0) })).toThrow(/cuSeqlens must start at 0/);
    expect(forward({ cuSeqlens: Int32Array.from([0, 3, 2, 4]) })).toThrow(/non-decreasing/);
    expect(forward({ cuSeqlens: Int32Array.from([0, 3]) })).toThrow(/must end at ids.length/);
    expect(forward({ cuSeqlens: Int32Array.from([0, 2, 5]) })).toThrow(/must end at ids.length/);
    expect(forward({ cuSeqlens: [0, 4] as unknown as Int32Array })).toThrow(/cuSeqlens must be an Int32Array/);
  });

  it('rejects missing, short and mistyped parameters', () => {
    const without = cloneParameters(params);
    without.delete('model.layers.1.mlp.up_proj.weight');
    expect(forward({ params: without })).toThrow(/model.layers.1.mlp.up_proj.weight/);
    const short = cloneParameters(params);
    short.set('score.bias', new Float64Array(2));
    expect(forward({ params: short })).toThrow(/'score.bias' must have 1 elements/);
    const f32 = cloneParameters(params);
    f32.set('model.norm.weight', new Float32Array(12) as unknown as Float64Array);
    expect(forward({ params: f32 })).toThrow(/model.norm.weight/);
    // An untied LM head needs lm_head.weight; a tied one does not.
    const noHead = cloneParameters(params);
    noHead.delete('lm_head.weight');
    expect(forward({ params: noHead })).toThrow(/lm_head.weight/);
    expect(forward({ params: noHead, config: { ...baseConfig, tieEmbeddings: true } })).not.toThrow();
  });

  it('rejects bad upstream gradients and a cache from another config', () => {
    const { cache } = refForward(baseConfig, params, BOTH, ids, cuSeqlens);
    const V = baseConfig.vocabSize;
    expect(() => refBackward(baseConfig, params, BOTH, cache, { dLogits: new Float64Array(4 * V - 1) })).toThrow(/dLogits/);
    expect(() => refBackward(baseConfig, params, BOTH, cache, { dValues: new Float64Array(5) })).toThrow(/dValues/);
    expect(() => refBackward(baseConfig, params, SCORE, cache, { dLogits: new Float64Array(4 * V) })).toThrow(/heads.lm is false/);
    expect(() => refBackward(baseConfig, params, LM, cache, { dValues: new Float64Array(4) })).toThrow(/heads.score is false/);
    expect(() => refBackward({ ...baseConfig, numLayers: 1 }, params, BOTH, cache, {})).toThrow(/layers/);
    const wider = { ...baseConfig, hiddenSize: 16 };
    expect(() => refBackward(wider, randomRefParameters(wider, BOTH, rng), BOTH, cache, {})).toThrow(/cache.x/);
    const without = cloneParameters(params);
    without.delete('score.weight');
    expect(() => refBackward(baseConfig, without, BOTH, cache, {})).toThrow(/score.weight/);
  });
});
