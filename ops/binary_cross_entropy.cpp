// binary_cross_entropy on probabilities, clamped away from 0 and 1.
#include <cmath>

#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"

namespace opgraph::ops {

// With p clamped to [eps, 1-eps], log never sees 0. The vjp is (p - y) / (p (1 - p)) at
// the clamped p, so a saturated wrong prediction still gets a (large, finite) gradient; the
// targets, soft ones computed by the network too (distillation), get log((1 - p) / p), as
// in PyTorch.
OPGRAPH_OP(binary_cross_entropy)
    .doc("-(y log p + (1-y) log(1-p)) for probabilities p and targets y in [0,1]; mean over elements")
    .input("p")
    .input("y")
    .attr_choice("reduction", detail::kReductions, detail::kReductionDoc)
    .attr("eps", AttrType::real, 1e-7, "p is clamped to [eps, 1-eps]")
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.5, .probabilities = ""})
    .shape(detail::paired_loss_shape())
    .saves({"p", "y"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& y = k.in(1);
      const double eps = k.attr_float("eps");
      const double total = sum_over(p.size, [&](std::int64_t i) {
        const double pc = std::clamp(static_cast<double>(p.data[i]), eps, 1.0 - eps);
        const double yi = y.data[i];
        // A hard label weights one of the two logs by zero: it is left out, the same value
        // (0 * log adds a zero), one log per element instead of two.
        if (yi == 0.0) return -std::log(1.0 - pc);
        if (yi == 1.0) return -std::log(pc);
        return -(yi * std::log(pc) + (1.0 - yi) * std::log(1.0 - pc));
      });
      k.out().data[0] = static_cast<T>(total / detail::divisor(k, p.size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& y = k.in(1);
      const T f = static_cast<T>(k.grad_out().data[0] / detail::divisor(k, p.size));
      const T eps = static_cast<T>(k.attr_float("eps"));
      if (k.needs_grad(0))
        zip(p, y, k.grad_in(0), [f, eps](T pi, T yi) {
          const T pc = std::clamp(pi, eps, T(1) - eps);
          return f * (pc - yi) / (pc * (T(1) - pc));
        });
      if (k.needs_grad(1))
        map(p, k.grad_in(1), [f, eps](T pi) {
          const T pc = std::clamp(pi, eps, T(1) - eps);
          return f * (std::log1p(-pc) - std::log(pc));
        });
    })
    .domain("p", {.lo = 0.05, .hi = 0.95})
    .domain("y", {.kind = Domain::Kind::binary_labels})
    .check({"[a,1]", "[a,1]"})
    .check({"[a,b]", "[a,b]"}, {{"reduction", "sum"}});

}  // namespace opgraph::ops
