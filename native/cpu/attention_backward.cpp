// Attention backward on the CPU, FlashAttention-2's recompute scheme without atomics. A preprocess pass
// computes delta_i = dO_i . o_i. Then two passes over independent items, so no two threads ever write the
// same gradient and the result does not depend on the thread count:
//   dk/dv pass: one item per (sequence, kv head, 64-key block). For every query head of its group and every
//     query block that sees the keys, it recomputes S^T = K Q^T and P^T = exp(S^T - lse), dP^T = V dO^T,
//     dS^T = P^T (dP^T - delta), and accumulates dV += P^T dO and dK += dS^T Q in its own tile: the GQA
//     sum over the group happens inside the item, in a fixed order.
//   dq pass: one item per (sequence, head, 64-query block), as in the forward. For every key block it
//     recomputes S, P, dP and dS and accumulates dQ += dS K.
// q, dO, k and v are transposed once per call into [D][64] blocks (attention_tiles.h), so every S and dP
// tile is the same broadcast-times-vector microkernel as the forward's S.
//
// Napkin math (B = 4, H = 8, T = 512, D = 64, causal): FlashAttention counts 2.5x the forward, 5.4 GFLOP
// (5 matmuls of the 2 the forward has); this scheme does 7 (S and dP twice), 7.5 GFLOP, to have no
// atomics and no stored P. At ~130 GFLOP/s of matmul that is ~58 ms, fwd+bwd ~70 GFLOP/s counted;
// measured on the 2-core dev machine: fwd+bwd 43 ms, 87 GFLOP/s counted (bench/attention.bench.ts).
// Tiles: the dk/dv item keeps K, V, dK, dV (64 x D each) and P^T, dS^T (64 x 64): 160 KiB at D = 128, in L2.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/thread_pool.h"
#include "attention_tiles.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {
namespace {
using namespace attention_tiles;

// The per-call re-layouts every item reads.
struct Shared {
  TransposedBlocks qt, dot, kt, vt;  // q * scale, dO, k and v as [D][64] blocks
  std::vector<float> delta;          // [H][Nq]: dO_i . o_i
};

struct alignas(64) KvTile {
  float k[kBlockK * kMaxD], v[kBlockK * kMaxD];    // the key block's rows, zero-padded
  float dk[kBlockK * kMaxD], dv[kBlockK * kMaxD];  // gradient accumulators
  float p[kBlockK * kBlockQ], ds[kBlockK * kBlockQ];  // P^T, then dP^T turned into dS^T
  float lse[kBlockQ], delta[kBlockQ];                 // of the current query block, 0 past its rows
};

struct alignas(64) QTile {
  float q[kBlockQ * kMaxD], d_o[kBlockQ * kMaxD];  // q * scale and dO rows, zero-padded
  float dq[kBlockQ * kMaxD];
  float s[kBlockQ * kBlockK], dp[kBlockQ * kBlockK];
  float lse[kBlockQ], delta[kBlockQ];
};

// Copies `rows` rows of D floats, `stride` apart, into a dense tile, times `scale`; rows up to `padded` are 0.
template <int D>
TALARIA_SIMD_INLINE void load_rows(float* tile, const float* src, int64_t stride, int rows, int padded, float scale) {
  for (int r = 0; r < padded; r++)
    for (int d = 0; d < D; d++) tile[r * D + d] = r < rows ? src[r * stride + d] * scale : 0.0f;
}

// One row of P (or P^T) and dS: p = exp(s - lse) where the row may look (columns [lo, hi)), else 0;
// ds = p * (dp - delta). `lse` and `delta` are per column (P^T rows) or splat (P rows) via their stride.
TALARIA_SIMD_INLINE void probabilities_row(float* s, float* dp, const float* lse, const float* delta, int step,
                                           int lo, int hi) {
  for (int c = 0; c < kBlockK; c++) {
    const float e = exp_f32(s[c] - lse[c * step]);  // vectorised; the select drops masked columns
    const float p = c >= lo && c < hi ? e : 0.0f;
    s[c] = p;
    dp[c] = p * (dp[c] - delta[c * step]);
  }
}

// dk and dv for keys [kb, kb + 64) of kv head g of sequence b.
template <int D>
TALARIA_SIMD_INLINE void kv_item(const AttentionBackwardArgs& ba, const Shared& sh, int64_t b, int g, int64_t kb,
                                 KvTile& t) {
  const AttentionForwardArgs& a = ba.fwd;
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int64_t q0 = a.cu_seqlens_q[b], lq = a.cu_seqlens_q[b + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[b], lk = a.cu_seqlens_k[b + 1] - k0;
  const int keys = static_cast<int>(std::min<int64_t>(kBlockK, lk - kb)), padded = (keys + kRows - 1) / kRows * kRows;
  load_rows<D>(t.k, a.k + (k0 + kb) * kvd + g * D, kvd, keys, padded, 1.0f);
  load_rows<D>(t.v, a.v + (k0 + kb) * kvd + g * D, kvd, keys, padded, 1.0f);
  std::fill(t.dk, t.dk + padded * D, 0.0f);
  std::fill(t.dv, t.dv + padded * D, 0.0f);
  // Query i sees key j when i >= j - (lk - lq): the first block that sees key kb.
  const int64_t first_query = a.causal ? std::max<int64_t>(0, kb - (lk - lq)) : 0;
  const int group = a.heads / a.kv_heads;
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int64_t qb = first_query / kBlockQ * kBlockQ; qb < lq; qb += kBlockQ) {
      const int queries = static_cast<int>(std::min<int64_t>(kBlockQ, lq - qb));
      for (int i = 0; i < kBlockQ; i++) {
        t.lse[i] = i < queries ? a.lse[h * a.total_q + q0 + qb + i] : 0.0f;
        t.delta[i] = i < queries ? sh.delta[h * a.total_q + q0 + qb + i] : 0.0f;
      }
      for (int r0 = 0; r0 < padded; r0 += kRows) {
        mm_a_bt<D>(t.k, D, sh.qt.block(b, h, qb), t.p, r0);
        mm_a_bt<D>(t.v, D, sh.dot.block(b, h, qb), t.ds, r0);
      }
      for (int r = 0; r < padded; r++) {
        // Key kb + r is seen by the block's queries i >= kb + r - (lk - lq) - qb (all of them when not causal).
        const int64_t lo = a.causal ? kb + r - (lk - lq) - qb : 0;
        const int first = static_cast<int>(std::clamp<int64_t>(lo, 0, queries));
        probabilities_row(t.p + r * kBlockQ, t.ds + r * kBlockQ, t.lse, t.delta, 1, first, r < keys ? queries : 0);
      }
      const float* d_o = ba.d_o + (q0 + qb) * hd + h * D;
      mm_p_b_rows<D>(t.dv, D, nullptr, t.p, d_o, hd, queries, padded);
      mm_p_b_rows<D>(t.dk, D, nullptr, t.ds, a.q + (q0 + qb) * hd + h * D, hd, queries, padded);
    }
  }
  for (int j = 0; j < keys; j++)
    for (int d = 0; d < D; d++) {
      ba.dk[(k0 + kb + j) * kvd + g * D + d] = t.dk[j * D + d] * a.scale;
      ba.dv[(k0 + kb + j) * kvd + g * D + d] = t.dv[j * D + d];
    }
}

// dq for one query block of head h.
template <int D>
TALARIA_SIMD_INLINE void q_item(const AttentionBackwardArgs& ba, const Shared& sh, const QueryBlock& it, int h,
                                QTile& t) {
  const AttentionForwardArgs& a = ba.fwd;
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[it.seq] + it.q_begin, k0 = a.cu_seqlens_k[it.seq];
  const int64_t lq = a.cu_seqlens_q[it.seq + 1] - a.cu_seqlens_q[it.seq], lk = a.cu_seqlens_k[it.seq + 1] - k0;
  const int rows = static_cast<int>(it.rows), padded = (rows + kRows - 1) / kRows * kRows;
  load_rows<D>(t.q, a.q + q0 * hd + h * D, hd, rows, padded, a.scale);
  load_rows<D>(t.d_o, ba.d_o + q0 * hd + h * D, hd, rows, padded, 1.0f);
  std::fill(t.dq, t.dq + padded * D, 0.0f);
  for (int r = 0; r < padded; r++) {
    t.lse[r] = r < rows ? a.lse[h * a.total_q + q0 + r] : 0.0f;
    t.delta[r] = r < rows ? sh.delta[h * a.total_q + q0 + r] : 0.0f;
  }
  for (int64_t kb = 0; kb < it.key_end; kb += kBlockK) {
    const int keys = static_cast<int>(std::min<int64_t>(kBlockK, it.key_end - kb));
    for (int r0 = 0; r0 < padded; r0 += kRows) {
      mm_a_bt<D>(t.q, D, sh.kt.block(it.seq, kvh, kb), t.s, r0);
      mm_a_bt<D>(t.d_o, D, sh.vt.block(it.seq, kvh, kb), t.dp, r0);
    }
    for (int r = 0; r < padded; r++) {
      const int64_t limit = r < rows ? causal_limit(a.causal, it.q_begin + r, kb, lq, lk, keys) : 0;
      probabilities_row(t.s + r * kBlockK, t.dp + r * kBlockK, t.lse + r, t.delta + r, 0, 0, static_cast<int>(limit));
    }
    mm_p_b_rows<D>(t.dq, D, nullptr, t.dp, a.k + (k0 + kb) * kvd + kvh * D, kvd, keys, padded);
  }
  for (int r = 0; r < rows; r++)
    for (int d = 0; d < D; d++) ba.dq[(q0 + r) * hd + h * D + d] = t.dq[r * D + d] * a.scale;
}

TALARIA_SIMD_INLINE void kv_item_any(const AttentionBackwardArgs& ba, const Shared& sh, int64_t b, int g, int64_t kb,
                                     KvTile& t) {
  switch (ba.fwd.head_dim) {
    case 32: return kv_item<32>(ba, sh, b, g, kb, t);
    case 64: return kv_item<64>(ba, sh, b, g, kb, t);
    default: return kv_item<128>(ba, sh, b, g, kb, t);
  }
}
TALARIA_SIMD_INLINE void q_item_any(const AttentionBackwardArgs& ba, const Shared& sh, const QueryBlock& it, int h,
                                    QTile& t) {
  switch (ba.fwd.head_dim) {
    case 32: return q_item<32>(ba, sh, it, h, t);
    case 64: return q_item<64>(ba, sh, it, h, t);
    default: return q_item<128>(ba, sh, it, h, t);
  }
}
TALARIA_SIMD_FUNCTION(void, attention_kv_item, kv_item_any,
                      (const AttentionBackwardArgs& ba, const Shared& sh, int64_t b, int g, int64_t kb, KvTile& t),
                      (ba, sh, b, g, kb, t))
TALARIA_SIMD_FUNCTION(void, attention_q_item, q_item_any,
                      (const AttentionBackwardArgs& ba, const Shared& sh, const QueryBlock& it, int h, QTile& t),
                      (ba, sh, it, h, t))

struct KeyBlock {
  int64_t seq, kb, cost;  // cost: the queries that see the block, to schedule the costliest first
};

std::vector<KeyBlock> key_blocks(const AttentionForwardArgs& a) {
  std::vector<KeyBlock> blocks;
  for (int64_t b = 0; b < a.num_seqs; b++) {
    const int64_t lq = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b], lk = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
    for (int64_t kb = 0; kb < lk; kb += kBlockK)
      blocks.push_back({b, kb, a.causal ? lq - std::clamp<int64_t>(kb - (lk - lq), 0, lq) : lq});
  }
  std::stable_sort(blocks.begin(), blocks.end(), [](const KeyBlock& x, const KeyBlock& y) { return x.cost > y.cost; });
  return blocks;
}

}  // namespace

void attention_backward(const AttentionBackwardArgs& ba) {
  const AttentionForwardArgs& a = ba.fwd;
  const int64_t heads = a.heads, kv_heads = a.kv_heads, d = a.head_dim, nq = a.total_q;
  Shared sh;
  sh.delta.resize(static_cast<size_t>(heads * nq));
  parallel_for(0, nq, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
      for (int64_t h = 0; h < heads; h++) {
        const float* x = ba.d_o + (i * heads + h) * d;
        const float* y = a.o + (i * heads + h) * d;
        float dot = 0.0f;
        for (int64_t e = 0; e < d; e++) dot += x[e] * y[e];
        sh.delta[h * nq + i] = dot;
      }
  });
  sh.qt = transpose_blocks(a.q, a.cu_seqlens_q, a.num_seqs, heads, d, a.scale);
  sh.dot = transpose_blocks(ba.d_o, a.cu_seqlens_q, a.num_seqs, heads, d, 1.0f);
  sh.kt = transpose_blocks(a.k, a.cu_seqlens_k, a.num_seqs, kv_heads, d, 1.0f);
  sh.vt = transpose_blocks(a.v, a.cu_seqlens_k, a.num_seqs, kv_heads, d, 1.0f);

  const std::vector<KeyBlock> kblocks = key_blocks(a);
  parallel_for(0, static_cast<int64_t>(kblocks.size()) * kv_heads, 1, [&](int64_t lo, int64_t hi) {
    auto tile = std::make_unique<KvTile>();
    for (int64_t i = lo; i < hi; i++) {
      const KeyBlock& kb = kblocks[i / kv_heads];
      attention_kv_item(ba, sh, kb.seq, static_cast<int>(i % kv_heads), kb.kb, *tile);
    }
  });
  const std::vector<QueryBlock> qblocks = query_blocks(a);
  parallel_for(0, static_cast<int64_t>(qblocks.size()) * heads, 1, [&](int64_t lo, int64_t hi) {
    auto tile = std::make_unique<QTile>();
    for (int64_t i = lo; i < hi; i++) attention_q_item(ba, sh, qblocks[i / heads], static_cast<int>(i % heads), *tile);
  });
}

}  // namespace cpu
}  // namespace talaria
