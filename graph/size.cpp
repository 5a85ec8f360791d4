// Checked size arithmetic and the memory budget.
#include <opgraph/graph/size.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>

#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <fmt/format.h>

namespace opgraph {

bool mul_fits(std::int64_t a, std::int64_t b, std::int64_t* out) {
  if (a < 0 || b < 0) return false;
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxBytes) return false;
  *out = r;
  return true;
}

bool add_fits(std::int64_t a, std::int64_t b, std::int64_t* out) {
  if (a < 0 || b < 0) return false;
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r) || r > kMaxBytes) return false;
  *out = r;
  return true;
}

std::int64_t checked_mul(std::int64_t a, std::int64_t b, std::string_view what) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw ShapeError(std::string(what), fmt::format("negative count in {} x {}", a, b));
  if (!mul_fits(a, b, &r)) throw ShapeError(std::string(what), fmt::format("{} x {} is more than 2^62", a, b));
  return r;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b, std::string_view what) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw ShapeError(std::string(what), fmt::format("negative count in {} + {}", a, b));
  if (!add_fits(a, b, &r)) throw ShapeError(std::string(what), fmt::format("{} + {} is more than 2^62", a, b));
  return r;
}

std::int64_t checked_product(std::span<const std::int64_t> dims, std::string_view what) {
  std::int64_t n = 1;
  for (auto d : dims) {
    if (d < 0) throw ShapeError(std::string(what), fmt::format("negative dimension {}", d));
    if (!mul_fits(n, d, &n))
      throw ShapeError(std::string(what), fmt::format("[{}] holds more than 2^62 elements", fmt::join(dims, ",")));
  }
  // A zero anywhere makes the product 0 even when the others overflow: still refuse dims
  // that could never be allocated on their own.
  return n;
}

std::size_t checked_bytes(std::int64_t elements, std::size_t element_size, std::string_view what) {
  std::int64_t r = 0;
  if (elements < 0 || !mul_fits(elements, static_cast<std::int64_t>(element_size), &r))
    throw ShapeError(std::string(what), fmt::format("{} values of {} bytes are more than 2^62 bytes", elements,
                                                    element_size));
  return static_cast<std::size_t>(r);
}

std::string human_bytes(double b) {
  if (b >= 0x1p40) return fmt::format("{:.2f} TiB", b / 0x1p40);
  if (b >= 0x1p30) return fmt::format("{:.2f} GiB", b / 0x1p30);
  if (b >= 0x1p20) return fmt::format("{:.1f} MiB", b / 0x1p20);
  if (b >= 0x1p10) return fmt::format("{:.1f} KiB", b / 0x1p10);
  return fmt::format("{:.0f} B", b);
}

namespace {
std::atomic<std::size_t>& limit_bytes() {
  static std::atomic<std::size_t> limit{default_memory_limit()};
  return limit;
}
std::atomic<std::size_t> in_use{0};
}  // namespace

std::size_t default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::size_t>(static_cast<double>(pages) * static_cast<double>(page) * 0.8);
}

void set_memory_limit(std::size_t bytes) { limit_bytes().store(bytes); }
std::size_t memory_limit() { return limit_bytes().load(); }
std::size_t memory_in_use() { return in_use.load(); }

namespace detail {

bool try_reserve_memory(std::size_t bytes) noexcept {
  const std::size_t limit = limit_bytes().load();
  std::size_t used = in_use.load();
  for (;;) {
    if (limit > 0 && (bytes > limit || used > limit - bytes)) return false;
    if (in_use.compare_exchange_weak(used, used + bytes)) return true;
  }
}

void throw_over_limit(std::size_t bytes, std::string_view what) {
  throw ResourceError(std::string(what),
                      fmt::format("needs {}, above the memory limit of {} ({} already in use): use less data, a "
                                  "smaller batch or model, or raise the limit (--memory-limit)",
                                  human_bytes(static_cast<double>(bytes)),
                                  human_bytes(static_cast<double>(limit_bytes().load())),
                                  human_bytes(static_cast<double>(in_use.load()))));
}

void reserve_memory(std::size_t bytes, std::string_view what) {
  if (!try_reserve_memory(bytes)) throw_over_limit(bytes, what);
}

void release_memory(std::size_t bytes) noexcept { in_use.fetch_sub(bytes); }

namespace {
constexpr std::size_t kSmallAlign = 64;
std::size_t alignment_for(std::size_t bytes) { return bytes >= kHugePageBytes ? kHugePageBytes : kSmallAlign; }

// Sanitizers watch the heap: under them every block comes from operator new.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OPGRAPH_HEAP_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define OPGRAPH_HEAP_ONLY 1
#endif
#endif

#if defined(__linux__) && !defined(OPGRAPH_HEAP_ONLY)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
constexpr bool kMapBlocks = true;
std::size_t mapped_size(std::size_t bytes) { return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes; }

/// A mapping of its own for a large block, on a huge-page boundary, asked for huge pages
/// and populated by one call: zeroed pages, every one present (MADV_POPULATE_WRITE; where
/// the kernel predates it, a write to each page). glibc maps blocks this large afresh
/// anyway; the block then also had every page zeroed twice (the kernel's fault, then the
/// memset that faulted it in) and a trap per page: in this VM 100 MB took 9 ms that way on
/// huge pages and 280-380 ms on 4 KiB ones, populated 5 and 18-27 ms.
void* map_block(std::size_t bytes) {
  const std::size_t size = mapped_size(bytes), reserve = size + kHugePageBytes;
  void* base = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  auto* const first = static_cast<char*>(base);
  auto* const p = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(first) + kHugePageBytes - 1) /
                                          kHugePageBytes * kHugePageBytes);
  if (p > first) (void)::munmap(first, static_cast<std::size_t>(p - first));  // the slack before the boundary
  if (first + reserve > p + size) (void)::munmap(p + size, static_cast<std::size_t>(first + reserve - (p + size)));
#if defined(MADV_HUGEPAGE)
  (void)::madvise(p, size, MADV_HUGEPAGE);
#endif
  if (::madvise(p, size, MADV_POPULATE_WRITE) != 0) {
    if (errno != EINVAL) {  // out of memory (or a fault): no block
      (void)::munmap(p, size);
      throw std::bad_alloc();
    }
    const long page = ::sysconf(_SC_PAGESIZE);
    for (std::size_t at = 0; at < size; at += static_cast<std::size_t>(page > 0 ? page : 4096)) p[at] = 0;
  }
  return p;
}
void unmap_block(void* p, std::size_t bytes) noexcept { (void)::munmap(p, mapped_size(bytes)); }
#else
constexpr bool kMapBlocks = false;  // elsewhere, and under the sanitizers: every block on the heap
void* map_block(std::size_t) { throw std::bad_alloc(); }
void unmap_block(void*, std::size_t) noexcept {}
#endif

/// Whether a block of `bytes` is a mapping of its own (map_block): from kMappedBytes up.
bool mapped(std::size_t bytes) { return kMapBlocks && bytes >= kMappedBytes; }
}  // namespace

void* allocate_zeroed(std::size_t bytes) {
  bytes = std::max<std::size_t>(bytes, 1);
  void* p = allocate_pages(bytes);
  if (!mapped(bytes)) std::memset(p, 0, bytes);  // a mapped block's pages come zeroed
  return p;
}

void* allocate_pages(std::size_t bytes) {
  bytes = std::max<std::size_t>(bytes, 1);
  if (mapped(bytes)) return map_block(bytes);
  const std::size_t align = alignment_for(bytes);
  void* p = ::operator new(bytes, std::align_val_t{align});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: where huge pages are off or none are free, the pages stay small. The
  // range runs to the end of the last huge page, so that page can be huge too; memory
  // past the block there (another block's, or none: madvise then fails, ignored) only
  // takes the same advice.
  if (align == kHugePageBytes) (void)madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
  return p;
}

void free_zeroed(void* p, std::size_t bytes) noexcept {
  bytes = std::max<std::size_t>(bytes, 1);
  if (mapped(bytes)) return unmap_block(p, bytes);
  ::operator delete(p, std::align_val_t{alignment_for(bytes)});
}

}  // namespace detail

}  // namespace opgraph
