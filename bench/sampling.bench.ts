// The sampler at a decoding step's size: batch N = 64 rows of V = 32,000 logits (a LLaMA-sized
// vocabulary). Cases: plain temperature sampling, top-k 50, top-p 0.9, and penalties over a history of
// 256 tokens per row (repetition 1.2, presence 0.5, frequency 0.1). The baseline is a plain-TypeScript
// sampler: penalties, softmax and an inverse-CDF draw per row, with a full sort for top-k/top-p (what a
// straightforward JS port of HF's warpers does).
//
// Napkin math: the compulsory traffic is the logits, 4 B x N x V = 8.2 MB per call (what GB/s counts;
// the history's 64 KB is noise). The kernels then work on a row at a time from cache: ~V exps and 1-9
// passes over the row's keys and weights (sampling.h), so the fraction of the triad says how far a
// compute-bound sampler is from streaming its input once.
import { sample } from '../lib/index.js';
import { Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, formatFigure, type BenchCase, type CaseResult } from './harness.js';
import { uniformFloat32 } from './inputs.js';

const N = 64;
const V = 32000;
const HISTORY = 256;

interface Options {
  temperature?: number;
  topK?: number;
  topP?: number;
  history?: Int32Array;
  historyOffsets?: Int32Array;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
}

/** The plain-TypeScript sampler: one token per row, Math.random for the draw. */
function typescriptSample(logits: Float32Array, o: Options): Int32Array {
  const tokens = new Int32Array(N);
  const z = new Float64Array(V);
  const order = Array.from({ length: V }, (_, i) => i);
  for (let r = 0; r < N; r++) {
    for (let i = 0; i < V; i++) z[i] = logits[r * V + i];
    if (o.history && o.historyOffsets) {
      const counts = new Map<number, number>();
      for (let j = o.historyOffsets[r]; j < o.historyOffsets[r + 1]; j++) counts.set(o.history[j], (counts.get(o.history[j]) ?? 0) + 1);
      for (const [t, c] of counts) {
        const rep = o.repetitionPenalty ?? 1;
        z[t] = (z[t] > 0 ? z[t] / rep : z[t] * rep) - (o.presencePenalty ?? 0) - (o.frequencyPenalty ?? 0) * c;
      }
    }
    const t = o.temperature ?? 1;
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, (z[i] /= t));
    let kept = V;
    if (o.topK || o.topP) {
      order.sort((a, b) => z[b] - z[a]);
      kept = o.topK ? Math.min(o.topK, V) : V;
    }
    let sum = 0;
    for (let j = 0; j < kept; j++) sum += Math.exp(z[o.topK || o.topP ? order[j] : j] - m);
    if (o.topP) {
      let mass = 0, j = 0;
      while (j < kept && mass < o.topP * sum) mass += Math.exp(z[order[j++]] - m);
      kept = j, sum = mass;
    }
    let u = Math.random() * sum, j = 0;
    const at = (k: number) => (o.topK || o.topP ? order[k] : k);
    while (j < kept - 1 && (u -= Math.exp(z[at(j)] - m)) > 0) j++;
    tokens[r] = at(j);
  }
  return tokens;
}

function samplingCases(backends: string[]): BenchCase[] {
  const logits = uniformFloat32(N * V, 31, -8, 8);
  const history = Int32Array.from(uniformFloat32(N * HISTORY, 32, 0, V), Math.floor);
  const historyOffsets = Int32Array.from({ length: N + 1 }, (_, r) => r * HISTORY);
  const variants: { name: string; options: Options }[] = [
    { name: 'temperature', options: { temperature: 0.8 } },
    { name: 'top-k-50', options: { temperature: 0.8, topK: 50 } },
    { name: 'top-p-0.9', options: { temperature: 0.8, topP: 0.9 } },
    { name: 'penalties', options: { temperature: 0.8, history, historyOffsets, repetitionPenalty: 1.2, presencePenalty: 0.5, frequencyPenalty: 0.1 } },
  ];
  return backends.flatMap((backend) => {
    const device = deviceOf(backend);
    const onDevice = backend === 'cpu' ? { logits, vocabSize: V } : { logits: Tensor.from(logits, { device, shape: [N, V] }) };
    return variants.map(({ name, options }) => {
      const args = { ...options };
      if (backend !== 'cpu' && options.history) {
        args.history = Tensor.from(history, { device }) as never;
        args.historyOffsets = Tensor.from(historyOffsets, { device }) as never;
      }
      let offset = 0;
      return {
        name, backend, params: { N, V }, bytes: 4 * N * V,
        run: () => void sample({ ...onDevice, ...args, seed: 7, offset: offset++ } as Parameters<typeof sample>[0]),
        baseline: { name: 'typescript', run: () => void typescriptSample(logits, options) },
      };
    });
  });
}

function tokensPerSecond(results: CaseResult[]): string[] {
  return ['sampling: tokens/s = N / time (one token per row); baseline: the plain-TypeScript sampler above.',
    ...results.map((r) => `  ${r.case} (${r.backend}): ${formatFigure(N / r.ms * 1e3)} tokens/s` +
      (r.baseline ? `, typescript ${formatFigure(N / r.baseline.ms * 1e3)} tokens/s` : ''))];
}

export default defineSuite({ name: 'sampling', cases: samplingCases, footer: tokensPerSecond });
