// Broadcasting with NumPy's rules: the shape rule, elementwise maps over broadcast inputs
// with fast paths (same shape, a scalar, a row or a column), and sum_to, the reduction a
// broadcasting op's vjp needs. All deterministic for any thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <tuple>
#include <utility>

#include <opgraph/graph/kernel.hpp>

namespace opgraph {

/// The broadcast of two shapes (NumPy: align on the right; equal sizes, or one of them 1).
/// Symbolic dimensions broadcast with themselves and with 1. Throws ShapeError with
/// `what` in front: "add: shapes [N,4] and [3] do not broadcast (dimension -1: 4 against 3)".
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view what = {});
/// The shape rule of an elementwise op over all its inputs.
ShapeFn broadcast_shape();

namespace detail {

/// An elementwise loop over an output and up to 3 inputs, its dimensions coalesced: sizes
/// of 1 dropped, neighbours merged where every operand is contiguous across them. An
/// input's stride along a dimension is 0 where it is broadcast.
struct BroadcastLoop {
  static constexpr int kMaxOperands = 3;
  int rank = 0;
  int operands = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t strides[kMaxOperands][kMaxRank] = {};

  /// Offset of each operand at the start of outer row `o` (all dimensions but the last),
  /// and the row's index along each of those dimensions.
  void row_offsets(std::int64_t o, std::int64_t* offsets, std::int64_t* index) const {
    for (int k = 0; k < operands; ++k) offsets[k] = 0;
    for (int d = rank - 2; d >= 0; --d) {
      index[d] = o % dims[d];
      o /= dims[d];
      for (int k = 0; k < operands; ++k) offsets[k] += index[d] * strides[k][d];
    }
  }
  /// Moves offsets and index from one outer row to the next (an odometer: no division).
  void next_row(std::int64_t* offsets, std::int64_t* index) const {
    for (int d = rank - 2; d >= 0; --d) {
      for (int k = 0; k < operands; ++k) offsets[k] += strides[k][d];
      if (++index[d] < dims[d]) return;
      index[d] = 0;
      for (int k = 0; k < operands; ++k) offsets[k] -= strides[k][d] * dims[d];
    }
  }
};

/// Builds the loop for an output of dims `out` (rank `out_rank`) and inputs given by their
/// ranks and dims (right-aligned against the output, NumPy's rule).
BroadcastLoop broadcast_loop(int out_rank, const std::int64_t* out, int operands, const int* ranks,
                             const std::int64_t* const* dims);

template <class V>
std::int64_t view_size(const V& v) {
  return v.size;
}

}  // namespace detail

/// y = f(x0, x1, ...) elementwise, each x broadcast to y's shape (1 to 3 inputs).
template <class F, class Y, class... X>
void broadcast_map(F f, const Y& y, const X&... x) {
  static_assert(sizeof...(X) >= 1 && sizeof...(X) <= detail::BroadcastLoop::kMaxOperands);
  constexpr int n = static_cast<int>(sizeof...(X));
  auto* ys = y.data;
  const std::array ptrs{x.data...};
  // Same shape everywhere: one flat loop.
  if (((x.size == y.size) && ...)) {
    parallel_for(y.size, kElementwiseGrain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)
        [&]<std::size_t... K>(std::index_sequence<K...>) { ys[i] = f(ptrs[K][i]...); }(std::make_index_sequence<n>{});
    });
    return;
  }
  if constexpr (n == 2) {
    // A full operand and a trailing block of it ([N, c] and [c]: a bias): rows, no loop
    // to describe.
    // Named references, not a structured binding: clang before 16 cannot capture those.
    const auto& a = std::get<0>(std::tie(x...));
    const auto& b = std::get<1>(std::tie(x...));
    auto trailing = [&](const auto& v) {
      return v.rank <= y.rank && std::equal(v.dims, v.dims + v.rank, y.dims + (y.rank - v.rank));
    };
    if ((a.size == y.size && trailing(b)) || (b.size == y.size && trailing(a))) {
      const bool a_full = a.size == y.size;
      const std::int64_t width = a_full ? b.size : a.size;
      parallel_for(y.size / std::max<std::int64_t>(width, 1), row_grain(width), [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          auto* yr = ys + r * width;
          if (a_full)
            for (std::int64_t j = 0; j < width; ++j) yr[j] = f(a.data[r * width + j], b.data[j]);
          else
            for (std::int64_t j = 0; j < width; ++j) yr[j] = f(a.data[j], b.data[r * width + j]);
        }
      });
      return;
    }
  }
  const int ranks[] = {x.rank...};
  const std::int64_t* dims[] = {x.dims...};
  const detail::BroadcastLoop loop = detail::broadcast_loop(y.rank, y.dims, n, ranks, dims);
  const std::int64_t inner = loop.rank ? loop.dims[loop.rank - 1] : 1;
  const std::int64_t outer = inner ? y.size / inner : 0;
  std::array<bool, n> unit{};
  for (int k = 0; k < n; ++k) unit[static_cast<std::size_t>(k)] = loop.rank && loop.strides[k][loop.rank - 1] != 0;
  // The row width stays a runtime value in both loops: unrolling each width up to 16 at
  // compile time (with_width) made this template 17 copies of six loops per functor and
  // dtype (ops/math.cpp took 140 s to compile, 23 s without), for no time measured on the
  // few-column workloads (bench W3, W4).
  const std::int64_t width = inner;
  parallel_for(outer, row_grain(width), [&](std::int64_t r0, std::int64_t r1) {
    std::int64_t off[detail::BroadcastLoop::kMaxOperands], index[kMaxRank];
    loop.row_offsets(r0, off, index);
    for (std::int64_t r = r0; r < r1; ++r, loop.next_row(off, index)) {
      auto* yr = ys + r * width;
      [&]<std::size_t... K>(std::index_sequence<K...>) {
        const std::array rows{(ptrs[K] + off[K])...};
        if constexpr (n == 2) {
          // The common patterns get loops the compiler vectorises: two full rows (a bias
          // row against a matrix) or a full row against a broadcast scalar (x - mean).
          if (unit[0] && unit[1]) {
            for (std::int64_t j = 0; j < width; ++j) yr[j] = f(rows[0][j], rows[1][j]);
            return;
          }
          if (unit[0]) {
            const auto b = rows[1][0];
            for (std::int64_t j = 0; j < width; ++j) yr[j] = f(rows[0][j], b);
            return;
          }
          if (unit[1]) {
            const auto a = rows[0][0];
            for (std::int64_t j = 0; j < width; ++j) yr[j] = f(a, rows[1][j]);
            return;
          }
        }
        for (std::int64_t j = 0; j < width; ++j) yr[j] = f(rows[K][unit[K] ? j : 0]...);
      }(std::make_index_sequence<n>{});
    }
  });
}

/// Row sums of a [rows, cols] view into out[rows], each row summed in blocks of 256.
template <class T>
void row_sums(const T* x, std::int64_t rows, std::int64_t cols, T* out) {
  constexpr std::int64_t kBlock = 256;
  parallel_for(rows, row_grain(cols), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * cols;
      T total = T(0);
      for (std::int64_t c0 = 0; c0 < cols; c0 += kBlock) {
        T block = T(0);
        for (std::int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c) block += row[c];
        total += block;
      }
      out[r] = total;
    }
  });
}

/// target = g summed down to target's shape: over the dimensions where target is
/// broadcast against g (g has the broadcast shape). The vjp of every broadcasting op.
/// Deterministic for any thread count; same shapes copy.
template <class T>
void sum_to(const View<const T>& g, const View<T>& target) {
  if (target.size == g.size) {
    if (target.data != g.data) map(g, target, [](T v) { return v; });  // the same buffer: in place
    return;
  }
  if (target.size == 1) {
    target.data[0] = static_cast<T>(sum_over(g.size, [&](std::int64_t i) { return g.data[i]; }));
    return;
  }
  if (target.rank <= g.rank && std::equal(target.dims, target.dims + target.rank, g.dims + (g.rank - target.rank))) {
    // A trailing block ([c] against [..., c]): column sums, no loop to describe.
    View<const T> m = g;
    m.rank = 2;
    m.dims[0] = g.size / target.size;
    m.dims[1] = target.size;
    column_sums(m, target.data);
    return;
  }
  const int ranks[] = {target.rank};
  const std::int64_t* dims[] = {target.dims};
  const detail::BroadcastLoop loop = detail::broadcast_loop(g.rank, g.dims, 1, ranks, dims);
  const auto* s = loop.strides[0];
  if (loop.rank == 2 && s[0] == 0) {  // [R, K] -> [K]: column sums
    View<const T> m = g;
    m.rank = 2;
    m.dims[0] = loop.dims[0];
    m.dims[1] = loop.dims[1];
    column_sums(m, target.data);
    return;
  }
  if (loop.rank == 2 && s[1] == 0) {  // [K, R] -> [K]: row sums
    row_sums(g.data, loop.dims[0], loop.dims[1], target.data);
    return;
  }
  // General: each target element sums its reduced positions in a fixed order, walking
  // them with an odometer.
  std::int64_t gstride[kMaxRank];
  std::int64_t step = 1;
  for (int d = loop.rank - 1; d >= 0; --d) {
    gstride[d] = step;
    step *= loop.dims[d];
  }
  int kept[kMaxRank], reduced[kMaxRank], nk = 0, nr = 0;
  for (int d = 0; d < loop.rank; ++d) (s[d] ? kept[nk++] : reduced[nr++]) = d;
  std::int64_t per_target = 1;
  for (int i = 0; i < nr; ++i) per_target *= loop.dims[reduced[i]];
  const std::int64_t inner = loop.dims[reduced[nr - 1]], inner_stride = gstride[reduced[nr - 1]];
  parallel_for(target.size, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(per_target, 1)),
               [&](std::int64_t t0, std::int64_t t1) {
                 for (std::int64_t t = t0; t < t1; ++t) {
                   std::int64_t base = 0, rest = t;
                   for (int i = nk - 1; i >= 0; --i) {
                     base += (rest % loop.dims[kept[i]]) * gstride[kept[i]];
                     rest /= loop.dims[kept[i]];
                   }
                   std::int64_t index[kMaxRank] = {};
                   std::int64_t off = base;
                   double total = 0.0;
                   for (std::int64_t p = 0; p < per_target; p += inner) {
                     for (std::int64_t j = 0; j < inner; ++j) total += static_cast<double>(g.data[off + j * inner_stride]);
                     for (int i = nr - 2; i >= 0; --i) {  // next combination of the outer reduced dimensions
                       off += gstride[reduced[i]];
                       if (++index[i] < loop.dims[reduced[i]]) break;
                       index[i] = 0;
                       off -= gstride[reduced[i]] * loop.dims[reduced[i]];
                     }
                   }
                   target.data[t] = static_cast<T>(total);
                 }
               });
}

/// A view of `data` with the dims of `like` (e.g. scratch memory laid out as an output).
template <class T, class U>
View<T> view_like(T* data, const View<U>& like) {
  View<T> v;
  v.data = data;
  v.size = like.size;
  v.rank = like.rank;
  for (int i = 0; i < kMaxRank; ++i) v.dims[i] = like.dims[i];
  return v;
}

/// The vjp of a broadcasting binary op for input i: grad_in(i) = sum_to(f(g, a, b)), f the
/// partial derivative times the cotangent at each output element. When input i is
/// broadcast, the products go through the op's scratch (declare it with
/// `.scratch(broadcast_scratch())`), then sum down.
template <class K, class F>
void broadcast_vjp(K& k, int i, F f) {
  if (!k.needs_grad(i)) return;
  const auto& g = k.grad_out();
  const auto& gi = k.grad_in(i);
  if (gi.size == g.size) {
    broadcast_map(f, gi, g, k.in(0), k.in(1));
    return;
  }
  const auto tmp = view_like(k.scratch().data, g);
  broadcast_map(f, tmp, g, k.in(0), k.in(1));
  using T = typename K::value_type;
  sum_to(View<const T>(tmp), gi);
}

/// Scratch for broadcast_vjp: the output's size when an input is broadcast, else nothing.
ShapeFn broadcast_scratch();

}  // namespace opgraph
