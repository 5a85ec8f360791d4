// ops/detail/lanes.hpp: the float reductions with their sixteen lanes in one vector give
// the bits of the generic lane_reduce, for every length up to a few vectors (the tails) and
// for values whose order matters (a sum that cancels, -0); sums of products
// the products' sum to rounding.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../ops/detail/lanes.hpp"

using namespace opgraph::ops::detail;

namespace {

std::uint32_t bits(float x) { return std::bit_cast<std::uint32_t>(x); }

/// Values of very different sizes (2^-spread/2 to 2^spread/2), so that the order of the
/// additions shows in the result.
std::vector<float> values(int n, std::uint32_t seed, int spread = 40) {
  std::vector<float> v(static_cast<std::size_t>(n));
  std::uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    const float mantissa = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f;
    x = std::ldexp(mantissa, static_cast<int>((s >> 3) % static_cast<std::uint32_t>(spread)) - spread / 2);
  }
  return v;
}

}  // namespace

TEST_CASE("lanes: the float vector reductions equal lane_reduce bit for bit") {
  for (int n = 1; n <= 70; ++n) {
    CAPTURE(n);
    const auto a = values(n, 17u + static_cast<std::uint32_t>(n)), b = values(n, 91u * static_cast<std::uint32_t>(n));
    const float sum = lane_sum<float>(n, [&](std::int64_t j) { return a[static_cast<std::size_t>(j)]; });
    CHECK(bits(lane_sum_floats(n, [&](auto at) { return at(a.data()); })) == bits(sum));
    // Products: whether a product and the add after it fuse into one multiply-add is the
    // compiler's choice (-ffp-contract=fast), made for each form of the loop. GCC's Release
    // build fuses both the same way (the same bits, and the transformer's checksum did not
    // move); clang's sanitizer builds did not in two tails (n = 37, 55: one ulp). So the
    // dot is held to the products' sum within a few ulp of its terms, and to one result
    // on every call.
    double exact = 0, size = 0;
    for (int j = 0; j < n; ++j) {
      const double p = static_cast<double>(a[static_cast<std::size_t>(j)]) * b[static_cast<std::size_t>(j)];
      exact += p;
      size += std::fabs(p);
    }
    const float dot = lane_sum_floats(n, [&](auto at) { return at(a.data()) * at(b.data()); });
    CHECK(std::fabs(dot - exact) <= 4 * 6e-8 * size);
    CHECK(bits(lane_sum_floats(n, [&](auto at) { return at(a.data()) * at(b.data()); })) == bits(dot));
  }
  // Order-dependent sums: 1e8 and -1e8 in the same lane cancel before the 1s are added.
  std::vector<float> c(48, 1.0f);
  c[0] = 1e8f;
  c[16] = -1e8f;
  CHECK(lane_sum_floats(48, [&](auto at) { return at(c.data()); }) == 47.0f - 1.0f);
  // Lanes start at +0, so a sum of -0s is +0, as lane_sum's.
  std::vector<float> z(5, -0.0f);
  CHECK(bits(lane_sum_floats(5, [&](auto at) { return at(z.data()); })) == bits(lane_sum<float>(5, [&](std::int64_t j) { return z[static_cast<std::size_t>(j)]; })));
  CHECK(!std::signbit(lane_sum_floats(5, [&](auto at) { return at(z.data()); })));
}

TEST_CASE("lanes: lane_sum_doubles equals lane_sum<double> bit for bit, squares to rounding") {
  for (int n = 1; n <= 70; ++n) {
    CAPTURE(n);
    // Sizes 2^120 apart: sums of floats in double are exact below a spread of about 2^29,
    // where no order would show.
    const auto a = values(n, 5u + 3u * static_cast<std::uint32_t>(n), 120);
    const double sum = lane_sum<double>(n, [&](std::int64_t j) { return static_cast<double>(a[static_cast<std::size_t>(j)]); });
    CHECK(std::bit_cast<std::uint64_t>(lane_sum_doubles(n, [&](auto at) { return at(a.data()); })) ==
          std::bit_cast<std::uint64_t>(sum));
    // Squared deviations, as a layer norm's variance: whether d * d fuses with the add is
    // the compiler's choice (as for the dot above), so to rounding of the terms, and one
    // result on every call.
    const double mean = sum / n;
    long double exact = 0;  // 64 bits of mantissa: its own rounding is far below the bound
    for (int j = 0; j < n; ++j) {
      const double d = static_cast<double>(a[static_cast<std::size_t>(j)]) - mean;
      exact += static_cast<long double>(d) * d;
    }
    auto squares = [&] {
      return lane_sum_doubles(n, [&](auto at) {
        const auto d = at(a.data()) - mean;
        return d * d;
      });
    };
    const double sq = squares();
    // Each lane adds n/16 positive terms, then four levels of the tree: an error of at
    // most (n/16 + 5) roundings of the total.
    CHECK(std::fabs(static_cast<long double>(sq) - exact) <= (n / 16 + 5) * 1.2e-16L * exact);
    CHECK(std::bit_cast<std::uint64_t>(squares()) == std::bit_cast<std::uint64_t>(sq));
  }
  // The order shows: 1e20 and -1e20 share lane 0 and cancel before lane 1's 1 joins them.
  std::vector<float> c(17, 0.0f);
  c[0] = 1e20f;
  c[16] = -1e20f;
  c[1] = 1.0f;
  CHECK(lane_sum_doubles(17, [&](auto at) { return at(c.data()); }) == 1.0);
  // A tail value of lane 8 joins lane 8, not lane 0: with 1 in lane 0 and 2^-53 twice in
  // lane 8 (element 8 and the tail's element 24), the two halves add to 2^-52 first, and
  // 1 + 2^-52 is a double; each added to 1 alone would round away (to even).
  std::vector<float> t(25, 0.0f);
  t[0] = 1.0f;
  t[8] = t[24] = std::ldexp(1.0f, -53);
  const double expected = 1.0 + std::ldexp(1.0, -52);
  CHECK(lane_sum<double>(25, [&](std::int64_t j) { return static_cast<double>(t[static_cast<std::size_t>(j)]); }) == expected);
  CHECK(lane_sum_doubles(25, [&](auto at) { return at(t.data()); }) == expected);
}
