// Reductions along a row that vectorise and still add in a fixed order.
//
// One running sum is a chain of dependent additions (four cycles an element), and GCC
// does not reorder it without -ffast-math: a row of 128 in a layer norm took 1000 cycles
// where a vector takes 8 elements a cycle. Here element j goes into running value
// j % kReduceLanes (one AVX-512 vector of floats: independent operations the compiler
// puts in one register), and the lanes are combined in a fixed tree at the end. The order
// depends only on n: the same result on any thread count.
#pragma once

#include <cstdint>

namespace opgraph::ops::detail {

inline constexpr int kReduceLanes = 16;

/// op over f(j) for j in [0, n), lanes starting at init, combined pairwise (lane l with
/// lane l + w, w = 8, 4, 2, 1). f may write as it reads (the exp-and-sum of a softmax).
template <class A, class F, class Op>
[[gnu::always_inline]] inline A lane_reduce(std::int64_t n, A init, F&& f, Op&& op) {
  A lane[kReduceLanes];
  for (int l = 0; l < kReduceLanes; ++l) lane[l] = init;
  std::int64_t j = 0;
  for (; j + kReduceLanes <= n; j += kReduceLanes)
    for (int l = 0; l < kReduceLanes; ++l) lane[l] = op(lane[l], f(j + l));
  for (int l = 0; j < n; ++j, ++l) lane[l] = op(lane[l], f(j));
  for (int w = kReduceLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) lane[l] = op(lane[l], lane[l + w]);
  return lane[0];
}

/// The sum of f(j), j in [0, n), accumulated in A.
template <class A, class F>
[[gnu::always_inline]] inline A lane_sum(std::int64_t n, F&& f) {
  return lane_reduce(n, A(0), f, [](A a, A b) { return a + b; });
}

/// The largest of x[0, n), n >= 1 (a NaN never replaces a value, as with std::max).
template <class T>
[[gnu::always_inline]] inline T lane_max(const T* x, std::int64_t n) {
  return lane_reduce(n, x[0], [&](std::int64_t j) { return x[j]; }, [](T a, T b) { return b > a ? b : a; });
}

}  // namespace opgraph::ops::detail
