// DPO and the InstructGPT K-wise ranking loss. Baselines are the plain-TypeScript float64 references.
//
// Napkin math:
//   dpo       per pair: read 4 summed log-probs (16 B), write 2 gradients (8 B), ~2 f64 exp/log1p.
//             P = 65,536 pairs: 1.5 MB, far below a millisecond of traffic; f64 transcendentals bind.
//   ranking   per prompt of K completions: read K scores, write K gradients (8K B), and K(K-1) f64
//             exp/log1p (each pair is evaluated from both sides so every gradient is one fixed-order
//             sum). InstructGPT's batch, 64 prompts of K = 9, is ~4.6k transcendentals: dispatch-bound.
//             4,096 prompts of K = 9 show the per-pair throughput.
import { dpoLoss, rankingLoss } from '../lib/index.js';
import { dpoLossReference, rankingLossReference } from '../test/reference/preference.js';
import { defineSuite, type BenchCase } from './harness.js';
import { tensorOn, uniformFloat32 } from './inputs.js';

const PAIRS = 65_536;
const K = 9;

function preferenceCases(backends: string[]): BenchCase[] {
  const pairs = {
    policyChosen: uniformFloat32(PAIRS, 41, -300, -20),
    policyRejected: uniformFloat32(PAIRS, 42, -300, -20),
    refChosen: uniformFloat32(PAIRS, 43, -300, -20),
    refRejected: uniformFloat32(PAIRS, 44, -300, -20),
  };
  const rankings = [64, 4096].map((prompts) => ({
    prompts,
    scores: uniformFloat32(prompts * K, 45 + prompts, -2, 2),
    offsets: Int32Array.from({ length: prompts + 1 }, (_, p) => p * K),
  }));

  return backends.flatMap((backend) => {
    const onPairs = Object.fromEntries(Object.entries(pairs).map(([k, v]) => [k, tensorOn(v, backend)])) as
      Record<keyof typeof pairs, ReturnType<typeof tensorOn>>;
    const dChosen = tensorOn(new Float32Array(PAIRS), backend), dRejected = tensorOn(new Float32Array(PAIRS), backend);
    const dpo: BenchCase = {
      name: 'dpo', backend, params: { P: PAIRS }, bytes: 24 * PAIRS,
      run: () => void dpoLoss({ ...onPairs, beta: 0.1, out: { dPolicyChosen: dChosen, dPolicyRejected: dRejected } }),
      baseline: { name: 'dpoLossReference', run: () => void dpoLossReference({ ...pairs, beta: 0.1 }) },
    };
    const ranking = rankings.map(({ prompts, scores, offsets }): BenchCase => {
      const input = { scores: tensorOn(scores, backend), offsets: tensorOn(offsets, backend) };
      const dScores = tensorOn(new Float32Array(scores.length), backend);
      return {
        name: `ranking-${prompts}x${K}`, backend, params: { prompts, K }, bytes: 8 * scores.length,
        run: () => void rankingLoss({ ...input, out: { dScores } }),
        baseline: { name: 'rankingLossReference', run: () => void rankingLossReference({ scores, offsets }) },
      };
    });
    return [dpo, ...ranking];
  });
}

export default defineSuite({
  name: 'preference',
  cases: preferenceCases,
  footer: () => ['preference baselines: the plain-TypeScript float64 references of test/reference/preference.ts.'],
});
