// Activations with PyTorch's names and defaults: gelu (erf or tanh form), silu, elu,
// softplus, leaky_relu.
#include <cmath>
#include <numbers>
#include <type_traits>

#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// Phi(x), the standard normal distribution function, and with it phi(x), its density
/// (e^(-x^2/2) comes out of the same erfc evaluation). erfc, not 1 + erf: for x far below
/// 0, 1 + erf(x/sqrt 2) cancels to nothing in f32. In f32 through math::erfc_gauss, which
/// vectorises (std::erfc is a call per element: it was 60 % of the time of the
/// transformer's GELU, 14 % of its training step). x times 1/sqrt 2: a division per
/// element (GCC keeps x / sqrt 2 one) cost the gradient a tenth of its time.
template <class T>
constexpr T kInvSqrt2 = T(1) / std::numbers::sqrt2_v<T>;
template <class T>
constexpr T kPdfScale = std::numbers::inv_sqrtpi_v<T> / std::numbers::sqrt2_v<T>;  // phi = gauss * this
template <class T>
[[gnu::always_inline]] inline T normal_cdf(T x, T& pdf) {
  T gauss;
  const T cdf = T(0.5) * math::erfc_gauss(-x * kInvSqrt2<T>, gauss);
  pdf = gauss * kPdfScale<T>;
  return cdf;
}
/// Phi(x) alone (the forward pass): one exponential fewer.
template <class T>
[[gnu::always_inline]] inline T normal_cdf(T x) {
  return T(0.5) * math::erfc(-x * kInvSqrt2<T>);
}

/// The tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
/// x sigmoid(2u) (the same function: 1 + tanh(u) = 2 sigmoid(2u)), which does not cancel
/// for x far below 0.
template <class T>
constexpr T kGeluC = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
template <class T>
constexpr T kGeluA = static_cast<T>(0.044715);
/// sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the tanh form is x times this.
template <class T>
[[gnu::always_inline]] inline T gelu_tanh_sigmoid(T x) {
  return math::logistic(T(2) * kGeluC<T> * (x + kGeluA<T> * x * x * x));
}

}  // namespace

OPGRAPH_OP(gelu)
    .lower([](LoweringContext& c) {
      const std::string x = c.input(0);
      std::string inner;  // 1 + erf(x / sqrt 2), or 1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))
      if (c.attr_string("approximate") == "tanh") {
        const std::string x3 = c.emit_fresh("Pow", {x, c.scalar(3.0, "three")}, "x3");
        const std::string u = c.emit_fresh("Add", {x, c.emit_fresh("Mul", {x3, c.scalar(0.044715, "c")}, "cx3")}, "u");
        const std::string t = c.emit_fresh("Tanh", {c.emit_fresh("Mul", {u, c.scalar(std::sqrt(2.0 / std::numbers::pi), "k")}, "ku")}, "tanh");
        inner = c.emit_fresh("Add", {t, c.scalar(1.0, "one")}, "one_plus");
      } else {
        const std::string e = c.emit_fresh("Erf", {c.emit_fresh("Mul", {x, c.scalar((1.0 / std::numbers::sqrt2), "rsqrt2")}, "scaled")}, "erf");
        inner = c.emit_fresh("Add", {e, c.scalar(1.0, "one")}, "one_plus");
      }
      const std::string half = c.emit_fresh("Mul", {x, c.scalar(0.5, "half")}, "half_x");
      c.emit("Mul", {half, inner}, {c.output()});
    })
    .doc("x * Phi(x), the Gaussian error linear unit; approximate=tanh for the tanh form (PyTorch's)")
    .input("x")
    .attr_choice("approximate", {"none", "tanh"}, "none: exact, with erf; tanh: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))")
    .shape(same_shape_as(0))
    // The derivative, computed by the forward pass beside the value (when a vjp follows):
    // the two share their erfc (or sigmoid), and the vjp is then one multiply per element.
    // The vjp recomputing it from x had cost 1.5 times the forward pass (the transformer
    // W8: 1.83 ms a GELU of [2048, 512] against 1.23). x need not be kept: the derivative
    // takes its place, and the output may overwrite x.
    .workspace(same_shape_as(0))
    .saves({})
    .in_place("x")
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T* x = k.in(0).data;
      T* y = k.out().data;
      T* dy = k.vjp_runs() ? k.workspace().data : nullptr;  // dy/dx, for the vjp
      const std::int64_t n = k.out().size;
      if (k.attr_string("approximate") == "tanh") {
        // y = x s(2u); dy/dx = s + 2 x s (1 - s) u'
        parallel_for(n, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
          if (!dy) {
            for (std::int64_t i = b; i < e; ++i) y[i] = x[i] * gelu_tanh_sigmoid(x[i]);
            return;
          }
          for (std::int64_t i = b; i < e; ++i) {
            const T xi = x[i];
            const T s = gelu_tanh_sigmoid(xi);
            const T du = kGeluC<T> * (T(1) + T(3) * kGeluA<T> * xi * xi);
            dy[i] = s + T(2) * xi * s * (T(1) - s) * du;
            y[i] = xi * s;
          }
        });
      } else if constexpr (std::is_same_v<T, float>) {
        // erfc over each chunk in strips (math::erfc_each): normal_cdf's bits, faster.
        parallel_for(n, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
          if (!dy) {
            math::erfc_each(e - b, [&](std::int64_t i) { return -x[b + i] * kInvSqrt2<float>; },
                            [&](std::int64_t i, float erfc) { y[b + i] = x[b + i] * (0.5f * erfc); });
            return;
          }
          math::erfc_gauss_each(e - b, [&](std::int64_t i) { return -x[b + i] * kInvSqrt2<float>; },
                                [&](std::int64_t i, float erfc, float gauss) {
                                  const float xi = x[b + i];
                                  dy[b + i] = 0.5f * erfc + xi * (gauss * kPdfScale<float>);
                                  y[b + i] = xi * (0.5f * erfc);
                                });
        });
      } else {
        parallel_for(n, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
          if (!dy) {  // Phi alone: no density, one exponential fewer
            for (std::int64_t i = b; i < e; ++i) y[i] = x[i] * normal_cdf(x[i]);
            return;
          }
          for (std::int64_t i = b; i < e; ++i) {
            const T xi = x[i];
            T pdf;
            const T cdf = normal_cdf(xi, pdf);
            dy[i] = cdf + xi * pdf;
            y[i] = xi * cdf;
          }
        });
      }
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.workspace(), k.grad_out(), k.grad_in(0), [](T d, T g) { return g * d; });
    })
    .domain("x", {.lo = -4.0, .hi = 4.0})
    .check({"[a,b]"})
    .check({"[a,b,c]"}, {{"approximate", "tanh"}});

OPGRAPH_OP(silu)
    .lower([](LoweringContext& c) {
      c.emit("Mul", {c.input(0), c.emit_fresh("Sigmoid", {c.input(0)}, "sigmoid")}, {c.output()});
    })
    .doc("x * sigmoid(x) (swish with beta 1), elementwise")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .in_place("x")
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return x * math::logistic(x); });
    })
    .vjp([](auto& k) {
      // d/dx x s(x) = s(x) (1 + x (1 - s(x)))
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) {
        const T s = math::logistic(x);
        return g * s * (T(1) + x * (T(1) - s));
      });
    })
    .domain("x", {.lo = -5.0, .hi = 5.0})
    .check({"[a,b]"});

OPGRAPH_OP(elu)
    .lower([](LoweringContext& c) { c.emit("Elu", {c.input(0)}, {c.output()}, {{"alpha", c.attr_float("alpha")}}); })
    .doc("x for x > 0, alpha (e^x - 1) otherwise, elementwise")
    .input("x")
    .attr("alpha", AttrType::real, 1.0, "the value approached for x -> -inf is -alpha")
    .shape(same_shape_as(0))
    .saves({"x"})
    .in_place("x")
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("alpha"));
      map(k.in(0), k.out(), [a](T x) { return x > T(0) ? x : a * (math::exp(x) - T(1)); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T a = static_cast<T>(k.attr_float("alpha"));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [a](T x, T g) { return x > T(0) ? g : g * a * math::exp(x); });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"alpha", 0.5}});

OPGRAPH_OP(softplus)
    .lower([](LoweringContext& c) {
      // ONNX's Softplus has no beta: softplus(beta x) / beta. Its threshold is exact to e^-20.
      const double beta = c.attr_float("beta");
      if (beta == 1.0) {
        c.emit("Softplus", {c.input(0)}, {c.output()});
        return;
      }
      const std::string bx = c.emit_fresh("Mul", {c.input(0), c.scalar(beta, "beta")}, "beta_x");
      c.emit("Div", {c.emit_fresh("Softplus", {bx}, "softplus"), c.scalar(beta, "beta")}, {c.output()});
    })
    .doc("log(1 + e^(beta x)) / beta, elementwise: a smooth relu (x itself where beta x > threshold, as PyTorch)")
    .input("x")
    .attr("beta", AttrType::real, 1.0, "the sharpness",
          [](const AttrValue& v) { return v.as_float() > 0 ? "" : "must be positive"; })
    .attr("threshold", AttrType::real, 20.0, "above it (in beta x), the identity")
    .shape(same_shape_as(0))
    .saves({"x"})
    .in_place("x")
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T b = static_cast<T>(k.attr_float("beta")), th = static_cast<T>(k.attr_float("threshold"));
      // max(z, 0) + log1p(e^-|z|) never overflows.
      map(k.in(0), k.out(), [b, th](T x) {
        const T z = b * x;
        return z > th ? x : (std::max(z, T(0)) + std::log1p(math::exp_nonpositive(-std::abs(z)))) / b;
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T b = static_cast<T>(k.attr_float("beta")), th = static_cast<T>(k.attr_float("threshold"));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [b, th](T x, T g) { return b * x > th ? g : g * math::logistic(b * x); });
    })
    .domain("x", {.lo = -5.0, .hi = 5.0})
    .check({"[a,b]"})
    .check({"[a,b]"}, {{"beta", 2.0}})
    .check({"[a,b]"}, {}, 100.0);  // large inputs (e^100 overflows f32): the identity branch

OPGRAPH_OP(leaky_relu)
    .lower([](LoweringContext& c) { c.emit("LeakyRelu", {c.input(0)}, {c.output()}, {{"alpha", c.attr_float("negative_slope")}}); })
    .doc("x for x > 0, negative_slope * x otherwise, elementwise")
    .input("x")
    .attr("negative_slope", AttrType::real, 0.01, "the slope for x < 0")
    .shape(same_shape_as(0))
    .saves({"x"})
    .in_place("x")
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T s = static_cast<T>(k.attr_float("negative_slope"));
      map(k.in(0), k.out(), [s](T x) { return x > T(0) ? x : s * x; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T s = static_cast<T>(k.attr_float("negative_slope"));
      zip(k.in(0), k.grad_out(), k.grad_in(0), [s](T x, T g) { return x > T(0) ? g : s * g; });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"})
    .check({"[a,b,c]"}, {{"negative_slope", 0.2}});

}  // namespace opgraph::ops
