// The C++ convenience API: the three reference compositions and recorded origins.
#include <doctest/doctest.h>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/registry.hpp>

using namespace opgraph;

TEST_CASE("nn: the 784-256-10 sigmoid/softmax net in a few lines") {
  Graph g;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N});
  auto h = nn::logistic(nn::dense(x, 256, "hidden", Init::normal(0, 0.01)));
  auto logits = nn::dense(h, 10, "out", Init::normal(0, 0.01));
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  CHECK(g.size() == 12);  // 2 inputs, 4 parameters, 6 op nodes
  CHECK(logits.shape() == Shape{N, 10});
  CHECK(g.node(g.at("hidden.W")).shape == Shape{784, 256});
  CHECK(g.node(g.at("out.b")).shape == Shape{10});
  CHECK(g.params().size() == 4);
}

TEST_CASE("nn: the 2-2-1 XOR net trains to the right answers") {
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto y = nn::input(g, "y", {N, 1});
  auto p = nn::logistic(nn::dense(nn::logistic(nn::dense(x, 2, "hidden")), 1, "out")).named("p");
  g.set_loss(nn::binary_cross_entropy(p, y));
  g.add_output(p);
  Params params = g.init_params(0);
  Plan plan(g, params, {.batch = 4});
  const Tensor xs = Tensor::from({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1}), ys = Tensor::from({4, 1}, {0, 1, 1, 0});
  plan.set_input("x", xs);
  plan.set_input("y", ys);
  for (int epoch = 0; epoch < 20000; ++epoch) {
    plan.forward();
    if (plan.loss() < 0.01) break;
    plan.backward();
    for (auto& s : plan.parameters())
      for (std::int64_t i = 0; i < s.value.numel(); ++i) s.value.set(i, s.value.at(i) - 0.3 * s.grad.at(i));
  }
  CHECK(plan.loss() < 0.01);
  const Tensor out = plan.value("p");
  CHECK(out.at(0) < 0.05);
  CHECK(out.at(1) > 0.95);
  CHECK(out.at(2) > 0.95);
  CHECK(out.at(3) < 0.05);
}

TEST_CASE("nn: a DAG with a skip connection") {
  Graph g;
  auto x = nn::input(g, "x", {N, 16});
  auto h1 = nn::relu(nn::dense(x, 16, "block1"));
  auto h2 = nn::relu(nn::dense(h1, 16, "block2"));
  auto skip = (h1 + h2).named("skip");  // the residual: h1 feeds block2 and the sum
  auto out = nn::dense(skip, 4, "head");
  g.set_loss(nn::mean(out * out));
  CHECK(g.consumers(h1.id()).size() == 2);
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 3});
  plan.set_input("x", Tensor::from({3, 16}, std::vector<double>(48, 0.5)));
  plan.forward();
  plan.backward();
  CHECK(plan.loss() > 0);
  CHECK(plan.backward_order().size() == 11);  // every op node needs its vjp
}

TEST_CASE("nn: nodes remember the line that declared them") {
  Graph g;
  const int line = __LINE__ + 1;
  auto x = nn::input(g, "x", {N, 3});
  CHECK(g.node(x.id()).origin == fmt::format("nn_test.cpp:{}", line));
  auto w = nn::param(g, "w", {4, 2});
  const int matmul_line = __LINE__ + 1;
  auto call_matmul = [&] { return nn::matmul(x, w); };
  CHECK_THROWS_WITH_AS(call_matmul(),
                       fmt::format("nn_test.cpp:{}: matmul: inner dimensions differ: [N,3] x [4,2] (3 against 4)", matmul_line).c_str(),
                       ShapeError);
  const int op_line = __LINE__ + 1;
  auto call_op = [&] { return nn::op("sofmax", {x}); };
  CHECK_THROWS_WITH_AS(call_op(),
                       fmt::format("nn_test.cpp:{}: unknown op 'sofmax' (did you mean 'softmax'?)", op_line).c_str(),
                       GraphError);
}
