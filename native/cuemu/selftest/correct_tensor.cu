// Tensor-core wrappers from native/cuda/ptx.cuh, checked against the layouts documented in
// native/cuemu/tensor_core.cpp (groupID g = lane / 4, t = lane % 4; the lower-indexed element in the
// low half of each 32-bit register):
//   A (16x16, row-major) a0: (g, 2t..2t+1)   a1: (g+8, 2t..)   a2: (g, 2t+8..)   a3: (g+8, 2t+8..)
//   B (16x8)             b0: (2t..2t+1, g)   b1: (2t+8..2t+9, g)
//   C, D (16x8, f32)     c0,c1: (g, 2t..2t+1)   c2,c3: (g+8, 2t..2t+1)
//   ldmatrix: lane l receives in register i row l/4, columns 2(l%4), 2(l%4)+1 of matrix i (whose rows
//   lanes 8i..8i+7 address); with .trans, those elements of the transpose.
// One warp per block; each block works on its own matrices. They must run clean everywhere.
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"
#include "selftest.cuh"

namespace {

using namespace talaria::cuda;

constexpr int kM = 16, kN = 8, kK = 16;

__device__ uint32_t pack(uint16_t lo, uint16_t hi) { return uint32_t{lo} | (uint32_t{hi} << 16); }

// D = A * B + C. A: [16][16] bf16 row-major; Bt: [8][16] bf16 (B transposed, k contiguous);
// C, D: [16][8] f32 row-major. Tiles reach shared memory by cp.async, fragments by ldmatrix.
__global__ void mma_via_ldmatrix(const uint16_t* a_all, const uint16_t* bt_all, const float* c_all, float* d_all) {
  TALARIA_DYNAMIC_SHARED(uint16_t, smem);
  uint16_t(*a)[kK] = reinterpret_cast<uint16_t(*)[kK]>(smem);           // 512 bytes
  uint16_t(*bt)[kK] = reinterpret_cast<uint16_t(*)[kK]>(smem + kM * kK);  // 256 bytes
  const int lane = static_cast<int>(threadIdx.x);
  const int blk = static_cast<int>(blockIdx.x);
  const uint16_t* a_src = a_all + blk * kM * kK;
  const uint16_t* bt_src = bt_all + blk * kN * kK;
  cp_async_16(&smem[lane * 8], a_src + lane * 8);  // 32 chunks of 8 bf16
  if (lane < 16) cp_async_16(&smem[kM * kK + lane * 8], bt_src + lane * 8);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  uint32_t a_frag[4], b_frag[2];
  ldmatrix_x4(a_frag, &a[(lane % 8) + 8 * ((lane / 8) % 2)][8 * (lane / 16)]);
  ldmatrix_x2(b_frag, &bt[lane % 8][8 * ((lane / 8) % 2)]);  // lanes 16..31: ignored, but valid

  const int g = lane / 4, t = lane % 4;
  const float* c = c_all + blk * kM * kN;
  const float c_frag[4] = {c[g * kN + 2 * t], c[g * kN + 2 * t + 1], c[(g + 8) * kN + 2 * t],
                           c[(g + 8) * kN + 2 * t + 1]};
  float d_frag[4];
  mma_m16n8k16_bf16(d_frag, a_frag, b_frag, c_frag);
  float* d = d_all + blk * kM * kN;
  d[g * kN + 2 * t] = d_frag[0];
  d[g * kN + 2 * t + 1] = d_frag[1];
  d[(g + 8) * kN + 2 * t] = d_frag[2];
  d[(g + 8) * kN + 2 * t + 1] = d_frag[3];
}

// D = A * B + C with K = 32 as two k-steps accumulating in place (d aliases c). A: [16][32] bf16
// row-major, B: [32][8] bf16 row-major; fragments read straight from global memory per the table.
constexpr int kK2 = 32;
__global__ void mma_direct(const uint16_t* a_all, const uint16_t* b_all, const float* c_all, float* d_all) {
  const int lane = static_cast<int>(threadIdx.x), blk = static_cast<int>(blockIdx.x);
  const int g = lane / 4, t = lane % 4;
  const uint16_t* a = a_all + blk * kM * kK2;
  const uint16_t* b = b_all + blk * kK2 * kN;
  const float* c = c_all + blk * kM * kN;
  float acc[4] = {c[g * kN + 2 * t], c[g * kN + 2 * t + 1], c[(g + 8) * kN + 2 * t], c[(g + 8) * kN + 2 * t + 1]};
  for (int k0 = 0; k0 < kK2; k0 += kK) {
    const uint32_t a_frag[4] = {
        pack(a[g * kK2 + k0 + 2 * t], a[g * kK2 + k0 + 2 * t + 1]),
        pack(a[(g + 8) * kK2 + k0 + 2 * t], a[(g + 8) * kK2 + k0 + 2 * t + 1]),
        pack(a[g * kK2 + k0 + 2 * t + 8], a[g * kK2 + k0 + 2 * t + 9]),
        pack(a[(g + 8) * kK2 + k0 + 2 * t + 8], a[(g + 8) * kK2 + k0 + 2 * t + 9]),
    };
    const uint32_t b_frag[2] = {
        pack(b[(k0 + 2 * t) * kN + g], b[(k0 + 2 * t + 1) * kN + g]),
        pack(b[(k0 + 2 * t + 8) * kN + g], b[(k0 + 2 * t + 9) * kN + g]),
    };
    mma_m16n8k16_bf16(acc, a_frag, b_frag, acc);
  }
  float* d = d_all + blk * kM * kN;
  d[g * kN + 2 * t] = acc[0];
  d[g * kN + 2 * t + 1] = acc[1];
  d[(g + 8) * kN + 2 * t] = acc[2];
  d[(g + 8) * kN + 2 * t + 1] = acc[3];
}

// 32 rows of 8 b16 values; matrix i's row r is stored at row slot_of[8i + r], so each lane's address
// matters. Writes every lane's registers for x1, x2, x4, each plain and .trans: out[variant][lane][4].
template <int kMatrices, bool kTranspose>
__device__ void load_variant(const uint16_t (*rows)[8], const int* slot_of, uint32_t* out, int variant) {
  const int lane = static_cast<int>(threadIdx.x);
  uint32_t regs[4] = {0, 0, 0, 0};
  const uint16_t* row = rows[slot_of[lane % (8 * kMatrices)]];  // lanes past the used ones repeat
  if constexpr (kMatrices == 1) ldmatrix_x1<kTranspose>(regs, row);
  if constexpr (kMatrices == 2) ldmatrix_x2<kTranspose>(regs, row);
  if constexpr (kMatrices == 4) ldmatrix_x4<kTranspose>(regs, row);
  for (int i = 0; i < 4; ++i) out[(variant * 32 + lane) * 4 + i] = regs[i];
}

__global__ void ldmatrix_variants(const uint16_t* values, const int* slot_of, uint32_t* out) {
  __shared__ __align__(16) uint16_t rows[32][8];
  const int lane = static_cast<int>(threadIdx.x);
  for (int c = 0; c < 8; ++c) rows[lane][c] = values[lane * 8 + c];
  __syncwarp();
  load_variant<1, false>(rows, slot_of, out, 0);
  load_variant<2, false>(rows, slot_of, out, 1);
  load_variant<4, false>(rows, slot_of, out, 2);
  load_variant<1, true>(rows, slot_of, out, 3);
  load_variant<2, true>(rows, slot_of, out, 4);
  load_variant<4, true>(rows, slot_of, out, 5);
}

std::vector<uint16_t> random_bf16(selftest::Rng& rng, size_t n) {
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = selftest::bf16_bits((rng.next() & 1) != 0 ? rng.uniform(0.25f, 2.0f) : -rng.uniform(0.25f, 2.0f));
  return v;
}

}  // namespace

SELFTEST_CASE(mma_ldmatrix) {
  constexpr int kBlocks = 2;
  selftest::Rng rng(601);
  const std::vector<uint16_t> a = random_bf16(rng, kBlocks * kM * kK), bt = random_bf16(rng, kBlocks * kN * kK);
  const std::vector<float> c = rng.floats(kBlocks * kM * kN);
  std::vector<float> d(c.size());
  selftest::DeviceArena arena;
  uint16_t *d_a, *d_bt;
  float *d_c, *d_d;
  SELFTEST_CUDA(arena.upload(&d_a, a));
  SELFTEST_CUDA(arena.upload(&d_bt, bt));
  SELFTEST_CUDA(arena.upload(&d_c, c));
  SELFTEST_CUDA(arena.alloc(&d_d, d.size()));
  TALARIA_LAUNCH(kBlocks, 32, (kM + kN) * kK * sizeof(uint16_t), 0, mma_via_ldmatrix)(d_a, d_bt, d_c, d_d);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(d, d_d));
  std::vector<double> want(d.size());
  for (int b = 0; b < kBlocks; ++b)
    for (int m = 0; m < kM; ++m)
      for (int n = 0; n < kN; ++n) {
        double acc = c[(b * kM + m) * kN + n];
        for (int k = 0; k < kK; ++k)
          acc += static_cast<double>(selftest::bf16_value(a[(b * kM + m) * kK + k])) *
                 selftest::bf16_value(bt[(b * kN + n) * kK + k]);
        want[(b * kM + m) * kN + n] = acc;
      }
  return selftest::expect_near("D", d, want, 1e-3, 1e-3);
}

SELFTEST_CASE(mma_direct_fragments) {
  constexpr int kBlocks = 2;
  selftest::Rng rng(602);
  const std::vector<uint16_t> a = random_bf16(rng, kBlocks * kM * kK2), b = random_bf16(rng, kBlocks * kK2 * kN);
  const std::vector<float> c = rng.floats(kBlocks * kM * kN);
  std::vector<float> d(c.size());
  selftest::DeviceArena arena;
  uint16_t *d_a, *d_b;
  float *d_c, *d_d;
  SELFTEST_CUDA(arena.upload(&d_a, a));
  SELFTEST_CUDA(arena.upload(&d_b, b));
  SELFTEST_CUDA(arena.upload(&d_c, c));
  SELFTEST_CUDA(arena.alloc(&d_d, d.size()));
  TALARIA_LAUNCH(kBlocks, 32, 0, 0, mma_direct)(d_a, d_b, d_c, d_d);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(d, d_d));
  std::vector<double> want(d.size());
  for (int blk = 0; blk < kBlocks; ++blk)
    for (int m = 0; m < kM; ++m)
      for (int n = 0; n < kN; ++n) {
        double acc = c[(blk * kM + m) * kN + n];
        for (int k = 0; k < kK2; ++k)
          acc += static_cast<double>(selftest::bf16_value(a[(blk * kM + m) * kK2 + k])) *
                 selftest::bf16_value(b[(blk * kK2 + k) * kN + n]);
        want[(blk * kM + m) * kN + n] = acc;
      }
  return selftest::expect_near("D", d, want, 1e-3, 1e-3);
}

SELFTEST_CASE(ldmatrix_trans) {
  constexpr int kVariants = 6;
  selftest::Rng rng(603);
  std::vector<uint16_t> values(32 * 8);
  for (uint16_t& v : values) v = static_cast<uint16_t>(rng.next());
  std::vector<int> slot_of(32);  // a fixed permutation of the 32 row slots
  for (int r = 0; r < 32; ++r) slot_of[r] = (r * 13 + 7) % 32;
  std::vector<uint32_t> out(kVariants * 32 * 4);
  selftest::DeviceArena arena;
  uint16_t* d_values;
  int* d_slot_of;
  uint32_t* d_out;
  SELFTEST_CUDA(arena.upload(&d_values, values));
  SELFTEST_CUDA(arena.upload(&d_slot_of, slot_of));
  SELFTEST_CUDA(arena.alloc(&d_out, out.size()));
  TALARIA_LAUNCH(1, 32, 0, 0, ldmatrix_variants)(d_values, d_slot_of, d_out);
  SELFTEST_CHECK_LAUNCH();
  SELFTEST_CUDA(selftest::download(out, d_out));

  const int matrices[kVariants] = {1, 2, 4, 1, 2, 4};
  std::vector<uint32_t> want(out.size(), 0);
  for (int v = 0; v < kVariants; ++v) {
    const bool trans = v >= 3;
    // element (row, col) of matrix i, as the lanes addressed it
    auto at = [&](int i, int row, int col) { return values[slot_of[8 * i + row] * 8 + col]; };
    for (int lane = 0; lane < 32; ++lane) {
      const int r = lane / 4, c = 2 * (lane % 4);
      for (int i = 0; i < matrices[v]; ++i) {
        const uint16_t lo = trans ? at(i, c, r) : at(i, r, c);
        const uint16_t hi = trans ? at(i, c + 1, r) : at(i, r, c + 1);
        want[(v * 32 + lane) * 4 + i] = uint32_t{lo} | (uint32_t{hi} << 16);
      }
    }
  }
  return selftest::expect_equal("ldmatrix registers [x1, x2, x4, x1.trans, x2.trans, x4.trans][lane][reg]", out,
                                want);
}
