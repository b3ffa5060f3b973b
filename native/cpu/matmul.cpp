// CPU SGEMM (kernels/matmul.h), Goto/BLIS style. For each NC-column panel of C and each KC-deep slice of
// K: pack B's KC x NC block into kNr-wide k-major panels (shared by all threads, ~2 MB: L3), then each
// task packs an MC x KC block of A into kMr-tall panels (~192 KB: L2) and sweeps the microkernel
// (matmul_lanes.h) over its tiles, with the kMr x KC sliver of A in L1.
//
// Napkin math at M = N = K = 1024, AVX-512 (12 x 32 tiles): 2.1 GFLOP; each k step of a tile is 24 FMAs
// (768 FLOPs) on 2 loads + 12 broadcasts. Packing moves each of A once per NC panel and B once, ~8 MB,
// < 5% of the time at 45 GB/s. The two FMA ports bound it: 2 cores x 2 ports x 32 FLOPs x clock. Measured
// (bench/matmul.bench.ts): 373 GFLOP/s at 1024^3 on a quiet run, ~215 on a busy one, against the OpenBLAS
// anchor of ~220 (notes/anchors.md, another run).
//
// Threads: tasks are (MC row block, column chunk of the NC panel) pairs, claimed dynamically. Each C
// element belongs to one tile whose K order is fixed by the blocking, which does not depend on the thread
// count: results are bitwise identical for any TALARIA_NUM_THREADS (they do depend on the SIMD level,
// through kMr, and on FMA contraction).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/kernels/matmul.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "vec_math.h"  // lanes.h's exp_lanes

namespace talaria {
namespace cpu {
namespace {

// How a tile's accumulators reach C (see update_lanes).
struct TileUpdate {
  float alpha, beta;
  bool first;  // first K block: C = alpha acc + beta C; otherwise C += alpha acc
};

using TileFn = void (*)(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows,
                        int64_t cols, const TileUpdate& up);
struct MicroKernel {
  int mr, nr;
  TileFn tile;
};

#if TALARIA_HAVE_X86_VARIANTS
TALARIA_BEGIN_TARGET(TALARIA_ISA_AVX512)
namespace avx512 {
constexpr int kLanes = 16;
constexpr int kMr = 12;
#include "matmul_lanes.h"
}  // namespace avx512
TALARIA_END_TARGET

TALARIA_BEGIN_TARGET(TALARIA_ISA_AVX2)
namespace avx2 {
constexpr int kLanes = 8;
constexpr int kMr = 6;
#include "matmul_lanes.h"
}  // namespace avx2
TALARIA_END_TARGET
#endif

namespace baseline {
constexpr int kLanes = 4;
constexpr int kMr = 4;
#include "matmul_lanes.h"
}  // namespace baseline

const MicroKernel& micro_kernel() {
#if TALARIA_HAVE_X86_VARIANTS
  switch (simd_level()) {
    case SimdLevel::AVX512: return avx512::kMicroKernel;
    case SimdLevel::AVX2: return avx2::kMicroKernel;
    default: break;
  }
#endif
  return baseline::kMicroKernel;
}

// Cache blocking (independent of the thread count, so of the summation order's dependence on it).
constexpr int64_t kKc = 256;   // K slice: a kMr x KC sliver of A (12 KB) stays in L1
constexpr int64_t kMc = 192;   // rows of A per task, rounded down to kMr: MC x KC = 192 KB in L2
constexpr int64_t kNc = 2048;  // columns of B per packed panel: KC x NC = 2 MB
constexpr double kSerialFlops = 1 << 20;  // below this, one thread (see matmul())

// op(A)[i][p] and op(B)[p][j] in the stored layouts.
struct Operands {
  const MatmulArgs& args;
  int64_t lda() const { return args.trans_a ? args.m : args.k; }
  int64_t ldb() const { return args.trans_b ? args.k : args.n; }
};

// Packs op(A)[i0 : i0 + rows, p0 : p0 + kc] into kMr-tall k-major panels, zero-padding the last panel.
void pack_a(const Operands& op, int mr, int64_t i0, int64_t rows, int64_t p0, int64_t kc, float* dst) {
  const MatmulArgs& a = op.args;
  const int64_t lda = op.lda();
  for (int64_t ib = 0; ib < rows; ib += mr, dst += kc * mr) {
    const int64_t h = std::min<int64_t>(mr, rows - ib);
    if (h < mr) std::fill(dst, dst + kc * mr, 0.0f);
    if (a.trans_a) {  // stored [K, M]: rows of op(A) are contiguous along i
      for (int64_t p = 0; p < kc; p++) {
        const float* src = a.a + (p0 + p) * lda + i0 + ib;
        for (int64_t i = 0; i < h; i++) dst[p * mr + i] = src[i];
      }
    } else {  // stored [M, K]
      for (int64_t i = 0; i < h; i++) {
        const float* src = a.a + (i0 + ib + i) * lda + p0;
        for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
      }
    }
  }
}

// Packs op(B)[p0 : p0 + kc, j0 + panel * nr ...] panels [first, last) into kNr-wide k-major panels.
void pack_b(const Operands& op, int nr, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t first,
            int64_t last, float* dst) {
  const MatmulArgs& a = op.args;
  const int64_t ldb = op.ldb();
  for (int64_t jp = first; jp < last; jp++) {
    float* panel = dst + jp * kc * nr;
    const int64_t jb = jp * nr, w = std::min<int64_t>(nr, cols - jb);
    if (w < nr) std::fill(panel, panel + kc * nr, 0.0f);
    if (a.trans_b) {  // stored [N, K]
      for (int64_t j = 0; j < w; j++) {
        const float* src = a.b + (j0 + jb + j) * ldb + p0;
        for (int64_t p = 0; p < kc; p++) panel[p * nr + j] = src[p];
      }
    } else {  // stored [K, N]: a panel row is contiguous
      for (int64_t p = 0; p < kc; p++) std::memcpy(panel + p * nr, a.b + (p0 + p) * ldb + j0 + jb, w * sizeof(float));
    }
  }
}

// alpha = 0: C = beta C (C unread when beta = 0), A and B unread, as BLAS.
void scale_c(const MatmulArgs& a) {
  parallel_for(0, a.m, std::max<int64_t>(1, 65536 / a.n), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float* row = a.c + i * a.n;
      for (int64_t j = 0; j < a.n; j++) row[j] = a.beta == 0.0f ? 0.0f : a.beta * row[j];
    }
  });
}

}  // namespace

void matmul(const MatmulArgs& args) {
  if (args.m <= 0 || args.n <= 0) return;
  if (args.alpha == 0.0f || args.k <= 0) return scale_c(args);
  const MicroKernel& mk = micro_kernel();
  const Operands op{args};
  const int64_t mc = std::max<int64_t>(mk.mr, kMc / mk.mr * mk.mr);
  const int64_t row_blocks = (args.m + mc - 1) / mc;
  // The caller's own grow-only buffer, never zero-filled: a fresh 2 MB vector per call cost ~40 us, more
  // than a whole decode-step GEMM. Workers only read it during this call.
  thread_local std::unique_ptr<float[]> packed_b_storage;
  thread_local size_t packed_b_capacity = 0;
  const size_t packed_b_size =
      static_cast<size_t>(std::min(kKc, args.k) * ((std::min(kNc, args.n) + mk.nr - 1) / mk.nr) * mk.nr);
  if (packed_b_capacity < packed_b_size) {
    packed_b_storage.reset(new float[packed_b_size]);
    packed_b_capacity = packed_b_size;
  }
  float* const packed_b = packed_b_storage.get();
  // Below ~1 MFLOP, waking a worker (~7 us here) costs more than it saves: one range, on this thread.
  const bool serial = 2.0 * static_cast<double>(args.m) * static_cast<double>(args.n) * static_cast<double>(args.k) < kSerialFlops;

  for (int64_t j0 = 0; j0 < args.n; j0 += kNc) {
    const int64_t cols = std::min(kNc, args.n - j0);
    const int64_t panels = (cols + mk.nr - 1) / mk.nr;
    // Enough tasks for every thread even when M is small: split the panel's columns into chunks.
    const int64_t chunks = std::min<int64_t>(panels, std::max<int64_t>(1, (4 * num_threads() + row_blocks - 1) / row_blocks));
    const int64_t per_chunk = (panels + chunks - 1) / chunks;
    for (int64_t p0 = 0; p0 < args.k; p0 += kKc) {
      const int64_t kc = std::min(kKc, args.k - p0);
      parallel_for(0, panels, serial ? panels : 4, [&](int64_t lo, int64_t hi) {
        pack_b(op, mk.nr, p0, kc, j0, cols, lo, hi, packed_b);
      });
      const TileUpdate up{args.alpha, args.beta, p0 == 0};
      parallel_for(0, row_blocks * chunks, serial ? row_blocks * chunks : 1, [&](int64_t lo, int64_t hi) {
        thread_local std::vector<float> packed_a;
        packed_a.resize(static_cast<size_t>(mc * kKc));
        for (int64_t task = lo; task < hi; task++) {
          const int64_t i0 = task / chunks * mc, rows = std::min(mc, args.m - i0);
          const int64_t first = task % chunks * per_chunk, last = std::min(panels, first + per_chunk);
          pack_a(op, mk.mr, i0, rows, p0, kc, packed_a.data());
          for (int64_t jp = first; jp < last; jp++)
            for (int64_t ib = 0; ib < rows; ib += mk.mr)
              mk.tile(kc, packed_a.data() + ib * kc, packed_b + jp * kc * mk.nr,
                      args.c + (i0 + ib) * args.n + j0 + jp * mk.nr, args.n, std::min<int64_t>(mk.mr, rows - ib),
                      std::min<int64_t>(mk.nr, cols - jp * mk.nr), up);
        }
      });
    }
  }
}

}  // namespace cpu
}  // namespace talaria
