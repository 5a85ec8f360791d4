// The gradient checker must catch wrong vjps. This binary registers two deliberately
// broken ops (kept out of the main test binary, whose generated check covers every op).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/registry.hpp>

using namespace opgraph;

namespace {

// mean over all elements whose vjp forgets the 1/N.
OPGRAPH_OP(broken_mean)
    .doc("mean with a vjp missing its 1/N (test only)")
    .input("x")
    .shape(scalar_shape())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      k.out().data[0] = static_cast<T>(sum_over(k.in(0).size, [&](std::int64_t i) { return k.in(0).data[i]; }) /
                                       static_cast<double>(k.in(0).size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T g = k.grad_out().data[0];
      map(k.grad_in(0), k.grad_in(0), [g](T) { return g; });
    })
    .check({"[a,b]"});

// tanh whose vjp is off by one part in a thousand.
OPGRAPH_OP(slightly_wrong_tanh)
    .doc("tanh with a vjp 0.1% too large (test only)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::tanh(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return T(1.001) * g * (T(1) - y * y); });
    })
    .check({"[a,b]"});

}  // namespace

TEST_CASE("gradcheck: a vjp missing 1/N fails the check") {
  const auto results = check_op_gradients(Registry::global().get("broken_mean"));
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].passed);
  CHECK(results[0].failure.empty());
  // The analytic gradient is N times the true one: the error relative to it is 1 - 1/N.
  CHECK(results[0].max_error > 0.75);
}

TEST_CASE("gradcheck: a vjp off by 0.1% fails the check") {
  const auto results = check_op_gradients(Registry::global().get("slightly_wrong_tanh"));
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].passed);
  // Reported as the relative error it is: about 1e-3.
  CHECK(results[0].max_error == doctest::Approx(1e-3 / 1.001).epsilon(0.01));
}

TEST_CASE("conformance: the broken ops fail and the explanation names the culprit") {
  const ConformanceReport mean = check_conformance(Registry::global().get("broken_mean"));
  CHECK_FALSE(mean.passed());
  REQUIRE(mean.first_failure() != nullptr);
  CHECK(mean.first_failure()->property == "gradient");
  const std::string why = explain_gradient(Registry::global().get("broken_mean"));
  CHECK(why.find("analytic / numeric = 18 everywhere (the element count of [6,3])") != std::string::npos);
  CHECK(why.find("a missing or extra 1/N") != std::string::npos);
  const ConformanceReport tanh = check_conformance(Registry::global().get("slightly_wrong_tanh"));
  CHECK_FALSE(tanh.passed());
  CHECK(tanh.item("linearity")->passed);  // 1.001 g is still linear in g
  CHECK(tanh.item("saves")->passed);
  CHECK(explain_gradient(Registry::global().get("slightly_wrong_tanh")).find("= 1.001 everywhere") != std::string::npos);
}
