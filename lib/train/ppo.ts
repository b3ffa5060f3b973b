// PPO and PPO-ptx the way InstructGPT (arXiv 2203.02155) describes them, on packed sequences:
//   rollouts  generate responses from the policy (Philox seed/offset owned and checkpointed here);
//   score     reward model (or rewardFn) at each sequence's last token, reference log-probs of the
//             response tokens at the sampling temperature, value estimates;
//   rewards   per-token KL penalty -beta*k1 plus the score on the last action token (shapeRewards);
//   advantage GAE over action tokens only, then whitening over action tokens;
//   update    epochs x minibatches of clipped-surrogate steps; with ptx, the pretraining cross-entropy
//             gradient (times its coefficient) is accumulated into the SAME gradient buffers and one
//             AdamW step applies both (the paper's recipe, which DeepSpeed-Chat replaces by two steps);
//             the value model takes its own clipped-value-loss step.
//
// Layouts. Rollout arrays are per TOKEN, like generate(): index t of a packed sequence is token ids[t];
// actionMask[t] = 1 on response tokens. oldLogp[t] and refLogp[t] are log pi(ids[t] | ids[<t]) (computed
// from the logits at row t-1); values[t] is the value head's output at row t-1, i.e. the value of the
// state right BEFORE action t was taken. The model's rows are per POSITION (row p predicts token p+1), so
// every forward is shifted by one token (rowsToTokens / tokensToRows). Sequences are packed without any
// padding: a response that did not end simply has fewer tokens, so nothing masked can enter KL, GAE or
// whitening, and the score lands on the last response token (the EOS when the sequence ended).
import { describeValue } from '../data/describe.js';
import { packBatch, type EncodedExample } from '../data/batches.js';
import { talariaError } from '../native.js';
import { generate, type GenerateResult } from '../nn/generate.js';
import { TransformerModel } from '../nn/model.js';
import { AdamW, WeightEma } from '../nn/optim.js';
import { axpby } from '../ops/layers.js';
import { crossEntropy, logprobEntropy, logprobEntropyBackward } from '../ops/logits.js';
import { shapeRewards } from '../ops/rewards.js';
import { ppoLoss, valueLoss } from '../ops/rl-loss.js';
import { Tensor } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { isRngState, Rng, type RngState } from '../util/rng.js';
import { type PpoSequences, type PpoTrainerOptions, type ResolvedPpoOptions, validatePpoOptions } from './ppo-options.js';
import {
  AdaptiveKlController, checkPacked, chunks, gatherSequences, mean, nextTokenTargets, type PpoRollouts, ppoAdvantages, rowsToTokens,
  scoreHead, sequenceLogprobs, tokensToRows,
} from './ppo-rollouts.js';
import { ShuffledOrder } from '../data/shuffled-order.js';
import { nonFiniteLoss, type RestoredCheckpoint, type StepMetrics, type Trainer, type TrainerCheckpoint } from './trainer.js';

export {
  instructgptPreset, instructgptPtx, taskAPreset, taskAPtx,
  type AdaptiveKlOptions, type PpoSequences, type PpoTrainerOptions, type PtxOptions,
} from './ppo-options.js';
export { AdaptiveKlController, ppoAdvantages, sequenceLogprobs, type PpoRollouts } from './ppo-rollouts.js';

/** Losses and stats of one minibatch's policy gradient. */
export interface PolicyGradientReport {
  /** The clipped-surrogate loss (NaN when the PPO part was skipped). */
  loss: number;
  /** The pretraining cross-entropy, unscaled (NaN without ptx documents). */
  ptxLoss: number;
  clipfrac: number;
  entropy: number;
  approxKl: number;
  /** Tokens the forward passes processed. */
  tokens: number;
}

/**
 * PPO (stage 'ppo') or PPO-ptx (stage 'ppo-ptx') as a Trainer: one trainStep() is one iteration of
 * rollouts, scoring, advantages and `epochs` passes of minibatch updates.
 *
 * Metrics per iteration: loss (policy clipped surrogate, mean over minibatches), valueLoss, reward (mean
 * score), kl (mean over sequences of sum_t k1, the penalty's estimator), klCoef (the beta this iteration's
 * penalty used), clipfrac, entropy, approxKl, ptxLoss (ptx only), responseLength, endedRate, tokens
 * (rollout tokens + tokens of every update forward), rolloutSeconds, updateSeconds, lr, gradNorm, valueGradNorm.
 *
 * @example
 * const trainer = new PpoTrainer({
 *   ...taskAPreset, policy, reference, value, reward, tokenizer, prompts, lr: 1e-4,
 *   ptx: { examples: pretrainingDocs, ...taskAPtx },
 * });
 * while (trainer.stepsDone < trainer.totalSteps) console.log(trainer.trainStep());
 */
export class PpoTrainer implements Trainer {
  readonly stage: string;
  readonly totalSteps: number;
  private done = 0;
  private readonly o: ResolvedPpoOptions;
  private readonly policy: TransformerModel;
  private readonly reference: TransformerModel;
  private readonly value: TransformerModel;
  private readonly reward?: TransformerModel;
  private readonly rewardFn?: PpoTrainerOptions['rewardFn'];
  private readonly tokenizer: Tokenizer;
  private readonly prompts: readonly Int32Array[];
  private readonly ptxExamples: readonly EncodedExample[];
  private readonly promptOrder: ShuffledOrder;
  private readonly ptxOrder: ShuffledOrder | null;
  private readonly minibatchRng: Rng;
  private philoxOffset = 0;
  private readonly klController: AdaptiveKlController | null;
  private fixedKlCoef: number;
  private readonly policyOptimizer: AdamW;
  private readonly valueOptimizer: AdamW;
  private readonly ema: WeightEma | null;
  private emaModel: TransformerModel | null = null;
  private last: PpoRollouts | null = null;

  constructor(options: PpoTrainerOptions) {
    this.o = validatePpoOptions(options);
    ({ policy: this.policy, reference: this.reference, value: this.value, reward: this.reward, rewardFn: this.rewardFn, tokenizer: this.tokenizer } = options);
    this.prompts = [...options.prompts];
    this.ptxExamples = options.ptx ? [...options.ptx.examples] : [];
    this.stage = options.ptx ? 'ppo-ptx' : 'ppo';
    this.totalSteps = options.iterations;
    // Independent streams per consumer, all from the one seed.
    const seeds = new Rng(this.o.seed);
    this.promptOrder = new ShuffledOrder(this.prompts.length, seeds.nextUint32());
    this.minibatchRng = new Rng(seeds.nextUint32());
    const ptxSeed = seeds.nextUint32();
    this.ptxOrder = options.ptx ? new ShuffledOrder(this.ptxExamples.length, ptxSeed) : null;
    this.fixedKlCoef = options.klCoef ?? 0.02;
    this.klController = options.adaptiveKl ? new AdaptiveKlController(this.fixedKlCoef, { ...options.adaptiveKl }) : null;
    const common = { weightDecay: options.weightDecay ?? 0, maxGradNorm: options.maxGradNorm ?? 1 };
    this.policyOptimizer = new AdamW(this.policy, { lr: this.o.lr, ...common });
    this.valueOptimizer = new AdamW(this.value, { lr: this.o.valueLr, ...common });
    this.ema = options.emaDecay !== undefined ? new WeightEma(this.policy, options.emaDecay) : null;
  }

  get stepsDone(): number {
    return this.done;
  }

  /** The KL coefficient the next iteration's penalty uses. */
  get klCoef(): number {
    return this.klController ? this.klController.value : this.fixedKlCoef;
  }

  /** The rollouts of the last iteration (for inspection and tests); null before the first. */
  get lastRollouts(): PpoRollouts | null {
    return this.last;
  }

  /**
   * Samples rolloutsPerIteration responses for the next prompts and computes everything the update needs.
   * Advances the prompt order and the Philox offset (trainStep calls it; tests call it to inspect).
   */
  collectRollouts(): PpoRollouts {
    const promptIds = this.promptOrder.take(this.o.rollouts);
    const gen: GenerateResult = generate(this.policy, promptIds.map((i) => this.prompts[i]), {
      maxNewTokens: this.o.maxNewTokens,
      stopTokens: [this.tokenizer.eosId],
      seed: this.o.seed,
      offset: this.philoxOffset,
      temperature: this.o.temperature,
    });
    this.philoxOffset = gen.nextOffset;
    const { ids, cuSeqlens, actionMask, ended, promptLengths, responseLengths } = gen;
    const responses = Array.from(responseLengths, (len, b) => ids.subarray(cuSeqlens[b + 1] - len, cuSeqlens[b + 1]));
    const sequences: PpoSequences = { ids, cuSeqlens, actionMask, promptLengths, responseLengths, ended, responses };
    const tokens = { ids, cuSeqlens };
    const scores = this.reward ? scoreHead(this.reward, tokens, this.o.minibatch).last : this.callRewardFn(sequences);
    const badScore = scores.findIndex((x) => !Number.isFinite(x));
    if (badScore >= 0) throw nonFiniteLoss(this.stage, this.done, `the reward of sequence ${badScore}`, scores[badScore]);
    const refLogp = sequenceLogprobs(this.reference, tokens, { temperature: this.o.temperature, batchSequences: this.o.minibatch });
    const values = rowsToTokens(scoreHead(this.value, tokens, this.o.minibatch).rows, cuSeqlens);
    // Prompt tokens are not actions: nothing there is ever read, and zeros keep the arrays honest.
    for (let t = 0; t < values.length; t++) if (!actionMask[t]) values[t] = refLogp[t] = 0;
    const klCoef = this.klCoef;
    const shaped = shapeRewards({
      scores, logp: gen.logprobs, refLogp, cuSeqlens, actionMask, klCoef, klEstimator: 'k1',
      endedWithEos: ended, missingEosPenalty: this.o.missingEosPenalty,
    });
    const { advantages, returns } = ppoAdvantages({ rewards: shaped.rewards, values, cuSeqlens, actionMask, gamma: this.o.gamma, lambda: this.o.lambda, whiten: this.o.whiten });
    if (!Number.isFinite(shaped.stats.klPerSequence)) throw nonFiniteLoss(this.stage, this.done, 'the KL to the reference', shaped.stats.klPerSequence);
    this.last = { ...sequences, oldLogp: gen.logprobs, refLogp, values, scores, rewards: shaped.rewards, advantages, returns, klCoef, kl: shaped.stats.klPerSequence };
    return this.last;
  }

  /**
   * Zeroes the policy's gradients and accumulates into them, WITHOUT applying them, the gradient of one
   * minibatch: the clipped surrogate over `sequences` of `rollouts` ('ppo'), plus coef x the pretraining
   * cross-entropy over `ptxDocuments` ('ptx'), in the same buffers. trainStep uses it for every update;
   * tests use it to check the accumulation. Throws nonFiniteLoss for a NaN or infinite loss.
   */
  computePolicyGradients(rollouts: PpoRollouts, options: { sequences?: readonly number[]; ptxDocuments?: readonly EncodedExample[]; include?: 'both' | 'ppo' | 'ptx' } = {}): PolicyGradientReport {
    const fn = 'PpoTrainer.computePolicyGradients';
    checkPacked(fn, rollouts);
    const include = options.include ?? 'both';
    if (!['both', 'ppo', 'ptx'].includes(include)) throw talariaError('ERR_TALARIA_RANGE', `${fn}: include must be 'both', 'ppo' or 'ptx', got ${describeValue(include)}`);
    const count = rollouts.cuSeqlens.length - 1;
    const { sequences: chosen } = options;
    if (chosen !== undefined) {
      const bad = Array.isArray(chosen) ? chosen.find((s) => !Number.isInteger(s) || s < 0 || s >= count) : chosen;
      if (bad !== undefined || chosen.length === 0)
        throw talariaError('ERR_TALARIA_RANGE', `${fn}: sequences must be a non-empty array of sequence indices in [0, ${count}), got ${describeValue(bad ?? chosen)}`);
    }
    const report: PolicyGradientReport = { loss: NaN, ptxLoss: NaN, clipfrac: NaN, entropy: NaN, approxKl: NaN, tokens: 0 };
    this.policy.zeroGrad();
    if (include !== 'ptx') {
      const sequences = options.sequences ?? Array.from({ length: rollouts.cuSeqlens.length - 1 }, (_, i) => i);
      const mb = gatherSequences(rollouts.cuSeqlens, sequences, { ids: rollouts.ids, actionMask: rollouts.actionMask, oldLogp: rollouts.oldLogp, advantages: rollouts.advantages });
      const fw = this.policy.forward({ ids: mb.ids, cuSeqlens: mb.cuSeqlens }, { lm: true, score: false, grad: true });
      const device = this.policy.device;
      const held: Tensor[] = [fw.logits!, Tensor.from(nextTokenTargets(mb.ids, mb.cuSeqlens), { device })];
      try {
        const [logits, targets] = held;
        const fwd = logprobEntropy({ logits, targets, temperature: this.o.temperature });
        held.push(fwd.logp, fwd.entropy, fwd.lse);
        const out = ppoLoss({
          logp: rowsToTokens(fwd.logp.toArray() as Float32Array, mb.cuSeqlens), oldLogp: mb.oldLogp, advantages: mb.advantages,
          cuSeqlens: mb.cuSeqlens, actionMask: mb.actionMask, entropy: rowsToTokens(fwd.entropy.toArray() as Float32Array, mb.cuSeqlens),
          clipLow: this.o.clip, ...(this.o.dualClip !== undefined && { dualClip: this.o.dualClip }),
        });
        if (!Number.isFinite(out.loss)) throw nonFiniteLoss(this.stage, this.done, 'the policy loss', out.loss);
        Object.assign(report, { loss: out.loss, clipfrac: out.stats.clipFrac, entropy: out.stats.entropy ?? NaN, approxKl: out.stats.approxKl, tokens: mb.ids.length });
        const gLogp = Tensor.from(tokensToRows(out.dLogp, mb.cuSeqlens), { device });
        const gEntropy = Tensor.empty([mb.ids.length], 'f32', device).zero();
        held.push(gLogp, gEntropy);
        logprobEntropyBackward({ logits, targets, gLogp, gEntropy, lse: fwd.lse, entropy: fwd.entropy, temperature: this.o.temperature, inPlace: true });
        this.policy.backward(fw, { dLogits: logits });
      } finally {
        fw.dispose();
        for (const t of held) t.dispose();
      }
    }
    if (include !== 'ppo' && options.ptxDocuments?.length) {
      const batch = pretrainingBatch(options.ptxDocuments);
      const fw = this.policy.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens }, { lm: true, score: false, grad: true });
      try {
        const { loss, dLogits } = crossEntropy({ logits: fw.logits!, targets: batch.targets, mask: batch.lossMask, inPlace: true });
        if (!Number.isFinite(loss)) throw nonFiniteLoss(this.stage, this.done, 'the ptx loss', loss);
        // The objective is PPO + coef * CE: scale CE's gradient and let backward add it to the PPO gradient.
        axpby({ x: dLogits, y: dLogits, alpha: this.o.ptxCoef, beta: 0 });
        this.policy.backward(fw, { dLogits });
        report.ptxLoss = loss;
        report.tokens += batch.ids.length;
      } finally {
        fw.dispose();
        fw.logits?.dispose();
      }
    }
    return report;
  }

  trainStep(): StepMetrics {
    const t0 = performance.now();
    const r = this.collectRollouts();
    const reward = mean(r.scores);
    const t1 = performance.now();
    const sums = { loss: 0, valueLoss: 0, ptxLoss: 0, clipfrac: 0, entropy: 0, approxKl: 0, gradNorm: 0, valueGradNorm: 0 };
    let updates = 0;
    let updateTokens = 0;
    const b = r.cuSeqlens.length - 1;
    for (let epoch = 0; epoch < this.o.epochs; epoch++) {
      const order = this.minibatchRng.shuffle(Array.from({ length: b }, (_, i) => i));
      for (const part of chunks(b, this.o.minibatch)) {
        const sequences = part.map((i) => order[i]);
        const ptxDocuments = this.ptxOrder ? this.ptxOrder.take(this.o.ptxDocs).map((i) => this.ptxExamples[i]) : undefined;
        const p = this.computePolicyGradients(r, { sequences, ptxDocuments });
        const v = this.computeValueGradients(r, sequences);
        // Both models' losses are checked before either steps: a NaN loss leaves this minibatch unapplied.
        const step = this.policyOptimizer.apply(this.o.lr);
        if (!step.applied) throw nonFiniteLoss(this.stage, this.done, 'the policy gradient norm', step.gradNorm);
        this.ema?.update();
        const valueStep = this.valueOptimizer.apply(this.o.valueLr);
        if (!valueStep.applied) throw nonFiniteLoss(this.stage, this.done, 'the value gradient norm', valueStep.gradNorm);
        sums.loss += p.loss;
        sums.ptxLoss += p.ptxLoss;
        sums.clipfrac += p.clipfrac;
        sums.entropy += p.entropy;
        sums.approxKl += p.approxKl;
        sums.valueLoss += v.loss;
        sums.gradNorm += step.gradNorm;
        sums.valueGradNorm += valueStep.gradNorm;
        updateTokens += p.tokens + v.tokens;
        updates++;
      }
    }
    const klCoef = r.klCoef;
    this.klController?.update(r.kl, b);
    this.done++;
    const t2 = performance.now();
    const metrics: StepMetrics = {
      loss: sums.loss / updates,
      valueLoss: sums.valueLoss / updates,
      reward,
      kl: r.kl,
      klCoef,
      clipfrac: sums.clipfrac / updates,
      entropy: sums.entropy / updates,
      approxKl: sums.approxKl / updates,
      responseLength: mean(r.responseLengths),
      endedRate: mean(r.ended),
      tokens: r.ids.length + updateTokens,
      rolloutSeconds: (t1 - t0) / 1000,
      updateSeconds: (t2 - t1) / 1000,
      lr: this.o.lr,
      gradNorm: sums.gradNorm / updates,
      valueGradNorm: sums.valueGradNorm / updates,
    };
    if (this.ptxOrder) metrics.ptxLoss = sums.ptxLoss / updates;
    return metrics;
  }

  /** The policy to evaluate: a frozen copy holding the EMA weights when emaDecay is set, else the policy itself. */
  evaluationPolicy(): TransformerModel {
    if (!this.ema) return this.policy;
    if (!this.emaModel) {
      this.emaModel = new TransformerModel(this.policy.config, this.policy.heads, {
        device: this.policy.device, params: this.ema.toArray(), trainable: false, suppressTokens: this.policy.suppressTokens,
      });
    } else {
      this.emaModel.loadParameters(this.ema.weights);
    }
    return this.emaModel;
  }

  checkpoint(): TrainerCheckpoint {
    const p = this.policyOptimizer.state();
    const v = this.valueOptimizer.state();
    const tensors: Record<string, Float32Array> = { 'policy.adam.m': p.m, 'policy.adam.v': p.v, 'value.adam.m': v.m, 'value.adam.v': v.v };
    if (this.ema) tensors['policy.ema'] = this.ema.toArray();
    return {
      state: {
        stepsDone: this.done,
        promptOrder: this.promptOrder.position(),
        ptxOrder: this.ptxOrder?.position() ?? null,
        minibatchRng: this.minibatchRng.state(),
        philoxOffset: this.philoxOffset,
        klCoef: this.klCoef,
        policyAdamStep: p.step,
        valueAdamStep: v.step,
      },
      tensors,
      models: { policy: this.policy, value: this.value },
    };
  }

  restore(checkpoint: RestoredCheckpoint): void {
    const bad = (why: string): never => {
      throw talariaError('ERR_TALARIA_FORMAT', `PpoTrainer.restore: ${why}`);
    };
    const s = checkpoint?.state ?? bad('the checkpoint has no state');
    const int = (key: string, max = Number.MAX_SAFE_INTEGER): number => {
      const value = s[key];
      if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max) bad(`state.${key} must be an integer in [0, ${max}], got ${describeValue(value)}`);
      return value as number;
    };
    const stepsDone = int('stepsDone', this.totalSteps);
    const philoxOffset = int('philoxOffset');
    const klCoef = s.klCoef;
    if (typeof klCoef !== 'number' || !(klCoef >= 0 && Number.isFinite(klCoef))) bad(`state.klCoef must be a finite number >= 0, got ${describeValue(klCoef)}`);
    const tensor = (name: string): Float32Array => (checkpoint.tensors?.[name] instanceof Float32Array ? checkpoint.tensors[name] : bad(`tensors.${name} is missing`));
    for (const role of ['policy', 'value'] as const) {
      const params = checkpoint.models?.[role];
      const model = this[role];
      if (!(params instanceof Float32Array) || params.length !== model.layout.totalNumel) bad(`models.${role} must hold ${model.layout.totalNumel} parameters`);
    }
    const ema = this.ema ? tensor('policy.ema') : null;
    const adam = (role: 'policy' | 'value') => ({ step: int(`${role}AdamStep`), m: tensor(`${role}.adam.m`), v: tensor(`${role}.adam.v`) });
    const [policyAdam, valueAdam] = [adam('policy'), adam('value')];
    for (const [name, state] of [['policy', policyAdam], ['value', valueAdam]] as const)
      if (state.m.length !== this[name].layout.totalNumel || state.v.length !== this[name].layout.totalNumel) bad(`tensors.${name}.adam.m/v must hold ${this[name].layout.totalNumel} values`);
    if (ema && ema.length !== this.policy.layout.totalNumel) bad(`tensors.policy.ema must hold ${this.policy.layout.totalNumel} values`);
    const promptOrder = this.promptOrder.check(s.promptOrder, 'PpoTrainer.restore: state.promptOrder');
    const ptxOrder = this.ptxOrder?.check(s.ptxOrder, 'PpoTrainer.restore: state.ptxOrder');
    if (!isRngState(s.minibatchRng)) bad('state.minibatchRng must be four unsigned 32-bit integers');
    // Everything checked: from here on nothing throws, so a bad checkpoint leaves the trainer as it was.
    this.promptOrder.restore(promptOrder);
    if (ptxOrder) this.ptxOrder!.restore(ptxOrder);
    this.minibatchRng.restore(s.minibatchRng as RngState);
    this.policyOptimizer.restore(policyAdam);
    this.valueOptimizer.restore(valueAdam);
    this.policy.loadParameters(checkpoint.models.policy);
    this.value.loadParameters(checkpoint.models.value);
    if (ema) this.ema!.restore(ema);
    if (this.klController) this.klController.value = klCoef as number;
    else this.fixedKlCoef = klCoef as number;
    this.philoxOffset = philoxOffset;
    this.done = stepsDone;
    this.last = null;
  }

  /** { policy, value }: the policy is the EMA of its weights when emaDecay is set (InstructGPT evaluates the EMA). */
  finalModels(): Record<string, TransformerModel> {
    return { policy: this.evaluationPolicy(), value: this.value };
  }

  dispose(): void {
    this.policyOptimizer.dispose();
    this.valueOptimizer.dispose();
    this.ema?.dispose();
    this.emaModel?.dispose();
    this.emaModel = null;
  }

  // ---- internals ----

  private callRewardFn(sequences: PpoSequences): Float32Array {
    const raw = this.rewardFn!(sequences);
    const b = sequences.responses.length;
    if (!(raw instanceof Float32Array || Array.isArray(raw)) || raw.length !== b)
      throw talariaError('ERR_TALARIA_SHAPE', `rewardFn: must return a Float32Array or array of ${b} scores (one per sequence), got ${describeValue(raw)}${raw && typeof raw === 'object' && 'length' in raw ? ` of length ${(raw as ArrayLike<number>).length}` : ''}`);
    return Float32Array.from(raw as ArrayLike<number>);
  }

  /** Zeroes the value model's gradients and accumulates the clipped value loss of `sequences` (not applied). */
  private computeValueGradients(r: PpoRollouts, sequences: readonly number[]): { loss: number; tokens: number } {
    const mb = gatherSequences(r.cuSeqlens, sequences, { ids: r.ids, actionMask: r.actionMask, values: r.values, returns: r.returns });
    this.value.zeroGrad();
    const fw = this.value.forward({ ids: mb.ids, cuSeqlens: mb.cuSeqlens }, { lm: false, score: true, grad: true });
    let dValues: Tensor | null = null;
    try {
      const current = rowsToTokens(fw.values!.toArray() as Float32Array, mb.cuSeqlens);
      const out = valueLoss({ values: current, oldValues: mb.values, returns: mb.returns, actionMask: mb.actionMask, cuSeqlens: mb.cuSeqlens, clipRange: this.o.valueClip });
      if (!Number.isFinite(out.loss)) throw nonFiniteLoss(this.stage, this.done, 'the value loss', out.loss);
      dValues = Tensor.from(tokensToRows(out.dValues, mb.cuSeqlens), { device: this.value.device });
      this.value.backward(fw, { dValues });
      return { loss: out.loss, tokens: mb.ids.length };
    } finally {
      fw.dispose();
      dValues?.dispose();
    }
  }
}

/**
 * Pretraining documents as next-token rows: each document's last token is only a target, never an input,
 * so a document may be one token longer than the context (task A's 65-token documents for a 64-token
 * model) and no row is spent predicting past a document's end.
 */
function pretrainingBatch(documents: readonly EncodedExample[]): { ids: Int32Array; cuSeqlens: Int32Array; targets: Int32Array; lossMask: Uint8Array } {
  const packed = packBatch(documents);
  const b = documents.length;
  const cuSeqlens = Int32Array.from(packed.cuSeqlens, (offset, i) => offset - i);
  const rows = cuSeqlens[b];
  const out = { ids: new Int32Array(rows), cuSeqlens, targets: new Int32Array(rows), lossMask: new Uint8Array(rows) };
  for (let d = 0; d < b; d++) {
    const [from, to] = [packed.cuSeqlens[d], packed.cuSeqlens[d + 1] - 1];
    out.ids.set(packed.ids.subarray(from, to), cuSeqlens[d]);
    out.targets.set(packed.targets.subarray(from, to), cuSeqlens[d]);
    out.lossMask.set(packed.lossMask.subarray(from, to), cuSeqlens[d]);
  }
  return out;
}
