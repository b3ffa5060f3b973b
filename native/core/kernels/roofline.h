// Roofline probes: kernels whose only job is to measure what this machine can do, so the bench reports
// every other kernel as a fraction of it. STREAM triad: a[i] = b[i] + scalar * c[i], the bandwidth roof.
// FMA peak: independent chains of f32 fused multiply-adds held in registers, the compute roof for
// matmul-like kernels (attention): no memory traffic, enough chains to hide the FMA latency.
#pragma once
#include <cstdint>

#include "dispatch.h"

namespace talaria {

struct StreamTriadArgs {
  float* a;
  const float* b;
  const float* c;
  float scalar;
  int64_t n;
};

struct FmaPeakArgs {
  float* out;          // [n]: one chain sum per worker (CPU task or CUDA thread), so nothing is dead code
  int64_t n;
  int64_t iterations;  // steps of every worker's chains
  float seed;          // chains start at seed, multiply by (1 - 2^-20) and add 2^-20 (stay finite)
  double flops;        // out: the FLOPs performed (2 per FMA lane)
};

namespace cpu {
void stream_triad(const StreamTriadArgs& args);
void fma_peak(FmaPeakArgs& args);
}

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void stream_triad(int device, const StreamTriadArgs& args);
void fma_peak(int device, FmaPeakArgs& args);
}
#endif

inline void stream_triad(Device device, const StreamTriadArgs& args) {
  TALARIA_DISPATCH(device, stream_triad, args);
}
inline void fma_peak(Device device, FmaPeakArgs& args) { TALARIA_DISPATCH(device, fma_peak, args); }

}  // namespace talaria
