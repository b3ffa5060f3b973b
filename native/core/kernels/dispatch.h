// Routes a device-agnostic kernel call to its CPU or CUDA implementation. Used only by the kernel family
// headers in this folder, so the choice of backend lives in one place.
#pragma once
#include "../device.h"
#include "../error.h"

#ifdef TALARIA_WITH_CUDA
#define TALARIA_DISPATCH(device, fn, ...)                              \
  do {                                                                 \
    if ((device).is_cpu()) {                                           \
      ::talaria::cpu::fn(__VA_ARGS__);                                 \
    } else {                                                           \
      ::talaria::cuda::fn((device).index, __VA_ARGS__);                \
    }                                                                  \
  } while (0)
#else
#define TALARIA_DISPATCH(device, fn, ...)                                                 \
  do {                                                                                    \
    if (!(device).is_cpu())                                                               \
      throw ::talaria::Error(::talaria::ErrorCode::Device,                                \
                             std::string(#fn) + ": this build has no CUDA backend");      \
    ::talaria::cpu::fn(__VA_ARGS__);                                                      \
  } while (0)
#endif
