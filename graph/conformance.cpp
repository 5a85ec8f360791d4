// Conformance checks: an op run through a harness of guarded buffers, property by property.
#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/numeric.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <type_traits>

#include <fmt/format.h>

#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/kernel.hpp>
#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan/bind.hpp>
#include <opgraph/graph/random.hpp>

namespace opgraph {

bool ConformanceReport::passed() const { return first_failure() == nullptr; }

const ConformanceItem* ConformanceReport::first_failure() const {
  for (const auto& i : items)
    if (!i.passed) return &i;
  return nullptr;
}

const ConformanceItem* ConformanceReport::item(const std::string& property) const {
  for (const auto& i : items)
    if (i.property == property) return &i;
  return nullptr;
}

namespace {

/// Elements of canary on each side of a buffer of n elements: the buffer's own size, and
/// at least 8192, so that a kernel that runs a whole buffer-length (or a row-count's worth
/// of rows) past its end writes into canary and is reported, not into the heap.
std::int64_t guard_size(std::int64_t n) { return std::max<std::int64_t>(n, 8192); }

/// A buffer with canaries around it, to catch a kernel writing outside its tensor.
template <class T>
struct Guarded {
  std::vector<T> mem;
  std::int64_t n = 0, guard = 0;
  static T canary() {
    if constexpr (std::is_integral_v<T>) return -7654321;
    else return static_cast<T>(-7.654321e29);
  }
  void resize(std::int64_t size) {
    n = size;
    guard = guard_size(size);
    mem.assign(static_cast<std::size_t>(size + 2 * guard), canary());
  }
  T* data() { return mem.data() + guard; }
  const T* data() const { return mem.data() + guard; }
  bool intact() const {
    if (mem.empty()) return true;  // never allocated (an op without a workspace)
    for (std::int64_t i = 0; i < guard; ++i)
      if (mem[static_cast<std::size_t>(i)] != canary() || mem[static_cast<std::size_t>(n + guard + i)] != canary())
        return false;
    return true;
  }
  std::vector<T> values() const { return {data(), data() + n}; }
};

/// Bit for bit, value lists of the same sizes (memcmp never sees an empty list's null data).
template <class T>
bool bitwise_same(const std::vector<std::vector<T>>& a, const std::vector<std::vector<T>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() || (!a[i].empty() && std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(T)) != 0))
      return false;
  return true;
}
template <class T>
bool bitwise_same(const std::vector<T>& a, const std::vector<T>& b) {
  return bitwise_same(std::vector<std::vector<T>>{a}, std::vector<std::vector<T>>{b});
}

/// Runs one op directly on guarded buffers: no plan, nothing reused, every write visible.
/// The kernel is bound by the planner's binder, as in a plan. Outputs and cotangents are
/// flat: every real output after the other (index outputs append their values to what
/// forward returns, and take no cotangent).
template <class T>
class Harness {
 public:
  // The kernel points into this object (its buffers, views and step counter): no copies.
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  /// `vjp_runs`: what the kernels' vjp_runs() says (forward may skip what only the vjp reads).
  Harness(const OpDef& op, const std::vector<Shape>& shapes, const Attrs& attrs, bool vjp_runs = true)
      : op_(op), shapes_(shapes) {
    std::vector<NodeId> ins;
    for (std::size_t i = 0; i < shapes.size(); ++i)
      ins.push_back(g_.add_input(fmt::format("{}{}", op.input(i).name, i), shapes[i], {},
                                 op.input(i).kind == ValueKind::index));
    node_ = g_.add_op(op.name, ins, attrs, "out");
    const Node& n = g_.node(node_);
    const std::vector<NodeId> outs = n.parts.empty() ? std::vector<NodeId>{node_} : n.parts;
    inputs_.resize(shapes.size());
    index_inputs_.resize(shapes.size());
    grads_.resize(shapes.size());
    planning::Binding b;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const bool index = op.input(i).kind == ValueKind::index;
      if (index) index_inputs_[i].resize(shapes[i].numel());
      else inputs_[i].resize(shapes[i].numel());
      grads_[i].resize(shapes[i].numel());
      b.inputs.push_back({index ? static_cast<void*>(index_inputs_[i].data()) : inputs_[i].data(), shapes[i], index});
      b.grad_inputs.push_back({nullptr, shapes[i], false});
    }
    outs_.resize(outs.size());
    index_outs_.resize(outs.size());
    grad_outs_.resize(outs.size());
    for (std::size_t o = 0; o < outs.size(); ++o) {
      const Node& on = g_.node(outs[o]);
      out_shapes_.push_back(on.shape);
      out_index_.push_back(on.index);
      if (on.index) {
        index_outs_[o].resize(on.shape.numel());
        b.outputs.push_back({index_outs_[o].data(), on.shape, true});
        b.grad_outputs.push_back({nullptr, on.shape, false});
      } else {
        outs_[o].resize(on.shape.numel());
        grad_outs_[o].resize(on.shape.numel());
        b.outputs.push_back({outs_[o].data(), on.shape, false});
        b.grad_outputs.push_back({grad_outs_[o].data(), on.shape, false});
        output_size_ += on.shape.numel();
      }
    }
    if (op.workspace) {
      work_.resize(op.workspace(ShapeContext(op, shapes_, n.attrs)).numel());
      b.workspace = {work_.data(), Shape{work_.n}, false};
    }
    if (op.scratch) {
      scratch_.resize(op.scratch(ShapeContext(op, shapes_, n.attrs)).numel());
      b.scratch = {scratch_.data(), Shape{scratch_.n}, false};
    }
    states_.resize(op.states.size());
    for (std::size_t i = 0; i < op.states.size(); ++i) {
      const Shape sh = op.states[i].shape(ShapeContext(op, shapes_, n.attrs));
      states_[i].resize(sh.numel());
      std::fill(states_[i].data(), states_[i].data() + states_[i].n, static_cast<T>(op.states[i].initial));
      b.states.push_back({states_[i].data(), sh, false});
    }
    binding_ = b;
    views_.reserve(b.inputs.size(), b.outputs.size(), b.states.size());
    planning::bind_kernel(k_, views_, op, g_.node(node_).attrs, g_.node(node_).name, binding_, true, vjp_runs, 1, &step_,
                          &step_);
  }

  /// Elements of every real output together (the length of a cotangent).
  std::int64_t output_size() const { return output_size_; }
  /// The output's shape (the first).
  const Shape& output_shape() const { return out_shapes_.at(0); }

  /// forward() with an epilogue (OpBuilder::epilogue): `bias` along the op's epilogue
  /// axis of the output (empty: none), then the activation `act`, as a plan that fused
  /// them would run it.
  std::vector<T> forward_with_epilogue(const std::vector<T>& bias, math::Activation act) {
    View<const T> b;
    b.data = bias.data();
    b.size = static_cast<std::int64_t>(bias.size());
    b.rank = 1;
    b.dims[0] = b.size;
    k_.epilogue_ = Epilogue<T>{bias.empty() ? nullptr : &b, act};
    auto y = forward();
    k_.epilogue_ = {};
    return y;
  }

  /// Whether the op runs item by item for these shapes and attributes (OpBuilder::per_item).
  bool per_item() const {
    return op_.per_item() && (!op_.per_item_when || op_.per_item_when(ShapeContext(op_, shapes_, g_.node(node_).attrs)));
  }
  /// forward() and vjp() as a plan runs them inside another node (OpBuilder::per_item): the
  /// per-item kernels over the output's items in the ranges `cuts` makes ([0, cuts[0]),
  /// [cuts[0], cuts[1]), ..., to the last item), then the vjp's finish.
  std::vector<T> forward_items(const std::vector<std::int64_t>& cuts) {
    const KernelFn<T> run = [&](Kernel<T>& k) { by_ranges(cuts, items_fn(true), k); };
    return forward(-1, &run);
  }
  std::vector<std::vector<T>> vjp_items(const std::vector<T>& c, const std::vector<std::int64_t>& cuts) {
    const KernelFn<T> run = [&](Kernel<T>& k) {
      by_ranges(cuts, items_fn(false), k);
      if (const auto& finish = finish_fn()) finish(k);
    };
    return vjp(c, -2, -1, &run);
  }

  /// vjp() as a plan runs it when it left a fused bias's vjp to this op's
  /// (OpBuilder::absorbs_bias_vjp): the bias's gradient written into `bias_grad`.
  std::vector<std::vector<T>> vjp_with_bias_grad(const std::vector<T>& c, std::vector<T>& bias_grad) {
    View<T> g;
    g.data = bias_grad.data();
    g.size = static_cast<std::int64_t>(bias_grad.size());
    g.rank = 1;
    g.dims[0] = g.size;
    k_.epilogue_.bias_grad = &g;
    auto out = vjp(c);
    k_.epilogue_.bias_grad = nullptr;
    return out;
  }

  /// Whether the kernels run as if the plan had left the vjp of the activation `act` (none:
  /// of nothing) to this op's (OpBuilder::absorbs_activation_vjp, absorbs_relu_vjp;
  /// Kernel::absorbed_activation).
  void absorb_vjp(math::Activation act) { k_.absorbed_ = act; }

  void set_inputs(const std::vector<Tensor>& x) {
    for (std::size_t i = 0; i < x.size(); ++i)
      for (std::int64_t j = 0; j < x[i].numel(); ++j) {
        if (op_.input(i).kind == ValueKind::index) index_inputs_[i].data()[j] = static_cast<std::int64_t>(x[i].at(j));
        else inputs_[i].data()[j] = static_cast<T>(x[i].at(j));
      }
  }

  /// Runs the forward kernel with the outputs filled with a sentinel; records a problem
  /// when an element is left unwritten, a canary is overwritten, or an input changes.
  /// With `over` = an input slot, the output is written over that input, as a plan runs an
  /// op declared `.in_place`; the input is restored afterwards.
  std::vector<T> forward(int over = -1, const KernelFn<T>* run = nullptr) {
    const auto before = snapshot();
    for (auto& o : outs_) std::fill(o.data(), o.data() + o.n, Guarded<T>::canary());
    for (auto& o : index_outs_) std::fill(o.data(), o.data() + o.n, kIndexCanary);
    poison_scratch();
    if (over >= 0) k_.out_[0].data = inputs_[static_cast<std::size_t>(over)].data();
    {
      detail::FloatModeGuard mode;
      (run ? *run : forward_fn())(k_);
    }
    if (over >= 0) {
      k_.out_[0].data = outs_[0].data();
      const auto y = inputs_[static_cast<std::size_t>(over)].values();
      check_guards("forward in place");
      restore(before);
      return y;
    }
    std::vector<T> all;
    for (std::size_t o = 0; o < outs_.size(); ++o) {
      if (out_index_[o]) {
        for (std::int64_t j = 0; j < index_outs_[o].n; ++j)
          if (index_outs_[o].data()[j] == kIndexCanary) {
            note(fmt::format("forward left element {} of output {} unwritten", j, o));
            break;
          }
        continue;
      }
      for (std::int64_t j = 0; j < outs_[o].n; ++j)
        if (outs_[o].data()[j] == Guarded<T>::canary()) {
          note(fmt::format("forward left output element {} of {} unwritten: the shape rule says {}", j, outs_[o].n,
                           out_shapes_[o]));
          break;
        }
      const auto v = outs_[o].values();
      all.insert(all.end(), v.begin(), v.end());
    }
    for (std::size_t o = 0; o < outs_.size(); ++o)
      if (out_index_[o])
        for (std::int64_t j = 0; j < index_outs_[o].n; ++j) all.push_back(static_cast<T>(index_outs_[o].data()[j]));
    check_guards("forward");
    if (!bitwise_same(snapshot(), before)) note("forward changed one of its inputs");  // a NaN input equals itself
    return all;
  }

  /// Runs the vjp for cotangent `c` (every real output's, one after the other). With
  /// `poison`, every input the op does not declare in saves (and the outputs, unless
  /// saved) holds NaN, as memory reused by a plan would hold anything. With `over` = an
  /// input slot, that input's gradient is written over the output's cotangent (`.in_place`).
  std::vector<std::vector<T>> vjp(const std::vector<T>& c, int poison_input = -2, int over = -1,
                                  const KernelFn<T>* run = nullptr) {
    std::size_t at = 0;
    for (std::size_t o = 0; o < outs_.size(); ++o) {
      if (out_index_[o]) continue;
      std::copy(c.begin() + static_cast<std::ptrdiff_t>(at), c.begin() + static_cast<std::ptrdiff_t>(at + outs_[o].n),
                grad_outs_[o].data());
      at += static_cast<std::size_t>(outs_[o].n);
    }
    const auto inputs = snapshot();
    std::vector<std::vector<T>> outputs;
    for (const auto& o : outs_) outputs.push_back(o.values());
    if (poison_input != -2) {
      const T nan = std::numeric_limits<T>::quiet_NaN();
      for (std::size_t i = 0; i < inputs_.size(); ++i)
        if ((poison_input == -1 && !op_.saves_input(static_cast<int>(i))) || poison_input == static_cast<int>(i))
          std::fill(inputs_[i].data(), inputs_[i].data() + inputs_[i].n, nan);
      if ((poison_input == -1 && !op_.saves_output) || poison_input == static_cast<int>(inputs_.size()))
        for (auto& o : outs_) std::fill(o.data(), o.data() + o.n, nan);
    }
    for (std::size_t i = 0; i < grads_.size(); ++i) {
      const bool wanted = op_.input(i).differentiable;
      k_.grad_in_[i].data = wanted ? grads_[i].data() : nullptr;
      if (wanted) std::fill(grads_[i].data(), grads_[i].data() + grads_[i].n, Guarded<T>::canary());
    }
    if (over >= 0) k_.grad_in_[static_cast<std::size_t>(over)].data = grad_outs_[0].data();
    poison_scratch();
    {
      detail::FloatModeGuard mode;
      (run ? *run : vjp_fn())(k_);
    }
    std::vector<std::vector<T>> out;
    for (std::size_t i = 0; i < grads_.size(); ++i) {
      if (!op_.input(i).differentiable) {
        out.emplace_back();
        continue;
      }
      if (static_cast<int>(i) == over) {
        out.push_back(grad_outs_[0].values());
        continue;
      }
      for (std::int64_t j = 0; j < grads_[i].n; ++j)
        if (grads_[i].data()[j] == Guarded<T>::canary()) {
          note(fmt::format("vjp left element {} of the gradient of '{}' unwritten", j, op_.input(i).name));
          break;
        }
      out.push_back(grads_[i].values());
    }
    check_guards("vjp");
    restore(inputs);  // undo poisoning
    for (std::size_t o = 0; o < outs_.size(); ++o) std::copy(outputs[o].begin(), outputs[o].end(), outs_[o].data());
    return out;
  }

  const std::string& problem() const { return problem_; }

 private:
  static constexpr std::int64_t kIndexCanary = -7654321;
  const KernelFn<T>& forward_fn() const {
    if constexpr (std::is_same_v<T, float>) return op_.forward_f32;
    else return op_.forward_f64;
  }
  const KernelFn<T>& vjp_fn() const {
    if constexpr (std::is_same_v<T, float>) return op_.vjp_f32;
    else return op_.vjp_f64;
  }
  const ItemsFn<T>& items_fn(bool forward) const {
    if constexpr (std::is_same_v<T, float>) return forward ? op_.forward_items_f32 : op_.vjp_items_f32;
    else return forward ? op_.forward_items_f64 : op_.vjp_items_f64;
  }
  const ItemsFinishFn<T>& finish_fn() const {
    if constexpr (std::is_same_v<T, float>) return op_.vjp_finish_f32;
    else return op_.vjp_finish_f64;
  }
  void by_ranges(const std::vector<std::int64_t>& cuts, const ItemsFn<T>& f, const Kernel<T>& k) const {
    const std::int64_t items = out_shapes_.at(0).rank() ? out_shapes_[0][0] : 0;
    std::int64_t b0 = 0;
    for (std::int64_t cut : cuts) {
      const std::int64_t b1 = std::clamp<std::int64_t>(cut, b0, items);
      if (b1 > b0) f(k, b0, b1);
      b0 = b1;
    }
    if (items > b0) f(k, b0, items);
  }
  std::vector<std::vector<T>> snapshot() const {
    std::vector<std::vector<T>> s;
    for (const auto& b : inputs_) s.push_back(b.values());
    for (const auto& b : index_inputs_)
      s.emplace_back(std::vector<T>(b.data(), b.data() + b.n));  // compared, never restored from
    return s;
  }
  void restore(const std::vector<std::vector<T>>& s) {
    for (std::size_t i = 0; i < inputs_.size(); ++i) std::copy(s[i].begin(), s[i].end(), inputs_[i].data());
  }
  void check_guards(const char* pass) {
    auto check = [&](const auto& b, const std::string& what) {
      if (!b.intact()) note(fmt::format("{} wrote outside {}", pass, what));
    };
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      check(inputs_[i], "input '" + op_.input(i).name + "'");
      check(index_inputs_[i], "input '" + op_.input(i).name + "'");
    }
    for (std::size_t i = 0; i < grads_.size(); ++i) check(grads_[i], "the gradient of '" + op_.input(i).name + "'");
    for (std::size_t o = 0; o < outs_.size(); ++o) {
      check(outs_[o], fmt::format("its output {}", out_shapes_[o]));
      check(index_outs_[o], fmt::format("its output {}", out_shapes_[o]));
    }
    check(work_, "its workspace");
    check(scratch_, "its scratch");
    for (const auto& st : states_) check(st, "its state");
  }
  /// Scratch holds NaN before each call: a kernel must not read what an earlier call left.
  void poison_scratch() {
    std::fill(scratch_.data(), scratch_.data() + scratch_.n, std::numeric_limits<T>::quiet_NaN());
  }
  void note(const std::string& what) {
    if (problem_.empty()) problem_ = what;
  }

  const OpDef& op_;
  std::vector<Shape> shapes_;
  Graph g_;
  NodeId node_ = 0;
  std::vector<Shape> out_shapes_;
  std::vector<char> out_index_;
  std::int64_t output_size_ = 0;
  std::vector<Guarded<T>> inputs_, grads_, outs_, grad_outs_, states_;
  std::vector<Guarded<std::int64_t>> index_inputs_, index_outs_;
  Guarded<T> work_, scratch_;
  planning::Binding binding_;
  std::int64_t step_ = 0;
  planning::ViewStore<T> views_;  // k_'s views
  Kernel<T> k_;
  std::string problem_;
};

template <class T>
std::vector<T> typed(const Tensor& t) {
  std::vector<T> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i) v[static_cast<std::size_t>(i)] = static_cast<T>(t.at(i));
  return v;
}

ConformanceItem metadata(const OpDef& op) {
  ConformanceItem item{"metadata", true, 0.0, {}};
  auto fail = [&](const std::string& what) {
    if (item.passed) item.detail = what;
    item.passed = false;
  };
  if (op.doc.empty()) fail("no doc line");
  if (op.inputs.empty()) fail("no inputs");
  std::set<std::string> names;
  for (const auto& in : op.inputs)
    if (!names.insert(in.name).second) fail(fmt::format("input '{}' declared twice", in.name));
  for (const auto& a : op.attrs) {
    if (!names.insert(a.name).second) fail(fmt::format("'{}' declared twice", a.name));
    const AttrType t = a.default_value.type();
    if (t != AttrType::none && t != a.type && !(a.type == AttrType::real && t == AttrType::integer))
      fail(fmt::format("attribute '{}' is {} but its default {} is {}", a.name, to_string(a.type), a.default_value.str(),
                       to_string(t)));
    if (!a.choices.empty() &&
        std::find(a.choices.begin(), a.choices.end(),
                  a.default_value.type() == AttrType::string ? a.default_value.as_string() : a.default_value.str()) ==
            a.choices.end())
      fail(fmt::format("attribute '{}': default {} is not one of its choices", a.name, a.default_value.str()));
  }
  if (op.domains.size() != op.inputs.size()) fail("a domain per input is missing");
  if (op.has_vjp() && op.checks.empty()) fail("no check cases: declare one with .check({\"[a,b]\"})");
  if (!op.has_vjp()) item.detail = "no vjp: the op is not differentiable";
  return item;
}

}  // namespace

ConformanceReport check_conformance(const OpDef& op, const ConformanceOptions& options) {
  ConformanceReport report;
  report.op = op.name;
  report.items.push_back(metadata(op));
  if (op.checks.empty()) return report;

  ConformanceItem shapes{"shapes", true, 0.0, {}}, finite{"finite", true, 0.0, {}}, f32{"f32", true, 0.0, {}},
      threads{"threads", true, 0.0, {}}, linearity{"linearity", true, 0.0, {}}, saves{"saves", true, 0.0, {}},
      in_place{"in place", true, 0.0, {}}, nan{"nan", true, 0.0, {}}, epilogue{"epilogue", true, 0.0, {}},
      relu_vjp{"relu vjp", true, 0.0, {}}, activation_vjp{"activation vjp", true, 0.0, {}},
      bias_vjp{"bias vjp", true, 0.0, {}},
      per_item{"per item", true, 0.0, {}},
      activation{"activation", true, 0.0, {}};
  auto fail = [](ConformanceItem& item, const std::string& what) {
    if (item.passed) item.detail = what;
    item.passed = false;
  };
  for (std::size_t c = 0; c < op.checks.size(); ++c) {
    try {
      // The shape rule against the kernel, on several random sizes.
      for (std::uint64_t s = 0; s < 3; ++s) {
        const CheckInstance inst = check_instance(op, c, options.seed + 1000 * s);
        Harness<double> h(op, inst.shapes, inst.attrs);
        h.set_inputs(inst.inputs);
        const auto y = h.forward();
        // On inputs from its own domain an op gives finite values, and so does its vjp.
        if (const auto bad = first_non_finite(y.data(), static_cast<long long>(y.size())); bad >= 0)
          fail(finite, fmt::format("{}: forward gives {} at output element {} on inputs from its domain", inst.config,
                                   y[static_cast<std::size_t>(bad)], bad));
        if (op.has_vjp()) {
          const auto g = h.vjp(typed<double>(inst.cotangent));
          for (std::size_t i = 0; i < g.size(); ++i)
            if (const auto bad = first_non_finite(g[i].data(), static_cast<long long>(g[i].size())); bad >= 0)
              fail(finite, fmt::format("{}: the vjp gives {} at element {} of the gradient of '{}'", inst.config,
                                       g[i][static_cast<std::size_t>(bad)], bad, op.input(i).name));
        }
        if (!h.problem().empty()) fail(shapes, fmt::format("{}: {}", inst.config, h.problem()));
      }
      const CheckInstance inst = check_instance(op, c, options.seed);
      // f32 forward against f64.
      Harness<double> h64(op, inst.shapes, inst.attrs);
      Harness<float> h32(op, inst.shapes, inst.attrs);
      h64.set_inputs(inst.inputs);
      h32.set_inputs(inst.inputs);
      const auto y64 = h64.forward();
      const auto y32 = h32.forward();
      double scale = 1e-30, worst = 0.0;
      for (double v : y64) scale = std::max(scale, std::abs(v));
      for (std::size_t j = 0; j < y64.size(); ++j) worst = worst_of(worst, std::abs(static_cast<double>(y32[j]) - y64[j]));
      f32.measure = worst_of(f32.measure, worst / scale);
      if (!within(worst / scale, options.f32_tolerance))
        fail(f32, fmt::format("{}: f32 differs from f64 by {:.2e} of the output's scale (bound {:.0e})", inst.config,
                              worst / scale, options.f32_tolerance));
      // An epilogue (`.epilogue()`): forward with a bias along the op's epilogue axis and
      // an activation (ReLU alone and with the bias; the bias alone; logistic and tanh
      // with it) gives the bits of forward followed by the add and the function (ReLU's
      // max keeping NaN), in both precisions: what a plan that skips a bias_add and an
      // activation op after the node relies on.
      const int out_rank = h64.output_shape().rank();
      const int along = op.epilogue_axis < 0 ? op.epilogue_axis + out_rank : op.epilogue_axis;
      if (op.epilogue && op.outputs.size() == 1 && !op.output(0).variadic && along >= 0 && along < out_rank) {
        auto compare = [&](auto& h, const char* precision) {
          using T = typename std::remove_cvref_t<decltype(h.forward())>::value_type;
          const Shape& shape = h.output_shape();
          const std::int64_t len = shape[along];
          std::int64_t inner = 1;  // elements between successive values of the bias
          for (int d = along + 1; d < out_rank; ++d) inner *= shape[d];
          std::vector<T> bias(static_cast<std::size_t>(len));
          Rng rng(options.seed + 17 * c);
          for (auto& v : bias) v = static_cast<T>(rng.uniform(-1, 1));
          const auto y = h.forward();
          using A = math::Activation;
          const std::pair<bool, A> modes[] = {
              {true, A::none}, {false, A::relu}, {true, A::relu}, {true, A::logistic}, {true, A::tanh}};
          for (const auto& [with_bias, act] : modes) {
            std::vector<T> want = y;
            for (std::size_t j = 0; j < want.size(); ++j) {
              if (with_bias) want[j] = want[j] + bias[(static_cast<std::int64_t>(j) / inner) % len];
              math::activate(act, &want[j], 1);
            }
            const auto got = h.forward_with_epilogue(with_bias ? bias : std::vector<T>{}, act);
            if (got.size() != want.size() || std::memcmp(got.data(), want.data(), want.size() * sizeof(T)) != 0) {
              const std::string name = act == A::relu ? "ReLU" : math::activation_name(act);
              fail(epilogue, fmt::format("{} ({}): forward with the epilogue{}{}{} differs from forward, then {}",
                                         inst.config, precision, with_bias ? " bias" : "",
                                         act == A::none ? "" : " ", math::activation_name(act),
                                         with_bias && act != A::none ? "the bias added, then " + name
                                         : with_bias                 ? std::string("the bias added")
                                                                     : name));
              break;
            }
          }
        };
        compare(h64, "f64");
        compare(h32, "f32");
      }

      // A fused bias's vjp taken over (`.absorbs_bias_vjp()`): the vjp told to write the
      // gradient of a bias along the last axis (Epilogue::bias_grad) gives the gradients it
      // gives without, and as the bias's the output gradient's column sums, bit for bit
      // column_sums' (graph/kernel.hpp, bias_add's vjp): in both precisions, what a plan
      // that skips the bias_add's vjp relies on. Only with an epilogue along the last axis.
      if (op.absorbs_bias_vjp && op.has_vjp()) {
        if (!op.epilogue || along != out_rank - 1 || op.outputs.size() != 1) {
          fail(bias_vjp, "absorbs_bias_vjp is declared without an epilogue along the last axis of a single output");
        } else {
          auto compare = [&](auto probe, const char* precision) {
            using T = decltype(probe);
            Harness<T> h(op, inst.shapes, inst.attrs);
            h.set_inputs(inst.inputs);
            const auto cot = typed<T>(inst.cotangent);
            h.forward();
            const auto want = h.vjp(cot);
            const std::int64_t len = h.output_shape()[out_rank - 1];
            std::vector<T> sums(static_cast<std::size_t>(len)), db(sums.size(), Guarded<T>::canary());
            column_sums(cot.data(), len ? static_cast<std::int64_t>(cot.size()) / len : 0, len, len, sums.data());
            const auto got = h.vjp_with_bias_grad(cot, db);
            for (std::size_t i = 0; i < want.size(); ++i)
              if (want[i].size() != got[i].size() ||
                  (!want[i].empty() && std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(T)) != 0)) {
                fail(bias_vjp, fmt::format("{} ({}): the vjp told to write the bias's gradient gives another gradient "
                                           "of '{}' than without",
                                           inst.config, precision, op.input(i).name));
                return;
              }
            for (std::size_t j = 0; j < sums.size(); ++j)
              if (std::memcmp(&sums[j], &db[j], sizeof(T)) != 0) {
                fail(bias_vjp, fmt::format("{} ({}): the bias's gradient at {} is {}, not {}, the column sum of the "
                                           "output's gradient (as bias_add's vjp adds it)",
                                           inst.config, precision, j, static_cast<double>(db[j]),
                                           static_cast<double>(sums[j])));
                return;
              }
            if (!h.problem().empty()) fail(bias_vjp, fmt::format("{} ({}): {}", inst.config, precision, h.problem()));
          };
          compare(double{}, "f64");
          compare(float{}, "f32");
        }
      }

      // An activation's vjp taken over (`.absorbs_activation_vjp()`: relu, logistic and
      // tanh; `.absorbs_relu_vjp()`: relu): with input 0 the activation's output (for a
      // relu its negative values 0, and one NaN), forward and then the vjp told so
      // (Kernel::absorbed_activation) give the outputs and gradients of the two without it,
      // input 0's gradient then taken through the activation (math::activation_vjp, as
      // the activation's vjp takes it): bit for bit, in both precisions, what a plan that
      // skips the activation's vjp relies on.
      const auto check_absorbed = [&](ConformanceItem& item, math::Activation act) {
        if (!op.has_vjp() || op.inputs.empty() || op.input(0).kind == ValueKind::index ||
            !op.input(0).differentiable)
          return;
        const char* name = math::activation_name(act);
        std::vector<Tensor> after = inst.inputs;
        after[0] = inst.inputs[0].clone();
        for (std::int64_t j = 0; j < after[0].numel(); ++j) {
          double y = after[0].at(j);
          math::activate(act, &y, 1);
          after[0].set(j, y);
        }
        if (act == math::Activation::relu && after[0].numel() > 2)
          after[0].set(1, std::numeric_limits<double>::quiet_NaN());
        auto compare = [&](auto probe, const char* precision) {
          using T = decltype(probe);
          Harness<T> plain(op, inst.shapes, inst.attrs), absorbing(op, inst.shapes, inst.attrs);
          plain.set_inputs(after);
          absorbing.set_inputs(after);
          absorbing.absorb_vjp(act);
          const auto cot = typed<T>(inst.cotangent);
          const auto y = plain.forward();
          auto want = plain.vjp(cot);
          const std::vector<T> y0 = typed<T>(after[0]);
          if (want[0].size() == y0.size())
            math::activation_vjp(act, y0.data(), want[0].data(), static_cast<std::int64_t>(y0.size()));
          const auto y2 = absorbing.forward();
          const auto got = absorbing.vjp(cot);
          const auto same = [](const std::vector<T>& a, const std::vector<T>& b) {
            // (memcmp must not see the null data of an empty gradient, an input not differentiated)
            return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
          };
          if (!same(y, y2)) {
            fail(item, fmt::format("{} ({}): forward told that it takes over a {}'s vjp changes the output",
                                   inst.config, precision, name));
            return;
          }
          for (std::size_t i = 0; i < want.size(); ++i)
            if (!same(want[i], got[i])) {
              fail(item, fmt::format("{} ({}): the vjp told that it takes over a {}'s vjp gives another gradient "
                                     "of '{}' than the vjp, then the {}'s ({} '{}' {})",
                                     inst.config, precision, name, op.input(i).name, name,
                                     act == math::Activation::relu ? "zero where" : "with", op.input(0).name,
                                     act == math::Activation::relu ? "is not positive" : "as its output"));
              return;
            }
          if (!absorbing.problem().empty()) fail(item, fmt::format("{} ({}): {}", inst.config, precision, absorbing.problem()));
        };
        compare(double{}, "f64");
        compare(float{}, "f32");
      };
      if (op.absorbs_relu_vjp) check_absorbed(relu_vjp, math::Activation::relu);
      if (op.absorbs_activation_vjp)
        for (auto act : {math::Activation::relu, math::Activation::logistic, math::Activation::tanh})
          check_absorbed(activation_vjp, act);

      // Item by item (`.per_item()`): the per-item kernels over the items in pieces (the
      // first alone, then the rest; and the last alone after the rest), with the vjp's
      // finish, give the bits of forward and vjp, every value written, in both precisions:
      // what a plan that runs the node inside the one before it relies on.
      if (op.per_item()) {
        auto compare = [&](auto probe, const char* precision) {
          using T = decltype(probe);
          Harness<T> plain(op, inst.shapes, inst.attrs), items(op, inst.shapes, inst.attrs);
          if (!plain.per_item()) return;
          plain.set_inputs(inst.inputs);
          items.set_inputs(inst.inputs);
          const auto cot = typed<T>(inst.cotangent);
          const auto y = plain.forward();
          const auto want = op.has_vjp() ? plain.vjp(cot) : std::vector<std::vector<T>>{};
          const std::int64_t n = plain.output_shape().rank() ? plain.output_shape()[0] : 0;
          for (const std::vector<std::int64_t>& cuts : {std::vector<std::int64_t>{1}, std::vector<std::int64_t>{n - 1}}) {
            const auto y2 = items.forward_items(cuts);
            if (!bitwise_same(y, y2)) {
              fail(per_item, fmt::format("{} ({}): forward item by item (pieces cut at {}) differs from forward", inst.config,
                                         precision, cuts[0]));
              return;
            }
            if (!op.has_vjp()) continue;
            const auto got = items.vjp_items(cot, cuts);
            for (std::size_t i = 0; i < want.size(); ++i)
              if (!bitwise_same(want[i], got[i])) {
                fail(per_item, fmt::format("{} ({}): the vjp item by item (pieces cut at {}) gives another gradient of "
                                           "'{}' than the vjp",
                                           inst.config, precision, cuts[0], op.input(i).name));
                return;
              }
          }
          if (!items.problem().empty()) fail(per_item, fmt::format("{} ({}): {}", inst.config, precision, items.problem()));
        };
        compare(double{}, "f64");
        compare(float{}, "f32");
      }

      if (!op.has_vjp()) continue;
      // The f32 vjp writes every gradient value too (its kernels are often not the f64
      // ones: the canary the harness fills the gradients with must not survive).
      h32.vjp(typed<float>(inst.cotangent));
      if (!h32.problem().empty()) fail(shapes, fmt::format("{} (f32): {}", inst.config, h32.problem()));

      // The vjp is linear in its cotangent.
      Rng rng(options.seed + c);
      const auto cot_size = static_cast<std::size_t>(h64.output_size());
      std::vector<double> c1(cot_size), c2(cot_size), mix(cot_size);
      for (auto& v : c1) v = rng.normal();
      for (auto& v : c2) v = rng.normal();
      for (std::size_t j = 0; j < mix.size(); ++j) mix[j] = 1.7 * c1[j] - 0.6 * c2[j];
      const auto g1 = h64.vjp(c1), g2 = h64.vjp(c2), gm = h64.vjp(mix);
      double lin = 0.0, gscale = 1e-30;
      for (std::size_t i = 0; i < g1.size(); ++i)
        for (std::size_t j = 0; j < g1[i].size(); ++j) {
          gscale = std::max(gscale, std::abs(gm[i][j]));
          lin = worst_of(lin, std::abs(gm[i][j] - (1.7 * g1[i][j] - 0.6 * g2[i][j])));
        }
      linearity.measure = worst_of(linearity.measure, lin / gscale);
      if (!within(lin / gscale, options.linearity_tolerance))
        fail(linearity, fmt::format("{}: vjp(1.7 c1 - 0.6 c2) differs from 1.7 vjp(c1) - 0.6 vjp(c2) by {:.2e}",
                                    inst.config, lin / gscale));

      // NaN in, NaN out: an input element the output depends on (the one with the largest
      // gradient for the cotangent c1), set to NaN, gives NaN in some output element, in
      // both precisions. A comparison written as std::max(0, x) or a > b ? a : b drops a
      // NaN, and the run's NaN checks and --detect-anomaly then never see it.
      if (op.replaces_nan) nan.detail = "not asked: the op replaces NaN on purpose (.replaces_nan())";
      // Harnesses of their own (h64 and h32 keep the clean forward pass for what follows),
      // made at the first input that needs them and shared by the rest.
      std::optional<Harness<double>> n64;
      std::optional<Harness<float>> n32;
      for (std::size_t i = 0; i < g1.size() && nan.passed && !op.replaces_nan; ++i) {
        if (op.input(i).kind == ValueKind::index) continue;
        std::size_t at = 0;
        double largest = 0.0;
        for (std::size_t j = 0; j < g1[i].size(); ++j)
          if (std::abs(g1[i][j]) > largest) largest = std::abs(g1[i][j]), at = j;
        if (!(largest > 0.0)) continue;  // nothing depends on this input here (or a NaN gradient: see finite)
        std::vector<Tensor> poisoned = inst.inputs;
        poisoned[i] = inst.inputs[i].clone();
        poisoned[i].set(static_cast<std::int64_t>(at), std::numeric_limits<double>::quiet_NaN());
        auto gives_nan = [&](auto& h, const char* precision) {
          h.set_inputs(poisoned);
          const auto y = h.forward();
          for (std::int64_t j = 0; j < h.output_size(); ++j)
            if (std::isnan(static_cast<double>(y[static_cast<std::size_t>(j)]))) return;
          fail(nan, fmt::format("{} ({}): NaN at element {} of '{}', which the output depends on, gives no NaN in the "
                                "output: a comparison drops it (std::max(0, x) keeps 0, a > b ? a : b keeps b); "
                                "let NaN through (x != x, or std::isnan)",
                                inst.config, precision, at, op.input(i).name));
        };
        if (!n64) n64.emplace(op, inst.shapes, inst.attrs), n32.emplace(op, inst.shapes, inst.attrs);
        gives_nan(*n64, "f64");
        if (nan.passed) gives_nan(*n32, "f32");
      }
      // The same through the vjp: a NaN in the cotangent of an output element some input
      // gradient depends on (found with one-hot cotangents, a few elements tried) gives
      // NaN in an input gradient, or a NaN loss would leave finite gradients behind.
      if (nan.passed && !op.replaces_nan && cot_size > 0) {
        std::size_t at = cot_size;
        for (std::size_t t = 0; t < 8 && at == cot_size; ++t) {
          const std::size_t j = t * cot_size / 8;
          if (t > 0 && j == (t - 1) * cot_size / 8) continue;
          std::vector<double> one(cot_size, 0.0);
          one[j] = 1.0;
          for (const auto& gi : h64.vjp(one))
            for (double v : gi)
              if (v != 0.0) at = j;
        }
        if (at < cot_size) {
          auto vjp_gives_nan = [&](auto& h, auto cot, const char* precision) {
            cot[at] = std::numeric_limits<typename decltype(cot)::value_type>::quiet_NaN();
            for (const auto& gi : h.vjp(cot))
              for (auto v : gi)
                if (std::isnan(static_cast<double>(v))) return;
            fail(nan, fmt::format("{} ({}): NaN in the cotangent of output element {}, which the gradients depend on, "
                                  "gives no NaN in any input's gradient: the vjp drops it (a comparison or a select "
                                  "on the cotangent); let NaN through",
                                  inst.config, precision, at));
          };
          vjp_gives_nan(h64, c1, "f64");
          if (nan.passed) vjp_gives_nan(h32, std::vector<float>(c1.begin(), c1.end()), "f32");
        }
      }

      // Forward gives the same outputs when no vjp follows (vjp_runs() false): it may skip
      // what only the vjp reads, never change what it returns.
      auto same_without_vjp = [&](auto& h, const char* precision) {
        std::remove_cvref_t<decltype(h)> alone(op, inst.shapes, inst.attrs, false);
        alone.set_inputs(inst.inputs);
        const auto with = h.forward(), without = alone.forward();
        if (std::memcmp(with.data(), without.data(), with.size() * sizeof(with[0])) != 0)
          fail(saves, fmt::format("{} ({}): forward gives other outputs when its vjp will not run (vjp_runs() "
                                  "false): skip only what the vjp alone reads",
                                  inst.config, precision));
      };
      same_without_vjp(h64, "f64");
      same_without_vjp(h32, "f32");

      // The vjp reads only what the op saves.
      const auto clean = h64.vjp(c1);
      const auto poisoned = h64.vjp(c1, -1);
      if (!bitwise_same(clean, poisoned)) {
        std::string culprit = "an undeclared value";
        const std::size_t n_in = inst.shapes.size();
        for (std::size_t i = 0; i <= n_in; ++i) {
          const bool saved = i < n_in ? op.saves_input(static_cast<int>(i)) : op.saves_output;
          if (saved) continue;
          if (!bitwise_same(clean, h64.vjp(c1, static_cast<int>(i)))) {
            culprit = i < n_in
                          ? fmt::format("input '{}': declare it with .saves({{\"{}\"}})", op.input(i).name, op.input(i).name)
                          : std::string("its output: declare it with .saves_output()");
            break;
          }
        }
        fail(saves, fmt::format("{}: the vjp reads {}", inst.config, culprit));
      }

      // In place (`.in_place`): the output written over its input, and that input's
      // gradient over the output's cotangent, give the same bits as separate buffers, in
      // both precisions (the f32 kernels are often their own).
      // Only where the planner would share: an input as large as the output.
      if (op.in_place >= 0 && inst.shapes[static_cast<std::size_t>(op.in_place)].numel() == h64.output_size()) {
        auto compare = [&](auto& h, const auto& cot, const char* precision) {
          const auto y = h.forward(), y_over = h.forward(op.in_place);
          if (std::memcmp(y.data(), y_over.data(), y.size() * sizeof(y[0])) != 0)
            fail(in_place, fmt::format("{} ({}): forward written over '{}' differs from forward into its own buffer",
                                       inst.config, precision, op.input(op.in_place).name));
          const auto g = h.vjp(cot), g_over = h.vjp(cot, -2, op.in_place);
          for (std::size_t i = 0; i < g.size(); ++i)
            if (g[i].size() != g_over[i].size() ||
                std::memcmp(g[i].data(), g_over[i].data(), g[i].size() * sizeof(g[i][0])) != 0) {
              fail(in_place, fmt::format("{} ({}): the vjp writing the gradient of '{}' over the output's gradient "
                                         "changes the gradient of '{}'",
                                         inst.config, precision, op.input(op.in_place).name, op.input(i).name));
              break;
            }
        };
        compare(h64, typed<double>(inst.cotangent), "f64");
        compare(h32, typed<float>(inst.cotangent), "f32");
      }

      // An activation (`.activation(act)`): forward is the function, element by element,
      // to the bit, in both precisions: a product's epilogue runs it in the op's place.
      if (op.activation != math::Activation::none) {
        auto compare = [&](auto& h, const char* precision) {
          using T = typename std::remove_cvref_t<decltype(h.forward())>::value_type;
          const auto y = h.forward();
          std::vector<T> want = typed<T>(inst.inputs.at(0));
          math::activate(op.activation, want.data(), static_cast<std::int64_t>(want.size()));
          for (std::size_t j = 0; j < want.size() && j < y.size(); ++j)
            if (std::memcmp(&want[j], &y[j], sizeof(T)) != 0) {
              fail(activation, fmt::format("{} ({}): forward gives {} at element {}, {} of {} gives {}", inst.config,
                                           precision, y[j], j, math::activation_name(op.activation),
                                           static_cast<T>(inst.inputs[0].at(static_cast<std::int64_t>(j))), want[j]));
              return;
            }
          if (y.size() != want.size() || op.inputs.size() != 1 || op.outputs.size() != 1) {
            fail(activation, fmt::format("{} ({}): an activation is a function of its one input, element by element, "
                                         "into one output of its shape",
                                         inst.config, precision));
            return;
          }
          // Its vjp is math::activation_vjp of its output, to the bit: a product that takes
          // over the vjp (absorbs_activation_vjp) computes that in its place.
          if (!op.has_vjp()) return;
          const auto cot = typed<T>(inst.cotangent);
          const auto got = h.vjp(cot);
          std::vector<T> want_g = cot;
          math::activation_vjp(op.activation, y.data(), want_g.data(), static_cast<std::int64_t>(want_g.size()));
          for (std::size_t j = 0; j < want_g.size() && !got.empty() && j < got[0].size(); ++j)
            if (std::memcmp(&want_g[j], &got[0][j], sizeof(T)) != 0) {
              fail(activation, fmt::format("{} ({}): the vjp gives {} at element {}, {}'s gradient at output {} with "
                                           "the output's gradient {} gives {}",
                                           inst.config, precision, got[0][j], j, math::activation_name(op.activation),
                                           y[j], cot[j], want_g[j]));
              return;
            }
        };
        compare(h64, "f64");
        compare(h32, "f32");
      }

      // 1 thread against 2, bitwise, on sizes large enough to split into chunks: every
      // letter of the case's shapes times one factor (digits, which attributes may fix,
      // and broadcast 1s stay), about 64k elements in the largest tensor, the outputs
      // counted: embedding's [a, b, c] from ids [a, b] and a table [7, c], sized by its
      // inputs alone, had 4.8 million values (with their canaries and gradients in f64,
      // most of a gigabyte to fault in: 5.5 of the 6.9 s that every op's conformance
      // took, and under ThreadSanitizer 5 minutes).
      std::int64_t largest = std::max<std::int64_t>(1, h64.output_size());
      int rank = std::max(1, h64.output_shape().rank());
      for (const auto& sh : inst.shapes) {
        largest = std::max(largest, sh.numel());
        rank = std::max(rank, sh.rank());
      }
      const auto factor = std::max<std::int64_t>(
          2, static_cast<std::int64_t>(std::pow(65536.0 / static_cast<double>(largest), 1.0 / rank)));
      const CheckInstance wide = check_instance(op, c, options.seed, {}, factor);
      std::vector<std::vector<double>> results[2];
      for (int t = 0; t < 2; ++t) {
        ThreadCount count(t + 1);
        Harness<double> h(op, wide.shapes, wide.attrs);
        h.set_inputs(wide.inputs);
        results[t].push_back(h.forward());
        for (auto& g : h.vjp(typed<double>(wide.cotangent))) results[t].push_back(g);
      }
      if (!bitwise_same(results[0], results[1]))
        fail(threads, fmt::format("{} (sizes x{}): 1 and 2 threads give different bits: use fixed chunks "
                                  "(parallel_for) and a fixed order for sums",
                                  inst.config, factor));
    } catch (const std::exception& e) {
      fail(shapes, fmt::format("check case {}: {}", c + 1, e.what()));
    }
  }
  report.items.push_back(shapes);
  report.items.push_back(finite);
  if (op.has_vjp() && !shapes.passed) {
    // The gradient check runs the op in a plan, whose buffers have no canaries: a kernel
    // that writes outside its tensors would corrupt memory there.
    report.items.push_back({"gradient", false, std::numeric_limits<double>::quiet_NaN(),
                            "not run: the kernels write outside their buffers (see shapes)"});
  } else if (op.has_vjp()) {
    ConformanceItem gradient{"gradient", true, 0.0, {}};
    GradCheckOptions go;
    go.seed = options.seed;
    go.tolerance = options.gradient_tolerance;
    for (const auto& r : check_op_gradients(op, go)) {
      gradient.measure = worst_of(gradient.measure, r.max_error);
      if (!r.failure.empty()) fail(gradient, fmt::format("{}: {}", r.config, r.failure));
      else if (!r.passed)
        fail(gradient, fmt::format("{}: vjp against f64 central differences: relative error {:.2e} > {:.0e}", r.config,
                                   r.max_error, options.gradient_tolerance));
    }
    report.items.push_back(gradient);
  }
  report.items.push_back(f32);
  if (op.has_vjp()) {
    report.items.push_back(threads);
    report.items.push_back(linearity);
    report.items.push_back(saves);
    report.items.push_back(nan);
  }
  if (op.in_place >= 0) report.items.push_back(in_place);
  if (op.epilogue) report.items.push_back(epilogue);
  if (op.activation != math::Activation::none) report.items.push_back(activation);
  if (op.absorbs_relu_vjp) report.items.push_back(relu_vjp);
  if (op.absorbs_activation_vjp) report.items.push_back(activation_vjp);
  if (op.absorbs_bias_vjp) report.items.push_back(bias_vjp);
  if (op.per_item()) report.items.push_back(per_item);
  return report;
}

std::string explain_gradient(const OpDef& op, const ConformanceOptions& options) {
  if (!op.has_vjp()) return fmt::format("{} has no vjp: nothing to explain\n", op.name);
  GradCheckOptions go;
  go.seed = options.seed;
  go.tolerance = options.gradient_tolerance;
  const auto results = check_op_gradients(op, go);
  std::size_t failing = op.checks.size();
  for (const auto& r : results)
    if (!r.passed) {
      failing = r.case_index;
      break;
    }
  if (failing == op.checks.size()) return fmt::format("{}: the vjp agrees with finite differences on every case\n", op.name);
  const CheckInstance inst = check_instance(op, failing, options.seed);
  Harness<double> h(op, inst.shapes, inst.attrs);
  h.set_inputs(inst.inputs);
  h.forward();
  const std::vector<double> cot = typed<double>(inst.cotangent);
  const auto analytic = h.vjp(cot);
  auto phi = [&](const std::vector<Tensor>& x) {
    h.set_inputs(x);
    const auto y = h.forward();
    double s = 0.0;
    for (std::size_t j = 0; j < cot.size(); ++j) s += cot[j] * y[j];
    return s;
  };
  std::string out = fmt::format("{}: case {} ({}), d<c, {}(x)>/dx element by element, analytic (vjp) against numeric "
                                "(central differences)\n",
                                op.name, failing + 1, inst.config, op.name);
  for (std::size_t i = 0; i < inst.inputs.size(); ++i) {
    if (!op.input(i).differentiable) continue;
    const Tensor& x = inst.inputs[i];
    const std::int64_t n = x.numel();
    std::vector<double> numeric(static_cast<std::size_t>(n)), coarse(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) {
      for (const double step : {1e-5, 1e-3}) {
        std::vector<Tensor> up = inst.inputs, down = inst.inputs;
        up[i] = x.clone();
        down[i] = x.clone();
        up[i].set(j, x.at(j) + step);
        down[i].set(j, x.at(j) - step);
        (step == 1e-5 ? numeric : coarse)[static_cast<std::size_t>(j)] = (phi(up) - phi(down)) / (2 * step);
      }
    }
    h.set_inputs(inst.inputs);
    const auto& a = analytic[i];
    double gscale = 1e-30;
    for (double v : numeric) gscale = std::max(gscale, std::abs(v));
    std::vector<std::int64_t> wrong;
    for (std::int64_t j = 0; j < n; ++j)
      if (std::abs(a[static_cast<std::size_t>(j)] - numeric[static_cast<std::size_t>(j)]) > 1e-6 * gscale) wrong.push_back(j);
    out += fmt::format("input '{}' {}: {} of {} elements disagree\n", op.input(i).name, x.shape(), wrong.size(), n);
    if (wrong.empty()) continue;
    out += fmt::format("  {:>7} {:>12} {:>14} {:>14} {:>10}\n", "element", "x", "analytic", "numeric", "ratio");
    for (std::int64_t j = 0; j < std::min<std::int64_t>(n, 16); ++j) {
      const double an = a[static_cast<std::size_t>(j)], nu = numeric[static_cast<std::size_t>(j)];
      out += fmt::format("  {:>7} {:>12.5g} {:>14.6g} {:>14.6g} {:>10.4g}{}\n", j, x.at(j), an, nu,
                         nu != 0 ? an / nu : std::numeric_limits<double>::quiet_NaN(),
                         std::find(wrong.begin(), wrong.end(), j) != wrong.end() ? "  <-" : "");
    }
    if (n > 16) out += fmt::format("  ... {} more elements\n", n - 16);

    // The usual culprits.
    std::vector<double> ratios;
    for (std::int64_t j = 0; j < n; ++j)
      if (std::abs(numeric[static_cast<std::size_t>(j)]) > 1e-3 * gscale)
        ratios.push_back(a[static_cast<std::size_t>(j)] / numeric[static_cast<std::size_t>(j)]);
    const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
    const bool all_zero = std::all_of(a.begin(), a.end(), [](double v) { return v == 0.0; });
    std::vector<std::string> culprits;
    if (all_zero) {
      culprits.push_back("the vjp writes zeros: is grad_in written, and needs_grad tested the right way round?");
    } else if (!ratios.empty() && *hi - *lo <= 1e-4 * std::abs(*lo) && std::abs((*lo + *hi) / 2 - 1.0) > 1e-5) {
      const double r = (*lo + *hi) / 2;
      if (std::abs(r + 1.0) < 0.01) {
        culprits.push_back("analytic = -numeric everywhere: a sign error in the vjp");
      } else {
        std::string which;
        auto near = [&](double s) { return s > 1 && (std::abs(r - s) < 0.01 * s || std::abs(1.0 / r - s) < 0.01 * s); };
        if (near(static_cast<double>(x.numel()))) which = fmt::format(" ({}the element count of {})", r > 1 ? "" : "1 / ", x.shape());
        for (int d = 0; d < inst.shapes[i].rank() && which.empty(); ++d)
          if (near(static_cast<double>(inst.shapes[i][d])))
            which = fmt::format(" ({}dimension {} of {})", r > 1 ? "" : "1 / ", d, x.shape());
        culprits.push_back(fmt::format("analytic / numeric = {:.4g} everywhere{}: the vjp is off by a constant factor — "
                                       "a missing or extra 1/N (mean against sum)?",
                                       r, which));
      }
    }
    std::int64_t wrong_neg = 0, wrong_pos = 0, neg = 0, pos = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const bool bad = std::find(wrong.begin(), wrong.end(), j) != wrong.end();
      (x.at(j) < 0 ? neg : pos)++;
      if (bad) (x.at(j) < 0 ? wrong_neg : wrong_pos)++;
    }
    if (!all_zero && culprits.empty() && neg > 0 && pos > 0 && ((wrong_neg == neg && wrong_pos == 0) || (wrong_pos == pos && wrong_neg == 0)))
      culprits.push_back(fmt::format("the vjp is wrong exactly where x {} 0 ({} of {}) and right where x {} 0: a mask at "
                                     "the kink x = 0 looks wrong (which side passes the gradient?)",
                                     wrong_neg ? "<" : ">", wrong.size(), wrong_neg ? neg : pos, wrong_neg ? ">" : "<"));
    double unstable = 0.0;
    for (std::int64_t j = 0; j < n; ++j)
      unstable = std::max(unstable, std::abs(numeric[static_cast<std::size_t>(j)] - coarse[static_cast<std::size_t>(j)]) / gscale);
    if (unstable > 1e-2)
      culprits.push_back(fmt::format("the numeric derivative moves by {:.1e} between steps 1e-5 and 1e-3: the forward is "
                                     "ill-conditioned here (cancellation?), so compute it in a stabler form",
                                     unstable));
    if (culprits.empty()) culprits.push_back("no simple pattern: check the vjp's formula against the forward's derivative");
    for (const auto& c : culprits) out += "  likely: " + c + "\n";
  }
  return out;
}

}  // namespace opgraph
