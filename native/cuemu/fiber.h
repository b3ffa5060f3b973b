// Fibers for the emulator: one per CUDA thread, switched in user space.
// On x86-64 a hand-written switch saves the callee-saved registers, MXCSR and the x87 control word
// (~20 ns a round trip). Elsewhere it falls back to ucontext, whose swapcontext makes a system call
// (~300 ns). Stacks come from mmap with a guard page below, so an overflow faults instead of
// corrupting the neighbouring fiber.
#pragma once
#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace cuemu {
namespace detail {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

class FiberStack {
 public:
  explicit FiberStack(size_t usable_bytes);
  ~FiberStack();
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  char* bottom() const { return usable_; }  // lowest usable address, just above the guard page
  size_t size() const { return usable_size_; }
  bool in_guard_page(const void* address) const;

 private:
  char* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  char* usable_ = nullptr;
  size_t usable_size_ = 0;
};

using FiberEntry = void (*)(void* arg);

// Prepares `ctx` so that the first switch to it calls entry(arg) on `stack`. entry must never return;
// it ends by switching away for good.
void fiber_prepare(FiberContext& ctx, const FiberStack& stack, FiberEntry entry, void* arg);

// Saves the current context into `from` and resumes `to`.
void fiber_switch(FiberContext& from, FiberContext& to);

}  // namespace detail
}  // namespace cuemu
