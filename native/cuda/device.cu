// The CUDA half of native/core/device.h: device discovery and the memory primitives of the cuda
// backend. Host code only. It holds no kernels and no triple-chevron launches, so the same file also compiles as plain
// C++ against native/cuemu (`g++ -x c++ -include cuemu.h`). That build is the "cuda-emu" backend.
//
// cudart is linked statically, so a CUDA build also loads on a machine with no driver or no GPU.
// There devices() returns an empty list and the addon falls back to the cpu backend (DESIGN.md,
// "Backends"). devices() therefore never throws. Every other function here throws talaria::Error
// through TALARIA_CUDA_CHECK.
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "../core/device.h"
#include "check.cuh"

namespace talaria {
namespace cuda {

const char* backend_name() {
#if defined(__CUEMU__)
  return "cuda-emu";
#else
  return "cuda";
#endif
}

std::vector<CudaDeviceInfo> devices() {
  std::vector<CudaDeviceInfo> out;
  int count = 0;
  // With no driver, cudaErrorInsufficientDriver; with no GPU, cudaErrorNoDevice. Any failure means
  // "no usable CUDA device". Clear the error, so it cannot surface later as a launch failure.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      (void)cudaGetLastError();  // skip a device we cannot query rather than fail the whole list
      continue;
    }
    CudaDeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    out.push_back(info);
  }
  return out;
}

void* malloc(int device, size_t bytes) {
  if (bytes == 0) return nullptr;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  void* ptr = nullptr;
  TALARIA_CUDA_CHECK(cudaMalloc(&ptr, bytes));  // cudaErrorMemoryAllocation -> ERR_TALARIA_OOM
  return ptr;
}

// Storage destructors call this, so it must not throw: an exception thrown from a destructor
// terminates the process (DESIGN.md: nothing reachable from JS may crash it). A failure can only come
// from an earlier sticky error, such as a kernel fault. That error has already been reported by the
// call that synchronised after the fault, and it will be reported again by the next checked call. So
// here we clear the error and leak the pointer. The context is unusable by then anyway.
void free(int device, void* ptr) {
  if (ptr == nullptr) return;
  if (cudaSetDevice(device) != cudaSuccess || cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
}

// Synchronous: when it returns, dst holds the bytes. A host source buffer may be reused at once.
void memcpy(int device, void* dst, const void* src, size_t bytes, CopyKind kind) {
  if (bytes == 0) return;
  cudaMemcpyKind cuda_kind = cudaMemcpyDeviceToDevice;
  switch (kind) {
    case CopyKind::HostToDevice: cuda_kind = cudaMemcpyHostToDevice; break;
    case CopyKind::DeviceToHost: cuda_kind = cudaMemcpyDeviceToHost; break;
    case CopyKind::DeviceToDevice: cuda_kind = cudaMemcpyDeviceToDevice; break;
  }
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cuda_kind));
}

// On the default stream, like every launch, so the kernels after it see zeros.
void memset_zero(int device, void* ptr, size_t bytes) {
  if (bytes == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_CUDA_CHECK(cudaMemset(ptr, 0, bytes));
}

}  // namespace cuda
}  // namespace talaria
