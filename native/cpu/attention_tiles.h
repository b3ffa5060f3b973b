// The pieces the CPU attention forward (attention.cpp) and backward (attention_backward.cpp) share:
// 64-wide tiles, 16-lane vectors, the two matmul microkernels and per-call transposed blocks.
//
// Microkernels, 4 rows at a time (callers pad their tiles to a multiple of 4 rows):
//   mm_a_bt  C[4][64] = A[4][D] . Bt[D][64]          (S = Q K^T, dP = dO V^T, and their transposes)
//   mm_p_b   C[4][W] = C * row_scale + P[4][n] . B[n][W]  (O += P V, dV += P^T dO, dK += dS^T Q, dQ += dS K)
// On AVX-512 each holds 16 zmm accumulators and issues 16 FMAs per 4 broadcasts and 4 vector loads.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/kernels/attention.h"
#include "../core/simd.h"

// The vector helpers below are always inlined, so no V16 ever crosses a call boundary and the ABI note
// GCC gives for 64-byte vectors in baseline code does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace talaria {
namespace cpu {
namespace attention_tiles {

constexpr int kBlockQ = 64;  // queries per tile
constexpr int kBlockK = 64;  // keys per tile
constexpr int kRows = 4;     // rows per microkernel call
constexpr int kMaxD = 128;

// 16 floats: one zmm on AVX-512, two ymm on AVX2, four xmm on baseline x86-64. GCC lowers the vector
// extension per target, so one body serves every SIMD variant.
typedef float V16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;
constexpr int kColVecs = kBlockK / kLanes;  // vectors per 64-wide row

TALARIA_SIMD_INLINE V16 load(const float* p) { V16 v; std::memcpy(&v, p, sizeof v); return v; }
TALARIA_SIMD_INLINE void store(float* p, const V16& v) { std::memcpy(p, &v, sizeof v); }
TALARIA_SIMD_INLINE V16 splat(float x) { return V16{} + x; }

// C[r][0..16 * Vecs) = sum_d A[r][d] Bt[d][..] for rows r0..r0+3; A rows a_stride apart, Bt and C rows 64.
template <int D, int Vecs = kColVecs>
TALARIA_SIMD_INLINE void mm_a_bt(const float* a, int64_t a_stride, const float* bt, float* c, int r0) {
  V16 acc[kRows][Vecs] = {};
  for (int d = 0; d < D; d++) {
    V16 b[Vecs];
    for (int v = 0; v < Vecs; v++) b[v] = load(bt + d * kBlockK + v * kLanes);
    for (int r = 0; r < kRows; r++) {
      const V16 x = splat(a[(r0 + r) * a_stride + d]);
      for (int v = 0; v < Vecs; v++) acc[r][v] += x * b[v];
    }
  }
  for (int r = 0; r < kRows; r++)
    for (int v = 0; v < Vecs; v++) store(c + (r0 + r) * kBlockK + v * kLanes, acc[r][v]);
}

// mm_a_bt over only the first `columns` of C (rounded up to whole vectors): a causal diagonal tile's
// row group needs no score past its last row's limit.
template <int D>
TALARIA_SIMD_INLINE void mm_a_bt_prefix(const float* a, int64_t a_stride, const float* bt, float* c, int r0,
                                        int columns) {
  switch ((columns + kLanes - 1) / kLanes) {
    case 0: return;
    case 1: return mm_a_bt<D, 1>(a, a_stride, bt, c, r0);
    case 2: return mm_a_bt<D, 2>(a, a_stride, bt, c, r0);
    case 3: return mm_a_bt<D, 3>(a, a_stride, bt, c, r0);
    default: return mm_a_bt<D, 4>(a, a_stride, bt, c, r0);
  }
}

// C[r][c0..c0+W) = C * row_scale[r] (when row_scale is set) + sum_{j<n} P[r][j] B[j][c0..c0+W) for rows
// r0..r0+3; P rows are 64 apart, B rows b_stride, C rows c_stride. W is 64 (4 vectors), or 32 for D = 32.
template <int W>
TALARIA_SIMD_INLINE void mm_p_b(float* c, int64_t c_stride, const float* row_scale, const float* p, const float* b,
                                int64_t b_stride, int n, int r0, int c0) {
  constexpr int kVecs = W / kLanes;
  V16 acc[kRows][kVecs];
  for (int r = 0; r < kRows; r++) {
    const V16 s = splat(row_scale ? row_scale[r0 + r] : 1.0f);
    for (int v = 0; v < kVecs; v++) acc[r][v] = load(c + (r0 + r) * c_stride + c0 + v * kLanes) * s;
  }
  for (int j = 0; j < n; j++) {
    V16 x[kVecs];
    for (int v = 0; v < kVecs; v++) x[v] = load(b + j * b_stride + c0 + v * kLanes);
    for (int r = 0; r < kRows; r++) {
      const V16 w = splat(p[(r0 + r) * kBlockK + j]);
      for (int v = 0; v < kVecs; v++) acc[r][v] += w * x[v];
    }
  }
  for (int r = 0; r < kRows; r++)
    for (int v = 0; v < kVecs; v++) store(c + (r0 + r) * c_stride + c0 + v * kLanes, acc[r][v]);
}

// C[0..rows) += P . B over all D columns, in 64-wide (or D-wide) column strips; rows a multiple of 4.
template <int D>
TALARIA_SIMD_INLINE void mm_p_b_rows(float* c, int64_t c_stride, const float* row_scale, const float* p,
                                     const float* b, int64_t b_stride, int n, int rows) {
  constexpr int W = D < 64 ? D : 64;
  for (int r0 = 0; r0 < rows; r0 += kRows)
    for (int c0 = 0; c0 < D; c0 += W) mm_p_b<W>(c, c_stride, row_scale, p, b, b_stride, n, r0, c0);
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
TALARIA_SIMD_INLINE float lanes_sum(const V16& in) {
  V16 x = in;
  x += upper_half<8>(x);
  x += upper_half<4>(x);
  x += upper_half<2>(x);
  x += upper_half<1>(x);
  return x[0];
}
TALARIA_SIMD_INLINE float lanes_max(const V16& in) {
  V16 x = in, y = upper_half<8>(x);
  x = x > y ? x : y;
  y = upper_half<4>(x); x = x > y ? x : y;
  y = upper_half<2>(x); x = x > y ? x : y;
  y = upper_half<1>(x); x = x > y ? x : y;
  return x[0];
}

// A packed [tokens, heads, D] tensor re-laid once per call as 64-token blocks transposed to [D][64]
// (zero-padded to 64 tokens, optionally times a scale), so the many tiles that read one block share one
// transpose. Block tb of head h of sequence b starts at offset(b, h, tb).
struct TransposedBlocks {
  std::vector<float> data;
  std::vector<int64_t> padded_start;  // [B+1], in tokens, each sequence rounded up to 64
  int64_t d = 0;
  int64_t offset(int64_t seq, int64_t head, int64_t token) const {
    return (head * padded_start.back() + padded_start[seq] + token) * d;
  }
  const float* block(int64_t seq, int64_t head, int64_t token) const { return data.data() + offset(seq, head, token); }
};
TransposedBlocks transpose_blocks(const float* x, const int32_t* cu_seqlens, int64_t num_seqs, int64_t heads,
                                  int64_t d, float scale);

// A block of up to 64 queries of one sequence, and the keys any of its rows may see.
struct QueryBlock {
  int64_t seq, q_begin, rows;  // q_begin: first query of the block, within its sequence
  int64_t key_end;             // keys [0, key_end) of the sequence
};
// Every sequence's query blocks, the costliest (most keys) first so the pool's dynamic chunks end together.
std::vector<QueryBlock> query_blocks(const AttentionForwardArgs& a);

// Query block i's keys: the first `limit` keys of key block kb that row r may see (bottom-right causal).
inline int64_t causal_limit(bool causal, int64_t query, int64_t kb, int64_t lq, int64_t lk, int64_t keys) {
  const int64_t limit = causal ? query + (lk - lq) + 1 - kb : keys;
  return limit < 0 ? 0 : limit > keys ? keys : limit;
}

}  // namespace attention_tiles
}  // namespace cpu
}  // namespace talaria
