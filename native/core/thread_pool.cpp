#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace talaria {
namespace {

int configured_threads() {
  if (const char* env = std::getenv("TALARIA_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 1024) return static_cast<int>(n);
  }
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

// One parallel_for call: its chunks are claimed with an atomic counter by the caller and by workers.
struct Job {
  const std::function<void(int64_t, int64_t)>* body;
  int64_t begin, end, chunk, num_chunks;
  std::atomic<int64_t> next_chunk{0};
  std::atomic<int64_t> chunks_done{0};
  std::mutex mutex;  // guards `error` and the completion wait
  std::condition_variable finished;
  std::exception_ptr error;

  // Runs chunks until none are left to claim.
  void work() {
    for (int64_t i; (i = next_chunk.fetch_add(1)) < num_chunks;) {
      int64_t lo = begin + i * chunk, hi = std::min(end, lo + chunk);
      try {
        (*body)(lo, hi);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
      if (chunks_done.fetch_add(1) + 1 == num_chunks) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }

  void wait() {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return chunks_done.load() == num_chunks; });
  }
};

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; i++) workers_.emplace_back([this] { worker_loop(); });
  }
  // The pool lives for the whole process (it is never destroyed): joining at exit could block
  // process shutdown behind a long kernel, and the OS reclaims the threads anyway.

  int threads() const { return threads_; }

  void run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(job);
    }
    has_work_.notify_all();
    job->work();  // the caller always works on its own job, so nesting and concurrent callers cannot deadlock
    job->wait();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = std::find(queue_.begin(), queue_.end(), job);
      if (it != queue_.end()) queue_.erase(it);
    }
  }

 private:
  void worker_loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        has_work_.wait(lock, [&] { return !queue_.empty(); });
        job = queue_.front();
      }
      job->work();
      std::lock_guard<std::mutex> lock(mutex_);
      // Every chunk of this job is claimed: drop it so workers move on to the next job.
      if (!queue_.empty() && queue_.front() == job) queue_.pop_front();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable has_work_;
  std::deque<std::shared_ptr<Job>> queue_;
};

ThreadPool& pool() {
  static ThreadPool* instance = new ThreadPool(configured_threads());
  return *instance;
}

}  // namespace

int num_threads() { return pool().threads(); }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t range = end - begin;
  int threads = num_threads();
  if (threads == 1 || range <= grain) return body(begin, end);
  // About four chunks per thread balances uneven work (varlen sequences) without much claiming overhead.
  int64_t chunk = std::max(grain, (range + 4 * threads - 1) / (4 * threads));
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->begin = begin;
  job->end = end;
  job->chunk = chunk;
  job->num_chunks = (range + chunk - 1) / chunk;
  pool().run(job);
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace talaria
