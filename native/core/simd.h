// Runtime SIMD dispatch. The shipped build targets baseline x86-64 (no -march=native); kernels compile
// extra variants of their hot loops with the target attributes below and pick one at run time.
#pragma once

namespace talaria {

enum class SimdLevel { Scalar = 0, AVX2 = 1, AVX512 = 2 };

// What this CPU supports, capped by TALARIA_SIMD=scalar|avx2|avx512 when set (to test narrower paths).
SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);  // "scalar" | "avx2" | "avx512"

}  // namespace talaria

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TALARIA_HAVE_X86_VARIANTS 1
#define TALARIA_ISA_AVX2 "avx2,fma"
#define TALARIA_ISA_AVX512 "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"
#define TALARIA_TARGET_AVX2 __attribute__((target(TALARIA_ISA_AVX2)))
#define TALARIA_TARGET_AVX512 __attribute__((target(TALARIA_ISA_AVX512)))
#else
#define TALARIA_HAVE_X86_VARIANTS 0
#endif

// TALARIA_BEGIN_TARGET(TALARIA_ISA_AVX2) ... TALARIA_END_TARGET compiles every function defined between
// them for that target, helpers and templates included. Code on GCC vector types needs it: GCC lowers a
// vector select for the target of the function that contains it, before inlining, so a helper compiled
// for the baseline turns into scalar code; and Clang rejects a call that passes a vector between
// functions of different targets, even one always inlined.
#define TALARIA_PRAGMA(x) _Pragma(#x)
#if TALARIA_HAVE_X86_VARIANTS && defined(__clang__)
#define TALARIA_BEGIN_TARGET(isa) \
  TALARIA_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define TALARIA_END_TARGET TALARIA_PRAGMA(clang attribute pop)
#elif TALARIA_HAVE_X86_VARIANTS
#define TALARIA_BEGIN_TARGET(isa) TALARIA_PRAGMA(GCC push_options) TALARIA_PRAGMA(GCC target(isa))
#define TALARIA_END_TARGET TALARIA_PRAGMA(GCC pop_options)
#else
#define TALARIA_BEGIN_TARGET(isa)
#define TALARIA_END_TARGET
#endif

// Compiles one always-inline body `impl` (declared TALARIA_SIMD_INLINE) into scalar, AVX2 and AVX-512
// variants, and defines `name(...)` that calls the widest variant simd_level() allows. The body is
// written as plain loops the compiler vectorises per target; results do not depend on the variant as
// long as the body fixes its own accumulation order.
#define TALARIA_SIMD_INLINE static inline __attribute__((always_inline))
#if TALARIA_HAVE_X86_VARIANTS
#define TALARIA_SIMD_FUNCTION(ret, name, impl, params, args)                                 \
  TALARIA_TARGET_AVX512 static ret name##_avx512 params { return impl args; }               \
  TALARIA_TARGET_AVX2 static ret name##_avx2 params { return impl args; }                   \
  static ret name##_scalar params { return impl args; }                                     \
  static ret name params {                                                                  \
    switch (::talaria::simd_level()) {                                                      \
      case ::talaria::SimdLevel::AVX512: return name##_avx512 args;                         \
      case ::talaria::SimdLevel::AVX2: return name##_avx2 args;                             \
      default: return name##_scalar args;                                                   \
    }                                                                                       \
  }
#else
#define TALARIA_SIMD_FUNCTION(ret, name, impl, params, args) \
  static ret name params { return impl args; }
#endif
