// Native tests of the core (no Node): thread pool, allocator, tensors, SIMD dispatch.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../core/device.h"
#include "../core/error.h"
#include "../core/simd.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "test_main.h"

using namespace talaria;

// Every index of [begin, end) is visited exactly once, for sizes and grains around the chunking edges.
TEST(parallel_for_covers_each_index_once) {
  for (int64_t n : {0, 1, 2, 7, 31, 97, 1000, 100003}) {
    for (int64_t grain : {1, 3, 64, 1 << 20}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n) + 10);
      parallel_for(5, 5 + n, grain, [&](int64_t lo, int64_t hi) {
        CHECK(lo < hi);
        CHECK(hi - lo >= std::min<int64_t>(grain, n) || hi == 5 + n);
        for (int64_t i = lo; i < hi; i++) hits[static_cast<size_t>(i - 5)]++;
      });
      for (int64_t i = 0; i < n; i++) CHECK(hits[static_cast<size_t>(i)] == 1);
    }
  }
}

TEST(parallel_for_rethrows_the_first_exception) {
  bool caught = false;
  try {
    parallel_for(0, 1000, 1, [](int64_t lo, int64_t) {
      if (lo >= 500) throw Error(ErrorCode::Range, "boom");
    });
  } catch (const Error& e) {
    caught = e.code() == ErrorCode::Range && std::strcmp(e.what(), "boom") == 0;
  }
  CHECK(caught);
  // The pool still works afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) { for (int64_t i = lo; i < hi; i++) sum += i; });
  CHECK(sum == 499500);
}

TEST(parallel_for_nested_and_concurrent_callers_do_not_deadlock) {
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; c++) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; rep++) {
        parallel_for(0, 16, 1, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; i++)
            parallel_for(0, 100, 7, [&](int64_t a, int64_t b) { total += b - a; });
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(total == 4 * 50 * 16 * 100);
}

TEST(num_threads_is_positive) { CHECK(num_threads() >= 1); }

TEST(cpu_alloc_is_64_byte_aligned) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{1} << 20}) {
    void* p = cpu_alloc(bytes);
    CHECK(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    if (bytes) std::memset(p, 0xAB, bytes);
    cpu_free(p);
  }
}

TEST(cpu_alloc_reports_oom) { CHECK_THROWS(cpu_alloc(SIZE_MAX - 8), OutOfMemory); }

TEST(shape_numel_checks_sizes) {
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({3, 0, 5}) == 0);
  CHECK(shape_numel({7, 11}) == 77);
  CHECK_THROWS(shape_numel({-1}), Shape);
  CHECK_THROWS(shape_numel({INT64_C(1) << 40, INT64_C(1) << 40}), Shape);
}

TEST(tensor_copies_between_tensors_and_keeps_shape) {
  Tensor a = Tensor::empty({2, 3}, DType::F32, Device::cpu());
  for (int i = 0; i < 6; i++) a.data_as<float>()[i] = 0.5f * static_cast<float>(i) - 1.25f;
  Tensor b = a.to(Device::cpu());
  CHECK(b.data() != a.data());
  CHECK(b.shape() == a.shape());
  CHECK(b.shape_string() == "[2, 3]");
  CHECK(std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
  CHECK(a.nbytes() == 24);
  Tensor wrong = Tensor::empty({6}, DType::I32, Device::cpu());
  CHECK_THROWS(wrong.copy_from(a), DType);
  Tensor short_one = Tensor::empty({5}, DType::F32, Device::cpu());
  CHECK_THROWS(short_one.copy_from(a), Shape);
}

TEST(borrowed_tensor_does_not_free_its_memory) {
  std::vector<int32_t> host = {4, 8, 15, 16, 23, 42};
  {
    Tensor view = Tensor::borrow(host.data(), {6}, DType::I32, Device::cpu());
    view.data_as<int32_t>()[0] = 5;
  }
  CHECK(host[0] == 5 && host[5] == 42);
}

TEST(devices_without_cuda_are_rejected) {
  if (cuda_devices().empty()) CHECK_THROWS(Tensor::empty({4}, DType::F32, Device::cuda(0)), Device);
  CHECK_THROWS(Tensor::empty({4}, DType::F32, Device::cuda(99)), Device);
}

TEST(simd_level_has_a_name) {
  const std::string name = simd_level_name(simd_level());
  CHECK(name == "scalar" || name == "avx2" || name == "avx512");
}

int main() { return talaria::testing::run_registered_tests(); }
