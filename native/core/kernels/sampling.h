// Token sampling from logits [N, V]: penalties, temperature, top-k, top-p, min-p and a Philox draw, one
// token per row. Device-agnostic entry point, plus the CPU (native/cpu/sampling.cpp) and CUDA
// (native/cuda/sampling.cu) implementations; the oracle is test/reference/sampling.ts, which computes the
// same integer weights and so the same tokens. Arguments are validated by the addon.
//
// ---- Exact by construction ---------------------------------------------------------------------------
// The same seed and logits give the same tokens on every backend. Floating point enters only through
// per-token functions of sampling_math.h (single IEEE ops and explicit fmaf); everything that combines
// tokens is an integer sum or a max, which no summation order can change. Per row, in this order:
//   1. penalties: a token seen c > 0 times in the row's history gets z = logit > 0 ? logit / r : logit * r,
//      then z -= presence + frequency * c (HF/vLLM). Then z = z / T (a true division). NaN -> -inf.
//   2. m = max_i z_i.
//   3. weights e_i = floor(exp(z_i - m) * 2^31) as uint32 (the max weighs 2^31; -inf weighs 0). Sums are
//      uint64. Quantisation: a token whose probability is below 2^-31 of the max token's weighs 0 and is
//      never sampled; every other probability moves by < 2^-31 relative to the max's, a deliberate
//      deviation of < 1e-9 per token.
//   4. top-k (0 < k < V): keep z >= the k-th largest z. Ties with the k-th value are all kept (HF's
//      TopKLogitsWarper), so more than k tokens can survive.
//   5. top-p (p < 1) over the top-k survivors, W = their weight: keep z >= tau, where tau is the largest
//      value whose survivors at or above it weigh >= p * W (ceil(p * W) as an integer). Every token tied
//      with tau is kept, and so is the max token always.
//   6. min-p (minP > 0): keep survivors with e >= minP * 2^31 (minP times the max's weight).
//   7. draw: r = the first 64 bits of Philox4x32-10(key = seed, counter = (offset lo, offset hi, row lo,
//      row hi)); target = floor(r * W_S / 2^64) with W_S the survivors' weight; the token is the smallest
//      index whose running sum of survivor weights (in vocab order) exceeds target.
//   8. logp = log(e_tok / W_S) (f64): the log-prob under the processed distribution. logpPlain = the
//      token's log softmax(logits / T), without penalties or truncation, from an f64 sum of f32 exps
//      (not bitwise across backends: the sum's order differs; a few ulp).
// Greedy mode: argmax of the penalised logits (before temperature), lowest index on ties; logp = 0 (a
// point mass); top-k/top-p/min-p cannot change an argmax and are ignored. A row whose every value is -inf
// or NaN has no token: token -1, logp and logpPlain NaN.
//
// ---- Napkin math (N = 64, V = 32,000, f32 logits: 128 KB a row, 8.2 MB in all) ---------------------
// Per row: one pass for z and the max, one for the weights (V exps of ~12 fmaf each), a radix select per
// top-k or top-p, and one pass for the survivors and the draw. The compulsory traffic is the logits,
// 8.2 MB (~0.2 ms at 45 GB/s); everything else is compute on data in cache, so the sampler is
// compute-bound and its fraction of the triad is low by nature.
//   CPU: a row's z, softmax terms, keys and weights (16 B/token, 512 KB) stay in L2; the passes are
//   vectorised (AVX2/AVX-512) except the radix selects, which scan the row once for a 12-bit first digit
//   (a scatter into a histogram, ~1 ns/token) and then only the candidates sharing it. Measured here:
//   ~0.7 ms for the batch on 2 threads plain (0.7 ns per logit per core), ~1.5 ms with top-k or top-p.
//   CUDA: a block per row re-reads its logits from L2 once per pass (up to ~12 passes with top-k and
//   top-p; exps recomputed, no scratch beyond the history counts), so it is bound by L2 bandwidth and
//   the exps, not by DRAM: 8 MB of DRAM reads is ~5 us on an A100, and 64 blocks fill only half its SMs,
//   so a decode step is latency-bound (a few tens of us). Penalties add H integer atomics per row and a
//   memset of N * V int32 counts (8 MB here).
#pragma once
#include <cstdint>

#include "dispatch.h"
#include "sampling_math.h"

namespace talaria {

// Values must match the JS names 'sample' | 'greedy'.
enum class SampleMode : int32_t { Sample = 0, Greedy = 1 };

struct SampleArgs {
  const float* logits;            // [rows, vocab]
  int64_t rows;                   // N (may be 0)
  int64_t vocab;                  // V >= 1
  uint64_t seed;                  // < 2^53 (a JS integer)
  uint64_t offset;                // < 2^53
  SampleMode mode;
  float temperature;              // > 0, finite; used when temperatures is nullptr
  const float* temperatures;      // [rows] per-row temperatures, or nullptr
  int64_t top_k;                  // 0 (or >= V) is off
  float top_p;                    // in (0, 1]; 1 is off
  float min_p;                    // in [0, 1); 0 is off
  const int32_t* history;         // [H] token ids in [0, V), or nullptr
  const int32_t* history_offsets; // [rows + 1] from 0 to H, or nullptr (no history)
  Penalties penalties;
  int32_t* tokens;                // [rows] out
  float* logp;                    // [rows] out
  float* logp_plain;              // [rows] out
};

namespace cpu {
void sample(const SampleArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void sample(int device, const SampleArgs& args);
}  // namespace cuda
#endif

inline void sample(Device device, const SampleArgs& args) { TALARIA_DISPATCH(device, sample, args); }

}  // namespace talaria
