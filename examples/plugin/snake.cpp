// snake: x + sin^2(a x) / a, a periodic activation (Ziyin et al. 2020) with an attribute.
#include <cmath>

#include <opgraph/graph/op.hpp>

OPGRAPH_OP(snake)
    .doc("x + sin(a x)^2 / a, elementwise: a periodic activation for periodic data")
    .input("x")
    .attr("a", opgraph::AttrType::real, 1.0, "the frequency",
          [](const opgraph::AttrValue& v) { return v.as_float() > 0 ? "" : "must be positive"; })
    .shape(opgraph::same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("a"));
      opgraph::map(k.in(0), k.out(), [a](T x) {
        const T s = std::sin(a * x);
        return x + s * s / a;
      });
    })
    .vjp([](auto& k) {
      // d/dx = 1 + 2 sin(ax) cos(ax) = 1 + sin(2ax)
      using T = opgraph::scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("a"));
      opgraph::zip(k.in(0), k.grad_out(), k.grad_in(0), [a](T x, T g) { return g * (T(1) + std::sin(T(2) * a * x)); });
    })
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"a", 2.5}});
