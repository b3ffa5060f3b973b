// Shared between the emulator's runtime files. Not part of what .cu files see (that is cuemu.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "cuemu.h"

namespace cuemu {
namespace detail {

enum class Schedule { Forward, Reverse, Random };

// Read once from the environment:
//   CUEMU_SCHEDULE = fwd | rev | rand:<seed>   the order fibers run in each pass (default fwd)
//   CUEMU_WORKERS  = <n>                       OS threads that run blocks (default: hardware threads)
//   CUEMU_STACK_KB = <n>                       stack per CUDA thread (default 64, 256 under sanitizers)
struct Config {
  Schedule schedule = Schedule::Forward;
  uint64_t seed = 0;
  int workers = 1;
  size_t stack_bytes = 64 * 1024;
};
const Config& config();

// One kernel launch, shared by the workers that run its blocks.
struct Launch {
  KernelThunk thunk;
  const void* payload;
  dim3 grid;
  dim3 block;
  size_t dynamic_smem;
  LaunchSite site;
  uint64_t serial;  // launch number, mixed into the random schedule's seed
  uint64_t num_blocks;
  std::atomic<uint64_t> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex report_mutex;
  std::string report;  // the first failure's description
};

// Records the first failure of a launch; later ones are dropped (they are usually consequences).
void fail_launch(Launch& launch, const std::string& message);

// Runs one block of `launch` on the calling OS thread (scheduler.cpp).
void run_block(Launch& launch, uint64_t linear_block);

// Installs the SIGSEGV/SIGBUS reporter that names the CUDA thread (not under ASan, which reports
// faults itself). Safe to call more than once.
void install_fault_reporter();

// "block (x,y,z) thread (x,y,z) of kernel K (launched at file:line)" for the calling fiber, or "" when
// no CUDA thread runs on this OS thread. Used by the fault and sanitizer reporters.
std::string current_thread_description();

// True when `address` lies in the guard page of the fiber running on this OS thread (a stack overflow).
bool current_fiber_guard_hit(const void* address);

}  // namespace detail
}  // namespace cuemu
