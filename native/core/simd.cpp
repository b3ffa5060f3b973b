#include "simd.h"

#include <cstdlib>
#include <cstring>

namespace talaria {

static SimdLevel detect_simd_level() {
#if TALARIA_HAVE_X86_VARIANTS
  __builtin_cpu_init();
  // AVX-512 paths use F+VL+BW+DQ; the OS must also save ZMM state, which __builtin_cpu_supports checks.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

static SimdLevel requested_cap() {
  const char* env = std::getenv("TALARIA_SIMD");
  if (!env) return SimdLevel::AVX512;
  if (!std::strcmp(env, "scalar")) return SimdLevel::Scalar;
  if (!std::strcmp(env, "avx2")) return SimdLevel::AVX2;
  return SimdLevel::AVX512;
}

SimdLevel simd_level() {
  static const SimdLevel level = [] {
    SimdLevel detected = detect_simd_level(), cap = requested_cap();
    return detected < cap ? detected : cap;
  }();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::Scalar: return "scalar";
  }
  return "scalar";
}

}  // namespace talaria
