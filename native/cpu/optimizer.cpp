// CPU optimizer kernels (kernels/optimizer.h). Both are single streaming passes: AdamW moves 28 B per
// element (bandwidth-bound, ~45 GB/s on this machine's two cores), the norm reads 4 B. The loops are
// plain element-wise code that GCC vectorises for the baseline target; the bound is DRAM, not the ALUs.
// Threads take contiguous ranges (AdamW) or whole kNormChunk chunks (the norm), so nothing depends on the
// thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/kernels/optimizer.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {

void adamw(const AdamwArgs& a) {
  parallel_for(0, a.n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) adamw_element(a.params[i], a.grads[i], a.m[i], a.v[i], a);
  });
}

void grad_norm(const GradNormArgs& a) {
  const int64_t chunks = (a.n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      // 8 interleaved f64 sums (independent adds pipeline), folded in lane order.
      double lanes[8] = {};
      const int64_t begin = c * kNormChunk, end = std::min(a.n, begin + kNormChunk);
      for (int64_t i = begin; i < end; i++) {
        const double g = a.grads[i];
        lanes[(i - begin) & 7] += g * g;
      }
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
