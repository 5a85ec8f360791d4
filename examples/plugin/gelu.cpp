// gelu: x * Phi(x), Phi the standard normal distribution function (the exact form).
#include <cmath>
#include <numbers>

#include <opgraph/graph/op.hpp>

OPGRAPH_OP(gelu)
    .doc("x * Phi(x), the Gaussian error linear unit (exact, with erf), elementwise")
    .input("x")
    .shape(opgraph::same_shape_as(0))
    .saves({"x"})
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      opgraph::map(k.in(0), k.out(), [](T x) { return T(0.5) * x * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>)); });
    })
    .vjp([](auto& k) {
      // d/dx x Phi(x) = Phi(x) + x phi(x)
      using T = opgraph::scalar_of<decltype(k)>;
      opgraph::zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) {
        const T cdf = T(0.5) * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>));
        const T pdf = std::exp(T(-0.5) * x * x) * std::numbers::inv_sqrtpi_v<T> / std::numbers::sqrt2_v<T>;
        return g * (cdf + x * pdf);
      });
    })
    .domain("x", {.lo = -3.0, .hi = 3.0})
    .check({"[a,b]"})
    .check({"[a,b,c]"});
