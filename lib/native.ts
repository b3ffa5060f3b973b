// Finds and loads the native addon, and defines TalariaError. Everything else in lib/ reaches native code
// through getAddon(); users never touch the raw addon.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ErrorCode =
  | 'ERR_TALARIA_SHAPE'
  | 'ERR_TALARIA_DTYPE'
  | 'ERR_TALARIA_DEVICE'
  | 'ERR_TALARIA_RANGE'
  | 'ERR_TALARIA_DISPOSED'
  | 'ERR_TALARIA_CUDA'
  | 'ERR_TALARIA_OOM'
  | 'ERR_TALARIA_IO'
  | 'ERR_TALARIA_FORMAT';

/**
 * The one error type Talaria throws. `code` says what kind of problem it is; the message names the
 * argument, what was expected and what was given.
 *
 * @example
 * try { gae({ rewards, values, cuSeqlens, gamma: 2 }) }
 * catch (e) { if (e instanceof TalariaError && e.code === 'ERR_TALARIA_RANGE') console.error(e.message) }
 */
export class TalariaError extends Error {
  readonly code: ErrorCode;

  constructor(message: string, code: ErrorCode) {
    super(message);
    this.name = 'TalariaError';
    this.code = code;
  }

  // The ESM and CJS builds each define this class; recognise errors made by either one.
  static [Symbol.hasInstance](value: unknown): boolean {
    if (!(value instanceof Error) || value.name !== 'TalariaError') return false;
    const code: unknown = (value as Error & { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('ERR_TALARIA_');
  }
}

/**
 * A TalariaError made by the TypeScript layer (the addon makes its own). Code first, so a throw reads
 * like the contract: `throw talariaError('ERR_TALARIA_FORMAT', 'config.json: hidden_size must be ...')`.
 *
 * @example
 * if (!ok) throw talariaError('ERR_TALARIA_RANGE', `dtype: expected 'F32' or 'BF16', got ${dtype}`);
 */
export function talariaError(code: ErrorCode, message: string): TalariaError {
  return new TalariaError(message, code);
}

export type DType = 'f32' | 'i32' | 'u8';

/** The raw handle class the addon exports (wrapped by lib/tensor.ts). */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly disposed: boolean;
  toArray(): Float32Array | Int32Array | Uint8Array;
  to(device: string): NativeTensor;
  dispose(): void;
  view(shape: number[], offset?: number): NativeTensor;
  zero(): NativeTensor;
  copyFrom(src: unknown): NativeTensor;
}

export interface NativeTensorClass {
  new (...args: never[]): NativeTensor;
  fromArray(data: unknown, options?: unknown): NativeTensor;
  wrap(data: unknown, options?: unknown): NativeTensor;
  empty(shape: unknown, dtype: unknown, device?: unknown): NativeTensor;
}

export interface CudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
}

export interface TalariaInfo {
  /** Package version the addon was built from. */
  version: string;
  /** Backends usable now: always 'cpu'; 'cuda' when a CUDA device is present. */
  backends: string[];
  /** True when the addon carries CUDA kernels (even if no GPU or driver is present). */
  cudaCompiled: boolean;
  devices: CudaDevice[];
  /** SIMD level the CPU kernels use: 'scalar' | 'avx2' | 'avx512' (capped by TALARIA_SIMD). */
  simd: 'scalar' | 'avx2' | 'avx512';
  /** Threads in the CPU pool (TALARIA_NUM_THREADS, default: the number of cores). */
  threads: number;
}

type NativeKernel = (...args: unknown[]) => unknown;
type NativeAsyncKernel = (...args: unknown[]) => Promise<unknown>;

/** The raw addon. Kernels come in pairs: `name` (sync) and `nameAsync` (Promise). */
export interface NativeAddon {
  Tensor: NativeTensorClass;
  info(): TalariaInfo & { cudaBackend: string | null };
  setErrorClass(errorClass: typeof TalariaError): void;
  gae: NativeKernel;
  gaeAsync: NativeAsyncKernel;
  whiten: NativeKernel;
  whitenAsync: NativeAsyncKernel;
  ppoLoss: NativeKernel;
  ppoLossAsync: NativeAsyncKernel;
  valueLoss: NativeKernel;
  valueLossAsync: NativeAsyncKernel;
  shapeRewards: NativeKernel;
  shapeRewardsAsync: NativeAsyncKernel;
  groupAdvantages: NativeKernel;
  groupAdvantagesAsync: NativeAsyncKernel;
  dpoLoss: NativeKernel;
  dpoLossAsync: NativeAsyncKernel;
  rankingLoss: NativeKernel;
  rankingLossAsync: NativeAsyncKernel;
  sample: NativeKernel;
  sampleAsync: NativeAsyncKernel;
  logprobEntropy: NativeKernel;
  logprobEntropyAsync: NativeAsyncKernel;
  logprobEntropyBackward: NativeKernel;
  logprobEntropyBackwardAsync: NativeAsyncKernel;
  crossEntropy: NativeKernel;
  crossEntropyAsync: NativeAsyncKernel;
  klDivergence: NativeKernel;
  klDivergenceAsync: NativeAsyncKernel;
  klDivergenceBackward: NativeKernel;
  klDivergenceBackwardAsync: NativeAsyncKernel;
  matmul: NativeKernel;
  matmulAsync: NativeAsyncKernel;
  adamw: NativeKernel;
  adamwAsync: NativeAsyncKernel;
  clipGradNorm: NativeKernel;
  clipGradNormAsync: NativeAsyncKernel;
  streamTriad: NativeKernel;
  streamTriadAsync: NativeAsyncKernel;
  fmaPeak: NativeKernel;
  fmaPeakAsync: NativeAsyncKernel;
  attentionForward: NativeKernel;
  attentionForwardAsync: NativeAsyncKernel;
  attentionBackward: NativeKernel;
  attentionBackwardAsync: NativeAsyncKernel;
  rope: NativeKernel;
  ropeAsync: NativeAsyncKernel;
  kvCacheAppend: NativeKernel;
  kvCacheAppendAsync: NativeAsyncKernel;
  attentionDecode: NativeKernel;
  attentionDecodeAsync: NativeAsyncKernel;
  rmsnorm: NativeKernel;
  rmsnormAsync: NativeAsyncKernel;
  rmsnormBackward: NativeKernel;
  rmsnormBackwardAsync: NativeAsyncKernel;
  swiglu: NativeKernel;
  swigluAsync: NativeAsyncKernel;
  swigluBackward: NativeKernel;
  swigluBackwardAsync: NativeAsyncKernel;
  embedding: NativeKernel;
  embeddingAsync: NativeAsyncKernel;
  embeddingBackward: NativeKernel;
  embeddingBackwardAsync: NativeAsyncKernel;
  axpby: NativeKernel;
  axpbyAsync: NativeAsyncKernel;
}

// lib/native.ts and dist/index.{js,cjs} both sit one folder below the package root.
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Loads the addon from the first candidate that works: $TALARIA_BINARY, build/Release, then
 * prebuilds/<platform>-<arch>. Throws one TalariaError (ERR_TALARIA_IO) listing every attempt.
 */
export function loadAddon(root: string = packageRoot, env: NodeJS.ProcessEnv = process.env): NativeAddon {
  const candidates: { label: string; path: string }[] = [];
  if (env.TALARIA_BINARY) candidates.push({ label: 'TALARIA_BINARY', path: resolve(env.TALARIA_BINARY) });
  candidates.push({ label: 'local build', path: join(root, 'build', 'Release', 'talaria.node') });
  candidates.push({
    label: 'prebuilt binary',
    path: join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'talaria.node'),
  });
  const requireNative = createRequire(join(root, 'package.json'));
  const failures: string[] = [];
  for (const { label, path } of candidates) {
    if (!existsSync(path)) {
      failures.push(`  - ${label}: ${path}: not found`);
      continue;
    }
    try {
      const addon = requireNative(path) as NativeAddon;
      addon.setErrorClass(TalariaError);
      return addon;
    } catch (error) {
      failures.push(`  - ${label}: ${path}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new TalariaError(
    [
      'talaria: could not load the native addon. Tried, in order:',
      ...failures,
      'To fix it:',
      `  - build it: run \`npm install\` (or \`npm run build:native\`) in ${root}; this needs cmake, or python3, make and a C++17 compiler for node-gyp;`,
      '  - or point TALARIA_BINARY at a talaria.node built for this platform and Node-API 8;',
      `  - a binary that exists but fails to load was built for another platform or Node.js (rebuild it here).`,
    ].join('\n'),
    'ERR_TALARIA_IO',
  );
}

let addon: NativeAddon | undefined;

/** The loaded addon (loaded on first use, so importing talaria never fails by itself). */
export function getAddon(): NativeAddon {
  addon ??= loadAddon();
  return addon;
}

/**
 * What this build and machine offer.
 *
 * @example
 * import { info } from 'talaria';
 * console.log(info()); // { version: '0.1.0', backends: ['cpu'], cudaCompiled: true, devices: [], simd: 'avx2', threads: 2 }
 */
export function info(): TalariaInfo {
  const { version, backends, cudaCompiled, devices, simd, threads } = getAddon().info();
  return { version, backends, cudaCompiled, devices, simd, threads };
}
