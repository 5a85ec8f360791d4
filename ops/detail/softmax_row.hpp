// Row-wise softmax pieces shared by softmax, log_softmax and softmax_cross_entropy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "strided.hpp"

namespace opgraph::ops::detail {

/// The shape rule of softmax and log_softmax: any axis (default the last).
inline Shape softmax_shape(const ShapeContext& c) {
  if (c.in(0).rank() < 1) c.fail("needs at least one dimension, got shape {}", c.in(0));
  c.axis("axis", c.in(0).rank());
  return c.in(0);
}

/// x as [outer, len, inner] around the normalised axis; inner == 1 for the last axis.
template <class K, class V>
AroundAxis lanes(const K& k, const V& x) {
  const std::int64_t a = k.attr_int("axis");
  return around(x, static_cast<int>(a < 0 ? a + x.rank : a));
}

/// Softmax (or log_softmax) along the middle axis of [outer, len, inner], inner > 1: each
/// lane is strided by `inner`; lanes in parallel chunks, each in a fixed order.
template <class T>
void softmax_lanes(const T* x, T* y, const AroundAxis& l, bool log) {
  parallel_for(l.outer * l.inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(l.len, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t lane = b; lane < e; ++lane) {
                   const std::int64_t base = (lane / l.inner) * l.len * l.inner + lane % l.inner;
                   T m = x[base];
                   for (std::int64_t j = 1; j < l.len; ++j) m = std::max(m, x[base + j * l.inner]);
                   T s = T(0);
                   for (std::int64_t j = 0; j < l.len; ++j) s += math::exp_nonpositive(x[base + j * l.inner] - m);
                   const T ls = std::log(s), inv = T(1) / s;
                   for (std::int64_t j = 0; j < l.len; ++j) {
                     const T v = x[base + j * l.inner] - m;
                     y[base + j * l.inner] = log ? v - ls : math::exp_nonpositive(v) * inv;
                   }
                 }
               });
}

/// The vjp of softmax_lanes from its output y: softmax y (g - <g, y>); log_softmax
/// g - exp(y) sum(g).
template <class T>
void softmax_lanes_vjp(const T* y, const T* g, T* dx, const AroundAxis& l, bool log) {
  parallel_for(l.outer * l.inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(l.len, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t lane = b; lane < e; ++lane) {
                   const std::int64_t base = (lane / l.inner) * l.len * l.inner + lane % l.inner;
                   T dot = T(0);
                   for (std::int64_t j = 0; j < l.len; ++j) {
                     const std::int64_t i = base + j * l.inner;
                     dot += log ? g[i] : g[i] * y[i];
                   }
                   for (std::int64_t j = 0; j < l.len; ++j) {
                     const std::int64_t i = base + j * l.inner;
                     dx[i] = log ? g[i] - math::exp_nonpositive(y[i]) * dot : y[i] * (g[i] - dot);
                   }
                 }
               });
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
  for (std::int64_t i = b * n; i < e * n; ++i) y[i] = math::exp_nonpositive(y[i]);
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
  for (std::int64_t j = 0; j < n; ++j) s += j == top ? T(0) : math::exp_nonpositive(x[j] - m);
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
