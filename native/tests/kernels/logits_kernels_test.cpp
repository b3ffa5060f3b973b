// The logit kernels (log-prob/entropy forward and backward, cross-entropy, KL forward and backward) on
// every backend of this build. As in rl_loss_kernels_test.cpp the CPU backend is the oracle (the
// TypeScript suite checks it against the float64 reference, test/reference/logits.ts); this driver
// checks CUDA against it, so logits.cu runs under the emulator with CI's schedules and sanitizers.
//
// Data: random logits (seeded), V = 1, odd, prime, several blocks of 256 threads and a tail; -inf entries
// (masked vocabulary, never a target), per-row temperatures in [0.25, 4) and a tiny and a huge scalar T;
// masked cross-entropy rows; in-place backward passes.
//
// Tolerances (logits.cu, "Precision"): both backends compute the same formulas in f32 but reduce in
// other orders (CPU: chunks of 1024 in 16 lanes merged in f64; CUDA: 256 per-thread states in a tree)
// and with other exps (a polynomial; expf). Forward values agree within 1e-5 of (1 + |value| + |lse|), a
// few ulp of what they round. Gradient elements agree within 4e-6 of their error scale (compare_grads),
// which grows with |z| and |lse|: at T = 1e-3 an element of ~800 may move by ~1 on either backend.
// Zeros (masked rows, -inf logits) are exact.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../../core/kernels/logits.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct LogitsData {
  int64_t rows, vocab;
  float temperature;
  std::vector<float> logits, ref_logits, temperatures, g_logp, g_entropy, g_kl;
  std::vector<int32_t> targets;
  std::vector<uint8_t> mask;
};

LogitsData make_data(int64_t rows, int64_t vocab, float temperature, bool per_row, double masked, Rng& rng) {
  LogitsData d{rows, vocab, temperature, {}, {}, {}, {}, {}, {}, {}, {}};
  const size_t n = static_cast<size_t>(rows * vocab);
  d.logits = rng.normals(n, 3.0f);
  d.ref_logits = d.logits;
  const std::vector<float> noise = rng.normals(n, 0.5f);
  for (size_t i = 0; i < n; i++) d.ref_logits[i] += noise[i];
  for (int64_t r = 0; r < rows; r++) {
    d.targets.push_back(static_cast<int32_t>(rng.below(static_cast<uint32_t>(vocab))));
    for (int64_t i = 0; i < vocab; i++)
      if (i != d.targets.back() && rng.uniform() < masked) d.logits[r * vocab + i] = d.ref_logits[r * vocab + i] = -INFINITY;
    if (per_row) d.temperatures.push_back(static_cast<float>(0.25 + 3.75 * rng.uniform()));
    d.mask.push_back(rng.uniform() < 0.7 ? 1 : 0);
  }
  d.g_logp = rng.normals(static_cast<size_t>(rows), 1.0f);
  d.g_entropy = rng.normals(static_cast<size_t>(rows), 1.0f);
  d.g_kl = rng.normals(static_cast<size_t>(rows), 1.0f);
  return d;
}

// Every output of every kernel on one device, downloaded.
struct LogitsRun {
  std::vector<float> logp, entropy, lse, d_logits, d_logits_in_place, ce_d_logits, ce_in_place, kl, kl_lse, kl_ref_lse,
      kl_d_logits, kl_in_place;
  double ce_loss = 0.0;
  int64_t ce_count = 0;
};

LogitsRun run_all(const LogitsData& d, Device device, bool with_mask) {
  const int64_t n = d.rows;
  const Tensor logits = upload(d.logits, device), ref = upload(d.ref_logits, device);
  const Tensor targets = upload(d.targets, device), mask = upload(d.mask, device);
  const Tensor temps = upload(d.temperatures, device);
  const Tensor g_logp = upload(d.g_logp, device), g_entropy = upload(d.g_entropy, device), g_kl = upload(d.g_kl, device);
  auto rows = [&](int64_t count) { return Tensor::empty({count}, DType::F32, device); };
  LogitsView view{logits.data_as<const float>(), n, d.vocab, d.temperature,
                  d.temperatures.empty() ? nullptr : temps.data_as<const float>()};
  LogitsRun out;

  const Tensor logp = rows(n), entropy = rows(n), lse = rows(n);
  logprob_entropy(device, LogprobEntropyArgs{view, targets.data_as<const int32_t>(), logp.data_as<float>(),
                                             entropy.data_as<float>(), lse.data_as<float>()});
  out.logp = download<float>(logp), out.entropy = download<float>(entropy), out.lse = download<float>(lse);

  const Tensor d_logits = rows(n * d.vocab);
  LogprobEntropyBackwardArgs bwd{view, targets.data_as<const int32_t>(), g_logp.data_as<const float>(),
                                 g_entropy.data_as<const float>(), lse.data_as<const float>(),
                                 entropy.data_as<const float>(), d_logits.data_as<float>()};
  logprob_entropy_backward(device, bwd);
  out.d_logits = download<float>(d_logits);
  const Tensor copy = upload(d.logits, device);  // in place over a copy of the logits
  bwd.x.logits = copy.data_as<const float>(), bwd.d_logits = copy.data_as<float>();
  logprob_entropy_backward(device, bwd);
  out.d_logits_in_place = download<float>(copy);

  const Tensor ce_d = rows(n * d.vocab);
  LogitsView unit = view;
  unit.temperature = 1.0f, unit.temperatures = nullptr;
  CrossEntropyArgs ce{unit, targets.data_as<const int32_t>(), with_mask ? mask.data_as<const uint8_t>() : nullptr,
                      ce_d.data_as<float>(), &out.ce_loss, &out.ce_count};
  cross_entropy(device, ce);
  out.ce_d_logits = download<float>(ce_d);
  const Tensor ce_copy = upload(d.logits, device);
  double in_place_loss = 0.0;
  ce.x.logits = ce_copy.data_as<const float>(), ce.d_logits = ce_copy.data_as<float>(), ce.loss = &in_place_loss;
  cross_entropy(device, ce);
  out.ce_in_place = download<float>(ce_copy);
  CHECK(in_place_loss == out.ce_loss);

  const Tensor kl = rows(n), kl_lse = rows(n), kl_ref_lse = rows(n);
  kl_divergence(device, KlDivergenceArgs{view, ref.data_as<const float>(), kl.data_as<float>(), kl_lse.data_as<float>(),
                                         kl_ref_lse.data_as<float>()});
  out.kl = download<float>(kl), out.kl_lse = download<float>(kl_lse), out.kl_ref_lse = download<float>(kl_ref_lse);
  const Tensor kl_d = rows(n * d.vocab);
  KlDivergenceBackwardArgs kl_bwd{view, ref.data_as<const float>(), g_kl.data_as<const float>(),
                                  kl_lse.data_as<const float>(), kl_ref_lse.data_as<const float>(),
                                  kl.data_as<const float>(), kl_d.data_as<float>()};
  kl_divergence_backward(device, kl_bwd);
  out.kl_d_logits = download<float>(kl_d);
  const Tensor kl_copy = upload(d.logits, device);
  kl_bwd.x.logits = kl_copy.data_as<const float>(), kl_bwd.d_logits = kl_copy.data_as<float>();
  kl_divergence_backward(device, kl_bwd);
  out.kl_in_place = download<float>(kl_copy);
  return out;
}

int report(const char* what, int64_t i, double got, double want) {
  std::printf("  %s[%lld]: cuda %.9g, cpu %.9g\n", what, static_cast<long long>(i), got, want);
  return 1;
}

// |cuda - cpu| <= bound(i) for every element; prints the first few that are not.
template <typename Bound>
int compare(const char* what, const std::vector<float>& got, const std::vector<float>& want, const Bound& bound) {
  int bad = 0;
  CHECK(got.size() == want.size());
  for (size_t i = 0; i < want.size() && bad < 5; i++)
    if (!(std::fabs(got[i] - want[i]) <= bound(i))) bad += report(what, static_cast<int64_t>(i), got[i], want[i]);
  return bad;
}

// Forward values: |cuda - cpu| <= 1e-5 (1 + |cpu| + |scale|).
int compare_rows(const char* what, const std::vector<float>& got, const std::vector<float>& want,
                 const std::vector<float>& scale) {
  return compare(what, got, want, [&](size_t i) { return 1e-5 * (1.0 + std::fabs(want[i]) + std::fabs(scale[i])); });
}

// Gradients: |cuda - cpu| <= 4e-6 * scale, with the scale of each element's f32 error (as in
// test/reference/logits.ts): the magnitude of its terms times (1 + |z_i| + |lse|), because both backends
// recompute log p_i = z_i - lse from an f32 lse. Where p_i = 0 (a -inf logit) the scale is 0: exact.
int compare_grads(const char* what, const std::vector<float>& got, const std::vector<float>& want,
                  const std::vector<double>& scale) {
  return compare(what, got, want, [&](size_t i) { return 4e-6 * scale[i]; });
}

// The error scales of the three gradients, from the cpu run's saved values.
struct GradScales {
  std::vector<double> logprob, cross_entropy, kl;
};
GradScales grad_scales(const LogitsData& d, const LogitsRun& cpu) {
  GradScales s;
  for (int64_t r = 0; r < d.rows; r++) {
    const double inv_t = 1.0 / (d.temperatures.empty() ? d.temperature : d.temperatures[r]);
    const double lse = cpu.lse[r], h = cpu.entropy[r], g_logp = std::fabs(d.g_logp[r]), g_ent = std::fabs(d.g_entropy[r]);
    const double g_kl = std::fabs(d.g_kl[r]), kl = std::fabs(cpu.kl[r]), ref_lse = cpu.kl_ref_lse[r];
    double ce_lse = -INFINITY;  // the row's lse at T = 1, for the cross-entropy
    for (int64_t i = 0; i < d.vocab; i++) ce_lse = std::fmax(ce_lse, d.logits[r * d.vocab + i]);
    double sum = 0.0;
    for (int64_t i = 0; i < d.vocab; i++) sum += std::exp(d.logits[r * d.vocab + i] - ce_lse);
    ce_lse += std::log(sum);
    const double ce_weight = cpu.ce_count > 0 ? 1.0 / static_cast<double>(cpu.ce_count) : 0.0;
    for (int64_t i = 0; i < d.vocab; i++) {
      const double x = d.logits[r * d.vocab + i], u = d.ref_logits[r * d.vocab + i];
      const double z = x * inv_t, lp = z - lse, p = std::exp(lp), onehot = i == d.targets[r] ? 1.0 : 0.0;
      const double finite_z = std::isfinite(z) ? std::fabs(z) : 0.0;
      const double amplify = 1.0 + finite_z + std::fabs(lse);
      s.logprob.push_back(p == 0.0 && onehot == 0.0 ? 0.0
                          : inv_t * (g_logp * (onehot + p) + g_ent * p * (std::fabs(lp) + h + 1.0)) * amplify);
      const double ce_p = std::exp(x - ce_lse);
      s.cross_entropy.push_back(ce_weight * (ce_p + onehot) * (1.0 + (std::isfinite(x) ? std::fabs(x) : 0.0) + std::fabs(ce_lse)));
      const double lq = u * inv_t - ref_lse;
      s.kl.push_back(p == 0.0 ? 0.0
                     : g_kl * inv_t * p * (std::fabs(lp) + std::fabs(lq) + kl + 1.0) *
                           (amplify + std::fabs(u * inv_t) + std::fabs(ref_lse)));
    }
  }
  return s;
}

void check_parity(const LogitsData& d, bool with_mask) {
  const LogitsRun cpu = run_all(d, Device::cpu(), with_mask), gpu = run_all(d, Device::cuda(0), with_mask);
  const GradScales scale = grad_scales(d, cpu);
  int bad = 0;
  bad += compare_rows("logp", gpu.logp, cpu.logp, cpu.lse);
  bad += compare_rows("entropy", gpu.entropy, cpu.entropy, cpu.lse);
  bad += compare_rows("lse", gpu.lse, cpu.lse, cpu.lse);
  bad += compare_grads("d_logits", gpu.d_logits, cpu.d_logits, scale.logprob);
  bad += compare_grads("ce_d_logits", gpu.ce_d_logits, cpu.ce_d_logits, scale.cross_entropy);
  bad += compare_rows("kl", gpu.kl, cpu.kl, cpu.kl_lse);
  bad += compare_rows("kl_lse", gpu.kl_lse, cpu.kl_lse, cpu.kl_lse);
  bad += compare_rows("kl_ref_lse", gpu.kl_ref_lse, cpu.kl_ref_lse, cpu.kl_ref_lse);
  bad += compare_grads("kl_d_logits", gpu.kl_d_logits, cpu.kl_d_logits, scale.kl);
  CHECK(gpu.ce_count == cpu.ce_count);
  if (!(std::fabs(gpu.ce_loss - cpu.ce_loss) <= 1e-5 * (1.0 + std::fabs(cpu.ce_loss)))) bad += report("ce_loss", -1, gpu.ce_loss, cpu.ce_loss);
  // In place gives the same bits as out of place, on each backend.
  for (const LogitsRun* run : {&cpu, &gpu}) {
    CHECK(run->d_logits_in_place == run->d_logits);
    CHECK(run->ce_in_place == run->ce_d_logits);
    CHECK(run->kl_in_place == run->kl_d_logits);
  }
  // Masked cross-entropy rows are exactly 0 on the device.
  for (int64_t r = 0; r < d.rows; r++)
    if (with_mask && d.mask[r] == 0)
      for (int64_t i = 0; i < d.vocab; i++) CHECK(gpu.ce_d_logits[r * d.vocab + i] == 0.0f);
  CHECK(bad == 0);
}

struct Shape {
  int64_t rows, vocab;
};

}  // namespace

TEST(logits_cuda_matches_cpu_sizes) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(501);
  for (const Shape s : {Shape{3, 1}, Shape{5, 7}, Shape{4, 97}, Shape{3, 257}, Shape{2, 1009}, Shape{2, 3077}})
    for (bool per_row : {false, true}) check_parity(make_data(s.rows, s.vocab, 0.8f, per_row, 0.0, rng), per_row);
}

TEST(logits_cuda_matches_cpu_masked_vocabulary) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(503);
  check_parity(make_data(6, 300, 1.0f, true, 0.5, rng), true);
  check_parity(make_data(3, 2100, 1.0f, false, 0.97, rng), false);
}

TEST(logits_cuda_matches_cpu_extreme_temperatures) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(507);
  for (float t : {1e-3f, 1e3f}) check_parity(make_data(4, 301, t, false, 0.1, rng), true);
}

TEST(logits_cuda_is_deterministic) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(509);
  const LogitsData d = make_data(5, 1500, 1.3f, true, 0.05, rng);
  const LogitsRun a = run_all(d, Device::cuda(0), true), b = run_all(d, Device::cuda(0), true);
  CHECK(a.logp == b.logp && a.entropy == b.entropy && a.lse == b.lse && a.d_logits == b.d_logits);
  CHECK(a.ce_d_logits == b.ce_d_logits && a.ce_loss == b.ce_loss && a.kl == b.kl && a.kl_d_logits == b.kl_d_logits);
}

TEST(logits_no_rows_on_every_backend) {
  Rng rng(511);
  const LogitsData d = make_data(0, 9, 1.0f, false, 0.0, rng);
  for (Device device : backends()) {
    const LogitsRun run = run_all(d, device, true);
    CHECK(run.logp.empty() && run.d_logits.empty() && run.ce_count == 0 && run.ce_loss == 0.0);
  }
}
