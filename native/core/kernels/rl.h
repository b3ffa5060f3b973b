// RL advantage kernels: GAE and masked whitening. Device-agnostic entry points, plus the CPU
// (native/cpu/rl.cpp) and CUDA (native/cuda/rl.cu) implementations they dispatch to.
//
// Layout (DESIGN.md): B sequences packed into N tokens, cu_seqlens i32[B+1] with cu_seqlens[0] = 0 and
// cu_seqlens[B] = N. All pointers of one call live on the same device. Arguments are validated by the
// addon before they get here; kernels assume valid input.
//
// GAE semantics (verl's rule): inside each sequence the recurrence runs backwards over its *action*
// tokens only. Non-action tokens (prompt, padding) are skipped: they neither reset nor advance the
// recurrence, and they get advantage 0 and return 0. For action token t, with t' the next action token
// of the same sequence:
//   next_value = values[t']  (or bootstrap[b] when t is the last action token; 0 when bootstrap is null)
//   delta_t    = rewards[t] + gamma * next_value - values[t]
//   A_t        = delta_t + gamma * lambda * A_{t'}       (A after the last action token is 0)
//   R_t        = A_t + values[t]
#pragma once
#include <cstdint>

#include "dispatch.h"

namespace talaria {

struct GaeArgs {
  const float* rewards;        // [N]
  const float* values;         // [N]
  const int32_t* cu_seqlens;   // [B+1]
  const uint8_t* action_mask;  // [N], nonzero = action; nullptr means every token is an action
  const float* bootstrap;      // [B], value after each sequence's last token; nullptr means 0 (terminal)
  int64_t num_tokens;          // N
  int64_t num_seqs;            // B
  int64_t max_seqlen;          // longest sequence, or 0 if unknown (CUDA picks its thread mapping by it)
  float gamma;                 // in [0, 1]
  float lambda;                // in [0, 1]
  float* advantages;           // [N] out
  float* returns;              // [N] out
};

// Masked whitening: out = (x - mean) / sqrt(var + eps), plus mean again when !shift_mean.
// mean and var are taken over the entries where mask != 0 (all entries when mask is null); var is the
// unbiased estimate when `unbiased` (0 when fewer than two entries count). Entries with mask == 0 get 0.
// The reduction is deterministic: fixed-size chunks, f64 partials, merged in chunk order, so the result
// does not depend on the thread count.
struct WhitenArgs {
  const float* x;        // [N]
  const uint8_t* mask;   // [N] or nullptr
  int64_t n;             // N
  bool shift_mean;       // false keeps the original mean (advantage whitening in some trainers)
  bool unbiased;         // Bessel's correction, as TRL and verl use
  float eps;             // added to the variance
  float* out;            // [N] out; may alias x
};

namespace cpu {
void gae_advantages(const GaeArgs& args);
void whiten(const WhitenArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
// `device` is the CUDA device index; the call returns once the results are in device memory.
void gae_advantages(int device, const GaeArgs& args);
void whiten(int device, const WhitenArgs& args);
}  // namespace cuda
#endif

inline void gae_advantages(Device device, const GaeArgs& args) {
  TALARIA_DISPATCH(device, gae_advantages, args);
}
inline void whiten(Device device, const WhitenArgs& args) { TALARIA_DISPATCH(device, whiten, args); }

}  // namespace talaria
