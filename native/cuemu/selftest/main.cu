// cuemu_selftest: `cuemu_selftest <case>` runs one case and exits with its code (see selftest.cuh);
// `cuemu_selftest --list` prints the case names, one per line.
#include <cstdio>
#include <cstring>

#include "selftest.cuh"

namespace selftest {
std::vector<Case>& registry() {
  static std::vector<Case> cases;  // a function-local static: filled during other files' static init
  return cases;
}
}  // namespace selftest

int main(int argc, char** argv) {
  const std::vector<selftest::Case>& cases = selftest::registry();
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const selftest::Case& c : cases) std::printf("%s\n", c.name);
    return 0;
  }
  if (argc == 2) {
    for (const selftest::Case& c : cases)
      if (std::strcmp(argv[1], c.name) == 0) return c.run();
    std::fprintf(stderr, "cuemu_selftest: no case named '%s' (--list prints them)\n", argv[1]);
    return 64;
  }
  std::fprintf(stderr, "usage: cuemu_selftest <case> | --list\n");
  return 64;
}
