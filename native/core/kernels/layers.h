// Building blocks of a Llama-style decoder layer: RMSNorm (forward and backward), SwiGLU (forward and
// backward), the token embedding (row gather, and its scatter-add backward) and axpby (y <- alpha x + beta y,
// for residual adds and gradient accumulation). Device-agnostic entry points, plus the CPU
// (native/cpu/layers.cpp) and CUDA (native/cuda/layers.cu) implementations they dispatch to; the float64
// oracle is test/reference/layers.ts. Tensors are f32 row-major [rows, cols]; ids are i32.
//
// ---- RMSNorm (HF LlamaRMSNorm) ---------------------------------------------------------------------------
//   rstd_r = 1 / sqrt(mean_j x_rj^2 + eps)      (the sum of squares in f64, rstd rounded to f32 once)
//   y_rj   = (x_rj rstd_r) w_j
// Backward, with g = dy w:  dx_rj = rstd_r (g_rj - x_rj rstd_r^2 mean_j(g_rj x_rj))   (the mean in f64)
//                           dw_j   = sum_r dy_rj (x_rj rstd_r)   (or added to the caller's dw)
// The dw sum is deterministic and independent of the thread count: rows go in fixed blocks of
// kRmsnormRowBlock, each block sums its rows in row order in f64, and the block sums are added in block
// order (on both backends, the same way: CPU and CUDA give the same bits for dw).
// Napkin math at N = 2048, d = 1024: forward reads x (8 MB) and writes y (8 MB); backward reads x and dy
// and writes dx (24 MB, plus the small f64 partials). Both are bandwidth-bound (~1 FLOP per byte).
//
// ---- SwiGLU ------------------------------------------------------------------------------------------------
//   gate_up [N, 2F] holds gate in columns [0, F) and up in [F, 2F) (one GEMM yields both);
//   h = silu(gate) up, silu(g) = g sigmoid(g), with sigmoid from e^-|g| (which cannot overflow): no NaN
//   for finite g; silu -> 0 for g -> -inf (0 once e^-|g| underflows, below about -87) and -> g for g -> +inf.
//   Backward: d gate = dh up s (1 + g (1 - s)), d up = dh silu(g), s = sigmoid(g).
//   12 B per output element forward (read 8, write 4), 20 B backward: bandwidth-bound.
//
// ---- Embedding ---------------------------------------------------------------------------------------------
//   out[t] = table[ids[t]]; backward adds dOut[t] into dTable[ids[t]] in token order for every row of dTable
//   (CPU: threads own column ranges and walk the tokens in order; CUDA: tokens grouped by id on the host,
//   one block per id adding its tokens in order), so the sums are bitwise the same on every backend and
//   thread count. The binding checks every id is in [0, V) before either runs.
//
// ---- axpby -------------------------------------------------------------------------------------------------
//   y <- alpha x + beta y over n elements; beta = 0 writes alpha x without reading y (BLAS's convention:
//   NaN in an uninitialised y does not leak). x may be y itself.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"  // TALARIA_HOST_DEVICE

namespace talaria {

constexpr int64_t kRmsnormRowBlock = 64;  // rows per f64 partial of rmsnorm's dWeight

struct RmsnormArgs {
  const float* x;       // [rows, dim]
  const float* weight;  // [dim]
  float* y;             // [rows, dim]
  float* rstd;          // [rows]
  int64_t rows, dim;
  float eps;
};

struct RmsnormBackwardArgs {
  const float* x;       // [rows, dim]
  const float* weight;  // [dim]
  const float* rstd;    // [rows], from the forward
  const float* dy;      // [rows, dim]
  float* dx;            // [rows, dim]: overwritten, or added to when accumulate_dx
  float* d_weight;      // [dim]: overwritten, or added to when accumulate_d_weight
  int64_t rows, dim;
  bool accumulate_dx;
  bool accumulate_d_weight;
};

struct SwigluArgs {
  const float* gate_up;  // [rows, 2 hidden]
  float* h;              // [rows, hidden]
  int64_t rows, hidden;
};

struct SwigluBackwardArgs {
  const float* gate_up;  // [rows, 2 hidden]
  const float* dh;       // [rows, hidden]
  float* d_gate_up;      // [rows, 2 hidden]
  int64_t rows, hidden;
};

struct EmbeddingArgs {
  const int32_t* ids;  // [rows], each in [0, vocab) (checked by the caller)
  const float* table;  // [vocab, dim]
  float* out;          // [rows, dim]
  int64_t rows, vocab, dim;
};

struct EmbeddingBackwardArgs {
  const int32_t* ids;  // [rows], each in [0, vocab) (checked by the caller)
  const float* d_out;  // [rows, dim]
  float* d_table;      // [vocab, dim], added to
  int64_t rows, vocab, dim;
};

struct AxpbyArgs {
  const float* x;  // [n]
  float* y;        // [n], updated in place; may be x
  int64_t n;
  float alpha, beta;
};

// ---- Per-element math both backends share --------------------------------------------------------------------

// 1 / sqrt(sum_sq / dim + eps), in f64, rounded to f32 once.
TALARIA_HOST_DEVICE float rmsnorm_rstd(double sum_sq, int64_t dim, float eps) {
  return static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps)));
}

// sigmoid(g) from e = e^-|g| in (0, 1] (each backend brings its own exponential, which never overflows
// here): 1 / (1 + e) for g >= 0, e / (1 + e) below.
TALARIA_HOST_DEVICE float sigmoid_from_exp(float g, float exp_neg_abs_g) {
  const float r = 1.0f / (1.0f + exp_neg_abs_g);
  return g >= 0.0f ? r : exp_neg_abs_g * r;
}

TALARIA_HOST_DEVICE float swiglu_element(float gate, float up, float exp_neg_abs_gate) {
  return gate * sigmoid_from_exp(gate, exp_neg_abs_gate) * up;
}

// d gate and d up of h = silu(gate) up.
TALARIA_HOST_DEVICE void swiglu_backward_element(float gate, float up, float dh, float exp_neg_abs_gate, float& d_gate,
                                                 float& d_up) {
  const float s = sigmoid_from_exp(gate, exp_neg_abs_gate);
  d_up = dh * (gate * s);
  d_gate = dh * up * (s * (1.0f + gate * (1.0f - s)));
}

// The finished dWeight element from the f64 sum of its block partials.
TALARIA_HOST_DEVICE float rmsnorm_d_weight(float old, double total, bool accumulate) {
  return static_cast<float>(accumulate ? static_cast<double>(old) + total : total);
}

// dx's row coefficient c = rstd^2 mean(g x), from the f64 dot, rounded once; then dx = rstd (g - c x).
// Factored this way every f32 intermediate stays near the data's scale (c ~ |g| / |x|): the unfactored
// rstd^3 mean(g x) would underflow f32 for rows of magnitude ~1e13 and beyond.
TALARIA_HOST_DEVICE float rmsnorm_dx_coef(float rstd, double dot, int64_t dim) {
  const double r = rstd;
  return static_cast<float>(r * r * dot / static_cast<double>(dim));
}
TALARIA_HOST_DEVICE float rmsnorm_dx_element(float rstd, float g, float x, float coef) { return rstd * (g - coef * x); }

TALARIA_HOST_DEVICE float axpby_element(float x, float y, float alpha, float beta) {
  return beta == 0.0f ? alpha * x : alpha * x + beta * y;
}

namespace cpu {
void rmsnorm(const RmsnormArgs& args);
void rmsnorm_backward(const RmsnormBackwardArgs& args);
void swiglu(const SwigluArgs& args);
void swiglu_backward(const SwigluBackwardArgs& args);
void embedding(const EmbeddingArgs& args);
void embedding_backward(const EmbeddingBackwardArgs& args);
void axpby(const AxpbyArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void rmsnorm(int device, const RmsnormArgs& args);
void rmsnorm_backward(int device, const RmsnormBackwardArgs& args);
void swiglu(int device, const SwigluArgs& args);
void swiglu_backward(int device, const SwigluBackwardArgs& args);
void embedding(int device, const EmbeddingArgs& args);
void embedding_backward(int device, const EmbeddingBackwardArgs& args);
void axpby(int device, const AxpbyArgs& args);
}  // namespace cuda
#endif

inline void rmsnorm(Device device, const RmsnormArgs& args) { TALARIA_DISPATCH(device, rmsnorm, args); }
inline void rmsnorm_backward(Device device, const RmsnormBackwardArgs& args) {
  TALARIA_DISPATCH(device, rmsnorm_backward, args);
}
inline void swiglu(Device device, const SwigluArgs& args) { TALARIA_DISPATCH(device, swiglu, args); }
inline void swiglu_backward(Device device, const SwigluBackwardArgs& args) {
  TALARIA_DISPATCH(device, swiglu_backward, args);
}
inline void embedding(Device device, const EmbeddingArgs& args) { TALARIA_DISPATCH(device, embedding, args); }
inline void embedding_backward(Device device, const EmbeddingBackwardArgs& args) {
  TALARIA_DISPATCH(device, embedding_backward, args);
}
inline void axpby(Device device, const AxpbyArgs& args) { TALARIA_DISPATCH(device, axpby, args); }

}  // namespace talaria
