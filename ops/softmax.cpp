// softmax over the last axis, stable for large logits; vjp y * (g - <g, y>).
#include <opgraph/graph/op.hpp>

#include "detail/softmax_row.hpp"

namespace opgraph::ops {

OPGRAPH_OP(softmax)
    .doc("exp(x) / sum(exp(x)) over the last axis, computed stably")
    .input("x")
    .attr("axis", AttrType::integer, -1, "the axis to normalise; only the last is supported")
    .shape([](const ShapeContext& c) {
      detail::expect_last_axis(c);
      return c.in(0);
    })
    .saves_output()
    .forward([](auto& k) {
      const auto &x = k.in(0), &y = k.out();
      const std::int64_t n = x.cols();
      for_each_row(x.rows(), n, [&](std::int64_t r) { detail::softmax_row(x.row(r), y.row(r), n); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto &y = k.out(), &g = k.grad_out(), &dx = k.grad_in(0);
      const std::int64_t n = y.cols();
      for_each_row(y.rows(), n, [&](std::int64_t r) {
        const T *yr = y.row(r), *gr = g.row(r);
        T dot = T(0);
        for (std::int64_t j = 0; j < n; ++j) dot += gr[j] * yr[j];
        T* d = dx.row(r);
        for (std::int64_t j = 0; j < n; ++j) d[j] = yr[j] * (gr[j] - dot);
      });
    })
    .check({"[a,b]"})
    .check({"[a,b,c]"})
    .check({"[a,b]"}, {}, 800.0);

}  // namespace opgraph::ops
