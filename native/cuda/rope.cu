// Rotary position embedding on the GPU (attention.h, RopeArgs): one thread per (token, head, pair i).
// The thread finds its sequence by binary search over cu_seqlens (B + 1 offsets, cached in L1), computes
// its position (plus its sequence's position offset, read from device memory, when there are offsets),
// its angle and cos/sin in f64 (as the CPU does, then rounded to f32), and rotates its pair in place or
// into y. Bandwidth-bound: N * H * D * 8 bytes; the f64 sincos per pair is hidden behind the memory on
// A100/H100 (half-rate f64), and 64-bit indices cover N * H * D >= 2^31.
#include "../core/kernels/attention.h"
#include "check.cuh"
#include "launch.cuh"

namespace talaria {
namespace cuda {
namespace {

__global__ void rope_kernel(RopeArgs a) {
  const int half = a.head_dim / 2;
  const int64_t pairs = a.total * a.heads * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs; idx += stride) {
    const int i = static_cast<int>(idx % half);
    const int64_t row = idx / half, t = row / a.heads;
    int64_t lo = 0, hi = a.num_seqs;  // the last b with cu_seqlens[b] <= t
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (a.cu_seqlens[mid] <= t) lo = mid; else hi = mid;
    }
    const int64_t offset = a.position_offsets ? a.position_offsets[lo] : 0;
    const double angle = static_cast<double>(offset + t - a.cu_seqlens[lo]) * pow(a.theta, -2.0 * i / a.head_dim);
    const float c = static_cast<float>(cos(angle));
    const float s = static_cast<float>(a.inverse ? -sin(angle) : sin(angle));
    const float* x = a.x + row * a.head_dim;
    float* y = a.y + row * a.head_dim;
    const float xa = x[i], xb = x[i + half];
    y[i] = xa * c - xb * s;
    y[i + half] = xb * c + xa * s;
  }
}

}  // namespace

void rope(int device, const RopeArgs& args) {
  if (args.total == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div(args.total * args.heads * (args.head_dim / 2), kThreads);
  const int grid = static_cast<int>(blocks < 65536 ? blocks : 65536);
  TALARIA_LAUNCH(grid, kThreads, 0, 0, rope_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace talaria
