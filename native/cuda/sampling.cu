// CUDA sampler: one block of 256 threads per row. Semantics and napkin math:
// native/core/kernels/sampling.h. Every per-token value comes from sampling_math.h (explicit fmaf, single
// IEEE ops), and every combination of tokens is exact: a max, integer histograms built with integer
// atomics (order-independent), and an integer prefix sum. So the tokens equal the CPU's bit for bit on any
// GPU, launch shape or schedule. No float atomics, no sorting, no CUB.
//
// Per row (one block; rows loop over a capped grid):
//   0. with penalties: the history's counts, by integer atomicAdd into a [rows, V] int32 scratch that the
//      host zeroes (cudaMemsetAsync); __syncthreads makes them visible to the whole block.
//   1. max (greedy: argmax, lowest index on ties) of z over the row: block_reduce.
//   2. top-k: radix select of the k-th largest key, 4 passes of an 8-bit digit; each pass builds a
//      256-bucket count histogram in shared memory with integer atomics, then every thread picks the same
//      bucket with choose_bucket (so no broadcast is needed).
//   3. top-p: the survivors' total weight (an integer block sum), then the same radix select weighted by
//      the integer weights (uint64 shared atomics).
//   4. the draw: thread t owns a contiguous slice of the vocabulary; block_exclusive_sum of the slices'
//      survivor weights gives W_S and each slice's base; the one thread whose slice holds the target walks
//      it in vocab order. A warp's loads here are strided by the slice length (not coalesced); each
//      thread walks its own lines, which stay in L1 between iterations. A tiled scan would coalesce, at
//      the cost of a block scan and its barriers per tile; this pass is one of ~12, so simple wins.
//   5. logpPlain: max and f64 sum of the plain terms (block_reduce in a fixed order; not bitwise the CPU's
//      sum, which runs in index order).
// z is recomputed from the logits (and counts) in every pass rather than stored: it costs a division
// (and an exp where a weight is needed) per token and pass, and needs no [rows, V] scratch.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../core/kernels/sampling.h"
#include "check.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;

// One row's values: z_i = canonical(penalised(logit_i, count_i) / divisor).
struct RowValues {
  const float* logits;
  const int32_t* counts;  // nullptr without penalties
  float divisor;
  Penalties penalties;
  __device__ float operator()(int64_t i) const {
    const int32_t count = counts != nullptr ? counts[i] : 0;
    return canonical_logit(div_rn(penalized_logit(logits[i], count, penalties), divisor));
  }
};

struct ArgMax {
  float value;
  int32_t index;
};
struct ArgMaxCombine {
  __device__ static ArgMax identity() { return ArgMax{-INFINITY, 0x7fffffff}; }
  __device__ void operator()(ArgMax& into, const ArgMax& from) const {
    if (from.value > into.value || (from.value == into.value && from.index < into.index)) into = from;
  }
};

// block_reduce, with the result broadcast to every thread.
template <typename T, typename Combine>
__device__ T block_all_reduce(T value, Combine combine, T* scratch) {
  T total = block_reduce(value, combine, scratch);
  if (threadIdx.x == 0) scratch[0] = total;
  __syncthreads();
  total = scratch[0];
  __syncthreads();  // scratch may be reused at once
  return total;
}

// The largest key v with (sum over keys k >= max(v, floor) of the weight, or 1 when !weighted) >= target.
__device__ uint32_t block_radix_select(const RowValues& values, int64_t vocab, float m, bool weighted, uint32_t floor,
                                       uint64_t target, unsigned long long* histogram) {
  uint32_t prefix = 0;
  uint64_t above = 0;
  for (int pass = 0; pass < kRadixPasses; pass++) {
    const int shift = 32 - kRadixBits * (pass + 1);
    const uint32_t chosen_mask = pass == 0 ? 0u : ~0u << (shift + kRadixBits);
    for (int b = threadIdx.x; b < kRadixBuckets; b += kThreads) histogram[b] = 0;
    __syncthreads();  // zeroed -> counting
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float z = values(i);
      const uint32_t k = sort_key(z);
      if (k < floor || (k & chosen_mask) != prefix) continue;
      const uint32_t w = weighted ? token_weight(z, m) : 1u;
      if (w != 0) atomicAdd(&histogram[(k >> shift) & (kRadixBuckets - 1)], static_cast<unsigned long long>(w));
    }
    __syncthreads();  // counted -> every thread picks the same bucket
    prefix |= static_cast<uint32_t>(choose_bucket(reinterpret_cast<const uint64_t*>(histogram), kRadixBuckets, above, target)) << shift;
    __syncthreads();  // read -> the next pass zeroes
  }
  return prefix;
}

// A token's weight if it survived top-k/top-p (key >= floor) and min-p, else 0.
__device__ __forceinline__ uint32_t survivor_weight(const RowValues& values, int64_t i, float m, uint32_t floor,
                                                    uint32_t min_weight) {
  const float z = values(i);
  const uint32_t w = token_weight(z, m);
  return (sort_key(z) >= floor && w >= min_weight) ? w : 0u;
}

// At least 3 blocks per SM: ptxas then allots ~80 registers and spills nothing on sm_80/sm_90 (with the
// thread bound alone it chose 64 and spilled on sm_90), and 24 warps per SM hide the L2 latency of the
// row passes.
__global__ void __launch_bounds__(kThreads, 3) sample_kernel(SampleArgs a, int32_t* counts_all) {
  __shared__ unsigned long long histogram[kRadixBuckets];
  __shared__ ArgMax argmax_scratch[kWarps];
  __shared__ double sum_scratch[kWarps];
  __shared__ uint64_t mass_scratch[kWarps + 1];
  __shared__ int32_t drawn_token;
  __shared__ double drawn_logp;
  const int64_t vocab = a.vocab;
  const bool greedy = a.mode == SampleMode::Greedy;
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const float* logits = a.logits + row * vocab;
    const float temperature = a.temperatures != nullptr ? a.temperatures[row] : a.temperature;
    int32_t* counts = nullptr;
    bool penalised = false;
    if (counts_all != nullptr) {
      counts = counts_all + row * vocab;
      const int64_t begin = a.history_offsets[row], end = a.history_offsets[row + 1];
      for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) atomicAdd(&counts[a.history[j]], 1);  // exact
      __syncthreads();  // counts -> every pass
      penalised = end > begin;
    }
    // Greedy compares penalised logits before temperature; dividing by 1 is exact.
    const RowValues values{logits, counts, greedy ? 1.0f : temperature, a.penalties};

    ArgMax best = ArgMaxCombine::identity();
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) ArgMaxCombine()(best, ArgMax{values(i), static_cast<int32_t>(i)});
    best = block_all_reduce(best, ArgMaxCombine{}, argmax_scratch);
    const float m = best.value;
    if (m == -INFINITY) {  // every value -inf or NaN: no token (the branch is the same for the whole block)
      if (threadIdx.x == 0) a.tokens[row] = -1, a.logp[row] = NAN, a.logp_plain[row] = NAN;
      continue;
    }

    int32_t token = best.index;
    double logp = 0.0;
    if (!greedy) {
      uint32_t floor = 0;
      if (a.top_k > 0 && a.top_k < vocab)
        floor = block_radix_select(values, vocab, m, false, 0, static_cast<uint64_t>(a.top_k), histogram);
      if (a.top_p < 1.0f) {
        uint64_t mine = 0;
        for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
          const float z = values(i);
          mine += sort_key(z) >= floor ? token_weight(z, m) : 0u;
        }
        const uint64_t total = block_all_reduce(mine, AddCombine<uint64_t>{}, mass_scratch);
        floor = block_radix_select(values, vocab, m, true, floor, top_p_target(a.top_p, total), histogram);
      }
      const uint32_t min_weight = a.min_p > 0.0f ? min_p_weight(a.min_p) : 0u;
      // The draw over contiguous slices, so the running sum runs in vocab order.
      const int64_t slice = ceil_div(vocab, kThreads);
      const int64_t begin = threadIdx.x * slice, end = begin + slice < vocab ? begin + slice : vocab;
      uint64_t mine = 0;
      for (int64_t i = begin; i < end; i++) mine += survivor_weight(values, i, m, floor, min_weight);
      uint64_t survivors = 0;
      const uint64_t base = block_exclusive_sum(mine, mass_scratch, survivors);
      const uint64_t target = mul_hi64(row_random(a.seed, a.offset, static_cast<uint64_t>(row)), survivors);
      if (base <= target && target < base + mine) {  // exactly one thread
        uint64_t running = base;
        for (int64_t i = begin; i < end; i++) {
          const uint32_t w = survivor_weight(values, i, m, floor, min_weight);
          running += w;
          if (running > target) {
            drawn_token = static_cast<int32_t>(i);
            drawn_logp = log(static_cast<double>(w) / static_cast<double>(survivors));
            break;
          }
        }
      }
      __syncthreads();  // drawn -> every thread
      token = drawn_token;
      logp = drawn_logp;
      __syncthreads();  // read before the next row draws
    }

    // The plain distribution: z itself unless penalties or greedy's missing temperature changed it.
    const RowValues plain{logits, nullptr, temperature, a.penalties};
    const bool separate = penalised || greedy;
    float plain_max = m;
    if (separate) {
      ArgMax mine = ArgMaxCombine::identity();
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads) ArgMaxCombine()(mine, ArgMax{plain(i), 0});
      plain_max = block_all_reduce(mine, ArgMaxCombine{}, argmax_scratch).value;
    }
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
      sum += static_cast<double>(plain_term(separate ? plain(i) : values(i), plain_max));
    sum = block_reduce(sum, AddCombine<double>{}, sum_scratch);
    if (threadIdx.x == 0) {
      a.tokens[row] = token;
      a.logp[row] = static_cast<float>(logp);
      a.logp_plain[row] = static_cast<float>(plain_logp(plain(token), plain_max, sum));
    }
  }
}

}  // namespace

void sample(int device, const SampleArgs& args) {
  if (args.rows == 0) return;  // a 0-block grid is invalid
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const bool penalties = args.history_offsets != nullptr && penalties_active(args.penalties);
  const size_t count_bytes = penalties ? static_cast<size_t>(args.rows * args.vocab) * sizeof(int32_t) : 0;
  DeviceScratch scratch(align_up(count_bytes > 0 ? count_bytes : 1));
  int32_t* counts = penalties ? reinterpret_cast<int32_t*>(scratch.bytes()) : nullptr;
  if (penalties) TALARIA_CUDA_CHECK(cudaMemsetAsync(counts, 0, count_bytes, 0));
  TALARIA_LAUNCH(capped_grid(args.rows), kThreads, 0, 0, sample_kernel)(args, counts);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());  // surfaces faults here, with this call's name
  scratch.release();
}

}  // namespace cuda
}  // namespace talaria
