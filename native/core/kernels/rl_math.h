// Per-token RL math shared by the CPU and CUDA kernels of the rl_loss and rewards families, so both
// backends make the same decisions (clip boundaries, clamps, aggregation weights) from one definition.
// Everything here is inline and compiles for host and device; `exp` is the caller's, so each backend
// keeps its own vectorised or intrinsic exponential.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define TALARIA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TALARIA_HOST_DEVICE inline
#endif

namespace talaria {

// Log-ratios are clamped to +-kMaxLogRatio before exp (DESIGN.md). The clamp's gradient is 0 outside
// and 1 on the boundary, as torch.clamp's.
constexpr float kMaxLogRatio = 20.0f;

// Schulman's estimators of KL(pi || pi_ref) from delta = logp - ref_logp (a sample of pi):
// k1 = delta, k2 = delta^2 / 2, k3 = e^-delta + delta - 1. Values must match the JS names k1|k2|k3.
enum class KlEstimator : int32_t { K1 = 1, K2 = 2, K3 = 3 };

struct ValueAndGrad {
  float value;
  float grad;  // d value / d logp
};

// (count, mean, M2 = sum of squared deviations) of a set of values, in f64: mergeable exactly.
struct RunningMoments {
  double count;
  double mean;
  double m2;
};

// Chan et al.'s exact merge of two (count, mean, M2) summaries, in f64.
TALARIA_HOST_DEVICE RunningMoments merge_moments(const RunningMoments& a, const RunningMoments& b) {
  if (b.count == 0) return a;
  if (a.count == 0) return b;
  RunningMoments out;
  out.count = a.count + b.count;
  const double delta = b.mean - a.mean;
  out.mean = a.mean + delta * (b.count / out.count);
  out.m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / out.count);
  return out;
}

// A mean that is 0 for an empty set (an all-masked batch reports 0, not NaN).
TALARIA_HOST_DEVICE double mean_or_zero(double sum, int64_t count) {
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

TALARIA_HOST_DEVICE float clamp_log_ratio(float delta) {
  return delta < -kMaxLogRatio ? -kMaxLogRatio : (delta > kMaxLogRatio ? kMaxLogRatio : delta);
}
// 1 when the log-ratio clamp passes the gradient (|delta| <= 20, NaN included so it propagates).
TALARIA_HOST_DEVICE float log_ratio_gate(float delta) {
  return (delta < -kMaxLogRatio || delta > kMaxLogRatio) ? 0.0f : 1.0f;
}

// The KL estimate for raw delta = logp - ref_logp and its gradient with respect to logp. `exp_neg`
// is e^-clamp_log_ratio(delta), which only k3 reads. The estimate is then clamped to
// [-kl_clamp, kl_clamp] (verl's low_var_kl clamp; pass +inf for none), with gradient 0 where it clamps.
TALARIA_HOST_DEVICE ValueAndGrad kl_estimate(KlEstimator estimator, float delta, float exp_neg, float kl_clamp) {
  const float d = clamp_log_ratio(delta), gate = log_ratio_gate(delta);
  ValueAndGrad out;
  if (estimator == KlEstimator::K1) {
    out.value = d, out.grad = gate;
  } else if (estimator == KlEstimator::K2) {
    out.value = 0.5f * d * d, out.grad = gate * d;
  } else {
    out.value = exp_neg + d - 1.0f, out.grad = gate * (1.0f - exp_neg);
  }
  if (out.value > kl_clamp) out.value = kl_clamp, out.grad = 0.0f;
  if (out.value < -kl_clamp) out.value = -kl_clamp, out.grad = 0.0f;
  return out;
}

// How a per-token loss is reduced to a scalar (the JS names in brackets). A sequence is *active* when it
// has at least one action token; inactive sequences and non-action tokens are never counted.
//   TokenMean           ['token-mean']               sum_t l_t / (action tokens in the batch)
//   SeqMeanTokenMean    ['seq-mean-token-mean']      mean over active sequences of (sum_t l_t / its action tokens)
//   SeqMeanTokenSum     ['seq-mean-token-sum']       mean over active sequences of sum_t l_t
//   SeqMeanTokenSumNorm ['seq-mean-token-sum-norm']  mean over active sequences of sum_t l_t / normalizer
//                                                    (Dr.GRPO: a constant such as the max response length)
// With no action token at all the loss is 0 and every gradient is 0.
enum class LossAggregation : int32_t { TokenMean = 0, SeqMeanTokenMean = 1, SeqMeanTokenSum = 2, SeqMeanTokenSumNorm = 3 };

// The weight d loss / d l_t of every action token of a sequence with `seq_action_tokens` action tokens,
// in a batch with `action_tokens` action tokens over `active_seqs` active sequences. Computed in f64 and
// rounded once, so every backend uses the same f32 weight.
TALARIA_HOST_DEVICE float aggregation_weight(LossAggregation mode, int64_t seq_action_tokens, int64_t action_tokens,
                                             int64_t active_seqs, double normalizer) {
  if (seq_action_tokens == 0 || action_tokens == 0 || active_seqs == 0) return 0.0f;
  switch (mode) {
    case LossAggregation::TokenMean: return static_cast<float>(1.0 / static_cast<double>(action_tokens));
    case LossAggregation::SeqMeanTokenMean:
      return static_cast<float>(1.0 / (static_cast<double>(active_seqs) * static_cast<double>(seq_action_tokens)));
    case LossAggregation::SeqMeanTokenSum: return static_cast<float>(1.0 / static_cast<double>(active_seqs));
    default: return static_cast<float>(1.0 / (static_cast<double>(active_seqs) * normalizer));
  }
}

}  // namespace talaria
