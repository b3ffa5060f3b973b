// The emulator's self-tests: small, real CUDA programs, each a named case of the `cuemu_selftest`
// executable. Correct cases must run clean under every schedule and sanitizer; planted-bug cases must
// be caught (scripts/cuemu-selftest.mjs holds the expectations). The same files compile with nvcc, so
// on a GPU the correct cases double as checks of the emulator's semantics.
//
// A case returns its exit code: 0 results right, 1 results wrong (what differed is printed),
// 2 a CUDA call failed (cudaGetErrorString is printed). Host-side only; kernels live in the .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda/launch.cuh"

namespace selftest {

using CaseFn = int (*)();
struct Case {
  const char* name;
  CaseFn run;
};
std::vector<Case>& registry();  // main.cu

struct Registration {
  Registration(const char* name, CaseFn run) { registry().push_back(Case{name, run}); }
};

// Every CUDA call goes through this: on failure it prints the call and the error, and the case
// returns 2 (the DeviceArena destructor then frees what the case allocated).
#define SELFTEST_CUDA(expr)                                                                      \
  do {                                                                                           \
    const cudaError_t selftest_err_ = (expr);                                                    \
    if (selftest_err_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s failed at %s:%d: %s: %s\n", #expr, __FILE__, __LINE__,           \
                   cudaGetErrorName(selftest_err_), cudaGetErrorString(selftest_err_));          \
      return 2;                                                                                  \
    }                                                                                            \
  } while (0)

// After a launch: a bad configuration shows up here, a fault inside the kernel at the next sync.
#define SELFTEST_CHECK_LAUNCH()                      \
  do {                                               \
    SELFTEST_CUDA(cudaGetLastError());               \
    SELFTEST_CUDA(cudaDeviceSynchronize());          \
  } while (0)

#define SELFTEST_CASE(name)                                                           \
  static int name##_case();                                                           \
  static const ::selftest::Registration name##_registration(#name, &name##_case);     \
  static int name##_case()

// Owns a case's device buffers. A sticky error (a fault inside a kernel) makes every later call fail,
// cudaFree included; then only cudaDeviceReset releases the memory, as on a GPU.
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() {
    for (void* p : buffers_) {
      const cudaError_t err = cudaFree(p);
      if (err == cudaSuccess) continue;
      std::fprintf(stderr, "cudaFree failed (%s); releasing everything with cudaDeviceReset\n", cudaGetErrorName(err));
      const cudaError_t reset = cudaDeviceReset();
      if (reset != cudaSuccess) std::fprintf(stderr, "cudaDeviceReset failed: %s\n", cudaGetErrorString(reset));
      break;
    }
  }
  template <typename T>
  cudaError_t alloc(T** p, size_t count) {
    const cudaError_t err = cudaMalloc(reinterpret_cast<void**>(p), count * sizeof(T));
    if (err == cudaSuccess) buffers_.push_back(*p);
    return err;
  }
  // Allocates and fills from a host vector.
  template <typename T>
  cudaError_t upload(T** p, const std::vector<T>& host) {
    cudaError_t err = alloc(p, host.size());
    if (err == cudaSuccess) err = cudaMemcpy(*p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    return err;
  }

 private:
  std::vector<void*> buffers_;
};

template <typename T>
cudaError_t download(std::vector<T>& host, const T* device) {
  return cudaMemcpy(host.data(), device, host.size() * sizeof(T), cudaMemcpyDeviceToHost);
}

// The shape most cases share: kernel(in, out) over a device copy of `in`, with `out` read back. Returns
// the first error (a launch-configuration error, or a fault found at the synchronize).
template <typename Kernel>
cudaError_t run_in_out(Kernel kernel, dim3 grid, dim3 block, size_t smem_bytes, const std::vector<float>& in,
                       std::vector<float>& out) {
  DeviceArena arena;
  float *d_in, *d_out;
  cudaError_t err = arena.upload(&d_in, in);
  if (err == cudaSuccess) err = arena.alloc(&d_out, out.size());
  if (err != cudaSuccess) return err;
  TALARIA_LAUNCH(grid, block, smem_bytes, 0, kernel)(d_in, d_out);
  err = cudaGetLastError();
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  if (err == cudaSuccess) err = download(out, d_out);
  return err;
}

// Deterministic, non-trivial data (splitmix64): every case seeds its own.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t x = (state_ += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) / 16777216.0f; }
  int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  // Away from zero, so a lost or duplicated term changes a sum visibly.
  std::vector<float> floats(size_t n, float lo = 0.5f, float hi = 2.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = (next() & 1) != 0 ? uniform(lo, hi) : -uniform(lo, hi);
    return v;
  }
  std::vector<int> ints(size_t n, int lo, int hi) {
    std::vector<int> v(n);
    for (int& x : v) x = range(lo, hi);
    return v;
  }

 private:
  uint64_t state_;
};

// bf16 as raw bits: values built exactly representable (the low 16 bits of the float cleared).
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Comparisons: print up to 8 differences and return 1, or 0 when everything matches.
template <typename T>
int expect_equal(const char* what, const std::vector<T>& got, const std::vector<T>& want) {
  // Hex shows the value's own bits, not a sign extension to 64.
  const unsigned long long bits = ~0ull >> (64 - 8 * sizeof(T));
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] == want[i]) continue;
    if (bad++ < 8)
      std::fprintf(stderr, "%s[%zu]: got %lld (0x%llx), want %lld (0x%llx)\n", what, i,
                   static_cast<long long>(got[i]), static_cast<unsigned long long>(got[i]) & bits,
                   static_cast<long long>(want[i]), static_cast<unsigned long long>(want[i]) & bits);
  }
  if (bad > 0) std::fprintf(stderr, "%s: %d of %zu values differ\n", what, bad, want.size());
  return bad > 0 ? 1 : 0;
}

// |got - want| <= abs_tol + rel_tol * |want|; NaN never passes.
inline int expect_near(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                       double rel_tol, double abs_tol) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (diff <= abs_tol + rel_tol * std::fabs(want[i])) continue;
    if (bad++ < 8) std::fprintf(stderr, "%s[%zu]: got %.9g, want %.9g\n", what, i, static_cast<double>(got[i]), want[i]);
  }
  if (bad > 0) std::fprintf(stderr, "%s: %d of %zu values differ\n", what, bad, want.size());
  return bad > 0 ? 1 : 0;
}

}  // namespace selftest
