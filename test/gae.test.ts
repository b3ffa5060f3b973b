// GAE against the float64 reference (test/reference/rl.ts), on every backend, through Tensors and
// through plain typed arrays, in the sync and the Promise form.
import { afterEach, describe, expect, it } from 'vitest';
import { gae, gaeAsync, Tensor } from '../lib/index.js';
import { gaeReference } from './reference/rl.js';
import { type MaskKind, type PackedBatch, Rng, randomLengths, randomPackedBatch, randomUnit } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectNonTrivial, expectZeroWhereMasked, maxAbs, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

/** A hyperparameter: a fixed value, 'random' (drawn from the case's seed), or undefined (left out). */
type Hyper = number | 'random' | undefined;

interface GaeCase {
  name: string;
  seed: number;
  /** Fixed sequence lengths, or a random batch of `count` sequences of up to `maxLen` tokens. */
  lengths: number[] | { count: number; maxLen: number };
  mask: MaskKind;
  bootstrap: boolean;
  gamma: Hyper;
  lambda: Hyper;
  /**
   * Compare with one bound for every element, 1e-5 * max|ref|, instead of per element. With
   * gamma = lambda = 1 an advantage is the suffix sum of all the deltas after it, so on a long sequence
   * it is a long reduction: rounding errors from far-away tokens accumulate into elements whose own value
   * happens to be near 0, and only a bound on the scale of the whole output is meaningful.
   */
  scaleAware?: boolean;
}

const RANDOM_BATCH = { count: 37, maxLen: 300 };
const MASKS: MaskKind[] = ['omitted', 'all-ones', 'prompt-response', 'interleaved', 'all-masked'];
const cases: GaeCase[] = [];
let nextSeed = 1000;
const add = (c: Omit<GaeCase, 'seed'>) => cases.push({ ...c, seed: nextSeed++ });

for (const mask of MASKS) {
  for (const bootstrap of [false, true]) {
    add({ name: `mask ${mask}, bootstrap ${bootstrap}`, lengths: RANDOM_BATCH, mask, bootstrap, gamma: 'random', lambda: 'random' });
  }
}
for (const gamma of [0, 1, 'random'] as const) {
  for (const lambda of [0, 1, 'random'] as const) {
    for (const bootstrap of [false, true]) {
      const mask = bootstrap ? 'prompt-response' : 'interleaved';
      add({ name: `gamma ${gamma}, lambda ${lambda}, bootstrap ${bootstrap}`, lengths: RANDOM_BATCH, mask, bootstrap, gamma, lambda });
    }
  }
}
add({ name: 'defaults (gamma 1, lambda 0.95) when both are left out', lengths: RANDOM_BATCH, mask: 'prompt-response', bootstrap: true, gamma: undefined, lambda: undefined });
add({ name: 'no sequences at all (B = 0, N = 0)', lengths: [], mask: 'omitted', bootstrap: true, gamma: 'random', lambda: 'random' });
add({ name: 'one empty sequence', lengths: [0], mask: 'interleaved', bootstrap: true, gamma: 'random', lambda: 'random' });
add({ name: 'only empty sequences', lengths: [0, 0, 0], mask: 'omitted', bootstrap: true, gamma: 'random', lambda: 'random' });
add({ name: 'one sequence of one token', lengths: [1], mask: 'omitted', bootstrap: true, gamma: 'random', lambda: 'random' });
add({ name: 'many one-token sequences', lengths: [1, 1, 1, 1, 1, 1, 1], mask: 'interleaved', bootstrap: true, gamma: 'random', lambda: 'random' });
add({ name: 'odd and prime lengths', lengths: [3, 7, 0, 31, 1, 127, 8191], mask: 'prompt-response', bootstrap: false, gamma: 'random', lambda: 'random' });
add({ name: 'long sequence of 200k tokens, defaults', lengths: [200_000], mask: 'prompt-response', bootstrap: true, gamma: undefined, lambda: undefined });
add({ name: 'long sequence of 200k tokens, gamma = lambda = 1', lengths: [200_000], mask: 'prompt-response', bootstrap: true, gamma: 1, lambda: 1, scaleAware: true });
add({ name: 'long and short sequences mixed, no mask', lengths: [150_001, 1, 0, 49_999], mask: 'omitted', bootstrap: false, gamma: 1, lambda: 1, scaleAware: true });

interface Prepared {
  batch: PackedBatch;
  /** Exactly the hyperparameters the call passes: a key is absent when the case leaves it out. */
  params: { gamma?: number; lambda?: number };
  ref: { advantages: Float64Array; returns: Float64Array };
}

function prepare(c: GaeCase): Prepared {
  const rng = new Rng(c.seed);
  const lengths = Array.isArray(c.lengths) ? c.lengths : randomLengths(rng, c.lengths.count, c.lengths.maxLen);
  const batch = randomPackedBatch(rng, { lengths, mask: c.mask, bootstrap: c.bootstrap });
  const params: Prepared['params'] = {};
  if (c.gamma !== undefined) params.gamma = c.gamma === 'random' ? randomUnit(rng, 0.8, 1) : c.gamma;
  if (c.lambda !== undefined) params.lambda = c.lambda === 'random' ? randomUnit(rng, 0.5, 1) : c.lambda;
  const ref = gaeReference({ ...batch, gamma: params.gamma ?? 1, lambda: params.lambda ?? 0.95 });
  return { batch, params, ref };
}

function hasAction(batch: PackedBatch): boolean {
  return batch.rewards.length > 0 && (!batch.actionMask || batch.actionMask.includes(1));
}

function check(c: GaeCase, { batch, ref }: Prepared, advantages: ArrayLike<number>, returns: ArrayLike<number>) {
  const tolerance = (x: Float64Array) => (c.scaleAware ? { rel: 1e-5, scale: maxAbs(x) } : { rel: 1e-5 });
  expectClose(advantages, ref.advantages, tolerance(ref.advantages));
  expectClose(returns, ref.returns, tolerance(ref.returns));
  if (batch.actionMask) {
    expectZeroWhereMasked(advantages, batch.actionMask);
    expectZeroWhereMasked(returns, batch.actionMask);
  }
  if (hasAction(batch)) expectNonTrivial(ref.advantages);
}

describe.each(backendsUnderTest)('gae on $backend, Tensors on $device', ({ device }) => {
  function expectTensorOutput(x: unknown, n: number) {
    expect(x).toBeInstanceOf(Tensor);
    const t = x as Tensor;
    expect([t.device, t.dtype, t.shape]).toEqual([device, 'f32', [n]]);
  }

  it.each(cases)('$name', async (c) => {
    const prepared = prepare(c);
    const args = { ...recordOn(prepared.batch, device), ...prepared.params };
    const n = prepared.batch.rewards.length;
    for (const out of [gae(args), await gaeAsync(args)]) {
      expectTensorOutput(out.advantages, n);
      expectTensorOutput(out.returns, n);
      check(c, prepared, readBack(out.advantages), readBack(out.returns));
    }
  });
});

describe('gae on plain typed arrays (cpu)', () => {
  it.each(cases)('$name', async (c) => {
    const prepared = prepare(c);
    const args = { ...prepared.batch, ...prepared.params };
    const expectInputsUnchanged = snapshotInputs(prepared.batch);
    for (const out of [gae(args), await gaeAsync(args)]) {
      expect(out.advantages).toBeInstanceOf(Float32Array);
      expect(out.returns).toBeInstanceOf(Float32Array);
      check(c, prepared, out.advantages as Float32Array, out.returns as Float32Array);
    }
    expectInputsUnchanged();
  });
});

describe('gae skips non-action tokens (verl rule)', () => {
  it('rewards and values under mask 0 do not change any output', () => {
    const rng = new Rng(77);
    const batch = randomPackedBatch(rng, { lengths: randomLengths(rng, 23, 200), mask: 'interleaved', bootstrap: true });
    const gamma = randomUnit(rng, 0.9, 1);
    const lambda = randomUnit(rng, 0.5, 1);
    const first = gae({ ...batch, gamma, lambda });
    const rewards = batch.rewards.slice();
    const values = batch.values.slice();
    batch.actionMask!.forEach((m, i) => {
      if (m === 0) {
        rewards[i] = rng.uniform(-100, 100);
        values[i] = rng.uniform(-100, 100);
      }
    });
    const second = gae({ ...batch, rewards, values, gamma, lambda });
    expectBitwiseEqual(second.advantages as Float32Array, first.advantages as Float32Array);
    expectBitwiseEqual(second.returns as Float32Array, first.returns as Float32Array);
    expectNonTrivial(first.advantages as Float32Array);
  });
});
