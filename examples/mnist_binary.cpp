// Reference experiment 5: MNIST 5 versus 8. The first 1000 training images of each digit;
// every 5 and 8 of the test set (1866 images). A 784-256-1 network, sigmoid hidden and
// sigmoid output, binary cross-entropy, weights normal(0, 0.01), zero biases, full-batch
// gradient descent with lr 0.01 for 100 epochs, on raw pixel values (0..255) as in the
// original (train 0.972, test 0.947).
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
  const int epochs = args.epochs ? args.epochs : 100;

  const Dataset train = first_per_class(filter_classes(load_mnist(folder, true), {5, 8}), 1000);
  const Dataset test = filter_classes(load_mnist(folder, false), {5, 8});
  std::printf("train: %lld images (%s: %lld, %s: %lld); test: %lld images\n", static_cast<long long>(train.size()),
              train.class_name(0).c_str(), static_cast<long long>(train.class_counts()[0]), train.class_name(1).c_str(),
              static_cast<long long>(train.class_counts()[1]), static_cast<long long>(test.size()));

  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N, 1});
  auto h = nn::logistic(nn::dense(x, 256, "hidden", Init::normal(0, 0.01), Init::zeros()));
  auto p = nn::logistic(nn::dense(h, 1, "out", Init::normal(0, 0.01), Init::zeros())).named("p");
  g.set_loss(nn::binary_cross_entropy(p, y).named("loss"));
  model.params = g.init_params(args.seed);

  auto gd = make_sgd({.lr = 0.01});
  TrainOptions options{.epochs = epochs, .shuffle = false};
  options.on_epoch = [](const EpochReport& e) {
    if (e.epoch == 1 || e.epoch % 10 == 0)
      std::printf("epoch %3d  loss %.4f  accuracy %.4f  (%.0f ms)\n", e.epoch, e.train_loss, e.train_accuracy,
                  1e3 * e.seconds);
  };
  Trainer trainer(model);
  trainer.fit(train, *gd, options);
  const Evaluation tr = trainer.evaluate(train), te = trainer.evaluate(test);
  std::printf("train accuracy %.4f, test accuracy %.4f\n", tr.accuracy, te.accuracy);
  std::printf("test confusion: 5 as 5 %lld, 5 as 8 %lld, 8 as 5 %lld, 8 as 8 %lld\n",
              static_cast<long long>(te.confusion[0][0]), static_cast<long long>(te.confusion[0][1]),
              static_cast<long long>(te.confusion[1][0]), static_cast<long long>(te.confusion[1][1]));
  example::Json("mnist_binary")
      .add("train_accuracy", tr.accuracy)
      .add("test_accuracy", te.accuracy)
      .add("test_loss", te.loss)
      .add("epochs", epochs)
      .add("seconds", clock.seconds())
      .print();
  return 0;
}
