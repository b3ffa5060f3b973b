// Float64 reference of a Llama-style decoder (Hugging Face LlamaForCausalLM semantics, with Qwen2's
// q/k/v biases and a Talaria reward/value head), forward and backward: the test oracle for the engine
// in lib/nn. Plain loops over Float64Array, one step per function, nothing fused or clever: every line
// should be checkable against the HF modelling code by eye. Sized for tiny configs (d <= 64, a few
// layers, N <= ~100 tokens): the attention probabilities are kept as a dense [H, N, N] array.
//
// Packed sequences (DESIGN.md, "Data layouts"): ids [N] with cuSeqlens [B+1]; a token's RoPE position
// is its index inside its own sequence, and attention is causal within each sequence only.
import type { ModelConfig } from '../../lib/nn/config.js';
import type { Rng } from '../../lib/util/rng.js';

/** The decoder's shape and options: the fields of the engine's ModelConfig that the math depends on. */
export type RefModelConfig = Pick<
  ModelConfig,
  | 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim' | 'numLayers'
  | 'rmsNormEps' | 'ropeTheta' | 'tieEmbeddings' | 'qkvBias' | 'oBias'
>;

/** Which output heads exist: the LM head (logits) and the scalar reward/value head (score). */
export interface RefHeads {
  lm: boolean;
  score: boolean;
}

/** Parameters (and gradients) keyed by Hugging Face Llama names, row-major. */
export type RefParameters = Map<string, Float64Array>;

export interface RefParameterShape {
  name: string;
  shape: number[];
}

const layerName = (i: number, suffix: string) => `model.layers.${i}.${suffix}`;

/** Every parameter the config and heads call for, in HF order, with its row-major shape. */
export function refParameterShapes(config: RefModelConfig, heads: RefHeads): RefParameterShape[] {
  validateConfig(config);
  const { vocabSize: V, hiddenSize: d, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: Dh } = config;
  const shapes: RefParameterShape[] = [{ name: 'model.embed_tokens.weight', shape: [V, d] }];
  const add = (name: string, shape: number[]) => shapes.push({ name, shape });
  for (let i = 0; i < config.numLayers; i++) {
    add(layerName(i, 'input_layernorm.weight'), [d]);
    for (const [proj, rows] of [['q_proj', H * Dh], ['k_proj', Hkv * Dh], ['v_proj', Hkv * Dh]] as const) {
      add(layerName(i, `self_attn.${proj}.weight`), [rows, d]);
      if (config.qkvBias) add(layerName(i, `self_attn.${proj}.bias`), [rows]);
    }
    add(layerName(i, 'self_attn.o_proj.weight'), [d, H * Dh]);
    if (config.oBias) add(layerName(i, 'self_attn.o_proj.bias'), [d]);
    add(layerName(i, 'post_attention_layernorm.weight'), [d]);
    add(layerName(i, 'mlp.gate_proj.weight'), [F, d]);
    add(layerName(i, 'mlp.up_proj.weight'), [F, d]);
    add(layerName(i, 'mlp.down_proj.weight'), [d, F]);
  }
  add('model.norm.weight', [d]);
  if (heads.lm && !config.tieEmbeddings) add('lm_head.weight', [V, d]);
  if (heads.score) {
    add('score.weight', [1, d]);
    add('score.bias', [1]);
  }
  return shapes;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Random parameters for tests: weights N(0, 0.2^2), norm weights uniform in [0.8, 1.2], biases
 * N(0, 0.05^2). Nothing is zero or constant, so every gradient path carries signal.
 */
export function randomRefParameters(config: RefModelConfig, heads: RefHeads, rng: Rng): RefParameters {
  const params: RefParameters = new Map();
  for (const { name, shape } of refParameterShapes(config, heads)) {
    const x = new Float64Array(sizeOf(shape));
    const isNorm = name.endsWith('norm.weight');
    const isBias = name.endsWith('.bias');
    for (let j = 0; j < x.length; j++) {
      x[j] = isNorm ? 0.8 + 0.4 * rng.uniform() : isBias ? 0.05 * rng.normal() : 0.2 * rng.normal();
    }
    params.set(name, x);
  }
  return params;
}

// ---------------------------------------------------------------------------------------------------
// Validation: plain Errors (the reference is test code, not the addon's trust boundary).

function validateConfig(c: RefModelConfig): void {
  const positive = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHeads', 'numKvHeads', 'headDim', 'numLayers'] as const;
  for (const key of positive) {
    if (!Number.isSafeInteger(c[key]) || c[key] <= 0) throw new Error(`config.${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.headDim % 2 !== 0) throw new Error(`config.headDim must be even (RoPE rotates halves), got ${c.headDim}`);
  if (c.numHeads % c.numKvHeads !== 0)
    throw new Error(`config.numHeads (${c.numHeads}) must be a multiple of config.numKvHeads (${c.numKvHeads})`);
  if (!(c.rmsNormEps > 0) || !Number.isFinite(c.rmsNormEps)) throw new Error(`config.rmsNormEps must be finite and > 0, got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0) || !Number.isFinite(c.ropeTheta)) throw new Error(`config.ropeTheta must be finite and > 0, got ${c.ropeTheta}`);
  for (const key of ['tieEmbeddings', 'qkvBias', 'oBias'] as const) {
    if (typeof c[key] !== 'boolean') throw new Error(`config.${key} must be a boolean, got ${String(c[key])}`);
  }
}

function validateHeads(heads: RefHeads): void {
  if (typeof heads.lm !== 'boolean' || typeof heads.score !== 'boolean')
    throw new Error(`heads must be { lm: boolean; score: boolean }, got ${JSON.stringify(heads)}`);
}

function validateParameters(config: RefModelConfig, heads: RefHeads, params: RefParameters): void {
  for (const { name, shape } of refParameterShapes(config, heads)) {
    const x = params.get(name);
    if (!(x instanceof Float64Array)) throw new Error(`params: missing Float64Array '${name}' of shape [${shape}]`);
    if (x.length !== sizeOf(shape)) throw new Error(`params: '${name}' must have ${sizeOf(shape)} elements ([${shape}]), got ${x.length}`);
  }
}

function validateTokens(config: RefModelConfig, ids: Int32Array, cuSeqlens: Int32Array): void {
  if (!(ids instanceof Int32Array)) throw new Error('ids must be an Int32Array');
  if (!(cuSeqlens instanceof Int32Array)) throw new Error('cuSeqlens must be an Int32Array');
  for (let t = 0; t < ids.length; t++) {
    if (ids[t] < 0 || ids[t] >= config.vocabSize) throw new Error(`ids[${t}] must be in [0, ${config.vocabSize}), got ${ids[t]}`);
  }
  if (cuSeqlens.length < 1 || cuSeqlens[0] !== 0) throw new Error(`cuSeqlens must start at 0, got [${cuSeqlens}]`);
  for (let b = 1; b < cuSeqlens.length; b++) {
    if (cuSeqlens[b] < cuSeqlens[b - 1]) throw new Error(`cuSeqlens must be non-decreasing, got [${cuSeqlens}]`);
  }
  if (cuSeqlens[cuSeqlens.length - 1] !== ids.length)
    throw new Error(`cuSeqlens must end at ids.length (${ids.length}), got [${cuSeqlens}]`);
}

function param(params: RefParameters, name: string): Float64Array {
  return params.get(name)!; // presence and length checked by validateParameters
}

// ---------------------------------------------------------------------------------------------------
// Building blocks, each with its backward. Activations are [n, dim] row-major.

/** y[t, o] = sum_i x[t, i] w[o, i] + b[o]: x [n, inDim], w [outDim, inDim]. */
function linear(x: Float64Array, n: number, inDim: number, w: Float64Array, outDim: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(n * outDim);
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) acc += x[t * inDim + i] * w[o * inDim + i];
      y[t * outDim + o] = acc;
    }
  }
  return y;
}

/** Accumulates the gradients of y = linear(x, w, b): dw += dy^T x, db += sum_t dy, dx += dy w. */
function linearBackward(dy: Float64Array, x: Float64Array, n: number, inDim: number, w: Float64Array, outDim: number,
  dw: Float64Array, db: Float64Array | undefined, dx: Float64Array | undefined): void {
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < outDim; o++) {
      const g = dy[t * outDim + o];
      if (db) db[o] += g;
      for (let i = 0; i < inDim; i++) {
        dw[o * inDim + i] += g * x[t * inDim + i];
        if (dx) dx[t * inDim + i] += g * w[o * inDim + i];
      }
    }
  }
}

/** rmsnorm(x, w) = x / sqrt(mean(x^2) + eps) * w per row; also returns each row's 1 / rms. */
function rmsNorm(x: Float64Array, n: number, d: number, w: Float64Array, eps: number): { y: Float64Array; invRms: Float64Array } {
  const y = new Float64Array(n * d), invRms = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    let sumSq = 0;
    for (let i = 0; i < d; i++) sumSq += x[t * d + i] ** 2;
    invRms[t] = 1 / Math.sqrt(sumSq / d + eps);
    for (let i = 0; i < d; i++) y[t * d + i] = x[t * d + i] * invRms[t] * w[i];
  }
  return { y, invRms };
}

/**
 * Accumulates the gradients of y = rmsNorm(x, w): with r = 1 / rms and g_i = dy_i w_i,
 * dw_i += dy_i x_i r and dx_i += r g_i - r^3 x_i (sum_k g_k x_k) / d.
 */
function rmsNormBackward(dy: Float64Array, x: Float64Array, invRms: Float64Array, n: number, d: number, w: Float64Array,
  dw: Float64Array, dx: Float64Array): void {
  for (let t = 0; t < n; t++) {
    const r = invRms[t];
    let dot = 0;
    for (let i = 0; i < d; i++) {
      dw[i] += dy[t * d + i] * x[t * d + i] * r;
      dot += dy[t * d + i] * w[i] * x[t * d + i];
    }
    for (let i = 0; i < d; i++) dx[t * d + i] += r * dy[t * d + i] * w[i] - (r ** 3) * x[t * d + i] * dot / d;
  }
}

/**
 * RoPE rotate-half on x [n, heads, Dh], in place: for i < Dh/2 and angle = pos * theta^(-2i/Dh),
 * (x_i, x_{i+Dh/2}) -> (x_i cos - x_{i+Dh/2} sin, x_{i+Dh/2} cos + x_i sin). direction -1 rotates by
 * -angle, which is the transpose (and inverse), so it is the backward.
 */
function rope(x: Float64Array, positions: Int32Array, heads: number, Dh: number, theta: number, direction: 1 | -1): void {
  const half = Dh / 2;
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < heads; h++) {
      const at = (t * heads + h) * Dh;
      for (let i = 0; i < half; i++) {
        const angle = positions[t] * theta ** (-2 * i / Dh);
        const c = Math.cos(angle), s = direction * Math.sin(angle);
        const x1 = x[at + i], x2 = x[at + i + half];
        x[at + i] = x1 * c - x2 * s;
        x[at + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

// ---------------------------------------------------------------------------------------------------
// Forward

/** What one layer's backward needs from its forward. */
export interface RefLayerCache {
  /** Residual stream entering the layer [N, d]. */
  hIn: Float64Array;
  invRms1: Float64Array;
  /** input_layernorm output [N, d]. */
  a: Float64Array;
  /** q [N, H, Dh] and k [N, Hkv, Dh] after RoPE; v [N, Hkv, Dh]. */
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  /** Attention probabilities [H, N, N] (global token indices; zero outside a sequence's causal block). */
  probs: Float64Array;
  /** Attention output before o_proj [N, H * Dh]. */
  o: Float64Array;
  /** Residual stream after attention [N, d]. */
  hMid: Float64Array;
  invRms2: Float64Array;
  /** post_attention_layernorm output [N, d]. */
  m: Float64Array;
  /** gate and up projections [N, F], and silu(gate) * up [N, F]. */
  gate: Float64Array;
  up: Float64Array;
  act: Float64Array;
}

export interface RefForwardCache {
  ids: Int32Array;
  cuSeqlens: Int32Array;
  /** Each token's index inside its own sequence. */
  positions: Int32Array;
  layers: RefLayerCache[];
  /** Residual stream before the final norm [N, d], its 1 / rms, and the final hidden states x [N, d]. */
  hFinal: Float64Array;
  invRmsFinal: Float64Array;
  x: Float64Array;
}

export interface RefForwardResult {
  /** [N, V] if heads.lm. */
  logits?: Float64Array;
  /** [N] if heads.score. */
  values?: Float64Array;
  cache: RefForwardCache;
}

function positionsOf(cuSeqlens: Int32Array, n: number): Int32Array {
  const positions = new Int32Array(n);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) positions[t] = t - cuSeqlens[b];
  }
  return positions;
}

/** Causal softmax attention within each sequence; query head h reads kv head floor(h / (H / Hkv)). */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, cuSeqlens: Int32Array, n: number,
  H: number, Hkv: number, Dh: number): { o: Float64Array; probs: Float64Array } {
  const o = new Float64Array(n * H * Dh), probs = new Float64Array(H * n * n);
  const scale = 1 / Math.sqrt(Dh);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const start = cuSeqlens[b], end = cuSeqlens[b + 1];
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = start; i < end; i++) {
        const row = (h * n + i) * n;
        let max = -Infinity;
        for (let j = start; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < Dh; e++) dot += q[(i * H + h) * Dh + e] * k[(j * Hkv + kvh) * Dh + e];
          probs[row + j] = scale * dot;
          max = Math.max(max, probs[row + j]);
        }
        let sum = 0;
        for (let j = start; j <= i; j++) sum += Math.exp(probs[row + j] - max);
        for (let j = start; j <= i; j++) {
          probs[row + j] = Math.exp(probs[row + j] - max) / sum;
          for (let e = 0; e < Dh; e++) o[(i * H + h) * Dh + e] += probs[row + j] * v[(j * Hkv + kvh) * Dh + e];
        }
      }
    }
  }
  return { o, probs };
}

/** Logits and/or values of packed sequences, plus the cache refBackward needs. */
export function refForward(config: RefModelConfig, params: RefParameters, heads: RefHeads,
  ids: Int32Array, cuSeqlens: Int32Array): RefForwardResult {
  validateConfig(config);
  validateHeads(heads);
  validateParameters(config, heads, params);
  validateTokens(config, ids, cuSeqlens);
  const { vocabSize: V, hiddenSize: d, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: Dh, rmsNormEps: eps } = config;
  const n = ids.length;
  const positions = positionsOf(cuSeqlens, n);
  const bias = (name: string, on: boolean) => (on ? param(params, name) : undefined);

  let h = new Float64Array(n * d);
  const embed = param(params, 'model.embed_tokens.weight');
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) h[t * d + i] = embed[ids[t] * d + i];

  const layers: RefLayerCache[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = (suffix: string) => param(params, layerName(l, suffix));
    const hIn = h;
    const { y: a, invRms: invRms1 } = rmsNorm(hIn, n, d, p('input_layernorm.weight'), eps);
    const q = linear(a, n, d, p('self_attn.q_proj.weight'), H * Dh, bias(layerName(l, 'self_attn.q_proj.bias'), config.qkvBias));
    const k = linear(a, n, d, p('self_attn.k_proj.weight'), Hkv * Dh, bias(layerName(l, 'self_attn.k_proj.bias'), config.qkvBias));
    const v = linear(a, n, d, p('self_attn.v_proj.weight'), Hkv * Dh, bias(layerName(l, 'self_attn.v_proj.bias'), config.qkvBias));
    rope(q, positions, H, Dh, config.ropeTheta, 1);
    rope(k, positions, Hkv, Dh, config.ropeTheta, 1);
    const { o, probs } = attention(q, k, v, cuSeqlens, n, H, Hkv, Dh);
    const attnOut = linear(o, n, H * Dh, p('self_attn.o_proj.weight'), d, bias(layerName(l, 'self_attn.o_proj.bias'), config.oBias));
    const hMid = hIn.map((x, j) => x + attnOut[j]);

    const { y: m, invRms: invRms2 } = rmsNorm(hMid, n, d, p('post_attention_layernorm.weight'), eps);
    const gate = linear(m, n, d, p('mlp.gate_proj.weight'), F);
    const up = linear(m, n, d, p('mlp.up_proj.weight'), F);
    const act = gate.map((g, j) => g * sigmoid(g) * up[j]);
    const mlpOut = linear(act, n, F, p('mlp.down_proj.weight'), d);
    h = hMid.map((x, j) => x + mlpOut[j]);
    layers.push({ hIn, invRms1, a, q, k, v, probs, o, hMid, invRms2, m, gate, up, act });
  }

  const { y: x, invRms: invRmsFinal } = rmsNorm(h, n, d, param(params, 'model.norm.weight'), eps);
  const result: RefForwardResult = { cache: { ids, cuSeqlens, positions, layers, hFinal: h, invRmsFinal, x } };
  if (heads.lm) result.logits = linear(x, n, d, lmHeadWeight(config, params), V);
  if (heads.score) result.values = linear(x, n, d, param(params, 'score.weight'), 1, param(params, 'score.bias'));
  return result;
}

function lmHeadWeight(config: RefModelConfig, params: RefParameters): Float64Array {
  return param(params, config.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
}

// ---------------------------------------------------------------------------------------------------
// Backward

export interface RefUpstream {
  /** dL/dlogits [N, V]; only with heads.lm; omitted means zero. */
  dLogits?: Float64Array;
  /** dL/dvalues [N]; only with heads.score; omitted means zero. */
  dValues?: Float64Array;
}

/** Backward of causal attention, accumulating into dq, dk, dv (all before RoPE is undone). */
function attentionBackward(dO: Float64Array, cache: RefLayerCache, cuSeqlens: Int32Array, n: number,
  H: number, Hkv: number, Dh: number, dq: Float64Array, dk: Float64Array, dv: Float64Array): void {
  const { q, k, v, probs } = cache;
  const scale = 1 / Math.sqrt(Dh);
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const start = cuSeqlens[b], end = cuSeqlens[b + 1];
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = start; i < end; i++) {
        const row = (h * n + i) * n;
        // dP_j = dO_i . v_j; dS_j = P_j (dP_j - sum_k P_k dP_k)
        const dP = new Float64Array(i + 1 - start);
        let weighted = 0;
        for (let j = start; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < Dh; e++) dot += dO[(i * H + h) * Dh + e] * v[(j * Hkv + kvh) * Dh + e];
          dP[j - start] = dot;
          weighted += probs[row + j] * dot;
        }
        for (let j = start; j <= i; j++) {
          const pj = probs[row + j], dS = pj * (dP[j - start] - weighted);
          for (let e = 0; e < Dh; e++) {
            dv[(j * Hkv + kvh) * Dh + e] += pj * dO[(i * H + h) * Dh + e];
            dq[(i * H + h) * Dh + e] += scale * dS * k[(j * Hkv + kvh) * Dh + e];
            dk[(j * Hkv + kvh) * Dh + e] += scale * dS * q[(i * H + h) * Dh + e];
          }
        }
      }
    }
  }
}

/**
 * Gradients of L with dL/dlogits = upstream.dLogits and dL/dvalues = upstream.dValues, for every
 * parameter refParameterShapes lists (zeros where no gradient flows). With tied embeddings the
 * embedding gradient holds both the input-embedding and the LM-head contributions.
 */
export function refBackward(config: RefModelConfig, params: RefParameters, heads: RefHeads, cache: RefForwardCache,
  upstream: RefUpstream): RefParameters {
  validateConfig(config);
  validateHeads(heads);
  validateParameters(config, heads, params);
  const { vocabSize: V, hiddenSize: d, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: Dh } = config;
  const n = cache.ids.length;
  if (cache.layers.length !== config.numLayers) throw new Error(`cache has ${cache.layers.length} layers, config.numLayers is ${config.numLayers}`);
  if (cache.x.length !== n * d) throw new Error(`cache.x must have ${n * d} elements for this config, got ${cache.x.length}`);
  const { dLogits, dValues } = upstream;
  if (dLogits !== undefined) {
    if (!heads.lm) throw new Error('upstream.dLogits given but heads.lm is false');
    if (!(dLogits instanceof Float64Array) || dLogits.length !== n * V)
      throw new Error(`upstream.dLogits must be a Float64Array of ${n * V} elements ([${n}, ${V}]), got ${dLogits.length}`);
  }
  if (dValues !== undefined) {
    if (!heads.score) throw new Error('upstream.dValues given but heads.score is false');
    if (!(dValues instanceof Float64Array) || dValues.length !== n)
      throw new Error(`upstream.dValues must be a Float64Array of ${n} elements, got ${dValues.length}`);
  }

  const grads: RefParameters = new Map();
  for (const { name, shape } of refParameterShapes(config, heads)) grads.set(name, new Float64Array(sizeOf(shape)));
  const grad = (name: string) => grads.get(name)!;
  const gradBias = (name: string, on: boolean) => (on ? grad(name) : undefined);

  // Heads -> dx [N, d]
  const dx = new Float64Array(n * d);
  if (dLogits) {
    const lmName = config.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    linearBackward(dLogits, cache.x, n, d, lmHeadWeight(config, params), V, grad(lmName), undefined, dx);
  }
  if (dValues) linearBackward(dValues, cache.x, n, d, param(params, 'score.weight'), 1, grad('score.weight'), grad('score.bias'), dx);

  // Final norm -> dh, the gradient of the residual stream, carried down through the layers.
  const dh = new Float64Array(n * d);
  rmsNormBackward(dx, cache.hFinal, cache.invRmsFinal, n, d, param(params, 'model.norm.weight'), grad('model.norm.weight'), dh);

  for (let l = config.numLayers - 1; l >= 0; l--) {
    const c = cache.layers[l];
    const p = (suffix: string) => param(params, layerName(l, suffix));
    const g = (suffix: string) => grad(layerName(l, suffix));

    // MLP: h = hMid + down(silu(gate) * up); dh flows to hMid unchanged plus through the MLP.
    const dAct = new Float64Array(n * F);
    linearBackward(dh, c.act, n, F, p('mlp.down_proj.weight'), d, g('mlp.down_proj.weight'), undefined, dAct);
    const dGate = new Float64Array(n * F), dUp = new Float64Array(n * F);
    for (let j = 0; j < n * F; j++) {
      const s = sigmoid(c.gate[j]);
      dUp[j] = dAct[j] * c.gate[j] * s;
      dGate[j] = dAct[j] * c.up[j] * s * (1 + c.gate[j] * (1 - s)); // silu'(z) = s (1 + z (1 - s))
    }
    const dm = new Float64Array(n * d);
    linearBackward(dGate, c.m, n, d, p('mlp.gate_proj.weight'), F, g('mlp.gate_proj.weight'), undefined, dm);
    linearBackward(dUp, c.m, n, d, p('mlp.up_proj.weight'), F, g('mlp.up_proj.weight'), undefined, dm);
    rmsNormBackward(dm, c.hMid, c.invRms2, n, d, p('post_attention_layernorm.weight'), g('post_attention_layernorm.weight'), dh);

    // Attention: hMid = hIn + o_proj(attention(rope(q), rope(k), v)).
    const dO = new Float64Array(n * H * Dh);
    linearBackward(dh, c.o, n, H * Dh, p('self_attn.o_proj.weight'), d, g('self_attn.o_proj.weight'),
      gradBias(layerName(l, 'self_attn.o_proj.bias'), config.oBias), dO);
    const dq = new Float64Array(n * H * Dh), dk = new Float64Array(n * Hkv * Dh), dv = new Float64Array(n * Hkv * Dh);
    attentionBackward(dO, c, cache.cuSeqlens, n, H, Hkv, Dh, dq, dk, dv);
    rope(dq, cache.positions, H, Dh, config.ropeTheta, -1);
    rope(dk, cache.positions, Hkv, Dh, config.ropeTheta, -1);
    const da = new Float64Array(n * d);
    for (const [proj, dy, rows] of [['q_proj', dq, H * Dh], ['k_proj', dk, Hkv * Dh], ['v_proj', dv, Hkv * Dh]] as const) {
      linearBackward(dy, c.a, n, d, p(`self_attn.${proj}.weight`), rows, g(`self_attn.${proj}.weight`),
        gradBias(layerName(l, `self_attn.${proj}.bias`), config.qkvBias), da);
    }
    rmsNormBackward(da, c.hIn, c.invRms1, n, d, p('input_layernorm.weight'), g('input_layernorm.weight'), dh);
  }

  const dEmbed = grad('model.embed_tokens.weight');
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) dEmbed[cache.ids[t] * d + i] += dh[t * d + i];
  return grads;
}

// ---------------------------------------------------------------------------------------------------
// Loss

/**
 * Mean token cross-entropy over the counted rows (mask[t] != 0; every row when mask is omitted) of
 * logits [N, V] against targets [N], and its gradient dLogits [N, V] (zero rows where not counted).
 * With no counted row the loss and gradient are 0.
 */
export function refCrossEntropy(logits: Float64Array, targets: Int32Array, mask?: ArrayLike<number>): { loss: number; dLogits: Float64Array } {
  const n = targets.length;
  if (n === 0 ? logits.length !== 0 : logits.length === 0 || logits.length % n !== 0)
    throw new Error(`logits must have N * V elements (V >= 1) for N = targets.length = ${n}, got ${logits.length}`);
  const V = n === 0 ? 0 : logits.length / n;
  if (mask !== undefined && mask.length !== n) throw new Error(`mask must have ${n} elements, got ${mask.length}`);
  for (let t = 0; t < n; t++) {
    if (!Number.isInteger(targets[t]) || targets[t] < 0 || targets[t] >= V) throw new Error(`targets[${t}] must be in [0, ${V}), got ${targets[t]}`);
  }
  const counted = (t: number) => mask === undefined || mask[t] !== 0;
  let count = 0;
  for (let t = 0; t < n; t++) if (counted(t)) count++;
  const dLogits = new Float64Array(logits.length);
  let loss = 0;
  for (let t = 0; t < n; t++) {
    if (!counted(t)) continue;
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[t * V + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[t * V + j] - max);
    const lse = max + Math.log(sum);
    loss += (lse - logits[t * V + targets[t]]) / count;
    for (let j = 0; j < V; j++) dLogits[t * V + j] = (Math.exp(logits[t * V + j] - lse) - (j === targets[t] ? 1 : 0)) / count;
  }
  return { loss, dLogits };
}
