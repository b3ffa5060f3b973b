// The SGEMM microkernel on explicit lanes (lanes.h): one kMr x kNr tile of C from packed panels, kNr = 2
// lane vectors wide. No include guard: matmul.cpp includes it once per SIMD target, inside that target's
// namespace (which defines kLanes and kMr) and TALARIA_BEGIN_TARGET region. It defines kMicroKernel.
//
// Registers: kMr * 2 accumulators + 2 B vectors + 1 broadcast A. AVX-512: 12 x 32 (24 + 3 of 32 zmm);
// AVX2: 6 x 16 (12 + 3 of 16 ymm); baseline SSE2: 4 x 8. Per k step: 2 vector loads of B and kMr
// broadcasts of A for 2 kMr FMAs, so loads never limit the two FMA ports.

#include "lanes.h"

constexpr int kVecs = 2;  // lane vectors across a tile
constexpr int kNr = kVecs * kLanes;

// C[i][j] for the first K block (update.first): alpha acc + beta C, C unread when beta = 0; later blocks
// add alpha acc to C. One formula for the vector and the edge path.
TALARIA_SIMD_INLINE Lanes update_lanes(Lanes acc, const float* c, const TileUpdate& up) {
  const Lanes scaled = splat(up.alpha) * acc;
  if (!up.first) return load_lanes(c) + scaled;
  return up.beta == 0.0f ? scaled : scaled + splat(up.beta) * load_lanes(c);
}

// A tile: pa is kc x kMr (k-major), pb kc x kNr (k-major); C gets the top-left rows x cols of the tile.
static void micro_tile(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows,
                       int64_t cols, const TileUpdate& up) {
  Lanes acc[kMr][kVecs] = {};
  for (int64_t p = 0; p < kc; p++) {
    Lanes b[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; v++) b[v] = load_lanes(pb + p * kNr + v * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < kMr; i++) {
      const Lanes ai = splat(pa[p * kMr + i]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; v++) acc[i][v] += ai * b[v];
    }
  }
  if (rows == kMr && cols == kNr) {
#pragma GCC unroll 16
    for (int i = 0; i < kMr; i++)
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; v++) {
        float* cp = c + i * ldc + v * kLanes;
        store_lanes(cp, update_lanes(acc[i][v], cp, up));
      }
    return;
  }
  // Edge tile: the same update through a full-width copy of the rows that exist.
  for (int64_t i = 0; i < rows; i++)
    for (int v = 0; v < kVecs; v++) {
      float row[kLanes] = {};
      const int64_t n = std::min<int64_t>(kLanes, cols - v * kLanes);
      if (n <= 0) break;
      float* cp = c + i * ldc + v * kLanes;
      for (int64_t j = 0; j < n; j++) row[j] = cp[j];
      store_lanes(row, update_lanes(acc[i][v], row, up));
      for (int64_t j = 0; j < n; j++) cp[j] = row[j];
    }
}

constexpr MicroKernel kMicroKernel = {kMr, kNr, micro_tile};
