// Explicit skips: a test that cannot run here (no shared data) says so and CTest reports
// it skipped through its exit code, never by reading its output.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

namespace opgraph::test {

/// The exit status CTest reads as "skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
inline constexpr int kSkipCode = 77;

/// True when this process runs exactly one test case (CTest runs each case alone).
inline bool& single_case() {
  static bool one = false;
  return one;
}

/// Skips the running test case. Under CTest the process exits with kSkipCode. With
/// OPGRAPH_REQUIRE_DATA=1 (CI, where the shared data must be present) a skip is a failure.
/// Run as one binary over many cases, the case just ends with a message.
inline void skip(const std::string& why) {
  if (const char* require = std::getenv("OPGRAPH_REQUIRE_DATA"); require && std::string(require) == "1") {
    FAIL("cannot skip with OPGRAPH_REQUIRE_DATA=1: " << why);
    return;
  }
  if (single_case()) {
    std::printf("skipped: %s\n", why.c_str());
    std::fflush(stdout);
    std::_Exit(kSkipCode);
  }
  MESSAGE("skipped: " << why);
}

}  // namespace opgraph::test
