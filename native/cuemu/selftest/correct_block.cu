// Correct block-level programs: they must run clean under every schedule and sanitizer.
// Tree reduction with barriers, __syncthreads_count/_and/_or, atomics across blocks, 64 KiB of
// dynamic shared memory after the cudaFuncSetAttribute opt-in, and cudaMalloc's alignment.
#include <algorithm>
#include <climits>

#include "cuda/launch.cuh"
#include "selftest.cuh"

namespace {

constexpr int kReduceThreads = 256;

// Per block: the sum (tree in static shared memory) and the max (tree in dynamic shared memory) of
// `per_block` elements; per_block need not be a multiple of the block size.
__global__ void block_sum_and_max(const float* in, float* sums, float* maxima, int per_block) {
  __shared__ float partial_sum[kReduceThreads];
  TALARIA_DYNAMIC_SHARED(float, partial_max);
  const int t = static_cast<int>(threadIdx.x);
  const float* mine = in + static_cast<int64_t>(blockIdx.x) * per_block;
  float sum = 0.0f, largest = -INFINITY;
  for (int j = t; j < per_block; j += kReduceThreads) {
    sum += mine[j];
    largest = fmaxf(largest, mine[j]);
  }
  partial_sum[t] = sum;
  partial_max[t] = largest;
  __syncthreads();
  for (int stride = kReduceThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      partial_sum[t] += partial_sum[t + stride];
      partial_max[t] = fmaxf(partial_max[t], partial_max[t + stride]);
    }
    __syncthreads();
  }
  if (t == 0) {
    sums[blockIdx.x] = partial_sum[0];
    maxima[blockIdx.x] = partial_max[0];
  }
}

// A 2-D block; each thread stores the three block-wide predicate results.
__global__ void barrier_predicates(const int* in, const int* and_floor, const int* or_ceiling, int* out) {
  const int t = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
  const int per_block = static_cast<int>(blockDim.x * blockDim.y);
  const int i = static_cast<int>(blockIdx.x) * per_block + t;
  const int x = in[i];
  const int positive = __syncthreads_count(x > 0);
  const int all_above = __syncthreads_and(x >= and_floor[blockIdx.x]);
  const int any_above = __syncthreads_or(x > or_ceiling[blockIdx.x]);
  out[3 * i + 0] = positive;
  out[3 * i + 1] = all_above;
  out[3 * i + 2] = any_above;
}

struct AtomicTargets {
  int* histogram;     // [8]
  float* float_sum;   // [1]
  int* int_max;       // [1]
  int* owner;         // [8], -1 = unclaimed
  int* claims;        // [8]
  int* cas_sum;       // [1]
};

__global__ void atomics_everywhere(const int* keys, const float* weights, const int* values, AtomicTargets targets) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int key = keys[i];
  atomicAdd(&targets.histogram[key], 1);
  atomicAdd(targets.float_sum, weights[i]);
  atomicMax(targets.int_max, values[i]);
  // First thread per key claims it; only the CAS that saw -1 counts.
  if (atomicCAS(&targets.owner[key], -1, i) == -1) atomicAdd(&targets.claims[key], 1);
  // An add built from CAS. It starts from a guess rather than a plain read of the target, which would
  // race with other blocks' atomics.
  int assumed = 0;
  for (;;) {
    const int old = atomicCAS(targets.cas_sum, assumed, assumed + values[i]);
    if (old == assumed) break;
    assumed = old;
  }
}

constexpr int kBigSmemFloatsPerThread = 64;  // 256 threads: 64 KiB
__global__ void sum_transposed_64k(const float* in, float* out) {
  TALARIA_DYNAMIC_SHARED(float, stage);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const float* block_in = in + static_cast<int64_t>(blockIdx.x) * n * kBigSmemFloatsPerThread;
  for (int j = 0; j < kBigSmemFloatsPerThread; ++j) stage[j * n + t] = block_in[j * n + t];  // coalesced
  __syncthreads();
  float acc = 0.0f;
  for (int j = 0; j < kBigSmemFloatsPerThread; ++j) acc += stage[t * kBigSmemFloatsPerThread + j];
  out[static_cast<int>(blockIdx.x) * n + t] = acc;
}

}  // namespace

SELFTEST_CASE(block_reduce_tree) {
  constexpr int kBlocks = 4, kPerBlock = 1000;
  selftest::Rng rng(301);
  const std::vector<float> in = rng.floats(kBlocks * kPerBlock);
  std::vector<float> sums(kBlocks), maxima(kBlocks);
  selftest::DeviceArena arena;
  float *d_in, *d_sums, *d_maxima;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_sums, kBlocks));
  SELFTEST_CUDA(arena.alloc(&d_maxima, kBlocks));
  TALARIA_LAUNCH(kBlocks, kReduceThreads, kReduceThreads * sizeof(float), 0, block_sum_and_max)(
      d_in, d_sums, d_maxima, kPerBlock);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(sums, d_sums));
  SELFTEST_CUDA(selftest::download(maxima, d_maxima));
  std::vector<double> want_sums(kBlocks, 0.0), want_maxima(kBlocks, -INFINITY);
  for (int b = 0; b < kBlocks; ++b)
    for (int j = 0; j < kPerBlock; ++j) {
      want_sums[b] += in[b * kPerBlock + j];
      want_maxima[b] = std::fmax(want_maxima[b], in[b * kPerBlock + j]);
    }
  // f32 sums of 1000 terms of magnitude <= 2: a few ulps of the absolute sum.
  return selftest::expect_near("sums", sums, want_sums, 0.0, 1e-3) |
         selftest::expect_near("maxima", maxima, want_maxima, 0.0, 0.0);
}

SELFTEST_CASE(syncthreads_predicates) {
  constexpr int kBlocks = 3, kX = 16, kY = 6, kPer = kX * kY;
  selftest::Rng rng(302);
  std::vector<int> in = rng.ints(kBlocks * kPer, -50, 50);
  // Floors and ceilings picked so each predicate comes out true in some blocks and false in others.
  std::vector<int> block_min(kBlocks, INT_MAX), block_max(kBlocks, INT_MIN);
  for (int i = 0; i < kBlocks * kPer; ++i) {
    block_min[i / kPer] = std::min(block_min[i / kPer], in[i]);
    block_max[i / kPer] = std::max(block_max[i / kPer], in[i]);
  }
  const std::vector<int> and_floor = {block_min[0], block_min[1] + 1, -1000};
  const std::vector<int> or_ceiling = {block_max[0] - 1, 1000, block_max[2]};
  std::vector<int> out(3 * in.size());
  selftest::DeviceArena arena;
  int *d_in, *d_floor, *d_ceiling, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.upload(&d_floor, and_floor));
  SELFTEST_CUDA(arena.upload(&d_ceiling, or_ceiling));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(kBlocks, dim3(kX, kY), 0, 0, barrier_predicates)(d_in, d_floor, d_ceiling, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  std::vector<int> want(out.size());
  for (int b = 0; b < kBlocks; ++b) {
    int positive = 0, all_above = 1, any_above = 0;
    for (int t = 0; t < kPer; ++t) {
      const int x = in[b * kPer + t];
      positive += x > 0;
      all_above &= x >= and_floor[b];
      any_above |= x > or_ceiling[b];
    }
    for (int t = 0; t < kPer; ++t) {
      want[3 * (b * kPer + t) + 0] = positive;
      want[3 * (b * kPer + t) + 1] = all_above;
      want[3 * (b * kPer + t) + 2] = any_above;
    }
  }
  return selftest::expect_equal("count/and/or", out, want);
}

SELFTEST_CASE(atomics_across_blocks) {
  constexpr int kBlocks = 6, kThreads = 128, kN = kBlocks * kThreads, kKeys = 8;
  selftest::Rng rng(303);
  std::vector<int> keys = rng.ints(kN, 0, kKeys - 2);  // key 7 never occurs: its slot stays unclaimed
  const std::vector<float> weights = rng.floats(kN);
  const std::vector<int> values = rng.ints(kN, -1000, 1000);
  selftest::DeviceArena arena;
  int *d_keys, *d_values;
  float* d_weights;
  AtomicTargets targets;
  SELFTEST_CUDA(arena.upload(&d_keys, keys));
  SELFTEST_CUDA(arena.upload(&d_weights, weights));
  SELFTEST_CUDA(arena.upload(&d_values, values));
  SELFTEST_CUDA(arena.upload(&targets.histogram, std::vector<int>(kKeys, 0)));
  SELFTEST_CUDA(arena.upload(&targets.float_sum, std::vector<float>(1, 0.0f)));
  SELFTEST_CUDA(arena.upload(&targets.int_max, std::vector<int>(1, INT_MIN)));
  SELFTEST_CUDA(arena.upload(&targets.owner, std::vector<int>(kKeys, -1)));
  SELFTEST_CUDA(arena.upload(&targets.claims, std::vector<int>(kKeys, 0)));
  SELFTEST_CUDA(arena.upload(&targets.cas_sum, std::vector<int>(1, 0)));
  TALARIA_LAUNCH(kBlocks, kThreads, 0, 0, atomics_everywhere)(d_keys, d_weights, d_values, targets);
  SELFTEST_CHECK_LAUNCH();
  std::vector<int> histogram(kKeys), int_max(1), owner(kKeys), claims(kKeys), cas_sum(1);
  std::vector<float> float_sum(1);
  SELFTEST_CUDA(selftest::download(histogram, targets.histogram));
  SELFTEST_CUDA(selftest::download(float_sum, targets.float_sum));
  SELFTEST_CUDA(selftest::download(int_max, targets.int_max));
  SELFTEST_CUDA(selftest::download(owner, targets.owner));
  SELFTEST_CUDA(selftest::download(claims, targets.claims));
  SELFTEST_CUDA(selftest::download(cas_sum, targets.cas_sum));

  std::vector<int> want_histogram(kKeys, 0), want_claims(kKeys, 0), want_max(1, INT_MIN), want_cas(1, 0);
  std::vector<double> want_float(1, 0.0);
  for (int i = 0; i < kN; ++i) {
    want_histogram[keys[i]]++;
    want_float[0] += weights[i];
    want_max[0] = std::max(want_max[0], values[i]);
    want_cas[0] += values[i];
  }
  // The owner of a key is whichever thread won, but it must hold that key.
  std::vector<int> owner_key(kKeys, -1);
  for (int k = 0; k < kKeys; ++k) {
    want_claims[k] = want_histogram[k] > 0 ? 1 : 0;
    owner_key[k] = owner[k] >= 0 && owner[k] < kN ? keys[owner[k]] : -1;
  }
  std::vector<int> want_owner_key(kKeys);
  for (int k = 0; k < kKeys; ++k) want_owner_key[k] = want_histogram[k] > 0 ? k : -1;
  // Float adds in any order: |error| <= n * eps * sum|w| ~ 768 * 6e-8 * 768 * 2.
  return selftest::expect_equal("histogram", histogram, want_histogram) |
         selftest::expect_near("float_sum", float_sum, want_float, 0.0, 0.1) |
         selftest::expect_equal("int_max", int_max, want_max) | selftest::expect_equal("claims", claims, want_claims) |
         selftest::expect_equal("key of owner", owner_key, want_owner_key) |
         selftest::expect_equal("cas_sum", cas_sum, want_cas);
}

SELFTEST_CASE(dynamic_smem_64k) {
  constexpr int kBlocks = 2, kThreads = 256;
  constexpr int kSmemBytes = kThreads * kBigSmemFloatsPerThread * static_cast<int>(sizeof(float));  // 64 KiB
  selftest::Rng rng(304);
  const std::vector<float> in = rng.floats(size_t{kBlocks} * kThreads * kBigSmemFloatsPerThread);
  std::vector<float> out(kBlocks * kThreads);
  selftest::DeviceArena arena;
  float *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  SELFTEST_CUDA(cudaFuncSetAttribute(sum_transposed_64k, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  TALARIA_LAUNCH(kBlocks, kThreads, kSmemBytes, 0, sum_transposed_64k)(d_in, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));
  // The tile is stored as read, so thread t sums the contiguous run in[t*64 .. t*64+63] of its block.
  std::vector<double> want(out.size(), 0.0);
  for (size_t o = 0; o < out.size(); ++o)
    for (size_t j = 0; j < kBigSmemFloatsPerThread; ++j) want[o] += in[o * kBigSmemFloatsPerThread + j];
  return selftest::expect_near("out", out, want, 1e-5, 1e-4);
}

namespace {
__global__ void fill_iota(int* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = 3 * i + 1;
}
}  // namespace

// The programming guide ("Device Memory Accesses"): an address returned by the runtime's allocation
// routines is always aligned to at least 256 bytes. Vectorised kernels rely on it.

SELFTEST_CASE(cudamalloc_alignment) {
  const size_t sizes[] = {1, 3, 100, 1000, 4100};
  selftest::DeviceArena arena;
  int failed = 0;
  for (size_t bytes : sizes) {
    unsigned char* p;
    SELFTEST_CUDA(arena.alloc(&p, bytes));
    const uintptr_t misalignment = reinterpret_cast<uintptr_t>(p) % 256;
    if (misalignment != 0) {
      std::fprintf(stderr, "cudaMalloc(%zu bytes) returned %p, %zu bytes past a 256-byte boundary\n", bytes,
                   static_cast<void*>(p), static_cast<size_t>(misalignment));
      failed = 1;
    }
  }
  // And the memory works: a kernel fills one buffer.
  constexpr int kN = 1000;
  int* d_out;
  SELFTEST_CUDA(arena.alloc(&d_out, kN));
  TALARIA_LAUNCH((kN + 127) / 128, 128, 0, 0, fill_iota)(d_out, kN);
  SELFTEST_CHECK_LAUNCH();
  std::vector<int> out(kN), want(kN);
  SELFTEST_CUDA(selftest::download(out, d_out));
  for (int i = 0; i < kN; ++i) want[i] = 3 * i + 1;
  return failed | selftest::expect_equal("out", out, want);
}
