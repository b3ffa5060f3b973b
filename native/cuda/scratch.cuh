// Per-call device scratch for the host side of the kernels. release() frees it and checks the result.
// The destructor only runs on an error path; there it frees without throwing, so the error already in
// flight is the one reported. Host code only.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "check.cuh"

namespace talaria {
namespace cuda {

// Rounds a scratch region's size up to 256 bytes, so the region after it starts aligned for any type.
inline size_t align_up(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) { TALARIA_CUDA_CHECK(cudaMalloc(&ptr_, bytes)); }
  ~DeviceScratch() {
    if (ptr_ != nullptr && cudaFree(ptr_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  char* bytes() const { return static_cast<char*>(ptr_); }
  void release() {
    void* ptr = ptr_;
    ptr_ = nullptr;
    TALARIA_CUDA_CHECK(cudaFree(ptr));
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace cuda
}  // namespace talaria
