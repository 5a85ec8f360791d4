// The command line and the output of the benchmarks that write one markdown table
// (plan_bench, broadcast_bench, handoff_bench):  NAME [--out FILE] [--quick].
#pragma once

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace opgraph_bench {

struct TableArgs {
  std::string out;     // the file to write; stdout when empty
  bool quick = false;  // tiny sizes, one run: for the test that the benchmark runs
  bool ok = true;      // false: a usage error was printed, exit with 2
};

inline TableArgs table_args(int argc, char** argv, const char* name) {
  TableArgs a;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) a.out = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) a.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--out FILE] [--quick]\n", name);
      a.ok = false;
      return a;
    }
  }
  return a;
}

inline void write_table(const std::string& md, const std::string& out) {
  if (out.empty()) std::fputs(md.c_str(), stdout);
  else std::ofstream(out) << md;
}

}  // namespace opgraph_bench
