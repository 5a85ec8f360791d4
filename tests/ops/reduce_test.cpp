// Reductions by hand against NumPy's results: axes lists, keepdims, max's gradient, a
// stable logsumexp, var with ddof, and gradients spread back over the reduced axes.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

TEST_CASE("reduce: sum and mean over axes lists with keepdims, as NumPy") {
  const Tensor x = iota({2, 3, 4});  // np.arange(24).reshape(2, 3, 4)
  const auto s02 = run_op("sum", {x}, {{"axis", IntList{0, 2}}});
  CHECK(s02.out.shape() == Shape{3});
  CHECK(s02.out.to_vector() == std::vector<double>{60, 92, 124});  // x.sum(axis=(0, 2))
  const auto m1 = run_op("mean", {x}, {{"axis", 1}, {"keepdims", true}});
  CHECK(m1.out.shape() == Shape{2, 1, 4});
  CHECK(m1.out.to_vector() == std::vector<double>{4, 5, 6, 7, 16, 17, 18, 19});
  CHECK(run_op("sum", {x}, {{"axis", 0}}).out.to_vector() ==
        std::vector<double>{12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34});
  const auto all = run_op("mean", {x}, {{"keepdims", true}});
  CHECK(all.out.shape() == Shape{1, 1, 1});
  CHECK(all.out.at(0) == 11.5);
  // The gradient of a mean spreads 1/count to every element reduced.
  const Tensor seed = Tensor::from({3}, {1, 2, 3}, DType::f64);
  const auto g = run_op("mean", {x}, {{"axis", IntList{0, 2}}}, &seed);
  CHECK(g.grads[0].at({1, 0, 3}) == 1.0 / 8);
  CHECK(g.grads[0].at({0, 2, 1}) == 3.0 / 8);
}

TEST_CASE("reduce: max picks NaN and sends the gradient to the first largest element") {
  const Tensor x = Tensor::from({2, 3}, {1, 7, 7, 4, 2, 0}, DType::f64);
  const Tensor seed = Tensor::from({2}, {1, 1}, DType::f64);
  const auto m = run_op("max", {x}, {{"axis", 1}}, &seed);
  CHECK(m.out.to_vector() == std::vector<double>{7, 4});
  CHECK(m.grads[0].to_vector() == std::vector<double>{0, 1, 0, 1, 0, 0});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(run_op("max", {Tensor::from({3}, {1, nan, 2}, DType::f64)}).out.at(0)));
}

TEST_CASE("reduce: logsumexp is stable, var takes ddof") {
  const Tensor big = Tensor::from({2, 2}, {1000, 1000, -1000, -1001}, DType::f32);
  const auto l = run_op("logsumexp", {big}, {{"axis", 1}});
  CHECK(l.out.at(0) == doctest::Approx(1000 + std::log(2.0)));
  CHECK(l.out.at(1) == doctest::Approx(-1000 + std::log1p(std::exp(-1.0))));
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(run_op("logsumexp", {Tensor::from({2}, {-inf, -inf}, DType::f64)}).out.at(0) == -inf);
  const Tensor x = Tensor::from({4}, {1, 2, 3, 4}, DType::f64);
  CHECK(run_op("var", {x}).out.at(0) == 1.25);                  // np.var
  CHECK(run_op("var", {x}, {{"ddof", 1}}).out.at(0) == doctest::Approx(5.0 / 3));  // torch.var
  const Tensor one = Tensor::from({}, {1}, DType::f64);
  CHECK(run_op("var", {x}, {}, &one).grads[0].to_vector() == std::vector<double>{-0.75, -0.25, 0.25, 0.75});
}

TEST_CASE("reduce: bad axes are refused by name") {
  Graph g;
  const NodeId x = g.add_input("x", Shape{N, 3});
  CHECK_THROWS_WITH(g.add_op("sum", {x}, {{"axis", IntList{1, -1}}}, "s"), "node 's': sum: axis -1 is named twice");
  CHECK_THROWS_WITH(g.add_op("max", {x}, {{"axis", 2}}, "m"),
                    "node 'm': max: axis 2 is out of range for rank 2 (use -2..1)");
}

TEST_CASE("reduce: over an axis of size 0, sum is 0, mean NaN, max refused unless its output is empty too") {
  // NumPy's and PyTorch's answers: the sum of no values 0, their mean 0/0 (NaN, over one
  // axis and over every element); the maximum has no identity. max over an empty axis had
  // returned whatever its output's buffer held.
  const Tensor x(Shape{3, 0, 2}, DType::f32);
  for (double v : run_op("sum", {x}, {{"axis", 1}}).out.to_vector()) CHECK(v == 0.0);
  const OpRun mean = run_op("mean", {x}, {{"axis", 1}});
  CHECK(mean.out.shape() == Shape{3, 2});
  for (double v : mean.out.to_vector()) CHECK(std::isnan(v));
  CHECK(std::isnan(run_op("mean", {x}).out.at(0)));
  Graph g;
  const NodeId n = g.add_input("x", Shape{N, 0, 2});
  CHECK_THROWS_WITH(g.add_op("max", {n}, {{"axis", 1}}, "m"),
                    "node 'm': max: axis 1 of [N,0,2] has size 0, and the maximum of no values is undefined");
  CHECK_THROWS_WITH(g.add_op("max", {n}, {}, "all"),
                    "node 'all': max: axis 1 of [N,0,2] has size 0, and the maximum of no values is undefined");
  // Nothing to compute: an empty output over an empty axis is fine (NumPy's rule).
  const NodeId e = g.add_input("e", Shape{0, 0});
  CHECK(g.node(g.add_op("max", {e}, {{"axis", 1}}, "ok")).shape == Shape{0});
}
