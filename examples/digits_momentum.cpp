// Reference experiment 7: classical momentum (v = 0.9 v + lr g; w -= v, the original's
// update) on the 8x8 digits (1797 images, pixel counts 0..16 scaled to [0, 1]). A
// 64-100-10 network, ReLU hidden layer, softmax cross-entropy, minibatches of 32.
// Stratified splits: 25 % test, and 20 % of the rest for validation; train and
// validation loss and accuracy are printed every epoch.
#include <cstdio>

#include <opgraph/datasets/csv.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  const std::string folder = example::data_or_skip(args, "small");
  example::Stopwatch clock;
  const int epochs = args.epochs ? args.epochs : 30;

  const Dataset digits = scaled(read_csv(folder + "/digits.csv.gz"), 1.0 / 16.0);
  const Split outer = train_test_split(digits, 0.25, args.seed, /*stratified=*/true);
  const Split inner = train_test_split(outer.train, 0.2, args.seed + 1, /*stratified=*/true);
  std::printf("digits: %lld images; train %lld, validation %lld, test %lld\n", static_cast<long long>(digits.size()),
              static_cast<long long>(inner.train.size()), static_cast<long long>(inner.test.size()),
              static_cast<long long>(outer.test.size()));

  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 64});
  auto y = nn::input(g, "y", {N});
  auto h = nn::relu(nn::dense(x, 100, "hidden", Init::he()));
  auto logits = nn::dense(h, 10, "out").named("logits");
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  model.params = g.init_params(args.seed);

  auto momentum = make_momentum({.lr = 0.01, .momentum = 0.9});
  TrainOptions options{.epochs = epochs, .batch = 32, .seed = args.seed, .validation = &inner.test};
  options.on_epoch = [](const EpochReport& e) {
    std::printf("epoch %2d  train loss %.4f  accuracy %.4f  |  validation loss %.4f  accuracy %.4f\n", e.epoch,
                e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy);
  };
  Trainer trainer(model);
  trainer.fit(inner.train, *momentum, options);
  const Evaluation tr = trainer.evaluate(inner.train), va = trainer.evaluate(inner.test),
                   te = trainer.evaluate(outer.test);
  std::printf("train accuracy %.4f, validation accuracy %.4f, test accuracy %.4f\n", tr.accuracy, va.accuracy,
              te.accuracy);
  example::Json("digits_momentum")
      .add("train_accuracy", tr.accuracy)
      .add("validation_accuracy", va.accuracy)
      .add("test_accuracy", te.accuracy)
      .add("test_loss", te.loss)
      .add("epochs", epochs)
      .add("seconds", clock.seconds())
      .print();
  return 0;
}
