// Runs one block: its CUDA threads as fibers, plus the barrier and the warp-collective engine.
//
// A fiber runs until it reaches __syncthreads, a warp collective or its end. Each pass resumes every
// runnable fiber once, in the order CUEMU_SCHEDULE picks (forward, reverse, or a seeded shuffle per
// pass). A barrier or collective completes when its last participant arrives; that fiber carries on
// and the others become runnable. A pass in which nothing could run, with threads left, is a
// deadlock, and the report says who waits where.
//
// Checks (each fails the launch with a report):
//   - every thread at a barrier waits at the same call site;
//   - no barrier is reached after a thread of the block has exited, and no thread exits while others
//     wait at one (CUDA requires all threads of the block to reach each __syncthreads);
//   - a collective's mask includes the calling lane; lanes with the same mask run the same operation
//     (as in PTX, a lane waits for the lanes of its mask to reach a collective with the same mask, so
//     a real mask mismatch shows up as a deadlock);
//   - a shuffle never reads from a lane outside the shuffle.
//
// ThreadSanitizer (CUEMU_TSAN): each CUDA thread is a TSan fiber, switched without synchronisation, so
// TSan sees exactly the happens-before edges CUDA guarantees. They are added here by hand: at block
// start and end (a start token the scheduler releases and every fiber acquires, an end token every
// fiber releases and the scheduler acquires; they also order consecutive blocks on one worker, which
// share the thread_local static shared memory), at barriers (two alternating tokens), and at
// collectives (a token per collective). When a block fails, its suspended fibers are resumed once
// and unwound by an exception, so nothing on their stacks leaks. This file is built without -fsanitize=thread
// so that its own bookkeeping is invisible to TSan.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fiber.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(CUEMU_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace cuemu {
namespace detail {
namespace {

#if defined(CUEMU_TSAN)
void tsan_acquire(void* token) { __tsan_acquire(token); }
void tsan_release(void* token) { __tsan_release(token); }
#else
void tsan_acquire(void*) {}
void tsan_release(void*) {}
#endif

enum class FiberState { Runnable, AtBarrier, InCollective, Exited };

struct Block;
struct Collective;

struct PendingCopy {
  void* dst;
  const void* src;
  int bytes;
};

struct FiberUnwind {};  // thrown through a failed block's fibers to run their destructors

struct Fiber {
  bool started = false;
  FiberContext context;
  FiberStack* stack = nullptr;
  Block* block = nullptr;
  uint3 tid{};
  int linear = 0;
  FiberState state = FiberState::Exited;
  const char* waits_in = nullptr;  // for deadlock reports
  Site wait_site{};
  Collective* collective = nullptr;
  std::vector<PendingCopy> cp_uncommitted;
  std::vector<std::vector<PendingCopy>> cp_groups;  // committed, oldest first
  void* tsan_fiber = nullptr;
  void* asan_fake_stack = nullptr;
  char name[96];
};

struct Collective {
  CollectiveOp op;
  unsigned mask = 0;
  unsigned arrived = 0;
  int first_lane = 0;
  Site first_site{};
  WarpExchange exchange{};
  int acquirers_left = 0;  // participants that still have to read the result and the TSan token
  char tsan_token = 0;
};

struct Warp {
  unsigned exists = 0;
  unsigned exited = 0;
  std::vector<Collective*> pending;
};

struct Block {
  Launch* launch = nullptr;
  std::vector<Fiber*> fibers;
  std::vector<Warp> warps;
  int live = 0;
  int exited = 0;
  int first_exited = -1;
  // the barrier
  int barrier_arrived = 0;
  int barrier_pred_count = 0;
  int barrier_result = 0;
  int barrier_first = 0;
  Site barrier_site{};
  unsigned barrier_generation = 0;
  char barrier_tokens[2] = {0, 0};
  std::set<Collective*> collectives;  // every live record, freed at block end whatever happened
  void* dynamic_smem = nullptr;
  bool failed = false;
};

// What an OS thread needs to run blocks. Its fibers and stacks are reused from block to block.
struct Worker {
  FiberContext scheduler_context;
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<std::unique_ptr<FiberStack>> stacks;
  Block* block = nullptr;
  Fiber* current = nullptr;
  char block_start_token = 0;  // released by the scheduler, acquired by each fiber at start
  char block_end_token = 0;    // released by each fiber at its end, acquired by the scheduler
  void* tsan_scheduler = nullptr;
  const void* asan_scheduler_bottom = nullptr;
  size_t asan_scheduler_size = 0;
  void* asan_scheduler_fake_stack = nullptr;

  ~Worker() {
#if defined(CUEMU_TSAN)
    for (auto& f : fibers)
      if (f->tsan_fiber != nullptr) __tsan_destroy_fiber(f->tsan_fiber);
#endif
  }
};

thread_local Worker* t_worker = nullptr;

Worker& worker() {
  if (t_worker == nullptr) {
    static thread_local Worker w;
    t_worker = &w;
#if defined(CUEMU_TSAN)
    w.tsan_scheduler = __tsan_get_current_fiber();
#endif
  }
  return *t_worker;
}

Fiber& current_fiber() {
  Fiber* f = t_worker != nullptr ? t_worker->current : nullptr;
  if (f == nullptr) {
    std::fprintf(stderr, "cuemu: a device intrinsic was called outside a kernel\n");
    std::abort();
  }
  return *f;
}

std::string coords(const uint3& v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string site_text(const Site& s) { return std::string(s.file) + ":" + std::to_string(s.line); }
bool same_site(const Site& a, const Site& b) { return a.line == b.line && std::strcmp(a.file, b.file) == 0; }
std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
std::string thread_text(const Fiber& f) { return "thread " + coords(f.tid); }

// ---- switching ---------------------------------------------------------------------------------------

void resume(Worker& w, Fiber& f) {
  w.current = &f;
  threadIdx = f.tid;
#if defined(CUEMU_TSAN)
  __tsan_switch_to_fiber(f.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(&w.asan_scheduler_fake_stack, f.stack->bottom(), f.stack->size());
#endif
  fiber_switch(w.scheduler_context, f.context);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(w.asan_scheduler_fake_stack, nullptr, nullptr);
#endif
  w.current = nullptr;
}

// Back to the scheduler. `final` when the fiber will never be resumed.
void suspend(Fiber& f, bool final) {
  Worker& w = *t_worker;
#if defined(CUEMU_TSAN)
  __tsan_switch_to_fiber(w.tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(final ? nullptr : &f.asan_fake_stack, w.asan_scheduler_bottom,
                                 w.asan_scheduler_size);
#else
  (void)final;
#endif
  fiber_switch(f.context, w.scheduler_context);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &w.asan_scheduler_bottom, &w.asan_scheduler_size);
#endif
  if (f.block->failed) throw FiberUnwind{};
}

// Fails the launch from inside a fiber: unwinds it to fiber_main. The scheduler then unwinds the
// block's other suspended fibers (suspend() throws when it returns into a failed block).
[[noreturn]] void fail_from_fiber(Fiber& f, const std::string& message) {
  Block& b = *f.block;
  b.failed = true;
  fail_launch(*b.launch, "block " + coords(blockIdx) + ": " + message);
  throw FiberUnwind{};
}

// ---- warp collectives --------------------------------------------------------------------------------

bool same_operation(const CollectiveOp& a, const CollectiveOp& b) {
  return a.combine == b.combine && a.width == b.width && a.value_bytes == b.value_bytes;
}

// Completes `c` if every participant has arrived. Runs in whichever fiber arrived (or exited) last.
bool try_complete(Fiber& self, Warp& warp, Collective& c) {
  const unsigned participants = c.mask & warp.exists & ~warp.exited;
  if (c.arrived != participants || participants == 0) return false;
  c.exchange.participants = participants;
  c.exchange.width = c.op.width;
  // The combine reads every lane's input and writes every lane's output: it must see all arrivals,
  // and each lane, once woken, must see its output (leave_collective acquires this release).
  tsan_acquire(&c.tsan_token);
  const char* error = c.op.combine(c.exchange);
  tsan_release(&c.tsan_token);
  if (error != nullptr) {
    fail_from_fiber(self, std::string(c.op.name) + " at " + site_text(c.first_site) + " (mask " + hex(c.mask) +
                              "): " + error);
  }
  warp.pending.erase(std::find(warp.pending.begin(), warp.pending.end(), &c));
  c.acquirers_left = __builtin_popcount(participants);
  Block& b = *self.block;
  const int warp_base = (self.linear / 32) * 32;
  for (int lane = 0; lane < 32; ++lane) {
    if (((participants >> lane) & 1u) == 0) continue;
    Fiber& other = *b.fibers[static_cast<size_t>(warp_base + lane)];
    if (&other != &self) other.state = FiberState::Runnable;
  }
  return true;
}

// Called by each participant once the collective has completed.
void leave_collective(Block& b, Collective* c) {
  tsan_acquire(&c->tsan_token);
  if (--c->acquirers_left == 0) {
    b.collectives.erase(c);
    delete c;
  }
}

// ---- fiber life ----------------------------------------------------------------------------------------

void on_thread_exit(Fiber& f) {
  Block& b = *f.block;
  Warp& warp = b.warps[static_cast<size_t>(f.linear / 32)];
  f.state = FiberState::Exited;
  b.live--;
  if (b.exited++ == 0) b.first_exited = f.linear;
  warp.exited |= 1u << (f.linear % 32);
  f.cp_uncommitted.clear();  // copies never waited for are dropped, so the bug shows in the results
  f.cp_groups.clear();
  if (b.barrier_arrived > 0) {
    fail_from_fiber(f, thread_text(f) + " exited while " + std::to_string(b.barrier_arrived) +
                           " threads of the block wait at __syncthreads at " + site_text(b.barrier_site) +
                           " (every thread of a block must reach each barrier)");
  }
  // Lanes that exit no longer take part, so a pending collective may now be complete.
  const std::vector<Collective*> pending = warp.pending;
  for (Collective* c : pending) try_complete(f, warp, *c);
}

void fiber_main(void* arg) {
  Fiber& f = *static_cast<Fiber*>(arg);
  Worker& w = *t_worker;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &w.asan_scheduler_bottom, &w.asan_scheduler_size);
#endif
  tsan_acquire(&w.block_start_token);
  f.started = true;
  const Launch& launch = *f.block->launch;
  try {
    launch.thunk(launch.payload);
    on_thread_exit(f);
  } catch (const FiberUnwind&) {
    f.state = FiberState::Exited;  // a failed block: the frames are unwound, nothing else happens
  }
  tsan_release(&w.block_end_token);
  suspend(f, true);
  std::abort();  // an exited fiber is never resumed
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string deadlock_report(const Block& b) {
  std::string out = "deadlock: no CUDA thread of the block can run. Waiting:";
  // One line per (place, site), listing the threads there.
  std::vector<bool> listed(b.fibers.size(), false);
  for (size_t i = 0; i < b.fibers.size(); ++i) {
    const Fiber& f = *b.fibers[i];
    if (listed[i] || f.state == FiberState::Exited) continue;
    std::string who;
    int count = 0;
    for (size_t j = i; j < b.fibers.size(); ++j) {
      const Fiber& g = *b.fibers[j];
      if (listed[j] || g.state == FiberState::Exited || g.waits_in != f.waits_in || g.collective != f.collective ||
          !same_site(g.wait_site, f.wait_site))
        continue;
      listed[j] = true;
      if (count++ < 8) who += (who.empty() ? "" : ", ") + std::to_string(g.linear);
    }
    if (count > 8) who += ", ...";
    out += "\n    " + std::to_string(count) + " thread(s) [" + who + "] in " + f.waits_in + " at " +
           site_text(f.wait_site);
    if (f.collective != nullptr) {
      const Warp& warp = b.warps[static_cast<size_t>(f.linear / 32)];
      const unsigned missing = f.collective->mask & warp.exists & ~warp.exited & ~f.collective->arrived;
      out += " (warp " + std::to_string(f.linear / 32) + ", mask " + hex(f.collective->mask) +
             ", still missing lanes " + hex(missing) + ")";
    }
  }
  out += "\n    (thread numbers are linear ids: x + y*blockDim.x + z*blockDim.x*blockDim.y)";
  return out;
}

}  // namespace
}  // namespace detail

using namespace detail;

// ---- intrinsics -------------------------------------------------------------------------------------

void block_barrier(int pred, int* count_out, Site site) {
  Fiber& f = current_fiber();
  Block& b = *f.block;
  if (b.exited > 0) {
    const Fiber& gone = *b.fibers[static_cast<size_t>(b.first_exited)];
    fail_from_fiber(f, "__syncthreads at " + site_text(site) + " reached after " + std::to_string(b.exited) +
                           " thread(s) of the block exited (first: " + thread_text(gone) +
                           "); every thread of a block must reach each barrier");
  }
  if (b.barrier_arrived == 0) {
    b.barrier_site = site;
    b.barrier_first = f.linear;
    b.barrier_pred_count = 0;
  } else if (!same_site(b.barrier_site, site)) {
    const Fiber& first = *b.fibers[static_cast<size_t>(b.barrier_first)];
    fail_from_fiber(f, "threads wait at different barriers: " + thread_text(first) + " at __syncthreads " +
                           site_text(b.barrier_site) + ", " + thread_text(f) + " at __syncthreads " +
                           site_text(site));
  }
  b.barrier_pred_count += pred != 0;
  const unsigned generation = b.barrier_generation;
  tsan_release(&b.barrier_tokens[generation & 1]);
  if (++b.barrier_arrived == b.live) {
    b.barrier_result = b.barrier_pred_count;
    b.barrier_arrived = 0;
    b.barrier_generation++;
    for (Fiber* other : b.fibers)
      if (other->state == FiberState::AtBarrier) other->state = FiberState::Runnable;
  } else {
    f.state = FiberState::AtBarrier;
    f.waits_in = "__syncthreads";
    f.wait_site = site;
    suspend(f, false);
  }
  // The next barrier cannot complete before this thread arrives there, so the result is still ours.
  tsan_acquire(&b.barrier_tokens[generation & 1]);
  if (count_out != nullptr) *count_out = b.barrier_result;
}

void warp_collective(const CollectiveOp& op, unsigned mask, const void* in, void* out, int arg, Site site) {
  Fiber& f = current_fiber();
  Block& b = *f.block;
  Warp& warp = b.warps[static_cast<size_t>(f.linear / 32)];
  const int lane = f.linear % 32;
  // Built only for reports: this function runs for every lane of every shuffle.
  auto where = [&] { return std::string(op.name) + " at " + site_text(site); };
  if (((mask >> lane) & 1u) == 0)
    fail_from_fiber(f, thread_text(f) + " (lane " + std::to_string(lane) + ") calls " + where() + " with mask " +
                           hex(mask) + ", which does not include its own lane");
  if (op.width == 0) fail_from_fiber(f, where() + ": width must be a power of two from 1 to 32");
  Collective* c = nullptr;
  for (Collective* p : warp.pending) {
    if (p->mask == mask) c = p;
  }
  if (c != nullptr && !same_operation(c->op, op)) {
    fail_from_fiber(f, "lanes of warp " + std::to_string(f.linear / 32) + " disagree on a collective with mask " +
                           hex(mask) + ": lane " + std::to_string(c->first_lane) + " is in " + c->op.name + " at " +
                           site_text(c->first_site) + " (width " + std::to_string(c->op.width) + ", " +
                           std::to_string(c->op.value_bytes) + "-byte values), lane " + std::to_string(lane) +
                           " in " + where() + " (width " + std::to_string(op.width) + ", " +
                           std::to_string(op.value_bytes) + "-byte values)");
  }
  if (c == nullptr) {
    c = new Collective;
    c->op = op;
    c->mask = mask;
    c->first_lane = lane;
    c->first_site = site;
    warp.pending.push_back(c);
    b.collectives.insert(c);
  }
  c->exchange.lane[lane] = LaneSlot{in, out, arg};
  c->arrived |= 1u << lane;
  tsan_release(&c->tsan_token);
  if (!try_complete(f, warp, *c)) {
    f.state = FiberState::InCollective;
    f.waits_in = op.name;
    f.wait_site = site;
    f.collective = c;
    suspend(f, false);
    f.collective = nullptr;
  }
  leave_collective(b, c);
}

void* dynamic_shared_memory() { return current_fiber().block->dynamic_smem; }

// cp.async: queued in the issuing thread, performed at the wait that covers its group.
void cp_async(void* shared_dst, const void* global_src, int bytes, Site site) {
  Fiber& f = current_fiber();
  const bool size_ok = bytes == 4 || bytes == 8 || bytes == 16;
  const uintptr_t misalign = (reinterpret_cast<uintptr_t>(shared_dst) | reinterpret_cast<uintptr_t>(global_src)) %
                             static_cast<uintptr_t>(size_ok ? bytes : 1);
  if (!size_ok || misalign != 0)
    fail_from_fiber(f, "cp.async at " + site_text(site) + " copies " + std::to_string(bytes) +
                           " bytes; it needs 4, 8 or 16 bytes with both addresses aligned to that size");
  f.cp_uncommitted.push_back(PendingCopy{shared_dst, global_src, bytes});
}

void cp_async_commit() {
  Fiber& f = current_fiber();
  f.cp_groups.push_back(std::move(f.cp_uncommitted));
  f.cp_uncommitted.clear();
}

void cp_async_wait(int newest_groups_left_pending) {
  Fiber& f = current_fiber();
  const size_t keep = static_cast<size_t>(std::max(newest_groups_left_pending, 0));
  size_t done = 0;
  while (f.cp_groups.size() - done > keep) {
    for (const PendingCopy& copy : f.cp_groups[done]) std::memcpy(copy.dst, copy.src, static_cast<size_t>(copy.bytes));
    ++done;
  }
  f.cp_groups.erase(f.cp_groups.begin(), f.cp_groups.begin() + static_cast<std::ptrdiff_t>(done));
}

namespace detail {

void run_block(Launch& launch, uint64_t linear_block) {
  Worker& w = worker();
  const Config& cfg = config();
  const dim3 grid = launch.grid, dims = launch.block;
  blockIdx = uint3{static_cast<unsigned>(linear_block % grid.x),
                   static_cast<unsigned>(linear_block / grid.x % grid.y),
                   static_cast<unsigned>(linear_block / (uint64_t{grid.x} * grid.y))};
  blockDim = dims;
  gridDim = grid;

  Block b;
  b.launch = &launch;
  const int n = static_cast<int>(dims.x * dims.y * dims.z);
  while (static_cast<int>(w.fibers.size()) < n) {
    w.fibers.push_back(std::make_unique<Fiber>());
    w.stacks.push_back(std::make_unique<FiberStack>(cfg.stack_bytes));
    w.fibers.back()->stack = w.stacks.back().get();
#if defined(CUEMU_TSAN)
    w.fibers.back()->tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  b.warps.resize(static_cast<size_t>((n + 31) / 32));
  for (Warp& wp : b.warps) wp.pending.reserve(32);  // never reallocated inside a fiber (TSan sees realloc)
  for (int i = 0; i < n; ++i) {
    Fiber& f = *w.fibers[static_cast<size_t>(i)];
    f.block = &b;
    f.linear = i;
    f.tid = uint3{static_cast<unsigned>(i) % dims.x, static_cast<unsigned>(i) / dims.x % dims.y,
                  static_cast<unsigned>(i) / (dims.x * dims.y)};
    f.state = FiberState::Runnable;
    f.collective = nullptr;
    f.started = false;
    f.cp_uncommitted.clear();
    f.cp_groups.clear();
    fiber_prepare(f.context, *f.stack, &fiber_main, &f);
#if defined(CUEMU_TSAN)
    std::snprintf(f.name, sizeof f.name, "CUDA block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y,
                  blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
    __tsan_set_fiber_name(f.tsan_fiber, f.name);
#endif
    b.fibers.push_back(&f);
    b.warps[static_cast<size_t>(i / 32)].exists |= 1u << (i % 32);
  }
  b.live = n;
  // Exactly the launch's size, so ASan catches overruns; 0xFF bytes read as NaN floats, so a kernel
  // that reads shared memory it did not write this block gets visibly wrong results.
  b.dynamic_smem = std::malloc(launch.dynamic_smem > 0 ? launch.dynamic_smem : 1);
  std::memset(b.dynamic_smem, 0xFF, launch.dynamic_smem);
  w.block = &b;
  tsan_release(&w.block_start_token);

  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = cfg.schedule == Schedule::Reverse ? n - 1 - i : i;
  std::mt19937_64 rng(mix(cfg.seed ^ mix(launch.serial ^ mix(linear_block))));
  while (b.live > 0 && !b.failed) {
    if (cfg.schedule == Schedule::Random) std::shuffle(order.begin(), order.end(), rng);
    bool ran = false;
    for (int i : order) {
      Fiber& f = *b.fibers[static_cast<size_t>(i)];
      if (f.state != FiberState::Runnable) continue;
      ran = true;
      resume(w, f);
      if (b.failed) break;
    }
    if (!ran && !b.failed) {
      b.failed = true;
      fail_launch(launch, "block " + coords(blockIdx) + ": " + deadlock_report(b));
    }
  }

  if (b.failed) {
    // Unwind the fibers left suspended, so the heap objects on their stacks are destroyed.
    for (Fiber* f : b.fibers)
      if (f->started && f->state != FiberState::Exited) resume(w, *f);
  }
  tsan_acquire(&w.block_end_token);
  w.block = nullptr;
  for (Collective* c : b.collectives) delete c;
  std::free(b.dynamic_smem);
#if defined(__SANITIZE_ADDRESS__)
  // Abandoned fibers leave poisoned frames on their stacks; the next block reuses those stacks.
  if (b.failed)
    for (Fiber* f : b.fibers) __asan_unpoison_memory_region(f->stack->bottom(), f->stack->size());
#endif
}

std::string current_thread_description() {
  if (t_worker == nullptr || t_worker->current == nullptr) return "";
  const Fiber& f = *t_worker->current;
  const Launch& launch = *f.block->launch;
  return "CUDA block " + coords(blockIdx) + " " + thread_text(f) + " of kernel " + launch.site.kernel +
         " (launched at " + launch.site.file + ":" + std::to_string(launch.site.line) + ")";
}

bool current_fiber_guard_hit(const void* address) {
  return t_worker != nullptr && t_worker->current != nullptr && t_worker->current->stack->in_guard_page(address);
}

}  // namespace detail
}  // namespace cuemu
