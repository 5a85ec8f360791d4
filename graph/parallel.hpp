// Deterministic parallel loops over the one TBB pool (TBB itself stays out of this header).
#pragma once

#include <algorithm>
#include <cstdint>

namespace opgraph {

/// Caps the worker threads opgraph uses (0 = one per core). Results never depend on it.
void set_num_threads(int threads);
/// The current cap (the number of cores when none was set).
int num_threads();

/// Sets the thread cap for its lifetime, then restores the one before.
class ThreadCount {
 public:
  explicit ThreadCount(int threads);
  ~ThreadCount();
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

namespace detail {
void parallel_chunks(std::int64_t chunks, void (*body)(void*, std::int64_t), void* context);

/// Sets flush-to-zero and denormals-are-zero on this thread for its lifetime, then restores
/// the caller's mode. Plans run under it so tiny nets never slow down on denormal gradients,
/// and every thread rounds the same way.
class FloatModeGuard {
 public:
  FloatModeGuard();
  ~FloatModeGuard();
  FloatModeGuard(const FloatModeGuard&) = delete;
  FloatModeGuard& operator=(const FloatModeGuard&) = delete;

 private:
  unsigned saved_;
};
}  // namespace detail

/// Calls f(begin, end) on consecutive chunks of [0, n), each `grain` long but the last.
/// The chunks depend only on n and grain, never on the thread count, so a kernel that
/// writes each output from one chunk gives bitwise identical results on any pool.
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  // One chunk: no division to count them (a tiny net's step calls this some twenty times,
  // and a 64-bit division is tens of cycles).
  if (n <= grain) {
    f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t chunks = (n + grain - 1) / grain;
  auto body = [&](std::int64_t c) {
    const std::int64_t begin = c * grain;
    f(begin, std::min(n, begin + grain));
  };
  detail::parallel_chunks(
      chunks, [](void* p, std::int64_t c) { (*static_cast<decltype(body)*>(p))(c); }, &body);
}

/// Deterministic parallel sum: `partial(begin, end)` returns the sum of one chunk, and the
/// partials are added in chunk order. At most 64 chunks, so no allocation.
template <class F>
double parallel_sum(std::int64_t n, std::int64_t grain, F&& partial) {
  if (n <= 0) return 0.0;
  constexpr std::int64_t kMaxChunks = 64;
  grain = std::max({grain, std::int64_t{1}, (n + kMaxChunks - 1) / kMaxChunks});
  if (n <= grain) return 0.0 + partial(std::int64_t{0}, n);  // one chunk: the same sum, no division
  const std::int64_t chunks = (n + grain - 1) / grain;
  double partials[kMaxChunks];
  parallel_for(n, grain, [&](std::int64_t b, std::int64_t e) { partials[b / grain] = partial(b, e); });
  double total = 0.0;
  for (std::int64_t c = 0; c < chunks; ++c) total += partials[c];
  return total;
}

}  // namespace opgraph
