// Reward shaping (InstructGPT) and group advantages (GRPO / RLOO) at a PPO rollout's size: B = 512
// responses of T = 256 tokens (N = 131,072), the first 64 of each being the prompt. Baselines are the
// plain-TypeScript float64 references.
//
// Napkin math, per token (compulsory traffic, what GB/s counts):
//   shape   read logp, refLogp (8 B) + mask (1 B); write rewards (4 B)                    = 13 B
//           (+ per sequence: score, EOS flag, cu_seqlens, shaped score: negligible)
//   group   read mask (1 B); write token advantages (4 B)                                 =  5 B
//           (the per-completion statistics over B = 512 scores are negligible)
// Both fit in L2/L3 at this size; k1 shaping is a subtract and a multiply per token, so the
// kernels are bound by the pass over memory and the pool's dispatch, not by arithmetic.
import { groupAdvantages, RewardNormalizer, shapeRewards } from '../lib/index.js';
import { groupAdvantagesReference, shapeRewardsReference } from '../test/reference/rewards.js';
import { defineSuite, type BenchCase } from './harness.js';
import { responseMask, tensorOn, uniformCuSeqlens, uniformFloat32 } from './inputs.js';

const B = 512;
const T = 256;
const PROMPT_LEN = 64;
const GROUP = 8;  // GRPO completions per prompt

function rewardCases(backends: string[]): BenchCase[] {
  const n = B * T;
  const arrays = {
    scores: uniformFloat32(B, 31, -3, 3),
    logp: uniformFloat32(n, 32, -3, 0),
    refLogp: uniformFloat32(n, 33, -3, 0),
    cuSeqlens: uniformCuSeqlens(B, T),
    actionMask: responseMask(n, T, PROMPT_LEN),
    endedWithEos: Uint8Array.from({ length: B }, (_, b) => (b % 7 === 0 ? 0 : 1)),
  };
  const shaping = { klCoef: 0.02, missingEosPenalty: 1, scoreClip: 5 };
  const params = { B, T, G: GROUP };
  const shapeBaseline = {
    name: 'shapeRewardsReference',
    run: () => void shapeRewardsReference({ ...arrays, ...shaping, normalizerState: { count: 0, mean: 0, m2: 0, shiftMean: true, eps: 1e-8 } }),
  };
  const groupBaseline = {
    name: 'groupAdvantagesReference',
    run: () => void groupAdvantagesReference({ scores: arrays.scores, groupSize: GROUP, cuSeqlens: arrays.cuSeqlens, actionMask: arrays.actionMask }),
  };

  return backends.flatMap((backend) => {
    const on = Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, tensorOn(v, backend)])) as
      Record<keyof typeof arrays, ReturnType<typeof tensorOn>>;
    const rewards = tensorOn(new Float32Array(n), backend), shapedScores = tensorOn(new Float32Array(B), backend);
    const advantages = tensorOn(new Float32Array(B), backend), tokenAdvantages = tensorOn(new Float32Array(n), backend);
    // A fresh normalizer per call would reset its moments; one that keeps growing is what training does.
    const normalizer = new RewardNormalizer();
    return [
      {
        name: 'shape', backend, params, bytes: 13 * n, baseline: shapeBaseline,
        run: () => void shapeRewards({ ...on, ...shaping, normalizer, out: { rewards, shapedScores } }),
      },
      {
        name: 'group-grpo', backend, params, bytes: 5 * n, baseline: groupBaseline,
        run: () => void groupAdvantages({ scores: on.scores, groupSize: GROUP, cuSeqlens: on.cuSeqlens,
          actionMask: on.actionMask, out: { advantages, tokenAdvantages } }),
      },
    ];
  });
}

export default defineSuite({
  name: 'rewards',
  cases: rewardCases,
  footer: () => ['rewards baselines: the plain-TypeScript float64 references of test/reference/rewards.ts.'],
});
