// The C++ convenience API: compose a network in a few readable lines.
//
//   Graph g;
//   auto x = nn::input(g, "x", {N, 2});
//   auto y = nn::input(g, "y", {N, 1});
//   auto h = nn::logistic(nn::dense(x, 2, "hidden"));
//   auto p = nn::logistic(nn::dense(h, 1, "out")).named("p");
//   g.set_loss(nn::binary_cross_entropy(p, y).named("loss"));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/graph/graph.hpp>

namespace opgraph::nn {

/// A node of a graph under construction. Functions taking Values add nodes to the same
/// graph (which must outlive the Values). Converts to NodeId for Graph calls.
class Value {
 public:
  Value(Graph& graph, NodeId id) : graph_(&graph), id_(id) {}

  NodeId id() const { return id_; }
  operator NodeId() const { return id_; }
  Graph& graph() const { return *graph_; }
  const Shape& shape() const { return graph_->node(id_).shape; }
  const std::string& name() const { return graph_->node(id_).name; }
  /// Renames the node (names are how plans, dumps and errors refer to it).
  Value named(std::string name) const;

 private:
  Graph* graph_;
  NodeId id_;
};

/// Where a call was written, filled in by the compiler at the call site when left as its
/// default (`Loc loc = Loc::current()`). std::source_location would do, but clang before 15
/// cannot provide it with libstdc++; the builtins below work in GCC and clang alike.
class Loc {
 public:
  static constexpr Loc current(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) noexcept {
    return Loc(file, line);
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr unsigned line() const noexcept { return line_; }

 private:
  constexpr Loc(const char* file, unsigned line) noexcept : file_(file), line_(line) {}
  const char* file_;
  unsigned line_;
};

Value input(Graph& g, std::string name, Shape shape, Loc loc = Loc::current());
Value param(Graph& g, std::string name, Shape shape, Init init = Init::xavier(), Loc loc = Loc::current());
/// Any registered op by name (plugin ops too): `nn::op("leaky_relu", {x}, {{"alpha", 0.1}})`.
Value op(std::string_view name, const std::vector<Value>& inputs, Attrs attrs = {}, Loc loc = Loc::current());

/// x·W + b with W [in, out] named `<name>.W` (init `w`) and b [out] named `<name>.b`;
/// the result node is called `name`.
Value dense(Value x, std::int64_t out, const std::string& name, Init w = Init::xavier(), Init b = Init::zeros(),
            Loc loc = Loc::current());

Value matmul(Value a, Value b, Loc loc = Loc::current());
Value bias_add(Value x, Value b, Loc loc = Loc::current());
Value relu(Value x, Loc loc = Loc::current());
Value logistic(Value x, Loc loc = Loc::current());
Value tanh(Value x, Loc loc = Loc::current());
Value softmax(Value x, Loc loc = Loc::current());
Value log_softmax(Value x, Loc loc = Loc::current());
Value exp(Value x, Loc loc = Loc::current());
Value log(Value x, Loc loc = Loc::current());
Value scale(Value x, double factor, Loc loc = Loc::current());
Value sum(Value x, Loc loc = Loc::current());
Value sum(Value x, std::int64_t axis, Loc loc = Loc::current());
Value mean(Value x, Loc loc = Loc::current());
Value mean(Value x, std::int64_t axis, Loc loc = Loc::current());

Value mse(Value pred, Value target, Loc loc = Loc::current());
Value binary_cross_entropy(Value p, Value y, Loc loc = Loc::current());
Value binary_cross_entropy_with_logits(Value z, Value y, Loc loc = Loc::current());
Value cross_entropy(Value p, Value labels, Loc loc = Loc::current());
Value softmax_cross_entropy(Value logits, Value labels, Loc loc = Loc::current());

Value operator+(Value a, Value b);
Value operator-(Value a, Value b);
Value operator*(Value a, Value b);
Value operator*(double factor, Value x);

}  // namespace opgraph::nn
