// XOR below fit(): the compiled Plan driven by hand. Each step binds the inputs
// (set_input), runs forward() and backward(), and updates every parameter through
// parameters(), whose values are the model's own buffers. The same 2-2-1 sigmoid net and
// lr 0.3 as examples/xor.cpp, the same seed, so the same loss curve.
#include <cmath>
#include <cstdio>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/numeric.hpp>
#include <opgraph/graph/plan.hpp>

#include "example.hpp"

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/0);

  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto y = nn::input(g, "y", {N, 1});
  auto h = nn::logistic(nn::dense(x, 2, "hidden"));
  auto p = nn::logistic(nn::dense(h, 1, "out")).named("p");
  g.set_loss(nn::binary_cross_entropy(p, y).named("loss"));
  Params params = g.init_params(args.seed);

  const Dataset data = make_xor();
  const Tensor labels = data.labels.reshape({4, 1});
  Plan plan(g, params, {.batch = 4, .keep = {"p"}});  // compiled once: buffers, schedule
  plan.set_input("x", data.features);                  // bound, not copied
  plan.set_input("y", labels);
  const std::vector<ParamSlot> slots = plan.parameters();  // (name, value, gradient)

  double loss = 0.0;
  int epoch = 0;
  const int epochs = args.epochs ? args.epochs : 100000;
  for (; epoch < epochs; ++epoch) {
    plan.forward();
    loss = plan.loss();
    if (!std::isfinite(loss) || loss <= 0.01) break;
    plan.backward();
    for (const ParamSlot& s : slots) {  // gradient descent by hand: w -= lr * dL/dw
      float* w = static_cast<float*>(const_cast<void*>(s.value.raw()));
      const float* grad = s.grad.data<float>();
      for (std::int64_t i = 0; i < s.value.numel(); ++i) w[i] -= 0.3f * grad[i];
    }
  }
  const Tensor out = plan.value("p");
  double worst = 0.0;
  for (int i = 0; i < 4; ++i) {
    worst = worst_of(worst, std::abs(out.at(i) - data.labels.at(i)));
    std::printf("xor(%g, %g) = %.4f\n", data.features.at({i, 0}), data.features.at({i, 1}), out.at(i));
  }
  std::printf("loss %.5f after %d steps\n", loss, epoch);
  example::Json("xor_plan").add("loss", loss).add("epochs", epoch).add("worst_output_error", worst).print();
  return 0;
}
