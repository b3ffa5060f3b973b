// cuemu: runs CUDA kernels on the CPU, for tests. This header is force-included when a .cu file is
// compiled as C++ for the emulator:
//
//   g++ -x c++ -D__CUEMU__ -include native/cuemu/cuemu.h file.cu
//
// It supplies what nvcc would: the execution-space keywords, the built-in variables, the device
// intrinsics (barriers, warp collectives, atomics, math) and the launch machinery behind the project's
// TALARIA_LAUNCH / TALARIA_DYNAMIC_SHARED macros (native/cuda/launch.cuh) and PTX wrappers
// (native/cuda/ptx.cuh). The toolkit's own cuda_runtime.h, cuda_fp16.h and cuda_bf16.h compile as host
// headers and provide dim3, the error enum, the API declarations and host half/bf16 arithmetic. The
// API itself is implemented by native/cuemu/runtime.cpp, so host code links unchanged.
//
// Each CUDA thread runs as a fiber. A fiber runs until it reaches a barrier, a warp collective or its
// end; see scheduler.cpp for the order and the checks. Static __shared__ variables are thread_local:
// one worker OS thread runs one block at a time, so that storage is per block. `__CUDA_ARCH__` stays
// undefined. See ../shared/notes/cuda-emulation.md for the design notes this follows.
#pragma once

#if defined(__CUDACC__)
#error "cuemu.h is for g++ builds of .cu files; nvcc compiles them for the GPU directly"
#endif
#ifndef __CUEMU__
#define __CUEMU__ 1
#endif

// Must precede cuda_runtime.h: crt/host_defines.h only defines __shared__ when it is not yet defined.
// Block-scope thread_local is implicitly static, which is what `__shared__ float tile[256];` means.
#define __shared__ thread_local
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define __launch_bounds__(...)

// cuda_runtime.h declares its kernel-pointer overloads only for nvcc; host code calls them with a
// kernel, so the emulator supplies the one Talaria's host code needs.
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- built-in variables ---------------------------------------------------------------------------
// Variables, not macros: a macro named warpSize would also rewrite cudaDeviceProp::warpSize.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace cuemu {

// ---- runtime entry points used by the inline intrinsics below (scheduler.cpp, tensor_core.cpp) ----

struct Site {
  const char* file;
  int line;
};

// One lane's part in a warp collective: what it contributes and where its result goes.
struct LaneSlot {
  const void* in;
  void* out;
  int arg;  // source lane, delta or xor mask for shuffles
};

// All lanes' slots, handed to a combine function once every participant has arrived. `participants`
// = mask ∩ lanes that exist ∩ lanes that have not exited (the PTX rule). A combine returns nullptr,
// or a message that describes undefined behaviour (the launch then fails with that message).
struct WarpExchange {
  unsigned participants;
  int width;
  LaneSlot lane[32];
};
using CombineFn = const char* (*)(WarpExchange&);

// What kind of collective a lane is in. Lanes with the same mask must agree on all of it.
struct CollectiveOp {
  const char* name;  // e.g. "__shfl_down_sync"
  CombineFn combine;
  int width;
  int value_bytes;
};

void warp_collective(const CollectiveOp& op, unsigned mask, const void* in, void* out, int arg, Site site);
// count_out: number of threads with pred != 0 (for __syncthreads_count/_and/_or); may be null.
void block_barrier(int pred, int* count_out, Site site);
void* dynamic_shared_memory();

// Tensor-core and async-copy emulation behind native/cuda/ptx.cuh.
void mma_m16n8k16_bf16_f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], Site site);
void ldmatrix_b16(uint32_t* regs, int num_matrices, bool transpose, const void* row_address, Site site);
void cp_async(void* shared_dst, const void* global_src, int bytes, Site site);
void cp_async_commit();
void cp_async_wait(int newest_groups_left_pending);

// ---- launches ---------------------------------------------------------------------------------------

struct LaunchSite {
  const char* kernel;  // the kernel expression as written, e.g. "gae_tile_maps_kernel"
  const char* file;
  int line;
};
using KernelThunk = void (*)(const void* payload);

// Runs the whole grid before it returns (emulated launches are synchronous). A bad configuration sets
// the last error, as cudaLaunchKernel would. A fault inside the kernel becomes a sticky
// cudaErrorLaunchFailure that every later API call returns, with the report on stderr.
void launch(const void* kernel_id, KernelThunk thunk, const void* payload, dim3 grid, dim3 block,
            size_t dynamic_smem_bytes, cudaStream_t stream, const LaunchSite& site);

template <typename... Params>
class Launcher {
 public:
  using Kernel = void (*)(Params...);
  Launcher(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, LaunchSite site, Kernel kernel)
      : grid_(grid), block_(block), smem_(smem), stream_(stream), site_(site), kernel_(kernel) {}

  // Converting the arguments into the parameter types here checks their number and types at compile
  // time, as nvcc does for a triple-chevron launch.
  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel launched with the wrong number of arguments");
    const Payload payload{kernel_, Arguments(std::forward<Args>(args)...)};
    launch(reinterpret_cast<const void*>(kernel_), &run_one_thread, &payload, grid_, block_, smem_, stream_,
           site_);
  }

 private:
  using Arguments = std::tuple<std::decay_t<Params>...>;
  struct Payload {
    Kernel kernel;
    Arguments args;
  };
  // Every CUDA thread gets its own copy of the arguments, as every GPU thread reads its own.
  static void run_one_thread(const void* payload) {
    const Payload& p = *static_cast<const Payload*>(payload);
    Arguments own = p.args;
    std::apply(p.kernel, own);
  }

  dim3 grid_, block_;
  size_t smem_;
  cudaStream_t stream_;
  LaunchSite site_;
  Kernel kernel_;
};

template <typename... Params>
Launcher<Params...> make_launcher(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, LaunchSite site,
                                  void (*kernel)(Params...)) {
  return Launcher<Params...>(grid, block, smem, stream, site, kernel);
}

// ---- warp-collective combine functions ---------------------------------------------------------

namespace detail {

inline bool lane_in(unsigned set, int lane) { return (set >> lane) & 1u; }

// Shuffles: every lane copies value_bytes from its source lane. Sources outside the segment give the
// lane its own value (CUDA's rule); a source inside it that is not participating is undefined.
enum class ShuffleMode { Index, Up, Down, Xor };
template <ShuffleMode kMode, int kBytes>
const char* combine_shuffle(WarpExchange& x) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!lane_in(x.participants, lane)) continue;
    const int seg_lo = lane & ~(x.width - 1);
    const int seg_hi = seg_lo + x.width;
    const int arg = x.lane[lane].arg;
    int src = lane;
    switch (kMode) {
      case ShuffleMode::Index: src = seg_lo + (arg & (x.width - 1)); break;
      case ShuffleMode::Up: src = lane - arg >= seg_lo ? lane - arg : lane; break;
      case ShuffleMode::Down: src = lane + arg < seg_hi ? lane + arg : lane; break;
      case ShuffleMode::Xor: src = (lane ^ (arg & 31)) < seg_hi ? lane ^ (arg & 31) : lane; break;
    }
    if (!lane_in(x.participants, src)) return "a lane reads its value from a lane that is not in the shuffle";
    std::memcpy(x.lane[lane].out, x.lane[src].in, kBytes);
  }
  return nullptr;
}

enum class VoteMode { Ballot, Any, All };
template <VoteMode kMode>
const char* combine_vote(WarpExchange& x) {
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane)
    if (lane_in(x.participants, lane) && *static_cast<const int*>(x.lane[lane].in) != 0) ballot |= 1u << lane;
  unsigned result = ballot;
  if (kMode == VoteMode::Any) result = ballot != 0;
  if (kMode == VoteMode::All) result = ballot == x.participants;
  for (int lane = 0; lane < 32; ++lane)
    if (lane_in(x.participants, lane)) *static_cast<unsigned*>(x.lane[lane].out) = result;
  return nullptr;
}

enum class ReduceMode { Add, Min, Max, And, Or, Xor };
template <ReduceMode kMode, typename T>
const char* combine_reduce(WarpExchange& x) {
  bool first = true;
  T acc{};
  for (int lane = 0; lane < 32; ++lane) {
    if (!lane_in(x.participants, lane)) continue;
    const T v = *static_cast<const T*>(x.lane[lane].in);
    if (first) {
      acc = v;
      first = false;
      continue;
    }
    switch (kMode) {
      case ReduceMode::Add: acc = static_cast<T>(acc + v); break;
      case ReduceMode::Min: acc = v < acc ? v : acc; break;
      case ReduceMode::Max: acc = v > acc ? v : acc; break;
      case ReduceMode::And: acc = acc & v; break;
      case ReduceMode::Or: acc = acc | v; break;
      case ReduceMode::Xor: acc = acc ^ v; break;
    }
  }
  for (int lane = 0; lane < 32; ++lane)
    if (lane_in(x.participants, lane)) *static_cast<T*>(x.lane[lane].out) = acc;
  return nullptr;
}

// __match_any_sync: each lane gets the set of participating lanes holding the same bits.
template <int kBytes>
const char* combine_match_any(WarpExchange& x) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!lane_in(x.participants, lane)) continue;
    unsigned same = 0;
    for (int other = 0; other < 32; ++other)
      if (lane_in(x.participants, other) && std::memcmp(x.lane[lane].in, x.lane[other].in, kBytes) == 0)
        same |= 1u << other;
    *static_cast<unsigned*>(x.lane[lane].out) = same;
  }
  return nullptr;
}

inline const char* combine_nothing(WarpExchange&) { return nullptr; }

template <typename T>
constexpr void check_shuffle_type() {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "warp shuffles take 2-, 4- or 8-byte values, as in CUDA");
}

inline bool valid_width(int width) { return width >= 1 && width <= 32 && (width & (width - 1)) == 0; }

template <ShuffleMode kMode, typename T>
T shuffle(const char* name, unsigned mask, T var, int arg, int width, Site site) {
  check_shuffle_type<T>();
  // An invalid width is undefined in CUDA; treat it as 32 would hide the bug, so make it the
  // mismatch-reporting width 0 and let the engine reject it.
  const CollectiveOp op{name, &combine_shuffle<kMode, sizeof(T)>, valid_width(width) ? width : 0,
                        static_cast<int>(sizeof(T))};
  T out;
  warp_collective(op, mask, &var, &out, arg, site);
  return out;
}

template <VoteMode kMode>
unsigned vote(const char* name, unsigned mask, int pred, Site site) {
  const CollectiveOp op{name, &combine_vote<kMode>, 32, 4};
  const int p = pred != 0;
  unsigned out;
  warp_collective(op, mask, &p, &out, 0, site);
  return out;
}

template <ReduceMode kMode, typename T>
T reduce(const char* name, unsigned mask, T value, Site site) {
  const CollectiveOp op{name, &combine_reduce<kMode, T>, 32, static_cast<int>(sizeof(T))};
  T out;
  warp_collective(op, mask, &value, &out, 0, site);
  return out;
}

}  // namespace detail
}  // namespace cuemu

// Every intrinsic that can block records its call site through these default arguments, so reports
// name the line in the .cu file.
#define CUEMU_SITE_PARAMS const char *cuemu_file = __builtin_FILE(), int cuemu_line = __builtin_LINE()
#define CUEMU_SITE ::cuemu::Site{cuemu_file, cuemu_line}

// ---- barriers and fences -----------------------------------------------------------------------------
inline void __syncthreads(CUEMU_SITE_PARAMS) { cuemu::block_barrier(0, nullptr, CUEMU_SITE); }
inline int __syncthreads_count(int pred, CUEMU_SITE_PARAMS) {
  int count = 0;
  cuemu::block_barrier(pred, &count, CUEMU_SITE);
  return count;
}
inline int __syncthreads_and(int pred, CUEMU_SITE_PARAMS) {
  int count = 0;
  cuemu::block_barrier(pred, &count, CUEMU_SITE);
  return count == static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int pred, CUEMU_SITE_PARAMS) {
  int count = 0;
  cuemu::block_barrier(pred, &count, CUEMU_SITE);
  return count != 0;
}
// Within a block the emulator is sequentially consistent; across blocks these order a worker's
// stores like the GPU's fences do.
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline void __syncwarp(unsigned mask = 0xffffffffu, CUEMU_SITE_PARAMS) {
  static const cuemu::CollectiveOp op{"__syncwarp", &cuemu::detail::combine_nothing, 32, 0};
  cuemu::warp_collective(op, mask, nullptr, nullptr, 0, CUEMU_SITE);
}

// ---- warp collectives ---------------------------------------------------------------------------------
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, CUEMU_SITE_PARAMS) {
  return cuemu::detail::shuffle<cuemu::detail::ShuffleMode::Index>("__shfl_sync", mask, var, src_lane, width,
                                                                   CUEMU_SITE);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE_PARAMS) {
  return cuemu::detail::shuffle<cuemu::detail::ShuffleMode::Up>("__shfl_up_sync", mask, var,
                                                                static_cast<int>(delta), width, CUEMU_SITE);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE_PARAMS) {
  return cuemu::detail::shuffle<cuemu::detail::ShuffleMode::Down>("__shfl_down_sync", mask, var,
                                                                  static_cast<int>(delta), width, CUEMU_SITE);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, CUEMU_SITE_PARAMS) {
  return cuemu::detail::shuffle<cuemu::detail::ShuffleMode::Xor>("__shfl_xor_sync", mask, var, lane_mask, width,
                                                                 CUEMU_SITE);
}

inline unsigned __ballot_sync(unsigned mask, int pred, CUEMU_SITE_PARAMS) {
  return cuemu::detail::vote<cuemu::detail::VoteMode::Ballot>("__ballot_sync", mask, pred, CUEMU_SITE);
}
inline int __any_sync(unsigned mask, int pred, CUEMU_SITE_PARAMS) {
  return static_cast<int>(cuemu::detail::vote<cuemu::detail::VoteMode::Any>("__any_sync", mask, pred, CUEMU_SITE));
}
inline int __all_sync(unsigned mask, int pred, CUEMU_SITE_PARAMS) {
  return static_cast<int>(cuemu::detail::vote<cuemu::detail::VoteMode::All>("__all_sync", mask, pred, CUEMU_SITE));
}

#define CUEMU_REDUCE(name, mode, T)                                                              \
  inline T name(unsigned mask, T value, CUEMU_SITE_PARAMS) {                                     \
    return cuemu::detail::reduce<cuemu::detail::ReduceMode::mode, T>(#name, mask, value, CUEMU_SITE); \
  }
CUEMU_REDUCE(__reduce_add_sync, Add, unsigned)
CUEMU_REDUCE(__reduce_add_sync, Add, int)
CUEMU_REDUCE(__reduce_min_sync, Min, unsigned)
CUEMU_REDUCE(__reduce_min_sync, Min, int)
CUEMU_REDUCE(__reduce_max_sync, Max, unsigned)
CUEMU_REDUCE(__reduce_max_sync, Max, int)
CUEMU_REDUCE(__reduce_and_sync, And, unsigned)
CUEMU_REDUCE(__reduce_or_sync, Or, unsigned)
CUEMU_REDUCE(__reduce_xor_sync, Xor, unsigned)
#undef CUEMU_REDUCE

template <typename T>
unsigned __match_any_sync(unsigned mask, T value, CUEMU_SITE_PARAMS) {
  cuemu::detail::check_shuffle_type<T>();
  static const cuemu::CollectiveOp op{"__match_any_sync", &cuemu::detail::combine_match_any<sizeof(T)>, 32,
                                      static_cast<int>(sizeof(T))};
  unsigned out;
  cuemu::warp_collective(op, mask, &value, &out, 0, CUEMU_SITE);
  return out;
}

// ---- atomics: real atomics, because blocks run on several OS threads --------------------------------
namespace cuemu {
namespace detail {
template <typename T>
T atomic_fetch(T* p, T v, int op) {
  switch (op) {
    case 0: return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    case 1: return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
    case 2: return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
    case 3: return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
    default: return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED);
  }
}
// Read-modify-write for operations the builtins lack (float add, min, max, inc, dec).
template <typename T, typename F>
T atomic_update(T* p, F next) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, next(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename F>
float atomic_update_float(float* p, F next) {
  uint32_t* bits = reinterpret_cast<uint32_t*>(p);
  return __builtin_bit_cast(float, atomic_update(bits, [&](uint32_t old) {
    return __builtin_bit_cast(uint32_t, next(__builtin_bit_cast(float, old)));
  }));
}
template <typename F>
double atomic_update_double(double* p, F next) {
  uint64_t* bits = reinterpret_cast<uint64_t*>(p);
  return __builtin_bit_cast(double, atomic_update(bits, [&](uint64_t old) {
    return __builtin_bit_cast(uint64_t, next(__builtin_bit_cast(double, old)));
  }));
}
}  // namespace detail
}  // namespace cuemu

#define CUEMU_ATOMIC_INT(name, op)                                                                            \
  inline int name(int* p, int v) { return cuemu::detail::atomic_fetch(p, v, op); }                           \
  inline unsigned name(unsigned* p, unsigned v) { return cuemu::detail::atomic_fetch(p, v, op); }             \
  inline unsigned long long name(unsigned long long* p, unsigned long long v) {                               \
    return cuemu::detail::atomic_fetch(p, v, op);                                                             \
  }
CUEMU_ATOMIC_INT(atomicAdd, 0)
CUEMU_ATOMIC_INT(atomicSub, 1)
CUEMU_ATOMIC_INT(atomicAnd, 2)
CUEMU_ATOMIC_INT(atomicOr, 3)
CUEMU_ATOMIC_INT(atomicXor, 4)
#undef CUEMU_ATOMIC_INT
inline float atomicAdd(float* p, float v) {
  return cuemu::detail::atomic_update_float(p, [v](float old) { return old + v; });
}
inline double atomicAdd(double* p, double v) {
  return cuemu::detail::atomic_update_double(p, [v](double old) { return old + v; });
}
#define CUEMU_ATOMIC_MINMAX(T)                                                                        \
  inline T atomicMin(T* p, T v) { return cuemu::detail::atomic_update(p, [v](T o) { return v < o ? v : o; }); } \
  inline T atomicMax(T* p, T v) { return cuemu::detail::atomic_update(p, [v](T o) { return v > o ? v : o; }); }
CUEMU_ATOMIC_MINMAX(int)
CUEMU_ATOMIC_MINMAX(unsigned)
CUEMU_ATOMIC_MINMAX(long long)
CUEMU_ATOMIC_MINMAX(unsigned long long)
#undef CUEMU_ATOMIC_MINMAX
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return cuemu::detail::atomic_update(p, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  return cuemu::detail::atomic_update(p, [limit](unsigned o) { return o == 0 || o > limit ? limit : o - 1; });
}
template <typename T>
T atomicExch(T* p, T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomicExch takes 4- or 8-byte values");
  return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
inline float atomicExch(float* p, float v) {
  return __builtin_bit_cast(float, __atomic_exchange_n(reinterpret_cast<uint32_t*>(p),
                                                       __builtin_bit_cast(uint32_t, v), __ATOMIC_RELAXED));
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  static_assert(std::is_integral<T>::value, "atomicCAS takes integers");
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value, whether or not the swap happened
}

// ---- math and bit intrinsics -------------------------------------------------------------------------
// The fast-math intrinsics map to libm, which is more accurate than the GPU: compare with tolerances.
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __saturatef(float x) { return x > 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN -> 0
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
inline unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
inline float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
inline float __uint_as_float(unsigned x) { return __builtin_bit_cast(float, x); }
inline long long __double_as_longlong(double x) { return __builtin_bit_cast(long long, x); }
inline double __longlong_as_double(long long x) { return __builtin_bit_cast(double, x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((uint64_t{a} * b) >> 32); }
inline int __mulhi(int a, int b) { return static_cast<int>((int64_t{a} * b) >> 32); }
inline int __mul24(int a, int b) { return a * b; }
template <typename T>
T __ldg(const T* p) {
  return *p;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ---- the project's launch macros (native/cuda/launch.cuh forwards to these) --------------------------
#define CUEMU_LAUNCH(grid, block, smem_bytes, stream, ...)                                              \
  ::cuemu::make_launcher(dim3(grid), dim3(block), static_cast<size_t>(smem_bytes), (stream),           \
                         ::cuemu::LaunchSite{#__VA_ARGS__, __FILE__, __LINE__}, __VA_ARGS__)
#define CUEMU_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::cuemu::dynamic_shared_memory())
