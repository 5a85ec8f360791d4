// Row-wise softmax pieces shared by softmax, log_softmax and softmax_cross_entropy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops::detail {

/// The softmax ops work on the last axis; `axis` may say so as -1 or rank-1.
inline void expect_last_axis(const ShapeContext& c) {
  const std::int64_t axis = c.attr_int("axis");
  const int rank = c.in(0).rank();
  if (rank < 1) c.fail("needs at least one dimension, got shape {}", c.in(0));
  if (axis != -1 && axis != rank - 1) c.fail("only the last axis is supported (axis=-1), got axis={}", axis);
}

template <class T, class W>
T row_max(const T* x, W n) {
  T m = x[0];
  for (std::int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

/// For rows [b, e) of x [rows, n]: y = exp(x - max of its row). The exps are taken over
/// the whole block at once, so they vectorise across rows however narrow a row is.
template <class T, class W>
void exp_shifted_rows(const T* x, T* y, std::int64_t b, std::int64_t e, W n) {
  for (std::int64_t r = b; r < e; ++r) {
    const T m = row_max(x + r * n, n);
    for (std::int64_t j = 0; j < n; ++j) y[r * n + j] = x[r * n + j] - m;
  }
  for (std::int64_t i = b * n; i < e * n; ++i) y[i] = math::exp(y[i]);
}

template <class T, class W>
T row_sum(const T* x, W n) {
  T s = T(0);
  for (std::int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

/// The index of the first largest element of x[0, n).
template <class T, class W>
std::int64_t row_argmax(const T* x, W n) {
  std::int64_t best = 0;
  for (std::int64_t j = 1; j < n; ++j)
    if (x[j] > x[best]) best = j;
  return best;
}

/// sum of exp(x_j - m) over j != top, m = x[top]: what the softmax denominator holds beyond
/// the exact 1 of its largest term. log(sum) is taken as log1p of this, so a row such as
/// [3000, 2990] keeps its -4.54e-5 in f32 instead of rounding 1 + 4.54e-5 to 1.
template <class T, class W>
T rest_of_sum(const T* x, std::int64_t top, W n) {
  const T m = x[top];
  T s = T(0);
  for (std::int64_t j = 0; j < n; ++j) s += j == top ? T(0) : math::exp(x[j] - m);
  return s;
}

/// y = log_softmax(x) over rows [b, e) of [rows, n]: (x - m) - log1p(rest), both terms
/// small, never x - (m + log sum), which loses the answer to a rounding step of m.
template <class T, class W>
void log_softmax_rows(const T* x, T* y, std::int64_t b, std::int64_t e, W n) {
  for (std::int64_t r = b; r < e; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const std::int64_t top = row_argmax(xr, n);
    const T m = xr[top], lse = std::log1p(rest_of_sum(xr, top, n));
    for (std::int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - m) - lse;
  }
}

/// y = softmax(x) over rows [b, e) of [rows, n], stable for any magnitude.
template <class T, class W>
void softmax_rows(const T* x, T* y, std::int64_t b, std::int64_t e, W n) {
  exp_shifted_rows(x, y, b, e, n);
  for (std::int64_t r = b; r < e; ++r) {
    T* yr = y + r * n;
    const T inv = T(1) / row_sum(yr, n);
    for (std::int64_t j = 0; j < n; ++j) yr[j] *= inv;
  }
}

}  // namespace opgraph::ops::detail
