// Backend parity: every non-cpu backend of this build (cuda-emu in test builds, cuda on a GPU) gives
// what the cpu backend gives on the same inputs. The per-kernel suites already check each backend
// against the float64 reference; this one compares the backends with each other, directly, on the
// shapes that pick different CUDA thread mappings (rl.cu: warp, block and tile mode).
import { afterEach, describe, expect, it } from 'vitest';
import { gae, info, whiten } from '../lib/index.js';
import { type MaskKind, Rng, randomLengths, randomPackedBatch, randomWhitenInput, randomMask } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, readBack, recordOn, tensorOn } from './helpers/backends.js';
import { expectClose, maxAbs } from './helpers/assert.js';

afterEach(disposeTensors);

const others = backendsUnderTest.filter(({ backend }) => backend !== 'cpu');

describe('backends under test', () => {
  it('include a CUDA backend exactly when the build has one and a device is present', () => {
    const { cudaCompiled, devices } = info();
    const names = others.map((b) => b.backend);
    if (cudaCompiled && devices.length > 0) expect(names.length === 1 && ['cuda', 'cuda-emu'].includes(names[0])).toBe(true);
    else expect(names).toEqual([]);
  });

  // CI sets TALARIA_EXPECT_BACKENDS for each addon it tests, so a run that silently lost a backend fails.
  it('start with cpu, have no repeats, and match TALARIA_EXPECT_BACKENDS when it is set', () => {
    const names = backendsUnderTest.map((b) => b.backend);
    expect(names[0]).toBe('cpu');
    expect(new Set(names).size).toBe(names.length);
    const expected = process.env.TALARIA_EXPECT_BACKENDS;
    if (expected !== undefined) expect(names.join(',')).toBe(expected);
  });
});

interface Shape {
  name: string;
  lengths: (rng: Rng) => number[];
  mask: MaskKind;
}

const shapes: Shape[] = [
  { name: 'many short sequences (warp mode)', lengths: (rng) => randomLengths(rng, 300, 64), mask: 'prompt-response' },
  { name: 'few long sequences (block mode)', lengths: () => [4000, 17, 8192, 0, 2500], mask: 'interleaved' },
  { name: 'one very long sequence among short ones (tile mode)', lengths: () => [3, 60_001, 0, 129, 4097], mask: 'prompt-response' },
  { name: 'no mask, one token per sequence', lengths: () => new Array(257).fill(1), mask: 'omitted' },
];

describe.each(others)('$backend matches cpu', ({ device }) => {
  it.each(shapes)('gae: $name', ({ lengths, mask }) => {
    const rng = new Rng(4242);
    const batch = randomPackedBatch(rng, { lengths: lengths(rng), mask, bootstrap: true });
    const params = { gamma: 0.99, lambda: 0.95 };
    const onCpu = gae({ ...recordOn(batch, 'cpu'), ...params });
    const onDevice = gae({ ...recordOn(batch, device), ...params });
    for (const key of ['advantages', 'returns'] as const) {
      const want = readBack(onCpu[key]);
      // One bound on the output's scale: both sides round differently (rl.cu's precision note).
      expectClose(readBack(onDevice[key]), want, { rel: 2e-6, scale: Math.max(1, maxAbs(want)) * 10 });
    }
  });

  it.each([1, 2, 4095, 4097, 300_007])('whiten: n = %i', (n) => {
    const rng = new Rng(n);
    const x = randomWhitenInput(rng, n);
    const mask = randomMask(rng, n, 0.7);
    for (const options of [{}, { shiftMean: false, unbiased: false }]) {
      const want = readBack(whiten(tensorOn(x, 'cpu'), { ...options, mask: tensorOn(mask, 'cpu') }));
      const got = readBack(whiten(tensorOn(x, device), { ...options, mask: tensorOn(mask, device) }));
      expectClose(got, want, { rel: 1e-5 });
    }
  });
});
