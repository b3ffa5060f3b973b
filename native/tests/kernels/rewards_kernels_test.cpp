// The reward kernels (reward shaping, group advantages) on every backend of this build. As in
// rl_loss_kernels_test.cpp the CPU backend is the oracle: the TypeScript suite checks it against the float64
// reference (test/reference/rewards.ts), and this driver checks CUDA against it, so rewards.cu runs under
// the emulator with CI's schedules and sanitizers. Without a CUDA backend only the cpu cases run.
//
// Data: random (seeded) rollouts: per sequence a prompt (mask 0), a response with holes, and trailing padding
// (mask 0) of up to several hundred tokens, so the backward ballot scan for the last action token walks many
// 32-token chunks; empty, single-token and all-masked sequences; long sequences (> 8192 tokens); log-ratios
// beyond the +-20 clamp; groups of size 0, 1, 2, 31, 32, 33 and 100.
//
// Tolerances (rewards.cu, "Precision"): counts and the missing-EOS count match exactly, and so do rewards on
// non-action tokens (exactly +0). k1/k2 rewards are plain f32 arithmetic; k3's exp differs by a few ulp, so
//   |reward cuda - cpu| <= 2e-6 * (kl_coef * (e^-d + |d| + 1) + |s_b| on the last action token)
// and k3 estimates within 1e-5 of kl_clamp (which may clamp on one backend only) are skipped. Shaped scores
// and advantages come from f64 sums that differ only in order and are rounded to f32 once:
// |cuda - cpu| <= 1e-6 * max(1, |cpu|). KL stats: 4e-6 * (sum of |kl_t| + 1) / count. The normalizer's
// moments: 1e-12 relative.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../../core/kernels/rewards.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct Rollout {
  std::vector<int32_t> cu;
  std::vector<uint8_t> mask, eos;
  std::vector<float> scores, logp, ref_logp;
  size_t n() const { return logp.size(); }
  int64_t b() const { return static_cast<int64_t>(scores.size()); }
};

Rollout make_rollout(const std::vector<int32_t>& lengths, Rng& rng) {
  Rollout r;
  r.cu.push_back(0);
  for (int32_t len : lengths) r.cu.push_back(r.cu.back() + len);
  const size_t n = static_cast<size_t>(r.cu.back());
  r.mask.assign(n, 0);
  for (size_t b = 0; b < lengths.size(); b++) {
    if (rng.uniform() < 0.1) continue;  // an all-masked sequence
    const int64_t begin = r.cu[b], len = lengths[b];
    const int64_t prompt = static_cast<int64_t>(rng.below(static_cast<uint32_t>(len / 2 + 1)));
    const int64_t pad = static_cast<int64_t>(rng.below(static_cast<uint32_t>((len - prompt) / 2 + 1)));
    for (int64_t t = begin + prompt; t < begin + len - pad; t++) r.mask[t] = rng.uniform() < 0.9 ? 1 : 0;
  }
  r.logp = rng.normals(n, 1.0f);
  const std::vector<float> delta = rng.normals(n, 0.5f);
  r.ref_logp.resize(n);
  for (size_t t = 0; t < n; t++) {
    r.logp[t] = -std::fabs(r.logp[t]) - 0.01f;
    // A few log-ratios beyond the +-20 clamp, the rest small.
    const double u = rng.uniform();
    r.ref_logp[t] = r.logp[t] - (u < 0.02 ? 25.0f : (u < 0.04 ? -25.0f : delta[t]));
  }
  r.scores = rng.normals(lengths.size(), 2.0f);
  r.eos.resize(lengths.size());
  for (auto& e : r.eos) e = rng.uniform() < 0.7 ? 1 : 0;
  return r;
}

std::vector<int32_t> short_lengths(Rng& rng) {
  std::vector<int32_t> l = {0, 1, 1, 2, 31, 32, 33, 0};
  for (int i = 0; i < 70; i++) l.push_back(static_cast<int32_t>(rng.below(90)));
  for (int i = 0; i < 4; i++) l.push_back(300 + static_cast<int32_t>(rng.below(700)));
  return l;
}

struct ShapeConfig {
  KlEstimator estimator = KlEstimator::K1;
  float kl_coef = 0.1f, kl_clamp = INFINITY, penalty = 0.0f, clip = INFINITY;
  bool mask = true, eos = false, normalize = false, shift = true;
  std::string name() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "k%d clamp %g mask %d eos %d penalty %g normalize %d shift %d clip %g",
                  static_cast<int>(estimator), kl_clamp, mask, eos, penalty, normalize, shift, clip);
    return buf;
  }
};

struct ShapeRun {
  std::vector<float> rewards, shaped;
  ShapeRewardsStats stats;
  RunningMoments moments;
};

const RunningMoments kSeen{12.0, 0.375, 40.5};  // the normalizer's state before the batch

ShapeRun run_shape(const ShapeConfig& c, const Rollout& r, Device device) {
  const int64_t n = static_cast<int64_t>(r.n()), b = r.b();
  Tensor scores = upload(r.scores, device), logp = upload(r.logp, device), ref = upload(r.ref_logp, device);
  Tensor mask = upload(r.mask, device), eos = upload(r.eos, device), cu = upload(r.cu, device);
  Tensor rewards = Tensor::empty({n}, DType::F32, device), shaped = Tensor::empty({b}, DType::F32, device);
  ShapeRun run{};
  run.moments = kSeen;
  ShapeRewardsArgs a{};
  a.scores = scores.data_as<float>();
  a.logp = logp.data_as<float>();
  a.ref_logp = ref.data_as<float>();
  a.action_mask = c.mask ? mask.data_as<uint8_t>() : nullptr;
  a.cu_seqlens = device.is_cpu() ? r.cu.data() : cu.data_as<int32_t>();  // the addon's rule
  a.ended_with_eos = c.eos ? eos.data_as<uint8_t>() : nullptr;
  a.num_tokens = n;
  a.num_seqs = b;
  a.kl_coef = c.kl_coef;
  a.kl_estimator = c.estimator;
  a.kl_clamp = c.kl_clamp;
  a.missing_eos_penalty = c.penalty;
  a.score_clip = c.clip;
  a.normalizer = c.normalize ? &run.moments : nullptr;
  a.normalize_shift = c.shift;
  a.normalize_eps = 1e-6f;
  a.rewards = rewards.data_as<float>();
  a.shaped_scores = shaped.data_as<float>();
  a.stats = &run.stats;
  shape_rewards(device, a);
  run.rewards = download<float>(rewards);
  run.shaped = download<float>(shaped);
  return run;
}

bool close(double got, double want, double tol) { return std::fabs(got - want) <= tol; }

// CUDA against CPU for one configuration; prints the first few differences.
void check_shape_parity(const ShapeConfig& c, const Rollout& r) {
  const ShapeRun cpu = run_shape(c, r, Device::cpu()), gpu = run_shape(c, r, Device::cuda(0));
  int bad = 0;
  auto report = [&](const char* what, double g, double want, long long index) {
    if (bad++ < 4) std::printf("  %s: %s [%lld]: cuda %.9g cpu %.9g\n", c.name().c_str(), what, index, g, want);
  };
  double kl_scale = 1.0;
  for (int64_t b = 0; b < r.b(); b++) {
    if (!close(gpu.shaped[b], cpu.shaped[b], 1e-6 * std::fmax(1.0, std::fabs(cpu.shaped[b]))))
      report("shaped", gpu.shaped[b], cpu.shaped[b], b);
    int64_t last = r.cu[b + 1] - 1;
    if (c.mask)
      while (last >= r.cu[b] && r.mask[last] == 0) last--;
    for (int64_t t = r.cu[b]; t < r.cu[b + 1]; t++) {
      const bool action = !c.mask || r.mask[t] != 0;
      if (!action) {
        if (!(gpu.rewards[t] == 0.0f && !std::signbit(gpu.rewards[t]))) report("padding reward", gpu.rewards[t], 0.0, t);
        continue;
      }
      const double d = clamp_log_ratio(r.logp[t] - r.ref_logp[t]), e = std::exp(-d);
      const double k3 = e + d - 1.0;
      if (c.estimator == KlEstimator::K3 && std::isfinite(c.kl_clamp) && std::fabs(k3 - c.kl_clamp) <= 1e-5 * c.kl_clamp) continue;
      kl_scale += e + std::fabs(d) + 1.0;
      const double scale = c.kl_coef * (e + std::fabs(d) + 1.0) + (t == last ? std::fabs(cpu.shaped[b]) : 0.0);
      if (!close(gpu.rewards[t], cpu.rewards[t], 2e-6 * scale)) report("reward", gpu.rewards[t], cpu.rewards[t], t);
    }
  }
  const ShapeRewardsStats &g = gpu.stats, &p = cpu.stats;
  if (g.action_tokens != p.action_tokens) report("action_tokens", g.action_tokens, p.action_tokens, -1);
  if (g.active_seqs != p.active_seqs) report("active_seqs", g.active_seqs, p.active_seqs, -1);
  if (g.missing_eos != p.missing_eos) report("missing_eos", g.missing_eos, p.missing_eos, -1);
  const double tokens = p.action_tokens > 0 ? static_cast<double>(p.action_tokens) : 1.0;
  const double seqs = p.active_seqs > 0 ? static_cast<double>(p.active_seqs) : 1.0;
  if (!close(g.kl_mean, p.kl_mean, 4e-6 * kl_scale / tokens)) report("kl_mean", g.kl_mean, p.kl_mean, -1);
  if (!close(g.kl_seq_mean, p.kl_seq_mean, 4e-6 * kl_scale / seqs)) report("kl_seq_mean", g.kl_seq_mean, p.kl_seq_mean, -1);
  if (!close(g.score_mean, p.score_mean, 1e-12 * (1.0 + std::fabs(p.score_mean)))) report("score_mean", g.score_mean, p.score_mean, -1);
  if (!close(g.shaped_score_mean, p.shaped_score_mean, 1e-6 * (1.0 + std::fabs(p.shaped_score_mean))))
    report("shaped_score_mean", g.shaped_score_mean, p.shaped_score_mean, -1);
  const RunningMoments &gm = gpu.moments, &pm = cpu.moments;
  if (gm.count != pm.count) report("count", gm.count, pm.count, -1);
  if (!close(gm.mean, pm.mean, 1e-12 * (1.0 + std::fabs(pm.mean)))) report("mean", gm.mean, pm.mean, -1);
  if (!close(gm.m2, pm.m2, 1e-12 * (1.0 + pm.m2))) report("m2", gm.m2, pm.m2, -1);
  CHECK(bad == 0);
}

TEST(shape_rewards_cuda_matches_cpu_every_option) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(201);
  const Rollout r = make_rollout(short_lengths(rng), rng);
  int combo = 0;
  for (KlEstimator est : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3})
    for (float clamp : {INFINITY, 0.05f})
      for (bool mask : {true, false}) {
        // The score options take each of their 12 combinations once over the 12 runs.
        ShapeConfig c;
        c.estimator = est, c.kl_clamp = clamp, c.mask = mask;
        c.eos = combo % 2 == 1, c.penalty = c.eos ? 1.5f : 0.0f;
        c.normalize = (combo / 2) % 3 != 0, c.shift = (combo / 2) % 3 == 1;
        c.clip = combo / 6 == 1 ? 1.5f : INFINITY;
        check_shape_parity(c, r);
        combo++;
      }
  CHECK(combo == 12);
}

TEST(shape_rewards_cuda_matches_cpu_long_sequences) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(203);
  Rollout r = make_rollout({9000, 1, 0, 12289, 40, 8193, 3}, rng);
  // A response followed by 5000 padding tokens: the backward scan walks ~157 chunks.
  for (int64_t t = r.cu[0]; t < r.cu[1]; t++) r.mask[t] = t >= 100 && t < 4000 ? 1 : 0;
  for (int64_t t = r.cu[3]; t < r.cu[4]; t++) r.mask[t] = 0;  // a long all-masked sequence
  for (KlEstimator est : {KlEstimator::K1, KlEstimator::K3}) {
    ShapeConfig c;
    c.estimator = est, c.eos = true, c.penalty = 0.5f, c.normalize = true;
    check_shape_parity(c, r);
  }
}

// Sizes around the warp: the last action token at each position of a 32-token chunk; no sequences at all.
TEST(shape_rewards_cuda_matches_cpu_edge_sizes) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(207);
  for (const std::vector<int32_t>& lengths : std::vector<std::vector<int32_t>>{{}, {0, 0, 0}, {1}, {31}, {32}, {33}, {65, 64}}) {
    Rollout r = make_rollout(lengths, rng);
    for (int64_t b = 0; b < r.b(); b++)  // only the first token of each sequence is an action
      for (int64_t t = r.cu[b]; t < r.cu[b + 1]; t++) r.mask[t] = t == r.cu[b] ? 1 : 0;
    ShapeConfig c;
    c.normalize = true;
    check_shape_parity(c, r);
    c.estimator = KlEstimator::K3, c.mask = false;
    check_shape_parity(c, r);
  }
  for (int32_t last = 0; last < 64; last += 7) {  // the last action token at offset `last` of 64
    Rollout r = make_rollout({64}, rng);
    for (int32_t t = 0; t < 64; t++) r.mask[t] = (t <= last && t % 3 == 0) || t == last;
    check_shape_parity(ShapeConfig{}, r);
  }
}

// klCoef 0: the reward is exactly the shaped score on each sequence's last action token and +0 elsewhere.
TEST(shape_rewards_score_on_last_action_token_every_backend) {
  Rng rng(211);
  const Rollout r = make_rollout(short_lengths(rng), rng);
  for (Device device : backends()) {
    ShapeConfig c;
    c.kl_coef = 0.0f, c.eos = true, c.penalty = 2.0f, c.clip = 2.5f;
    const ShapeRun run = run_shape(c, r, device);
    int64_t placed = 0;
    for (int64_t b = 0; b < r.b(); b++) {
      int64_t last = r.cu[b + 1] - 1;
      while (last >= r.cu[b] && r.mask[last] == 0) last--;
      const float s = r.eos[b] ? r.scores[b] : r.scores[b] - 2.0f;
      CHECK(run.shaped[b] == (s > 2.5f ? 2.5f : (s < -2.5f ? -2.5f : s)));
      for (int64_t t = r.cu[b]; t < r.cu[b + 1]; t++) {
        if (t == last) CHECK(run.rewards[t] == run.shaped[b]);
        else CHECK(run.rewards[t] == 0.0f && !std::signbit(run.rewards[t]));
      }
      placed += last >= r.cu[b];
    }
    CHECK(placed == run.stats.active_seqs && placed > 50);
  }
}

TEST(shape_rewards_masked_garbage_ignored_and_reproducible) {
  Rng rng(213);
  const Rollout clean = make_rollout(short_lengths(rng), rng);
  Rollout noisy = clean;
  const float garbage[] = {NAN, INFINITY, -INFINITY};
  for (size_t t = 0; t < noisy.n(); t++)
    if (noisy.mask[t] == 0) noisy.logp[t] = garbage[t % 3], noisy.ref_logp[t] = garbage[(t + 1) % 3];
  for (Device device : backends()) {
    ShapeConfig c;
    c.estimator = KlEstimator::K3, c.normalize = true, c.eos = true, c.penalty = 1.0f;
    const ShapeRun a = run_shape(c, clean, device), b = run_shape(c, noisy, device), again = run_shape(c, noisy, device);
    CHECK(a.rewards == b.rewards && a.shaped == b.shaped && b.rewards == again.rewards);
    CHECK(a.stats.kl_mean == b.stats.kl_mean && b.stats.kl_mean == again.stats.kl_mean && std::isfinite(b.stats.kl_mean));
    CHECK(a.stats.kl_seq_mean == again.stats.kl_seq_mean && a.moments.mean == again.moments.mean && a.moments.m2 == again.moments.m2);
  }
}

// ---- group advantages -------------------------------------------------------------------------------------

struct GroupRun {
  std::vector<float> adv, tokens;
};

GroupRun run_groups(const std::vector<float>& scores, const std::vector<int32_t>* offsets, int64_t group_size,
                    GroupEstimator est, bool unbiased, const Rollout* tokens, bool mask, Device device) {
  const int64_t b = static_cast<int64_t>(scores.size());
  Tensor s = upload(scores, device), adv = Tensor::empty({b}, DType::F32, device);
  Tensor off = offsets ? upload(*offsets, device) : Tensor();
  Tensor cu = tokens ? upload(tokens->cu, device) : Tensor(), m = tokens ? upload(tokens->mask, device) : Tensor();
  const int64_t n = tokens ? static_cast<int64_t>(tokens->n()) : 0;
  Tensor tok = Tensor::empty({n}, DType::F32, device);
  GroupAdvantagesArgs a{};
  a.scores = s.data_as<float>();
  a.group_offsets = offsets ? (device.is_cpu() ? offsets->data() : off.data_as<int32_t>()) : nullptr;
  a.group_size = group_size;
  a.num_seqs = b;
  a.num_groups = offsets ? static_cast<int64_t>(offsets->size()) - 1 : (group_size > 0 ? b / group_size : 0);
  a.estimator = est;
  a.eps = 1e-6f;
  a.unbiased = unbiased;
  a.advantages = adv.data_as<float>();
  if (tokens) {
    a.cu_seqlens = device.is_cpu() ? tokens->cu.data() : cu.data_as<int32_t>();
    a.action_mask = mask ? m.data_as<uint8_t>() : nullptr;
    a.num_tokens = n;
    a.token_advantages = tok.data_as<float>();
  }
  group_advantages(device, a);
  GroupRun run{download<float>(adv), {}};
  if (tokens) run.tokens = download<float>(tok);
  return run;
}

TEST(group_advantages_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(301);
  const std::vector<int32_t> offsets = {0, 0, 1, 3, 34, 66, 99, 199, 199, 231, 240};  // sizes 0 1 2 31 32 33 100 0 32 9
  const int64_t b = offsets.back();
  std::vector<int32_t> lengths;
  for (int64_t i = 0; i < b; i++) lengths.push_back(static_cast<int32_t>(rng.below(40)));
  const Rollout tokens = make_rollout(lengths, rng);
  std::vector<float> scores = rng.normals(static_cast<size_t>(b), 3.0f);
  for (int64_t i = 3; i < 34; i++) scores[i] = 0.625f;  // a constant group: 0, not NaN
  int bad = 0;
  for (GroupEstimator est : {GroupEstimator::Grpo, GroupEstimator::DrGrpo, GroupEstimator::Rloo})
    for (bool unbiased : {true, false})
      for (int layout = 0; layout < 3; layout++) {  // ragged offsets with a mask, size 8 without, size 1
        const std::vector<int32_t>* off = layout == 0 ? &offsets : nullptr;
        const int64_t size = layout == 1 ? 8 : 1;
        const GroupRun cpu = run_groups(scores, off, size, est, unbiased, &tokens, layout == 0, Device::cpu());
        const GroupRun gpu = run_groups(scores, off, size, est, unbiased, &tokens, layout == 0, Device::cuda(0));
        for (int64_t i = 0; i < b; i++) {
          if (!close(gpu.adv[i], cpu.adv[i], 1e-6 * std::fmax(1.0, std::fabs(cpu.adv[i]))) && bad++ < 4)
            std::printf("  est %d unbiased %d layout %d: adv[%lld] cuda %.9g cpu %.9g\n", static_cast<int>(est), unbiased,
                        layout, static_cast<long long>(i), gpu.adv[i], cpu.adv[i]);
          CHECK(std::isfinite(cpu.adv[i]));
          if (layout == 2 || (layout == 0 && (i == 0 || (i >= 3 && i < 34)))) CHECK(cpu.adv[i] == 0.0f && gpu.adv[i] == 0.0f);
        }
        for (size_t t = 0; t < tokens.n(); t++)
          if (!close(gpu.tokens[t], cpu.tokens[t], 1e-6 * std::fmax(1.0, std::fabs(cpu.tokens[t]))) && bad++ < 4)
            std::printf("  est %d layout %d: tokens[%zu] cuda %.9g cpu %.9g\n", static_cast<int>(est), layout, t,
                        gpu.tokens[t], cpu.tokens[t]);
      }
  CHECK(bad == 0);
}

TEST(group_advantages_broadcast_and_reproducible_every_backend) {
  Rng rng(303);
  std::vector<int32_t> lengths;
  for (int i = 0; i < 96; i++) lengths.push_back(static_cast<int32_t>(rng.below(50)));
  const Rollout tokens = make_rollout(lengths, rng);
  const std::vector<float> scores = rng.normals(96, 1.0f);
  for (Device device : backends()) {
    const GroupRun a = run_groups(scores, nullptr, 4, GroupEstimator::Grpo, true, &tokens, true, device);
    const GroupRun again = run_groups(scores, nullptr, 4, GroupEstimator::Grpo, true, &tokens, true, device);
    CHECK(a.adv == again.adv && a.tokens == again.tokens);
    for (int64_t b = 0; b < 96; b++)
      for (int64_t t = tokens.cu[b]; t < tokens.cu[b + 1]; t++) {
        if (tokens.mask[t]) CHECK(a.tokens[t] == a.adv[b]);
        else CHECK(a.tokens[t] == 0.0f && !std::signbit(a.tokens[t]));
      }
    const GroupRun dense = run_groups(scores, nullptr, 4, GroupEstimator::Grpo, true, &tokens, false, device);
    for (int64_t b = 0; b < 96; b++)
      for (int64_t t = tokens.cu[b]; t < tokens.cu[b + 1]; t++) CHECK(dense.tokens[t] == a.adv[b]);
  }
}

}  // namespace
