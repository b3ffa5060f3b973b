// The kernel test driver: every case registered by the *_test.cpp files in this folder.
#include "../test_main.h"

int main() { return talaria::testing::run_registered_tests(); }
