// PPO policy loss and value loss on CUDA: forward, backward and stats in one pass over the tokens.
// Semantics: native/core/kernels/rl_loss.h. Every decision (the log-space clip thresholds of
// ppo_thresholds(), kl_estimate's clamps, aggregation_weight) comes from the shared inline math there and in
// rl_math.h, so this file and native/cpu/rl_loss.cpp clip, clamp and weight identically.
//
// ---- Passes ------------------------------------------------------------------------------------------
// The weight of a token's loss needs batch-wide counts (action tokens, active sequences) before any
// gradient can be written, so the aggregation plan comes first:
//   1. action_counts_kernel (only with a mask; without one a sequence's count is its length): tiles of
//      2048 tokens, at most 1024 blocks looping over them. Each warp ballots 8 x 32 mask bytes, warp 0
//      scans the 64 popcounts, and then the action tokens of any range of the tile are two lookups. One thread per sequence overlapping the
//      tile adds its share to counts[b] with an integer atomicAdd: integer sums are exact, so the result
//      does not depend on the order, and a long sequence costs one atomic per tile, not one per token.
//      A warp per sequence would be simpler but leaves one warp to walk a 32k-token response alone.
//   2. loss_plan_kernel, one block: the totals (action tokens, active sequences; exact integer sums via
//      block_reduce) and the f32 weights, from aggregation_weight() in f64 exactly as the CPU rounds them.
//      Every mode but seq-mean-token-mean gives every action token the same weight, so only that mode
//      writes a per-sequence weight array.
//   3. loss_tokens_kernel<Loss>: a fixed partition of [0, N) into tiles of 2048 tokens, at most 1024
//      blocks, each taking tiles blockIdx.x, + gridDim.x, ... Thread i owns tokens i, i + 256, ... of a
//      tile (coalesced). It loads its 8 tokens, then computes each one's loss term, gradient and stats.
//      Non-action tokens get gradient 0 by a select, so a NaN in a masked token cannot leak. A thread's
//      stats over its 8 tokens are summed in f32, then added to its f64 sums; block_reduce writes one
//      partial per block.
//      In seq-mean-token-mean the weight needs the token's sequence: a binary search of cu_seqlens,
//      narrowed to the sequences that overlap the tile (0-1 steps for long sequences).
//   4. reduce_partials_kernel folds the partials in index order; one cudaMemcpy brings the plan's
//      counts and the totals to the host, which turns them into means as the CPU does.
// The partition depends only on N and every combine has a fixed order, so results are bitwise
// reproducible run to run and GPU to GPU. Scratch (counts, weights, partials, result) is one cudaMalloc
// per call, 8 B per sequence + 72 B per block at most; cudaMalloc/cudaFree cost tens of microseconds and
// cudaFree synchronises, which is acceptable next to a training step. A pool would remove it.
//
// ---- Napkin math ---------------------------------------------------------------------------------------
// PPO per token: read logp, old_logp, advantages (12 B), the mask (1 B, twice: counts and main pass),
// ref_logp and entropy when given (+4 B each); write d_logp (4 B) and d_entropy (+4 B). That is 18 B/token
// at the least and 30 B with everything. Compute is ~40 flops per token (two expf with ref/k3): about
// 2 flop/B against an A100's 13 flop/B balance, so the main pass is bandwidth-bound. Value loss: 12 B in,
// 4 B out, 1-2 B of mask, ~10 flops. f64 work is one add per stat per 8 tokens, so consumer GPUs' 1/64
// f64 rate does not bind either. The PPO pass takes ~95 registers (2 blocks of 256 per SM); with a
// thread's 8 tokens loaded before use that is ~50 KB in flight per SM, several times what an A100's
// ~1.5 TB/s x ~600 ns needs per SM, so occupancy does not limit the bandwidth.
//   B=64, T=1024 (N=65,536): 1.2-2 MB, ~1 us of traffic at 1.5 TB/s; the 3-4 launches, the memset and the
//     copy back (~3 us each) dominate: the call is latency-bound, like every loss at this size.
//   B=32, T=32,768 (N=1M): 18-30 MB, 12-20 us of traffic in 512 tiles; one atomic per tile on counts[b].
//     Beyond 2M tokens each of the 1024 blocks loops over tiles: 4-5 waves on an A100 or H100.
//   B=4096 short sequences: the plan block reads 16 KB of counts; the per-sequence search is ~3 steps.
//
// ---- Precision -------------------------------------------------------------------------------------------
// Decisions (clipped, dual-clipped, gate, KL clamp for k1/k2, value clipping) compare f32 values computed
// the same way on both backends, so they agree exactly. The ratio uses CUDA's expf (<= 2 ulp), the CPU its
// own polynomial (<= 2 ulp): ratios, PPO gradients and k3 may differ by a few ulp of their terms'
// magnitude, and a k3 estimate within an ulp or two of kl_clamp may clamp on one backend only. The value
// loss involves no exp and no multiply-add, so its gradients match the CPU bit for bit. Sums differ by
// their summation order (f32 over 8 tokens, then f64), a few ulp of the sum of magnitudes.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../core/kernels/rl_loss.h"
#include "check.cuh"
#include "launch.cuh"
#include "scratch.cuh"
#include "reduce.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 8;                         // tokens per thread per tile
constexpr int64_t kTile = kThreads * kItems;      // 2048
constexpr int kTileWords = kTile / kWarpSize;     // 64 ballots per tile
// Grid cap of the tiled passes: >= 4 waves of 2 blocks per SM on an A100 or H100, and for the main pass
// the number of partials, so it is a function of N only.
constexpr int64_t kMaxBlocks = 1024;

// What the plan kernel leaves for the main pass and the host.
struct LossPlan {
  int64_t action_tokens;
  int64_t active_seqs;
  float uniform_weight;  // the weight of every action token, unless seq_weight is used
  float pad;
};

struct TokenLayout {
  const int32_t* cu_seqlens;    // device, [B+1]
  const uint8_t* action_mask;   // or nullptr: every token is an action
  int64_t num_tokens;
  int64_t num_seqs;
  int64_t num_tiles;
  const LossPlan* plan;
  const float* seq_weight;      // [B] in seq-mean-token-mean, else nullptr
};

// The last sequence b in [lo, hi] with cu[b] <= t, given cu[lo] <= t. For t < N that is the non-empty
// sequence holding t: empty sequences share their start with the next one and are skipped.
__device__ __forceinline__ int64_t sequence_of(const int32_t* cu, int64_t lo, int64_t hi, int64_t t) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (cu[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ int64_t sequence_actions(const int32_t* counts, const int32_t* cu, int64_t b) {
  return counts != nullptr ? counts[b] : static_cast<int64_t>(cu[b + 1]) - cu[b];
}

// ---- Pass 1: action tokens per sequence -----------------------------------------------------------------

__global__ void __launch_bounds__(kThreads) action_counts_kernel(TokenLayout layout, int32_t* counts) {
  __shared__ unsigned ballots[kTileWords];     // bit l of word w: token 32w + l of the tile is an action
  __shared__ int32_t prefix[kTileWords + 1];   // action tokens in words [0, w)
  __shared__ int64_t seq_range[2];             // the sequences that overlap the tile
  const int lane = lane_id(), warp = warp_id();
  const int32_t* cu = layout.cu_seqlens;
  for (int64_t tile = blockIdx.x; tile < layout.num_tiles; tile += gridDim.x) {
    const int64_t lo = tile * kTile;
    const int64_t hi = lo + kTile < layout.num_tokens ? lo + kTile : layout.num_tokens;
#pragma unroll
    for (int s = 0; s < kItems; s++) {
      const int word = warp * kItems + s;
      const int64_t t = lo + word * kWarpSize + lane;
      const unsigned bits = __ballot_sync(kFullMask, t < hi && layout.action_mask[t] != 0);
      if (lane == 0) ballots[word] = bits;
    }
    // Two different warps, so the two searches overlap.
    if (threadIdx.x == 0) seq_range[0] = sequence_of(cu, 0, layout.num_seqs - 1, lo);
    if (threadIdx.x == kWarpSize) seq_range[1] = sequence_of(cu, 0, layout.num_seqs - 1, hi - 1);
    __syncthreads();  // ballots, seq_range -> the scan and the per-sequence pass
    if (warp == 0) {
      const int c0 = __popc(ballots[2 * lane]), c1 = __popc(ballots[2 * lane + 1]);
      int incl = c0 + c1;
#pragma unroll
      for (int d = 1; d < kWarpSize; d *= 2) {
        const int up = __shfl_up_sync(kFullMask, incl, d);
        if (lane >= d) incl += up;
      }
      prefix[2 * lane] = incl - c0 - c1;
      prefix[2 * lane + 1] = incl - c1;
      if (lane == kWarpSize - 1) prefix[kTileWords] = incl;
    }
    __syncthreads();  // prefix -> lookups
    // Action tokens of the tile before tile offset o (0 <= o <= kTile).
    auto before = [&](int64_t o) {
      const int w = static_cast<int>(o / kWarpSize), l = static_cast<int>(o % kWarpSize);
      return w == kTileWords ? prefix[kTileWords] : prefix[w] + __popc(ballots[w] & ((1u << l) - 1u));
    };
    for (int64_t b = seq_range[0] + threadIdx.x; b <= seq_range[1]; b += kThreads) {
      const int64_t s = cu[b] > lo ? cu[b] : lo;
      const int64_t e = cu[b + 1] < hi ? cu[b + 1] : hi;
      if (e <= s) continue;  // an empty sequence
      const int c = before(e - lo) - before(s - lo);
      if (c > 0) atomicAdd(&counts[b], c);  // integer: exact in any order
    }
    __syncthreads();  // every lookup ends before the next tile rewrites the shared arrays
  }
}

// ---- Pass 2: totals and weights -------------------------------------------------------------------------

struct ActionTotals {
  int64_t tokens;
  int64_t active_seqs;
};
struct AddTotals {
  __device__ static ActionTotals identity() { return ActionTotals{0, 0}; }
  __device__ void operator()(ActionTotals& into, const ActionTotals& from) const {
    into.tokens += from.tokens;
    into.active_seqs += from.active_seqs;
  }
};

// One block of kReduceThreads. counts == nullptr: no mask, a sequence's count is its length.
__global__ void __launch_bounds__(kReduceThreads) loss_plan_kernel(const int32_t* counts, const int32_t* cu,
                                                                   int64_t num_seqs, LossAggregation mode,
                                                                   double normalizer, LossPlan* plan,
                                                                   float* seq_weight) {
  __shared__ ActionTotals scratch[kReduceThreads / kWarpSize];
  __shared__ ActionTotals totals;
  ActionTotals mine{0, 0};
  for (int64_t b = threadIdx.x; b < num_seqs; b += kReduceThreads) {
    const int64_t c = sequence_actions(counts, cu, b);
    mine.tokens += c;
    mine.active_seqs += c > 0 ? 1 : 0;
  }
  const ActionTotals all = block_reduce(mine, AddTotals{}, scratch);
  if (threadIdx.x == 0) {
    totals = all;
    // Any active sequence stands for all of them when the weight does not depend on its length (as on the CPU).
    *plan = LossPlan{all.tokens, all.active_seqs, aggregation_weight(mode, 1, all.tokens, all.active_seqs, normalizer),
                     0.0f};
  }
  if (seq_weight == nullptr) return;  // the same branch for the whole block
  __syncthreads();  // totals -> every thread
  for (int64_t b = threadIdx.x; b < num_seqs; b += kReduceThreads)
    seq_weight[b] = aggregation_weight(mode, sequence_actions(counts, cu, b), totals.tokens, totals.active_seqs,
                                       normalizer);
}

// ---- Pass 3: the fused per-token pass -------------------------------------------------------------------
// A Loss supplies Params, Inputs (one token's loads), TileSums (f32, one thread's tokens of one tile),
// Partial (f64, block_reduce-able) and Combine, plus load / token / flush.

template <typename Loss>
__global__ void __launch_bounds__(kThreads) loss_tokens_kernel(TokenLayout layout, typename Loss::Params params,
                                                               typename Loss::Partial* partials) {
  __shared__ typename Loss::Partial scratch[kThreads / kWarpSize];
  const typename Loss::Combine combine;
  typename Loss::Partial mine = Loss::Combine::identity();
  const float uniform_weight = layout.plan->uniform_weight;
  for (int64_t tile = blockIdx.x; tile < layout.num_tiles; tile += gridDim.x) {
    const int64_t lo = tile * kTile;
    const int64_t hi = lo + kTile < layout.num_tokens ? lo + kTile : layout.num_tokens;
    int64_t b_lo = 0, b_hi = 0;
    if (layout.seq_weight != nullptr) {
      b_lo = sequence_of(layout.cu_seqlens, 0, layout.num_seqs - 1, lo);
      b_hi = sequence_of(layout.cu_seqlens, b_lo, layout.num_seqs - 1, hi - 1);
    }
    // All loads first: the stores below could alias them as far as the compiler knows, so loading
    // token by token would serialise 8 memory round trips.
    typename Loss::Inputs in[kItems];
    bool action[kItems];
#pragma unroll
    for (int i = 0; i < kItems; i++) {
      const int64_t t = lo + i * kThreads + threadIdx.x;
      in[i] = t < hi ? Loss::load(params, t) : typename Loss::Inputs{};
      action[i] = t < hi && (layout.action_mask == nullptr || layout.action_mask[t] != 0);
    }
    typename Loss::TileSums sums = Loss::tile_start();
#pragma unroll
    for (int i = 0; i < kItems; i++) {
      const int64_t t = lo + i * kThreads + threadIdx.x;
      if (t >= hi) break;
      float weight = uniform_weight;
      if (layout.seq_weight != nullptr && action[i])
        weight = layout.seq_weight[sequence_of(layout.cu_seqlens, b_lo, b_hi, t)];
      Loss::token(params, t, in[i], action[i], weight, sums);
    }
    Loss::flush(sums, mine);
  }
  mine = block_reduce(mine, combine, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = mine;
}

// ---- PPO policy loss --------------------------------------------------------------------------------------

struct PpoLoss {
  struct Params {
    PpoLossArgs a;  // a.stats is host memory and never read here
    PpoThresholds th;
  };
  struct Inputs {
    float logp, old_logp, advantage, ref_logp, entropy;
  };
  struct TileSums {
    float loss, pg, kl, entropy, approx_kl, ratio, ratio_max;
    int clipped, dual;
  };
  // Plain aggregate (no member initialisers): block_reduce shuffles it word by word through a union.
  struct Partial {
    double loss, pg, kl, entropy, approx_kl, ratio;
    int64_t clipped, dual;
    float ratio_max, pad;
  };
  struct Combine {
    __device__ static Partial identity() { return Partial{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, -INFINITY, 0.0f}; }
    __device__ void operator()(Partial& into, const Partial& from) const {
      into.loss += from.loss;
      into.pg += from.pg;
      into.kl += from.kl;
      into.entropy += from.entropy;
      into.approx_kl += from.approx_kl;
      into.ratio += from.ratio;
      into.clipped += from.clipped;
      into.dual += from.dual;
      into.ratio_max = into.ratio_max < from.ratio_max ? from.ratio_max : into.ratio_max;
    }
  };

  __device__ static Inputs load(const Params& p, int64_t t) {
    const PpoLossArgs& a = p.a;
    return Inputs{a.logp[t], a.old_logp[t], a.advantages[t], a.ref_logp != nullptr ? a.ref_logp[t] : 0.0f,
                  a.entropy != nullptr ? a.entropy[t] : 0.0f};
  }
  __device__ static TileSums tile_start() { return TileSums{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -INFINITY, 0, 0}; }

  // rl_loss.h's per-token formulas, in the CPU kernel's order of operations.
  __device__ static void token(const Params& p, int64_t t, const Inputs& in, bool action, float weight, TileSums& s) {
    const PpoLossArgs& a = p.a;
    const PpoThresholds& th = p.th;
    const float adv = in.advantage, delta = in.logp - in.old_logp;
    const float log_ratio = clamp_log_ratio(delta), ratio = expf(log_ratio);
    const bool high = adv > 0.0f && delta > th.log_hi;
    const bool low = adv < 0.0f && delta < th.log_lo;
    const bool dual = adv < 0.0f && delta > th.log_dual;
    const bool held = high || low || dual;
    const float bound = dual ? th.dual : (low ? th.lo : th.hi);
    const float pg = -adv * (held ? bound : ratio);
    float grad = held ? 0.0f : -adv * ratio * log_ratio_gate(delta);
    float term = pg, kl = 0.0f;
    if (a.ref_logp != nullptr) {
      const float ref_delta = in.logp - in.ref_logp;
      const float exp_neg = a.kl_estimator == KlEstimator::K3 ? expf(-clamp_log_ratio(ref_delta)) : 0.0f;
      const ValueAndGrad k = kl_estimate(a.kl_estimator, ref_delta, exp_neg, a.kl_clamp);
      kl = k.value;
      term += a.kl_coef * k.value;
      grad += a.kl_coef * k.grad;
    }
    if (a.entropy != nullptr) {
      term -= a.entropy_coef * in.entropy;
      a.d_entropy[t] = action ? -weight * a.entropy_coef : 0.0f;
    }
    a.d_logp[t] = action ? weight * grad : 0.0f;
    if (!action) return;
    s.loss += weight * term;
    s.pg += weight * pg;
    s.kl += kl;
    s.entropy += in.entropy;
    s.approx_kl += ratio - 1.0f - log_ratio;
    s.ratio += ratio;
    s.ratio_max = s.ratio_max < ratio ? ratio : s.ratio_max;
    s.clipped += (high || low) ? 1 : 0;
    s.dual += dual ? 1 : 0;
  }

  __device__ static void flush(const TileSums& s, Partial& into) {
    Combine()(into, Partial{s.loss, s.pg, s.kl, s.entropy, s.approx_kl, s.ratio, s.clipped, s.dual, s.ratio_max, 0.0f});
  }
};

// ---- Value loss ---------------------------------------------------------------------------------------------

struct ValueLoss {
  struct Params {
    ValueLossArgs a;  // a.stats is host memory and never read here
  };
  struct Inputs {
    float value, old_value, ret;
  };
  struct TileSums {
    float loss;
    int clipped;
  };
  struct Partial {
    double loss;
    int64_t clipped;
  };
  struct Combine {
    __device__ static Partial identity() { return Partial{0.0, 0}; }
    __device__ void operator()(Partial& into, const Partial& from) const {
      into.loss += from.loss;
      into.clipped += from.clipped;
    }
  };

  __device__ static Inputs load(const Params& p, int64_t t) {
    return Inputs{p.a.values[t], p.a.old_values[t], p.a.returns[t]};
  }
  __device__ static TileSums tile_start() { return TileSums{0.0f, 0}; }

  __device__ static void token(const Params& p, int64_t t, const Inputs& in, bool action, float weight, TileSums& s) {
    const float clip = p.a.clip_range;  // +inf: never clipped
    const float d = in.value - in.old_value;
    const float clipped_value = d > clip ? in.old_value + clip : (d < -clip ? in.old_value - clip : in.value);
    const float err = in.value - in.ret, clipped_err = clipped_value - in.ret;
    const bool clipped = clipped_err * clipped_err > err * err;
    const float term = 0.5f * (clipped ? clipped_err * clipped_err : err * err);
    p.a.d_values[t] = (action && !clipped) ? weight * err : 0.0f;
    if (!action) return;
    s.loss += weight * term;
    s.clipped += clipped ? 1 : 0;
  }

  __device__ static void flush(const TileSums& s, Partial& into) {
    Combine()(into, Partial{static_cast<double>(s.loss), s.clipped});
  }
};

// ---- host side ----------------------------------------------------------------------------------------------


// What comes back to the host: the plan's counts and the reduced stats.
template <typename Loss>
struct LossTotals {
  LossPlan plan;
  typename Loss::Partial sums;
};

// Passes 1-4 for one loss. Everything of one call lives on `device`; the result is on the host.
template <typename Loss>
LossTotals<Loss> run_loss(int device, const typename Loss::Params& params, const int32_t* cu_seqlens,
                          const uint8_t* action_mask, int64_t num_tokens, int64_t num_seqs, LossAggregation mode,
                          double normalizer) {
  using Partial = typename Loss::Partial;
  LossTotals<Loss> out{};
  if (num_tokens == 0) {  // no token, no action: every stat is 0 (a 0-block grid is invalid)
    out.plan = LossPlan{0, 0, 0.0f, 0.0f};
    out.sums = Partial{};
    return out;
  }
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const int64_t num_tiles = ceil_div(num_tokens, kTile);
  const int64_t num_blocks = num_tiles < kMaxBlocks ? num_tiles : kMaxBlocks;  // = partials
  const bool per_seq = mode == LossAggregation::SeqMeanTokenMean;
  const size_t totals_bytes = align_up(sizeof(LossTotals<Loss>));
  const size_t partials_bytes = align_up(static_cast<size_t>(num_blocks) * sizeof(Partial));
  const size_t counts_bytes = action_mask != nullptr ? align_up(static_cast<size_t>(num_seqs) * sizeof(int32_t)) : 0;
  const size_t weights_bytes = per_seq ? static_cast<size_t>(num_seqs) * sizeof(float) : 0;
  DeviceScratch scratch(totals_bytes + partials_bytes + counts_bytes + weights_bytes);
  auto* totals = reinterpret_cast<LossTotals<Loss>*>(scratch.bytes());
  auto* partials = reinterpret_cast<Partial*>(scratch.bytes() + totals_bytes);
  int32_t* counts = action_mask != nullptr ? reinterpret_cast<int32_t*>(scratch.bytes() + totals_bytes + partials_bytes)
                                           : nullptr;
  float* seq_weight =
      per_seq ? reinterpret_cast<float*>(scratch.bytes() + totals_bytes + partials_bytes + counts_bytes) : nullptr;

  TokenLayout layout{cu_seqlens, action_mask, num_tokens, num_seqs, num_tiles, &totals->plan, seq_weight};
  if (counts != nullptr) {
    TALARIA_CUDA_CHECK(cudaMemsetAsync(counts, 0, static_cast<size_t>(num_seqs) * sizeof(int32_t), 0));
    TALARIA_LAUNCH(static_cast<unsigned>(num_blocks), kThreads, 0, 0, action_counts_kernel)(layout, counts);
    TALARIA_CUDA_CHECK_LAUNCH();
  }
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, loss_plan_kernel)(counts, cu_seqlens, num_seqs, mode, normalizer,
                                                             &totals->plan, seq_weight);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(static_cast<unsigned>(num_blocks), kThreads, 0, 0, loss_tokens_kernel<Loss>)(layout, params,
                                                                                                 partials);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(1, kReduceThreads, 0, 0, reduce_partials_kernel<Partial, typename Loss::Combine>)(
      partials, num_blocks, &totals->sums);
  TALARIA_CUDA_CHECK_LAUNCH();
  // Synchronous on the default stream: it waits for the kernels above, and surfaces their faults.
  TALARIA_CUDA_CHECK(cudaMemcpy(&out, totals, sizeof(out), cudaMemcpyDeviceToHost));
  scratch.release();
  return out;
}


}  // namespace

void ppo_loss(int device, const PpoLossArgs& args) {
  const PpoLoss::Params params{args, ppo_thresholds(args)};
  const LossTotals<PpoLoss> r = run_loss<PpoLoss>(device, params, args.cu_seqlens, args.action_mask, args.num_tokens,
                                                  args.num_seqs, args.aggregation, args.normalizer);
  const int64_t n = r.plan.action_tokens;
  PpoLossStats& s = *args.stats;
  s.loss = r.sums.loss;
  s.pg_loss = r.sums.pg;
  s.clip_frac = mean_or_zero(static_cast<double>(r.sums.clipped), n);
  s.clip_frac_lower = mean_or_zero(static_cast<double>(r.sums.dual), n);
  s.approx_kl = mean_or_zero(r.sums.approx_kl, n);
  s.ratio_mean = mean_or_zero(r.sums.ratio, n);
  s.ratio_max = n > 0 ? r.sums.ratio_max : 0.0;
  s.kl_mean = mean_or_zero(r.sums.kl, n);
  s.entropy_mean = mean_or_zero(r.sums.entropy, n);
  s.action_tokens = n;
  s.active_seqs = r.plan.active_seqs;
}

void value_loss(int device, const ValueLossArgs& args) {
  const ValueLoss::Params params{args};
  const LossTotals<ValueLoss> r = run_loss<ValueLoss>(device, params, args.cu_seqlens, args.action_mask,
                                                      args.num_tokens, args.num_seqs, args.aggregation, args.normalizer);
  ValueLossStats& s = *args.stats;
  s.loss = r.sums.loss;
  s.clip_frac = mean_or_zero(static_cast<double>(r.sums.clipped), r.plan.action_tokens);
  s.action_tokens = r.plan.action_tokens;
  s.active_seqs = r.plan.active_seqs;
}

}  // namespace cuda
}  // namespace talaria
