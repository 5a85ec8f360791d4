// Elementwise math for kernels: exp, logistic, tanh and erfc that the compiler vectorises.
//
// std::exp on float is a call per element; these are branch-free inline code, so a
// kernel's loop over them becomes SIMD code (16 floats at a time with AVX-512). Float
// exp is within 1 ulp of the correctly rounded result, tanh within 2, logistic within 3
// (measured over every float in their range; tests/graph/math_test.cpp checks a sample); double versions call the C library, so
// gradient checks in f64 keep full accuracy. NaN in gives NaN out; overflow gives
// infinity; results below the smallest normal float flush to zero, as plans do anyway
// (FloatModeGuard). Every value is a pure function of its argument: bitwise the same on
// any thread, in any position of a loop.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace opgraph::math {

namespace detail {
inline constexpr float kExpHi = 88.72283935546875f;   // above: e^x overflows float
inline constexpr float kExpLo = -87.33654022216797f;  // below: e^x is not a normal float

/// e^sum for sum in [kExpLo, kExpHi] as er * 2^n: Cody-Waite reduction sum = n ln2 + r,
/// |r| <= ln2/2, and a degree-6 polynomial for e^r (Cephes' coefficients).
struct ExpParts {
  float er;        // e^r
  std::int32_t n;  // in [-126, 128]
};
[[gnu::always_inline]] inline ExpParts exp_parts(float sum) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = sum * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const float r = (sum - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  // n as an integer from t's low mantissa bits (no float-to-int conversion, which would
  // be undefined for NaN).
  return {p * (r * r) + r + 1.0f, std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(kRound)};
}

/// 2^n for n in [-126, 127], a normal float.
[[gnu::always_inline]] inline float pow2(std::int32_t n) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(n + 127) << 23);
}

/// e^sum (exp_parts), the exponent added as 2^(n/2) 2^(n - n/2) so that every n in
/// [-126, 128] stays a normal power of two.
[[gnu::always_inline]] inline float exp_reduced(float sum) {
  const ExpParts e = exp_parts(sum);
  const std::int32_t n1 = e.n >> 1;
  return e.er * pow2(n1) * pow2(e.n - n1);
}
}  // namespace detail

/// e^x (detail::exp_reduced).
[[gnu::always_inline]] inline float exp(float x) {
  const float xc = std::min(std::max(x, detail::kExpLo), detail::kExpHi);
  const float y = detail::exp_reduced(xc);
  return x > detail::kExpHi ? HUGE_VALF : (x < detail::kExpLo ? 0.0f : y);
}

inline double exp(double x) { return std::exp(x); }

/// e^x for x <= 0 (or NaN), the bits of exp(x) in a third fewer instructions: no
/// overflow to test for, and 2^n (n in [-126, 0] once x is clamped at kExpLo) one normal
/// power of two, by which er is scaled in one rounding where exp scales it in two, the
/// first exact. What logistic, tanh and a softmax's e^(x - max) take. x > 0: unspecified.
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
  const detail::ExpParts e = detail::exp_parts(std::max(x, detail::kExpLo));
  return x < detail::kExpLo ? 0.0f : e.er * detail::pow2(e.n);
}
inline double exp_nonpositive(double x) { return std::exp(x); }

/// 1 / (1 + e^-x), written so that no exp overflows: for x < 0, e^x / (1 + e^x).
template <class T>
[[gnu::always_inline]] inline T logistic(T x) {
  const T e = math::exp_nonpositive(-std::abs(x));
  const T inv = T(1) / (T(1) + e);
  return x >= T(0) ? inv : e * inv;
}

/// tanh. Float: an odd polynomial for |x| < 0.625 (Cephes' coefficients), where
/// 1 - 2/(e^2x + 1) would lose digits to cancellation, and that form elsewhere.
[[gnu::always_inline]] inline float tanh(float x) {
  const float a = std::abs(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  const float e = math::exp_nonpositive(-2.0f * a);  // in (0, 1]: no overflow
  const float big = (1.0f - e) / (1.0f + e);
  const float large = x < 0.0f ? -big : big;
  return a < 0.625f ? small : large;
}
inline double tanh(double x) { return std::tanh(x); }

/// max(x, 0), NaN kept (the relu op's function).
template <class T>
[[gnu::always_inline]] inline T relu(T x) {
  return x <= T(0) ? T(0) : x;  // NaN compares false: it stays NaN
}

/// The activations a product or a convolution can apply to its output as it writes it
/// (a plan's fused epilogue, OpBuilder::activation): relu, logistic and tanh above, the
/// functions of the ops of those names. Each is a pure function of its argument, so the
/// fused pass gives the bits of the op's own.
enum class Activation : std::uint8_t { none, relu, logistic, tanh };

/// `act` on the n values at p, in place (one loop per function, vectorised).
template <class T>
inline void activate(Activation act, T* p, std::int64_t n) {
  switch (act) {
    case Activation::none:
      return;
    case Activation::relu:
      for (std::int64_t i = 0; i < n; ++i) p[i] = relu(p[i]);
      return;
    case Activation::logistic:
      for (std::int64_t i = 0; i < n; ++i) p[i] = logistic(p[i]);
      return;
    case Activation::tanh:
      for (std::int64_t i = 0; i < n; ++i) p[i] = math::tanh(p[i]);
      return;
  }
}

/// The gradient through an activation from its output y = f(x) and the output's
/// gradient g, as the activation's op's vjp computes it (the ops call these): relu g where
/// y > 0 (else 0; NaN sends nothing), logistic g y (1 - y), tanh g (1 - y^2). A product
/// that takes over the activation's vjp (OpBuilder::absorbs_activation_vjp) applies the
/// same to its input's gradient: the same bits.
template <class T>
[[gnu::always_inline]] inline T relu_vjp(T y, T g) {
  return y > T(0) ? g : T(0);
}
template <class T>
[[gnu::always_inline]] inline T logistic_vjp(T y, T g) {
  return g * y * (T(1) - y);
}
template <class T>
[[gnu::always_inline]] inline T tanh_vjp(T y, T g) {
  return g * (T(1) - y * y);
}

/// g[i] = the gradient through `act` at output y[i] for i in [0, n) (relu_vjp, ...),
/// in place over g (one loop per function, vectorised).
template <class T>
inline void activation_vjp(Activation act, const T* y, T* g, std::int64_t n) {
  switch (act) {
    case Activation::none:
      return;
    case Activation::relu:
      for (std::int64_t i = 0; i < n; ++i) g[i] = relu_vjp(y[i], g[i]);
      return;
    case Activation::logistic:
      for (std::int64_t i = 0; i < n; ++i) g[i] = logistic_vjp(y[i], g[i]);
      return;
    case Activation::tanh:
      for (std::int64_t i = 0; i < n; ++i) g[i] = tanh_vjp(y[i], g[i]);
      return;
  }
}

/// The function's name ("relu", ...), as its op is named; "" for none.
inline const char* activation_name(Activation act) {
  switch (act) {
    case Activation::relu: return "relu";
    case Activation::logistic: return "logistic";
    case Activation::tanh: return "tanh";
    case Activation::none: break;
  }
  return "";
}

/// erfc, the complementary error function, alone or with e^(-x^2) from the same
/// evaluation (GELU's gradient needs both). Float: for z = |x|, erfc(z) = R(t) e^(-z^2)
/// with t = 1 / (1 + z/2) and R(t) = erfc(z) e^(z^2), smooth in t, a polynomial of degree
/// 11 without constant term, fitted (weighted least squares towards minimax) to the
/// relative error 5e-9 on t in [0.12, 1] (z up to 14.7; past z = 9.3 e^(-z^2) is no
/// normal float and the result is 0). The far tail keeps its relative accuracy, which
/// 1 - erf would lose; erfc(-z) = 2 - erfc(z). z^2 (about 80 in the tail) rounded to a
/// float would cost 30 ulp of the result, so it is split as hi + lo exactly and e^(-z^2)
/// is e^(-hi) (1 - lo) (|lo| <= 2^-24 hi: e^(-lo) is 1 - lo to far below a float's
/// precision), within 1 ulp: the Gaussian GELU's gradient needs. erfc is
/// R(t) times it, within 7 ulp of the C library's erfc over every float where the result
/// is normal (math_test allows 8). One exponential for both: Numerical Recipes' erfcc
/// form, t e^(-z^2 + P(t)) (also 7 ulp), had taken a second one for the Gaussian; GELU's
/// forward pass with its derivative over 2^20 floats on the Zen 4, 1.54-1.85 -> 1.09-1.19
/// ms (`opgraph profile`, alternated).
namespace detail {
struct ErfcParts {
  float r, hi, lo;  // R(t), and z^2 = hi + lo
};
[[gnu::always_inline]] inline ErfcParts erfc_parts(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  // R by Estrin's scheme: four dependent steps instead of Horner's ten. A vector loop of
  // erfc is bound by the latency of its chain, not by its count of operations (the
  // transformer example's GELU forward pass: 0.144 -> 0.133 ms on the Zen 5).
  const float t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
  const float c12 = 2.821358740e-01f * t + 2.820932865e-01f, c34 = 1.784034073e-01f * t + 2.463977039e-01f;
  const float c56 = -2.920150757e-02f * t + 8.147481829e-02f, c78 = -4.018120468e-01f * t + 8.276896179e-02f;
  const float c910 = -2.208424509e-01f * t + 4.577202797e-01f;
  const float s = (c12 + c34 * t2) + (c56 + c78 * t2) * t4 + (c910 + 4.086167738e-02f * t2) * t8;
  const float hi = z * z, lo = hi < HUGE_VALF ? std::fma(z, z, -hi) : 0.0f;  // inf - inf: no NaN
  return {t * s, hi, lo};
}
/// e^(-z^2) from its parts: e^(-hi) (1 - lo).
[[gnu::always_inline]] inline float gauss_from(const ErfcParts& q) {
  const float e = math::exp_nonpositive(-q.hi);
  return std::fma(-e, q.lo, e);
}
[[gnu::always_inline]] inline float erfc_from(float x, float r, float gauss) {
  const float v = r * gauss;
  return x < 0.0f ? 2.0f - v : v;
}
}  // namespace detail

[[gnu::always_inline]] inline float erfc(float x) {
  const detail::ErfcParts q = detail::erfc_parts(std::abs(x));
  return detail::erfc_from(x, q.r, detail::gauss_from(q));
}
inline double erfc(double x) { return std::erfc(x); }

/// erfc(x), and e^(-x^2) in `gauss`, from the one exponential.
[[gnu::always_inline]] inline float erfc_gauss(float x, float& gauss) {
  const detail::ErfcParts q = detail::erfc_parts(std::abs(x));
  gauss = detail::gauss_from(q);
  return detail::erfc_from(x, q.r, gauss);
}
inline double erfc_gauss(double x, double& gauss) {
  gauss = std::exp(-x * x);
  return std::erfc(x);
}

/// erfc over an array: for i in [0, n), f(i, erfc(arg(i))), or with kGauss f(i, erfc,
/// gauss) as erfc_gauss gives them: the same bits as those, element by element. The
/// values go in strips of kStrip, each in two loops: the first computes R(t) and z^2 into
/// buffers on the stack, the second the exponentials. In one loop an element's chain of
/// dependent steps (a division, R, then e^x: some 90 cycles) is longer than the core can
/// overlap with the next elements', and the loop waits on it; in two, each is short
/// (GELU's forward pass over 2^20 floats on the Zen 5: 0.78 -> 0.63 ns a value). arg(i)
/// is evaluated in both loops: f may overwrite what it reads from, after the first.
namespace detail {
inline constexpr std::int64_t kStrip = 256;
template <bool kGauss, class Arg, class F>
[[gnu::always_inline]] inline void erfc_strips(std::int64_t n, Arg arg, F f) {
  alignas(64) float r[kStrip], hi[kStrip], lo[kStrip];
  for (std::int64_t s0 = 0; s0 < n; s0 += kStrip) {
    const std::int64_t m = std::min(kStrip, n - s0);
    for (std::int64_t i = 0; i < m; ++i) {
      const ErfcParts q = erfc_parts(std::abs(arg(s0 + i)));
      r[i] = q.r;
      hi[i] = q.hi;
      lo[i] = q.lo;
    }
    for (std::int64_t i = 0; i < m; ++i) {
      const float gauss = gauss_from({r[i], hi[i], lo[i]});
      const float erfc = erfc_from(arg(s0 + i), r[i], gauss);
      if constexpr (kGauss) f(s0 + i, erfc, gauss);
      else f(s0 + i, erfc);
    }
  }
}
}  // namespace detail

/// f(i, erfc(arg(i))) for i in [0, n) (detail::erfc_strips).
template <class Arg, class F>
[[gnu::always_inline]] inline void erfc_each(std::int64_t n, Arg arg, F f) {
  detail::erfc_strips<false>(n, arg, f);
}
/// f(i, erfc, gauss) for i in [0, n), as erfc_gauss(arg(i), gauss) gives them.
template <class Arg, class F>
[[gnu::always_inline]] inline void erfc_gauss_each(std::int64_t n, Arg arg, F f) {
  detail::erfc_strips<true>(n, arg, f);
}

}  // namespace opgraph::math
