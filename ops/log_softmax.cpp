// log_softmax over the last axis: (x - max) - log1p(sum of the other exps); vjp g - softmax(x) * sum(g).
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/softmax_row.hpp"

namespace opgraph::ops {

OPGRAPH_OP(log_softmax)
    .doc("x - log(sum(exp(x))) over the last axis, computed stably")
    .input("x")
    .attr("axis", AttrType::integer, -1, "the axis to normalise; only the last is supported")
    .shape([](const ShapeContext& c) {
      detail::expect_last_axis(c);
      return c.in(0);
    })
    .saves_output()
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const auto& y = k.out();
      with_width(x.cols(), [&](auto n) {
        for_row_chunks(x.rows(), n, [&](std::int64_t b, std::int64_t e) { detail::log_softmax_rows(x.data, y.data, b, e, n); });
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& y = k.out();
      const auto& g = k.grad_out();
      const auto& dx = k.grad_in(0);
      const std::int64_t n = y.cols();
      for_each_row(y.rows(), n, [&](std::int64_t r) {
        const T *yr = y.row(r), *gr = g.row(r);
        T total = T(0);
        for (std::int64_t j = 0; j < n; ++j) total += gr[j];
        T* d = dx.row(r);
        for (std::int64_t j = 0; j < n; ++j) d[j] = gr[j] - math::exp(yr[j]) * total;
      });
    })
    .check({"[a,b]"})
    .check({"[a,b]"}, {}, 800.0);

}  // namespace opgraph::ops
