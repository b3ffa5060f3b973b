// Determinism: the same input gives bitwise-identical output run after run, sync or async, concurrently,
// through typed arrays or Tensors, and under any thread count (checked in child processes, because the
// pool size and the SIMD level are read once when the addon loads). Backends agree with each other.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gae, gaeAsync, info, whiten, whitenAsync } from '../lib/index.js';
import { Rng, randomLengths, randomMask, randomPackedBatch, randomWhitenInput } from './helpers/random.js';
import { backendsUnderTest, disposeTensors, tensorOn } from './helpers/backends.js';
import { expectBitwiseEqual, expectClose, maxAbs } from './helpers/assert.js';
import { describeRun, runFixture } from './helpers/child.js';
import { MATMUL_OUTPUTS, WIDE_SUM_OUTPUTS, runWorkload } from './fixtures/workload.js';

afterEach(disposeTensors);

interface ChildRun {
  threads: number;
  simd: string;
  outputs: Record<string, Float32Array>;
}

/** Runs the shared workload in a fresh Node process with extra environment variables. */
function runInChild(env: Record<string, string>): ChildRun {
  const outDir = mkdtempSync(join(tmpdir(), 'talaria-determinism-'));
  try {
    const run = runFixture('kernel-outputs.ts', { args: [outDir], env });
    expect(run.status, describeRun(run)).toBe(0);
    const { threads, simd, names } = JSON.parse(run.stdout) as { threads: number; simd: string; names: string[] };
    const outputs: Record<string, Float32Array> = {};
    for (const name of names) {
      const bytes = readFileSync(join(outDir, `${name}.f32`));
      outputs[name] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    }
    return { threads, simd, outputs };
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

function expectSameNames(got: Record<string, Float32Array>, want: Record<string, Float32Array>) {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
}

describe('in process', () => {
  const rng = new Rng(5150);
  const batch = randomPackedBatch(rng, { lengths: randomLengths(rng, 50, 3000), mask: 'prompt-response', bootstrap: true });
  const gaeArgs = { ...batch, gamma: 0.97, lambda: 0.9 };
  const x = randomWhitenInput(rng, 1_000_007);
  const mask = randomMask(rng, x.length, 0.6);

  it('gae gives bitwise-identical results twice, and the same from gaeAsync', async () => {
    const first = gae(gaeArgs);
    const second = gae(gaeArgs);
    const fromAsync = await gaeAsync(gaeArgs);
    for (const out of [second, fromAsync]) {
      expectBitwiseEqual(out.advantages as Float32Array, first.advantages as Float32Array);
      expectBitwiseEqual(out.returns as Float32Array, first.returns as Float32Array);
    }
  });

  it('whiten gives bitwise-identical results twice, and the same from whitenAsync', async () => {
    for (const options of [{ mask }, { shiftMean: false, unbiased: false }]) {
      const first = whiten(x, options) as Float32Array;
      expectBitwiseEqual(whiten(x, options) as Float32Array, first);
      expectBitwiseEqual((await whitenAsync(x, options)) as Float32Array, first);
    }
  });

  it('many Promise calls in flight at once, with sync calls between them, all agree bitwise', async () => {
    const gaeWant = gae(gaeArgs).advantages as Float32Array;
    const whitenWant = whiten(x, { mask }) as Float32Array;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      pending.push(gaeAsync(gaeArgs).then((out) => expectBitwiseEqual(out.advantages as Float32Array, gaeWant)));
      pending.push(whitenAsync(x, { mask }).then((out) => expectBitwiseEqual(out as Float32Array, whitenWant)));
      expectBitwiseEqual(whiten(x, { mask }) as Float32Array, whitenWant);
    }
    await Promise.all(pending);
  }, 60_000);
});

describe('backend parity', () => {
  let reference: Record<string, Float32Array>;
  beforeAll(() => {
    reference = runWorkload();
  });

  // The cpu Tensor path runs the same kernel as the typed-array path, so it must match bitwise. Another
  // backend runs other code (other summation orders), so it must match within the kernels' tolerance.
  it.each(backendsUnderTest)('$backend (Tensors on $device) agrees with cpu typed arrays', ({ device }) => {
    const got = runWorkload((data, shape) => tensorOn(data, device, shape));
    expectSameNames(got, reference);
    for (const [name, want] of Object.entries(reference)) {
      if (device === 'cpu') expectBitwiseEqual(got[name], want);
      else if (MATMUL_OUTPUTS.has(name)) expectClose(got[name], want, { rel: 2 ** -7 * 10, scale: maxAbs(want) });
      else expectClose(got[name], want, { rel: 1e-5, ...(WIDE_SUM_OUTPUTS.has(name) && { scale: maxAbs(want) }) });
    }
  }, 60_000);
});

describe('independence from the environment the addon loads in (child processes)', () => {
  let inProcess: Record<string, Float32Array>;
  beforeAll(() => {
    inProcess = runWorkload();
  });

  it('the in-process run uses at least one thread and a known SIMD level', () => {
    expect(info().threads).toBeGreaterThanOrEqual(1);
    expect(['scalar', 'avx2', 'avx512']).toContain(info().simd);
  });

  // Thread counts below, at and above this machine's core count; 1 removes parallelism altogether.
  it.each(['1', '2', '3', '8'])('TALARIA_NUM_THREADS=%s gives bitwise-identical outputs', (threads) => {
    const child = runInChild({ TALARIA_NUM_THREADS: threads });
    expect(child.threads).toBe(Number(threads));
    expectSameNames(child.outputs, inProcess);
    for (const [name, want] of Object.entries(inProcess)) expectBitwiseEqual(child.outputs[name], want);
  }, 120_000);

  // avx2 is capped to what the CPU has: on a machine without AVX2 the child runs scalar code instead.
  it.each(['scalar', 'avx2'])('TALARIA_SIMD=%s gives the same outputs within 1e-6 relative', (level) => {
    const child = runInChild({ TALARIA_SIMD: level });
    expect(['scalar', level]).toContain(child.simd);
    expectSameNames(child.outputs, inProcess);
    for (const [name, want] of Object.entries(inProcess)) {
      // Each wide-sum element (long scans, attention gradients) carries the rounding of many terms, and each matmul element a K-term
      // dot product in another tile shape (and without FMA in scalar code): bound them by the output's scale.
      const scaled = WIDE_SUM_OUTPUTS.has(name) || MATMUL_OUTPUTS.has(name);
      expectClose(child.outputs[name], want, { rel: MATMUL_OUTPUTS.has(name) ? 1e-5 : 1e-6, ...(scaled && { scale: maxAbs(want) }) });
    }
  }, 120_000);

  it('an environment that asks for nothing reproduces the in-process outputs', () => {
    const child = runInChild({});
    expect(child.threads).toBe(info().threads);
    for (const [name, want] of Object.entries(inProcess)) expectBitwiseEqual(child.outputs[name], want);
  }, 120_000);
});
