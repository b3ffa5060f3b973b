// The RL kernels (GAE, whitening) on every backend of this build. The CPU backend is the oracle here:
// the TypeScript suite checks it against the float64 reference (test/reference/rl.ts), and this
// driver checks the CUDA backend against it, so the CUDA source runs under the emulator with the
// schedules and sanitizers CI picks (DESIGN.md, "Testing"). Without a CUDA backend only the cpu
// cases run, which still exercise the driver under the sanitizers.
//
// Tolerances: GAE follows rl.cu's precision note, |cuda - cpu| <= 2e-6 * S_t + 1e-6 with
// S_t = sum_j k^(j-t) (|r_j| + g|V_j| + |v_j|) over the action tokens j >= t of t's sequence.
// Whitening: both backends accumulate in f64, so they agree to a few f32 ulps.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../../core/kernels/rl.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct GaeCase {
  std::string name;
  std::vector<int32_t> lengths;
  bool with_mask;
  bool with_bootstrap;
  float gamma;
  float lambda;
};

struct GaeOutputs {
  std::vector<float> advantages, returns;
};

struct GaeInputs {
  std::vector<float> rewards, values, bootstrap;
  std::vector<int32_t> cu_seqlens;
  std::vector<uint8_t> mask;
  int64_t max_seqlen = 0;
};

GaeInputs make_gae_inputs(const GaeCase& c, Rng& rng) {
  GaeInputs in;
  in.cu_seqlens.push_back(0);
  for (int32_t len : c.lengths) {
    in.cu_seqlens.push_back(in.cu_seqlens.back() + len);
    if (len > in.max_seqlen) in.max_seqlen = len;
  }
  const size_t n = static_cast<size_t>(in.cu_seqlens.back());
  in.rewards = rng.normals(n, 1.0f);
  in.values = rng.normals(n, 2.0f);
  in.bootstrap = rng.normals(c.lengths.size(), 1.0f);
  // Prompt-like runs of masked tokens, then actions; some sequences fully masked.
  in.mask.resize(n);
  for (size_t i = 0; i < n; ++i) in.mask[i] = rng.uniform() < 0.75 ? 1 : 0;
  return in;
}

GaeOutputs run_gae(const GaeCase& c, const GaeInputs& in, Device device) {
  const int64_t n = in.cu_seqlens.back(), b = static_cast<int64_t>(c.lengths.size());
  Tensor rewards = upload(in.rewards, device), values = upload(in.values, device);
  Tensor cu = upload(in.cu_seqlens, device), mask = upload(in.mask, device), boot = upload(in.bootstrap, device);
  Tensor adv = Tensor::empty({n}, DType::F32, device), ret = Tensor::empty({n}, DType::F32, device);
  GaeArgs args{};
  args.rewards = rewards.data_as<float>();
  args.values = values.data_as<float>();
  // The kernels read cu_seqlens where they run; the addon hands the CPU kernel a validated host copy.
  args.cu_seqlens = device.is_cpu() ? in.cu_seqlens.data() : cu.data_as<int32_t>();
  args.action_mask = c.with_mask ? mask.data_as<uint8_t>() : nullptr;
  args.bootstrap = c.with_bootstrap ? boot.data_as<float>() : nullptr;
  args.num_tokens = n;
  args.num_seqs = b;
  args.max_seqlen = in.max_seqlen;
  args.gamma = c.gamma;
  args.lambda = c.lambda;
  args.advantages = adv.data_as<float>();
  args.returns = ret.data_as<float>();
  gae_advantages(device, args);
  return GaeOutputs{download<float>(adv), download<float>(ret)};
}

// S_t of the file comment, per token: the size of what GAE sums into adv_t.
std::vector<double> gae_magnitudes(const GaeCase& c, const GaeInputs& in) {
  std::vector<double> s(in.rewards.size(), 0.0);
  const double k = double{c.gamma} * c.lambda;
  for (size_t seq = 0; seq < c.lengths.size(); ++seq) {
    double carry = 0.0;
    for (int64_t t = in.cu_seqlens[seq + 1] - 1; t >= in.cu_seqlens[seq]; --t) {
      const size_t i = static_cast<size_t>(t);
      if (c.with_mask && in.mask[i] == 0) {
        s[i] = carry;
        continue;
      }
      carry = std::fabs(in.rewards[i]) + c.gamma * std::fabs(in.values[i]) + std::fabs(in.values[i]) + k * carry;
      s[i] = carry;
    }
  }
  return s;
}

std::vector<int32_t> lengths_of(int count, int32_t lo, int32_t hi, Rng& rng) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; ++i) out.push_back(lo + static_cast<int32_t>(rng.below(static_cast<uint32_t>(hi - lo + 1))));
  return out;
}

std::vector<GaeCase> gae_cases() {
  Rng rng(7);
  std::vector<GaeCase> cases;
  // Warp mode (longest <= 512): many short sequences, including empty ones and length 1.
  cases.push_back({"many short", lengths_of(37, 0, 40, rng), true, true, 0.99f, 0.95f});
  cases.push_back({"single token", {1}, false, false, 1.0f, 1.0f});
  cases.push_back({"warp mode two chunks", {512, 300, 257, 256, 255}, true, false, 0.97f, 0.9f});
  // Block mode (longest <= 8192): a few long sequences.
  cases.push_back({"few long", {3001, 0, 2048, 777}, true, true, 1.0f, 0.95f});
  // Tile mode (longest > 8192): one very long sequence among short ones, cut across tiles.
  cases.push_back({"tile mode", {9000, 3, 0, 1500, 2049}, true, true, 0.99f, 1.0f});
  cases.push_back({"tile mode no mask", {8193, 4095}, false, false, 0.95f, 0.9f});
  return cases;
}

TEST(gae_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(11);
  for (const GaeCase& c : gae_cases()) {
    const GaeInputs in = make_gae_inputs(c, rng);
    const GaeOutputs cpu = run_gae(c, in, Device::cpu());
    const GaeOutputs gpu = run_gae(c, in, Device::cuda(0));
    const std::vector<double> scale = gae_magnitudes(c, in);
    int bad = 0;
    for (size_t i = 0; i < scale.size(); ++i) {
      const double tol = 2e-6 * scale[i] + 1e-6;
      const bool ok = std::fabs(double{gpu.advantages[i]} - cpu.advantages[i]) <= tol &&
                      std::fabs(double{gpu.returns[i]} - cpu.returns[i]) <= tol;
      if (!ok && bad++ < 3)
        std::printf("  %s: token %zu: cuda adv %.9g ret %.9g, cpu adv %.9g ret %.9g (tol %.3g)\n", c.name.c_str(), i,
                    gpu.advantages[i], gpu.returns[i], cpu.advantages[i], cpu.returns[i], tol);
    }
    CHECK(bad == 0);
  }
}

// Non-action tokens get exactly 0 on both backends (verl's rule), not merely something small.
TEST(gae_masked_tokens_are_exactly_zero) {
  Rng rng(13);
  for (Device device : backends()) {
    const GaeCase c{"mask", lengths_of(9, 1, 700, rng), true, true, 0.99f, 0.95f};
    const GaeInputs in = make_gae_inputs(c, rng);
    const GaeOutputs out = run_gae(c, in, device);
    for (size_t i = 0; i < in.mask.size(); ++i)
      if (in.mask[i] == 0) CHECK(out.advantages[i] == 0.0f && out.returns[i] == 0.0f);
  }
}

TEST(gae_is_bitwise_reproducible) {
  Rng rng(17);
  for (Device device : backends()) {
    const GaeCase c{"repeat", {9000, 17, 300}, true, true, 0.99f, 0.95f};
    const GaeInputs in = make_gae_inputs(c, rng);
    const GaeOutputs a = run_gae(c, in, device), b = run_gae(c, in, device);
    CHECK(a.advantages == b.advantages && a.returns == b.returns);
  }
}

std::vector<float> run_whiten(const std::vector<float>& x, const std::vector<uint8_t>* mask, bool shift_mean,
                              bool unbiased, Device device, bool in_place) {
  Tensor xt = upload(x, device);
  Tensor mt = mask != nullptr ? upload(*mask, device) : Tensor();
  Tensor out = in_place ? xt : Tensor::empty({static_cast<int64_t>(x.size())}, DType::F32, device);
  WhitenArgs args{};
  args.x = xt.data_as<float>();
  args.mask = mask != nullptr ? mt.data_as<uint8_t>() : nullptr;
  args.n = static_cast<int64_t>(x.size());
  args.shift_mean = shift_mean;
  args.unbiased = unbiased;
  args.eps = 1e-8f;
  args.out = out.data_as<float>();
  whiten(device, args);
  return download<float>(out);
}

TEST(whiten_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(19);
  for (size_t n : {size_t{1}, size_t{2}, size_t{255}, size_t{4097}, size_t{70001}}) {
    std::vector<float> x = rng.normals(n, 3.0f);
    for (float& v : x) v += 5.0f;  // an offset, so a missing mean shift would show
    std::vector<uint8_t> mask(n);
    for (auto& m : mask) m = rng.uniform() < 0.6 ? 1 : 0;
    for (bool masked : {false, true}) {
      for (bool shift : {true, false}) {
        const bool unbiased = shift;  // both settings of each flag are covered across the loop
        const std::vector<float> cpu = run_whiten(x, masked ? &mask : nullptr, shift, unbiased, Device::cpu(), false);
        const std::vector<float> gpu = run_whiten(x, masked ? &mask : nullptr, shift, unbiased, Device::cuda(0), n % 2 == 1);
        int bad = 0;
        for (size_t i = 0; i < n; ++i)
          if (std::fabs(double{gpu[i]} - cpu[i]) > 1e-5 * (1.0 + std::fabs(cpu[i])) && bad++ < 3)
            std::printf("  whiten n=%zu masked=%d shift=%d: [%zu] cuda %.9g cpu %.9g\n", n, masked, shift, i, gpu[i],
                        cpu[i]);
        CHECK(bad == 0);
      }
    }
  }
}

}  // namespace
