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

// The same reductions over arrays of floats with the sixteen lanes as one vector: the same
// lanes, the same order in each, the same tree, so the same bits as lane_reduce. GCC kept
// lane_reduce's lanes for a max as sixteen scalar registers and combined a sum's lanes
// through the stack, which for rows of 64 (a transformer head's softmax, before it went down
// columns) cost more than the exponentials.
typedef float LaneVector __attribute__((vector_size(kReduceLanes * sizeof(float))));
typedef float LaneVectorIn __attribute__((vector_size(kReduceLanes * sizeof(float)), aligned(4), may_alias));

[[gnu::always_inline]] inline LaneVector lane_load(const float* p) { return *reinterpret_cast<const LaneVectorIn*>(p); }

/// Lane l combined with lane l + w, for w = 8, 4, 2, 1: lane 0 holds the result.
template <class Op>
[[gnu::always_inline]] inline float lane_tree(LaneVector v, Op&& op) {
  static_assert(kReduceLanes == 16);
  v = op(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
  v = op(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7));
  v = op(v, __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
  v = op(v, __builtin_shufflevector(v, v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1));
  return v[0];
}

/// lane_reduce over [0, n) of an expression of float arrays: f(at) where at(p) is p's
/// element j, as a float or, sixteen at a time, a vector of them. The lanes start at init
/// and take their tail as lane_reduce's: lanes 0, 1, ... The expression is evaluated the
/// same way in both forms (the same products and fused multiply-adds), so the result is
/// lane_reduce's.
template <class F, class Op>
[[gnu::always_inline]] inline float lane_reduce_floats(std::int64_t n, float init, F&& f, Op&& op) {
  LaneVector lane = LaneVector{} + init;
  std::int64_t j = 0;
  for (; j + kReduceLanes <= n; j += kReduceLanes) lane = op(lane, f([j](const float* p) { return lane_load(p + j); }));
  for (int l = 0; j < n; ++j, ++l) lane[l] = op(lane[l], f([j](const float* p) { return p[j]; }));
  return lane_tree(lane, op);
}

/// The sum of f(at) (lane_reduce_floats).
template <class F>
[[gnu::always_inline]] inline float lane_sum_floats(std::int64_t n, F&& f) {
  return lane_reduce_floats(n, 0.0f, f, [](auto a, auto b) { return a + b; });
}

// Sums in double of expressions of floats, with lane_sum<double>'s sixteen lanes as two
// vectors of eight doubles (lanes 0-7 and 8-15): the same lanes, order and tree, so the same
// bits. GCC kept lane_sum<double>'s lanes in memory and combined them through the stack,
// which with the dependent square root and division after them made a layer norm's forward
// pass over rows of 128 take about 260 cycles a row.
typedef double LaneHalf __attribute__((vector_size(8 * sizeof(double))));
typedef float LaneHalfIn __attribute__((vector_size(8 * sizeof(float)), aligned(4), may_alias));

/// The sum of f(at) over [0, n) in double, where at(p) is float p[j] as a double or, eight
/// at a time, a LaneHalf of them: lane_sum<double>(n, f(at of j)).
template <class F>
[[gnu::always_inline]] inline double lane_sum_doubles(std::int64_t n, F&& f) {
  LaneHalf lo{}, hi{};
  std::int64_t j = 0;
  for (; j + kReduceLanes <= n; j += kReduceLanes) {
    lo += f([j](const float* p) { return __builtin_convertvector(*reinterpret_cast<const LaneHalfIn*>(p + j), LaneHalf); });
    hi += f([j](const float* p) {
      return __builtin_convertvector(*reinterpret_cast<const LaneHalfIn*>(p + j + 8), LaneHalf);
    });
  }
  for (int l = 0; j < n; ++j, ++l) {
    const double v = f([j](const float* p) { return static_cast<double>(p[j]); });
    if (l < 8) lo[l] += v;
    else hi[l - 8] += v;
  }
  LaneHalf v = lo + hi;  // lane l + lane l + 8, then l + 4, l + 2, l + 1 (lane_reduce's tree)
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7);
  v += __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3);
  v += __builtin_shufflevector(v, v, 1, 1, 1, 1, 1, 1, 1, 1);
  return v[0];
}

}  // namespace opgraph::ops::detail
