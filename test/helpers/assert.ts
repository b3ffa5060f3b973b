// Assertions shared by the suites: closeness to the float64 reference, bitwise equality, and the
// TalariaError contract (class, exact code, and a message that names the argument).
import { expect } from 'vitest';
import { type ErrorCode, TalariaError, Tensor } from '../../lib/index.js';

export type TalariaCode = ErrorCode;

export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * Tolerance against the reference. By default each element is checked relative to itself:
 * |got - ref| <= rel * max(1, |ref|). With `scale`, every element gets the same bound rel * scale.
 */
export interface Tolerance {
  rel: number;
  scale?: number;
}

export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tolerance: Tolerance): void {
  expect(got.length, 'output length').toBe(ref.length);
  const failures: string[] = [];
  let count = 0;
  for (let i = 0; i < ref.length; i++) {
    const bound = tolerance.rel * (tolerance.scale ?? Math.max(1, Math.abs(ref[i])));
    const error = Math.abs(got[i] - ref[i]);
    if (!(error <= bound)) {
      count++;
      if (failures.length < 5) failures.push(`[${i}] got ${got[i]}, reference ${ref[i]}, bound ${bound}`);
    }
  }
  expect(failures, `${count} of ${ref.length} elements outside the tolerance`).toEqual([]);
}

function bytesOf(x: ArrayBufferView): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

export function expectBitwiseEqual(got: ArrayBufferView, want: ArrayBufferView): void {
  expect(got.constructor.name).toBe(want.constructor.name);
  const a = bytesOf(got);
  const b = bytesOf(want);
  expect(a.length, 'byte length').toBe(b.length);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  expect(first, 'first differing byte').toBe(-1);
}

/** Every entry whose mask is 0 is exactly 0. */
export function expectZeroWhereMasked(got: ArrayLike<number>, mask: ArrayLike<number>): void {
  const nonzero: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0 && got[i] !== 0) nonzero.push(i);
  expect(nonzero.slice(0, 5), `${nonzero.length} masked-out entries are not 0`).toEqual([]);
}

/** The reference is not trivially zero: a test that compares zeros with zeros would prove nothing. */
export function expectNonTrivial(ref: ArrayLike<number>): void {
  expect(maxAbs(ref)).toBeGreaterThan(0);
}

function squash(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** `err` is a TalariaError with exactly `code`; when `arg` is given, the message names it. */
export function expectTalariaError(err: unknown, code: TalariaCode, arg?: string): void {
  expect(err, err === undefined ? 'the call returned instead of throwing' : String(err)).toBeInstanceOf(TalariaError);
  const talariaError = err as TalariaError;
  expect(talariaError.code, talariaError.message).toBe(code);
  if (arg !== undefined) expect(squash(talariaError.message), talariaError.message).toContain(squash(arg));
}

/** What `fn` throws, or undefined when it returns normally. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

export function expectThrows(fn: () => unknown, code: TalariaCode, arg?: string): void {
  expectTalariaError(thrownBy(fn), code, arg);
}

/** The async form returns a Promise (it does not throw synchronously) and that Promise rejects. */
export async function expectRejects(start: () => Promise<unknown>, code: TalariaCode, arg?: string): Promise<void> {
  let promise: Promise<unknown> | undefined;
  expect(() => {
    promise = start();
  }, 'the async form must not throw synchronously').not.toThrow();
  expect(promise).toBeInstanceOf(Promise);
  await expect(promise).rejects.toBeInstanceOf(TalariaError);
  await expect(promise).rejects.toMatchObject({ code });
  expectTalariaError(await promise!.catch((err: unknown) => err), code, arg);
}

/** Copies every typed array in `record` now; the returned function asserts they still hold the same bytes. */
export function snapshotInputs(record: object): () => void {
  const copies = Object.entries(record)
    .filter(([, value]) => ArrayBuffer.isView(value))
    .map(([key, value]) => [key, value, (value as Float32Array).slice()] as const);
  return () => {
    for (const [key, value, copy] of copies) {
      expect(copy.constructor.name, `input ${key}`).toBe(value.constructor.name);
      expectBitwiseEqual(value as ArrayBufferView, copy);
    }
  };
}

/**
 * |got[i] - ref[i]| <= rel * scale[i] for every i not marked in `skip`: a per-element error scale (such as
 * the sum of the magnitudes an f32 kernel rounds) stays meaningful under cancellation; scale 0 demands
 * exact equality.
 */
export function expectWithinScales(got: ArrayLike<number>, ref: ArrayLike<number>, rel: number, scale: ArrayLike<number>,
  skip?: ArrayLike<number>): void {
  expect(got.length, 'output length').toBe(ref.length);
  const failures: string[] = [];
  let count = 0;
  for (let i = 0; i < ref.length; i++) {
    if (skip?.[i]) continue;
    const bound = rel * scale[i];
    if (!(Math.abs(got[i] - ref[i]) <= bound)) {
      count++;
      if (failures.length < 5) failures.push(`[${i}] got ${got[i]}, reference ${ref[i]}, bound ${bound}`);
    }
  }
  expect(failures, `${count} of ${ref.length} elements outside the tolerance`).toEqual([]);
}

/** One number against its reference: |got - want| <= bound. */
export function expectWithin(got: number, want: number, bound: number, what: string): void {
  expect(Math.abs(got - want), `${what}: got ${got}, reference ${want}, bound ${bound}`).toBeLessThanOrEqual(bound);
}

export interface FiniteDifferenceCheck {
  /** The f64 reference loss as a function of the differentiated input. */
  lossAt: (x: Float64Array) => number;
  x: ArrayLike<number>;
  /** Analytic gradients: the f64 reference's and the kernel's. */
  reference: ArrayLike<number>;
  kernel: ArrayLike<number>;
  /** Per-element gradient scale that the tolerances are relative to, and the loss's scale. */
  scale: ArrayLike<number>;
  lossScale: number;
  kernelRel: number;
  /** How far the two one-sided slopes may disagree before element t counts as a kink (not differentiable). */
  kinkBound: (t: number) => number;
  /** Extra absolute slack for element t (for instance, analytic gradients taken at an f32-rounded point). */
  slack?: (t: number) => number;
}

/**
 * Checks both analytic gradients against central finite differences (step 1e-5) of the reference loss:
 * the reference to 1e-6 of the scale, the kernel to kernelRel. Elements with a clip threshold or clamp
 * inside the step are counted as kinks and skipped. Returns how many were checked and skipped.
 */
export function expectGradientMatchesFiniteDifferences(c: FiniteDifferenceCheck): { checked: number; kinks: number } {
  const h = 1e-5;
  const x = Float64Array.from(c.x);
  const roundoff = 1e-9 * c.lossScale;  // f64 rounding of the loss, amplified by 1/h
  let checked = 0, kinks = 0;
  for (let t = 0; t < x.length; t++) {
    const at = (step: number) => { const y = x.slice(); y[t] += step; return c.lossAt(y); };
    const [down, mid, up] = [at(-h), at(0), at(h)];
    if (Math.abs((up - mid) - (mid - down)) / h > c.kinkBound(t) + 10 * roundoff) { kinks++; continue; }
    const fd = (up - down) / (2 * h);
    const slack = (c.slack?.(t) ?? 0) + roundoff;
    expectWithin(c.reference[t], fd, 1e-6 * c.scale[t] + slack, `reference element ${t}`);
    expectWithin(c.kernel[t], fd, c.kernelRel * c.scale[t] + slack, `kernel element ${t}`);
    checked++;
  }
  return { checked, kinks };
}

/** A kernel's f32[n] output: a Float32Array when `device` is null (typed-array call), else a Tensor there. */
export function expectF32Output(x: unknown, n: number, device: string | null): void {
  if (device === null) {
    expect(x).toBeInstanceOf(Float32Array);
    expect((x as Float32Array).length).toBe(n);
    return;
  }
  expect(x).toBeInstanceOf(Tensor);
  const tensor = x as Tensor;
  expect([tensor.device, tensor.dtype, tensor.shape]).toEqual([device, 'f32', [n]]);
}
