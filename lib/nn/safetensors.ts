// The safetensors format (huggingface/safetensors), read and written with Node's Buffer:
//
//   [u64 little-endian N][N bytes of JSON header, space-padded][data area]
//
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (byte offsets into
// the data area), plus an optional "__metadata__" object of string -> string. A reader trusts nothing:
// every offset, size and name is checked before a byte of data is used, and the tensors' byte ranges
// must tile the data area exactly (no overlap, no hole), as the reference implementation demands.
// Writing goes through write-file-atomic, so an existing checkpoint is replaced whole or not at all.
import { endianness } from 'node:os';
import { talariaError } from '../native.js';
import { checkAtomicWriteSize, openRandomAccess, type RandomAccessFile, writeFileAtomicChecked } from './files.js';

export type SafetensorsDType = 'F32' | 'BF16' | 'F16';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsTensor {
  /** The dtype stored in the file (the data is always converted to f32). */
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array;
}

const BYTES_PER_ELEMENT: Record<SafetensorsDType, number> = { F32: 4, BF16: 2, F16: 2 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the reference reader's limit too
const METADATA_KEY = '__metadata__';
const littleEndianHost = endianness() === 'LE';

/** bf16 bits of an f32, rounded to nearest, ties to even; NaN stays a (quiet) NaN of the same sign. */
export function f32ToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

function encodeBf16(data: Float32Array): Buffer {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32ToBf16Bits(bits[i]);
  const bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  return littleEndianHost ? bytes : bytes.swap16();
}

function encodeF32(data: Float32Array): Buffer {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return littleEndianHost ? bytes : Buffer.from(bytes).swap32();
}

let halfTable: Float32Array | undefined;

/** f16 bits -> f32, from a 64 Ki-entry table (Node 20 has no Float16Array). */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    halfTable[h] = exponent === 0 ? sign * mantissa * 2 ** -24
      : exponent === 31 ? (mantissa ? NaN : sign * Infinity)
      : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return halfTable;
}

/** Reads one tensor's bytes from `file` at `position` and converts them to f32 in `target`. */
function readConverted(file: RandomAccessFile, position: number, dtype: SafetensorsDType, target: Float32Array): void {
  if (dtype === 'F32') {
    // Straight into the destination: no staging copy, whatever the alignment of the data in the file.
    const bytes = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
    file.readAt(bytes, position);
    if (!littleEndianHost) bytes.swap32();
    return;
  }
  const halves = new Uint16Array(target.length);
  const bytes = Buffer.from(halves.buffer);
  file.readAt(bytes, position);
  if (!littleEndianHost) bytes.swap16();
  if (dtype === 'BF16') {
    const bits = new Uint32Array(target.buffer, target.byteOffset, target.length);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  } else {
    const table = halfToFloatTable();
    for (let i = 0; i < halves.length; i++) target[i] = table[halves[i]];
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return json === undefined ? String(value) : json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

const isShape = (shape: unknown): shape is number[] =>
  Array.isArray(shape) && shape.every((n) => Number.isSafeInteger(n) && n >= 0);

/**
 * Writes `tensors` to a safetensors file at `path`, replacing any file there atomically. dtype 'F32'
 * (default) stores the values exactly; 'BF16' rounds them to nearest-even.
 *
 * @throws TalariaError ERR_TALARIA_DTYPE / _SHAPE / _RANGE for a bad tensor or option (naming it),
 * ERR_TALARIA_IO when the file cannot be written.
 * @example
 * writeSafetensors('model.safetensors', [{ name: 'w', shape: [2, 3], data: new Float32Array(6) }], { dtype: 'BF16' });
 */
export function writeSafetensors(path: string, tensors: NamedTensor[],
  options: { dtype?: 'F32' | 'BF16'; metadata?: Record<string, string> } = {}): void {
  if (typeof path !== 'string' || path === '') throw talariaError('ERR_TALARIA_DTYPE', `path: expected a non-empty string, got ${describe(path)}`);
  if (!Array.isArray(tensors)) throw talariaError('ERR_TALARIA_DTYPE', `tensors: expected an array of {name, shape, data}, got ${describe(tensors)}`);
  const dtype = options.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'BF16') throw talariaError('ERR_TALARIA_RANGE', `dtype: expected 'F32' or 'BF16', got ${describe(dtype)}`);
  const metadata = options.metadata;
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
      throw talariaError('ERR_TALARIA_DTYPE', `metadata: expected an object of string values, got ${describe(metadata)}`);
    for (const [key, value] of Object.entries(metadata))
      if (typeof value !== 'string') throw talariaError('ERR_TALARIA_DTYPE', `metadata.${key}: expected a string, got ${describe(value)}`);
  }

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header[METADATA_KEY] = metadata;
  const bytesPer = BYTES_PER_ELEMENT[dtype];
  let dataBytes = 0;
  tensors.forEach(({ name, shape, data }, i) => {
    if (typeof name !== 'string' || name === '' || name === METADATA_KEY)
      throw talariaError('ERR_TALARIA_RANGE', `tensors[${i}].name: expected a non-empty string other than ${METADATA_KEY}, got ${describe(name)}`);
    if (Object.hasOwn(header, name)) throw talariaError('ERR_TALARIA_RANGE', `tensors[${i}].name: duplicate tensor name ${name}`);
    if (!(data instanceof Float32Array)) throw talariaError('ERR_TALARIA_DTYPE', `tensor ${name}: data must be a Float32Array, got ${(data as unknown as object | null)?.constructor?.name ?? describe(data)}`);
    if (!isShape(shape)) throw talariaError('ERR_TALARIA_SHAPE', `tensor ${name}: shape must be an array of non-negative integers, got ${describe(shape)}`);
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== data.length)
      throw talariaError('ERR_TALARIA_SHAPE', `tensor ${name}: shape [${shape.join(', ')}] holds ${numel} elements, but data has ${data.length}`);
    header[name] = { dtype, shape, data_offsets: [dataBytes, dataBytes + numel * bytesPer] };
    dataBytes += numel * bytesPer;
  });

  // Pad the header with spaces so the data area starts 8-byte aligned (as the reference writer does).
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = Math.ceil(json.length / 8) * 8;
  checkAtomicWriteSize(path, 8 + headerBytes + dataBytes); // before allocating the file's bytes
  const file = Buffer.alloc(8 + headerBytes + dataBytes);
  file.writeBigUInt64LE(BigInt(headerBytes), 0);
  json.copy(file, 8);
  file.fill(0x20, 8 + json.length, 8 + headerBytes);
  let at = 8 + headerBytes;
  for (const { data } of tensors) at += (dtype === 'F32' ? encodeF32(data) : encodeBf16(data)).copy(file, at);
  writeFileAtomicChecked(path, file);
}

/** The names of the header's top-level keys in source order, duplicates kept (JSON.parse drops them). */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(json.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
}

/** An open, fully validated safetensors file whose tensors are read one at a time. */
export interface SafetensorsReader {
  readonly path: string;
  /** Every tensor's dtype and shape, in the order of their data. */
  readonly tensors: Map<string, SafetensorsTensorInfo>;
  /** The header's `__metadata__` ({} when absent). */
  readonly metadata: Record<string, string>;
  /**
   * One tensor's values as f32: written into `target` (exactly its number of elements) when given,
   * so a tensor can land directly in a slice of a larger buffer; else into a fresh Float32Array.
   */
  read(name: string, target?: Float32Array): Float32Array;
  /** Releases the file; reads after this throw. */
  close(): void;
}

/**
 * Opens a safetensors file and checks its whole header (size, JSON, dtypes, shapes against byte
 * ranges, ranges tiling the data area) without reading any tensor data. Close it when done.
 *
 * @throws TalariaError ERR_TALARIA_FORMAT naming the file (and the tensor) when the file is malformed
 * or uses another dtype; ERR_TALARIA_IO when it cannot be read.
 * @example
 * const file = openSafetensors('model.safetensors');
 * try { file.read('model.norm.weight', params.subarray(offset, offset + 576)); } finally { file.close(); }
 */
export function openSafetensors(path: string): SafetensorsReader {
  if (typeof path !== 'string' || path === '') throw talariaError('ERR_TALARIA_DTYPE', `path: expected a non-empty string, got ${describe(path)}`);
  const file = openRandomAccess(path);
  try {
    return parseHeader(file);
  } catch (error) {
    file.close();
    throw error;
  }
}

function parseHeader(file: RandomAccessFile): SafetensorsReader {
  const { path, size } = file;
  const fail = (message: string): never => {
    throw talariaError('ERR_TALARIA_FORMAT', `${path}: ${message}`);
  };
  if (size < 8) fail(`not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = Buffer.alloc(8);
  file.readAt(lengthBytes, 0);
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} exceeds the 100 MB limit`);
  if (headerLength > BigInt(size - 8)) fail(`header length ${headerLength} runs past the end of the file (${size} bytes)`);
  const headerEnd = 8 + Number(headerLength);
  const headerBytes = Buffer.alloc(headerEnd - 8);
  file.readAt(headerBytes, 8);
  const headerText = headerBytes.toString('utf8');
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(`header must be a JSON object, got ${describe(header)}`);
  const seen = new Set<string>();
  for (const key of topLevelKeys(headerText)) {
    if (seen.has(key)) fail(`duplicate tensor ${key} in the header`);
    seen.add(key);
  }

  const dataLength = size - headerEnd;
  let metadata: Record<string, string> = {};
  const ranges: { name: string; begin: number; end: number; dtype: SafetensorsDType; shape: number[] }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      const ok = typeof info === 'object' && info !== null && !Array.isArray(info) && Object.values(info).every((v) => typeof v === 'string');
      if (!ok) fail(`${METADATA_KEY} must be an object of string values, got ${describe(info)}`);
      metadata = info as Record<string, string>;
      continue;
    }
    const tensorFail = (message: string): never => fail(`tensor ${name}: ${message}`);
    if (typeof info !== 'object' || info === null) tensorFail(`expected {dtype, shape, data_offsets}, got ${describe(info)}`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(BYTES_PER_ELEMENT, dtype))
      tensorFail(`unsupported dtype ${describe(dtype)} (supported: ${Object.keys(BYTES_PER_ELEMENT).join(', ')})`);
    if (!isShape(shape)) tensorFail(`shape must be an array of non-negative integers, got ${describe(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isShape(offsets))
      tensorFail(`data_offsets must be [begin, end] non-negative integers, got ${describe(offsets)}`);
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLength)
      tensorFail(`data_offsets [${begin}, ${end}] lie outside the data area of ${dataLength} bytes`);
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = numel * BYTES_PER_ELEMENT[dtype as SafetensorsDType];
    if (bytes !== end - begin)
      tensorFail(`shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${bytes} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`);
    ranges.push({ name, begin, end, dtype: dtype as SafetensorsDType, shape: shape as number[] });
  }

  // The byte ranges, in order, must tile [0, dataLength): no overlap, no hole, nothing after the last.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = '';
  for (const r of ranges) {
    if (r.begin < covered) fail(`tensor ${r.name}: data_offsets [${r.begin}, ${r.end}] overlap tensor ${previous}, which ends at ${covered}`);
    if (r.begin > covered) fail(`tensor ${r.name}: data_offsets start at ${r.begin}, leaving bytes [${covered}, ${r.begin}) of the data area unused`);
    covered = r.end;
    previous = r.name;
  }
  if (covered !== dataLength) fail(`the tensors cover ${covered} of the ${dataLength} bytes of the data area (trailing bytes after ${previous || 'the header'})`);

  const byName = new Map(ranges.map((r) => [r.name, r]));
  let open = true;
  return {
    path,
    tensors: new Map(ranges.map(({ name, dtype, shape }) => [name, { dtype, shape }])),
    metadata,
    read(name, target) {
      if (!open) throw talariaError('ERR_TALARIA_IO', `${path}: read after close`);
      const range = byName.get(name);
      if (range === undefined) throw talariaError('ERR_TALARIA_RANGE', `name: ${path} has no tensor ${describe(name)}`);
      const numel = (range.end - range.begin) / BYTES_PER_ELEMENT[range.dtype];
      if (target !== undefined && !(target instanceof Float32Array))
        throw talariaError('ERR_TALARIA_DTYPE', `target: expected a Float32Array for tensor ${name}, got ${describe(target)}`);
      if (target !== undefined && target.length !== numel)
        throw talariaError('ERR_TALARIA_SHAPE', `target: tensor ${name} has ${numel} elements, target has ${target.length}`);
      const out = target ?? new Float32Array(numel);
      readConverted(file, headerEnd + range.begin, range.dtype, out);
      return out;
    },
    close() {
      if (open) file.close();
      open = false;
    },
  };
}

/**
 * Reads every tensor of a safetensors file as f32 (BF16 and F16 are converted exactly), after
 * checking the whole file (see openSafetensors).
 *
 * @throws TalariaError ERR_TALARIA_FORMAT naming the file (and the tensor) when the file is malformed
 * or uses another dtype; ERR_TALARIA_IO when it cannot be read.
 * @example
 * const tensors = readSafetensors('model.safetensors');
 * tensors.get('model.norm.weight'); // { dtype: 'BF16', shape: [576], data: Float32Array(576) }
 */
export function readSafetensors(path: string): Map<string, SafetensorsTensor> {
  const file = openSafetensors(path);
  try {
    const tensors = new Map<string, SafetensorsTensor>();
    for (const [name, { dtype, shape }] of file.tensors) tensors.set(name, { dtype, shape, data: file.read(name) });
    return tensors;
  } finally {
    file.close();
  }
}
