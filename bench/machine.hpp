// One line describing the machine a benchmark ran on, for the committed tables.
#pragma once

#include <fstream>
#include <string>
#include <thread>

namespace opgraph_bench {

inline std::string machine_description() {
  std::string model = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return "Machine: " + model + ", " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads.";
}

}  // namespace opgraph_bench
