// Warp helpers shared by the CUDA kernels. DESIGN.md rules out CUB and cooperative groups inside
// kernels (the emulator cannot run them), so the kernels build their scans and reductions from
// these helpers and the __shfl_*_sync intrinsics. The emulator implements those intrinsics.
//
// Every collective in this project uses the full mask. The kernels launch whole warps (blockDim.x is a
// multiple of 32) and keep all 32 lanes converged at each shuffle. Lanes with no work still
// take part, carrying an identity element.
#pragma once
#include <cuda_runtime.h>

namespace talaria {
namespace cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Lane and warp of the calling thread in a 1-D block.
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x) & (kWarpSize - 1); }
__device__ __forceinline__ int warp_id() { return static_cast<int>(threadIdx.x) / kWarpSize; }

// The warp's f32 sum and max in every lane, by an xor butterfly: each step combines two partials that
// are equal up to operand order, and addition commutes, so every lane ends with bitwise the same value.
__device__ __forceinline__ float warp_allreduce_sum(float x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}
__device__ __forceinline__ float warp_allreduce_max(float x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

}  // namespace cuda
}  // namespace talaria
