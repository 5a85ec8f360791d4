// pad: x surrounded by a constant along some axes (PyTorch's F.pad in constant mode,
// ONNX's Pad), `before` values ahead of each padded axis and `after` values past it. The
// forward pass fills y with the value and copies x into its interior; the vjp takes the
// interior of the output gradient back (the padding depends on no input).
#include <array>

#include <opgraph/graph/op.hpp>

#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {

/// Per axis of x: the values added before and after it, or an error message.
struct Padding {
  std::array<std::int64_t, kMaxRank> before{}, after{};
};
std::string padding_of(const AttrValue& before, const AttrValue& after, const AttrValue& axes, int rank, Padding* p) {
  const IntList& b = before.as_ints();
  const IntList& a = after.is_none() ? b : after.as_ints();
  if (a.size() != b.size())
    return fmt::format("after=[{}] has {} entries but before=[{}] has {}", fmt::join(a, ", "), a.size(), fmt::join(b, ", "),
                       b.size());
  if (!axes.is_none() && axes.as_ints().size() != b.size())
    return fmt::format("axes=[{}] has {} entries but before=[{}] has {}", fmt::join(axes.as_ints(), ", "),
                       axes.as_ints().size(), fmt::join(b, ", "), b.size());
  // Without axes, the last len(before) axes (the planes of NCHW images for two).
  if (axes.is_none() && static_cast<int>(b.size()) > rank)
    return fmt::format("before=[{}] has {} entries but the input has {} axes", fmt::join(b, ", "), b.size(), rank);
  p->before.fill(0);
  p->after.fill(0);
  std::array<bool, kMaxRank> seen{};
  for (std::size_t i = 0; i < b.size(); ++i) {
    std::int64_t ax = axes.is_none() ? rank - static_cast<std::int64_t>(b.size()) + static_cast<std::int64_t>(i)
                                     : axes.as_ints()[i];
    if (ax < -rank || ax >= rank) return fmt::format("axis {} is out of range for rank {}", ax, rank);
    if (ax < 0) ax += rank;
    const auto u = static_cast<std::size_t>(ax);
    if (seen[u]) return fmt::format("axis {} is padded twice", ax);
    seen[u] = true;
    if (b[i] < 0 || a[i] < 0)
      return fmt::format("padding {} before and {} after axis {}: must not be negative (slice to crop)", b[i], a[i], ax);
    p->before[u] = b[i];
    p->after[u] = a[i];
  }
  return "";
}

/// y's strides, and the offset in y of x's first element.
template <class V>
std::int64_t interior(const V& x, const Padding& p, std::int64_t* y_strides) {
  std::int64_t y_dims[kMaxRank];
  for (int d = 0; d < x.rank; ++d) y_dims[d] = x.dims[d] + p.before[static_cast<std::size_t>(d)] + p.after[static_cast<std::size_t>(d)];
  detail::contiguous_strides(y_dims, x.rank, y_strides);
  std::int64_t base = 0;
  for (int d = 0; d < x.rank; ++d) base += p.before[static_cast<std::size_t>(d)] * y_strides[d];
  return base;
}

template <class K>
Padding padding_of(const K& k) {
  Padding p;
  padding_of(k.attr("before"), k.attr("after"), k.attr("axes"), k.in(0).rank, &p);
  return p;
}

}  // namespace

OPGRAPH_OP(pad)
    .lower([](LoweringContext& c) {  // ONNX's pads: every axis's begin, then every axis's end
      const Shape& x = c.in_shape(0);
      Padding p;
      if (auto e = padding_of(c.attr("before"), c.attr("after"), c.attr("axes"), x.rank(), &p); !e.empty()) c.fail("{}", e);
      IntList pads;
      for (int d = 0; d < x.rank(); ++d) pads.push_back(p.before[static_cast<std::size_t>(d)]);
      for (int d = 0; d < x.rank(); ++d) pads.push_back(p.after[static_cast<std::size_t>(d)]);
      std::vector<std::string> inputs{c.input(0), c.ints(pads, "pads")};
      if (c.attr_float("value") != 0.0) inputs.push_back(c.scalar(c.attr_float("value"), "value"));
      c.emit("Pad", inputs, {c.output()}, {{"mode", std::string("constant")}});
    })
    .doc("x with `value` added around it: before[i] values ahead of axis axes[i] and after[i] past it (PyTorch's "
         "F.pad in constant mode)")
    .input("x")
    .attr("before", AttrType::int_list, IntList{0}, "values added ahead of each padded axis")
    .attr("after", AttrType::int_list, AttrValue(), "values added past each padded axis; none: as many as before")
    .attr("axes", AttrType::int_list, AttrValue(), "the padded axes; none: the last len(before) axes")
    .attr("value", AttrType::real, 0.0, "the value of the padding")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      Padding p;
      if (auto e = padding_of(c.attr("before"), c.attr("after"), c.attr("axes"), x.rank(), &p); !e.empty()) c.fail("{}", e);
      std::vector<std::int64_t> dims;
      for (int d = 0; d < x.rank(); ++d) {
        const auto u = static_cast<std::size_t>(d);
        const std::int64_t added = p.before[u] + p.after[u];
        if (is_symbolic(x[d]) && added != 0)
          c.fail("axis {} of {} is {}, not a size: only axes of known size can be padded", d, x, dim_name(x[d]));
        dims.push_back(is_symbolic(x[d]) ? x[d] : x[d] + added);
      }
      return Shape(std::move(dims));
    })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& y = k.out();
      const T value = static_cast<T>(k.attr_float("value"));
      map(y, y, [value](T) { return value; });
      std::int64_t y_strides[kMaxRank];
      const std::int64_t base = interior(x, padding_of(k), y_strides);
      detail::strided_copy(false, x.data, y.data, base, x.dims, y_strides, x.rank);
    })
    .vjp([](auto& k) {
      const auto& dx = k.grad_in(0);
      std::int64_t y_strides[kMaxRank];
      const std::int64_t base = interior(dx, padding_of(k), y_strides);
      detail::strided_copy(true, k.grad_out().data, dx.data, base, dx.dims, y_strides, dx.rank);
    })
    .check({"[a,b,5,4]"}, {{"before", IntList{1, 2}}, {"after", IntList{2, 0}}})
    .check({"[a,6,b]"}, {{"before", IntList{0, 3}}, {"axes", IntList{2, 1}}, {"value", -1.5}})
    .check({"[a,b]"}, {{"before", IntList{2}}, {"axes", IntList{-1}}});

}  // namespace opgraph::ops
