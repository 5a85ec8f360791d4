// The vectorisable exp, logistic, tanh and erfc of graph/math.hpp against the C library.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <opgraph/graph/math.hpp>

namespace {

// Floats in order as integers: key(next float up) = key(f) + 1, across zero too.
std::int64_t key(float f) {
  std::int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? std::int64_t{INT32_MIN} - i : std::int64_t{i};
}
float from_key(std::int64_t k) {
  const auto bits = static_cast<std::int32_t>(k >= 0 ? k : std::int64_t{INT32_MIN} - k);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// The worst error in ulps of f against the double-precision `exact` over every `step`-th
// float in [lo, hi] (the whole range was swept once: exp 1 ulp, tanh 2, logistic 3).
template <class F, class E>
std::int64_t worst_ulps(float lo, float hi, std::int64_t step, F f, E exact) {
  std::int64_t worst = 0;
  for (std::int64_t k = key(lo); k <= key(hi); k += step) {
    const float x = from_key(k);
    const double want = exact(static_cast<double>(x));
    if (std::abs(want) >= std::numeric_limits<float>::min())  // normal results only
      worst = std::max<std::int64_t>(worst, std::llabs(key(f(x)) - key(static_cast<float>(want))));
  }
  return worst;
}

}  // namespace

TEST_CASE("math: float exp is within 1 ulp over its whole range") {
  const auto w = worst_ulps(-87.3f, 88.7f, 193, [](float x) { return opgraph::math::exp(x); },
                            [](double x) { return std::exp(x); });
  CHECK(w <= 1);
}

TEST_CASE("math: exp_nonpositive is exp bit for bit on every non-positive float, NaN and -inf") {
  // Every 97th float from -0 down to -inf, and every one in [-88, -86]: the subnormal
  // results (n = -126 with er < 1; exp scales them in two steps, exp_nonpositive in one),
  // the clamp at kExpLo and the zeros below it. (The whole range was swept once.)
  std::int64_t differ = 0;
  float first = 0.0f;
  auto sweep = [&](float from, float to, std::int64_t step) {
    for (std::int64_t k = key(from); k >= key(to); k -= step) {
      const float x = from_key(k);
      const float a = opgraph::math::exp(x), b = opgraph::math::exp_nonpositive(x);
      if (std::memcmp(&a, &b, sizeof a) != 0 && differ++ == 0) first = x;
    }
  };
  sweep(-0.0f, -std::numeric_limits<float>::infinity(), 97);
  sweep(-86.0f, -88.0f, 1);
  CHECK_MESSAGE(differ == 0, "first at x = ", first);
  for (const float x : {-0.0f, 0.0f, -87.33654022216797f, -87.3365478515625f, -103.0f, -1e30f,
                        -std::numeric_limits<float>::infinity()}) {
    const float a = opgraph::math::exp(x), b = opgraph::math::exp_nonpositive(x);
    CHECK(std::memcmp(&a, &b, sizeof a) == 0);
  }
  CHECK(std::isnan(opgraph::math::exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("math: float logistic within 3 ulp, tanh within 2") {
  CHECK(worst_ulps(-100.0f, 100.0f, 193, [](float x) { return opgraph::math::logistic(x); },
                   [](double x) { return 1.0 / (1.0 + std::exp(-x)); }) <= 3);
  CHECK(worst_ulps(-20.0f, 20.0f, 193, [](float x) { return opgraph::math::tanh(x); },
                   [](double x) { return std::tanh(x); }) <= 2);
}

TEST_CASE("math: float erfc within 8 ulp, both tails, where the result is a normal float") {
  CHECK(worst_ulps(-9.4f, 9.4f, 97, [](float x) { return opgraph::math::erfc(x); },
                   [](double x) { return std::erfc(x); }) <= 8);
  // The far tail keeps its relative accuracy (1 - erf would give 0 from about 4 on).
  CHECK(opgraph::math::erfc(6.0f) == doctest::Approx(std::erfc(6.0)).epsilon(1e-6));
  CHECK(opgraph::math::erfc(-6.0f) == 2.0f);
  CHECK(std::isnan(opgraph::math::erfc(std::nanf(""))));
  CHECK(opgraph::math::erfc(std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(opgraph::math::erfc(-std::numeric_limits<float>::infinity()) == 2.0f);
  CHECK(opgraph::math::erfc(0.5) == std::erfc(0.5));  // doubles: the C library
}

TEST_CASE("math: erfc_gauss gives erfc and e^(-x^2) together, the Gaussian within 2 ulp") {
  const auto gauss = [](float x) {
    float g = -1.0f;
    opgraph::math::erfc_gauss(x, g);
    return g;
  };
  // Up to |x| = 9.3: beyond, e^(-x^2) is below the smallest normal float (flushed to 0).
  CHECK(worst_ulps(-9.3f, 9.3f, 97, gauss, [](double x) { return std::exp(-x * x); }) <= 2);
  for (const float x : {-3.0f, -0.3f, 0.0f, 0.7f, 2.5f}) {
    float g = 0.0f;
    CHECK(opgraph::math::erfc_gauss(x, g) == opgraph::math::erfc(x));  // the same erfc, bit for bit
  }
  CHECK(gauss(std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isnan(gauss(std::nanf(""))));
  double g = 0.0;
  CHECK(opgraph::math::erfc_gauss(0.5, g) == std::erfc(0.5));  // doubles: the C library
  CHECK(g == std::exp(-0.25));
}

TEST_CASE("math: erfc_each and erfc_gauss_each give erfc and erfc_gauss bit for bit, across strips and in place") {
  // Lengths around the strips of 256: none, one value, a partial strip, whole strips, more.
  for (const std::int64_t n : {0, 1, 7, 255, 256, 257, 600}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)  // both tails, zero, and the special values
      x[static_cast<std::size_t>(i)] = i % 97 == 5   ? std::nanf("")
                                       : i % 89 == 3 ? -std::numeric_limits<float>::infinity()
                                                     : static_cast<float>((i * 37) % 201 - 100) * 0.093f;
    std::vector<float> erfc(x.size(), -1.0f), both(x.size(), -1.0f), gauss(x.size(), -1.0f);
    std::vector<std::int64_t> order;
    opgraph::math::erfc_each(n, [&](std::int64_t i) { return x[static_cast<std::size_t>(i)]; },
                             [&](std::int64_t i, float e) {
                               order.push_back(i);
                               erfc[static_cast<std::size_t>(i)] = e;
                             });
    opgraph::math::erfc_gauss_each(n, [&](std::int64_t i) { return x[static_cast<std::size_t>(i)]; },
                                   [&](std::int64_t i, float e, float g) {
                                     both[static_cast<std::size_t>(i)] = e;
                                     gauss[static_cast<std::size_t>(i)] = g;
                                   });
    CHECK(static_cast<std::int64_t>(order.size()) == n);
    CHECK(std::is_sorted(order.begin(), order.end()));
    std::int64_t differ = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      float g = 0.0f;
      const float e = opgraph::math::erfc_gauss(x[i], g);
      const auto same = [](float a, float b) {  // bit for bit; any NaN for a NaN
        return std::isnan(a) ? std::isnan(b) : std::memcmp(&a, &b, sizeof a) == 0;
      };
      differ += !same(erfc[i], opgraph::math::erfc(x[i])) + !same(both[i], e) + !same(gauss[i], g);
    }
    CHECK_MESSAGE(differ == 0, "n = " << n);
    // f may overwrite the array arg reads: each value is read before its own write.
    std::vector<float> y = x;
    opgraph::math::erfc_each(n, [&](std::int64_t i) { return y[static_cast<std::size_t>(i)]; },
                             [&](std::int64_t i, float e) { y[static_cast<std::size_t>(i)] = e; });
    for (std::size_t i = 0; i < x.size(); ++i)
      CHECK((std::isnan(y[i]) ? std::isnan(erfc[i]) : y[i] == erfc[i]));
  }
}

TEST_CASE("math: special values: NaN stays NaN, overflow is infinity, underflow is zero") {
  using opgraph::math::exp;
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(exp(std::nanf(""))));
  CHECK(exp(inf) == inf);
  CHECK(exp(89.0f) == inf);
  CHECK(exp(-inf) == 0.0f);
  CHECK(exp(-88.0f) == 0.0f);  // below the smallest normal float: flushed
  CHECK(exp(0.0f) == 1.0f);
  CHECK(exp(88.7f) == doctest::Approx(std::exp(static_cast<double>(88.7f))).epsilon(1e-6));
  CHECK(std::isnan(opgraph::math::logistic(std::nanf(""))));
  CHECK(opgraph::math::logistic(inf) == 1.0f);
  CHECK(opgraph::math::logistic(-inf) == 0.0f);
  CHECK(opgraph::math::logistic(-200.0f) == 0.0f);
  CHECK(opgraph::math::tanh(inf) == 1.0f);
  CHECK(opgraph::math::tanh(-inf) == -1.0f);
  CHECK(std::isnan(opgraph::math::tanh(std::nanf(""))));
  CHECK(opgraph::math::tanh(1e-30f) == 1e-30f);  // the odd polynomial keeps tiny inputs exact
  // Doubles go to the C library unchanged.
  CHECK(opgraph::math::exp(1.0) == std::exp(1.0));
  CHECK(opgraph::math::tanh(0.3) == std::tanh(0.3));
}
