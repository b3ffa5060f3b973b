// Reward shaping (InstructGPT) and group advantages (GRPO, Dr.GRPO, RLOO) on CUDA.
// Semantics: native/core/kernels/rewards.h. The per-element formulas (penalized_score, merge_moments,
// finish_score, group_advantage) are the header's inline functions and kl_estimate (rl_math.h), shared with
// native/cpu/rewards.cpp, so both backends decide every clamp and clip the same way.
//
// ---- Reward shaping: three launches and one copy back ------------------------------------------------
//   1. shape_scores_kernel, one block of 256 over the B scores: the penalized scores' f64 sum (and the raw
//      scores' sum and the missing-EOS count) by block_reduce; with a normalizer, a second pass for this
//      batch's M2 around its mean, and thread 0 merges that into the running moments, which the host
//      passes by value; then every thread writes its shaped scores and block_reduce sums them.
//   2. shape_tokens_kernel, one warp per sequence (8 per block). The warp finds the last action token by
//      scanning the mask backwards 32 tokens at a time with __ballot_sync (the highest set bit of the
//      first nonzero ballot), so trailing padding costs one ballot per 32 tokens. Then lane l takes tokens
//      l, l + 32, ... (coalesced), writes -kl_coef * kl_t on action tokens and 0 elsewhere, adds the shaped
//      score on the last action token, and sums kl_t in f64; warp_reduce folds the lanes in a fixed tree
//      and lane 0 writes the sequence's (kl sum, action tokens) to scratch.
//   3. reduce_partials_kernel folds the B per-sequence partials in index order. One cudaMemcpy brings the
//      merged moments and every sum to the host, which turns them into means as the CPU does.
// No atomics and fixed combine orders: results are bitwise reproducible run to run.
//
// ---- Group advantages: two launches ------------------------------------------------------------------
//   1. group_advantages_kernel, one warp per group: the f64 sum over lanes (strided) and warp_reduce, and
//      for grpo a second pass for the sum of squared deviations; every lane then writes its completions'
//      advantages. Groups are tiny (G = 4..64), so a warp is the right width; a group larger than 32
//      loops.
//   2. token_advantages_kernel (only with cu_seqlens), one warp per sequence: advantages[b] on its action
//      tokens, 0 elsewhere, coalesced.
//
// ---- Napkin math ---------------------------------------------------------------------------------------
// Shaping reads logp, ref_logp (8 B) and the mask (1 B, plus the backward scan over each sequence's
// trailing padding) and writes rewards (4 B): ~13 B/token. Compute is ~10 flops per token, ~30 with k3's
// expf, and one f64 add per action token (fine even at consumer GPUs' 1/64 f64 rate): bandwidth-bound.
// B=512, T=256 (N = 131,072): 1.7 MB, ~1 us at 1.5 TB/s; the three launches, the scratch cudaMalloc/cudaFree
// and the copy back (a few us each) dominate, as for every loss at this size. A warp per sequence walks a
// 32k-token response alone (1,000 steps), which is still ~10 us. Scratch: 24 B per sequence + 256 B.
// Group advantages read B scores twice and write B advantages; the broadcast moves 5 B per token.
//
// ---- Precision ------------------------------------------------------------------------------------------
// k1 and k2 are plain f32 arithmetic, as on the CPU; k3's expf differs from the CPU's exp by a few ulp, so
// k3 rewards may differ by a few ulp of |kl_coef * kl| and a k3 estimate within an ulp of kl_clamp may clamp
// on one backend only. f64 sums (moments, kl, group sums) differ from the CPU's by their order, far below
// f32 resolution; the shaped scores and advantages are rounded to f32 once, so they agree to an ulp.
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/kernels/rewards.h"
#include "check.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / kWarpSize;

using AddF64 = AddCombine<double>;

// The sums over B of pass 1.
struct ScoreSums {
  double raw, penalized;
  int64_t missing_eos;
};
struct AddScoreSums {
  __device__ static ScoreSums identity() { return ScoreSums{0.0, 0.0, 0}; }
  __device__ void operator()(ScoreSums& into, const ScoreSums& from) const {
    into.raw += from.raw;
    into.penalized += from.penalized;
    into.missing_eos += from.missing_eos;
  }
};

// One sequence's KL (pass 2), and the batch's after pass 3.
struct SeqKl {
  double kl;
  int64_t action_tokens;
  int64_t active_seqs;
};
struct AddSeqKl {
  __device__ static SeqKl identity() { return SeqKl{0.0, 0, 0}; }
  __device__ void operator()(SeqKl& into, const SeqKl& from) const {
    into.kl += from.kl;
    into.action_tokens += from.action_tokens;
    into.active_seqs += from.active_seqs;
  }
};

// Everything the host reads back after shaping, in one copy.
struct ShapeTotals {
  RunningMoments merged;
  double raw_sum, shaped_sum;
  int64_t missing_eos;
  SeqKl seqs;
};

// ---- Reward shaping ---------------------------------------------------------------------------------------

// One block of kReduceThreads. `running` is the normalizer's state before this batch (read only when
// `normalize`). Reads scores/ended_with_eos, writes shaped_scores and every totals field but `seqs`.
__global__ void __launch_bounds__(kReduceThreads) shape_scores_kernel(ShapeRewardsArgs a, RunningMoments running,
                                                                      bool normalize, ShapeTotals* totals) {
  __shared__ ScoreSums sums_scratch[kReduceThreads / kWarpSize];
  __shared__ double f64_scratch[kReduceThreads / kWarpSize];
  __shared__ RunningMoments merged;
  __shared__ double batch_mean;
  const int64_t num_seqs = a.num_seqs;
  ScoreSums mine = AddScoreSums::identity();
  for (int64_t b = threadIdx.x; b < num_seqs; b += kReduceThreads) {
    mine.raw += a.scores[b];
    mine.penalized += penalized_score(a, b);
    mine.missing_eos += (a.ended_with_eos != nullptr && a.ended_with_eos[b] == 0) ? 1 : 0;
  }
  const ScoreSums all = block_reduce(mine, AddScoreSums{}, sums_scratch);  // valid in thread 0
  if (threadIdx.x == 0) {
    batch_mean = num_seqs > 0 ? all.penalized / static_cast<double>(num_seqs) : 0.0;
    merged = RunningMoments{0.0, 0.0, 0.0};
  }
  __syncthreads();  // batch_mean -> every thread
  if (normalize) {  // the same branch for the whole block
    double m2 = 0.0;
    for (int64_t b = threadIdx.x; b < num_seqs; b += kReduceThreads) {
      const double d = penalized_score(a, b) - batch_mean;
      m2 += d * d;
    }
    m2 = block_reduce(m2, AddF64{}, f64_scratch);
    if (threadIdx.x == 0) merged = merge_moments(running, RunningMoments{static_cast<double>(num_seqs), batch_mean, m2});
    __syncthreads();  // merged -> every thread
  }
  const RunningMoments m = merged;
  double shaped = 0.0;
  for (int64_t b = threadIdx.x; b < num_seqs; b += kReduceThreads) {
    const float s = finish_score(penalized_score(a, b), normalize, m, a.normalize_shift, a.normalize_eps, a.score_clip);
    a.shaped_scores[b] = s;
    shaped += s;
  }
  shaped = block_reduce(shaped, AddF64{}, f64_scratch);
  if (threadIdx.x == 0) {
    totals->merged = m;
    totals->raw_sum = all.raw;
    totals->shaped_sum = shaped;
    totals->missing_eos = all.missing_eos;
  }
}

// A warp per sequence; reads the shaped scores pass 1 wrote.
__global__ void __launch_bounds__(kThreads) shape_tokens_kernel(ShapeRewardsArgs a, SeqKl* per_seq) {
  const int lane = lane_id();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  // b is the same for the whole warp, so every lane reaches the ballots and the reduction.
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp_id(); b < a.num_seqs; b += stride) {
    const int64_t begin = a.cu_seqlens[b], end = a.cu_seqlens[b + 1];
    int64_t last = end - 1;  // the last action token, or begin - 1 when there is none
    if (a.action_mask != nullptr) {
      last = begin - 1;
      for (int64_t base = end - kWarpSize; base + kWarpSize > begin && last < begin; base -= kWarpSize) {
        const int64_t t = base + lane;
        const unsigned bits = __ballot_sync(kFullMask, t >= begin && a.action_mask[t] != 0);
        if (bits != 0) last = base + (kWarpSize - 1 - __clz(static_cast<int>(bits)));
      }
    }
    const float score = a.shaped_scores[b];
    SeqKl mine = AddSeqKl::identity();
    for (int64_t t = begin + lane; t < end; t += kWarpSize) {
      const bool action = a.action_mask == nullptr || a.action_mask[t] != 0;
      const float delta = a.logp[t] - a.ref_logp[t];
      const float exp_neg = a.kl_estimator == KlEstimator::K3 ? expf(-clamp_log_ratio(delta)) : 0.0f;
      const float kl = kl_estimate(a.kl_estimator, delta, exp_neg, a.kl_clamp).value;
      float reward = action ? 0.0f - a.kl_coef * kl : 0.0f;  // 0 - x: a zero penalty is +0, as on the CPU
      if (t == last) reward += score;
      a.rewards[t] = reward;
      if (action) mine.kl += kl, mine.action_tokens++;
    }
    mine = warp_reduce(mine, AddSeqKl{});
    if (lane == 0) {
      mine.active_seqs = mine.action_tokens > 0 ? 1 : 0;
      per_seq[b] = mine;
    }
  }
}

// ---- Group advantages -------------------------------------------------------------------------------------

// The warp's f64 sum, in every lane.
__device__ __forceinline__ double warp_sum(double value) {
  return __shfl_sync(kFullMask, warp_reduce(value, AddF64{}), 0);
}

__global__ void __launch_bounds__(kThreads) group_advantages_kernel(GroupAdvantagesArgs a) {
  const int lane = lane_id();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp_id(); g < a.num_groups; g += stride) {
    const int64_t lo = a.group_offsets != nullptr ? a.group_offsets[g] : g * a.group_size;
    const int64_t hi = a.group_offsets != nullptr ? a.group_offsets[g + 1] : lo + a.group_size;
    double sum = 0.0, m2 = 0.0;
    for (int64_t i = lo + lane; i < hi; i += kWarpSize) sum += a.scores[i];
    sum = warp_sum(sum);
    if (a.estimator == GroupEstimator::Grpo && hi > lo) {  // the same branch for the whole warp
      const double mean = sum / static_cast<double>(hi - lo);
      for (int64_t i = lo + lane; i < hi; i += kWarpSize) {
        const double d = a.scores[i] - mean;
        m2 += d * d;
      }
      m2 = warp_sum(m2);
    }
    for (int64_t i = lo + lane; i < hi; i += kWarpSize)
      a.advantages[i] = group_advantage(a.estimator, a.scores[i], sum, m2, hi - lo, a.eps, a.unbiased);
  }
}

__global__ void __launch_bounds__(kThreads) token_advantages_kernel(GroupAdvantagesArgs a) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp_id(); b < a.num_seqs; b += stride) {
    const float adv = a.advantages[b];
    for (int64_t t = a.cu_seqlens[b] + lane_id(); t < a.cu_seqlens[b + 1]; t += kWarpSize)
      a.token_advantages[t] = (a.action_mask == nullptr || a.action_mask[t] != 0) ? adv : 0.0f;
  }
}

// ---- host side --------------------------------------------------------------------------------------------

// Blocks of 8 warps for `items` warp-sized work items, capped (the kernels grid-stride).
unsigned warp_grid(int64_t items) {
  return capped_grid(ceil_div(items, kWarpsPerBlock));
}



}  // namespace

void shape_rewards(int device, const ShapeRewardsArgs& a) {
  const bool normalize = a.normalizer != nullptr;
  const RunningMoments running = normalize ? *a.normalizer : RunningMoments{0.0, 0.0, 0.0};
  ShapeTotals totals{running, 0.0, 0.0, 0, SeqKl{0.0, 0, 0}};
  if (a.num_seqs > 0) {  // B = 0 means N = 0: nothing to write, and a 0-block grid is invalid
    TALARIA_CUDA_CHECK(cudaSetDevice(device));
    const size_t totals_bytes = align_up(sizeof(ShapeTotals));
    DeviceScratch scratch(totals_bytes + static_cast<size_t>(a.num_seqs) * sizeof(SeqKl));
    auto* totals_device = reinterpret_cast<ShapeTotals*>(scratch.bytes());
    auto* per_seq = reinterpret_cast<SeqKl*>(scratch.bytes() + totals_bytes);
    TALARIA_LAUNCH(1, kReduceThreads, 0, 0, shape_scores_kernel)(a, running, normalize, totals_device);
    TALARIA_CUDA_CHECK_LAUNCH();
    TALARIA_LAUNCH(warp_grid(a.num_seqs), kThreads, 0, 0, shape_tokens_kernel)(a, per_seq);
    TALARIA_CUDA_CHECK_LAUNCH();
    TALARIA_LAUNCH(1, kReduceThreads, 0, 0, reduce_partials_kernel<SeqKl, AddSeqKl>)(per_seq, a.num_seqs,
                                                                                        &totals_device->seqs);
    TALARIA_CUDA_CHECK_LAUNCH();
    // Synchronous on the default stream: it waits for the kernels above, and surfaces their faults.
    TALARIA_CUDA_CHECK(cudaMemcpy(&totals, totals_device, sizeof(totals), cudaMemcpyDeviceToHost));
    scratch.release();
  }
  ShapeRewardsStats& s = *a.stats;
  s.kl_mean = mean_or_zero(totals.seqs.kl, totals.seqs.action_tokens);
  s.kl_seq_mean = mean_or_zero(totals.seqs.kl, totals.seqs.active_seqs);
  s.score_mean = mean_or_zero(totals.raw_sum, a.num_seqs);
  s.shaped_score_mean = mean_or_zero(totals.shaped_sum, a.num_seqs);
  s.missing_eos = totals.missing_eos;
  s.action_tokens = totals.seqs.action_tokens;
  s.active_seqs = totals.seqs.active_seqs;
  if (normalize) *a.normalizer = totals.merged;
}

void group_advantages(int device, const GroupAdvantagesArgs& a) {
  if (a.num_seqs == 0) return;  // no completions (every group is empty): nothing to write
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  if (a.num_groups > 0) {
    TALARIA_LAUNCH(warp_grid(a.num_groups), kThreads, 0, 0, group_advantages_kernel)(a);
    TALARIA_CUDA_CHECK_LAUNCH();
  }
  if (a.token_advantages != nullptr) {
    TALARIA_LAUNCH(warp_grid(a.num_seqs), kThreads, 0, 0, token_advantages_kernel)(a);
    TALARIA_CUDA_CHECK_LAUNCH();
  }
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());  // surfaces faults here, with this call's name
}

}  // namespace cuda
}  // namespace talaria
