// The only place in native/cuda with inline PTX (DESIGN.md, CUDA source rule 3). Each wrapper has an
// nvcc branch (the instruction) and an emulator branch (native/cuemu/tensor_core.cpp and
// scheduler.cpp), so kernels that use tensor cores and async copies run under cuemu unchanged.
//
//   mma_m16n8k16_bf16(d, a, b, c)      d = a*b + c; a: 16x16 bf16 (4 regs), b: 16x8 bf16 (2 regs),
//                                      c, d: 16x8 f32 (4 values per lane). All 32 lanes, converged.
//   ldmatrix_x1/x2/x4[_trans](r, p)   8x8 b16 matrices from shared memory; lane 8i+j passes the
//                                      address of row j of matrix i (16-byte aligned).
//   cp_async_16(dst, src)              16-byte global -> shared copy, completed by cp_async_wait<N>():
//   cp_async_commit()                  closes the current group of copies;
//   cp_async_wait<N>()                 waits until at most N of the newest groups are still in flight.
//                                      Under the emulator the copies happen at the wait, so a kernel
//                                      that forgets it reads poison (0xFF) every time.
//
// Fragment layouts follow the PTX ISA; see tensor_core.cpp for the table.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace talaria {
namespace cuda {

#if defined(__CUEMU__)

#define TALARIA_PTX_SITE ::cuemu::Site{__builtin_FILE(), __builtin_LINE()}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4], cuemu::Site site = TALARIA_PTX_SITE) {
  cuemu::mma_m16n8k16_bf16_f32(d, a, b, c, site);
}

template <int kMatrices, bool kTranspose>
__device__ __forceinline__ void ldmatrix(uint32_t* r, const void* row, cuemu::Site site = TALARIA_PTX_SITE) {
  cuemu::ldmatrix_b16(r, kMatrices, kTranspose, row, site);
}

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src,
                                            cuemu::Site site = TALARIA_PTX_SITE) {
  cuemu::cp_async(shared_dst, global_src, 16, site);
}
__device__ __forceinline__ void cp_async_commit() { cuemu::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  cuemu::cp_async_wait(N);
}

#undef TALARIA_PTX_SITE

#elif defined(__CUDACC__)

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

template <int kMatrices, bool kTranspose>
__device__ __forceinline__ void ldmatrix(uint32_t* r, const void* row) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (kMatrices == 1 && !kTranspose)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
  else if constexpr (kMatrices == 1)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
  else if constexpr (kMatrices == 2 && !kTranspose)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(address));
  else if constexpr (kMatrices == 2)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(address));
  else if constexpr (!kTranspose)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global_src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#else
#error "native/cuda/ptx.cuh is compiled by nvcc, or by g++ with the emulator's cuemu.h"
#endif

// Named forms, so call sites read like the instructions they stand for.
template <bool kTranspose = false>
__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* row) {
  ldmatrix<1, kTranspose>(r, row);
}
template <bool kTranspose = false>
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
  ldmatrix<2, kTranspose>(r, row);
}
template <bool kTranspose = false>
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
  ldmatrix<4, kTranspose>(r, row);
}

}  // namespace cuda
}  // namespace talaria
