// The preference losses (DPO, K-wise ranking) on every backend of this build. As in rl_kernels_test.cpp the
// CPU backend is the oracle here (the TypeScript suite checks it against test/reference/preference.ts), and
// this driver checks CUDA against it, so preference.cu runs under the emulator with CI's schedules and
// sanitizers. Without a CUDA backend only the cpu cases run.
//
// Data: random (seeded) sequence log-probs and scores, pair counts 1, odd, prime, one past a CPU chunk, and
// past the DPO grid (so CUDA threads stride); margins of +-200 and +-1e4; prompts with K = 0, 1,
// 2, 9, 31-33 and 100 (lanes owning two to four completions), positional and random ranks, with ties.
//
// Tolerances: both backends evaluate each pair with the same f64 formulas (preference.h), so counts and
// accuracies must match exactly, and an f32 gradient may differ only where the backends' f64 exp/log1p
// differ by an ulp and that changes the f32 rounding: |cuda - cpu| <= 1e-6 |cpu| (~8 f32 ulp), plus 1e-12
// of the largest gradient for completions whose partner terms cancel. The f64 sums differ only in order:
// |cuda - cpu| <= 1e-12 * (the sum of the terms' magnitudes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

#include "../../core/kernels/preference.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

bool close(double got, double want, double tol) { return std::fabs(got - want) <= tol; }

// ---- DPO --------------------------------------------------------------------------------------------------

struct DpoData {
  std::vector<float> policy_chosen, policy_rejected, ref_chosen, ref_rejected;
  size_t n() const { return policy_chosen.size(); }
};

// Summed log-probs in [-300, -20); the reference within +-5 of the policy, and every 50th pair far apart, so
// that beta * margin reaches +-200 at beta = 1 (and +-1e4 with a second offset).
DpoData make_dpo(size_t n, Rng& rng) {
  DpoData d;
  for (size_t i = 0; i < n; i++) {
    const float pc = static_cast<float>(-20.0 - 280.0 * rng.uniform());
    const float pr = static_cast<float>(-20.0 - 280.0 * rng.uniform());
    float rc = static_cast<float>(pc + 10.0 * rng.uniform() - 5.0);
    float rr = static_cast<float>(pr + 10.0 * rng.uniform() - 5.0);
    if (i % 50 == 7) rc = pc - 100.0f, rr = pr + 100.0f;    // margin +200 / beta
    if (i % 50 == 19) rc = pc + 100.0f, rr = pr - 100.0f;   // margin -200 / beta
    if (i % 97 == 3) rc = pc - 5000.0f, rr = pr + 5000.0f;  // margin +1e4 / beta
    d.policy_chosen.push_back(pc), d.policy_rejected.push_back(pr), d.ref_chosen.push_back(rc), d.ref_rejected.push_back(rr);
  }
  return d;
}

struct DpoRun {
  std::vector<float> d_chosen, d_rejected;
  DpoLossStats stats;
};

DpoRun run_dpo(const DpoData& d, float beta, float smoothing, Device device) {
  const int64_t n = static_cast<int64_t>(d.n());
  Tensor pc = upload(d.policy_chosen, device), pr = upload(d.policy_rejected, device);
  Tensor rc = upload(d.ref_chosen, device), rr = upload(d.ref_rejected, device);
  Tensor dc = Tensor::empty({n}, DType::F32, device), dr = Tensor::empty({n}, DType::F32, device);
  DpoRun run{};
  DpoLossArgs a{};
  a.policy_chosen = pc.data_as<float>();
  a.policy_rejected = pr.data_as<float>();
  a.ref_chosen = rc.data_as<float>();
  a.ref_rejected = rr.data_as<float>();
  a.num_pairs = n;
  a.beta = beta;
  a.label_smoothing = smoothing;
  a.d_policy_chosen = dc.data_as<float>();
  a.d_policy_rejected = dr.data_as<float>();
  a.stats = &run.stats;
  dpo_loss(device, a);
  run.d_chosen = download<float>(dc);
  run.d_rejected = download<float>(dr);
  return run;
}

// Counts mismatches between two gradient vectors under the file's tolerance; prints the first few.
int compare_grads(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  double largest = 0.0;
  for (float w : want) largest = std::fmax(largest, std::fabs(w));
  int bad = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i]) || !close(got[i], want[i], 1e-6 * std::fabs(want[i]) + 1e-12 * largest)) {
      if (bad++ < 4) std::printf("  %s[%zu]: cuda %.9g cpu %.9g\n", what, i, got[i], want[i]);
    }
  }
  return bad;
}

TEST(dpo_loss_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(401);
  const std::pair<float, float> params[] = {{0.5f, 0.2f}, {0.1f, 0.0f}, {1.0f, 0.0f}};  // beta, label smoothing
  // 65,537 pairs: past the 256-block grid, so threads stride (one setting only: the emulator is slow).
  for (size_t n : {size_t{1}, size_t{7}, size_t{97}, size_t{2049}, size_t{65537}}) {
    const DpoData d = make_dpo(n, rng);
    for (const auto& [beta, smoothing] : n > 10000 ? std::vector<std::pair<float, float>>{params[0]}
                                                   : std::vector<std::pair<float, float>>(params, params + 3)) {
      const DpoRun cpu = run_dpo(d, beta, smoothing, Device::cpu()), gpu = run_dpo(d, beta, smoothing, Device::cuda(0));
      int bad = compare_grads("d_policy_chosen", gpu.d_chosen, cpu.d_chosen) +
                compare_grads("d_policy_rejected", gpu.d_rejected, cpu.d_rejected);
      // Scales of the f64 sums: the sum of each term's magnitude, over P.
      double loss_scale = 0, margin_scale = 0, chosen_scale = 0, rejected_scale = 0;
      for (size_t i = 0; i < n; i++) {
        const DpoPair p = dpo_pair(d.policy_chosen[i], d.policy_rejected[i], d.ref_chosen[i], d.ref_rejected[i], beta,
                                   smoothing);
        loss_scale += std::fabs(p.loss), margin_scale += std::fabs(p.margin);
        chosen_scale += std::fabs(p.chosen), rejected_scale += std::fabs(p.rejected);
      }
      const double inv_n = 1.0 / static_cast<double>(n);
      const DpoLossStats &g = gpu.stats, &c = cpu.stats;
      if (!close(g.loss, c.loss, 1e-12 * loss_scale * inv_n)) bad++, std::printf("  loss cuda %.17g cpu %.17g\n", g.loss, c.loss);
      if (g.reward_accuracy != c.reward_accuracy) bad++, std::printf("  reward_accuracy differs\n");
      if (!close(g.reward_margin, c.reward_margin, 1e-12 * margin_scale * inv_n)) bad++, std::printf("  reward_margin differs\n");
      if (!close(g.chosen_reward, c.chosen_reward, 1e-12 * chosen_scale * inv_n)) bad++, std::printf("  chosen_reward differs\n");
      if (!close(g.rejected_reward, c.rejected_reward, 1e-12 * rejected_scale * inv_n)) bad++, std::printf("  rejected_reward differs\n");
      if (bad > 0) std::printf("  (P = %zu, beta %g, label smoothing %g)\n", n, beta, smoothing);
      CHECK(bad == 0);
      CHECK(std::isfinite(c.loss));
      if (n > 50) CHECK(c.reward_accuracy > 0.0 && c.reward_accuracy < 1.0);
    }
  }
}

TEST(dpo_loss_finite_at_large_margins_and_reproducible) {
  Rng rng(402);
  const DpoData d = make_dpo(1000, rng);
  for (Device device : backends()) {
    const DpoRun a = run_dpo(d, 1.0f, 0.1f, device), b = run_dpo(d, 1.0f, 0.1f, device);
    CHECK(std::isfinite(a.stats.loss) && std::isfinite(a.stats.reward_margin));
    bool finite = true;
    for (size_t i = 0; i < d.n(); i++) finite = finite && std::isfinite(a.d_chosen[i]) && std::isfinite(a.d_rejected[i]);
    CHECK(finite);
    CHECK(a.d_chosen == b.d_chosen && a.d_rejected == b.d_rejected);
    CHECK(a.stats.loss == b.stats.loss && a.stats.reward_margin == b.stats.reward_margin &&
          a.stats.chosen_reward == b.stats.chosen_reward && a.stats.rejected_reward == b.stats.rejected_reward);
  }
}

TEST(dpo_loss_no_pairs) {
  for (Device device : backends()) {
    const DpoRun r = run_dpo(DpoData{}, 0.1f, 0.0f, device);
    CHECK(r.stats.loss == 0.0 && r.stats.reward_accuracy == 0.0 && r.stats.reward_margin == 0.0);
    CHECK(r.d_chosen.empty() && r.d_rejected.empty());
  }
}

// ---- Ranking ----------------------------------------------------------------------------------------------

struct RankingData {
  std::vector<float> scores;
  std::vector<int32_t> offsets{0}, ranks;
};

// Prompts of the given sizes, scores in [-2, 2) (the first one 150). With `ties` the ranks are drawn from
// [0, K) with repeats, else they are a random permutation of [0, K).
RankingData make_ranking(const std::vector<int32_t>& sizes, Rng& rng, bool ties) {
  RankingData d;
  for (int32_t k : sizes) {
    std::vector<int32_t> perm(static_cast<size_t>(k));
    for (int32_t j = 0; j < k; j++) perm[j] = j;
    for (int32_t j = k - 1; j > 0; j--) std::swap(perm[j], perm[rng.below(static_cast<uint32_t>(j + 1))]);
    for (int32_t j = 0; j < k; j++) {
      d.scores.push_back(static_cast<float>(4.0 * rng.uniform() - 2.0));
      d.ranks.push_back(ties ? static_cast<int32_t>(rng.below(static_cast<uint32_t>(k))) : perm[j]);
    }
    d.offsets.push_back(d.offsets.back() + k);
  }
  if (!d.scores.empty()) d.scores[0] = 150.0f;  // a pair margin beyond +-100
  return d;
}

std::vector<int32_t> mixed_sizes(Rng& rng, int prompts) {
  std::vector<int32_t> sizes = {0, 1, 2, 9, 31, 32, 33, 0, 100, 1, 2};
  for (int p = 0; p < prompts; p++) sizes.push_back(static_cast<int32_t>(rng.below(13)));
  return sizes;
}

struct RankingRun {
  std::vector<float> d_scores;
  RankingLossStats stats;
};

RankingRun run_ranking(const RankingData& d, bool use_ranks, Device device) {
  const int64_t m = static_cast<int64_t>(d.scores.size());
  Tensor scores = upload(d.scores, device), offsets = upload(d.offsets, device), ranks = upload(d.ranks, device);
  Tensor d_scores = Tensor::empty({m}, DType::F32, device);
  RankingRun run{};
  RankingLossArgs a{};
  a.scores = scores.data_as<float>();
  // The addon's rule: CPU kernels read the validated host copies, device kernels device memory.
  a.offsets = device.is_cpu() ? d.offsets.data() : offsets.data_as<int32_t>();
  a.ranks = !use_ranks ? nullptr : device.is_cpu() ? d.ranks.data() : ranks.data_as<int32_t>();
  a.num_completions = m;
  a.num_prompts = static_cast<int64_t>(d.offsets.size()) - 1;
  for (size_t p = 0; p + 1 < d.offsets.size(); p++)
  a.d_scores = d_scores.data_as<float>();
  a.stats = &run.stats;
  ranking_loss(device, a);
  run.d_scores = download<float>(d_scores);
  return run;
}

TEST(ranking_loss_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(403);
  const std::vector<std::vector<int32_t>> batches = {
      {2}, {9}, std::vector<int32_t>(64, 9), std::vector<int32_t>(301, 2), mixed_sizes(rng, 40), mixed_sizes(rng, 2500)};
  for (const std::vector<int32_t>& sizes : batches)
    for (bool ties : {false, true})
      for (bool use_ranks : {false, true}) {
        if (sizes.size() > 1000 && !(ties && use_ranks)) continue;  // the large batch once: the emulator is slow
        const RankingData d = make_ranking(sizes, rng, ties);
        const RankingRun cpu = run_ranking(d, use_ranks, Device::cpu()), gpu = run_ranking(d, use_ranks, Device::cuda(0));
        int bad = compare_grads("d_scores", gpu.d_scores, cpu.d_scores);
        const RankingLossStats &g = gpu.stats, &c = cpu.stats;
        if (g.pairs != c.pairs || g.tied_pairs != c.tied_pairs || g.ranked_prompts != c.ranked_prompts ||
            g.accuracy != c.accuracy)
          bad++, std::printf("  counts: cuda %lld/%lld/%lld/%.17g cpu %lld/%lld/%lld/%.17g\n", (long long)g.pairs,
                             (long long)g.tied_pairs, (long long)g.ranked_prompts, g.accuracy, (long long)c.pairs,
                             (long long)c.tied_pairs, (long long)c.ranked_prompts, c.accuracy);
        // Every term is positive, so the loss itself is the sum of magnitudes.
        if (!close(g.loss, c.loss, 1e-12 * c.loss)) bad++, std::printf("  loss cuda %.17g cpu %.17g\n", g.loss, c.loss);
        if (bad > 0) std::printf("  (%zu prompts, ties %d, ranks %d)\n", sizes.size(), ties, use_ranks);
        CHECK(bad == 0);
        CHECK(std::isfinite(c.loss));
        if (sizes.size() > 1) CHECK(c.pairs > 0 && c.loss > 0.0);  // one K = 2 prompt may be a tie
        if (ties && use_ranks && sizes.size() > 1) CHECK(c.tied_pairs > 0);
        if (!use_ranks || !ties) CHECK(c.tied_pairs == 0);
      }
}

TEST(ranking_loss_reproducible_and_positional_ranks_equal_no_ranks) {
  Rng rng(404);
  const RankingData random = make_ranking(mixed_sizes(rng, 300), rng, true);
  RankingData positional = random;
  for (size_t p = 0; p + 1 < positional.offsets.size(); p++)
    for (int32_t j = positional.offsets[p]; j < positional.offsets[p + 1]; j++) positional.ranks[j] = j - positional.offsets[p];
  for (Device device : backends()) {
    const RankingRun a = run_ranking(random, true, device), b = run_ranking(random, true, device);
    CHECK(a.d_scores == b.d_scores && a.stats.loss == b.stats.loss && a.stats.accuracy == b.stats.accuracy);
    const RankingRun with = run_ranking(positional, true, device), without = run_ranking(positional, false, device);
    CHECK(with.d_scores == without.d_scores && with.stats.loss == without.stats.loss);
    CHECK(with.stats.pairs == without.stats.pairs && without.stats.tied_pairs == 0);
  }
}

TEST(ranking_loss_without_pairs) {
  RankingData none;  // P = 0, M = 0
  RankingData empty_prompts;
  empty_prompts.offsets = {0, 0, 0, 0};  // P = 3, M = 0
  RankingData singles;                   // K = 1 and K = 0 only
  singles.scores = {0.5f, -1.25f, 2.0f};
  singles.ranks = {0, 0, 0};
  singles.offsets = {0, 1, 1, 2, 3};
  for (Device device : backends())
    for (const RankingData* d : {&none, &empty_prompts, &singles}) {
      const RankingRun r = run_ranking(*d, true, device);
      CHECK(r.stats.loss == 0.0 && r.stats.accuracy == 0.0 && r.stats.pairs == 0 && r.stats.tied_pairs == 0 &&
            r.stats.ranked_prompts == 0);
      CHECK(r.d_scores == std::vector<float>(d->scores.size(), 0.0f));
    }
}

}  // namespace
