// CPU optimizer kernels (kernels/optimizer.h). Both are single streaming passes: AdamW moves 28 B per
// element (bandwidth-bound, ~45 GB/s on this machine's two cores), the norm reads 4 B. The loops are
// plain element-wise code that GCC vectorises for the baseline target; the bound is DRAM, not the ALUs.
// Threads take contiguous ranges (AdamW) or whole kNormChunk chunks (the norm), so nothing depends on the
// thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/kernels/optimizer.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {

namespace {

// A local copy and restrict pointers: the stores through params, m and v could otherwise alias the
// hyperparameters in `args`, which would be reloaded every element and keep the loop scalar.
TALARIA_SIMD_INLINE void adamw_range_impl(const AdamwArgs& args, int64_t lo, int64_t hi) {
  const AdamwArgs a = args;
  float* __restrict p = a.params;
  const float* __restrict g = a.grads;
  float* __restrict m = a.m;
  float* __restrict v = a.v;
  for (int64_t i = lo; i < hi; i++) adamw_element(p[i], g[i], m[i], v[i], a);
}
TALARIA_SIMD_FUNCTION(void, adamw_range, adamw_range_impl, (const AdamwArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

}  // namespace

void adamw(const AdamwArgs& args) {
  parallel_for(0, args.n, 16384, [&](int64_t lo, int64_t hi) { adamw_range(args, lo, hi); });
}

void grad_norm(const GradNormArgs& a) {
  const int64_t chunks = (a.n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      // 8 interleaved f64 sums (element i of the chunk goes to lane i % 8: independent adds that
      // vectorise), folded in lane order.
      double lanes[8] = {};
      const int64_t begin = c * kNormChunk, end = std::min(a.n, begin + kNormChunk);
      const float* g = a.grads;
      int64_t i = begin;
      for (; i + 8 <= end; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += static_cast<double>(g[i + j]) * g[i + j];
      for (; i < end; i++) lanes[(i - begin) & 7] += static_cast<double>(g[i]) * g[i];
      double sum = 0.0;
      for (double lane : lanes) sum += lane;
      partial[static_cast<size_t>(c)] = sum;
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;
  *a.norm = std::sqrt(total);
  *a.scale = clip_scale(*a.norm, a.max_norm);
  if (*a.scale == 1.0f) return;
  const float s = *a.scale;
  parallel_for(0, a.n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) a.grads[i] *= s;
  });
}

}  // namespace cpu
}  // namespace talaria
