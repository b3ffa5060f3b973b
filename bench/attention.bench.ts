// Attention forward, and forward + backward, over packed causal sequences, in GFLOP/s and as a fraction of
// the measured FMA peak.
//
// FLOPs follow FlashAttention's convention: 4 * B * H * T^2 * D for the two matmuls of a full forward,
// halved under the causal mask (backward passes count 2.5x the forward). Exp, max and the rescales are
// not counted.
//
// Napkin math (CPU, 2 cores):
//   B=4, H=8, T=512, D=64 causal    2.1 GFLOP over 4 MiB each of q, k, v, o: ~11 ms at a 190 GFLOP/s peak.
//   B=1, H=12, T=2048, D=64 causal  6.4 GFLOP: long rows, so the diagonal blocks (computed whole, half
//                                   masked) are a small share (1/32 of blocks) and the tiles stay busy.
//   fwd+bwd counts 3.5x the forward (backward = 2.5x); the CPU backward does 7 matmuls where FlashAttention
//   counts 5 (it recomputes S and dP in both its passes to need no atomics), so its counted GFLOP/s are
//   5/7 of what its tiles run at.
//   decode, B=8 sequences of 2048 cached tokens, H=32, Hkv=8, D=128: one query per sequence reads 128 MiB of
//                                   K and V once (GB/s of cache read is the figure; ~3 ms at 45 GB/s).
//   rope, N=8192 tokens, H=32, D=128: 128 MiB read and written in place, bandwidth-bound (~3 ms at 45 GB/s).
// There is no TypeScript baseline: the float64 reference needs seconds per call at these sizes. The
// anchor is PyTorch eager on this CPU (notes/anchors.md): 67 ms, 16 GFLOP/s, for the first case.
import { attentionBackward, attentionDecode, attentionForward, ropeForward, Tensor } from '../lib/index.js';
import { defineSuite, deviceOf, type BenchCase } from './harness.js';
import { tensorOn, uniformCuSeqlens, uniformFloat32 } from './inputs.js';

interface AttentionSize { B: number; H: number; T: number; D: number }
const SIZES: AttentionSize[] = [
  { B: 4, H: 8, T: 512, D: 64 },
  { B: 1, H: 12, T: 2048, D: 64 },
];

/** FlashAttention's FLOP count of a causal forward. */
export const causalForwardFlops = ({ B, H, T, D }: AttentionSize) => (4 * B * H * T * T * D) / 2;

/** The typed array itself on the cpu (the kernels read it in place), else a Tensor of `shape` on the device. */
function shapedOn(x: Float32Array, shape: number[], backend: string): Float32Array | Tensor {
  return backend === 'cpu' ? x : Tensor.from(x, { device: deviceOf(backend), shape });
}

function forwardCases(backend: string, size: AttentionSize): BenchCase[] {
  const { B, H, T, D } = size, n = B * T, rows = [n, H, D];
  const input = {
    q: shapedOn(uniformFloat32(n * H * D, 61, -2, 2), rows, backend),
    k: shapedOn(uniformFloat32(n * H * D, 62, -2, 2), rows, backend),
    v: shapedOn(uniformFloat32(n * H * D, 63), rows, backend),
    cuSeqlens: tensorOn(uniformCuSeqlens(B, T), backend),
    numHeads: H, numKvHeads: H, headDim: D, causal: true,
  };
  const like = () => shapedOn(new Float32Array(n * H * D), rows, backend);
  const out = { o: like(), lse: shapedOn(new Float32Array(H * n), [H, n], backend) };
  const grads = { dq: like(), dk: like(), dv: like() };
  const dO = shapedOn(uniformFloat32(n * H * D, 64), rows, backend);
  const tag = `B${B}-H${H}-T${T}-D${D}-causal`;
  return [{
    name: `forward-${tag}`, backend, params: { B, H, T, D },
    bytes: 4 * 4 * n * H * D + 4 * H * n,   // read q, k, v and write o once, plus lse
    flops: causalForwardFlops(size),
    run: () => void attentionForward({ ...input, out }),
  }, {
    name: `fwd+bwd-${tag}`, backend, params: { B, H, T, D },
    // forward as above; backward reads q, k, v, o, dO and lse and writes dq, dk, dv
    bytes: 4 * 4 * n * H * D + 4 * H * n + 4 * 8 * n * H * D + 4 * H * n,
    flops: 3.5 * causalForwardFlops(size),
    run: () => {
      attentionForward({ ...input, out });
      attentionBackward({ ...input, dO, o: out.o, lse: out.lse, out: grads });
    },
  }];
}

function decodeCase(backend: string): BenchCase {
  const B = 8, L = 2048, H = 32, Hkv = 8, D = 128, slab = [B, L, Hkv, D];
  const cache = {
    cacheK: shapedOn(uniformFloat32(B * L * Hkv * D, 66, -2, 2), slab, backend),
    cacheV: shapedOn(uniformFloat32(B * L * Hkv * D, 67), slab, backend),
    cacheSeqlens: tensorOn(new Int32Array(B).fill(L), backend), maxLen: L, numKvHeads: Hkv, headDim: D,
  };
  const q = shapedOn(uniformFloat32(B * H * D, 68, -2, 2), [B, H, D], backend);
  const out = { o: shapedOn(new Float32Array(B * H * D), [B, H, D], backend), lse: shapedOn(new Float32Array(H * B), [H, B], backend) };
  return {
    name: `decode-B${B}-L${L}-H${H}-Hkv${Hkv}-D${D}`, backend, params: { B, L, H, Hkv, D },
    bytes: 2 * B * L * Hkv * D * 4,   // every cached key and value once
    run: () => void attentionDecode({ q, numHeads: H, ...cache, out }),
  };
}

function ropeCase(backend: string): BenchCase {
  const N = 8192, H = 32, D = 128;
  const x = shapedOn(uniformFloat32(N * H * D, 65), [N, H, D], backend);
  const cuSeqlens = tensorOn(uniformCuSeqlens(4, N / 4), backend);
  return {
    name: `rope-N${N}-H${H}-D${D}`, backend, params: { N, H, D },
    bytes: 8 * N * H * D,   // read and write x in place
    run: () => void ropeForward({ x, cuSeqlens, numHeads: H, headDim: D, out: x }),
  };
}

function attentionCases(backends: string[]): BenchCase[] {
  return backends.flatMap((backend) => [
    ...SIZES.flatMap((size) => forwardCases(backend, size)), decodeCase(backend), ropeCase(backend),
  ]);
}

export default defineSuite({
  name: 'attention',
  cases: attentionCases,
  footer: () => [
    'attention FLOPs: 4·B·H·T²·D/2 for a causal forward (FlashAttention convention); % roofline is of the measured FMA peak.',
    'anchor: PyTorch 1.13 eager on this CPU, B=4 H=8 T=512 D=64 causal: forward 16 GFLOP/s, fwd+bwd 23 GFLOP/s.',
  ],
});
