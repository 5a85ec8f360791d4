// The TBB side of parallel_for: one pool, a thread cap, and the float mode of workers.
#include <opgraph/graph/parallel.hpp>

#include <atomic>
#include <memory>
#include <mutex>

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

// Under ThreadSanitizer: TBB's scheduler (libtbb.so) is not instrumented, so TSan cannot
// see that a parallel_for's chunks run after the call starts and finish before it returns;
// say so with its annotations (nothing is compiled in otherwise).
#if defined(__SANITIZE_THREAD__)
#define OPGRAPH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OPGRAPH_TSAN 1
#endif
#endif
#ifdef OPGRAPH_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace opgraph {

namespace {
#ifdef OPGRAPH_TSAN
void happens_before(void* sync) { __tsan_release(sync); }
void happens_after(void* sync) { __tsan_acquire(sync); }
#else
void happens_before(void*) {}
void happens_after(void*) {}
#endif

std::mutex threads_mutex;  // held to change the cap
std::unique_ptr<tbb::global_control> thread_cap;
// Read without the lock: every gemm asks for it, and at 2 threads on W8's attention the
// lock was contended.
std::atomic<int> thread_count{0};

#if defined(__SSE__)
constexpr unsigned kFlushDenormals = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
unsigned read_mode() { return _mm_getcsr(); }
void write_mode(unsigned mode) { _mm_setcsr(mode); }
#else
constexpr unsigned kFlushDenormals = 0;
unsigned read_mode() { return 0; }
void write_mode(unsigned) {}
#endif
}  // namespace

void set_num_threads(int threads) {
  std::lock_guard lock(threads_mutex);
  thread_cap.reset();
  thread_count.store(threads > 0 ? threads : 0, std::memory_order_relaxed);
  if (threads > 0)
    thread_cap = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                       static_cast<std::size_t>(threads));
}

int num_threads() {
  const int cap = thread_count.load(std::memory_order_relaxed);
  return cap > 0 ? cap : tbb::info::default_concurrency();
}

ThreadCount::ThreadCount(int threads) {
  {
    std::lock_guard lock(threads_mutex);
    saved_ = thread_count.load(std::memory_order_relaxed);
  }
  set_num_threads(threads);
}

ThreadCount::~ThreadCount() { set_num_threads(saved_); }

namespace detail {

FloatModeGuard::FloatModeGuard() : saved_(read_mode()) {
  if ((saved_ & kFlushDenormals) != kFlushDenormals) write_mode(saved_ | kFlushDenormals);
}

FloatModeGuard::~FloatModeGuard() {
  if ((saved_ & kFlushDenormals) != kFlushDenormals) write_mode(saved_);
}

void parallel_chunks(std::int64_t chunks, void (*body)(void*, std::int64_t), void* context) {
  char start = 0, end = 0;  // addresses for the TSan annotations
  happens_before(&start);
  // simple_partitioner with grain 1: one task per chunk, so the chunking stays the caller's.
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<std::int64_t>& r) {
        happens_after(&start);
        FloatModeGuard mode;  // every chunk, on any thread, flushes denormals: same bits everywhere
        for (std::int64_t c = r.begin(); c < r.end(); ++c) body(context, c);
        happens_before(&end);
      },
      tbb::simple_partitioner());
  happens_after(&end);
}

}  // namespace detail
}  // namespace opgraph
