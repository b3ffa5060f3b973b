// KV-cache append and single-token decode on CUDA (attention.h).
//
// Append: one thread per float of the new rows (64-bit indices), then one thread per sequence grows
// cache_seqlens, in a second launch so no copy reads a length that was already grown.
// Decode, split-KV (FlashDecoding): a sequence's context is cut into `splits` chunks of keys so that a
// small batch still fills the GPU. Block (sequence, head, split): each warp takes every 4th key of the
// chunk, scores it with a warp dot product (lane e holds dims e, e + 32, ...), and keeps its own online
// softmax state (m, l, o: D / 32 floats a lane); the 4 warps merge in shared memory and the block writes
// its partial (m, l, o). A merge kernel combines the splits: m = max m_s, l = sum l_s e^(m_s - m),
// o = sum o_s e^(m_s - m) / l, lse = m + log l.
// Napkin math: the step reads the cached K and V once per query head (L1/L2 catch the H / Hkv reuse):
// 2 * L * Hkv * D * 4 bytes per sequence, bandwidth-bound at ~1 FLOP per byte.
#include "../core/kernels/attention.h"
#include "check.cuh"
#include "launch.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int64_t kKeysPerSplit = 256;
constexpr int kMaxSplits = 32;

__global__ void __launch_bounds__(kThreads) append_rows_kernel(KvCacheAppendArgs a) {
  const int64_t row = static_cast<int64_t>(a.kv_heads) * a.head_dim, total = a.total * row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t t = i / row;
    int64_t lo = 0, hi = a.batch;  // the sequence of token t: the last b with cu_seqlens[b] <= t
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (a.cu_seqlens[mid] <= t) lo = mid; else hi = mid;
    }
    const int64_t at = (lo * a.max_len + a.cache_seqlens[lo] + (t - a.cu_seqlens[lo])) * row + i % row;
    a.cache_k[at] = a.k[i];
    a.cache_v[at] = a.v[i];
  }
}

__global__ void __launch_bounds__(kThreads) grow_lengths_kernel(KvCacheAppendArgs a) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b < a.batch) a.cache_seqlens[b] += a.cu_seqlens[b + 1] - a.cu_seqlens[b];
}


// Partial results of one (sequence, head, split): m, l, then D floats of unnormalised o.
template <int D>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(AttentionDecodeArgs a, int splits, float* partial) {
  constexpr int kDims = D / kWarpSize;
  __shared__ float m_s[kWarps], l_s[kWarps], o_s[kWarps][D];
  const int64_t b = blockIdx.x;
  const int h = blockIdx.y, split = blockIdx.z, g = h / (a.heads / a.kv_heads);
  const int lane = lane_id(), warp = warp_id();
  const int64_t keys = a.cache_seqlens[b], chunk = ceil_div(keys, splits);
  const int64_t first = split * chunk, last = first + chunk < keys ? first + chunk : keys;
  const int64_t row = static_cast<int64_t>(a.kv_heads) * D;
  const float* k = a.cache_k + b * a.max_len * row + g * D;
  const float* v = a.cache_v + b * a.max_len * row + g * D;
  float q[kDims], o[kDims], m = -INFINITY, l = 0.0f;
#pragma unroll
  for (int e = 0; e < kDims; e++) {
    q[e] = a.q[(b * a.heads + h) * D + e * kWarpSize + lane] * a.scale;
    o[e] = 0.0f;
  }
  for (int64_t j = first + warp; j < last; j += kWarps) {
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kDims; e++) dot = fmaf(q[e], k[j * row + e * kWarpSize + lane], dot);
    const float s = warp_allreduce_sum(dot);
    const float m_new = fmaxf(m, s), alpha = expf(m - m_new), p = expf(s - m_new);
    l = l * alpha + p;
#pragma unroll
    for (int e = 0; e < kDims; e++) o[e] = fmaf(p, v[j * row + e * kWarpSize + lane], o[e] * alpha);
    m = m_new;
  }
  if (lane == 0) m_s[warp] = m, l_s[warp] = l;
#pragma unroll
  for (int e = 0; e < kDims; e++) o_s[warp][e * kWarpSize + lane] = o[e];
  __syncthreads();
  if (warp == 0) {  // merge the warps in a fixed order
    float mb = -INFINITY;
    for (int w = 0; w < kWarps; w++) mb = fmaxf(mb, m_s[w]);
    float lb = 0.0f, ob[kDims] = {};
    for (int w = 0; w < kWarps; w++) {
      const float f = m_s[w] == -INFINITY ? 0.0f : expf(m_s[w] - mb);
      lb += l_s[w] * f;
#pragma unroll
      for (int e = 0; e < kDims; e++) ob[e] += o_s[w][e * kWarpSize + lane] * f;
    }
    float* out = partial + ((b * a.heads + h) * splits + split) * (D + 2);
    if (lane == 0) out[0] = mb, out[1] = lb;
#pragma unroll
    for (int e = 0; e < kDims; e++) out[2 + e * kWarpSize + lane] = ob[e];
  }
}

// One warp per (sequence, head): combines the splits' partials in order.
template <int D>
__global__ void __launch_bounds__(kThreads) decode_merge_kernel(AttentionDecodeArgs a, int splits, const float* partial) {
  constexpr int kDims = D / kWarpSize;
  const int64_t pair = static_cast<int64_t>(blockIdx.x) * kWarps + warp_id();
  if (pair >= a.batch * a.heads) return;  // whole warps leave together
  const int lane = lane_id();
  const float* in = partial + pair * splits * (D + 2);
  float m = -INFINITY;
  for (int s = 0; s < splits; s++) m = fmaxf(m, in[s * (D + 2)]);
  float l = 0.0f, o[kDims] = {};
  for (int s = 0; s < splits; s++) {
    const float f = in[s * (D + 2)] == -INFINITY ? 0.0f : expf(in[s * (D + 2)] - m);
    l += in[s * (D + 2) + 1] * f;
#pragma unroll
    for (int e = 0; e < kDims; e++) o[e] += in[s * (D + 2) + 2 + e * kWarpSize + lane] * f;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int e = 0; e < kDims; e++) a.o[pair * D + e * kWarpSize + lane] = o[e] * inv;
  const int64_t b = pair / a.heads, h = pair % a.heads;
  if (lane == 0) a.lse[h * a.batch + b] = l > 0.0f ? m + logf(l) : -INFINITY;
}

template <int D>
void launch_decode(const AttentionDecodeArgs& a) {
  const int64_t want = ceil_div(a.max_seqlen, kKeysPerSplit);
  const int splits = static_cast<int>(want < 1 ? 1 : want > kMaxSplits ? kMaxSplits : want);
  DeviceScratch scratch(sizeof(float) * static_cast<size_t>(a.batch * a.heads * splits * (D + 2)));
  float* partial = reinterpret_cast<float*>(scratch.bytes());
  const dim3 grid(static_cast<unsigned>(a.batch), static_cast<unsigned>(a.heads), static_cast<unsigned>(splits));
  TALARIA_LAUNCH(grid, kThreads, 0, 0, decode_split_kernel<D>)(a, splits, partial);
  TALARIA_CUDA_CHECK_LAUNCH();
  const int merge_blocks = static_cast<int>(ceil_div(a.batch * a.heads, kWarps));
  TALARIA_LAUNCH(merge_blocks, kThreads, 0, 0, decode_merge_kernel<D>)(a, splits, partial);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());  // the kernels are done with the scratch before it is freed
  scratch.release();
}

}  // namespace

void kv_cache_append(int device, const KvCacheAppendArgs& args) {
  if (args.batch == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const int64_t total = args.total * args.kv_heads * args.head_dim;
  if (total > 0) {
    const int grid = static_cast<int>(ceil_div(total, kThreads) < 65536 ? ceil_div(total, kThreads) : 65536);
    TALARIA_LAUNCH(grid, kThreads, 0, 0, append_rows_kernel)(args);
    TALARIA_CUDA_CHECK_LAUNCH();
  }
  TALARIA_LAUNCH(static_cast<int>(ceil_div(args.batch, kThreads)), kThreads, 0, 0, grow_lengths_kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void attention_decode(int device, const AttentionDecodeArgs& args) {
  if (args.batch == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  switch (args.head_dim) {
    case 32: launch_decode<32>(args); break;
    case 64: launch_decode<64>(args); break;
    default: launch_decode<128>(args); break;
  }
}

}  // namespace cuda
}  // namespace talaria
