// Checks CUDA runtime calls. Every call in native/cuda goes through TALARIA_CUDA_CHECK, and every
// kernel launch is followed by TALARIA_CUDA_CHECK_LAUNCH() (DESIGN.md, CUDA source rule 5).
// A failure throws talaria::Error with ErrorCode::Cuda, which the addon reports as ERR_TALARIA_CUDA.
// cudaErrorMemoryAllocation becomes ErrorCode::OutOfMemory (ERR_TALARIA_OOM) instead.
// Host code only, so plain C++ can include this file too (for example against native/cuemu).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../core/error.h"

namespace talaria {
namespace cuda {
namespace detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  // Clear the runtime's last-error slot. Otherwise the next TALARIA_CUDA_CHECK_LAUNCH() would report
  // this same failure again, with another call's name on it. Sticky errors such as a kernel's
  // illegal address cannot be cleared; every later call keeps failing with them, which is correct.
  (void)cudaGetLastError();
  const ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Cuda;
  throw Error(code, std::string(expr) + " failed at " + file + ":" + std::to_string(line) + ": " +
                        cudaGetErrorString(err));
}

}  // namespace detail
}  // namespace cuda
}  // namespace talaria

#define TALARIA_CUDA_CHECK(expr)                                                       \
  do {                                                                                 \
    const cudaError_t talaria_cuda_err_ = (expr);                                      \
    if (talaria_cuda_err_ != cudaSuccess)                                              \
      ::talaria::cuda::detail::throw_cuda_error(talaria_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After TALARIA_LAUNCH: reports a bad launch configuration at once. Faults inside the kernel show up
// at the next synchronising call, which is checked too.
#define TALARIA_CUDA_CHECK_LAUNCH() TALARIA_CUDA_CHECK(cudaGetLastError())
