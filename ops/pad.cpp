// pad: x surrounded along some axes (PyTorch's F.pad, ONNX's Pad), `before` values ahead
// of each padded axis and `after` values past it: a constant, x mirrored at its edges
// (reflect: the edge itself not repeated) or its edge values repeated (replicate).
// Constant: the forward pass fills y with the value and copies x into its interior; the
// vjp takes the interior of the output gradient back (the padding depends on no input).
// Reflect and replicate: each element of y reads one element of x (its source, found per
// axis), and the vjp adds each element of y's gradient to its source's, in y's order.
#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

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

enum class Mode { constant, reflect, replicate };
Mode mode_of(std::string_view m) { return m == "reflect" ? Mode::reflect : m == "replicate" ? Mode::replicate : Mode::constant; }

/// Where position i of a padded axis (counted from x's first element: negative ahead of
/// it, n or more past it) reads x, for an axis of n elements.
inline std::int64_t source(std::int64_t i, std::int64_t n, Mode mode) {
  if (i < 0) return mode == Mode::reflect ? -i : 0;
  if (i >= n) return mode == Mode::reflect ? 2 * (n - 1) - i : n - 1;
  return i;
}

/// For reflect and replicate: calls f(y_index, x_index) for every element of y in order,
/// y's rows split across threads at the first padded axis (the slices before it are x's
/// and y's alike), so that two threads never share an element of x.
template <class V, class F>
void for_each_source(const V& x, const Padding& p, Mode mode, F f) {
  const int rank = x.rank;
  if (rank == 0) {
    f(std::int64_t{0}, std::int64_t{0});
    return;
  }
  std::int64_t y_dims[kMaxRank], x_strides[kMaxRank];
  for (int d = 0; d < rank; ++d) y_dims[d] = x.dims[d] + p.before[static_cast<std::size_t>(d)] + p.after[static_cast<std::size_t>(d)];
  detail::contiguous_strides(x.dims, rank, x_strides);
  int first = rank - 1;  // the first padded axis (the last when none is)
  for (int d = 0; d < rank; ++d)
    if (p.before[static_cast<std::size_t>(d)] + p.after[static_cast<std::size_t>(d)] > 0) {
      first = d;
      break;
    }
  const std::int64_t width = y_dims[rank - 1], n_last = x.dims[rank - 1];
  const std::int64_t last_before = p.before[static_cast<std::size_t>(rank - 1)];
  std::vector<std::int64_t> last(static_cast<std::size_t>(width));  // the last axis's sources
  for (std::int64_t j = 0; j < width; ++j) last[static_cast<std::size_t>(j)] = source(j - last_before, n_last, mode);
  std::int64_t slices = 1, rows_per_slice = 1;  // slices: the axes before `first`; rows: the rest but the last
  for (int d = 0; d < first; ++d) slices *= y_dims[d];
  for (int d = first; d < rank - 1; ++d) rows_per_slice *= y_dims[d];
  const std::int64_t x_slice = first == 0 ? 0 : x_strides[first - 1];  // x's elements per slice
  parallel_for(slices, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(1, rows_per_slice * width)),
               [&](std::int64_t s0, std::int64_t s1) {
                 for (std::int64_t s = s0; s < s1; ++s)
                   for (std::int64_t r = 0; r < rows_per_slice; ++r) {
                     std::int64_t rest = r, from = s * x_slice;
                     for (int d = rank - 2; d >= first; --d) {
                       const std::int64_t c = rest % y_dims[d];
                       rest /= y_dims[d];
                       from += source(c - p.before[static_cast<std::size_t>(d)], x.dims[d], mode) * x_strides[d];
                     }
                     const std::int64_t row = (s * rows_per_slice + r) * width;
                     for (std::int64_t j = 0; j < width; ++j) f(row + j, from + last[static_cast<std::size_t>(j)]);
                   }
               });
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
      const std::string mode = c.attr_string("mode");
      c.emit("Pad", inputs, {c.output()}, {{"mode", mode == "replicate" ? std::string("edge") : mode}});
    })
    .doc("x padded: before[i] values ahead of axis axes[i] and after[i] past it, `value` (mode=constant), x "
         "mirrored at its edges (reflect) or its edge values repeated (replicate): PyTorch's F.pad")
    .input("x")
    .attr("before", AttrType::int_list, IntList{0}, "values added ahead of each padded axis")
    .attr("after", AttrType::int_list, AttrValue(), "values added past each padded axis; none: as many as before")
    .attr("axes", AttrType::int_list, AttrValue(), "the padded axes; none: the last len(before) axes")
    .attr("value", AttrType::real, 0.0, "the value of the padding (mode=constant)")
    .attr_choice("mode", {"constant", "reflect", "replicate"},
                 "constant: `value`; reflect: x mirrored about its first and last elements (d c b | a b c d | c b a), "
                 "padding less than the axis; replicate: its first and last elements repeated")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      Padding p;
      if (auto e = padding_of(c.attr("before"), c.attr("after"), c.attr("axes"), x.rank(), &p); !e.empty()) c.fail("{}", e);
      const Mode mode = mode_of(c.attr_string("mode"));
      if (mode != Mode::constant && c.attr_float("value") != 0.0)
        c.fail("value={} pads with a constant: mode={} takes its values from x", c.attr_float("value"),
               c.attr_string("mode"));
      std::vector<std::int64_t> dims;
      for (int d = 0; d < x.rank(); ++d) {
        const auto u = static_cast<std::size_t>(d);
        const std::int64_t added = p.before[u] + p.after[u];
        if (is_symbolic(x[d]) && added != 0)
          c.fail("axis {} of {} is {}, not a size: only axes of known size can be padded", d, x, dim_name(x[d]));
        if (added != 0 && mode == Mode::reflect && std::max(p.before[u], p.after[u]) >= x[d])
          c.fail("reflect padding of {} before and {} after axis {} of {}: each must be less than the axis's size {}",
                 p.before[u], p.after[u], d, x, x[d]);
        if (added != 0 && mode == Mode::replicate && x[d] == 0)
          c.fail("replicate padding of axis {} of {}: the axis is empty, there is no edge to repeat", d, x);
        dims.push_back(is_symbolic(x[d]) ? x[d] : x[d] + added);
      }
      return Shape(std::move(dims));
    })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& y = k.out();
      if (const Mode mode = mode_of(k.attr_string("mode")); mode != Mode::constant) {
        for_each_source(x, padding_of(k), mode, [&](std::int64_t i, std::int64_t from) { y.data[i] = x.data[from]; });
        return;
      }
      const T value = static_cast<T>(k.attr_float("value"));
      map(y, y, [value](T) { return value; });
      std::int64_t y_strides[kMaxRank];
      const std::int64_t base = interior(x, padding_of(k), y_strides);
      detail::strided_copy(false, x.data, y.data, base, x.dims, y_strides, x.rank);
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& dx = k.grad_in(0);
      if (const Mode mode = mode_of(k.attr_string("mode")); mode != Mode::constant) {
        map(dx, dx, [](T) { return T(0); });
        const T* g = k.grad_out().data;
        for_each_source(dx, padding_of(k), mode, [&](std::int64_t i, std::int64_t to) { dx.data[to] += g[i]; });
        return;
      }
      std::int64_t y_strides[kMaxRank];
      const std::int64_t base = interior(dx, padding_of(k), y_strides);
      detail::strided_copy(true, k.grad_out().data, dx.data, base, dx.dims, y_strides, dx.rank);
    })
    .check({"[a,b,5,4]"}, {{"before", IntList{1, 2}}, {"after", IntList{2, 0}}})
    .check({"[a,6,b]"}, {{"before", IntList{0, 3}}, {"axes", IntList{2, 1}}, {"value", -1.5}})
    .check({"[a,b]"}, {{"before", IntList{2}}, {"axes", IntList{-1}}})
    .check({"[a,2,5,4]"}, {{"before", IntList{1, 3}}, {"after", IntList{4, 2}}, {"mode", "reflect"}})
    .check({"[a,3,b]"}, {{"before", IntList{2}}, {"after", IntList{1}}, {"axes", IntList{1}}, {"mode", "reflect"}})
    .check({"[a,4,3]"}, {{"before", IntList{0, 2}}, {"after", IntList{3, 1}}, {"mode", "replicate"}})
    .check({"[3,a,1]"}, {{"before", IntList{2, 1}}, {"after", IntList{1, 2}}, {"axes", IntList{0, 2}}, {"mode", "replicate"}});

}  // namespace opgraph::ops
