// Lowering: an op written as nodes of an exchange format (ONNX), for exporters. The op
// contract's optional `lower` function describes one node of an eval-mode graph as
// ONNX-style nodes; graph/ knows nothing of ONNX's file format (frontends/onnx/ writes it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/attr.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// One node of the lowered graph: an ONNX operator (domain "" is ai.onnx) with its input
/// and output value names ("" for an absent optional input) and attributes (ints, floats,
/// strings and lists of them, as ONNX's AttributeProto holds them).
struct LoweredNode {
  std::string type;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  Attrs attrs = {};
  std::string domain = {};
};

/// What a lowering sees and where it writes: the names of the node's inputs and outputs in
/// the lowered graph, their shapes (N and named dimensions stay symbolic), the node's
/// attributes, the target opset; it emits nodes and constants.
class LoweringContext {
 public:
  struct Value {
    std::string name;
    Shape shape;
    DType dtype;
  };
  LoweringContext(std::string op, std::string node, int opset, std::vector<Value> inputs, std::vector<Value> outputs,
                  std::vector<std::string> states, std::vector<std::string> attr_names, std::vector<AttrValue> attrs,
                  DType dtype)
      : op_(std::move(op)), node_(std::move(node)), opset_(opset), inputs_(std::move(inputs)),
        outputs_(std::move(outputs)), states_(std::move(states)), attr_names_(std::move(attr_names)),
        attrs_(std::move(attrs)), dtype_(dtype) {}

  int opset() const { return opset_; }
  /// The float type of the exported graph (real tensors and constants).
  DType dtype() const { return dtype_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  const std::string& input(int i) const { return inputs_.at(static_cast<std::size_t>(i)).name; }
  const Shape& in_shape(int i) const { return inputs_.at(static_cast<std::size_t>(i)).shape; }
  DType in_dtype(int i) const { return inputs_.at(static_cast<std::size_t>(i)).dtype; }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  const std::string& output(int i = 0) const { return outputs_.at(static_cast<std::size_t>(i)).name; }
  /// The constant holding the node's state i (batch norm's running statistics).
  const std::string& state(int i) const { return states_.at(static_cast<std::size_t>(i)); }
  const Shape& out_shape(int i = 0) const { return outputs_.at(static_cast<std::size_t>(i)).shape; }

  const AttrValue& attr(std::string_view name) const;
  double attr_float(std::string_view name) const { return attr(name).as_float(); }
  std::int64_t attr_int(std::string_view name) const { return attr(name).as_int(); }
  const std::string& attr_string(std::string_view name) const { return attr(name).as_string(); }
  bool attr_bool(std::string_view name) const { return attr(name).as_bool(); }
  const IntList& attr_ints(std::string_view name) const { return attr(name).as_ints(); }

  /// A new value name, unique in the lowered graph: "<node>/<hint>".
  std::string fresh(std::string_view hint);
  /// A constant (an ONNX initializer) holding `t`; returns its name.
  std::string constant(Tensor t, std::string_view hint);
  /// A constant 1-D int64 tensor (shapes, axes, pads): ONNX passes many of these as inputs.
  std::string ints(const std::vector<std::int64_t>& values, std::string_view hint);
  /// A scalar constant of the graph's float type.
  std::string scalar(double value, std::string_view hint);
  /// Emits one node; returns its first output's name.
  std::string emit(std::string type, std::vector<std::string> inputs, std::vector<std::string> outputs,
                   Attrs attrs = {});
  /// Emits a node with one fresh output named after `hint`; returns that name.
  std::string emit_fresh(std::string type, std::vector<std::string> inputs, std::string_view hint, Attrs attrs = {});

  /// Throws GraphError "node 'c1': conv2d: cannot be exported: <why>".
  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> why, A&&... args) const {
    throw GraphError(fmt::format("node '{}'", node_),
                     fmt::format("{}: cannot be exported: {}", op_, fmt::format(why, std::forward<A>(args)...)));
  }

  // Filled by the lowering, read by the exporter.
  std::vector<LoweredNode> nodes;
  std::vector<std::pair<std::string, Tensor>> constants;
  /// Names already used in the lowered graph (the exporter shares one set between nodes).
  std::unordered_set<std::string>* taken = nullptr;

 private:
  std::string op_, node_;
  int opset_;
  std::vector<Value> inputs_, outputs_;
  std::vector<std::string> states_;
  std::vector<std::string> attr_names_;
  std::vector<AttrValue> attrs_;
  DType dtype_;
};

using LowerFn = std::function<void(LoweringContext&)>;

namespace lowering {
/// A lowering to one ONNX node of the same inputs and output: relu -> Relu.
LowerFn same(std::string type, Attrs attrs = {});
/// An axis attribute of a node whose input has `rank` dimensions, made non-negative.
std::int64_t axis(const LoweringContext& c, std::string_view attr, int rank);
/// The constant target shape of a Reshape from `from` to `to`: sizes as they are, a symbol
/// found at the same place in `from` as 0 (copy), one other symbol as -1 (infer). Fails
/// when two dimensions would need inferring.
std::string reshape_target(LoweringContext& c, const Shape& from, const Shape& to);
/// x reshaped to `to` (a Reshape node into `out`, or a fresh value when `out` is empty).
std::string reshape(LoweringContext& c, const std::string& x, const Shape& from, const Shape& to, std::string out = {});
/// A reduction over an `axis` attribute (none: every axis) with `keepdims`: ReduceSum
/// (axes as an input) or the opset-13 Reduce* taking axes as an attribute.
void reduce(LoweringContext& c, const std::string& type, const std::string& x, const std::string& out);
}  // namespace lowering

}  // namespace opgraph
