// Helpers for writing kernels: elementwise maps and row loops, parallel in fixed chunks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>

namespace opgraph {

/// The scalar type of a kernel context: `using T = scalar_of<decltype(k)>;` in a generic lambda.
template <class K>
using scalar_of = typename std::remove_cvref_t<K>::value_type;

/// Elements per parallel chunk for elementwise kernels: small tensors stay on one thread.
inline constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 14;

/// Rows per chunk so that each chunk covers about kElementwiseGrain elements.
inline std::int64_t row_grain(std::int64_t cols) {
  return std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(cols, 1));
}

/// Calls f(width) with width a std::integral_constant when 1 <= cols <= 16, so that loops
/// over a row unroll at compile time (iris, XOR and 10-class outputs are a few columns
/// wide), and with the runtime value otherwise. f's results must not depend on which.
template <class F>
void with_width(std::int64_t cols, F&& f) {
  auto fixed = [&]<std::int64_t... W>(std::integer_sequence<std::int64_t, W...>) {
    return ((cols == W + 1 ? (f(std::integral_constant<std::int64_t, W + 1>{}), true) : false) || ...);
  };
  if (!fixed(std::make_integer_sequence<std::int64_t, 16>{})) f(cols);
}

/// Calls f(begin, end) on chunks of rows of `cols` elements, in parallel: for kernels that
/// make several passes over a chunk while it is in cache.
template <class F>
void for_row_chunks(std::int64_t rows, std::int64_t cols, F&& f) {
  parallel_for(rows, row_grain(cols), f);
}

/// y[i] = f(x[i])
template <class X, class Y, class F>
void map(const X& x, const Y& y, F f) {
  auto* xs = x.data;
  auto* ys = y.data;
  parallel_for(y.size, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) ys[i] = f(xs[i]);
  });
}

/// y[i] = f(a[i], b[i])
template <class A, class B, class Y, class F>
void zip(const A& a, const B& b, const Y& y, F f) {
  auto* as = a.data;
  auto* bs = b.data;
  auto* ys = y.data;
  parallel_for(y.size, kElementwiseGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) ys[i] = f(as[i], bs[i]);
  });
}

/// y[i] = f(a[i], b[i], c[i])
template <class A, class B, class C, class Y, class F>
void zip(const A& a, const B& b, const C& c, const Y& y, F f) {
  auto* as = a.data;
  auto* bs = b.data;
  auto* cs = c.data;
  auto* ys = y.data;
  parallel_for(y.size, kElementwiseGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) ys[i] = f(as[i], bs[i], cs[i]);
  });
}

/// Calls f(r) for every row r in [0, rows), rows of `cols` elements, in parallel chunks.
template <class F>
void for_each_row(std::int64_t rows, std::int64_t cols, F f) {
  parallel_for(rows, row_grain(cols), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) f(r);
  });
}

/// Sum of f(i) over [0, n) in double, deterministic for any thread count.
template <class F>
double sum_over(std::int64_t n, F f) {
  return parallel_sum(n, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
    double s = 0.0;
    for (std::int64_t i = b; i < e; ++i) s += static_cast<double>(f(i));
    return s;
  });
}

/// Column sums of `rows` rows of `cols` values, `ld` apart, into out[cols] (out = sum over
/// rows), deterministic: columns are split across threads, and each column is summed in
/// blocks of kColumnSumRows rows whose sums are then added in order, which keeps float32
/// rounding error near 256 + rows/256 ulps rather than `rows` (a bias gradient over a
/// 10 000-row batch sorted by class would otherwise drift). Each block's sum starts at 0
/// and takes its rows in order; out starts at 0 and takes the blocks in order: a product
/// that sums its B as it packs it (GemmEpilogue::b_sums) does the same additions.
inline constexpr std::int64_t kColumnSumRows = 256;
template <class T>
void column_sums(const T* x, std::int64_t rows, std::int64_t cols, std::int64_t ld, T* out) {
  constexpr std::int64_t kChunk = 64, kBlock = kColumnSumRows;
  if (cols <= 16) {  // narrow: every column at once, the row loop unrolled
    with_width(cols, [&](auto width) {
      T total[16] = {}, block[16];
      for (std::int64_t r0 = 0; r0 < rows; r0 += kBlock) {
        for (std::int64_t c = 0; c < width; ++c) block[c] = T(0);
        for (std::int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r)
          for (std::int64_t c = 0; c < width; ++c) block[c] += x[r * ld + c];
        for (std::int64_t c = 0; c < width; ++c) total[c] += block[c];
      }
      for (std::int64_t c = 0; c < width; ++c) out[c] = total[c];
    });
    return;
  }
  parallel_for(cols, kChunk, [&](std::int64_t c0, std::int64_t c1) {
    T block[kChunk];
    for (std::int64_t c = c0; c < c1; ++c) out[c] = T(0);
    for (std::int64_t r0 = 0; r0 < rows; r0 += kBlock) {
      for (std::int64_t c = c0; c < c1; ++c) block[c - c0] = T(0);
      for (std::int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r) {
        const T* row = x + r * ld;
        for (std::int64_t c = c0; c < c1; ++c) block[c - c0] += row[c];
      }
      for (std::int64_t c = c0; c < c1; ++c) out[c] += block[c - c0];
    }
  });
}

/// Column sums of a [rows, cols] view (the last axis its columns) into out[cols].
template <class T>
void column_sums(const View<const T>& x, T* out) {
  column_sums(x.data, x.rows(), x.cols(), x.cols(), out);
}

}  // namespace opgraph

#include <opgraph/graph/broadcast.hpp>
