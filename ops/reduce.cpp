// sum and mean: over every element (axis=none, a scalar) or along one axis.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// The reduced axis in [0, rank), or -1 for "every element". The shape rule has checked
/// the range, in 64 bits: a narrowing cast first would make axis=2^32 mean axis 0.
int reduced_axis(const AttrValue& axis, int rank) {
  if (axis.is_none()) return -1;
  const std::int64_t a = axis.as_int() < 0 ? axis.as_int() + rank : axis.as_int();
  return a >= 0 && a < rank ? static_cast<int>(a) : -2;
}

Shape reduce_shape(const ShapeContext& c) {
  const Shape& x = c.in(0);
  if (c.attr("axis").is_none()) return Shape{};
  const int a = reduced_axis(c.attr("axis"), x.rank());
  if (a < 0) c.fail("axis {} out of range for shape {}", c.attr_int("axis"), x);
  std::vector<std::int64_t> dims;
  for (int i = 0; i < x.rank(); ++i)
    if (i != a) dims.push_back(x[i]);
  return Shape(std::move(dims));
}

/// x viewed as [outer, len, inner] around the reduced axis.
struct Split {
  std::int64_t outer = 1, len = 1, inner = 1;
};

template <class V>
Split split(const V& x, int axis) {
  Split s;
  for (int i = 0; i < x.rank; ++i) {
    if (i < axis) s.outer *= x.dims[i];
    else if (i == axis) s.len = x.dims[i];
    else s.inner *= x.dims[i];
  }
  return s;
}

template <class K>
void reduce_forward(K& k, bool mean) {
  using T = scalar_of<K>;
  const auto& x = k.in(0);
  const auto& y = k.out();
  const int axis = reduced_axis(k.attr("axis"), x.rank);
  if (axis < 0) {
    const double total = sum_over(x.size, [&](std::int64_t i) { return x.data[i]; });
    y.data[0] = static_cast<T>(mean ? total / static_cast<double>(x.size) : total);
    return;
  }
  const Split s = split(x, axis);
  const T f = mean ? T(1) / static_cast<T>(s.len) : T(1);
  // Each output is summed over the axis in order; chunks of 64 outputs across threads.
  const std::int64_t chunks_per_outer = (s.inner + 63) / 64;
  parallel_for(s.outer * chunks_per_outer, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) {
      const std::int64_t o = t / chunks_per_outer;
      const std::int64_t i0 = (t % chunks_per_outer) * 64, i1 = std::min(s.inner, i0 + 64);
      T* out = y.data + o * s.inner;
      for (std::int64_t i = i0; i < i1; ++i) out[i] = T(0);
      for (std::int64_t l = 0; l < s.len; ++l) {
        const T* row = x.data + (o * s.len + l) * s.inner;
        for (std::int64_t i = i0; i < i1; ++i) out[i] += row[i];
      }
      for (std::int64_t i = i0; i < i1; ++i) out[i] *= f;
    }
  });
}

template <class K>
void reduce_vjp(K& k, bool mean) {
  using T = scalar_of<K>;
  const auto& g = k.grad_out();
  const auto& dx = k.grad_in(0);
  const int axis = reduced_axis(k.attr("axis"), dx.rank);
  if (axis < 0) {
    const T v = mean ? g.data[0] / static_cast<T>(dx.size) : g.data[0];
    map(dx, dx, [v](T) { return v; });
    return;
  }
  const Split s = split(dx, axis);
  const T f = mean ? T(1) / static_cast<T>(s.len) : T(1);
  for_each_row(s.outer * s.len, s.inner, [&](std::int64_t r) {
    const T* src = g.data + (r / s.len) * s.inner;
    T* dst = dx.data + r * s.inner;
    for (std::int64_t i = 0; i < s.inner; ++i) dst[i] = f * src[i];
  });
}

}  // namespace

OPGRAPH_OP(sum)
    .doc("sum of every element (axis=none) or along one axis")
    .input("x")
    .attr("axis", AttrType::integer, AttrValue(), "the axis to sum over; none sums everything into a scalar")
    .shape(reduce_shape)
    .forward([](auto& k) { reduce_forward(k, false); })
    .vjp([](auto& k) { reduce_vjp(k, false); })
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"axis", 0}})
    .check({"[a,b,c]"}, {{"axis", 1}})
    .check({"[a,b]"}, {{"axis", -1}});

OPGRAPH_OP(mean)
    .doc("mean of every element (axis=none) or along one axis")
    .input("x")
    .attr("axis", AttrType::integer, AttrValue(), "the axis to average over; none averages everything")
    .shape(reduce_shape)
    .forward([](auto& k) { reduce_forward(k, true); })
    .vjp([](auto& k) { reduce_vjp(k, true); })
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"axis", 0}})
    .check({"[a,b,c]"}, {{"axis", -1}});

}  // namespace opgraph::ops
