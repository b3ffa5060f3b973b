// Correct warp-level programs: every shuffle with widths 32, 16 and 8 (including the out-of-segment
// rules), votes, reductions, __match_any_sync, __syncwarp, a partial last warp, and lanes of one warp
// in collectives with different masks. They must run clean under every schedule and sanitizer.
//
// The host references follow the PTX ISA's shfl.sync pseudo-code, with c = ((32 - width) << 8) | 31
// for idx/down/bfly and c = (32 - width) << 8 for up (that is what cuda's sm_30_intrinsics.hpp
// passes). With seg_lo = lane & ~(width - 1) and seg_hi = seg_lo + width - 1:
//   idx:  source seg_lo | (srcLane & (width - 1))                 always inside the segment
//   up:   source lane - delta,  used if >= seg_lo, else own value
//   down: source lane + delta,  used if <= seg_hi, else own value
//   xor:  source lane ^ mask,   used if <= seg_hi, else own value. So a lane may read from an
//         EARLIER segment (the programming guide: "each group of width consecutive threads are able to
//         access elements from earlier groups of threads, however if they attempt to access elements
//         from later groups of threads their own value of var will be returned").
#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/warp.cuh"
#include "selftest.cuh"

namespace {

constexpr unsigned kFull = 0xffffffffu;

enum ShuffleKind { kIdx, kUp, kDown, kXor };
struct ShuffleOp {
  ShuffleKind kind;
  int arg;
};
// The same list drives the kernel (through a switch on the index) and the host reference.
constexpr int kNumShuffleOps = 7;
constexpr ShuffleOp kShuffleOps[kNumShuffleOps] = {{kIdx, -1}, {kUp, 3},  {kDown, 5}, {kXor, 1},
                                                   {kXor, 6},  {kXor, 9}, {kXor, 16}};
constexpr int kNumWidths = 3;  // 32, 16, 8

__device__ int shuffle_int(int op, unsigned mask, int v, int lane, int width) {
  switch (op) {
    case 0: return __shfl_sync(mask, v, lane * 5 + 3, width);  // srcLane beyond width wraps in the segment
    case 1: return __shfl_up_sync(mask, v, 3, width);
    case 2: return __shfl_down_sync(mask, v, 5, width);
    case 3: return __shfl_xor_sync(mask, v, 1, width);
    case 4: return __shfl_xor_sync(mask, v, 6, width);
    case 5: return __shfl_xor_sync(mask, v, 9, width);
    default: return __shfl_xor_sync(mask, v, 16, width);
  }
}

int host_source(ShuffleOp op, int lane, int width) {
  const int seg_lo = lane & ~(width - 1), seg_hi = seg_lo + width - 1;
  int j = lane;
  switch (op.kind) {
    case kIdx: return seg_lo | ((lane * 5 + 3) & (width - 1));
    case kUp: j = lane - op.arg; return j >= seg_lo ? j : lane;
    case kDown: j = lane + op.arg; return j <= seg_hi ? j : lane;
    case kXor: j = lane ^ (op.arg & 31); return j <= seg_hi ? j : lane;
  }
  return lane;
}

__global__ void all_shuffles(const int* in, int* int_out, float* float_out, double* double_out,
                             long long* ll_out) {
  const int n = static_cast<int>(gridDim.x * blockDim.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int lane = talaria::cuda::lane_id();
  const int v = in[i];
  for (int w = 0; w < kNumWidths; ++w)
    for (int op = 0; op < kNumShuffleOps; ++op)
      int_out[(w * kNumShuffleOps + op) * n + i] = shuffle_int(op, kFull, v, lane, 32 >> w);
  // 4- and 8-byte types other than int.
  float_out[i] = __shfl_down_sync(kFull, static_cast<float>(v) * 0.5f, 1);
  double_out[i] = __shfl_sync(kFull, static_cast<double>(v) * 0.25, 7, 16);
  ll_out[i] = __shfl_xor_sync(kFull, static_cast<long long>(v) * 1000003LL, 3, 8);
}

// Ten results per thread, one per row of out.
constexpr int kVoteRows = 10;
__global__ void votes_reductions_matches(const int* in, int* out) {
  __shared__ int exchange[96];
  const int n = static_cast<int>(gridDim.x * blockDim.x);
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  const int lane = talaria::cuda::lane_id();
  const int x = in[i];
  out[0 * n + i] = static_cast<int>(__ballot_sync(kFull, x % 3 == 0));
  out[1 * n + i] = __any_sync(kFull, x > 18);
  out[2 * n + i] = __all_sync(kFull, x > 0);
  out[3 * n + i] = __reduce_add_sync(kFull, x);
  out[4 * n + i] = static_cast<int>(__reduce_min_sync(kFull, static_cast<unsigned>(x * 7 + 1)));
  out[5 * n + i] = __reduce_max_sync(kFull, x - 10);
  out[6 * n + i] = static_cast<int>(__match_any_sync(kFull, x / 4));
  out[7 * n + i] = static_cast<int>(__match_any_sync(kFull, static_cast<long long>(x % 5) << 40));
  // __syncwarp orders shared memory between the lanes of a warp.
  exchange[t] = x * 3;
  __syncwarp();
  out[8 * n + i] = exchange[(t & ~31) + (lane ^ 5)];
  // A ballot over the even lanes only; the odd lanes skip it and finish.
  int even_ballot = -1;
  if (lane % 2 == 0) even_ballot = static_cast<int>(__ballot_sync(0x55555555u, x > 10));
  out[9 * n + i] = even_ballot;
}

// blockDim 48: warp 1 has lanes 0..15 only. Full masks, reading only lanes that exist.
constexpr int kPartialRows = 6;
__global__ void partial_warp_collectives(const int* in, int* out) {
  __shared__ int exchange[48];
  const int n = static_cast<int>(gridDim.x * blockDim.x);
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  const int lane = talaria::cuda::lane_id();
  const int x = in[i];
  int sum16 = x;
  for (int m = 8; m > 0; m /= 2) sum16 += __shfl_xor_sync(kFull, sum16, m, 16);
  out[0 * n + i] = sum16;
  out[1 * n + i] = __shfl_up_sync(kFull, x, 1);
  out[2 * n + i] = __shfl_sync(kFull, x, (lane * 7) % 16);
  out[3 * n + i] = static_cast<int>(__ballot_sync(kFull, x > 0));
  out[4 * n + i] = __all_sync(kFull, x > -100) * 2 + __any_sync(kFull, x > 45);
  exchange[t] = x + 1;
  __syncwarp();
  out[5 * n + i] = exchange[(t & ~31) + (lane ^ 1)];
}

// Disjoint masks in the two branches, then the whole warp: valid from sm_70 on, where a collective
// waits for the lanes of its mask to execute a collective with that same mask (PTX ISA, shfl.sync).
__global__ void divergent_masks(const int* in, int* out) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int lane = talaria::cuda::lane_id();
  const int v = in[i];
  int pair;
  if (lane < 16)
    pair = __shfl_xor_sync(0x0000ffffu, v, 1);
  else
    pair = __shfl_xor_sync(0xffff0000u, v, 2);
  const int mirrored = __shfl_sync(kFull, v + pair, 31 - lane);
  unsigned parity_ballot;
  if (lane % 2 == 0)
    parity_ballot = __ballot_sync(0x55555555u, mirrored > 0);
  else
    parity_ballot = __ballot_sync(0xaaaaaaaau, mirrored > 0);
  out[2 * i] = mirrored;
  out[2 * i + 1] = static_cast<int>(parity_ballot);
}

}  // namespace

SELFTEST_CASE(warp_shuffles) {
  constexpr int kBlocks = 2, kThreads = 64, kN = kBlocks * kThreads;
  selftest::Rng rng(401);
  const std::vector<int> in = rng.ints(kN, -100000, 100000);
  std::vector<int> ints(kNumWidths * kNumShuffleOps * kN);
  std::vector<float> floats(kN);
  std::vector<double> doubles(kN);
  std::vector<long long> lls(kN);
  selftest::DeviceArena arena;
  int *d_in, *d_ints;
  float* d_floats;
  double* d_doubles;
  long long* d_lls;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_ints, ints.size()));
  SELFTEST_CUDA(arena.alloc(&d_floats, floats.size()));
  SELFTEST_CUDA(arena.alloc(&d_doubles, doubles.size()));
  SELFTEST_CUDA(arena.alloc(&d_lls, lls.size()));
  TALARIA_LAUNCH(kBlocks, kThreads, 0, 0, all_shuffles)(d_in, d_ints, d_floats, d_doubles, d_lls);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(ints, d_ints));
  SELFTEST_CUDA(selftest::download(floats, d_floats));
  SELFTEST_CUDA(selftest::download(doubles, d_doubles));
  SELFTEST_CUDA(selftest::download(lls, d_lls));

  int failed = 0;
  for (int w = 0; w < kNumWidths; ++w)
    for (int op = 0; op < kNumShuffleOps; ++op) {
      std::vector<int> got(ints.begin() + (w * kNumShuffleOps + op) * kN,
                           ints.begin() + (w * kNumShuffleOps + op + 1) * kN);
      std::vector<int> want(kN);
      for (int i = 0; i < kN; ++i) want[i] = in[i / 32 * 32 + host_source(kShuffleOps[op], i % 32, 32 >> w)];
      char what[64];
      std::snprintf(what, sizeof what, "shuffle op %d width %d", op, 32 >> w);
      failed |= selftest::expect_equal(what, got, want);
    }
  std::vector<double> want_floats(kN), want_doubles(kN);
  std::vector<long long> want_lls(kN);
  for (int i = 0; i < kN; ++i) {
    const int base = i / 32 * 32, lane = i % 32;
    want_floats[i] = static_cast<float>(in[base + host_source({kDown, 1}, lane, 32)]) * 0.5f;
    want_doubles[i] = static_cast<double>(in[base + (lane & ~15) + 7]) * 0.25;
    want_lls[i] = static_cast<long long>(in[base + host_source({kXor, 3}, lane, 8)]) * 1000003LL;
  }
  std::vector<float> doubles_as_float(doubles.begin(), doubles.end());  // exact: v * 0.25 fits a float
  failed |= selftest::expect_near("float shuffle", floats, want_floats, 0.0, 0.0);
  failed |= selftest::expect_near("double shuffle", doubles_as_float, want_doubles, 0.0, 0.0);
  failed |= selftest::expect_equal("long long shuffle", lls, want_lls);
  return failed;
}

SELFTEST_CASE(warp_votes_reduce_match) {
  constexpr int kBlocks = 2, kThreads = 96, kN = kBlocks * kThreads;
  selftest::Rng rng(402);
  std::vector<int> in = rng.ints(kN, 0, 20);
  // Make each vote come out true for some warps and false for others.
  for (int i = 0; i < 32; ++i) in[32 + i] = rng.range(1, 20);  // block 0 warp 1: no zero, all(x > 0)
  for (int i = 0; i < 32; ++i) in[96 + i] = rng.range(0, 18);  // block 1 warp 0: any(x > 18) false
  in[0] = 0;
  in[64] = 19;
  std::vector<int> out(kVoteRows * kN);
  selftest::DeviceArena arena;
  int *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(kBlocks, kThreads, 0, 0, votes_reductions_matches)(d_in, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));

  std::vector<int> want(out.size());
  for (int warp = 0; warp < kN / 32; ++warp) {
    const int* x = &in[warp * 32];
    unsigned ballot = 0, even_ballot = 0, min_u = ~0u;
    int any = 0, all = 1, sum = 0, max_s = -1000;
    for (int l = 0; l < 32; ++l) {
      ballot |= (x[l] % 3 == 0 ? 1u : 0u) << l;
      if (l % 2 == 0) even_ballot |= (x[l] > 10 ? 1u : 0u) << l;
      any |= x[l] > 18;
      all &= x[l] > 0;
      sum += x[l];
      min_u = std::min(min_u, static_cast<unsigned>(x[l] * 7 + 1));
      max_s = std::max(max_s, x[l] - 10);
    }
    for (int l = 0; l < 32; ++l) {
      const int i = warp * 32 + l;
      unsigned same_quarter = 0, same_mod5 = 0;
      for (int o = 0; o < 32; ++o) {
        same_quarter |= (x[o] / 4 == x[l] / 4 ? 1u : 0u) << o;
        same_mod5 |= (x[o] % 5 == x[l] % 5 ? 1u : 0u) << o;
      }
      const int rows[kVoteRows] = {static_cast<int>(ballot), any, all, sum, static_cast<int>(min_u), max_s,
                                   static_cast<int>(same_quarter), static_cast<int>(same_mod5), x[l ^ 5] * 3,
                                   l % 2 == 0 ? static_cast<int>(even_ballot) : -1};
      for (int r = 0; r < kVoteRows; ++r) want[r * kN + i] = rows[r];
    }
  }
  return selftest::expect_equal("vote/reduce/match rows", out, want);
}

SELFTEST_CASE(partial_last_warp) {
  constexpr int kBlocks = 2, kThreads = 48, kN = kBlocks * kThreads;
  selftest::Rng rng(403);
  const std::vector<int> in = rng.ints(kN, -50, 50);
  std::vector<int> out(kPartialRows * kN);
  selftest::DeviceArena arena;
  int *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(kBlocks, kThreads, 0, 0, partial_warp_collectives)(d_in, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));

  std::vector<int> want(out.size());
  for (int b = 0; b < kBlocks; ++b)
    for (int warp_base = 0; warp_base < kThreads; warp_base += 32) {
      const int lanes = std::min(32, kThreads - warp_base);  // 32, then 16
      const int* x = &in[b * kThreads + warp_base];
      unsigned ballot = 0;
      int all = 1, any = 0;
      for (int l = 0; l < lanes; ++l) {
        ballot |= (x[l] > 0 ? 1u : 0u) << l;
        all &= x[l] > -100;
        any |= x[l] > 45;
      }
      for (int l = 0; l < lanes; ++l) {
        const int i = b * kThreads + warp_base + l;
        int sum16 = 0;
        for (int o = l & ~15; o < (l & ~15) + 16; ++o) sum16 += x[o];
        const int rows[kPartialRows] = {sum16, x[l == 0 ? 0 : l - 1], x[(l * 7) % 16], static_cast<int>(ballot),
                                        all * 2 + any, x[l ^ 1] + 1};
        for (int r = 0; r < kPartialRows; ++r) want[r * kN + i] = rows[r];
      }
    }
  return selftest::expect_equal("partial warp rows", out, want);
}

SELFTEST_CASE(divergent_warp_masks) {
  constexpr int kBlocks = 2, kThreads = 64, kN = kBlocks * kThreads;
  selftest::Rng rng(404);
  const std::vector<int> in = rng.ints(kN, -1000, 1000);
  std::vector<int> out(2 * kN);
  selftest::DeviceArena arena;
  int *d_in, *d_out;
  SELFTEST_CUDA(arena.upload(&d_in, in));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(kBlocks, kThreads, 0, 0, divergent_masks)(d_in, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));

  std::vector<int> want(out.size());
  for (int warp = 0; warp < kN / 32; ++warp) {
    const int* v = &in[warp * 32];
    int summed[32], mirrored[32];
    for (int l = 0; l < 32; ++l) summed[l] = v[l] + v[l < 16 ? l ^ 1 : l ^ 2];
    for (int l = 0; l < 32; ++l) mirrored[l] = summed[31 - l];
    unsigned ballots[2] = {0, 0};
    for (int l = 0; l < 32; ++l) ballots[l % 2] |= (mirrored[l] > 0 ? 1u : 0u) << l;
    for (int l = 0; l < 32; ++l) {
      want[2 * (warp * 32 + l)] = mirrored[l];
      want[2 * (warp * 32 + l) + 1] = static_cast<int>(ballots[l % 2]);
    }
  }
  return selftest::expect_equal("out", out, want);
}
