// swish (SiLU when beta = 1): x * sigmoid(beta * x).
#include <cmath>

#include <opgraph/graph/op.hpp>

namespace {
template <class T>
T sigmoid(T z) {
  const T e = std::exp(-std::abs(z));
  return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
}  // namespace

OPGRAPH_OP(swish)
    .doc("x * sigmoid(beta * x), elementwise (SiLU for beta = 1)")
    .input("x")
    .attr("beta", opgraph::AttrType::real, 1.0, "the sigmoid's steepness")
    .shape(opgraph::same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      const T b = static_cast<T>(k.attr_float("beta"));
      opgraph::map(k.in(0), k.out(), [b](T x) { return x * sigmoid(b * x); });
    })
    .vjp([](auto& k) {
      // d/dx x s(bx) = s(bx) + b x s(bx) (1 - s(bx))
      using T = opgraph::scalar_of<decltype(k)>;
      const T b = static_cast<T>(k.attr_float("beta"));
      opgraph::zip(k.in(0), k.grad_out(), k.grad_in(0), [b](T x, T g) {
        const T s = sigmoid(b * x);
        return g * (s + b * x * s * (T(1) - s));
      });
    })
    .domain("x", {.lo = -4.0, .hi = 4.0})
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"beta", 2.0}});
