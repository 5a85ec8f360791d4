// logistic (sigmoid): 1 / (1 + e^-x); the vjp uses the saved output, y(1-y).
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(logistic)
    .lower(lowering::same("Sigmoid"))
    .doc("the sigmoid 1/(1+exp(-x)), elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .in_place("x")
    .activation(math::Activation::logistic)
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return math::logistic(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return math::logistic_vjp(y, g); });
    })
    .domain("x", {.lo = -4.0, .hi = 4.0})
    .check({"[a,b]"});

}  // namespace opgraph::ops
