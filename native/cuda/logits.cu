// Logit kernels on CUDA: log-prob/entropy/LSE forward and backward, fused cross-entropy, full-vocabulary
// KL forward and backward. Semantics, the online state (m, d, s) and its exact merge:
// native/core/kernels/logits.h, shared with native/cpu/logits.cpp, so the backends differ only in how
// they partition a row and in their exp.
//
// ---- Layout -------------------------------------------------------------------------------------------
// One block of 256 threads per row; rows beyond capped_grid() are taken grid-stride (row = blockIdx.x,
// + gridDim.x, ...). Thread t walks logits t, t + 256, ... of its row (coalesced), folding each into its
// own state with merge_softmax / merge_kl (a logit is a one-element state; -inf is an empty one), then
// block_reduce (reduce.cuh) merges the 256 states in a fixed tree: deterministic, no atomics. Backward
// passes are elementwise with per-row scalars, so each thread reads its logit and writes its gradient at
// the same index: d_logits may be the logits (in place). Offsets are int64 (N * V passes 2^31).
// Small V leaves threads idle (V = 1 uses one thread of 256); a warp per row would suit V < 1024, but the
// kernels are written for vocabularies of 32k-256k, where a row is 128 KB-1 MB.
//
// ---- Napkin math (A100, ~1.5 TB/s; N = 2048, V = 32,000: 262 MB of logits) ------------------------------
// forward: 4V B per row read once, ~175 us; per logit two expf and ~20 flops (merge with a one-element
//   state), ~40 flops per 4 B: 10 flop/B against the A100's ~13, so bandwidth-bound, barely.
// backward: 8V B per row (read + write), ~350 us; one expf per logit.
// cross-entropy: two passes over the row (state, gradient): 12V B, the second read usually from L2 (a
//   128 KB row per block, 108 SMs x ~8 blocks in flight = 110 MB > 40 MB L2, so partly DRAM).
// KL: 8V B read; KL backward 12V B.
// Loads are scalar: rows of odd V are not 16-byte aligned, and 256 threads x 8 blocks per SM keep enough
// loads in flight for the bandwidth.
//
// ---- Precision ----------------------------------------------------------------------------------------
// Everything is f32 (states, merges, expf within 2 ulp); the CPU merges chunk states in f64 and uses its
// own exp polynomial. Results differ from the CPU's by the f32 rounding of d and s in another order and
// by the exps: a few ulp of the reference's error scales (test/logits.test.ts checks 2x its bounds).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../core/kernels/logits.h"
#include "check.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// block_reduce combiners; the merges need the row's 1/T.
struct MergeSoftmax {
  float inv_t;
  __device__ static SoftmaxState<float> identity() { return SoftmaxState<float>{-INFINITY, 0.0f, 0.0f}; }
  __device__ void operator()(SoftmaxState<float>& into, const SoftmaxState<float>& from) const {
    into = merge_softmax(into, from, inv_t);
  }
};
struct MergeKl {
  float inv_t;
  __device__ static KlState<float> identity() { return KlState<float>{-INFINITY, -INFINITY, 0.0f, 0.0f, 0.0f}; }
  __device__ void operator()(KlState<float>& into, const KlState<float>& from) const { into = merge_kl(into, from, inv_t); }
};

// A logit as a one-element state: (x, 1, 0), or empty when it is -inf.
__device__ __forceinline__ SoftmaxState<float> single(float x) {
  return SoftmaxState<float>{x, x > -INFINITY ? 1.0f : 0.0f, 0.0f};
}

// The state of a whole row; every thread of the block must call it. Thread 0 gets the result.
__device__ SoftmaxState<float> row_state(const float* x, int64_t vocab, float inv_t, SoftmaxState<float>* scratch) {
  const MergeSoftmax merge{inv_t};
  SoftmaxState<float> st = MergeSoftmax::identity();
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) merge(st, single(x[i]));
  return block_reduce(st, merge, scratch);
}

// ---- Kernels -------------------------------------------------------------------------------------------

__global__ void __launch_bounds__(kThreads) logprob_entropy_kernel(LogprobEntropyArgs a) {
  __shared__ SoftmaxState<float> scratch[kThreads / kWarpSize];
  for (int64_t row = blockIdx.x; row < a.x.rows; row += gridDim.x) {
    const float inv_t = inv_temperature(row_temperature(a.x, row));
    const float* x = a.x.logits + row * a.x.vocab;
    const SoftmaxState<float> st = row_state(x, a.x.vocab, inv_t, scratch);
    if (threadIdx.x == 0) {
      const float log_d = state_log_d(st);
      a.logp[row] = row_logp(x[a.targets[row]], st.m, inv_t, log_d);
      a.entropy[row] = state_entropy(st);
      a.lse[row] = row_lse(st.m, inv_t, log_d);
    }
  }
}

// d_i for one row from log p_i = (x_i - shift) * inv_t - offset, as the CPU's softmax_grad_with_target.
__device__ __forceinline__ void softmax_grad_row(const float* x, float* d, int64_t vocab, int32_t target, float shift,
                                                 float offset, float inv_t, float g_logp, float g_entropy,
                                                 float entropy) {
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float lp = (x[i] - shift) * inv_t - offset;
    d[i] = logprob_entropy_grad(lp, expf(lp), i == target ? 1.0f : 0.0f, g_logp, g_entropy, entropy, inv_t);
  }
}

__global__ void __launch_bounds__(kThreads) logprob_entropy_backward_kernel(LogprobEntropyBackwardArgs a) {
  for (int64_t row = blockIdx.x; row < a.x.rows; row += gridDim.x) {
    const int64_t offset = row * a.x.vocab;
    softmax_grad_row(a.x.logits + offset, a.d_logits + offset, a.x.vocab, a.targets[row], 0.0f, a.lse[row],
                     inv_temperature(row_temperature(a.x, row)), a.g_logp[row], a.g_entropy[row], a.entropy[row]);
  }
}

// One block of kReduceThreads sums term(r) over rows r in a fixed order (block_reduce): the cross-entropy's
// counted rows (an exact integer sum) and its row losses (f64).
template <typename T>
struct Sum {
  __device__ static T identity() { return T(0); }
  __device__ void operator()(T& into, const T& from) const { into += from; }
};
template <typename T, typename Term>
__global__ void __launch_bounds__(kReduceThreads) sum_rows_kernel(Term term, int64_t rows, T* out) {
  __shared__ T scratch[kReduceThreads / kWarpSize];
  T mine = T(0);
  for (int64_t r = threadIdx.x; r < rows; r += kReduceThreads) mine += term(r);
  mine = block_reduce(mine, Sum<T>{}, scratch);
  if (threadIdx.x == 0) *out = mine;
}
struct CountedRow {
  const uint8_t* mask;  // or nullptr: every row counts
  __device__ int64_t operator()(int64_t r) const { return mask == nullptr || mask[r] != 0 ? 1 : 0; }
};
struct RowLoss {
  const float* loss;
  __device__ double operator()(int64_t r) const { return loss[r]; }
};

// Per row: masked -> zeros; else the state, then (p - onehot) / count, and the row's loss for the sum.
__global__ void __launch_bounds__(kThreads) cross_entropy_kernel(CrossEntropyArgs a, const int64_t* count,
                                                                 float* row_loss) {
  __shared__ SoftmaxState<float> scratch[kThreads / kWarpSize];
  __shared__ float row_m, row_log_d;
  const float weight = cross_entropy_weight(*count);
  for (int64_t row = blockIdx.x; row < a.x.rows; row += gridDim.x) {
    const int64_t offset = row * a.x.vocab;
    const float* x = a.x.logits + offset;
    float* d = a.d_logits + offset;
    if (a.mask != nullptr && a.mask[row] == 0) {  // the same branch for the whole block
      for (int64_t i = threadIdx.x; i < a.x.vocab; i += kThreads) d[i] = 0.0f;
      if (threadIdx.x == 0) row_loss[row] = 0.0f;
      continue;
    }
    const SoftmaxState<float> st = row_state(x, a.x.vocab, 1.0f, scratch);
    const int32_t y = a.targets[row];
    if (threadIdx.x == 0) {
      row_m = st.m;
      row_log_d = state_log_d(st);
      row_loss[row] = -row_logp(x[y], st.m, 1.0f, row_log_d);
    }
    // Thread 0's writes -> every thread. The next row's block_reduce barrier orders these reads before
    // thread 0 writes row_m again.
    __syncthreads();
    // Reading x[y] above and writing d[y] below are the same thread (0 reads, the owner of y writes after
    // the barrier), so in place is safe.
    softmax_grad_row(x, d, a.x.vocab, y, row_m, row_log_d, 1.0f, -weight, 0.0f, 0.0f);
  }
}

__global__ void __launch_bounds__(kThreads) kl_divergence_kernel(KlDivergenceArgs a) {
  __shared__ KlState<float> scratch[kThreads / kWarpSize];
  for (int64_t row = blockIdx.x; row < a.x.rows; row += gridDim.x) {
    const MergeKl merge{inv_temperature(row_temperature(a.x, row))};
    const int64_t offset = row * a.x.vocab;
    const float* x = a.x.logits + offset;
    const float* u = a.ref_logits + offset;
    KlState<float> st = MergeKl::identity();
    for (int64_t i = threadIdx.x; i < a.x.vocab; i += kThreads) {
      const float xi = x[i], ui = u[i];
      merge(st, KlState<float>{xi, ui, xi > -INFINITY ? 1.0f : 0.0f, ui > -INFINITY ? 1.0f : 0.0f, 0.0f});
    }
    st = block_reduce(st, merge, scratch);
    if (threadIdx.x == 0) {
      a.kl[row] = state_kl(st);
      a.lse[row] = row_lse(st.m_p, merge.inv_t, logf(st.d_p));
      a.ref_lse[row] = row_lse(st.m_q, merge.inv_t, logf(st.d_q));
    }
  }
}

__global__ void __launch_bounds__(kThreads) kl_divergence_backward_kernel(KlDivergenceBackwardArgs a) {
  for (int64_t row = blockIdx.x; row < a.x.rows; row += gridDim.x) {
    const float inv_t = inv_temperature(row_temperature(a.x, row));
    const float lse = a.lse[row], ref_lse = a.ref_lse[row], g_kl = a.g_kl[row], kl = a.kl[row];
    const int64_t offset = row * a.x.vocab;
    const float* x = a.x.logits + offset;
    const float* u = a.ref_logits + offset;
    float* d = a.d_logits + offset;
    for (int64_t i = threadIdx.x; i < a.x.vocab; i += kThreads) {
      const float lp = x[i] * inv_t - lse, lq = u[i] * inv_t - ref_lse;
      d[i] = kl_grad(lp, lq, expf(lp), g_kl, kl, inv_t);
    }
  }
}

// Launches `kernel` with one block per row (grid-stride beyond the cap) and checks the launch. A grid of
// 0 blocks is invalid, so N = 0 launches nothing.
template <typename Args>
void launch_rows(int device, void (*kernel)(Args), const Args& args) {
  if (args.x.rows == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  TALARIA_LAUNCH(capped_grid(args.x.rows), kThreads, 0, 0, kernel)(args);
  TALARIA_CUDA_CHECK_LAUNCH();
  // Faults inside the kernel surface here, on this call, rather than on a later one.
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

void logprob_entropy(int device, const LogprobEntropyArgs& args) { launch_rows(device, logprob_entropy_kernel, args); }

void logprob_entropy_backward(int device, const LogprobEntropyBackwardArgs& args) {
  launch_rows(device, logprob_entropy_backward_kernel, args);
}

void kl_divergence(int device, const KlDivergenceArgs& args) { launch_rows(device, kl_divergence_kernel, args); }

void kl_divergence_backward(int device, const KlDivergenceBackwardArgs& args) {
  launch_rows(device, kl_divergence_backward_kernel, args);
}

void cross_entropy(int device, const CrossEntropyArgs& args) {
  const int64_t rows = args.x.rows;
  if (rows == 0) {
    *args.loss = 0.0;
    *args.count = 0;
    return;
  }
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  struct Totals {
    int64_t count;
    double loss_sum;
  };
  const size_t totals_bytes = align_up(sizeof(Totals));
  DeviceScratch scratch(totals_bytes + static_cast<size_t>(rows) * sizeof(float));
  auto* totals = reinterpret_cast<Totals*>(scratch.bytes());
  auto* row_loss = reinterpret_cast<float*>(scratch.bytes() + totals_bytes);
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, sum_rows_kernel<int64_t, CountedRow>)(CountedRow{args.mask}, rows,
                                                                               &totals->count);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(capped_grid(rows), kThreads, 0, 0, cross_entropy_kernel)(args, &totals->count, row_loss);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, sum_rows_kernel<double, RowLoss>)(RowLoss{row_loss}, rows, &totals->loss_sum);
  TALARIA_CUDA_CHECK_LAUNCH();
  // Synchronous on the default stream: waits for the kernels above and surfaces their faults.
  Totals host{};
  TALARIA_CUDA_CHECK(cudaMemcpy(&host, totals, sizeof(host), cudaMemcpyDeviceToHost));
  scratch.release();
  *args.count = host.count;
  *args.loss = mean_or_zero(host.loss_sum, host.count);
}

}  // namespace cuda
}  // namespace talaria
