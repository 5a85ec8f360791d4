// take: the slices of x at constant indices along one axis (NumPy's take(x, indices,
// axis)). What ONNX's Gather by indices known at import becomes: positions from
// torch.arange(T) picking rows of an embedding table, a shifted window's relative position
// bias read from its table, a fixed permutation of channels. The vjp adds each slice's
// cotangent back where it was taken, in index order, so repeated indices sum the same way
// on any thread count.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// x's sizes around the axis: outer (before it), len (its own), inner (after it).
struct Around {
  std::int64_t outer = 1, len = 0, inner = 1;
};
template <class V>
Around around(const V& x, std::int64_t axis) {
  Around a;
  for (int d = 0; d < x.rank; ++d) {
    if (d < axis) a.outer *= x.dims[d];
    else if (d == axis) a.len = x.dims[d];
    else a.inner *= x.dims[d];
  }
  return a;
}

std::int64_t axis_of(std::int64_t axis, int rank) { return axis < 0 ? axis + rank : axis; }

/// Index i of `indices` as a position on an axis of len (negative counting from the end;
/// the shape rule has checked the range).
std::int64_t position(std::int64_t i, std::int64_t len) { return i < 0 ? i + len : i; }

}  // namespace

OPGRAPH_OP(take)
    .lower([](LoweringContext& c) {
      const IntList& indices = c.attr_ints("indices");
      Tensor t(Shape{static_cast<std::int64_t>(indices.size())}, DType::i64);
      std::copy(indices.begin(), indices.end(), t.data<std::int64_t>());
      c.emit("Gather", {c.input(0), c.constant(std::move(t), "indices")}, {c.output()}, {{"axis", c.attr_int("axis")}});
    })
    .doc("x's slices at constant indices along an axis, in their order (NumPy's take): take(x, indices=[2, 0, 2], "
         "axis=1)")
    .input("x")
    .attr("indices", AttrType::int_list, AttrValue(), "the indices taken, in order (negative count from the end; "
                                                      "repeats allowed); required")
    .attr("axis", AttrType::integer, std::int64_t{0}, "the axis the indices are along")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const std::int64_t axis = c.attr_int("axis");
      if (axis < -x.rank() || axis >= x.rank()) c.fail("axis {} is out of range for {}", axis, x);
      const int a = static_cast<int>(axis_of(axis, x.rank()));
      if (is_symbolic(x[a]))
        c.fail("axis {} of {} is {}: take picks along an axis of known size (not the batch's samples)", axis, x,
               dim_text(x[a]));
      if (c.attr("indices").is_none()) c.fail("indices=[...] is required: the positions to take along axis {}", axis);
      const IntList& indices = c.attr_ints("indices");
      for (std::size_t j = 0; j < indices.size(); ++j)
        if (indices[j] < -x[a] || indices[j] >= x[a])
          c.fail("index {} (entry {} of indices) is out of range for axis {} of {}", indices[j], j, axis, x);
      std::vector<std::int64_t> dims = x.dims();
      dims[static_cast<std::size_t>(a)] = static_cast<std::int64_t>(indices.size());
      return Shape(std::move(dims));
    })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Around s = around(x, axis_of(k.attr_int("axis"), x.rank));
      const IntList& indices = k.attr_ints("indices");
      const auto taken = static_cast<std::int64_t>(indices.size());
      T* y = k.out().data;
      parallel_for(s.outer * taken, row_grain(s.inner), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
          const std::int64_t o = r / taken, j = r % taken;
          const T* from = x.data + (o * s.len + position(indices[static_cast<std::size_t>(j)], s.len)) * s.inner;
          std::copy(from, from + s.inner, y + r * s.inner);
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& dx = k.grad_in(0);
      const Around s = around(dx, axis_of(k.attr_int("axis"), dx.rank));
      const IntList& indices = k.attr_ints("indices");
      const auto taken = static_cast<std::int64_t>(indices.size());
      const T* g = k.grad_out().data;
      // One task per outer slice: each adds its cotangents in index order into its own part
      // of dx, so no two tasks write one element and the sums do not depend on the threads.
      parallel_for(s.outer, row_grain(taken * s.inner), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t o = b; o < e; ++o) {
          T* to = dx.data + o * s.len * s.inner;
          std::fill(to, to + s.len * s.inner, T(0));
          for (std::int64_t j = 0; j < taken; ++j) {
            T* row = to + position(indices[static_cast<std::size_t>(j)], s.len) * s.inner;
            const T* from = g + (o * taken + j) * s.inner;
            for (std::int64_t i = 0; i < s.inner; ++i) row[i] += from[i];
          }
        }
      });
    })
    .check({"[a,5,b]"}, {{"indices", IntList{4, 0, -1, 2, 4}}, {"axis", std::int64_t{1}}})
    .check({"[6,b]"}, {{"indices", IntList{1, 1, 3}}})
    .check({"[a,b,4]"}, {{"indices", IntList{3, 0}}, {"axis", std::int64_t{-1}}});

}  // namespace opgraph::ops
