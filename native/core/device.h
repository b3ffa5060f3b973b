// Devices and the memory primitives every backend provides. The CUDA side is declared here in plain
// C++ and implemented in native/cuda (built against libcudart, or against native/cuemu in test builds),
// so native/core never includes a CUDA header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace talaria {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const;  // "cpu" | "cuda:0"
};

struct CudaDeviceInfo {
  int index;
  std::string name;
  int64_t total_memory;
  int compute_major;
  int compute_minor;
};

// True when this binary carries the CUDA backend (real or emulated).
bool cuda_compiled();
// "cuda", "cuda-emu", or "" when the CUDA backend is not compiled in.
const char* cuda_backend_name();
// Devices visible at run time; empty when there is no driver or no GPU (never throws for that).
std::vector<CudaDeviceInfo> cuda_devices();

// 64-byte-aligned host memory, so every SIMD width can use aligned loads. Throws ERR_TALARIA_OOM.
void* cpu_alloc(size_t bytes);
void cpu_free(void* ptr);

void* device_alloc(Device device, size_t bytes);
void device_free(Device device, void* ptr);
// Copies bytes between any two devices (host<->device, device<->device, host<->host).
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Sets `bytes` bytes at `ptr` to zero.
void device_zero(Device device, void* ptr, size_t bytes);

#ifdef TALARIA_WITH_CUDA
namespace cuda {
// Implemented in native/cuda/device.cu.
const char* backend_name();
std::vector<CudaDeviceInfo> devices();
void* malloc(int device, size_t bytes);
void free(int device, void* ptr);
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void memcpy(int device, void* dst, const void* src, size_t bytes, CopyKind kind);
void memset_zero(int device, void* ptr, size_t bytes);
}  // namespace cuda
#endif

}  // namespace talaria
