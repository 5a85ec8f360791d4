// One line describing the machine a benchmark ran on, for the committed tables.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>
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

/// How many cores this process can use right now, measured: spin loops on one thread and
/// then on `threads` threads for 30 ms each; the ratio of work done. A shared machine can
/// lose a core for a minute (another tenant); timings taken then are not kept.
inline double cores_available(int threads) {
  auto spin = [](const std::atomic<bool>& stop, std::atomic<long>& total) {
    long n = 0;
    volatile double x = 1.0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 2000; ++i) x = x * 1.0000001 + 1e-9;
      ++n;
    }
    total += n;
  };
  auto measure = [&](int t) {
    std::atomic<bool> stop = false;
    std::atomic<long> total = 0;
    std::vector<std::thread> pool;
    for (int i = 0; i < t; ++i) pool.emplace_back(spin, std::cref(stop), std::ref(total));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    stop = true;
    for (auto& th : pool) th.join();
    return static_cast<double>(total.load());
  };
  const double one = measure(1);
  return one > 0 ? measure(threads) / one : 0.0;
}

}  // namespace opgraph_bench
