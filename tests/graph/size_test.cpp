// Checked size arithmetic at the boundaries where counts wrap (2^31, 2^32, 2^53, 2^62,
// 2^63), against 128-bit arithmetic, and the sizes every allocation goes through.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/size.hpp>
#include <opgraph/graph/tensor.hpp>

using namespace opgraph;

namespace {

__extension__ using i128 = __int128;  // exact products of two 64-bit counts

/// Values around every boundary: b - 1, b, b + 1 for b in 2^31, 2^32, 2^53, 2^62, 2^63 - 1,
/// and small numbers.
std::vector<std::int64_t> boundary_values() {
  std::vector<std::int64_t> v = {0, 1, 2, 3, 4, 7, 8, 255, 256, 257, 65535, 65536};
  for (int bits : {31, 32, 53, 62}) {
    const std::int64_t b = std::int64_t{1} << bits;
    v.insert(v.end(), {b - 1, b, b + 1});
  }
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  v.insert(v.end(), {max - 1, max, (std::int64_t{1} << 31) * 3, (std::int64_t{1} << 32) + 12345});
  return v;
}

}  // namespace

TEST_CASE("size: checked multiply and add agree with 128-bit arithmetic at every boundary") {
  const i128 limit = kMaxBytes;
  int pairs = 0;
  for (std::int64_t a : boundary_values())
    for (std::int64_t b : boundary_values()) {
      CAPTURE(a);
      CAPTURE(b);
      const i128 product = static_cast<i128>(a) * b, sum = static_cast<i128>(a) + b;
      std::int64_t out = -1;
      CHECK(mul_fits(a, b, &out) == (product <= limit));
      if (product <= limit) {
        CHECK(out == static_cast<std::int64_t>(product));
        CHECK(checked_mul(a, b, "test") == static_cast<std::int64_t>(product));
      } else {
        CHECK_THROWS_AS(checked_mul(a, b, "test"), ShapeError);
      }
      CHECK(add_fits(a, b, &out) == (sum <= limit));
      if (sum <= limit) CHECK(checked_add(a, b, "test") == static_cast<std::int64_t>(sum));
      else CHECK_THROWS_AS(checked_add(a, b, "test"), ShapeError);
      ++pairs;
    }
  CHECK(pairs > 500);
  // Negative counts are never sizes.
  std::int64_t out = 0;
  CHECK_FALSE(mul_fits(-1, 2, &out));
  CHECK_FALSE(add_fits(2, -1, &out));
  CHECK_THROWS_WITH_AS(checked_mul(-1, 2, "rows"), "rows: negative count in -1 x 2", ShapeError);
}

TEST_CASE("size: random products of dimensions, checked against 128-bit arithmetic") {
  Rng rng(2026);
  for (int trial = 0; trial < 20000; ++trial) {
    std::vector<std::int64_t> dims(1 + rng.below(5));
    for (auto& d : dims) d = static_cast<std::int64_t>(rng.below(2) ? rng.below(1 << 20) : rng.next() >> (1 + rng.below(62)));
    i128 p = 1;
    bool over = false;
    for (auto d : dims) {
      if (d == 0) { p = 0; break; }
      if (over) continue;  // the product is past 2^62 already; multiplying on could overflow 128 bits
      p *= d;              // at most 2^62 x 2^63 = 2^125: exact
      if (p > kMaxBytes) over = true;  // a later zero does not undo it: the count was refused on the way
    }
    CAPTURE(trial);
    if (over && p != 0) {
      CHECK_THROWS_AS(checked_product(dims, "dims"), ShapeError);
    } else if (!over) {
      CHECK(checked_product(dims, "dims") == static_cast<std::int64_t>(p));
    }
  }
}

TEST_CASE("size: bytes of a tensor: 2^62 bytes at most, the multiply never wraps") {
  CHECK(checked_bytes(std::int64_t{1} << 60, 4, "t") == std::size_t{1} << 62);
  CHECK_THROWS_WITH_AS(checked_bytes(std::int64_t{1} << 61, 4, "t"),
                       "t: 2305843009213693952 values of 4 bytes are more than 2^62 bytes", ShapeError);
  CHECK_THROWS_AS(checked_bytes(std::numeric_limits<std::int64_t>::max(), 8, "t"), ShapeError);
  // 2^53 x 512 elements x 4 bytes wraps to 0 in 64 bits: refused, never a small buffer.
  CHECK_THROWS_WITH_AS(Tensor({std::int64_t{1} << 53, 512}),
                       "a tensor of shape [9007199254740992,512] (f32) needs more than 2^62 bytes", ShapeError);
  CHECK_THROWS_WITH_AS(Shape({std::int64_t{1} << 32, std::int64_t{1} << 32}).numel(),
                       "shape [4294967296,4294967296] holds more than 2^62 elements", ShapeError);
  CHECK(Shape({std::int64_t{1} << 31, 2}).numel() == std::int64_t{1} << 32);
}

TEST_CASE("size: graphs refuse shapes whose values cannot fit, wherever the shape comes from") {
  Graph g;
  CHECK_THROWS_WITH_AS(g.add_param("big", {std::int64_t{1} << 53, 512}),
                       "param 'big': shape [9007199254740992,512] has more values than fit in memory (over 2^62 bytes)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(g.add_input("x", {N, std::int64_t{1} << 32, std::int64_t{1} << 32}),
                       "input 'x': shape [N,4294967296,4294967296] has more values than fit in memory (over 2^62 bytes)",
                       ShapeError);
  CHECK_NOTHROW(g.add_input("ok", {N, std::int64_t{1} << 31}));
}

namespace {

/// The mapping of /proc/self/smaps that holds an address: its range, its resident size
/// and its THPeligible line (lo = hi = 0 when there is no such file: not Linux; thp ""
/// when the kernel does not report it).
struct Mapping {
  std::uintptr_t lo = 0, hi = 0;
  long rss_kb = -1;
  std::string thp;
};
Mapping mapping_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  Mapping m, current;
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    // A mapping's header ("lo-hi perms offset dev:inode path") has its first ':' after a
    // space; its attribute lines ("Size:   4 kB") before one.
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      if (inside) return m;
      inside = lo <= at && at < hi;
      if (inside) m = Mapping{lo, hi, -1, ""};
      continue;
    }
    if (!inside) continue;
    if (line.rfind("Rss:", 0) == 0) m.rss_kb = std::stol(line.substr(4));
    if (line.rfind("THPeligible:", 0) == 0) m.thp = line;
  }
  return m;
}

std::string thp_eligible(const void* p) { return mapping_of(p).thp; }

/// The system's transparent huge page mode: "always", "madvise", "never", or "" unknown.
std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string text;
  std::getline(f, text);
  const auto open = text.find('['), close = text.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : text.substr(open + 1, close - open - 1);
}

}  // namespace

TEST_CASE("size: tensors and plan arenas from 2 MiB up are aligned to 2 MiB and asked for huge pages") {
  // A weight matrix of 4 MiB, as W5's: its GEMM packing reads a row every 4 KiB.
  Tensor big(Shape{1024, 1024});
  Tensor small(Shape{100, 100});
  CHECK(reinterpret_cast<std::uintptr_t>(big.raw()) % detail::kHugePageBytes == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(small.raw()) % 64 == 0);
  for (std::int64_t i = 0; i < big.numel(); i += 4099) CHECK(big.at(i) == 0.0);  // zeroed
  CHECK(big.at(big.numel() - 1) == 0.0);
  // Where the system leaves huge pages to madvise (Debian's default), the mapping that
  // holds the big tensor says it may take them: the advice was given.
  const std::string mode = thp_mode(), eligible = thp_eligible(big.raw());
  if (mode == "madvise" || mode == "always") {
    if (eligible.empty()) MESSAGE("this kernel's smaps has no THPeligible line: the advice is not checked");
    else CHECK(eligible.find('1') != std::string::npos);
  } else {
    MESSAGE("transparent huge pages are '" << mode << "' here: the advice is not checked");
  }
}

// Under a sanitizer every block comes from the heap (graph/size.cpp), which it watches.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OPGRAPH_TEST_HEAP_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define OPGRAPH_TEST_HEAP_ONLY 1
#endif
#endif

TEST_CASE("size: blocks from 32 MiB up are mappings of their own, every page present and zero") {
  // A dataset's features or a 100 000-node plan's arena: one mapping, populated by one
  // call (no memset faulting the pages in after the kernel zeroed them), gone with the
  // block.
#ifdef OPGRAPH_TEST_HEAP_ONLY
  MESSAGE("under a sanitizer large blocks come from the heap: the mappings are not checked");
#else
  if (mapping_of(&kMaxBytes).hi == 0) {
    MESSAGE("no /proc/self/smaps here: the mappings are not checked");
    return;
  }
  // Present at allocation, before anything reads or writes it.
  constexpr std::size_t kBytes = std::size_t{36} << 20;
  void* p = detail::allocate_pages(kBytes);
  const Mapping fresh = mapping_of(p);
  CHECK(fresh.rss_kb >= static_cast<long>(kBytes >> 10));
  detail::free_zeroed(p, kBytes);
  // A tensor of 40 MiB: its own mapping, on a huge-page boundary, zeroed.
  std::uintptr_t lo = 0;
  {
    Tensor big(Shape{10 * 1024, 1024});
    lo = reinterpret_cast<std::uintptr_t>(big.raw());
    const Mapping m = mapping_of(big.raw());
    CHECK(lo % detail::kHugePageBytes == 0);
    CHECK(m.lo == lo);
    CHECK(m.hi - m.lo == std::uintptr_t{40} << 20);
    for (std::int64_t i = 0; i < big.numel(); i += 1021) REQUIRE(big.at(i) == 0.0);
  }
  // Freed: that range is no longer a mapping of 40 MiB from there.
  const Mapping after = mapping_of(reinterpret_cast<const void*>(lo));
  CHECK((after.hi == 0 || after.lo != lo || after.hi - after.lo != std::uintptr_t{40} << 20));
#endif
}
