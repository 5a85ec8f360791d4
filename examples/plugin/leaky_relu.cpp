// leaky_relu: x for x > 0, alpha * x otherwise.
#include <opgraph/graph/op.hpp>

OPGRAPH_OP(leaky_relu)
    .doc("x for x > 0, alpha * x otherwise, elementwise")
    .input("x")
    .attr("alpha", opgraph::AttrType::real, 0.01, "the slope for x <= 0")
    .shape(opgraph::same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("alpha"));
      opgraph::map(k.in(0), k.out(), [a](T x) { return x > T(0) ? x : a * x; });
    })
    .vjp([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("alpha"));
      opgraph::zip(k.in(0), k.grad_out(), k.grad_in(0), [a](T x, T g) { return x > T(0) ? g : a * g; });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"alpha", 0.2}});
