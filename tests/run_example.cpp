// Runs an example, shows its output, and checks the figures in its last line of JSON.
//   run_example EXE "test_accuracy>=0.94;loss<=0.01" [example arguments...]
// The example's exit status counts first: 77 (no data) is passed on as CTest's skip code
// (a failure with OPGRAPH_REQUIRE_DATA=1), anything else but 0 fails. A figure that is not a
// finite number (NaN prints as null) fails every bound.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include <sys/wait.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: run_example EXE CHECKS [ARGS...]\n");
    return 2;
  }
  std::string command = std::string("'") + argv[1] + "'";
  for (int i = 3; i < argc; ++i) command += std::string(" '") + argv[i] + "'";
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return 2;
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  std::fputs(out.c_str(), stdout);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (rc == 77) {
    if (const char* r = std::getenv("OPGRAPH_REQUIRE_DATA"); r && std::string(r) == "1") {
      std::printf("FAIL: the example found no data, and OPGRAPH_REQUIRE_DATA=1\n");
      return 1;
    }
    return 77;
  }
  if (rc != 0) {
    std::printf("FAIL: %s exited with status %d\n", argv[1], rc);
    return 1;
  }
  std::string json = out;
  while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) json.pop_back();
  json = json.substr(json.rfind('\n') == std::string::npos ? 0 : json.rfind('\n') + 1);
  int failures = 0;
  const std::string checks = argv[2];
  std::size_t start = 0;
  while (start < checks.size()) {
    const std::size_t end = std::min(checks.find(';', start), checks.size());
    const std::string check = checks.substr(start, end - start);
    start = end + 1;
    std::smatch m;
    if (!std::regex_match(check, m, std::regex("([a-z_0-9]+)(>=|<=)(.+)"))) {
      std::printf("FAIL: bad check '%s'\n", check.c_str());
      return 2;
    }
    const std::string field = m[1], op = m[2];
    const double bound = std::stod(m[3]);
    std::smatch v;
    if (!std::regex_search(json, v, std::regex("\"" + field + "\":([^,}]*)"))) {
      std::printf("FAIL: no '%s' in the last line: %s\n", field.c_str(), json.c_str());
      ++failures;
      continue;
    }
    const std::string text = v[1];
    char* end_ptr = nullptr;
    const double value = std::strtod(text.c_str(), &end_ptr);
    const bool number = !text.empty() && end_ptr == text.c_str() + text.size() && std::isfinite(value);
    const bool ok = number && (op == ">=" ? value >= bound : value <= bound);
    std::printf("%s: %s = %s, expected %s %s\n", ok ? "check passed" : "FAIL", field.c_str(), text.c_str(), op.c_str(),
                m[3].str().c_str());
    failures += !ok;
  }
  return failures ? 1 : 0;
}
