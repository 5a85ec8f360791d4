// Gradient checks: every registered op (generated from the registry) and whole networks.
#include <doctest/doctest.h>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/numeric.hpp>
#include <opgraph/graph/registry.hpp>

#include "../test_util.hpp"

using namespace opgraph;

TEST_CASE("gradcheck: every registered op's vjp matches f64 central differences") {
  const auto ops = Registry::global().ops();
  REQUIRE(ops.size() >= 19);
  for (const OpDef* op : ops) {
    if (!op->has_vjp()) continue;  // nothing to check; built-in ops all have one (registry test)
    CAPTURE(op->name);
    CHECK_MESSAGE(!op->checks.empty(), "op declares no gradient-check case");
    for (const auto& r : check_op_gradients(*op)) {
      CAPTURE(r.config);
      CAPTURE(r.failure);
      CHECK(r.failure.empty());
      CHECK(within(r.max_error, 1e-6));
    }
  }
}

namespace {

/// The realistic-size check of every built-in op whose name starts in [first, last]: two
/// halves, two tests, so that the slowest test of the suite runs on two cores.
int check_realistic(char first, char last) {
  // Kernels split work in blocks (16-wide vectors, 256-row column sums, 12x32 GEMM tiles):
  // a bug at a block's edge shows only past it, never at the 2-7 of the generated check.
  const std::vector<std::int64_t> widths = {1, 15, 16, 17, 255, 256, 257};
  int checked = 0;
  for (const OpDef* op : Registry::global().ops()) {
    if (!op->has_vjp() || op->source != "built-in" || op->name[0] < first || op->name[0] > last) continue;
    CAPTURE(op->name);
    for (std::size_t w = 0; w < widths.size(); ++w) {
      GradCheckOptions o;
      o.sizes = {300, widths[w], widths[(w + 3) % widths.size()], 3};
      o.directions = 2;
      o.max_elements = 1 << 20;
      for (const auto& r : check_op_gradients(*op, o)) {
        CAPTURE(r.config);
        CAPTURE(r.failure);
        CHECK(r.failure.empty());
        CAPTURE(r.max_error);
        CHECK(within(r.max_error, 1e-6));
        ++checked;
      }
    }
  }
  return checked;
}

}  // namespace

// 60 ops with a vjp, 7 width pairs, the cases under 2^20 elements per tensor: 970 checks,
// split where the two halves take about the same time (ops a-c hold the costly rank-4
// cases of causal_mask, conv2d, concat).
TEST_CASE("gradcheck: every op's vjp at realistic sizes (ops a-c): 300 rows, widths across every block boundary, in f64") {
  CHECK(check_realistic('a', 'c') >= 230);
}

TEST_CASE("gradcheck: every op's vjp at realistic sizes (ops d-z): 300 rows, widths across every block boundary, in f64") {
  CHECK(check_realistic('d', 'z') >= 720);
}

TEST_CASE("gradcheck: instantiate_shapes gives distinct letters distinct sizes") {
  const auto shapes = instantiate_shapes({"[a,b]", "[b,c]", "[3,a]"}, 5);
  REQUIRE(shapes.size() == 3);
  CHECK(shapes[0][1] == shapes[1][0]);
  CHECK(shapes[0][0] == shapes[2][1]);
  CHECK(shapes[2][0] == 3);
  CHECK(shapes[0][0] != shapes[0][1]);
  CHECK(shapes[1][0] != shapes[1][1]);
  CHECK_THROWS_WITH_AS(instantiate_shapes({"a,b"}, 1), "check shape 'a,b': expected a list like [a,3]", ParseError);
}

TEST_CASE("gradcheck: the reference MNIST net 784-256-10 sigmoid/softmax-CE at batch 8") {
  Graph g;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N});
  auto h = nn::logistic(nn::dense(x, 256, "hidden", Init::normal(0, 0.05)));
  auto logits = nn::dense(h, 10, "out", Init::normal(0, 0.05), Init::normal(0, 0.05));
  g.set_loss(nn::softmax_cross_entropy(logits, y));
  Params params = g.init_params(3, DType::f64);
  const auto r = check_graph_gradients(g, params, {{"x", test::random_tensor({8, 784}, 0.0, 1.0, 11)},
                                                   {"y", test::labels(8, 10, 12)}},
                                       8);
  CAPTURE(r.failure);
  CHECK(r.failure.empty());
  CHECK(r.max_error <= 1e-6);
}

TEST_CASE("gradcheck: a DAG where one activation feeds two branches that are added back") {
  Graph g;
  auto x = nn::input(g, "x", {N, 5});
  auto t = nn::input(g, "t", {N, 4});
  auto h = nn::tanh(nn::dense(x, 4, "trunk"));
  auto left = nn::relu(nn::dense(h, 4, "left"));
  auto right = nn::logistic(nn::dense(h, 4, "right"));
  auto joined = left + right + h * h;  // h fans out four ways, twice into one mul
  g.set_loss(nn::mse(joined, t));
  Params params = g.init_params(4, DType::f64);
  const auto r = check_graph_gradients(g, params, {{"x", test::random_tensor({6, 5}, -1.0, 1.0, 21)},
                                                   {"t", test::random_tensor({6, 4}, -1.0, 1.0, 22)}},
                                       6);
  CAPTURE(r.failure);
  CHECK(r.failure.empty());
  CHECK(r.max_error <= 1e-6);
}

TEST_CASE("gradcheck: the reference 3 -> 3 relu -> 3 logistic -> 3 softmax net") {
  Graph g;
  auto x = nn::input(g, "x", {N, 3});
  auto y = nn::input(g, "y", {N, 3});
  auto h1 = nn::relu(nn::dense(x, 3, "l1"));
  auto h2 = nn::logistic(nn::dense(h1, 3, "l2"));
  auto p = nn::softmax(nn::dense(h2, 3, "l3"));
  g.set_loss(nn::cross_entropy(p, y));
  Params params = g.init_params(5, DType::f64);
  Tensor onehot({7, 3}, DType::f64);
  for (int i = 0; i < 7; ++i) onehot.set(i * 3 + i % 3, 1.0);
  // Inputs of the uniform-boxes set: values in [1, 25], where relu is far from its kink.
  const auto r = check_graph_gradients(g, params, {{"x", test::random_tensor({7, 3}, 1.0, 25.0, 31)}, {"y", onehot}}, 7);
  CAPTURE(r.failure);
  CHECK(r.failure.empty());
  CHECK(r.max_error <= 1e-6);
}
