// Attention on CUDA: f32 FlashAttention-2 loops, without tensor cores yet. The forward keeps an online
// softmax and saves only lse; the backward recomputes P from lse and runs without atomics (a dq kernel
// over query blocks, a dk/dv kernel over key blocks), as the CPU backward does.
//
// Forward layout: one block of 4 warps per (sequence, head, 16 queries); each warp owns 4 query rows.
// The block stages 32 keys and values at a time in shared memory (K rows padded to D + 1 floats so the
// 32 lanes reading 32 different rows of one column hit 32 banks). Per tile and row, lane j scores key j
// (D FMAs against the row of q, a broadcast read), the warp reduces the tile's max and sum once, and
// each lane updates its D / 32 output dims with the 32 probabilities (read back from shared memory).
// Registers: 4 rows x D / 32 accumulators (16 at D = 128) plus m and l: no spills at 64 registers.
//
// Napkin math: per 32-key tile and row, 2 * 32 * D FLOP on (2 * 32 * D) * 4 bytes of shared memory that
// 16 rows share: shared-memory bound at ~1 FLOP per shared byte, a few TFLOP/s on A100 (the tensor-core
// m16n8k16 version is the next step, DESIGN.md). Global traffic: K and V are read once per 16 queries.
#include <string>

#include "../core/error.h"
#include "../core/kernels/attention.h"
#include "check.cuh"
#include "launch.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // 16 queries per block
constexpr int kTileKeys = kWarpSize;               // one key per lane
constexpr int kThreads = kWarps * kWarpSize;


// Shared memory, in floats: q rows (scaled) [16][D], K tile [32][D + 1], V tile [32][D], P [4 warps][32].
template <int D>
constexpr int forward_smem_floats() { return kBlockRows * D + kTileKeys * (D + 1) + kTileKeys * D + kWarps * kTileKeys; }

template <int D>
// 4 blocks of 128 threads per SM: up to 128 registers a thread (D = 128 needs ~127, none spilled).
__global__ void __launch_bounds__(kThreads, 4) attention_forward_kernel(AttentionForwardArgs a, int64_t blocks_per_seq) {
  constexpr int kDims = D / kWarpSize;  // output dims per lane
  TALARIA_DYNAMIC_SHARED(float, smem);
  float* q_s = smem;
  float* k_s = q_s + kBlockRows * D;
  float* v_s = k_s + kTileKeys * (D + 1);
  float* p_s = v_s + kTileKeys * D;

  const int64_t b = blockIdx.x / blocks_per_seq;
  const int64_t q_begin = (blockIdx.x % blocks_per_seq) * kBlockRows;
  const int h = blockIdx.y, kvh = h / (a.heads / a.kv_heads);
  const int64_t q0 = a.cu_seqlens_q[b], lq = a.cu_seqlens_q[b + 1] - q0;
  const int64_t k0 = a.cu_seqlens_k[b], lk = a.cu_seqlens_k[b + 1] - k0;
  if (q_begin >= lq) return;  // the whole block leaves together, before any barrier
  const int rows = static_cast<int>(lq - q_begin < kBlockRows ? lq - q_begin : kBlockRows);
  const int64_t hd = static_cast<int64_t>(a.heads) * D, kvd = static_cast<int64_t>(a.kv_heads) * D;
  const int lane = lane_id(), warp = warp_id();

  for (int e = threadIdx.x; e < kBlockRows * D; e += kThreads) {
    const int r = e / D;
    q_s[e] = r < rows ? a.q[(q0 + q_begin + r) * hd + h * D + e % D] * a.scale : 0.0f;
  }
  // Keys any row of the block may see (bottom-right causal: query i sees j <= i + lk - lq).
  int64_t key_end = a.causal ? q_begin + rows + (lk - lq) : lk;
  key_end = key_end < 0 ? 0 : key_end > lk ? lk : key_end;

  // Every loop that indexes o, m or l is unrolled, so they stay in registers (no local-memory frame).
  float o[kRowsPerWarp][kDims], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int d = 0; d < kDims; d++) o[r][d] = 0.0f;
  }
  for (int64_t kb = 0; kb < key_end; kb += kTileKeys) {
    const int keys = static_cast<int>(key_end - kb < kTileKeys ? key_end - kb : kTileKeys);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < kTileKeys * D; e += kThreads) {
      const int j = e / D, d = e % D;
      const int64_t src = (k0 + kb + j) * kvd + kvh * D + d;
      k_s[j * (D + 1) + d] = j < keys ? a.k[src] : 0.0f;
      v_s[j * D + d] = j < keys ? a.v[src] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t limit = a.causal ? q_begin + row + (lk - lq) + 1 - kb : keys;  // keys [0, limit) allowed
      float s = 0.0f;
      for (int d = 0; d < D; d++) s = fmaf(q_s[row * D + d], k_s[lane * (D + 1) + d], s);
      s = row < rows && lane < keys && lane < limit ? s : -INFINITY;
      const float m_new = fmaxf(m[r], warp_allreduce_max(s));
      // A row that has seen no allowed key yet keeps o = 0, l = 0 (and P = 0 here).
      const float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
      const float alpha = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
      l[r] = l[r] * alpha + warp_allreduce_sum(p);
      m[r] = m_new;
      p_s[warp * kTileKeys + lane] = p;
      __syncwarp();
#pragma unroll
      for (int d = 0; d < kDims; d++) {
        float acc = o[r][d] * alpha;
        for (int j = 0; j < keys; j++) acc = fmaf(p_s[warp * kTileKeys + j], v_s[j * D + d * kWarpSize + lane], acc);
        o[r][d] = acc;
      }
      __syncwarp();  // p_s is rewritten by the next row
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= rows) continue;
    const int64_t t = q0 + q_begin + row;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int d = 0; d < kDims; d++) a.o[t * hd + h * D + d * kWarpSize + lane] = o[r][d] * inv;
    if (lane == 0) a.lse[h * a.total_q + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

template <int D>
void launch_forward(const AttentionForwardArgs& a) {
  const int64_t blocks_per_seq = ceil_div(a.max_seqlen_q, kBlockRows);
  const size_t smem = sizeof(float) * forward_smem_floats<D>();
  TALARIA_CUDA_CHECK(cudaFuncSetAttribute(attention_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(a.num_seqs * blocks_per_seq), static_cast<unsigned>(a.heads));
  TALARIA_LAUNCH(grid, kThreads, smem, 0, attention_forward_kernel<D>)(a, blocks_per_seq);
  TALARIA_CUDA_CHECK_LAUNCH();
}


// ---- backward ---------------------------------------------------------------------------------------------
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
