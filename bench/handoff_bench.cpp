// What handing work to a second thread costs on this machine: opgraph::parallel_for over
// two chunks of the same work, on 1 thread and on 2, after the calling thread has worked
// alone for a while (the gap; the other thread idles, and after long enough TBB puts it to
// sleep). Two-thread speed-ups of the workloads depend on it: a step hands over dozens of
// parallel loops. A second table: a streaming loop whose halves each thread reads and writes,
// when they were last written by the same thread and when by the other one (the cost of
// moving data between the two cores' caches). And the round trip of one cache line between
// two threads, the latency under both (a few tens of ns between cores that share a cache,
// hundreds between chiplets or sockets). Writes markdown tables.
//
//   handoff_bench [--out FILE] [--quick]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <sched.h>

#include <opgraph/graph/parallel.hpp>

#include "machine.hpp"
#include "table_bench.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double micros(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

std::atomic<float> sink{0.0f};

/// A chunk of work: a dependent chain of multiply-adds, `steps` long (no memory traffic).
void work(std::int64_t steps) {
  float s = sink.load(std::memory_order_relaxed) + 0.5f;  // not a constant the compiler could fold
  for (std::int64_t i = 0; i < steps; ++i) s = s * 0.999f + 0.0005f;
  sink.store(s, std::memory_order_relaxed);
}

/// The calling thread busy on its own for `us` microseconds.
void alone(double us) {
  const auto t0 = Clock::now();
  while (micros(t0) < us) work(64);
}

/// Median microseconds of `timed()` over `reps` calls at `threads`, each after `before()`
/// (untimed); the first three calls start the pool and are not counted.
template <class Before, class Timed>
double median_calls(int threads, int reps, Before before, Timed timed) {
  opgraph::set_num_threads(threads);
  std::vector<double> t;
  for (int r = 0; r < reps + 3; ++r) {
    before();
    const auto t0 = Clock::now();
    timed(r);
    if (r >= 3) t.push_back(micros(t0));
  }
  opgraph::set_num_threads(0);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Median microseconds of parallel_for over two chunks of `steps` each, after `gap` µs alone.
double median_pair(int threads, std::int64_t steps, double gap, int reps) {
  return median_calls(threads, reps, [gap] { alone(gap); }, [steps](int) {
    opgraph::parallel_for(2, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) work(steps);
    });
  });
}

/// Median microseconds of x = x * 0.999 + b over n floats in two halves, one a chunk. With
/// `swap`, chunk c takes half 1 - c on every other call: each thread then reads and writes
/// the half the other thread wrote last.
double median_stream(int threads, std::int64_t n, bool swap, int reps) {
  std::vector<float> x(static_cast<std::size_t>(n), 1.0f), b(static_cast<std::size_t>(n), 0.5f);
  const double median = median_calls(threads, reps, [] {}, [&](int r) {
    const bool flip = swap && r % 2 == 1;
    opgraph::parallel_for(2, 1, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) {
        const std::int64_t h = flip ? 1 - c : c, lo = h * n / 2, hi = (h + 1) * n / 2;
        float* xs = x.data();
        const float* bs = b.data();
        for (std::int64_t i = lo; i < hi; ++i) xs[i] = xs[i] * 0.999f + bs[i];
      }
    });
  });
  sink.store(x[0] + x[static_cast<std::size_t>(n - 1)], std::memory_order_relaxed);
  return median;
}

/// Waits until `value` holds `want`: spinning, and yielding the CPU every few thousand
/// spins (a round trip between two free cores never gets there; two threads sharing one
/// CPU then take turns instead of each spinning out its time slice).
void wait_for(const std::atomic<long>& value, long want) {
  for (int spins = 0; value.load(std::memory_order_acquire) != want;)
    if (++spins % 4096 == 0) std::this_thread::yield();
}

/// Median nanoseconds of one round trip of a cache line between two threads: each waits for
/// the other's value in one atomic and answers with the next, `trips` times a sample.
double median_round_trip(int samples, long trips) {
  struct alignas(64) Line {
    std::atomic<long> value{0};
  };
  std::vector<double> ns;
  for (int s = 0; s < samples; ++s) {
    Line line;
    std::thread other([&] {
      for (long i = 1; i < 2 * trips; i += 2) {
        wait_for(line.value, i);
        line.value.store(i + 1, std::memory_order_release);
      }
    });
    const auto t0 = Clock::now();
    for (long i = 0; i < 2 * trips; i += 2) {
      wait_for(line.value, i);
      line.value.store(i + 1, std::memory_order_release);
    }
    wait_for(line.value, 2 * trips);
    ns.push_back(micros(t0) * 1e3 / static_cast<double>(trips));
    other.join();
  }
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

/// The CPUs this process may run on (its affinity mask), at least 1.
int allowed_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

int main(int argc, char** argv) {
  const opgraph_bench::TableArgs args = opgraph_bench::table_args(argc, argv, "handoff_bench");
  if (!args.ok) return 2;
  // Steps for about 1 µs of one chunk: the fastest of a few probes on this thread (the
  // first ones run while the core's clock ramps up).
  constexpr std::int64_t kProbe = 1 << 20;
  double best = 1e30;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = Clock::now();
    work(kProbe);
    best = std::min(best, micros(t0));
  }
  const double steps_per_us = static_cast<double>(kProbe) / std::max(best, 1e-3);
  const int reps = args.quick ? 5 : 301;
  const std::vector<double> chunks = args.quick ? std::vector<double>{2} : std::vector<double>{2, 10, 50};
  const std::vector<double> gaps = args.quick ? std::vector<double>{0} : std::vector<double>{0, 50, 200, 1000, 5000};
  std::string md = fmt::format(
      "{}\n\nopgraph::parallel_for over two chunks of the same work (a chain of multiply-adds), "
      "median of {} calls, each after the calling thread has worked alone for the gap. 2 threads "
      "ideally take one chunk's time: the difference is the hand-off.\n\n",
      opgraph_bench::machine_description(), reps);
  md += "| one chunk | gap alone | 1 thread | 2 threads | speed-up | hand-off cost |\n|---|---|---|---|---|---|\n";
  for (const double chunk : chunks)
    for (const double gap : gaps) {
      const auto steps = static_cast<std::int64_t>(chunk * steps_per_us);
      const double one = median_pair(1, steps, gap, reps), two = median_pair(2, steps, gap, reps);
      md += fmt::format("| {:.0f} µs | {:.0f} µs | {:.1f} µs | {:.1f} µs | {:.2f}× | {:+.1f} µs |\n", chunk, gap, one, two,
                        one / two, two - one / 2);
      std::fprintf(stderr, "chunk %.0f us, gap %.0f us: 1 thread %.1f us, 2 threads %.1f us\n", chunk, gap, one, two);
    }
  md += fmt::format(
      "\nThe same parallel_for over the two halves of a streaming loop, x = 0.999 x + b on n floats, "
      "back to back (median of {} calls). On 2 threads each half stays with the thread that wrote it "
      "last, or (swapped) goes to the other thread on every call: then each core reads and writes "
      "what the other core's cache holds. A kernel meets the second case when the thread that runs a "
      "chunk is not the one that wrote its data: a serial op after a parallel one, or chunks of "
      "another size over the same memory.\n\n",
      reps);
  md += "| n | 1 thread | 2 threads, same halves | speed-up | 2 threads, halves swapped | speed-up |\n"
        "|---|---|---|---|---|---|\n";
  const std::vector<std::int64_t> sizes =
      args.quick ? std::vector<std::int64_t>{1 << 16} : std::vector<std::int64_t>{1 << 16, 1 << 18, 1 << 20};
  for (const std::int64_t n : sizes) {
    const double one = median_stream(1, n, false, reps), same = median_stream(2, n, false, reps),
                 swapped = median_stream(2, n, true, reps);
    md += fmt::format("| {} ({} KiB an array) | {:.1f} µs | {:.1f} µs | {:.2f}× | {:.1f} µs | {:.2f}× |\n", n,
                      n * 4 / 1024, one, same, one / same, swapped, one / swapped);
    std::fprintf(stderr, "stream %lld floats: 1 thread %.1f us, 2 same %.1f us, 2 swapped %.1f us\n",
                 static_cast<long long>(n), one, same, swapped);
  }
  if (allowed_cpus() < 2) {
    md += "\nThe round trip of a cache line between two cores is not measured: this process may run on one CPU.\n";
  } else {
    const double trip = median_round_trip(args.quick ? 3 : 7, args.quick ? 20000 : 200000);
    md += fmt::format(
        "\nOne cache line passed back and forth between two threads (each waits for the other's write, "
        "then writes; median of {} runs): **{:.0f} ns a round trip**, so about {:.0f} ns for a line to move "
        "from one core's cache to the other's. Cores that share a cache take a few tens of ns; cores on "
        "different chiplets or sockets, hundreds. Every line a 2-thread step hands between the threads "
        "pays it.\n",
        args.quick ? 3 : 7, trip, trip / 2);
    std::fprintf(stderr, "cache-line round trip %.0f ns\n", trip);
  }
  opgraph_bench::write_table(md, args.out);
  return 0;
}
