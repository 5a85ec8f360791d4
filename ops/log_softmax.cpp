// log_softmax over the last axis: (x - max) - log1p(sum of the other exps); vjp g - softmax(x) * sum(g).
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/softmax_row.hpp"

namespace opgraph::ops {

OPGRAPH_OP(log_softmax)
    .lower([](LoweringContext& c) { c.emit("LogSoftmax", {c.input(0)}, {c.output()}, {{"axis", c.attr_int("axis")}}); })
    .doc("x - log(sum(exp(x))) over an axis (default the last), computed stably")
    .input("x")
    .attr("axis", AttrType::integer, -1, "the axis to normalise (default the last)")
    .shape(detail::softmax_shape)
    .saves_output()
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const auto& y = k.out();
      if (const detail::AroundAxis l = detail::lanes(k, x); l.inner > 1) {
        detail::softmax_lanes(x.data, y.data, l, true);
        return;
      }
      with_width(x.cols(), [&](auto n) {
        for_row_chunks(x.rows(), n, [&](std::int64_t b, std::int64_t e) { detail::log_softmax_rows(x.data, y.data, b, e, n); });
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& y = k.out();
      const auto& g = k.grad_out();
      const auto& dx = k.grad_in(0);
      if (const detail::AroundAxis l = detail::lanes(k, y); l.inner > 1) {
        detail::softmax_lanes_vjp(y.data, g.data, dx.data, l, true);
        return;
      }
      const std::int64_t n = y.cols();
      for_each_row(y.rows(), n, [&](std::int64_t r) {
        const T *yr = y.row(r), *gr = g.row(r);
        T total = T(0);
        for (std::int64_t j = 0; j < n; ++j) total += gr[j];
        T* d = dx.row(r);
        for (std::int64_t j = 0; j < n; ++j) d[j] = gr[j] - math::exp_nonpositive(yr[j]) * total;
      });
    })
    .check({"[a,b]"})
    .check({"[a,b]"}, {}, 800.0)
    .check({"[a,b,c]"}, {{"axis", 1}})
    .check({"[a,b]"}, {{"axis", 0}}, 800.0);

}  // namespace opgraph::ops
