// Planted bugs: out-of-bounds accesses, misplaced barriers, a bad launch and a leak. Each kernel is a
// plausible kernel with one mistake, marked BUG; scripts/cuemu-selftest.mjs says what must catch it.
#include "cuda/launch.cuh"
#include "selftest.cuh"

namespace {

constexpr int kThreads = 64;

// out[i + 1] = in[i]: a shift right by one element, out[0] left alone.
__global__ void shift_right(const float* in, float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  // BUG: should stop at n - 1: thread n - 1 writes out[n], one past the end of the buffer.
  if (i < n) out[i + 1] = in[i];
}

// Forward differences within a block's tile.
__global__ void forward_difference_static_tile(const float* in, float* out) {
  __shared__ float tile[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x) * kThreads + t;
  tile[t] = in[i];
  __syncthreads();
  // BUG: the last thread reads tile[kThreads]; it should stop one short (or wrap).
  out[i] = tile[t + 1] - tile[t];
}

// Even threads add their right neighbour, odd threads subtract their left one.
__global__ void parity_pairs(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, staged);
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  staged[t] = in[i];
  if (t % 2 == 0) {
    __syncthreads();  // BUG: even and odd threads wait at two different barriers.
    out[i] = staged[t] + staged[t + 1];
  } else {
    __syncthreads();
    out[i] = staged[t] - staged[t - 1];
  }
}

// Adds the right neighbour within the block, for the first n elements.
__global__ void bounded_neighbour_sum(const float* in, float* out, int n) {
  TALARIA_DYNAMIC_SHARED(float, staged);
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  if (i >= n) return;  // BUG: the threads past n never reach the barrier below.
  staged[t] = in[i];
  __syncthreads();
  const bool has_right = t + 1 < static_cast<int>(blockDim.x) && i + 1 < n;
  out[i] = staged[t] + (has_right ? staged[t + 1] : 0.0f);
}

// Needs 64 KiB of dynamic shared memory: 64 floats per thread.
constexpr int kBigSmemFloatsPerThread = 64;
__global__ void sum_transposed_64k(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, stage);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const float* block_in = in + static_cast<int64_t>(blockIdx.x) * n * kBigSmemFloatsPerThread;
  for (int j = 0; j < kBigSmemFloatsPerThread; ++j) stage[j * n + t] = block_in[j * n + t];
  __syncthreads();
  float acc = 0.0f;
  for (int j = 0; j < kBigSmemFloatsPerThread; ++j) acc += stage[t * kBigSmemFloatsPerThread + j];
  out[static_cast<int>(blockIdx.x) * n + t] = acc;
}

__global__ void scale(const float* in, float* out, int n, float factor) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = in[i] * factor;
}

}  // namespace

SELFTEST_CASE(global_out_of_bounds) {
  constexpr int kN = 200;
  selftest::Rng rng(201);
  const std::vector<float> in = rng.floats(kN);
  std::vector<float> out(kN);
  selftest::DeviceArena arena;
  float *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.upload(&d_out, out));
  TALARIA_LAUNCH((kN + kThreads - 1) / kThreads, kThreads, 0, 0, shift_right)(d_in, d_out, kN);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  std::vector<float> want(kN, 0.0f);
  for (int i = 0; i + 1 < kN; ++i) want[i + 1] = in[i];
  std::vector<double> want_d(want.begin(), want.end());
  return selftest::expect_near("out", out, want_d, 0.0, 0.0);
}

SELFTEST_CASE(static_shared_out_of_bounds) {
  constexpr int kBlocks = 3;
  selftest::Rng rng(202);
  const std::vector<float> in = rng.floats(kBlocks * kThreads);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(forward_difference_static_tile, kBlocks, kThreads, 0, in, out));
  std::vector<double> want(in.size());
  for (size_t i = 0; i < in.size(); ++i)
    want[i] = i % kThreads + 1 < kThreads ? static_cast<double>(in[i + 1]) - in[i] : -static_cast<double>(in[i]);
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}

SELFTEST_CASE(barrier_two_sites) {
  constexpr int kBlocks = 2;
  selftest::Rng rng(203);
  const std::vector<float> in = rng.floats(kBlocks * kThreads);
  std::vector<float> out(in.size());
  SELFTEST_CUDA(selftest::run_in_out(parity_pairs, kBlocks, kThreads, kThreads * sizeof(float), in, out));
  std::vector<double> want(in.size());
  for (size_t i = 0; i < in.size(); ++i)
    want[i] = i % 2 == 0 ? static_cast<double>(in[i]) + in[i + 1] : static_cast<double>(in[i]) - in[i - 1];
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}

SELFTEST_CASE(barrier_after_exit) {
  constexpr int kN = 200;  // the last of 4 blocks has 8 threads with work
  selftest::Rng rng(204);
  const std::vector<float> in = rng.floats(kN);
  std::vector<float> out(kN);
  selftest::DeviceArena arena;
  float *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH((kN + kThreads - 1) / kThreads, kThreads, kThreads * sizeof(float), 0, bounded_neighbour_sum)(
      d_in, d_out, kN);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  std::vector<double> want(kN);
  for (int i = 0; i < kN; ++i)
    want[i] = static_cast<double>(in[i]) + ((i % kThreads) + 1 < kThreads && i + 1 < kN ? in[i + 1] : 0.0f);
  return selftest::expect_near("out", out, want, 1e-6, 1e-6);
}

SELFTEST_CASE(dynamic_smem_too_large) {
  constexpr int kBlocks = 2, kBlockThreads = 256;
  constexpr size_t kSmemBytes = size_t{kBlockThreads} * kBigSmemFloatsPerThread * sizeof(float);  // 64 KiB
  selftest::Rng rng(205);
  const std::vector<float> in = rng.floats(size_t{kBlocks} * kBlockThreads * kBigSmemFloatsPerThread);
  std::vector<float> out(kBlocks * kBlockThreads);
  selftest::DeviceArena arena;
  float *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  // BUG: more than 48 KiB of dynamic shared memory needs cudaFuncSetAttribute(...,
  // cudaFuncAttributeMaxDynamicSharedMemorySize, ...) first; the launch itself fails.
  TALARIA_LAUNCH(kBlocks, kBlockThreads, kSmemBytes, 0, sum_transposed_64k)(d_in, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  std::vector<double> want(out.size(), 0.0);
  // The tile is stored as read, so thread t sums the contiguous run in[t*64 .. t*64+63] of its block.
  for (size_t o = 0; o < out.size(); ++o)
    for (size_t j = 0; j < kBigSmemFloatsPerThread; ++j) want[o] += in[o * kBigSmemFloatsPerThread + j];
  return selftest::expect_near("out", out, want, 1e-5, 1e-5);
}

SELFTEST_CASE(leaked_cudamalloc) {
  constexpr int kN = 100;
  selftest::Rng rng(206);
  const std::vector<float> in = rng.floats(kN);
  std::vector<float> out(kN);
  // Raw cudaMalloc, not the arena: this case exists to leak.
  float *d_in, *d_out;
  SELFTEST_CUDA(cudaMalloc(&d_in, kN * sizeof(float)));
  SELFTEST_CUDA(cudaMalloc(&d_out, kN * sizeof(float)));
  SELFTEST_CUDA(cudaMemcpy(d_in, in.data(), kN * sizeof(float), cudaMemcpyHostToDevice));
  TALARIA_LAUNCH(2, kThreads, 0, 0, scale)(d_in, d_out, kN, 3.0f);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  SELFTEST_CUDA(cudaFree(d_in));
  // BUG: d_out is never freed.
  std::vector<double> want(kN);
  for (int i = 0; i < kN; ++i) want[i] = static_cast<double>(in[i]) * 3.0;
  return selftest::expect_near("out", out, want, 1e-6, 0.0);
}
