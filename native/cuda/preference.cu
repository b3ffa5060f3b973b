// DPO loss and K-wise ranking loss on CUDA, forward and backward. Semantics and the per-pair math (f64):
// native/core/kernels/preference.h, shared with native/cpu/preference.cpp, so the two backends differ only
// in how they partition and sum. The float64 oracle is test/reference/preference.ts.
//
// ---- DPO -----------------------------------------------------------------------------------------------
//   1. dpo_pairs_kernel: a fixed grid of min(ceil(P / 256), 256) blocks of 256 threads (a function of P
//      only); thread t takes pairs t, t + grid*256, ... It writes both gradients and keeps f64 sums of the
//      loss, margin, chosen and rejected rewards and an integer win count; block_reduce writes one partial
//      per block.
//   2. reduce_partials_kernel folds the partials in index order; one cudaMemcpy brings the sums back.
// ---- Ranking ---------------------------------------------------------------------------------------------
//   1. ranked_prompts_kernel, one block: R = prompts with K_p >= 2 (an exact integer block_reduce). Every
//      gradient is weighted by 1 / (C(K_p, 2) R), so R comes first.
//   2. ranking_prompts_kernel: one warp per prompt, 8 per block, grid-striding over prompts. Lane l owns
//      completions l, l + 32, ... and walks all partners in index order (ranking_completion), so each
//      completion's gradient is one thread's f64 sum in a fixed order: no atomics. Non-tied pairs are
//      counted on their winner's side, so each pair's loss term is added once. The warp reduces the
//      prompt's loss / C(K_p, 2) and counts in a fixed shuffle tree, and lane 0 writes them to a
//      per-prompt slot. All lanes of a warp read the same partner at a time: one broadcast load.
//   3. reduce_partials_kernel folds the per-prompt slots in index order; one cudaMemcpy returns the sums.
// Every combine runs in a fixed order on a partition that depends only on the sizes, so results are bitwise
// reproducible run to run. Scratch is one device allocation per call (40 B per block or per prompt);
// cudaMalloc/cudaFree cost tens of microseconds, fine next to a reward-model or DPO training step.
//
// ---- Napkin math ------------------------------------------------------------------------------------------
// DPO reads 16 B and writes 8 B per pair, with one or two f64 exp + log1p (~100 f64 flops). Typical batches
// (64-512 pairs, 12 KB) are pure launch latency: 2 launches + a copy, ~10 us. A million pairs would move
// 24 MB (16 us at 1.5 TB/s) but need ~1e8 f64 flops, 10 us on an A100 and ~0.1 ms at a consumer GPU's 1/64 f64
// rate: f64 binds there, which the header accepts because pairs are few.
// Ranking reads 8 B per completion per partner from L1 (the first touch from DRAM) and writes 4 B per
// completion; the work is K_p - 1 f64 exp + log1p per completion. InstructGPT's 64 prompts of K = 9: 64
// warps, 4608 partner steps, latency-bound (3 launches + a copy). A warp with K_p < 32 leaves lanes idle;
// K is at most 9 in the paper, so a thread per pair would not pay for its extra reduction.
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/kernels/preference.h"
#include "check.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxDpoBlocks = 256;  // 64k threads; beyond that threads stride (pairs are few)
constexpr int kPromptsPerBlock = kThreads / kWarpSize;

// ---- DPO ----------------------------------------------------------------------------------------------------

// Plain aggregates (no member initialisers): block_reduce shuffles them word by word through a union.
struct DpoPartial {
  double loss, margin, chosen, rejected;
  int64_t wins;
};
struct DpoCombine {
  __device__ static DpoPartial identity() { return DpoPartial{0.0, 0.0, 0.0, 0.0, 0}; }
  __device__ void operator()(DpoPartial& into, const DpoPartial& from) const {
    into.loss += from.loss;
    into.margin += from.margin;
    into.chosen += from.chosen;
    into.rejected += from.rejected;
    into.wins += from.wins;
  }
};

__global__ void __launch_bounds__(kThreads) dpo_pairs_kernel(DpoLossArgs a, DpoPartial* partials) {
  __shared__ DpoPartial scratch[kThreads / kWarpSize];
  const double beta = a.beta, smoothing = a.label_smoothing;
  const double scale = beta / static_cast<double>(a.num_pairs);
  DpoPartial mine = DpoCombine::identity();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < a.num_pairs; i += stride) {
    const DpoPair pair =
        dpo_pair(a.policy_chosen[i], a.policy_rejected[i], a.ref_chosen[i], a.ref_rejected[i], beta, smoothing);
    a.d_policy_chosen[i] = static_cast<float>(scale * pair.grad);
    a.d_policy_rejected[i] = static_cast<float>(-scale * pair.grad);
    DpoCombine()(mine, DpoPartial{pair.loss, pair.margin, pair.chosen, pair.rejected, pair.chosen > pair.rejected ? 1 : 0});
  }
  mine = block_reduce(mine, DpoCombine{}, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = mine;
}

// ---- Ranking ------------------------------------------------------------------------------------------------

struct RankingPartial {
  double loss;  // a prompt's (sum of its pair terms) / C(K, 2), or a sum of those
  int64_t wins, pairs, ties, ranked;
};
struct RankingCombine {
  __device__ static RankingPartial identity() { return RankingPartial{0.0, 0, 0, 0, 0}; }
  __device__ void operator()(RankingPartial& into, const RankingPartial& from) const {
    into.loss += from.loss;
    into.wins += from.wins;
    into.pairs += from.pairs;
    into.ties += from.ties;
    into.ranked += from.ranked;
  }
};

__global__ void __launch_bounds__(kReduceThreads) ranked_prompts_kernel(const int32_t* offsets, const int32_t* ranks,
                                                                        int64_t num_prompts, RankingPartial* out) {
  __shared__ RankingPartial scratch[kReduceThreads / kWarpSize];
  RankingPartial mine = RankingCombine::identity();
  for (int64_t p = threadIdx.x; p < num_prompts; p += kReduceThreads)
    mine.ranked += ranking_prompt_counts(ranks != nullptr ? ranks + offsets[p] : nullptr, offsets[p + 1] - offsets[p]);
  mine = block_reduce(mine, RankingCombine{}, scratch);
  if (threadIdx.x == 0) *out = mine;
}

// `ranked` holds R from ranked_prompts_kernel (in its `ranked` field).
__global__ void __launch_bounds__(kThreads) ranking_prompts_kernel(RankingLossArgs a, const RankingPartial* ranked,
                                                                   RankingPartial* per_prompt) {
  const int lane = lane_id();
  const double num_ranked = static_cast<double>(ranked->ranked);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kPromptsPerBlock;
  // The loop bound is the same for every lane of a warp, so the warp stays converged at the shuffles.
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kPromptsPerBlock + warp_id(); p < a.num_prompts; p += stride) {
    const int64_t begin = a.offsets[p], k = a.offsets[p + 1] - begin;
    if (k < 2) {  // no pairs: not counted, gradient 0
      if (k == 1 && lane == 0) a.d_scores[begin] = 0.0f;
      if (lane == 0) per_prompt[p] = RankingCombine::identity();
      continue;
    }
    const float* scores = a.scores + begin;
    const int32_t* ranks = a.ranks != nullptr ? a.ranks + begin : nullptr;
    // An all-tied prompt has no pair terms, so its gradients are 0 whatever the weight; R = 0 means every
    // prompt is like that, and the weight must not be inf (0 * inf is NaN).
    const double c = ranking_pairs_of(k), weight = num_ranked > 0.0 ? 1.0 / (c * num_ranked) : 0.0;
    RankingPartial mine = RankingCombine::identity();
    for (int64_t j = lane; j < k; j += kWarpSize) {
      const RankingCompletion r = ranking_completion(scores, ranks, k, j);
      a.d_scores[begin + j] = static_cast<float>(r.grad * weight);
      RankingCombine()(mine, RankingPartial{r.loss, r.wins, r.pairs, r.ties, 0});
    }
    mine = warp_reduce(mine, RankingCombine{});
    if (lane == 0) {
      mine.loss /= c;
      mine.ranked = mine.pairs > 0 ? 1 : 0;  // ranking_prompt_counts, from the pairs already counted
      per_prompt[p] = mine;
    }
  }
}

// ---- host side ----------------------------------------------------------------------------------------------

}  // namespace

void dpo_loss(int device, const DpoLossArgs& args) {
  DpoLossStats& s = *args.stats;
  s = DpoLossStats{0.0, 0.0, 0.0, 0.0, 0.0};
  if (args.num_pairs == 0) return;  // a 0-block grid is invalid
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const int64_t wanted = ceil_div(args.num_pairs, kThreads);
  const int64_t blocks = wanted < kMaxDpoBlocks ? wanted : kMaxDpoBlocks;
  DeviceScratch scratch(static_cast<size_t>(blocks + 1) * sizeof(DpoPartial));
  auto* total = reinterpret_cast<DpoPartial*>(scratch.bytes());
  DpoPartial* partials = total + 1;
  TALARIA_LAUNCH(static_cast<unsigned>(blocks), kThreads, 0, 0, dpo_pairs_kernel)(args, partials);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, reduce_partials_kernel<DpoPartial, DpoCombine>)(partials, blocks, total);
  TALARIA_CUDA_CHECK_LAUNCH();
  DpoPartial sums;
  // Synchronous on the default stream: it waits for the kernels above, and surfaces their faults.
  TALARIA_CUDA_CHECK(cudaMemcpy(&sums, total, sizeof(sums), cudaMemcpyDeviceToHost));
  scratch.release();
  const double n = static_cast<double>(args.num_pairs);
  s = DpoLossStats{sums.loss / n, static_cast<double>(sums.wins) / n, sums.margin / n, sums.chosen / n,
                   sums.rejected / n};
}

void ranking_loss(int device, const RankingLossArgs& args) {
  RankingLossStats& s = *args.stats;
  s = RankingLossStats{0.0, 0.0, 0, 0, 0};
  // No completion means no pair anywhere (every K_p is 0), and nothing to write.
  if (args.num_prompts == 0 || args.num_completions == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const int64_t num_prompts = args.num_prompts;
  // [0]: R, [1]: the totals, [2, 2 + P): one slot per prompt.
  DeviceScratch scratch(static_cast<size_t>(num_prompts + 2) * sizeof(RankingPartial));
  auto* ranked = reinterpret_cast<RankingPartial*>(scratch.bytes());
  RankingPartial* total = ranked + 1;
  RankingPartial* per_prompt = ranked + 2;
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, ranked_prompts_kernel)(args.offsets, args.ranks, num_prompts, ranked);
  TALARIA_CUDA_CHECK_LAUNCH();
  const int64_t wanted = ceil_div(num_prompts, kPromptsPerBlock);
  TALARIA_LAUNCH(capped_grid(wanted), kThreads, 0, 0, ranking_prompts_kernel)(args, ranked, per_prompt);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, reduce_partials_kernel<RankingPartial, RankingCombine>)(
      per_prompt, num_prompts, total);
  TALARIA_CUDA_CHECK_LAUNCH();
  RankingPartial sums;
  TALARIA_CUDA_CHECK(cudaMemcpy(&sums, total, sizeof(sums), cudaMemcpyDeviceToHost));
  scratch.release();
  s.loss = sums.ranked > 0 ? sums.loss / static_cast<double>(sums.ranked) : 0.0;
  s.accuracy = sums.pairs > 0 ? static_cast<double>(sums.wins) / static_cast<double>(sums.pairs) : 0.0;
  s.pairs = sums.pairs;
  s.tied_pairs = sums.ties;
  s.ranked_prompts = sums.ranked;
}

}  // namespace cuda
}  // namespace talaria
