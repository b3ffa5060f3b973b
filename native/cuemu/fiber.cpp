// Fiber stacks and context switches; see fiber.h.
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace cuemu {
namespace detail {

namespace {
size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}
}  // namespace

FiberStack::FiberStack(size_t usable_bytes) {
  const size_t page = page_size();
  usable_size_ = (usable_bytes + page - 1) / page * page;
  mapping_size_ = usable_size_ + page;
  void* p = mmap(nullptr, mapping_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("cuemu: mmap of a fiber stack");
    std::abort();
  }
  mapping_ = static_cast<char*>(p);
  if (mprotect(mapping_, page, PROT_NONE) != 0) {  // stacks grow down: the guard goes below
    std::perror("cuemu: mprotect of a fiber guard page");
    std::abort();
  }
  usable_ = mapping_ + page;
}

FiberStack::~FiberStack() { munmap(mapping_, mapping_size_); }

bool FiberStack::in_guard_page(const void* address) const {
  const char* a = static_cast<const char*>(address);
  return a >= mapping_ && a < usable_;
}

#if defined(__x86_64__)

// cuemu_fiber_switch(void** save_sp, void* next_sp): System V ABI. Pushes the callee-saved registers
// and the two FP control words onto the current stack, stores rsp into *save_sp, loads next_sp and
// pops the same frame from there. A new fiber's stack is built by fiber_prepare to look like such a
// frame, with cuemu_fiber_start as the return address.
extern "C" void cuemu_fiber_switch(void** save_sp, void* next_sp);
extern "C" void cuemu_fiber_start();
asm(R"(
  .text
  .globl cuemu_fiber_switch
  .hidden cuemu_fiber_switch
  .type cuemu_fiber_switch, @function
cuemu_fiber_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size cuemu_fiber_switch, .-cuemu_fiber_switch

  .globl cuemu_fiber_start
  .hidden cuemu_fiber_start
  .type cuemu_fiber_start, @function
cuemu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size cuemu_fiber_start, .-cuemu_fiber_start
)");

void fiber_prepare(FiberContext& ctx, const FiberStack& stack, FiberEntry entry, void* arg) {
  // Top of stack, 16-byte aligned. After `ret` pops cuemu_fiber_start, rsp is back at the top, so
  // the `call` there gives entry the ABI's alignment (rsp + 8 aligned at function entry).
  uintptr_t top = reinterpret_cast<uintptr_t>(stack.bottom() + stack.size()) & ~uintptr_t{15};
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = reinterpret_cast<uint64_t>(&cuemu_fiber_start);
  *--sp = 0;                                      // rbp
  *--sp = 0;                                      // rbx
  *--sp = reinterpret_cast<uint64_t>(arg);        // r12
  *--sp = reinterpret_cast<uint64_t>(entry);      // r13
  *--sp = 0;                                      // r14
  *--sp = 0;                                      // r15
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  *--sp = uint64_t{mxcsr} | (uint64_t{fpucw} << 32);
  ctx.sp = sp;
}

void fiber_switch(FiberContext& from, FiberContext& to) { cuemu_fiber_switch(&from.sp, to.sp); }

#else  // ucontext fallback

namespace {
// makecontext passes int arguments only: split the two pointers into 32-bit halves.
void ucontext_trampoline(unsigned entry_hi, unsigned entry_lo, unsigned arg_hi, unsigned arg_lo) {
  const uintptr_t entry = (uintptr_t{entry_hi} << 32) | entry_lo;
  const uintptr_t arg = (uintptr_t{arg_hi} << 32) | arg_lo;
  reinterpret_cast<FiberEntry>(entry)(reinterpret_cast<void*>(arg));
  std::abort();  // entries never return
}
}  // namespace

void fiber_prepare(FiberContext& ctx, const FiberStack& stack, FiberEntry entry, void* arg) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack.bottom();
  ctx.uc.uc_stack.ss_size = stack.size();
  ctx.uc.uc_link = nullptr;
  const uintptr_t e = reinterpret_cast<uintptr_t>(entry);
  const uintptr_t a = reinterpret_cast<uintptr_t>(arg);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&ucontext_trampoline), 4, unsigned(e >> 32), unsigned(e),
              unsigned(a >> 32), unsigned(a));
}

void fiber_switch(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

#endif

}  // namespace detail
}  // namespace cuemu
