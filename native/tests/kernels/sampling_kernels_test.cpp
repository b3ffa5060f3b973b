// The sampler (native/core/kernels/sampling.h) on every backend of this build. The TypeScript suite checks
// the CPU against the bit-exact reference (test/reference/sampling.ts); this driver checks the shared math
// (Philox's published answers, the exp's accuracy) and that CUDA gives the CPU's tokens exactly, so
// sampling.cu runs under the emulator with CI's schedules and sanitizers (its shared-memory histograms,
// atomics and block scans are where a race would show). Without a CUDA backend only the cpu cases run.
//
// Tolerances: tokens must be identical. logp = log(e / W) in f64 rounded to f32 on both: equal within 1 ulp
// of f32 (2e-7 relative, from the two backends' f64 log). logpPlain sums the same f32 terms in another
// order in f64: 1e-6 relative.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../core/kernels/sampling.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct SampleData {
  int64_t rows = 0, vocab = 0;
  std::vector<float> logits, temperatures;
  std::vector<int32_t> history, offsets;
};

struct SampleRun {
  std::vector<int32_t> tokens;
  std::vector<float> logp, logp_plain;
};

// Random logits in [-4, 4) (rounded to quarters when `ties`), ~2% -inf, and 0-20 history tokens per row.
SampleData make_data(int64_t rows, int64_t vocab, bool ties, Rng& rng) {
  SampleData d;
  d.rows = rows, d.vocab = vocab;
  for (int64_t i = 0; i < rows * vocab; i++) {
    float x = static_cast<float>(rng.uniform() * 8.0 - 4.0);
    if (ties) x = std::round(x * 4.0f) / 4.0f;
    d.logits.push_back(rng.uniform() < 0.02 ? -INFINITY : x);
  }
  d.offsets.push_back(0);
  for (int64_t r = 0; r < rows; r++) {
    d.temperatures.push_back(static_cast<float>(0.3 + 1.7 * rng.uniform()));
    const uint32_t length = rng.below(21);
    for (uint32_t j = 0; j < length; j++) d.history.push_back(static_cast<int32_t>(rng.below(static_cast<uint32_t>(vocab))));
    d.offsets.push_back(static_cast<int32_t>(d.history.size()));
  }
  return d;
}

SampleRun run_sample(const SampleData& d, SampleArgs a, bool per_row_temperature, bool use_history, Device device) {
  const Tensor logits = upload(d.logits, device), temperatures = upload(d.temperatures, device);
  const Tensor history = upload(d.history.empty() ? std::vector<int32_t>{0} : d.history, device);
  const Tensor offsets = upload(d.offsets, device);
  const Tensor tokens = Tensor::empty({d.rows}, DType::I32, device);
  const Tensor logp = Tensor::empty({d.rows}, DType::F32, device), plain = Tensor::empty({d.rows}, DType::F32, device);
  a.logits = logits.data_as<float>();
  a.rows = d.rows, a.vocab = d.vocab;
  a.temperatures = per_row_temperature ? temperatures.data_as<float>() : nullptr;
  a.history = use_history ? history.data_as<int32_t>() : nullptr;
  a.history_offsets = use_history ? offsets.data_as<int32_t>() : nullptr;
  a.tokens = tokens.data_as<int32_t>(), a.logp = logp.data_as<float>(), a.logp_plain = plain.data_as<float>();
  sample(device, a);
  return SampleRun{download<int32_t>(tokens), download<float>(logp), download<float>(plain)};
}

SampleArgs base_args(uint64_t seed) {
  SampleArgs a{};
  a.seed = seed, a.offset = 12345;
  a.mode = SampleMode::Sample;
  a.temperature = 1.0f, a.top_p = 1.0f;
  a.penalties = Penalties{1.0f, 0.0f, 0.0f};
  return a;
}

bool close(float got, float want, double rel) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(static_cast<double>(got) - want) <= rel * std::fmax(1.0, std::fabs(static_cast<double>(want)));
}

// Bitwise, so the NaNs of a row without a token compare equal.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int compare_runs(const SampleRun& gpu, const SampleRun& cpu) {
  int bad = 0;
  for (size_t r = 0; r < cpu.tokens.size(); r++) {
    if (gpu.tokens[r] != cpu.tokens[r] || !close(gpu.logp[r], cpu.logp[r], 2e-7) || !close(gpu.logp_plain[r], cpu.logp_plain[r], 1e-6)) {
      if (bad++ < 5)
        std::printf("  row %zu: cuda %d %.9g %.9g, cpu %d %.9g %.9g\n", r, gpu.tokens[r], gpu.logp[r], gpu.logp_plain[r],
                    cpu.tokens[r], cpu.logp[r], cpu.logp_plain[r]);
    }
  }
  return bad;
}

TEST(philox_known_answers) {
  // Random123's kat_vectors for philox4x32_10.
  const Philox4x32 zero = philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u && zero.v[1] == 0xe169c58du && zero.v[2] == 0xbc57ac4cu && zero.v[3] == 0x9b00dbd8u);
  const Philox4x32 ones = philox4x32_10(Philox4x32{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  CHECK(ones.v[0] == 0x408f276du && ones.v[1] == 0x41c83b0eu && ones.v[2] == 0xa20bc7c6u && ones.v[3] == 0x6d5451fdu);
  const Philox4x32 pi = philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(pi.v[0] == 0xd16cfe09u && pi.v[1] == 0x94fdccebu && pi.v[2] == 0x5001e420u && pi.v[3] == 0x24126ea1u);
}

TEST(exp_nonpositive_is_accurate_and_weights_are_bounded) {
  CHECK(exp_nonpositive(0.0f) == 1.0f && token_weight(2.5f, 2.5f) == kWeightMax);
  CHECK(exp_nonpositive(-INFINITY) == 0.0f && exp_nonpositive(NAN) == 0.0f && exp_nonpositive(-88.0f) == 0.0f);
  double worst = 0.0;
  for (float x = -87.0f; x <= 0.0f; x = std::nextafter(x, 1.0f) + 1.37e-3f) {
    const double want = std::exp(static_cast<double>(x)), got = exp_nonpositive(x);
    worst = std::fmax(worst, std::fabs(got - want) / want);
    CHECK(token_weight(x, 0.0f) <= kWeightMax);
  }
  std::printf("  worst relative error %.3g (f32 epsilon 1.19e-7)\n", worst);
  CHECK(worst < 2.5e-7);  // ~2 ulp
}

TEST(sample_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(515);
  struct Shape { int64_t rows, vocab; bool ties; };
  for (const Shape s : {Shape{37, 1, false}, Shape{41, 97, true}, Shape{19, 1000, false}, Shape{7, 4099, true}, Shape{2, 70001, false}}) {
    const SampleData d = make_data(s.rows, s.vocab, s.ties, rng);
    for (int config = 0; config < 6; config++) {
      SampleArgs a = base_args(rng.next() >> 11);
      bool per_row = false, history = false;
      if (config == 1) a.top_k = 1 + rng.below(50), a.top_p = 0.8f;
      if (config == 2) a.min_p = 0.05f, per_row = true;
      if (config == 3) history = true, a.penalties = Penalties{1.3f, 0.4f, 0.15f}, a.top_p = 0.9f;
      if (config == 4) a.mode = SampleMode::Greedy, history = true, a.penalties = Penalties{2.0f, 0.0f, 0.0f};
      if (config == 5) a.temperature = 0.25f, a.top_k = 5, a.top_p = 0.5f, a.min_p = 0.3f, history = true,
                       a.penalties = Penalties{0.7f, -0.5f, 0.0f};
      const SampleRun cpu = run_sample(d, a, per_row, history, Device::cpu());
      const SampleRun gpu = run_sample(d, a, per_row, history, Device::cuda(0));
      const int bad = compare_runs(gpu, cpu);
      if (bad > 0) std::printf("  (N %lld, V %lld, config %d)\n", (long long)s.rows, (long long)s.vocab, config);
      CHECK(bad == 0);
    }
  }
}

TEST(sample_is_reproducible_and_handles_empty_and_dead_rows) {
  Rng rng(516);
  SampleData d = make_data(9, 300, true, rng);
  for (int64_t i = 0; i < d.vocab; i++) d.logits[4 * d.vocab + i] = i % 2 ? -INFINITY : NAN;  // row 4: no token
  SampleData empty;
  empty.vocab = 5, empty.offsets = {0};
  for (Device device : backends()) {
    SampleArgs a = base_args(99);
    a.top_p = 0.95f;
    const SampleRun first = run_sample(d, a, true, true, device), second = run_sample(d, a, true, true, device);
    CHECK(first.tokens == second.tokens && same_bits(first.logp, second.logp) && same_bits(first.logp_plain, second.logp_plain));
    CHECK(first.tokens[4] == -1 && std::isnan(first.logp[4]) && std::isnan(first.logp_plain[4]));
    for (size_t r = 0; r < first.tokens.size(); r++)
      if (r != 4) CHECK(first.tokens[r] >= 0 && first.tokens[r] < d.vocab && std::isfinite(first.logp[r]) && first.logp[r] <= 0.0f);
    CHECK(run_sample(empty, a, false, false, device).tokens.empty());
  }
}

}  // namespace
