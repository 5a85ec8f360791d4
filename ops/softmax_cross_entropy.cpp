// softmax_cross_entropy: softmax and cross-entropy fused, from logits, stable for any logits.
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"
#include "detail/softmax_row.hpp"

namespace opgraph::ops {

// Per row: -sum_j y_j log softmax(z)_j with log softmax(z)_j = (z_j - m) - log1p(rest), m
// the row max and rest the sum of the other exps (never z_j - (m + log sum), which loses the
// answer to a rounding step of m). The forward keeps softmax(z) in the workspace; the vjp
// is (softmax(z) sum(y) - y) / rows.
OPGRAPH_OP(softmax_cross_entropy)
    .doc("cross-entropy of softmax(logits) against one-hot [...,C] or index [...] labels, fused and stable")
    .input("logits")
    .labels_input("labels")
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.0, .probabilities = "softmax"})
    .attr_choice("reduction", detail::kReductions, "mean: divide by the number of rows; sum: do not")
    .shape(detail::class_loss_shape())
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
            } else {
              s += log_sum - (static_cast<double>(zr[label(r)]) - m);
            }
          }
          return s;
        });
      });
      k.out().data[0] = static_cast<T>(total / detail::divisor(k, rows));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& y = k.in(1);
      const auto& probs = k.workspace();
      const auto& dz = k.grad_in(0);
      const std::int64_t rows = dz.rows(), classes = dz.cols();
      const bool one_hot = detail::one_hot_labels(k, 1, dz.size);
      const detail::LabelReader label(k, 1, classes);
      const T f = static_cast<T>(k.grad_out().data[0] / detail::divisor(k, rows));
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
    .check({"[a,b]", "[a]"}, {}, 800.0);

}  // namespace opgraph::ops
