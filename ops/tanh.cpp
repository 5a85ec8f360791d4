// tanh: hyperbolic tangent; the vjp uses the saved output, 1 - y².
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(tanh)
    .lower(lowering::same("Tanh"))
    .doc("hyperbolic tangent, elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .in_place("x")
    .activation(math::Activation::tanh)
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return math::tanh(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return math::tanh_vjp(y, g); });
    })
    .domain("x", {.lo = -3.0, .hi = 3.0})
    .check({"[a,b]"});

}  // namespace opgraph::ops
