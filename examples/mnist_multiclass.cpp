// Reference experiment 6: MNIST, all ten digits. The first 1000 training images of each
// digit (10 000); the full test set (10 000). A 784-256-10 network, sigmoid hidden layer,
// softmax cross-entropy, weights normal(0, 0.01), full-batch gradient descent with lr 0.1
// for 150 epochs, on raw pixel values (0..255) as in the original (train 0.961, test
// 0.9245).
//
// On raw pixels this learning rate is at the edge of stability: the training accuracy
// swings by a few points from epoch to epoch, and where epoch 150 falls on a swing moves
// the final test accuracy between about 0.915 and 0.925 from one seed to the next (seeds
// 1-5; float64 swings as much). Which draw a seed gives also follows the machine's
// rounding (the GEMM's depth blocks come from its caches): on a Zen 3 seeds 1-5 gave
// 0.902-0.922. `--seeds K` trains K seeds and reports the median, the lowest and the best.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <opgraph/datasets/idx.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

namespace {

struct Result {
  opgraph::Evaluation train, test;
  double ms_per_step = 0.0;
};

Result run(const opgraph::Dataset& train, const opgraph::Dataset& test, std::uint64_t seed, int epochs, bool verbose) {
  using namespace opgraph;
  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N});
  auto h = nn::logistic(nn::dense(x, 256, "hidden", Init::normal(0, 0.01), Init::zeros()));
  auto logits = nn::dense(h, 10, "out", Init::normal(0, 0.01), Init::zeros()).named("logits");
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  model.params = g.init_params(seed);

  auto gd = make_sgd({.lr = 0.1});
  TrainOptions options{.epochs = epochs, .shuffle = false};
  double train_seconds = 0.0;
  options.on_epoch = [&](const EpochReport& e) {
    train_seconds += e.seconds;
    if (verbose && (e.epoch == 1 || e.epoch % 15 == 0))
      std::printf("epoch %3d  loss %.4f  accuracy %.4f  (%.0f ms)\n", e.epoch, e.train_loss, e.train_accuracy,
                  1e3 * e.seconds);
  };
  Trainer trainer(model);
  trainer.fit(train, *gd, options);
  return {trainer.evaluate(train), trainer.evaluate(test), 1e3 * train_seconds / epochs};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  const std::string folder = example::data_or_skip(args, "mnist");
  example::Stopwatch clock;
  const int epochs = args.epochs ? args.epochs : 150;

  const Dataset train = first_per_class(load_mnist(folder, true), 1000);
  const Dataset test = load_mnist(folder, false);
  std::printf("train: %lld images, test: %lld images\n", static_cast<long long>(train.size()),
              static_cast<long long>(test.size()));

  std::vector<Result> results;
  for (int s = 0; s < args.seeds; ++s) {
    const std::uint64_t seed = args.seed + static_cast<std::uint64_t>(s);
    results.push_back(run(train, test, seed, epochs, args.seeds == 1));
    const Result& r = results.back();
    std::printf("seed %llu: train accuracy %.4f, test accuracy %.4f; %.1f ms per full-batch step\n",
                static_cast<unsigned long long>(seed), r.train.accuracy, r.test.accuracy, r.ms_per_step);
  }
  // The median run by test accuracy (the only run for one seed).
  std::vector<const Result*> order;
  for (const auto& r : results) order.push_back(&r);
  std::sort(order.begin(), order.end(),
            [](const Result* a, const Result* b) { return a->test.accuracy < b->test.accuracy; });
  const Result& median = *order[order.size() / 2];
  if (args.seeds == 1) {
    std::printf("test confusion (rows: true digit, columns: predicted):\n");
    for (const auto& row : median.test.confusion) {
      for (auto v : row) std::printf(" %4lld", static_cast<long long>(v));
      std::printf("\n");
    }
  }
  example::Json("mnist_multiclass")
      .add("seeds", args.seeds)
      .add("train_accuracy", median.train.accuracy)
      .add("test_accuracy", median.test.accuracy)
      .add("test_loss", median.test.loss)
      .add("min_test_accuracy", order.front()->test.accuracy)
      .add("max_test_accuracy", order.back()->test.accuracy)
      .add("epochs", epochs)
      .add("ms_per_step", median.ms_per_step)
      .add("seconds", clock.seconds())
      .print();
  return 0;
}
