// CUDA GEMM (kernels/matmul.h) on tensor cores: C = alpha op(A) op(B) + beta C with mma.sync m16n8k16,
// bf16 operands rounded from f32 (round to nearest even) as they are staged into shared memory, and f32
// accumulation. A block of 4 warps computes a 64 x 64 tile of C; each warp a 32 x 32 quarter (2 x 4 mma
// tiles, 32 f32 accumulators per thread). Per BK = 32 slice the block loads op(A) 64 x 32 and op(B)^T
// 64 x 32 from global memory, converting and transposing in the load (so all four transposes run the
// same inner loop), stores them k-contiguous in shared memory and reads fragments with ldmatrix.
// Out-of-range rows, columns and k are staged as zeros, so any M, N, K >= 1 works.
//
// Napkin math: 2 M N K FLOPs; each slice moves 2 x 64 x 32 f32 from global (16 KB, served mostly by L2
// since neighbouring blocks share panels) for 2 x 64 x 64 x 32 = 262K FLOPs: ~16 FLOP/byte of L2 traffic,
// so this simple kernel is bound by the global loads and the single-buffered staging (no cp.async
// pipeline, since the bf16 conversion happens in registers), not by the tensor cores. It is the correct
// baseline for the transformer; a pipelined kernel with bf16 weights is the next step.
//
// Precision: each product rounds both operands to bf16 (8 significant bits, up to 2^-8 relative each),
// sums in f32: the error of an element is at most ~2^-7 sum_k |a_ik b_kj|.
// Determinism: one thread owns each C element and sums k in order.
#include <string>

#include "../core/kernels/matmul.h"
#include "check.cuh"
#include "launch.cuh"
#include "ptx.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 128;       // 4 warps, 2 x 2 over the tile
constexpr int kTile = 64;           // BM = BN
constexpr int kBk = 32;             // k per shared-memory slice (2 mma k-steps)
constexpr int kStride = kBk + 8;    // bf16 per shared row: 80 bytes keeps ldmatrix rows 16-byte aligned

// f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN.
__device__ __forceinline__ uint16_t bf16_bits(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Stages op(X)[r0 + row][k0 + col] for a 64 x kBk slice, k-contiguous, zeros outside [rows, depth).
// `k_major` means X is stored [K, rows] (element (r, k) at x[k * rows + r]), else [rows, K].
__device__ __forceinline__ void stage(uint16_t (*dst)[kStride], const float* __restrict__ x, bool k_major,
                                      int64_t rows, int64_t depth, int64_t r0, int64_t k0) {
  for (int idx = threadIdx.x; idx < kTile * kBk; idx += kThreads) {
    // k_major: consecutive threads walk rows, which are contiguous in memory; else they walk k.
    const int row = k_major ? idx % kTile : idx / kBk, col = k_major ? idx / kTile : idx % kBk;
    const int64_t r = r0 + row, k = k0 + col;
    float v = 0.0f;
    if (r < rows && k < depth) v = k_major ? x[k * rows + r] : x[r * depth + k];
    dst[row][col] = bf16_bits(v);
  }
}

__global__ void __launch_bounds__(kThreads, 4) matmul_kernel(MatmulArgs a) {
  __shared__ __align__(16) uint16_t sa[kTile][kStride];  // op(A) rows x k
  __shared__ __align__(16) uint16_t sb[kTile][kStride];  // op(B)^T: columns of C x k
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // the warp's quarter of the tile
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;

  float acc[2][4][4] = {};
  for (int64_t k0 = 0; k0 < a.k; k0 += kBk) {
    stage(sa, a.a, a.trans_a, a.m, a.k, m0, k0);
    stage(sb, a.b, !a.trans_b, a.n, a.k, n0, k0);  // B [K, N] is op(B)^T stored k-major
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kBk; ks += 16) {
      uint32_t af[2][4], bf[4][2];
      // ldmatrix x4 for A: lane 8i + j gives row j of matrix i: rows +8 for i odd, k +8 for i >= 2.
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
        ldmatrix_x4(af[mi], &sa[wm + mi * 16 + lane % 8 + (lane / 8 % 2) * 8][ks + (lane / 16) * 8]);
      // ldmatrix x2 for B (n x k rows): lanes 0-7 give k 0-7, lanes 8-15 k 8-15 (16-31 mirror them).
#pragma unroll
      for (int ni = 0; ni < 4; ni++) ldmatrix_x2(bf[ni], &sb[wn + ni * 8 + lane % 8][ks + (lane / 8 % 2) * 8]);
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) mma_m16n8k16_bf16(acc[mi][ni], af[mi], bf[ni], acc[mi][ni]);
    }
    __syncthreads();  // before the next slice overwrites the tiles
  }

  // Accumulator layout: values 0, 1 at row lane / 4, columns 2 (lane % 4) + {0, 1}; values 2, 3 at row + 8.
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int64_t r = m0 + wm + mi * 16 + lane / 4 + (e / 2) * 8, c = n0 + wn + ni * 8 + (lane % 4) * 2 + e % 2;
        if (r >= a.m || c >= a.n) continue;
        float* out = a.c + r * a.n + c;
        const float v = a.alpha * acc[mi][ni][e];
        *out = a.beta == 0.0f ? v : v + a.beta * *out;
      }
}

}  // namespace

void matmul(int device, const MatmulArgs& args) {
  if (args.m <= 0 || args.n <= 0) return;
  // Column tiles go on grid.x (up to 2^31 - 1), row tiles on grid.y (up to 65,535: M <= 4,194,240).
  if (ceil_div(args.m, kTile) > 65535)
    throw Error(ErrorCode::Shape, "matmul: M = " + std::to_string(args.m) + " rows exceed the CUDA kernel's limit of " +
                                      std::to_string(65535 * kTile) + "; split the rows");
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const dim3 grid(static_cast<unsigned>(ceil_div(args.n, kTile)), static_cast<unsigned>(ceil_div(args.m, kTile)));
  TALARIA_LAUNCH(grid, kThreads, 0, 0, matmul_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace talaria
