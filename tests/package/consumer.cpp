// Uses the installed opgraph: builds a tiny net, trains a few steps, checks the loss fell.
#include <cstdio>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/registry.hpp>

int main() {
  using namespace opgraph;
  if (!Registry::global().find("softmax_cross_entropy")) {
    std::puts("built-in ops are not registered");
    return 1;
  }
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto y = nn::input(g, "y", {N});
  g.set_loss(nn::softmax_cross_entropy(nn::dense(nn::tanh(nn::dense(x, 8, "h")), 2, "out"), y));
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 4});
  const Tensor xs = Tensor::from({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1}), ys = Tensor::from({4}, {0, 1, 1, 0});
  plan.set_input("x", xs);
  plan.set_input("y", ys);
  plan.forward();
  const double first = plan.loss();
  for (int step = 0; step < 200; ++step) {
    plan.backward();
    for (auto& s : plan.parameters())
      for (std::int64_t i = 0; i < s.value.numel(); ++i) s.value.set(i, s.value.at(i) - 0.5 * s.grad.at(i));
    plan.forward();
  }
  std::printf("loss %.4f -> %.4f\n", first, plan.loss());
  return plan.loss() < 0.5 * first ? 0 : 1;
}
