// How every C++ contender times one workload (workload_bench, the C++ peers): the same
// warm-up and repetitions, so that their figures compare.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "workloads.hpp"

namespace bench {

struct Timed {
  std::vector<double> values;  // per repetition, in the workload's unit
  std::int64_t per_rep = 1;    // steps per repetition
};

/// An epoch workload: one warm-up epoch (plans compiled, buffers touched), then `reps`
/// epochs. Otherwise 0.3 s of warm-up steps (a new process's second thread starts on the
/// first one's core and the scheduler takes some milliseconds to move it), then `reps`
/// repetitions of enough steps to last `min_seconds`. `sync` runs inside the timed region
/// after each (a contender that trains asynchronously waits for its work there).
inline Timed time_workload(const Workload& w, bool quick, int reps, double min_seconds,
                           const std::function<double()>& step, const std::function<void(int)>& epoch,
                           const std::function<void()>& sync = [] {}) {
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const double scale = w.unit == "ms/step" ? 1e3 : w.unit == "us/step" ? 1e6 : 1.0;
  Timed t;
  if (quick) reps = 1;
  if (w.epoch_rows > 0) {
    epoch(-1);
    sync();
    for (int rep = 0; rep < reps; ++rep) {
      const auto t0 = Clock::now();
      epoch(rep);
      sync();
      t.values.push_back(since(t0) * scale);
    }
    return t;
  }
  const auto t0 = Clock::now();
  int warm = 0;
  do step(), ++warm;
  while (warm < 3 || (!quick && since(t0) < 0.3));
  sync();
  const double one = since(t0) / warm;
  t.per_rep = quick ? 1 : std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(min_seconds / one)));
  for (int rep = 0; rep < reps; ++rep) {
    const auto t1 = Clock::now();
    for (std::int64_t s = 0; s < t.per_rep; ++s) step();
    sync();
    t.values.push_back(since(t1) / static_cast<double>(t.per_rep) * scale);
  }
  return t;
}

}  // namespace bench
