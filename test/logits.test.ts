// The logit kernels against the float64 reference (test/reference/logits.ts) on every backend, through
// 2-D Tensors and typed arrays with vocabSize, sync and Promise: logprobEntropy (+ backward),
// crossEntropy, klDivergence (+ backward). The reference's gradients are checked against central finite
// differences of its own forward. Sizes: V = 1, odd and prime V, several 1024-logit chunks plus a tail,
// V = 131072; -inf entries (masked vocabulary), T = 1e-3 and 1e3, per-row temperatures, logits of ±1e4.
//
// Tolerances are relative to the reference's error scales (what an f32 kernel rounds, see the reference):
// - FWD_REL: d and s are f32 sums of up to 1024 terms per chunk in 16 lanes (64 terms a lane) merged in
//   f64 (CPU) or per-thread f32 sums of V/256 terms merged in a tree (CUDA), and dz carries the rounding
//   of 1/T: a few ulp over the scale; 2e-6 (~16 ulp) leaves room (the CPU stays below 5e-7).
// - BWD_REL: one polynomial exp (CPU) or expf (CUDA), each within 2 ulp, of an argument whose error is
//   an ulp of (1 + |z_i| + |lse|) (in the scale), and 4-5 f32 roundings: 2e-6 as well.
// A wrong term (a sign, a missing 1/T, a wrong one-hot) moves an output by O(1) of its scale.
import { afterEach, describe, expect, it } from 'vitest';
import {
  crossEntropy, crossEntropyAsync, klDivergence, klDivergenceAsync, klDivergenceBackward, klDivergenceBackwardAsync,
  logprobEntropy, logprobEntropyAsync, logprobEntropyBackward, logprobEntropyBackwardAsync, type Tensor,
} from '../lib/index.js';
import {
  crossEntropyReference, klDivergenceBackwardReference, klDivergenceReference, logprobEntropyBackwardReference,
  logprobEntropyReference, rowSoftmax,
} from './reference/logits.js';
import { Rng, randomF32, randomMask } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectNonTrivial, expectWithin, expectWithinScales, snapshotInputs } from './helpers/assert.js';

afterEach(disposeTensors);

const FWD_REL = 2e-6;
const BWD_REL = 2e-6;

interface Spec {
  name: string;
  n: number;
  v: number;
  /** Logits uniform in [-spread, spread). Default 6. */
  spread?: number;
  temperature?: number;
  /** Per-row temperatures uniform in [0.25, 4). */
  perRow?: boolean;
  /** Fraction of entries set to -Infinity (never a row's target, never a whole row). */
  masked?: number;
  /** Entries [0, maskedPrefix) of every row are -Infinity; targets lie beyond. */
  maskedPrefix?: number;
}

const specs: Spec[] = [
  { name: 'V = 1', n: 5, v: 1 },
  { name: 'V = 7, T = 0.7', n: 9, v: 7, temperature: 0.7 },
  { name: 'V = 97 (prime), per-row temperatures', n: 13, v: 97, perRow: true },
  { name: 'V = 1009 (prime), T = 1.5', n: 6, v: 1009, temperature: 1.5 },
  { name: 'V = 3 * 1024 + 5: chunks and a tail, per-row temperatures', n: 4, v: 3077, perRow: true },
  { name: 'masked vocabulary: 40% of the entries -Infinity', n: 8, v: 257, masked: 0.4 },
  { name: 'masked vocabulary: the first two 1024-logit chunks all -Infinity', n: 3, v: 2500, maskedPrefix: 2048, masked: 0.3 },
  { name: 'T = 1e-3', n: 6, v: 101, temperature: 1e-3 },
  { name: 'T = 1e3', n: 6, v: 101, temperature: 1e3 },
  { name: 'logits of ±1e4', n: 6, v: 499, spread: 1e4 },
  { name: 'logits of ±1e4 at T = 1e-3', n: 4, v: 211, spread: 1e4, temperature: 1e-3 },
  { name: 'logits of ±1e4 at T = 1e3, masked', n: 4, v: 211, spread: 1e4, temperature: 1e3, masked: 0.2 },
  { name: 'V = 131072 (128k)', n: 2, v: 131_072, perRow: true },
  { name: 'N = 0', n: 0, v: 17 },
];

interface Data {
  logits: Float32Array;
  refLogits: Float32Array;
  targets: Int32Array;
  temperatures?: Float32Array;
  gLogp: Float32Array;
  gEntropy: Float32Array;
  gKl: Float32Array;
  mask: Uint8Array;
}

function makeData(spec: Spec, seed: number): Data {
  const rng = new Rng(seed);
  const { n, v } = spec;
  const spread = spec.spread ?? 6;
  const logits = randomF32(rng, n * v, -spread, spread);
  const refLogits = Float32Array.from(logits, (x) => x + rng.uniform(-1, 1) * Math.min(1, spread / 4));
  const prefix = spec.maskedPrefix ?? 0;
  const targets = Int32Array.from({ length: n }, () => rng.int(prefix, v - 1));
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < v; i++) {
      if (i !== targets[r] && (i < prefix || rng.chance(spec.masked ?? 0))) logits[r * v + i] = refLogits[r * v + i] = -Infinity;
    }
  }
  return {
    logits, refLogits, targets,
    ...(spec.perRow && { temperatures: randomF32(rng, n, 0.25, 4) }),
    gLogp: randomF32(rng, n, -2, 2), gEntropy: randomF32(rng, n, -2, 2), gKl: randomF32(rng, n, -2, 2),
    mask: randomMask(rng, n, 0.7),
  };
}

const temperatureOf = (spec: Spec, d: Data) =>
  d.temperatures ? { temperatures: d.temperatures } : spec.temperature !== undefined ? { temperature: spec.temperature } : {};

type Placed = Float32Array | Int32Array | Uint8Array | Tensor;
/** How a case passes its arrays: typed arrays with vocabSize, or Tensors on a device (logits 2-D). */
interface Placement {
  name: string;
  device: string | null;
  matrix: (x: Float32Array, spec: Spec) => Placed;
  vector: (x: Float32Array | Int32Array | Uint8Array) => Placed;
  vocab: (spec: Spec) => { vocabSize?: number };
}
const placements: Placement[] = [
  { name: 'typed arrays', device: null, matrix: (x) => x, vector: (x) => x, vocab: (spec) => ({ vocabSize: spec.v }) },
  ...backendsUnderTest.map(({ backend, device }): Placement => ({
    name: `${backend} Tensors`, device,
    matrix: (x, spec) => tensorOn(x, device, [spec.n, spec.v]),
    vector: (x) => tensorOn(x, device),
    vocab: () => ({}),
  })),
];

const f32 = (x: Placed | undefined) => readBack(x as Float32Array | Tensor) as Float32Array;

describe.each(placements)('on $name', (place) => {
  describe.each(specs.map((spec, i) => ({ ...spec, seed: 4100 + i })))('$name', (spec) => {
    const data = makeData(spec, spec.seed);
    const rows = { logits: data.logits, vocabSize: spec.v, ...temperatureOf(spec, data) };
    // Tensors are made inside each test: afterEach disposes them.
    const common = () => ({
      logits: place.matrix(data.logits, spec), ...place.vocab(spec),
      ...(data.temperatures ? { temperatures: place.vector(data.temperatures) } : temperatureOf(spec, data)),
    });

    /** A backward kernel against its reference; the Promise form and in place (over a copy) give the same bits. */
    async function checkGradient(sync: (input: never) => { dLogits: unknown }, async: (input: never) => Promise<{ dLogits: unknown }>,
      args: Record<string, unknown>, want: { dLogits: Float64Array; scale: Float64Array }) {
      const dLogits = f32(sync(args as never).dLogits as Placed);
      expectWithinScales(dLogits, want.dLogits, BWD_REL, want.scale);
      expectBitwiseEqual(f32((await async(args as never)).dLogits as Placed), dLogits);
      const inPlace = { ...args, logits: place.matrix(data.logits.slice(), spec), inPlace: true };
      const got = sync(inPlace as never);
      expect(got.dLogits).toBe(inPlace.logits);
      expectBitwiseEqual(f32(got.dLogits as Placed), dLogits);
    }

    it('logprobEntropy matches the reference, sync and async, and leaves its inputs alone', async () => {
      const want = logprobEntropyReference({ ...rows, targets: data.targets });
      const unchanged = snapshotInputs(data);
      const args = { ...common(), targets: place.vector(data.targets) };
      for (const got of [logprobEntropy(args as never), await logprobEntropyAsync(args as never)]) {
        expectWithinScales(f32(got.logp), want.logp, FWD_REL, want.scales.logp);
        expectWithinScales(f32(got.entropy), want.entropy, FWD_REL, want.scales.entropy);
        expectWithinScales(f32(got.lse), want.lse, FWD_REL, want.scales.lse);
      }
      unchanged();
    });

    it('logprobEntropyBackward matches the reference, also in place', async () => {
      const want = logprobEntropyBackwardReference({ ...rows, targets: data.targets, gLogp: data.gLogp, gEntropy: data.gEntropy });
      const saved = logprobEntropyReference({ ...rows, targets: data.targets });
      if (spec.n > 0 && spec.v > 1) expectNonTrivial(want.dLogits);
      const args = {
        ...common(), targets: place.vector(data.targets), gLogp: place.vector(data.gLogp), gEntropy: place.vector(data.gEntropy),
        lse: place.vector(Float32Array.from(saved.lse)), entropy: place.vector(Float32Array.from(saved.entropy)),
      };
      await checkGradient(logprobEntropyBackward, logprobEntropyBackwardAsync, args, want);
    });

    it('crossEntropy matches the reference with a mask, without one, and all masked; in place too', async () => {
      const allMasked = new Uint8Array(spec.n);
      for (const mask of [data.mask, undefined, allMasked]) {
        const want = crossEntropyReference({ logits: data.logits, vocabSize: spec.v, targets: data.targets, mask });
        const args = { logits: place.matrix(data.logits, spec), ...place.vocab(spec), targets: place.vector(data.targets),
          ...(mask && { mask: place.vector(mask) }) };
        const sync = crossEntropy(args as never);
        expect(sync.count).toBe(want.count);
        expectWithin(sync.loss, want.loss, FWD_REL * want.lossScale, 'loss');
        const dLogits = f32(sync.dLogits);
        expectWithinScales(dLogits, want.dLogits, BWD_REL, want.scale);
        for (let r = 0; r < spec.n; r++) {
          if (mask && mask[r] === 0) expect(dLogits.subarray(r * spec.v, (r + 1) * spec.v).every((x) => Object.is(x, 0))).toBe(true);
        }
        if (mask === allMasked) expect([sync.loss, sync.count]).toEqual([0, 0]);
        const fromAsync = await crossEntropyAsync(args as never);
        expect(fromAsync.loss).toBe(sync.loss);
        expectBitwiseEqual(f32(fromAsync.dLogits), dLogits);
        for (const how of [{ inPlace: true }, 'out'] as const) {
          const copy = place.matrix(data.logits.slice(), spec);
          const got = crossEntropy({ ...args, logits: copy, ...(how === 'out' ? { out: { dLogits: copy } } : how) } as never);
          expect(got.dLogits).toBe(copy);
          expect(got.loss).toBe(sync.loss);
          expectBitwiseEqual(f32(got.dLogits), dLogits);
        }
      }
    });

    it('klDivergence and its backward match the reference, also in place', async () => {
      const want = klDivergenceReference({ ...rows, refLogits: data.refLogits });
      const args = { ...common(), refLogits: place.matrix(data.refLogits, spec) };
      const got = klDivergence(args as never);
      expectWithinScales(f32(got.kl), want.kl, FWD_REL, want.scales.kl);
      expectWithinScales(f32(got.lse), want.lse, FWD_REL, want.scales.lse);
      expectWithinScales(f32(got.refLse), want.refLse, FWD_REL, want.scales.refLse);
      expectBitwiseEqual(f32((await klDivergenceAsync(args as never)).kl), f32(got.kl));

      const wantGrad = klDivergenceBackwardReference({ ...rows, refLogits: data.refLogits, gKl: data.gKl });
      const bwd = { ...args, gKl: place.vector(data.gKl), lse: place.vector(Float32Array.from(want.lse)),
        refLse: place.vector(Float32Array.from(want.refLse)), kl: place.vector(Float32Array.from(want.kl)) };
      await checkGradient(klDivergenceBackward, klDivergenceBackwardAsync, bwd, wantGrad);
    });
  });
});

describe('the forward feeds the backward', () => {
  it.each(backendsUnderTest)('logprobEntropy then its backward on $backend, with the saved lse and entropy', ({ device }) => {
    const spec: Spec = { name: 'chain', n: 7, v: 333, temperature: 0.8, masked: 0.1 };
    const data = makeData(spec, 99);
    const logits = tensorOn(data.logits, device, [spec.n, spec.v]), targets = tensorOn(data.targets, device);
    const fwd = logprobEntropy({ logits, targets, temperature: 0.8 });
    const got = logprobEntropyBackward({ logits, targets, temperature: 0.8, gLogp: tensorOn(data.gLogp, device),
      gEntropy: tensorOn(data.gEntropy, device), lse: fwd.lse, entropy: fwd.entropy });
    expect(got.dLogits.shape).toEqual([spec.n, spec.v]);
    expect(got.dLogits.device).toBe(device);
    const want = logprobEntropyBackwardReference({ logits: data.logits, vocabSize: spec.v, temperature: 0.8,
      targets: data.targets, gLogp: data.gLogp, gEntropy: data.gEntropy });
    // The saved values carry the forward's error too: FWD_REL on top of BWD_REL.
    expectWithinScales(f32(got.dLogits), want.dLogits, FWD_REL + BWD_REL, want.scale);
  });
});

describe('the reference gradients agree with central finite differences of the reference', () => {
  const spec: Spec = { name: 'fd', n: 3, v: 7, temperature: 0.7 };
  const data = makeData(spec, 31337);
  data.logits[5] = -Infinity;  // a masked entry (not a target: checked below)
  const x = Float64Array.from(data.logits);
  const h = 1e-5;
  /** Central difference of f at every finite logit. */
  function numeric(f: (logits: Float64Array) => number): Float64Array {
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      if (x[i] === -Infinity) continue;
      const plus = x.slice(), minus = x.slice();
      plus[i] += h;
      minus[i] -= h;
      out[i] = (f(plus) - f(minus)) / (2 * h);
    }
    return out;
  }
  const close = (got: ArrayLike<number>, want: ArrayLike<number>) =>
    expectWithinScales(got, want, 1e-6, Array.from(want, (w) => 1 + Math.abs(w)));

  it('logprobEntropy: gLogp . logp + gEntropy . H', () => {
    expect(data.targets[0]).not.toBe(5);
    const loss = (logits: Float64Array) => {
      const r = logprobEntropyReference({ logits, vocabSize: spec.v, temperature: 0.7, targets: data.targets });
      return r.logp.reduce((s, lp, i) => s + data.gLogp[i] * lp + data.gEntropy[i] * r.entropy[i], 0);
    };
    const analytic = logprobEntropyBackwardReference({ logits: x, vocabSize: spec.v, temperature: 0.7, targets: data.targets,
      gLogp: data.gLogp, gEntropy: data.gEntropy }).dLogits;
    expectNonTrivial(analytic);
    close(analytic, numeric(loss));
  });

  it('crossEntropy: the mean loss over unmasked rows', () => {
    const mask = Uint8Array.from([1, 0, 1]);
    const loss = (logits: Float64Array) => crossEntropyReference({ logits, vocabSize: spec.v, targets: data.targets, mask }).loss;
    close(crossEntropyReference({ logits: x, vocabSize: spec.v, targets: data.targets, mask }).dLogits, numeric(loss));
  });

  it('klDivergence: gKl . KL with respect to the policy logits', () => {
    const refLogits = Float64Array.from(data.refLogits);
    refLogits[5] = 0.3;  // q has mass where p has none: that entry contributes nothing
    const loss = (logits: Float64Array) =>
      klDivergenceReference({ logits, vocabSize: spec.v, temperature: 0.7, refLogits }).kl.reduce((s, k, i) => s + data.gKl[i] * k, 0);
    const analytic = klDivergenceBackwardReference({ logits: x, vocabSize: spec.v, temperature: 0.7, refLogits, gKl: data.gKl }).dLogits;
    expectNonTrivial(analytic);
    close(analytic, numeric(loss));
  });

  it('rowSoftmax: log p sums to probability 1 and lse is log sum e^z', () => {
    const s = rowSoftmax([1, 2, -Infinity, 0.5], 0.5);
    expect(s.logp.reduce((a, lp) => a + Math.exp(lp), 0)).toBeCloseTo(1, 14);
    expect(s.lse).toBeCloseTo(Math.log(Math.exp(2) + Math.exp(4) + Math.exp(1)), 14);
  });
});

describe('cuda parity and determinism', () => {
  const spec: Spec = { name: 'parity', n: 37, v: 5003, perRow: true, masked: 0.05 };
  const data = makeData(spec, 2024);
  const run = (device: string) => {
    const logits = tensorOn(data.logits, device, [spec.n, spec.v]);
    const ref = tensorOn(data.refLogits, device, [spec.n, spec.v]);
    const temperatures = tensorOn(data.temperatures!, device), targets = tensorOn(data.targets, device);
    const fwd = logprobEntropy({ logits, targets, temperatures });
    const bwd = logprobEntropyBackward({ logits, targets, temperatures, gLogp: tensorOn(data.gLogp, device),
      gEntropy: tensorOn(data.gEntropy, device), lse: fwd.lse, entropy: fwd.entropy });
    const ce = crossEntropy({ logits, targets, mask: tensorOn(data.mask, device) });
    const kl = klDivergence({ logits, refLogits: ref, temperatures });
    const klBwd = klDivergenceBackward({ logits, refLogits: ref, temperatures, gKl: tensorOn(data.gKl, device), ...kl });
    return {
      logp: f32(fwd.logp), entropy: f32(fwd.entropy), lse: f32(fwd.lse), dLogits: f32(bwd.dLogits),
      ceLoss: Float32Array.of(ce.loss), ceDLogits: f32(ce.dLogits), kl: f32(kl.kl), klDLogits: f32(klBwd.dLogits),
    };
  };

  it.each(backendsUnderTest)('$backend gives bitwise-identical results run after run', ({ device }) => {
    const first = run(device), second = run(device);
    for (const key of Object.keys(first) as (keyof typeof first)[]) expectBitwiseEqual(second[key], first[key]);
  });

  it.each(backendsUnderTest.filter(({ backend }) => backend !== 'cpu'))('$backend agrees with cpu', ({ device }) => {
    const cpu = run('cpu'), other = run(device);
    const rows = { logits: data.logits, vocabSize: spec.v, temperatures: data.temperatures };
    const fwd = logprobEntropyReference({ ...rows, targets: data.targets });
    const kl = klDivergenceReference({ ...rows, refLogits: data.refLogits });
    // Each backend is within FWD_REL / BWD_REL of the reference, so within twice that of each other.
    expectWithinScales(other.logp, cpu.logp, 2 * FWD_REL, fwd.scales.logp);
    expectWithinScales(other.entropy, cpu.entropy, 2 * FWD_REL, fwd.scales.entropy);
    expectWithinScales(other.lse, cpu.lse, 2 * FWD_REL, fwd.scales.lse);
    expectWithinScales(other.kl, cpu.kl, 2 * FWD_REL, kl.scales.kl);
    const grad = logprobEntropyBackwardReference({ ...rows, targets: data.targets, gLogp: data.gLogp, gEntropy: data.gEntropy });
    expectWithinScales(other.dLogits, cpu.dLogits, 2 * (FWD_REL + BWD_REL), grad.scale);
    const ce = crossEntropyReference({ logits: data.logits, vocabSize: spec.v, targets: data.targets, mask: data.mask });
    expectWithin(other.ceLoss[0], cpu.ceLoss[0], 2 * FWD_REL * ce.lossScale + 1e-7 * Math.abs(ce.loss), 'ceLoss');
    expectWithinScales(other.ceDLogits, cpu.ceDLogits, 2 * BWD_REL, ce.scale);
    const klGrad = klDivergenceBackwardReference({ ...rows, refLogits: data.refLogits, gKl: data.gKl });
    expectWithinScales(other.klDLogits, cpu.klDLogits, 2 * (FWD_REL + BWD_REL), klGrad.scale);
  });
});
