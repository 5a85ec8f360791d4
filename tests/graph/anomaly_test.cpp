// NaN/Inf localisation: the first bad value named by pass, node, op and origin.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/plan.hpp>

using namespace opgraph;

namespace {
std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const NumericError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("anomaly: log of a zero probability is found at the log node, forward") {
  const ModelFile m = parse_model("input p [N, 2]\nlp = log(p)\nloss s = sum(lp)\n", "m.og");
  Params params;
  Plan plan(m.graph, params, {.batch = 2, .detect_anomaly = true});
  const Tensor p = Tensor::from({2, 2}, {0.5, 0.25, 0.0, 1.0});
  plan.set_input("p", p);
  CHECK(what_of([&] { plan.forward(); }) ==
        "forward: node 'lp' (log, declared at m.og:2:6) produced -inf at [1, 0]; its inputs: 'p' [2,2] min 0 max 1");
  // Off, the same graph runs and the loss is simply -inf.
  Plan quiet(m.graph, params, {.batch = 2});
  quiet.set_input("p", p);
  quiet.forward();
  CHECK(std::isinf(quiet.loss()));
}

TEST_CASE("anomaly: an overflow in an exponent (f32)") {
  const ModelFile m = parse_model("input x [N, 3]\nparam w [3, 3] constant(1)\nz = matmul(x, w)\ne = exp(z)\nloss s = sum(e)\n",
                                  "exp.og");
  Params params = m.graph.init_params(1);
  Plan plan(m.graph, params, {.batch = 1, .detect_anomaly = true});
  plan.set_input("x", Tensor::from({1, 3}, {30, 30, 30}));  // z = 90: e^90 > FLT_MAX
  CHECK(what_of([&] { plan.forward(); }) ==
        "forward: node 'e' (exp, declared at exp.og:4:5) produced inf at [0, 0]; its inputs: 'z' [1,3] min 90 max 90");
}

TEST_CASE("anomaly: a learning rate that explodes stops training at the first non-finite value") {
  const ModelFile m = parse_model("input x [N, 2]\nlabels y [N]\nparam W1 [2, 16] xavier\nparam W2 [16, 2] xavier\n"
                                  "h = relu(matmul(x, W1))\nlogits = matmul(h, W2)\nloss l = softmax_cross_entropy(logits, y)\n",
                                  "boom.og");
  Model model{m.graph, m.graph.init_params(1), m.input, m.labels};
  Trainer t(model);
  t.set_detect_anomaly(true);
  auto sgd = make_sgd({.lr = 1e6});
  const std::string what = what_of([&] { t.fit(make_moons(64, 0.1, 1), *sgd, {.epochs = 50, .batch = 16}); });
  CAPTURE(what);
  // The update that broke the weights is blamed first, with the epoch and step; the node
  // where the values overflowed follows.
  CHECK(what.rfind("epoch 2, step 1 of 4: the optimizer's update moved parameter 'W1' by ", 0) == 0);
  CHECK(what.find("(the gradient's norm was ") != std::string::npos);
  CHECK(what.find("at epoch 1, step 4 of 4, and then forward: node 'logits' (matmul, declared at boom.og:6:10) "
                  "produced inf") != std::string::npos);
  CHECK(what.find("its inputs: ") != std::string::npos);
  CHECK(what.find(": lower the learning rate or clip the gradients") != std::string::npos);
  // A learning rate so large that the first update moves a parameter a million times its
  // size is stopped at that update.
  Model at_once{m.graph, m.graph.init_params(1), m.input, m.labels};
  Trainer t2(at_once);
  t2.set_detect_anomaly(true);
  auto huge = make_sgd({.lr = 1e30});
  const std::string first = what_of([&] { t2.fit(make_moons(64, 0.1, 1), *huge, {.epochs = 1, .batch = 16}); });
  CAPTURE(first);
  CHECK(first.rfind("epoch 1, step 1 of 4: the optimizer's update moved parameter '", 0) == 0);
  CHECK(first.find("the learning rate 1e+30): lower the learning rate or clip the gradients") != std::string::npos);
  // Without detection the run ends with a non-finite loss instead.
  Model again{m.graph, m.graph.init_params(1), m.input, m.labels};
  auto sgd2 = make_sgd({.lr = 1e6});
  const History h = fit(again, make_moons(64, 0.1, 1), *sgd2, {.epochs = 50, .batch = 16});
  CHECK_FALSE(std::isfinite(h.epochs.back().train_loss));
}

TEST_CASE("anomaly: a gradient that becomes infinite is found in the backward pass") {
  // Finite forward (log(1e-40) * 1e300 = -9.2e301); the vjp of log is g / x = 1e300 / 1e-40.
  const ModelFile m = parse_model("input x [1, 2]\nparam c [1, 2] constant(1e300)\nl = log(x)\nw = mul(l, c)\n"
                                  "loss s = sum(w)\n",
                                  "b.og");
  Params params = m.graph.init_params(1, DType::f64);
  Plan plan(m.graph, params, {.batch = 1, .input_grads = {"x"}, .detect_anomaly = true});
  plan.set_input("x", Tensor::from({1, 2}, {1e-40, 1.0}, DType::f64));
  plan.forward();
  CHECK(std::isfinite(plan.loss()));
  CHECK(what_of([&] { plan.backward(); }) ==
        "backward: node 'l' (log, declared at b.og:3:5) its vjp produced inf in the gradient of 'x' at [0, 0]; its "
        "inputs: 'x' [1,2] min 1e-40 max 1; incoming gradient min 1e+300 max 1e+300");
}

TEST_CASE("anomaly: NaN in the input data is reported with its sample") {
  Dataset d = make_blobs(20, 2, 1.0, 2, 1);
  d.features.set(17 * 2 + 1, std::nan(""));
  const ModelFile m = parse_model("input x [N, 2]\nlabels y [N]\nparam W [2, 2]\nloss l = softmax_cross_entropy(matmul(x, W), y)\n");
  Model model{m.graph, m.graph.init_params(1), m.input, m.labels};
  Trainer t(model);
  auto sgd = make_sgd({});
  // Training data is always checked, with or without detect_anomaly: a NaN feature would
  // turn the weights to NaN (a relu after it had even kept the loss finite).
  const Params before = model.params.clone();
  CHECK(what_of([&] { t.fit(d, *sgd, {.epochs = 1}); }) ==
        "blobs: sample 17 holds nan in feature 1: training on it would turn the weights to NaN: drop or fill such samples");
  CHECK(model.params.at("W").to_vector() == before.at("W").to_vector());  // nothing trained
  t.set_detect_anomaly(true);
  CHECK(what_of([&] { t.fit(d, *sgd, {.epochs = 1}); }) ==
        "blobs: sample 17 holds nan in feature 1: training on it would turn the weights to NaN: drop or fill such samples");
  // A buffer that passed is not scanned again; a new one is, even at a reused address.
  Dataset clean = make_blobs(20, 2, 1.0, 2, 1);
  t.set_detect_anomaly(false);
  t.fit(clean, *sgd, {.epochs = 1});
  t.fit(clean, *sgd, {.epochs = 1});
  for (int i = 0; i < 3; ++i) {
    Dataset fresh = make_blobs(20, 2, 1.0, 2, 1);
    fresh.features.set(5 * 2, std::nan(""));
    CHECK(what_of([&] { t.fit(fresh, *sgd, {.epochs = 1}); }) ==
          "blobs: sample 5 holds nan in feature 0: training on it would turn the weights to NaN: drop or fill such "
          "samples");
  }
  Dataset labels = make_blobs(20, 2, 1.0, 2, 1);
  labels.labels.set(3, std::numeric_limits<double>::infinity());
  t.set_detect_anomaly(false);
  CHECK(what_of([&] { t.fit(labels, *sgd, {.epochs = 1}); }) ==
        "blobs: sample 3 has the label inf: training on it would turn the weights to NaN: drop or fill such samples");
  // Evaluating such labels: no class index either (infinity equals its floor; cast to an
  // integer it was undefined behaviour, which UBSan caught).
  CHECK_THROWS_WITH_AS(t.evaluate(labels),
                       "blobs: label inf of sample 3 is not a class index: the model's loss 'softmax_cross_entropy' "
                       "predicts classes; for real-valued targets use a regression loss such as mse",
                       DataError);
  CHECK(labels.num_classes() == 2);
  CHECK_FALSE(labels.has_class_labels());
  // Evaluating on a NaN feature: refused as well. Its loss would be NaN, and the argmax of
  // NaN scores a made-up class 0 that accuracy and the confusion matrix had counted.
  CHECK(what_of([&] { t.evaluate(d); }) ==
        "blobs: sample 17 holds nan in feature 1: its loss would be NaN and its predicted class made up: drop or fill "
        "such samples");
  // Predicting passes NaN through, row by row, and gives such a row no class (-1).
  const Predictions p = t.predict(d.features);
  REQUIRE(p.labels.size() == 20);
  CHECK(p.labels[17] == -1);
  CHECK(std::isnan(p.probabilities.at({17, 0})));
  CHECK(std::count(p.labels.begin(), p.labels.end(), -1) == 1);
  CHECK(std::isfinite(p.probabilities.at({16, 1})));
  // NaN parameters (a diverged run's checkpoint) with finite data: evaluate says so.
  Model broken{m.graph, model.params.clone(), m.input, m.labels};
  broken.params.at("W").set(0, std::nan(""));
  CHECK(what_of([&] { Trainer(broken).evaluate(clean); }) ==
        "evaluate: the model's output for sample 0 is NaN (its input is finite: the parameters hold NaN or overflow): "
        "no class to score");
  Params params = m.graph.init_params(1);
  Plan plan(m.graph, params, {.batch = 20, .detect_anomaly = true});
  plan.set_input("x", d.features);
  plan.set_input("y", d.labels);
  CHECK(what_of([&] { plan.forward(); }) == "forward: input 'x' holds nan at [17, 1] (sample 17 of the batch)");
}
