// Precision of ops whose kernels take exponentials or logarithms, on inputs with large
// offsets: f32 against an f64 reference on the very same values, element by element.
// (x - (max + log sum) in log_softmax rounded its answer to a step of the max: the row
// [3000, 2990] gave 0 for -4.54e-5 in f32.)
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/registry.hpp>

#include "../test_util.hpp"

using namespace opgraph;

namespace {

Tensor forward(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  Graph g;
  std::vector<NodeId> ids;
  for (std::size_t i = 0; i < inputs.size(); ++i) ids.push_back(g.add_input("in" + std::to_string(i), inputs[i].shape()));
  g.add_output(g.add_op(op.name, ids, attrs, "out"));
  Params params(inputs[0].dtype());
  Plan plan(g, params, {.backward = false});
  for (std::size_t i = 0; i < inputs.size(); ++i) plan.set_input("in" + std::to_string(i), inputs[i]);
  plan.forward();
  return plan.value("out").clone();
}

/// The worst relative error of the f32 kernel against the f64 kernel on the same (f32)
/// values, relative to |reference| (an exact zero must come out as zero).
double worst_f32_error(const OpDef& op, const std::vector<Shape>& shapes, const Attrs& attrs, double shift,
                       std::uint64_t seed) {
  std::vector<Tensor> in32, in64;
  for (auto& t : sample_inputs(op, shapes, shift, seed)) {
    in32.push_back(t.to(DType::f32));
    in64.push_back(in32.back().to(DType::f64));
  }
  const Tensor a = forward(op, in32, attrs), b = forward(op, in64, attrs);
  double worst = 0.0;
  for (std::int64_t i = 0; i < b.numel(); ++i) {
    const double ref = b.at(i), got = a.at(i);
    const double err = ref == 0.0 ? std::abs(got) : std::abs(got - ref) / std::abs(ref);
    worst = test::worse(worst, err);  // NaN wins, never hides
  }
  return worst;
}

}  // namespace

TEST_CASE("precision: log_softmax of [3000, 2990] in f32 keeps -4.54e-5 (the exact answer), not 0") {
  const OpDef& op = Registry::global().get("log_softmax");
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(to_string(dtype));
    const Tensor y = forward(op, {Tensor::from({1, 2}, {3000, 2990}, dtype)}, {});
    const double exact = -std::log1p(std::exp(-10.0));  // -4.5398899216870535e-05
    CHECK(std::abs(y.at(0) - exact) <= 1e-6 * std::abs(exact) * (dtype == DType::f32 ? 10 : 1e-6));
    CHECK(std::abs(y.at(1) - (-10.0 + exact)) <= 1e-6 * 10.0);
  }
  // The fused loss reads the same quantity.
  const OpDef& xent = Registry::global().get("softmax_cross_entropy");
  const Tensor loss = forward(xent, {Tensor::from({1, 2}, {3000, 2990}, DType::f32), Tensor::from({1}, {0}, DType::f32)}, {});
  CHECK(loss.at(0) == doctest::Approx(4.5398899216870535e-05).epsilon(1e-5));
}

TEST_CASE("precision: every op with exp or log, f32 on inputs offset by hundreds, within 1e-5 of f64") {
  // Ops whose kernels exponentiate or take logs, and the offsets they are checked at: the
  // ops' own shifted check cases, and these (a test-side table: gradient checks do not
  // need these ranges).
  const std::vector<std::pair<std::string, double>> offsets = {
      {"log_softmax", 3000.0}, {"softmax", 3000.0},  {"softmax_cross_entropy", 3000.0},
      {"logistic", -40.0},     {"logistic", 40.0},   {"tanh", 8.0},
      {"binary_cross_entropy_with_logits", 40.0},    {"binary_cross_entropy_with_logits", -40.0},
      // Below about -40 (gelu: -8) the exact results leave f32's normal range, where
      // flush-to-zero rounds them to 0 in any implementation.
      {"logsumexp", 3000.0},   {"softplus", 40.0},   {"softplus", -20.0},
      {"silu", 40.0},          {"silu", -30.0},      {"elu", -40.0},
      {"gelu", 6.0},           {"gelu", -4.0}};
  std::set<std::string> covered;
  int configurations = 0;
  for (const OpDef* op : Registry::global().ops()) {
    if (op->source != "built-in") continue;
    for (std::size_t c = 0; c < op->checks.size(); ++c) {
      std::vector<double> shifts;
      if (op->checks[c].shift != 0.0) shifts.push_back(op->checks[c].shift);
      for (const auto& [name, shift] : offsets)
        if (name == op->name) shifts.push_back(shift);
      for (double shift : shifts) {
        CAPTURE(op->name);
        CAPTURE(shift);
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
          const auto shapes = instantiate_shapes(op->checks[c].shapes, seed);
          const double err = worst_f32_error(*op, shapes, op->checks[c].attrs, shift, seed);
          CHECK(err <= 1e-5);
          ++configurations;
        }
        covered.insert(op->name);
      }
    }
  }
  for (const char* name : {"log_softmax", "softmax", "softmax_cross_entropy", "logistic", "tanh",
                           "binary_cross_entropy_with_logits", "logsumexp", "softplus", "silu", "elu", "gelu"}) {
    CAPTURE(name);
    CHECK(covered.count(name));
  }
  CHECK(configurations >= 30);
}
