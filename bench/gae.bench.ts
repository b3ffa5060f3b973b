// GAE over packed sequences, at the two shapes of the PyTorch anchor in notes/anchors.md, against the
// plain-TypeScript loop (gaeReference, float64) on the same data.
//
// Napkin math, per token: read reward (4 B), value (4 B) and action mask (1 B), write advantage (4 B)
// and return (4 B): 17 B, plus 4 B per cu_seqlens entry. The recurrence costs about 6 flops a token,
// so GAE is bound by memory (or, one sequence per thread, by the latency of its dependent chain).
//
// Every token is an action (an all-ones mask, which is what trainers pass for response-only batches).
// Rewards and values are seeded uniform noise; gamma = 1 (InstructGPT's PPO), lambda = 0.95 (the
// trainers' default).
// The `tensor-out` cases hand the kernel prebuilt Tensors and reuse two output Tensors through `out`,
// as a training loop would: they time the kernel plus the call. The `tensor` cases also allocate and
// dispose the two outputs each call (fresh memory costs page faults). The `typedarray` cases pass
// plain Float32Arrays, so the difference to `tensor` is the cost of marshalling the arguments.
import { gae } from '../lib/index.js';
import { gaeReference } from '../test/reference/rl.js';
import { defineSuite, formatFigure, type BenchCase, type CaseResult } from './harness.js';
import { tensorOn, uniformCuSeqlens, uniformFloat32 } from './inputs.js';

const GAMMA = 1;
const LAMBDA = 0.95;

/** The shapes, with PyTorch's time for each (notes/anchors.md: PyTorch 1.13 eager, 2 threads). */
const SHAPES = [
  { B: 64, T: 1024, pytorchMs: 15.7 },
  { B: 512, T: 256, pytorchMs: 5.4 },
];

function gaeCases(B: number, T: number, backends: string[]): BenchCase[] {
  const n = B * T;
  const rewards = uniformFloat32(n, 1);
  const values = uniformFloat32(n, 2);
  const cuSeqlens = uniformCuSeqlens(B, T);
  const actionMask = new Uint8Array(n).fill(1);
  const arrays = { rewards, values, cuSeqlens, actionMask, gamma: GAMMA, lambda: LAMBDA };
  const common = { params: { B, T }, bytes: 17 * n + 4 * (B + 1) };
  const baseline = { name: 'gaeReference', run: () => void gaeReference(arrays) };

  const cases: BenchCase[] = backends.map((backend) => {
    const onDevice = {
      rewards: tensorOn(rewards, backend),
      values: tensorOn(values, backend),
      cuSeqlens: tensorOn(cuSeqlens, backend),
      actionMask: tensorOn(actionMask, backend),
      gamma: GAMMA,
      lambda: LAMBDA,
    };
    const run = () => {
      const { advantages, returns } = gae(onDevice);
      advantages.dispose();
      returns.dispose();
    };
    const out = { advantages: tensorOn(new Float32Array(n), backend), returns: tensorOn(new Float32Array(n), backend) };
    return [
      { name: `tensor-out-B${B}-T${T}`, backend, ...common, run: () => void gae({ ...onDevice, out }), baseline },
      { name: `tensor-B${B}-T${T}`, backend, ...common, run, baseline },
    ];
  }).flat();
  if (backends.includes('cpu')) {
    cases.push({ name: `typedarray-B${B}-T${T}`, backend: 'cpu', ...common, run: () => void gae(arrays), baseline });
  }
  return cases;
}

/** The ratio to the anchor, clearly apart from the table: the anchor was not measured in this run. */
function pytorchAnchorFooter(results: CaseResult[]): string[] {
  const lines = ['gae baseline: gaeReference, the plain-TypeScript float64 loop of test/reference/rl.ts.',
    'gae vs the PyTorch ANCHOR from notes/anchors.md (PyTorch 1.13 eager, reverse loop over T, 2 threads,',
    'on the machine the notes describe). NOT measured in this run, so the ratio is only indicative:'];
  for (const r of results.filter((result) => result.backend === 'cpu')) {
    const shape = SHAPES.find((s) => s.B === r.params.B && s.T === r.params.T);
    if (!shape) continue;
    lines.push(`  ${r.case} (cpu): anchor ${shape.pytorchMs} ms / ${formatFigure(r.ms)} ms here = ` +
      `${formatFigure(shape.pytorchMs / r.ms)}×`);
  }
  return lines;
}

export default defineSuite({
  name: 'gae',
  cases: (backends) => SHAPES.flatMap(({ B, T }) => gaeCases(B, T, backends)),
  footer: pytorchAnchorFooter,
});
