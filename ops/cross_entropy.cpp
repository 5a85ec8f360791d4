// cross_entropy: -sum y log p for probabilities p against one-hot (or index) labels.
#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"

namespace opgraph::ops {

// Per row: -sum_j y_j log(max(p_j, eps)); reduction=mean divides by the number of rows.
// Index labels [rows] stand for one-hot rows.
OPGRAPH_OP(cross_entropy)
    .doc("-sum(y log p) per row for probabilities p [...,C] and one-hot [...,C] or index [...] labels")
    .input("p")
    .labels_input("labels")
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.5, .probabilities = ""})
    .attr_choice("reduction", detail::kReductions, "mean: divide by the number of rows; sum: do not")
    .attr("eps", AttrType::real, 1e-7, "p is clamped to at least eps before the log")
    .shape(detail::class_loss_shape())
    .saves({"p", "labels"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& y = k.in(1);
      const std::int64_t rows = p.rows(), classes = p.cols();
      const bool one_hot = detail::one_hot_labels(k, 1, p.size);
      const detail::LabelReader label(k, 1, classes);
      const double eps = k.attr_float("eps");
      const double total = parallel_sum(rows, row_grain(classes), [&](std::int64_t b, std::int64_t e) {
        double s = 0.0;
        for (std::int64_t r = b; r < e; ++r) {
          const T* pr = p.row(r);
          if (one_hot) {
            for (std::int64_t j = 0; j < classes; ++j)
              if (y.data[r * classes + j] != T(0))
                s -= y.data[r * classes + j] * std::log(std::max(static_cast<double>(pr[j]), eps));
          } else {
            s -= std::log(std::max(static_cast<double>(pr[label(r)]), eps));
          }
        }
        return s;
      });
      k.out().data[0] = static_cast<T>(total / detail::divisor(k, rows));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& y = k.in(1);
      const auto& dp = k.grad_in(0);
      const std::int64_t rows = p.rows(), classes = p.cols();
      const bool one_hot = detail::one_hot_labels(k, 1, p.size);
      const detail::LabelReader label(k, 1, classes);
      const T f = static_cast<T>(k.grad_out().data[0] / detail::divisor(k, rows));
      const T eps = static_cast<T>(k.attr_float("eps"));
      with_width(classes, [&](auto n) {
        for_row_chunks(rows, n, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t r = b; r < e; ++r) {
            const T* pr = p.data + r * n;
            T* d = dp.data + r * n;
            if (one_hot) {
              for (std::int64_t j = 0; j < n; ++j) d[j] = -f * y.data[r * n + j] / std::max(pr[j], eps);
            } else {  // one nonzero per row
              for (std::int64_t j = 0; j < n; ++j) d[j] = T(0);
              const std::int64_t c = label(r);
              d[c] = -f / std::max(pr[c], eps);
            }
          }
        });
      });
    })
    .domain("p", {.lo = 0.05, .hi = 1.0})
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[a]"}, {{"reduction", "sum"}});

}  // namespace opgraph::ops
