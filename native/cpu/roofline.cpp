// STREAM triad on the CPU: 12 bytes per element (read b and c, write a; write-allocate traffic is not
// counted, as in STREAM). Split into 64 KiB-aligned chunks over the pool; vectorised per ISA.
#include <algorithm>

#include "../core/kernels/roofline.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {
namespace {

TALARIA_SIMD_INLINE int triad_impl(float* a, const float* b, const float* c, float scalar, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] = b[i] + scalar * c[i];
  return 0;
}
TALARIA_SIMD_FUNCTION(int, triad, triad_impl,
                      (float* a, const float* b, const float* c, float scalar, int64_t n),
                      (a, b, c, scalar, n))

}  // namespace

void stream_triad(const StreamTriadArgs& args) {
  constexpr int64_t kChunk = 1 << 16;
  parallel_for(0, args.n, kChunk, [&](int64_t lo, int64_t hi) {
    triad(args.a + lo, args.b + lo, args.c + lo, args.scalar, hi - lo);
  });
}

}  // namespace cpu
}  // namespace talaria
