// Training with the generalised engine: dropout masks after a resume, state in
// checkpoints, label-free losses, several inputs, i64 labels, a loss read by its role.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/parallel.hpp>

using namespace opgraph;

namespace {

bool same_params(const Params& a, const Params& b) {
  if (a.names() != b.names()) return false;
  for (const auto& name : a.names()) {
    const Tensor &x = a.at(name), &y = b.at(name);
    if (x.shape() != y.shape() || std::memcmp(x.raw(), y.raw(), x.nbytes()) != 0) return false;
  }
  return true;
}

const char* kDropoutBn =
    "input x [N, 2]\nlabels y [N]\nparam W1 [2, 32] he\nparam b1 [32] zeros\nparam g [32] constant(1)\n"
    "param beta [32] zeros\nh = relu(batch_norm(bias_add(matmul(x, W1), b1), g, beta))\nd = dropout(h, p=0.3)\n"
    "param W2 [32, 2] xavier\nloss l = softmax_cross_entropy(matmul(d, W2), y)\n";

}  // namespace

TEST_CASE("train: dropout and batch norm resume bitwise: the same masks, the state saved and restored") {
  const ModelFile file = parse_model(kDropoutBn, "resume.og");
  const Dataset data = make_moons(200, 0.1, 3);
  auto run = [&](int threads, int split) {
    ThreadCount count(threads);
    Model m{file.graph, file.graph.init_params(7), "x", "y"};
    auto sgd = make_sgd({.lr = 0.05});
    TrainOptions o{.epochs = split, .batch = 32, .seed = 11};
    Trainer(m).fit(data, *sgd, o);
    if (split == 6) return m.params.clone();
    // Save, reload into a fresh model and trainer, and carry on from the epoch reached.
    Checkpoint c;
    c.params = m.params;
    c.epoch = split;
    c.seed = 11;
    const Checkpoint back = decode_checkpoint(encode_checkpoint(c), "resume.ckpt");
    CHECK_FALSE(back.params.trainable("batch_norm_1.running_mean"));
    Model resumed{file.graph, file.graph.init_params(99), "x", "y"};
    restore_params(back, resumed.params, "resume.ckpt");
    CHECK(same_params(resumed.params, m.params));  // state included, bit for bit
    auto sgd2 = make_sgd({.lr = 0.05});
    TrainOptions rest{.epochs = 6, .batch = 32, .seed = 11, .start_epoch = split};
    Trainer(resumed).fit(data, *sgd2, rest);
    return resumed.params.clone();
  };
  const Params straight = run(1, 6);
  // The running statistics moved during training, and the optimizer never touched them
  // (they are not among the plan's parameters).
  CHECK(straight.at("batch_norm_1.running_var").at(0) != 1.0);
  CHECK(same_params(run(2, 3), straight));
  CHECK(same_params(run(1, 2), straight));
  CHECK(same_params(run(4, 6), straight));
}

TEST_CASE("train: evaluation uses running statistics and no dropout, so it is deterministic") {
  const ModelFile file = parse_model(kDropoutBn, "eval.og");
  Model m{file.graph, file.graph.init_params(7), "x", "y"};
  const Dataset data = make_moons(300, 0.1, 3);
  auto adam = make_adam({.lr = 0.01});
  Trainer t(m);
  t.fit(data, *adam, {.epochs = 30, .batch = 32, .seed = 1});
  const Evaluation a = t.evaluate(data), b = t.evaluate(data, 7);  // batch size must not matter in eval
  CHECK(a.accuracy >= 0.95);
  CHECK(a.loss == doctest::Approx(b.loss).epsilon(1e-5));
  CHECK(a.accuracy == b.accuracy);
}

TEST_CASE("train: a loss without labels (an autoencoder) trains, and reports no accuracy") {
  const ModelFile file = parse_model(
      "input x [N, 2]\nparam E [2, 1] xavier\nparam D [1, 2] xavier\noutput r = matmul(matmul(x, E), D)\n"
      "loss l = mse(r, x)\n",
      "ae.og");
  CHECK(file.labels.empty());
  Model m{file.graph, file.graph.init_params(3), file.input, file.labels};
  // Points on a line: a one-unit bottleneck reconstructs them exactly.
  Dataset line;
  line.features = Tensor({64, 2});
  line.labels = Tensor({64});
  for (std::int64_t i = 0; i < 64; ++i) {
    line.features.set(2 * i, 0.05 * static_cast<double>(i) - 1.6);
    line.features.set(2 * i + 1, -0.5 * (0.05 * static_cast<double>(i) - 1.6));
  }
  Trainer t(m);
  CHECK_FALSE(t.supervised());
  CHECK_FALSE(t.measures_accuracy());
  auto adam = make_adam({.lr = 0.05});
  const History h = t.fit(line, *adam, {.epochs = 200, .batch = 16});
  CHECK(std::isnan(h.epochs.back().train_accuracy));
  CHECK(h.epochs.back().train_loss < 1e-4);
  CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss / 100);
  const Predictions p = t.predict(line.features);
  CHECK(p.labels.empty());
  CHECK(p.probabilities.at(10) == doctest::Approx(line.features.at(10)).epsilon(0.02));
}

TEST_CASE("train: two inputs fed from column ranges, and i64 labels") {
  const std::string tail =
      "param W1 [2, 16] xavier\nparam V [16, 16] xavier\nparam W [16, 2] xavier\n"
      "loss l = softmax_cross_entropy(matmul(tanh(matmul(tanh(matmul(x, W1)), V)), W), y)\n";
  const ModelFile file = parse_model("input a [N, 1]\ninput b [N, 1]\nlabels y [N] i64\nx = concat(a, b)\n" + tail, "two.og");
  const ModelFile one = parse_model("input x [N, 2]\nlabels y [N]\n" + tail, "one.og");
  Model m{file.graph, file.graph.init_params(1), "a", "y", {{"a", 0, 1}, {"b", 1, 1}}};
  Model single{one.graph, one.graph.init_params(1), "x", "y"};
  const Dataset data = make_moons(400, 0.1, 5);
  Trainer t(m);
  auto adam = make_adam({.lr = 0.02}), adam2 = make_adam({.lr = 0.02});
  const History h = t.fit(data, *adam, {.epochs = 300, .batch = 32});
  const History h1 = Trainer(single).fit(data, *adam2, {.epochs = 300, .batch = 32});
  // The columns reach the two inputs exactly as they reach one input of both, and i64
  // labels train exactly as real ones: the same losses, bit for bit.
  CHECK(h.epochs.back().train_loss == h1.epochs.back().train_loss);
  CHECK(std::memcmp(m.params.at("W1").raw(), single.params.at("W1").raw(), m.params.at("W1").nbytes()) == 0);
  CHECK(t.evaluate(data).accuracy >= 0.95);
  // Without feeds, the model's second input has no source: a clear error, not a crash.
  Model unfed{file.graph, file.graph.init_params(1), "a", "y"};
  CHECK_THROWS_WITH_AS(Trainer{unfed},
                       "two.og:2:1: the model reads input 'b', but nothing feeds it: training feeds 'a' (the samples) "
                       "and 'y' (the labels); give each input its columns (C++: Model::feeds; opgraph train: the data "
                       "spec's inputs=NAME:FIRST-LAST/...)",
                       GraphError);
  Model wide{file.graph, file.graph.init_params(1), "a", "y", {{"a", 0, 1}, {"b", 1, 2}}};
  Trainer tw(wide);
  CHECK_THROWS_WITH_AS(tw.check(data), "data: input 'b' takes columns 1..2 of each sample, which has 2 (0..1)",
                       DataError);
}
