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

/// e^x. Float: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial
/// for e^r (Cephes' coefficients), then the exponent added as 2^(n/2) 2^(n - n/2) so
/// that every n in [-126, 128] stays a normal power of two.
[[gnu::always_inline]] inline float exp(float x) {
  constexpr float kHi = 88.72283935546875f;   // above: e^x overflows float
  constexpr float kLo = -87.33654022216797f;  // below: e^x is not a normal float
  const float xc = std::min(std::max(x, kLo), kHi);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = xc * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  // n as an integer from t's low mantissa bits (no float-to-int conversion, which would
  // be undefined for NaN).
  const std::int32_t ni = std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(kRound);
  const std::int32_t n1 = ni >> 1, n2 = ni - n1;
  const float s1 = std::bit_cast<float>(static_cast<std::uint32_t>(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(static_cast<std::uint32_t>(n2 + 127) << 23);
  const float y = er * s1 * s2;
  return x > kHi ? HUGE_VALF : (x < kLo ? 0.0f : y);
}
inline double exp(double x) { return std::exp(x); }

/// 1 / (1 + e^-x), written so that no exp overflows: for x < 0, e^x / (1 + e^x).
template <class T>
[[gnu::always_inline]] inline T logistic(T x) {
  const T e = math::exp(-std::abs(x));
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
  const float e = math::exp(-2.0f * a);  // in (0, 1]: no overflow
  const float big = (1.0f - e) / (1.0f + e);
  const float large = x < 0.0f ? -big : big;
  return a < 0.625f ? small : large;
}
inline double tanh(double x) { return std::tanh(x); }

/// erfc, the complementary error function, and e^(-x^2) from the same evaluation (GELU's
/// gradient needs both: one exponential fewer than computing them apart). Float: for
/// z = |x|, the Chebyshev fit of Numerical Recipes (erfcc), t e^(-z^2 + P(t)) with
/// t = 1 / (1 + z/2) and P of degree 9, whose fractional error is below 1.2e-7 for every
/// z >= 0 (so the far tail keeps its relative accuracy, which 1 - erf would lose);
/// erfc(-z) = 2 - erfc(z). Measured within 8 ulp of the C library's erfc, and the
/// Gaussian within 2 ulp of e^(-x^2), where the result is a normal float.
[[gnu::always_inline]] inline float erfc_gauss(float x, float& gauss) {
  const float z = std::abs(x);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  // e^(-z^2) as e^(-hi) e^(-lo) with hi + lo = z^2 exactly: rounding z^2 (about 80 in the
  // tail) to a float would cost 30 ulp of the result. |lo| <= 2^-24 hi, so e^(-lo) is
  // 1 - lo to far below a float's precision.
  const float hi = z * z, lo = hi < HUGE_VALF ? std::fma(z, z, -hi) : 0.0f;  // inf - inf: no NaN
  const float e = math::exp(-hi);
  gauss = std::fma(-e, lo, e);
  const float r = t * e * math::exp(p - lo);
  return x < 0.0f ? 2.0f - r : r;
}
inline double erfc_gauss(double x, double& gauss) {
  gauss = std::exp(-x * x);
  return std::erfc(x);
}
template <class T>
[[gnu::always_inline]] inline T erfc(T x) {
  T unused;
  return erfc_gauss(x, unused);
}

}  // namespace opgraph::math
