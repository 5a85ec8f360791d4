// The one test main of every doctest program. It notes whether this process runs one named
// test case (as CTest runs each) so that test::skip can end it with the skip code, and it
// fails a run whose filter matched no test case: CTest cuts a name at ';', and the cut
// name used to run nothing and pass.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "test_skip.hpp"

namespace {

/// Counts the test cases that start.
struct CaseCounter : doctest::IReporter {
  static inline int started = 0;
  explicit CaseCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
REGISTER_LISTENER("case_counter", 1, CaseCounter);

}  // namespace

int main(int argc, char** argv) {
  std::string filter;
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    for (const char* prefix : {"--test-case=", "-tc="})
      if (a.rfind(prefix, 0) == 0) {
        filter = a.substr(std::strlen(prefix));
        if (filter.find_first_of("*?,") == std::string::npos) opgraph::test::single_case() = true;
      }
    if (a.find("list") != std::string::npos || a == "-h" || a == "--help" || a == "-?") listing = true;
  }
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (result == 0 && !filter.empty() && !listing && CaseCounter::started == 0) {
    std::fprintf(stderr, "no test case matches '%s': a name that CTest cut (at ';') or a typo; nothing ran\n",
                 filter.c_str());
    return 1;
  }
  return result;
}
