// Preference losses: DPO, and the InstructGPT K-wise reward-model ranking loss, forward and backward.
// Device-agnostic entry points, plus the CPU (native/cpu/preference.cpp) and CUDA
// (native/cuda/preference.cu) implementations; the float64 oracle is test/reference/preference.ts.
// Device pointers live on one device; `stats` is host memory. Arguments are validated by the addon.
// Per-pair math is f64 on both backends (pairs are few; precision is free here), and every sum is
// combined in a fixed order, so results are bitwise reproducible run to run.
//
// ---- DPO, for pair i of P -------------------------------------------------------------------------
//   chosen_i = beta * (policy_chosen_i - ref_chosen_i),  rejected_i = beta * (policy_rejected_i - ref_rejected_i)
//   z_i = chosen_i - rejected_i
//   loss = mean_i [ -(1 - ls) * log sigmoid(z_i) - ls * log sigmoid(-z_i) ]     (ls = label smoothing)
//   d loss / d policy_chosen_i = beta * g_i / P, d / d policy_rejected_i = -beta * g_i / P,
//   g_i = -(1 - ls) * sigmoid(-z_i) + ls * sigmoid(z_i).  log sigmoid is evaluated stably (softplus).
//   P = 0: loss 0, stats 0.
//
// ---- K-wise ranking loss, prompt p with K_p = offsets[p+1] - offsets[p] completions -----------------
//   ranks[j] in [0, K_p) orders the completions of the prompt: lower is better, equal ranks are ties.
//   Without ranks, completion j of the prompt has rank j (so [chosen, rejected] pairs are K = 2).
//   Every pair (w, l) of the prompt with rank_w < rank_l contributes -log sigmoid(s_w - s_l) / C(K_p, 2);
//   tied pairs are excluded. Prompts with K_p < 2 have no pairs and are not counted.
//   loss = (1 / prompts with K_p >= 2) * sum over those prompts of their contributions.
//   accuracy = fraction of non-tied pairs with s_w > s_l (strictly), over all pairs of the batch.
#pragma once
#include <cstdint>

#include "dispatch.h"

namespace talaria {

struct DpoLossStats {
  double loss;
  double reward_accuracy;  // fraction of pairs with chosen_i > rejected_i
  double reward_margin;    // mean of z_i
  double chosen_reward;    // mean of chosen_i
  double rejected_reward;  // mean of rejected_i
};

struct DpoLossArgs {
  const float* policy_chosen;    // [P] summed log-probs of the chosen completion under the policy
  const float* policy_rejected;  // [P]
  const float* ref_chosen;       // [P] the same under the frozen reference
  const float* ref_rejected;     // [P]
  int64_t num_pairs;             // P
  float beta;                    // > 0
  float label_smoothing;         // in [0, 0.5)
  float* d_policy_chosen;        // [P] out
  float* d_policy_rejected;      // [P] out
  DpoLossStats* stats;           // host out
};

struct RankingLossStats {
  double loss;
  double accuracy;         // 0 when there are no pairs
  int64_t pairs;           // non-tied pairs
  int64_t tied_pairs;
  int64_t ranked_prompts;  // prompts with K_p >= 2
};

struct RankingLossArgs {
  const float* scores;     // [M] one reward-model score per completion, prompts concatenated
  const int32_t* offsets;  // [P+1], offsets[0] = 0, non-decreasing, offsets[P] = M
  const int32_t* ranks;    // [M] or nullptr (rank = position within the prompt)
  int64_t num_completions; // M
  int64_t num_prompts;     // P
  int64_t max_group;       // max K_p (the addon reads it while validating offsets)
  float* d_scores;         // [M] out
  RankingLossStats* stats; // host out
};

namespace cpu {
void dpo_loss(const DpoLossArgs& args);
void ranking_loss(const RankingLossArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void dpo_loss(int device, const DpoLossArgs& args);
void ranking_loss(int device, const RankingLossArgs& args);
}  // namespace cuda
#endif

inline void dpo_loss(Device device, const DpoLossArgs& args) { TALARIA_DISPATCH(device, dpo_loss, args); }
inline void ranking_loss(Device device, const RankingLossArgs& args) { TALARIA_DISPATCH(device, ranking_loss, args); }

}  // namespace talaria
