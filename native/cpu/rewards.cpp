// CPU reward shaping (InstructGPT) and group advantages (GRPO, Dr.GRPO, RLOO).
// Semantics: native/core/kernels/rewards.h; the per-element formulas (penalty, normalization, clip, the
// group estimators) are the header's inline functions and kl_estimate (rl_math.h), shared with
// native/cuda/rewards.cu.
//
// Reward shaping, three steps:
//   1. Scores, serially over B (B is the batch of sequences, small next to N): the penalized score, this
//      batch's moments in f64 (two passes: mean, then squared deviations), merged into the running
//      moments with Chan's formula, then every shaped score and the score stats.
//   2. Tokens, in parallel over fixed groups of whole sequences: each sequence finds its last action token
//      (a backward scan of the mask), writes -kl_coef * kl_t on its action tokens and 0 elsewhere, adds
//      its shaped score on the last action token, and sums its kl_t: f32 over 8 fixed lanes per 64-token
//      block, then f64. One sequence's sum never depends on how the sequences were split into tasks.
//   3. The per-sequence sums merge in sequence order, so results are bitwise the same for any thread count.
// Group advantages: the groups serially (per group an f64 sum, and for grpo the f64 sum of squared
// deviations), then the broadcast to tokens in parallel over sequences.
//
// Napkin math, B=512, T=256 (N = 131,072): read logp, ref_logp (8 B) and the mask (1 B, plus the backward
// scan of each sequence's padding), write rewards (4 B): ~13 B/token, 1.7 MB, ~38 us at 45 GB/s. k3 adds
// one polynomial exp per token (exp_f32, which vectorises, as in the PPO loss), so with k3 the pass is
// closer to compute-bound on 2 cores. The group broadcast reads the mask and writes 4 B per token.
#include <algorithm>
#include <vector>

#include "../core/kernels/rewards.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {

constexpr int64_t kBlockTokens = 64;
constexpr int kLanes = 8;
constexpr int64_t kTokensPerTask = 1 << 13;

// Sequences per parallel task, so each task has a few thousand tokens of work.
int64_t sequence_grain(int64_t num_tokens, int64_t num_seqs) {
  const int64_t avg_len = std::max<int64_t>(1, num_tokens / std::max<int64_t>(1, num_seqs));
  return std::max<int64_t>(1, kTokensPerTask / avg_len);
}

struct SequenceKl {
  double kl;              // sum of kl_t over the action tokens
  int64_t action_tokens;
};

// One sequence's rewards. A template per estimator, so kl_estimate's branches fold away and the block
// loops vectorise.
template <KlEstimator kEstimator, bool kHasMask>
TALARIA_SIMD_INLINE SequenceKl shape_sequence_impl(const ShapeRewardsArgs& a, int64_t begin, int64_t end,
                                                   float score) {
  int64_t last = end - 1;  // the last action token, or begin - 1 when there is none
  if (kHasMask)
    while (last >= begin && a.action_mask[last] == 0) last--;
  const float kl_coef = a.kl_coef, kl_clamp = a.kl_clamp;
  SequenceKl out{0.0, 0};
  float action_f[kBlockTokens], kl[kBlockTokens];
  for (int64_t block = begin; block < end; block += kBlockTokens) {
    const int64_t len = std::min(kBlockTokens, end - block);
    const float* __restrict logp = a.logp + block;  // restrict: rewards could alias `a` and the inputs
    const float* __restrict ref_logp = a.ref_logp + block;
    float* __restrict rewards = a.rewards + block;
    // The mask as floats first: a 1-byte load in the main loop makes GCC pick 32-lane vectors (see rl_loss.cpp).
    for (int64_t i = 0; i < len; i++) action_f[i] = (!kHasMask || a.action_mask[block + i] != 0) ? 1.0f : 0.0f;
    for (int64_t i = 0; i < len; i++) {
      const bool action = action_f[i] != 0.0f;
      const float delta = logp[i] - ref_logp[i];
      const float exp_neg = kEstimator == KlEstimator::K3 ? exp_f32(-clamp_log_ratio(delta)) : 0.0f;
      const float k = kl_estimate(kEstimator, delta, exp_neg, kl_clamp).value;
      kl[i] = action ? k : 0.0f;
      // 0 - x rather than -x: a zero penalty is +0, as on CUDA, never -0.
      rewards[i] = action ? 0.0f - kl_coef * k : 0.0f;
    }
    for (int64_t i = len; i < kBlockTokens; i++) kl[i] = 0.0f, action_f[i] = 0.0f;
    float lane[kLanes] = {}, count[kLanes] = {};
    for (int64_t i = 0; i < kBlockTokens; i += kLanes)
      for (int j = 0; j < kLanes; j++) lane[j] += kl[i + j], count[j] += action_f[i + j];
    for (int j = 0; j < kLanes; j++) {
      out.kl += static_cast<double>(lane[j]);
      out.action_tokens += static_cast<int64_t>(count[j]);
    }
  }
  if (last >= begin) a.rewards[last] += score;
  return out;
}

#define TALARIA_SHAPE_SEQUENCE(estimator, mask)                                                               \
  TALARIA_SIMD_FUNCTION(SequenceKl, shape_sequence_##estimator##_##mask,                                     \
                        (shape_sequence_impl<KlEstimator::estimator, mask>),                                 \
                        (const ShapeRewardsArgs& a, int64_t begin, int64_t end, float score), (a, begin, end, score))
TALARIA_SHAPE_SEQUENCE(K1, false)
TALARIA_SHAPE_SEQUENCE(K1, true)
TALARIA_SHAPE_SEQUENCE(K2, false)
TALARIA_SHAPE_SEQUENCE(K2, true)
TALARIA_SHAPE_SEQUENCE(K3, false)
TALARIA_SHAPE_SEQUENCE(K3, true)
#undef TALARIA_SHAPE_SEQUENCE

using ShapeSequenceFn = SequenceKl (*)(const ShapeRewardsArgs&, int64_t, int64_t, float);

ShapeSequenceFn shape_sequence_for(KlEstimator estimator, bool mask) {
  switch (estimator) {
    case KlEstimator::K1: return mask ? shape_sequence_K1_true : shape_sequence_K1_false;
    case KlEstimator::K2: return mask ? shape_sequence_K2_true : shape_sequence_K2_false;
    default: return mask ? shape_sequence_K3_true : shape_sequence_K3_false;
  }
}


}  // namespace

void shape_rewards(const ShapeRewardsArgs& a) {
  const int64_t num_seqs = a.num_seqs;
  // 1. Scores.
  std::vector<float> penalized(static_cast<size_t>(num_seqs));
  double raw_sum = 0.0, penalized_sum = 0.0;
  int64_t missing_eos = 0;
  for (int64_t b = 0; b < num_seqs; b++) {
    penalized[b] = penalized_score(a, b);
    raw_sum += a.scores[b];
    penalized_sum += penalized[b];
    missing_eos += a.ended_with_eos != nullptr && a.ended_with_eos[b] == 0;
  }
  const bool normalize = a.normalizer != nullptr;
  RunningMoments merged{0.0, 0.0, 0.0};
  if (normalize) {
    RunningMoments batch{static_cast<double>(num_seqs), mean_or_zero(penalized_sum, num_seqs), 0.0};
    for (int64_t b = 0; b < num_seqs; b++) {
      const double d = penalized[b] - batch.mean;
      batch.m2 += d * d;
    }
    merged = merge_moments(*a.normalizer, batch);
  }
  double shaped_sum = 0.0;
  for (int64_t b = 0; b < num_seqs; b++) {
    a.shaped_scores[b] = finish_score(penalized[b], normalize, merged, a.normalize_shift, a.normalize_eps, a.score_clip);
    shaped_sum += a.shaped_scores[b];
  }

  // 2. Tokens.
  std::vector<SequenceKl> per_seq(static_cast<size_t>(num_seqs));
  const ShapeSequenceFn shape_sequence = shape_sequence_for(a.kl_estimator, a.action_mask != nullptr);
  parallel_for(0, num_seqs, sequence_grain(a.num_tokens, num_seqs), [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++)
      per_seq[b] = shape_sequence(a, a.cu_seqlens[b], a.cu_seqlens[b + 1], a.shaped_scores[b]);
  });

  // 3. Stats, in sequence order.
  double kl_sum = 0.0;
  int64_t action_tokens = 0, active_seqs = 0;
  for (const SequenceKl& s : per_seq) {
    kl_sum += s.kl;
    action_tokens += s.action_tokens;
    active_seqs += s.action_tokens > 0;
  }
  ShapeRewardsStats& st = *a.stats;
  st.kl_mean = mean_or_zero(kl_sum, action_tokens);
  st.kl_seq_mean = mean_or_zero(kl_sum, active_seqs);
  st.score_mean = mean_or_zero(raw_sum, num_seqs);
  st.shaped_score_mean = mean_or_zero(shaped_sum, num_seqs);
  st.missing_eos = missing_eos;
  st.action_tokens = action_tokens;
  st.active_seqs = active_seqs;
  if (normalize) *a.normalizer = merged;
}

void group_advantages(const GroupAdvantagesArgs& a) {
  for (int64_t g = 0; g < a.num_groups; g++) {
    const int64_t lo = a.group_offsets ? a.group_offsets[g] : g * a.group_size;
    const int64_t hi = a.group_offsets ? a.group_offsets[g + 1] : lo + a.group_size;
    double sum = 0.0, m2 = 0.0;
    for (int64_t i = lo; i < hi; i++) sum += a.scores[i];
    if (a.estimator == GroupEstimator::Grpo && hi > lo) {
      const double mean = sum / static_cast<double>(hi - lo);
      for (int64_t i = lo; i < hi; i++) m2 += (a.scores[i] - mean) * (a.scores[i] - mean);
    }
    for (int64_t i = lo; i < hi; i++)
      a.advantages[i] = group_advantage(a.estimator, a.scores[i], sum, m2, hi - lo, a.eps, a.unbiased);
  }
  if (a.token_advantages == nullptr) return;
  parallel_for(0, a.num_seqs, sequence_grain(a.num_tokens, a.num_seqs), [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) {
      const float adv = a.advantages[b];
      for (int64_t t = a.cu_seqlens[b]; t < a.cu_seqlens[b + 1]; t++)
        a.token_advantages[t] = (a.action_mask == nullptr || a.action_mask[t] != 0) ? adv : 0.0f;
    }
  });
}

}  // namespace cpu
}  // namespace talaria
