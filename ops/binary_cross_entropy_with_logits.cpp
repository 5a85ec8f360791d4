// binary_cross_entropy_with_logits: sigmoid + binary cross-entropy fused, stable for any z.
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/loss.hpp"

namespace opgraph::ops {

// loss(z, y) = max(z, 0) - z y + log(1 + e^-|z|), the form that never overflows;
// d/dz = sigmoid(z) - y, d/dy = -z (the targets, soft ones computed by the network too,
// take gradients as in PyTorch).
OPGRAPH_OP(binary_cross_entropy_with_logits)
    .doc("binary cross-entropy of sigmoid(z) against targets y, computed stably from logits z")
    .input("z")
    .input("y")
    .attr_choice("reduction", detail::kReductions, detail::kReductionDoc)
    .role({.kind = OpRole::Kind::loss, .prediction = 0, .labels = 1, .threshold = 0.0, .probabilities = "logistic"})
    .shape(detail::paired_loss_shape())
    .saves({"z", "y"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& z = k.in(0);
      const auto& y = k.in(1);
      const double total = sum_over(z.size, [&](std::int64_t i) {
        const double zi = z.data[i], yi = y.data[i];
        return std::max(zi, 0.0) - zi * yi + std::log1p(std::exp(-std::abs(zi)));
      });
      k.out().data[0] = static_cast<T>(total / detail::divisor(k, z.size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& z = k.in(0);
      const auto& y = k.in(1);
      const T f = static_cast<T>(k.grad_out().data[0] / detail::divisor(k, z.size));
      if (k.needs_grad(0))
        zip(z, y, k.grad_in(0), [f](T zi, T yi) {
          const T e = math::exp_nonpositive(-std::abs(zi));
          const T s = zi >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
          return f * (s - yi);
        });
      if (k.needs_grad(1)) map(z, k.grad_in(1), [f](T zi) { return -f * zi; });
    })
    .domain("z", {.lo = -4.0, .hi = 4.0})
    .domain("y", {.kind = Domain::Kind::binary_labels})
    .check({"[a,1]", "[a,1]"})
    .check({"[a,b]", "[a,b]"}, {{"reduction", "sum"}});

}  // namespace opgraph::ops
