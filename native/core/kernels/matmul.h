// Matrix multiply (SGEMM): C = alpha * op(A) * op(B) + beta * C on f32 row-major matrices, where op(X) is X
// or its transpose. Device-agnostic entry point, plus the CPU (native/cpu/matmul.cpp) and CUDA
// (native/cuda/matmul.cu) implementations it dispatches to; the float64 oracle is test/reference/matmul.ts.
//
// Layout (DESIGN.md): op(A) is [M, K] and op(B) is [K, N]. A is stored [M, K] (or [K, M] when trans_a),
// B is stored [K, N] (or [N, K] when trans_b), C is [M, N]; all row-major and contiguous, so the leading
// dimensions follow from the shapes. The transformer's forward x W^T is NT; its backward needs NN and TN.
// C must not overlap A or B (the addon checks). beta = 0 never reads C (NaN there is ignored, as BLAS);
// alpha = 0 reads neither A nor B. The CUDA kernel takes M <= 4,194,240 (65,535 row tiles of 64).
//
// ---- Napkin math ----------------------------------------------------------------------------------
// 2 M N K FLOPs against 4 (MK + KN + MN) bytes: at M = N = K = 1024 that is 2.1 GFLOP on 12 MB, an
// arithmetic intensity of ~170 FLOP/byte, far right of this machine's ridge (220 GFLOP/s over 45 GB/s is
// ~5 FLOP/byte). So GEMM is compute-bound whenever it is blocked for the caches: the CPU kernel packs
// panels of B (KC x NC, L3) and A (MC x KC, L2) and runs a register-blocked microkernel (MR x NR
// accumulators) that does MR + NR/lanes loads per MR * NR/lanes FMAs. Skinny shapes (M = 1, a GEMV) are
// bandwidth-bound instead: 4 K N bytes of B for 2 K N FLOPs.
//
// ---- Determinism and precision ---------------------------------------------------------------------
// Each C element is accumulated by one thread in a fixed order: along K in blocks of KC, f32 FMAs in k
// order within a block, each block's sum scaled by alpha and added to C. The blocking never depends on
// the thread count, so results are bitwise identical for any TALARIA_NUM_THREADS. The f32 error is that
// of a length-K dot product, ~K * 2^-24 relative to sum |a||b| in the worst case. The CUDA kernel rounds
// A and B to bf16 (tensor cores) and accumulates in f32: error up to ~2^-7 relative per product.
#pragma once
#include <cstdint>

#include "dispatch.h"

namespace talaria {

struct MatmulArgs {
  const float* a;  // [M, K], or [K, M] when trans_a
  const float* b;  // [K, N], or [N, K] when trans_b
  float* c;        // [M, N]; read only when beta != 0
  int64_t m, n, k; // each >= 1
  bool trans_a, trans_b;
  float alpha, beta;  // finite
};

namespace cpu {
void matmul(const MatmulArgs& args);
}  // namespace cpu

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void matmul(int device, const MatmulArgs& args);
}  // namespace cuda
#endif

inline void matmul(Device device, const MatmulArgs& args) { TALARIA_DISPATCH(device, matmul, args); }

}  // namespace talaria
