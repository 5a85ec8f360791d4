// The op contract: what one op declares (inputs, attributes, shape rule, saved values,
// forward, vjp, gradient-check domain) and the OPGRAPH_OP macro that registers it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/attr.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// Version of the op contract's binary layout. A plugin built against another version
/// is refused with a clear message instead of crashing. Bump on any change to OpDef,
/// InputSpec, AttrSpec, Domain, CheckCase, View or Kernel.
inline constexpr std::uint32_t kPluginAbi = 1;

inline constexpr int kMaxRank = 8;
inline constexpr int kMaxInputs = 8;

/// A typed window on one tensor inside a plan: data pointer, element count and dims.
/// `rows()` folds every dimension but the last; `cols()` is the last.
template <class T>
struct View {
  T* data = nullptr;
  std::int64_t size = 0;
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};

  View() = default;
  /// A mutable view reads as a const one.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  View(const View<U>& o) : data(o.data), size(o.size), rank(o.rank) {
    for (int i = 0; i < kMaxRank; ++i) dims[i] = o.dims[i];
  }

  T& operator[](std::int64_t i) const { return data[i]; }
  std::int64_t dim(int axis) const { return dims[axis < 0 ? axis + rank : axis]; }
  std::int64_t cols() const { return rank == 0 ? 1 : dims[rank - 1]; }
  std::int64_t rows() const { return cols() == 0 ? 0 : size / cols(); }
  T* row(std::int64_t r) const { return data + r * cols(); }
  T* begin() const { return data; }
  T* end() const { return data + size; }
  explicit operator bool() const { return data != nullptr; }
};

struct OpDef;

/// What a forward or vjp kernel sees: its inputs, its output, and in the vjp the
/// cotangents. One generic lambda body serves Kernel<float> and Kernel<double>.
/// The plan fills the trailing-underscore fields; ops use the accessors.
template <class T>
class Kernel {
 public:
  using value_type = T;

  int num_inputs() const { return num_inputs_; }
  /// Input i. In the vjp only inputs the op `saves` hold their forward values.
  const View<const T>& in(int i) const { return in_[i]; }
  /// The output: written by forward; in the vjp the forward value if the op saves it.
  const View<T>& out() const { return out_; }
  /// d(loss)/d(output), vjp only.
  const View<const T>& grad_out() const { return grad_out_; }
  /// Where the vjp writes d(loss)/d(input i). Overwrite, never accumulate: the engine sums
  /// fan-out. Empty (data == nullptr) when nobody needs that gradient.
  const View<T>& grad_in(int i) const { return grad_in_[i]; }
  bool needs_grad(int i) const { return grad_in_[i].data != nullptr; }
  /// Per-node scratch declared with `workspace`, kept from forward to vjp.
  const View<T>& workspace() const { return workspace_; }

  const AttrValue& attr(std::string_view name) const;
  double attr_float(std::string_view name) const { return attr(name).as_float(); }
  std::int64_t attr_int(std::string_view name) const { return attr(name).as_int(); }
  const std::string& attr_string(std::string_view name) const { return attr(name).as_string(); }
  bool attr_bool(std::string_view name) const { return attr(name).as_bool(); }

  const std::string& op_name() const;
  const std::string& node_name() const { return *node_name_; }
  /// Throws DataError "node 'x': op: what" (bad values found while running, e.g. a label out of range).
  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> what, A&&... args) const {
    throw DataError(fmt::format("node '{}'", node_name()),
                    op_name() + ": " + fmt::format(what, std::forward<A>(args)...));
  }

  View<const T> in_[kMaxInputs];
  View<T> out_;
  View<const T> grad_out_;
  View<T> grad_in_[kMaxInputs];
  View<T> workspace_;
  int num_inputs_ = 0;
  const OpDef* op_ = nullptr;
  const std::vector<AttrValue>* attrs_ = nullptr;
  const std::string* node_name_ = nullptr;
};

/// What a shape rule sees: the input shapes (which may hold `N`) and the attributes.
class ShapeContext {
 public:
  ShapeContext(const OpDef& op, const std::vector<Shape>& inputs, const std::vector<AttrValue>& attrs)
      : op_(op), inputs_(inputs), attrs_(attrs) {}

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  const Shape& in(int i) const { return inputs_[static_cast<std::size_t>(i)]; }
  const AttrValue& attr(std::string_view name) const;
  double attr_float(std::string_view name) const { return attr(name).as_float(); }
  std::int64_t attr_int(std::string_view name) const { return attr(name).as_int(); }
  const std::string& attr_string(std::string_view name) const { return attr(name).as_string(); }
  bool attr_bool(std::string_view name) const { return attr(name).as_bool(); }
  const OpDef& op() const { return op_; }

  /// Throws ShapeError "<op>: <what>", e.g. "matmul: inner dimensions differ: [N,784] x [265,10]".
  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> what, A&&... args) const {
    throw ShapeError(op_name() + ": " + fmt::format(what, std::forward<A>(args)...));
  }
  /// Fails unless dimension a equals dimension b (either may be `N`).
  void expect_equal(std::int64_t a, std::int64_t b, std::string_view what) const;
  /// Fails unless input i has the given rank.
  void expect_rank(int i, int rank) const;

 private:
  const std::string& op_name() const;
  const OpDef& op_;
  const std::vector<Shape>& inputs_;
  const std::vector<AttrValue>& attrs_;
};

using ShapeFn = std::function<Shape(const ShapeContext&)>;

/// Floating-point operations of one call, for profiles.
struct OpCost {
  double forward = 0.0;
  double backward = 0.0;
};
/// From the input shapes and attributes (ShapeContext) and the output shape.
using CostFn = std::function<OpCost(const ShapeContext&, const Shape& output)>;
template <class T>
using KernelFn = std::function<void(Kernel<T>&)>;

/// One input an op declares. Inputs that take no gradient (labels) are never differentiated.
struct InputSpec {
  std::string name;
  bool differentiable = true;
};

/// Where the gradient checker samples one input.
struct Domain {
  enum class Kind : std::uint8_t {
    real,           // uniform in [lo, hi], at least `margin` away from every kink
    class_labels,   // class indices in [0, C) for a rank-1 input, one-hot rows otherwise;
                    // C is the last dimension of input 0
    binary_labels,  // 0 or 1
  };
  Kind kind = Kind::real;
  double lo = -2.0;
  double hi = 2.0;
  std::vector<double> kinks = {};
  double margin = 0.1;
};

/// One configuration the gradient checker tries: input shapes written like "[a,b]" (letters
/// become random sizes, the same letter the same size), attribute values, and a shift
/// added to the real domains (e.g. 800: logits in the hundreds, where a naive exp overflows).
struct CheckCase {
  std::vector<std::string> shapes;
  Attrs attrs;
  double shift = 0.0;
};

/// Everything about one op. Built with OpBuilder (OPGRAPH_OP), stored in the Registry.
struct OpDef {
  std::string name;
  std::string doc;
  std::string source;  // where it was registered: "built-in" or a plugin file
  std::vector<InputSpec> inputs;
  std::vector<AttrSpec> attrs;
  ShapeFn shape;
  std::vector<int> saved_inputs;  // forward values of these inputs are read by the vjp
  bool saves_output = false;      // the vjp reads the forward output
  ShapeFn workspace;              // optional per-node scratch kept from forward to vjp
  KernelFn<float> forward_f32;
  KernelFn<double> forward_f64;
  KernelFn<float> vjp_f32;
  KernelFn<double> vjp_f64;
  std::vector<Domain> domains;  // one per input
  std::vector<CheckCase> checks;
  CostFn cost;                   // optional; default: one flop per output element, two per in backward
  std::string definition_error;  // a mistake the builder found, reported at registration

  int input_index(std::string_view input) const;  // -1 when absent
  int attr_index(std::string_view attr) const;    // -1 when absent
  bool has_vjp() const { return static_cast<bool>(vjp_f64); }
  bool saves_input(int i) const;
  /// "matmul(a, b)", "softmax(x, axis=-1)": the call as written in a model file.
  std::string signature() const;
};

/// Marks an input that takes no gradient: `.input("labels", no_grad)`.
inline constexpr bool no_grad = false;

/// Shape rule: the output has the shape of input i.
ShapeFn same_shape_as(int input);
/// Shape rule: the output is a scalar.
ShapeFn scalar_shape();

/// Fluent description of an op; see ops/relu.cpp for the smallest complete example.
class OpBuilder {
 public:
  explicit OpBuilder(std::string name) { def_.name = std::move(name); }

  OpBuilder& doc(std::string text) {
    def_.doc = std::move(text);
    return *this;
  }
  /// Declares the next input; `differentiable = no_grad` for labels.
  OpBuilder& input(std::string name, bool differentiable = true) {
    def_.inputs.push_back({std::move(name), differentiable});
    def_.domains.emplace_back();
    return *this;
  }
  OpBuilder& attr(std::string name, AttrType type, AttrValue default_value, std::string doc = {}) {
    def_.attrs.push_back({std::move(name), type, std::move(default_value), {}, std::move(doc)});
    return *this;
  }
  /// A string attribute restricted to `choices`; the default is the first choice.
  OpBuilder& attr_choice(std::string name, std::vector<std::string> choices, std::string doc = {}) {
    AttrValue first = choices.empty() ? AttrValue() : AttrValue(choices.front());
    def_.attrs.push_back({std::move(name), AttrType::string, std::move(first), std::move(choices), std::move(doc)});
    return *this;
  }
  OpBuilder& shape(ShapeFn rule) {
    def_.shape = std::move(rule);
    return *this;
  }
  /// The vjp reads the forward values of these inputs.
  OpBuilder& saves(std::initializer_list<std::string_view> inputs);
  /// The vjp reads the forward output.
  OpBuilder& saves_output() {
    def_.saves_output = true;
    return *this;
  }
  /// A scratch buffer of the given shape, written by forward, read by the vjp.
  OpBuilder& workspace(ShapeFn rule) {
    def_.workspace = std::move(rule);
    return *this;
  }
  /// The forward kernel: a generic lambda `[](auto& k) { ... }`, instantiated for f32 and f64.
  template <class F>
  OpBuilder& forward(F kernel) {
    def_.forward_f32 = kernel;
    def_.forward_f64 = kernel;
    return *this;
  }
  /// The vector-Jacobian product: reads grad_out(), writes grad_in(i) for each needs_grad(i).
  template <class F>
  OpBuilder& vjp(F kernel) {
    def_.vjp_f32 = kernel;
    def_.vjp_f64 = kernel;
    return *this;
  }
  /// Where the gradient checker samples `input`.
  OpBuilder& domain(std::string_view input, Domain d);
  /// FLOPs of forward and backward, for profiles.
  OpBuilder& cost(CostFn fn) {
    def_.cost = std::move(fn);
    return *this;
  }
  /// A configuration for the gradient checker: shapes like "[a,b]", attribute values, and a
  /// shift of the sampling range.
  OpBuilder& check(std::vector<std::string> shapes, Attrs attrs = {}, double shift = 0.0) {
    def_.checks.push_back({std::move(shapes), std::move(attrs), shift});
    return *this;
  }

  OpDef& def() { return def_; }

 private:
  OpDef def_;
};

}  // namespace opgraph

// Registration happens in two steps so that a plugin built against another contract
// version is refused before any of its OpDefs is touched: at load, each OPGRAPH_OP
// hands the host a pointer and its ABI version (plain C types); the host copies the
// OpDef into the Registry only after checking the version.
extern "C" void opgraph_stage_op(std::uint32_t abi, void* op_def);

namespace opgraph::detail {
struct OpRegistrar {
  // Implicit: OPGRAPH_OP copy-initialises the registrar from the builder chain.
  OpRegistrar(OpBuilder& builder) : def(std::move(builder.def())) { opgraph_stage_op(kPluginAbi, &def); }
  OpDef def;
};
}  // namespace opgraph::detail

#define OPGRAPH_CONCAT_(a, b) a##b
#define OPGRAPH_CONCAT(a, b) OPGRAPH_CONCAT_(a, b)

/// Registers an op named `name` (an identifier) from its own file:
///   OPGRAPH_OP(relu).doc("...").input("x").shape(...).forward(...).vjp(...);
#define OPGRAPH_OP(name)                                                                  \
  [[maybe_unused]] static ::opgraph::detail::OpRegistrar OPGRAPH_CONCAT(opgraph_op_, name) = \
      ::opgraph::OpBuilder(#name)

// ---- inline definitions that need OpDef complete ----

namespace opgraph {

namespace detail {
[[noreturn]] void unknown_attr(const OpDef& op, std::string_view name);
}

template <class T>
const AttrValue& Kernel<T>::attr(std::string_view name) const {
  const int i = op_->attr_index(name);
  if (i < 0) detail::unknown_attr(*op_, name);
  return (*attrs_)[static_cast<std::size_t>(i)];
}

template <class T>
const std::string& Kernel<T>::op_name() const {
  return op_->name;
}

}  // namespace opgraph

#include <opgraph/graph/kernel.hpp>
