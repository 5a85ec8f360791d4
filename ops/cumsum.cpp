// cumsum: running sums along one axis (NumPy's cumsum, ONNX's CumSum with its exclusive and
// reverse). Each element of x reaches the outputs after it (before it, reversed), so its
// gradient is the running sum of the cotangent the other way round: the same kernel with
// `reverse` flipped. Every sum is taken in the axis' order: the same bits on any thread count.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// y = the running sums of x along `axis` (x and y [outer, len, inner], contiguous).
template <class T>
void running_sums(const T* x, T* y, const std::int64_t* dims, int rank, std::int64_t axis, bool exclusive, bool reverse) {
  std::int64_t outer = 1, len = dims[axis], inner = 1;
  for (int d = 0; d < axis; ++d) outer *= dims[d];
  for (int d = static_cast<int>(axis) + 1; d < rank; ++d) inner *= dims[d];
  parallel_for(outer, row_grain(len * inner), [&](std::int64_t o0, std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o)
      for (std::int64_t s = 0; s < len; ++s) {
        const std::int64_t at = reverse ? len - 1 - s : s, before = reverse ? at + 1 : at - 1;
        const T* xs = x + (o * len + at) * inner;
        T* ys = y + (o * len + at) * inner;
        const T* yb = y + (o * len + before) * inner;  // the output before it, in the sums' order
        const T* xb = x + (o * len + before) * inner;
        for (std::int64_t i = 0; i < inner; ++i) {
          if (exclusive) ys[i] = s == 0 ? T(0) : yb[i] + xb[i];
          else ys[i] = s == 0 ? xs[i] : yb[i] + xs[i];
        }
      }
  });
}

}  // namespace

OPGRAPH_OP(cumsum)
    .lower([](LoweringContext& c) {
      Tensor axis(Shape{}, DType::i64);
      axis.data<std::int64_t>()[0] = c.attr_int("axis");
      c.emit("CumSum", {c.input(0), c.constant(std::move(axis), "axis")}, {c.output()},
             {{"exclusive", std::int64_t{c.attr_bool("exclusive")}}, {"reverse", std::int64_t{c.attr_bool("reverse")}}});
    })
    .doc("running sums along an axis (NumPy's cumsum): cumsum(x, axis=1); exclusive leaves each element out of its "
         "own sum, reverse sums from the end")
    .input("x")
    .attr("axis", AttrType::integer, std::int64_t{-1}, "the axis summed along")
    .attr("exclusive", AttrType::boolean, false, "each output the sum of the elements before it (the first 0)")
    .attr("reverse", AttrType::boolean, false, "sum from the last element back")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const std::int64_t axis = c.attr_int("axis");
      if (axis < -x.rank() || axis >= x.rank()) c.fail("axis {} is out of range for {}", axis, x);
      return x;
    })
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const std::int64_t a = k.attr_int("axis");
      running_sums(x.data, k.out().data, x.dims, x.rank, a < 0 ? a + x.rank : a, k.attr_bool("exclusive"),
                   k.attr_bool("reverse"));
    })
    .vjp([](auto& k) {
      const auto& g = k.grad_out();
      const std::int64_t a = k.attr_int("axis");
      running_sums(g.data, k.grad_in(0).data, g.dims, g.rank, a < 0 ? a + g.rank : a, k.attr_bool("exclusive"),
                   !k.attr_bool("reverse"));
    })
    .check({"[a,b]"})
    .check({"[a,b,c]"}, {{"axis", std::int64_t{1}}, {"exclusive", true}})
    .check({"[a,b,c]"}, {{"axis", std::int64_t{0}}, {"reverse", true}})
    .check({"[a,b]"}, {{"axis", std::int64_t{1}}, {"exclusive", true}, {"reverse", true}});

}  // namespace opgraph::ops
