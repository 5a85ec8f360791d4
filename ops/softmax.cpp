// softmax over the last axis, stable for large logits; vjp y * (g - <g, y>).
#include <opgraph/graph/op.hpp>

#include "detail/softmax_row.hpp"

namespace opgraph::ops {

OPGRAPH_OP(softmax)
    .lower([](LoweringContext& c) { c.emit("Softmax", {c.input(0)}, {c.output()}, {{"axis", c.attr_int("axis")}}); })
    .doc("exp(x) / sum(exp(x)) over an axis (default the last), computed stably")
    .input("x")
    .attr("axis", AttrType::integer, -1, "the axis to normalise (default the last)")
    .shape(detail::softmax_shape)
    .saves_output()
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const auto& y = k.out();
      if (const detail::AroundAxis l = detail::lanes(k, x); l.inner > 1) {
        detail::softmax_lanes(x.data, y.data, l, false);
        return;
      }
      with_width(x.cols(), [&](auto n) {
        for_row_chunks(x.rows(), n, [&](std::int64_t b, std::int64_t e) { detail::softmax_rows(x.data, y.data, b, e, n); });
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& y = k.out();
      const auto& g = k.grad_out();
      const auto& dx = k.grad_in(0);
      if (const detail::AroundAxis l = detail::lanes(k, y); l.inner > 1) {
        detail::softmax_lanes_vjp(y.data, g.data, dx.data, l, false);
        return;
      }
      with_width(y.cols(), [&](auto n) {
        for_row_chunks(y.rows(), n, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t r = b; r < e; ++r) {
            const T *yr = y.data + r * n, *gr = g.data + r * n;
            T dot = T(0);
            for (std::int64_t j = 0; j < n; ++j) dot += gr[j] * yr[j];
            T* d = dx.data + r * n;
            for (std::int64_t j = 0; j < n; ++j) d[j] = yr[j] * (gr[j] - dot);
          }
        });
      });
    })
    .check({"[a,b]"})
    .check({"[a,b,c]"})
    .check({"[a,b]"}, {}, 800.0)
    .check({"[a,b,c]"}, {{"axis", 1}})
    .check({"[a,b]"}, {{"axis", 0}}, 800.0);

}  // namespace opgraph::ops
