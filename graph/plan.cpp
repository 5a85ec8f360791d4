// A plan: the passes of graph/plan/ (analyse, schedule, memory) run once, kernels bound
// once (graph/plan/bind.hpp), then forward and backward passes run wave by wave with
// nothing allocated.
#include <opgraph/graph/plan.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <span>

#include <opgraph/graph/numeric.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan/bind.hpp>
#include <opgraph/graph/plan/passes.hpp>
#include <opgraph/graph/registry.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

namespace {

constexpr std::size_t kAlign = 64;

/// "[12, 7]" for a flat index into a shape.
std::string multi_index(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    const std::int64_t n = std::max<std::int64_t>(shape[d], 1);
    idx[static_cast<std::size_t>(d)] = flat % n;
    flat /= n;
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

template <class T>
std::string value_range(const T* data, std::int64_t n) {
  if (n == 0 || !data) return "empty";
  double lo = INFINITY, hi = -INFINITY;
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(static_cast<double>(data[i]))) {
      ++bad;
      continue;
    }
    lo = std::min<double>(lo, static_cast<double>(data[i]));
    hi = std::max<double>(hi, static_cast<double>(data[i]));
  }
  return fmt::format("min {:.4g} max {:.4g}{}", lo, hi, bad ? fmt::format(" ({} non-finite)", bad) : std::string());
}

}  // namespace

struct Plan::Impl {
  Graph graph;
  PlanOptions options;
  DType dtype = DType::f32;
  planning::Analysis analysis;
  planning::Schedule schedule;
  planning::MemoryPlan memory;
  std::vector<BackwardStep> backward_steps;
  std::vector<NodeProfile> profiles;  // forward order; only when options.profile
  std::vector<std::int64_t> value_at;  // arena offset of a computed value, or -1
  std::vector<std::int64_t> grad_at;   // arena offset of a node's gradient, or -1
  std::vector<Tensor> values;          // inputs: bound tensors; params: the Params' tensors
  std::vector<NodeId> needed_inputs;   // inputs the plan reads, checked at each forward()
  std::vector<NodeId> param_ids;       // trainable parameters, in graph order
  std::shared_ptr<void> arena;
  PlanStats stats;
  bool forward_done = false;
  bool training = false;
  std::int64_t step = 0;
  std::int64_t sample_offset = 0;

  virtual ~Impl() = default;
  virtual void rebind_input(NodeId id) = 0;
  virtual void run_forward() = 0;
  virtual void run_backward(const Tensor* seed) = 0;

  const std::vector<Shape>& shapes() const { return analysis.shapes; }
  Tensor value_of(NodeId id) const;  // Plan::value, checks and all
  Tensor arena_tensor(std::int64_t offset, const Shape& shape, DType type) const {
    return Tensor::view(static_cast<std::byte*>(arena.get()) + offset, shape, type, arena);
  }
  NodeId input_node(std::string_view name) const {
    const auto id = graph.find(name);
    if (!id || graph.node(*id).kind != NodeKind::input) {
      std::vector<std::string> inputs;
      for (NodeId i : graph.inputs()) inputs.push_back(graph.node(i).name);
      throw GraphError(fmt::format("no input '{}'{}", name, suggestion(name, inputs)));
    }
    return *id;
  }
};

namespace {

template <class T>
struct Step {
  NodeId node = 0;
  Kernel<T> kernel;
  const KernelFn<T>* forward = nullptr;
  const KernelFn<T>* vjp = nullptr;
  T* forward_scratch = nullptr;  // each call's own temporary memory, if the op declares it
  T* backward_scratch = nullptr;
  bool fused = false;  // its forward runs inside another step's (planning::fuse_epilogues)
  bool vjp_absorbed = false;  // its vjp's work is done by its consumer's (a relu: fuse_epilogues)
  void run_forward() {
    kernel.scratch_.data = forward_scratch;
    (*forward)(kernel);
  }
  void run_vjp() {
    if (vjp_absorbed) return;
    kernel.scratch_.data = backward_scratch;
    (*vjp)(kernel);
    for (const auto& [f, k] : finish) (*f)(*k);
  }
  // The last steps of the per-item vjps run inside this one (Kernel::grad_out_items).
  std::vector<std::pair<const ItemsFinishFn<T>*, const Kernel<T>*>> finish;
  struct Accumulate {
    T* target;
    const T* scratch;
    std::int64_t size;
  };
  std::vector<Accumulate> accumulate;  // fan-out: add these scratch gradients after the wave
};

/// The values a node's kernel writes: its parts, or the node itself (`id`, which must
/// outlive the span).
std::span<const NodeId> outputs_of(const Node& node, const NodeId& id) {
  return node.parts.empty() ? std::span<const NodeId>(&id, 1) : std::span<const NodeId>(node.parts);
}

template <class T>
const KernelFn<T>& forward_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.forward_f32;
  else return op.forward_f64;
}

template <class T>
const ItemsFn<T>& forward_items_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.forward_items_f32;
  else return op.forward_items_f64;
}

template <class T>
const ItemsFn<T>& vjp_items_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.vjp_items_f32;
  else return op.vjp_items_f64;
}

template <class T>
const ItemsFinishFn<T>& finish_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.vjp_finish_f32;
  else return op.vjp_finish_f64;
}

template <class T>
const KernelFn<T>& vjp_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.vjp_f32;
  else return op.vjp_f64;
}

template <class T>
class TypedPlan final : public Plan::Impl {
 public:
  TypedPlan(const Graph& g, Params& params, PlanOptions opts);
  void rebind_input(NodeId id) override;
  void run_forward() override;
  void run_backward(const Tensor* seed) override;

 private:
  NumericError anomaly(const char* pass, const Step<T>& step, const std::string& what, std::int64_t index,
                       const Shape& shape) const;
  void* at(std::int64_t offset) const { return static_cast<std::byte*>(arena.get()) + offset; }
  void run_vjp(Step<T>& step);
  void accumulate(const Step<T>& step) const;
  void check_forward(const Step<T>& step) const;

  planning::ViewStore<T> views_;  // every step's kernel views
  std::vector<Step<T>, detail::PageAllocator<Step<T>>> steps_;  // forward order
  std::vector<Step<T>*> backward_steps_;  // backward order
  // The forward steps that run (the fused ones left out), by wave: forward_waves_ holds
  // each wave's start into forward_run_, then the end; a wave left empty is dropped.
  std::vector<Step<T>*> forward_run_;
  std::vector<std::size_t> forward_waves_;
  std::vector<char> forward_concurrent_;
  struct InputUse {
    Kernel<T>* kernel;
    std::size_t slot;
  };
  std::vector<std::vector<InputUse>> input_uses_;  // per input node: the kernel slots reading it
  std::vector<std::vector<std::size_t>> ready_after_wave_;  // per backward wave: parameters whose gradient is final
  // Every wave runs its nodes one after another (no wave is concurrent) and no vjp adds
  // into a fanned-out gradient: a pass is then one loop over its steps, in order. A tiny
  // network's step is a few hundred nanoseconds of such bookkeeping (XOR: the waves' loops
  // were 6 % of its instructions).
  bool forward_serial_ = false, backward_serial_ = false;
};

template <class T>
TypedPlan<T>::TypedPlan(const Graph& g, Params& params, PlanOptions opts) {
  graph = g;
  options = std::move(opts);
  // Anomaly detection checks each node's output and gradient after its own step: every
  // node runs alone (a pool run inside a convolution would go unchecked).
  if (options.detect_anomaly) options.fuse = false;
  dtype = dtype_of<T>();
  const std::size_t n = graph.size();

  // The passes.
  analysis = planning::analyse(graph, options, sizeof(T));
  training = options.mode == Mode::automatic ? analysis.training : options.mode == Mode::train;
  schedule = planning::schedule(graph, analysis, planning::declared_costs(graph, analysis));
  // Anomaly reports quote a node's inputs and incoming gradient after it ran: nothing in place.
  memory = planning::plan_memory(graph, analysis, schedule, sizeof(T), !options.detect_anomaly);
  const auto& shapes = analysis.shapes;
  // Epilogues, absorbed vjps, per-item followers: before the arena is sized, since nodes
  // run inside another's steps keep their buffers through its waves.
  planning::Fusions fusions;
  if (options.fuse) fusions = planning::fuse_epilogues(graph, analysis, schedule, memory);

  // Parameters and state come from the Params, checked against the graph.
  values.resize(n);
  for (NodeId id : graph.params()) {
    const Node& node = graph.node(id);
    if (!params.contains(node.name))
      throw GraphError("plan", fmt::format("no value for parameter '{}': initialise the parameters from this graph",
                                           node.name));
    Tensor& t = params.at(node.name);
    if (t.dtype() != dtype)
      throw GraphError("plan", fmt::format("parameter '{}' is {}, expected {}", node.name, t.dtype(), dtype));
    if (t.shape() != node.shape)
      throw ShapeError("plan", fmt::format("parameter '{}' has shape {}, the graph declares {}", node.name, t.shape(),
                                           node.shape));
    values[id] = t;
    param_ids.push_back(id);
  }
  for (NodeId id : graph.inputs())
    if (analysis.needed[id]) needed_inputs.push_back(id);

  // Sizes, the memory limits, one allocation.
  stats.unshared_bytes = memory.unshared_bytes;
  stats.arena_bytes = memory.arena_bytes;
  stats.in_place = memory.in_place_values + memory.in_place_grads;
  for (NodeId id : graph.params()) stats.param_bytes += values[id].nbytes();
  stats.forward_steps = static_cast<int>(schedule.forward.size());
  stats.backward_steps = static_cast<int>(schedule.backward.size());
  stats.forward_waves = static_cast<int>(schedule.forward_waves.size()) - 1;
  stats.backward_waves = static_cast<int>(schedule.backward_waves.size()) - 1;
  stats.concurrent_waves =
      static_cast<int>(std::count(schedule.forward_concurrent.begin(), schedule.forward_concurrent.end(), 1) +
                       std::count(schedule.backward_concurrent.begin(), schedule.backward_concurrent.end(), 1));
  auto human = [](std::size_t b) { return human_bytes(static_cast<double>(b)); };
  if (options.memory_limit > 0 && stats.arena_bytes > options.memory_limit)
    throw GraphError("plan", fmt::format("needs {} for batch {}, above the memory limit of {}: lower the batch size or "
                                         "raise the limit",
                                         human(stats.arena_bytes), options.batch, human(options.memory_limit)));
  {
    // One zeroed block, reserved from the process's memory budget first; every page is
    // touched now, not in the first step.
    const std::size_t bytes = std::max(stats.arena_bytes, kAlign);
    detail::reserve_memory(bytes, fmt::format("plan for batch {}", options.batch));
    void* block = nullptr;
    try {
      block = detail::allocate_zeroed(bytes);
    } catch (...) {
      detail::release_memory(bytes);
      throw;
    }
    arena = std::shared_ptr<void>(block, [bytes](void* q) {
      detail::free_zeroed(q, bytes);
      detail::release_memory(bytes);
    });
  }
  value_at.assign(n, -1);
  grad_at.assign(n, -1);
  for (NodeId id = 0; id < n; ++id) {
    if (memory.value_buf[id] >= 0)
      value_at[id] = static_cast<std::int64_t>(memory.buffers[static_cast<std::size_t>(memory.value_buf[id])].offset);
    if (memory.grad_buf[id] >= 0)
      grad_at[id] = static_cast<std::int64_t>(memory.buffers[static_cast<std::size_t>(memory.grad_buf[id])].offset);
  }

  // Kernels bound to their buffers, through the one binder. Each node's gradient targets
  // first, by node (backward order kept within a node): the first writer of a gradient
  // writes it, later ones write scratch the wave then adds.
  const auto targets = planning::group_by_node<const planning::GradTarget*>(n, [&](auto emit) {
    for (const auto& t : memory.targets) emit(t.node, &t);
  });
  auto value_slot = [&](NodeId v) -> planning::Slot {
    const Node& node = graph.node(v);
    void* data = nullptr;
    if (node.kind == NodeKind::param) data = values[v].raw();
    else if (value_at[v] >= 0) data = at(value_at[v]);
    return {data, shapes[v], node.index};
  };
  {
    std::size_t inputs = 0, outputs = 0, states = 0;
    for (NodeId id : schedule.forward) {
      const Node& node = graph.node(id);
      inputs += node.inputs.size();
      outputs += outputs_of(node, id).size();
      states += node.op->states.size();
    }
    views_.reserve(inputs, outputs, states);
  }
  steps_.resize(schedule.forward.size());
  input_uses_.assign(n, {});
  std::vector<Step<T>*> step_of(n, nullptr);
  planning::Binding b;  // one, its lists cleared and refilled: no allocation per node
  for (std::size_t s = 0; s < schedule.forward.size(); ++s) {
    const NodeId id = schedule.forward[s];
    const Node& node = graph.node(id);
    Step<T>& entry = steps_[s];
    step_of[id] = &entry;
    b.workspace = b.scratch = {};
    b.inputs.clear();
    b.outputs.clear();
    b.grad_outputs.clear();
    b.grad_inputs.clear();
    b.states.clear();
    for (NodeId in : node.inputs) b.inputs.push_back(value_slot(in));
    for (NodeId o : outputs_of(node, id)) {
      b.outputs.push_back(value_slot(o));
      b.grad_outputs.push_back({grad_at[o] >= 0 && schedule.bwave[id] >= 0 ? at(grad_at[o]) : nullptr, shapes[o], false});
    }
    for (NodeId in : node.inputs) b.grad_inputs.push_back({nullptr, shapes[in], false});
    for (const planning::GradTarget* t : targets.of(id)) {
      const NodeId in = node.inputs[t->slot];
      if (t->scratch < 0) {
        b.grad_inputs[t->slot].data = at(grad_at[in]);
      } else {
        void* scratch = at(static_cast<std::int64_t>(memory.buffers[static_cast<std::size_t>(t->scratch)].offset));
        b.grad_inputs[t->slot].data = scratch;
        entry.accumulate.push_back({static_cast<T*>(at(grad_at[in])), static_cast<const T*>(scratch), shapes[in].numel()});
      }
    }
    if (memory.work_buf[id] >= 0) {
      const auto& wb = memory.buffers[static_cast<std::size_t>(memory.work_buf[id])];
      b.workspace = {at(static_cast<std::int64_t>(wb.offset)), Shape{static_cast<std::int64_t>(wb.bytes / sizeof(T))},
                     false};
    }
    for (const StateSpec& st : node.op->states) {
      const std::string name = node.name + "." + st.name;
      if (!params.contains(name))
        throw GraphError("plan", fmt::format("no value for the state '{}': initialise the parameters from this graph",
                                             name));
      Tensor& t = params.at(name);
      if (t.dtype() != dtype) throw GraphError("plan", fmt::format("state '{}' is {}, expected {}", name, t.dtype(), dtype));
      b.states.push_back({t.raw(), t.shape(), false});
    }
    for (auto [buf, where] : {std::pair{memory.forward_scratch[id], &entry.forward_scratch},
                              std::pair{memory.backward_scratch[id], &entry.backward_scratch}})
      if (buf >= 0) {
        const auto& sb = memory.buffers[static_cast<std::size_t>(buf)];
        *where = static_cast<T*>(at(static_cast<std::int64_t>(sb.offset)));
        b.scratch.set_shape(Shape{static_cast<std::int64_t>(sb.bytes / sizeof(T))});
      }
    entry.node = id;
    entry.forward = &forward_of<T>(*node.op);
    entry.vjp = schedule.bwave[id] >= 0 ? &vjp_of<T>(*node.op) : nullptr;
    planning::bind_kernel(entry.kernel, views_, *node.op, node.attrs, node.name, b, training, analysis.vjp_runs[id] != 0,
                          options.seed, &step, &sample_offset);
    for (std::size_t i = 0; i < node.inputs.size(); ++i)
      if (graph.node(node.inputs[i]).kind == NodeKind::input) input_uses_[node.inputs[i]].push_back({&entry.kernel, i});
  }
  backward_steps_.reserve(schedule.backward.size());
  for (NodeId id : schedule.backward) backward_steps_.push_back(step_of[id]);

  // Epilogues: a bias_add and relu after a product run inside its forward pass, and a
  // per-item node after them inside both its passes.
  if (options.fuse) {
    for (NodeId id : schedule.forward) {
      if (fusions.fused_into[id] != n) step_of[id]->fused = true;
      Kernel<T>& k = step_of[id]->kernel;
      Epilogue<T>& e = k.epilogue_;
      if (fusions.bias[id] != n) e.bias = &step_of[fusions.bias[id]]->kernel.in_[1];
      e.act = fusions.act[id];
      if (const NodeId x = fusions.items[id]; x != n)
        k.after_items_.push_back({&forward_items_of<T>(*graph.node(x).op), &step_of[x]->kernel});
      for (NodeId c : fusions.vjp_items[id]) {
        k.before_grad_items_.push_back({&vjp_items_of<T>(*graph.node(c).op), &step_of[c]->kernel});
        step_of[c]->vjp_absorbed = true;
        if (const auto& finish = finish_of<T>(*graph.node(c).op))
          step_of[id]->finish.push_back({&finish, &step_of[c]->kernel});
      }
    }
    stats.fused = fusions.fused;
    for (NodeId id : schedule.backward)
      if (fusions.vjp_into[id] != n) {
        step_of[id]->vjp_absorbed = true;
        step_of[fusions.vjp_into[id]]->kernel.absorbed_ = graph.node(id).op->activation;
      }
    // A bias_add's vjp left to its producer's: the producer writes where the bias_add's
    // bound gradient of its input 1 points (rebound with it).
    for (NodeId id : schedule.backward)
      if (fusions.bias_vjp_into[id] != n) {
        step_of[id]->vjp_absorbed = true;
        step_of[fusions.bias_vjp_into[id]]->kernel.epilogue_.bias_grad = &step_of[id]->kernel.grad_in_[1];
      }
    stats.vjps_absorbed = fusions.vjps_absorbed;
    stats.backward_steps -= fusions.vjps_absorbed;
  }
  forward_run_.reserve(steps_.size());
  for (std::size_t w = 0; w + 1 < schedule.forward_waves.size(); ++w) {
    const std::size_t start = forward_run_.size();
    for (std::size_t s = schedule.forward_waves[w]; s < schedule.forward_waves[w + 1]; ++s)
      if (!steps_[s].fused) forward_run_.push_back(&steps_[s]);
    if (forward_run_.size() == start) continue;
    forward_waves_.push_back(start);
    forward_concurrent_.push_back(schedule.forward_concurrent[w] && forward_run_.size() - start > 1);
  }
  forward_waves_.push_back(forward_run_.size());
  forward_serial_ = std::find(forward_concurrent_.begin(), forward_concurrent_.end(), 1) == forward_concurrent_.end();
  backward_serial_ = std::find(schedule.backward_concurrent.begin(), schedule.backward_concurrent.end(), 1) ==
                         schedule.backward_concurrent.end() &&
                     std::all_of(backward_steps_.begin(), backward_steps_.end(),
                                 [](const Step<T>* s) { return s->accumulate.empty(); });

  // When each parameter's gradient is final: after the wave of its last writer (fan-out
  // sums are added at the end of a wave), for PlanOptions::on_gradient.
  ready_after_wave_.assign(schedule.backward_waves.empty() ? 0 : schedule.backward_waves.size() - 1, {});
  if (analysis.training && options.on_gradient) {
    for (std::size_t p = 0; p < param_ids.size(); ++p) {
      int last = -1;
      for (const auto& t : memory.targets) {
        if (graph.node(t.node).inputs[t.slot] != param_ids[p]) continue;
        // A vjp run inside another's step (per item, or a bias's) writes in that step's wave.
        const NodeId runs = !options.fuse                           ? t.node
                            : fusions.vjp_items_into[t.node] != n  ? fusions.vjp_items_into[t.node]
                            : fusions.bias_vjp_into[t.node] != n   ? fusions.bias_vjp_into[t.node]
                                                                   : t.node;
        last = std::max(last, schedule.bwave[runs]);
      }
      const std::size_t wave = last < 0 ? 0 : static_cast<std::size_t>(last - schedule.F);
      if (!ready_after_wave_.empty()) ready_after_wave_[std::min(wave, ready_after_wave_.size() - 1)].push_back(p);
    }
  }

  // Work per node, for profiles (only a profiling plan keeps them: Plan::profile).
  if (options.profile) {
    const planning::CostModel costs = planning::declared_costs(graph, analysis);
    profiles.reserve(schedule.forward.size());
    for (NodeId id : schedule.forward) {
      const Node& node = graph.node(id);
      NodeProfile p;
      p.node = id;
      p.name = node.name;
      p.op = node.op->name;
      double in_bytes = 0.0, out_bytes = 0.0;
      for (NodeId in : node.inputs) in_bytes += static_cast<double>(shapes[in].numel()) * sizeof(T);
      for (NodeId o : outputs_of(node, id))
        out_bytes += static_cast<double>(shapes[o].numel()) * sizeof(T);
      p.forward_flops = costs.flops(id, true);
      p.backward_flops = costs.flops(id, false);
      p.forward_bytes = in_bytes + out_bytes;
      if (options.fuse && fusions.fused_into[id] != n) p.fused_into = graph.node(fusions.fused_into[id]).name;
      if (options.fuse && fusions.vjp_into[id] != n)
        p.vjp_absorbed_by = graph.node(fusions.vjp_into[id]).name;
      if (options.fuse && fusions.vjp_items_into[id] != n)
        p.vjp_absorbed_by = graph.node(fusions.vjp_items_into[id]).name;
      if (options.fuse && fusions.bias_vjp_into[id] != n)
        p.vjp_absorbed_by = graph.node(fusions.bias_vjp_into[id]).name;
      p.backward_bytes = out_bytes + in_bytes * 2;  // gradient in; saved values and gradients out, at most
      profiles.push_back(std::move(p));
    }
  }

  // The same decisions, described for dumps.
  backward_steps.reserve(schedule.backward.size());
  for (NodeId id : schedule.backward) {
    const Node& node = graph.node(id);
    BackwardStep info;
    info.node = id;
    // A relu whose vjp its consumer does reads nothing: the consumer's saved values serve.
    if (!options.fuse || fusions.vjp_into[id] == n) {
      for (int i : node.op->saved_inputs) info.reads.push_back(node.inputs[static_cast<std::size_t>(i)]);
      if (node.op->saves_output) info.reads.push_back(id);
    }
    info.reads_workspace = memory.work_buf[id] >= 0;
    info.done_by = !options.fuse                        ? id
                   : fusions.vjp_into[id] != n          ? fusions.vjp_into[id]
                   : fusions.vjp_items_into[id] != n    ? fusions.vjp_items_into[id]
                   : fusions.bias_vjp_into[id] != n     ? fusions.bias_vjp_into[id]
                                                        : id;
    for (const planning::GradTarget* t : targets.of(id))
      (t->scratch < 0 ? info.writes : info.adds).push_back(node.inputs[t->slot]);
    backward_steps.push_back(std::move(info));
  }
}

template <class T>
void TypedPlan<T>::rebind_input(NodeId id) {
  const bool index = graph.node(id).index;
  for (const InputUse& u : input_uses_[id]) {
    if (index) u.kernel->index_in_[u.slot].data = values[id].template data<std::int64_t>();
    else u.kernel->in_[u.slot].data = values[id].template data<T>();
  }
}

template <class T>
void TypedPlan<T>::check_forward(const Step<T>& step) const {
  const Node& node = graph.node(step.node);
  for (std::size_t o = 0; o < step.kernel.out_.size(); ++o) {
    const auto& out = step.kernel.out_[o];
    if (!out.data) continue;  // an index output: integers are always finite
    const std::int64_t bad = first_non_finite(out.data, out.size);
    if (bad >= 0)
      throw anomaly("forward", step, fmt::format("produced {}", static_cast<double>(out.data[bad])), bad,
                    analysis.shapes[node.parts.empty() ? step.node : node.parts[o]]);
  }
}

template <class T>
void TypedPlan<T>::run_forward() {
  for (NodeId id : needed_inputs)
    if (!values[id].defined())
      throw GraphError("forward", fmt::format("input '{}' has no value: call set_input(\"{}\", ...) first",
                                              graph.node(id).name, graph.node(id).name));
  detail::FloatModeGuard mode;
  const auto& waves = forward_waves_;
  if (!options.detect_anomaly && !options.profile) {
    if (forward_serial_) {
      for (Step<T>* step : forward_run_) step->run_forward();
      forward_done = true;
      return;
    }
    for (std::size_t w = 0; w + 1 < waves.size(); ++w) {
      const std::size_t b = waves[w], e = waves[w + 1];
      if (forward_concurrent_[w])
        parallel_for(static_cast<std::int64_t>(e - b), 1, [&](std::int64_t i, std::int64_t) {
          forward_run_[b + static_cast<std::size_t>(i)]->run_forward();
        });
      else
        for (std::size_t s = b; s < e; ++s) forward_run_[s]->run_forward();  // nothing else per node
    }
    forward_done = true;
    return;
  }
  // Profiles and anomaly checks run one node at a time, in the same order (the bits are
  // the same: nodes of a wave are independent).
  if (options.detect_anomaly) {
    for (NodeId id : needed_inputs) {
      const Tensor& v = values[id];
      if (graph.node(id).index) continue;
      const std::int64_t bad = first_non_finite(v.template data<T>(), v.numel());
      const Shape& shape = analysis.shapes[id];
      if (bad >= 0)
        throw NumericError("forward", fmt::format("input '{}' holds {} at {}{}", graph.node(id).name, v.at(bad),
                                                  multi_index(bad, shape),
                                                  shape.rank() > 1
                                                      ? fmt::format(" (sample {} of the batch)", bad / (v.numel() / shape[0]))
                                                      : std::string()));
    }
  }
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    Step<T>& step = steps_[s];
    if (step.fused) continue;  // run inside the product before it, and timed there
    if (options.profile) {
      const auto t0 = std::chrono::steady_clock::now();
      step.run_forward();
      profiles[s].forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++profiles[s].forward_calls;
    } else {
      step.run_forward();
    }
    if (options.detect_anomaly) check_forward(step);
  }
  forward_done = true;
}

template <class T>
NumericError TypedPlan<T>::anomaly(const char* pass, const Step<T>& step, const std::string& what, std::int64_t index,
                                   const Shape& shape) const {
  const Node& node = graph.node(step.node);
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const auto& v = step.kernel.in_[i];
    const auto& iv = step.kernel.index_in_[i];
    inputs.push_back(fmt::format("'{}' {} {}", graph.node(node.inputs[i]).name, analysis.shapes[node.inputs[i]],
                                 iv.data ? value_range(iv.data, iv.size) : value_range(v.data, v.size)));
  }
  if (std::string(pass) == "backward")
    for (const auto& g : step.kernel.grad_out_)
      if (g.data) inputs.push_back(fmt::format("incoming gradient {}", value_range(g.data, g.size)));
  return NumericError(pass, fmt::format("node '{}' ({}{}) {} at {}; its inputs: {}", node.name, node.op->name,
                                        node.origin.empty() ? std::string() : ", declared at " + node.origin, what,
                                        multi_index(index, shape), fmt::join(inputs, "; ")));
}

template <class T>
void TypedPlan<T>::run_backward(const Tensor* seed) {
  if (!analysis.loss || !options.backward)
    throw GraphError("backward", "this plan was compiled without a loss: set the graph's loss or PlanOptions::loss");
  if (!forward_done) throw GraphError("backward", "no forward pass to differentiate: call forward() first");
  const NodeId loss = *analysis.loss;
  const Node& ln = graph.node(loss);
  const Shape& shape = analysis.shapes[loss];
  T* g = static_cast<T*>(at(grad_at[loss]));
  if (!seed) {
    if (shape.numel() != 1)
      throw GraphError("backward", fmt::format("loss '{}' is not a scalar (shape {}): pass a cotangent of that "
                                               "shape to backward(seed)",
                                               ln.name, shape));
    g[0] = T(1);
  } else {
    if (seed->shape() != shape)
      throw ShapeError("backward", fmt::format("seed of shape {} for '{}' of shape {}", seed->shape(), ln.name, shape));
    Tensor target = arena_tensor(grad_at[loss], shape, dtype);
    target.copy_from(*seed);
  }
  detail::FloatModeGuard mode;
  const bool plain = !options.detect_anomaly && !options.profile;
  if (plain && backward_serial_ && !options.on_gradient) {
    for (Step<T>* step : backward_steps_) step->run_vjp();
    return;
  }
  const auto& waves = schedule.backward_waves;
  for (std::size_t w = 0; w + 1 < waves.size(); ++w) {
    const std::size_t b = waves[w], e = waves[w + 1];
    if (plain && schedule.backward_concurrent[w])
      parallel_for(static_cast<std::int64_t>(e - b), 1, [&](std::int64_t i, std::int64_t) {
        Step<T>& step = *backward_steps_[b + static_cast<std::size_t>(i)];
        step.run_vjp();
      });
    else
      for (std::size_t s = b; s < e; ++s) run_vjp(*backward_steps_[s]);
    // Fan-out sums after the whole wave (a wave may hold both the vjp that writes a
    // gradient first and one that adds to it), in backward order.
    for (std::size_t s = b; s < e; ++s) accumulate(*backward_steps_[s]);
    if (options.on_gradient)
      for (std::size_t p : ready_after_wave_[w]) options.on_gradient(p);
  }
  if (options.on_gradient && waves.size() <= 1)
    for (std::size_t p = 0; p < param_ids.size(); ++p) options.on_gradient(p);
}

template <class T>
void TypedPlan<T>::run_vjp(Step<T>& step) {
  if (step.vjp_absorbed) return;  // its consumer's vjp did its work, and was timed
  if (options.profile) {
    const auto t0 = std::chrono::steady_clock::now();
    step.run_vjp();
    NodeProfile& p = profiles[static_cast<std::size_t>(&step - steps_.data())];
    p.backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++p.backward_calls;
  } else {
    step.run_vjp();
  }
  if (!options.detect_anomaly) return;
  const Node& node = graph.node(step.node);
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const auto& g = step.kernel.grad_in_[i];
    if (!g.data) continue;
    const std::int64_t bad = first_non_finite(g.data, g.size);
    if (bad >= 0)
      throw anomaly("backward", step,
                    fmt::format("its vjp produced {} in the gradient of '{}'", static_cast<double>(g.data[bad]),
                                graph.node(node.inputs[i]).name),
                    bad, analysis.shapes[node.inputs[i]]);
  }
}

template <class T>
void TypedPlan<T>::accumulate(const Step<T>& step) const {
  for (const auto& a : step.accumulate) {
    T* target = a.target;
    const T* scratch = a.scratch;
    parallel_for(a.size, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) target[i] += scratch[i];
    });
  }
}

}  // namespace

Plan::Plan(const Graph& graph, Params& params, PlanOptions options) {
  if (params.dtype() == DType::f32) impl_ = std::make_unique<TypedPlan<float>>(graph, params, std::move(options));
  else if (params.dtype() == DType::f64) impl_ = std::make_unique<TypedPlan<double>>(graph, params, std::move(options));
  else throw GraphError("plan", fmt::format("parameters are f32 or f64, not {}", params.dtype()));
}

Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

void Plan::set_input(std::string_view name, const Tensor& value) {
  const NodeId id = impl_->input_node(name);
  const Node& node = impl_->graph.node(id);
  const Shape& expected = impl_->shapes()[id];
  const DType want = node.index ? DType::i64 : impl_->dtype;
  if (value.dtype() != want)
    throw GraphError(fmt::format("input '{}'", name),
                     fmt::format("expected {} values{}, got {}", want, node.index ? " (indices)" : "", value.dtype()));
  if (value.shape() != expected)
    throw ShapeError(fmt::format("input '{}'", name),
                     fmt::format("expected shape {} (declared {}), got {}", expected, node.shape, value.shape()));
  impl_->values[id] = value;
  impl_->rebind_input(id);
  impl_->forward_done = false;
}

void Plan::forward() { impl_->run_forward(); }
void Plan::backward() { impl_->run_backward(nullptr); }
void Plan::backward(const Tensor& seed) { impl_->run_backward(&seed); }
void Plan::set_step(std::int64_t step) { impl_->step = step; }
void Plan::set_sample_offset(std::int64_t first) { impl_->sample_offset = first; }
std::int64_t Plan::step() const { return impl_->step; }
bool Plan::training() const { return impl_->training; }
const std::vector<std::string>& Plan::warnings() const { return impl_->analysis.warnings; }

Tensor Plan::value(std::string_view name) const { return impl_->value_of(impl_->graph.at(name)); }

Tensor Plan::Impl::value_of(NodeId id) const {
  const Node& node = graph.node(id);
  if (node.kind == NodeKind::input || node.kind == NodeKind::param) {
    if (!values[id].defined()) throw GraphError(fmt::format("input '{}' has no value", node.name));
    return values[id];
  }
  if (!node.parts.empty())
    throw GraphError(fmt::format("'{}' has {} outputs: read one of them ('{}', ...)", node.name, node.parts.size(),
                                 graph.node(node.parts.front()).name));
  if (!analysis.readable[id] || value_at[id] < 0)
    throw GraphError(fmt::format("value of '{}' is not kept after forward (its buffer is reused): list it in "
                                 "PlanOptions::keep",
                                 node.name));
  if (!forward_done) throw GraphError(fmt::format("value of '{}': call forward() first", node.name));
  return arena_tensor(value_at[id], shapes()[id], node.index ? DType::i64 : dtype);
}

// Once per training step: by id, not by name (a name lookup per step was 5 % of XOR's).
double Plan::loss() const {
  if (!impl_->analysis.loss) throw GraphError("plan has no loss");
  const NodeId id = *impl_->analysis.loss;
  // The usual case, a computed scalar, read from the arena without a Tensor handle (its
  // shape and shared owner were 4 % of XOR's step); anything else as value() reads it.
  const std::int64_t at = impl_->value_at[id];
  if (impl_->forward_done && at >= 0 && impl_->analysis.readable[id] && impl_->graph.node(id).parts.empty() &&
      impl_->analysis.shapes[id].rank() == 0) {
    const void* p = static_cast<const std::byte*>(impl_->arena.get()) + at;
    return impl_->dtype == DType::f32 ? static_cast<double>(*static_cast<const float*>(p)) : *static_cast<const double*>(p);
  }
  return impl_->value_of(id).item();
}

Tensor Plan::grad(std::string_view name) const {
  const NodeId id = impl_->graph.at(name);
  if (!impl_->analysis.grad_readable[id] || impl_->grad_at[id] < 0)
    throw GraphError(fmt::format("no gradient for '{}': gradients are kept for parameters and for inputs listed in "
                                 "PlanOptions::input_grads (or for every node with PlanOptions::keep_grads)",
                                 name));
  return impl_->arena_tensor(impl_->grad_at[id], impl_->shapes()[id], impl_->dtype);
}

std::vector<ParamSlot> Plan::parameters() const {
  std::vector<ParamSlot> out;
  for (NodeId id : impl_->param_ids) {
    const Node& node = impl_->graph.node(id);
    Tensor g = impl_->grad_at[id] >= 0 ? impl_->arena_tensor(impl_->grad_at[id], node.shape, impl_->dtype) : Tensor();
    out.push_back({node.name, impl_->values[id], g});
  }
  return out;
}

const Graph& Plan::graph() const { return impl_->graph; }
std::int64_t Plan::batch() const { return impl_->options.batch; }
DType Plan::dtype() const { return impl_->dtype; }
PlanStats Plan::stats() const { return impl_->stats; }
std::vector<NodeId> Plan::forward_order() const { return impl_->schedule.forward; }
std::vector<NodeId> Plan::backward_order() const { return impl_->schedule.backward; }
const std::vector<BackwardStep>& Plan::backward_steps() const { return impl_->backward_steps; }
const Shape& Plan::shape(NodeId node) const { return impl_->shapes().at(node); }

std::vector<NodeProfile> Plan::profile() const {
  if (!impl_->options.profile) throw GraphError("profile", "compile the plan with PlanOptions::profile to time its nodes");
  return impl_->profiles;
}

void Plan::reset_profile() {
  for (auto& p : impl_->profiles) {
    p.forward_seconds = p.backward_seconds = 0.0;
    p.forward_calls = p.backward_calls = 0;
  }
}

}  // namespace opgraph
