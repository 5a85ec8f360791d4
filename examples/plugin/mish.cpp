// mish: x * tanh(softplus(x)), a smooth activation opgraph does not build in.
#include <cmath>
#include <string>

#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace {
/// softplus(x) = log(1 + e^x), written so that no exp overflows.
template <class T>
T softplus(T x) {
  return std::max(x, T(0)) + std::log1p(opgraph::math::exp(-std::abs(x)));
}
}  // namespace

OPGRAPH_OP(mish)
    .doc("x * tanh(softplus(x)), elementwise (Misra 2019)")
    .input("x")
    .shape(opgraph::same_shape_as(0))
    .saves({"x"})
    // For `opgraph export --onnx`: Mish is an ONNX operator only from opset 18, so its
    // definition in the operators of opset 17.
    .lower([](opgraph::LoweringContext& c) {
      const std::string sp = c.emit_fresh("Softplus", {c.input(0)}, "softplus");
      c.emit("Mul", {c.input(0), c.emit_fresh("Tanh", {sp}, "tanh")}, {c.output()});
    })
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      opgraph::map(k.in(0), k.out(), [](T x) { return x * opgraph::math::tanh(softplus(x)); });
    })
    .vjp([](auto& k) {
      // d/dx x tanh(sp(x)) = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)
      using T = opgraph::scalar_of<decltype(k)>;
      opgraph::zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) {
        const T t = opgraph::math::tanh(softplus(x));
        return g * (t + x * (T(1) - t * t) * opgraph::math::logistic(x));
      });
    })
    .domain("x", {.lo = -4.0, .hi = 4.0})
    .check({"[a,b]"})
    .check({"[a,b,c]"});
