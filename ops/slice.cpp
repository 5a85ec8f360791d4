// slice: x[begin:end:step] along some axes, Python's rules (negative indices count from
// the end, out-of-range bounds clamp); the vjp writes the gradient back into zeros.
#include <array>

#include <limits>

#include <opgraph/graph/op.hpp>

#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {

/// Per axis of x: the first index, the step and the number of elements taken.
struct SliceWindow {
  std::array<std::int64_t, kMaxRank> first{}, step{}, count{};
};

/// The window a slice takes from dims (all sizes), or an error message.
std::string window(const AttrValue& begin, const AttrValue& end, const AttrValue& step, const AttrValue& axes,
                   const std::int64_t* dims, int rank, SliceWindow* w) {
  const IntList& b = begin.as_ints();
  const std::size_t n = b.size();
  auto same_length = [&](const AttrValue& v, const char* name) -> std::string {
    if (!v.is_none() && v.as_ints().size() != n)
      return fmt::format("{}=[{}] has {} entries but begin=[{}] has {}", name, fmt::join(v.as_ints(), ", "),
                         v.as_ints().size(), fmt::join(b, ", "), n);
    return "";
  };
  for (auto [v, name] : {std::pair{&end, "end"}, std::pair{&step, "step"}, std::pair{&axes, "axes"}})
    if (auto e = same_length(*v, name); !e.empty()) return e;
  if (axes.is_none() && static_cast<int>(n) > rank)
    return fmt::format("begin=[{}] has {} entries but the input has {} axes", fmt::join(b, ", "), n, rank);
  w->first.fill(0);
  w->step.fill(1);
  std::copy(dims, dims + rank, w->count.begin());
  std::array<bool, kMaxRank> seen{};
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t a = axes.is_none() ? static_cast<std::int64_t>(i) : axes.as_ints()[i];
    if (a < -rank || a >= rank) return fmt::format("axis {} is out of range for rank {}", a, rank);
    if (a < 0) a += rank;
    const auto ax = static_cast<std::size_t>(a);
    if (seen[ax]) return fmt::format("axis {} is sliced twice", a);
    seen[ax] = true;
    const std::int64_t s = step.is_none() ? 1 : step.as_ints()[i];
    if (s < 1) return fmt::format("step {} on axis {}: steps must be positive (negative steps are not supported)", s, a);
    const std::int64_t len = dims[ax];
    auto clamp = [len](std::int64_t v) { return std::clamp(v < 0 ? v + len : v, std::int64_t{0}, len); };
    const std::int64_t lo = clamp(b[i]);
    const std::int64_t hi = end.is_none() ? len : clamp(end.as_ints()[i]);
    w->first[ax] = lo;
    w->step[ax] = s;
    w->count[ax] = hi > lo ? (hi - lo - 1) / s + 1 : 0;  // ceil((hi - lo) / s): no overflow for a huge s
  }
  return "";
}

template <class K>
void slice_copy(K& k, bool forward) {
  using T = scalar_of<K>;
  const auto& x = forward ? View<const T>(k.in(0)) : View<const T>(k.grad_in(0));
  SliceWindow w;
  window(k.attr("begin"), k.attr("end"), k.attr("step"), k.attr("axes"), x.dims, x.rank, &w);
  std::int64_t x_strides[kMaxRank], strides[kMaxRank], count[kMaxRank], base = 0;
  detail::contiguous_strides(x.dims, x.rank, x_strides);
  for (int d = 0; d < x.rank; ++d) {
    const auto i = static_cast<std::size_t>(d);
    base += w.first[i] * x_strides[d];
    strides[d] = w.step[i] * x_strides[d];
    count[d] = w.count[i];
  }
  if (forward) {
    detail::strided_copy(true, k.in(0).data, k.out().data, base, count, strides, x.rank);
  } else {
    const auto& dx = k.grad_in(0);
    map(dx, dx, [](T) { return T(0); });
    detail::strided_copy(false, k.grad_out().data, dx.data, base, count, strides, x.rank);
  }
}

}  // namespace

OPGRAPH_OP(slice)
    .lower([](LoweringContext& c) {  // ONNX's Slice clamps as Python does for positive steps
      const IntList& begin = c.attr_ints("begin");
      const std::size_t n = begin.size();
      IntList ends, axes, steps;
      for (std::size_t i = 0; i < n; ++i) {
        ends.push_back(c.attr("end").is_none() ? std::numeric_limits<std::int64_t>::max() : c.attr_ints("end")[i]);
        axes.push_back(c.attr("axes").is_none() ? static_cast<std::int64_t>(i) : c.attr_ints("axes")[i]);
        steps.push_back(c.attr("step").is_none() ? 1 : c.attr_ints("step")[i]);
      }
      c.emit("Slice", {c.input(0), c.ints(begin, "starts"), c.ints(ends, "ends"), c.ints(axes, "axes"), c.ints(steps, "steps")},
             {c.output()});
    })
    .doc("x[begin:end:step] along the given axes (Python's rules: negative counts from the end, bounds clamp)")
    .input("x")
    .attr("begin", AttrType::int_list, IntList{0}, "the first index on each sliced axis")
    .attr("end", AttrType::int_list, AttrValue(), "one past the last index on each axis; none: to the end")
    .attr("step", AttrType::int_list, AttrValue(), "the step on each axis (positive); none: 1")
    .attr("axes", AttrType::int_list, AttrValue(), "the axes sliced; none: the first len(begin) axes")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      // A symbolic dimension can only be kept whole: probe with two sizes and compare.
      std::vector<std::int64_t> a(x.dims().begin(), x.dims().end()), b = a;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (is_symbolic(a[i])) a[i] = 1000003, b[i] = 2000003;
      SliceWindow wa, wb;
      if (auto e = window(c.attr("begin"), c.attr("end"), c.attr("step"), c.attr("axes"), a.data(), x.rank(), &wa); !e.empty())
        c.fail("{}", e);
      window(c.attr("begin"), c.attr("end"), c.attr("step"), c.attr("axes"), b.data(), x.rank(), &wb);
      std::vector<std::int64_t> dims;
      for (int i = 0; i < x.rank(); ++i) {
        const auto u = static_cast<std::size_t>(i);
        if (!is_symbolic(x[i])) {
          dims.push_back(wa.count[u]);
        } else if (wa.count[u] == a[u] && wb.count[u] == b[u]) {
          dims.push_back(x[i]);
        } else {
          c.fail("axis {} of {} is {}, not a size: only a whole symbolic dimension can be kept", i, x, dim_name(x[i]));
        }
      }
      return Shape(std::move(dims));
    })
    .forward([](auto& k) { slice_copy(k, true); })
    .vjp([](auto& k) { slice_copy(k, false); })
    .check({"[a,7]"}, {{"begin", IntList{1}}, {"end", IntList{5}}, {"axes", IntList{1}}})
    .check({"[7,b,c]"}, {{"begin", IntList{-5, 0}}, {"end", IntList{100, 1}}, {"step", IntList{2, 1}}})
    .check({"[a,b,9]"}, {{"begin", IntList{1}}, {"step", IntList{3}}, {"axes", IntList{-1}}});

}  // namespace opgraph::ops
