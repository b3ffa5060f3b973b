// Masked whitening (advantage normalisation) at a PPO batch's size (64 Ki tokens) and a large one
// (4 Mi tokens), against the plain-TypeScript loop (whitenReference, float64) on the same data.
//
// Napkin math, per element: read x (4 B) and mask (1 B), write out (4 B): 9 B of compulsory traffic,
// which is what GB/s counts. The mean and variance must be known before any output is written, so a
// kernel reads x and mask twice; once they no longer fit in cache (the 4 Mi case: 20 MiB) it moves
// 14 B per element, and 9/14 = 64% of the triad is its practical ceiling. At 64 Ki (320 KiB) the second
// read comes from cache.
//
// The mask is a response mask: each 256-token sequence has a 64-token prompt (0) and then its
// response (1), as trainers pass it.
import { whiten } from '../lib/index.js';
import { whitenReference } from '../test/reference/rl.js';
import { defineSuite, type BenchCase } from './harness.js';
import { responseMask, tensorOn, uniformFloat32 } from './inputs.js';

const SIZES = [64 * 1024, 4 * 1024 * 1024];
const SEQ_LEN = 256;
const PROMPT_LEN = 64;

function whitenCases(N: number, backends: string[]): BenchCase[] {
  const x = uniformFloat32(N, 3, -2, 5);
  const mask = responseMask(N, SEQ_LEN, PROMPT_LEN);
  const baseline = { name: 'whitenReference', run: () => void whitenReference(x, { mask }) };
  return backends.map((backend) => {
    const xOn = tensorOn(x, backend);
    const maskOn = tensorOn(mask, backend);
    // The output is a fresh tensor each call; disposing it is part of the call's cost.
    const run = () => whiten(xOn, { mask: maskOn }).dispose();
    return { name: `tensor-N${N}`, params: { N }, backend, bytes: 9 * N, run, baseline };
  });
}

export default defineSuite({
  name: 'whiten',
  cases: (backends) => SIZES.flatMap((N) => whitenCases(N, backends)),
  footer: () => ['whiten baseline: whitenReference, the plain-TypeScript float64 loop of test/reference/rl.ts.'],
});
