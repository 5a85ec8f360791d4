// Reference experiment 2: three classes uniform in their own boxes of R^3 ([1,5]^3,
// [10,15]^3, [20,25]^3), 300 samples, 30 % held out; a 3 -> 3 relu -> 3 logistic -> 3
// softmax network trained with cross-entropy and full-batch gradient descent (lr 0.1).
//
// Inputs are standardised (statistics of the training part). On raw coordinates, which
// reach 25, three ReLU units die easily: over 20 seeds, gradient descent reached 0.98
// test accuracy for at most 14 (momentum 17, Adam 19); standardised, for all 20.
#include <cstdio>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  example::Stopwatch clock;
  const int epochs = args.epochs ? args.epochs : 1000;

  const Dataset boxes = make_uniform_boxes(300, {{1, 5}, {10, 15}, {20, 25}}, 3, args.seed);
  const Split raw = train_test_split(boxes, 0.3, args.seed);
  Standardizer standardizer;
  standardizer.fit(raw.train);
  const Split split{standardizer.apply(raw.train), standardizer.apply(raw.test)};

  Model model;
  Graph& g = model.graph;
  auto x = nn::input(g, "x", {N, 3});
  auto y = nn::input(g, "y", {N});
  auto h1 = nn::relu(nn::dense(x, 3, "l1"));
  auto h2 = nn::logistic(nn::dense(h1, 3, "l2"));
  auto p = nn::softmax(nn::dense(h2, 3, "l3")).named("p");
  g.set_loss(nn::cross_entropy(p, y).named("loss"));
  model.params = g.init_params(args.seed);

  auto sgd = make_sgd({.lr = 0.1});
  const History history = fit(model, split.train, *sgd, {.epochs = epochs});
  for (const auto& e : history.epochs)
    if (e.epoch == 1 || e.epoch % 200 == 0)
      std::printf("epoch %4d  loss %.4f  accuracy %.4f\n", e.epoch, e.train_loss, e.train_accuracy);
  const Evaluation train = evaluate(model, split.train), test = evaluate(model, split.test);
  std::printf("train accuracy %.4f (%lld samples), test accuracy %.4f (%lld samples)\n", train.accuracy,
              static_cast<long long>(train.samples), test.accuracy, static_cast<long long>(test.samples));
  example::Json("uniform_boxes")
      .add("train_accuracy", train.accuracy)
      .add("test_accuracy", test.accuracy)
      .add("test_loss", test.loss)
      .add("epochs", epochs)
      .add("seconds", clock.seconds())
      .print();
  return 0;
}
