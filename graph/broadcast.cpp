// Broadcasting: shape rules and the coalesced loop description (graph/broadcast.hpp).
#include <opgraph/graph/broadcast.hpp>

namespace opgraph {

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view what) {
  const int r = std::max(a.rank(), b.rank());
  std::vector<std::int64_t> dims(static_cast<std::size_t>(r));
  for (int i = r - 1; i >= 0; --i) {  // from the right, as the rule aligns them
    const std::int64_t x = i < r - a.rank() ? 1 : a[i - (r - a.rank())];
    const std::int64_t y = i < r - b.rank() ? 1 : b[i - (r - b.rank())];
    if (x == y || y == 1) dims[static_cast<std::size_t>(i)] = x;
    else if (x == 1) dims[static_cast<std::size_t>(i)] = y;
    else
      throw ShapeError(fmt::format("{}{}shapes {} and {} do not broadcast: dimension {} is {} against {} (NumPy's rule: "
                                   "sizes aligned on the right must be equal or 1)",
                                   what, what.empty() ? "" : ": ", a, b, i - r, dim_text(x), dim_text(y)));
  }
  return Shape(std::move(dims));
}

ShapeFn broadcast_shape() {
  return [](const ShapeContext& c) {
    Shape out = c.in(0);
    for (int i = 1; i < c.num_inputs(); ++i) {
      try {
        out = broadcast_shapes(out, c.in(i));
      } catch (const ShapeError& e) {
        c.fail("{}", e.detail());
      }
    }
    return out;
  };
}

ShapeFn broadcast_scratch() {
  return [](const ShapeContext& c) {
    Shape out = c.in(0);
    for (int i = 1; i < c.num_inputs(); ++i) out = broadcast_shapes(out, c.in(i));
    for (int i = 0; i < c.num_inputs(); ++i)
      if (c.in(i) != out) return out;
    return Shape{0};
  };
}

namespace detail {

BroadcastLoop broadcast_loop(int out_rank, const std::int64_t* out, int operands, const int* ranks,
                             const std::int64_t* const* dims) {
  BroadcastLoop loop;
  loop.operands = operands;
  std::int64_t strides[BroadcastLoop::kMaxOperands][kMaxRank] = {};
  for (int k = 0; k < operands; ++k) {
    std::int64_t step = 1;
    for (int d = out_rank - 1; d >= 0; --d) {
      const int a = d - (out_rank - ranks[k]);
      const std::int64_t size = a < 0 ? 1 : dims[k][a];
      strides[k][d] = size == 1 ? 0 : step;
      step *= size;
    }
  }
  for (int d = 0; d < out_rank; ++d) {
    if (out[d] == 1) continue;
    bool merge = loop.rank > 0;
    for (int k = 0; k < operands && merge; ++k)
      merge = loop.strides[k][loop.rank - 1] == strides[k][d] * out[d];
    if (merge) {
      loop.dims[loop.rank - 1] *= out[d];
      for (int k = 0; k < operands; ++k) loop.strides[k][loop.rank - 1] = strides[k][d];
    } else {
      loop.dims[loop.rank] = out[d];
      for (int k = 0; k < operands; ++k) loop.strides[k][loop.rank] = strides[k][d];
      ++loop.rank;
    }
  }
  return loop;
}

}  // namespace detail

}  // namespace opgraph
