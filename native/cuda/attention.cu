// Attention on CUDA. The forward multiplies on tensor cores (mma.sync m16n8k16, bf16 operands, f32
// accumulation, through ptx.cuh) with FlashAttention-2's online softmax, saving only lse. The backward is
// f32 CUDA-core code that recomputes P from lse without atomics (a dq kernel over query blocks, a dk/dv
// kernel over key blocks), as the CPU backward does.
//
// Forward napkin math (A100, D = 64): per 64 x 64 tile the block's 4 warps issue 4 * 64^3 FLOP of mma
// on 16 KiB of bf16 K and V^T staged once per block of 64 queries: ~16 FLOP per shared byte, so the
// tensor cores, not shared memory, bound it (the K/V staging is plain loads + converts: no cp.async or
// ldmatrix yet, the next step). Backward napkin math: per 32-key tile and row, 4 * 32 * D FLOP on
// CUDA cores over f32 shared-memory tiles, ~1 FLOP per shared byte: a few TFLOP/s.
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

// ---- backward ---------------------------------------------------------------------------------------------
// Blocks of 4 warps and 16 rows (4 per warp), 32-key (or 32-query) tiles in shared memory, padded to
// D + 1 floats so the 32 lanes reading 32 different rows of one column hit 32 banks; lane j owns key
// (or query) j of the tile for the scores, and D / 32 output dims for the accumulations.
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // 16 rows per block
constexpr int kTileKeys = kWarpSize;               // one key (or query) per lane

// delta_i = dO_i . o_i: one thread per (token, head).
__global__ void __launch_bounds__(kThreads) attention_delta_kernel(AttentionBackwardArgs b, float* delta) {
  const AttentionForwardArgs& a = b.fwd;
  const int64_t rows = a.total_q * a.heads, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows; row += stride) {
    float dot = 0.0f;
    for (int d = 0; d < a.head_dim; d++) dot = fmaf(b.d_o[row * a.head_dim + d], a.o[row * a.head_dim + d], dot);
    delta[(row % a.heads) * a.total_q + row / a.heads] = dot;  // [H][Nq]
  }
}

// Stages rows [first, first + count) of a [tokens, heads, D] tensor's head h into a [rows][D + pad] tile
// (times scale), zero past count.
template <int D, int kTileRows, int kPad>
__device__ __forceinline__ void stage_rows(float* tile, const float* src, int64_t first, int count, int64_t row_stride,
                                           int64_t head_offset, float scale) {
  for (int e = threadIdx.x; e < kTileRows * D; e += kThreads) {
    const int r = e / D, d = e % D;
    tile[r * (D + kPad) + d] = r < count ? src[(first + r) * row_stride + head_offset + d] * scale : 0.0f;
  }
}

// dq for 16 queries of one head (blocks laid out as the forward's): per 32-key tile and row, lane j
// recomputes p_j and dS_j, and each lane accumulates its D / 32 dims of dq = scale sum_j dS_j k_j.
template <int D>
constexpr int dq_smem_floats() { return 2 * kBlockRows * D + 2 * kTileKeys * (D + 1) + kWarps * kTileKeys; }

template <int D>
__global__ void __launch_bounds__(kThreads, 4) attention_dq_kernel(AttentionBackwardArgs b, const float* delta,
                                                                     int64_t blocks_per_seq) {
  constexpr int kDims = D / kWarpSize;
  const AttentionForwardArgs& a = b.fwd;
  TALARIA_DYNAMIC_SHARED(float, smem);
  float* q_s = smem;                                // [16][D], times scale
  float* do_s = q_s + kBlockRows * D;               // [16][D]
  float* k_s = do_s + kBlockRows * D;               // [32][D + 1]
  float* v_s = k_s + kTileKeys * (D + 1);           // [32][D + 1]
  float* ds_s = v_s + kTileKeys * (D + 1);          // [4 warps][32]
  const int64_t seq = blockIdx.x / blocks_per_seq, q_begin = (blockIdx.x % blocks_per_seq) * kBlockRows;
  const int h = blockIdx.y, kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[seq], lq = a.cu_seqlens_q[seq + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[seq], lk = a.cu_seqlens_k[seq + 1] - k0;
  if (q_begin >= lq) return;
  const int rows = static_cast<int>(lq - q_begin < kBlockRows ? lq - q_begin : kBlockRows);
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id();
  stage_rows<D, kBlockRows, 0>(q_s, a.q, q0 + q_begin, rows, hd, h * D, a.scale);
  stage_rows<D, kBlockRows, 0>(do_s, b.d_o, q0 + q_begin, rows, hd, h * D, 1.0f);
  float lse[kRowsPerWarp], dlt[kRowsPerWarp], dq[kRowsPerWarp][kDims];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int row = warp * kRowsPerWarp + r;
    lse[r] = row < rows ? a.lse[h * a.total_q + q0 + q_begin + row] : 0.0f;
    dlt[r] = row < rows ? delta[h * a.total_q + q0 + q_begin + row] : 0.0f;
#pragma unroll
    for (int d = 0; d < kDims; d++) dq[r][d] = 0.0f;
  }
  int64_t key_end = a.causal ? q_begin + rows + (lk - lq) : lk;
  key_end = key_end < 0 ? 0 : key_end > lk ? lk : key_end;
  for (int64_t kb = 0; kb < key_end; kb += kTileKeys) {
    const int keys = static_cast<int>(key_end - kb < kTileKeys ? key_end - kb : kTileKeys);
    __syncthreads();  // the previous tile is no longer read (and q_s, do_s are staged, the first time)
    stage_rows<D, kTileKeys, 1>(k_s, a.k, k0 + kb, keys, kvd, kvh * D, 1.0f);
    stage_rows<D, kTileKeys, 1>(v_s, a.v, k0 + kb, keys, kvd, kvh * D, 1.0f);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t limit = a.causal ? q_begin + row + (lk - lq) + 1 - kb : keys;
      float s = 0.0f, dp = 0.0f;
      for (int d = 0; d < D; d++) {
        s = fmaf(q_s[row * D + d], k_s[lane * (D + 1) + d], s);
        dp = fmaf(do_s[row * D + d], v_s[lane * (D + 1) + d], dp);
      }
      const bool seen = row < rows && lane < keys && lane < limit;
      const float p = seen ? expf(s - lse[r]) : 0.0f;
      ds_s[warp * kTileKeys + lane] = p * (dp - dlt[r]);
      __syncwarp();
#pragma unroll
      for (int d = 0; d < kDims; d++) {
        float acc = dq[r][d];
        for (int j = 0; j < keys; j++) acc = fmaf(ds_s[warp * kTileKeys + j], k_s[j * (D + 1) + d * kWarpSize + lane], acc);
        dq[r][d] = acc;
      }
      __syncwarp();
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= rows) continue;
#pragma unroll
    for (int d = 0; d < kDims; d++) b.dq[(q0 + q_begin + row) * hd + h * D + d * kWarpSize + lane] = dq[r][d] * a.scale;
  }
}

// dk and dv for 16 keys of one kv head: every query head of its group and every 32-query tile that sees
// the keys; per tile and key row, lane i recomputes p_i and dS_i, and each lane accumulates its dims of
// dv = sum_i p_i dO_i and dk = sum_i dS_i (scale q_i). The group sum runs inside the block: no atomics.
template <int D>
constexpr int dkv_smem_floats() { return 2 * kBlockRows * D + 2 * kTileKeys * (D + 1) + 2 * kTileKeys + 2 * kWarps * kTileKeys; }

template <int D>
__global__ void __launch_bounds__(kThreads, 4) attention_dkv_kernel(AttentionBackwardArgs b, const float* delta,
                                                                      int64_t blocks_per_seq) {
  constexpr int kDims = D / kWarpSize;
  const AttentionForwardArgs& a = b.fwd;
  TALARIA_DYNAMIC_SHARED(float, smem);
  float* k_s = smem;                               // [16][D]
  float* v_s = k_s + kBlockRows * D;               // [16][D]
  float* q_s = v_s + kBlockRows * D;               // [32][D + 1], times scale
  float* do_s = q_s + kTileKeys * (D + 1);         // [32][D + 1]
  float* lse_s = do_s + kTileKeys * (D + 1);       // [32]
  float* dlt_s = lse_s + kTileKeys;                // [32]
  float* p_s = dlt_s + kTileKeys;                  // [4 warps][32]
  float* ds_s = p_s + kWarps * kTileKeys;          // [4 warps][32]
  const int64_t seq = blockIdx.x / blocks_per_seq, k_begin = (blockIdx.x % blocks_per_seq) * kBlockRows;
  const int g = blockIdx.y, group = a.heads / a.kv_heads;
  const int64_t q0 = a.cu_seqlens_q[seq], lq = a.cu_seqlens_q[seq + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[seq], lk = a.cu_seqlens_k[seq + 1] - k0;
  if (k_begin >= lk) return;
  const int keys = static_cast<int>(lk - k_begin < kBlockRows ? lk - k_begin : kBlockRows);
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id();
  stage_rows<D, kBlockRows, 0>(k_s, a.k, k0 + k_begin, keys, kvd, g * D, 1.0f);
  stage_rows<D, kBlockRows, 0>(v_s, a.v, k0 + k_begin, keys, kvd, g * D, 1.0f);
  float dk[kRowsPerWarp][kDims], dv[kRowsPerWarp][kDims];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++)
#pragma unroll
    for (int d = 0; d < kDims; d++) dk[r][d] = dv[r][d] = 0.0f;
  // Query i sees key j when i >= j - (lk - lq): the block's first key is seen from this query on.
  int64_t first_query = a.causal ? k_begin - (lk - lq) : 0;
  first_query = first_query < 0 ? 0 : first_query;
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int64_t qb = first_query / kTileKeys * kTileKeys; qb < lq; qb += kTileKeys) {
      const int queries = static_cast<int>(lq - qb < kTileKeys ? lq - qb : kTileKeys);
      __syncthreads();  // the previous tile is no longer read
      stage_rows<D, kTileKeys, 1>(q_s, a.q, q0 + qb, queries, hd, h * D, a.scale);
      stage_rows<D, kTileKeys, 1>(do_s, b.d_o, q0 + qb, queries, hd, h * D, 1.0f);
      if (threadIdx.x < kTileKeys) {
        const bool in = static_cast<int>(threadIdx.x) < queries;
        lse_s[threadIdx.x] = in ? a.lse[h * a.total_q + q0 + qb + threadIdx.x] : 0.0f;
        dlt_s[threadIdx.x] = in ? delta[h * a.total_q + q0 + qb + threadIdx.x] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        const int row = warp * kRowsPerWarp + r;
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; d++) {
          s = fmaf(k_s[row * D + d], q_s[lane * (D + 1) + d], s);
          dp = fmaf(v_s[row * D + d], do_s[lane * (D + 1) + d], dp);
        }
        const bool seen = row < keys && lane < queries && (!a.causal || qb + lane + (lk - lq) >= k_begin + row);
        const float p = seen ? expf(s - lse_s[lane]) : 0.0f;
        p_s[warp * kTileKeys + lane] = p;
        ds_s[warp * kTileKeys + lane] = p * (dp - dlt_s[lane]);
        __syncwarp();
#pragma unroll
        for (int d = 0; d < kDims; d++) {
          float acc_v = dv[r][d], acc_k = dk[r][d];
          for (int i = 0; i < queries; i++) {
            acc_v = fmaf(p_s[warp * kTileKeys + i], do_s[i * (D + 1) + d * kWarpSize + lane], acc_v);
            acc_k = fmaf(ds_s[warp * kTileKeys + i], q_s[i * (D + 1) + d * kWarpSize + lane], acc_k);
          }
          dv[r][d] = acc_v;
          dk[r][d] = acc_k;
        }
        __syncwarp();
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= keys) continue;
    const int64_t at = (k0 + k_begin + row) * kvd + g * D;
#pragma unroll
    for (int d = 0; d < kDims; d++) {
      b.dk[at + d * kWarpSize + lane] = dk[r][d];
      b.dv[at + d * kWarpSize + lane] = dv[r][d];
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
    const int64_t q_blocks = ceil_div(a.max_seqlen_q, kBlockRows), k_blocks = ceil_div(a.max_seqlen_k, kBlockRows);
    if (q_blocks > 0) {
      const size_t smem = sizeof(float) * dq_smem_floats<D>();
      TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      const dim3 grid(static_cast<unsigned>(a.num_seqs * q_blocks), static_cast<unsigned>(a.heads));
      TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_dq_kernel<D>)(b, delta, q_blocks);
      TALARIA_CUDA_CHECK_LAUNCH();
    }
    if (k_blocks > 0) {
      const size_t smem = sizeof(float) * dkv_smem_floats<D>();
      TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_dkv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      const dim3 grid(static_cast<unsigned>(a.num_seqs * k_blocks), static_cast<unsigned>(a.kv_heads));
      TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_dkv_kernel<D>)(b, delta, k_blocks);
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
