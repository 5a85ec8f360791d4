// smoothed_cross_entropy: softmax cross-entropy against label-smoothed targets
// (1 - s) * one_hot(y) + s / C, a loss a plugin declares with a role so that `fit` and
// `opgraph train` read it like a built-in loss: its first input predicts (logits, read as
// probabilities through softmax), its second takes the labels.
#include <cmath>

#include <opgraph/graph/op.hpp>

namespace {

/// The class of row r of the labels input (i64 or real class indices), checked.
template <class K>
std::int64_t label(const K& k, std::int64_t r, std::int64_t classes) {
  const double v = k.input_is_index(1) ? static_cast<double>(k.index_in(1).data[r]) : static_cast<double>(k.in(1).data[r]);
  const auto c = static_cast<std::int64_t>(v);
  if (!(v >= 0) || static_cast<double>(c) != v || c >= classes)
    k.fail("label {} in row {} is not a class index in [0, {})", v, r, classes);
  return c;
}

}  // namespace

OPGRAPH_OP(smoothed_cross_entropy)
    .doc("softmax cross-entropy of logits [N,C] against labels [N] smoothed by s: targets (1-s) one_hot + s/C")
    .input("logits")
    .labels_input("labels")
    .attr("smoothing", opgraph::AttrType::real, 0.1, "s, the share of each target spread over all classes",
          [](const opgraph::AttrValue& v) { return v.as_float() >= 0 && v.as_float() < 1 ? "" : "must be in [0, 1)"; })
    .role({.kind = opgraph::OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.0,
           .probabilities = "softmax"})
    .shape([](const opgraph::ShapeContext& c) {
      c.expect_rank(0, 2);
      c.expect_rank(1, 1);
      c.expect_equal(c.in(0)[0], c.in(1)[0], "logits and labels have different batch sizes");
      return opgraph::Shape{};
    })
    .saves({"logits", "labels"})
    .workspace(opgraph::same_shape_as(0))  // softmax(logits), for the vjp
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      const auto& z = k.in(0);
      const auto& p = k.workspace();
      const std::int64_t rows = z.rows(), classes = z.cols();
      const double s = k.attr_float("smoothing");
      double total = 0.0;
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* zr = z.row(r);
        double m = zr[0];
        for (std::int64_t j = 1; j < classes; ++j) m = std::max(m, static_cast<double>(zr[j]));
        double sum = 0.0;
        for (std::int64_t j = 0; j < classes; ++j) sum += std::exp(static_cast<double>(zr[j]) - m);
        const double log_sum = std::log(sum);
        const std::int64_t y = label(k, r, classes);
        for (std::int64_t j = 0; j < classes; ++j) {
          const double log_p = static_cast<double>(zr[j]) - m - log_sum;
          const double target = (j == y ? 1.0 - s : 0.0) + s / static_cast<double>(classes);
          total -= target * log_p;
          p.data[r * classes + j] = static_cast<T>(std::exp(log_p));
        }
      }
      k.out().data[0] = static_cast<T>(total / static_cast<double>(rows));
    })
    .vjp([](auto& k) {
      // d/dz of the mean over rows: (softmax(z) - targets) / rows.
      using T = opgraph::scalar_of<decltype(k)>;
      const auto& p = k.workspace();
      const auto& dz = k.grad_in(0);
      const std::int64_t rows = dz.rows(), classes = dz.cols();
      const double s = k.attr_float("smoothing");
      const double f = static_cast<double>(k.grad_out().data[0]) / static_cast<double>(rows);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t y = label(k, r, classes);
        for (std::int64_t j = 0; j < classes; ++j) {
          const double target = (j == y ? 1.0 - s : 0.0) + s / static_cast<double>(classes);
          dz.data[r * classes + j] = static_cast<T>(f * (static_cast<double>(p.data[r * classes + j]) - target));
        }
      }
    })
    .check({"[a,b]", "[a]"})
    .check({"[a,b]", "[a]"}, {{"smoothing", 0.3}});
