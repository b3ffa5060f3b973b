// Roofline probes: kernels whose only job is to measure what this machine can do, so the bench reports
// every other kernel as a fraction of it. STREAM triad: a[i] = b[i] + scalar * c[i].
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

namespace cpu {
void stream_triad(const StreamTriadArgs& args);
}

#ifdef TALARIA_WITH_CUDA
namespace cuda {
void stream_triad(int device, const StreamTriadArgs& args);
}
#endif

inline void stream_triad(Device device, const StreamTriadArgs& args) {
  TALARIA_DISPATCH(device, stream_triad, args);
}

}  // namespace talaria
