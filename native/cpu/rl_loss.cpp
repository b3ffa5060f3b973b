// CPU PPO policy loss and value loss: forward, backward and stats in one pass over the tokens.
// Semantics: native/core/kernels/rl_loss.h; every decision comes from the shared inline math there and in
// rl_math.h, so this file and native/cuda/rl_loss.cu clip, clamp and weight identically.
//
// Passes:
//   1. Aggregation plan: action tokens per sequence (reads the 1-byte mask only, or just cu_seqlens
//      without a mask), then one weight per sequence. token-mean and the two seq-mean-token-sum modes give
//      every active sequence the same weight, so the main pass can ignore sequence boundaries for them.
//   2. The fused pass over fixed 4096-token chunks, in parallel. A chunk walks the sequence segments it
//      overlaps (one segment unless the weights differ per sequence) and, per 64-token block, computes
//      each token's loss term, gradient and stats, then folds the stats in 8 f32 lanes into f64. Chunk
//      partials merge in chunk order, so the result is bitwise the same for any thread count.
//
// Napkin math, PPO at N = 65,536 (B=64, T=1024), no ref/entropy: read logp, old_logp, advantages (12 B)
// and the mask (1 B, twice) and write d_logp (4 B): 18 B/token, 1.2 MB, 27 us at 45 GB/s. It fits in L2/L3,
// so in practice it is bound by the ~25 f32 ops per token (one polynomial exp) plus the pool's dispatch.
// With ref_logp (+4 B) the k3 estimator costs a second exp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/kernels/rl_loss.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {

constexpr int kLanes = 8;
constexpr int64_t kBlockTokens = 64;  // per-token stats are staged per block, then folded into f64
constexpr int64_t kChunkTokens = 4096;

// ---- Pass 1: how the loss is aggregated -------------------------------------------------------------

struct AggregationPlan {
  std::vector<float> seq_weight;  // per sequence; used when !uniform
  float uniform_weight = 0.0f;    // the weight of every action token when uniform
  bool uniform = true;
  int64_t action_tokens = 0;
  int64_t active_seqs = 0;
};

TALARIA_SIMD_INLINE int64_t count_actions_impl(const uint8_t* mask, int64_t n) {
  // Byte sums in 32-bit pieces of at most 2^16 bytes: narrow accumulators keep the loop 32 bytes wide.
  int64_t count = 0;
  for (int64_t begin = 0; begin < n; begin += 1 << 16) {
    const int64_t end = std::min<int64_t>(n, begin + (1 << 16));
    uint32_t piece = 0;
    for (int64_t i = begin; i < end; i++) piece += mask[i] != 0 ? 1u : 0u;
    count += piece;
  }
  return count;
}
TALARIA_SIMD_FUNCTION(int64_t, count_actions, count_actions_impl, (const uint8_t* mask, int64_t n), (mask, n))

AggregationPlan plan_aggregation(const int32_t* cu_seqlens, const uint8_t* mask, int64_t num_seqs, int64_t num_tokens,
                                 LossAggregation mode, double normalizer) {
  std::vector<int64_t> seq_actions(num_seqs);
  const int64_t grain = std::max<int64_t>(1, kChunkTokens * num_seqs / std::max<int64_t>(1, num_tokens));
  parallel_for(0, num_seqs, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) {
      const int64_t begin = cu_seqlens[b], len = cu_seqlens[b + 1] - begin;
      seq_actions[b] = mask ? count_actions(mask + begin, len) : len;
    }
  });
  AggregationPlan plan;
  for (int64_t b = 0; b < num_seqs; b++) {
    plan.action_tokens += seq_actions[b];
    plan.active_seqs += seq_actions[b] > 0;
  }
  plan.uniform = mode != LossAggregation::SeqMeanTokenMean;
  // Any active sequence stands for all of them when the weight does not depend on its length.
  plan.uniform_weight = aggregation_weight(mode, 1, plan.action_tokens, plan.active_seqs, normalizer);
  if (!plan.uniform) {
    plan.seq_weight.resize(num_seqs);
    for (int64_t b = 0; b < num_seqs; b++)
      plan.seq_weight[b] = aggregation_weight(mode, seq_actions[b], plan.action_tokens, plan.active_seqs, normalizer);
  }
  return plan;
}

// Runs segment(begin, end, weight, partial) over fixed chunks of [0, N), split at sequence boundaries when
// the plan's weights differ per sequence, and merges the chunk partials in chunk order.
template <typename Partial, typename Segment>
Partial reduce_over_chunks(const int32_t* cu_seqlens, int64_t num_seqs, int64_t num_tokens, const AggregationPlan& plan,
                           const Segment& segment) {
  const int64_t num_chunks = (num_tokens + kChunkTokens - 1) / kChunkTokens;
  std::vector<Partial> partial(num_chunks);
  parallel_for(0, num_chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      const int64_t begin = c * kChunkTokens, end = std::min(num_tokens, begin + kChunkTokens);
      if (plan.uniform) {
        segment(begin, end, plan.uniform_weight, partial[c]);
        continue;
      }
      // The sequence holding `begin`: the last b with cu_seqlens[b] <= begin (skips empty sequences).
      int64_t b = std::upper_bound(cu_seqlens, cu_seqlens + num_seqs + 1, begin) - cu_seqlens - 1;
      for (int64_t t = begin; t < end; b++) {
        const int64_t seg_end = std::min<int64_t>(end, cu_seqlens[b + 1]);
        if (seg_end > t) segment(t, seg_end, plan.seq_weight[b], partial[c]);
        t = std::max(t, seg_end);
      }
    }
  });
  Partial total;
  for (const Partial& p : partial) total.merge(p);
  return total;
}

// Eight f32 lanes as one GCC/Clang vector: the fold below is written with it because GCC turned the
// equivalent scalar loops into shuffles that cost more than the whole loss (measured 4x).
#pragma GCC diagnostic ignored "-Wpsabi"  // Lanes8 never crosses a call boundary (always inlined)
typedef float Lanes8 __attribute__((vector_size(32)));
static_assert(kLanes == 8, "Lanes8 holds kLanes floats");

TALARIA_SIMD_INLINE Lanes8 load_lanes(const float* p) {
  Lanes8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Folds one block's per-token stats (stat[s][i], i < kBlockTokens, zero past the block's end) into the
// f64 sums in a fixed order: 8 lanes of f32 (8 terms each), then the lanes in order.
template <int kStats>
TALARIA_SIMD_INLINE void fold_block(const float (&stat)[kStats][kBlockTokens], double (&into)[kStats]) {
  for (int s = 0; s < kStats; s++) {
    Lanes8 lane = load_lanes(&stat[s][0]);
    for (int64_t i = kLanes; i < kBlockTokens; i += kLanes) lane += load_lanes(&stat[s][i]);
    for (int j = 0; j < kLanes; j++) into[s] += static_cast<double>(lane[j]);
  }
}

// The largest of a block's values (exact, so the order does not matter).
TALARIA_SIMD_INLINE float block_max(const float (&values)[kBlockTokens]) {
  Lanes8 lane = load_lanes(&values[0]);
  for (int64_t i = kLanes; i < kBlockTokens; i += kLanes) {
    const Lanes8 next = load_lanes(&values[i]);
    lane = next > lane ? next : lane;
  }
  float best = lane[0];
  for (int j = 1; j < kLanes; j++) best = lane[j] > best ? lane[j] : best;
  return best;
}

// The block's action mask as floats. Staged separately so the token loops read only 4-byte types: a
// 1-byte load in the loop makes GCC size its vectors for 32 lanes, and the four registers per float it
// then needs spill everywhere (measured: 10x slower).
template <bool kHasMask>
TALARIA_SIMD_INLINE void stage_mask(const uint8_t* mask, int64_t len, float* out) {
  for (int64_t i = 0; i < len; i++) out[i] = (!kHasMask || mask[i] != 0) ? 1.0f : 0.0f;
}

// ---- PPO policy loss --------------------------------------------------------------------------------

enum PpoStat { kLoss, kPg, kKl, kEntropy, kApproxKl, kRatio, kClipped, kDual, kPpoStats };

struct PpoPartial {
  double sum[kPpoStats] = {};
  float ratio_max = -INFINITY;
  void merge(const PpoPartial& o) {
    for (int s = 0; s < kPpoStats; s++) sum[s] += o.sum[s];
    ratio_max = std::max(ratio_max, o.ratio_max);
  }
};

// The KL term of one block for a fixed estimator, so kl_estimate's branches fold away and the loop is a
// plain vectorisable one.
template <KlEstimator kEstimator>
TALARIA_SIMD_INLINE void block_kl(const float* __restrict logp, const float* __restrict ref_logp, int64_t len,
                                  float kl_clamp, float* __restrict kl, float* __restrict kl_grad) {
  for (int64_t i = 0; i < len; i++) {
    const float ref_delta = logp[i] - ref_logp[i];
    const float exp_neg = kEstimator == KlEstimator::K3 ? exp_f32(-clamp_log_ratio(ref_delta)) : 0.0f;
    const ValueAndGrad k = kl_estimate(kEstimator, ref_delta, exp_neg, kl_clamp);
    kl[i] = k.value;
    kl_grad[i] = k.grad;
  }
}

// Per block of 64 tokens, a few simple loops (which GCC vectorises; one fused loop body defeats it):
// the ratios, the KL term, then the decisions, gradients and per-token stats; fold_block sums the stats.
template <bool kHasMask, bool kHasRef, bool kHasEntropy>
TALARIA_SIMD_INLINE int ppo_segment_impl(const PpoLossArgs& a, const PpoThresholds& th, int64_t begin, int64_t end,
                                         float weight, PpoPartial* out) {
  const float kl_coef = a.kl_coef, entropy_coef = a.entropy_coef;
  float stat[kPpoStats][kBlockTokens], ratio_max[kBlockTokens];
  float action_f[kBlockTokens], ratio[kBlockTokens], kl[kBlockTokens], kl_grad[kBlockTokens];
  for (int64_t block = begin; block < end; block += kBlockTokens) {
    const int64_t len = std::min(kBlockTokens, end - block);
    // Restrict pointers at the block: stores through d_logp could otherwise alias `a` and the inputs.
    const float* __restrict logp = a.logp + block;
    const float* __restrict old_logp = a.old_logp + block;
    const float* __restrict advantages = a.advantages + block;
    float* __restrict d_logp = a.d_logp + block;
    stage_mask<kHasMask>(kHasMask ? a.action_mask + block : nullptr, len, action_f);
    for (int64_t i = 0; i < len; i++) ratio[i] = exp_f32(clamp_log_ratio(logp[i] - old_logp[i]));
    if (kHasRef) {
      const float* ref_logp = a.ref_logp + block;
      switch (a.kl_estimator) {
        case KlEstimator::K1: block_kl<KlEstimator::K1>(logp, ref_logp, len, a.kl_clamp, kl, kl_grad); break;
        case KlEstimator::K2: block_kl<KlEstimator::K2>(logp, ref_logp, len, a.kl_clamp, kl, kl_grad); break;
        default: block_kl<KlEstimator::K3>(logp, ref_logp, len, a.kl_clamp, kl, kl_grad); break;
      }
    }
    for (int64_t i = 0; i < len; i++) {
      const bool action = action_f[i] != 0.0f;
      const float adv = advantages[i], delta = logp[i] - old_logp[i], r = ratio[i];
      const bool high = (adv > 0.0f) & (delta > th.log_hi);  // bitwise: no branches in the loop
      const bool low = (adv < 0.0f) & (delta < th.log_lo);
      const bool dual = (adv < 0.0f) & (delta > th.log_dual);
      const bool held = high | low | dual;
      const float bound = dual ? th.dual : (low ? th.lo : th.hi);
      const float pg = -adv * (held ? bound : r);
      const float token_kl = kHasRef ? kl[i] : 0.0f, token_kl_grad = kHasRef ? kl_grad[i] : 0.0f;
      const float grad = (held ? 0.0f : -adv * r * log_ratio_gate(delta)) + kl_coef * token_kl_grad;
      const float entropy = kHasEntropy ? a.entropy[block + i] : 0.0f;
      const float term = pg + kl_coef * token_kl - entropy_coef * entropy;
      d_logp[i] = action ? weight * grad : 0.0f;
      stat[kLoss][i] = action ? weight * term : 0.0f;
      stat[kPg][i] = action ? weight * pg : 0.0f;
      stat[kKl][i] = action ? token_kl : 0.0f;
      stat[kEntropy][i] = action ? entropy : 0.0f;
      stat[kApproxKl][i] = action ? r - 1.0f - clamp_log_ratio(delta) : 0.0f;
      stat[kRatio][i] = action ? r : 0.0f;
      stat[kClipped][i] = (action & (high | low)) ? 1.0f : 0.0f;
      stat[kDual][i] = (action & dual) ? 1.0f : 0.0f;
      ratio_max[i] = action ? r : -INFINITY;
    }
    if (kHasEntropy) {
      float* __restrict d_entropy = a.d_entropy + block;
      for (int64_t i = 0; i < len; i++) d_entropy[i] = action_f[i] != 0.0f ? -weight * entropy_coef : 0.0f;
    }
    for (int64_t i = len; i < kBlockTokens; i++) {
      for (int s = 0; s < kPpoStats; s++) stat[s][i] = 0.0f;
      ratio_max[i] = -INFINITY;
    }
    fold_block(stat, out->sum);
    const float block_ratio_max = block_max(ratio_max);
    out->ratio_max = block_ratio_max > out->ratio_max ? block_ratio_max : out->ratio_max;
  }
  return 0;
}

#define TALARIA_PPO_SEGMENT(mask, ref, ent)                                                                  \
  TALARIA_SIMD_FUNCTION(int, ppo_segment_##mask##ref##ent, (ppo_segment_impl<mask, ref, ent>),             \
                        (const PpoLossArgs& a, const PpoThresholds& th, int64_t begin, int64_t end, float w, \
                         PpoPartial* out),                                                                 \
                        (a, th, begin, end, w, out))
TALARIA_PPO_SEGMENT(false, false, false)
TALARIA_PPO_SEGMENT(false, false, true)
TALARIA_PPO_SEGMENT(false, true, false)
TALARIA_PPO_SEGMENT(false, true, true)
TALARIA_PPO_SEGMENT(true, false, false)
TALARIA_PPO_SEGMENT(true, false, true)
TALARIA_PPO_SEGMENT(true, true, false)
TALARIA_PPO_SEGMENT(true, true, true)
#undef TALARIA_PPO_SEGMENT

using PpoSegmentFn = int (*)(const PpoLossArgs&, const PpoThresholds&, int64_t, int64_t, float, PpoPartial*);

PpoSegmentFn ppo_segment_for(bool mask, bool ref, bool entropy) {
  static const PpoSegmentFn table[8] = {
      ppo_segment_falsefalsefalse, ppo_segment_falsefalsetrue, ppo_segment_falsetruefalse,
      ppo_segment_falsetruetrue,   ppo_segment_truefalsefalse, ppo_segment_truefalsetrue,
      ppo_segment_truetruefalse,   ppo_segment_truetruetrue};
  return table[(mask ? 4 : 0) + (ref ? 2 : 0) + (entropy ? 1 : 0)];
}

// ---- Value loss -----------------------------------------------------------------------------------

enum ValueStat { kValueLoss, kValueClipped, kValueStats };

struct ValuePartial {
  double sum[kValueStats] = {};
  void merge(const ValuePartial& o) {
    for (int s = 0; s < kValueStats; s++) sum[s] += o.sum[s];
  }
};

template <bool kHasMask>
TALARIA_SIMD_INLINE int value_segment_impl(const ValueLossArgs& a, int64_t begin, int64_t end, float weight,
                                           ValuePartial* out) {
  const float clip = a.clip_range;
  const float* __restrict values = a.values;  // restrict: see ppo_segment_impl
  const float* __restrict old_values = a.old_values;
  const float* __restrict returns = a.returns;
  const uint8_t* __restrict mask = a.action_mask;
  float* __restrict d_values = a.d_values;
  float stat[kValueStats][kBlockTokens];
  for (int64_t block = begin; block < end; block += kBlockTokens) {
    const int64_t len = std::min(kBlockTokens, end - block);
    float action_f[kBlockTokens];
    stage_mask<kHasMask>(kHasMask ? mask + block : nullptr, len, action_f);
    for (int64_t i = 0; i < len; i++) {
      const int64_t t = block + i;
      const bool action = action_f[i] != 0.0f;
      const float v = values[t], old = old_values[t], ret = returns[t];
      const float d = v - old;
      const float clipped_value = d > clip ? old + clip : (d < -clip ? old - clip : v);
      const float err = v - ret, clipped_err = clipped_value - ret;
      const bool clipped = clipped_err * clipped_err > err * err;
      const float term = 0.5f * (clipped ? clipped_err * clipped_err : err * err);
      d_values[t] = (action & !clipped) ? weight * err : 0.0f;
      stat[kValueLoss][i] = action ? weight * term : 0.0f;
      stat[kValueClipped][i] = (action & clipped) ? 1.0f : 0.0f;
    }
    for (int64_t i = len; i < kBlockTokens; i++)
      for (int s = 0; s < kValueStats; s++) stat[s][i] = 0.0f;
    fold_block(stat, out->sum);
  }
  return 0;
}
TALARIA_SIMD_FUNCTION(int, value_segment_masked, value_segment_impl<true>,
                      (const ValueLossArgs& a, int64_t begin, int64_t end, float w, ValuePartial* out),
                      (a, begin, end, w, out))
TALARIA_SIMD_FUNCTION(int, value_segment_dense, value_segment_impl<false>,
                      (const ValueLossArgs& a, int64_t begin, int64_t end, float w, ValuePartial* out),
                      (a, begin, end, w, out))


}  // namespace

void ppo_loss(const PpoLossArgs& a) {
  const AggregationPlan plan =
      plan_aggregation(a.cu_seqlens, a.action_mask, a.num_seqs, a.num_tokens, a.aggregation, a.normalizer);
  const PpoThresholds th = ppo_thresholds(a);
  const PpoSegmentFn segment_fn = ppo_segment_for(a.action_mask != nullptr, a.ref_logp != nullptr, a.entropy != nullptr);
  const PpoPartial total = reduce_over_chunks<PpoPartial>(
      a.cu_seqlens, a.num_seqs, a.num_tokens, plan,
      [&](int64_t begin, int64_t end, float weight, PpoPartial& partial) { segment_fn(a, th, begin, end, weight, &partial); });
  PpoLossStats& s = *a.stats;
  const int64_t n = plan.action_tokens;
  s.loss = total.sum[kLoss];
  s.pg_loss = total.sum[kPg];
  s.clip_frac = mean_or_zero(total.sum[kClipped], n);
  s.clip_frac_lower = mean_or_zero(total.sum[kDual], n);
  s.approx_kl = mean_or_zero(total.sum[kApproxKl], n);
  s.ratio_mean = mean_or_zero(total.sum[kRatio], n);
  s.ratio_max = n > 0 ? total.ratio_max : 0.0;
  s.kl_mean = mean_or_zero(total.sum[kKl], n);
  s.entropy_mean = mean_or_zero(total.sum[kEntropy], n);
  s.action_tokens = n;
  s.active_seqs = plan.active_seqs;
}

void value_loss(const ValueLossArgs& a) {
  const AggregationPlan plan =
      plan_aggregation(a.cu_seqlens, a.action_mask, a.num_seqs, a.num_tokens, a.aggregation, a.normalizer);
  const ValuePartial total = reduce_over_chunks<ValuePartial>(
      a.cu_seqlens, a.num_seqs, a.num_tokens, plan, [&](int64_t begin, int64_t end, float weight, ValuePartial& partial) {
        if (a.action_mask) value_segment_masked(a, begin, end, weight, &partial);
        else value_segment_dense(a, begin, end, weight, &partial);
      });
  ValueLossStats& s = *a.stats;
  s.loss = total.sum[kValueLoss];
  s.clip_frac = mean_or_zero(total.sum[kValueClipped], plan.action_tokens);
  s.action_tokens = plan.action_tokens;
  s.active_seqs = plan.active_seqs;
}

}  // namespace cpu
}  // namespace talaria
