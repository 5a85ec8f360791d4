// relu: max(x, 0); its vjp passes the gradient where x > 0, read from the saved output
// (y > 0 exactly when x > 0), so the pre-activation need not be kept for the backward pass.
// NaN stays NaN, as in PyTorch: `x > 0 ? x : 0` had made it 0, hiding it from the loss (a
// NaN feature then turned the weights to NaN through the vjp's products while the loss
// stayed finite and the predictions went flat).
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(relu)
    .doc("max(x, 0), elementwise (NaN stays NaN)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .in_place("x")
    .activation(math::Activation::relu)
    .lower(lowering::same("Relu"))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return math::relu(x); });  // x <= 0 ? 0 : x: NaN stays NaN
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return math::relu_vjp(y, g); });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"});

}  // namespace opgraph::ops
