// Roofline probes on the GPU.
// STREAM triad, a[i] = b[i] + scalar * c[i]: 12 bytes per element, purely bandwidth-bound. A grid-stride
// loop sized to a few waves keeps every SM busy at any n; 64-bit indices for n >= 2^31.
// FMA peak: each thread runs 8 independent fmaf chains in registers (the FMA pipe's latency of ~4 cycles
// needs 4 or more per warp scheduler), one thread per output element: 16 FLOP a step.
#include "../core/kernels/roofline.h"
#include "check.cuh"
#include "launch.cuh"

namespace talaria {
namespace cuda {
namespace {

__global__ void stream_triad_kernel(float* __restrict__ a, const float* __restrict__ b,
                                    const float* __restrict__ c, float scalar, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    a[i] = b[i] + scalar * c[i];
}

constexpr int kFmaChains = 8;

__global__ void fma_peak_kernel(float* __restrict__ out, int64_t n, int64_t iterations, float seed) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float mul = 1.0f - 0x1p-20f, add = 0x1p-20f;
  float acc[kFmaChains];
  for (int c = 0; c < kFmaChains; c++) acc[c] = seed + static_cast<float>(c);
  for (int64_t step = 0; step < iterations; step++)
#pragma unroll
    for (int c = 0; c < kFmaChains; c++) acc[c] = fmaf(acc[c], mul, add);
  float total = 0.0f;
  for (int c = 0; c < kFmaChains; c++) total += acc[c];
  out[i] = total;
}

}  // namespace

void fma_peak(int device, FmaPeakArgs& args) {
  args.flops = 2.0 * kFmaChains * static_cast<double>(args.iterations) * static_cast<double>(args.n);
  if (args.n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  constexpr int kThreads = 256;
  const int grid = static_cast<int>(ceil_div(args.n, kThreads));
  TALARIA_LAUNCH(grid, kThreads, 0, 0, fma_peak_kernel)(args.out, args.n, args.iterations, args.seed);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void stream_triad(int device, const StreamTriadArgs& args) {
  if (args.n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div(args.n, kThreads);
  const int grid = static_cast<int>(blocks < 4096 ? blocks : 4096);
  TALARIA_LAUNCH(grid, kThreads, 0, 0, stream_triad_kernel)(args.a, args.b, args.c, args.scalar, args.n);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace talaria
