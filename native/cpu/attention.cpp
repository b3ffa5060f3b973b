// Attention forward on the CPU: FlashAttention-2's loop structure, with SIMD microkernels for the two
// matmuls. One work item is (sequence, head, block of 64 queries); items are independent, so the result
// does not depend on the thread count. For its block, an item keeps Q (pre-scaled), the output
// accumulator O, and the running max m and sum l per row; it walks the 64-key blocks the causal mask
// leaves, and per block computes S = Q K^T, P = exp(S - m_new), O = O * e^(m_old - m_new) + P V.
//
// Napkin math (B = 4, H = 8, T = 512, D = 64, causal): 4 * B * H * T^2 * D / 2 = 2.1 GFLOP; the data is
// 3 * 4 MiB of q/k/v plus 4 MiB of o, read once per item from L2/L3. Per 64 x 64 tile: 4 * 64^2 * D =
// 1 MFLOP on 16 + 16 KiB of K^T and V (K is transposed into 64-key blocks once per call), 32 FLOP per
// byte of tile: compute-bound if the microkernels keep their accumulators in registers. The AVX-512 QK^T microkernel holds 4 query rows x 64 keys (16 zmm
// accumulators), one broadcast per row and 4 loads of K^T per d: 16 FMAs for 8 loads. PV holds 4 rows
// x 64 output columns the same way. The softmax costs ~10 vector ops per 16 scores, against 8 FMAs per
// score for D = 64 in the two matmuls: ~10% of the time. Tile memory: Q, O (64 x D each), K^T (D x 64)
// and S/P (64 x 64) are 112 KiB at D = 128, so they live in L2 for the whole item. Measured on the
// 2-core dev machine: ~10 ms, ~105 GFLOP/s, a third of its measured FMA peak (the diagonal tiles are
// computed whole, 12% extra work at T = 512).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/thread_pool.h"
#include "attention_tiles.h"
#include "vec_math.h"

namespace talaria {
namespace cpu {

namespace attention_tiles {
TransposedBlocks transpose_blocks(const float* x, const int32_t* cu_seqlens, int64_t num_seqs, int64_t heads,
                                  int64_t d, float scale) {
  TransposedBlocks t;
  t.d = d;
  t.padded_start.assign(num_seqs + 1, 0);
  for (int64_t b = 0; b < num_seqs; b++) {
    const int64_t len = cu_seqlens[b + 1] - cu_seqlens[b];
    t.padded_start[b + 1] = t.padded_start[b] + (len + kBlockK - 1) / kBlockK * kBlockK;
  }
  t.data.resize(static_cast<size_t>(heads * t.padded_start.back() * d));
  const int64_t row = heads * d;
  // One task per (head, sequence); each writes only its own blocks.
  parallel_for(0, heads * num_seqs, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      const int64_t h = task / num_seqs, b = task % num_seqs, t0 = cu_seqlens[b], len = cu_seqlens[b + 1] - t0;
      for (int64_t tb = 0; tb < len; tb += kBlockK) {
        float* out = t.data.data() + t.offset(b, h, tb);
        const float* src = x + (t0 + tb) * row + h * d;
        for (int64_t j = 0; j < kBlockK; j++)
          for (int64_t e = 0; e < d; e++) out[e * kBlockK + j] = tb + j < len ? src[j * row + e] * scale : 0.0f;
      }
    }
  });
  return t;
}

std::vector<QueryBlock> query_blocks(const AttentionForwardArgs& a) {
  std::vector<QueryBlock> items;
  for (int64_t b = 0; b < a.num_seqs; b++) {
    const int64_t lq = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b];
    const int64_t lk = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
    for (int64_t q = 0; q < lq; q += kBlockQ) {
      const int64_t rows = std::min<int64_t>(kBlockQ, lq - q);
      const int64_t key_end = a.causal ? std::clamp<int64_t>(q + rows + (lk - lq), 0, lk) : lk;
      items.push_back({b, q, rows, key_end});
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const QueryBlock& x, const QueryBlock& y) { return x.key_end > y.key_end; });
  return items;
}

}  // namespace attention_tiles

namespace {
using namespace attention_tiles;

// One item's working set; 64-byte aligned so vector loads do not split cache lines.
struct alignas(64) Tile {
  float q[kBlockQ * kMaxD];    // the query block times scale, zero-padded to a multiple of 4 rows
  float o[kBlockQ * kMaxD];    // unnormalised output accumulator
  float s[kBlockQ * kBlockK];  // scores, then probabilities
  float m[kBlockQ], l[kBlockQ], alpha[kBlockQ];
};

// Online softmax of one row of 64 scores, the first `allowed` of which are unmasked: turns them into
// P = exp(s - m_new) in place (0 where masked) and updates m, l and alpha = exp(m_old - m_new).
TALARIA_SIMD_INLINE void softmax_row(Tile& t, int r, int allowed) {
  float* s = t.s + r * kBlockK;
  for (int c = allowed; c < kBlockK; c++) s[c] = -INFINITY;
  V16 mx = splat(-INFINITY);
  for (int c = 0; c < kColVecs; c++) { const V16 x = load(s + c * kLanes); mx = mx > x ? mx : x; }
  const float block_max = lanes_max(mx);
  const float m_old = t.m[r], m_new = std::max(m_old, block_max);
  if (m_new == -INFINITY) {  // nothing allowed yet: P = 0, and O and l stay 0
    for (int c = 0; c < kBlockK; c++) s[c] = 0.0f;
    t.alpha[r] = 1.0f;
    return;
  }
  for (int c = 0; c < kBlockK; c++) s[c] = exp_f32(s[c] - m_new);  // vectorised: exp_f32 is branch-free
  // 16 partial sums, then a fixed tree: deterministic, and a 4-deep chain instead of 16.
  V16 sum = {};
  for (int c = 0; c < kColVecs; c++) sum += load(s + c * kLanes);
  const float block_sum = lanes_sum(sum);
  const float alpha = exp_f32(m_old - m_new);  // 0 when m_old = -inf
  t.alpha[r] = alpha;
  t.m[r] = m_new;
  t.l[r] = t.l[r] * alpha + block_sum;
}


// One (block, head) item: writes o rows [q_begin, q_begin + rows) of head h and their lse.
template <int D>
TALARIA_SIMD_INLINE void forward_item(const AttentionForwardArgs& a, const TransposedBlocks& kt, const QueryBlock& it,
                                      int h, Tile& t) {
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[it.seq] + it.q_begin, k0 = a.cu_seqlens_k[it.seq];
  const int64_t lq = a.cu_seqlens_q[it.seq + 1] - a.cu_seqlens_q[it.seq];
  const int64_t lk = a.cu_seqlens_k[it.seq + 1] - k0;
  const int rows = static_cast<int>(it.rows), padded = (rows + kRows - 1) / kRows * kRows;

  for (int r = 0; r < padded; r++)
    for (int d = 0; d < D; d++) t.q[r * D + d] = r < rows ? a.q[(q0 + r) * hd + h * D + d] * a.scale : 0.0f;
  std::fill(t.o, t.o + padded * D, 0.0f);
  std::fill(t.m, t.m + padded, -INFINITY);
  std::fill(t.l, t.l + padded, 0.0f);

  for (int64_t kb = 0; kb < it.key_end; kb += kBlockK) {
    const int keys = static_cast<int>(std::min<int64_t>(kBlockK, it.key_end - kb));
    const float* kblock = kt.block(it.seq, kvh, kb);
    // A row group scores and sums only the keys its last row may see: on a causal diagonal tile the
    // rest is masked (softmax_row writes -inf there, and P = 0 adds nothing to O).
    const float* vblock = a.v + (k0 + kb) * kvd + kvh * D;
    constexpr int W = D < 64 ? D : 64;
    for (int r0 = 0; r0 < padded; r0 += kRows) {
      const int seen = static_cast<int>(causal_limit(a.causal, it.q_begin + r0 + kRows - 1, kb, lq, lk, keys));
      mm_a_bt_prefix<D>(t.q, D, kblock, t.s, r0, seen);
      for (int r = r0; r < r0 + kRows; r++)
        softmax_row(t, r, static_cast<int>(causal_limit(a.causal, it.q_begin + r, kb, lq, lk, keys)));
      for (int c0 = 0; c0 < D; c0 += W) mm_p_b<W>(t.o, D, t.alpha, t.s, vblock, kvd, seen, r0, c0);
    }
  }

  for (int r = 0; r < rows; r++) {
    float* o = a.o + (q0 + r) * hd + h * D;
    const bool any = t.l[r] > 0.0f;
    const float inv = any ? 1.0f / t.l[r] : 0.0f;
    for (int d = 0; d < D; d++) o[d] = t.o[r * D + d] * inv;
    a.lse[h * a.total_q + q0 + r] = any ? t.m[r] + std::log(t.l[r]) : -INFINITY;
  }
}

TALARIA_SIMD_INLINE void forward_item_any(const AttentionForwardArgs& a, const TransposedBlocks& kt, const QueryBlock& it,
                                          int h, Tile& t) {
  switch (a.head_dim) {
    case 32: return forward_item<32>(a, kt, it, h, t);
    case 64: return forward_item<64>(a, kt, it, h, t);
    default: return forward_item<128>(a, kt, it, h, t);
  }
}
TALARIA_SIMD_FUNCTION(void, attention_item, forward_item_any,
                      (const AttentionForwardArgs& a, const TransposedBlocks& kt, const QueryBlock& it, int h, Tile& t),
                      (a, kt, it, h, t))

}  // namespace

void attention_forward(const AttentionForwardArgs& args) {
  const std::vector<QueryBlock> items = query_blocks(args);
  const TransposedBlocks kt =
      transpose_blocks(args.k, args.cu_seqlens_k, args.num_seqs, args.kv_heads, args.head_dim, 1.0f);
  const int64_t heads = args.heads;
  parallel_for(0, static_cast<int64_t>(items.size()) * heads, 1, [&](int64_t lo, int64_t hi) {
    auto tile = std::make_unique<Tile>();
    for (int64_t i = lo; i < hi; i++) attention_item(args, kt, items[i / heads], static_cast<int>(i % heads), *tile);
  });
}

}  // namespace cpu
}  // namespace talaria
