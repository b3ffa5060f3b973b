// The PPO trainer (lib/train/ppo.ts) on a tiny world (test/helpers/ppo-world.ts): it learns a synthetic
// reward with a bounded KL, and each bug users keep hitting in Python RLHF trainers has its own test:
// reward at the EOS, no padding in KL/GAE/whitening, no masked value in GAE, log-probs at the sampling
// temperature, the reported KL is the penalty's estimator, and resume restores optimizer and RNG state.
import { afterEach, describe, expect, it } from 'vitest';
import { crossEntropy } from '../lib/ops/logits.js';
import { packBatch } from '../lib/data/batches.js';
import {
  AdaptiveKlController, instructgptPreset, instructgptPtx, PpoTrainer, ppoAdvantages, sequenceLogprobs, taskAPreset, taskAPtx,
  type PpoRollouts, type PpoTrainerOptions,
} from '../lib/train/ppo.js';
import type { RestoredCheckpoint, StepMetrics } from '../lib/train/trainer.js';
import { disposeTensors } from './helpers/backends.js';
import { expectBitwiseEqual, expectThrows, maxAbs, thrownBy } from './helpers/assert.js';
import { disposeModels, tinyDocuments, tinyModels, tinyOptions, tinyPrompts, tinyTokenizer, type TinyModels } from './helpers/ppo-world.js';

afterEach(disposeTensors);

const EOS = tinyTokenizer.eosId;

function withTrainer<T>(models: TinyModels, overrides: Partial<PpoTrainerOptions>, body: (trainer: PpoTrainer) => T): T {
  const trainer = new PpoTrainer(tinyOptions(models, overrides));
  try {
    return body(trainer);
  } finally {
    trainer.dispose();
    disposeModels(models);
  }
}

/** For each sequence, the token indices of its response (its action tokens). */
function responseTokens(r: PpoRollouts, b: number): number[] {
  return Array.from({ length: r.responseLengths[b] }, (_, i) => r.cuSeqlens[b + 1] - r.responseLengths[b] + i);
}

describe('PpoTrainer learns', () => {
  it('raises a synthetic reward (fraction of a target token) from ~0.1 to > 0.6 in 30 iterations, KL staying under 1/beta', () => {
    const klCoef = 0.05;
    // The KL-regularised optimum is pi_ref * exp(r / beta) / Z, whose KL to pi_ref is at most (max r - min r) / beta
    // = 1 / beta = 20 nats for a reward in [0, 1]: a policy past it would be exploiting something other than the reward.
    const history = withTrainer(tinyModels(), { iterations: 30, rolloutsPerIteration: 32, minibatchSize: 16, epochs: 2, klCoef }, (trainer) => {
      const out: StepMetrics[] = [];
      while (trainer.stepsDone < trainer.totalSteps) out.push(trainer.trainStep());
      return out;
    });
    const rewards = history.map((m) => m.reward);
    expect(rewards[0]).toBeLessThan(0.25);
    const lastFive = rewards.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(lastFive).toBeGreaterThan(0.6);
    for (const m of history) {
      expect(m.kl).toBeLessThan(1 / klCoef);
      expect(m.kl).toBeGreaterThan(-1);
      for (const name of ['loss', 'valueLoss', 'reward', 'kl', 'klCoef', 'clipfrac', 'entropy', 'responseLength', 'endedRate', 'tokens', 'rolloutSeconds', 'updateSeconds', 'lr'])
        expect(Number.isFinite(m[name]), name).toBe(true);
      expect(m.klCoef).toBe(klCoef);
      expect(m.ptxLoss).toBeUndefined();
    }
  });
});

describe('the bugs users keep hitting', () => {
  it('the score lands on the last action token (the EOS when the response ended), never on a prompt token', () => {
    const klCoef = 0.1;
    withTrainer(tinyModels(1, { referenceSeed: 2 }), { klCoef, rewardFn: (s) => Float32Array.from(s.responses, (_, b) => 10 + b) }, (trainer) => {
      const r = trainer.collectRollouts();
      const b = r.responseLengths.length;
      expect(r.ended.some((e) => e === 1) && r.ended.some((e) => e === 0), 'a batch mixing ended and cut responses').toBe(true);
      for (let s = 0; s < b; s++) {
        const actions = responseTokens(r, s);
        const last = actions[actions.length - 1];
        expect(r.ids[last] === EOS, `sequence ${s}: last token is EOS iff it ended`).toBe(r.ended[s] === 1);
        for (let t = r.cuSeqlens[s]; t < r.cuSeqlens[s + 1]; t++) {
          if (!r.actionMask[t]) {
            expect(r.rewards[t], `prompt token ${t}`).toBe(0);
            continue;
          }
          // What is left after the KL penalty is the score, on the last action token only.
          const rest = r.rewards[t] + klCoef * (r.oldLogp[t] - r.refLogp[t]);
          expect(Math.abs(rest - (t === last ? 10 + s : 0)), `token ${t} of sequence ${s}`).toBeLessThan(1e-4);
        }
      }
    });
  });

  it('a reward model is read at each sequence\'s last token (the EOS), as a forward over that sequence alone gives', () => {
    const models = tinyModels(3);
    const { rewardFn: _, ...rest } = tinyOptions(models);
    const trainer = new PpoTrainer({ ...rest, reward: models.reward });
    const r = trainer.collectRollouts();
    for (let s = 0; s < r.scores.length; s++) {
      const ids = r.ids.slice(r.cuSeqlens[s], r.cuSeqlens[s + 1]);
      const fw = models.reward.forward({ ids, cuSeqlens: new Int32Array([0, ids.length]) });
      const values = fw.values!.toArray() as Float32Array;
      fw.dispose();
      expect(Math.abs(r.scores[s] - values[ids.length - 1])).toBeLessThan(1e-5);
      expect(Math.abs(r.scores[s] - values[ids.length - 2]), 'not the token before').toBeGreaterThan(1e-7);
    }
    trainer.dispose();
    disposeModels(models);
  });

  it('a response without EOS adds no padding: KL, GAE and whitening see exactly its tokens', () => {
    withTrainer(tinyModels(1, { referenceSeed: 2 }), { rolloutsPerIteration: 24 }, (trainer) => {
      const r = trainer.collectRollouts();
      const maxNewTokens = 6;
      const b = r.responseLengths.length;
      expect(r.ended.filter((e) => e === 0).length).toBeGreaterThan(0);
      expect(r.ids.includes(tinyTokenizer.padId), 'no PAD token anywhere').toBe(false);
      let actionTokens = 0;
      let klSum = 0;
      for (let s = 0; s < b; s++) {
        const length = r.cuSeqlens[s + 1] - r.cuSeqlens[s];
        expect(length).toBe(r.promptLengths[s] + r.responseLengths[s]);
        if (!r.ended[s]) {
          expect(r.responseLengths[s]).toBe(maxNewTokens);
          expect(r.responses[s].includes(EOS)).toBe(false);
        } else {
          expect(r.responses[s].indexOf(EOS)).toBe(r.responseLengths[s] - 1);
        }
        let mask = 0;
        for (let t = r.cuSeqlens[s]; t < r.cuSeqlens[s + 1]; t++) mask += r.actionMask[t];
        expect(mask).toBe(r.responseLengths[s]);
        actionTokens += mask;
        for (const t of responseTokens(r, s)) klSum += r.oldLogp[t] - r.refLogp[t];
      }
      expect(Math.abs(r.kl - klSum / b)).toBeLessThan(1e-4 * Math.max(1, Math.abs(r.kl)));
      // Whitening over exactly the action tokens: mean 0 and unbiased variance 1 over those; 0 elsewhere.
      let sum = 0;
      let sq = 0;
      for (let t = 0; t < r.ids.length; t++) {
        if (!r.actionMask[t]) {
          expect(r.advantages[t]).toBe(0);
          expect(r.returns[t]).toBe(0);
          continue;
        }
        sum += r.advantages[t];
        sq += r.advantages[t] ** 2;
      }
      const mean = sum / actionTokens;
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      expect(Math.abs((sq - actionTokens * mean * mean) / (actionTokens - 1) - 1)).toBeLessThan(1e-4);
    });
  });

  it('no masked value leaks into GAE: values at prompt tokens change nothing, and each value is the state before its action', () => {
    withTrainer(tinyModels(4), {}, (trainer) => {
      const r = trainer.collectRollouts();
      const args = { rewards: r.rewards, cuSeqlens: r.cuSeqlens, actionMask: r.actionMask, gamma: 1, lambda: 0.95, whiten: true };
      const base = ppoAdvantages({ ...args, values: r.values });
      const poisoned = r.values.slice();
      for (let t = 0; t < poisoned.length; t++) if (!r.actionMask[t]) poisoned[t] = 1e6 * (1 + (t % 7));
      const other = ppoAdvantages({ ...args, values: poisoned });
      expectBitwiseEqual(other.advantages, base.advantages);
      expectBitwiseEqual(other.returns, base.returns);
      expectBitwiseEqual(base.advantages, r.advantages);
      // values[t] is the value head at row t-1 (the state before action t), read over the sequence alone.
      const models = (trainer as unknown as { value: TinyModels['value'] }).value;
      const s = 1;
      const ids = r.ids.slice(r.cuSeqlens[s], r.cuSeqlens[s + 1]);
      const fw = models.forward({ ids, cuSeqlens: new Int32Array([0, ids.length]) }, { grad: false });
      const rows = fw.values!.toArray() as Float32Array;
      fw.dispose();
      for (const t of responseTokens(r, s)) expect(Math.abs(r.values[t] - rows[t - r.cuSeqlens[s] - 1])).toBeLessThan(1e-5);
    });
  });

  it('log-probs use the sampling temperature: rescoring at it reproduces generation\'s, another temperature does not', () => {
    withTrainer(tinyModels(5), { temperature: 0.7 }, (trainer) => {
      const r = trainer.collectRollouts();
      const policy = (trainer as unknown as { policy: TinyModels['policy'] }).policy;
      const at = (temperature: number) => sequenceLogprobs(policy, r, { temperature, batchSequences: 5 });
      const same = at(0.7);
      const other = at(1);
      let sameErr = 0;
      let otherErr = 0;
      for (let t = 0; t < r.ids.length; t++) {
        if (!r.actionMask[t]) continue;
        sameErr = Math.max(sameErr, Math.abs(same[t] - r.oldLogp[t]));
        otherErr = Math.max(otherErr, Math.abs(other[t] - r.oldLogp[t]));
      }
      expect(sameErr).toBeLessThan(1e-4);
      expect(otherErr).toBeGreaterThan(1e-2);
      // The reference starts as the policy: at the same temperature its log-probs match, so the KL is ~0.
      expect(Math.abs(r.kl)).toBeLessThan(1e-3);
      expect(maxAbs(Float32Array.from(r.refLogp, (x, t) => x - r.oldLogp[t]))).toBeLessThan(1e-4);
    });
  });

  it('the reported KL is the penalty\'s estimator: mean over sequences of sum_t (logp_old - logp_ref)', () => {
    const klCoef = 0.07;
    withTrainer(tinyModels(1, { referenceSeed: 6 }), { klCoef }, (trainer) => {
      const m = trainer.trainStep();
      const r = trainer.lastRollouts!;
      let total = 0;
      const b = r.responseLengths.length;
      for (let s = 0; s < b; s++) {
        const actions = responseTokens(r, s);
        for (const t of actions) {
          const k1 = r.oldLogp[t] - r.refLogp[t];
          total += k1;
          if (t !== actions[actions.length - 1]) expect(Math.abs(r.rewards[t] + klCoef * k1)).toBeLessThan(1e-6);
        }
      }
      expect(m.kl).toBeGreaterThan(0.5);
      expect(Math.abs(m.kl - total / b)).toBeLessThan(1e-5 * m.kl);
      expect(m.kl).toBe(r.kl);
    });
  });

  it('resume restores optimizer, EMA, KL-controller and RNG state: k + restore + (N - k) equals N straight, bitwise', () => {
    const overrides: Partial<PpoTrainerOptions> = {
      iterations: 3, emaDecay: 0.9, adaptiveKl: { target: 0.5, horizon: 100 }, epochs: 2,
      ptx: { examples: tinyDocuments(11, 3), coef: 0.5, docsPerMinibatch: 3 }, prompts: tinyPrompts(10, 7),
    };
    const run = (models: TinyModels) => new PpoTrainer(tinyOptions(models, overrides));
    const strip = (m: StepMetrics) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.endsWith('Seconds')));

    const straightModels = tinyModels(1, { referenceSeed: 2 });
    const straight = run(straightModels);
    const want = [straight.trainStep(), straight.trainStep(), straight.trainStep()].map(strip);

    const firstModels = tinyModels(1, { referenceSeed: 2 });
    const first = run(firstModels);
    const got = [strip(first.trainStep())];
    const saved = first.checkpoint();
    const restored: RestoredCheckpoint = {
      state: JSON.parse(JSON.stringify(saved.state)),
      tensors: Object.fromEntries(Object.entries(saved.tensors).map(([k, v]) => [k, v.slice()])),
      models: Object.fromEntries(Object.entries(saved.models).map(([k, m]) => [k, m.parametersToArray()])),
    };
    expect(Object.keys(saved.models).sort()).toEqual(['policy', 'value']);
    expect(Object.keys(saved.tensors).sort()).toEqual(['policy.adam.m', 'policy.adam.v', 'policy.ema', 'value.adam.m', 'value.adam.v']);
    first.dispose();
    disposeModels(firstModels);

    // Fresh models with other weights; only the frozen reference comes from the run's own source.
    const freshModels = tinyModels(9, { referenceSeed: 2 });
    const resumed = run(freshModels);
    resumed.restore(restored);
    expect(resumed.stepsDone).toBe(1);
    got.push(strip(resumed.trainStep()), strip(resumed.trainStep()));
    expect(got).toEqual(want);
    expect(want[2].klCoef).not.toBe(want[0].klCoef);
    expectBitwiseEqual(freshModels.policy.parametersToArray(), straightModels.policy.parametersToArray());
    expectBitwiseEqual(freshModels.value.parametersToArray(), straightModels.value.parametersToArray());
    expectBitwiseEqual(resumed.finalModels().policy.parametersToArray(), straight.finalModels().policy.parametersToArray());
    for (const t of [straight, resumed]) t.dispose();
    disposeModels(straightModels);
    disposeModels(freshModels);
  });
});

describe('PPO-ptx', () => {
  it('accumulates coef x the pretraining gradient into the PPO gradient before the one AdamW step', () => {
    const coef = 0.7;
    const docs = tinyDocuments(5, 4);
    withTrainer(tinyModels(7), { ptx: { examples: docs, coef, docsPerMinibatch: 3 } }, (trainer) => {
      expect(trainer.stage).toBe('ppo-ptx');
      const policy = (trainer as unknown as { policy: TinyModels['policy'] }).policy;
      const r = trainer.collectRollouts();
      const sequences = [3, 0, 5, 7, 11];
      const ptxDocuments = docs.slice(1, 4);
      const grads = () => policy.grads!.toArray() as Float32Array;
      const report = trainer.computePolicyGradients(r, { sequences, ptxDocuments });
      expect(Number.isFinite(report.loss) && Number.isFinite(report.ptxLoss)).toBe(true);
      const both = grads();
      trainer.computePolicyGradients(r, { sequences, include: 'ppo' });
      const ppoOnly = grads();
      // The pretraining gradient computed independently, unscaled.
      policy.zeroGrad();
      const batch = packBatch(ptxDocuments);
      const fw = policy.forward({ ids: batch.ids, cuSeqlens: batch.cuSeqlens });
      const ce = crossEntropy({ logits: fw.logits!, targets: batch.targets, mask: batch.lossMask, inPlace: true });
      expect(Math.abs(ce.loss - report.ptxLoss)).toBeLessThan(1e-6);
      policy.backward(fw, { dLogits: ce.dLogits });
      fw.dispose();
      const ptxOnly = grads();
      expect(maxAbs(ppoOnly)).toBeGreaterThan(1e-4);
      expect(maxAbs(ptxOnly)).toBeGreaterThan(1e-4);
      const scale = maxAbs(both);
      let err = 0;
      for (let i = 0; i < both.length; i++) err = Math.max(err, Math.abs(both[i] - (ppoOnly[i] + coef * ptxOnly[i])));
      expect(err).toBeLessThan(1e-5 * scale);
      expect(maxAbs(Float32Array.from(both, (g, i) => g - ppoOnly[i]))).toBeGreaterThan(1e-3 * scale);
      const m = trainer.trainStep();
      expect(Number.isFinite(m.ptxLoss)).toBe(true);
    });
  });

  it('takes documents one token longer than the context (the last token is only a target), as task A\'s 65-token ones', () => {
    const long = tinyDocuments(2, 9).map((d) => ({ ids: Int32Array.from({ length: 65 }, (_, i) => d.ids[i % d.ids.length]) }));
    withTrainer(tinyModels(7), { ptx: { examples: long, coef: 1, docsPerMinibatch: 2 } }, (trainer) => {
      const r = trainer.collectRollouts();
      const report = trainer.computePolicyGradients(r, { ptxDocuments: long, include: 'ptx' });
      expect(report.tokens).toBe(2 * 64);
      expect(Number.isFinite(report.ptxLoss)).toBe(true);
      expect(Number.isFinite(trainer.trainStep().ptxLoss)).toBe(true);
    });
  });
});

describe('the KL controller', () => {
  it('moves beta by clip(KL/target - 1, +-0.2) * episodes/horizon', () => {
    const c = new AdaptiveKlController(0.1, { target: 1, horizon: 100 });
    expect(c.update(5, 10)).toBeCloseTo(0.1 * 1.02, 12);
    expect(c.update(0.95, 10)).toBeCloseTo(0.1 * 1.02 * (1 - 0.005), 12);
    expect(c.update(0, 10)).toBeCloseTo(0.1 * 1.02 * 0.995 * 0.98, 12);
  });

  for (const [target, direction] of [[0.01, 'up'], [1e6, 'down']] as const) {
    it(`raises beta when the KL exceeds its target and lowers it below (target ${target}: ${direction})`, () => {
      withTrainer(tinyModels(1, { referenceSeed: 8 }), { klCoef: 0.05, adaptiveKl: { target, horizon: 50 } }, (trainer) => {
        const m = trainer.trainStep();
        expect(m.klCoef).toBe(0.05);
        expect(m.kl).toBeGreaterThan(0.1);
        if (direction === 'up') expect(trainer.klCoef).toBeGreaterThan(0.05);
        else expect(trainer.klCoef).toBeLessThan(0.05);
        // The next iteration's penalty uses the updated beta, and a checkpoint carries it.
        const beta = trainer.klCoef;
        expect(trainer.checkpoint().state.klCoef).toBe(beta);
        expect(trainer.trainStep().klCoef).toBe(beta);
      });
    });
  }
});

describe('non-finite values', () => {
  const poison = (model: TinyModels['policy']) => {
    const p = model.parametersToArray();
    for (let i = 0; i < p.length; i += 17) p[i] = NaN;
    model.loadParameters(p);
  };

  // What the message names: the first non-finite quantity on the way (generation reports NaN logits itself).
  for (const [what, setup, named] of [
    ['NaN value weights', (m: TinyModels) => poison(m.value), 'policy loss'],
    ['NaN policy weights', (m: TinyModels) => poison(m.policy), 'finite logit'],
    ['NaN reference weights', (m: TinyModels) => poison(m.reference), 'KL'],
    ['NaN reward-model weights', (m: TinyModels) => poison(m.reward), 'reward'],
  ] as const) {
    it(`${what}: trainStep throws ERR_TALARIA_RANGE and changes no parameter`, () => {
      const models = tinyModels(2);
      setup(models);
      // The reward model is in play only for its own case; the others score with rewardFn.
      const scoring = what.startsWith('NaN reward') ? { rewardFn: undefined, reward: models.reward } : {};
      withTrainer(models, scoring, (trainer) => {
        const before = [models.policy.parametersToArray(), models.value.parametersToArray()];
        expectThrows(() => trainer.trainStep(), 'ERR_TALARIA_RANGE', named);
        expectBitwiseEqual(models.policy.parametersToArray(), before[0]);
        expectBitwiseEqual(models.value.parametersToArray(), before[1]);
        expect(trainer.stepsDone).toBe(0);
      });
    });
  }

  it('a NaN reward is a nonFiniteLoss naming the reward; parameters unchanged', () => {
    const models = tinyModels(2);
    withTrainer(models, { rewardFn: (s) => Float32Array.from(s.responses, (_, b) => (b === 3 ? NaN : 1)) }, (trainer) => {
      const before = models.policy.parametersToArray();
      expectThrows(() => trainer.trainStep(), 'ERR_TALARIA_RANGE', 'reward');
      expectBitwiseEqual(models.policy.parametersToArray(), before);
    });
  });
});

describe('presets, EMA and final models', () => {
  it('exports the InstructGPT and task-A numbers', () => {
    expect(instructgptPreset).toMatchObject({ klCoef: 0.02, clip: 0.2, gamma: 1, lambda: 0.95, epochs: 1, emaDecay: 0.992, rolloutsPerIteration: 512, minibatchSize: 64 });
    expect(instructgptPtx).toEqual({ coef: 27.8, docsPerEpisode: 8 });
    expect(taskAPreset).toMatchObject({ klCoef: 0.05, epochs: 2, rolloutsPerIteration: 128, minibatchSize: 64, iterations: 40 });
    expect(taskAPtx).toEqual({ coef: 1, docsPerMinibatch: 16 });
  });

  it('the final policy is the EMA of the weights when emaDecay is set, else the policy itself', () => {
    withTrainer(tinyModels(3), { emaDecay: 0.5 }, (trainer) => {
      trainer.trainStep();
      const { policy } = trainer.finalModels();
      const live = (trainer as unknown as { policy: TinyModels['policy'] }).policy;
      expect(policy).not.toBe(live);
      expectBitwiseEqual(policy.parametersToArray(), trainer.checkpoint().tensors['policy.ema']);
      expect(maxAbs(Float32Array.from(policy.parametersToArray(), (x, i) => x - live.parametersToArray()[i]))).toBeGreaterThan(0);
    });
    const models = tinyModels(3);
    withTrainer(models, {}, (trainer) => expect(trainer.finalModels()).toEqual({ policy: models.policy, value: models.value }));
  });
});
