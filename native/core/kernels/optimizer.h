// Optimizer kernels: fused AdamW (in place over params, m and v) and the global gradient norm with
// optional clipping (in place over the gradients). Device-agnostic entry points, plus the CPU
// (native/cpu/optimizer.cpp) and CUDA (native/cuda/optimizer.cu) implementations they dispatch to; the
// float64 oracle is test/reference/optimizer.ts. Buffers are flat f32 [N] on one device (a model keeps
// its parameters, gradients and moments in flat buffers, as llm.c does).
//
// ---- AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW, bias-corrected) ------------------------
// Per element, at step t >= 1:
//   p <- p (1 - lr wd)                                    decoupled weight decay
//   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc1 = 1 - b1^t, bc2 = 1 - b2^t
// The host computes 1 - lr wd, lr / bc1 and 1 / sqrt(bc2) in f64 and rounds each to f32 once; both
// backends run adamw_element below. Napkin math: read p, g, m, v and write p, m, v: 28 B and ~12 FLOPs per
// element, so it is bandwidth-bound: 124M parameters (GPT-2 small) move 3.5 GB, ~77 ms at 45 GB/s.
//
// ---- Global norm and clipping ------------------------------------------------------------------------
// norm = sqrt(sum g^2), summed in f64 over fixed chunks of kNormChunk elements, the chunks' sums added in
// chunk order: bitwise the same for any thread count (CUDA: one block per chunk, a fixed tree inside).
// With max_norm > 0, when norm > max_norm the gradients are scaled by max_norm / (norm + 1e-6) (f32),
// PyTorch's clip_grad_norm_. A non-finite norm leaves the gradients unchanged (the caller should skip
// the step). Read 4 B (+ read and write 8 B when clipping) per element: bandwidth-bound.
#pragma once
#include <cmath>
#include <cstdint>

#include "dispatch.h"
#include "rl_math.h"  // TALARIA_HOST_DEVICE

namespace talaria {

struct AdamwArgs {
  float* params;        // [n], updated in place
  const float* grads;   // [n]
  float* m;             // [n], first moment, updated in place
  float* v;             // [n], second moment, updated in place
  int64_t n;
  float beta1, beta2, eps;
  float decay;          // 1 - lr wd
  float step_size;      // lr / (1 - beta1^t)
  float inv_sqrt_bc2;   // 1 / sqrt(1 - beta2^t)
};

TALARIA_HOST_DEVICE void adamw_element(float& p, float g, float& m, float& v, const AdamwArgs& a) {
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * (g * g);
  p = p * a.decay - a.step_size * m / (sqrtf(v) * a.inv_sqrt_bc2 + a.eps);
}

constexpr int64_t kNormChunk = 16384;  // elements per f64 partial sum of squares

struct GradNormArgs {
  float* grads;       // [n]; scaled in place when clipped
  int64_t n;
  float max_norm;     // > 0 clips; 0 only measures
  double* norm;       // host out: the norm before clipping
  float* scale;       // host out: the factor applied (1 when not clipped)
};

// The clipping factor for a measured norm (shared by both backends).
inline float clip_scale(double norm, float max_norm) {
  if (!(max_norm > 0.0f) || !std::isfinite(norm) || norm <= max_norm) return 1.0f;
  return static_cast<float>(max_norm / (norm + 1e-6));
}

namespace cpu {
void adamw(const AdamwArgs& args);
void grad_norm(const GradNormArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void adamw(int device, const AdamwArgs& args);
void grad_norm(int device, const GradNormArgs& args);
}  // namespace cuda
#endif

inline void adamw(Device device, const AdamwArgs& args) { TALARIA_DISPATCH(device, adamw, args); }
inline void grad_norm(Device device, const GradNormArgs& args) { TALARIA_DISPATCH(device, grad_norm, args); }

}  // namespace talaria
