// Deterministic reductions for the loss kernels: the same inputs and launch shape combine in the same
// order every run, so results are bitwise reproducible (DESIGN.md: no float atomics).
//
//   block_reduce(value, combine, scratch)   a block's per-thread partials -> thread 0 holds the result.
//       A shuffle tree inside each warp (fixed pairing), then warp 0 folds the warps' results in index
//       order. `scratch` is __shared__ T[blockDim.x / 32]. Every thread of the block must call it.
//   block_exclusive_sum(value, scratch, total)   exclusive prefix sums of the threads' uint64 values in
//       thread order, and their total. Integer, so exact. `scratch` is __shared__ uint64_t[blockDim.x / 32 + 1].
//   reduce_partials_kernel<T, Combine>      one block of kReduceThreads folds P per-block partials:
//       thread i takes partials i, i + 256, ... in order, then block_reduce. Launch it with one block of kReduceThreads.
//
// T is a trivially copyable struct of 4-byte-multiple size (shuffled word by word). Combine is a
// functor type with `static T identity()` and `void operator()(T& into, const T& from) const`, where
// `from` always covers later threads or partials than `into`. block_reduce uses the instance it is given,
// so a combiner may carry per-call constants (logits.cu's merges carry the row's 1/T);
// reduce_partials_kernel default-constructs its Combine.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "warp.cuh"

namespace talaria {
namespace cuda {

constexpr int kReduceThreads = 256;

// __shfl_down_sync for any trivially copyable T, one 32-bit word at a time.
template <typename T>
__device__ __forceinline__ T shfl_down_words(T value, int delta) {
  static_assert(sizeof(T) % 4 == 0, "shuffled structs must be a whole number of 32-bit words");
  constexpr int kWords = static_cast<int>(sizeof(T) / 4);
  union Words {
    T value;
    unsigned word[kWords];
  };
  Words in, out;
  in.value = value;
#pragma unroll
  for (int w = 0; w < kWords; w++) out.word[w] = __shfl_down_sync(kFullMask, in.word[w], delta);
  return out.value;
}

// The plain sum as a Combine, for f64 sums and (exact) integer sums.
template <typename T>
struct AddCombine {
  __device__ static T identity() { return T(0); }
  __device__ void operator()(T& into, const T& from) const { into += from; }
};

template <typename T, typename Combine>
__device__ __forceinline__ T warp_reduce(T value, Combine combine) {
#pragma unroll
  for (int delta = 1; delta < kWarpSize; delta *= 2) {
    const T other = shfl_down_words(value, delta);
    // Lane l combines lane l + delta: after the loop lane 0 holds lanes 0..31 folded left to right in a
    // fixed tree. Lanes whose partner is past the warp fold garbage that lane 0 never reads.
    combine(value, other);
  }
  return value;
}

template <typename T, typename Combine>
__device__ T block_reduce(T value, Combine combine, T* scratch) {
  value = warp_reduce(value, combine);
  if (lane_id() == 0) scratch[warp_id()] = value;
  __syncthreads();
  T total = Combine::identity();
  if (threadIdx.x == 0) {
    const int warps = static_cast<int>(blockDim.x) / kWarpSize;
    for (int w = 0; w < warps; w++) combine(total, scratch[w]);
  }
  __syncthreads();  // scratch may be reused by the caller's next block_reduce
  return total;
}

__device__ inline uint64_t block_exclusive_sum(uint64_t value, uint64_t* scratch, uint64_t& total) {
  uint64_t inclusive = value;
#pragma unroll
  for (int delta = 1; delta < kWarpSize; delta *= 2) {
    const uint64_t up = __shfl_up_sync(kFullMask, inclusive, delta);
    if (lane_id() >= delta) inclusive += up;
  }
  if (lane_id() == kWarpSize - 1) scratch[warp_id()] = inclusive;
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (threadIdx.x == 0) {
    uint64_t running = 0;
    for (int w = 0; w < warps; w++) {
      const uint64_t warp_total = scratch[w];
      scratch[w] = running;
      running += warp_total;
    }
    scratch[warps] = running;
  }
  __syncthreads();
  const uint64_t exclusive = scratch[warp_id()] + inclusive - value;
  total = scratch[warps];
  __syncthreads();  // scratch may be reused by the caller's next scan
  return exclusive;
}

template <typename T, typename Combine>
__global__ void __launch_bounds__(kReduceThreads) reduce_partials_kernel(const T* partials, int64_t count, T* out) {
  __shared__ T scratch[kReduceThreads / kWarpSize];
  const Combine combine;
  T value = Combine::identity();
  for (int64_t i = threadIdx.x; i < count; i += kReduceThreads) combine(value, partials[i]);
  value = block_reduce(value, combine, scratch);
  if (threadIdx.x == 0) *out = value;
}

}  // namespace cuda
}  // namespace talaria
