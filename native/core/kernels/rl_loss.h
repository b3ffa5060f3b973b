// RL objective kernels: the PPO clipped policy loss (with KL-in-loss and an entropy bonus) and the
// clipped value loss, forward and backward in one pass. Device-agnostic entry points, plus the CPU
// (native/cpu/rl_loss.cpp) and CUDA (native/cuda/rl_loss.cu) implementations they dispatch to; the
// float64 oracle is test/reference/rl_loss.ts.
//
// Layout (DESIGN.md): B sequences packed into N tokens, cu_seqlens i32[B+1]. The action mask marks the
// response tokens; every other token has loss 0 and gradient exactly 0, and is never counted. All
// pointers of one call live on one device, except `stats`, which is always host memory and is filled
// before the call returns. Arguments are validated by the addon; kernels assume valid input.
//
// ---- PPO policy loss, per action token t ----------------------------------------------------------
//   delta  = logp - old_logp (f32),  r = exp(clamp(delta, +-20))
//   A > 0: clipped when delta > log_hi          -> pg = -A * hi,  d pg/d logp = 0
//   A < 0: dual-clipped when delta > log_dual   -> pg = -c * A,   d pg/d logp = 0   (only when c > 1 is set)
//          clipped when delta < log_lo          -> pg = -A * lo,  d pg/d logp = 0
//   otherwise (A = 0 included)                   -> pg = -A * r,   d pg/d logp = -A * r * gate(delta)
// with lo = 1 - clip_low, hi = 1 + clip_high and the log thresholds computed in f64 and rounded to f32
// once (PpoThresholds). This is max(-A r, -A clip(r, lo, hi)), then min(., -c A) for A < 0, with the
// boundary decided exactly in log space: a ratio exactly on a bound is *not* clipped, and passes the
// unclipped gradient, as PyTorch's max/clamp do on ties.
//   l_t = pg_t + kl_coef * kl_t - entropy_coef * H_t,  kl_t = kl_estimate(logp - ref_logp) (rl_math.h)
//   loss = sum_t w_t * l_t,  d_logp_t = w_t * (d pg/d logp + kl_coef * d kl/d logp),
//   d_entropy_t = -w_t * entropy_coef,  w_t = aggregation_weight(...) (rl_math.h)
//
// ---- Value loss, per action token t ---------------------------------------------------------------
//   d = values - old_values (f32); clipped value vc = |d| > clip_range ? old + sign(d) * clip_range : v
//   l_t = 0.5 * max((v - R)^2, (vc - R)^2); when the second term is strictly larger the token is clipped
//   and its gradient is 0, else d l/d v = v - R.  clip_range = +inf disables clipping.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"

namespace talaria {

struct PpoLossStats {
  double loss;             // the aggregated objective (the value whose gradient is d_logp)
  double pg_loss;          // its clipped-surrogate part, aggregated the same way
  // Token means over action tokens (0 when there are none):
  double clip_frac;        // clipped by the ordinary clip (either side)
  double clip_frac_lower;  // dual-clipped (A < 0, r > c): verl's pg_clipfrac_lower
  double approx_kl;        // k3 of pi_old vs pi: r - 1 - log r
  double ratio_mean;
  double ratio_max;        // 0 when there are no action tokens
  double kl_mean;          // the penalty's own estimator (after its clamp); 0 without ref_logp
  double entropy_mean;     // 0 without entropy
  int64_t action_tokens;
  int64_t active_seqs;
};

struct PpoLossArgs {
  const float* logp;          // [N] under the current policy
  const float* old_logp;      // [N] under the sampling policy
  const float* advantages;    // [N]
  const uint8_t* action_mask; // [N] or nullptr (every token is an action)
  const int32_t* cu_seqlens;  // [B+1]
  const float* ref_logp;      // [N] or nullptr (no KL term; kl_coef must then be 0)
  const float* entropy;       // [N] or nullptr (no entropy term; entropy_coef must then be 0)
  int64_t num_tokens;         // N
  int64_t num_seqs;           // B
  float clip_low;             // in (0, 1)
  float clip_high;            // > 0
  float dual_clip;            // c > 1, or 0 for none
  float kl_coef;              // >= 0
  KlEstimator kl_estimator;
  float kl_clamp;             // > 0, +inf for none
  float entropy_coef;         // >= 0
  LossAggregation aggregation;
  double normalizer;          // > 0, read by SeqMeanTokenSumNorm only
  float* d_logp;              // [N] out
  float* d_entropy;           // [N] out, or nullptr (only when entropy is nullptr)
  PpoLossStats* stats;        // host out
};

// The clip decisions of the PPO loss, made identically on every backend.
struct PpoThresholds {
  float lo, hi, dual;              // 1 - clip_low, 1 + clip_high, c
  float log_lo, log_hi, log_dual;  // their logs; log_dual = +inf without dual clip
};
inline PpoThresholds ppo_thresholds(const PpoLossArgs& a) {
  PpoThresholds t;
  t.lo = static_cast<float>(1.0 - static_cast<double>(a.clip_low));
  t.hi = static_cast<float>(1.0 + static_cast<double>(a.clip_high));
  t.dual = a.dual_clip;
  t.log_lo = static_cast<float>(std::log1p(-static_cast<double>(a.clip_low)));
  t.log_hi = static_cast<float>(std::log1p(static_cast<double>(a.clip_high)));
  t.log_dual = a.dual_clip > 1.0f ? static_cast<float>(std::log(static_cast<double>(a.dual_clip))) : INFINITY;
  return t;
}

struct ValueLossStats {
  double loss;
  double clip_frac;  // token mean over action tokens of "the clipped term was strictly larger"
  int64_t action_tokens;
  int64_t active_seqs;
};

struct ValueLossArgs {
  const float* values;         // [N]
  const float* old_values;     // [N]
  const float* returns;        // [N]
  const uint8_t* action_mask;  // [N] or nullptr
  const int32_t* cu_seqlens;   // [B+1]; the addon passes {0, N} when the caller gives none
  int64_t num_tokens;
  int64_t num_seqs;
  float clip_range;            // > 0, +inf for none
  LossAggregation aggregation;
  double normalizer;
  float* d_values;             // [N] out
  ValueLossStats* stats;       // host out
};

namespace cpu {
void ppo_loss(const PpoLossArgs& args);
void value_loss(const ValueLossArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void ppo_loss(int device, const PpoLossArgs& args);
void value_loss(int device, const ValueLossArgs& args);
}  // namespace cuda
#endif

inline void ppo_loss(Device device, const PpoLossArgs& args) { TALARIA_DISPATCH(device, ppo_loss, args); }
inline void value_loss(Device device, const ValueLossArgs& args) { TALARIA_DISPATCH(device, value_loss, args); }

}  // namespace talaria
