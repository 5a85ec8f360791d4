// Conformance of every registered op (generated from the registry), property by property.
#include <doctest/doctest.h>

#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/registry.hpp>

using namespace opgraph;

TEST_CASE("conformance: every registered op keeps its whole contract") {
  int checked = 0, forward_only = 0, in_place = 0, epilogue = 0, activation = 0, absorbs = 0, absorbs_any = 0, absorbs_bias = 0, per_item = 0;
  for (const OpDef* op : Registry::global().ops()) {
    if (op->source != "built-in") continue;
    const ConformanceReport r = check_conformance(*op);
    CAPTURE(op->name);
    for (const auto& item : r.items) {
      CAPTURE(item.property);
      CAPTURE(item.detail);
      CHECK(item.passed);
    }
    // metadata, shapes, finite, gradient, f32, threads, linearity, saves, nan, and "in
    // place", "epilogue", "activation", "relu vjp", "activation vjp", "bias vjp" and "per item" for ops declared so; without a vjp
    // (comparisons) metadata, shapes, finite and f32.
    CHECK(r.items.size() == (op->has_vjp() ? 9u : 4u) + (op->in_place >= 0 ? 1u : 0u) + (op->epilogue ? 1u : 0u) +
                                (op->activation != math::Activation::none ? 1u : 0u) +
                                (op->absorbs_relu_vjp ? 1u : 0u) + (op->absorbs_activation_vjp ? 1u : 0u) +
                                (op->absorbs_bias_vjp ? 1u : 0u) + (op->per_item() ? 1u : 0u));
    if (op->absorbs_relu_vjp) ++absorbs;
    if (op->absorbs_activation_vjp) ++absorbs_any;
    if (op->absorbs_bias_vjp) ++absorbs_bias;
    if (op->per_item()) ++per_item;
    if (!op->has_vjp()) ++forward_only;
    if (op->in_place >= 0) ++in_place;
    if (op->epilogue) ++epilogue;
    if (op->activation != math::Activation::none) ++activation;
    ++checked;
  }
  CHECK(checked >= 21);
  CHECK(forward_only == 7);  // less, less_equal, greater, greater_equal, equal, not_equal, to_float
  // relu, logistic, tanh, identity, scale, dropout, bias_add, add, sub, gelu, silu, elu,
  // softplus, leaky_relu, reshape, flatten
  CHECK(in_place == 16);
  CHECK(epilogue == 2);    // matmul, conv2d
  CHECK(activation == 3);  // relu, logistic, tanh
  CHECK(absorbs == 1);      // max_pool2d
  CHECK(absorbs_any == 1);  // matmul
  CHECK(absorbs_bias == 1);  // matmul
  CHECK(per_item == 2);  // max_pool2d, bias_add
}
