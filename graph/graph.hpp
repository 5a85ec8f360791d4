// The network as a DAG: inputs, parameters with initialisers, op nodes; validated as built.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/graph/attr.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

struct OpDef;
class Rng;

using NodeId = std::size_t;

enum class NodeKind : std::uint8_t { input, param, op };

/// How a parameter gets its first values. Fans: for a [in, out] weight fan_in = in and
/// fan_out = out; for a [c] vector both are c.
struct Init {
  enum class Kind : std::uint8_t { zeros, constant, normal, uniform, xavier, he };
  Kind kind = Kind::zeros;
  double a = 0.0;  // constant value, normal mean, uniform low
  double b = 0.0;  // normal stddev, uniform high

  static Init zeros() { return {}; }
  static Init constant(double value) { return {Kind::constant, value, 0.0}; }
  static Init normal(double mean, double stddev) { return {Kind::normal, mean, stddev}; }
  static Init uniform(double lo, double hi) { return {Kind::uniform, lo, hi}; }
  /// Glorot/Xavier uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
  static Init xavier() { return {Kind::xavier, 0.0, 0.0}; }
  /// He/Kaiming normal: N(0, 2 / fan_in).
  static Init he() { return {Kind::he, 0.0, 0.0}; }

  /// As written in a model file: `zeros`, `constant(0.1)`, `normal(0, 0.01)`, `xavier`.
  std::string str() const;
  /// Fills `t` (any shape) from `rng`.
  void fill(Tensor& t, Rng& rng) const;
  bool operator==(const Init&) const = default;
};

/// One vertex of the graph.
struct Node {
  std::string name;
  NodeKind kind = NodeKind::op;
  Shape shape;                   // may hold N until a plan binds it
  const OpDef* op = nullptr;     // op nodes
  std::vector<AttrValue> attrs;  // op nodes: one per op attribute, defaults filled in
  std::vector<NodeId> inputs;    // op nodes, in the op's input order
  Init init;                     // params
  std::string origin;            // where it was declared: "model.og:7:3", "xor.cpp:42", or ""
};

/// Parameter values by name, in declaration order; shared by every plan of a graph.
class Params {
 public:
  Params() = default;
  explicit Params(DType dtype) : dtype_(dtype) {}

  DType dtype() const { return dtype_; }
  bool contains(std::string_view name) const;
  /// The tensor of parameter `name`; throws GraphError with a suggestion when absent.
  Tensor& at(std::string_view name);
  const Tensor& at(std::string_view name) const;
  /// Adds or replaces a parameter (the dtype must match).
  void set(std::string name, Tensor value);
  std::size_t size() const { return entries_.size(); }
  std::vector<std::string> names() const;
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  /// Deep copy (plans compiled against the original keep using the original's buffers).
  Params clone() const;

 private:
  DType dtype_ = DType::f32;
  std::vector<std::pair<std::string, Tensor>> entries_;
};

/// A DAG of inputs, parameters and op nodes, stored in a Boost.Graph adjacency_list.
/// Every add_* call validates at once (unknown op, arity, attributes, shapes, names), so
/// a Graph is always well formed. Nodes can only use earlier nodes: no cycles.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph& other);
  Graph& operator=(const Graph& other);
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;

  /// An input fed at run time; `N` in the shape is the batch. Throws GraphError on a taken name.
  NodeId add_input(std::string name, Shape shape, std::string origin = {});
  /// A trainable parameter with a fixed shape (no `N`).
  NodeId add_param(std::string name, Shape shape, Init init = Init::xavier(), std::string origin = {});
  /// An op node. An empty name picks `<op>_<k>`. Throws GraphError (unknown op with a
  /// suggestion, wrong arity, bad attribute) or ShapeError (shape rule), located at the node.
  NodeId add_op(std::string_view op, std::vector<NodeId> inputs, Attrs attrs = {}, std::string name = {},
                std::string origin = {});

  void set_loss(NodeId node);
  std::optional<NodeId> loss() const { return loss_; }
  /// Marks a node as an output: its value stays readable after forward().
  void add_output(NodeId node);
  const std::vector<NodeId>& outputs() const { return outputs_; }
  void rename(NodeId node, std::string name);

  std::size_t size() const;
  const Node& node(NodeId id) const;
  std::optional<NodeId> find(std::string_view name) const;
  /// The node called `name`; throws GraphError "no node 'x' (did you mean 'h')" otherwise.
  NodeId at(std::string_view name) const;
  /// Op nodes reading `id`, one entry per edge (a node using it twice appears twice).
  std::vector<NodeId> consumers(NodeId id) const;
  /// Every node, inputs before the nodes that use them; among independent nodes the
  /// earlier declared first (Kahn's algorithm on the adjacency list).
  std::vector<NodeId> topological_order() const;
  std::vector<NodeId> inputs() const;
  std::vector<NodeId> params() const;
  std::vector<std::string> names() const;

  /// Fresh parameter values. Each parameter's stream is seeded by (seed, its name), so
  /// adding a parameter does not change the others.
  Params init_params(std::uint64_t seed, DType dtype = DType::f32) const;

 private:
  NodeId add_node(Node node);
  void check_new_name(const std::string& name, const std::string& origin) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::optional<NodeId> loss_;
  std::vector<NodeId> outputs_;
};

}  // namespace opgraph
