// Elementwise math by hand: maximum/minimum (ties and NaN), pow, sqrt, rsqrt, abs, clamp,
// comparisons as masks, and where, whose condition takes no gradient.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

TEST_CASE("math: maximum and minimum broadcast, send a tie's gradient to a, and keep NaN") {
  const Tensor a = f64({2, 2}, {1, 5, 3, 3}), b = f64({2}, {2, 3});
  const Tensor seed = f64({2, 2}, {1, 1, 1, 1});
  const auto mx = run_op("maximum", {a, b}, {}, &seed);
  CHECK(mx.out.to_vector() == std::vector<double>{2, 5, 3, 3});
  CHECK(mx.grads[0].to_vector() == std::vector<double>{0, 1, 1, 1});  // the tie (3, 3) goes to a
  CHECK(mx.grads[1].to_vector() == std::vector<double>{1, 0});        // summed over the broadcast rows
  CHECK(run_op("minimum", {a, b}).out.to_vector() == std::vector<double>{1, 3, 2, 3});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(run_op("maximum", {f64({1}, {nan}), f64({1}, {1})}).out.at(0)));
  CHECK(std::isnan(run_op("minimum", {f64({1}, {1}), f64({1}, {nan})}).out.at(0)));
}

TEST_CASE("math: pow, sqrt, rsqrt, abs and clamp by hand") {
  const Tensor x = f64({4}, {-2, -0.5, 0.25, 4});
  CHECK(run_op("pow", {x}, {{"exponent", 3.0}}).out.to_vector() == std::vector<double>{-8, -0.125, 0.015625, 64});
  const Tensor seed = f64({4}, {1, 1, 1, 1});
  const auto p = run_op("pow", {x}, {{"exponent", 2.0}}, &seed);
  CHECK(p.grads[0].to_vector() == std::vector<double>{-4, -1, 0.5, 8});
  const Tensor pos = f64({2}, {0.25, 4});
  CHECK(run_op("sqrt", {pos}).out.to_vector() == std::vector<double>{0.5, 2});
  CHECK(run_op("rsqrt", {pos}).out.to_vector() == std::vector<double>{2, 0.5});
  const Tensor two = f64({2}, {1, 1});
  CHECK(run_op("rsqrt", {pos}, {}, &two).grads[0].to_vector() == std::vector<double>{-4, -1.0 / 16});  // -x^-1.5 / 2
  const auto ab = run_op("abs", {x}, {}, &seed);
  CHECK(ab.out.to_vector() == std::vector<double>{2, 0.5, 0.25, 4});
  CHECK(ab.grads[0].to_vector() == std::vector<double>{-1, -1, 1, 1});
  const auto c = run_op("clamp", {x}, {{"min", -1.0}, {"max", 1.0}}, &seed);
  CHECK(c.out.to_vector() == std::vector<double>{-1, -0.5, 0.25, 1});
  CHECK(c.grads[0].to_vector() == std::vector<double>{0, 1, 1, 0});
  CHECK(run_op("clamp", {x}, {{"max", 0.0}}).out.to_vector() == std::vector<double>{-2, -0.5, 0, 0});
}

TEST_CASE("math: comparisons give masks, and where picks by them with no gradient into the mask") {
  const Tensor a = f64({3}, {1, 2, 3}), b = f64({3}, {2, 2, 2});
  CHECK(run_op("less", {a, b}).out.to_vector() == std::vector<double>{1, 0, 0});
  CHECK(run_op("less_equal", {a, b}).out.to_vector() == std::vector<double>{1, 1, 0});
  CHECK(run_op("greater", {a, b}).out.to_vector() == std::vector<double>{0, 0, 1});
  CHECK(run_op("greater_equal", {a, b}).out.to_vector() == std::vector<double>{0, 1, 1});
  CHECK(run_op("equal", {a, b}).out.to_vector() == std::vector<double>{0, 1, 0});
  CHECK(run_op("not_equal", {a, b}).out.to_vector() == std::vector<double>{1, 0, 1});
  // relu by hand: where(greater(x, 0), x, 0), trained through: the gradient reaches x
  // through where, never through the comparison (which has no vjp).
  Graph g;
  const NodeId x = g.add_input("x", Shape{4});
  const NodeId zero = g.add_input("zero", Shape{});
  const NodeId mask = g.add_op("greater", {x, zero}, {}, "mask");
  const NodeId y = g.add_op("where", {mask, x, zero}, {}, "y");
  g.add_output(y);
  Params params(DType::f64);
  Plan plan(g, params, {.loss = "y", .input_grads = {"x"}});
  plan.set_input("x", f64({4}, {-1, 2, -3, 4}));
  plan.set_input("zero", f64({}, {0}));
  plan.forward();
  CHECK(plan.value("y").to_vector() == std::vector<double>{0, 2, 0, 4});
  plan.backward(f64({4}, {1, 1, 1, 1}));
  CHECK(plan.grad("x").to_vector() == std::vector<double>{0, 1, 0, 1});
}
