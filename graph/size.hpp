// Checked arithmetic for element and byte counts, and the process-wide memory budget.
// Every product of sizes (tensor bytes, plan arenas, parameter totals, batch x features)
// goes through these, so that a huge dimension is an error, never a wrapped count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <opgraph/graph/error.hpp>

namespace opgraph {

/// Memory a request would need, above what is allowed: a plan, a tensor, a dataset.
class ResourceError : public Error {
 public:
  using Error::Error;
};

/// The largest byte count opgraph allocates at once: 2^62. Counts past it are refused
/// with a ShapeError before any multiplication can wrap.
inline constexpr std::int64_t kMaxBytes = std::int64_t{1} << 62;

/// a * b for counts >= 0; nullopt-free: throws ShapeError "<what>: ... more than 2^62"
/// when the product passes kMaxBytes (or an operand is negative).
std::int64_t checked_mul(std::int64_t a, std::int64_t b, std::string_view what);
/// a + b for counts >= 0, with the same bound.
std::int64_t checked_add(std::int64_t a, std::int64_t b, std::string_view what);
/// The product of `dims` (each >= 0), with the same bound.
std::int64_t checked_product(std::span<const std::int64_t> dims, std::string_view what);
/// elements * element_size as a byte count, with the same bound.
std::size_t checked_bytes(std::int64_t elements, std::size_t element_size, std::string_view what);
/// The same tests without throwing: false when the result would pass kMaxBytes.
bool mul_fits(std::int64_t a, std::int64_t b, std::int64_t* out);
bool add_fits(std::int64_t a, std::int64_t b, std::int64_t* out);

/// "4.0 MiB", "1.20 GiB", "512 B": byte counts for messages (powers of 1024, as sizes
/// such as --memory-limit 512M are read).
std::string human_bytes(double bytes);

/// The process-wide memory budget: tensors and plan arenas reserve their bytes from it
/// before allocating, so a request past the limit is a ResourceError naming what asked,
/// never the kernel's OOM killer. The default is 80 % of the machine's physical memory.
void set_memory_limit(std::size_t bytes);  // 0: no limit
std::size_t memory_limit();
/// The default: 80 % of physical memory (sysconf), or 0 when unknown.
std::size_t default_memory_limit();
/// Bytes currently reserved by live tensors and plans.
std::size_t memory_in_use();

namespace detail {
/// Reserves `bytes` for `what` (e.g. "tensor of shape [100,10]"); throws ResourceError
/// "<what> needs 8.0 GB, above the memory limit of 4.0 GB (1.2 GB in use): ..." otherwise.
void reserve_memory(std::size_t bytes, std::string_view what);
/// The same without building a message: false when over the limit (nothing reserved).
bool try_reserve_memory(std::size_t bytes) noexcept;
[[noreturn]] void throw_over_limit(std::size_t bytes, std::string_view what);
void release_memory(std::size_t bytes) noexcept;

/// `bytes` (at least 1) of zeroed memory for tensors and plan arenas, 64-byte aligned;
/// throws std::bad_alloc. From kHugePageBytes up it is aligned to that and, on Linux,
/// asked to be backed by transparent huge pages (madvise) before it is zeroed: where
/// the system leaves huge pages to madvise, as Debian does, a weight matrix's GEMM
/// packing otherwise walks a new 4 KiB page (and TLB entry) for every row it reads.
/// From kMappedBytes up (Linux), a mapping of its own, populated: every page present and
/// zeroed when it returns. Free it with free_zeroed and the same `bytes`.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
/// From this size up (32 MiB, above which glibc maps every block afresh anyway), on Linux,
/// a block is a mapping of its own, populated with zeroed pages by one call: no memset
/// over pages the kernel has just zeroed, no trap per page.
inline constexpr std::size_t kMappedBytes = std::size_t{32} << 20;
void* allocate_zeroed(std::size_t bytes);
void free_zeroed(void* p, std::size_t bytes) noexcept;
/// The same memory left as it is (the caller writes every byte); free with free_zeroed.
void* allocate_pages(std::size_t bytes);

/// An allocator for a plan's arrays with an entry per node: from kHugePageBytes up, on
/// huge pages (allocate_pages). A 100 000-node plan's steps and kernel views are tens of
/// megabytes met for the first time; faulted in 4 KiB at a time they took as long as the
/// rest of compiling it.
template <class T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() = default;
  template <class U>
  PageAllocator(const PageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= 64, "allocate_pages aligns to 64 bytes");
    return static_cast<T*>(allocate_pages(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { free_zeroed(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PageAllocator<U>&) const noexcept { return true; }
};
}  // namespace detail

}  // namespace opgraph
