// Attention on CUDA. Forward: an f32 FlashAttention-2 loop (online softmax, only lse saved), without
// tensor cores yet. Backward: not written yet; it throws a clear ERR_TALARIA_DEVICE.
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
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // 16 queries per block
constexpr int kTileKeys = kWarpSize;               // one key per lane
constexpr int kThreads = kWarps * kWarpSize;

__device__ __forceinline__ float warp_max(float x) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

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
      const float m_new = fmaxf(m[r], warp_max(s));
      // A row that has seen no allowed key yet keeps o = 0, l = 0 (and P = 0 here).
      const float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
      const float alpha = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
      l[r] = l[r] * alpha + warp_sum(p);
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

void attention_backward(int /*device*/, const AttentionBackwardArgs& /*args*/) {
  throw Error(ErrorCode::Device, "attentionBackward: not implemented on CUDA yet; use cpu tensors");
}

}  // namespace cuda
}  // namespace talaria
