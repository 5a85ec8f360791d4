// bias_add: x + b with b laid along one axis of x (the last by default: a dense layer's
// bias; axis=1: a convolution's bias per channel of [N,C,H,W]).
#include <opgraph/graph/op.hpp>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "detail/simd.hpp"
#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {

template <class V>
detail::AroundAxis around_axis(const V& x, std::int64_t axis) {
  return detail::around(x, static_cast<int>(axis < 0 ? axis + x.rank : axis));
}

/// Sum of a contiguous run in a fixed order: eight running sums (element i in sum i % 8,
/// one vector the CPU adds to without waiting on each scalar add), combined in a fixed
/// tree. One running sum made LeNet's first bias gradient 0.4 ms of a 9 ms step.
template <class T>
T run_sum(const T* x, std::int64_t n) {
  T lane[8] = {};
  std::int64_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
    // The same sums in one register: GCC turned the loop below into scalar adds and lane
    // shuffles for floats (LeNet's first bias gradient: 0.08 ms for 300k values).
    detail::F8 v = {};
    for (; i + 8 <= n; i += 8) v += detail::load8(x + i);
    for (int j = 0; j < 8; ++j) lane[j] = v[j];
  }
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += x[i + j];
  for (; i < n; ++i) lane[i % 8] += x[i];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

/// Whether the bias runs along an axis between the first and the last (a convolution's
/// channels): then bias_add works image by image (OpBuilder::per_item).
bool inner_axis(std::int64_t axis, int rank) {
  const std::int64_t a = axis < 0 ? axis + rank : axis;
  return a >= 1 && a < rank - 1;
}

/// y = x + b along an inner axis, lines [r0, r1) (a line: the inner values of one outer
/// block and channel).
template <class T>
void add_bias_lines(const T* x, const T* b, const detail::AroundAxis& a, std::int64_t r0, std::int64_t r1, T* y) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const T bias = b[r % a.len];
    for (std::int64_t i = 0; i < a.inner; ++i) y[r * a.inner + i] = x[r * a.inner + i] + bias;
  }
}

/// The gradient's sums over each outer block and channel, run_sum of each (o, c) line:
/// blocks [o0, o1) into sums (one value per block and channel). The vjp adds them up per
/// channel in block order.
template <class T>
void line_sums(const T* g, const detail::AroundAxis& a, std::int64_t o0, std::int64_t o1, T* sums) {
  for (std::int64_t o = o0; o < o1; ++o)
    for (std::int64_t c = 0; c < a.len; ++c) sums[o * a.len + c] = run_sum(g + (o * a.len + c) * a.inner, a.inner);
}

}  // namespace

OPGRAPH_OP(bias_add)
    .lower([](LoweringContext& c) {
      const int rank = c.in_shape(0).rank();
      const std::int64_t axis = lowering::axis(c, "axis", rank);
      if (axis == rank - 1) {
        c.emit("Add", {c.input(0), c.input(1)}, {c.output()});
        return;
      }
      // b [C] along axis 1 of [N, C, H, W]: as [C, 1, 1] it broadcasts like NumPy.
      std::vector<std::int64_t> dims{c.in_shape(1)[0]};
      for (std::int64_t d = axis + 1; d < rank; ++d) dims.push_back(1);
      const std::string b = c.emit_fresh("Reshape", {c.input(1), c.ints(dims, "bias_shape")}, "bias");
      c.emit("Add", {c.input(0), b}, {c.output()});
    })
    .doc("x + b, the vector b laid along one axis of x: [...,c] + [c] (axis=-1), [N,C,H,W] + [C] (axis=1)")
    .input("x")
    .input("b")
    .attr("axis", AttrType::integer, -1, "the axis of x that b runs along")
    .shape([](const ShapeContext& c) {
      c.expect_rank(1, 1);
      if (c.in(0).rank() < 1) c.fail("x must have an axis for the bias, got {}", c.in(0));
      const int axis = c.axis("axis", c.in(0).rank());
      if (c.in(0)[axis] != c.in(1)[0])
        c.fail("bias of shape {} does not match {} of {}", c.in(1),
               axis == c.in(0).rank() - 1 ? std::string("the last dimension") : fmt::format("axis {}", c.attr_int("axis")),
               c.in(0));
      return c.in(0);
    })
    .in_place("x")
    // Along an inner axis: each outer block's sum per channel, for the vjp run image by
    // image (per_item), which adds them up at the end.
    .workspace([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      if (!inner_axis(c.attr_int("axis"), x.rank())) return Shape{0};
      std::vector<std::int64_t> dims(x.dims().begin(), x.dims().begin() + c.axis("axis", x.rank()));
      dims.push_back(c.in(1)[0]);  // [outer axes..., C]
      return Shape(std::move(dims));
    })
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const auto& b = k.in(1);
      const auto& y = k.out();
      const std::int64_t axis = k.attr_int("axis");
      // The last axis (a dense layer's bias) without the general split of the axes: a
      // tiny network's step is a few hundred nanoseconds of such set-up.
      if (axis == -1 || axis == x.rank - 1) {
        with_width(x.cols(), [&](auto cols) {
          for_row_chunks(x.rows(), cols, [&](std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r)
              for (std::int64_t c = 0; c < cols; ++c) y.data[r * cols + c] = x.data[r * cols + c] + b.data[c];
          });
        });
        return;
      }
      const detail::AroundAxis a = around_axis(x, axis);
      for_row_chunks(a.outer * a.len, a.inner,
                     [&](std::int64_t r0, std::int64_t r1) { add_bias_lines(x.data, b.data, a, r0, r1, y.data); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& g = k.grad_out();
      // dx is g itself: nothing to do when the plan wrote it in place (.in_place).
      if (k.needs_grad(0) && k.grad_in(0).data != g.data) map(g, k.grad_in(0), [](auto v) { return v; });
      if (!k.needs_grad(1)) return;
      const std::int64_t axis = k.attr_int("axis");
      if (axis == -1 || axis == g.rank - 1) {
        column_sums(g, k.grad_in(1).data);
        return;
      }
      const detail::AroundAxis a = around_axis(g, axis);
      // Per channel, over the outer blocks in order: one task per channel, deterministic.
      T* db = k.grad_in(1).data;
      parallel_for(a.len, 1, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          T total = T(0);
          for (std::int64_t o = 0; o < a.outer; ++o) total += run_sum(g.data + (o * a.len + c) * a.inner, a.inner);
          db[c] = total;
        }
      });
    })
    // Along an inner axis, image by image: the images' lines of y, or of x's gradient and
    // their sums per channel (line_sums, into the workspace); then each channel's sum over
    // the blocks in order, the same additions as the vjp's.
    .per_item(
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          const auto& x = k.in(0);
          const detail::AroundAxis a = around_axis(x, k.attr_int("axis"));
          const std::int64_t per = x.dims[0] ? a.outer / x.dims[0] * a.len : 0;  // lines an image
          add_bias_lines(x.data, k.in(1).data, a, b0 * per, b1 * per, k.out().data);
        },
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          using T = scalar_of<decltype(k)>;
          const auto& g = k.grad_out();
          const detail::AroundAxis a = around_axis(g, k.attr_int("axis"));
          const std::int64_t per = g.dims[0] ? a.outer / g.dims[0] : 0;  // outer blocks an image
          if (k.needs_grad(0) && k.grad_in(0).data != g.data)
            std::copy(g.data + b0 * per * a.len * a.inner, g.data + b1 * per * a.len * a.inner,
                      k.grad_in(0).data + b0 * per * a.len * a.inner);
          if (k.needs_grad(1)) line_sums<T>(g.data, a, b0 * per, b1 * per, k.workspace().data);
        })
    .per_item_finish([](const auto& k) {
      using T = scalar_of<decltype(k)>;
      if (!k.needs_grad(1)) return;
      const detail::AroundAxis a = around_axis(k.grad_out(), k.attr_int("axis"));
      const T* sums = k.workspace().data;
      T* db = k.grad_in(1).data;
      for (std::int64_t c = 0; c < a.len; ++c) {
        T total = T(0);
        for (std::int64_t o = 0; o < a.outer; ++o) total += sums[o * a.len + c];
        db[c] = total;
      }
    })
    .per_item_when([](const ShapeContext& c) { return inner_axis(c.attr_int("axis"), c.in(0).rank()); })
    .check({"[a,b]", "[b]"})
    .check({"[a,b,c]", "[c]"})
    .check({"[a,b,c,d]", "[b]"}, {{"axis", 1}})
    .check({"[a,b,1,1]", "[b]"}, {{"axis", 1}})  // 1x1 maps: every row of the last axis is one channel
    .check({"[a,b,c]", "[a]"}, {{"axis", 0}});

}  // namespace opgraph::ops
