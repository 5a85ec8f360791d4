// Gradient checks: vjps against f64 central differences, for one op or a whole graph.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph {

struct GradCheckOptions {
  std::uint64_t seed = 1;
  /// Random directions tried per configuration.
  int directions = 4;
  /// Central-difference step along a unit direction.
  double step = 1e-5;
  /// Pass when every relative error is at most this.
  double tolerance = 1e-6;
  /// Sizes for the letters of the check cases, in order of first appearance ("[a,b]" with
  /// {300, 257}: a = 300, b = 257); empty: small random sizes (2-7). Realistic sizes find
  /// bugs that only show past a kernel's block boundaries (16, 256, ...).
  std::vector<std::int64_t> sizes = {};
  /// With `sizes`, skip a configuration whose largest tensor would hold more than this
  /// many elements (0: no limit): a rank-4 case at {300, 257, 255, 3} is 59 million, and
  /// the block edges it would cross are crossed by its rank-2 and rank-3 cases.
  std::int64_t max_elements = 0;
};

/// One configuration checked. For a random unit direction d, the analytic derivative
/// <g, d> (g from the vjp) is compared with (f(x+hd) - f(x-hd)) / 2h. The error is their
/// difference relative to the larger of the two, floored at |g| / sqrt(elements) (the
/// typical size of <g, d>), so an unlucky direction nearly orthogonal to g cannot make a
/// correct vjp look wrong.
struct GradCheckResult {
  std::string subject;  // op name or "graph"
  std::string config;   // "[3,4] [4,5] reduction=sum"
  std::size_t case_index = 0;  // which of the op's check cases
  double max_error = 0.0;
  bool passed = false;
  std::string failure;  // an exception met while checking, if any
};

/// Random concrete sizes for the letters of a check case: "[a,b]" -> {2,5}. Distinct
/// letters get distinct sizes so that a transposed rule cannot pass by accident. `sizes`
/// replaces the random sizes; `scale` multiplies the letters' sizes (never the digits,
/// which an op's attributes may fix). With `broadcast`, each dimension of each shape
/// becomes 1 with probability 1/3 and a leading dimension is dropped with probability
/// 1/4, drawn from the seed alone (the same pattern at every scale).
std::vector<Shape> instantiate_shapes(const std::vector<std::string>& patterns, std::uint64_t seed,
                                      const std::vector<std::int64_t>& sizes = {}, std::int64_t scale = 1,
                                      bool broadcast = false);

/// Input values drawn from each input's Domain (kinks avoided, labels valid). Index
/// inputs get i64 tensors whatever `dtype` says.
std::vector<Tensor> sample_inputs(const OpDef& op, const std::vector<Shape>& shapes, double shift,
                                  std::uint64_t seed, DType dtype = DType::f64);

/// One check case made concrete: shapes, inputs from the domains (f64, i64 for index
/// inputs), a cotangent per real output. The same (op, case, seed) always gives the same
/// instance.
struct CheckInstance {
  std::vector<Shape> shapes;
  std::vector<Tensor> inputs;
  Attrs attrs;
  std::string config;               // "[3,4] [4,5] reduction=sum"
  std::vector<Shape> outputs;       // every output's shape, in the op's order
  std::vector<Tensor> cotangents;   // f64, one per output (empty for index outputs)
  Tensor cotangent;                 // every real output's cotangent, flat, one after the other
};
/// The name an op's input i takes in the graphs the checkers build ("x0", "x1", ...).
std::string check_input_name(const OpDef& op, std::size_t i);
CheckInstance check_instance(const OpDef& op, std::size_t case_index, std::uint64_t seed,
                             const std::vector<std::int64_t>& sizes = {}, std::int64_t scale = 1);

/// Checks `op`'s vjp on every CheckCase it declares, in f64, through a compiled plan:
/// f(x) = <c, op(x)> with a random cotangent c.
std::vector<GradCheckResult> check_op_gradients(const OpDef& op, const GradCheckOptions& options = {});

/// Checks d(loss)/d(parameters) of a whole graph at the given f64 parameters and inputs.
GradCheckResult check_graph_gradients(const Graph& graph, Params& params,
                                      const std::vector<std::pair<std::string, Tensor>>& inputs,
                                      std::int64_t batch, const GradCheckOptions& options = {});

}  // namespace opgraph
