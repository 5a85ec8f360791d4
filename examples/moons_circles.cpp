// Reference experiment 4b: two-moons and concentric circles (1000 points each, 30 % held
// out), a 2 -> 16 -> 2 network, once with ReLU and once with tanh hidden units, softmax
// cross-entropy, Adam (lr 0.01) on minibatches of 32.
#include <cstdio>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

namespace {

double run(const opgraph::Dataset& data, bool relu, std::uint64_t seed, int epochs, double& train_accuracy) {
  using namespace opgraph;
  const Split split = train_test_split(data, 0.3, seed);
  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 2});
  auto y = nn::input(g, "y", {N});
  auto z = nn::dense(x, 16, "hidden");
  auto h = relu ? nn::relu(z) : nn::tanh(z);
  auto logits = nn::dense(h, 2, "out").named("logits");
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  model.params = g.init_params(seed);
  auto adam = make_adam({.lr = 0.01});
  fit(model, split.train, *adam, {.epochs = epochs, .batch = 32, .seed = seed});
  train_accuracy = evaluate(model, split.train).accuracy;
  return evaluate(model, split.test).accuracy;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  example::Stopwatch clock;
  const int epochs = args.epochs ? args.epochs : 100;
  const Dataset moons = make_moons(1000, 0.1, args.seed), circles = make_circles(1000, 0.05, 0.5, args.seed);
  example::Json json("moons_circles");
  for (const auto& [name, data] : {std::pair{"moons", &moons}, std::pair{"circles", &circles}})
    for (bool relu : {true, false}) {
      double train = 0.0;
      const double test = run(*data, relu, args.seed, epochs, train);
      const std::string key = std::string(name) + (relu ? "_relu" : "_tanh");
      std::printf("%-13s train accuracy %.4f, test accuracy %.4f\n", key.c_str(), train, test);
      json.add(key + "_test_accuracy", test);
    }
  json.add("epochs", epochs).add("seconds", clock.seconds()).print();
  return 0;
}
