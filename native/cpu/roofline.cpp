// Roofline probes on the CPU.
// STREAM triad: 12 bytes per element (read b and c, write a), counted as STREAM counts them.
// Stores bypass the cache (non-temporal) on x86 so the written line is not first read in
// (write-allocate), as tuned STREAM builds do; without that the probe under-reports the bandwidth
// every other kernel is measured against (27 vs ~45 GB/s on the 2-core dev machine).
#include <algorithm>
#include <cstdint>

#include "../core/kernels/roofline.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"

#if TALARIA_HAVE_X86_VARIANTS
#include <immintrin.h>
#endif

namespace talaria {
namespace cpu {
namespace {

void triad_scalar(float* a, const float* b, const float* c, float scalar, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] = b[i] + scalar * c[i];
}

#if TALARIA_HAVE_X86_VARIANTS
TALARIA_TARGET_AVX2 void triad_avx2_stream(float* a, const float* b, const float* c, float scalar, int64_t n) {
  int64_t i = 0;
  for (; i < n && reinterpret_cast<uintptr_t>(a + i) % 32 != 0; i++) a[i] = b[i] + scalar * c[i];
  const __m256 s = _mm256_set1_ps(scalar);
  for (; i + 8 <= n; i += 8)
    _mm256_stream_ps(a + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(c + i), _mm256_loadu_ps(b + i)));
  for (; i < n; i++) a[i] = b[i] + scalar * c[i];
  _mm_sfence();  // make the streamed stores visible before the caller reads `a`
}
#endif

// FMA peak: 12 independent chains of 16 lanes (12 zmm on AVX-512, 24 ymm on AVX2), 384 FLOP a step.
// Zen 4 and Skylake-X retire up to two 256-bit or one-to-two 512-bit FMAs a cycle with a 4-cycle latency,
// so 8 or more chains in flight keep every FMA port busy; 12 leaves margin and still fits the registers.
typedef float V16 __attribute__((vector_size(64)));
constexpr int kFmaChains = 12, kFmaLanes = 16;
TALARIA_SIMD_INLINE float fma_chains(float seed, int64_t iterations) {
  const float mul = 1.0f - 0x1p-20f, add = 0x1p-20f;
  V16 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; c++) acc[c] = V16{} + (seed + static_cast<float>(c));
  for (int64_t i = 0; i < iterations; i++) {
    for (int c = 0; c < kFmaChains; c++) acc[c] = acc[c] * mul + add;
  }
  float total = 0.0f;
  for (int c = 0; c < kFmaChains; c++)
    for (int l = 0; l < kFmaLanes; l++) total += acc[c][l];
  return total;
}
TALARIA_SIMD_FUNCTION(float, fma_peak_worker, fma_chains, (float seed, int64_t iterations), (seed, iterations))

}  // namespace

void fma_peak(FmaPeakArgs& args) {
  parallel_for(0, args.n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t w = lo; w < hi; w++) args.out[w] = fma_peak_worker(args.seed, args.iterations);
  });
  args.flops = 2.0 * kFmaChains * kFmaLanes * static_cast<double>(args.iterations) * static_cast<double>(args.n);
}

void stream_triad(const StreamTriadArgs& args) {
  constexpr int64_t kChunk = 1 << 16;
  parallel_for(0, args.n, kChunk, [&](int64_t lo, int64_t hi) {
#if TALARIA_HAVE_X86_VARIANTS
    if (simd_level() >= SimdLevel::AVX2)
      return triad_avx2_stream(args.a + lo, args.b + lo, args.c + lo, args.scalar, hi - lo);
#endif
    triad_scalar(args.a + lo, args.b + lo, args.c + lo, args.scalar, hi - lo);
  });
}

}  // namespace cpu
}  // namespace talaria
