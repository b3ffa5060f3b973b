// STREAM triad on the GPU, a[i] = b[i] + scalar * c[i]: 12 bytes per element, purely bandwidth-bound.
// A grid-stride loop sized to a few waves keeps every SM busy at any n; 64-bit indices for n >= 2^31.
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

}  // namespace

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
