// Attention kernels on every backend of this build: the CUDA (or emulated) forward against the CPU
// forward over packed, GQA and cross-length causal problems; the backward likewise; RoPE on CUDA against
// the CPU, in place and with position offsets included; KV-cache append and split-KV decode against the
// CPU. The float64 oracle lives in test/reference/attention.ts; here the CPU kernel (checked against it by
// vitest) is the reference.
//
// Tolerances: the CUDA forward multiplies on bf16 tensor cores (q * scale, k, P and v rounded to bf16,
// 2^-9 relative each; f32 accumulation). A score moves by at most 2^-8 * scale * sum_d |q_d k_d|, a few
// hundredths here, so o (a convex combination of v ~ N(0, 0.5^2)) agrees with the f32 CPU within 2e-2
// absolute and lse within 1e-2 relative. The CUDA backward is on bf16 tensor cores too (S and dP
// recomputed from bf16 operands, bf16 P and dS times bf16 dO, q, k; f32 accumulation and f32 delta): dq, dk
// and dv agree with the f32 CPU within 2e-2 of that gradient's scale (its largest magnitude, at least 1);
// vitest measures ~5e-3 at worst. The rest is f32 on both sides: 2e-5 absolute for o-like values.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../../core/kernels/attention.h"
#include "../../core/tensor.h"
#include "../test_main.h"
#include "kernel_test_support.h"

using namespace talaria;
using namespace talaria::testing;

namespace {

constexpr double kBf16Output = 2e-2, kBf16Lse = 1e-2, kBf16Gradient = 2e-2;

struct Problem {
  std::vector<int32_t> cu_q, cu_k;
  int heads, kv_heads, d;
  bool causal;
  std::vector<float> q, k, v;
};

Problem make_problem(Rng& rng, const std::vector<int32_t>& lq, const std::vector<int32_t>& lk, int heads, int kv_heads,
                     int d, bool causal) {
  Problem p{{0}, {0}, heads, kv_heads, d, causal, {}, {}, {}};
  for (size_t b = 0; b < lq.size(); b++) {
    p.cu_q.push_back(p.cu_q.back() + lq[b]);
    p.cu_k.push_back(p.cu_k.back() + lk[b]);
  }
  p.q = rng.normals(static_cast<size_t>(p.cu_q.back()) * heads * d, 1.0f);
  p.k = rng.normals(static_cast<size_t>(p.cu_k.back()) * kv_heads * d, 1.0f);
  p.v = rng.normals(static_cast<size_t>(p.cu_k.back()) * kv_heads * d, 0.5f);
  return p;
}

struct Outputs {
  std::vector<float> o, lse;
};

Outputs run_forward(const Problem& p, Device device) {
  const int64_t nq = p.cu_q.back();
  Tensor q = upload(p.q, device), k = upload(p.k, device), v = upload(p.v, device);
  Tensor cu_q = upload(p.cu_q, device), cu_k = upload(p.cu_k, device);
  Tensor o = Tensor::empty({nq * p.heads * p.d}, DType::F32, device), lse = Tensor::empty({nq * p.heads}, DType::F32, device);
  AttentionForwardArgs a{};
  a.q = q.data_as<const float>(), a.k = k.data_as<const float>(), a.v = v.data_as<const float>();
  a.cu_seqlens_q = device.is_cpu() ? p.cu_q.data() : cu_q.data_as<const int32_t>();
  a.cu_seqlens_k = device.is_cpu() ? p.cu_k.data() : cu_k.data_as<const int32_t>();
  a.num_seqs = static_cast<int64_t>(p.cu_q.size()) - 1;
  a.total_q = nq, a.total_k = p.cu_k.back();
  for (size_t b = 1; b < p.cu_q.size(); b++) {
    a.max_seqlen_q = std::max<int64_t>(a.max_seqlen_q, p.cu_q[b] - p.cu_q[b - 1]);
    a.max_seqlen_k = std::max<int64_t>(a.max_seqlen_k, p.cu_k[b] - p.cu_k[b - 1]);
  }
  a.heads = p.heads, a.kv_heads = p.kv_heads, a.head_dim = p.d;
  a.scale = 1.0f / std::sqrt(static_cast<float>(p.d));
  a.causal = p.causal;
  a.o = o.data_as<float>(), a.lse = lse.data_as<float>();
  attention_forward(device, a);
  return {download<float>(o), download<float>(lse)};
}

int compare(const char* what, const std::vector<float>& got, const std::vector<float>& want, bool relative, double tol) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const bool both_neg_inf = std::isinf(got[i]) && std::isinf(want[i]) && got[i] < 0 && want[i] < 0;
    const double bound = tol * (relative ? std::max(1.0, std::fabs(static_cast<double>(want[i]))) : 1.0);
    if (!both_neg_inf && !(std::fabs(static_cast<double>(got[i]) - want[i]) <= bound) && bad++ < 4)
      std::printf("  %s[%zu]: cuda %.9g cpu %.9g\n", what, i, got[i], want[i]);
  }
  return bad;
}

}  // namespace

TEST(attention_forward_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(601);
  struct Case { std::vector<int32_t> lq, lk; int h, hkv, d; bool causal; };
  const Case cases[] = {
      {{1, 17, 40}, {1, 17, 40}, 4, 2, 32, true},
      {{33}, {33}, 2, 1, 64, false},
      {{5, 20}, {9, 12}, 2, 2, 128, true},  // more keys, then fewer keys than queries (rows that see none)
      {{3, 0}, {0, 4}, 4, 4, 32, true},     // no keys at all for one sequence, no queries for the other
  };
  for (const Case& c : cases) {
    const Problem p = make_problem(rng, c.lq, c.lk, c.h, c.hkv, c.d, c.causal);
    const Outputs cpu = run_forward(p, Device::cpu()), gpu = run_forward(p, Device::cuda(0));
    const int bad = compare("o", gpu.o, cpu.o, false, kBf16Output) + compare("lse", gpu.lse, cpu.lse, true, kBf16Lse);
    if (bad > 0) std::printf("  (H = %d, Hkv = %d, D = %d, causal %d)\n", c.h, c.hkv, c.d, c.causal);
    CHECK(bad == 0);
  }
}

TEST(rope_cuda_matches_cpu_in_place_too) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(602);
  const std::vector<int32_t> cu = {0, 3, 70, 71};
  const int heads = 3, d = 16;
  const std::vector<float> x = rng.normals(static_cast<size_t>(cu.back()) * heads * d, 1.0f);
  for (bool inverse : {false, true}) {
    std::vector<std::vector<float>> results;
    for (Device device : backends()) {
      Tensor in = upload(x, device), cu_dev = upload(cu, device);
      RopeArgs a{in.data_as<const float>(), in.data_as<float>(), device.is_cpu() ? cu.data() : cu_dev.data_as<const int32_t>(),
                 3, cu.back(), 67, heads, d, 10000.0, inverse};
      rope(device, a);  // in place
      results.push_back(download<float>(in));
    }
    CHECK(compare("rope", results[1], results[0], false, 1e-6) == 0);
  }
}

// Position offsets (KV-cache decoding), which CUDA reads from device memory: a decode step (one token per
// sequence at scattered positions, up to the i32 limit: the CPU's table then has one row per token) and
// prefill chunks continuing their sequences (the CPU's table spans positions [100, 131)).
TEST(rope_position_offsets_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(604);
  struct Case { std::vector<int32_t> cu, offsets; int64_t max_seqlen; };
  const Case cases[] = {{{0, 1, 2, 3, 4}, {0, 100000, 7, 2147483646}, 1}, {{0, 30, 30, 41}, {100, 5, 120}, 30}};
  const int heads = 2, d = 32;
  for (const Case& c : cases) {
    const std::vector<float> x = rng.normals(static_cast<size_t>(c.cu.back()) * heads * d, 1.0f);
    for (bool inverse : {false, true}) {
      std::vector<std::vector<float>> results;
      for (Device device : backends()) {
        Tensor in = upload(x, device), out = upload(x, device), cu_dev = upload(c.cu, device);
        Tensor offsets_dev = upload(c.offsets, device);
        const bool cpu = device.is_cpu();
        RopeArgs a{in.data_as<const float>(), out.data_as<float>(), cpu ? c.cu.data() : cu_dev.data_as<const int32_t>(),
                   static_cast<int64_t>(c.offsets.size()), c.cu.back(), c.max_seqlen, heads, d, 10000.0, inverse,
                   cpu ? c.offsets.data() : offsets_dev.data_as<const int32_t>()};
        rope(device, a);
        results.push_back(download<float>(out));
      }
      CHECK(compare("rope with offsets", results[1], results[0], false, 1e-6) == 0);
    }
  }
}

TEST(attention_backward_cuda_matches_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(603);
  const Problem p = make_problem(rng, {7, 40}, {9, 35}, 4, 2, 32, true);
  const int64_t nq = p.cu_q.back();
  const std::vector<float> d_o = rng.normals(static_cast<size_t>(nq) * p.heads * p.d, 1.0f);
  const Outputs fwd = run_forward(p, Device::cpu());
  std::vector<std::vector<float>> grads[2];
  for (int i = 0; i < 2; i++) {
    const Device device = i == 0 ? Device::cpu() : Device::cuda(0);
    Tensor q = upload(p.q, device), k = upload(p.k, device), v = upload(p.v, device), o = upload(fwd.o, device);
    Tensor lse = upload(fwd.lse, device), dout = upload(d_o, device), cu_q = upload(p.cu_q, device), cu_k = upload(p.cu_k, device);
    Tensor dq = Tensor::empty({q.numel()}, DType::F32, device), dk = Tensor::empty({k.numel()}, DType::F32, device),
           dv = Tensor::empty({v.numel()}, DType::F32, device);
    AttentionBackwardArgs b{};
    AttentionForwardArgs& a = b.fwd;
    a.q = q.data_as<const float>(), a.k = k.data_as<const float>(), a.v = v.data_as<const float>();
    a.cu_seqlens_q = device.is_cpu() ? p.cu_q.data() : cu_q.data_as<const int32_t>();
    a.cu_seqlens_k = device.is_cpu() ? p.cu_k.data() : cu_k.data_as<const int32_t>();
    a.num_seqs = 2, a.total_q = nq, a.total_k = p.cu_k.back(), a.max_seqlen_q = 40, a.max_seqlen_k = 35;
    a.heads = p.heads, a.kv_heads = p.kv_heads, a.head_dim = p.d, a.scale = 1.0f / std::sqrt(32.0f), a.causal = true;
    a.o = o.data_as<float>(), a.lse = lse.data_as<float>();
    b.d_o = dout.data_as<const float>(), b.dq = dq.data_as<float>(), b.dk = dk.data_as<float>(), b.dv = dv.data_as<float>();
    attention_backward(device, b);
    grads[i] = {download<float>(dq), download<float>(dk), download<float>(dv)};
  }
  const char* names[] = {"dq", "dk", "dv"};
  int bad = 0;
  for (int t = 0; t < 3; t++) {
    double scale = 1.0;  // the gradient's scale: its largest magnitude, at least 1
    for (const float x : grads[0][t]) scale = std::max(scale, std::fabs(static_cast<double>(x)));
    bad += compare(names[t], grads[1][t], grads[0][t], false, kBf16Gradient * scale);
  }
  CHECK(bad == 0);
}

TEST(kv_cache_append_and_split_decode_cuda_match_cpu) {
  if (!has_cuda()) NOT_APPLICABLE("no CUDA device in this build");
  Rng rng(604);
  // 600 cached tokens: 3 splits of 256 keys on CUDA, merged by lse; sequence 1 keeps an empty cache.
  const int64_t batch = 3, max_len = 600;
  const int heads = 4, kv_heads = 2, d = 64;
  const std::vector<int32_t> start = {5, 0, 0}, cu = {0, 595, 595, 612};
  const std::vector<float> k = rng.normals(static_cast<size_t>(cu.back()) * kv_heads * d, 1.0f);
  const std::vector<float> v = rng.normals(k.size(), 0.5f), q = rng.normals(static_cast<size_t>(batch) * heads * d, 1.0f);
  const std::vector<float> initial = rng.normals(static_cast<size_t>(batch * max_len) * kv_heads * d, 1.0f);
  std::vector<std::vector<float>> results[2];
  for (int i = 0; i < 2; i++) {
    const Device device = i == 0 ? Device::cpu() : Device::cuda(0);
    Tensor ck = upload(initial, device), cv = upload(initial, device), lens = upload(start, device);
    Tensor kt = upload(k, device), vt = upload(v, device), cut = upload(cu, device), qt = upload(q, device);
    std::vector<int32_t> lens_host = start;
    KvCacheAppendArgs ap{ck.data_as<float>(), cv.data_as<float>(), device.is_cpu() ? lens_host.data() : lens.data_as<int32_t>(),
                         kt.data_as<const float>(), vt.data_as<const float>(),
                         device.is_cpu() ? cu.data() : cut.data_as<const int32_t>(), batch, max_len, cu.back(), kv_heads, d};
    kv_cache_append(device, ap);
    Tensor o = Tensor::empty({batch * heads * d}, DType::F32, device), lse = Tensor::empty({heads * batch}, DType::F32, device);
    AttentionDecodeArgs de{qt.data_as<const float>(), ck.data_as<const float>(), cv.data_as<const float>(),
                           device.is_cpu() ? lens_host.data() : lens.data_as<const int32_t>(), batch, max_len, 600,
                           heads, kv_heads, d, 0.125f, o.data_as<float>(), lse.data_as<float>()};
    attention_decode(device, de);
    const std::vector<int32_t> lens_after = device.is_cpu() ? lens_host : download<int32_t>(lens);
    results[i] = {download<float>(o), download<float>(lse), download<float>(ck),
                  std::vector<float>(lens_after.begin(), lens_after.end())};
  }
  CHECK(results[0][3] == std::vector<float>({600, 0, 17}));  // sequence 1 stays empty
  CHECK(results[1][3] == results[0][3]);
  CHECK(results[1][2] == results[0][2]);  // the same rows appended at the same places
  CHECK(compare("o", results[1][0], results[0][0], false, 2e-5) == 0);
  CHECK(compare("lse", results[1][1], results[0][1], true, 1e-5) == 0);
}
