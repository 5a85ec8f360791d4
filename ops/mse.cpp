// mse: squared error between two same-shaped tensors.
#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"

namespace opgraph::ops {

OPGRAPH_OP(mse)
    .doc("squared error sum((pred - target)^2), divided by the element count for reduction=mean")
    .input("pred")
    .input("target")
    .attr_choice("reduction", detail::kReductions, detail::kReductionDoc)
    // A regression loss: the targets are values, not classes (no accuracy; predictions are
    // the head's values). With classes, a regression's real targets had been refused as
    // "more classes than the model predicts".
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .classes = false, .threshold = 0.5,
           .probabilities = ""})
    .shape(detail::paired_loss_shape())
    .saves({"pred", "target"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& t = k.in(1);
      const double total = sum_over(p.size, [&](std::int64_t i) {
        const double d = static_cast<double>(p.data[i]) - static_cast<double>(t.data[i]);
        return d * d;
      });
      k.out().data[0] = static_cast<T>(total / detail::divisor(k, p.size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& p = k.in(0);
      const auto& t = k.in(1);
      const T f = static_cast<T>(2.0 * k.grad_out().data[0] / detail::divisor(k, p.size));
      if (k.needs_grad(0)) zip(p, t, k.grad_in(0), [f](T a, T b) { return f * (a - b); });
      if (k.needs_grad(1)) zip(p, t, k.grad_in(1), [f](T a, T b) { return f * (b - a); });
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[a,b]"}, {{"reduction", "sum"}});

}  // namespace opgraph::ops
