// Attention kernels: FlashAttention-2 style varlen forward (o and the row log-sum-exp) and backward. Device-agnostic
// entry points, plus the CPU (native/cpu/attention.cpp) and CUDA (native/cuda/attention.cu)
// implementations they dispatch to; the float64 oracle is test/reference/attention.ts.
//
// Layout (DESIGN.md): B sequences packed into N tokens. q [Nq, H, D], k and v [Nk, Hkv, D], with H a
// multiple of Hkv (GQA: query head h reads kv head h / (H / Hkv)). cu_seqlens_q i32[B+1] packs q and o;
// cu_seqlens_k i32[B+1] packs k and v (the same array for self-attention). Outputs o [Nq, H, D] and
// lse f32 [H, Nq].
//
// For query i of a sequence with Lq queries and Lk keys, with the causal mask bottom-right aligned
// (the last query sees every key, as FlashAttention's varlen API):
//   keys j allowed:  j <= i + (Lk - Lq)  when causal, else every j < Lk
//   s_j = scale * q_i . k_j,  lse_i = log sum_j exp(s_j),  o_i = sum_j exp(s_j - lse_i) v_j
// A query with no allowed key (Lk = 0, or i < Lq - Lk under the causal mask) gets o_i = 0 and
// lse_i = -inf, as FlashAttention does. Arguments are validated by the addon; kernels assume valid input.
//
// Backward, from dO and the forward's o and lse (P is recomputed, never stored):
//   delta_i = dO_i . o_i,  p_ij = exp(s_ij - lse_i),  dP_ij = dO_i . v_j,  dS_ij = p_ij (dP_ij - delta_i)
//   dv_j = sum_i p_ij dO_i,  dk_j = scale sum_i dS_ij q_i,  dq_i = scale sum_j dS_ij k_j
// with dk and dv of a kv head summed over the H / Hkv query heads that share it.
#pragma once
#include <cstdint>

#include "dispatch.h"

namespace talaria {

// Head dimensions the kernels are compiled for.
constexpr bool attention_head_dim_supported(int64_t d) { return d == 32 || d == 64 || d == 128; }

struct AttentionForwardArgs {
  const float* q;               // [Nq, H, D]
  const float* k;               // [Nk, Hkv, D]
  const float* v;               // [Nk, Hkv, D]
  const int32_t* cu_seqlens_q;  // [B+1], ends at Nq
  const int32_t* cu_seqlens_k;  // [B+1], ends at Nk (may be the same pointer as cu_seqlens_q)
  int64_t num_seqs;             // B
  int64_t total_q;              // Nq
  int64_t total_k;              // Nk
  int64_t max_seqlen_q;         // longest q sequence (sizes the CUDA grid)
  int heads;                    // H
  int kv_heads;                 // Hkv, divides H
  int head_dim;                 // D: 32, 64 or 128
  float scale;                  // softmax scale, usually 1/sqrt(D)
  bool causal;
  float* o;                     // [Nq, H, D] out
  float* lse;                   // [H, Nq] out
};

struct AttentionBackwardArgs {
  AttentionForwardArgs fwd;  // q, k, v, packing, sizes, scale and causal as in the forward; fwd.o and
                             // fwd.lse are the forward's outputs, read here
  const float* d_o;          // [Nq, H, D]
  float* dq;                 // [Nq, H, D] out
  float* dk;                 // [Nk, Hkv, D] out
  float* dv;                 // [Nk, Hkv, D] out
};

// Rotary position embedding (rotate-half, as GPT-NeoX and Llama), applied to q or k [N, H, D] before
// attention. Token t of a sequence sits at position p = t - cu_seqlens[b]; for i < D/2, with
// angle = p * theta^(-2i/D) computed in f64 and cos/sin rounded to f32:
//   y_i = x_i cos - x_{i+D/2} sin,  y_{i+D/2} = x_{i+D/2} cos + x_i sin.
// The backward is the inverse rotation (sin negated): dx = R^T dy. y may be x itself (in place).
struct RopeArgs {
  const float* x;             // [N, H, D]
  float* y;                   // [N, H, D] out, or x
  const int32_t* cu_seqlens;  // [B+1]
  int64_t num_seqs;           // B
  int64_t total;              // N
  int64_t max_seqlen;         // longest sequence (sizes the CPU's cos/sin table)
  int heads;                  // H
  int head_dim;               // D, even
  double theta;               // base, > 1
  bool inverse;               // true for the backward
};

namespace cpu {
void attention_forward(const AttentionForwardArgs& args);
void attention_backward(const AttentionBackwardArgs& args);
void rope(const RopeArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void attention_forward(int device, const AttentionForwardArgs& args);
void attention_backward(int device, const AttentionBackwardArgs& args);
void rope(int device, const RopeArgs& args);
}  // namespace cuda
#endif

inline void attention_forward(Device device, const AttentionForwardArgs& args) {
  TALARIA_DISPATCH(device, attention_forward, args);
}
inline void attention_backward(Device device, const AttentionBackwardArgs& args) {
  TALARIA_DISPATCH(device, attention_backward, args);
}
inline void rope(Device device, const RopeArgs& args) { TALARIA_DISPATCH(device, rope, args); }

}  // namespace talaria
