// The transformer engine end to end: one training step (forward, fused cross-entropy, backward, global-norm
// clipping and AdamW over the flat buffer) and batched generation (prefill + KV-cache decode + sampling),
// for a ~1M- and a ~20M-parameter Llama-style config.
//
// FLOPs per trained token: 6 x (the parameters every token multiplies: all but the embedding table,
// counting the LM head) + causal attention, 6 x 2 x L x H x Dh x (T/2) for QK^T and PV forward and
// backward (PaLM's accounting). The fraction is of the FMA peak measured in this run; the GEMMs inside
// run at ~K = d, so expect well below the large-GEMM figure of the matmul suite.
// Generation counts decoded tokens only (batch 16 x new tokens), no FLOP figure.
import { crossEntropy, info, Tensor } from '../lib/index.js';
import type { ModelConfig } from '../lib/nn/config.js';
import { generate } from '../lib/nn/generate.js';
import { estimateMemory } from '../lib/nn/memory.js';
import { TransformerModel } from '../lib/nn/model.js';
import { AdamW } from '../lib/nn/optim.js';
import { parameterLayout } from '../lib/nn/params.js';
import { Rng } from '../lib/util/rng.js';
import { defineSuite, deviceOf, formatFigure, type BenchCase, type CaseResult } from './harness.js';

interface Size {
  label: string;
  config: ModelConfig;
  sequences: number;
  seqLen: number;
}

const base = { modelType: 'llama', rmsNormEps: 1e-5, ropeTheta: 10000, qkvBias: false, oBias: false } as const;
const SIZES: Size[] = [
  {
    label: '1M',
    config: { ...base, vocabSize: 259, hiddenSize: 128, intermediateSize: 344, numHeads: 4, numKvHeads: 4, headDim: 32, numLayers: 5, maxPositions: 256, tieEmbeddings: true },
    sequences: 16,
    seqLen: 64,
  },
  {
    label: '20M',
    config: { ...base, vocabSize: 8192, hiddenSize: 384, intermediateSize: 1024, numHeads: 6, numKvHeads: 2, headDim: 64, numLayers: 8, maxPositions: 1024, tieEmbeddings: false },
    sequences: 8,
    seqLen: 256,
  },
];
const EMULATED: Size[] = [
  {
    label: 'tiny (emulated)',
    config: { ...base, vocabSize: 64, hiddenSize: 64, intermediateSize: 96, numHeads: 2, numKvHeads: 1, headDim: 32, numLayers: 1, maxPositions: 64, tieEmbeddings: true },
    sequences: 2,
    seqLen: 16,
  },
];
const GEN_BATCH = 16;
const GEN_PROMPT = 8;
const GEN_NEW = 32;

const heads = { lm: true, score: false };

function paramsPerToken(config: ModelConfig): number {
  const layout = parameterLayout(config, heads);
  const embed = config.vocabSize * config.hiddenSize;
  return layout.totalNumel - embed + (config.tieEmbeddings ? embed : 0);
}

function trainFlops(size: Size): number {
  const c = size.config;
  const tokens = size.sequences * size.seqLen;
  return 6 * tokens * paramsPerToken(c) + 6 * 2 * c.numLayers * c.numHeads * c.headDim * (size.seqLen / 2) * tokens;
}

function modelCases(backends: string[]): BenchCase[] {
  return backends.flatMap((backend) => {
    const device = deviceOf(backend);
    const sizes = backend === 'cuda-emu' ? EMULATED : SIZES;
    return sizes.flatMap((size): BenchCase[] => {
      const c = size.config;
      const rng = new Rng(7);
      const n = size.sequences * size.seqLen;
      const ids = Int32Array.from({ length: n }, () => rng.int(c.vocabSize));
      const targets = Int32Array.from({ length: n }, () => rng.int(c.vocabSize));
      const cuSeqlens = Int32Array.from({ length: size.sequences + 1 }, (_, i) => i * size.seqLen);
      // Built lazily: a filtered run must not allocate the 20M model for nothing.
      let model: TransformerModel | null = null;
      let optimizer: AdamW | null = null;
      const train = () => {
        model ??= new TransformerModel(c, heads, { device, seed: 1 });
        optimizer ??= new AdamW(model, { lr: 1e-4, maxGradNorm: 1 });
        model.zeroGrad();
        const out = model.forward({ ids, cuSeqlens });
        const { dLogits } = crossEntropy({ logits: out.logits!, targets, inPlace: true });
        model.backward(out, { dLogits });
        out.logits!.dispose();
        optimizer.apply();
      };
      const prompts = Array.from({ length: GEN_BATCH }, () => Int32Array.from({ length: GEN_PROMPT }, () => rng.int(c.vocabSize)));
      let frozen: TransformerModel | null = null;
      let seed = 0;
      const newTokens = backend === 'cuda-emu' ? 4 : GEN_NEW;
      const gen = () => {
        frozen ??= new TransformerModel(c, heads, { device, seed: 1, trainable: false });
        generate(frozen, prompts, { maxNewTokens: newTokens, seed: seed++ });
      };
      return [
        { name: `train step ${size.label}`, backend, params: { tokens: n, params: parameterLayout(c, heads).totalNumel }, flops: trainFlops(size), run: train },
        { name: `generate ${size.label}`, backend, params: { batch: GEN_BATCH, prompt: GEN_PROMPT, newTokens }, run: gen },
      ];
    });
  });
}

function footer(results: CaseResult[]): string[] {
  const lines = ['model: tokens/s from the median time; train FLOPs = 6 x tokens x matmul params + causal attention (header).'];
  for (const r of results) {
    if (r.case.startsWith('train')) {
      lines.push(`  ${r.case} (${r.backend}): ${formatFigure((Number(r.params.tokens) / r.ms) * 1e3)} tokens/s, ${formatFigure(r.gflops)} GFLOP/s`);
    } else {
      lines.push(`  ${r.case} (${r.backend}): ${formatFigure(((Number(r.params.batch) * Number(r.params.newTokens)) / r.ms) * 1e3)} generated tokens/s`);
    }
  }
  for (const size of SIZES) {
    const est = estimateMemory(size.config, heads, { tokens: size.sequences * size.seqLen });
    lines.push(`  estimate ${size.label}: ${(est.total / 2 ** 20).toFixed(1)} MiB (weights ${(est.weights / 2 ** 20).toFixed(1)}, activations ${(est.activations / 2 ** 20).toFixed(1)}, logits ${(est.logits / 2 ** 20).toFixed(1)})`);
  }
  lines.push(`  process memory high-water (max RSS, the whole bench run): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; threads ${info().threads}`);
  void Tensor;
  return lines;
}

export default defineSuite({ name: 'model', cases: modelCases, footer });
