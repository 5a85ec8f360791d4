// The harness of the C++ contenders (workload_bench, bench/libtorch_bench.cpp,
// bench/dlib_bench.cpp): the same arguments, modes and JSON line, around a step and epoch.
//
//   <peer> --workload W1 --threads N [--mode time|verify|baseline] [--reps R]
//          [--min-seconds S] [--steps K] [--quick]
#pragma once

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "timing.hpp"
#include "workloads.hpp"

namespace bench {

struct PeerOptions {
  std::string workload, contender, mode = "time";
  int threads = 1, reps = 5, steps = 3;
  double min_seconds = 0.2;
  bool quick = false;
};

/// What a peer provides: a step on the first batch (returns the loss), an epoch of shuffled
/// minibatches (epoch workloads), and the final sync (a peer that trains asynchronously
/// waits for its work here, inside the timed region).
struct Peer {
  std::function<double()> step;
  std::function<void(int epoch)> epoch;
  std::function<void()> sync = [] {};
};

/// `profiles`: the usage lists --mode profile (workload_bench).
[[noreturn]] inline void peer_usage(const char* who, const std::string& why, bool profiles = false) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s --workload W [--contender C] --threads N [--mode time|verify|baseline%s] [--reps R] "
               "[--min-seconds S] [--steps K] [--quick]\n",
               who, why.c_str(), who, profiles ? "|profile" : "");
  std::exit(2);
}

/// `profiles`: the caller also takes --mode profile (workload_bench, for opgraph).
inline PeerOptions parse_peer(const char* who, int argc, char** argv, bool profiles = false) {
  PeerOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) peer_usage(who, "missing value after " + a, profiles);
      return argv[++i];
    };
    if (a == "--workload") o.workload = next();
    else if (a == "--mode") o.mode = next();
    else if (a == "--threads") o.threads = std::atoi(next().c_str());
    else if (a == "--reps") o.reps = std::atoi(next().c_str());
    else if (a == "--steps") o.steps = std::atoi(next().c_str());
    else if (a == "--min-seconds") o.min_seconds = std::atof(next().c_str());
    else if (a == "--quick") o.quick = true;
    else if (a == "--contender") o.contender = next();  // workload_bench's choice; the peers ignore it
    else peer_usage(who, "unknown argument " + a, profiles);
  }
  if (o.mode != "time" && o.mode != "verify" && o.mode != "baseline" && !(profiles && o.mode == "profile"))
    peer_usage(who, "unknown mode " + o.mode, profiles);
  if (o.mode != "baseline" && !find_workload(o.workload)) peer_usage(who, "unknown workload " + o.workload, profiles);
  if (o.threads < 1 || o.reps < 1 || o.steps < 1) peer_usage(who, "threads, reps and steps must be at least 1", profiles);
  return o;
}

/// Keeps this process on its first `threads` allowed CPUs: a library whose pool is sized
/// by the core count (dlib's) then still computes on `threads` cores.
inline void pin_to_cores(int threads) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  cpu_set_t keep;
  CPU_ZERO(&keep);
  int kept = 0;
  for (int c = 0; c < CPU_SETSIZE && kept < threads; ++c)
    if (CPU_ISSET(c, &allowed)) CPU_SET(c, &keep), ++kept;
  sched_setaffinity(0, sizeof keep, &keep);
}

/// Runs the mode and prints its JSON line; returns the exit status.
inline int run_peer(const char* contender, const PeerOptions& o, const Workload& w, Peer& p) {
  if (o.mode == "verify") {
    std::printf("{\"mode\":\"verify\",\"workload\":\"%s\",\"contender\":\"%s\",\"threads\":%d,\"losses\":[",
                w.name.c_str(), contender, o.threads);
    for (int s = 0; s < o.steps; ++s) std::printf("%s%.9g", s ? "," : "", p.step());
    std::printf("]}\n");
    return 0;
  }
  const Timed t = time_workload(w, o.quick, o.reps, o.min_seconds, p.step, p.epoch, p.sync);
  std::printf("{\"mode\":\"time\",\"workload\":\"%s\",\"contender\":\"%s\",\"threads\":%d,\"unit\":\"%s\","
              "\"steps_per_rep\":%lld,\"values\":[",
              w.name.c_str(), contender, o.threads, w.unit.c_str(), static_cast<long long>(t.per_rep));
  for (std::size_t i = 0; i < t.values.size(); ++i) std::printf("%s%.6g", i ? "," : "", t.values[i]);
  std::printf("]}\n");
  return 0;
}

}  // namespace bench
