// softmax_cross_entropy: softmax and cross-entropy fused, from logits, stable for any logits.
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"
#include "detail/softmax_row.hpp"

namespace opgraph::ops {

namespace {
/// Rows whose label is not `ignore`.
template <class L>
std::int64_t counted_rows(const L& label, std::int64_t rows, std::int64_t ignore) {
  std::int64_t n = 0;
  for (std::int64_t r = 0; r < rows; ++r) n += label.is(r, ignore) ? 0 : 1;
  return n;
}
}  // namespace

// Per row: -sum_j y_j log softmax(z)_j with log softmax(z)_j = (z_j - m) - log1p(rest), m
// the row max and rest the sum of the other exps (never z_j - (m + log sum), which loses the
// answer to a rounding step of m). The forward keeps softmax(z) in the workspace; the vjp
// is (softmax(z) sum(y) - y) / rows. Labels equal to ignore_index (index labels only) add
// nothing and are not counted in the mean, as PyTorch's ignore_index; when every label is
// ignored the loss is 0 (PyTorch gives NaN).
OPGRAPH_OP(softmax_cross_entropy)
    .doc("cross-entropy of softmax(logits) against one-hot [...,C] or index [...] labels, fused and stable; the mean "
         "is over every position ([N,T,C] logits: N*T terms) but those labelled ignore_index")
    .input("logits")
    .labels_input("labels")
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.0, .probabilities = "softmax"})
    .attr_choice("reduction", detail::kReductions, "mean: divide by the number of rows; sum: do not")
    .attr("ignore_index", AttrType::integer, AttrValue(), "index labels equal to it add nothing (padding)")
    .shape([](const ShapeContext& c) {
      const Shape s = detail::class_loss_shape()(c);
      if (!c.attr("ignore_index").is_none() && c.in(1) == c.in(0))
        c.fail("ignore_index applies to class-index labels {}, not one-hot ones {}", Shape(std::vector<std::int64_t>(
                   c.in(0).dims().begin(), c.in(0).dims().end() - 1)), c.in(1));
      return s;
    })
    .saves({"labels"})
    .workspace(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& z = k.in(0);
      const auto& y = k.in(1);
      const auto& probs = k.workspace();
      const std::int64_t rows = z.rows(), classes = z.cols();
      const bool one_hot = detail::one_hot_labels(k, 1, z.size);
      const detail::LabelReader label(k, 1, classes);
      const bool ignoring = !k.attr("ignore_index").is_none();
      const std::int64_t ignore = ignoring ? k.attr_int("ignore_index") : 0;
      double total = 0.0;
      with_width(classes, [&](auto n) {
        total = parallel_sum(rows, row_grain(n), [&](std::int64_t b, std::int64_t e) {
          detail::exp_shifted_rows(z.data, probs.data, b, e, n);
          double s = 0.0;
          for (std::int64_t r = b; r < e; ++r) {
            const T* zr = z.row(r);
            T* pr = probs.data + r * n;
            const std::int64_t top = detail::row_argmax(zr, n);
            double rest = 0.0;  // pr[top] is exactly exp(0) = 1
            for (std::int64_t j = 0; j < n; ++j) rest += j == top ? 0.0 : static_cast<double>(pr[j]);
            const double m = static_cast<double>(zr[top]), log_sum = std::log1p(rest);
            const T inv = T(1) / detail::row_sum(pr, n);
            for (std::int64_t j = 0; j < n; ++j) pr[j] *= inv;
            if (one_hot) {
              const T* yr = y.data + r * n;
              for (std::int64_t j = 0; j < n; ++j)
                if (yr[j] != T(0)) s += static_cast<double>(yr[j]) * (log_sum - (static_cast<double>(zr[j]) - m));
            } else if (!(ignoring && label.is(r, ignore))) {
              s += log_sum - (static_cast<double>(zr[label(r)]) - m);
            }
          }
          return s;
        });
      });
      const std::int64_t counted = ignoring ? counted_rows(label, rows, ignore) : rows;
      k.out().data[0] = counted == 0 ? T(0) : static_cast<T>(total / detail::divisor(k, counted));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& y = k.in(1);
      const auto& probs = k.workspace();
      const auto& dz = k.grad_in(0);
      const std::int64_t rows = dz.rows(), classes = dz.cols();
      const bool one_hot = detail::one_hot_labels(k, 1, dz.size);
      const detail::LabelReader label(k, 1, classes);
      const bool ignoring = !k.attr("ignore_index").is_none();
      const std::int64_t ignore = ignoring ? k.attr_int("ignore_index") : 0;
      const std::int64_t counted = ignoring ? counted_rows(label, rows, ignore) : rows;
      const T f = counted == 0 ? T(0) : static_cast<T>(k.grad_out().data[0] / detail::divisor(k, counted));
      with_width(classes, [&](auto n) {
        for_row_chunks(rows, n, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t r = b; r < e; ++r) {
            const T* pr = probs.data + r * n;
            T* d = dz.data + r * n;
            if (one_hot) {
              const T* yr = y.data + r * n;
              T ysum = T(0);
              for (std::int64_t j = 0; j < n; ++j) ysum += yr[j];
              for (std::int64_t j = 0; j < n; ++j) d[j] = f * (pr[j] * ysum - yr[j]);
            } else if (ignoring && label.is(r, ignore)) {
              for (std::int64_t j = 0; j < n; ++j) d[j] = T(0);
            } else {
              for (std::int64_t j = 0; j < n; ++j) d[j] = f * pr[j];
              d[label(r)] -= f;
            }
          }
        });
      });
    })
    .check({"[a,b]", "[a]"})
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[a]"}, {{"reduction", "sum"}})
    .check({"[a,b]", "[a]"}, {}, 800.0)
    .check({"[a,b,c]", "[a,b]"})
    .check({"[a,b,c]", "[a,b]"}, {{"ignore_index", 0}});

}  // namespace opgraph::ops
