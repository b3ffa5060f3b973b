// PPO policy loss and value loss (forward + backward, one fused kernel each) at the PyTorch anchor's
// size, N = 65,536 tokens (B = 64 sequences of T = 1024), and one whole PPO loss step: GAE, advantage
// whitening, policy loss and value loss. Baselines are the plain-TypeScript float64 references.
//
// Napkin math, per token (compulsory traffic, what GB/s counts):
//   ppo        read logp, oldLogp, advantages (12 B) + mask (1 B); write dLogp (4 B)            = 17 B
//   ppo-full   + refLogp, entropy (8 B) read, dEntropy (4 B) written; k3 costs a second exp   = 29 B
//   value      read values, oldValues, returns (12 B) + mask (1 B); write dValues (4 B)        = 17 B
//   step       gae 17 B + whiten 9 B + ppo 17 B + value 17 B (intermediates written and reread) = 60 B
// At 65,536 tokens everything fits in L2/L3, so a kernel can beat the triad's DRAM bandwidth; the
// fraction is still quoted against the triad, the only roof we measure. The ~25 f32 ops per token (one
// polynomial exp) are the other bound.
//
// Every token is an action except each sequence's first 256 (its prompt), as trainers pass responses.
// The `out` buffers are reused across calls, as a training loop would.
import { gae, ppoLoss, valueLoss, whiten } from '../lib/index.js';
import { gaeReference, whitenReference } from '../test/reference/rl.js';
import { ppoLossReference, valueLossReference } from '../test/reference/rl_loss.js';
import { defineSuite, formatFigure, type BenchCase, type CaseResult } from './harness.js';
import { responseMask, tensorOn, uniformCuSeqlens, uniformFloat32 } from './inputs.js';

const B = 64;
const T = 1024;
const PROMPT_LEN = 256;
/** notes/anchors.md: PyTorch 1.13 eager, 2 threads, PPO clipped loss fwd+bwd at N = 65,536. */
const PYTORCH_PPO_MS = 0.7;

function lossCases(backends: string[]): BenchCase[] {
  const n = B * T;
  const arrays = {
    logp: uniformFloat32(n, 11, -3, 0),
    oldLogp: uniformFloat32(n, 12, -3, 0),
    advantages: uniformFloat32(n, 13, -2, 2),
    refLogp: uniformFloat32(n, 14, -3, 0),
    entropy: uniformFloat32(n, 15, 0, 3),
    values: uniformFloat32(n, 16),
    oldValues: uniformFloat32(n, 17),
    returns: uniformFloat32(n, 18),
    rewards: uniformFloat32(n, 19),
    cuSeqlens: uniformCuSeqlens(B, T),
    actionMask: responseMask(n, T, PROMPT_LEN),
  };
  const full = { klCoef: 0.05, klEstimator: 'k3' as const, entropyCoef: 0.01 };
  const params = { B, T };
  const ppoBaseline = {
    name: 'ppoLossReference',
    run: () => void ppoLossReference({ ...arrays, refLogp: undefined, entropy: undefined }),
  };
  const fullBaseline = { name: 'ppoLossReference', run: () => void ppoLossReference({ ...arrays, ...full }) };
  const valueBaseline = { name: 'valueLossReference', run: () => void valueLossReference(arrays) };
  const stepBaseline = {
    name: 'references',
    run: () => {
      const { advantages, returns } = gaeReference({ ...arrays, values: arrays.oldValues, gamma: 1, lambda: 0.95 });
      const whitened = whitenReference(advantages, { mask: arrays.actionMask });
      ppoLossReference({ ...arrays, refLogp: undefined, entropy: undefined, advantages: whitened });
      valueLossReference({ ...arrays, returns });
    },
  };

  return backends.flatMap((backend) => {
    const on = Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, tensorOn(v, backend)])) as
      Record<keyof typeof arrays, ReturnType<typeof tensorOn>>;
    const buffer = () => tensorOn(new Float32Array(n), backend);
    const dLogp = buffer(), dEntropy = buffer(), dValues = buffer(), advantages = buffer(), returns = buffer();
    const ppoInput = { logp: on.logp, oldLogp: on.oldLogp, advantages: on.advantages, cuSeqlens: on.cuSeqlens,
      actionMask: on.actionMask, out: { dLogp } };
    const valueInput = { values: on.values, oldValues: on.oldValues, returns: on.returns, actionMask: on.actionMask,
      cuSeqlens: on.cuSeqlens, out: { dValues } };
    const step = () => {
      gae({ rewards: on.rewards, values: on.oldValues, cuSeqlens: on.cuSeqlens, actionMask: on.actionMask,
        gamma: 1, lambda: 0.95, out: { advantages, returns } });
      whiten(advantages, { mask: on.actionMask, out: advantages });
      ppoLoss({ ...ppoInput, advantages });
      valueLoss({ ...valueInput, returns });
    };
    return [
      { name: 'ppo', backend, params, bytes: 17 * n, run: () => void ppoLoss(ppoInput), baseline: ppoBaseline },
      {
        name: 'ppo-full', backend, params, bytes: 29 * n, baseline: fullBaseline,
        run: () => void ppoLoss({ ...ppoInput, ...full, refLogp: on.refLogp, entropy: on.entropy, out: { dLogp, dEntropy } }),
      },
      { name: 'value', backend, params, bytes: 17 * n, run: () => void valueLoss(valueInput), baseline: valueBaseline },
      { name: 'step', backend, params, bytes: 60 * n, run: step, baseline: stepBaseline },
    ];
  });
}

/** The ratio to the anchor, apart from the table: the anchor was not measured in this run. */
function pytorchAnchorFooter(results: CaseResult[]): string[] {
  const lines = ['rl_loss baselines: the plain-TypeScript float64 references of test/reference/rl_loss.ts and rl.ts.',
    'ppo vs the PyTorch ANCHOR from notes/anchors.md (PyTorch 1.13 eager, fwd+bwd, N = 65,536, 2 threads),',
    `${PYTORCH_PPO_MS} ms; NOT measured in this run, so the ratio is only indicative (goal: >= 10x):`];
  for (const r of results.filter((result) => result.case === 'ppo' && result.backend === 'cpu'))
    lines.push(`  ppo (cpu): anchor ${PYTORCH_PPO_MS} ms / ${formatFigure(r.ms)} ms here = ${formatFigure(PYTORCH_PPO_MS / r.ms)}×`);
  return lines;
}

export default defineSuite({ name: 'rl_loss', cases: lossCases, footer: pytorchAnchorFooter });
