// Attention on CUDA. Forward and backward multiply on tensor cores (mma.sync m16n8k16, bf16 operands, f32
// accumulation, through ptx.cuh). The forward runs FlashAttention-2's online softmax, saving only lse. The
// backward (FlashAttention-2's) takes D = rowsum(dO o) in f32 first, then recomputes P from lse without
// atomics: a dq kernel over query blocks, a dk/dv kernel over key blocks that sums the GQA group inside.
//
// Forward napkin math (A100, D = 64): per 64 x 64 tile the block's 4 warps issue 4 * 64^3 FLOP of mma
// on 16 KiB of bf16 K and V^T staged once per block of 64 queries: ~16 FLOP per shared byte, so the
// tensor cores, not shared memory, bound it (the K/V staging is plain loads + converts: no cp.async or
// ldmatrix yet, the next step). Backward napkin math: per 64 x 64 tile the dq kernel issues 3 matmuls
// (S, dP, dQ: 6 * 64^2 * D FLOP) on 3 * 64 * D bf16 staged (K, V, K^T): 128 FLOP per staged element,
// 64 per byte; the dk/dv kernel 4 matmuls (S, dP, dV, dK) on 4 * 64 * D bf16 (Q, dO and their
// transposes): the same ratio, so both are tensor-core bound once the staging overlaps (it does not yet:
// plain loads + converts, as the forward). S and dP are computed twice (once per kernel): 3.5x the
// forward's FLOP, the price of no atomics.
// Precision: bf16 operands (2^-9 relative each), f32 accumulation, f32 delta; dS = P (dP - delta) takes
// dP from bf16 operands against an f32 delta, so the gradients carry ~1e-3 of their scale of rounding
// (tests: 2e-2 of each gradient's largest magnitude). Shared memory at D = 128: dq 80 KiB, dk/dv 96.5 KiB
// a block (one block per SM on A100 at D = 128 for dk/dv; the register bound allows two).
#include <cuda_bf16.h>

#include <cstdint>
#include <string>

#include "../core/error.h"
#include "../core/kernels/attention.h"
#include "check.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;

// ---- forward on tensor cores ------------------------------------------------------------------------------
// Block: 4 warps, 64 queries; warp w owns queries [16w, 16w + 16) as the A operand of mma.m16n8k16 (bf16,
// f32 accumulate). Per 64-key tile: K [64][D] and V^T [D][64] as bf16 in shared memory; S = Q K^T is
// 8 n-tiles of 8 keys (D / 16 k-steps each); the online softmax runs on the S fragments, whose C layout
// (rows g and g + 8, columns 2t, 2t + 1 of each n-tile; g = lane / 4, t = lane % 4) is the A layout of
// P for P V once packed to bf16 pairs, so P never leaves registers (FlashAttention-2's trick). Row max and
// sum are reduced across the 4 lanes of a quad. Registers at D = 128: Q 32, S 32, O 64.
constexpr int kMmaRows = 64;   // queries per block (16 per warp)
constexpr int kMmaKeys = 64;   // keys per tile

__device__ __forceinline__ uint16_t bf16_bits(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return static_cast<uint32_t>(bf16_bits(lo)) | (static_cast<uint32_t>(bf16_bits(hi)) << 16);
}
// The two consecutive bf16 at p (an even element index), as the 32-bit register mma takes.
__device__ __forceinline__ uint32_t pair_at(const uint16_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 16);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
  return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(kFullMask, x, 1);
  return x + __shfl_xor_sync(kFullMask, x, 2);
}

template <int D>
constexpr int mma_smem_bytes() { return 2 * kMmaKeys * D * static_cast<int>(sizeof(uint16_t)); }

// 2 blocks of 128 threads per SM: up to 255 registers a thread (D = 128 holds ~140 live).
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_forward_mma_kernel(AttentionForwardArgs a,
                                                                              int64_t blocks_per_seq) {
  constexpr int kSteps = D / 16, kOutTiles = D / 8, kKeyTiles = kMmaKeys / 8;
  TALARIA_DYNAMIC_SHARED(uint16_t, smem);
  uint16_t* k_s = smem;                  // [64 keys][D]
  uint16_t* vt_s = smem + kMmaKeys * D;  // [D][64 keys]
  const int64_t b = blockIdx.x / blocks_per_seq, q_begin = (blockIdx.x % blocks_per_seq) * kMmaRows;
  const int h = blockIdx.y, kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[b], lq = a.cu_seqlens_q[b + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[b], lk = a.cu_seqlens_k[b + 1] - k0;
  if (q_begin >= lq) return;
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id(), g = lane / 4, t = lane % 4;
  // This lane's two query rows (within the sequence) and whether they exist.
  const int64_t row0 = q_begin + warp * 16 + g, row1 = row0 + 8;
  uint32_t qa[kSteps][4];
#pragma unroll
  for (int kk = 0; kk < kSteps; kk++) {
    auto q_at = [&](int64_t row, int col) { return row < lq ? a.q[(q0 + row) * hd + h * D + col] * a.scale : 0.0f; };
    const int c = kk * 16 + 2 * t;
    qa[kk][0] = pack_bf16(q_at(row0, c), q_at(row0, c + 1));
    qa[kk][1] = pack_bf16(q_at(row1, c), q_at(row1, c + 1));
    qa[kk][2] = pack_bf16(q_at(row0, c + 8), q_at(row0, c + 9));
    qa[kk][3] = pack_bf16(q_at(row1, c + 8), q_at(row1, c + 9));
  }
  int64_t key_end = a.causal ? q_begin + (lq - q_begin < kMmaRows ? lq - q_begin : kMmaRows) + (lk - lq) : lk;
  key_end = key_end < 0 ? 0 : key_end > lk ? lk : key_end;
  float o[kOutTiles][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int64_t kb = 0; kb < key_end; kb += kMmaKeys) {
    const int keys = static_cast<int>(key_end - kb < kMmaKeys ? key_end - kb : kMmaKeys);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < kMmaKeys * D; e += kThreads) {
      const int j = e / D, d = e % D;
      const int64_t src = (k0 + kb + j) * kvd + kvh * D + d;
      k_s[j * D + d] = bf16_bits(j < keys ? a.k[src] : 0.0f);
      vt_s[d * kMmaKeys + j] = bf16_bits(j < keys ? a.v[src] : 0.0f);
    }
    __syncthreads();
    float s[kKeyTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; nt++) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
      const uint16_t* key = k_s + (nt * 8 + g) * D + 2 * t;
#pragma unroll
      for (int kk = 0; kk < kSteps; kk++) {
        const uint32_t kb_frag[2] = {pair_at(key + kk * 16), pair_at(key + kk * 16 + 8)};
        mma_m16n8k16_bf16(s[nt], qa[kk], kb_frag, s[nt]);
      }
    }
    // Mask (keys past the tile, rows past the sequence, the causal limit) and the online softmax.
    float alpha[2];
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int64_t row = half == 0 ? row0 : row1;
      const int64_t limit = row >= lq ? 0 : a.causal ? row + (lk - lq) + 1 - kb : keys;  // keys [0, limit)
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; nt++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const int key = nt * 8 + 2 * t + c;
          float& x = s[nt][2 * half + c];
          x = key < keys && key < limit ? x : -INFINITY;
          mx = fmaxf(mx, x);
        }
      const float m_new = fmaxf(m[half], quad_max(mx));
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; nt++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
          float& x = s[nt][2 * half + c];
          x = m_new == -INFINITY ? 0.0f : expf(x - m_new);
          sum += x;
        }
      alpha[half] = m_new == -INFINITY ? 1.0f : expf(m[half] - m_new);
      l[half] = l[half] * alpha[half] + quad_sum(sum);
      m[half] = m_new;
    }
#pragma unroll
    for (int nt = 0; nt < kOutTiles; nt++) {
      o[nt][0] *= alpha[0], o[nt][1] *= alpha[0];
      o[nt][2] *= alpha[1], o[nt][3] *= alpha[1];
    }
    // O += P V: P's k-step kk is S n-tiles 2kk and 2kk + 1.
#pragma unroll
    for (int kk = 0; kk < kKeyTiles / 2; kk++) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nt = 0; nt < kOutTiles; nt++) {
        const uint16_t* vrow = vt_s + (nt * 8 + g) * kMmaKeys + kk * 16 + 2 * t;
        const uint32_t vb[2] = {pair_at(vrow), pair_at(vrow + 8)};
        mma_m16n8k16_bf16(o[nt], pa, vb, o[nt]);
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int64_t row = half == 0 ? row0 : row1;
    if (row >= lq) continue;
    const int64_t tok = q0 + row;
    const float inv = l[half] > 0.0f ? 1.0f / l[half] : 0.0f;
#pragma unroll
    for (int nt = 0; nt < kOutTiles; nt++) {
      a.o[tok * hd + h * D + nt * 8 + 2 * t] = o[nt][2 * half] * inv;
      a.o[tok * hd + h * D + nt * 8 + 2 * t + 1] = o[nt][2 * half + 1] * inv;
    }
    if (t == 0) a.lse[h * a.total_q + tok] = l[half] > 0.0f ? m[half] + logf(l[half]) : -INFINITY;
  }
}

template <int D>
void launch_forward(const AttentionForwardArgs& a) {
  const int64_t blocks_per_seq = ceil_div(a.max_seqlen_q, kMmaRows);
  const size_t smem = mma_smem_bytes<D>();
  TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_forward_mma_kernel<D>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(a.num_seqs * blocks_per_seq), static_cast<unsigned>(a.heads));
  TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_forward_mma_kernel<D>)(a, blocks_per_seq);
  TALARIA_CUDA_CHECK_LAUNCH();
}

// ---- backward on tensor cores ------------------------------------------------------------------------------
// Same fragment layouts as the forward. The dq kernel: block = 64 queries (16 per warp, the A rows), per
// 64-key tile K [64][D], V [64][D] and K^T [D][64] as bf16 in shared memory; per 16-key chunk, S = Q K^T
// and dP = dO V^T (2 n-tiles of 8 keys each), P = exp(S - lse), dS = P (dP - delta) in the C layout, which
// packed to bf16 pairs is the A operand of dQ += dS K. The dk/dv kernel mirrors it with keys as the A rows:
// block = 64 keys, per (query head of the group, 64-query tile) Q, dO, Q^T, dO^T in shared memory; per
// 16-query chunk S^T = K Q^T and dP^T = V dO^T, then dV += P^T dO and dK += dS^T Q. The group sum stays
// inside the block: no atomics, a fixed order, deterministic.
constexpr int kBwdRows = 64;  // rows (queries for dq, keys for dk/dv) per block, 16 per warp
constexpr int kBwdCols = 64;  // tile of the other side (keys for dq, queries for dk/dv)

// delta_i = dO_i . o_i in f32: one thread per (token, head).
__global__ void __launch_bounds__(kThreads) attention_delta_kernel(AttentionBackwardArgs b, float* delta) {
  const AttentionForwardArgs& a = b.fwd;
  const int64_t rows = a.total_q * a.heads, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows; row += stride) {
    float dot = 0.0f;
    for (int d = 0; d < a.head_dim; d++) dot = fmaf(b.d_o[row * a.head_dim + d], a.o[row * a.head_dim + d], dot);
    delta[(row % a.heads) * a.total_q + row / a.heads] = dot;  // [H][Nq]
  }
}

// Stages rows [first, first + count) of a [tokens, heads, D] tensor's head (times scale, zero past count)
// as bf16 into a row-major [kTileRows][D] tile and, when transposed is not null, a [D][kTileRows] one.
template <int D, int kTileRows>
__device__ __forceinline__ void stage_bf16(uint16_t* tile, uint16_t* transposed, const float* src, int64_t first,
                                           int count, int64_t row_stride, int64_t head_offset, float scale) {
  for (int e = threadIdx.x; e < kTileRows * D; e += kThreads) {
    const int r = e / D, d = e % D;
    const uint16_t x = bf16_bits(r < count ? src[(first + r) * row_stride + head_offset + d] * scale : 0.0f);
    tile[r * D + d] = x;
    if (transposed != nullptr) transposed[d * kTileRows + r] = x;
  }
}

// The A fragment (16 rows from row, k-step kk) of a row-major bf16 [rows][D] tile.
template <int D>
__device__ __forceinline__ void a_fragment(uint32_t frag[4], const uint16_t* tile, int row, int kk, int g, int t) {
  const uint16_t* p = tile + (row + g) * D + kk * 16 + 2 * t;
  frag[0] = pair_at(p), frag[1] = pair_at(p + 8 * D), frag[2] = pair_at(p + 8), frag[3] = pair_at(p + 8 * D + 8);
}
// The B fragment (8 columns from col, 16-deep from k) of a bf16 tile stored column-major: col c's k values at
// tile[c * ld + k].
__device__ __forceinline__ void b_fragment(uint32_t frag[2], const uint16_t* tile, int ld, int col, int k, int g, int t) {
  const uint16_t* p = tile + (col + g) * ld + k + 2 * t;
  frag[0] = pair_at(p), frag[1] = pair_at(p + 8);
}

// The two products both backward passes need over a warp's 16 rows (from `row`) and 16 columns (from
// `col`): S = A1 B1^T and dP = A2 B2^T, D-deep, each as two m16n8 tiles. The dq pass feeds (Q, dO; K, V),
// the dk/dv pass the transposed roles (K, V; Q, dO).
template <int D>
__device__ __forceinline__ void scores_and_dp(float s[2][4], float dp[2][4], const uint16_t* a1, const uint16_t* a2,
                                              const uint16_t* b1, const uint16_t* b2, int row, int col, int g, int t) {
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    uint32_t fa1[4], fa2[4];
    a_fragment<D>(fa1, a1, row, kk, g, t);
    a_fragment<D>(fa2, a2, row, kk, g, t);
#pragma unroll
    for (int j = 0; j < 2; j++) {
      uint32_t fb1[2], fb2[2];
      b_fragment(fb1, b1, D, col + j * 8, kk * 16, g, t);
      b_fragment(fb2, b2, D, col + j * 8, kk * 16, g, t);
      mma_m16n8k16_bf16(s[j], fa1, fb1, s[j]);
      mma_m16n8k16_bf16(dp[j], fa2, fb2, dp[j]);
    }
  }
}

template <int D>
constexpr int bwd_dq_smem_bytes() { return (2 * kBwdRows * D + 3 * kBwdCols * D) * static_cast<int>(sizeof(uint16_t)); }

// 2 blocks of 128 threads per SM: up to 255 registers (D = 128: dq 64, S and dP 16, fragments ~12).
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_dq_mma_kernel(AttentionBackwardArgs b, const float* delta,
                                                                         int64_t blocks_per_seq) {
  constexpr int kOutTiles = D / 8;
  const AttentionForwardArgs& a = b.fwd;
  TALARIA_DYNAMIC_SHARED(uint16_t, smem);
  uint16_t* q_s = smem;                     // [64 queries][D], times scale
  uint16_t* do_s = q_s + kBwdRows * D;      // [64 queries][D]
  uint16_t* k_s = do_s + kBwdRows * D;      // [64 keys][D]
  uint16_t* v_s = k_s + kBwdCols * D;       // [64 keys][D]
  uint16_t* kt_s = v_s + kBwdCols * D;      // [D][64 keys]
  const int64_t seq = blockIdx.x / blocks_per_seq, q_begin = (blockIdx.x % blocks_per_seq) * kBwdRows;
  const int h = blockIdx.y, kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[seq], lq = a.cu_seqlens_q[seq + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[seq], lk = a.cu_seqlens_k[seq + 1] - k0;
  if (q_begin >= lq) return;
  const int rows = static_cast<int>(lq - q_begin < kBwdRows ? lq - q_begin : kBwdRows);
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id(), g = lane / 4, t = lane % 4;
  stage_bf16<D, kBwdRows>(q_s, nullptr, a.q, q0 + q_begin, rows, hd, h * D, a.scale);
  stage_bf16<D, kBwdRows>(do_s, nullptr, b.d_o, q0 + q_begin, rows, hd, h * D, 1.0f);
  // This lane's two query rows (within the block) and their lse and delta.
  const int r0 = warp * 16 + g;
  float lse[2], dlt[2];
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = r0 + 8 * half;
    lse[half] = r < rows ? a.lse[h * a.total_q + q0 + q_begin + r] : 0.0f;
    dlt[half] = r < rows ? delta[h * a.total_q + q0 + q_begin + r] : 0.0f;
  }
  float dq[kOutTiles][4] = {};
  int64_t key_end = a.causal ? q_begin + rows + (lk - lq) : lk;
  key_end = key_end < 0 ? 0 : key_end > lk ? lk : key_end;
  for (int64_t kb = 0; kb < key_end; kb += kBwdCols) {
    const int keys = static_cast<int>(key_end - kb < kBwdCols ? key_end - kb : kBwdCols);
    __syncthreads();  // the previous tile is no longer read
    stage_bf16<D, kBwdCols>(k_s, kt_s, a.k, k0 + kb, keys, kvd, kvh * D, 1.0f);
    stage_bf16<D, kBwdCols>(v_s, nullptr, a.v, k0 + kb, keys, kvd, kvh * D, 1.0f);
    __syncthreads();
    for (int c = 0; c < kBwdCols / 16 && c * 16 < keys; c++) {  // 16-key chunks
      float s[2][4] = {}, dp[2][4] = {};
      scores_and_dp<D>(s, dp, q_s, do_s, k_s, v_s, warp * 16, c * 16, g, t);
      // P from lse (masked: keys past the tile, rows past the sequence, the causal limit), dS into s.
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int r = r0 + 8 * half;
        const int64_t limit = r >= rows ? 0 : a.causal ? q_begin + r + (lk - lq) + 1 - kb : keys;  // keys [0, limit)
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
          for (int cc = 0; cc < 2; cc++) {
            const int key = c * 16 + j * 8 + 2 * t + cc;
            const float p = key < keys && key < limit ? expf(s[j][2 * half + cc] - lse[half]) : 0.0f;
            s[j][2 * half + cc] = p * (dp[j][2 * half + cc] - dlt[half]);
          }
      }
      const uint32_t dsa[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                               pack_bf16(s[1][2], s[1][3])};
#pragma unroll
      for (int nt = 0; nt < kOutTiles; nt++) {
        uint32_t kf[2];
        b_fragment(kf, kt_s, kBwdCols, nt * 8, c * 16, g, t);
        mma_m16n8k16_bf16(dq[nt], dsa, kf, dq[nt]);
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = r0 + 8 * half;
    if (r >= rows) continue;
    float* out = b.dq + (q0 + q_begin + r) * hd + h * D + 2 * t;
#pragma unroll
    for (int nt = 0; nt < kOutTiles; nt++) {
      out[nt * 8] = dq[nt][2 * half] * a.scale;
      out[nt * 8 + 1] = dq[nt][2 * half + 1] * a.scale;
    }
  }
}

template <int D>
constexpr int bwd_dkv_smem_bytes() {
  return (2 * kBwdRows * D + 4 * kBwdCols * D) * static_cast<int>(sizeof(uint16_t)) + 2 * kBwdCols * static_cast<int>(sizeof(float));
}

// 2 blocks of 128 threads per SM: up to 255 registers (D = 128: dk 64, dv 64, S and dP 16, fragments ~16).
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_dkv_mma_kernel(AttentionBackwardArgs b, const float* delta,
                                                                          int64_t blocks_per_seq) {
  constexpr int kOutTiles = D / 8;
  const AttentionForwardArgs& a = b.fwd;
  TALARIA_DYNAMIC_SHARED(uint16_t, smem);
  uint16_t* k_s = smem;                      // [64 keys][D]
  uint16_t* v_s = k_s + kBwdRows * D;        // [64 keys][D]
  uint16_t* q_s = v_s + kBwdRows * D;        // [64 queries][D], times scale
  uint16_t* do_s = q_s + kBwdCols * D;       // [64 queries][D]
  uint16_t* qt_s = do_s + kBwdCols * D;      // [D][64 queries], times scale
  uint16_t* dot_s = qt_s + kBwdCols * D;     // [D][64 queries]
  float* lse_s = reinterpret_cast<float*>(dot_s + kBwdCols * D);  // [64]
  float* dlt_s = lse_s + kBwdCols;                                // [64]
  const int64_t seq = blockIdx.x / blocks_per_seq, k_begin = (blockIdx.x % blocks_per_seq) * kBwdRows;
  const int kvh = blockIdx.y, group = a.heads / a.kv_heads;
  const int64_t q0 = a.cu_seqlens_q[seq], lq = a.cu_seqlens_q[seq + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[seq], lk = a.cu_seqlens_k[seq + 1] - k0;
  if (k_begin >= lk) return;
  const int keys = static_cast<int>(lk - k_begin < kBwdRows ? lk - k_begin : kBwdRows);
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id(), g = lane / 4, t = lane % 4;
  stage_bf16<D, kBwdRows>(k_s, nullptr, a.k, k0 + k_begin, keys, kvd, kvh * D, 1.0f);
  stage_bf16<D, kBwdRows>(v_s, nullptr, a.v, k0 + k_begin, keys, kvd, kvh * D, 1.0f);
  const int r0 = warp * 16 + g;  // this lane's two key rows (within the block): r0, r0 + 8
  float dk[kOutTiles][4] = {}, dv[kOutTiles][4] = {};
  // Query i sees key j when i >= j - (lk - lq): the block's first key is seen from this query on.
  int64_t first_query = a.causal ? k_begin - (lk - lq) : 0;
  first_query = first_query < 0 ? 0 : first_query;
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int64_t qb = first_query / kBwdCols * kBwdCols; qb < lq; qb += kBwdCols) {
      const int queries = static_cast<int>(lq - qb < kBwdCols ? lq - qb : kBwdCols);
      __syncthreads();  // the previous tile is no longer read (and k_s, v_s are staged, the first time)
      stage_bf16<D, kBwdCols>(q_s, qt_s, a.q, q0 + qb, queries, hd, h * D, a.scale);
      stage_bf16<D, kBwdCols>(do_s, dot_s, b.d_o, q0 + qb, queries, hd, h * D, 1.0f);
      if (threadIdx.x < kBwdCols) {
        const bool in = static_cast<int>(threadIdx.x) < queries;
        lse_s[threadIdx.x] = in ? a.lse[h * a.total_q + q0 + qb + threadIdx.x] : 0.0f;
        dlt_s[threadIdx.x] = in ? delta[h * a.total_q + q0 + qb + threadIdx.x] : 0.0f;
      }
      __syncthreads();
      for (int c = 0; c < kBwdCols / 16 && c * 16 < queries; c++) {  // 16-query chunks
        float s[2][4] = {}, dp[2][4] = {};
        scores_and_dp<D>(s, dp, k_s, v_s, q_s, do_s, warp * 16, c * 16, g, t);
        // P^T from lse (masked: keys past the sequence, queries past the tile, the causal limit), dS^T into dp.
#pragma unroll
        for (int half = 0; half < 2; half++) {
          const int64_t key = k_begin + r0 + 8 * half;
#pragma unroll
          for (int j = 0; j < 2; j++)
#pragma unroll
            for (int cc = 0; cc < 2; cc++) {
              const int qi = c * 16 + j * 8 + 2 * t + cc;
              const bool seen = key < lk && qi < queries && (!a.causal || qb + qi + (lk - lq) >= key);
              const float p = seen ? expf(s[j][2 * half + cc] - lse_s[qi]) : 0.0f;
              s[j][2 * half + cc] = p;
              dp[j][2 * half + cc] = p * (dp[j][2 * half + cc] - dlt_s[qi]);
            }
        }
        const uint32_t pa[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                                pack_bf16(s[1][2], s[1][3])};
        const uint32_t dsa[4] = {pack_bf16(dp[0][0], dp[0][1]), pack_bf16(dp[0][2], dp[0][3]),
                                 pack_bf16(dp[1][0], dp[1][1]), pack_bf16(dp[1][2], dp[1][3])};
#pragma unroll
        for (int nt = 0; nt < kOutTiles; nt++) {
          uint32_t dof[2], qf[2];
          b_fragment(dof, dot_s, kBwdCols, nt * 8, c * 16, g, t);
          b_fragment(qf, qt_s, kBwdCols, nt * 8, c * 16, g, t);
          mma_m16n8k16_bf16(dv[nt], pa, dof, dv[nt]);
          mma_m16n8k16_bf16(dk[nt], dsa, qf, dk[nt]);
        }
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = r0 + 8 * half;
    if (r >= keys) continue;
    const int64_t at = (k0 + k_begin + r) * kvd + kvh * D + 2 * t;
#pragma unroll
    for (int nt = 0; nt < kOutTiles; nt++) {
      b.dk[at + nt * 8] = dk[nt][2 * half], b.dk[at + nt * 8 + 1] = dk[nt][2 * half + 1];
      b.dv[at + nt * 8] = dv[nt][2 * half], b.dv[at + nt * 8 + 1] = dv[nt][2 * half + 1];
    }
  }
}

template <int D>
void launch_backward(const AttentionBackwardArgs& b) {
  const AttentionForwardArgs& a = b.fwd;
  DeviceScratch scratch(sizeof(float) * static_cast<size_t>(a.total_q * a.heads + 1));
  float* delta = reinterpret_cast<float*>(scratch.bytes());
  {
    const int64_t rows = a.total_q * a.heads;
    if (rows > 0) {
      const int grid = static_cast<int>(ceil_div(rows, kThreads) < 65536 ? ceil_div(rows, kThreads) : 65536);
      TALARIA_LAUNCH(grid, kThreads, 0, 0, attention_delta_kernel)(b, delta);
      TALARIA_CUDA_CHECK_LAUNCH();
    }
    const int64_t q_blocks = ceil_div(a.max_seqlen_q, kBwdRows), k_blocks = ceil_div(a.max_seqlen_k, kBwdRows);
    if (q_blocks > 0) {
      const size_t smem = bwd_dq_smem_bytes<D>();
      TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_dq_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      const dim3 grid(static_cast<unsigned>(a.num_seqs * q_blocks), static_cast<unsigned>(a.heads));
      TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_dq_mma_kernel<D>)(b, delta, q_blocks);
      TALARIA_CUDA_CHECK_LAUNCH();
    }
    if (k_blocks > 0) {
      const size_t smem = bwd_dkv_smem_bytes<D>();
      TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_dkv_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      const dim3 grid(static_cast<unsigned>(a.num_seqs * k_blocks), static_cast<unsigned>(a.kv_heads));
      TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_dkv_mma_kernel<D>)(b, delta, k_blocks);
      TALARIA_CUDA_CHECK_LAUNCH();
    }
    TALARIA_CUDA_CHECK(cudaDeviceSynchronize());  // the kernels are done with delta before it is freed
  }
  scratch.release();
}

}  // namespace

void attention_forward(int device, const AttentionForwardArgs& args) {
  if (args.total_q == 0 || args.num_seqs == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  switch (args.head_dim) {
    case 32: launch_forward<32>(args); break;
    case 64: launch_forward<64>(args); break;
    default: launch_forward<128>(args); break;
  }
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void attention_backward(int device, const AttentionBackwardArgs& args) {
  if (args.fwd.total_q + args.fwd.total_k == 0 || args.fwd.num_seqs == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  switch (args.fwd.head_dim) {
    case 32: launch_backward<32>(args); break;
    case 64: launch_backward<64>(args); break;
    default: launch_backward<128>(args); break;
  }
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace talaria
