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
  int64_t max_seqlen_q;         // longest q sequence (sizes the CUDA grids)
  int64_t max_seqlen_k;         // longest k sequence
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
// attention. Token t of sequence b sits at position p = position_offsets[b] + t - cu_seqlens[b] (offset 0
// when position_offsets is null); for i < D/2, with
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
  // [B] or nullptr (then 0): token t of sequence b sits at position position_offsets[b] + t - cu_seqlens[b]
  // (a decode step's or a prefill chunk's tokens continue a cached sequence). The addon has checked each
  // offset >= 0 and offset + seqlen <= 2^31 - 1. Host memory for the CPU, device memory for CUDA.
  const int32_t* position_offsets;
};

// KV cache for decoding: cache_k and cache_v [B, Lmax, Hkv, D]; sequence b holds cache_seqlens[b] tokens
// at rows [0, cache_seqlens[b]) of its [Lmax, Hkv, D] slab.
// Append (prefill, or the decode step's new token): the new k and v [N, Hkv, D], packed by cu_seqlens
// [B+1], go to rows [cache_seqlens[b], cache_seqlens[b] + len_b), and cache_seqlens[b] grows by len_b
// (the addon has checked that it stays <= Lmax).
struct KvCacheAppendArgs {
  float* cache_k;
  float* cache_v;
  int32_t* cache_seqlens;     // [B], updated in place
  const float* k;             // [N, Hkv, D]
  const float* v;
  const int32_t* cu_seqlens;  // [B+1]
  int64_t batch, max_len, total;
  int kv_heads, head_dim;
};

// Decode: one query per sequence, q [B, H, D], against its cached keys (the token's own k and v already
// appended): o [B, H, D] and lse f32 [H, B], exactly attention over those keys (no mask needed: every
// cached key precedes or is the query). A sequence with no cached key gets o = 0, lse = -inf.
struct AttentionDecodeArgs {
  const float* q;
  const float* cache_k;
  const float* cache_v;
  const int32_t* cache_seqlens;  // [B]
  int64_t batch, max_len;
  int64_t max_seqlen;            // the longest cached sequence (sizes the CUDA split)
  int heads, kv_heads, head_dim;
  float scale;
  float* o;
  float* lse;
};

namespace cpu {
void kv_cache_append(const KvCacheAppendArgs& args);
void attention_decode(const AttentionDecodeArgs& args);
void attention_forward(const AttentionForwardArgs& args);
void attention_backward(const AttentionBackwardArgs& args);
void rope(const RopeArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void attention_forward(int device, const AttentionForwardArgs& args);
void attention_backward(int device, const AttentionBackwardArgs& args);
void rope(int device, const RopeArgs& args);
void kv_cache_append(int device, const KvCacheAppendArgs& args);
void attention_decode(int device, const AttentionDecodeArgs& args);
}  // namespace cuda
#endif

inline void attention_forward(Device device, const AttentionForwardArgs& args) {
  TALARIA_DISPATCH(device, attention_forward, args);
}
inline void attention_backward(Device device, const AttentionBackwardArgs& args) {
  TALARIA_DISPATCH(device, attention_backward, args);
}
inline void rope(Device device, const RopeArgs& args) { TALARIA_DISPATCH(device, rope, args); }
inline void kv_cache_append(Device device, const KvCacheAppendArgs& args) {
  TALARIA_DISPATCH(device, kv_cache_append, args);
}
inline void attention_decode(Device device, const AttentionDecodeArgs& args) {
  TALARIA_DISPATCH(device, attention_decode, args);
}

}  // namespace talaria
