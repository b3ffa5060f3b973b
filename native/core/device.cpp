#include "device.h"

#include <cstdlib>
#include <cstring>

#include "error.h"

namespace talaria {

std::string Device::name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

bool cuda_compiled() {
#ifdef TALARIA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

const char* cuda_backend_name() {
#ifdef TALARIA_WITH_CUDA
  return cuda::backend_name();
#else
  return "";
#endif
}

std::vector<CudaDeviceInfo> cuda_devices() {
#ifdef TALARIA_WITH_CUDA
  return cuda::devices();
#else
  return {};
#endif
}

constexpr size_t kCpuAlignment = 64;

void* cpu_alloc(size_t bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment; round up (and never ask for 0).
  size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  if (rounded < bytes) throw Error(ErrorCode::OutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes");
  void* ptr = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
  if (!ptr) throw Error(ErrorCode::OutOfMemory, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  return ptr;
}

void cpu_free(void* ptr) { std::free(ptr); }

#ifdef TALARIA_WITH_CUDA
static void require_cuda_device(Device device) {
  auto devices = cuda::devices();
  if (device.index < 0 || device.index >= static_cast<int>(devices.size()))
    throw Error(ErrorCode::Device, "device " + device.name() + " is not available (this machine has " +
                                       std::to_string(devices.size()) + " CUDA device(s))");
}
#else
static void require_cpu(Device device) {
  if (!device.is_cpu())
    throw Error(ErrorCode::Device, "device " + device.name() + " is not available: this build has no CUDA backend");
}
#endif

void* device_alloc(Device device, size_t bytes) {
  if (device.is_cpu()) return cpu_alloc(bytes);
#ifdef TALARIA_WITH_CUDA
  require_cuda_device(device);
  return cuda::malloc(device.index, bytes);
#else
  require_cpu(device);
  return nullptr;
#endif
}

void device_free(Device device, void* ptr) {
  if (device.is_cpu()) return cpu_free(ptr);
#ifdef TALARIA_WITH_CUDA
  cuda::free(device.index, ptr);
#endif
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef TALARIA_WITH_CUDA
  if (src_device.is_cpu()) return cuda::memcpy(dst_device.index, dst, src, bytes, cuda::CopyKind::HostToDevice);
  if (dst_device.is_cpu()) return cuda::memcpy(src_device.index, dst, src, bytes, cuda::CopyKind::DeviceToHost);
  cuda::memcpy(dst_device.index, dst, src, bytes, cuda::CopyKind::DeviceToDevice);
#else
  require_cpu(dst_device);
  require_cpu(src_device);
#endif
}

void device_zero(Device device, void* ptr, size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(ptr, 0, bytes);
    return;
  }
#ifdef TALARIA_WITH_CUDA
  cuda::memset_zero(device.index, ptr, bytes);
#else
  require_cpu(device);
#endif
}

}  // namespace talaria
