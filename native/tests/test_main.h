// A minimal native test harness: TEST(name) registers a case, CHECK(cond) records a failure, and main()
// prints one line per failure and a final "N passed, N failed" (the line .ci/run adds up).
#pragma once
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace talaria::testing {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& failures_in_case() {
  static int failures = 0;
  return failures;
}
// Set by NOT_APPLICABLE: the case needs something this build or machine lacks (a CUDA device, say).
// It is listed as "n/a" and counted neither as passed nor as failed.
inline const char*& not_applicable_reason() {
  static const char* reason = nullptr;
  return reason;
}

struct Register {
  Register(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

// Runs every registered case; prints one line per case and the final "N passed, N failed".
inline int run_registered_tests() {
  int passed = 0, failed = 0;
  for (const auto& c : registry()) {
    failures_in_case() = 0;
    not_applicable_reason() = nullptr;
    try {
      c.body();
    } catch (const std::exception& e) {
      std::printf("  uncaught exception: %s\n", e.what());
      failures_in_case()++;
    }
    if (not_applicable_reason() != nullptr && failures_in_case() == 0) {
      std::printf("n/a  %s (%s)\n", c.name, not_applicable_reason());
      continue;
    }
    const bool ok = failures_in_case() == 0;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
    std::fflush(stdout);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace talaria::testing

#define TEST(name)                                                              \
  static void test_##name();                                                    \
  static ::talaria::testing::Register register_##name(#name, test_##name);      \
  static void test_##name()

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::printf("  CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ::talaria::testing::failures_in_case()++;                                 \
    }                                                                           \
  } while (0)

// Ends the case without counting it, for cases that cannot run in this build (see not_applicable_reason).
#define NOT_APPLICABLE(reason)                                                  \
  do {                                                                          \
    ::talaria::testing::not_applicable_reason() = (reason);                     \
    return;                                                                     \
  } while (0)

// CHECK_THROWS(expr, ErrorCodeName): expr must throw talaria::Error with that code.
#define CHECK_THROWS(expr, code_name)                                           \
  do {                                                                          \
    bool threw_right = false;                                                   \
    try {                                                                       \
      (void)(expr);                                                             \
    } catch (const ::talaria::Error& e) {                                       \
      threw_right = e.code() == ::talaria::ErrorCode::code_name;                \
    }                                                                           \
    CHECK(threw_right && #expr " throws " #code_name);                          \
  } while (0)
