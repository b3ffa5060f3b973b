// Tensor: a handle to contiguous f32/i32/u8 memory on a device ('cpu' or 'cuda:N'). Kernels accept
// Tensors or typed arrays and return the same kind they were given.
import { getAddon, type DType, type NativeTensor } from './native.js';

export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint8Array;
export type SupportedTypedArray = Float32Array | Int32Array | Uint8Array;

// Symbol.for, not a module-local symbol: the ESM and CJS builds must recognise each other's tensors.
const NATIVE = Symbol.for('talaria.nativeTensor');

// So that a Tensor passed as a kernel's `out` comes back as the very same object.
const wrappers = new WeakMap<NativeTensor, Tensor>();

export class Tensor {
  private readonly [NATIVE]: NativeTensor;

  private constructor(native: NativeTensor) {
    this[NATIVE] = native;
    wrappers.set(native, this);
  }

  /**
   * Copies a typed array into a new tensor. The dtype follows the array: Float32Array -> 'f32',
   * Int32Array -> 'i32', Uint8Array -> 'u8'.
   *
   * @example
   * const t = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
   * t.shape; // [2, 3]
   */
  static from(data: SupportedTypedArray, options: { shape?: number[]; device?: string } = {}): Tensor {
    return new Tensor(getAddon().Tensor.fromArray(data, options));
  }

  /**
   * A zero-copy CPU tensor over the typed array's memory: writes through either one are seen by both.
   * The tensor keeps the array alive.
   *
   * @example
   * const rewards = new Float32Array(1024);
   * const t = Tensor.wrap(rewards); // no copy
   */
  static wrap(data: SupportedTypedArray, options: { shape?: number[] } = {}): Tensor {
    return new Tensor(getAddon().Tensor.wrap(data, options));
  }

  /**
   * A tensor of uninitialised memory.
   *
   * @example
   * const t = Tensor.empty([64, 1024], 'f32');
   */
  static empty(shape: number[], dtype: DType, device = 'cpu'): Tensor {
    return new Tensor(getAddon().Tensor.empty(shape, dtype, device));
  }

  /** @internal Wraps a handle returned by the addon; the same handle always gives the same Tensor. */
  static fromNative(native: NativeTensor): Tensor {
    return wrappers.get(native) ?? new Tensor(native);
  }

  /** @internal The addon handle behind a Tensor, or the value itself when it is not a Tensor. */
  static toNative(value: unknown): unknown {
    return value !== null && typeof value === 'object' && NATIVE in value
      ? (value as Record<symbol, NativeTensor>)[NATIVE]
      : value;
  }

  get shape(): number[] {
    return this[NATIVE].shape;
  }
  get dtype(): DType {
    return this[NATIVE].dtype;
  }
  /** 'cpu' or 'cuda:N'. */
  get device(): string {
    return this[NATIVE].device;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** True after dispose(); shape, dtype and device stay readable, everything else throws ERR_TALARIA_DISPOSED. */
  get disposed(): boolean {
    return this[NATIVE].disposed;
  }

  /** A copy of the contents in a new typed array (flat, row-major). */
  toArray(): SupportedTypedArray {
    return this[NATIVE].toArray();
  }

  /** A copy of this tensor on `device` ('cpu', 'cuda' or 'cuda:N'). */
  to(device: string): Tensor {
    return new Tensor(this[NATIVE].to(device));
  }

  /**
   * A tensor over `shape` elements of this one's memory, starting `offset` elements in (default 0):
   * writes through either are seen by both, and the view keeps the memory alive. Use it to reshape, or
   * to address one parameter inside a model's flat buffer. Throws ERR_TALARIA_RANGE when it does not fit.
   *
   * @example
   * const flat = Tensor.empty([12], 'f32');
   * const w = flat.view([2, 3], 6); // elements 6..11 as a 2x3 matrix
   */
  view(shape: number[], offset = 0): Tensor {
    return new Tensor(this[NATIVE].view(shape, offset));
  }

  /** Sets every element to zero, in place; returns this tensor. */
  zero(): this {
    this[NATIVE].zero();
    return this;
  }

  /**
   * Copies `src` (a Tensor on any device, or a typed array of this dtype) into this tensor, in place;
   * element counts must match (shapes may differ). Returns this tensor.
   */
  copyFrom(src: Tensor | SupportedTypedArray): this {
    this[NATIVE].copyFrom(Tensor.toNative(src));
    return this;
  }

  /** Frees the memory now (a running async kernel keeps what it uses until it finishes). Idempotent. */
  dispose(): void {
    this[NATIVE].dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}] on ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** Maps Tensors, also inside (nested) plain options objects, to addon handles; the addon checks the rest. */
export function nativeArgs(value: unknown): unknown {
  // Plain loops, not Object.entries/fromEntries: this runs on every kernel call (about 1 us saved).
  if (value === null || typeof value !== 'object') return value;
  const handle = Tensor.toNative(value);
  if (handle !== value) return handle;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) out[key] = nativeArgs((value as Record<string, unknown>)[key]);
  return out;
}

/** Wraps addon handles in a kernel result as Tensors (typed arrays pass through). */
export function wrapResult<T>(value: unknown): T {
  const NativeClass = getAddon().Tensor;
  if (value instanceof NativeClass) return Tensor.fromNative(value) as T;
  if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[key];
      out[key] = v instanceof NativeClass ? Tensor.fromNative(v) : v;
    }
    return out as T;
  }
  return value as T;
}
