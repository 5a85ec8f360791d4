// The C++ convenience API: thin functions over Graph::add_* that record the caller's line.
#include <opgraph/frontends/nn.hpp>

#include <fmt/format.h>

namespace opgraph::nn {

namespace {

std::string where(const Loc& loc) {
  std::string_view file = loc.file_name();
  if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  return fmt::format("{}:{}", file, loc.line());
}

Value add_op(std::string_view name, const std::vector<Value>& inputs, Attrs attrs, const std::string& origin) {
  if (inputs.empty()) throw GraphError(origin, fmt::format("nn::op('{}') needs at least one input Value", name));
  Graph& g = inputs.front().graph();
  std::vector<NodeId> ids;
  for (const Value& v : inputs) {
    if (&v.graph() != &g) throw GraphError(origin, fmt::format("{}: inputs belong to different graphs", name));
    ids.push_back(v.id());
  }
  return {g, g.add_op(name, std::move(ids), std::move(attrs), {}, origin)};
}

Value call(std::string_view name, std::initializer_list<Value> inputs, Attrs attrs, const Loc& loc) {
  return add_op(name, std::vector<Value>(inputs), std::move(attrs), where(loc));
}

/// Operators cannot take a source_location: their nodes carry no origin.
Value call_operator(std::string_view name, Value a, Value b) { return add_op(name, {a, b}, {}, {}); }

}  // namespace

Value Value::named(std::string name) const {
  graph_->rename(id_, std::move(name));
  return *this;
}

Value input(Graph& g, std::string name, Shape shape, Loc loc) {
  return {g, g.add_input(std::move(name), std::move(shape), where(loc))};
}

Value param(Graph& g, std::string name, Shape shape, Init init, Loc loc) {
  return {g, g.add_param(std::move(name), std::move(shape), init, where(loc))};
}

Value op(std::string_view name, const std::vector<Value>& inputs, Attrs attrs, Loc loc) {
  return add_op(name, inputs, std::move(attrs), where(loc));
}

Value dense(Value x, std::int64_t out, const std::string& name, Init w, Init b, Loc loc) {
  Graph& g = x.graph();
  const Shape& in = x.shape();
  if (in.rank() != 2)
    throw ShapeError(where(loc), fmt::format("dense '{}': input must be [batch, features], got {}", name, in));
  Value weight = param(g, name + ".W", {in[1], out}, w, loc);
  Value bias = param(g, name + ".b", {out}, b, loc);
  return bias_add(matmul(x, weight, loc), bias, loc).named(name);
}

Value matmul(Value a, Value b, Loc loc) { return call("matmul", {a, b}, {}, loc); }
Value bias_add(Value x, Value b, Loc loc) { return call("bias_add", {x, b}, {}, loc); }
Value relu(Value x, Loc loc) { return call("relu", {x}, {}, loc); }
Value logistic(Value x, Loc loc) { return call("logistic", {x}, {}, loc); }
Value tanh(Value x, Loc loc) { return call("tanh", {x}, {}, loc); }
Value softmax(Value x, Loc loc) { return call("softmax", {x}, {}, loc); }
Value log_softmax(Value x, Loc loc) { return call("log_softmax", {x}, {}, loc); }
Value exp(Value x, Loc loc) { return call("exp", {x}, {}, loc); }
Value log(Value x, Loc loc) { return call("log", {x}, {}, loc); }
Value scale(Value x, double factor, Loc loc) { return call("scale", {x}, {{"factor", factor}}, loc); }
Value sum(Value x, Loc loc) { return call("sum", {x}, {}, loc); }
Value sum(Value x, std::int64_t axis, Loc loc) { return call("sum", {x}, {{"axis", axis}}, loc); }
Value mean(Value x, Loc loc) { return call("mean", {x}, {}, loc); }
Value mean(Value x, std::int64_t axis, Loc loc) { return call("mean", {x}, {{"axis", axis}}, loc); }

Value mse(Value pred, Value target, Loc loc) { return call("mse", {pred, target}, {}, loc); }
Value binary_cross_entropy(Value p, Value y, Loc loc) { return call("binary_cross_entropy", {p, y}, {}, loc); }
Value binary_cross_entropy_with_logits(Value z, Value y, Loc loc) {
  return call("binary_cross_entropy_with_logits", {z, y}, {}, loc);
}
Value cross_entropy(Value p, Value labels, Loc loc) { return call("cross_entropy", {p, labels}, {}, loc); }
Value softmax_cross_entropy(Value logits, Value labels, Loc loc) {
  return call("softmax_cross_entropy", {logits, labels}, {}, loc);
}

Value operator+(Value a, Value b) { return call_operator("add", a, b); }
Value operator-(Value a, Value b) { return call_operator("sub", a, b); }
Value operator*(Value a, Value b) { return call_operator("mul", a, b); }
Value operator*(double factor, Value x) { return add_op("scale", {x}, {{"factor", factor}}, {}); }

}  // namespace opgraph::nn
