// RL advantage kernels on CUDA: GAE as a parallel scan, and deterministic masked whitening.
// The semantics are those of native/core/kernels/rl.h; the float64 reference in test/reference is the
// oracle for this file and for native/cpu/rl.cpp.
//
// ---- GAE: the recurrence as a scan -------------------------------------------------------------
// gae_scan.cuh shows how the recurrence becomes one unsegmented scan over per-token affine maps, and
// holds that algebra (GaeMap, gae_compose, gae_warp_suffix_scan).
//
// ---- Thread mapping ----------------------------------------------------------------------------------
// A group (one warp, or one 256-thread block) takes a chunk of 32*8 or 256*8 tokens. Thread i owns the
// 8 consecutive tokens [8i, 8i+8) of the chunk:
//   1. The group loads the chunk into shared memory, coalesced (token j goes to thread j % threads).
//      A pad of one slot per 8 makes the reads in step 2 free of bank conflicts.
//   2. Each thread composes its 8 token maps serially, right to left, reading r and v from its own
//      staging slots.
//   3. Kogge-Stone suffix scan over the 32 lanes with __shfl_down_sync: 5 steps, 5 words per step.
//      In a block, each warp's total goes to shared memory, and every thread folds in the totals of
//      the warps to its right, in a fixed order.
//   4. Each thread applies the exclusive result to the group's incoming carry. That gives the state
//      entering its 8 tokens. It then reruns them serially to produce the outputs (same update as the
//      CPU's loop). It writes them into the same slots, and the group stores them coalesced.
//   5. The group total, applied to the carry, is the carry of the next chunk to the left.
// Three ways to cover the batch, chosen from the average sequence length N/B. The host cannot see
// cu_seqlens without a sync.
//   warp mode  (longest <= 512):   a warp per sequence, walking its chunks from the end. One launch.
//                              B=512,T=256: 512 warps, one chunk each.
//   block mode (longest <= 8192):  a block per sequence, chunks of 2048. One launch.
//                              B=64,T=1024: 64 blocks, one chunk each.
//   tile mode  (longer):       the packed tokens are cut into tiles of 2048, whatever the sequence
//                              boundaries (each thread binary-searches cu_seqlens for the ends in
//                              its 8 tokens). Three launches: (1) each tile's composed map,
//                              (2) one block scans the tile maps into per-tile carries,
//                              (3) each tile reruns with its carry and writes.
//                              B=1,T=1e6: 489 tiles spread over every SM, not one block walking 489
//                              chunks one after another.
// The mode follows the longest sequence (GaeArgs::max_seqlen, which the addon reads while validating
// cu_seqlens), so one 1e6-token sequence among 511 short ones goes to tile mode instead of leaving one
// block to walk it; the average length is the fallback when max_seqlen is 0 (unknown). Every mode
// combines in a fixed order, so results are bitwise reproducible run to run on the same GPU.
//
// ---- Napkin math ---------------------------------------------------------------------------------
// Per token: read r, v (8 B) and the mask (1 B, when given); write adv, ret (8 B). That is 17 B/token
// (26 B in tile mode, which reads the inputs twice). The work is ~10 flops per token, plus a
// 25-shuffle scan per 256 tokens: about 0.6 flop/B, so the kernels are bandwidth-bound. On an A100
// (1.5 TB/s), B=64,T=1024 moves 1.1 MB, 0.7 us of traffic: launch latency and the one
// chunk-scan round (~2-4 us) dominate. B=512,T=256 moves 2.2 MB, 1.5 us. B=1,T=1e6 in tile mode
// moves 26 MB, ~17 us plus three launches. Tile maps and carries are 28 B per 2048 tokens.
//
// ---- Precision -----------------------------------------------------------------------------------
// f32 storage and f32 state. The outputs come from the same serial update as the CPU loop, applied
// to a carried state that the scan rebuilt from composed maps instead of stepping token by token.
// av and aa are products of gamma and k, and they decay or underflow toward 0 harmlessly. a0 is a
// k-weighted sum of deltas. The error bound scales with S_t = sum_j k^(j-t) (|r_j| + g|V_j| + |v_j|),
// the magnitude of the terms summed into adv_t. It is a few ulp of S_t per chunk boundary, like an f32
// sum. This code, run on the CPU against a float64 serial loop (random data, every mode, up to 4.2M
// tokens, including k = 1), stayed within 1.5e-7 * S_t. A test tolerance of 2e-6 * S_t + 1e-6 leaves
// margin. Non-finite inputs propagate as they do in the serial loop.
//
// ---- Whitening -----------------------------------------------------------------------------------
// Three launches, no atomics. The partition depends only on n, not on the GPU, and every merge runs in a
// fixed order, so results are bitwise reproducible:
//   1. P = clamp(ceil(n/4096), 1, 1024) blocks over a fixed partition of [0, n). Each thread sums
//      (x - shift) and (x - shift)^2 in f64 over a coalesced stride, with shift = its first valid
//      entry. It turns them into (count, mean, M2). The block merges those with Chan's formula in a
//      fixed tree (shuffles, then warps in order) and writes one partial.
//   2. One block merges the P partials in index order, computes mean and 1/sqrt(var + eps) in
//      f64, and stores them as f32.
//   3. An elementwise pass writes out = mask ? (x - mean) * rstd (+ mean) : 0. out may alias x, since
//      each element is read and written by the same thread.
// Traffic: 2 reads of x and the mask plus 1 write, 14 B per entry (12 B without a mask).
// Bandwidth-bound. f64 on consumer GPUs (1/64 rate) still roughly keeps up, at 3 flops per entry.
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/kernels/rl.h"
#include "check.cuh"
#include "gae_scan.cuh"
#include "launch.cuh"
#include "scratch.cuh"
#include "warp.cuh"

namespace talaria {
namespace cuda {
namespace {

// ======================================================================================== GAE ====

constexpr int kItems = 8;                                  // consecutive tokens per thread per chunk
constexpr int kBlockThreads = 256;                         // block and tile modes
constexpr int kBlockChunk = kBlockThreads * kItems;        // 2048 tokens: one block chunk = one tile
constexpr int kWarpModeWarps = 4;                          // sequences in flight per warp-mode block
constexpr int64_t kWarpModeMaxLen = 512;                // up to 2 warp chunks per sequence
constexpr int64_t kBlockModeMaxLen = 8192;              // up to 4 block chunks per sequence

// Staging area for one chunk. Token j of the chunk lives in slot j + j/kItems. The pad slot after each
// thread's 8 tokens puts lane l's reads at word 9l+i, which hits 32 distinct banks.
template <int kThreads>
struct GaeStage {
  static constexpr int kSlots = kThreads * (kItems + 1);
  float r[kSlots];        // rewards in; advantages out
  float v[kSlots];        // values in; returns out
  uint8_t m[kSlots];      // action mask
  GaeMap warp_totals[kThreads / kWarpSize];  // block scan only
};

// Barrier over the group that shares a stage: the warp in warp mode, the block otherwise. It stays a
// macro so the emulator records each barrier's own call site.
#define GAE_GROUP_SYNC(threads)                \
  do {                                         \
    if constexpr ((threads) == kWarpSize)      \
      __syncwarp();                            \
    else                                       \
      __syncthreads();                         \
  } while (0)

// What a thread knows about its 8 tokens besides r and v. It rereads r and v from its own staging
// slots (conflict-free) instead of holding 16 more registers.
struct GaeItems {
  float boot[kItems];  // for tokens that end their sequence: the value after them
  uint32_t valid;      // bit i: token i exists in this chunk
  uint32_t action;     // bit i: token i is a valid action token
  uint32_t end;        // bit i: token i is the last token of its sequence
};

// Slot of token i of thread tid (token j = tid*kItems + i goes to j + j/kItems).
__device__ __forceinline__ int gae_slot(int tid, int i) { return tid * (kItems + 1) + i; }

// Coalesced load: token j is loaded by thread j % kThreads (the store below uses the same mapping, so
// a thread only ever overwrites slots it read itself in the previous chunk's store).
template <int kThreads>
__device__ __forceinline__ void gae_stage_load(GaeStage<kThreads>& st, const GaeArgs& a, int64_t c0, int n,
                                               int tid) {
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    const int j = it * kThreads + tid;
    if (j < n) {
      const int slot = j + j / kItems;
      st.r[slot] = a.rewards[c0 + j];
      st.v[slot] = a.values[c0 + j];
      st.m[slot] = a.action_mask != nullptr ? a.action_mask[c0 + j] : uint8_t{1};
    }
  }
}

template <int kThreads>
__device__ __forceinline__ void gae_stage_store(const GaeStage<kThreads>& st, const GaeArgs& a, int64_t c0,
                                                int n, int tid) {
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    const int j = it * kThreads + tid;
    if (j < n) {
      const int slot = j + j / kItems;
      a.advantages[c0 + j] = st.r[slot];
      a.returns[c0 + j] = st.v[slot];
    }
  }
}

// Reads this thread's mask bits. Slots past the chunk's end are never read, here or later (every
// later read is guarded by `valid`): the emulator fills shared memory with NaN.
template <int kThreads>
__device__ __forceinline__ GaeItems gae_stage_read(const GaeStage<kThreads>& st, int n, int tid) {
  GaeItems it;
  it.valid = it.action = it.end = 0;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    it.boot[i] = 0.0f;
    if (tid * kItems + i < n) {
      it.valid |= 1u << i;
      if (st.m[gae_slot(tid, i)] != 0) it.action |= 1u << i;
    }
  }
  return it;
}

// Sequence-at-a-time modes: the only possible end in a chunk is the sequence's last token.
__device__ __forceinline__ void gae_mark_seq_end(GaeItems& it, int64_t t0, int64_t seq_last, float boot) {
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    if (((it.valid >> i) & 1u) && t0 + i == seq_last) {
      it.end |= 1u << i;
      it.boot[i] = boot;
    }
  }
}

// Tile mode: find the sequence of this thread's first token (largest b with cu[b] <= t0), then walk
// the 8 tokens and mark every token t with t + 1 == cu[b+1]. Empty sequences (cu[b] == cu[b+1]) own no
// token and are skipped.
__device__ __forceinline__ void gae_mark_packed_ends(GaeItems& it, const GaeArgs& a, int64_t t0) {
  if (it.valid == 0) return;
  const int32_t* cu = a.cu_seqlens;
  int64_t lo = 0, hi = a.num_seqs;  // invariant: cu[lo] <= t0 < cu[hi] (cu[0] = 0, cu[B] = N > t0)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cu[mid] <= t0) lo = mid; else hi = mid;
  }
  int64_t b = lo;
  int64_t next_end = cu[b + 1];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t t = t0 + i;
    if (((it.valid >> i) & 1u) && t + 1 == next_end) {
      it.end |= 1u << i;
      it.boot[i] = a.bootstrap != nullptr ? a.bootstrap[b] : 0.0f;
      do {
        ++b;  // the sequence starting at t + 1, skipping empty ones; b == B once t + 1 == N
      } while (b < a.num_seqs && cu[b + 1] <= t + 1);
      next_end = b < a.num_seqs ? cu[b + 1] : INT64_MAX;
    }
  }
}

// The thread's 8 token maps composed right to left: M_0 o M_1 o ... o M_7.
template <int kThreads>
__device__ __forceinline__ GaeMap gae_thread_map(const GaeItems& it, const GaeStage<kThreads>& st, int tid,
                                                 float gamma, float k) {
  GaeMap acc = gae_identity();
#pragma unroll
  for (int i = kItems - 1; i >= 0; --i) {
    if ((it.end >> i) & 1u) acc = GaeMap{it.boot[i], 0.0f, 0.0f, 0.0f, 0};  // C_b o anything = C_b
    if ((it.action >> i) & 1u) {
      const float r = st.r[gae_slot(tid, i)];
      const float v = st.v[gae_slot(tid, i)];
      if (acc.identity)
        acc = GaeMap{v, r - v, gamma, k, 0};
      else
        acc = GaeMap{v, gae_advantage(r, v, acc.v0, acc.a0, gamma, k), k * acc.av, k * acc.aa, 0};
    }
  }
  return acc;
}

// Reruns the thread's tokens from the state entering them. The outputs go into the thread's own
// staging slots; only this thread has read those slots since the last barrier.
template <int kThreads>
__device__ __forceinline__ void gae_thread_outputs(const GaeItems& it, GaeState s, float gamma, float k,
                                                   GaeStage<kThreads>& st, int tid) {
#pragma unroll
  for (int i = kItems - 1; i >= 0; --i) {
    if (!((it.valid >> i) & 1u)) continue;
    if ((it.end >> i) & 1u) s = GaeState{it.boot[i], 0.0f};
    const int slot = gae_slot(tid, i);
    float adv = 0.0f, ret = 0.0f;
    if ((it.action >> i) & 1u) {
      const float v = st.v[slot];
      s.a = gae_advantage(st.r[slot], v, s.v, s.a, gamma, k);
      s.v = v;
      adv = s.a;
      ret = s.a + v;
    }
    st.r[slot] = adv;  // same slot, read just above: r and v of this token are no longer needed
    st.v[slot] = ret;
  }
}

// Exclusive suffix scan over the group. It returns the state entering this thread's tokens, and
// writes to *group_out the state leaving the whole group to its left. Threads to the right hold later
// tokens, so the state entering thread i is (M_{i+1} o ... o M_last)(carry).
template <int kThreads>
__device__ __forceinline__ GaeState gae_group_scan(GaeMap mine, GaeState carry, GaeMap* warp_totals,
                                                   GaeState* group_out) {
  const int lane = lane_id();
  const GaeMap incl = gae_warp_suffix_scan(mine);
  GaeMap excl = gae_shfl_down(incl, 1);
  if (lane == kWarpSize - 1) excl = gae_identity();
  GaeState warp_in = carry;
  if constexpr (kThreads == kWarpSize) {
    (void)warp_totals;
    *group_out = gae_apply(gae_shfl(incl, 0), carry);
  } else {
    const int warp = warp_id();
    if (lane == 0) warp_totals[warp] = incl;
    __syncthreads();
    // Every thread folds the warp totals right to left, in the same order, so all agree bitwise.
    GaeState s = carry;
    for (int w = kThreads / kWarpSize - 1; w >= 0; --w) {
      if (w == warp) warp_in = s;
      s = gae_apply(warp_totals[w], s);
    }
    *group_out = s;
    // warp_totals is rewritten only after the caller's next barrier.
  }
  return gae_apply(excl, warp_in);
}

// One chunk [c0, c0 + n) with the state `carry` entering it from the right. Returns the state
// leaving it to the left. Barriers: the staging writes -> (A) -> the staging reads; the warp totals
// -> (B, inside the scan) -> the fold; the output slots -> (C) -> the coalesced store. The next
// chunk's load writes only slots that the same thread read in this store, and its other writes
// come after its own barrier A. So no fourth barrier is needed.
template <int kThreads, bool kPacked>
__device__ __forceinline__ GaeState gae_chunk(const GaeArgs& a, GaeStage<kThreads>& st, int64_t c0, int n,
                                              int tid, GaeState carry, int64_t seq_last, float seq_boot) {
  gae_stage_load(st, a, c0, n, tid);
  GAE_GROUP_SYNC(kThreads);  // (A)
  GaeItems it = gae_stage_read(st, n, tid);
  const int64_t t0 = c0 + static_cast<int64_t>(tid) * kItems;
  if constexpr (kPacked) {
    (void)seq_last;
    (void)seq_boot;
    gae_mark_packed_ends(it, a, t0);
  } else {
    gae_mark_seq_end(it, t0, seq_last, seq_boot);
  }
  const float gamma = a.gamma;
  const float k = a.gamma * a.lambda;
  GaeState chunk_out;
  const GaeState s = gae_group_scan<kThreads>(gae_thread_map(it, st, tid, gamma, k), carry, st.warp_totals, &chunk_out);
  gae_thread_outputs(it, s, gamma, k, st, tid);
  GAE_GROUP_SYNC(kThreads);  // (C)
  gae_stage_store(st, a, c0, n, tid);
  return chunk_out;
}

// Warp mode (kGroupThreads = 32: a warp per sequence) and block mode (kGroupThreads = block size).
// Each group walks its sequence's chunks from the end; the chunk holding the last token starts
// with the reset C_b, so the initial carry is irrelevant.
template <int kWarps, int kGroupThreads>
__global__ void __launch_bounds__(kWarps * kWarpSize) gae_sequences_kernel(GaeArgs a) {
  static_assert(kGroupThreads == kWarpSize || kGroupThreads == kWarps * kWarpSize, "warp or block groups");
  constexpr int kGroups = kWarps * kWarpSize / kGroupThreads;
  constexpr int kChunk = kGroupThreads * kItems;
  TALARIA_DYNAMIC_SHARED(GaeStage<kGroupThreads>, stages);  // kGroups stages
  const int group = static_cast<int>(threadIdx.x) / kGroupThreads;
  const int tid = static_cast<int>(threadIdx.x) % kGroupThreads;
  GaeStage<kGroupThreads>& st = stages[group];
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kGroups + group; b < a.num_seqs;
       b += static_cast<int64_t>(gridDim.x) * kGroups) {
    const int64_t lo = a.cu_seqlens[b];
    const int64_t hi = a.cu_seqlens[b + 1];
    const float boot = a.bootstrap != nullptr ? a.bootstrap[b] : 0.0f;
    GaeState carry{0.0f, 0.0f};
    for (int64_t chunk_hi = hi; chunk_hi > lo;) {
      const int64_t c0 = chunk_hi - lo > kChunk ? chunk_hi - kChunk : lo;
      carry = gae_chunk<kGroupThreads, false>(a, st, c0, static_cast<int>(chunk_hi - c0), tid, carry, hi - 1,
                                              boot);
      chunk_hi = c0;
    }
  }
}

// Tile mode, pass 1: the composed map of each tile of kBlockChunk packed tokens.
__global__ void __launch_bounds__(kBlockThreads) gae_tile_maps_kernel(GaeArgs a, int64_t num_tiles,
                                                                      GaeMap* tile_maps) {
  TALARIA_DYNAMIC_SHARED(GaeStage<kBlockThreads>, st);
  const int tid = static_cast<int>(threadIdx.x);
  const float k = a.gamma * a.lambda;
  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int64_t c0 = tile * kBlockChunk;
    const int n = static_cast<int>(a.num_tokens - c0 < kBlockChunk ? a.num_tokens - c0 : kBlockChunk);
    gae_stage_load(*st, a, c0, n, tid);
    __syncthreads();  // staging writes -> reads
    GaeItems it = gae_stage_read(*st, n, tid);
    gae_mark_packed_ends(it, a, c0 + static_cast<int64_t>(tid) * kItems);
    const GaeMap incl = gae_warp_suffix_scan(gae_thread_map(it, *st, tid, a.gamma, k));
    if (lane_id() == 0) st->warp_totals[warp_id()] = incl;
    // This barrier also orders every staging read before the next tile's load, and thread 0's read
    // of warp_totals below comes before the next tile's first barrier.
    __syncthreads();
    if (tid == 0) {
      GaeMap total = gae_identity();
      for (int w = kBlockThreads / kWarpSize - 1; w >= 0; --w) total = gae_compose(st->warp_totals[w], total);
      tile_maps[tile] = total;
    }
  }
}

// Tile mode, pass 2: one block scans the tile maps right to left. carries[t] = the state entering tile t
// = (map[t+1] o ... o map[T-1])(0, 0). The start value is irrelevant: the last tile ends a sequence.
__global__ void __launch_bounds__(kBlockThreads) gae_tile_carries_kernel(const GaeMap* tile_maps,
                                                                         int64_t num_tiles, GaeState* carries) {
  TALARIA_DYNAMIC_SHARED(GaeMap, warp_totals);
  const int tid = static_cast<int>(threadIdx.x);
  GaeState carry{0.0f, 0.0f};
  for (int64_t chunk_hi = num_tiles; chunk_hi > 0;) {
    const int64_t c0 = chunk_hi > kBlockChunk ? chunk_hi - kBlockChunk : 0;
    const int n = static_cast<int>(chunk_hi - c0);
    GaeMap maps[kItems];
    GaeMap mine = gae_identity();
#pragma unroll
    for (int i = 0; i < kItems; ++i) {  // 20-byte records, a few per tile: not worth coalescing
      const int j = tid * kItems + i;
      maps[i] = j < n ? tile_maps[c0 + j] : gae_identity();
    }
#pragma unroll
    for (int i = kItems - 1; i >= 0; --i) mine = gae_compose(maps[i], mine);
    GaeState chunk_out;
    GaeState s = gae_group_scan<kBlockThreads>(mine, carry, warp_totals, &chunk_out);
#pragma unroll
    for (int i = kItems - 1; i >= 0; --i) {
      const int j = tid * kItems + i;
      if (j < n) {
        carries[c0 + j] = s;
        s = gae_apply(maps[i], s);
      }
    }
    carry = chunk_out;
    chunk_hi = c0;
    __syncthreads();  // every thread's fold over warp_totals ends before the next chunk rewrites them
  }
}

// Tile mode, pass 3: rerun each tile from its carry and write the outputs.
__global__ void __launch_bounds__(kBlockThreads) gae_tile_apply_kernel(GaeArgs a, int64_t num_tiles,
                                                                       const GaeState* carries) {
  TALARIA_DYNAMIC_SHARED(GaeStage<kBlockThreads>, st);
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int64_t c0 = tile * kBlockChunk;
    const int n = static_cast<int>(a.num_tokens - c0 < kBlockChunk ? a.num_tokens - c0 : kBlockChunk);
    (void)gae_chunk<kBlockThreads, true>(a, *st, c0, n, tid, carries[tile], -1, 0.0f);
  }
}

// ================================================================================== whitening ====

constexpr int kWhitenThreads = 256;
constexpr int64_t kWhitenMinPerBlock = 4096;
constexpr int64_t kWhitenMaxPartials = 1024;

struct WelfordPartial {
  double count;
  double mean;
  double m2;  // sum of squared deviations from mean
};

struct WhitenStats {
  float mean;
  float rstd;    // 1 / sqrt(var + eps)
  float offset;  // mean added back when !shift_mean, else 0
};

// Chan et al.'s merge of two (count, mean, M2) summaries.
__device__ __forceinline__ WelfordPartial chan_merge(const WelfordPartial& a, const WelfordPartial& b) {
  if (b.count == 0.0) return a;
  if (a.count == 0.0) return b;
  const double n = a.count + b.count;
  const double delta = b.mean - a.mean;
  return WelfordPartial{n, a.mean + delta * (b.count / n), a.m2 + b.m2 + delta * delta * (a.count * (b.count / n))};
}

// Merges one partial per thread into thread 0's return value, in a fixed tree: shuffles within each
// warp, then the warps in index order. `warp_parts` holds one slot per warp, in shared memory.
__device__ __forceinline__ WelfordPartial welford_block_merge(WelfordPartial p, WelfordPartial* warp_parts) {
  const int lane = lane_id();
#pragma unroll
  for (int d = kWarpSize / 2; d > 0; d >>= 1) {
    const WelfordPartial other{__shfl_down_sync(kFullMask, p.count, d), __shfl_down_sync(kFullMask, p.mean, d),
                               __shfl_down_sync(kFullMask, p.m2, d)};
    if (lane < d) p = chan_merge(p, other);
  }
  if (lane == 0) warp_parts[warp_id()] = p;
  __syncthreads();
  WelfordPartial total{0.0, 0.0, 0.0};
  if (threadIdx.x == 0)
    for (int w = 0; w < kWhitenThreads / kWarpSize; ++w) total = chan_merge(total, warp_parts[w]);
  return total;
}

// Pass 1: block p summarises the entries [p*span, min(n, (p+1)*span)) that the mask keeps.
__global__ void __launch_bounds__(kWhitenThreads) whiten_partials_kernel(const float* x, const uint8_t* mask,
                                                                         int64_t n, int64_t span,
                                                                         WelfordPartial* partials) {
  TALARIA_DYNAMIC_SHARED(WelfordPartial, warp_parts);
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * span;
  const int64_t hi = lo + span < n ? lo + span : n;
  // Sums of deviations from the thread's first kept entry. That shift is within a few standard
  // deviations of the mean in practice, so sumsq - sum^2/count does not cancel badly in f64.
  double shift = 0.0, count = 0.0, sum = 0.0, sumsq = 0.0;
#pragma unroll 4
  for (int64_t i = lo + threadIdx.x; i < hi; i += kWhitenThreads) {
    if (mask != nullptr && mask[i] == 0) continue;
    const double xi = x[i];
    if (count == 0.0) shift = xi;
    const double d = xi - shift;
    count += 1.0;
    sum += d;
    sumsq += d * d;
  }
  WelfordPartial p{0.0, 0.0, 0.0};
  if (count > 0.0) {
    const double mean_d = sum / count;
    p = WelfordPartial{count, shift + mean_d, fmax(0.0, sumsq - sum * mean_d)};
  }
  const WelfordPartial total = welford_block_merge(p, warp_parts);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Pass 2: one block merges the partials in index order and derives the affine map of pass 3.
__global__ void __launch_bounds__(kWhitenThreads) whiten_stats_kernel(const WelfordPartial* partials,
                                                                      int64_t num_partials, bool shift_mean,
                                                                      bool unbiased, float eps,
                                                                      WhitenStats* stats) {
  TALARIA_DYNAMIC_SHARED(WelfordPartial, warp_parts);
  WelfordPartial p{0.0, 0.0, 0.0};
  for (int64_t i = threadIdx.x; i < num_partials; i += kWhitenThreads) p = chan_merge(p, partials[i]);
  const WelfordPartial total = welford_block_merge(p, warp_parts);
  if (threadIdx.x == 0) {
    double var = 0.0;  // rl.h: 0 when fewer than two entries count (and for none at all)
    if (unbiased && total.count >= 2.0) var = total.m2 / (total.count - 1.0);
    if (!unbiased && total.count >= 1.0) var = total.m2 / total.count;
    const double mean = total.count > 0.0 ? total.mean : 0.0;
    const float mean_f = static_cast<float>(mean);
    *stats = WhitenStats{mean_f, static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps))),
                         shift_mean ? 0.0f : mean_f};
  }
}

// Pass 3: elementwise. x and out may be the same buffer (no __restrict__): each element is read,
// then written, by one thread.
__global__ void __launch_bounds__(kWhitenThreads) whiten_apply_kernel(const float* x, const uint8_t* mask,
                                                                      int64_t n, const WhitenStats* stats,
                                                                      float* out) {
  const WhitenStats s = *stats;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWhitenThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWhitenThreads + threadIdx.x; i < n; i += stride) {
    const bool keep = mask == nullptr || mask[i] != 0;
    out[i] = keep ? (x[i] - s.mean) * s.rstd + s.offset : 0.0f;
  }
}

// =================================================================================== host side ====

// Dynamic shared memory above 48 KiB needs cudaFuncSetAttribute; stay below it.
static_assert(sizeof(GaeStage<kBlockThreads>) <= 48 * 1024, "block stage exceeds the default smem limit");
static_assert(kWarpModeWarps * sizeof(GaeStage<kWarpSize>) <= 48 * 1024, "warp stages exceed the smem limit");

}  // namespace

void gae_advantages(int device, const GaeArgs& args) {
  if (args.num_tokens == 0 || args.num_seqs == 0) return;  // nothing to do; a 0-block grid is invalid
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  const int64_t longest = args.max_seqlen > 0 ? args.max_seqlen : ceil_div(args.num_tokens, args.num_seqs);
  if (longest <= kWarpModeMaxLen) {
    constexpr int kGroupThreads = kWarpSize;
    const size_t smem = kWarpModeWarps * sizeof(GaeStage<kGroupThreads>);
    TALARIA_LAUNCH(capped_grid(ceil_div(args.num_seqs, kWarpModeWarps)), kWarpModeWarps * kWarpSize, smem, 0,
                   gae_sequences_kernel<kWarpModeWarps, kGroupThreads>)(args);
    TALARIA_CUDA_CHECK_LAUNCH();
  } else if (longest <= kBlockModeMaxLen) {
    constexpr int kWarps = kBlockThreads / kWarpSize;
    TALARIA_LAUNCH(capped_grid(args.num_seqs), kBlockThreads, sizeof(GaeStage<kBlockThreads>), 0,
                   gae_sequences_kernel<kWarps, kBlockThreads>)(args);
    TALARIA_CUDA_CHECK_LAUNCH();
  } else {
    const int64_t num_tiles = ceil_div(args.num_tokens, kBlockChunk);
    DeviceScratch scratch(static_cast<size_t>(num_tiles) * (sizeof(GaeMap) + sizeof(GaeState)));
    GaeMap* tile_maps = reinterpret_cast<GaeMap*>(scratch.bytes());
    GaeState* carries = reinterpret_cast<GaeState*>(scratch.bytes() + num_tiles * sizeof(GaeMap));
    const unsigned grid = capped_grid(num_tiles);
    TALARIA_LAUNCH(grid, kBlockThreads, sizeof(GaeStage<kBlockThreads>), 0, gae_tile_maps_kernel)(
        args, num_tiles, tile_maps);
    TALARIA_CUDA_CHECK_LAUNCH();
    TALARIA_LAUNCH(1, kBlockThreads, (kBlockThreads / kWarpSize) * sizeof(GaeMap), 0, gae_tile_carries_kernel)(
        tile_maps, num_tiles, carries);
    TALARIA_CUDA_CHECK_LAUNCH();
    TALARIA_LAUNCH(grid, kBlockThreads, sizeof(GaeStage<kBlockThreads>), 0, gae_tile_apply_kernel)(
        args, num_tiles, carries);
    TALARIA_CUDA_CHECK_LAUNCH();
    TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
    scratch.release();
    return;
  }
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void whiten(int device, const WhitenArgs& args) {
  if (args.n == 0) return;
  TALARIA_CUDA_CHECK(cudaSetDevice(device));
  // A fixed partition of [0, n) that depends only on n, so every GPU gives the same bits.
  int64_t num_partials = ceil_div(args.n, kWhitenMinPerBlock);
  if (num_partials > kWhitenMaxPartials) num_partials = kWhitenMaxPartials;
  const int64_t span = ceil_div(args.n, num_partials);
  num_partials = ceil_div(args.n, span);  // no empty trailing block
  DeviceScratch scratch(static_cast<size_t>(num_partials) * sizeof(WelfordPartial) + sizeof(WhitenStats));
  WelfordPartial* partials = reinterpret_cast<WelfordPartial*>(scratch.bytes());
  WhitenStats* stats = reinterpret_cast<WhitenStats*>(scratch.bytes() + num_partials * sizeof(WelfordPartial));
  const size_t merge_smem = (kWhitenThreads / kWarpSize) * sizeof(WelfordPartial);
  TALARIA_LAUNCH(static_cast<unsigned>(num_partials), kWhitenThreads, merge_smem, 0, whiten_partials_kernel)(
      args.x, args.mask, args.n, span, partials);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(1, kWhitenThreads, merge_smem, 0, whiten_stats_kernel)(
      partials, num_partials, args.shift_mean, args.unbiased, args.eps, stats);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_LAUNCH(capped_grid(ceil_div(args.n, 4 * kWhitenThreads)), kWhitenThreads, 0, 0, whiten_apply_kernel)(
      args.x, args.mask, args.n, stats, args.out);
  TALARIA_CUDA_CHECK_LAUNCH();
  TALARIA_CUDA_CHECK(cudaDeviceSynchronize());
  scratch.release();
}

}  // namespace cuda
}  // namespace talaria
