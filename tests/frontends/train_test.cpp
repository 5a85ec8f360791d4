// The training loop: batch identity, histories, stopping, evaluation, label forms, determinism.
#include <doctest/doctest.h>

#include <cmath>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/parallel.hpp>

using namespace opgraph;

namespace {

Model two_layer(std::int64_t inputs, std::int64_t hidden, std::int64_t classes, std::uint64_t seed,
                DType dtype = DType::f32) {
  Model m;
  auto x = nn::input(m.graph, "x", {N, inputs});
  auto y = nn::input(m.graph, "y", {N});
  auto h = nn::tanh(nn::dense(x, hidden, "hidden"));
  m.graph.set_loss(nn::softmax_cross_entropy(nn::dense(h, classes, "out"), y));
  m.params = m.graph.init_params(seed, dtype);
  return m;
}

}  // namespace

TEST_CASE("train: the gradient of the mean loss over a batch is the mean of per-sample gradients") {
  Model m = two_layer(2, 5, 3, 1, DType::f64);
  const Dataset data = make_blobs(8, 3, 1.0, 2, 2).to(DType::f64);
  auto grads_of = [&](const Dataset& part) {
    Plan plan(m.graph, m.params, {.batch = part.size()});
    plan.set_input("x", part.features);
    plan.set_input("y", part.labels);
    plan.forward();
    plan.backward();
    std::vector<std::vector<double>> g;
    for (const auto& s : plan.parameters()) g.push_back(s.grad.to_vector());
    return g;
  };
  const auto batch = grads_of(data);
  std::vector<std::vector<double>> mean(batch.size());
  for (std::size_t p = 0; p < batch.size(); ++p) mean[p].assign(batch[p].size(), 0.0);
  for (std::int64_t i = 0; i < data.size(); ++i) {
    const auto one = grads_of(data.rows({i}));
    for (std::size_t p = 0; p < one.size(); ++p)
      for (std::size_t j = 0; j < one[p].size(); ++j) mean[p][j] += one[p][j] / static_cast<double>(data.size());
  }
  for (std::size_t p = 0; p < batch.size(); ++p)
    for (std::size_t j = 0; j < batch[p].size(); ++j) CHECK(batch[p][j] == doctest::Approx(mean[p][j]).epsilon(1e-12));
}

TEST_CASE("train: fit reports per-epoch history, validation, and stops at a target loss") {
  const Dataset data = make_moons(200, 0.1, 1);
  const Split split = train_test_split(data, 0.25, 1);
  Model m = two_layer(2, 16, 2, 3);
  auto adam = make_adam({.lr = 0.02});
  int calls = 0;
  std::int64_t steps = 0;
  TrainOptions options{.epochs = 30, .batch = 16, .seed = 1, .validation = &split.test};
  options.on_epoch = [&](const EpochReport& e) {
    ++calls;
    CHECK(e.epoch == calls);
    CHECK(e.samples == 150);
    CHECK(e.has_validation());
  };
  options.on_step = [&](const StepReport& s) {
    ++steps;
    CHECK(s.batches == 10);  // 150 rows in batches of 16: nine full, one of 6
  };
  const History h = fit(m, split.train, *adam, options);
  CHECK(calls == 30);
  CHECK(steps == 300);
  CHECK(h.epochs.back().train_loss < 0.5 * h.epochs.front().train_loss);
  CHECK(h.epochs.back().val_accuracy >= 0.95);

  Model m2 = two_layer(2, 16, 2, 3);
  auto adam2 = make_adam({.lr = 0.02});
  const History stopped = fit(m2, split.train, *adam2, {.epochs = 500, .batch = 16, .target_loss = 0.1});
  CHECK(stopped.reached_target);
  CHECK(stopped.epochs.back().train_loss <= 0.1);
  CHECK(stopped.epochs.size() < 500);
}

TEST_CASE("train: evaluate and predict") {
  const Dataset data = make_blobs(300, 3, 0.5, 2, 5);
  Model m = two_layer(2, 8, 3, 1);
  auto sgd = make_momentum({.lr = 0.05, .momentum = 0.9});
  Trainer t(m);
  t.fit(data, *sgd, {.epochs = 40, .batch = 32});
  const Evaluation e = t.evaluate(data, 64);
  CHECK(e.samples == 300);
  CHECK(e.accuracy >= 0.99);
  std::int64_t total = 0, diagonal = 0;
  for (std::size_t i = 0; i < e.confusion.size(); ++i)
    for (std::size_t j = 0; j < e.confusion.size(); ++j) {
      total += e.confusion[i][j];
      if (i == j) diagonal += e.confusion[i][j];
    }
  CHECK(total == 300);
  CHECK(static_cast<double>(diagonal) / 300 == doctest::Approx(e.accuracy));
  const Predictions p = t.predict(data.features, 100);
  CHECK(p.probabilities.shape() == Shape{300, 3});
  std::int64_t agree = 0;
  for (std::int64_t i = 0; i < 300; ++i) {
    double row = 0;
    for (int j = 0; j < 3; ++j) row += p.probabilities.at({i, j});
    CHECK(row == doctest::Approx(1.0));
    agree += p.labels[static_cast<std::size_t>(i)] == data.label(i);
  }
  CHECK(static_cast<double>(agree) / 300 == doctest::Approx(e.accuracy));
}

TEST_CASE("train: one sigmoid output with [N,1] labels, and one-hot label inputs") {
  const Dataset data = make_circles(200, 0.05, 0.5, 1);
  Model bin;
  auto x = nn::input(bin.graph, "x", {N, 2});
  auto y = nn::input(bin.graph, "y", {N, 1});
  auto p = nn::logistic(nn::dense(nn::tanh(nn::dense(x, 8, "h")), 1, "o"));
  bin.graph.set_loss(nn::binary_cross_entropy(p, y));
  bin.params = bin.graph.init_params(2);
  auto adam = make_adam({.lr = 0.05});
  Trainer t(bin);
  t.fit(data, *adam, {.epochs = 100, .batch = 20});
  CHECK(t.head().outputs == 1);
  CHECK(t.evaluate(data).accuracy >= 0.97);
  const Predictions pr = t.predict(data.features);
  CHECK(pr.probabilities.shape() == Shape{200, 1});

  Model oh;
  auto x2 = nn::input(oh.graph, "x", {N, 2});
  auto y2 = nn::input(oh.graph, "y", {N, 2});
  oh.graph.set_loss(nn::cross_entropy(nn::softmax(nn::dense(nn::tanh(nn::dense(x2, 8, "h")), 2, "o")), y2));
  oh.params = oh.graph.init_params(2);
  auto adam2 = make_adam({.lr = 0.05});
  const History h = fit(oh, data, *adam2, {.epochs = 100, .batch = 20});
  CHECK(h.epochs.back().train_accuracy >= 0.97);
}

TEST_CASE("train: the same seed gives bitwise the same training with 1 and 2 threads") {
  const Dataset data = make_spirals(400, 3, 0.1, 3);
  std::vector<std::vector<Tensor>> finals;
  std::vector<std::vector<double>> losses;
  for (int threads : {1, 2, 1}) {
    set_num_threads(threads);
    Model m = two_layer(2, 64, 3, 4);
    auto adam = make_adam({.lr = 0.01});
    const History h = fit(m, data, *adam, {.epochs = 5, .batch = 50, .seed = 9});
    std::vector<double> l;
    for (const auto& e : h.epochs) l.push_back(e.train_loss);
    losses.push_back(l);
    std::vector<Tensor> f;
    for (const auto& [name, t] : m.params) f.push_back(t.clone());
    finals.push_back(f);
  }
  set_num_threads(0);
  for (int run : {1, 2}) {
    CHECK(losses[static_cast<std::size_t>(run)] == losses[0]);
    for (std::size_t i = 0; i < finals[0].size(); ++i) CHECK(finals[static_cast<std::size_t>(run)][i].bitwise_equal(finals[0][i]));
  }
}

TEST_CASE("train: misuse is reported") {
  Model wrong_input = two_layer(2, 4, 2, 1);
  wrong_input.input = std::string("features");
  CHECK_THROWS_WITH_AS(Trainer{wrong_input}, "model: no input 'features' for the samples (known: x, y)", GraphError);
  Model wrong_labels = two_layer(2, 4, 2, 1);
  wrong_labels.labels = std::string("yy");
  CHECK_THROWS_WITH_AS(Trainer{wrong_labels}, "model: no input 'yy' for the labels (did you mean 'y'?)", GraphError);
  Model m = two_layer(2, 4, 2, 1);
  auto sgd = make_sgd({});
  CHECK_THROWS_WITH_AS(fit(m, make_moons(10), *sgd, {.epochs = 0}), "fit: epochs must be at least 1, got 0", DataError);
}

TEST_CASE("train: fit feeds the schedule the time after each step, as a hand-written loop does") {
  // Three batches per epoch, a step schedule halving the rate every epoch, two epochs: a
  // schedule read one step late (or early) changes the rate of the steps at epoch edges.
  const Dataset data = make_blobs(30, 3, 1.0, 2, 4).to(DType::f64);
  Model fitted = two_layer(2, 5, 3, 9, DType::f64);
  Model manual = two_layer(2, 5, 3, 9, DType::f64);
  auto opt = parse_optimizer("sgd:lr=0.5,schedule=step,every=1,decay=0.5");
  fit(fitted, data, *opt, {.epochs = 2, .batch = 10, .shuffle = true, .seed = 11});

  Plan plan(manual.graph, manual.params, {.batch = 10});
  Batcher batcher(data, 10, true, 11);
  for (int epoch = 0; epoch < 2; ++epoch) {
    batcher.start_epoch(epoch);
    for (std::int64_t b = 0; b < 3; ++b) {
      const auto batch = batcher.batch(b);
      plan.set_input("x", batch.features);
      plan.set_input("y", batch.labels);
      plan.forward();
      plan.backward();
      const double time = epoch + (b + 1) / 3.0;  // the step ends at this time
      const double lr = 0.5 * std::pow(0.5, std::floor(time - 1e-9));
      for (const ParamSlot& p : plan.parameters())
        for (std::int64_t i = 0; i < p.value.numel(); ++i)
          const_cast<Tensor&>(p.value).set(i, p.value.at(i) - lr * p.grad.at(i));
    }
  }
  for (const auto& entry : fitted.params) {  // not a structured binding: clang 14 cannot capture one
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    CAPTURE(name);
    for (std::int64_t i = 0; i < t.numel(); ++i) CHECK(t.at(i) == doctest::Approx(manual.params.at(name).at(i)).epsilon(1e-12));
  }
}

TEST_CASE("train: frozen parameters stay as they were, bit for bit, while the others train") {
  const Dataset data = make_moons(200, 0.1, 1);
  Model m = two_layer(2, 16, 2, 3);
  const Params before = m.params.clone();
  auto adam = make_adam({.lr = 0.02});
  TrainOptions options{.epochs = 5, .batch = 16, .seed = 1};
  options.frozen = {"hidden.*"};  // a prefix: hidden.W and hidden.b
  const History h = fit(m, data, *adam, options);
  CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss);
  CHECK(m.params.at("hidden.W").bitwise_equal(before.at("hidden.W")));
  CHECK(m.params.at("hidden.b").bitwise_equal(before.at("hidden.b")));
  CHECK_FALSE(m.params.at("out.W").bitwise_equal(before.at("out.W")));
  CHECK_FALSE(m.params.at("out.b").bitwise_equal(before.at("out.b")));
  // The optimizer never saw them: no state was made for them.
  for (const auto& [name, t] : adam->state()) CHECK(name.rfind("hidden.", 0) != 0);

  Model other = two_layer(2, 16, 2, 3);
  options.frozen = {"hiden.W"};
  CHECK_THROWS_WITH_AS(fit(other, data, *adam, options),
                       "fit: cannot freeze 'hiden.W': no parameter has that name (did you mean 'hidden.W'?)", GraphError);
  options.frozen = {"conv*"};
  CHECK_THROWS_WITH_AS(fit(other, data, *adam, options), "fit: cannot freeze 'conv*': no parameter starts with 'conv'",
                       GraphError);
}
