// CPU decoder-layer kernels (kernels/layers.h). All of them stream their tensors once (rmsnorm's backward
// also reads its f64 dWeight partials), so DRAM bandwidth is the bound; the loops are plain element-wise
// code compiled per SIMD target (TALARIA_SIMD_FUNCTION) with fixed accumulation orders, so every output is
// bitwise the same for any thread count and any SIMD level.
//
// Threads: waking a pool thread costs ~7 us, so a worker only joins for at least kMinElementsPerThread
// elements (~30 us of streaming); smaller calls run on the caller's thread alone.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/kernels/layers.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {

constexpr int64_t kMinElementsPerThread = 64 * 1024;

// Rows per parallel range so that each range holds at least kMinElementsPerThread elements.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(1, cols)); }

// sum_j a_j b_j in f64, over 8 interleaved partials (element j to partial j % 8, which vectorises), folded
// in partial order: the same bits whatever the vector width.
TALARIA_SIMD_INLINE double dot_f64(const float* __restrict a, const float* __restrict b, int64_t n) {
  double lanes[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) lanes[k] += static_cast<double>(a[j + k]) * b[j + k];
  for (; j < n; j++) lanes[j & 7] += static_cast<double>(a[j]) * b[j];
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  return sum;
}

// ---- rmsnorm ---------------------------------------------------------------------------------------------

TALARIA_SIMD_INLINE void rmsnorm_rows_impl(const RmsnormArgs& args, int64_t lo, int64_t hi) {
  const RmsnormArgs a = args;
  const float* __restrict w = a.weight;
  for (int64_t r = lo; r < hi; r++) {
    const float* __restrict x = a.x + r * a.dim;
    float* __restrict y = a.y + r * a.dim;
    const float rstd = rmsnorm_rstd(dot_f64(x, x, a.dim), a.dim, a.eps);
    for (int64_t j = 0; j < a.dim; j++) y[j] = (x[j] * rstd) * w[j];
    a.rstd[r] = rstd;
  }
}
TALARIA_SIMD_FUNCTION(void, rmsnorm_rows, rmsnorm_rows_impl, (const RmsnormArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

// Rows [lo, hi) of one row block: writes (or adds) dx, and the block's dWeight partial (f64 [dim], the rows
// summed in row order).
TALARIA_SIMD_INLINE void rmsnorm_backward_block_impl(const RmsnormBackwardArgs& args, int64_t lo, int64_t hi,
                                                     double* __restrict partial, float* __restrict g) {
  const RmsnormBackwardArgs a = args;
  const int64_t dim = a.dim;
  const float* __restrict w = a.weight;
  for (int64_t j = 0; j < dim; j++) partial[j] = 0.0;
  for (int64_t r = lo; r < hi; r++) {
    const float* __restrict x = a.x + r * dim;
    const float* __restrict dy = a.dy + r * dim;
    float* __restrict dx = a.dx + r * dim;
    const float rstd = a.rstd[r];
    for (int64_t j = 0; j < dim; j++) g[j] = dy[j] * w[j];
    const float coef = rmsnorm_dx_coef(rstd, dot_f64(g, x, dim), dim);
    if (a.accumulate_dx) {
      for (int64_t j = 0; j < dim; j++) dx[j] += rmsnorm_dx_element(rstd, g[j], x[j], coef);
    } else {
      for (int64_t j = 0; j < dim; j++) dx[j] = rmsnorm_dx_element(rstd, g[j], x[j], coef);
    }
    for (int64_t j = 0; j < dim; j++) partial[j] += static_cast<double>(dy[j] * (x[j] * rstd));
  }
}
TALARIA_SIMD_FUNCTION(void, rmsnorm_backward_block, rmsnorm_backward_block_impl,
                      (const RmsnormBackwardArgs& a, int64_t lo, int64_t hi, double* partial, float* g),
                      (a, lo, hi, partial, g))

// dWeight_j += the block partials of columns [lo, hi), added in block order.
TALARIA_SIMD_INLINE void add_partials_impl(const double* __restrict partials, int64_t blocks, int64_t dim,
                                           float* __restrict d_weight, bool accumulate, int64_t lo, int64_t hi) {
  for (int64_t j = lo; j < hi; j++) {
    double total = 0.0;
    for (int64_t b = 0; b < blocks; b++) total += partials[b * dim + j];
    d_weight[j] = rmsnorm_d_weight(d_weight[j], total, accumulate);
  }
}
TALARIA_SIMD_FUNCTION(void, add_partials, add_partials_impl,
                      (const double* partials, int64_t blocks, int64_t dim, float* d_weight, bool accumulate, int64_t lo,
                       int64_t hi),
                      (partials, blocks, dim, d_weight, accumulate, lo, hi))

// ---- swiglu ----------------------------------------------------------------------------------------------

// e^-|g|: the argument is <= 0, so the cheaper exponential without denormals serves (0 below e^-87,
// where sigmoid's e / (1 + e) is below 2^-125 anyway).
TALARIA_SIMD_INLINE float exp_neg_abs(float g) { return exp_f32_no_denormals(g < 0.0f ? g : -g); }

TALARIA_SIMD_INLINE void swiglu_rows_impl(const SwigluArgs& args, int64_t lo, int64_t hi) {
  const SwigluArgs a = args;
  const int64_t f = a.hidden;
  for (int64_t r = lo; r < hi; r++) {
    const float* __restrict gate = a.gate_up + r * 2 * f;
    const float* __restrict up = gate + f;
    float* __restrict h = a.h + r * f;
    for (int64_t j = 0; j < f; j++) h[j] = swiglu_element(gate[j], up[j], exp_neg_abs(gate[j]));
  }
}
TALARIA_SIMD_FUNCTION(void, swiglu_rows, swiglu_rows_impl, (const SwigluArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

TALARIA_SIMD_INLINE void swiglu_backward_rows_impl(const SwigluBackwardArgs& args, int64_t lo, int64_t hi) {
  const SwigluBackwardArgs a = args;
  const int64_t f = a.hidden;
  for (int64_t r = lo; r < hi; r++) {
    const float* __restrict gate = a.gate_up + r * 2 * f;
    const float* __restrict up = gate + f;
    const float* __restrict dh = a.dh + r * f;
    float* __restrict d_gate = a.d_gate_up + r * 2 * f;
    float* __restrict d_up = d_gate + f;
    for (int64_t j = 0; j < f; j++) swiglu_backward_element(gate[j], up[j], dh[j], exp_neg_abs(gate[j]), d_gate[j], d_up[j]);
  }
}
TALARIA_SIMD_FUNCTION(void, swiglu_backward_rows, swiglu_backward_rows_impl,
                      (const SwigluBackwardArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

// ---- embedding backward and axpby ------------------------------------------------------------------------

// Columns [lo, hi) of every token, in token order: each dTable element receives its tokens' values in the
// same sequence whatever the column split.
TALARIA_SIMD_INLINE void embedding_backward_columns_impl(const EmbeddingBackwardArgs& args, int64_t lo, int64_t hi) {
  const EmbeddingBackwardArgs a = args;
  for (int64_t t = 0; t < a.rows; t++) {
    const float* __restrict from = a.d_out + t * a.dim;
    float* __restrict to = a.d_table + static_cast<int64_t>(a.ids[t]) * a.dim;
    for (int64_t j = lo; j < hi; j++) to[j] += from[j];
  }
}
TALARIA_SIMD_FUNCTION(void, embedding_backward_columns, embedding_backward_columns_impl,
                      (const EmbeddingBackwardArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

// No __restrict on y and x: they may be the same buffer.
TALARIA_SIMD_INLINE void axpby_range_impl(const AxpbyArgs& args, int64_t lo, int64_t hi) {
  const AxpbyArgs a = args;
  const float* x = a.x;
  float* y = a.y;
  for (int64_t i = lo; i < hi; i++) y[i] = axpby_element(x[i], y[i], a.alpha, a.beta);
}
TALARIA_SIMD_FUNCTION(void, axpby_range, axpby_range_impl, (const AxpbyArgs& a, int64_t lo, int64_t hi), (a, lo, hi))

}  // namespace

void rmsnorm(const RmsnormArgs& args) {
  parallel_for(0, args.rows, row_grain(args.dim), [&](int64_t lo, int64_t hi) { rmsnorm_rows(args, lo, hi); });
}

void rmsnorm_backward(const RmsnormBackwardArgs& args) {
  if (args.dim == 0) return;
  const int64_t blocks = (args.rows + kRmsnormRowBlock - 1) / kRmsnormRowBlock;
  std::vector<double> partials(static_cast<size_t>(blocks * args.dim));
  const int64_t block_grain = std::max<int64_t>(1, row_grain(args.dim) / kRmsnormRowBlock);
  parallel_for(0, blocks, block_grain, [&](int64_t lo, int64_t hi) {
    std::vector<float> g(static_cast<size_t>(args.dim));  // dy w of one row
    for (int64_t b = lo; b < hi; b++)
      rmsnorm_backward_block(args, b * kRmsnormRowBlock, std::min(args.rows, (b + 1) * kRmsnormRowBlock),
                             partials.data() + b * args.dim, g.data());
  });
  parallel_for(0, args.dim, std::max<int64_t>(16, kMinElementsPerThread / std::max<int64_t>(1, blocks)), [&](int64_t lo, int64_t hi) {
    add_partials(partials.data(), blocks, args.dim, args.d_weight, args.accumulate_d_weight, lo, hi);
  });
}

void swiglu(const SwigluArgs& args) {
  parallel_for(0, args.rows, row_grain(3 * args.hidden), [&](int64_t lo, int64_t hi) { swiglu_rows(args, lo, hi); });
}

void swiglu_backward(const SwigluBackwardArgs& args) {
  parallel_for(0, args.rows, row_grain(5 * args.hidden),
               [&](int64_t lo, int64_t hi) { swiglu_backward_rows(args, lo, hi); });
}

void embedding(const EmbeddingArgs& a) {
  const size_t row_bytes = static_cast<size_t>(a.dim) * sizeof(float);
  parallel_for(0, a.rows, row_grain(a.dim), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) std::memcpy(a.out + t * a.dim, a.table + static_cast<int64_t>(a.ids[t]) * a.dim, row_bytes);
  });
}

void embedding_backward(const EmbeddingBackwardArgs& args) {
  if (args.rows == 0) return;
  // Ranges of at least 16 columns (a cache line of every row touched) and kMinElementsPerThread elements.
  const int64_t grain = std::max<int64_t>(16, kMinElementsPerThread / args.rows);
  parallel_for(0, args.dim, grain, [&](int64_t lo, int64_t hi) { embedding_backward_columns(args, lo, hi); });
}

void axpby(const AxpbyArgs& args) {
  parallel_for(0, args.n, kMinElementsPerThread, [&](int64_t lo, int64_t hi) { axpby_range(args, lo, hi); });
}

}  // namespace cpu
}  // namespace talaria
