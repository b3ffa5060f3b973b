// The optimizer kernels (kernels/optimizer.h) on every backend of this build. AdamW runs the same
// per-element formula (adamw_element) on both backends, so CUDA must match the CPU within a few ulp of
// each output's scale (FMA contraction may differ); the CPU is checked against the float64 reference by
// the TypeScript suite. The norm is an f64 sum of exact squares on both backends, in other orders:
// 1e-12 relative. Clipped gradients are g * scale with the same f32 scale: bitwise equal.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../../core/kernels/optimizer.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct AdamwState {
  std::vector<float> params, grads, m, v;
};

AdamwState make_state(int64_t n, Rng& rng) {
  AdamwState s{rng.normals(n, 1.0f), rng.normals(n, 1.0f), rng.normals(n, 0.1f), rng.normals(n, 0.1f)};
  for (float& x : s.v) x = x * x;
  return s;
}

AdamwState run_adamw(const AdamwState& s, Device device, const AdamwArgs& hyper) {
  const Tensor params = upload(s.params, device), grads = upload(s.grads, device), m = upload(s.m, device),
               v = upload(s.v, device);
  AdamwArgs a = hyper;
  a.params = params.data_as<float>(), a.grads = grads.data_as<const float>();
  a.m = m.data_as<float>(), a.v = v.data_as<float>();
  a.n = static_cast<int64_t>(s.params.size());
  adamw(device, a);
  return {download<float>(params), s.grads, download<float>(m), download<float>(v)};
}

int compare(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); i++)
    if (!(std::fabs(got[i] - want[i]) <= 4e-7 * (1.0 + std::fabs(want[i]))) && bad++ < 5)
      std::printf("  %s[%zu]: cuda %.9g, cpu %.9g\n", what, i, got[i], want[i]);
  return bad;
}

struct NormRun {
  double norm;
  float scale;
  std::vector<float> grads;
};

NormRun run_norm(const std::vector<float>& grads, Device device, float max_norm) {
  const Tensor g = upload(grads, device);
  NormRun out{0.0, 0.0f, {}};
  grad_norm(device, GradNormArgs{g.data_as<float>(), static_cast<int64_t>(grads.size()), max_norm, &out.norm, &out.scale});
  out.grads = download<float>(g);
  return out;
}

}  // namespace

TEST(adamw_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(801);
  for (int64_t n : {1, 1000, 70001}) {
    const AdamwState s = make_state(n, rng);
    AdamwArgs hyper{};
    hyper.beta1 = 0.9f, hyper.beta2 = 0.95f, hyper.eps = 1e-8f;
    hyper.decay = static_cast<float>(1.0 - 3e-4 * 0.1);
    hyper.step_size = static_cast<float>(3e-4 / (1.0 - std::pow(0.9, 5)));
    hyper.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(0.95, 5)));
    const AdamwState cpu = run_adamw(s, Device::cpu(), hyper), gpu = run_adamw(s, Device::cuda(0), hyper);
    CHECK(compare("params", gpu.params, cpu.params) == 0);
    CHECK(compare("m", gpu.m, cpu.m) == 0);
    CHECK(compare("v", gpu.v, cpu.v) == 0);
  }
}

TEST(grad_norm_cuda_matches_cpu_and_is_deterministic) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(803);
  for (int64_t n : {1, 16383, 16385, 100003}) {
    const std::vector<float> grads = rng.normals(n, 2.0f);
    const NormRun cpu = run_norm(grads, Device::cpu(), 0.0f), gpu = run_norm(grads, Device::cuda(0), 0.0f);
    CHECK(std::fabs(gpu.norm - cpu.norm) <= 1e-12 * cpu.norm);
    CHECK(gpu.scale == 1.0f && gpu.grads == grads);
    const float max_norm = static_cast<float>(cpu.norm / 4);
    const NormRun cpu_clip = run_norm(grads, Device::cpu(), max_norm), gpu_clip = run_norm(grads, Device::cuda(0), max_norm);
    const NormRun again = run_norm(grads, Device::cuda(0), max_norm);
    CHECK(gpu_clip.norm == again.norm && gpu_clip.grads == again.grads);
    CHECK(cpu_clip.scale < 1.0f);
    if (gpu_clip.scale == cpu_clip.scale) CHECK(gpu_clip.grads == cpu_clip.grads);
    CHECK(std::fabs(gpu_clip.scale - cpu_clip.scale) <= 1e-7f * cpu_clip.scale);
  }
}

TEST(grad_norm_is_zero_without_elements_on_every_backend) {
  for (Device device : backends()) {
    const NormRun run = run_norm({}, device, 1.0f);
    CHECK(run.norm == 0.0 && run.scale == 1.0f);
  }
}
