// Rotary position embedding on the CPU (attention.h, RopeArgs). A cos/sin table of rows x D/2 frequencies
// is built once per call in f64 and rounded to f32, then each (token, head) row is rotated by its
// position's row of the table. Without position offsets the rows are positions [0, max_seqlen), shared by
// every sequence. With offsets they are the span of positions in use, [min offset, max offset + seqlen),
// which a chunked prefill fills densely; a decode step over caches of different lengths (one token each at
// scattered positions) would make that span huge, so when it has more rows than there are tokens the
// table has one row per token instead.
//
// Napkin math: N * H * D * 4 bytes read and written (y = x or a fresh buffer), 6 FLOP per pair of
// elements: purely bandwidth-bound, about 1 ms for N = 4096, H = 32, D = 128 (2 x 64 MiB) at 45 GB/s. The
// table costs rows * D / 2 f64 sincos (rows <= N, and max_seqlen without offsets), shared by every head.
#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Calls visit(t, b) for each token t of [lo, hi), b being the sequence that holds t.
template <class Visit>
void for_each_token(const RopeArgs& a, int64_t lo, int64_t hi, Visit visit) {
  const int32_t* cu_begin = a.cu_seqlens;
  const int32_t* cu_end = a.cu_seqlens + a.num_seqs + 1;
  // The sequence holding token lo (the last offset <= lo), then walk forward.
  int64_t b = std::upper_bound(cu_begin, cu_end, static_cast<int32_t>(lo)) - cu_begin - 1;
  for (int64_t t = lo; t < hi; t++) {
    while (t >= a.cu_seqlens[b + 1]) b++;
    visit(t, b);
  }
}

int64_t position_of(const RopeArgs& a, int64_t t, int64_t b) {
  const int64_t offset = a.position_offsets ? a.position_offsets[b] : 0;
  return offset + t - a.cu_seqlens[b];
}

// Which rows the cos/sin table holds: positions [first, first + rows), or one row per token.
struct TableLayout {
  int64_t first = 0, rows = 0;
  bool per_token = false;
  int64_t row_of(const RopeArgs& a, int64_t t, int64_t b) const { return per_token ? t : position_of(a, t, b) - first; }
};

TableLayout table_layout(const RopeArgs& a) {
  TableLayout layout;
  if (!a.position_offsets) {
    layout.rows = a.max_seqlen;
    return layout;
  }
  int64_t lo = INT64_MAX, hi = 0;
  for (int64_t b = 0; b < a.num_seqs; b++) {
    const int64_t length = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
    if (length == 0) continue;
    lo = std::min<int64_t>(lo, a.position_offsets[b]);
    hi = std::max<int64_t>(hi, a.position_offsets[b] + length);
  }
  if (hi <= lo) return layout;  // no tokens
  if (hi - lo <= a.total) {
    layout.first = lo;
    layout.rows = hi - lo;
  } else {
    layout.per_token = true;
    layout.rows = a.total;
  }
  return layout;
}

}  // namespace

void rope(const RopeArgs& a) {
  const int half = a.head_dim / 2;
  const TableLayout layout = table_layout(a);
  std::vector<float> cos_table(static_cast<size_t>(layout.rows * half)), sin_table(cos_table.size());
  auto fill_row = [&](int64_t row, int64_t p) {
    for (int i = 0; i < half; i++) {
      const double angle = static_cast<double>(p) * std::pow(a.theta, -2.0 * i / a.head_dim);
      cos_table[row * half + i] = static_cast<float>(std::cos(angle));
      sin_table[row * half + i] = static_cast<float>(a.inverse ? -std::sin(angle) : std::sin(angle));
    }
  };
  if (layout.per_token) {
    parallel_for(0, a.total, 64, [&](int64_t lo, int64_t hi) {
      for_each_token(a, lo, hi, [&](int64_t t, int64_t b) { fill_row(t, position_of(a, t, b)); });
    });
  } else {
    parallel_for(0, layout.rows, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) fill_row(r, layout.first + r);
    });
  }
  const int64_t row = static_cast<int64_t>(a.heads) * a.head_dim;
  parallel_for(0, a.total, 16, [&](int64_t lo, int64_t hi) {
    for_each_token(a, lo, hi, [&](int64_t t, int64_t b) {
      const int64_t r = layout.row_of(a, t, b);
      for (int h = 0; h < a.heads; h++) {
        const int64_t at = t * row + static_cast<int64_t>(h) * a.head_dim;
        rope_row(a.x + at, a.y + at, cos_table.data() + r * half, sin_table.data() + r * half, half);
      }
    });
  });
}

}  // namespace cpu
}  // namespace talaria
