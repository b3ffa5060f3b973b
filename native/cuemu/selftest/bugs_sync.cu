// Planted bugs in block and warp synchronisation. Each kernel is a plausible kernel with one mistake,
// marked BUG; scripts/cuemu-selftest.mjs says which check must catch it.
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"
#include "selftest.cuh"

namespace {

constexpr int kThreads = 64;
constexpr int kBlocks = 4;

// out[i] = own element + right neighbour's element (cyclic within the block), staged in shared memory.
__global__ void neighbour_sum_missing_barrier(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, staged);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const int i = static_cast<int>(blockIdx.x) * n + t;
  staged[t] = in[i];
  // BUG: no __syncthreads() here, so the neighbour's slot may not be written yet.
  out[i] = staged[t] + staged[(t + 1) % n];
}

// Each pass stages a slice of the input in one reused tile; out accumulates the neighbours' values
// weighted by the pass number, so a value from the wrong pass changes the result.
__global__ void tiled_neighbour_sum_missing_war_barrier(const float* in, float* out, int passes) {
  TALARIA_DYNAMIC_SHARED(float, tile);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const float* block_in = in + static_cast<int64_t>(blockIdx.x) * passes * n;
  float acc = 0.0f;
  for (int p = 0; p < passes; ++p) {
    tile[t] = block_in[p * n + t];
    __syncthreads();
    acc += tile[(t + 1) % n] * static_cast<float>(p + 1);
    // BUG: no __syncthreads() here, so the next pass overwrites the tile while neighbours still read it.
  }
  out[static_cast<int>(blockIdx.x) * n + t] = acc;
}

// Every lane should end with lane 0's value plus its own.
__global__ void half_warp_broadcast(const float* in, float* out) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float v = in[i];
  float lead = v;
  // BUG: the full mask names lanes 16..31, which skip the shuffle and wait at the barrier instead.
  if (lane < 16) lead = __shfl_sync(0xffffffffu, v, 0);
  __syncthreads();
  out[i] = lead + v;
}

// Stages 4 floats per thread with cp.async, then each thread reads the chunk of its mirror thread.
__global__ void mirrored_copy_without_wait(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, stage);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const int base = static_cast<int>(blockIdx.x) * n * 4;
  talaria::cuda::cp_async_16(stage + 4 * t, in + base + 4 * t);
  talaria::cuda::cp_async_commit();
  // BUG: no cp_async_wait<0>() before the barrier, so the copies need not have landed.
  __syncthreads();
  const int mirror = n - 1 - t;
  for (int k = 0; k < 4; ++k) out[base + 4 * t + k] = stage[4 * mirror + k];
}

int check_neighbour_sums(const std::vector<float>& in, const std::vector<float>& out) {
  std::vector<double> want(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const size_t block = i / kThreads, t = i % kThreads;
    want[i] = static_cast<double>(in[i]) + in[block * kThreads + (t + 1) % kThreads];
  }
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}

}  // namespace

SELFTEST_CASE(missing_barrier_raw) {
  selftest::Rng rng(101);
  const std::vector<float> in = rng.floats(kBlocks * kThreads);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(neighbour_sum_missing_barrier, kBlocks, kThreads, kThreads * sizeof(float), in, out));
  return check_neighbour_sums(in, out);
}

SELFTEST_CASE(missing_barrier_war) {
  constexpr int kPasses = 3;
  selftest::Rng rng(102);
  const std::vector<float> in = rng.floats(kBlocks * kPasses * kThreads);
  std::vector<float> out(kBlocks * kThreads);
  selftest::DeviceArena arena;
  float *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(kBlocks, kThreads, kThreads * sizeof(float), 0, tiled_neighbour_sum_missing_war_barrier)(
      d_in, d_out, kPasses);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  std::vector<double> want(out.size(), 0.0);
  for (int b = 0; b < kBlocks; ++b)
    for (int t = 0; t < kThreads; ++t)
      for (int p = 0; p < kPasses; ++p)
        want[b * kThreads + t] += static_cast<double>(in[(b * kPasses + p) * kThreads + (t + 1) % kThreads]) * (p + 1);
  return selftest::expect_near("out", out, want, 1e-5, 1e-5);
}

SELFTEST_CASE(half_warp_shuffle) {
  selftest::Rng rng(103);
  const std::vector<float> in = rng.floats(kBlocks * kThreads);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(half_warp_broadcast, kBlocks, kThreads, 0, in, out));
  std::vector<double> want(in.size());
  for (size_t i = 0; i < in.size(); ++i) want[i] = static_cast<double>(in[i]) + in[i / 32 * 32];
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}

SELFTEST_CASE(cp_async_no_wait) {
  selftest::Rng rng(104);
  const std::vector<float> in = rng.floats(kBlocks * kThreads * 4);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(mirrored_copy_without_wait, kBlocks, kThreads, kThreads * 4 * sizeof(float), in, out));
  std::vector<float> want(in.size());
  for (int b = 0; b < kBlocks; ++b)
    for (int t = 0; t < kThreads; ++t)
      for (int k = 0; k < 4; ++k) want[(b * kThreads + t) * 4 + k] = in[(b * kThreads + kThreads - 1 - t) * 4 + k];
  // Bitwise: a copy moves bits. Compare as integers so NaN poison shows as a difference.
  std::vector<uint32_t> got_bits(out.size()), want_bits(want.size());
  std::memcpy(got_bits.data(), out.data(), out.size() * sizeof(float));
  std::memcpy(want_bits.data(), want.data(), want.size() * sizeof(float));
  return selftest::expect_equal("out bits", got_bits, want_bits);
}
