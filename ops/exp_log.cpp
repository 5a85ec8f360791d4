// exp and log, elementwise.
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(exp)
    .lower(lowering::same("Exp"))
    .doc("e^x, elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return math::exp(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g * y; });
    })
    .check({"[a,b]"});

OPGRAPH_OP(log)
    .lower(lowering::same("Log"))
    .doc("natural logarithm, elementwise (log 0 = -inf)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::log(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) { return g / x; });
    })
    .domain("x", {.lo = 0.2, .hi = 3.0})
    .check({"[a,b]"});

}  // namespace opgraph::ops
