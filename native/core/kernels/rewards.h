// Reward kernels: InstructGPT reward shaping (per-token KL penalty plus the sequence score on its last
// action token) and group-relative advantages (GRPO, Dr.GRPO, RLOO). Device-agnostic entry points, plus
// the CPU (native/cpu/rewards.cpp) and CUDA (native/cuda/rewards.cu) implementations; the float64
// oracle is test/reference/rewards.ts.
//
// Layout (DESIGN.md): B sequences packed into N tokens, cu_seqlens i32[B+1], action mask u8[N].
// Device pointers all live on one device; `stats` and `normalizer` are host memory. Arguments are
// validated by the addon; kernels assume valid input.
//
// ---- Reward shaping, for sequence b -----------------------------------------------------------------
//   s_b = scores[b] - (ended_with_eos && !ended_with_eos[b] ? missing_eos_penalty : 0)
//   normalize (optional): fold this batch's s into the running moments (Chan's merge, f64), then
//       s_b = (s_b - (shift ? mean : 0)) / sqrt(var + eps), var = M2 / count (population); while var = 0
//       (one score seen, or only equal ones) s_b is only shifted: dividing by sqrt(eps) would scale it by 1e4
//   clip (optional): s_b = clamp(s_b, -score_clip, score_clip)
//   rewards[t] = -kl_coef * kl_t on action tokens (kl_t = kl_estimate(logp - ref_logp), rl_math.h),
//                plus s_b on the sequence's LAST ACTION token (never on padding or a prompt token);
//                0 on every other token. A sequence with no action token gets no reward anywhere.
//   shaped_scores[b] = the final s_b (written for every sequence).
//
// ---- Group advantages, for completion i of a group g of size G (scores are per completion) ----------
//   grpo:    (r_i - mean_g) / (std_g + eps), std unbiased (G - 1) or population (G)
//   dr-grpo: r_i - mean_g                                        (Dr.GRPO drops the std)
//   rloo:    r_i - (sum_g - r_i) / (G - 1)                       (leave-one-out baseline)
//   G = 1: every estimator gives 0 (a lone completion has no baseline). Means and sums are f64.
//   With cu_seqlens, token_advantages[t] = advantages[b] on the action tokens of sequence b, else 0.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"

namespace talaria {

// Running (count, mean, M2) of every score seen so far: the reward normalizer's saved state.
struct ShapeRewardsStats {
  double kl_mean;            // token mean of kl_t over action tokens (the penalty's own estimator)
  double kl_seq_mean;        // mean over active sequences of sum_t kl_t
  double score_mean;         // mean of the raw scores[b] over all B
  double shaped_score_mean;  // mean of shaped_scores[b] over all B
  int64_t missing_eos;       // sequences whose ended_with_eos flag is 0 (penalized when the penalty is > 0)
  int64_t action_tokens;
  int64_t active_seqs;
};

struct ShapeRewardsArgs {
  const float* scores;            // [B] reward-model score per sequence
  const float* logp;              // [N] log-probs under the sampling policy
  const float* ref_logp;          // [N] log-probs under the reference (SFT) policy
  const uint8_t* action_mask;     // [N] or nullptr (every token is an action)
  const int32_t* cu_seqlens;      // [B+1]
  const uint8_t* ended_with_eos;  // [B] or nullptr (no penalty)
  int64_t num_tokens;
  int64_t num_seqs;
  float kl_coef;                  // beta >= 0
  KlEstimator kl_estimator;
  float kl_clamp;                 // > 0, +inf for none
  float missing_eos_penalty;      // >= 0, subtracted
  float score_clip;               // > 0, +inf for none
  RunningMoments* normalizer;     // host in/out, or nullptr (no normalization)
  bool normalize_shift;           // subtract the running mean as well as dividing by the std
  float normalize_eps;            // > 0
  float* rewards;                 // [N] out
  float* shaped_scores;           // [B] out
  ShapeRewardsStats* stats;       // host out
};

enum class GroupEstimator : int32_t { Grpo = 0, DrGrpo = 1, Rloo = 2 };

struct GroupAdvantagesArgs {
  const float* scores;          // [B]
  const int32_t* group_offsets; // [G+1], or nullptr with group_size > 0 (groups of equal size)
  int64_t group_size;           // used when group_offsets is nullptr; divides B
  int64_t num_seqs;             // B
  int64_t num_groups;
  GroupEstimator estimator;
  float eps;                    // > 0 (grpo only)
  bool unbiased;                // grpo std with G - 1
  float* advantages;            // [B] out
  // Optional broadcast to tokens (all nullptr / 0 when not wanted).
  const int32_t* cu_seqlens;    // [B+1]
  const uint8_t* action_mask;   // [N] or nullptr
  int64_t num_tokens;
  float* token_advantages;      // [N] out
};

// ---- Per-element math shared by the CPU and CUDA kernels, so both backends compute one formula -------

// s_b before normalization: the score minus the missing-EOS penalty (f32). `scores` and `ended_with_eos`
// are read on the calling backend's device.
TALARIA_HOST_DEVICE float penalized_score(const ShapeRewardsArgs& a, int64_t b) {
  const bool missing = a.ended_with_eos != nullptr && a.ended_with_eos[b] == 0;
  return missing ? a.scores[b] - a.missing_eos_penalty : a.scores[b];
}

// The final s_b from the penalized one: normalized with the merged moments `m` (when `normalize`), in
// f64 and rounded once, then clipped in f32.
TALARIA_HOST_DEVICE float finish_score(float s, bool normalize, const RunningMoments& m, bool shift, float eps,
                                       float clip) {
  if (normalize) {
    const double var = m.count > 0 ? m.m2 / m.count : 0.0;
    const double std_dev = var > 0.0 ? sqrt(var + static_cast<double>(eps)) : 1.0;
    s = static_cast<float>((static_cast<double>(s) - (shift ? m.mean : 0.0)) / std_dev);
  }
  return s > clip ? clip : (s < -clip ? -clip : s);
}

// The advantage of score r in a group of `size` with f64 `sum` and `m2` = sum (r_j - mean)^2 (read by
// grpo only). A group of one has no baseline: 0 for every estimator.
TALARIA_HOST_DEVICE float group_advantage(GroupEstimator estimator, float r, double sum, double m2, int64_t size,
                                          float eps, bool unbiased) {
  if (size < 2) return 0.0f;
  const double n = static_cast<double>(size), x = r, mean = sum / n;
  if (estimator == GroupEstimator::DrGrpo) return static_cast<float>(x - mean);
  if (estimator == GroupEstimator::Rloo) return static_cast<float>(x - (sum - x) / (n - 1.0));
  const double std_dev = sqrt(m2 / (unbiased ? n - 1.0 : n));
  return static_cast<float>((x - mean) / (std_dev + static_cast<double>(eps)));
}

namespace cpu {
void shape_rewards(const ShapeRewardsArgs& args);
void group_advantages(const GroupAdvantagesArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void shape_rewards(int device, const ShapeRewardsArgs& args);
void group_advantages(int device, const GroupAdvantagesArgs& args);
}  // namespace cuda
#endif

inline void shape_rewards(Device device, const ShapeRewardsArgs& args) { TALARIA_DISPATCH(device, shape_rewards, args); }
inline void group_advantages(Device device, const GroupAdvantagesArgs& args) {
  TALARIA_DISPATCH(device, group_advantages, args);
}

}  // namespace talaria
