// Activations against PyTorch 1.13's values (torch.nn.functional in float64, printed to
// 17 digits): forward and derivative at -3, -0.5, 0, 0.7 and 2.5.
#include <doctest/doctest.h>

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
