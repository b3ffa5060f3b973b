// KV-cache append and single-token decode on the CPU (attention.h).
//
// Decode napkin math (B = 8, Lmax context 4096, Hkv = 8, D = 128): the step reads each sequence's cached K
// and V once, 2 * 4096 * 8 * 128 * 4 B = 32 MiB per sequence, 256 MiB for the batch: ~6 ms at 45 GB/s,
// against 2 * 2 * H * L * D FLOP = 0.27 GFLOP, 1 FLOP per byte: bandwidth-bound. So one task per
// (sequence, kv head) scores all H / Hkv query heads of the group in the same pass over its keys (each
// cached row is read once, not once per query head), keeps the scores of the whole context (L floats per
// head) and then sums P V in a second pass over V.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "attention_tiles.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {
using namespace attention_tiles;

constexpr int kMaxGroup = 64;  // query heads per kv head this task handles at once (chunks beyond)

// Cached rows are D floats every Hkv * D: short runs 4+ KiB apart that the hardware prefetcher follows
// poorly, so each pass asks for the row kAhead keys ahead itself (a prefetch past the slab is harmless).
constexpr int64_t kAhead = 16;
TALARIA_SIMD_INLINE void prefetch_row(const float* row, int floats) {
  for (int e = 0; e < floats; e += kLanes) __builtin_prefetch(row + e);
}

// Scores of `heads` query rows against `keys` cached rows (D floats, `stride` apart): s[h][j]. Each dot is
// D / 16 vector FMAs and a fixed-order lane tree (attention_tiles.h): deterministic, and no scalar chain.
TALARIA_SIMD_INLINE void score_rows(const float* q, int heads, const float* k, int64_t stride, int64_t keys, int d,
                                    float scale, float* s) {
  for (int64_t j = 0; j < keys; j++) {
    const float* kj = k + j * stride;
    prefetch_row(kj + kAhead * stride, d);
    for (int h = 0; h < heads; h++) {
      V16 acc = {};
      for (int e = 0; e < d; e += kLanes) acc += load(q + h * d + e) * load(kj + e);
      s[h * keys + j] = lanes_sum(acc) * scale;
    }
  }
}
TALARIA_SIMD_FUNCTION(void, decode_scores, score_rows,
                      (const float* q, int heads, const float* k, int64_t stride, int64_t keys, int d, float scale,
                       float* s),
                      (q, heads, k, stride, keys, d, scale, s))

// o[h] = sum_j p[h][j] v_j for `heads` rows, 64 output dims at a time so the accumulators (4 vectors per
// head, up to 4 heads: 16 registers) stay in registers over the whole pass over V.
TALARIA_SIMD_INLINE void weigh_rows(const float* p, int heads, const float* v, int64_t stride, int64_t keys, int d,
                                    float* o) {
  constexpr int kHeads = 4, kVecs = 4;
  for (int h0 = 0; h0 < heads; h0 += kHeads) {
    const int hn = heads - h0 < kHeads ? heads - h0 : kHeads;
    for (int e0 = 0; e0 < d; e0 += kVecs * kLanes) {
      const int vecs = (d - e0) / kLanes < kVecs ? (d - e0) / kLanes : kVecs;
      V16 acc[kHeads][kVecs] = {};
      for (int64_t j = 0; j < keys; j++) {
        const float* vj = v + j * stride + e0;
        prefetch_row(vj + kAhead * stride, vecs * kLanes);
        for (int h = 0; h < hn; h++) {
          const V16 w = splat(p[(h0 + h) * keys + j]);
          for (int c = 0; c < vecs; c++) acc[h][c] += w * load(vj + c * kLanes);
        }
      }
      for (int h = 0; h < hn; h++)
        for (int c = 0; c < vecs; c++) store(o + (h0 + h) * d + e0 + c * kLanes, acc[h][c]);
    }
  }
}
TALARIA_SIMD_FUNCTION(void, decode_weigh, weigh_rows,
                      (const float* p, int heads, const float* v, int64_t stride, int64_t keys, int d, float* o),
                      (p, heads, v, stride, keys, d, o))

TALARIA_SIMD_INLINE void exp_rows(float* s, int64_t n, float m) {
  for (int64_t j = 0; j < n; j++) s[j] = exp_f32(s[j] - m);
}
TALARIA_SIMD_FUNCTION(void, decode_exp, exp_rows, (float* s, int64_t n, float m), (s, n, m))

}  // namespace

void kv_cache_append(const KvCacheAppendArgs& a) {
  const int64_t row = static_cast<int64_t>(a.kv_heads) * a.head_dim;
  parallel_for(0, a.batch, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) {
      const int64_t len = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
      const int64_t at = (b * a.max_len + a.cache_seqlens[b]) * row, from = a.cu_seqlens[b] * row;
      std::memcpy(a.cache_k + at, a.k + from, sizeof(float) * len * row);
      std::memcpy(a.cache_v + at, a.v + from, sizeof(float) * len * row);
      a.cache_seqlens[b] += static_cast<int32_t>(len);
    }
  });
}

void attention_decode(const AttentionDecodeArgs& a) {
  const int group = a.heads / a.kv_heads, d = a.head_dim;
  const int64_t row = static_cast<int64_t>(a.kv_heads) * d;
  parallel_for(0, a.batch * a.kv_heads, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> scores, out(static_cast<size_t>(std::min(group, kMaxGroup)) * d);
    for (int64_t task = lo; task < hi; task++) {
      const int64_t b = task / a.kv_heads;
      const int g = static_cast<int>(task % a.kv_heads);
      const int64_t keys = a.cache_seqlens[b];
      const float* k = a.cache_k + b * a.max_len * row + g * d;
      const float* v = a.cache_v + b * a.max_len * row + g * d;
      for (int h0 = g * group; h0 < (g + 1) * group; h0 += kMaxGroup) {
        const int heads = std::min(kMaxGroup, (g + 1) * group - h0);
        scores.resize(static_cast<size_t>(heads * keys));
        decode_scores(a.q + (b * a.heads + h0) * d, heads, k, row, keys, d, a.scale, scores.data());
        for (int h = 0; h < heads; h++) {
          float* s = scores.data() + h * keys;
          const float m = keys > 0 ? *std::max_element(s, s + keys) : -INFINITY;
          if (keys > 0) decode_exp(s, keys, m);
          double sum = 0.0;  // long contexts: f64, in order
          for (int64_t j = 0; j < keys; j++) sum += s[j];
          const float inv = keys > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
          for (int64_t j = 0; j < keys; j++) s[j] *= inv;
          a.lse[(h0 + h) * a.batch + b] = keys > 0 ? m + static_cast<float>(std::log(sum)) : -INFINITY;
        }
        decode_weigh(scores.data(), heads, v, row, keys, d, out.data());
        std::memcpy(a.o + (b * a.heads + h0) * d, out.data(), sizeof(float) * heads * d);
      }
    }
  });
}

}  // namespace cpu
}  // namespace talaria
