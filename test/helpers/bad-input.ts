// Bad-input case generators shared by the *-validation suites: each case patches a good input and names
// the TalariaError code and the argument the message must name.
import { describe, it } from 'vitest';
import { Tensor } from '../../lib/index.js';
import { expectRejects, expectThrows, type TalariaCode } from './assert.js';

export const DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE';
export const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE';
export const RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
export const DEVICE: TalariaCode = 'ERR_TALARIA_DEVICE';

export interface Bad { what: string; patch: Record<string, unknown>; code: TalariaCode; arg: string }

type ArrayDType = 'f32' | 'i32' | 'u8';
const arrayOf = (dtype: ArrayDType, n: number) =>
  dtype === 'f32' ? new Float32Array(n) : dtype === 'i32' ? new Int32Array(n) : new Uint8Array(n);
const otherThan = (dtype: ArrayDType, n: number) => (dtype === 'f32' ? new Int32Array(n) : new Float32Array(n));

/** Wrong dtypes, kinds, ranks and lengths for 1-D array arguments of `n` elements. */
export const tokenArrays = (keys: string[], dtype: ArrayDType, n: number): Bad[] => keys.flatMap((key) => [
  { what: `${key} of the wrong dtype`, patch: { [key]: otherThan(dtype, n) }, code: DTYPE, arg: key },
  { what: `${key} a Float64Array`, patch: { [key]: new Float64Array(n) }, code: DTYPE, arg: key },
  { what: `${key} a Tensor of the wrong dtype`, patch: { [key]: Tensor.from(dtype === 'f32' ? new Uint8Array(n) : new Float32Array(n)) }, code: DTYPE, arg: key },
  { what: `${key} a 2-D Tensor`, patch: { [key]: Tensor.from(arrayOf(dtype, n), { shape: [n, 1] }) }, code: SHAPE, arg: key },
  { what: `${key} too short`, patch: { [key]: arrayOf(dtype, n - 1) }, code: SHAPE, arg: key },
  { what: `${key} too long`, patch: { [key]: arrayOf(dtype, n + 1) }, code: SHAPE, arg: key },
  { what: `${key} a plain array`, patch: { [key]: Array.from({ length: n }, () => 0.5) }, code: DTYPE, arg: key },
  { what: `${key} not an array`, patch: { [key]: 'nope' }, code: DTYPE, arg: key },
]);

/** Each value for a numeric option: RANGE (or `code`) for numbers, DTYPE for anything else. */
export const number = (key: string, bad: unknown[], code: TalariaCode = RANGE): Bad[] =>
  bad.map((value) => ({ what: `${key} = ${String(value)}`, patch: { [key]: value }, code: typeof value === 'number' ? code : DTYPE, arg: key }));

/** A kernel's sync and Promise forms, a good input, and the bad cases that patch it. */
export interface KernelUnderTest {
  name: string;
  good: Record<string, unknown>;
  sync: (input: never) => unknown;
  async: (input: never) => Promise<unknown>;
  bad: Bad[];
}

/**
 * For each kernel: every bad case throws its code naming its argument, and the Promise form rejects the
 * same way (never throws); so does every value in `notObjects` passed instead of the input object (DTYPE).
 */
export function describeRejections(kernels: KernelUnderTest[], notObjects: unknown[]): void {
  describe.each(kernels)('$name rejects bad input', ({ good, sync, async, bad }) => {
    it.each(bad)('$what', async ({ patch, code, arg }) => {
      const input = { ...good, ...patch } as never;
      expectThrows(() => sync(input), code, arg);
      await expectRejects(() => async(input), code, arg);
    });
    it('a non-object input, or none', async () => {
      for (const value of notObjects) {
        expectThrows(() => sync(value as never), DTYPE);
        await expectRejects(() => async(value as never), DTYPE);
      }
    });
  });
}
