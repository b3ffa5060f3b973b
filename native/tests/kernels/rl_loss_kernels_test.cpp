// The RL objective kernels (PPO policy loss, value loss) on every backend of this build. As in
// rl_kernels_test.cpp the CPU backend is the oracle: the TypeScript suite checks it against the float64
// reference (test/reference/rl_loss.ts), and this driver checks CUDA against it, so rl_loss.cu runs under
// the emulator with CI's schedules and sanitizers. Without a CUDA backend only the cpu cases run.
//
// Data: random (seeded), many short sequences and a few long ones (> 8192 tokens, several tiles), empty,
// single-token and all-masked sequences, prompt-like masked prefixes, advantages of exactly 0, and
// tokens placed exactly on each log-space clip threshold and one ulp to either side, beyond the +-20
// log-ratio clamp, and exactly on the KL clamp (k1, k2).
//
// Tolerances (rl_loss.cu, "Precision"): clip and clamp decisions are identical, so counts and clip
// fractions must match exactly, and so must d_entropy (-w * coef) and the value loss's d_values (no exp,
// no multiply-add). The PPO ratio comes from two different exps (<= 2 ulp each), so
//   |d_logp cuda - cpu| <= 2e-6 * |w| (|A| r + kl_coef * |d kl/d logp| terms)   (~16 ulp of the terms)
// and sums differ by summation order too: |loss cuda - cpu| <= 4e-6 * sum_t |w| (|pg| + kl_coef |kl| +
// entropy_coef |H|), and likewise for every mean. k3 estimates within 1e-5 of kl_clamp may clamp on one
// backend only; their gradients are not compared. Under the emulator (libm's expf) the largest difference
// seen was 0.14 of its bound; a GPU's expf adds up to 2 ulp, which the bounds leave room for.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../../core/kernels/rl_loss.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

constexpr float kClipLow = 0.2f, kClipHigh = 0.28f, kDualClip = 3.0f, kKlClampFinite = 0.5f;
constexpr double kNormalizer = 317.5;
const LossAggregation kModes[] = {LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean,
                                  LossAggregation::SeqMeanTokenSum, LossAggregation::SeqMeanTokenSumNorm};
const KlEstimator kEstimators[] = {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3};

// Special tokens whose exact gradient the threshold test checks.
enum class Placed { None, OnHigh, AboveHigh, BelowHigh, OnLow, BelowLow, AboveLow, OnDual, AboveDual };

struct LossData {
  std::vector<int32_t> lengths, cu;
  std::vector<uint8_t> mask;
  std::vector<float> logp, old_logp, adv, ref_logp, entropy;
  std::vector<float> values, old_values, returns;
  std::vector<Placed> placed;
  size_t n() const { return logp.size(); }
};

PpoLossArgs base_args(float dual_clip) {
  PpoLossArgs a{};
  a.clip_low = kClipLow;
  a.clip_high = kClipHigh;
  a.dual_clip = dual_clip;
  return a;
}

// A pair (x, base) with x - base == target exactly in f32, base drawn from [lo, hi).
void exact_difference(float target, float lo, float hi, Rng& rng, float& x, float& base) {
  for (;;) {
    base = static_cast<float>(lo + (hi - lo) * rng.uniform());
    x = base + target;
    if (x - base == target) return;
  }
}

std::vector<int32_t> random_lengths(int count, int32_t lo, int32_t hi, Rng& rng) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; i++) out.push_back(lo + static_cast<int32_t>(rng.below(static_cast<uint32_t>(hi - lo + 1))));
  return out;
}

LossData make_data(std::vector<int32_t> lengths, Rng& rng) {
  LossData d;
  d.lengths = std::move(lengths);
  d.cu.push_back(0);
  for (int32_t len : d.lengths) d.cu.push_back(d.cu.back() + len);
  const size_t n = static_cast<size_t>(d.cu.back());
  d.mask.assign(n, 0);
  for (size_t b = 0; b < d.lengths.size(); b++) {
    if (rng.uniform() < 0.1) continue;  // an all-masked sequence
    const int64_t begin = d.cu[b], len = d.lengths[b];
    const int64_t prompt = len > 1 ? static_cast<int64_t>(rng.below(static_cast<uint32_t>(len / 2 + 1))) : 0;
    for (int64_t t = begin + prompt; t < begin + len; t++) d.mask[t] = rng.uniform() < 0.92 ? 1 : 0;
  }
  const std::vector<float> noise = rng.normals(n, 0.15f), wide = rng.normals(n, 1.5f), ref_noise = rng.normals(n, 0.4f);
  d.adv = rng.normals(n, 1.0f);
  d.logp.resize(n), d.old_logp.resize(n), d.ref_logp.resize(n), d.entropy.resize(n);
  d.placed.assign(n, Placed::None);
  const PpoThresholds th = ppo_thresholds(base_args(kDualClip));
  const float up = INFINITY, down = -INFINITY;
  const struct {
    Placed kind;
    float delta;
  } specials[] = {{Placed::OnHigh, th.log_hi},
                  {Placed::AboveHigh, std::nextafter(th.log_hi, up)},
                  {Placed::BelowHigh, std::nextafter(th.log_hi, down)},
                  {Placed::OnLow, th.log_lo},
                  {Placed::BelowLow, std::nextafter(th.log_lo, down)},
                  {Placed::AboveLow, std::nextafter(th.log_lo, up)},
                  {Placed::OnDual, th.log_dual},
                  {Placed::AboveDual, std::nextafter(th.log_dual, up)}};
  const float clamp_deltas[] = {25.0f, -25.0f, 20.0f, -20.0f, 21.5f};
  for (size_t t = 0; t < n; t++) {
    d.entropy[t] = static_cast<float>(3.0 * rng.uniform());
    const double u = rng.uniform();
    if (u < 0.08) {  // exactly on a clip threshold or one ulp beside it
      const auto& s = specials[rng.below(8)];
      exact_difference(s.delta, -4.0f, -0.05f, rng, d.logp[t], d.old_logp[t]);
      d.placed[t] = s.kind;
      d.ref_logp[t] = d.logp[t] - ref_noise[t];
      continue;
    }
    if (u < 0.11) {  // the policy log-ratio clamp
      exact_difference(clamp_deltas[rng.below(5)], -30.0f, -0.05f, rng, d.logp[t], d.old_logp[t]);
      d.ref_logp[t] = d.logp[t] - ref_noise[t];
      continue;
    }
    d.logp[t] = static_cast<float>(-0.05 - 4.0 * rng.uniform());
    d.old_logp[t] = d.logp[t] - (rng.uniform() < 0.1 ? wide[t] : noise[t]);  // wide: the dual clip's range
    if (u < 0.14) {  // the reference log-ratio clamp, and the KL clamp's boundary for k1 (0.5) and k2 (1)
      const float ref_deltas[] = {25.0f, -25.0f, kKlClampFinite, -kKlClampFinite, 1.0f, -1.0f};
      float logp = 0.0f;
      exact_difference(-ref_deltas[rng.below(6)], -30.0f, -0.05f, rng, d.ref_logp[t], logp);
      d.old_logp[t] += logp - d.logp[t];  // keep the policy log-ratio
      d.logp[t] = logp;
    } else {
      d.ref_logp[t] = d.logp[t] - ref_noise[t];
    }
    if (u > 0.97) d.adv[t] = 0.0f;
  }
  d.returns = rng.normals(n, 1.0f);
  d.old_values = rng.normals(n, 1.0f);
  const std::vector<float> step = rng.normals(n, 0.3f);
  d.values.resize(n);
  for (size_t t = 0; t < n; t++) {
    if (rng.uniform() < 0.05) {  // exactly on the clip boundary of clipRange 0.2
      exact_difference(rng.uniform() < 0.5 ? 0.2f : -0.2f, -2.0f, 2.0f, rng, d.values[t], d.old_values[t]);
    } else {
      d.values[t] = d.old_values[t] + step[t];
    }
  }
  return d;
}

// Garbage (NaN, +-inf) in a third of the non-action tokens: padding is not always clean, and a masked
// token's gradient must still be exactly 0 and its stats must not count.
void poison_masked(LossData& d, Rng& rng) {
  const float garbage[] = {NAN, INFINITY, -INFINITY};
  for (size_t t = 0; t < d.n(); t++) {
    if (d.mask[t] != 0 || rng.uniform() < 0.67) continue;
    for (std::vector<float>* v : {&d.logp, &d.old_logp, &d.adv, &d.ref_logp, &d.entropy, &d.values, &d.old_values,
                                  &d.returns})
      (*v)[t] = garbage[rng.below(3)];
  }
}

std::vector<int32_t> short_lengths(Rng& rng) {
  std::vector<int32_t> l = {0, 1, 1, 2, 3, 0, 0};
  for (int32_t x : random_lengths(70, 0, 60, rng)) l.push_back(x);
  for (int32_t x : random_lengths(5, 100, 700, rng)) l.push_back(x);
  l.push_back(1);
  return l;
}

std::vector<int32_t> long_lengths(Rng& rng) {
  std::vector<int32_t> l = {8200, 1, 0, 9001};  // 9 tiles: emulated blocks are what the sanitizers pay for
  for (int32_t x : random_lengths(20, 0, 50, rng)) l.push_back(x);
  return l;
}

struct PpoConfig {
  LossAggregation mode = LossAggregation::TokenMean;
  bool mask = true, ref = true, entropy = true;
  KlEstimator estimator = KlEstimator::K3;
  float kl_clamp = INFINITY;
  float dual_clip = 0.0f;
  float kl_coef() const { return ref ? 0.1f : 0.0f; }
  float entropy_coef() const { return entropy ? 0.01f : 0.0f; }
  std::string name() const {
    char buf[128];
    std::snprintf(buf, sizeof buf, "mode %d mask %d ref %d k%d clamp %g dual %g entropy %d", static_cast<int>(mode),
                  mask, ref, static_cast<int>(estimator), kl_clamp, dual_clip, entropy);
    return buf;
  }
};

struct PpoRun {
  std::vector<float> d_logp, d_entropy;
  PpoLossStats stats;
};

PpoLossArgs ppo_args(const PpoConfig& c, const LossData& d) {
  PpoLossArgs a = base_args(c.dual_clip);
  a.num_tokens = static_cast<int64_t>(d.n());
  a.num_seqs = static_cast<int64_t>(d.lengths.size());
  a.kl_coef = c.kl_coef();
  a.kl_estimator = c.estimator;
  a.kl_clamp = c.kl_clamp;
  a.entropy_coef = c.entropy_coef();
  a.aggregation = c.mode;
  a.normalizer = kNormalizer;
  return a;
}

PpoRun run_ppo(const PpoConfig& c, const LossData& d, Device device) {
  const int64_t n = static_cast<int64_t>(d.n());
  Tensor logp = upload(d.logp, device), old_logp = upload(d.old_logp, device), adv = upload(d.adv, device);
  Tensor ref = upload(d.ref_logp, device), ent = upload(d.entropy, device), mask = upload(d.mask, device);
  Tensor cu = upload(d.cu, device);
  Tensor d_logp = Tensor::empty({n}, DType::F32, device), d_ent = Tensor::empty({n}, DType::F32, device);
  PpoRun run{};
  PpoLossArgs a = ppo_args(c, d);
  a.logp = logp.data_as<float>();
  a.old_logp = old_logp.data_as<float>();
  a.advantages = adv.data_as<float>();
  a.action_mask = c.mask ? mask.data_as<uint8_t>() : nullptr;
  a.cu_seqlens = device.is_cpu() ? d.cu.data() : cu.data_as<int32_t>();  // the addon's rule
  a.ref_logp = c.ref ? ref.data_as<float>() : nullptr;
  a.entropy = c.entropy ? ent.data_as<float>() : nullptr;
  a.d_logp = d_logp.data_as<float>();
  a.d_entropy = c.entropy ? d_ent.data_as<float>() : nullptr;
  a.stats = &run.stats;
  ppo_loss(device, a);
  run.d_logp = download<float>(d_logp);
  if (c.entropy) run.d_entropy = download<float>(d_ent);
  return run;
}

bool is_action(const LossData& d, bool use_mask, size_t t) { return !use_mask || d.mask[t] != 0; }

// Per-token weights as both backends derive them (aggregation_weight from the exact counts).
std::vector<float> token_weights(const LossData& d, bool use_mask, LossAggregation mode) {
  std::vector<int64_t> seq(d.lengths.size(), 0);
  int64_t total = 0, active = 0;
  for (size_t b = 0; b < seq.size(); b++) {
    for (int64_t t = d.cu[b]; t < d.cu[b + 1]; t++) seq[b] += is_action(d, use_mask, static_cast<size_t>(t));
    total += seq[b];
    active += seq[b] > 0;
  }
  std::vector<float> w(d.n(), 0.0f);
  for (size_t b = 0; b < seq.size(); b++)
    for (int64_t t = d.cu[b]; t < d.cu[b + 1]; t++)
      if (is_action(d, use_mask, static_cast<size_t>(t))) w[t] = aggregation_weight(mode, seq[b], total, active, kNormalizer);
  return w;
}

// Magnitudes that scale the tolerances (file comment), from the inputs in f64.
struct PpoScales {
  std::vector<double> grad;  // per token; < 0: k3 at its clamp, not compared
  double loss = 0, pg = 0, kl = 0, entropy = 0, approx_kl = 0, ratio = 0;
};

PpoScales ppo_scales(const PpoConfig& c, const LossData& d) {
  const std::vector<float> w = token_weights(d, c.mask, c.mode);
  const PpoThresholds th = ppo_thresholds(base_args(c.dual_clip));
  const double bound = std::fmax(th.hi, c.dual_clip);
  PpoScales s;
  s.grad.assign(d.n(), 0.0);
  for (size_t t = 0; t < d.n(); t++) {
    if (!is_action(d, c.mask, t)) continue;
    const double lr = clamp_log_ratio(d.logp[t] - d.old_logp[t]), r = std::exp(lr), a = std::fabs(d.adv[t]);
    double kl = 0.0, kl_grad = 0.0;
    bool near_clamp = false;
    if (c.ref) {
      const double rd = clamp_log_ratio(d.logp[t] - d.ref_logp[t]), e = std::exp(-rd);
      kl = c.estimator == KlEstimator::K1 ? std::fabs(rd) : (c.estimator == KlEstimator::K2 ? 0.5 * rd * rd : e + std::fabs(rd) + 1.0);
      kl_grad = c.estimator == KlEstimator::K1 ? 1.0 : (c.estimator == KlEstimator::K2 ? std::fabs(rd) : 1.0 + e);
      near_clamp = c.estimator == KlEstimator::K3 && std::fabs(e + rd - 1.0 - c.kl_clamp) <= 1e-5 * c.kl_clamp;
    }
    const double wt = std::fabs(w[t]), h = std::fabs(d.entropy[t]);
    s.grad[t] = near_clamp ? -1.0 : wt * (a * r + c.kl_coef() * kl_grad);
    s.loss += wt * (a * std::fmax(r, bound) + c.kl_coef() * kl + c.entropy_coef() * h);
    s.pg += wt * a * std::fmax(r, bound);
    s.kl += kl;
    s.entropy += h;
    s.approx_kl += r + 1.0 + std::fabs(lr);
    s.ratio += r;
  }
  return s;
}

bool close(double got, double want, double tol) { return std::fabs(got - want) <= tol; }

// CUDA against CPU for one configuration; prints the first few differences.
void check_ppo_parity(const PpoConfig& c, const LossData& d) {
  const PpoRun cpu = run_ppo(c, d, Device::cpu()), gpu = run_ppo(c, d, Device::cuda(0));
  const PpoScales sc = ppo_scales(c, d);
  int bad = 0;
  auto report = [&](const char* what, double g, double want, long long index) {
    if (bad++ < 4) std::printf("  %s: %s [%lld]: cuda %.9g cpu %.9g\n", c.name().c_str(), what, index, g, want);
  };
  for (size_t t = 0; t < d.n(); t++) {
    if (sc.grad[t] >= 0.0 && !close(gpu.d_logp[t], cpu.d_logp[t], 2e-6 * sc.grad[t]))
      report("d_logp", gpu.d_logp[t], cpu.d_logp[t], static_cast<long long>(t));
    if (c.entropy && gpu.d_entropy[t] != cpu.d_entropy[t])
      report("d_entropy", gpu.d_entropy[t], cpu.d_entropy[t], static_cast<long long>(t));
  }
  const PpoLossStats &g = gpu.stats, &p = cpu.stats;
  const double n = p.action_tokens > 0 ? static_cast<double>(p.action_tokens) : 1.0;
  if (g.action_tokens != p.action_tokens) report("action_tokens", g.action_tokens, p.action_tokens, -1);
  if (g.active_seqs != p.active_seqs) report("active_seqs", g.active_seqs, p.active_seqs, -1);
  if (g.clip_frac != p.clip_frac) report("clip_frac", g.clip_frac, p.clip_frac, -1);
  if (g.clip_frac_lower != p.clip_frac_lower) report("clip_frac_lower", g.clip_frac_lower, p.clip_frac_lower, -1);
  if (!close(g.loss, p.loss, 4e-6 * sc.loss)) report("loss", g.loss, p.loss, -1);
  if (!close(g.pg_loss, p.pg_loss, 4e-6 * sc.pg)) report("pg_loss", g.pg_loss, p.pg_loss, -1);
  if (!close(g.kl_mean, p.kl_mean, 4e-6 * sc.kl / n)) report("kl_mean", g.kl_mean, p.kl_mean, -1);
  if (!close(g.entropy_mean, p.entropy_mean, 4e-6 * sc.entropy / n)) report("entropy", g.entropy_mean, p.entropy_mean, -1);
  if (!close(g.approx_kl, p.approx_kl, 4e-6 * sc.approx_kl / n)) report("approx_kl", g.approx_kl, p.approx_kl, -1);
  if (!close(g.ratio_mean, p.ratio_mean, 4e-6 * sc.ratio / n)) report("ratio_mean", g.ratio_mean, p.ratio_mean, -1);
  if (!close(g.ratio_max, p.ratio_max, 2e-6 * std::fabs(p.ratio_max))) report("ratio_max", g.ratio_max, p.ratio_max, -1);
  CHECK(bad == 0);
}

// Every combination of the per-token options; the aggregation mode (which only sets the weights) rotates
// so that each estimator meets each mode. Then no KL term, with and without a mask, in every mode.
TEST(ppo_loss_cuda_matches_cpu_every_option) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(101);
  const LossData d = make_data(short_lengths(rng), rng);
  int runs = 0;
  for (KlEstimator est : kEstimators)
    for (float clamp : {INFINITY, kKlClampFinite})
      for (float dual : {0.0f, kDualClip})
        for (bool entropy : {false, true}) {
          PpoConfig c;
          c.mode = kModes[(runs + runs / 8) % 4];
          c.estimator = est, c.kl_clamp = clamp, c.dual_clip = dual, c.entropy = entropy;
          check_ppo_parity(c, d);
          runs++;
        }
  for (LossAggregation mode : kModes)
    for (bool mask : {false, true}) {
      PpoConfig c;
      c.mode = mode, c.mask = mask, c.ref = false, c.entropy = !mask, c.dual_clip = mask ? kDualClip : 0.0f;
      check_ppo_parity(c, d);
      runs++;
    }
  CHECK(runs == 24 + 8);
}

TEST(ppo_loss_cuda_matches_cpu_long_sequences) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(103);
  const LossData d = make_data(long_lengths(rng), rng);
  for (int m = 0; m < 4; m++)
    for (int e = 0; e < 3; e++) {
      PpoConfig c;
      c.mode = kModes[m], c.estimator = kEstimators[e], c.mask = (m + e) % 2 == 0, c.dual_clip = kDualClip;
      c.kl_clamp = e == 1 ? kKlClampFinite : INFINITY;
      check_ppo_parity(c, d);
    }
}

// Sizes around the 2048-token tile: 1, odd, prime, exact multiples, all masked, no tokens at all.
TEST(ppo_loss_cuda_matches_cpu_edge_sizes) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(107);
  const std::vector<std::vector<int32_t>> packings = {{1},    {0, 1, 0}, {2047},         {2048},
                                                      {2049}, {4099},    {1021, 0, 1031}, {0, 0, 0}};
  for (const auto& lengths : packings) {
    LossData d = make_data(lengths, rng);
    for (int m = 0; m < 4; m++) {
      PpoConfig c;
      c.mode = kModes[m], c.dual_clip = kDualClip;
      check_ppo_parity(c, d);
      if (d.n() == 0 || m % 2 == 1) continue;
      const std::vector<uint8_t> keep = d.mask;
      d.mask.assign(d.n(), 0);  // nothing is an action: loss 0, gradients 0
      check_ppo_parity(c, d);
      const PpoRun run = run_ppo(c, d, Device::cuda(0));
      CHECK(run.stats.action_tokens == 0 && run.stats.active_seqs == 0 && run.stats.loss == 0.0);
      for (float g : run.d_logp) CHECK(g == 0.0f);
      d.mask = keep;
    }
  }
}

// The clip boundary is decided in log space: exactly on a threshold is not clipped (unclipped gradient),
// one ulp beyond is (gradient exactly 0). No KL term, so the gradient is the surrogate's alone.
TEST(ppo_loss_clip_thresholds_on_every_backend) {
  Rng rng(109);
  const LossData d = make_data(short_lengths(rng), rng);
  for (Device device : backends()) {
    PpoConfig c;
    c.ref = false, c.entropy = false, c.dual_clip = kDualClip;
    const PpoRun run = run_ppo(c, d, device);
    int checked = 0;
    for (size_t t = 0; t < d.n(); t++) {
      if (d.mask[t] == 0 || d.adv[t] == 0.0f || d.placed[t] == Placed::None) continue;
      // With c = 3: A > 0 clips above log_hi (OnDual and AboveDual are above it too); A < 0 clips below
      // log_lo and dual-clips above log c.
      const bool pos = d.adv[t] > 0.0f;
      const Placed p = d.placed[t];
      const bool clipped = (pos && (p == Placed::AboveHigh || p == Placed::OnDual || p == Placed::AboveDual)) ||
                           (!pos && (p == Placed::BelowLow || p == Placed::AboveDual));
      CHECK(clipped ? run.d_logp[t] == 0.0f : run.d_logp[t] != 0.0f);
      checked++;
    }
    CHECK(checked > 100);
    CHECK(run.stats.clip_frac > 0.0 && run.stats.clip_frac_lower > 0.0);
  }
}

TEST(ppo_loss_masked_outputs_exactly_zero_and_reproducible) {
  Rng rng(113);
  LossData d = make_data(long_lengths(rng), rng);
  poison_masked(d, rng);
  if (has_cuda())
    for (LossAggregation mode : kModes) {
      PpoConfig c;
      c.mode = mode, c.dual_clip = kDualClip;
      check_ppo_parity(c, d);
    }
  for (Device device : backends()) {
    PpoConfig c;
    c.mode = LossAggregation::SeqMeanTokenMean, c.dual_clip = kDualClip;
    const PpoRun a = run_ppo(c, d, device), b = run_ppo(c, d, device);
    for (size_t t = 0; t < d.n(); t++)
      if (d.mask[t] == 0) CHECK(a.d_logp[t] == 0.0f && !std::signbit(a.d_logp[t]) && a.d_entropy[t] == 0.0f);
    CHECK(a.d_logp == b.d_logp && a.d_entropy == b.d_entropy);
    const PpoLossStats &x = a.stats, &y = b.stats;
    CHECK(x.loss == y.loss && x.pg_loss == y.pg_loss && x.kl_mean == y.kl_mean && x.entropy_mean == y.entropy_mean &&
          x.approx_kl == y.approx_kl && x.ratio_mean == y.ratio_mean && x.ratio_max == y.ratio_max &&
          x.clip_frac == y.clip_frac && x.clip_frac_lower == y.clip_frac_lower);
    CHECK(std::isfinite(x.loss) && std::isfinite(x.ratio_max) && std::isfinite(x.entropy_mean));
  }
}

// ---- value loss ------------------------------------------------------------------------------------

struct ValueRun {
  std::vector<float> d_values;
  ValueLossStats stats;
};

// packed = false: one sequence over the whole batch, as the addon passes when cuSeqlens is omitted.
ValueRun run_value(const LossData& d, bool mask, bool packed, float clip, LossAggregation mode, Device device) {
  const int64_t n = static_cast<int64_t>(d.n());
  const std::vector<int32_t> cu_host = packed ? d.cu : std::vector<int32_t>{0, static_cast<int32_t>(n)};
  Tensor values = upload(d.values, device), old_values = upload(d.old_values, device), ret = upload(d.returns, device);
  Tensor mask_t = upload(d.mask, device), cu = upload(cu_host, device);
  Tensor d_values = Tensor::empty({n}, DType::F32, device);
  ValueRun run{};
  ValueLossArgs a{};
  a.values = values.data_as<float>();
  a.old_values = old_values.data_as<float>();
  a.returns = ret.data_as<float>();
  a.action_mask = mask ? mask_t.data_as<uint8_t>() : nullptr;
  a.cu_seqlens = device.is_cpu() ? cu_host.data() : cu.data_as<int32_t>();
  a.num_tokens = n;
  a.num_seqs = static_cast<int64_t>(cu_host.size()) - 1;
  a.clip_range = clip;
  a.aggregation = mode;
  a.normalizer = kNormalizer;
  a.d_values = d_values.data_as<float>();
  a.stats = &run.stats;
  value_loss(device, a);
  run.d_values = download<float>(d_values);
  return run;
}

TEST(value_loss_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(127);
  const LossData short_data = make_data(short_lengths(rng), rng), long_data = make_data(long_lengths(rng), rng);
  int run = 0;
  for (const LossData* d : {&short_data, &long_data})
    for (LossAggregation mode : kModes)
      for (float clip : {0.2f, 0.05f, INFINITY}) {
        // (mask, packed) cycles through its 4 settings, out of step with the 3 clip ranges.
        const bool mask = run % 2 == 0, packed = run % 4 < 2;
        run++;
        const ValueRun cpu = run_value(*d, mask, packed, clip, mode, Device::cpu());
        const ValueRun gpu = run_value(*d, mask, packed, clip, mode, Device::cuda(0));
        LossData one = *d;
        if (!packed) one.lengths = {static_cast<int32_t>(d->n())}, one.cu = {0, static_cast<int32_t>(d->n())};
        const std::vector<float> w = token_weights(one, mask, mode);
        double scale = 0.0;  // sum of |w| * the loss term, in f64
        for (size_t t = 0; t < d->n(); t++) {
          const double v = d->values[t], old = d->old_values[t], ret = d->returns[t];
          const double vc = std::fmin(std::fmax(v, old - clip), old + clip);
          scale += std::fabs(w[t]) * 0.5 * std::fmax((v - ret) * (v - ret), (vc - ret) * (vc - ret));
        }
        int bad = 0;
        for (size_t t = 0; t < d->n(); t++)
          if (gpu.d_values[t] != cpu.d_values[t] && bad++ < 3)
            std::printf("  value mode %d clip %g mask %d packed %d: d_values[%zu] cuda %.9g cpu %.9g\n",
                        static_cast<int>(mode), clip, mask, packed, t, gpu.d_values[t], cpu.d_values[t]);
        CHECK(bad == 0);
        CHECK(gpu.stats.action_tokens == cpu.stats.action_tokens && gpu.stats.active_seqs == cpu.stats.active_seqs);
        CHECK(gpu.stats.clip_frac == cpu.stats.clip_frac);
        CHECK(close(gpu.stats.loss, cpu.stats.loss, 4e-6 * scale));
        if (clip == 0.05f) CHECK(cpu.stats.clip_frac > 0.0);
        if (std::isinf(clip)) CHECK(cpu.stats.clip_frac == 0.0);
      }
}

// More tiles than the tiled passes have blocks (1024 x 2048 tokens), so blocks loop over tiles. Those
// loops are shared by both losses, and the value loss is the cheaper one to emulate. Plain data: this is
// about covering every token, not about numerics.
TEST(value_loss_cuda_matches_cpu_more_tiles_than_blocks) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(137);
  LossData d;
  d.lengths = {700001, 3, 0, 1048576, 11, 350000};
  d.cu.push_back(0);
  for (int32_t len : d.lengths) d.cu.push_back(d.cu.back() + len);
  const size_t n = static_cast<size_t>(d.cu.back());
  CHECK(n > 1024 * 2048);
  d.values = rng.normals(n, 1.0f), d.old_values = rng.normals(n, 1.0f), d.returns = rng.normals(n, 1.0f);
  d.logp = d.values;  // n() reads logp
  d.mask.resize(n);
  for (auto& m : d.mask) m = rng.uniform() < 0.8 ? 1 : 0;
  const ValueRun cpu = run_value(d, true, true, 0.5f, LossAggregation::SeqMeanTokenMean, Device::cpu());
  const ValueRun gpu = run_value(d, true, true, 0.5f, LossAggregation::SeqMeanTokenMean, Device::cuda(0));
  CHECK(gpu.d_values == cpu.d_values);
  CHECK(gpu.stats.action_tokens == cpu.stats.action_tokens && gpu.stats.active_seqs == 5);
  CHECK(gpu.stats.clip_frac == cpu.stats.clip_frac);
  CHECK(close(gpu.stats.loss, cpu.stats.loss, 1e-5 * std::fabs(cpu.stats.loss)));
}

TEST(value_loss_masked_outputs_exactly_zero_and_reproducible) {
  Rng rng(131);
  LossData d = make_data(long_lengths(rng), rng);
  poison_masked(d, rng);
  for (Device device : backends()) {
    const ValueRun a = run_value(d, true, true, 0.2f, LossAggregation::SeqMeanTokenMean, device);
    const ValueRun b = run_value(d, true, true, 0.2f, LossAggregation::SeqMeanTokenMean, device);
    for (size_t t = 0; t < d.n(); t++)
      if (d.mask[t] == 0) CHECK(a.d_values[t] == 0.0f && !std::signbit(a.d_values[t]));
    CHECK(a.d_values == b.d_values && a.stats.loss == b.stats.loss && a.stats.clip_frac == b.stats.clip_frac);
    CHECK(std::isfinite(a.stats.loss));
  }
}

}  // namespace
