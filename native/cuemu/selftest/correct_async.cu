// cp.async done right: one group completed with wait<0>, and a two-stage pipeline that keeps two groups
// in flight and waits with wait<1>. Both read chunks that other threads copied, after a barrier.
// They must run clean under every schedule and sanitizer.
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"
#include "selftest.cuh"

namespace {

using talaria::cuda::cp_async_16;
using talaria::cuda::cp_async_commit;
using talaria::cuda::cp_async_wait;

constexpr int kThreads = 64;
constexpr int kTileFloats = 4 * kThreads;  // one 16-byte chunk per thread

// Thread t stages chunk t of its block's tile, then writes out the chunk of its mirror thread.
__global__ void mirrored_copy(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, stage);
  const int t = static_cast<int>(threadIdx.x);
  const int base = static_cast<int>(blockIdx.x) * kTileFloats;
  cp_async_16(stage + 4 * t, in + base + 4 * t);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();  // the wait covers this thread's copies; the barrier makes everyone's visible
  const int mirror = kThreads - 1 - t;
  for (int k = 0; k < 4; ++k) out[base + 4 * t + k] = stage[4 * mirror + k];
}

// Two buffers: while tile k is read, tile k+1 is in flight. out = sum over tiles of (k+1) * mirror chunk.
constexpr int kTiles = 4;
__global__ void pipelined_mirror_sum(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, stage);  // [2][kTileFloats]
  const int t = static_cast<int>(threadIdx.x);
  const float* block_in = in + static_cast<int64_t>(blockIdx.x) * kTiles * kTileFloats;
  cp_async_16(stage + 4 * t, block_in + 4 * t);
  cp_async_commit();
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k = 0; k < kTiles; ++k) {
    if (k + 1 < kTiles)
      cp_async_16(stage + ((k + 1) % 2) * kTileFloats + 4 * t, block_in + (k + 1) * kTileFloats + 4 * t);
    cp_async_commit();  // empty on the last tile, so that wait<1> always means "all but the newest"
    cp_async_wait<1>();
    __syncthreads();
    const float* tile = stage + (k % 2) * kTileFloats;
    const int mirror = kThreads - 1 - t;
    for (int c = 0; c < 4; ++c) acc[c] += tile[4 * mirror + c] * static_cast<float>(k + 1);
    __syncthreads();  // the next iteration's copy overwrites the other buffer, read in this one
  }
  for (int c = 0; c < 4; ++c) out[(static_cast<int>(blockIdx.x) * kThreads + t) * 4 + c] = acc[c];
}

}  // namespace

SELFTEST_CASE(cp_async_wait_all) {
  constexpr int kBlocks = 3;
  selftest::Rng rng(501);
  const std::vector<float> in = rng.floats(kBlocks * kTileFloats);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(mirrored_copy, kBlocks, kThreads, kTileFloats * sizeof(float), in, out));
  std::vector<double> want(in.size());
  for (int b = 0; b < kBlocks; ++b)
    for (int t = 0; t < kThreads; ++t)
      for (int k = 0; k < 4; ++k) want[(b * kThreads + t) * 4 + k] = in[(b * kThreads + kThreads - 1 - t) * 4 + k];
  return selftest::expect_near("out", out, want, 0.0, 0.0);
}

SELFTEST_CASE(cp_async_two_groups) {
  constexpr int kBlocks = 2;
  selftest::Rng rng(502);
  const std::vector<float> in = rng.floats(kBlocks * kTiles * kTileFloats);
  std::vector<float> out(kBlocks * kTileFloats);
  SELFTEST_CUDA(selftest::run_in_out(pipelined_mirror_sum, kBlocks, kThreads, 2 * kTileFloats * sizeof(float), in, out));
  std::vector<double> want(out.size(), 0.0);
  for (int b = 0; b < kBlocks; ++b)
    for (int k = 0; k < kTiles; ++k)
      for (int t = 0; t < kThreads; ++t)
        for (int c = 0; c < 4; ++c)
          want[(b * kThreads + t) * 4 + c] +=
              static_cast<double>(in[(b * kTiles + k) * kTileFloats + (kThreads - 1 - t) * 4 + c]) * (k + 1);
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}
