// logistic (sigmoid): 1 / (1 + e^-x); the vjp uses the saved output, y(1-y).
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(logistic)
    .doc("the sigmoid 1/(1+exp(-x)), elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      // Written so that exp never overflows: for x < 0 use e^x / (1 + e^x).
      map(k.in(0), k.out(), [](T x) {
        const T e = std::exp(-std::abs(x));
        return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return g * y * (T(1) - y); });
    })
    .domain("x", {.lo = -4.0, .hi = 4.0})
    .check({"[a,b]"});

}  // namespace opgraph::ops
