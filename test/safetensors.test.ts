import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type NamedTensor, openSafetensors, readSafetensors, writeSafetensors } from '../lib/index.js';
import { checkAtomicWriteSize, MAX_ATOMIC_WRITE_BYTES } from '../lib/nn/files.js';
import { f32ToBf16Bits } from '../lib/nn/safetensors.js';
import { expectBitwiseEqual, expectThrows } from './helpers/assert.js';
import { randomF32, Rng } from './helpers/random.js';

const dir = mkdtempSync(join(tmpdir(), 'talaria-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const freshPath = () => join(dir, `t${fileCount++}.safetensors`);
const FORMAT = 'ERR_TALARIA_FORMAT';

const f32Bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
const fromBits = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0];

/**
 * Reference bf16 rounding by arithmetic (not bit tricks): the two bf16 neighbours of x are its
 * truncation and the next bf16 away from zero; pick the nearer in f64, ties to the even mantissa.
 */
function bf16Reference(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const bits = f32Bits(x);
  const low = fromBits((bits & 0xffff0000) >>> 0);
  if (low === x || !Number.isFinite(x)) return x;
  const highBits = ((bits & 0xffff0000) + 0x10000) >>> 0;
  const high = fromBits(highBits);
  // Past the largest bf16 the next step is 2^128 (IEEE rounds to infinity beyond the midpoint to it).
  const highForDistance = Number.isFinite(high) ? high : Math.sign(x) * 2 ** 128;
  const dLow = Math.abs(x - low), dHigh = Math.abs(highForDistance - x);
  if (dLow !== dHigh) return dLow < dHigh ? low : high;
  return ((bits >>> 16) & 1) === 0 ? low : high;
}

/** Random tensors of the given shapes (never constants). */
function randomTensors(rng: Rng, shapes: [string, number[]][]): NamedTensor[] {
  return shapes.map(([name, shape]) => ({ name, shape, data: randomF32(rng, shape.reduce((a, b) => a * b, 1), -3, 3) }));
}

/** A safetensors file assembled byte by byte (independently of writeSafetensors). */
function assemble(header: string, data: Uint8Array): Buffer {
  const headerBytes = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + data.length);
  new DataView(out.buffer, out.byteOffset).setUint32(0, headerBytes.length, true); // high word stays 0
  headerBytes.copy(out, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

function writeRaw(bytes: Uint8Array): string {
  const path = freshPath();
  writeFileSync(path, bytes);
  return path;
}

describe('writeSafetensors / readSafetensors', () => {
  it('round-trips f32 exactly (odd, prime, scalar and empty shapes)', () => {
    const rng = new Rng(11);
    const tensors = randomTensors(rng, [['a.weight', [7, 13]], ['b', [1]], ['scalar', []], ['c.bias', [31]], ['empty', [0, 5]], ['big', [3, 5, 17]]]);
    tensors[0].data[3] = -0;
    tensors[0].data[4] = 1e-42; // subnormal
    tensors[0].data[5] = Infinity;
    const path = freshPath();
    writeSafetensors(path, tensors);
    const read = readSafetensors(path);
    expect([...read.keys()].sort()).toEqual(tensors.map((t) => t.name).sort());
    for (const t of tensors) {
      const got = read.get(t.name)!;
      expect(got.dtype).toBe('F32');
      expect(got.shape).toEqual(t.shape);
      expectBitwiseEqual(got.data, t.data);
    }
  });

  it('writes the format byte for byte: u64 header length, space-padded JSON, metadata, data in order', () => {
    const rng = new Rng(12);
    const tensors = randomTensors(rng, [['x', [3]], ['y', [2, 2]]]);
    const path = freshPath();
    writeSafetensors(path, tensors, { metadata: { format: 'pt', note: 'héllo' } });
    const file = readFileSync(path);
    const n = Number(file.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const text = file.toString('utf8', 8, 8 + n);
    expect(text.trimEnd().length).toBeGreaterThan(n - 8); // padded with spaces only, fewer than 8
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(text);
    expect(header).toEqual({
      __metadata__: { format: 'pt', note: 'héllo' },
      x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      y: { dtype: 'F32', shape: [2, 2], data_offsets: [12, 28] },
    });
    expect(file.length).toBe(8 + n + 28);
    const view = new DataView(file.buffer, file.byteOffset + 8 + n);
    for (let i = 0; i < 3; i++) expect(view.getFloat32(4 * i, true)).toBe(tensors[0].data[i]);
    for (let i = 0; i < 4; i++) expect(view.getFloat32(12 + 4 * i, true)).toBe(tensors[1].data[i]);
  });

  it('rounds to bf16 to nearest, ties to even, on hand-picked values', () => {
    const cases: [number, number][] = [
      [0x3f800000, 0x3f80], // 1
      [0x3f808000, 0x3f80], // 1 + 2^-8: tie, even stays
      [0x3f818000, 0x3f82], // tie, odd rounds up to even
      [0x3f808001, 0x3f81], // just above the tie
      [0x3f807fff, 0x3f80], // just below the tie
      [0xbf808000, 0xbf80], // negative tie to even
      [0xbf818000, 0xbf82], // negative tie, rounds away from zero to even
      [0xc0490fdb, 0xc049], // -pi
      [0x80000000, 0x8000], // -0
      [0x00008000, 0x0000], // subnormal tie to even (zero)
      [0x00018000, 0x0002], // subnormal tie, odd rounds up
      [0x00008001, 0x0001], // subnormal above the tie
      [0x807fffff, 0x8080], // largest negative subnormal rounds up to -FLT_MIN
      [0x7f7fffff, 0x7f80], // FLT_MAX overflows to +inf
      [0x7f800000, 0x7f80], // +inf
      [0xff800000, 0xff80], // -inf
    ];
    for (const [bits, want] of cases) expect(f32ToBf16Bits(bits).toString(16), `f32 bits ${bits.toString(16)}`).toBe(want.toString(16));
    for (const nanBits of [0x7fc00000, 0x7f800001, 0xffffffff, 0x7fff0000]) {
      const b = f32ToBf16Bits(nanBits);
      expect((b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0, `NaN ${nanBits.toString(16)} stays NaN`).toBe(true);
      expect(b & 0x8000).toBe((nanBits >>> 16) & 0x8000); // sign kept
    }
  });

  it('round-trips bf16 within its rounding, matching an arithmetic reference', () => {
    const rng = new Rng(13);
    const data = randomF32(rng, 4099, -100, 100);
    const special = [0, -0, 1, -1, Infinity, -Infinity, NaN, 1e-40, -1e-40, 3.4e38, -3.38e38, fromBits(0x7f7f8000), fromBits(0x7f7f7fff), fromBits(0x3f808000), fromBits(0x3f818000), fromBits(0xbf818000)];
    data.set(special);
    const path = freshPath();
    writeSafetensors(path, [{ name: 'w', shape: [4099], data }], { dtype: 'BF16' });
    expect(readFileSync(path).length).toBeLessThan(4099 * 2 + 200); // 2 bytes per element
    const got = readSafetensors(path).get('w')!;
    expect(got.dtype).toBe('BF16');
    for (let i = 0; i < data.length; i++) {
      const want = bf16Reference(data[i]);
      if (Number.isNaN(want)) expect(got.data[i]).toBeNaN();
      else {
        expect(Object.is(got.data[i], want), `element ${i}: ${data[i]} -> ${got.data[i]}, reference ${want}`).toBe(true);
        if (Number.isFinite(data[i]) && Math.abs(data[i]) > 1e-30 && Math.abs(data[i]) < 3e38)
          expect(Math.abs(got.data[i] - data[i])).toBeLessThanOrEqual(Math.abs(data[i]) * 2 ** -8);
      }
    }
  });

  it('reads a hand-assembled file with F32, BF16 and F16 tensors, an odd-length header and shuffled offsets', () => {
    const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x3555];
    const f16Values = [1, -2, 0.5, 65504, 2 ** -24, 1023 * 2 ** -24, Infinity, -Infinity, -0, 0.333251953125];
    const bf16 = [0x3f80, 0xc040, 0x4049, 0x0001];
    const bf16Values = [1, -3, 3.140625, fromBits(0x00010000)];
    const f32Values = randomF32(new Rng(14), 6, -5, 5);
    // Data area: F16 (20 bytes) at 24..44, F32 (24 bytes) at 0..24, BF16 (8 bytes) at 44..52.
    const data = new Uint8Array(52);
    const view = new DataView(data.buffer);
    f32Values.forEach((v, i) => view.setFloat32(4 * i, v, true));
    f16.forEach((h, i) => view.setUint16(24 + 2 * i, h, true));
    bf16.forEach((h, i) => view.setUint16(44 + 2 * i, h, true));
    const header = '{"__metadata__":{"format":"pt"},"half":{"dtype":"F16","shape":[2,5],"data_offsets":[24,44]},' +
      '"full":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},"brain":{"dtype":"BF16","shape":[4],"data_offsets":[44,52]}}';
    expect((header.length) % 8).not.toBe(0); // data area unaligned on purpose
    const read = readSafetensors(writeRaw(assemble(header, data)));
    expect(read.get('half')).toMatchObject({ dtype: 'F16', shape: [2, 5] });
    expect(Array.from(read.get('half')!.data)).toEqual(f16Values);
    expect(Object.is(read.get('half')!.data[8], -0)).toBe(true);
    expect(read.get('brain')).toMatchObject({ dtype: 'BF16', shape: [4] });
    expect(Array.from(read.get('brain')!.data)).toEqual(bf16Values);
    expect(read.get('full')!.shape).toEqual([3, 2]);
    expectBitwiseEqual(read.get('full')!.data, f32Values);
    const nanFile = assemble('{"n":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', Uint8Array.of(0x00, 0x7e));
    expect(readSafetensors(writeRaw(nanFile)).get('n')!.data[0]).toBeNaN();
  });

  it('replaces an existing file whole and leaves no temp files', () => {
    const sub = join(dir, 'atomic');
    mkdirSync(sub);
    const path = join(sub, 'model.safetensors');
    const rng = new Rng(15);
    writeSafetensors(path, randomTensors(rng, [['a', [100]], ['b', [50]]]));
    const second = randomTensors(rng, [['c', [3]]]);
    writeSafetensors(path, second, { dtype: 'F32' });
    const read = readSafetensors(path);
    expect([...read.keys()]).toEqual(['c']);
    expectBitwiseEqual(read.get('c')!.data, second[0].data);
    expect(readdirSync(sub)).toEqual(['model.safetensors']);
    // A failing write (bad argument) leaves the old file as it was.
    const before = readFileSync(path);
    expectThrows(() => writeSafetensors(path, [{ name: 'c', shape: [4], data: second[0].data }]), 'ERR_TALARIA_SHAPE', 'c');
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(sub)).toEqual(['model.safetensors']);
  });
});

describe('openSafetensors', () => {
  it('lists the header, returns the metadata and reads one tensor into a slice of a larger buffer', () => {
    const rng = new Rng(17);
    const tensors = randomTensors(rng, [['a', [5, 3]], ['b', [7]]]);
    const path = freshPath();
    writeSafetensors(path, tensors, { dtype: 'BF16', metadata: { format: 'pt' } });
    const file = openSafetensors(path);
    try {
      expect(file.path).toBe(path);
      expect(file.metadata).toEqual({ format: 'pt' });
      expect([...file.tensors]).toEqual([['a', { dtype: 'BF16', shape: [5, 3] }], ['b', { dtype: 'BF16', shape: [7] }]]);
      const big = randomF32(rng, 40);
      const before = big.slice();
      file.read('b', big.subarray(21, 28));
      const wantB = tensors[1].data.map((x) => bf16Reference(x));
      expectBitwiseEqual(big.subarray(21, 28), wantB);
      expectBitwiseEqual(big.subarray(0, 21), before.subarray(0, 21)); // nothing outside the slice changes
      expectBitwiseEqual(big.subarray(28), before.subarray(28));
      expectBitwiseEqual(file.read('a'), tensors[0].data.map((x) => bf16Reference(x)));
      expectThrows(() => file.read('c'), 'ERR_TALARIA_RANGE', 'no tensor "c"');
      expectThrows(() => file.read('b', new Float32Array(6)), 'ERR_TALARIA_SHAPE', 'target');
      expectThrows(() => file.read('b', new Float64Array(7) as unknown as Float32Array), 'ERR_TALARIA_DTYPE', 'target');
    } finally {
      file.close();
    }
    expectThrows(() => file.read('a'), 'ERR_TALARIA_IO', 'after close');
    file.close(); // closing twice is harmless
    const empty = openSafetensors(writeRaw(assemble('{}', new Uint8Array(0))));
    expect([empty.metadata, empty.tensors.size]).toEqual([{}, 0]);
    empty.close();
  });
});

describe('readSafetensors rejects malformed files', () => {
  const good = (t: object) => JSON.stringify(t);
  const data8 = new Uint8Array(8).map((_, i) => i * 37 + 1);
  // [what, file bytes, the name the message must contain]
  const cases: [string, Buffer | Uint8Array, string][] = [
    ['shorter than 8 bytes', Uint8Array.of(1, 2, 3), 'shorter than'],
    ['header length beyond the file', (() => { const b = assemble(good({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), data8); b.writeBigUInt64LE(BigInt(b.length), 0); return b; })(), 'past the end'],
    ['header over 100 MB', (() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(200n * 1024n * 1024n, 0); return b; })(), '100 MB'],
    ['invalid JSON', assemble('{"a": {"dtype": "F32",', data8), 'not valid JSON'],
    ['a JSON array header', assemble('[1, 2]', data8), 'JSON object'],
    ['unsupported dtype', assemble(good({ ints: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }), data8), 'tensor ints: unsupported dtype "I64"'],
    ['shape not matching the byte range', assemble(good({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), data8), 'tensor w: shape [3]'],
    ['bf16 size mismatch', assemble(good({ w: { dtype: 'BF16', shape: [2], data_offsets: [0, 8] } }), data8), 'tensor w'],
    ['offsets beyond the data area', assemble(good({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }), data8), 'tensor w: data_offsets [0, 16] lie outside'],
    ['begin after end', assemble(good({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }), data8), 'tensor w'],
    ['overlapping tensors', assemble(good({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), data8), 'overlap tensor a'],
    ['a hole in the data area', assemble(good({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), data8), 'tensor a: data_offsets start at 4'],
    ['trailing bytes', assemble(good({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }), data8), 'trailing bytes after a'],
    ['duplicate names', assemble('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data8), 'duplicate tensor a'],
    ['a negative dimension', assemble(good({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }), data8), 'tensor w: shape'],
    ['three data offsets', assemble(good({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4, 8] } }), data8), 'tensor w: data_offsets'],
    ['a tensor entry that is not an object', assemble(good({ w: 7 }), data8), 'tensor w'],
    ['non-string metadata', assemble(good({ __metadata__: { step: 3 }, w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), data8), '__metadata__'],
  ];
  it.each(cases)('%s', (_what, bytes, fragment) => {
    const path = writeRaw(bytes);
    expectThrows(() => readSafetensors(path), FORMAT, path);
    expectThrows(() => readSafetensors(path), FORMAT, fragment);
  });

  it('reports I/O failures as ERR_TALARIA_IO naming the path', () => {
    const missing = join(dir, 'missing.safetensors');
    expectThrows(() => readSafetensors(missing), 'ERR_TALARIA_IO', missing);
    expectThrows(() => readSafetensors(dir), 'ERR_TALARIA_IO', dir); // a directory
    if (process.getuid?.() !== 0) {
      const locked = writeRaw(assemble('{}', new Uint8Array(0)));
      chmodSync(locked, 0o000);
      expectThrows(() => readSafetensors(locked), 'ERR_TALARIA_IO', locked);
      chmodSync(locked, 0o600);
    }
    expectThrows(() => readSafetensors('' as string), 'ERR_TALARIA_DTYPE', 'path');
  });
});

describe('writeSafetensors rejects bad arguments', () => {
  const data = randomF32(new Rng(16), 6);
  const ok = (): NamedTensor[] => [{ name: 'w', shape: [2, 3], data }];
  it.each([
    ['path', () => writeSafetensors(42 as unknown as string, ok()), 'ERR_TALARIA_DTYPE', 'path'],
    ['tensors', () => writeSafetensors(freshPath(), 'w' as unknown as NamedTensor[]), 'ERR_TALARIA_DTYPE', 'tensors'],
    ['dtype', () => writeSafetensors(freshPath(), ok(), { dtype: 'F16' as 'F32' }), 'ERR_TALARIA_RANGE', 'dtype'],
    ['metadata', () => writeSafetensors(freshPath(), ok(), { metadata: ['pt'] as unknown as Record<string, string> }), 'ERR_TALARIA_DTYPE', 'metadata'],
    ['metadata value', () => writeSafetensors(freshPath(), ok(), { metadata: { step: 3 as unknown as string } }), 'ERR_TALARIA_DTYPE', 'metadata.step'],
    ['duplicate name', () => writeSafetensors(freshPath(), [...ok(), ...ok()]), 'ERR_TALARIA_RANGE', 'duplicate tensor name w'],
    ['empty name', () => writeSafetensors(freshPath(), [{ name: '', shape: [6], data }]), 'ERR_TALARIA_RANGE', 'tensors[0].name'],
    ['reserved name', () => writeSafetensors(freshPath(), [{ name: '__metadata__', shape: [6], data }]), 'ERR_TALARIA_RANGE', '__metadata__'],
    ['data dtype', () => writeSafetensors(freshPath(), [{ name: 'w', shape: [6], data: new Float64Array(6) as unknown as Float32Array }]), 'ERR_TALARIA_DTYPE', 'tensor w'],
    ['shape size', () => writeSafetensors(freshPath(), [{ name: 'w', shape: [5], data }]), 'ERR_TALARIA_SHAPE', 'tensor w'],
    ['shape entries', () => writeSafetensors(freshPath(), [{ name: 'w', shape: [2, 1.5, 2], data }]), 'ERR_TALARIA_SHAPE', 'tensor w'],
    ['missing directory', () => writeSafetensors(join(dir, 'no', 'such', 'dir.safetensors'), ok()), 'ERR_TALARIA_IO', join(dir, 'no', 'such')],
  ] as const)('%s', (_what, call, code, fragment) => {
    expectThrows(call, code, fragment);
  });

  // One write() call moves at most 0x7ffff000 bytes on Linux, and write-file-atomic makes only one:
  // larger files are refused up front rather than silently truncated (checked on sizes, not 2 GB arrays).
  it('refuses a file larger than one atomic write', () => {
    expect(MAX_ATOMIC_WRITE_BYTES).toBe(0x7ffff000);
    expect(() => checkAtomicWriteSize('m.safetensors', MAX_ATOMIC_WRITE_BYTES)).not.toThrow();
    expectThrows(() => checkAtomicWriteSize('m.safetensors', MAX_ATOMIC_WRITE_BYTES + 1), 'ERR_TALARIA_RANGE', 'm.safetensors');
  });
});
