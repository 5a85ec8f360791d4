// Reductions over axes, NumPy's: sum, mean, max, logsumexp and var over one axis, a list
// of axes, or every element (axis=none), with keepdims. Each output is reduced in a fixed
// order, so results are the same for any thread count.
#include <opgraph/graph/op.hpp>

#include <array>
#include <limits>

#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {

/// Which axes of a rank-`rank` input are reduced (a mask), from an axis attribute that is
/// none (all), one integer or a list; an error message when an axis is out of range or
/// repeated.
using Mask = std::array<bool, kMaxRank>;

std::string reduced_axes(const AttrValue& axis, int rank, Mask* mask) {
  mask->fill(axis.is_none());
  if (axis.is_none()) return "";
  for (std::int64_t a : axis.as_ints()) {
    if (a < -rank || a >= rank)
      return rank == 0 ? fmt::format("axis {} but the input is a scalar, which has no axis", a)
                       : fmt::format("axis {} is out of range for rank {} (use {}..{})", a, rank, -rank, rank - 1);
    const auto i = static_cast<std::size_t>(a < 0 ? a + rank : a);
    if ((*mask)[i]) return fmt::format("axis {} is named twice", a);
    (*mask)[i] = true;
  }
  return "";
}

Shape reduce_shape(const ShapeContext& c) {
  const Shape& x = c.in(0);
  Mask mask;
  if (auto e = reduced_axes(c.attr("axis"), x.rank(), &mask); !e.empty()) c.fail("{}", e);
  const bool keep = c.attr_bool("keepdims");
  std::vector<std::int64_t> dims;
  for (int i = 0; i < x.rank(); ++i) {
    if (!mask[static_cast<std::size_t>(i)]) dims.push_back(x[i]);
    else if (keep) dims.push_back(1);
  }
  return Shape(std::move(dims));
}

/// reduce_shape for the maximum, a reduction with no identity: refused over an axis of
/// size 0 unless the output is empty too (NumPy's rule; PyTorch refuses either way). Its
/// kernel had returned whatever the output's buffer held.
Shape nonempty_reduce_shape(const ShapeContext& c) {
  const Shape y = reduce_shape(c);
  const Shape& x = c.in(0);
  Mask mask;
  reduced_axes(c.attr("axis"), x.rank(), &mask);
  bool empty_output = false;
  for (int i = 0; i < y.rank(); ++i) empty_output = empty_output || y[i] == 0;
  for (int i = 0; i < x.rank(); ++i)
    if (mask[static_cast<std::size_t>(i)] && x[i] == 0 && !empty_output)
      c.fail("axis {} of {} has size 0, and the maximum of no values is undefined", i, x);
  return y;
}

/// The input seen from the outputs: kept and reduced dimensions with their strides in the
/// input, neighbours of the same kind merged where contiguous.
struct Reduction {
  int kept = 0, reduced = 0;
  std::int64_t kept_dims[kMaxRank] = {}, kept_strides[kMaxRank] = {};
  std::int64_t red_dims[kMaxRank] = {}, red_strides[kMaxRank] = {};
  std::int64_t outputs = 1, count = 1;  // outputs, and elements reduced into each

  /// The input offset of output o's first element.
  std::int64_t base(std::int64_t o) const {
    std::int64_t off = 0;
    for (int d = kept - 1; d >= 0; --d) {
      off += (o % kept_dims[d]) * kept_strides[d];
      o /= kept_dims[d];
    }
    return off;
  }
  /// Calls f(offset) for every element reduced into the output at `base`, in a fixed order.
  template <class F>
  void each(std::int64_t base, F f) const {
    if (reduced == 1) {  // the usual case: one run, often contiguous
      for (std::int64_t j = 0; j < red_dims[0]; ++j) f(base + j * red_strides[0]);
      return;
    }
    std::int64_t index[kMaxRank] = {};
    for (std::int64_t n = 0; n < count; ++n) {
      std::int64_t off = base;
      for (int d = 0; d < reduced; ++d) off += index[d] * red_strides[d];
      f(off);
      for (int d = reduced - 1; d >= 0; --d) {
        if (++index[d] < red_dims[d]) break;
        index[d] = 0;
      }
    }
  }
};

template <class V>
Reduction reduction(const V& x, const AttrValue& axis) {
  Mask mask;
  reduced_axes(axis, x.rank, &mask);
  std::int64_t strides[kMaxRank];
  detail::contiguous_strides(x.dims, x.rank, strides);
  Reduction r;
  int last = -1;  // kind of the previous non-trivial dimension: 0 kept, 1 reduced
  for (int d = 0; d < x.rank; ++d) {
    const bool red = mask[static_cast<std::size_t>(d)];
    (red ? r.count : r.outputs) *= x.dims[d];
    if (x.dims[d] == 1) continue;
    int& n = red ? r.reduced : r.kept;
    std::int64_t* dims = red ? r.red_dims : r.kept_dims;
    std::int64_t* st = red ? r.red_strides : r.kept_strides;
    if (last == static_cast<int>(red) && n > 0 && st[n - 1] == x.dims[d] * strides[d]) {
      dims[n - 1] *= x.dims[d];  // merge with the previous dimension of the same kind
      st[n - 1] = strides[d];
    } else {
      dims[n] = x.dims[d];
      st[n] = strides[d];
      ++n;
    }
    last = static_cast<int>(red);
  }
  if (r.reduced == 0) {  // reducing only dimensions of 1: one element each
    r.reduced = 1;
    r.red_dims[0] = 1;
    r.red_strides[0] = 1;
  }
  return r;
}

/// y[o] = finish(o, acc) with acc folded over output o's elements by `fold`, in parallel
/// over outputs.
template <class T, class Init, class Fold, class Finish>
void reduce_each(const Reduction& r, const T* x, T* y, Init init, Fold fold, Finish finish) {
  parallel_for(r.outputs, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(r.count, 1)),
               [&](std::int64_t o0, std::int64_t o1) {
                 for (std::int64_t o = o0; o < o1; ++o) {
                   const std::int64_t b = r.base(o);
                   auto acc = init(b);
                   r.each(b, [&](std::int64_t off) { acc = fold(acc, x[off]); });
                   y[o] = finish(acc, b);
                 }
               });
}

/// g (the output's gradient) seen with x's rank: reduced axes of size 1.
template <class T, class V>
View<const T> kept_view(const View<const T>& g, const V& x, const AttrValue& axis) {
  Mask mask;
  reduced_axes(axis, x.rank, &mask);
  View<const T> v = g;
  v.rank = x.rank;
  for (int d = 0; d < x.rank; ++d) v.dims[d] = mask[static_cast<std::size_t>(d)] ? 1 : x.dims[d];
  return v;
}

template <class K>
void sum_forward(K& k, bool mean) {
  using T = scalar_of<K>;
  const auto& x = k.in(0);
  const Reduction r = reduction(x, k.attr("axis"));
  if (r.outputs == 1) {  // everything: a deterministic parallel sum in double
    const double total = sum_over(x.size, [&](std::int64_t i) { return x.data[i]; });
    k.out().data[0] = static_cast<T>(mean ? total / static_cast<double>(x.size) : total);  // of none: 0/0, NaN
    return;
  }
  // The mean of no values is NaN, as NumPy's and PyTorch's (their sum, 0, times 1/0).
  const T f = mean ? T(1) / static_cast<T>(r.count) : T(1);
  if (r.kept == 1 && r.reduced == 1 && r.red_strides[0] > 1 && r.kept_strides[0] == 1) {
    // [len, inner] -> [inner] (columns, e.g. over the batch): row by row into the outputs,
    // in chunks of 64 columns; each column still summed in row order.
    const std::int64_t len = r.red_dims[0], inner = r.kept_dims[0];
    T* y = k.out().data;
    parallel_for(inner, 64, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) y[i] = T(0);
      for (std::int64_t l = 0; l < len; ++l)
        for (std::int64_t i = i0; i < i1; ++i) y[i] += x.data[l * inner + i];
      for (std::int64_t i = i0; i < i1; ++i) y[i] *= f;
    });
    return;
  }
  reduce_each(
      r, x.data, k.out().data, [](std::int64_t) { return T(0); }, [](T a, T v) { return a + v; },
      [f](T a, std::int64_t) { return a * f; });
}

template <class K>
void sum_vjp(K& k, bool mean) {
  using T = scalar_of<K>;
  const auto& dx = k.grad_in(0);
  const Reduction r = reduction(dx, k.attr("axis"));
  const T f = mean ? T(1) / static_cast<T>(std::max<std::int64_t>(r.count, 1)) : T(1);
  broadcast_map([f](T g) { return g * f; }, dx, kept_view(k.grad_out(), dx, k.attr("axis")));
}

OpBuilder& reduction_attrs(OpBuilder& b, const char* what) {
  return b.input("x")
      .attr("axis", AttrType::int_list, AttrValue(), fmt::format("the axis or axes to {}; none: every element", what))
      .attr("keepdims", AttrType::boolean, false, "keep reduced axes as size 1 (NumPy's keepdims)")
      .shape(reduce_shape);
}

}  // namespace

OPGRAPH_OP(sum)
    .lower([](LoweringContext& c) { lowering::reduce(c, "ReduceSum", c.input(0), c.output()); })
    .doc("sum over an axis, a list of axes or every element (axis=none), NumPy's keepdims")
    .apply([](OpBuilder& b) { reduction_attrs(b, "sum over"); })
    .forward([](auto& k) { sum_forward(k, false); })
    .vjp([](auto& k) { sum_vjp(k, false); })
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"axis", 0}})
    .check({"[a,b,c]"}, {{"axis", 1}})
    .check({"[a,b]"}, {{"axis", -1}})
    .check({"[a,b,c]"}, {{"axis", IntList{0, 2}}, {"keepdims", true}});

OPGRAPH_OP(mean)
    .lower([](LoweringContext& c) { lowering::reduce(c, "ReduceMean", c.input(0), c.output()); })
    .doc("mean over an axis, a list of axes or every element (axis=none), NumPy's keepdims")
    .apply([](OpBuilder& b) { reduction_attrs(b, "average over"); })
    .forward([](auto& k) { sum_forward(k, true); })
    .vjp([](auto& k) { sum_vjp(k, true); })
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"axis", 0}})
    .check({"[a,b,c]"}, {{"axis", -1}, {"keepdims", true}})
    .check({"[a,b,c]"}, {{"axis", IntList{0, 1}}});

// The gradient goes to the first largest element of each reduction (PyTorch's max along
// a dimension); NaN anywhere makes the maximum NaN.
OPGRAPH_OP(max)
    .lower([](LoweringContext& c) { lowering::reduce(c, "ReduceMax", c.input(0), c.output()); })
    .doc("the largest element over axes (NaN if any is NaN); the gradient goes to the first largest")
    .apply([](OpBuilder& b) { reduction_attrs(b, "take the maximum over"); })
    .shape(nonempty_reduce_shape)
    .saves({"x"})
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      reduce_each(
          reduction(x, k.attr("axis")), x.data, k.out().data, [&](std::int64_t b) { return x.data[b]; },
          [](T a, T v) { return a != a || v != v ? a + v : v > a ? v : a; }, [](T a, std::int64_t) { return a; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& dx = k.grad_in(0);
      const Reduction r = reduction(x, k.attr("axis"));
      map(dx, dx, [](T) { return T(0); });
      const T *y = k.out().data, *g = k.grad_out().data;
      parallel_for(r.outputs, 1, [&](std::int64_t o0, std::int64_t o1) {
        for (std::int64_t o = o0; o < o1; ++o) {
          bool found = false;
          r.each(r.base(o), [&](std::int64_t off) {
            if (!found && (x.data[off] == y[o] || (y[o] != y[o] && x.data[off] != x.data[off]))) {
              dx.data[off] = g[o];
              found = true;
            }
          });
        }
      });
    })
    // Few elements per maximum: among thousands, two come within the checker's step of
    // each other and the finite difference crosses the kink.
    .check({"[4,3]"})
    .check({"[a,5]"}, {{"axis", 1}})
    .check({"[3,b,4]"}, {{"axis", IntList{0, 2}}, {"keepdims", true}});

OPGRAPH_OP(logsumexp)
    .lower([](LoweringContext& c) { lowering::reduce(c, "ReduceLogSumExp", c.input(0), c.output()); })
    .doc("log(sum(exp(x))) over axes, computed stably (the max is taken out first)")
    .apply([](OpBuilder& b) { reduction_attrs(b, "reduce"); })
    .saves({"x"})
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Reduction r = reduction(x, k.attr("axis"));
      T* y = k.out().data;
      parallel_for(r.outputs, 1, [&](std::int64_t o0, std::int64_t o1) {
        for (std::int64_t o = o0; o < o1; ++o) {
          const std::int64_t b = r.base(o);
          T m = x.data[b];
          r.each(b, [&](std::int64_t off) { m = m != m || x.data[off] != x.data[off] ? m + x.data[off] : std::max(m, x.data[off]); });
          if (!std::isfinite(m)) {  // NaN, all -inf (the log of 0) or a +inf
            y[o] = m;
            continue;
          }
          T s = T(0);
          r.each(b, [&](std::int64_t off) { s += math::exp_nonpositive(x.data[off] - m); });
          y[o] = m + std::log(s);
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& dx = k.grad_in(0);
      const auto& axis = k.attr("axis");
      broadcast_map([](T xv, T yv, T g) { return g * math::exp_nonpositive(xv - yv); }, dx, x, kept_view(View<const T>(k.out()), x, axis),
                    kept_view(k.grad_out(), x, axis));
    })
    .check({"[a,b]"})
    .check({"[a,b,c]"}, {{"axis", -1}})
    .check({"[a,b,c]"}, {{"axis", IntList{0, 1}}, {"keepdims", true}})
    .check({"[a,b]"}, {{"axis", 1}}, 100.0);  // e^100 overflows f32

OPGRAPH_OP(var)
    .lower([](LoweringContext& c) {  // mean((x - mean(x))^2), times n / (n - ddof)
      const Shape& x = c.in_shape(0);
      IntList axes;
      if (c.attr("axis").is_none())
        for (int d = 0; d < x.rank(); ++d) axes.push_back(d);
      else
        for (std::int64_t a : c.attr_ints("axis")) axes.push_back(a < 0 ? a + x.rank() : a);
      std::int64_t count = 1;
      for (std::int64_t a : axes) {
        if (is_symbolic(x[static_cast<int>(a)])) c.fail("the variance over a symbolic axis ({})", x);
        count *= x[static_cast<int>(a)];
      }
      const std::int64_t ddof = c.attr_int("ddof");
      const std::string mean = c.emit_fresh("ReduceMean", {c.input(0)}, "mean", {{"axes", axes}, {"keepdims", std::int64_t{1}}});
      const std::string d = c.emit_fresh("Sub", {c.input(0), mean}, "centred");
      const Attrs keep{{"axes", axes}, {"keepdims", std::int64_t{c.attr_bool("keepdims") ? 1 : 0}}};
      if (ddof == 0) {
        c.emit("ReduceMean", {c.emit_fresh("Mul", {d, d}, "squared")}, {c.output()}, keep);
        return;
      }
      const std::string m = c.emit_fresh("ReduceMean", {c.emit_fresh("Mul", {d, d}, "squared")}, "biased", keep);
      c.emit("Mul", {m, c.scalar(static_cast<double>(count) / static_cast<double>(count - ddof), "correction")},
             {c.output()});
    })
    .doc("the variance over axes: mean((x - mean(x))^2) with n - ddof in the denominator (ddof=0, NumPy's default)")
    .apply([](OpBuilder& b) {
      reduction_attrs(b, "reduce")
          .attr("ddof", AttrType::integer, 0, "subtracted from the count (1: the unbiased estimate, PyTorch's default)",
                [](const AttrValue& v) { return v.as_int() >= 0 ? "" : "must not be negative"; });
    })
    .saves({"x"})
    .scratch(reduce_shape)  // the means, in the vjp
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Reduction r = reduction(x, k.attr("axis"));
      const auto n = static_cast<T>(r.count), d = static_cast<T>(r.count - k.attr_int("ddof"));
      T* y = k.out().data;
      parallel_for(r.outputs, 1, [&](std::int64_t o0, std::int64_t o1) {
        for (std::int64_t o = o0; o < o1; ++o) {
          const std::int64_t b = r.base(o);
          T s = T(0);
          r.each(b, [&](std::int64_t off) { s += x.data[off]; });
          const T m = s / n;
          T q = T(0);
          r.each(b, [&](std::int64_t off) { q += (x.data[off] - m) * (x.data[off] - m); });
          y[o] = q / d;  // NaN when n - ddof <= 0, as NumPy
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& axis = k.attr("axis");
      const Reduction r = reduction(x, axis);
      const T d = static_cast<T>(r.count - k.attr_int("ddof"));
      const auto& means = k.scratch();
      reduce_each(
          r, x.data, means.data, [](std::int64_t) { return T(0); }, [](T a, T v) { return a + v; },
          [&](T a, std::int64_t) { return a / static_cast<T>(r.count); });
      broadcast_map([d](T xv, T m, T g) { return g * T(2) * (xv - m) / d; }, k.grad_in(0), x,
                    kept_view(View<const T>(means), x, axis), kept_view(k.grad_out(), x, axis));
    })
    .check({"[a,b]"})
    .check({"[a,b,4]"}, {{"axis", -1}, {"ddof", 1}})
    .check({"[a,b,c]"}, {{"axis", IntList{0, 2}}, {"keepdims", true}});

}  // namespace opgraph::ops
