// The decoder-layer kernels (kernels/layers.h) on every backend of this build, against double-precision
// loops written here. Tolerances are relative to each output's error scale (the magnitudes the f32 kernels
// round), as in test/layers.test.ts. Beyond accuracy: rmsnorm's dWeight and the embedding scatter-add
// have one fixed summation order, so they must be bitwise equal across backends and run to run.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../../core/kernels/layers.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

// |got - want| <= rel * scale per element; prints the first few failures.
int count_outside(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                  const std::vector<double>& scale, double rel) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); i++)
    if (!(std::fabs(got[i] - want[i]) <= rel * scale[i]) && bad++ < 5)
      std::printf("  %s[%zu]: got %.9g, want %.9g, bound %.3g\n", what, i, got[i], want[i], rel * scale[i]);
  return bad;
}

std::vector<double> magnitudes(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = std::fabs(v[i]) + 1e-30;
  return out;
}

struct NormRun {
  std::vector<float> y, rstd, dx, d_weight;
};

NormRun run_rmsnorm(Device device, int64_t n, int64_t d, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& dy, const std::vector<float>& dx0, const std::vector<float>& dw0, float eps) {
  const Tensor xt = upload(x, device), wt = upload(w, device), dyt = upload(dy, device);
  const Tensor y = upload(std::vector<float>(x.size()), device), rstd = upload(std::vector<float>(n), device);
  const Tensor dx = upload(dx0, device), dw = upload(dw0, device);
  rmsnorm(device, RmsnormArgs{xt.data_as<const float>(), wt.data_as<const float>(), y.data_as<float>(), rstd.data_as<float>(), n, d, eps});
  RmsnormBackwardArgs b{xt.data_as<const float>(), wt.data_as<const float>(), rstd.data_as<const float>(), dyt.data_as<const float>(),
                        dx.data_as<float>(), dw.data_as<float>(), n, d, true, true};
  rmsnorm_backward(device, b);
  return {download<float>(y), download<float>(rstd), download<float>(dx), download<float>(dw)};
}

}  // namespace

TEST(rmsnorm_matches_double_loops_and_dweight_is_bitwise_equal_across_backends) {
  Rng rng(901);
  const float eps = 1e-5f;
  for (auto [n, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {65, 96}, {130, 257}}) {
    const std::vector<float> x = rng.normals(n * d, 1.0f), w = rng.normals(d, 1.0f), dy = rng.normals(n * d, 1.0f);
    const std::vector<float> dx0 = rng.normals(n * d, 1.0f), dw0 = rng.normals(d, 1.0f);
    std::vector<NormRun> runs;
    for (Device device : backends()) {
      const NormRun run = run_rmsnorm(device, n, d, x, w, dy, dx0, dw0, eps);
      // The reference: rstd in f64, and the gradients at the kernel's own (f32) rstd.
      std::vector<double> y(n * d), rstd(n), dx(n * d), dw(d), y_scale(n * d), dx_scale(n * d), dw_scale(d);
      for (int64_t r = 0; r < n; r++) {
        double sum = 0.0, dot = 0.0, dot_scale = 0.0;
        for (int64_t j = 0; j < d; j++) sum += static_cast<double>(x[r * d + j]) * x[r * d + j];
        rstd[r] = 1.0 / std::sqrt(sum / d + eps);
        const double s = run.rstd[r];
        for (int64_t j = 0; j < d; j++) {
          const double g = static_cast<double>(dy[r * d + j]) * w[j];
          dot += g * x[r * d + j];
          dot_scale += std::fabs(g * x[r * d + j]);
        }
        for (int64_t j = 0; j < d; j++) {
          const int64_t i = r * d + j;
          const double g = static_cast<double>(dy[i]) * w[j];
          y[i] = x[i] * rstd[r] * w[j];
          y_scale[i] = std::fabs(y[i]) + 1e-30;
          dx[i] = dx0[i] + s * g - s * s * s * dot / d * x[i];
          dx_scale[i] = std::fabs(dx0[i]) + std::fabs(s * g) + s * s * s * dot_scale / d * std::fabs(x[i]);
          dw[j] += dy[i] * x[i] * s;
          dw_scale[j] += std::fabs(dy[i] * x[i] * s);
        }
      }
      for (int64_t j = 0; j < d; j++) dw[j] += dw0[j], dw_scale[j] += std::fabs(dw0[j]);
      CHECK(count_outside("rstd", run.rstd, rstd, magnitudes(rstd), std::ldexp(1.0, -22)) == 0);
      CHECK(count_outside("y", run.y, y, y_scale, std::ldexp(1.0, -21)) == 0);
      CHECK(count_outside("dx", run.dx, dx, dx_scale, std::ldexp(1.0, -21)) == 0);
      CHECK(count_outside("dWeight", run.d_weight, dw, dw_scale, std::ldexp(1.0, -21)) == 0);
      const NormRun again = run_rmsnorm(device, n, d, x, w, dy, dx0, dw0, eps);
      CHECK(again.d_weight == run.d_weight && again.dx == run.dx);
      runs.push_back(run);
    }
    // Same rstd bits give the same dWeight bits: both backends sum the same f32 terms in the same order.
    if (runs.size() == 2 && runs[0].rstd == runs[1].rstd) CHECK(runs[0].d_weight == runs[1].d_weight);
  }
}

TEST(swiglu_matches_double_loops_and_stays_finite) {
  Rng rng(902);
  for (auto [n, f] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {17, 129}}) {
    std::vector<float> gate_up = rng.normals(n * 2 * f, 4.0f);
    gate_up[0] = -200.0f;  // e^-g overflows: silu must be 0, not NaN
    if (f > 1) gate_up[1] = 200.0f;
    const std::vector<float> dh = rng.normals(n * f, 1.0f);
    std::vector<double> h(n * f), dgu(n * 2 * f), h_scale(n * f), dgu_scale(n * 2 * f);
    for (int64_t r = 0; r < n; r++)
      for (int64_t j = 0; j < f; j++) {
        const double g = gate_up[r * 2 * f + j], up = gate_up[r * 2 * f + f + j], s = 1.0 / (1.0 + std::exp(-g));
        const int64_t i = r * f + j, at = r * 2 * f + j;
        h[i] = g * s * up;
        h_scale[i] = std::fabs(h[i]) + 1e-30;
        dgu[at] = dh[i] * up * s * (1.0 + g * (1.0 - s));
        dgu_scale[at] = std::fabs(dh[i] * up) * (1.0 + std::fabs(g)) + 1e-30;
        dgu[at + f] = dh[i] * g * s;
        dgu_scale[at + f] = std::fabs(dgu[at + f]) + 1e-30;
      }
    for (Device device : backends()) {
      const Tensor gu = upload(gate_up, device), dht = upload(dh, device);
      const Tensor ht = upload(std::vector<float>(n * f), device), dgut = upload(std::vector<float>(n * 2 * f), device);
      swiglu(device, SwigluArgs{gu.data_as<const float>(), ht.data_as<float>(), n, f});
      swiglu_backward(device, SwigluBackwardArgs{gu.data_as<const float>(), dht.data_as<const float>(), dgut.data_as<float>(), n, f});
      const std::vector<float> got_h = download<float>(ht), got_d = download<float>(dgut);
      bool finite = true;
      for (float v : got_h) finite = finite && std::isfinite(v);
      for (float v : got_d) finite = finite && std::isfinite(v);
      CHECK(finite);
      CHECK(count_outside("h", got_h, h, h_scale, std::ldexp(1.0, -20)) == 0);
      CHECK(count_outside("dGateUp", got_d, dgu, dgu_scale, std::ldexp(1.0, -20)) == 0);
    }
  }
}

TEST(embedding_gathers_exactly_and_scatter_adds_in_token_order) {
  Rng rng(903);
  for (auto [n, v, d] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {40, 9, 5}, {300, 37, 130}}) {
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng.uniform() < 0.6 ? rng.below(3) : rng.below(static_cast<uint32_t>(v)));
    const std::vector<float> table = rng.normals(v * d, 1.0f), d_out = rng.normals(n * d, 1.0f), d_table0 = rng.normals(v * d, 1.0f);
    // The f32 sequence both backends must reproduce bitwise, and its double-precision counterpart.
    std::vector<float> sequential = d_table0;
    std::vector<double> exact(d_table0.begin(), d_table0.end()), scale(v * d);
    for (int64_t i = 0; i < v * d; i++) scale[i] = std::fabs(d_table0[i]);
    for (int64_t t = 0; t < n; t++)
      for (int64_t j = 0; j < d; j++) {
        sequential[ids[t] * d + j] += d_out[t * d + j];
        exact[ids[t] * d + j] += d_out[t * d + j];
        scale[ids[t] * d + j] += std::fabs(d_out[t * d + j]);
      }
    for (Device device : backends()) {
      const Tensor idt = upload(ids, device), tt = upload(table, device), out = upload(std::vector<float>(n * d), device);
      embedding(device, EmbeddingArgs{idt.data_as<const int32_t>(), tt.data_as<const float>(), out.data_as<float>(), n, v, d});
      const std::vector<float> rows = download<float>(out);
      bool exact_copy = true;
      for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < d; j++) exact_copy = exact_copy && rows[t * d + j] == table[ids[t] * d + j];
      CHECK(exact_copy);
      const Tensor dot = upload(d_out, device), dtt = upload(d_table0, device);
      embedding_backward(device, EmbeddingBackwardArgs{idt.data_as<const int32_t>(), dot.data_as<const float>(), dtt.data_as<float>(), n, v, d});
      const std::vector<float> got = download<float>(dtt);
      CHECK(got == sequential);
      CHECK(count_outside("dTable", got, exact, scale, static_cast<double>(n) * std::ldexp(1.0, -24)) == 0);
    }
  }
}

TEST(axpby_matches_double_loops_including_in_place_and_beta_zero) {
  Rng rng(904);
  for (int64_t n : {1, 1000, 70001}) {
    const std::vector<float> x = rng.normals(n, 1.0f), y = rng.normals(n, 1.0f);
    for (auto [alpha, beta] : {std::pair<float, float>{1.0f, 1.0f}, {-0.25f, 1.5f}, {3.0f, 0.0f}}) {
      std::vector<double> want(n), scale(n);
      for (int64_t i = 0; i < n; i++) {
        want[i] = static_cast<double>(alpha) * x[i] + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * y[i]);
        scale[i] = std::fabs(alpha * x[i]) + std::fabs(beta * y[i]) + 1e-30;
      }
      for (Device device : backends()) {
        const Tensor xt = upload(x, device);
        std::vector<float> y_start = y;
        if (beta == 0.0f) y_start.assign(n, NAN);  // never read
        const Tensor yt = upload(y_start, device);
        axpby(device, AxpbyArgs{xt.data_as<const float>(), yt.data_as<float>(), n, alpha, beta});
        CHECK(count_outside("y", download<float>(yt), want, scale, std::ldexp(1.0, -22)) == 0);
        // In place: x is y.
        const Tensor same = upload(x, device);
        axpby(device, AxpbyArgs{same.data_as<const float>(), same.data_as<float>(), n, alpha, 0.5f});
        std::vector<double> doubled(n), doubled_scale(n);
        for (int64_t i = 0; i < n; i++) {
          doubled[i] = (static_cast<double>(alpha) + 0.5) * x[i];
          doubled_scale[i] = (std::fabs(alpha) + 0.5) * std::fabs(x[i]) + 1e-30;
        }
        CHECK(count_outside("in place", download<float>(same), doubled, doubled_scale, std::ldexp(1.0, -22)) == 0);
      }
    }
  }
}
