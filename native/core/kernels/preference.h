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
//   tied pairs are excluded. A prompt counts when it has at least one non-tied pair (K_p >= 2 and not every
//   rank equal); the others (K_p < 2, or a labeler who tied everything) carry no preference, add nothing and
//   get gradient 0, and do not dilute the rest.
//   loss = (1 / R) * sum over the R counted prompts of their contributions (0 when R = 0).
//   Each prompt is one thread's (CPU) or one warp's (CUDA) O(K_p^2) work: fine for labeler rankings (K <= ~100),
//   slow for K in the thousands.
//   accuracy = fraction of non-tied pairs with s_w > s_l (strictly), over all pairs of the batch.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"  // TALARIA_HOST_DEVICE

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
  int64_t ranked_prompts;  // R: prompts with at least one non-tied pair
};

struct RankingLossArgs {
  const float* scores;     // [M] one reward-model score per completion, prompts concatenated
  const int32_t* offsets;  // [P+1], offsets[0] = 0, non-decreasing, offsets[P] = M
  const int32_t* ranks;    // [M] or nullptr (rank = position within the prompt)
  int64_t num_completions; // M
  int64_t num_prompts;     // P
  float* d_scores;         // [M] out
  RankingLossStats* stats; // host out
};

// Whether prompt p (its K ranks, or nullptr for positional ranks) counts in the loss: it has a non-tied pair.
TALARIA_HOST_DEVICE bool ranking_prompt_counts(const int32_t* ranks, int64_t k) {
  if (k < 2) return false;
  if (ranks == nullptr) return true;
  for (int64_t j = 1; j < k; j++)
    if (ranks[j] != ranks[0]) return true;
  return false;
}

// ---- Per-pair math, shared by both backends (f64, inline for host and device) ---------------------------
// The CPU and CUDA kernels differ only in how they partition and sum; every per-pair value comes from here.

// softplus(x) = log(1 + e^x) = -log sigmoid(-x), and sigmoid(x), from one exp of -|x|: finite for any finite x
// (no e^x overflow at x = 200) and accurate in both tails.
struct SoftplusSigmoid {
  double softplus;
  double sigmoid;
};
TALARIA_HOST_DEVICE SoftplusSigmoid softplus_sigmoid(double x) {
  const double e = exp(-fabs(x));
  return SoftplusSigmoid{(x > 0.0 ? x : 0.0) + log1p(e), x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e)};
}

// sigmoid(x) alone, as softplus_sigmoid computes it, without the log1p (libm calls are not dropped when
// their result is unused, since they may set errno).
TALARIA_HOST_DEVICE double sigmoid_stable(double x) {
  const double e = exp(-fabs(x));
  return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

struct DpoPair {
  double chosen, rejected, margin;  // chosen_i, rejected_i, z_i
  double loss;                      // this pair's term of the mean
  double grad;                      // g_i = d term / d z_i
};
TALARIA_HOST_DEVICE DpoPair dpo_pair(float policy_chosen, float policy_rejected, float ref_chosen, float ref_rejected,
                                     double beta, double label_smoothing) {
  DpoPair p;
  p.chosen = beta * (static_cast<double>(policy_chosen) - static_cast<double>(ref_chosen));
  p.rejected = beta * (static_cast<double>(policy_rejected) - static_cast<double>(ref_rejected));
  p.margin = p.chosen - p.rejected;
  const SoftplusSigmoid flip = softplus_sigmoid(-p.margin);  // -log sigmoid(z), sigmoid(-z)
  p.loss = (1.0 - label_smoothing) * flip.softplus;
  p.grad = -(1.0 - label_smoothing) * flip.sigmoid;
  if (label_smoothing > 0.0) {  // skipped at 0, so z = +inf gives loss 0 rather than 0 * inf
    const SoftplusSigmoid keep = softplus_sigmoid(p.margin);  // -log sigmoid(-z), sigmoid(z)
    p.loss += label_smoothing * keep.softplus;
    p.grad += label_smoothing * keep.sigmoid;
  }
  return p;
}

// Completion j of a prompt against its partners i = 0, 1, ..., K-1 in that order (so the f64 sums have one
// order on every backend). Each non-tied pair is counted once, on its winner's side: loss is the sum of
// -log sigmoid(s_j - s_i) over the partners j beats, and wins / pairs count them; ties are counted on the
// side of the lower index. grad = sum over partners of d(-log sigmoid(s_w - s_l)) / d s_j, unweighted.
struct RankingCompletion {
  double loss, grad;
  int64_t wins, pairs, ties;
};
TALARIA_HOST_DEVICE RankingCompletion ranking_completion(const float* scores, const int32_t* ranks, int64_t k,
                                                         int64_t j) {
  RankingCompletion c{0.0, 0.0, 0, 0, 0};
  const double s_j = scores[j];
  const int64_t rank_j = ranks != nullptr ? ranks[j] : j;
  for (int64_t i = 0; i < k; i++) {
    if (i == j) continue;
    const int64_t rank_i = ranks != nullptr ? ranks[i] : i;
    const double s_i = scores[i];
    if (rank_i == rank_j) {
      c.ties += i > j ? 1 : 0;
    } else if (rank_j < rank_i) {  // j wins: the pair's term is softplus(s_i - s_j)
      const SoftplusSigmoid t = softplus_sigmoid(s_i - s_j);
      c.loss += t.softplus;
      c.grad -= t.sigmoid;
      c.pairs++;
      c.wins += s_j > s_i ? 1 : 0;
    } else {  // j loses to i: the pair's term is softplus(s_j - s_i)
      c.grad += sigmoid_stable(s_j - s_i);
    }
  }
  return c;
}

// C(K, 2) in f64 (exact: K < 2^31).
TALARIA_HOST_DEVICE double ranking_pairs_of(int64_t k) { return 0.5 * static_cast<double>(k) * static_cast<double>(k - 1); }

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
