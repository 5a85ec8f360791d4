// The one test main, compiled once for every test file. It notes whether this process runs
// one named test case (as CTest runs each) so that test::skip can end it with the skip code.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "test_skip.hpp"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    for (const char* prefix : {"--test-case=", "-tc="})
      if (a.rfind(prefix, 0) == 0 && a.find_first_of("*?,", std::strlen(prefix)) == std::string::npos)
        opgraph::test::single_case() = true;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
