// The Llama-style decoder (RMSNorm, RoPE, SwiGLU, GQA; optional tied embeddings and q/k/v/o biases)
// with explicit forward and backward passes over packed sequences, in the style of llm.c: every step
// is one kernel call on device tensors. Parameters and gradients are views into one flat buffer each
// (lib/nn/params.ts), so AdamW, clipping, EMA and zeroing are single calls over the whole model.
import { attentionBackward, attentionDecode, attentionForward, kvCacheAppend, ropeBackward, ropeForward } from '../ops/attention.js';
import { embedding, embeddingBackward, rmsnorm, rmsnormBackward, swiglu, swigluBackward } from '../ops/layers.js';
import { matmul } from '../ops/matmul.js';
import { describeValue } from '../data/describe.js';
import { talariaError } from '../native.js';
import { Tensor } from '../tensor.js';
import { Rng } from '../util/rng.js';
import { loadModelFiles, saveModelFiles, type LoadModelOptions } from './checkpoint-tensors.js';
import type { ModelConfig } from './config.js';
import { type ModelHeads, type ParamLayout, parameterLayout } from './params.js';

/** A batch of packed sequences: token ids i32[N] and offsets i32[B+1] (typed arrays or Tensors). */
export interface PackedTokens {
  ids: Int32Array | Tensor;
  cuSeqlens: Int32Array | Tensor;
}

export interface ModelOptions {
  /** 'cpu' (default) or 'cuda:N'. */
  device?: string;
  /** Initial parameters (layout order, length layout.totalNumel); default: a fresh initialisation from `seed`. */
  params?: Float32Array;
  /** Seed of the default initialisation. Default 0. */
  seed?: number;
  /** Std of the initial weights, as HF's initializer_range. Default 0.02. */
  initStd?: number;
  /** Allocate gradients (default true). A frozen model (the PPO reference) only runs forward. */
  trainable?: boolean;
  /**
   * Recompute layers' activations in the backward pass instead of keeping them (less memory, ~1/3 more
   * compute for those layers): true for every layer, or the indices of the layers to recompute.
   */
  recompute?: boolean | readonly number[];
  /** Token ids whose logits are forced to -1e30 in every LM-head output (PAD and BOS: never sampled, and scored the same way). */
  suppressTokens?: readonly number[];
}

export interface ForwardOptions {
  /** Compute the LM head's logits [N, V] (default: when the model has an LM head). */
  lm?: boolean;
  /** Compute the scalar head's values [N] (default: when the model has a score head). */
  score?: boolean;
  /** Keep what backward() needs (default: when the model is trainable). */
  grad?: boolean;
}

/** What forward() returns. Dispose it (or pass it to backward(), which does) to free its activations. */
export interface ForwardResult {
  logits?: Tensor;
  values?: Tensor;
  /** @internal The activations backward() reads; absent when forward ran with grad: false. */
  tape?: Tape;
  dispose(): void;
}

export interface BackwardGradients {
  /** d loss / d logits [N, V] (may be the logits tensor itself, overwritten in place). */
  dLogits?: Tensor;
  /** d loss / d values [N]. */
  dValues?: Tensor;
}

// The tensors of one layer's forward pass that its backward reads.
interface LayerActivations {
  a: Tensor; // rmsnorm(x) before attention [N, d]
  rstd1: Tensor;
  q: Tensor; // rotated [N, H, Dh]
  k: Tensor; // rotated [N, Hkv, Dh]
  v: Tensor;
  o: Tensor; // attention output [N, H, Dh]
  lse: Tensor;
  xMid: Tensor; // residual stream after attention [N, d]
  m: Tensor; // rmsnorm(xMid) [N, d]
  rstd2: Tensor;
  gateUp: Tensor; // [N, 2F]
  h: Tensor; // swiglu(gateUp) [N, F]
}

/** @internal */
export interface Tape {
  batch: DeviceBatch;
  /** The residual stream entering each layer, plus the last layer's output: numLayers + 1 tensors [N, d]. */
  inputs: Tensor[];
  /** Per layer; null in recompute mode until the backward pass rebuilds it. */
  layers: (LayerActivations | null)[];
  xFinal: Tensor; // rmsnorm of the last residual [N, d]
  rstdFinal: Tensor;
  lm: boolean;
  score: boolean;
}

interface DeviceBatch {
  ids: Tensor;
  cuSeqlens: Tensor;
  /** Host copy of cuSeqlens. */
  offsets: Int32Array;
  n: number;
  owned: Tensor[]; // uploaded copies this batch must free
}

type Attend = (layer: number, q: Tensor, k: Tensor, v: Tensor) => { o: Tensor; lse: Tensor };

interface LayerParams {
  ln1: Tensor;
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
  wo: Tensor;
  bo?: Tensor;
  ln2: Tensor;
  wGateUp: Tensor; // gate_proj and up_proj, adjacent: [2F, d]
  wDown: Tensor;
}

interface ModelViews {
  embed: Tensor;
  layers: LayerParams[];
  norm: Tensor;
  lmHead?: Tensor; // the embedding itself when tied
  score?: Tensor; // [1, d]
  scoreBias?: Tensor; // [1, 1]
}

const disposeAll = (tensors: Iterable<Tensor | undefined>): void => {
  for (const t of tensors) t?.dispose();
};

/** `t` seen with another shape; the old handle is released at once so the memory goes with the view. */
function reshaped(t: Tensor, shape: number[]): Tensor {
  const view = t.view(shape);
  t.dispose();
  return view;
}

export class TransformerModel {
  readonly config: ModelConfig;
  readonly heads: ModelHeads;
  readonly layout: ParamLayout;
  readonly device: string;
  /** All parameters, f32 [totalNumel], in layout order. */
  readonly params: Tensor;
  /** All gradients, like params; null for a frozen model. Backward passes accumulate into it. */
  readonly grads: Tensor | null;
  /** Which layers recompute their activations in backward (see ModelOptions.recompute); may be changed between steps. */
  recompute: boolean | readonly number[];
  readonly suppressTokens: readonly number[];

  private readonly p: ModelViews;
  private readonly g: ModelViews | null;
  private ones: Tensor | null = null;
  private suppressBias: Tensor | null = null;

  constructor(config: ModelConfig, heads: ModelHeads, options: ModelOptions = {}) {
    if (!heads.lm && !heads.score) throw talariaError('ERR_TALARIA_RANGE', 'heads: a model needs the LM head, the score head or both');
    this.config = config;
    this.heads = { ...heads };
    this.layout = parameterLayout(config, heads);
    this.device = options.device ?? 'cpu';
    this.recompute = options.recompute ?? false;
    if (Array.isArray(this.recompute))
      for (const l of this.recompute)
        if (!Number.isInteger(l) || l < 0 || l >= config.numLayers)
          throw talariaError('ERR_TALARIA_RANGE', `recompute: ${l} is not a layer index in [0, ${config.numLayers})`);
    this.suppressTokens = [...(options.suppressTokens ?? [])];
    for (const id of this.suppressTokens)
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize)
        throw talariaError('ERR_TALARIA_RANGE', `suppressTokens: ${id} is not a token id in [0, ${config.vocabSize})`);
    const host = options.params ?? initialParameters(this.layout, options.seed ?? 0, options.initStd ?? 0.02);
    if (!(host instanceof Float32Array) || host.length !== this.layout.totalNumel)
      throw talariaError(
        'ERR_TALARIA_SHAPE',
        `params: expected a Float32Array of ${this.layout.totalNumel} values (the layout of this config), got ${describeValue(host)}`,
      );
    this.params = Tensor.from(host, { device: this.device });
    this.p = this.views(this.params);
    const trainable = options.trainable ?? true;
    this.grads = trainable ? Tensor.empty([this.layout.totalNumel], 'f32', this.device).zero() : null;
    this.g = this.grads ? this.views(this.grads) : null;
  }

  /**
   * Loads dir/config.json and dir/model.safetensors (Hugging Face names; f32, bf16 or f16 tensors). With
   * `initMissingScore`, a policy checkpoint becomes a reward or value model whose score head starts at 0.
   *
   * @example
   * const rm = TransformerModel.fromPretrained('out/sft', { lm: false, score: true }, { initMissingScore: true });
   */
  static fromPretrained(dir: string, heads: ModelHeads, options: Omit<ModelOptions, 'params'> & LoadModelOptions = {}): TransformerModel {
    const loaded = loadModelFiles(dir, heads, options);
    return new TransformerModel(loaded.config, heads, { ...options, params: loaded.params });
  }

  /** Writes dir/config.json and dir/model.safetensors (each atomically), loadable by fromPretrained and by transformers. */
  save(dir: string, options: { dtype?: 'F32' | 'BF16' } = {}): void {
    saveModelFiles(dir, this.config, this.layout, this.parametersToArray(), options);
  }

  get trainable(): boolean {
    return this.grads !== null;
  }

  /** The parameters as a host Float32Array (layout order), e.g. for a checkpoint. */
  parametersToArray(): Float32Array {
    return this.params.toArray() as Float32Array;
  }

  /** Overwrites every parameter (layout order) from a host array or a tensor of the same layout. */
  loadParameters(source: Float32Array | Tensor): void {
    this.params.copyFrom(source);
  }

  /** A view of one parameter by its Hugging Face name. */
  parameter(name: string): Tensor {
    return this.viewOf(this.params, name);
  }

  /** A view of one parameter's gradient by its Hugging Face name. */
  gradient(name: string): Tensor {
    if (!this.grads) throw talariaError('ERR_TALARIA_RANGE', 'gradient: the model is frozen (trainable: false)');
    return this.viewOf(this.grads, name);
  }

  zeroGrad(): void {
    this.grads?.zero();
  }

  /**
   * Runs the decoder over packed sequences. With grad (the default for a trainable model) the result
   * keeps what backward() needs; otherwise every activation is freed as soon as the next layer has read it.
   */
  forward(tokens: PackedTokens, options: ForwardOptions = {}): ForwardResult {
    const lm = options.lm ?? this.heads.lm;
    const score = options.score ?? this.heads.score;
    if (lm && !this.heads.lm) throw talariaError('ERR_TALARIA_RANGE', 'forward: lm requested but the model has no LM head');
    if (score && !this.heads.score) throw talariaError('ERR_TALARIA_RANGE', 'forward: score requested but the model has no score head');
    if (!lm && !score) throw talariaError('ERR_TALARIA_RANGE', 'forward: nothing to compute (lm and score both false)');
    const grad = options.grad ?? this.trainable;
    if (grad && !this.trainable) throw talariaError('ERR_TALARIA_RANGE', 'forward: grad requested but the model is frozen');
    const batch = this.upload(tokens);
    const inputs: Tensor[] = [];
    const layers: (LayerActivations | null)[] = [];
    try {
      let x = embedding({ ids: batch.ids, table: this.p.embed });
      for (let l = 0; l < this.config.numLayers; l++) {
        const acts = this.layerForward(l, x, batch);
        const next = acts.next;
        if (grad) {
          inputs.push(x);
          layers.push(this.recomputes(l) ? (disposeLayer(acts.saved), null) : acts.saved);
        } else {
          x.dispose();
          disposeLayer(acts.saved);
        }
        x = next;
      }
      const { y: xFinal, rstd: rstdFinal } = rmsnorm({ x, weight: this.p.norm, eps: this.config.rmsNormEps });
      const result = this.runHeads(xFinal, lm, score);
      if (!grad) {
        x.dispose();
        xFinal.dispose();
        rstdFinal.dispose();
        disposeAll(batch.owned);
        return { ...result, dispose: () => disposeAll([result.logits, result.values]) };
      }
      inputs.push(x);
      const tape: Tape = { batch, inputs, layers, xFinal, rstdFinal, lm, score };
      return { ...result, tape, dispose: () => disposeTape(tape, [result.logits, result.values]) };
    } catch (err) {
      disposeAll(inputs);
      for (const acts of layers) if (acts) disposeLayer(acts);
      disposeAll(batch.owned);
      throw err;
    }
  }

  /**
   * Accumulates into `grads` the gradient of a loss whose derivatives with respect to this forward's
   * outputs are given (gradient accumulation over micro-batches: call zeroGrad() before the first).
   * Frees the forward's activations.
   */
  backward(result: ForwardResult, gradients: BackwardGradients): void {
    const tape = result.tape;
    if (!tape) throw talariaError('ERR_TALARIA_RANGE', 'backward: the forward ran without grad (or was already used by backward)');
    if (!this.g) throw talariaError('ERR_TALARIA_RANGE', 'backward: the model is frozen');
    const g = this.g;
    const { n } = tape.batch;
    const d = this.config.hiddenSize;
    if (!gradients.dLogits && !gradients.dValues) throw talariaError('ERR_TALARIA_RANGE', 'backward: give dLogits, dValues or both');
    if (gradients.dLogits && !tape.lm) throw talariaError('ERR_TALARIA_RANGE', 'backward: dLogits given but the forward computed no logits');
    if (gradients.dValues && !tape.score) throw talariaError('ERR_TALARIA_RANGE', 'backward: dValues given but the forward computed no values');
    requireShape(gradients.dLogits, 'dLogits', [n, this.config.vocabSize], this.device);
    requireShape(gradients.dValues, 'dValues', [n], this.device);
    result.tape = undefined;
    try {
      // Heads: dxFinal = dLogits W + dValues s.
      const dxFinal = Tensor.empty([n, d], 'f32', this.device).zero();
      if (gradients.dLogits) {
        matmul({ a: gradients.dLogits, b: this.p.lmHead!, c: dxFinal, beta: 1 });
        matmul({ a: gradients.dLogits, b: tape.xFinal, transA: true, c: g.lmHead!, beta: 1 });
      }
      if (gradients.dValues) {
        const dv = gradients.dValues.view([n, 1]);
        matmul({ a: dv, b: this.p.score!, c: dxFinal, beta: 1 });
        matmul({ a: dv, b: tape.xFinal, transA: true, c: g.score!, beta: 1 });
        matmul({ a: dv, b: this.onesColumn(n), transA: true, c: g.scoreBias!, beta: 1 });
        dv.dispose();
      }
      const top = tape.inputs[this.config.numLayers];
      const { dx } = rmsnormBackward({ x: top, weight: this.p.norm, rstd: tape.rstdFinal, dy: dxFinal, dWeight: g.norm });
      dxFinal.dispose();
      for (let l = this.config.numLayers - 1; l >= 0; l--) {
        let acts = tape.layers[l];
        if (!acts) {
          const rebuilt = this.layerForward(l, tape.inputs[l], tape.batch);
          rebuilt.next.dispose();
          acts = rebuilt.saved;
        }
        this.layerBackward(l, tape.inputs[l], acts, dx, tape.batch);
        disposeLayer(acts);
        tape.layers[l] = null;
      }
      embeddingBackward({ ids: tape.batch.ids, dOut: dx, dTable: g.embed });
      dx.dispose();
    } finally {
      disposeTape(tape, []);
    }
  }

  /** A KV cache for `batch` sequences of up to `maxLen` tokens each (prompt plus generated). */
  createKvCache(batch: number, maxLen: number): ModelKvCache {
    if (!Number.isInteger(batch) || batch < 1) throw talariaError('ERR_TALARIA_RANGE', `batch: expected an integer >= 1, got ${batch}`);
    if (!Number.isInteger(maxLen) || maxLen < 1 || maxLen > this.config.maxPositions)
      throw talariaError('ERR_TALARIA_RANGE', `maxLen: expected an integer in [1, ${this.config.maxPositions}] (max_position_embeddings), got ${maxLen}`);
    return new ModelKvCache(this.config, batch, maxLen, this.device);
  }

  /**
   * The cached forward of generation: appends each sequence's new tokens to its cache slot and returns
   * the logits [B, V] of each sequence's last new token. Two shapes are supported: a prefill (every slot
   * empty, any number of tokens per sequence, at least one) and a decode step (exactly one token per
   * sequence).
   */
  forwardCached(tokens: PackedTokens, cache: ModelKvCache): Tensor {
    if (!this.heads.lm) throw talariaError('ERR_TALARIA_RANGE', 'forwardCached: the model has no LM head');
    if (cache.closed) throw talariaError('ERR_TALARIA_DISPOSED', 'forwardCached: the KV cache was disposed');
    const batch = this.upload(tokens);
    const c = this.config;
    const b = cache.batch;
    const { offsets } = batch;
    if (offsets.length !== b + 1) {
      disposeAll(batch.owned);
      throw talariaError('ERR_TALARIA_SHAPE', `cuSeqlens: expected ${b + 1} offsets (one sequence per cache slot), got ${offsets.length}`);
    }
    const prefill = cache.lengths.every((len) => len === 0);
    const lengths = Array.from({ length: b }, (_, i) => offsets[i + 1] - offsets[i]);
    const problem = prefill
      ? lengths.findIndex((len) => len < 1)
      : lengths.findIndex((len) => len !== 1);
    const overflow = lengths.findIndex((len, i) => cache.lengths[i] + len > cache.maxLen);
    if (problem >= 0 || overflow >= 0) {
      disposeAll(batch.owned);
      if (overflow >= 0)
        throw talariaError('ERR_TALARIA_RANGE', `forwardCached: sequence ${overflow} would hold ${cache.lengths[overflow] + lengths[overflow]} tokens, over the cache's ${cache.maxLen}`);
      throw talariaError(
        'ERR_TALARIA_SHAPE',
        prefill
          ? `cuSeqlens: a prefill needs at least one token per sequence; sequence ${problem} has none`
          : `cuSeqlens: a decode step takes exactly one token per sequence; sequence ${problem} has ${lengths[problem]}`,
      );
    }
    // Positions continue from what each slot holds; every layer appends to its own copy of the lengths.
    const positions = Tensor.from(cache.lengths, { device: this.device });
    const theta = c.ropeTheta;
    const attend: Attend = (l, q, k, v) => {
      ropeForward({ x: q, cuSeqlens: batch.cuSeqlens, positionOffsets: positions, theta, out: q });
      ropeForward({ x: k, cuSeqlens: batch.cuSeqlens, positionOffsets: positions, theta, out: k });
      const slab = { cacheK: cache.k[l], cacheV: cache.v[l], cacheSeqlens: cache.seqlens[l] };
      kvCacheAppend({ ...slab, k, v, cuSeqlens: batch.cuSeqlens });
      return prefill ? attentionForward({ q, k, v, cuSeqlens: batch.cuSeqlens }) : attentionDecode({ q, ...slab });
    };
    try {
      let x = embedding({ ids: batch.ids, table: this.p.embed });
      for (let l = 0; l < c.numLayers; l++) {
        const { next, saved } = this.layerForward(l, x, batch, attend);
        disposeLayer(saved);
        x.dispose();
        x = next;
      }
      if (prefill) {
        // Only the last token of each sequence needs logits: gather those rows (a row gather is an embedding lookup).
        const last = Tensor.from(Int32Array.from({ length: b }, (_, i) => offsets[i + 1] - 1), { device: this.device });
        const rows = embedding({ ids: last, table: x });
        last.dispose();
        x.dispose();
        x = rows;
      }
      const { y, rstd } = rmsnorm({ x, weight: this.p.norm, eps: c.rmsNormEps });
      x.dispose();
      rstd.dispose();
      const { logits } = this.runHeads(y, true, false);
      y.dispose();
      for (let i = 0; i < b; i++) cache.lengths[i] += lengths[i];
      return logits!;
    } finally {
      positions.dispose();
      disposeAll(batch.owned);
    }
  }

  /** Frees the parameters, gradients and scratch. The model is unusable afterwards. */
  dispose(): void {
    disposeAll([this.params, this.grads ?? undefined, this.ones ?? undefined, this.suppressBias ?? undefined]);
  }

  // ---- internals ----

  private recomputes(layer: number): boolean {
    return this.recompute === true || (Array.isArray(this.recompute) && this.recompute.includes(layer));
  }

  private runHeads(xFinal: Tensor, lm: boolean, score: boolean): { logits?: Tensor; values?: Tensor } {
    const n = xFinal.shape[0];
    const out: { logits?: Tensor; values?: Tensor } = {};
    if (lm) {
      out.logits = matmul({ a: xFinal, b: this.p.lmHead!, transB: true });
      if (this.suppressTokens.length) matmul({ a: this.onesColumn(n), b: this.suppressRow(), c: out.logits, beta: 1 });
    }
    if (score) {
      const values = matmul({ a: xFinal, b: this.p.score!, transB: true }); // [N, 1]
      matmul({ a: this.onesColumn(n), b: this.p.scoreBias!, c: values, beta: 1 });
      out.values = reshaped(values, [n]);
    }
    return out;
  }

  /**
   * One decoder layer: returns its output residual and the activations its backward needs. `attend`
   * rotates q and k in place and runs attention: over the packed batch itself when training, against
   * the KV cache when generating.
   */
  private layerForward(l: number, x: Tensor, batch: DeviceBatch, attend?: Attend): { next: Tensor; saved: LayerActivations } {
    const c = this.config;
    const w = this.p.layers[l];
    const n = batch.n;
    const { y: a, rstd: rstd1 } = rmsnorm({ x, weight: w.ln1, eps: c.rmsNormEps });
    const q = reshaped(this.linear(a, w.wq, w.bq), [n, c.numHeads, c.headDim]);
    const k = reshaped(this.linear(a, w.wk, w.bk), [n, c.numKvHeads, c.headDim]);
    const v = reshaped(this.linear(a, w.wv, w.bv), [n, c.numKvHeads, c.headDim]);
    const { o, lse } = (attend ?? this.selfAttend(batch))(l, q, k, v);
    const xMid = Tensor.empty([n, c.hiddenSize], 'f32', this.device).copyFrom(x);
    const o2 = o.view([n, c.numHeads * c.headDim]);
    matmul({ a: o2, b: w.wo, transB: true, c: xMid, beta: 1 });
    o2.dispose();
    if (w.bo) this.addBias(xMid, w.bo);
    const { y: m, rstd: rstd2 } = rmsnorm({ x: xMid, weight: w.ln2, eps: c.rmsNormEps });
    const gateUp = matmul({ a: m, b: w.wGateUp, transB: true });
    const h = swiglu({ gateUp });
    const next = Tensor.empty([n, c.hiddenSize], 'f32', this.device).copyFrom(xMid);
    matmul({ a: h, b: w.wDown, transB: true, c: next, beta: 1 });
    return { next, saved: { a, rstd1, q, k, v, o, lse, xMid, m, rstd2, gateUp, h } };
  }

  /** Causal attention within each packed sequence, positions counted from each sequence's start. */
  private selfAttend(batch: DeviceBatch): Attend {
    const theta = this.config.ropeTheta;
    return (_l, q, k, v) => {
      ropeForward({ x: q, cuSeqlens: batch.cuSeqlens, theta, out: q });
      ropeForward({ x: k, cuSeqlens: batch.cuSeqlens, theta, out: k });
      return attentionForward({ q, k, v, cuSeqlens: batch.cuSeqlens });
    };
  }

  /** Backward through layer l: dx holds d loss / d (layer output) and leaves holding d loss / d x. */
  private layerBackward(l: number, x: Tensor, s: LayerActivations, dx: Tensor, batch: DeviceBatch): void {
    const c = this.config;
    const w = this.p.layers[l];
    const gw = this.g!.layers[l];
    const n = batch.n;
    // MLP: next = xMid + h Wd^T.
    const dh = matmul({ a: dx, b: w.wDown });
    matmul({ a: dx, b: s.h, transA: true, c: gw.wDown, beta: 1 });
    const dGateUp = swigluBackward({ gateUp: s.gateUp, dh });
    dh.dispose();
    const dm = matmul({ a: dGateUp, b: w.wGateUp });
    matmul({ a: dGateUp, b: s.m, transA: true, c: gw.wGateUp, beta: 1 });
    dGateUp.dispose();
    rmsnormBackward({ x: s.xMid, weight: w.ln2, rstd: s.rstd2, dy: dm, dWeight: gw.ln2, accumulate: true, out: { dx } });
    dm.dispose();
    // Attention: xMid = x + o Wo^T (+ bo).
    const o2 = s.o.view([n, c.numHeads * c.headDim]);
    const dO = reshaped(matmul({ a: dx, b: w.wo }), [n, c.numHeads, c.headDim]);
    matmul({ a: dx, b: o2, transA: true, c: gw.wo, beta: 1 });
    o2.dispose();
    if (gw.bo) this.accumulateBiasGrad(gw.bo, dx);
    const { dq, dk, dv } = attentionBackward({ dO, q: s.q, k: s.k, v: s.v, o: s.o, lse: s.lse, cuSeqlens: batch.cuSeqlens });
    dO.dispose();
    ropeBackward({ x: dq, cuSeqlens: batch.cuSeqlens, theta: c.ropeTheta, out: dq });
    ropeBackward({ x: dk, cuSeqlens: batch.cuSeqlens, theta: c.ropeTheta, out: dk });
    const da = Tensor.empty([n, c.hiddenSize], 'f32', this.device).zero();
    const projections: [Tensor, Tensor, Tensor, Tensor | undefined][] = [
      [dq, w.wq, gw.wq, gw.bq],
      [dk, w.wk, gw.wk, gw.bk],
      [dv, w.wv, gw.wv, gw.bv],
    ];
    for (const [dy3, weight, dWeight, dBias] of projections) {
      const dy = dy3.view([n, dy3.shape[1] * dy3.shape[2]]);
      matmul({ a: dy, b: weight, c: da, beta: 1 });
      matmul({ a: dy, b: s.a, transA: true, c: dWeight, beta: 1 });
      if (dBias) this.accumulateBiasGrad(dBias, dy);
      dy.dispose();
      dy3.dispose();
    }
    rmsnormBackward({ x, weight: w.ln1, rstd: s.rstd1, dy: da, dWeight: gw.ln1, accumulate: true, out: { dx } });
    da.dispose();
  }

  /** y = x W^T (+ b) for a weight [out, in]. */
  private linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
    const y = matmul({ a: x, b: weight, transB: true });
    if (bias) this.addBias(y, bias);
    return y;
  }

  /** y[r, :] += b for every row: a rank-1 GEMM with a ones column (exact: 1 * b + y). */
  private addBias(y: Tensor, bias: Tensor): void {
    const row = bias.view([1, bias.numel]);
    matmul({ a: this.onesColumn(y.shape[0]), b: row, c: y, beta: 1 });
    row.dispose();
  }

  /** dBias += column sums of dy [N, C] (a GEMV with ones; fixed order, deterministic). */
  private accumulateBiasGrad(dBias: Tensor, dy: Tensor): void {
    const row = dBias.view([1, dBias.numel]);
    matmul({ a: this.onesColumn(dy.shape[0]), b: dy, transA: true, c: row, beta: 1 });
    row.dispose();
  }

  /** A [n, 1] column of ones (a view into a buffer that grows as needed). */
  private onesColumn(n: number): Tensor {
    if (!this.ones || this.ones.numel < n) {
      this.ones?.dispose();
      const size = Math.max(n, 2 * (this.ones?.numel ?? 0), 256);
      this.ones = Tensor.from(new Float32Array(size).fill(1), { device: this.device });
    }
    return this.ones.view([n, 1]);
  }

  private suppressRow(): Tensor {
    if (!this.suppressBias) {
      const row = new Float32Array(this.config.vocabSize);
      for (const id of this.suppressTokens) row[id] = -1e30;
      this.suppressBias = Tensor.from(row, { device: this.device, shape: [1, this.config.vocabSize] });
    }
    return this.suppressBias;
  }

  private viewOf(flat: Tensor, name: string): Tensor {
    const entry = this.layout.byName.get(name);
    if (!entry) throw talariaError('ERR_TALARIA_RANGE', `parameter: no parameter named ${name} in this model`);
    return flat.view(entry.shape, entry.offset);
  }

  private views(flat: Tensor): ModelViews {
    const c = this.config;
    const get = (name: string) => this.viewOf(flat, name);
    const maybe = (name: string) => (this.layout.byName.has(name) ? get(name) : undefined);
    const layers: LayerParams[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      const pre = `model.layers.${l}.`;
      const gate = this.layout.byName.get(`${pre}mlp.gate_proj.weight`)!;
      layers.push({
        ln1: get(`${pre}input_layernorm.weight`),
        wq: get(`${pre}self_attn.q_proj.weight`),
        wk: get(`${pre}self_attn.k_proj.weight`),
        wv: get(`${pre}self_attn.v_proj.weight`),
        bq: maybe(`${pre}self_attn.q_proj.bias`),
        bk: maybe(`${pre}self_attn.k_proj.bias`),
        bv: maybe(`${pre}self_attn.v_proj.bias`),
        wo: get(`${pre}self_attn.o_proj.weight`),
        bo: maybe(`${pre}self_attn.o_proj.bias`),
        ln2: get(`${pre}post_attention_layernorm.weight`),
        // The layout guarantees up_proj starts where gate_proj ends: one [2F, d] matrix.
        wGateUp: flat.view([2 * c.intermediateSize, c.hiddenSize], gate.offset),
        wDown: get(`${pre}mlp.down_proj.weight`),
      });
    }
    const embed = get('model.embed_tokens.weight');
    return {
      embed,
      layers,
      norm: get('model.norm.weight'),
      lmHead: this.heads.lm ? (c.tieEmbeddings ? embed : get('lm_head.weight')) : undefined,
      score: maybe('score.weight'),
      scoreBias: this.heads.score ? get('score.bias').view([1, 1]) : undefined,
    };
  }

  private upload(tokens: PackedTokens): DeviceBatch {
    const owned: Tensor[] = [];
    const place = (value: Int32Array | Tensor, name: string): Tensor => {
      if (value instanceof Tensor) {
        if (value.device !== this.device)
          throw talariaError('ERR_TALARIA_DEVICE', `${name}: expected a tensor on ${this.device}, got one on ${value.device}`);
        return value;
      }
      if (!(value instanceof Int32Array)) throw talariaError('ERR_TALARIA_DTYPE', `${name}: expected an Int32Array or an i32 Tensor, got ${describeValue(value)}`);
      const t = Tensor.from(value, { device: this.device });
      owned.push(t);
      return t;
    };
    const cuSeqlens = place(tokens.cuSeqlens, 'cuSeqlens');
    const ids = place(tokens.ids, 'ids');
    const n = ids.numel;
    if (n === 0) throw talariaError('ERR_TALARIA_SHAPE', 'ids: the batch holds no tokens');
    // Positions past max_position_embeddings were never trained: refuse them rather than extrapolate.
    const offsets = tokens.cuSeqlens instanceof Int32Array ? tokens.cuSeqlens : (cuSeqlens.toArray() as Int32Array);
    for (let b = 1; b < offsets.length; b++) {
      const len = offsets[b] - offsets[b - 1];
      if (len > this.config.maxPositions)
        throw talariaError('ERR_TALARIA_RANGE', `cuSeqlens: sequence ${b - 1} has ${len} tokens, over max_position_embeddings (${this.config.maxPositions})`);
    }
    return { ids, cuSeqlens, offsets, n, owned };
  }
}

/** Per-layer key/value slabs [B, Lmax, Hkv, Dh] for generation, and how many tokens each slot holds. */
export class ModelKvCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  /** Per layer i32[B]: each layer's append advances its own copy. */
  readonly seqlens: Tensor[] = [];
  /** Host copy of the tokens each slot holds. */
  readonly lengths: Int32Array;
  closed = false;

  constructor(
    config: ModelConfig,
    readonly batch: number,
    readonly maxLen: number,
    device: string,
  ) {
    this.lengths = new Int32Array(batch);
    for (let l = 0; l < config.numLayers; l++) {
      this.k.push(Tensor.empty([batch, maxLen, config.numKvHeads, config.headDim], 'f32', device));
      this.v.push(Tensor.empty([batch, maxLen, config.numKvHeads, config.headDim], 'f32', device));
      this.seqlens.push(Tensor.empty([batch], 'i32', device).zero());
    }
  }

  dispose(): void {
    disposeAll([...this.k, ...this.v, ...this.seqlens]);
    this.closed = true;
  }
}

function disposeLayer(acts: LayerActivations): void {
  disposeAll(Object.values(acts));
}

function disposeTape(tape: Tape, outputs: (Tensor | undefined)[]): void {
  disposeAll(outputs);
  disposeAll(tape.inputs);
  for (const acts of tape.layers) if (acts) disposeLayer(acts);
  tape.layers.length = 0;
  tape.inputs.length = 0;
  disposeAll([tape.xFinal, tape.rstdFinal, ...tape.batch.owned]);
}

function requireShape(t: Tensor | undefined, name: string, shape: number[], device: string): void {
  if (!t) return;
  if (!(t instanceof Tensor)) throw talariaError('ERR_TALARIA_DTYPE', `${name}: expected a Tensor, got ${describeValue(t)}`);
  if (t.dtype !== 'f32') throw talariaError('ERR_TALARIA_DTYPE', `${name}: expected an f32 tensor, got ${t.dtype}`);
  if (t.device !== device) throw talariaError('ERR_TALARIA_DEVICE', `${name}: expected a tensor on ${device}, got ${t.device}`);
  if (t.numel !== shape.reduce((a, b) => a * b, 1))
    throw talariaError('ERR_TALARIA_SHAPE', `${name}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
}

/** HF's LlamaPreTrainedModel init: weights ~ N(0, initStd²), norms 1, biases 0. */
export function initialParameters(layout: ParamLayout, seed: number, initStd = 0.02): Float32Array {
  const rng = new Rng(seed);
  const params = new Float32Array(layout.totalNumel);
  for (const entry of layout.entries) {
    const slice = params.subarray(entry.offset, entry.offset + entry.numel);
    if (entry.name.endsWith('norm.weight')) slice.fill(1);
    else if (entry.name.endsWith('.bias')) slice.fill(0);
    else for (let i = 0; i < slice.length; i++) slice[i] = rng.normal() * initStd;
  }
  return params;
}
