// The backends the kernel suites run on, and the moves between typed arrays and Tensors on a device.
import { info, Tensor } from '../../lib/index.js';

export type TypedArray = Float32Array | Int32Array | Uint8Array;

export interface BackendUnderTest {
  /** The backend's name as info() reports it: 'cpu', 'cuda' or 'cuda-emu'. */
  backend: string;
  /** The device string that puts a Tensor on that backend. */
  device: string;
}

/** 'cpu' runs on 'cpu'; a CUDA backend (real or emulated) runs on the first device info() lists. */
export function deviceOf(backend: string): string {
  if (backend === 'cpu') return 'cpu';
  const first = info().devices[0];
  return `cuda:${first ? first.index : 0}`;
}

export const backendsUnderTest: BackendUnderTest[] = info().backends.map((backend) => ({
  backend,
  device: deviceOf(backend),
}));

// Every Tensor a test creates through this module, so each file can free them in afterEach.
const created: Tensor[] = [];

/** Copies a typed array into a new Tensor on `device`, 1-D or of `shape` (and remembers it for disposeTensors). */
export function tensorOn(data: TypedArray, device: string, shape?: number[]): Tensor {
  const tensor = Tensor.from(data, { device, ...(shape && { shape }) });
  created.push(tensor);
  return tensor;
}

/** A [rows, cols] Tensor on `device` holding `data` (remembered for disposeTensors). */
export function matrixOn(data: Float32Array, cols: number, device: string): Tensor {
  const tensor = Tensor.from(data, { device, shape: [data.length / cols, cols] });
  created.push(tensor);
  return tensor;
}

// Distributes over unions, so an optional typed array becomes an optional Tensor.
type Placed<V> = V extends TypedArray ? Tensor : V;
type OnDevice<T> = { [K in keyof T]: Placed<T[K]> };

/** The same record with every typed array replaced by a Tensor copy on `device`; other fields as is. */
export function recordOn<T extends object>(record: T, device: string): OnDevice<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    out[key] = ArrayBuffer.isView(value) ? tensorOn(value as TypedArray, device) : value;
  }
  return out as OnDevice<T>;
}

/** A kernel output as a typed array, copying it back from its device when it is a Tensor. */
export function readBack(x: Tensor | TypedArray): TypedArray {
  if (x instanceof Tensor) {
    created.push(x);
    return x.toArray();
  }
  return x;
}

/** Disposes every Tensor created through this module since the last call. */
export function disposeTensors(): void {
  for (const tensor of created.splice(0)) tensor.dispose();
}
