// CPU logit kernels: log-prob/entropy/LSE forward and backward, fused cross-entropy, full-vocabulary KL
// forward and backward. Semantics, the online state and its exact merge: native/core/kernels/logits.h.
//
// Rows run in parallel (thread_pool); each row is computed by one thread in a fixed order, so results are
// bitwise the same for any thread count. Inside a row:
//   - State passes walk the row in chunks of 1024 logits (4 KB, in L1): the chunk's max, then e^dz and
//     e^dz dz relative to that max into staging arrays (one polynomial exp per logit, vectorised by the
//     SIMD_FUNCTION variants), summed in 16 fixed f32 lanes, then an exact merge into the row's f64 state.
//     The row is read from DRAM once; the second touch of each chunk hits L1. That is the online softmax
//     at chunk granularity: no per-logit rescaling, no second pass over the row.
//   - Gradient passes are elementwise (one exp per logit) with the target's one-hot term patched after the
//     loop, so d_logits may be the logits buffer itself (each element is read before it is written).
// Cross-entropy touches a row twice (state, then gradient); at V = 32,000 the row (128 KB) is still in the
// 1 MB L2 for the second touch, so DRAM sees one read and one write.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/kernels/logits.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kChunk = 1024;  // a multiple of kLanes

// Sixteen f32 lanes as one GCC/Clang vector. The lane folds are written with it because GCC keeps a
// float[16] accumulator in 16 scalar registers (measured: the max pass ran scalar); a plain elementwise
// loop into a staging array, on the other hand, it vectorises well, exp_f32 included.
#pragma GCC diagnostic ignored "-Wpsabi"  // Lanes16 never crosses a call boundary (always inlined)
typedef float Lanes16 __attribute__((vector_size(64)));
static_assert(sizeof(Lanes16) == kLanes * sizeof(float), "Lanes16 holds kLanes floats");

TALARIA_SIMD_INLINE Lanes16 load_lanes(const float* p) {
  Lanes16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
TALARIA_SIMD_INLINE Lanes16 splat(float x) { return Lanes16{} + x; }

// The largest of n <= kChunk logits (exact, so the lane order does not matter); -inf when all are -inf.
TALARIA_SIMD_INLINE float chunk_max(const float* x, int64_t n) {
  Lanes16 lane = splat(-INFINITY);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const Lanes16 v = load_lanes(x + i);
    lane = v > lane ? v : lane;
  }
  float best = -INFINITY;
  for (; i < n; i++) best = x[i] > best ? x[i] : best;
  for (int j = 0; j < kLanes; j++) best = lane[j] > best ? lane[j] : best;
  return best;
}

// Sum of n <= kChunk staged values in a fixed order: lane j adds elements j, j + 16, ... (the staging
// array is zero-padded to a whole number of lanes), then the lanes add up in order.
TALARIA_SIMD_INLINE float fold_sum(float* staged, int64_t n) {
  for (int64_t i = n; i % kLanes != 0; i++) staged[i] = 0.0f;
  Lanes16 lane = Lanes16{};
  for (int64_t i = 0; i < n; i += kLanes) lane += load_lanes(staged + i);
  float total = 0.0f;
  for (int j = 0; j < kLanes; j++) total += lane[j];
  return total;
}

// e^dz and its entropy term for dz = (x - m) * inv_t <= 0, into w and wdz; a -inf logit gives (0, 0), never
// 0 * -inf. A plain elementwise loop, so that it vectorises.
TALARIA_SIMD_INLINE void stage_weights(const float* __restrict x, int64_t n, float m, float inv_t, float* __restrict w,
                                       float* __restrict wdz) {
  for (int64_t i = 0; i < n; i++) {
    const float dz = (x[i] - m) * inv_t;
    const float e = exp_f32_no_denormals(dz);
    w[i] = e;
    wdz[i] = e > 0.0f ? e * dz : 0.0f;
  }
}

// ---- State passes -----------------------------------------------------------------------------------

TALARIA_SIMD_INLINE SoftmaxState<double> row_state_impl(const float* x, int64_t vocab, float inv_t) {
  alignas(64) float w[kChunk], wdz[kChunk];
  SoftmaxState<double> row{-INFINITY, 0.0, 0.0};
  for (int64_t c = 0; c < vocab; c += kChunk) {
    const int64_t n = std::min(kChunk, vocab - c);
    const float m = chunk_max(x + c, n);
    if (m == -INFINITY) continue;  // every logit masked: an empty part
    stage_weights(x + c, n, m, inv_t, w, wdz);
    row = merge_softmax(row, SoftmaxState<double>{m, fold_sum(w, n), fold_sum(wdz, n)}, inv_t);
  }
  return row;
}
TALARIA_SIMD_FUNCTION(SoftmaxState<double>, row_state, row_state_impl, (const float* x, int64_t vocab, float inv_t),
                      (x, vocab, inv_t))

// Both rows of the KL pass at once. A side whose chunk is all -inf computes against max 0, which gives
// weights of exactly 0: that part is empty (d = 0) on that side.
TALARIA_SIMD_INLINE KlState<double> kl_state_impl(const float* x, const float* u, int64_t vocab, float inv_t) {
  alignas(64) float wp[kChunk], wq[kChunk], s[kChunk];
  KlState<double> row{-INFINITY, -INFINITY, 0.0, 0.0, 0.0};
  for (int64_t c = 0; c < vocab; c += kChunk) {
    const int64_t n = std::min(kChunk, vocab - c);
    const float* __restrict xc = x + c;
    const float* __restrict uc = u + c;
    const float mp = chunk_max(xc, n), mq = chunk_max(uc, n);
    const float mp_or_0 = mp == -INFINITY ? 0.0f : mp, mq_or_0 = mq == -INFINITY ? 0.0f : mq;
    for (int64_t i = 0; i < n; i++) {
      const float dzp = (xc[i] - mp_or_0) * inv_t, dzq = (uc[i] - mq_or_0) * inv_t;
      const float ep = exp_f32_no_denormals(dzp);
      wp[i] = ep;
      wq[i] = exp_f32_no_denormals(dzq);
      s[i] = ep > 0.0f ? ep * (dzp - dzq) : 0.0f;
    }
    row = merge_kl(row, KlState<double>{mp, mq, fold_sum(wp, n), fold_sum(wq, n), fold_sum(s, n)}, inv_t);
  }
  return row;
}
TALARIA_SIMD_FUNCTION(KlState<double>, kl_state, kl_state_impl,
                      (const float* x, const float* u, int64_t vocab, float inv_t), (x, u, vocab, inv_t))

// ---- Gradient passes ----------------------------------------------------------------------------------
// No __restrict: d may be x (in place). ivdep: element i is read before element i is written, and no
// other element is touched, so vectorising is safe even then (GCC's overlap check would fall back to
// scalar code exactly in the in-place case).

// d_i = logprob_entropy_grad(lp_i, e^lp_i, 0, ...) with lp_i = (x_i - shift) * inv_t - offset; the
// target's one-hot term is the caller's.
TALARIA_SIMD_INLINE int softmax_grad_row_impl(const float* x, float* d, int64_t vocab, float shift, float offset,
                                              float inv_t, float g_logp, float g_entropy, float entropy) {
#pragma GCC ivdep
  for (int64_t i = 0; i < vocab; i++) {
    const float lp = (x[i] - shift) * inv_t - offset;
    d[i] = logprob_entropy_grad(lp, exp_f32_no_denormals(lp), 0.0f, g_logp, g_entropy, entropy, inv_t);
  }
  return 0;
}
TALARIA_SIMD_FUNCTION(int, softmax_grad_row, softmax_grad_row_impl,
                      (const float* x, float* d, int64_t vocab, float shift, float offset, float inv_t, float g_logp,
                       float g_entropy, float entropy),
                      (x, d, vocab, shift, offset, inv_t, g_logp, g_entropy, entropy))

TALARIA_SIMD_INLINE int kl_grad_row_impl(const float* x, const float* u, float* d, int64_t vocab, float inv_t,
                                         float lse, float ref_lse, float g_kl, float kl) {
#pragma GCC ivdep
  for (int64_t i = 0; i < vocab; i++) {
    const float lp = x[i] * inv_t - lse, lq = u[i] * inv_t - ref_lse;
    d[i] = kl_grad(lp, lq, exp_f32_no_denormals(lp), g_kl, kl, inv_t);
  }
  return 0;
}
TALARIA_SIMD_FUNCTION(int, kl_grad_row, kl_grad_row_impl,
                      (const float* x, const float* u, float* d, int64_t vocab, float inv_t, float lse, float ref_lse,
                       float g_kl, float kl),
                      (x, u, d, vocab, inv_t, lse, ref_lse, g_kl, kl))

// The full softmax-gradient row including the target's one-hot term. The target's value is computed from
// x before the loop can overwrite it (in place), with the same formula as every other element.
void softmax_grad_with_target(const float* x, float* d, int64_t vocab, int32_t target, float shift, float offset,
                              float inv_t, float g_logp, float g_entropy, float entropy) {
  const float lp_y = (x[target] - shift) * inv_t - offset;
  const float d_y = logprob_entropy_grad(lp_y, exp_f32_no_denormals(lp_y), 1.0f, g_logp, g_entropy, entropy, inv_t);
  softmax_grad_row(x, d, vocab, shift, offset, inv_t, g_logp, g_entropy, entropy);
  d[target] = d_y;
}

// Rows in parallel; a chunk of rows per claim keeps the pool's overhead small next to V >= 1 logits.
template <typename Body>
void for_each_row(const LogitsView& x, const Body& body) {
  const int64_t grain = std::max<int64_t>(1, 16384 / x.vocab);
  parallel_for(0, x.rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) body(r, x.logits + r * x.vocab, inv_temperature(row_temperature(x, r)));
  });
}

}  // namespace

void logprob_entropy(const LogprobEntropyArgs& a) {
  for_each_row(a.x, [&](int64_t r, const float* row, float inv_t) {
    const SoftmaxState<double> st = row_state(row, a.x.vocab, inv_t);
    const float log_d = state_log_d(st);
    a.logp[r] = row_logp(row[a.targets[r]], st.m, inv_t, log_d);
    a.entropy[r] = state_entropy(st);
    a.lse[r] = row_lse(st.m, inv_t, log_d);
  });
}

void logprob_entropy_backward(const LogprobEntropyBackwardArgs& a) {
  for_each_row(a.x, [&](int64_t r, const float* row, float inv_t) {
    softmax_grad_with_target(row, a.d_logits + r * a.x.vocab, a.x.vocab, a.targets[r], 0.0f, a.lse[r], inv_t,
                             a.g_logp[r], a.g_entropy[r], a.entropy[r]);
  });
}

void cross_entropy(const CrossEntropyArgs& a) {
  const int64_t rows = a.x.rows, vocab = a.x.vocab;
  int64_t count = 0;
  for (int64_t r = 0; r < rows; r++) count += a.mask == nullptr || a.mask[r] != 0;
  const float weight = cross_entropy_weight(count);
  std::vector<float> row_loss(static_cast<size_t>(rows), 0.0f);
  for_each_row(a.x, [&](int64_t r, const float* row, float) {
    float* d = a.d_logits + r * vocab;
    if (a.mask != nullptr && a.mask[r] == 0) {
      std::fill(d, d + vocab, 0.0f);
      return;
    }
    const SoftmaxState<double> st = row_state(row, vocab, 1.0f);
    const float log_d = state_log_d(st);
    const int32_t y = a.targets[r];
    row_loss[r] = -row_logp(row[y], st.m, 1.0f, log_d);
    // (p - onehot) / count is the log-prob gradient with g_logp = -1 / count and no entropy term.
    softmax_grad_with_target(row, d, vocab, y, st.m, log_d, 1.0f, -weight, 0.0f, 0.0f);
  });
  double sum = 0.0;
  for (float l : row_loss) sum += l;
  *a.loss = mean_or_zero(sum, count);
  *a.count = count;
}

void kl_divergence(const KlDivergenceArgs& a) {
  for_each_row(a.x, [&](int64_t r, const float* row, float inv_t) {
    const KlState<double> st = kl_state(row, a.ref_logits + r * a.x.vocab, a.x.vocab, inv_t);
    a.kl[r] = state_kl(st);
    a.lse[r] = row_lse(st.m_p, inv_t, static_cast<float>(std::log(st.d_p)));
    a.ref_lse[r] = row_lse(st.m_q, inv_t, static_cast<float>(std::log(st.d_q)));
  });
}

void kl_divergence_backward(const KlDivergenceBackwardArgs& a) {
  for_each_row(a.x, [&](int64_t r, const float* row, float inv_t) {
    const int64_t offset = r * a.x.vocab;
    kl_grad_row(row, a.ref_logits + offset, a.d_logits + offset, a.x.vocab, inv_t, a.lse[r], a.ref_lse[r], a.g_kl[r],
                a.kl[r]);
  });
}

}  // namespace cpu
}  // namespace talaria
