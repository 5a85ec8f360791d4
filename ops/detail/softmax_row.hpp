// Row-wise softmax pieces shared by softmax, log_softmax and softmax_cross_entropy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <opgraph/graph/op.hpp>

namespace opgraph::ops::detail {

/// The softmax ops work on the last axis; `axis` may say so as -1 or rank-1.
inline void expect_last_axis(const ShapeContext& c) {
  const std::int64_t axis = c.attr_int("axis");
  const int rank = c.in(0).rank();
  if (rank < 1) c.fail("needs at least one dimension, got shape {}", c.in(0));
  if (axis != -1 && axis != rank - 1) c.fail("only the last axis is supported (axis=-1), got axis={}", axis);
}

template <class T>
T row_max(const T* x, std::int64_t n) {
  T m = x[0];
  for (std::int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

/// y = softmax(x) over n entries, stable for any magnitude: exp(x - max).
template <class T>
void softmax_row(const T* x, T* y, std::int64_t n) {
  const T m = row_max(x, n);
  T s = T(0);
  for (std::int64_t j = 0; j < n; ++j) {
    y[j] = std::exp(x[j] - m);
    s += y[j];
  }
  const T inv = T(1) / s;
  for (std::int64_t j = 0; j < n; ++j) y[j] *= inv;
}

/// log(sum(exp(x))) over n entries, stable for any magnitude.
template <class T>
T log_sum_exp(const T* x, std::int64_t n) {
  const T m = row_max(x, n);
  T s = T(0);
  for (std::int64_t j = 0; j < n; ++j) s += std::exp(x[j] - m);
  return m + std::log(s);
}

}  // namespace opgraph::ops::detail
