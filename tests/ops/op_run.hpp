// One op run on concrete inputs, with its vjp: the harness of the ops' known-value tests.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan.hpp>

#include "../test_util.hpp"

namespace opgraph::test {

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;  // d<seed, out>/d input, for differentiable inputs (else empty)
};

/// Runs one op on concrete inputs; with `seed` also its vjp.
inline OpRun run_op(const std::string& op, const std::vector<Tensor>& inputs, Attrs attrs = {}, const Tensor* seed = nullptr) {
  Graph g;
  std::vector<NodeId> ids;
  std::vector<std::string> grads;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ids.push_back(g.add_input("in" + std::to_string(i), inputs[i].shape()));
    grads.push_back("in" + std::to_string(i));
  }
  const NodeId out = g.add_op(op, ids, std::move(attrs), "out");
  g.add_output(out);
  const OpDef& def = *g.node(out).op;
  std::vector<std::string> wanted;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (def.inputs[i].differentiable) wanted.push_back(grads[i]);
  Params params(inputs[0].dtype());
  Plan plan(g, params, {.loss = seed ? "out" : "", .input_grads = seed ? wanted : std::vector<std::string>{}});
  for (std::size_t i = 0; i < inputs.size(); ++i) plan.set_input(grads[i], inputs[i]);
  plan.forward();
  OpRun r{plan.value("out").clone(), {}};
  if (seed) {
    plan.backward(*seed);
    for (std::size_t i = 0; i < inputs.size(); ++i)
      r.grads.push_back(def.inputs[i].differentiable ? plan.grad(grads[i]).clone() : Tensor());
  }
  return r;
}

inline Tensor f32(Shape s, std::initializer_list<double> v) { return Tensor::from(std::move(s), v, DType::f32); }
inline Tensor f64(Shape s, std::initializer_list<double> v) { return Tensor::from(std::move(s), v, DType::f64); }
inline const Tensor kOne32 = Tensor::from({}, {1.0}, DType::f32);
inline const Tensor kOne64 = Tensor::from({}, {1.0}, DType::f64);

inline bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

/// 0, 1, 2, ... in an f64 tensor of the given shape (NumPy's arange(n).reshape(shape)).
inline Tensor iota(Shape s) {
  Tensor t(std::move(s), DType::f64);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.set(i, static_cast<double>(i));
  return t;
}

}  // namespace opgraph::test
