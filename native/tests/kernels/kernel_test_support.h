// What every kernel test file needs: seeded random data, the backends of this build, and moving
// vectors to and from a device.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../core/device.h"
#include "../../core/tensor.h"

namespace talaria {
namespace testing {

// Deterministic generator (splitmix64), so a failure reproduces from its seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(uniform() * n); }
  std::vector<float> normals(size_t n, float stddev) {
    std::vector<float> out(n);
    for (float& v : out) {
      const double u1 = 1.0 - uniform(), u2 = uniform();
      v = static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
    return out;
  }

 private:
  uint64_t state_;
};

inline bool has_cuda() { return cuda_compiled() && !cuda_devices().empty(); }

// cpu, plus cuda:0 when this build has a (real or emulated) CUDA device.
inline std::vector<Device> backends() {
  std::vector<Device> out{Device::cpu()};
  if (has_cuda()) out.push_back(Device::cuda(0));
  return out;
}

template <typename T>
DType dtype_of();
template <>
inline DType dtype_of<float>() { return DType::F32; }
template <>
inline DType dtype_of<int32_t>() { return DType::I32; }
template <>
inline DType dtype_of<uint8_t>() { return DType::U8; }

template <typename T>
Tensor upload(const std::vector<T>& host, Device device) {
  std::vector<T>& source = const_cast<std::vector<T>&>(host);  // borrow() does not write
  const Tensor view = Tensor::borrow(source.data(), {static_cast<int64_t>(host.size())}, dtype_of<T>(), Device::cpu());
  return view.to(device);
}

template <typename T>
std::vector<T> download(const Tensor& t) {
  const Tensor host = t.to(Device::cpu());
  const T* p = host.data_as<T>();
  return std::vector<T>(p, p + host.numel());
}

}  // namespace testing
}  // namespace talaria
