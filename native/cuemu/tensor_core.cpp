// Tensor-core instructions as warp collectives: mma.sync.m16n8k16 (bf16 x bf16 + f32 -> f32) and
// ldmatrix (.m8n8, b16, x1/x2/x4, optionally .trans). The last lane to arrive rebuilds the whole
// matrices from the 32 lanes' fragments and hands each lane its part of the result.
//
// The fragment layouts are those of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating
// point type" and "Warp-level matrix load instruction: ldmatrix"). They have not been checked on a
// GPU. With groupID g = lane / 4 and t = lane % 4, and the lower half of each 32-bit register holding
// the lower-indexed element:
//   A (16x16, row-major) a0: (g, 2t..2t+1)   a1: (g+8, 2t..2t+1)   a2: (g, 2t+8..2t+9)   a3: (g+8, 2t+8..2t+9)
//   B (16x8, "col")      b0: (2t..2t+1, g)   b1: (2t+8..2t+9, g)
//   C, D (16x8, f32)     c0,c1: (g, 2t..2t+1)   c2,c3: (g+8, 2t..2t+1)
//   ldmatrix: lanes 8i..8i+7 give the row addresses of matrix i; lane l receives, in register i, row
//   l/4, columns 2(l%4) and 2(l%4)+1 of matrix i (with .trans: that element of the transpose).
#include <cstring>

#include "internal.h"

namespace cuemu {
namespace {

float bf16_to_float(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}
uint16_t low_half(uint32_t r) { return static_cast<uint16_t>(r & 0xffffu); }
uint16_t high_half(uint32_t r) { return static_cast<uint16_t>(r >> 16); }

struct MmaFragments {
  const uint32_t* a;  // 4 registers
  const uint32_t* b;  // 2 registers
  const float* c;     // 4 values
};

const char* combine_mma(WarpExchange& x) {
  if (x.participants != 0xffffffffu) return "mma.sync needs all 32 lanes of the warp";
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaFragments& f = *static_cast<const MmaFragments*>(x.lane[lane].in);
    const int g = lane / 4, t = lane % 4;
    const int rows[4] = {g, g + 8, g, g + 8};
    const int cols[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
    for (int r = 0; r < 4; ++r) {
      A[rows[r]][cols[r]] = bf16_to_float(low_half(f.a[r]));
      A[rows[r]][cols[r] + 1] = bf16_to_float(high_half(f.a[r]));
    }
    for (int r = 0; r < 2; ++r) {
      B[2 * t + 8 * r][g] = bf16_to_float(low_half(f.b[r]));
      B[2 * t + 8 * r + 1][g] = bf16_to_float(high_half(f.b[r]));
    }
    C[g][2 * t] = f.c[0];
    C[g][2 * t + 1] = f.c[1];
    C[g + 8][2 * t] = f.c[2];
    C[g + 8][2 * t + 1] = f.c[3];
  }
  for (int lane = 0; lane < 32; ++lane) {
    float* d = static_cast<float*>(x.lane[lane].out);
    const int g = lane / 4, t = lane % 4;
    const int rows[4] = {g, g, g + 8, g + 8};
    const int cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int i = 0; i < 4; ++i) {
      // Products of two bf16 values are exact in f32; the sum runs in k order with f32 rounding.
      float acc = C[rows[i]][cols[i]];
      for (int k = 0; k < 16; ++k) acc = std::fma(A[rows[i]][k], B[k][cols[i]], acc);
      d[i] = acc;
    }
  }
  return nullptr;
}

template <int kMatrices, bool kTranspose>
const char* combine_ldmatrix(WarpExchange& x) {
  if (x.participants != 0xffffffffu) return "ldmatrix needs all 32 lanes of the warp";
  uint16_t m[kMatrices][8][8];
  for (int i = 0; i < kMatrices; ++i)
    for (int row = 0; row < 8; ++row) {
      const void* address = *static_cast<const void* const*>(x.lane[8 * i + row].in);
      if (reinterpret_cast<uintptr_t>(address) % 16 != 0) return "ldmatrix row addresses must be 16-byte aligned";
      std::memcpy(m[i][row], address, 16);
    }
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t* regs = static_cast<uint32_t*>(x.lane[lane].out);
    const int r = lane / 4, c = 2 * (lane % 4);
    for (int i = 0; i < kMatrices; ++i) {
      const uint16_t lo = kTranspose ? m[i][c][r] : m[i][r][c];
      const uint16_t hi = kTranspose ? m[i][c + 1][r] : m[i][r][c + 1];
      regs[i] = uint32_t{lo} | (uint32_t{hi} << 16);
    }
  }
  return nullptr;
}

template <int kMatrices, bool kTranspose>
const CollectiveOp& ldmatrix_op() {
  static const CollectiveOp op{kTranspose ? "ldmatrix.trans" : "ldmatrix", &combine_ldmatrix<kMatrices, kTranspose>,
                               32, 4 * kMatrices};
  return op;
}

}  // namespace

void mma_m16n8k16_bf16_f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], Site site) {
  static const CollectiveOp op{"mma.sync.m16n8k16.bf16", &combine_mma, 32, 40};
  const MmaFragments in{a, b, c};
  float out[4];
  warp_collective(op, 0xffffffffu, &in, out, 0, site);
  std::memcpy(d, out, sizeof out);  // d may alias c
}

void ldmatrix_b16(uint32_t* regs, int num_matrices, bool transpose, const void* row_address, Site site) {
  const CollectiveOp* op = nullptr;
  switch (num_matrices * 2 + (transpose ? 1 : 0)) {
    case 2: op = &ldmatrix_op<1, false>(); break;
    case 3: op = &ldmatrix_op<1, true>(); break;
    case 4: op = &ldmatrix_op<2, false>(); break;
    case 5: op = &ldmatrix_op<2, true>(); break;
    case 8: op = &ldmatrix_op<4, false>(); break;
    case 9: op = &ldmatrix_op<4, true>(); break;
    default: std::abort();  // ptx.cuh only instantiates x1, x2 and x4
  }
  uint32_t out[4];
  warp_collective(*op, 0xffffffffu, &row_address, out, 0, site);
  std::memcpy(regs, out, sizeof(uint32_t) * static_cast<size_t>(num_matrices));
}

}  // namespace cuemu
