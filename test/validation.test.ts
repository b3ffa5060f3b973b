// Bad input, for every argument of every public function: a TalariaError with the exact code (and, for
// kernel arguments, a message naming the argument). The Promise forms reject instead of throwing.
// Nothing here may crash the process.
import { describe, expect, it } from 'vitest';
import { gae, gaeAsync, streamTriad, streamTriadAsync, TalariaError, Tensor, whiten, whitenAsync } from '../lib/index.js';
import { Rng, randomF32, randomMask, randomPackedBatch, randomWhitenInput } from './helpers/random.js';
import { backendsUnderTest } from './helpers/backends.js';
import { describeRun, runFixture } from './helpers/child.js';
import { type TalariaCode, expectRejects, expectThrows, thrownBy } from './helpers/assert.js';

const DTYPE: TalariaCode = 'ERR_TALARIA_DTYPE';
const SHAPE: TalariaCode = 'ERR_TALARIA_SHAPE';
const RANGE: TalariaCode = 'ERR_TALARIA_RANGE';
const DEVICE: TalariaCode = 'ERR_TALARIA_DEVICE';
const DISPOSED: TalariaCode = 'ERR_TALARIA_DISPOSED';

interface Bad {
  what: string;
  value: unknown;
  code: TalariaCode;
  /** False when several arguments could fairly be blamed, so the message need not name this one. */
  named?: boolean;
}

const rng = new Rng(4242);
const LENGTHS = [3, 0, 5, 1];
const N = 9;
const B = LENGTHS.length;
const batch = randomPackedBatch(rng, { lengths: LENGTHS, mask: 'interleaved', bootstrap: true });
const goodGae = { ...batch, gamma: 0.99, lambda: 0.95 };
const x = randomWhitenInput(rng, N);
const mask = randomMask(rng, N);

function disposedTensor(data: Float32Array | Int32Array | Uint8Array): Tensor {
  const t = Tensor.from(data);
  t.dispose();
  return t;
}

/** Values that are not a typed array or a Tensor at all; `null` and a missing value only where required. */
function notAnArray(required: boolean): Bad[] {
  const bad: Bad[] = [
    { what: 'a plain array', value: Array.from({ length: N }, (_, i) => i % 2), code: DTYPE },
    { what: 'an object', value: { length: N }, code: DTYPE },
    { what: 'a number', value: 3, code: DTYPE },
    { what: 'a string', value: 'abc', code: DTYPE },
  ];
  if (required) bad.push({ what: 'null', value: null, code: DTYPE }, { what: 'missing', value: undefined, code: DTYPE });
  return bad;
}

function badUnitInterval(): Bad[] {
  return [
    ...[-0.01, 1.01, -Infinity, Infinity, NaN].map((value) => ({ what: `${value}`, value, code: RANGE })),
    ...['0.9', true, {}, null].map((value) => ({ what: `${JSON.stringify(value)}`, value, code: DTYPE })),
  ];
}

const cu = (...values: number[]) => Int32Array.from(values);

const gaeBad: Record<string, Bad[]> = {
  rewards: [
    ...notAnArray(true),
    { what: 'a Float64Array', value: new Float64Array(batch.rewards), code: DTYPE },
    { what: 'an i32 Tensor', value: Tensor.from(new Int32Array(N)), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(batch.rewards), code: DISPOSED },
    { what: 'one token short', value: batch.rewards.subarray(1), code: SHAPE, named: false },
    { what: 'a 2-D Tensor', value: Tensor.from(randomF32(rng, N), { shape: [3, 3] }), code: SHAPE },
  ],
  values: [
    ...notAnArray(true),
    { what: 'an Int32Array', value: new Int32Array(N), code: DTYPE },
    { what: 'a Float64Array', value: new Float64Array(batch.values), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(batch.values), code: DISPOSED },
    { what: 'one token too many', value: randomF32(rng, N + 1), code: SHAPE },
  ],
  cuSeqlens: [
    ...notAnArray(true),
    { what: 'a Float32Array', value: Float32Array.from(batch.cuSeqlens), code: DTYPE },
    { what: 'a Uint32Array', value: Uint32Array.from(batch.cuSeqlens), code: DTYPE },
    { what: 'a BigInt64Array', value: BigInt64Array.from(batch.cuSeqlens, BigInt), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(batch.cuSeqlens), code: DISPOSED },
    { what: 'empty', value: new Int32Array(0), code: SHAPE },
    { what: 'not starting at 0', value: cu(1, 3, 3, 8, 9), code: SHAPE },
    { what: 'ending before N', value: cu(0, 3, 3, 8, 8), code: SHAPE },
    { what: 'ending after N', value: cu(0, 3, 3, 8, 10), code: SHAPE },
    { what: 'only [0] while N > 0', value: cu(0), code: SHAPE },
    { what: 'not monotone', value: cu(0, 5, 3, 8, 9), code: SHAPE },
    { what: 'negative inside', value: cu(0, -2, 3, 8, 9), code: SHAPE },
    { what: 'beyond N inside', value: cu(0, 30, 3, 8, 9), code: SHAPE },
    { what: 'not monotone, as a Tensor', value: Tensor.from(cu(0, 5, 3, 8, 9)), code: SHAPE },
  ],
  actionMask: [
    ...notAnArray(false),
    { what: 'an Int32Array', value: Int32Array.from(batch.actionMask!), code: DTYPE },
    { what: 'a Float32Array', value: Float32Array.from(batch.actionMask!), code: DTYPE },
    { what: 'an Int8Array', value: Int8Array.from(batch.actionMask!), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(batch.actionMask!), code: DISPOSED },
    { what: 'one token short', value: batch.actionMask!.subarray(1), code: SHAPE },
  ],
  bootstrap: [
    ...notAnArray(false),
    { what: 'a Float64Array', value: new Float64Array(B), code: DTYPE },
    { what: 'a Uint8Array', value: new Uint8Array(B), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(batch.bootstrap!), code: DISPOSED },
    { what: 'B + 1 values', value: randomF32(rng, B + 1), code: SHAPE },
    { what: 'B - 1 values', value: randomF32(rng, B - 1), code: SHAPE },
    { what: 'N values', value: randomF32(rng, N), code: SHAPE },
  ],
  gamma: badUnitInterval(),
  lambda: badUnitInterval(),
};

const rowsOf = (table: Record<string, Bad[]>) =>
  Object.entries(table).flatMap(([arg, bads]) => bads.map((bad) => ({ arg, ...bad })));
const nameIf = (row: { arg: string; named?: boolean }) => (row.named === false ? undefined : row.arg);

const notAnObject: Bad[] = [
  { what: 'null', value: null, code: DTYPE },
  { what: 'a number', value: 42, code: DTYPE },
  { what: 'a string', value: 'options', code: DTYPE },
];

describe('gae and gaeAsync reject bad arguments', () => {
  const rows = rowsOf(gaeBad);
  it.each(rows)('gae: $arg $what -> $code', (row) => {
    expectThrows(() => gae({ ...goodGae, [row.arg]: row.value } as never), row.code, nameIf(row));
  });
  it.each(rows)('gaeAsync: $arg $what -> $code', async (row) => {
    await expectRejects(() => gaeAsync({ ...goodGae, [row.arg]: row.value } as never), row.code, nameIf(row));
  });
  it.each([...notAnObject, { what: 'missing', value: undefined, code: DTYPE }])('the arguments object: $what -> $code', async (row) => {
    expectThrows(() => gae(row.value as never), row.code);
    await expectRejects(() => gaeAsync(row.value as never), row.code);
  });
  it('an unknown key (a typo such as lamda) -> ERR_TALARIA_RANGE naming it', async () => {
    expectThrows(() => gae({ ...goodGae, lamda: 0.9 } as never), RANGE, 'lamda');
    await expectRejects(() => gaeAsync({ ...goodGae, lamda: 0.9 } as never), RANGE, 'lamda');
  });
  it('the good arguments these cases start from are accepted', async () => {
    expect(gae(goodGae).advantages).toBeInstanceOf(Float32Array);
    await expect(gaeAsync(goodGae)).resolves.toBeTruthy();
  });
});

const whitenBad: Record<string, Bad[]> = {
  mask: [
    ...notAnArray(false),
    { what: 'an Int32Array', value: Int32Array.from(mask), code: DTYPE },
    { what: 'a Float32Array', value: Float32Array.from(mask), code: DTYPE },
    { what: 'an Int8Array', value: Int8Array.from(mask), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(mask), code: DISPOSED },
    { what: 'one entry short', value: mask.subarray(1), code: SHAPE },
    { what: 'one entry too many', value: randomMask(rng, N + 1), code: SHAPE },
  ],
  shiftMean: [{ what: "the string 'false'", value: 'false', code: DTYPE }],
  unbiased: [{ what: "the string 'true'", value: 'true', code: DTYPE }],
  eps: [
    ...[0, -1e-8, NaN, Infinity, -Infinity].map((value) => ({ what: `${value}`, value, code: RANGE })),
    { what: "the string '1e-8'", value: '1e-8', code: DTYPE },
  ],
};

const xBad: Bad[] = [
  ...notAnArray(true),
  { what: 'a Float64Array', value: new Float64Array(x), code: DTYPE },
  { what: 'an Int32Array', value: new Int32Array(N), code: DTYPE },
  { what: 'a Uint8Array', value: mask, code: DTYPE },
  { what: 'a u8 Tensor', value: Tensor.from(mask), code: DTYPE },
  { what: 'a disposed Tensor', value: disposedTensor(x), code: DISPOSED },
];

describe('whiten and whitenAsync reject bad arguments', () => {
  const rows = rowsOf(whitenBad);
  it.each(rows)('whiten: options.$arg $what -> $code', (row) => {
    expectThrows(() => whiten(x, { mask, [row.arg]: row.value } as never), row.code, row.arg);
  });
  it.each(rows)('whitenAsync: options.$arg $what -> $code', async (row) => {
    await expectRejects(() => whitenAsync(x, { mask, [row.arg]: row.value } as never), row.code, row.arg);
  });
  it.each(xBad)('x: $what -> $code', async (row) => {
    expectThrows(() => whiten(row.value as never, { mask }), row.code);
    await expectRejects(() => whitenAsync(row.value as never, { mask }), row.code);
  });
  it.each(notAnObject)('the options: $what -> $code', async (row) => {
    expectThrows(() => whiten(x, row.value as never), row.code);
    await expectRejects(() => whitenAsync(x, row.value as never), row.code);
  });
  it('an unknown option (a typo such as shiftmean) -> ERR_TALARIA_RANGE naming it', async () => {
    expectThrows(() => whiten(x, { shiftmean: false } as never), RANGE, 'shiftmean');
    await expectRejects(() => whitenAsync(x, { shiftmean: false } as never), RANGE, 'shiftmean');
  });
  it('the good arguments these cases start from are accepted', async () => {
    expect(whiten(x, { mask })).toBeInstanceOf(Float32Array);
    await expect(whitenAsync(x, { mask })).resolves.toBeInstanceOf(Float32Array);
  });
});

describe('streamTriad and streamTriadAsync reject bad arguments', () => {
  const good = () => [randomF32(rng, N), randomF32(rng, N), randomF32(rng, N), 1.5] as unknown[];
  const arrayBad = (): Bad[] => [
    ...notAnArray(true),
    { what: 'a Float64Array', value: new Float64Array(N), code: DTYPE },
    { what: 'an Int32Array', value: new Int32Array(N), code: DTYPE },
    { what: 'a disposed Tensor', value: disposedTensor(randomF32(rng, N)), code: DISPOSED },
    { what: 'one element short', value: randomF32(rng, N - 1), code: SHAPE },
  ];
  const rows = [
    ...['a', 'b', 'c'].flatMap((arg, index) => arrayBad().map((bad) => ({ arg, index, ...bad }))),
    ...['2', null, undefined, {}].map((value) => ({ arg: 'scalar', index: 3, what: `${value}`, value, code: DTYPE })),
  ];
  it.each(rows)('$arg: $what -> $code', async ({ index, value, code }) => {
    const args = good();
    args[index] = value;
    expectThrows(() => (streamTriad as (...a: unknown[]) => unknown)(...args), code);
    await expectRejects(() => (streamTriadAsync as (...a: unknown[]) => Promise<unknown>)(...args), code);
  });
});

describe('Tensor factories and methods reject bad arguments', () => {
  const data = randomF32(rng, 6);
  const dataBad: Bad[] = [
    ...notAnArray(true),
    { what: 'a Float64Array', value: new Float64Array(data), code: DTYPE },
    { what: 'an Int16Array', value: new Int16Array(6), code: DTYPE },
    { what: 'a BigInt64Array', value: new BigInt64Array(6), code: DTYPE },
    { what: 'an ArrayBuffer', value: new ArrayBuffer(24), code: DTYPE },
    { what: 'a DataView', value: new DataView(new ArrayBuffer(24)), code: DTYPE },
  ];
  const shapeBad: Bad[] = [
    { what: 'a shape of another size', value: [2, 2], code: SHAPE },
    { what: 'a shape with negative sizes', value: [-2, -3], code: SHAPE },
  ];
  const noSuchDevice = ['tpu', 'cuda:99', '', 'cpu:banana'];

  it.each(dataBad)('Tensor.from data: $what -> $code', ({ value, code }) => expectThrows(() => Tensor.from(value as never), code));
  it.each(dataBad)('Tensor.wrap data: $what -> $code', ({ value, code }) => expectThrows(() => Tensor.wrap(value as never), code));
  it.each(shapeBad)('Tensor.from opts.shape: $what -> $code', ({ value, code }) => expectThrows(() => Tensor.from(data, { shape: value as number[] }), code));
  it.each(shapeBad)('Tensor.wrap opts.shape: $what -> $code', ({ value, code }) => expectThrows(() => Tensor.wrap(data, { shape: value as number[] }), code));
  it.each(noSuchDevice)('Tensor.from opts.device %j -> ERR_TALARIA_DEVICE', (device) => expectThrows(() => Tensor.from(data, { device }), DEVICE));
  it.each(notAnObject.slice(1))('Tensor.from and Tensor.wrap opts: $what -> $code', ({ value, code }) => {
    expectThrows(() => Tensor.from(data, value as never), code);
    expectThrows(() => Tensor.wrap(data, value as never), code);
  });

  it.each([
    { what: 'a negative size', value: [4, -1], code: SHAPE },
    { what: 'negative sizes with a positive product', value: [-2, -3], code: SHAPE },
    { what: 'a product that overflows int64', value: [2 ** 31, 2 ** 31, 2 ** 31], code: SHAPE },
  ])('Tensor.empty shape: $what -> $code', ({ value, code }) => expectThrows(() => Tensor.empty(value, 'f32'), code));
  it('Tensor.empty shape too large to allocate -> ERR_TALARIA_OOM', () => {
    expectThrows(() => Tensor.empty([2 ** 52], 'u8'), 'ERR_TALARIA_OOM');
  });
  it.each(['f64', 'float32', '', undefined])('Tensor.empty dtype %j -> ERR_TALARIA_DTYPE', (dtype) => {
    expectThrows(() => Tensor.empty([2, 3], dtype as never), DTYPE);
  });
  it.each(noSuchDevice)('Tensor.empty device %j -> ERR_TALARIA_DEVICE', (device) => expectThrows(() => Tensor.empty([2], 'f32', device), DEVICE));
  it.each(noSuchDevice)('tensor.to device %j -> ERR_TALARIA_DEVICE', (device) => {
    const t = Tensor.from(data);
    expectThrows(() => t.to(device), DEVICE);
    t.dispose();
  });
  it('tensor.to and tensor.toArray on a disposed tensor -> ERR_TALARIA_DISPOSED', () => {
    const t = disposedTensor(data);
    expectThrows(() => t.to('cpu'), DISPOSED);
    expectThrows(() => t.toArray(), DISPOSED);
  });
});

// Only a machine with a CUDA backend can build tensors on two devices; elsewhere this loop is empty.
for (const { backend, device } of backendsUnderTest.filter((b) => b.device !== 'cpu')) {
  describe(`mixing cpu and ${backend} tensors`, () => {
    it('gae, whiten and streamTriad reject inputs on two devices with ERR_TALARIA_DEVICE', async () => {
      const onDevice = (a: Float32Array | Int32Array | Uint8Array) => Tensor.from(a, { device });
      expectThrows(() => gae({ ...goodGae, rewards: onDevice(batch.rewards), values: Tensor.from(batch.values) }), DEVICE);
      await expectRejects(() => gaeAsync({ ...goodGae, rewards: onDevice(batch.rewards) }), DEVICE);
      expectThrows(() => whiten(onDevice(x), { mask: Tensor.from(mask) }), DEVICE);
      expectThrows(() => streamTriad(onDevice(x), Tensor.from(x), onDevice(x), 2), DEVICE);
    });
  });
}

describe('random junk never crashes the process and only ever throws TalariaError', () => {
  const junkRng = new Rng(99);
  const pool: unknown[] = [
    null, undefined, 0, -1, 0.5, 2, NaN, Infinity, 'x', true, {}, [], [1, 2, 3], () => 1, Symbol('s'),
    new Float32Array(0), randomF32(junkRng, 3), randomF32(junkRng, N), new Float64Array(N), new Int32Array([0, 4, 9]),
    new Int32Array([0, 9, 4]), new Uint8Array(N).fill(1), new Int8Array(N), new Uint16Array(N), new ArrayBuffer(8),
    Tensor.from(randomF32(junkRng, N)), Tensor.from(new Int32Array([0, 9])), disposedTensor(randomF32(junkRng, N)),
  ];
  const pick = () => pool[junkRng.int(0, pool.length - 1)];
  const calls: Record<string, () => unknown> = {
    gae: () => gae({ rewards: pick(), values: pick(), cuSeqlens: pick(), actionMask: pick(), bootstrap: pick(), gamma: pick(), lambda: pick() } as never),
    whiten: () => whiten(pick() as never, { mask: pick(), shiftMean: pick(), unbiased: pick(), eps: pick() } as never),
    streamTriad: () => (streamTriad as (...a: unknown[]) => unknown)(pick(), pick(), pick(), pick()),
    'Tensor.from': () => Tensor.from(pick() as never, { shape: pick(), device: pick() } as never),
    'Tensor.empty': () => Tensor.empty(pick() as never, pick() as never, pick() as never),
  };
  it.each(Object.keys(calls))('%s, 300 random calls', (name) => {
    for (let i = 0; i < 300; i++) {
      const err = thrownBy(calls[name]);
      if (err !== undefined) expect(err, String(err)).toBeInstanceOf(TalariaError);
    }
  });
  it.each(['gaeAsync', 'whitenAsync'])('%s, 300 random calls reject with TalariaError and never throw', async (name) => {
    for (let i = 0; i < 300; i++) {
      const start = name === 'gaeAsync'
        ? () => gaeAsync({ rewards: pick(), values: pick(), cuSeqlens: pick(), actionMask: pick(), gamma: pick() } as never)
        : () => whitenAsync(pick() as never, { mask: pick(), eps: pick() } as never);
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = start())).not.toThrow();
      const err = await promise!.then(() => undefined, (e: unknown) => e);
      if (err !== undefined) expect(err, String(err)).toBeInstanceOf(TalariaError);
    }
  });
});

describe('a wrapped array whose buffer is detached (transferred away) and collected', () => {
  it('never crashes the process: using the tensor throws a TalariaError or still sees the original data', () => {
    const run = runFixture('detached-wrap.ts', { nodeArgs: ['--expose-gc'] });
    expect(run.signal, describeRun(run)).toBeNull();
    expect(run.status, describeRun(run)).toBe(0);
    const outcomes = JSON.parse(run.stdout) as Record<string, string>;
    for (const [use, outcome] of Object.entries(outcomes)) expect(outcome, use).toMatch(/^(original data|TalariaError ERR_TALARIA_\w+)$/);
  }, 120_000);
});

describe('cuSeqlens changed by JS right after gaeAsync validated it', () => {
  it('never crashes the process: the Promise uses the validated offsets or rejects with a TalariaError', () => {
    const run = runFixture('mutate-after-async-call.ts');
    expect(run.signal, describeRun(run)).toBeNull();
    expect(run.status, describeRun(run)).toBe(0);
    for (const outcome of JSON.parse(run.stdout) as string[]) expect(outcome).toMatch(/^(validated offsets|TalariaError ERR_TALARIA_\w+)$/);
  }, 120_000);
});
