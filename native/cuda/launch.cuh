// Kernel launches and dynamic shared memory: the two spots where CUDA syntax and the CPU emulator
// (native/cuemu) differ. DESIGN.md's "CUDA source rules" require every .cu file to launch through
// TALARIA_LAUNCH and to declare dynamic shared memory through TALARIA_DYNAMIC_SHARED. That way the
// emulator only has to swap these two macros.
//
//   TALARIA_LAUNCH(grid, block, smem_bytes, stream, kernel<A, B>)(arg0, arg1, ...);
//   TALARIA_CUDA_CHECK_LAUNCH();                      // check.cuh: the caller checks every launch
//
// The kernel comes last and is taken as __VA_ARGS__, so template argument commas need no extra
// parentheses. grid and block may be ints or dim3.
//
//   TALARIA_DYNAMIC_SHARED(MyStageStruct, stage);    // at most once per kernel
//
// declares `MyStageStruct* stage` pointing at the launch's dynamic shared memory, aligned to 16 bytes.
// The emulator gives each block a buffer of exactly smem_bytes, filled with 0xFF (NaN) at block start.
// Kernels must therefore never read a byte they did not write during the same block.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace talaria {
namespace cuda {

// ceil(a / b) for a >= 0, b > 0: grid sizes and chunk counts.
__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid-stride kernels launch at most this many blocks (far below gridDim.x's 2^31 - 1) and loop beyond it.
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;
inline unsigned capped_grid(int64_t wanted_blocks) {
  return static_cast<unsigned>(wanted_blocks < kMaxGridBlocks ? wanted_blocks : kMaxGridBlocks);
}

}  // namespace cuda
}  // namespace talaria

#if defined(__CUEMU__)

#define TALARIA_LAUNCH(grid, block, smem_bytes, stream, ...) CUEMU_LAUNCH(grid, block, smem_bytes, stream, __VA_ARGS__)
#define TALARIA_DYNAMIC_SHARED(type, name) CUEMU_DYNAMIC_SHARED(type, name)

#elif defined(__CUDACC__)

#define TALARIA_LAUNCH(grid, block, smem_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (smem_bytes), (stream)>>>

#define TALARIA_DYNAMIC_SHARED(type, name)                           \
  extern __shared__ __align__(16) unsigned char talaria_smem_[];     \
  type* name = reinterpret_cast<type*>(talaria_smem_)

#else
#error "native/cuda/launch.cuh is compiled by nvcc, or by g++ with the emulator's cuemu.h"
#endif
