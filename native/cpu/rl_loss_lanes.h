// The per-token passes of the PPO and value losses on explicit lanes (lanes.h), kLanes tokens at a time.
// No include guard: rl_loss.cpp includes it once per SIMD target, inside that target's namespace and
// TALARIA_BEGIN_TARGET region. It defines kLaneKernels, the entry points for that target.
//
// A segment is a run of tokens with one aggregation weight. Stats are summed per lane in f32 over blocks
// of 8 tokens per lane, then in f64 lanes, then across lanes in lane order; a segment's sums are weighted
// once at its end. Nothing here depends on the thread count.

#include "lanes.h"

constexpr int64_t kBlockTokens = 8 * kLanes;  // f32 sums cover 8 tokens per lane, then go to f64

// rl_math.h's clamp_log_ratio and log_ratio_gate on lanes (those are compiled for the baseline target).
TALARIA_SIMD_INLINE Lanes clamp_log_ratio_lanes(Lanes delta) {
  return delta < -kMaxLogRatio ? -kMaxLogRatio : (delta > kMaxLogRatio ? kMaxLogRatio : delta);
}
TALARIA_SIMD_INLINE Lanes log_ratio_gate_lanes(Lanes delta) {
  return ((delta < -kMaxLogRatio) | (delta > kMaxLogRatio)) ? 0.0f : 1.0f;
}

template <typename T>
TALARIA_SIMD_INLINE void copy_n(const T* from, int64_t n, T* to) {
  for (int64_t i = 0; i < n; i++) to[i] = from[i];
}

// Runs lanes(tokens, valid) over [0, len), kLanes tokens at a time. The last, partial group goes through
// zero-padded copies (Tokens::Tail), so the lane code never reads or writes past `len`.
template <typename Tokens, typename LaneFn>
TALARIA_SIMD_INLINE void for_each_lane_group(const Tokens& tokens, int64_t len, const LaneFn& lanes) {
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) lanes(tokens.at(i), all_lanes());
  if (i < len) {
    typename Tokens::Tail tail;
    lanes(tail.load(tokens.at(i), len - i), first_lanes(len - i));
    tail.store(tokens.at(i), len - i);
  }
}

// ---- PPO policy loss --------------------------------------------------------------------------------

// Where kLanes consecutive tokens' inputs and outputs are; optional ones are nullptr. kl and kl_grad
// point into the block's buffers.
struct PpoTokens {
  const float *logp, *old_logp, *advantages, *entropy, *kl, *kl_grad;
  const uint8_t* mask;
  float *d_logp, *d_entropy;

  PpoTokens at(int64_t i) const {
    auto off = [i](auto* p) { return p ? p + i : p; };
    return {logp + i, old_logp + i, advantages + i, off(entropy), kl + i, kl_grad + i, off(mask), d_logp + i,
            off(d_entropy)};
  }
  struct Tail {
    float logp[kLanes] = {}, old_logp[kLanes] = {}, advantages[kLanes] = {}, entropy[kLanes] = {};
    float d_logp[kLanes], d_entropy[kLanes];
    uint8_t mask[kLanes] = {};
    PpoTokens load(const PpoTokens& from, int64_t n) {
      copy_n(from.logp, n, logp), copy_n(from.old_logp, n, old_logp), copy_n(from.advantages, n, advantages);
      if (from.entropy) copy_n(from.entropy, n, entropy);
      if (from.mask) copy_n(from.mask, n, mask);
      return {logp, old_logp, advantages, entropy, from.kl, from.kl_grad, mask, d_logp, d_entropy};
    }
    void store(const PpoTokens& to, int64_t n) const {
      copy_n(d_logp, n, to.d_logp);
      if (to.d_entropy) copy_n(d_entropy, n, to.d_entropy);
    }
  };
};

// Per lane: one block's f32 sums (unweighted), the segment's f64 sums, counts and the running max.
struct PpoSums {
  Lanes pg{}, kl{}, entropy{}, approx_kl{}, ratio{};
  LanesF64 pg64{}, kl64{}, entropy64{}, approx_kl64{}, ratio64{};
  Lanes ratio_max{};  // -inf, set by the segment: an initializer here would run outside the target region
  LaneMask clipped{}, dual{};
};

TALARIA_SIMD_INLINE void end_block(PpoSums& s) {
  s.pg64 += widen(s.pg), s.kl64 += widen(s.kl), s.entropy64 += widen(s.entropy);
  s.approx_kl64 += widen(s.approx_kl), s.ratio64 += widen(s.ratio);
  s.pg = s.kl = s.entropy = s.approx_kl = s.ratio = Lanes{};
}

// rl_math.h's kl_estimate on lanes, for a fixed estimator; the clamp's test on the unclamped value is the
// same as kl_estimate's two tests in turn, because kl_clamp > 0.
template <KlEstimator kEstimator>
TALARIA_SIMD_INLINE void kl_estimate_lanes(Lanes delta, float kl_clamp, Lanes& value, Lanes& grad) {
  const Lanes d = clamp_log_ratio_lanes(delta), gate = log_ratio_gate_lanes(delta);
  if (kEstimator == KlEstimator::K1) {
    value = d, grad = gate;
  } else if (kEstimator == KlEstimator::K2) {
    value = 0.5f * d * d, grad = gate * d;
  } else {
    const Lanes exp_neg = exp_lanes(-d);
    value = exp_neg + d - 1.0f, grad = gate * (1.0f - exp_neg);
  }
  grad = ((value > kl_clamp) | (value < -kl_clamp)) ? 0.0f : grad;
  value = value > kl_clamp ? kl_clamp : (value < -kl_clamp ? -kl_clamp : value);
}

// The KL term's value and gradient for one block, into per-block buffers that hold whole lane groups.
// Skipped where ppo_lanes skips (no action token in the group).
struct KlTokens {
  const float *logp, *ref_logp;
  const uint8_t* mask;
  float *kl, *kl_grad;

  KlTokens at(int64_t i) const { return {logp + i, ref_logp + i, mask ? mask + i : mask, kl + i, kl_grad + i}; }
  struct Tail {
    float logp[kLanes] = {}, ref_logp[kLanes] = {};
    uint8_t mask[kLanes] = {};
    KlTokens load(const KlTokens& from, int64_t n) {
      copy_n(from.logp, n, logp), copy_n(from.ref_logp, n, ref_logp);
      if (from.mask) copy_n(from.mask, n, mask);
      return {logp, ref_logp, from.mask ? mask : nullptr, from.kl, from.kl_grad};
    }
    void store(const KlTokens&, int64_t) const {}
  };
};

template <KlEstimator kEstimator>
TALARIA_SIMD_INLINE void block_kl(const KlTokens& tokens, int64_t len, float kl_clamp) {
  for_each_lane_group(tokens, len, [&](const KlTokens& in, const LaneMask&) TALARIA_LANES_LAMBDA {
    if (in.mask && !any_mask_byte(in.mask)) return;
    Lanes value, grad;
    kl_estimate_lanes<kEstimator>(load_lanes(in.logp) - load_lanes(in.ref_logp), kl_clamp, value, grad);
    store_lanes(in.kl, value), store_lanes(in.kl_grad, grad);
  });
}

// rl_loss.h's per-token PPO formulas; `valid` marks the lanes that hold tokens.
template <bool kHasMask, bool kHasRef, bool kHasEntropy>
TALARIA_SIMD_INLINE void ppo_lanes(const PpoLossArgs& a, const PpoThresholds& th, float weight, const PpoTokens& in,
                                   const LaneMask& valid, PpoSums& s) {
  if (kHasMask && !any_mask_byte(in.mask)) {  // prompt or padding (common): gradients 0, nothing to count
    store_lanes(in.d_logp, Lanes{});
    if (kHasEntropy) store_lanes(in.d_entropy, Lanes{});
    return;
  }
  const LaneMask action = kHasMask ? valid & load_mask_lanes(in.mask) : valid;
  const Lanes adv = load_lanes(in.advantages), delta = load_lanes(in.logp) - load_lanes(in.old_logp);
  const Lanes log_ratio = clamp_log_ratio_lanes(delta), ratio = exp_lanes(log_ratio);
  const LaneMask high = (adv > 0.0f) & (delta > th.log_hi);
  const LaneMask low = (adv < 0.0f) & (delta < th.log_lo);
  const LaneMask dual = (adv < 0.0f) & (delta > th.log_dual);
  const LaneMask held = high | low | dual;
  const Lanes bound = dual ? splat(th.dual) : (low ? splat(th.lo) : splat(th.hi));
  const Lanes pg = -adv * (held ? bound : ratio);
  Lanes grad = held ? 0.0f : -adv * ratio * log_ratio_gate_lanes(delta);
  if (kHasRef) {
    grad += a.kl_coef * load_lanes(in.kl_grad);
    s.kl += action ? load_lanes(in.kl) : 0.0f;
  }
  if (kHasEntropy) {
    s.entropy += action ? load_lanes(in.entropy) : 0.0f;
    store_lanes(in.d_entropy, action ? splat(-weight * a.entropy_coef) : 0.0f);
  }
  store_lanes(in.d_logp, action ? weight * grad : 0.0f);
  s.pg += action ? pg : 0.0f;
  s.approx_kl += action ? ratio - 1.0f - log_ratio : 0.0f;
  s.ratio += action ? ratio : 0.0f;
  const Lanes action_ratio = action ? ratio : -INFINITY;
  s.ratio_max = action_ratio > s.ratio_max ? action_ratio : s.ratio_max;
  s.clipped = (action & (high | low)) ? s.clipped + 1 : s.clipped;
  s.dual = (action & dual) ? s.dual + 1 : s.dual;
}

template <bool kHasMask, bool kHasRef, bool kHasEntropy>
void ppo_segment(const PpoLossArgs& args, const PpoThresholds& thresholds, int64_t begin, int64_t end, float weight,
                 PpoPartial* out) {
  const PpoLossArgs a = args;  // local copies: the stores to d_logp could alias them, so no hoisting otherwise
  const PpoThresholds th = thresholds;
  PpoSums sums;
  sums.ratio_max = splat(-INFINITY);
  float kl[kBlockTokens], kl_grad[kBlockTokens];
  for (int64_t block = begin; block < end; block += kBlockTokens) {
    const int64_t len = std::min(kBlockTokens, end - block);
    if (kHasRef) {
      const KlTokens kl_tokens{a.logp + block, a.ref_logp + block, kHasMask ? a.action_mask + block : nullptr, kl,
                               kl_grad};
      switch (a.kl_estimator) {
        case KlEstimator::K1: block_kl<KlEstimator::K1>(kl_tokens, len, a.kl_clamp); break;
        case KlEstimator::K2: block_kl<KlEstimator::K2>(kl_tokens, len, a.kl_clamp); break;
        default: block_kl<KlEstimator::K3>(kl_tokens, len, a.kl_clamp); break;
      }
    }
    const PpoTokens tokens{a.logp + block, a.old_logp + block, a.advantages + block,
                           kHasEntropy ? a.entropy + block : nullptr, kl, kl_grad,
                           kHasMask ? a.action_mask + block : nullptr, a.d_logp + block,
                           kHasEntropy ? a.d_entropy + block : nullptr};
    for_each_lane_group(tokens, len, [&](const PpoTokens& in, const LaneMask& valid) TALARIA_LANES_LAMBDA {
      ppo_lanes<kHasMask, kHasRef, kHasEntropy>(a, th, weight, in, valid, sums);
    });
    end_block(sums);
  }
  // The loss is sum_t w (pg_t + kl_coef kl_t - entropy_coef H_t), weighted here once, in f64.
  const double pg = sum_lanes(sums.pg64), kl_sum = sum_lanes(sums.kl64), entropy = sum_lanes(sums.entropy64);
  out->sum[kLoss] += weight * (pg + a.kl_coef * kl_sum - a.entropy_coef * entropy);
  out->sum[kPg] += weight * pg;
  out->sum[kKl] += kl_sum;
  out->sum[kEntropy] += entropy;
  out->sum[kApproxKl] += sum_lanes(sums.approx_kl64);
  out->sum[kRatio] += sum_lanes(sums.ratio64);
  out->clipped += sum_lanes(sums.clipped);
  out->dual += sum_lanes(sums.dual);
  out->ratio_max = std::max(out->ratio_max, max_lanes(sums.ratio_max));
}

// ---- Value loss -----------------------------------------------------------------------------------

struct ValueTokens {
  const float *values, *old_values, *returns;
  const uint8_t* mask;
  float* d_values;

  ValueTokens at(int64_t i) const {
    return {values + i, old_values + i, returns + i, mask ? mask + i : mask, d_values + i};
  }
  struct Tail {
    float values[kLanes] = {}, old_values[kLanes] = {}, returns[kLanes] = {}, d_values[kLanes];
    uint8_t mask[kLanes] = {};
    ValueTokens load(const ValueTokens& from, int64_t n) {
      copy_n(from.values, n, values), copy_n(from.old_values, n, old_values), copy_n(from.returns, n, returns);
      if (from.mask) copy_n(from.mask, n, mask);
      return {values, old_values, returns, mask, d_values};
    }
    void store(const ValueTokens& to, int64_t n) const { copy_n(d_values, n, to.d_values); }
  };
};

template <bool kHasMask>
void value_segment(const ValueLossArgs& args, int64_t begin, int64_t end, float weight, ValuePartial* out) {
  const ValueLossArgs a = args;  // see ppo_segment
  const float clip = a.clip_range;
  LanesF64 loss{};
  LaneMask clipped_count{};
  for (int64_t block = begin; block < end; block += kBlockTokens) {
    const int64_t len = std::min(kBlockTokens, end - block);
    Lanes block_loss{};
    const ValueTokens tokens{a.values + block, a.old_values + block, a.returns + block,
                             kHasMask ? a.action_mask + block : nullptr, a.d_values + block};
    for_each_lane_group(tokens, len, [&](const ValueTokens& in, const LaneMask& valid) TALARIA_LANES_LAMBDA {
      const LaneMask action = kHasMask ? valid & load_mask_lanes(in.mask) : valid;
      const Lanes v = load_lanes(in.values), old = load_lanes(in.old_values), ret = load_lanes(in.returns);
      const Lanes d = v - old;
      const Lanes clipped_value = d > clip ? old + clip : (d < -clip ? old - clip : v);
      const Lanes err = v - ret, clipped_err = clipped_value - ret;
      const LaneMask clipped = clipped_err * clipped_err > err * err;
      const Lanes term = 0.5f * (clipped ? clipped_err * clipped_err : err * err);
      store_lanes(in.d_values, (action & ~clipped) ? weight * err : 0.0f);
      block_loss += action ? term : 0.0f;
      clipped_count = (action & clipped) ? clipped_count + 1 : clipped_count;
    });
    loss += widen(block_loss);
  }
  out->loss += weight * sum_lanes(loss);
  out->clipped += sum_lanes(clipped_count);
}

// ---- Mask counting --------------------------------------------------------------------------------

int64_t count_actions(const uint8_t* mask, int64_t n) {
  typedef uint8_t Bytes __attribute__((vector_size(4 * kLanes)));
  constexpr int64_t kStep = sizeof(Bytes);
  int64_t count = 0, i = 0;
  while (i + kStep <= n) {
    Bytes counts{};  // per byte lane, at most 255 steps before they are summed
    for (const int64_t end = std::min(n - kStep, i + 254 * kStep); i <= end; i += kStep) {
      Bytes b;
      std::memcpy(&b, mask + i, kStep);
      counts -= (Bytes)(b != 0);  // a set lane of the comparison is 255, that is -1
    }
    for (int j = 0; j < kStep; j++) count += counts[j];
  }
  for (; i < n; i++) count += mask[i] != 0;
  return count;
}

const LaneKernels kLaneKernels = {
    count_actions,
    {ppo_segment<false, false, false>, ppo_segment<false, false, true>, ppo_segment<false, true, false>,
     ppo_segment<false, true, true>, ppo_segment<true, false, false>, ppo_segment<true, false, true>,
     ppo_segment<true, true, false>, ppo_segment<true, true, true>},
    {value_segment<false>, value_segment<true>}};
