// The emulator's cudart: the subset of the CUDA runtime API that Talaria's host code uses, with the
// toolkit's exact extern "C" signatures (so an API call the emulator lacks is a link error), plus
// launches and the pool of worker threads that runs blocks.
//
// One emulated device, 0, with sm_80's limits. Device memory is host memory from malloc: ASan sees
// overruns and LeakSanitizer sees leaked cudaMallocs. The allocation table stores addresses bitwise
// inverted, so it does not keep leaked blocks reachable in LeakSanitizer's eyes. Copies check that the
// device side lies inside one live allocation. Everything is synchronous; streams and events exist
// so host code runs unchanged.
//
// Errors follow cudart: a bad call returns an error and sets the last error (cleared by
// cudaGetLastError); a fault inside a kernel is sticky: every later call returns
// cudaErrorLaunchFailure until cudaDeviceReset. cudaGetErrorString adds the emulator's report to the
// standard text, so the message that reaches the user names the file, line and CUDA thread.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {
namespace detail {
namespace {

constexpr size_t kDefaultDynamicSmem = 48 * 1024;
constexpr size_t kOptinDynamicSmem = 163 * 1024;  // sm_80's cudaDevAttrMaxSharedMemoryPerBlockOptin

// ---- error state ---------------------------------------------------------------------------------------

std::mutex g_state_mutex;  // guards everything below and the allocation table
cudaError_t g_sticky = cudaSuccess;
thread_local cudaError_t t_last = cudaSuccess;
std::list<std::string> g_details;  // never shrinks: cudaGetErrorString hands out c_str() pointers
std::map<int, const char*> g_detail_for;  // latest detail per error code

cudaError_t record(cudaError_t err, const std::string& detail = "") {
  if (err == cudaSuccess) return err;
  t_last = err;
  if (!detail.empty()) {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    g_details.push_back(detail);
    g_detail_for[static_cast<int>(err)] = g_details.back().c_str();
  }
  return err;
}

cudaError_t sticky() {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  return g_sticky;
}

// ---- device memory --------------------------------------------------------------------------------------

std::map<uintptr_t, size_t> g_allocations;  // key: ~base (see the file comment); value: size
size_t g_allocated_bytes = 0;

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{1} << 34;
}

// True when [p, p + bytes) lies inside one live allocation. Caller holds g_state_mutex.
bool is_device_range(const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.lower_bound(~a);  // smallest ~base >= ~a: the largest base <= a
  if (it == g_allocations.end()) return false;
  const uintptr_t base = ~it->first;
  return a - base <= it->second && bytes <= it->second - (a - base);
}

// ---- launch configuration ---------------------------------------------------------------------------

std::map<const void*, int> g_max_dynamic_smem;  // per kernel, from cudaFuncSetAttribute
std::set<const void*> g_streams, g_events_set;
std::map<const void*, std::chrono::steady_clock::time_point> g_event_times;

// ---- workers --------------------------------------------------------------------------------------------

void run_blocks(Launch& launch) {
  for (;;) {
    if (launch.failed.load()) return;
    const uint64_t b = launch.next_block.fetch_add(1);
    if (b >= launch.num_blocks) return;
    run_block(launch, b);
  }
}

// Helper OS threads. The launching thread runs blocks too. Handing a launch over and collecting it go
// through the mutex, which ThreadSanitizer sees, so host writes before a launch happen before the
// kernel and the kernel's writes happen before the host continues.
class WorkerPool {
 public:
  void run(Launch& launch, int helpers) {
    while (static_cast<int>(threads_.size()) < helpers) {
      threads_.emplace_back([this, index = static_cast<int>(threads_.size())] { helper_loop(index); });
      threads_.back().detach();  // the pool lives until exit
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      launch_ = &launch;
      active_ = helpers;
      finished_ = 0;
      ++generation_;
    }
    work_.notify_all();
    run_blocks(launch);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return finished_ == active_; });
    launch_ = nullptr;
  }

 private:
  void helper_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      Launch* launch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= active_) continue;
        launch = launch_;
      }
      run_blocks(*launch);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++finished_;
      }
      done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable work_, done_;
  Launch* launch_ = nullptr;
  int active_ = 0, finished_ = 0;
  uint64_t generation_ = 0;
};

std::mutex g_launch_mutex;  // one launch at a time, like the default stream
uint64_t g_launch_serial = 0;

// ---- fault reporting -------------------------------------------------------------------------------

#if !defined(__SANITIZE_ADDRESS__) && !defined(CUEMU_TSAN)
struct sigaction g_previous_segv, g_previous_bus;

void fault_reporter(int sig, siginfo_t* info, void* context) {
  const std::string who = current_thread_description();
  if (!who.empty()) {
    // Not async-signal-safe, but the process is about to die and this is the one clue that matters.
    std::fprintf(stderr, "cuemu: %s at address %p in %s%s\n", sig == SIGSEGV ? "segmentation fault" : "bus error",
                 info->si_addr, who.c_str(),
                 current_fiber_guard_hit(info->si_addr) ? " (stack overflow: raise CUEMU_STACK_KB)" : "");
  }
  // Hand the signal to whoever had it before (Node, for instance), or die with the default action.
  const struct sigaction& previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // returning re-runs the faulting instruction, which now kills the process
}
#endif

#if defined(__SANITIZE_ADDRESS__)
void sanitizer_death_note() {
  const std::string who = current_thread_description();
  if (!who.empty()) std::fprintf(stderr, "cuemu: the report above happened in %s\n", who.c_str());
}
#endif

// Fault reports need a stack that is not the overflowing fiber's.
void ensure_alternate_signal_stack() {
  thread_local bool done = false;
  if (done) return;
  done = true;
  stack_t current;
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return;  // someone set one
  stack_t alt;
  alt.ss_size = 64 * 1024;
  alt.ss_sp = std::malloc(alt.ss_size);  // lives as long as the thread
  alt.ss_flags = 0;
  sigaltstack(&alt, nullptr);
}

}  // namespace

const Config& config() {
  static const Config cfg = [] {
    Config c;
#if defined(__SANITIZE_ADDRESS__) || defined(CUEMU_TSAN)
    c.stack_bytes = 256 * 1024;
#endif
    unsigned hw = std::thread::hardware_concurrency();
    c.workers = hw > 0 ? static_cast<int>(hw) : 1;
    if (const char* s = std::getenv("CUEMU_SCHEDULE")) {
      if (std::strcmp(s, "rev") == 0) {
        c.schedule = Schedule::Reverse;
      } else if (std::strncmp(s, "rand:", 5) == 0) {
        c.schedule = Schedule::Random;
        c.seed = std::strtoull(s + 5, nullptr, 10);
      } else if (std::strcmp(s, "fwd") != 0) {
        std::fprintf(stderr, "cuemu: CUEMU_SCHEDULE must be fwd, rev or rand:<seed>, not '%s'\n", s);
        std::exit(2);
      }
    }
    if (const char* s = std::getenv("CUEMU_WORKERS")) {
      const int n = std::atoi(s);
      if (n < 1 || n > 256) {
        std::fprintf(stderr, "cuemu: CUEMU_WORKERS must be 1..256, not '%s'\n", s);
        std::exit(2);
      }
      c.workers = n;
    }
    if (const char* s = std::getenv("CUEMU_STACK_KB")) {
      const long kb = std::atol(s);
      if (kb < 16 || kb > 65536) {
        std::fprintf(stderr, "cuemu: CUEMU_STACK_KB must be 16..65536, not '%s'\n", s);
        std::exit(2);
      }
      c.stack_bytes = static_cast<size_t>(kb) * 1024;
    }
    return c;
  }();
  return cfg;
}

void fail_launch(Launch& launch, const std::string& message) {
  std::lock_guard<std::mutex> lock(launch.report_mutex);
  if (!launch.failed.exchange(true)) launch.report = message;
}

void install_fault_reporter() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(&sanitizer_death_note);
#elif !defined(CUEMU_TSAN)
    if (const char* s = std::getenv("CUEMU_FAULT_REPORTER"); s != nullptr && std::strcmp(s, "0") == 0) return;
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = &fault_reporter;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    sigaction(SIGBUS, &action, &g_previous_bus);
#endif
  });
}

}  // namespace detail

void launch(const void* kernel_id, KernelThunk thunk, const void* payload, dim3 grid, dim3 block,
            size_t dynamic_smem_bytes, cudaStream_t stream, const LaunchSite& site) {
  using namespace detail;
  if (cudaError_t err = sticky(); err != cudaSuccess) {
    record(err);
    return;
  }
  const std::string where = std::string(site.kernel) + " at " + site.file + ":" + std::to_string(site.line);
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    record(cudaErrorInvalidConfiguration,
           "cuemu: launch of " + where + " with grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) +
               "," + std::to_string(grid.z) + ") and block (" + std::to_string(block.x) + "," +
               std::to_string(block.y) + "," + std::to_string(block.z) + ")");
    return;
  }
  size_t smem_limit = kDefaultDynamicSmem;
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    auto it = g_max_dynamic_smem.find(kernel_id);
    if (it != g_max_dynamic_smem.end()) smem_limit = static_cast<size_t>(it->second);
    if (stream != nullptr && g_streams.count(stream) == 0) {
      t_last = cudaErrorInvalidResourceHandle;
      return;
    }
  }
  if (dynamic_smem_bytes > smem_limit) {
    record(cudaErrorInvalidValue,
           "cuemu: launch of " + where + " asks for " + std::to_string(dynamic_smem_bytes) +
               " bytes of dynamic shared memory; the limit is " + std::to_string(smem_limit) +
               (smem_limit == kDefaultDynamicSmem
                    ? " without cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes)"
                    : " set by cudaFuncSetAttribute"));
    return;
  }

  install_fault_reporter();
  ensure_alternate_signal_stack();
  std::lock_guard<std::mutex> serialize(g_launch_mutex);
  Launch launch;
  launch.thunk = thunk;
  launch.payload = payload;
  launch.grid = grid;
  launch.block = block;
  launch.dynamic_smem = dynamic_smem_bytes;
  launch.site = site;
  launch.serial = g_launch_serial++;
  launch.num_blocks = uint64_t{grid.x} * grid.y * grid.z;
  static WorkerPool* pool = new WorkerPool;  // never destroyed: its threads outlive static destructors
  const uint64_t helpers = std::min<uint64_t>(static_cast<uint64_t>(config().workers), launch.num_blocks) - 1;
  pool->run(launch, static_cast<int>(helpers));
  if (launch.failed.load()) {
    const std::string report = "cuemu: error in kernel " + where + "\n  " + launch.report;
    std::fprintf(stderr, "%s\n", report.c_str());
    {
      std::lock_guard<std::mutex> lock(g_state_mutex);
      g_sticky = cudaErrorLaunchFailure;
    }
    record(cudaErrorLaunchFailure, report);
  }
}

}  // namespace cuemu

// ---- the cudart API subset ---------------------------------------------------------------------------
using cuemu::detail::g_state_mutex;
using cuemu::detail::record;
using cuemu::detail::sticky;

#define CUEMU_RETURN_IF_STICKY()                        \
  do {                                                  \
    if (cudaError_t s_ = sticky(); s_ != cudaSuccess) { \
      cuemu::detail::t_last = s_;                       \
      return s_;                                        \
    }                                                   \
  } while (0)

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t s = sticky();
  if (s != cudaSuccess) return s;
  const cudaError_t e = cuemu::detail::t_last;
  cuemu::detail::t_last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  const cudaError_t s = sticky();
  return s != cudaSuccess ? s : cuemu::detail::t_last;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    auto it = cuemu::detail::g_detail_for.find(static_cast<int>(error));
    if (it != cuemu::detail::g_detail_for.end()) return it->second;
  }
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  CUEMU_RETURN_IF_STICKY();
  return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "cuemu (CUDA emulated on the CPU, sm_80 limits)");
  prop->totalGlobalMem = cuemu::detail::physical_memory();
  prop->sharedMemPerBlock = cuemu::detail::kDefaultDynamicSmem;
  prop->sharedMemPerBlockOptin = cuemu::detail::kOptinDynamicSmem;
  prop->sharedMemPerMultiprocessor = 164 * 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->totalConstMem = 64 * 1024;
  prop->major = 8;
  prop->minor = 0;
  prop->multiProcessorCount = cuemu::detail::config().workers;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(cuemu::detail::kDefaultDynamicSmem); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(cuemu::detail::kOptinDynamicSmem); break;
    case cudaDevAttrMultiProcessorCount: *value = cuemu::detail::config().workers; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 8; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxGridDimX: *value = 0x7fffffff; break;
    case cudaDevAttrMaxGridDimY:
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    default: return record(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  CUEMU_RETURN_IF_STICKY();
  if (func == nullptr) return record(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > cuemu::detail::kOptinDynamicSmem)
      return record(cudaErrorInvalidValue, "cuemu: cudaFuncAttributeMaxDynamicSharedMemorySize " +
                                               std::to_string(value) + " is beyond the device's opt-in limit " +
                                               std::to_string(cuemu::detail::kOptinDynamicSmem));
    std::lock_guard<std::mutex> lock(g_state_mutex);
    cuemu::detail::g_max_dynamic_smem[func] = value;
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout)
    return value >= -1 && value <= 100 ? cudaSuccess : record(cudaErrorInvalidValue);
  return record(cudaErrorInvalidValue);
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  CUEMU_RETURN_IF_STICKY();
  if (ptr == nullptr) return record(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (size > cuemu::detail::physical_memory() - std::min(cuemu::detail::g_allocated_bytes,
                                                          cuemu::detail::physical_memory())) {
    cuemu::detail::t_last = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  void* p = nullptr;
  if (posix_memalign(&p, 256, size) != 0) p = nullptr;
  if (p == nullptr) {
    cuemu::detail::t_last = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  cuemu::detail::g_allocations[~reinterpret_cast<uintptr_t>(p)] = size;
  cuemu::detail::g_allocated_bytes += size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  CUEMU_RETURN_IF_STICKY();
  if (ptr == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_state_mutex);
  auto it = cuemu::detail::g_allocations.find(~reinterpret_cast<uintptr_t>(ptr));
  if (it == cuemu::detail::g_allocations.end()) {
    cuemu::detail::t_last = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  cuemu::detail::g_allocated_bytes -= it->second;
  cuemu::detail::g_allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (ptr == nullptr) return record(cudaErrorInvalidValue);
  *ptr = size > 0 ? std::malloc(size) : nullptr;
  return size > 0 && *ptr == nullptr ? record(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return record(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_state_mutex);
  *total_bytes = cuemu::detail::physical_memory();
  *free_bytes = *total_bytes - std::min(*total_bytes, cuemu::detail::g_allocated_bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  CUEMU_RETURN_IF_STICKY();
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return record(cudaErrorInvalidValue);
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    const bool dst_device = cuemu::detail::is_device_range(dst, count);
    const bool src_device = cuemu::detail::is_device_range(src, count);
    bool ok = true;
    switch (kind) {
      case cudaMemcpyHostToHost: ok = !dst_device && !src_device; break;
      case cudaMemcpyHostToDevice: ok = dst_device && !src_device; break;
      case cudaMemcpyDeviceToHost: ok = !dst_device && src_device; break;
      case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
      case cudaMemcpyDefault: break;
      default: cuemu::detail::t_last = cudaErrorInvalidMemcpyDirection; return cudaErrorInvalidMemcpyDirection;
    }
    if (!ok) {
      cuemu::detail::t_last = cudaErrorInvalidValue;
      return cudaErrorInvalidValue;
    }
  }
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  CUEMU_RETURN_IF_STICKY();
  if (count == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    if (!cuemu::detail::is_device_range(ptr, count)) {
      cuemu::detail::t_last = cudaErrorInvalidValue;
      return cudaErrorInvalidValue;
    }
  }
  std::memset(ptr, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) { return cudaMemset(ptr, value, count); }

cudaError_t cudaDeviceSynchronize(void) {
  CUEMU_RETURN_IF_STICKY();
  return cudaSuccess;
}

cudaError_t cudaDeviceReset(void) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  cuemu::detail::g_sticky = cudaSuccess;
  cuemu::detail::t_last = cudaSuccess;
  cuemu::detail::g_max_dynamic_smem.clear();
  for (const auto& a : cuemu::detail::g_allocations) std::free(reinterpret_cast<void*>(~a.first));
  cuemu::detail::g_allocations.clear();
  cuemu::detail::g_allocated_bytes = 0;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  CUEMU_RETURN_IF_STICKY();
  if (stream == nullptr) return record(cudaErrorInvalidValue);
  *stream = reinterpret_cast<cudaStream_t>(new char);
  std::lock_guard<std::mutex> lock(g_state_mutex);
  cuemu::detail::g_streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (cuemu::detail::g_streams.erase(stream) == 0) {
    cuemu::detail::t_last = cudaErrorInvalidResourceHandle;
    return cudaErrorInvalidResourceHandle;
  }
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  CUEMU_RETURN_IF_STICKY();
  return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t) {
  CUEMU_RETURN_IF_STICKY();
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return record(cudaErrorInvalidValue);
  *event = reinterpret_cast<cudaEvent_t>(new char);
  std::lock_guard<std::mutex> lock(g_state_mutex);
  cuemu::detail::g_events_set.insert(*event);
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  CUEMU_RETURN_IF_STICKY();
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (cuemu::detail::g_events_set.count(event) == 0) {
    cuemu::detail::t_last = cudaErrorInvalidResourceHandle;
    return cudaErrorInvalidResourceHandle;
  }
  cuemu::detail::g_event_times[event] = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t) {
  CUEMU_RETURN_IF_STICKY();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) {
  CUEMU_RETURN_IF_STICKY();
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return record(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_state_mutex);
  auto a = cuemu::detail::g_event_times.find(start), b = cuemu::detail::g_event_times.find(end);
  if (a == cuemu::detail::g_event_times.end() || b == cuemu::detail::g_event_times.end()) {
    cuemu::detail::t_last = cudaErrorInvalidResourceHandle;
    return cudaErrorInvalidResourceHandle;
  }
  *ms = std::chrono::duration<float, std::milli>(b->second - a->second).count();
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (cuemu::detail::g_events_set.erase(event) == 0) {
    cuemu::detail::t_last = cudaErrorInvalidResourceHandle;
    return cudaErrorInvalidResourceHandle;
  }
  cuemu::detail::g_event_times.erase(event);
  delete reinterpret_cast<char*>(event);
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return record(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return record(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

}  // extern "C"
