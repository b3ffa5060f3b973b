// Masked whitening against the float64 reference, on every backend, through Tensors and through plain
// typed arrays, in the sync and the Promise form.
import { afterEach, describe, expect, it } from 'vitest';
import { Tensor, whiten, whitenAsync } from '../lib/index.js';
import { whitenReference } from './reference/rl.js';
import { Rng, randomMask, randomWhitenInput } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, expectNonTrivial, expectZeroWhereMasked, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

/**
 * - 'omitted': no mask argument; 'all-ones': a mask that counts everything;
 * - 'random': about 70% counted; 'single': exactly one entry counted; 'all-masked': nothing counted.
 */
type WhitenMask = 'omitted' | 'all-ones' | 'random' | 'single' | 'all-masked';

interface WhitenCase {
  name: string;
  seed: number;
  n: number;
  mask: WhitenMask;
  /** Exactly the options the call passes: a key is absent when the case leaves it to its default. */
  options: { shiftMean?: boolean; unbiased?: boolean; eps?: number };
}

const cases: WhitenCase[] = [];
let nextSeed = 2000;
const add = (c: Omit<WhitenCase, 'seed'>) => cases.push({ ...c, seed: nextSeed++ });

// Every combination of the options, at a prime size and at a size that spans many reduction chunks.
for (const n of [4099, 1_000_007]) {
  for (const mask of ['omitted', 'random'] as const) {
    for (const shiftMean of [true, false]) {
      for (const unbiased of [true, false]) {
        add({ name: `n ${n}, mask ${mask}, shiftMean ${shiftMean}, unbiased ${unbiased}`, n, mask, options: { shiftMean, unbiased } });
      }
    }
  }
}
// Sizes, each with the options left to their defaults.
for (const n of [0, 1, 2, 3, 17, 64, 65_537]) {
  for (const mask of ['omitted', 'random'] as const) add({ name: `n ${n}, mask ${mask}, defaults`, n, mask, options: {} });
}
add({ name: 'n 1, biased, mean kept', n: 1, mask: 'omitted', options: { shiftMean: false, unbiased: false } });
add({ name: 'mask of ones equals no mask', n: 999, mask: 'all-ones', options: {} });
add({ name: 'all masked gives all zeros', n: 1000, mask: 'all-masked', options: {} });
add({ name: 'all masked, mean kept, gives all zeros', n: 1000, mask: 'all-masked', options: { shiftMean: false } });
add({ name: 'one counted entry, unbiased', n: 513, mask: 'single', options: { unbiased: true, shiftMean: false } });
add({ name: 'one counted entry, biased', n: 513, mask: 'single', options: { unbiased: false } });
add({ name: 'large eps', n: 777, mask: 'random', options: { eps: 0.25 } });
add({ name: 'small eps', n: 777, mask: 'random', options: { eps: 2 ** -30, unbiased: false } });
add({ name: 'all masked, large n', n: 1_000_007, mask: 'all-masked', options: { unbiased: false } });

function maskFor(rng: Rng, kind: WhitenMask, n: number): Uint8Array | undefined {
  switch (kind) {
    case 'omitted':
      return undefined;
    case 'all-ones':
      return new Uint8Array(n).fill(1);
    case 'random':
      return randomMask(rng, n, 0.7);
    case 'all-masked':
      return new Uint8Array(n);
    case 'single': {
      const mask = new Uint8Array(n);
      mask[rng.int(0, n - 1)] = 1;
      return mask;
    }
  }
}

function prepare(c: WhitenCase) {
  const rng = new Rng(c.seed);
  const x = randomWhitenInput(rng, c.n);
  const mask = maskFor(rng, c.mask, c.n);
  // Masked-out entries come from a far-away range, so any leak into the mean or variance shows.
  mask?.forEach((m, i) => {
    if (m === 0) x[i] = rng.uniform(1e3, 2e3);
  });
  const ref = whitenReference(x, { ...c.options, mask });
  const counted = mask ? mask.reduce((s, m) => s + m, 0) : c.n;
  return { x, mask, ref, counted };
}

function check(c: WhitenCase, { mask, ref, counted }: ReturnType<typeof prepare>, got: ArrayLike<number>) {
  expectClose(got, ref, { rel: 1e-5 });
  if (mask) expectZeroWhereMasked(got, mask);
  // With two counted entries or more the output carries information; with one it is 0 or the entry itself.
  if (counted >= 2 || (counted === 1 && c.options.shiftMean === false)) expectNonTrivial(ref);
}

describe.each(backendsUnderTest)('whiten on $backend, Tensors on $device', ({ device }) => {
  it.each(cases)('$name', async (c) => {
    const prepared = prepare(c);
    const x = tensorOn(prepared.x, device);
    const options = { ...c.options, ...(prepared.mask && { mask: tensorOn(prepared.mask, device) }) };
    for (const out of [whiten(x, options), await whitenAsync(x, options)]) {
      expect(out).toBeInstanceOf(Tensor);
      expect([out.device, out.dtype, out.shape]).toEqual([device, 'f32', [c.n]]);
      check(c, prepared, readBack(out));
    }
    expectBitwiseEqual(x.toArray(), prepared.x);
  }, 60_000);
});

describe('whiten on plain typed arrays (cpu)', () => {
  it.each(cases)('$name', async (c) => {
    const prepared = prepare(c);
    const expectInputUnchanged = snapshotInputs(prepared);
    const options = { ...c.options, ...(prepared.mask && { mask: prepared.mask }) };
    for (const out of [whiten(prepared.x, options), await whitenAsync(prepared.x, options)]) {
      expect(out).toBeInstanceOf(Float32Array);
      expect(out).not.toBe(prepared.x);
      check(c, prepared, out as Float32Array);
    }
    expectInputUnchanged();
  }, 60_000);

  it('whitens to mean 0 and variance 1 over the counted entries', () => {
    const rng = new Rng(31);
    const x = randomWhitenInput(rng, 10_001);
    const mask = randomMask(rng, x.length, 0.5);
    const out = whiten(x, { mask, unbiased: true }) as Float32Array;
    const kept = Array.from(out).filter((_, i) => mask[i] === 1);
    const mean = kept.reduce((s, v) => s + v, 0) / kept.length;
    const variance = kept.reduce((s, v) => s + (v - mean) ** 2, 0) / (kept.length - 1);
    expect(Math.abs(mean)).toBeLessThan(1e-5);
    expect(Math.abs(variance - 1)).toBeLessThan(1e-4);
  });
});
