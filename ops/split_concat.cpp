// split and concat: one tensor into parts along an axis, and parts back into one.
#include <opgraph/graph/op.hpp>

#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {


/// Copies rows of `len * inner` values: dst[o, offset + j, i] = src[o, j, i] (or the
/// reverse with `into_part`), for every o, in parallel chunks of outer rows.
template <class T>
void copy_block(const T* src, std::int64_t src_len, T* dst, std::int64_t dst_len, std::int64_t offset,
                std::int64_t len, std::int64_t outer, std::int64_t inner, bool src_is_whole) {
  parallel_for(outer, row_grain(len * inner), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t o = b; o < e; ++o) {
      const T* from = src + (o * src_len + (src_is_whole ? offset : 0)) * inner;
      T* to = dst + (o * dst_len + (src_is_whole ? 0 : offset)) * inner;
      std::copy(from, from + len * inner, to);
    }
  });
}

}  // namespace

OPGRAPH_OP(split)
    .lower([](LoweringContext& c) {
      const int rank = c.in_shape(0).rank();
      const std::int64_t axis = lowering::axis(c, "axis", rank);
      std::vector<std::int64_t> sizes;
      std::vector<std::string> outs;
      for (int i = 0; i < c.num_outputs(); ++i) {
        if (is_symbolic(c.out_shape(i)[static_cast<int>(axis)])) c.fail("the split axis has a symbolic size");
        sizes.push_back(c.out_shape(i)[static_cast<int>(axis)]);
        outs.push_back(c.output(i));
      }
      c.emit("Split", {c.input(0), c.ints(sizes, "sizes")}, std::move(outs), {{"axis", axis}});
    })
    .doc("x cut along an axis into parts of the given sizes (or `parts` equal ones): a, b = split(x, sizes=[3, 5])")
    .input("x")
    .variadic_output("y")
    .attr("sizes", AttrType::int_list, AttrValue(), "the size of each part along the axis",
          [](const AttrValue& v) {
            for (auto s : v.as_ints())
              if (s < 1) return std::string("every size must be at least 1");
            return std::string();
          })
    .attr("parts", AttrType::integer, AttrValue(), "the number of equal parts (instead of sizes)",
          [](const AttrValue& v) { return v.as_int() >= 1 ? "" : "must be at least 1"; })
    .attr("axis", AttrType::integer, -1, "the axis cut")
    .shapes([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const int axis = c.axis("axis", x.rank());
      const bool by_sizes = !c.attr("sizes").is_none(), by_parts = !c.attr("parts").is_none();
      if (by_sizes == by_parts) c.fail("give either sizes=[...] or parts=K");
      if (is_symbolic(x[axis])) c.fail("axis {} of {} is {}, not a size: split a fixed dimension", axis, x, dim_text(x[axis]));
      std::vector<std::int64_t> sizes;
      if (by_sizes) {
        sizes = c.attr_ints("sizes");
        std::int64_t total = 0;
        for (auto s : sizes) total += s;
        if (total != x[axis])
          c.fail("sizes [{}] add up to {}, but axis {} of {} is {}", fmt::join(sizes, ", "), total, axis, x, x[axis]);
      } else {
        const std::int64_t k = c.attr_int("parts");
        if (x[axis] % k != 0) c.fail("axis {} of {} is {}, which {} equal parts do not divide", axis, x, x[axis], k);
        sizes.assign(static_cast<std::size_t>(k), x[axis] / k);
      }
      std::vector<Shape> out;
      for (auto s : sizes) {
        Shape part = x;
        part[axis] = s;
        out.push_back(part);
      }
      return out;
    })
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const int axis = static_cast<int>(k.attr_int("axis") < 0 ? k.attr_int("axis") + x.rank : k.attr_int("axis"));
      const detail::AroundAxis s = detail::around(x, axis);
      std::int64_t offset = 0;
      for (int o = 0; o < k.num_outputs(); ++o) {
        const auto& y = k.out(o);
        const std::int64_t len = y.dims[axis];
        copy_block(x.data, s.len, y.data, len, offset, len, s.outer, s.inner, true);
        offset += len;
      }
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& dx = k.grad_in(0);
      const int axis = static_cast<int>(k.attr_int("axis") < 0 ? k.attr_int("axis") + dx.rank : k.attr_int("axis"));
      const detail::AroundAxis s = detail::around(dx, axis);
      std::int64_t offset = 0;
      for (int o = 0; o < k.num_outputs(); ++o) {
        const std::int64_t len = k.out(o).dims[axis];
        if (k.has_grad_out(o)) {
          copy_block(k.grad_out(o).data, len, dx.data, s.len, offset, len, s.outer, s.inner, false);
        } else {  // no gradient reaches this part: zero
          parallel_for(s.outer, row_grain(len * s.inner), [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t r = b; r < e; ++r) {
              T* to = dx.data + (r * s.len + offset) * s.inner;
              std::fill(to, to + len * s.inner, T(0));
            }
          });
        }
        offset += len;
      }
    })
    .check({"[a,7]"}, {{"sizes", IntList{3, 4}}})
    .check({"[a,6,b]"}, {{"sizes", IntList{1, 2, 3}}, {"axis", 1}})
    .check({"[6,a]"}, {{"parts", 3}, {"axis", 0}})
    .check({"[a,b,4]"}, {{"parts", 2}});

OPGRAPH_OP(concat)
    .lower([](LoweringContext& c) {
      std::vector<std::string> in;
      for (int i = 0; i < c.num_inputs(); ++i) in.push_back(c.input(i));
      c.emit("Concat", std::move(in), {c.output()}, {{"axis", lowering::axis(c, "axis", c.out_shape().rank())}});
    })
    .doc("the inputs joined along an axis: concat(a, b, c, axis=-1); shapes equal but along the axis")
    .variadic_input("x")
    .attr("axis", AttrType::integer, -1, "the axis joined along")
    .shape([](const ShapeContext& c) {
      const Shape& first = c.in(0);
      const int axis = c.axis("axis", first.rank());
      Shape out = first;
      for (int i = 1; i < c.num_inputs(); ++i) {
        const Shape& x = c.in(i);
        bool same = x.rank() == first.rank();
        for (int d = 0; same && d < x.rank(); ++d) same = d == axis || x[d] == first[d];
        if (!same) c.fail("input {} has shape {}, input 0 {}: they must agree except along axis {}", i, x, first, axis);
        if (is_symbolic(x[axis]) || is_symbolic(out[axis]))
          c.fail("axis {} holds {}: concatenate along a fixed dimension", axis, dim_text(is_symbolic(x[axis]) ? x[axis] : out[axis]));
        out[axis] += x[axis];
      }
      return out;
    })
    .forward([](auto& k) {
      const auto& y = k.out();
      const int axis = static_cast<int>(k.attr_int("axis") < 0 ? k.attr_int("axis") + y.rank : k.attr_int("axis"));
      const detail::AroundAxis s = detail::around(y, axis);
      std::int64_t offset = 0;
      for (int i = 0; i < k.num_inputs(); ++i) {
        const std::int64_t len = k.in(i).dims[axis];
        copy_block(k.in(i).data, len, y.data, s.len, offset, len, s.outer, s.inner, false);
        offset += len;
      }
    })
    .vjp([](auto& k) {
      const auto& g = k.grad_out();
      const int axis = static_cast<int>(k.attr_int("axis") < 0 ? k.attr_int("axis") + g.rank : k.attr_int("axis"));
      const detail::AroundAxis s = detail::around(g, axis);
      std::int64_t offset = 0;
      for (int i = 0; i < k.num_inputs(); ++i) {
        const std::int64_t len = k.grad_in(i).dims[axis];
        if (k.needs_grad(i)) copy_block(g.data, s.len, k.grad_in(i).data, len, offset, len, s.outer, s.inner, true);
        offset += len;
      }
    })
    .check({"[a,b]", "[a,c]"})
    .check({"[a,b]", "[a,c]", "[a,2]"})
    .check({"[b,a]", "[c,a]"}, {{"axis", 0}})
    .check({"[a,b,c]"}, {{"axis", 1}});

}  // namespace opgraph::ops
