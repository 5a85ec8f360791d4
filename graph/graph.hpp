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

/// An input fed at run time, a trainable parameter, an op, or one output of an op that
/// has several (a "part": `a, b = split(x)` makes an op node and two parts).
enum class NodeKind : std::uint8_t { input, param, op, part };

/// How a parameter gets its first values. Fans: for a [in, out] weight fan_in = in and
/// fan_out = out; for a [c] vector both are c; for a convolution kernel [out, in, kh, kw]
/// (rank 3 or more) fan_in = in × kh × kw and fan_out = out × kh × kw.
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
  Shape shape;                   // may hold N and named dimensions until a plan binds them
  bool index = false;            // holds indices (i64), not reals
  const OpDef* op = nullptr;     // op nodes
  std::vector<AttrValue> attrs;  // op nodes: one per op attribute, defaults filled in
  std::vector<NodeId> inputs;    // op nodes, in the op's input order; a part: its op node
  std::vector<NodeId> parts;     // an op node with several outputs: one part per output
  int part = -1;                 // a part: which output of its op
  Init init;                     // params
  std::string origin;            // where it was declared: "model.og:7:3", "xor.cpp:42", or ""
  /// Whether this node's value is produced by a kernel (an op with one output, or a part).
  bool computed() const { return (kind == NodeKind::op && parts.empty()) || kind == NodeKind::part; }
};

/// Parameter values by name, in declaration order, and the ops' non-trainable state
/// (running statistics, named "<node>.<state>"); shared by every plan of a graph.
/// Iterating visits both; optimizers see only the trainable ones (Plan::parameters).
class Params {
 public:
  Params() = default;
  explicit Params(DType dtype) : dtype_(dtype) {}

  DType dtype() const { return dtype_; }
  bool contains(std::string_view name) const;
  /// The tensor of parameter (or state) `name`; throws GraphError with a suggestion when absent.
  Tensor& at(std::string_view name);
  const Tensor& at(std::string_view name) const;
  /// Adds or replaces a trainable parameter (the dtype must match).
  void set(std::string name, Tensor value);
  /// Adds or replaces non-trainable state.
  void set_state(std::string name, Tensor value);
  /// Whether `name` is trainable (false for state).
  bool trainable(std::string_view name) const;
  std::size_t size() const { return entries_.size(); }
  std::vector<std::string> names() const;
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  /// Deep copy (plans compiled against the original keep using the original's buffers).
  Params clone() const;

 private:
  void put(std::string name, Tensor value, bool trainable);

  DType dtype_ = DType::f32;
  std::vector<std::pair<std::string, Tensor>> entries_;
  std::vector<char> trainable_;  // per entry
};

/// A DAG of inputs, parameters and op nodes, stored in a Boost.Graph adjacency_list.
/// Every add_* call validates at once (unknown op, arity, attributes, value kinds, shapes,
/// names), so a Graph is always well formed. Nodes can only use earlier nodes: no cycles.
/// Copies are cheap: they share the nodes until one of them adds or renames a node.
/// To build from a description in any order (an importer), use GraphBuilder.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph& other);
  Graph& operator=(const Graph& other);
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;

  /// An input fed at run time; `N` in the shape is the batch, other symbols are named
  /// dimensions (dim("T")). `index`: it holds indices (i64: labels, token ids). Throws
  /// GraphError on a taken name.
  NodeId add_input(std::string name, Shape shape, std::string origin = {}, bool index = false);
  /// A trainable parameter with a fixed shape (no `N`).
  NodeId add_param(std::string name, Shape shape, Init init = Init::xavier(), std::string origin = {});
  /// An op node. An empty name picks `<op>_<k>`. Throws GraphError (unknown op with a
  /// suggestion, wrong arity, a value of the wrong kind, bad attribute) or ShapeError
  /// (shape rule), located at the node. An op with several outputs gets one part per
  /// output, named `<name>.<output>` (see parts()); use those as values, not the op node.
  NodeId add_op(std::string_view op, std::vector<NodeId> inputs, Attrs attrs = {}, std::string name = {},
                std::string origin = {});
  /// The parts of an op node with several outputs (empty for one output).
  const std::vector<NodeId>& parts(NodeId op) const { return node(op).parts; }

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

  /// Fresh parameter values, and the ops' state at its initial values. Each parameter's
  /// stream is seeded by (seed, its name), so adding a parameter does not change the others.
  Params init_params(std::uint64_t seed, DType dtype = DType::f32) const;
  /// The state tensors this graph's ops keep: (name "<node>.<state>", shape).
  std::vector<std::pair<std::string, Shape>> states() const;

  /// Parameters no gradient from the loss can reach (they will never train), by name.
  std::vector<std::string> unreachable_params() const;

  /// Reachability, by breadth-first search on the Boost graph: per node, whether it
  /// reaches one of `targets` (ancestors, targets included) or is reached from one of
  /// `sources` (descendants). With `gradients_only`, only edges that carry gradients count
  /// (an op's differentiable inputs; a part's op).
  std::vector<char> ancestors(const std::vector<NodeId>& targets, bool gradients_only) const;
  std::vector<char> descendants(const std::vector<NodeId>& sources, bool gradients_only) const;

 private:
  struct StateSlot {
    std::string name;
    Shape shape;
    double initial;
  };
  std::vector<StateSlot> state_specs(NodeId op) const;
  bool carries_gradient(const void* edge) const;  // an adjacency edge descriptor
  NodeId add_node(Node node);
  void check_new_name(const std::string& name, const std::string& origin) const;

  struct Impl;
  /// The nodes, shared by copies until one of them changes (copy on write): a plan keeps a
  /// copy of its graph, and a 100 000-node graph's deep copy took a tenth of compiling it.
  /// Only mutable_impl() may change them.
  std::shared_ptr<const Impl> impl_;
  Impl& mutable_impl();
  std::optional<NodeId> loss_;
  std::vector<NodeId> outputs_;
};

}  // namespace opgraph
