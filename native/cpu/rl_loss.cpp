// CPU PPO policy loss and value loss: forward, backward and stats in one pass over the tokens.
// Semantics: native/core/kernels/rl_loss.h; every decision comes from the shared inline math there and in
// rl_math.h, so this file and native/cuda/rl_loss.cu clip, clamp and weight identically.
//
// Passes:
//   1. Aggregation plan: action tokens per sequence (reads the 1-byte mask only, or just cu_seqlens
//      without a mask), then one weight per sequence. token-mean and the two seq-mean-token-sum modes give
//      every active sequence the same weight, so the main pass can ignore sequence boundaries for them.
//   2. The fused pass over fixed 4096-token chunks, in parallel when N is large. A chunk walks the sequence
//      segments it overlaps (one segment unless the weights differ per sequence); rl_loss_lanes.h computes
//      each token's gradient and stats on explicit SIMD lanes, compiled once per target. Chunk partials
//      merge in chunk order, so the result is bitwise the same for any thread count (the lane width, and
//      so the last bits, differ between SIMD levels).
//
// Napkin math, PPO at N = 65,536 (B=64, T=1024), no ref/entropy: read logp, old_logp, advantages (12 B)
// and the mask (1 B, twice) and write d_logp (4 B): 18 B/token, 1.2 MB. That stays in L2/L3, where one
// core streams it in ~7 us, so compute is the bound: ~70 AVX-512 instructions per 16 tokens (the exp is
// 13), 290K in all, ~30 us on one core. Groups of 16 without an action token only store zeros, so with
// the bench's 25% prompt tokens the pass takes ~24 us; counting the mask ~0.5 us. The binding adds ~6 us
// per call. With ref_logp (+4 B) the KL term, and for k3 a second exp, adds ~20 us.
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

constexpr int64_t kChunkTokens = 4096;
// Waking a pool thread costs the caller ~7 us (a futex syscall that interrupts another virtual CPU), and
// a thread preempted mid-chunk on a busy machine stalls the call for a scheduler slice. So a thread only
// joins for a large share: 64K tokens of the fused pass (~30 us of PPO on one core), 1M of mask counting.
constexpr int64_t kMinChunksPerThread = 16;
constexpr int64_t kMinCountTokensPerThread = 1 << 20;

// ---- The per-token kernels, one set per SIMD target (rl_loss_lanes.h) ----------------------------------

enum PpoStat { kLoss, kPg, kKl, kEntropy, kApproxKl, kRatio, kPpoStats };

struct PpoPartial {
  double sum[kPpoStats] = {};
  int64_t clipped = 0, dual = 0;
  float ratio_max = -INFINITY;
  void merge(const PpoPartial& o) {
    for (int s = 0; s < kPpoStats; s++) sum[s] += o.sum[s];
    clipped += o.clipped, dual += o.dual;
    ratio_max = std::max(ratio_max, o.ratio_max);
  }
};

struct ValuePartial {
  double loss = 0.0;
  int64_t clipped = 0;
  void merge(const ValuePartial& o) { loss += o.loss, clipped += o.clipped; }
};

// Each runs one segment [begin, end) with one weight and adds its stats to the partial.
using PpoSegmentFn = void (*)(const PpoLossArgs&, const PpoThresholds&, int64_t begin, int64_t end, float weight,
                              PpoPartial*);
using ValueSegmentFn = void (*)(const ValueLossArgs&, int64_t begin, int64_t end, float weight, ValuePartial*);
using CountFn = int64_t (*)(const uint8_t* mask, int64_t n);  // nonzero bytes
struct LaneKernels {
  CountFn count_actions;
  PpoSegmentFn ppo[8];      // by 4 * has_mask + 2 * has_ref + has_entropy
  ValueSegmentFn value[2];  // by has_mask
};

#if TALARIA_HAVE_X86_VARIANTS
TALARIA_BEGIN_TARGET(TALARIA_ISA_AVX512)
namespace avx512 {
constexpr int kLanes = 16;
#include "rl_loss_lanes.h"
}  // namespace avx512
TALARIA_END_TARGET

TALARIA_BEGIN_TARGET(TALARIA_ISA_AVX2)
namespace avx2 {
constexpr int kLanes = 8;
#include "rl_loss_lanes.h"
}  // namespace avx2
TALARIA_END_TARGET
#endif

namespace baseline {
constexpr int kLanes = 4;
#include "rl_loss_lanes.h"
}  // namespace baseline

const LaneKernels& lane_kernels() {
#if TALARIA_HAVE_X86_VARIANTS
  switch (simd_level()) {
    case SimdLevel::AVX512: return avx512::kLaneKernels;
    case SimdLevel::AVX2: return avx2::kLaneKernels;
    default: break;
  }
#endif
  return baseline::kLaneKernels;
}

// ---- Pass 1: how the loss is aggregated -------------------------------------------------------------

struct AggregationPlan {
  std::vector<float> seq_weight;  // per sequence; used when !uniform
  float uniform_weight = 0.0f;    // the weight of every action token when uniform
  bool uniform = true;
  int64_t action_tokens = 0;
  int64_t active_seqs = 0;
};

AggregationPlan plan_aggregation(const int32_t* cu_seqlens, const uint8_t* mask, int64_t num_seqs, int64_t num_tokens,
                                 LossAggregation mode, double normalizer) {
  std::vector<int64_t> seq_actions(num_seqs);
  const CountFn count_actions = lane_kernels().count_actions;
  const int64_t grain = std::max<int64_t>(1, kMinCountTokensPerThread * num_seqs / std::max<int64_t>(1, num_tokens));
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
  parallel_for(0, num_chunks, kMinChunksPerThread, [&](int64_t lo, int64_t hi) {
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


}  // namespace

void ppo_loss(const PpoLossArgs& a) {
  const AggregationPlan plan =
      plan_aggregation(a.cu_seqlens, a.action_mask, a.num_seqs, a.num_tokens, a.aggregation, a.normalizer);
  const PpoThresholds th = ppo_thresholds(a);
  const PpoSegmentFn segment_fn =
      lane_kernels().ppo[(a.action_mask ? 4 : 0) + (a.ref_logp ? 2 : 0) + (a.entropy ? 1 : 0)];
  const PpoPartial total = reduce_over_chunks<PpoPartial>(
      a.cu_seqlens, a.num_seqs, a.num_tokens, plan,
      [&](int64_t begin, int64_t end, float weight, PpoPartial& partial) { segment_fn(a, th, begin, end, weight, &partial); });
  PpoLossStats& s = *a.stats;
  const int64_t n = plan.action_tokens;
  s.loss = total.sum[kLoss];
  s.pg_loss = total.sum[kPg];
  s.clip_frac = mean_or_zero(static_cast<double>(total.clipped), n);
  s.clip_frac_lower = mean_or_zero(static_cast<double>(total.dual), n);
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
  const ValueSegmentFn segment_fn = lane_kernels().value[a.action_mask ? 1 : 0];
  const ValuePartial total = reduce_over_chunks<ValuePartial>(
      a.cu_seqlens, a.num_seqs, a.num_tokens, plan,
      [&](int64_t begin, int64_t end, float weight, ValuePartial& partial) { segment_fn(a, begin, end, weight, &partial); });
  ValueLossStats& s = *a.stats;
  s.loss = total.loss;
  s.clip_frac = mean_or_zero(static_cast<double>(total.clipped), plan.action_tokens);
  s.action_tokens = plan.action_tokens;
  s.active_seqs = plan.active_seqs;
}

}  // namespace cpu
}  // namespace talaria
