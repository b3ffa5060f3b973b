// Rotary position embedding on the CPU (attention.h, RopeArgs). A cos/sin table over positions
// [0, max_seqlen) x D/2 frequencies is built once per call in f64 and rounded to f32, then each (token,
// head) row is rotated by its position's row of the table.
//
// Napkin math: N * H * D * 4 bytes read and written (y = x or a fresh buffer), 6 FLOP per pair of
// elements: purely bandwidth-bound, about 1 ms for N = 4096, H = 32, D = 128 (2 x 64 MiB) at 45 GB/s. The
// table costs max_seqlen * D / 2 f64 sincos, shared by every head and every sequence.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"

namespace talaria {
namespace cpu {
namespace {

// One row of D: y_i = x_i c - x_{i+D/2} s, y_{i+D/2} = x_{i+D/2} c + x_i s (s negated for the inverse,
// folded into the table). Safe in place: each pair is read before it is written.
TALARIA_SIMD_INLINE void rotate_row(const float* x, float* y, const float* cos_row, const float* sin_row, int half) {
  for (int i = 0; i < half; i++) {
    const float a = x[i], b = x[i + half], c = cos_row[i], s = sin_row[i];
    y[i] = a * c - b * s;
    y[i + half] = b * c + a * s;
  }
}
TALARIA_SIMD_FUNCTION(void, rope_row, rotate_row,
                      (const float* x, float* y, const float* cos_row, const float* sin_row, int half),
                      (x, y, cos_row, sin_row, half))

}  // namespace

void rope(const RopeArgs& a) {
  const int half = a.head_dim / 2;
  const int64_t positions = a.max_seqlen;
  std::vector<float> cos_table(static_cast<size_t>(positions * half)), sin_table(cos_table.size());
  parallel_for(0, positions, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; p++)
      for (int i = 0; i < half; i++) {
        const double angle = static_cast<double>(p) * std::pow(a.theta, -2.0 * i / a.head_dim);
        cos_table[p * half + i] = static_cast<float>(std::cos(angle));
        sin_table[p * half + i] = static_cast<float>(a.inverse ? -std::sin(angle) : std::sin(angle));
      }
  });
  const int64_t row = static_cast<int64_t>(a.heads) * a.head_dim;
  const int32_t* cu_begin = a.cu_seqlens;
  const int32_t* cu_end = a.cu_seqlens + a.num_seqs + 1;
  parallel_for(0, a.total, 16, [&](int64_t lo, int64_t hi) {
    // The sequence holding token lo (the last offset <= lo), then walk forward.
    int64_t b = std::upper_bound(cu_begin, cu_end, static_cast<int32_t>(lo)) - cu_begin - 1;
    for (int64_t t = lo; t < hi; t++) {
      while (t >= a.cu_seqlens[b + 1]) b++;
      const int64_t p = t - a.cu_seqlens[b];
      for (int h = 0; h < a.heads; h++) {
        const int64_t at = t * row + static_cast<int64_t>(h) * a.head_dim;
        rope_row(a.x + at, a.y + at, cos_table.data() + p * half, sin_table.data() + p * half, half);
      }
    }
  });
}

}  // namespace cpu
}  // namespace talaria
