// Reference experiment 6: MNIST, all ten digits. The first 1000 training images of each
// digit (10 000); the full test set (10 000). A 784-256-10 network, sigmoid hidden layer,
// softmax cross-entropy, weights normal(0, 0.01), full-batch gradient descent with lr 0.1
// for 150 epochs, on raw pixel values (0..255) as in the original (train 0.961, test
// 0.9245).
#include <cstdio>

#include <opgraph/datasets/idx.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

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

  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N});
  auto h = nn::logistic(nn::dense(x, 256, "hidden", Init::normal(0, 0.01), Init::zeros()));
  auto logits = nn::dense(h, 10, "out", Init::normal(0, 0.01), Init::zeros()).named("logits");
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  model.params = g.init_params(args.seed);

  auto gd = make_sgd({.lr = 0.1});
  TrainOptions options{.epochs = epochs, .shuffle = false};
  double train_seconds = 0.0;
  options.on_epoch = [&](const EpochReport& e) {
    train_seconds += e.seconds;
    if (e.epoch == 1 || e.epoch % 15 == 0)
      std::printf("epoch %3d  loss %.4f  accuracy %.4f  (%.0f ms)\n", e.epoch, e.train_loss, e.train_accuracy,
                  1e3 * e.seconds);
  };
  Trainer trainer(model);
  trainer.fit(train, *gd, options);
  const Evaluation tr = trainer.evaluate(train), te = trainer.evaluate(test);
  std::printf("train accuracy %.4f, test accuracy %.4f; %.1f ms per full-batch step\n", tr.accuracy, te.accuracy,
              1e3 * train_seconds / epochs);
  std::printf("test confusion (rows: true digit, columns: predicted):\n");
  for (const auto& row : te.confusion) {
    for (auto v : row) std::printf(" %4lld", static_cast<long long>(v));
    std::printf("\n");
  }
  example::Json("mnist_multiclass")
      .add("train_accuracy", tr.accuracy)
      .add("test_accuracy", te.accuracy)
      .add("test_loss", te.loss)
      .add("epochs", epochs)
      .add("ms_per_step", 1e3 * train_seconds / epochs)
      .add("seconds", clock.seconds())
      .print();
  return 0;
}
