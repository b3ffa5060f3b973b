// The matrix multiply (kernels/matmul.h) on every backend of this build, against a float64 reference
// computed here: all four transposes, sizes of 1, odd and prime sizes that leave edge tiles on both
// backends (CPU: 12 x 32 tiles, 256-deep K blocks; CUDA: 64 x 64 tiles, 32-deep slices), alpha and beta,
// beta = 0 over NaN. Sizes stay small for the emulator, so the CUDA cases run under CI's schedules and
// sanitizers.
//
// Tolerances, per element, relative to S = |alpha| sum_k |a_ik b_kj| + |beta c_ij| (matmul.h, "Precision"):
// CPU (K + 8) 2^-24 (f32 sums in k order); CUDA adds 1.01 * 2^-7 (bf16 operands, 8 significant bits each).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../../core/kernels/matmul.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

struct Problem {
  int64_t m, n, k;
  bool trans_a, trans_b;
  float alpha, beta;
  std::vector<float> a, b, c;
};

Problem make_problem(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha, float beta, Rng& rng) {
  Problem p{m, n, k, trans_a, trans_b, alpha, beta, rng.normals(m * k, 1.0f), rng.normals(k * n, 1.0f),
            rng.normals(m * n, 1.0f)};
  if (beta == 0.0f)
    for (size_t i = 0; i < p.c.size(); i += 3) p.c[i] = NAN;  // never read
  return p;
}

// C on `device` (c uploaded when beta != 0, else a fresh output).
std::vector<float> run(const Problem& p, Device device) {
  const Tensor a = upload(p.a, device), b = upload(p.b, device), c = upload(p.c, device);
  matmul(device, MatmulArgs{a.data_as<const float>(), b.data_as<const float>(), c.data_as<float>(), p.m, p.n, p.k,
                            p.trans_a, p.trans_b, p.alpha, p.beta});
  return download<float>(c);
}

// Counts (and prints the first few) elements outside rel * S of the float64 reference.
int check_against_reference(const Problem& p, const std::vector<float>& got, double rel, const char* backend) {
  int bad = 0;
  for (int64_t i = 0; i < p.m; i++)
    for (int64_t j = 0; j < p.n; j++) {
      double sum = 0.0, scale = 0.0;
      for (int64_t q = 0; q < p.k; q++) {
        const double prod = static_cast<double>(p.trans_a ? p.a[q * p.m + i] : p.a[i * p.k + q]) *
                            (p.trans_b ? p.b[j * p.k + q] : p.b[q * p.n + j]);
        sum += prod;
        scale += std::fabs(prod);
      }
      const double old = p.beta == 0.0f ? 0.0 : static_cast<double>(p.beta) * p.c[i * p.n + j];
      const double want = p.alpha * sum + old, bound = rel * (std::fabs(p.alpha) * scale + std::fabs(old));
      const float g = got[i * p.n + j];
      if (!(std::fabs(g - want) <= bound) && bad++ < 5)
        std::printf("  %s %ldx%ldx%ld %c%c: C[%ld][%ld] = %.9g, reference %.9g, bound %.3g\n", backend, (long)p.m,
                    (long)p.n, (long)p.k, p.trans_a ? 'T' : 'N', p.trans_b ? 'T' : 'N', (long)i, (long)j, g, want, bound);
    }
  return bad;
}

double rel_for(Device device, int64_t k) {
  const double f32 = static_cast<double>(k + 8) * std::ldexp(1.0, -24);
  return device.is_cpu() ? f32 : 1.01 * std::ldexp(1.0, -7) + f32;
}

struct Dims {
  int64_t m, n, k;
};

void check_shapes(Device device, std::initializer_list<Dims> shapes, uint64_t seed) {
  Rng rng(seed);
  for (const Dims d : shapes)
    for (int t = 0; t < 4; t++)
      for (const auto& [alpha, beta] : {std::pair<float, float>{1.0f, 0.0f}, {-0.75f, 0.5f}}) {
        const Problem p = make_problem(d.m, d.n, d.k, t & 1, t & 2, alpha, beta, rng);
        CHECK(check_against_reference(p, run(p, device), rel_for(device, d.k), device.is_cpu() ? "cpu" : "cuda") == 0);
      }
}

}  // namespace

TEST(matmul_cpu_matches_f64_reference) {
  check_shapes(Device::cpu(), {{1, 1, 1}, {7, 13, 5}, {13, 33, 257}, {97, 31, 129}, {25, 65, 600}, {1, 300, 70}, {300, 1, 70}},
               701);
}

TEST(matmul_cuda_matches_f64_reference) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  check_shapes(Device::cuda(0), {{1, 1, 1}, {7, 13, 5}, {17, 9, 33}, {65, 70, 40}}, 703);
}

TEST(matmul_cuda_is_deterministic) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(705);
  const Problem p = make_problem(40, 72, 50, false, true, 1.5f, -0.25f, rng);
  CHECK(run(p, Device::cuda(0)) == run(p, Device::cuda(0)));
}
