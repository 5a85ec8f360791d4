// Activations against PyTorch 1.13's values (torch.nn.functional in float64, printed to
// 17 digits): forward and derivative at -3, -0.5, 0, 0.7 and 2.5.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include <opgraph/graph/math.hpp>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {
void check_values(const Tensor& got, const std::vector<double>& want) {
  REQUIRE(got.numel() == static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got.at(static_cast<std::int64_t>(i)) == doctest::Approx(want[i]).epsilon(1e-12));
  }
}
const Tensor kX = f64({5}, {-3.0, -0.5, 0.0, 0.7, 2.5});
const Tensor kOnes = f64({5}, {1, 1, 1, 1, 1});
}  // namespace

TEST_CASE("activations: gelu (erf and tanh forms), silu, elu, softplus, leaky_relu equal PyTorch's") {
  const auto g = run_op("gelu", {kX}, {}, &kOnes);
  check_values(g.out, {-0.00404969409489031, -0.15426876936299344, 0.0, 0.5306254434438489, 2.4844758366855597});
  check_values(g.grads[0], {-0.01194564720418392, 0.13250487534383712, 0.5, 0.9766141011336599, 1.037611085908145});
  const auto t = run_op("gelu", {kX}, {{"approximate", "tanh"}}, &kOnes);
  check_values(t.out, {-0.0036373920817729943, -0.15428599017485606, 0.0, 0.5305701347051167, 2.484915733910001});
  check_values(t.grads[0], {-0.011584166630969648, 0.13263009646535764, 0.5, 0.976357218656104, 1.037951576212666});
  check_values(run_op("silu", {kX}).out,
               {-0.14227761953270035, -0.1887703343990727, 0.0, 0.46773144051771626, 2.3103545499468914});
  check_values(run_op("elu", {kX}, {{"alpha", 0.5}}).out, {-0.475106465816068, -0.1967346701436833, 0.0, 0.7, 2.5});
  const auto sp = run_op("softplus", {kX}, {{"beta", 2.0}}, &kOnes);
  check_values(sp.out, {0.0012378425688652247, 0.15663084375911143, 0.34657359027997264, 0.8102087049592255,
                        2.503357674244559});
  check_values(sp.grads[0], {0.0024726231566347748, 0.2689414213699951, 0.5, 0.8021838885585817, 0.9933071490757152});
  check_values(run_op("leaky_relu", {kX}, {{"negative_slope", 0.1}}).out, {-0.30000000000000004, -0.05, 0.0, 0.7, 2.5});
}

TEST_CASE("elementwise ops keep a NaN where it is, in f32 and f64 (relu had made it 0)") {
  // 37 values (whole vectors and a tail) in every op's domain, NaN at the first, in a
  // vector's middle, at a vector's start and in the tail; the other outputs finite.
  const std::vector<std::int64_t> nans = {0, 5, 16, 33};
  std::vector<double> v(37);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 + 0.05 * static_cast<double>(i) * (i % 3 == 0 ? -1 : 1);
  for (const std::int64_t i : nans) v[static_cast<std::size_t>(i)] = std::nan("");
  const std::vector<std::pair<std::string, Attrs>> ops = {
      {"relu", {}}, {"leaky_relu", {{"negative_slope", 0.1}}}, {"elu", {}}, {"gelu", {}},
      {"gelu", {{"approximate", "tanh"}}}, {"silu", {}}, {"softplus", {}}, {"logistic", {}}, {"tanh", {}},
      {"abs", {}}, {"exp", {}}, {"erf", {}}, {"clamp", {{"min", -0.5}, {"max", 0.5}}}, {"scale", {{"factor", 2.0}}},
      {"pow", {{"exponent", 2.0}}}, {"identity", {}}};
  for (const DType dtype : {DType::f32, DType::f64})
    for (const auto& entry : ops) {
      const std::string& op = entry.first;  // not a structured binding: clang's CAPTURE cannot take one
      const Attrs& attrs = entry.second;
      CAPTURE(op);
      CAPTURE(to_string(dtype));
      const Tensor y = run_op(op, {Tensor::from({37}, v, dtype)}, attrs).out;
      for (std::int64_t i = 0; i < 37; ++i) {
        CAPTURE(i);
        const bool nan = std::find(nans.begin(), nans.end(), i) != nans.end();
        CHECK(std::isnan(y.at(i)) == nan);
      }
    }
  // The positive-only ones on |v|.
  for (double& x : v) x = std::abs(x);
  for (const char* op : {"log", "sqrt", "rsqrt"}) {
    CAPTURE(op);
    const Tensor y = run_op(op, {Tensor::from({37}, v, DType::f32)}).out;
    for (std::int64_t i = 0; i < 37; ++i) CHECK(std::isnan(y.at(i)) == (std::find(nans.begin(), nans.end(), i) != nans.end()));
  }
}

TEST_CASE("activations: f32 gelu over many chunks equals its formula value by value, forward and vjp") {
  // 201 x 200 values: three of the elementwise chunks (2^14), each ending in a partial
  // strip of the erfc evaluation. Both tails, where erfc's relative accuracy matters.
  const Shape shape{201, 200};
  Tensor x(shape, DType::f32), seed(shape, DType::f32);
  float* xs = x.data<float>();
  float* gs = seed.data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    xs[i] = static_cast<float>((i * 7919) % 2001 - 1000) * 0.0093f;  // [-9.3, 9.3]
    gs[i] = 0.5f + static_cast<float>(i % 13) * 0.125f;
  }
  const auto r = run_op("gelu", {x}, {}, &seed);
  // The constants as the op writes them, rounded to float the same way.
  constexpr float kInvSqrt2 = 1.0f / std::numbers::sqrt2_v<float>;
  constexpr float kPdf = std::numbers::inv_sqrtpi_v<float> / std::numbers::sqrt2_v<float>;
  std::int64_t forward_differ = 0, vjp_differ = 0, far = 0;
  const float* y = r.out.data<float>();
  const float* dx = r.grads[0].data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const float v = xs[i];
    float gauss = 0.0f;
    const float erfc = math::erfc_gauss(-v * kInvSqrt2, gauss);
    forward_differ += y[i] != v * (0.5f * math::erfc(-v * kInvSqrt2));
    // The vjp's last steps may fuse a multiply and an add differently here and in the
    // library (clang's builds did): within 4 ulp of its terms' sizes.
    const float dh = 0.5f * erfc, dp = v * (gauss * kPdf);
    vjp_differ += !(std::abs(dx[i] - gs[i] * (dh + dp)) <= 4.8e-7f * gs[i] * (std::abs(dh) + std::abs(dp)));
    // Against the double formula: 8 ulp, and in the tails the rounding of -x/sqrt 2 to a
    // float (its relative error grows x^2 times in erfc: 4.7e-6 at x = -9.2).
    const double vd = v, want = vd * 0.5 * std::erfc(-vd / std::sqrt(2.0));
    far += !(std::abs(y[i] - want) <= (8.0 + vd * vd) * 1.2e-7 * std::abs(want));
  }
  CHECK(forward_differ == 0);
  CHECK(vjp_differ == 0);
  CHECK(far == 0);
}
