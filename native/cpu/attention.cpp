// Attention forward on the CPU: FlashAttention-2's loop structure, with SIMD microkernels for the two
// matmuls. One work item is (sequence, head, block of 64 queries); items are independent, so the result
// does not depend on the thread count. For its block, an item keeps Q (pre-scaled), the output
// accumulator O, and the running max m and sum l per row; it walks the 64-key blocks the causal mask
// leaves, and per block computes S = Q K^T, P = exp(S - m_new), O = O * e^(m_old - m_new) + P V.
//
// Napkin math (B = 4, H = 8, T = 512, D = 64, causal): 4 * B * H * T^2 * D / 2 = 2.1 GFLOP; the data is
// 3 * 4 MiB of q/k/v plus 4 MiB of o, read once per item from L2/L3. Per 64 x 64 tile: 2 * 64^3 = 524k
// FLOP on 16 + 16 KiB of K^T and V, 32 FLOP per byte of tile: compute-bound if the microkernels keep
// their accumulators in registers. The AVX-512 QK^T microkernel holds 4 query rows x 64 keys (16 zmm
// accumulators), one broadcast per row and 4 loads of K^T per d: 16 FMAs for 8 loads. PV holds 4 rows
// x 64 output columns the same way. The softmax costs ~10 vector ops per 16 scores, against 8 FMAs per
// score for D = 64 in the two matmuls: ~10% of the time. Tile memory: Q, O (64 x D each), K^T (D x 64)
// and S/P (64 x 64) are 112 KiB at D = 128, so they live in L2 for the whole item.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"

// The vector helpers below are always inlined, so no V16 ever crosses a call boundary and the ABI note
// GCC gives for 64-byte vectors in baseline code does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace talaria {
namespace cpu {
namespace {

constexpr int kBlockQ = 64;   // queries per work item
constexpr int kBlockK = 64;   // keys per inner step
constexpr int kRows = 4;      // query rows per microkernel call
constexpr int kMaxD = 128;

// 16 floats: one zmm on AVX-512, two ymm on AVX2, four xmm on baseline x86-64. GCC lowers the vector
// extension per target, so one body serves every SIMD variant.
typedef float V16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;
constexpr int kColVecs = kBlockK / kLanes;  // vectors per 64-wide row

TALARIA_SIMD_INLINE V16 load(const float* p) { V16 v; std::memcpy(&v, p, sizeof v); return v; }
TALARIA_SIMD_INLINE void store(float* p, const V16& v) { std::memcpy(p, &v, sizeof v); }
TALARIA_SIMD_INLINE V16 splat(float x) { return V16{} + x; }

// One item's working set; 64-byte aligned so vector loads do not split cache lines.
struct alignas(64) Tile {
  float q[kBlockQ * kMaxD];    // the query block times scale, zero-padded to kBlockQ rows
  float o[kBlockQ * kMaxD];    // unnormalised output accumulator
  float s[kBlockQ * kBlockK];  // scores, then probabilities
  float m[kBlockQ], l[kBlockQ], alpha[kBlockQ];
};

// S[r][0..64) = Q[r] . K^T for rows r0..r0+3; kt is the key block transposed, [D][64].
template <int D>
TALARIA_SIMD_INLINE void qk_rows(Tile& t, const float* kt, int r0) {
  V16 acc[kRows][kColVecs] = {};
  for (int d = 0; d < D; d++) {
    V16 kv[kColVecs];
    for (int c = 0; c < kColVecs; c++) kv[c] = load(kt + d * kBlockK + c * kLanes);
    for (int r = 0; r < kRows; r++) {
      const V16 a = splat(t.q[(r0 + r) * D + d]);
      for (int c = 0; c < kColVecs; c++) acc[r][c] += a * kv[c];
    }
  }
  for (int r = 0; r < kRows; r++)
    for (int c = 0; c < kColVecs; c++) store(t.s + (r0 + r) * kBlockK + c * kLanes, acc[r][c]);
}

// O[r][c0..c0+W) = O * alpha + P[r] V[.][c0..] for rows r0..r0+3, over the block's `keys` valid keys.
// W is 64 columns (4 vectors) or D when D is smaller.
template <int D, int W>
TALARIA_SIMD_INLINE void pv_rows(Tile& t, int r0, int c0, const float* v, int64_t v_stride, int keys) {
  constexpr int kVecs = W / kLanes;
  V16 acc[kRows][kVecs];
  for (int r = 0; r < kRows; r++) {
    const V16 a = splat(t.alpha[r0 + r]);
    for (int c = 0; c < kVecs; c++) acc[r][c] = load(t.o + (r0 + r) * D + c0 + c * kLanes) * a;
  }
  for (int j = 0; j < keys; j++) {
    V16 vv[kVecs];
    for (int c = 0; c < kVecs; c++) vv[c] = load(v + j * v_stride + c0 + c * kLanes);
    for (int r = 0; r < kRows; r++) {
      const V16 p = splat(t.s[(r0 + r) * kBlockK + j]);
      for (int c = 0; c < kVecs; c++) acc[r][c] += p * vv[c];
    }
  }
  for (int r = 0; r < kRows; r++)
    for (int c = 0; c < kVecs; c++) store(t.o + (r0 + r) * D + c0 + c * kLanes, acc[r][c]);
}

// Horizontal max and sum of 16 lanes by halving: log2(16) dependent steps, in a fixed order.
typedef int32_t I16 __attribute__((vector_size(64)));
template <int Width>
TALARIA_SIMD_INLINE V16 upper_half(const V16& x) {  // lane i gets lane i + Width (lanes >= Width: don't care)
  constexpr I16 kIdx = {Width, Width + 1, Width + 2, Width + 3, Width + 4, Width + 5, Width + 6, Width + 7,
                        (Width + 8) & 15, (Width + 9) & 15, (Width + 10) & 15, (Width + 11) & 15,
                        (Width + 12) & 15, (Width + 13) & 15, (Width + 14) & 15, (Width + 15) & 15};
  return __builtin_shuffle(x, kIdx);
}
TALARIA_SIMD_INLINE float lanes_sum(V16 x) {
  x += upper_half<8>(x);
  x += upper_half<4>(x);
  x += upper_half<2>(x);
  x += upper_half<1>(x);
  return x[0];
}
TALARIA_SIMD_INLINE float lanes_max(V16 x) {
  V16 y = upper_half<8>(x); x = x > y ? x : y;
  y = upper_half<4>(x); x = x > y ? x : y;
  y = upper_half<2>(x); x = x > y ? x : y;
  y = upper_half<1>(x); x = x > y ? x : y;
  return x[0];
}

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

struct Item {
  int64_t seq, q_begin, rows;  // q_begin: first query of the block, within its sequence
  int64_t key_end;             // keys [0, key_end) of the sequence that any row of the block may see
};

// Every key block transposed once per call, [D][64] and zero-padded to 64 keys, so the items of all
// H / Hkv query heads and all query blocks that read it share one transpose. Block kb of kv head g of
// sequence b starts at ((g * padded_total + padded_start[b] + kb) * D).
struct KeysTransposed {
  std::vector<float> data;
  std::vector<int64_t> padded_start;  // [B+1], in keys, each sequence rounded up to 64
  int64_t offset(int64_t seq, int g, int64_t kb, int64_t d) const {
    return (g * padded_start.back() + padded_start[seq] + kb) * d;
  }
};

// One (block, head) item: writes o rows [q_begin, q_begin + rows) of head h and their lse.
template <int D>
TALARIA_SIMD_INLINE void forward_item(const AttentionForwardArgs& a, const KeysTransposed& kt, const Item& it, int h,
                                      Tile& t) {
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
    const float* kblock = kt.data.data() + kt.offset(it.seq, kvh, kb, D);
    for (int r0 = 0; r0 < padded; r0 += kRows) qk_rows<D>(t, kblock, r0);
    for (int r = 0; r < padded; r++) {
      // Bottom-right causal: query i sees keys j <= i + (lk - lq).
      const int64_t limit = a.causal ? it.q_begin + r + (lk - lq) + 1 - kb : keys;
      softmax_row(t, r, static_cast<int>(std::clamp<int64_t>(limit, 0, keys)));
    }
    const float* vp = a.v + (k0 + kb) * kvd + kvh * D;
    constexpr int W = D < 64 ? D : 64;
    for (int r0 = 0; r0 < padded; r0 += kRows)
      for (int c0 = 0; c0 < D; c0 += W) pv_rows<D, W>(t, r0, c0, vp, kvd, keys);
  }

  for (int r = 0; r < rows; r++) {
    float* o = a.o + (q0 + r) * hd + h * D;
    const bool any = t.l[r] > 0.0f;
    const float inv = any ? 1.0f / t.l[r] : 0.0f;
    for (int d = 0; d < D; d++) o[d] = t.o[r * D + d] * inv;
    a.lse[h * a.total_q + q0 + r] = any ? t.m[r] + std::log(t.l[r]) : -INFINITY;
  }
}

TALARIA_SIMD_INLINE void forward_item_any(const AttentionForwardArgs& a, const KeysTransposed& kt, const Item& it,
                                          int h, Tile& t) {
  switch (a.head_dim) {
    case 32: return forward_item<32>(a, kt, it, h, t);
    case 64: return forward_item<64>(a, kt, it, h, t);
    default: return forward_item<128>(a, kt, it, h, t);
  }
}
TALARIA_SIMD_FUNCTION(void, attention_item, forward_item_any,
                      (const AttentionForwardArgs& a, const KeysTransposed& kt, const Item& it, int h, Tile& t),
                      (a, kt, it, h, t))

KeysTransposed transpose_keys(const AttentionForwardArgs& a) {
  KeysTransposed kt;
  kt.padded_start.assign(a.num_seqs + 1, 0);
  for (int64_t b = 0; b < a.num_seqs; b++) {
    const int64_t lk = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
    kt.padded_start[b + 1] = kt.padded_start[b] + (lk + kBlockK - 1) / kBlockK * kBlockK;
  }
  const int64_t d = a.head_dim, kvd = a.kv_heads * d;
  kt.data.resize(static_cast<size_t>(a.kv_heads * kt.padded_start.back() * d));
  // One task per (kv head, sequence); each writes only its own blocks.
  parallel_for(0, a.kv_heads * a.num_seqs, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      const int g = static_cast<int>(task / a.num_seqs);
      const int64_t b = task % a.num_seqs, k0 = a.cu_seqlens_k[b], lk = a.cu_seqlens_k[b + 1] - k0;
      for (int64_t kb = 0; kb < lk; kb += kBlockK) {
        float* out = kt.data.data() + kt.offset(b, g, kb, d);
        const float* src = a.k + (k0 + kb) * kvd + g * d;
        for (int64_t j = 0; j < kBlockK; j++)
          for (int64_t e = 0; e < d; e++) out[e * kBlockK + j] = kb + j < lk ? src[j * kvd + e] : 0.0f;
      }
    }
  });
  return kt;
}

// The query blocks of every sequence, the costliest (most keys) first so the pool's dynamic chunks end
// together.
std::vector<Item> query_blocks(const AttentionForwardArgs& a) {
  std::vector<Item> items;
  for (int64_t b = 0; b < a.num_seqs; b++) {
    const int64_t lq = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b];
    const int64_t lk = a.cu_seqlens_k[b + 1] - a.cu_seqlens_k[b];
    for (int64_t q = 0; q < lq; q += kBlockQ) {
      const int64_t rows = std::min<int64_t>(kBlockQ, lq - q);
      const int64_t key_end = a.causal ? std::clamp<int64_t>(q + rows + (lk - lq), 0, lk) : lk;
      items.push_back({b, q, rows, key_end});
    }
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.key_end > y.key_end; });
  return items;
}

}  // namespace

void attention_forward(const AttentionForwardArgs& args) {
  const std::vector<Item> items = query_blocks(args);
  const KeysTransposed kt = transpose_keys(args);
  const int64_t heads = args.heads;
  parallel_for(0, static_cast<int64_t>(items.size()) * heads, 1, [&](int64_t lo, int64_t hi) {
    auto tile = std::make_unique<Tile>();
    for (int64_t i = lo; i < hi; i++) attention_item(args, kt, items[i / heads], static_cast<int>(i % heads), *tile);
  });
}

}  // namespace cpu
}  // namespace talaria
