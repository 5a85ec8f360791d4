// The op contract: what one op declares (inputs, outputs, attributes, shape rule, saved
// values, state, forward, vjp, gradient-check domain) and the OPGRAPH_OP macro that
// registers it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/attr.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/lowering.hpp>
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// Version of the op contract's binary layout. A plugin built against another version
/// is refused with a clear message instead of crashing. Bump on any change to OpDef,
/// InputSpec, OutputSpec, AttrSpec, StateSpec, Domain (its kinds too), CheckCase, View or
/// Kernel. 3: Domain::Kind::distinct. 4: OpDef::lower (an optional ONNX lowering).
/// 5: OpDef::in_place (an output that may overwrite an input). 6: OpDef::replaces_nan.
/// 7: OpDef::epilogue and Kernel::epilogue (a bias and ReLU fused into a product).
/// 8: OpDef::absorbs_relu_vjp and Kernel::relu_vjp_absorbed (a relu's vjp taken over).
/// 9: OpDef's per-item kernels and item_followers, Kernel's item stages (a node run item
/// by item inside the node before it). 10: Kernel's views as spans into the plan's arrays.
/// 11: OpDef::activation and Epilogue::act (logistic and tanh fused into a product too).
/// 12: OpDef::absorbs_activation_vjp and Kernel::absorbed_activation (any activation's
/// vjp taken over, not only a relu's). 13: OpDef::absorbs_bias_vjp and
/// Epilogue::bias_grad (the fused bias's gradient written by the product's vjp).
inline constexpr std::uint32_t kPluginAbi = 13;

inline constexpr int kMaxRank = 8;

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
  /// The shape, e.g. for messages.
  Shape shape() const { return Shape(std::vector<std::int64_t>(dims, dims + rank)); }
  explicit operator bool() const { return data != nullptr; }
};

struct OpDef;

/// What kind of values an input takes or an output holds: real numbers in the plan's
/// float type, indices (i64: labels, token ids), or either (class losses read labels as
/// float class indices or as i64).
enum class ValueKind : std::uint8_t { real, index, any };

/// What a forward or vjp kernel sees: its inputs, its outputs, and in the vjp the
/// cotangents. One generic lambda body serves Kernel<float> and Kernel<double>. The
/// planner's binder fills the trailing-underscore fields; ops use the accessors.
/// What the plan fused into a node's forward pass (ops that declare OpBuilder::epilogue):
/// once the node has computed its output y, y = act(y + bias), the bias one value per
/// element of the axis the op declared (y's last by default, the channels of an NCHW
/// output for conv2d: the input `b` of a bias_add along it, or of an add of a vector,
/// whose forward pass the plan skipped), act the function of a skipped activation op
/// (OpBuilder::activation: relu's max(y, 0) with NaN kept, logistic, tanh) or none.
/// Applying it must round each element as those ops do, the add and then the function
/// (math::activate): the bits are those of the nodes run one after another.
template <class T>
struct Epilogue {
  const View<const T>* bias = nullptr;  // the skipped node's bound input 1 (rebound with it), or none
  math::Activation act = math::Activation::none;
  /// In the vjp of an op declaring OpBuilder::absorbs_bias_vjp: the fused bias's gradient,
  /// which the plan left to it (the bias node's bound grad_in(1)), or none.
  const View<T>* bias_grad = nullptr;
  explicit operator bool() const { return bias != nullptr || act != math::Activation::none; }
  const T* bias_data() const { return bias ? bias->data : nullptr; }
  /// Where the vjp writes the bias's gradient, or null: the sums of grad_out() over every
  /// axis but the last, with the additions of column_sums (graph/kernel.hpp).
  T* bias_grad_data() const { return bias_grad ? bias_grad->data : nullptr; }
};

template <class T>
class Kernel;
/// A per-item kernel (OpBuilder::per_item): items [b0, b1) along axis 0. May run on several
/// threads at once for disjoint ranges, with the same kernel.
template <class T>
using ItemsFn = std::function<void(const Kernel<T>&, std::int64_t b0, std::int64_t b1)>;
/// What a per-item vjp leaves to be done once every item ran (OpBuilder::per_item_finish).
template <class T>
using ItemsFinishFn = std::function<void(const Kernel<T>&)>;
/// One node's per-item kernel that the plan runs inside another node's (Kernel::items_written,
/// Kernel::grad_out_items): the kernel to run, and that node's own Kernel.
template <class T>
struct ItemStage {
  const ItemsFn<T>* run = nullptr;
  const Kernel<T>* kernel = nullptr;
};

template <class T>
class Kernel {
 public:
  using value_type = T;

  int num_inputs() const { return static_cast<int>(in_.size()); }
  /// Real input i. In the vjp only inputs the op `saves` hold their forward values.
  const View<const T>& in(int i) const { return in_[static_cast<std::size_t>(i)]; }
  /// Index input i (declared ValueKind::index, or ValueKind::any fed indices).
  const View<const std::int64_t>& index_in(int i) const { return index_in_[static_cast<std::size_t>(i)]; }
  /// Whether input i holds indices (for ValueKind::any inputs).
  bool input_is_index(int i) const { return index_in_[static_cast<std::size_t>(i)].data != nullptr; }

  int num_outputs() const { return static_cast<int>(out_.size()); }
  /// Output i: written by forward; in the vjp the forward value if the op saves it.
  const View<T>& out(int i = 0) const { return out_[static_cast<std::size_t>(i)]; }
  /// Index output i (declared ValueKind::index).
  const View<std::int64_t>& index_out(int i = 0) const { return index_out_[static_cast<std::size_t>(i)]; }
  /// d(loss)/d(output i), vjp only. Empty (data == nullptr) when no gradient reaches that
  /// output: read it as zero (has_grad_out), no buffer is spent on it.
  const View<const T>& grad_out(int i = 0) const { return grad_out_[static_cast<std::size_t>(i)]; }
  bool has_grad_out(int i = 0) const { return grad_out_[static_cast<std::size_t>(i)].data != nullptr; }
  /// Where the vjp writes d(loss)/d(input i). Overwrite, never accumulate: the engine sums
  /// fan-out. Empty (data == nullptr) when nobody needs that gradient.
  const View<T>& grad_in(int i) const { return grad_in_[static_cast<std::size_t>(i)]; }
  bool needs_grad(int i) const { return grad_in_[static_cast<std::size_t>(i)].data != nullptr; }
  /// Per-node scratch declared with `workspace`, kept from forward to vjp.
  const View<T>& workspace() const { return workspace_; }
  /// Temporary memory declared with `scratch`, valid during this one call only (forward
  /// and vjp each get theirs; the planner reuses it for other nodes between calls).
  const View<T>& scratch() const { return scratch_; }
  /// Non-trainable state i declared with `state` (running statistics): kept by the plan,
  /// saved in checkpoints, never touched by optimizers. Forward may update it in training.
  const View<T>& state(int i) const { return state_[static_cast<std::size_t>(i)]; }

  /// A bias and activation the plan fused into this forward pass (Epilogue; empty unless
  /// the op declares OpBuilder::epilogue and the plan found a bias or relu to fuse).
  const Epilogue<T>& epilogue() const { return epilogue_; }
  /// Whether the plan skipped the vjp of the relu whose output is this node's input 0 and
  /// left it to this one (the op declares OpBuilder::absorbs_relu_vjp): the gradient this
  /// vjp writes for input 0 must then be the relu's input's, zero wherever input 0 is not
  /// positive (0 or NaN), bit for bit what the relu's vjp would have made of it. Set for
  /// the forward pass too, which sees input 0 and may note there what the vjp needs.
  bool relu_vjp_absorbed() const { return absorbed_ == math::Activation::relu; }
  /// The activation (relu, logistic, tanh) whose output is this node's input 0 and whose
  /// vjp the plan skipped and left to this one, or none (the op declares
  /// OpBuilder::absorbs_activation_vjp, or absorbs_relu_vjp for a relu): the gradient this
  /// vjp writes for input 0 must then be the activation's input's, bit for bit what
  /// math::activation_vjp makes of input 0's gradient with input 0 as the output.
  math::Activation absorbed_activation() const { return absorbed_; }

  /// Forward of an op that declares OpBuilder::item_followers: items [b0, b1) of the output
  /// (along axis 0) are final, the epilogue applied. The plan runs here, on them, the
  /// forward of the node after this one that it fused in (an op declaring
  /// OpBuilder::per_item: conv2d's max_pool2d), while they are in cache and on this core.
  /// Call it once for every item, with ranges that may run at once on several threads.
  void items_written(std::int64_t b0, std::int64_t b1) const {
    for (const ItemStage<T>& s : after_items_) (*s.run)(*s.kernel, b0, b1);
  }
  /// Vjp of an op that declares OpBuilder::item_followers: call before reading items
  /// [b0, b1) of grad_out(), once for every item. The plan runs here the per-item vjps of
  /// the nodes it fused after this one (the pool's, the bias_add's), which write those
  /// items of grad_out(); without them it does nothing.
  void grad_out_items(std::int64_t b0, std::int64_t b1) const {
    for (const ItemStage<T>& s : before_grad_items_) (*s.run)(*s.kernel, b0, b1);
  }

  /// Whether the plan runs in training mode (dropout drops, batch norm uses batch
  /// statistics) or in evaluation mode.
  bool training() const { return training_; }
  /// Whether this node's vjp runs after this forward (the plan computes gradients through
  /// it). A forward may skip what only its vjp reads (gelu keeps its derivative in the
  /// workspace for the vjp only then); its outputs must not depend on it (`opgraph check`).
  bool vjp_runs() const { return vjp_runs_; }
  /// This node's random numbers for this step: the same for any thread count, wave
  /// schedule or batch split, and after a resume (keyed by seed, node and step).
  RandomStream random() const { return RandomStream(random_key_, step_ ? *step_ : 0); }
  /// Where this batch's first sample sits in the global batch (0 unless a data-parallel
  /// run splits the batch): a random draw per element indexed by
  /// sample_offset() * (elements per sample) + i is the same however the batch is split.
  std::int64_t sample_offset() const { return sample_offset_ ? *sample_offset_ : 0; }

  const AttrValue& attr(std::string_view name) const;
  double attr_float(std::string_view name) const { return attr(name).as_float(); }
  std::int64_t attr_int(std::string_view name) const { return attr(name).as_int(); }
  const std::string& attr_string(std::string_view name) const { return attr(name).as_string(); }
  bool attr_bool(std::string_view name) const { return attr(name).as_bool(); }
  const IntList& attr_ints(std::string_view name) const { return attr(name).as_ints(); }
  RealList attr_reals(std::string_view name) const { return attr(name).as_reals(); }

  const std::string& op_name() const;
  const std::string& node_name() const { return *node_name_; }
  /// Throws DataError "node 'x': op: what" (bad values found while running, e.g. a label out of range).
  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> what, A&&... args) const {
    throw DataError(fmt::format("node '{}'", node_name()),
                    op_name() + ": " + fmt::format(what, std::forward<A>(args)...));
  }

  // Into the arrays their plan (or harness) keeps for all its kernels' views
  // (planning::ViewStore): one allocation per plan, not six per node.
  std::span<View<const T>> in_;
  std::span<View<const std::int64_t>> index_in_;
  std::span<View<T>> out_;
  std::span<View<std::int64_t>> index_out_;
  std::span<View<const T>> grad_out_;
  std::span<View<T>> grad_in_;
  std::span<View<T>> state_;
  View<T> workspace_;
  View<T> scratch_;
  Epilogue<T> epilogue_;
  std::vector<ItemStage<T>> after_items_;        // items_written: forward stages, in order
  std::vector<ItemStage<T>> before_grad_items_;  // grad_out_items: vjp stages, in backward order
  math::Activation absorbed_ = math::Activation::none;
  bool training_ = true;
  bool vjp_runs_ = true;
  std::uint64_t random_key_ = 0;
  const std::int64_t* step_ = nullptr;
  const std::int64_t* sample_offset_ = nullptr;
  const OpDef* op_ = nullptr;
  const std::vector<AttrValue>* attrs_ = nullptr;
  const std::string* node_name_ = nullptr;
};

/// What a shape rule sees: the input shapes (which may hold `N` and named dimensions) and
/// the attributes.
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
  const IntList& attr_ints(std::string_view name) const { return attr(name).as_ints(); }
  RealList attr_reals(std::string_view name) const { return attr(name).as_reals(); }
  const OpDef& op() const { return op_; }

  /// Throws ShapeError "<op>: <what>", e.g. "matmul: inner dimensions differ: [N,784] x [265,10]".
  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> what, A&&... args) const {
    throw ShapeError(op_name() + ": " + fmt::format(what, std::forward<A>(args)...));
  }
  /// Fails unless dimension a equals dimension b (either may be symbolic).
  void expect_equal(std::int64_t a, std::int64_t b, std::string_view what) const;
  /// Fails unless input i has the given rank.
  void expect_rank(int i, int rank) const;
  /// An axis attribute in [-rank, rank) made non-negative; fails naming it otherwise.
  int axis(std::string_view attr, int rank) const;

 private:
  const std::string& op_name() const;
  const OpDef& op_;
  const std::vector<Shape>& inputs_;
  const std::vector<AttrValue>& attrs_;
};

/// A shape rule for one output, or for every output of an op with several.
using ShapeFn = std::function<Shape(const ShapeContext&)>;
using ShapesFn = std::function<std::vector<Shape>(const ShapeContext&)>;

/// Floating-point operations of one call, for profiles and the scheduler's cost model.
struct OpCost {
  double forward = 0.0;
  double backward = 0.0;
};
/// From the input shapes and attributes (ShapeContext) and the (first) output shape.
using CostFn = std::function<OpCost(const ShapeContext&, const Shape& output)>;
template <class T>
using KernelFn = std::function<void(Kernel<T>&)>;

/// One input an op declares. Inputs that take no gradient (labels, indices) are never
/// differentiated. A variadic input is the last, and takes one or more nodes.
struct InputSpec {
  std::string name;
  bool differentiable = true;
  ValueKind kind = ValueKind::real;
  bool variadic = false;
};

/// One output an op declares (ops have one, "y", unless they declare several). A variadic
/// output is the last, and stands for as many outputs as the shape rule returns shapes
/// for it (split into k parts); its parts are numbered: `<node>.0`, `<node>.1`, ...
struct OutputSpec {
  std::string name;
  ValueKind kind = ValueKind::real;
  bool variadic = false;
};

/// Non-trainable state an op keeps per node: its shape from the input shapes, its first
/// value. Saved in checkpoints with the parameters, never updated by optimizers.
struct StateSpec {
  std::string name;
  ShapeFn shape;
  double initial = 0.0;
};

/// How the trainer reads an op. A loss says which input predicts, which takes the targets,
/// and how to read the prediction: as classes (accuracy: argmax over several outputs, or
/// `threshold` on one) and through which op it becomes probabilities. A plugin's loss
/// declares the same and trains through `fit` and `opgraph train` like a built-in one.
struct OpRole {
  enum class Kind : std::uint8_t { none, loss };
  Kind kind = Kind::none;
  int prediction = 0;          // the input read as the prediction
  int labels = 1;              // the input fed with the targets (-1: none)
  bool classes = true;         // the targets are classes, so accuracy means something
  double threshold = 0.5;      // one output: class 1 when the prediction is at least this
  std::string probabilities;   // op mapping the prediction to probabilities ("softmax"); "" if it holds them
};

/// Where the gradient checker samples one input.
struct Domain {
  enum class Kind : std::uint8_t {
    real,           // uniform in [lo, hi], at least `margin` away from every kink
    class_labels,   // class indices in [0, C) for a rank-1 input, one-hot rows otherwise;
                    // C is the last dimension of input 0
    binary_labels,  // 0 or 1
    indices,        // whole numbers in [lo, hi), as i64 for index inputs
    distinct,       // evenly spaced values over [lo, hi] in a random order, no two closer than
                    // (hi - lo) / count: for ops that pick one input among several (max
                    // pooling), where two nearly equal values are a kink
  };
  Kind kind = Kind::real;
  double lo = -2.0;
  double hi = 2.0;
  std::vector<double> kinks = {};
  double margin = 0.1;
};

/// One configuration the gradient checker tries: input shapes written like "[a,b]" (letters
/// become random sizes, the same letter the same size; for a variadic input, one shape per
/// node), attribute values, and a shift added to the real domains (e.g. 800: logits in
/// the hundreds, where a naive exp overflows).
struct CheckCase {
  std::vector<std::string> shapes;
  Attrs attrs;
  double shift = 0.0;
  bool broadcast = false;  // draw broadcast variants of the shapes (dimensions of 1, fewer dimensions)
};

/// Everything about one op. Built with OpBuilder (OPGRAPH_OP), stored in the Registry.
struct OpDef {
  std::string name;
  std::string doc;
  std::string source;  // where it was registered: "built-in" or a plugin file
  std::vector<InputSpec> inputs;
  std::vector<OutputSpec> outputs;  // one real output "y" unless declared
  std::vector<AttrSpec> attrs;
  ShapesFn shapes;                  // one shape per output
  std::vector<int> saved_inputs;    // forward values of these inputs are read by the vjp
  bool saves_output = false;        // the vjp reads the forward outputs
  int in_place = -1;                // forward may write its output over this input, the vjp that
                                    // input's gradient over the output's gradient (-1: neither)
  ShapeFn workspace;                // optional per-node memory kept from forward to vjp
  ShapeFn scratch;                  // optional temporary memory for the length of one call
  std::vector<StateSpec> states;    // optional non-trainable state
  OpRole role;
  bool random = false;              // forward draws random numbers
  bool replaces_nan = false;        // turns NaN into numbers on purpose (nan_to_num): not
                                    // held to NaN in, NaN out
  bool epilogue = false;            // forward applies Kernel::epilogue (a fused bias and activation)
  int epilogue_axis = -1;           // the output axis the epilogue's bias runs along (-1: the last)
  math::Activation activation = math::Activation::none;  // forward is this function, elementwise:
                                    // a product's epilogue may run it instead
  bool absorbs_relu_vjp = false;    // the vjp can take over that of a relu feeding input 0
  bool absorbs_activation_vjp = false;  // ... of any activation (relu, logistic, tanh) feeding it
  bool absorbs_bias_vjp = false;  // the vjp can write the gradient of the bias fused into its forward
  bool item_followers = false;      // forward calls Kernel::items_written, the vjp Kernel::grad_out_items
  ItemsFn<float> forward_items_f32;  // optional, with the vjp's: the op runs item by item (per_item)
  ItemsFn<double> forward_items_f64;
  ItemsFn<float> vjp_items_f32;
  ItemsFn<double> vjp_items_f64;
  ItemsFinishFn<float> vjp_finish_f32;  // optional: the per-item vjp's last step
  ItemsFinishFn<double> vjp_finish_f64;
  std::function<bool(const ShapeContext&)> per_item_when;  // optional: per_item holds only for these
  KernelFn<float> forward_f32;
  KernelFn<double> forward_f64;
  KernelFn<float> vjp_f32;
  KernelFn<double> vjp_f64;
  std::vector<Domain> domains;  // one per input
  std::vector<CheckCase> checks;
  CostFn cost;                   // optional; default: one flop per output element, two per in backward
  LowerFn lower;                 // optional: the op as ONNX nodes, for exporters (graph/lowering.hpp)
  std::string definition_error;  // a mistake the builder found, reported at registration

  int input_index(std::string_view input) const;  // -1 when absent
  int attr_index(std::string_view attr) const;    // -1 when absent
  bool has_vjp() const { return static_cast<bool>(vjp_f64); }
  bool per_item() const { return static_cast<bool>(forward_items_f64); }
  bool saves_input(int i) const;
  bool variadic() const { return !inputs.empty() && inputs.back().variadic; }
  /// The spec of input slot i (a variadic input's spec serves every slot from it on).
  const InputSpec& input(std::size_t i) const { return inputs[std::min(i, inputs.size() - 1)]; }
  /// The spec of output i (a variadic output's spec serves every output from it on).
  const OutputSpec& output(std::size_t i) const { return outputs[std::min(i, outputs.size() - 1)]; }
  bool variadic_outputs() const { return !outputs.empty() && outputs.back().variadic; }
  /// "matmul(a, b)", "softmax(x, axis=-1)", "concat(x...)": the call as written in a model file.
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
    def_.inputs.push_back({std::move(name), differentiable, ValueKind::real, false});
    def_.domains.emplace_back();
    return *this;
  }
  /// An input of class labels: class indices as reals or as i64, or one-hot rows; never
  /// differentiated. Read a row's class with ops::detail::label_of.
  OpBuilder& labels_input(std::string name) {
    def_.inputs.push_back({std::move(name), false, ValueKind::any, false});
    def_.domains.push_back({.kind = Domain::Kind::class_labels});
    return *this;
  }
  /// An input of indices (i64): never differentiated; the checker samples whole numbers.
  OpBuilder& index_input(std::string name, ValueKind kind = ValueKind::index) {
    def_.inputs.push_back({std::move(name), false, kind, false});
    def_.domains.push_back({.kind = Domain::Kind::indices, .lo = 0.0, .hi = 4.0});
    return *this;
  }
  /// The last input, taking one or more nodes: `concat(a, b, c)`.
  OpBuilder& variadic_input(std::string name, bool differentiable = true) {
    def_.inputs.push_back({std::move(name), differentiable, ValueKind::real, true});
    def_.domains.emplace_back();
    return *this;
  }
  /// Declares the outputs of an op with several (or of index kind), in order.
  OpBuilder& output(std::string name, ValueKind kind = ValueKind::real) {
    def_.outputs.push_back({std::move(name), kind, false});
    return *this;
  }
  /// The last output, standing for one or more: as many as the shape rule returns.
  OpBuilder& variadic_output(std::string name, ValueKind kind = ValueKind::real) {
    def_.outputs.push_back({std::move(name), kind, true});
    return *this;
  }
  OpBuilder& attr(std::string name, AttrType type, AttrValue default_value, std::string doc = {}) {
    def_.attrs.push_back({std::move(name), type, std::move(default_value), {}, std::move(doc)});
    return *this;
  }
  /// An attribute with a check of its value: `check` returns "" when the value is fine,
  /// else what is wrong ("must be positive").
  OpBuilder& attr(std::string name, AttrType type, AttrValue default_value, std::string doc,
                  std::function<std::string(const AttrValue&)> check) {
    def_.attrs.push_back({std::move(name), type, std::move(default_value), {}, std::move(doc), std::move(check)});
    return *this;
  }
  /// A string attribute restricted to `choices`; the default is the first choice.
  OpBuilder& attr_choice(std::string name, std::vector<std::string> choices, std::string doc = {}) {
    AttrValue first = choices.empty() ? AttrValue() : AttrValue(choices.front());
    def_.attrs.push_back({std::move(name), AttrType::string, std::move(first), std::move(choices), std::move(doc)});
    return *this;
  }
  /// The shape rule of an op with one output.
  OpBuilder& shape(ShapeFn rule) {
    def_.shapes = [rule = std::move(rule)](const ShapeContext& c) { return std::vector<Shape>{rule(c)}; };
    return *this;
  }
  /// The shape rule of an op with several outputs: one shape per declared output.
  OpBuilder& shapes(ShapesFn rule) {
    def_.shapes = std::move(rule);
    return *this;
  }
  /// The vjp reads the forward values of these inputs.
  OpBuilder& saves(std::initializer_list<std::string_view> inputs);
  /// The vjp reads the forward output(s).
  OpBuilder& saves_output() {
    def_.saves_output = true;
    return *this;
  }
  /// Elementwise in place: forward may write its output over this input (same shape), and
  /// the vjp that input's gradient over the output's gradient. Each kernel must read element
  /// j of the buffer it overwrites before writing element j, and never after (`relu`,
  /// `bias_add`); the planner shares the buffers only when nothing else still needs the
  /// overwritten value, and `opgraph check` runs both kernels in place against the plain run.
  OpBuilder& in_place(std::string_view input);
  /// The op turns NaN into numbers on purpose (a nan_to_num, a masked fill): `opgraph
  /// check` does not hold it to NaN in, NaN out (property `nan`), which every other op
  /// with a vjp must keep so that a NaN upstream reaches the run's NaN checks.
  OpBuilder& replaces_nan() {
    def_.replaces_nan = true;
    return *this;
  }
  /// Forward applies Kernel::epilogue() to its output once computed: the plan may then
  /// skip a bias along `bias_axis` of the output (a bias_add along that axis; on the last
  /// axis also an add of a vector) and an activation op (OpBuilder::activation: relu,
  /// logistic, tanh) that follow the node and read nothing else, and run them inside this
  /// forward pass (matmul: the last axis, on each tile of the product as it is stored;
  /// conv2d: axis 1, the channels, on each image's planes while they are in cache). Their
  /// vjps run as before.
  OpBuilder& epilogue(int bias_axis = -1) {
    def_.epilogue = true;
    def_.epilogue_axis = bias_axis;
    return *this;
  }
  /// The op's forward is `act` (math::activate) of its one input, elementwise, and it
  /// writes its output in place of it: a product's epilogue (OpBuilder::epilogue) may run
  /// it instead, to the same bits. Its vjp runs as declared. `opgraph check` holds the
  /// forward to the function's bits.
  OpBuilder& activation(math::Activation act) {
    def_.activation = act;
    return *this;
  }
  /// The vjp can take over the vjp of a relu whose output is input 0 and read by nothing
  /// else (Kernel::relu_vjp_absorbed): the plan then skips that relu's pass over the
  /// gradient (max_pool2d: a window whose winner is not positive sends no gradient, which
  /// is what the relu would have zeroed). `opgraph check` holds the op to the same bits.
  OpBuilder& absorbs_relu_vjp() {
    def_.absorbs_relu_vjp = true;
    return *this;
  }
  /// The vjp can take over the vjp of any activation (an op declaring `activation`: relu,
  /// logistic, tanh) whose output is input 0 and read by nothing else
  /// (Kernel::absorbed_activation): input 0's gradient is then written as the activation's
  /// input's, math::activation_vjp applied to it with input 0 as the activation's output
  /// (matmul: in its product's epilogue, on each tile as it is stored, where the
  /// activation's vjp was a pass of its own over the gradient). `opgraph check` holds the
  /// op to the bits of its vjp followed by the activation's.
  OpBuilder& absorbs_activation_vjp() {
    def_.absorbs_activation_vjp = true;
    return *this;
  }
  /// With `.epilogue()` along the last axis: the vjp can write the gradient of the bias
  /// the plan fused into its forward (Epilogue::bias_grad): grad_out()'s sums over every
  /// axis but the last, bit for bit column_sums' (graph/kernel.hpp). The plan then skips
  /// the bias_add's vjp (or the add's, for x·W + b), whose input gradient is its output's,
  /// written in place (matmul: the sums taken from dy's rows as dW = xᵀ·dy packs them,
  /// where bias_add's vjp was a pass of its own over dy). `opgraph check` holds the op to
  /// those bits.
  OpBuilder& absorbs_bias_vjp() {
    def_.absorbs_bias_vjp = true;
    return *this;
  }
  /// Forward calls Kernel::items_written on each range of items of its output once they
  /// are final (after the epilogue), and the vjp Kernel::grad_out_items before it reads a
  /// range of items of grad_out(): the plan may then run the node after it (an op declaring
  /// per_item that reads its output, after the bias and relu it fused in) item by item
  /// inside it, forward and vjp, and skip their own steps (conv2d: a max_pool2d and, in the
  /// vjp, the bias_add's and the relu's too). Every item once, in any ranges.
  OpBuilder& item_followers() {
    def_.item_followers = true;
    return *this;
  }
  /// The op works item by item along axis 0: item i of each output (and of the workspace)
  /// is a function of item i of input 0 and of the other inputs whole. `forward_items(k, b0,
  /// b1)` computes items [b0, b1) of the outputs and workspace, `vjp_items(k, b0, b1)` items
  /// [b0, b1) of input 0's gradient from those of grad_out() and the workspace, and what
  /// per_item_finish then needs for the other inputs' gradients (in the workspace): both
  /// with the bits of forward and vjp over those items, possibly at once on several
  /// threads for disjoint ranges with the same kernel, without scratch(). The plan may then
  /// run the node inside the one before it (item_followers). `opgraph check` holds the op
  /// to the same bits (property `per item`).
  template <class F, class V>
  OpBuilder& per_item(F forward_items, V vjp_items) {
    def_.forward_items_f32 = forward_items;
    def_.forward_items_f64 = forward_items;
    def_.vjp_items_f32 = vjp_items;
    def_.vjp_items_f64 = vjp_items;
    return *this;
  }
  /// The per-item vjp's last step, once every item ran: the gradients of the inputs other
  /// than input 0 (bias_add: each channel's sum over the items, in item order).
  template <class F>
  OpBuilder& per_item_finish(F finish) {
    def_.vjp_finish_f32 = finish;
    def_.vjp_finish_f64 = finish;
    return *this;
  }
  /// per_item holds only where `when` is true for the input shapes and attributes.
  OpBuilder& per_item_when(std::function<bool(const ShapeContext&)> when) {
    def_.per_item_when = std::move(when);
    return *this;
  }
  /// A scratch buffer of the given shape, written by forward, read by the vjp.
  OpBuilder& workspace(ShapeFn rule) {
    def_.workspace = std::move(rule);
    return *this;
  }
  /// Temporary memory of the given shape (from the input shapes and attributes), valid
  /// during one forward or vjp call: a product to reduce, a column matrix.
  OpBuilder& scratch(ShapeFn rule) {
    def_.scratch = std::move(rule);
    return *this;
  }
  /// Non-trainable state of the given shape (from the input shapes), starting at `initial`.
  OpBuilder& state(std::string name, ShapeFn rule, double initial = 0.0) {
    def_.states.push_back({std::move(name), std::move(rule), initial});
    return *this;
  }
  /// How the trainer reads the op (a loss: which input predicts, read how).
  OpBuilder& role(OpRole r) {
    def_.role = r;
    return *this;
  }
  /// Runs f(*this): declarations several ops share (inputs, attributes, a shape rule) in
  /// one function, `.apply(reduction_attrs)`.
  template <class F>
  OpBuilder& apply(F&& f) {
    f(*this);
    return *this;
  }
  /// The forward kernel draws random numbers (k.random()).
  OpBuilder& random() {
    def_.random = true;
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
  /// FLOPs of forward and backward, for profiles and the scheduler.
  OpBuilder& cost(CostFn fn) {
    def_.cost = std::move(fn);
    return *this;
  }
  /// How an exporter writes the op as ONNX nodes (eval mode): `.lower(lowering::same("Relu"))`
  /// or a function of a LoweringContext. Without one, exporting a graph that uses the op
  /// is an error naming it.
  OpBuilder& lower(LowerFn fn) {
    def_.lower = std::move(fn);
    return *this;
  }
  /// A configuration for the gradient checker: shapes like "[a,b]", attribute values, and a
  /// shift of the sampling range.
  OpBuilder& check(std::vector<std::string> shapes, Attrs attrs = {}, double shift = 0.0) {
    def_.checks.push_back({std::move(shapes), std::move(attrs), shift, false});
    return *this;
  }
  /// A configuration whose shapes the checker varies at random by NumPy broadcasting:
  /// each run sets some dimensions to 1 and drops some leading ones.
  OpBuilder& check_broadcast(std::vector<std::string> shapes, Attrs attrs = {}) {
    def_.checks.push_back({std::move(shapes), std::move(attrs), 0.0, true});
    return *this;
  }

  OpDef& def() {
    if (def_.outputs.empty()) def_.outputs.push_back({"y", ValueKind::real, false});
    return def_;
  }

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

namespace detail {
/// The index of attribute `name` among an op's declared ones, -1 when absent; OpDef::attr_index
/// and the kernels' lookups. Inline and byte by byte (names are short literals): kernels read
/// attributes by name on every call, and a call to memcmp per name was 12 % of a 0.4 µs XOR
/// training step.
inline int find_attr(const std::vector<AttrSpec>& specs, std::string_view name) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::string& n = specs[i].name;
    if (n.size() != name.size()) continue;
    std::size_t j = 0;
    while (j < name.size() && n[j] == name[j]) ++j;
    if (j == name.size()) return static_cast<int>(i);
  }
  return -1;
}
}  // namespace detail

template <class T>
const AttrValue& Kernel<T>::attr(std::string_view name) const {
  const int i = detail::find_attr(op_->attrs, name);
  if (i < 0) detail::unknown_attr(*op_, name);
  return (*attrs_)[static_cast<std::size_t>(i)];
}

template <class T>
const std::string& Kernel<T>::op_name() const {
  return op_->name;
}

}  // namespace opgraph

#include <opgraph/graph/kernel.hpp>
