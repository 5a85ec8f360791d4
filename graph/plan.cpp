// Compiling a graph into a plan (schedule, liveness, one arena) and running it.
//
// Timeline: forward waves are numbered 0..F-1, backward waves F..; a wave holds nodes
// that depend only on earlier waves (one node per wave in a chain) and may run them at
// once. Every buffer (activation, workspace, gradient, fan-out scratch) gets the interval
// of waves during which it holds something still needed; buffers whose intervals do not
// overlap share memory (greedy by size, largest first).
#include <opgraph/graph/plan.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <new>
#include <numeric>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/registry.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

namespace {

constexpr int kForever = std::numeric_limits<int>::max();
constexpr std::size_t kAlign = 64;

struct BufferRequest {
  std::size_t bytes = 0;
  int first = 0;  // first step that writes it
  int last = 0;   // last step that reads it
  std::size_t offset = 0;
};

std::size_t round_up(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

/// Places every buffer at the lowest offset where it overlaps no buffer alive at the same
/// time, largest first: the tightest packing of the two placements here, but quadratic in
/// the number of buffers, so it serves graphs of up to kGreedyBuffers buffers.
std::size_t pack_greedy(std::vector<BufferRequest>& buffers) {
  std::vector<std::size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<std::size_t> placed;
  std::vector<std::pair<std::size_t, std::size_t>> busy;
  std::size_t total = 0;
  for (std::size_t i : order) {
    BufferRequest& b = buffers[i];
    if (b.bytes == 0) continue;
    busy.clear();
    for (std::size_t j : placed) {
      const BufferRequest& o = buffers[j];
      if (o.first <= b.last && b.first <= o.last) busy.emplace_back(o.offset, o.offset + o.bytes);
    }
    std::sort(busy.begin(), busy.end());
    std::size_t offset = 0;
    for (auto [begin, end] : busy) {
      if (offset + b.bytes <= begin) break;
      offset = std::max(offset, end);
    }
    b.offset = offset;
    total = std::max(total, offset + b.bytes);
    placed.push_back(i);
  }
  return total;
}

constexpr std::size_t kGreedyBuffers = 4096;

/// Places every buffer by simulating an allocator over the timeline: buffers are taken in
/// order of their first wave (larger first within a wave); before a wave, every buffer
/// whose last wave has passed is freed (neighbouring free blocks merge); a new buffer
/// takes the smallest free block that holds it (best fit, lowest offset on ties), or the
/// top of the arena. O(n log n) in the number of buffers, so a 100 000-node graph plans in
/// well under a second; its arenas are up to ~10 % larger than the greedy's.
std::size_t pack_timeline(std::vector<BufferRequest>& buffers) {
  std::vector<std::size_t> order;
  order.reserve(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].bytes > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (buffers[a].first != buffers[b].first) return buffers[a].first < buffers[b].first;
    return buffers[a].bytes > buffers[b].bytes;
  });
  std::map<std::size_t, std::size_t> free_by_offset;                 // offset -> bytes
  std::set<std::pair<std::size_t, std::size_t>> free_by_size;        // (bytes, offset)
  using Live = std::pair<int, std::size_t>;                          // (last wave, buffer)
  std::priority_queue<Live, std::vector<Live>, std::greater<>> live;
  std::size_t top = 0;
  auto add_free = [&](std::size_t offset, std::size_t bytes) {
    auto next = free_by_offset.lower_bound(offset);
    if (next != free_by_offset.end() && offset + bytes == next->first) {  // merge with the block after
      bytes += next->second;
      free_by_size.erase({next->second, next->first});
      next = free_by_offset.erase(next);
    }
    if (next != free_by_offset.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {  // and with the block before
        free_by_size.erase({prev->second, prev->first});
        offset = prev->first;
        bytes += prev->second;
        free_by_offset.erase(prev);
      }
    }
    if (offset + bytes == top) {  // a free block at the top gives the space back
      top = offset;
      return;
    }
    free_by_offset.emplace(offset, bytes);
    free_by_size.emplace(bytes, offset);
  };
  for (std::size_t i : order) {
    BufferRequest& b = buffers[i];
    while (!live.empty() && live.top().first < b.first) {
      const BufferRequest& done = buffers[live.top().second];
      live.pop();
      add_free(done.offset, done.bytes);
    }
    const auto fit = free_by_size.lower_bound({b.bytes, 0});
    if (fit != free_by_size.end()) {
      const auto [bytes, offset] = *fit;
      free_by_size.erase(fit);
      free_by_offset.erase(offset);
      b.offset = offset;
      if (bytes > b.bytes) {
        free_by_offset.emplace(offset + b.bytes, bytes - b.bytes);
        free_by_size.emplace(bytes - b.bytes, offset + b.bytes);
      }
    } else {
      b.offset = top;
      top += b.bytes;
    }
    live.emplace(b.last, i);
  }
  std::size_t total = 0;
  for (std::size_t i : order) total = std::max(total, buffers[i].offset + buffers[i].bytes);
  return total;
}

/// The arena layout: the greedy for graphs of ordinary size, the timeline beyond. Either
/// way, buffers alive in the same wave never share memory. Returns the arena size.
std::size_t pack_buffers(std::vector<BufferRequest>& buffers) {
  return buffers.size() <= kGreedyBuffers ? pack_greedy(buffers) : pack_timeline(buffers);
}

std::string human_bytes(std::size_t bytes) { return opgraph::human_bytes(static_cast<double>(bytes)); }

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

/// The first non-finite element of a buffer, or -1.
template <class T>
std::int64_t first_non_finite(const T* data, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i])) return i;
  return -1;
}

template <class T>
std::string value_range(const T* data, std::int64_t n) {
  if (n == 0) return "empty";
  double lo = data[0], hi = data[0];
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) {
      ++bad;
      continue;
    }
    lo = std::min<double>(lo, data[i]);
    hi = std::max<double>(hi, data[i]);
  }
  return fmt::format("min {:.4g} max {:.4g}{}", lo, hi, bad ? fmt::format(" ({} non-finite)", bad) : std::string());
}

template <class T>
View<T> make_view(T* data, const Shape& shape) {
  View<T> v;
  v.data = data;
  v.size = shape.numel();
  v.rank = shape.rank();
  for (int i = 0; i < shape.rank(); ++i) v.dims[i] = shape[i];
  return v;
}

}  // namespace

struct Plan::Impl {
  Graph graph;
  PlanOptions options;
  DType dtype = DType::f32;
  std::vector<Shape> shapes;       // per node, N bound
  std::vector<NodeId> forward_nodes;
  std::vector<NodeId> backward_nodes;
  std::vector<BackwardStep> backward_steps;
  std::vector<NodeProfile> profiles;  // forward order; filled when options.profile
  std::optional<NodeId> loss;
  std::vector<char> readable;       // value readable after forward()
  std::vector<std::int64_t> value_at;  // arena offset of an op node's value, or -1
  std::vector<std::int64_t> grad_at;   // arena offset of a node's gradient, or -1
  std::vector<char> grad_readable;     // parameters and input_grads
  std::vector<Tensor> values;          // inputs: bound tensors; params: the Params' tensors
  std::vector<char> needed;
  std::vector<NodeId> needed_inputs;  // inputs the plan reads, checked at each forward()
  std::shared_ptr<void> arena;
  PlanStats stats;
  bool forward_done = false;

  virtual ~Impl() = default;
  virtual void rebind_input(NodeId id) = 0;
  virtual void run_forward() = 0;
  virtual void run_backward(const Tensor* seed) = 0;

  Tensor arena_tensor(std::int64_t offset, const Shape& shape) const {
    return Tensor::view(static_cast<std::byte*>(arena.get()) + offset, shape, dtype, arena);
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
  struct Accumulate {
    T* target;
    const T* scratch;
    std::int64_t size;
  };
  std::vector<Accumulate> accumulate;  // fan-out: add these scratch gradients after the vjp
};

template <class T>
const KernelFn<T>& forward_of(const OpDef& op) {
  if constexpr (std::is_same_v<T, float>) return op.forward_f32;
  else return op.forward_f64;
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
  T* at(std::int64_t offset) const { return reinterpret_cast<T*>(static_cast<std::byte*>(arena.get()) + offset); }

  void run_vjp(Step<T>& step);
  void accumulate(const Step<T>& step) const;

  std::vector<Step<T>> steps_;                 // forward order
  std::vector<Step<T>*> backward_steps_;       // backward order
  std::vector<std::vector<View<const T>*>> input_uses_;  // per node: kernel views reading that input
  // Waves: steps [w[i], w[i+1]) of the forward (backward) order depend only on earlier
  // waves. A wave with enough work in more than one node runs its nodes at once.
  std::vector<std::size_t> forward_waves_, backward_waves_;
  // Such a wave is one parallel_for with a chunk per node; each node's kernels may split
  // further (nested loops share the one TBB pool).
  std::vector<char> forward_concurrent_, backward_concurrent_;
};

/// A wave runs its nodes at once when it holds at least two and this much work (about
/// ten microseconds on one core): below it, handing nodes to threads costs more than it
/// saves. Decided from shapes at compile time, so the same for any thread count.
constexpr double kConcurrentWaveFlops = 1e6;

template <class T>
TypedPlan<T>::TypedPlan(const Graph& g, Params& params, PlanOptions opts) {
  graph = g;
  options = std::move(opts);
  dtype = dtype_of<T>();
  const std::size_t n = graph.size();
  if (options.batch < 1) throw GraphError("plan", fmt::format("batch must be at least 1, got {}", options.batch));

  // Shapes, parameters.
  shapes.resize(n);
  values.resize(n);
  for (NodeId id = 0; id < n; ++id) {
    const Node& node = graph.node(id);
    shapes[id] = node.shape.bind(options.batch);
    if (shapes[id].rank() > kMaxRank)
      throw ShapeError("node '" + node.name + "'", fmt::format("shape {} has more than {} dimensions", shapes[id], kMaxRank));
    {
      std::int64_t count = 0;
      if (!mul_fits(checked_product(shapes[id].dims(), "node '" + node.name + "'"), sizeof(T), &count))
        throw ShapeError(node.origin.empty() ? "node '" + node.name + "'" : node.origin,
                         fmt::format("shape {} at batch {} needs more than 2^62 bytes", node.shape, options.batch));
    }
    if (node.kind == NodeKind::param) {
      if (!params.contains(node.name))
        throw GraphError("plan", fmt::format("no value for parameter '{}': initialise the parameters from this graph",
                                             node.name));
      Tensor& t = params.at(node.name);
      if (t.dtype() != dtype)
        throw GraphError("plan", fmt::format("parameter '{}' is {}, expected {}", node.name, t.dtype(), dtype));
      if (t.shape() != node.shape)
        throw ShapeError("plan", fmt::format("parameter '{}' has shape {}, the graph declares {}", node.name,
                                             t.shape(), node.shape));
      values[id] = t;
    }
  }

  // Which nodes matter: ancestors of the outputs, the loss and the kept nodes.
  if (!options.loss.empty()) loss = graph.at(options.loss);
  else if (graph.loss()) loss = graph.loss();
  const bool training = options.backward && loss.has_value();
  readable.assign(n, options.keep_all ? 1 : 0);
  for (NodeId id : graph.outputs()) readable[id] = 1;
  if (loss) readable[*loss] = 1;
  for (const auto& name : options.keep) readable[graph.at(name)] = 1;
  const bool any_target = std::find(readable.begin(), readable.end(), 1) != readable.end();
  const std::vector<NodeId> order = graph.topological_order();
  needed.assign(n, any_target ? 0 : 1);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const NodeId id = *it;
    if (readable[id]) needed[id] = 1;
    if (!needed[id]) continue;
    for (NodeId in : graph.node(id).inputs) needed[in] = 1;
  }
  for (NodeId id : graph.inputs())
    if (needed[id]) needed_inputs.push_back(id);

  // Which gradients flow: requires_grad forward from parameters and requested inputs,
  // on_path backward from the loss through differentiable inputs only.
  std::vector<char> requires_grad(n, 0), on_path(n, 0);
  grad_readable.assign(n, 0);
  for (const auto& name : options.input_grads) {
    const NodeId id = input_node(name);
    requires_grad[id] = 1;
    grad_readable[id] = 1;
  }
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (node.kind == NodeKind::param) requires_grad[id] = grad_readable[id] = 1;
    if (node.kind != NodeKind::op) continue;
    for (std::size_t i = 0; i < node.inputs.size(); ++i)
      if (node.op->inputs[i].differentiable && requires_grad[node.inputs[i]]) requires_grad[id] = 1;
  }
  if (training) {
    on_path[*loss] = 1;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const Node& node = graph.node(*it);
      if (!on_path[*it] || node.kind != NodeKind::op) continue;
      for (std::size_t i = 0; i < node.inputs.size(); ++i)
        if (node.op->inputs[i].differentiable) on_path[node.inputs[i]] = 1;
    }
  }
  auto vjp_runs = [&](NodeId id) {
    return training && graph.node(id).kind == NodeKind::op && requires_grad[id] && on_path[id] && needed[id];
  };

  // The schedule: waves of nodes that depend only on earlier waves, in order. The nodes of
  // one wave may run at the same time (independent branches), so time is counted in waves:
  // a buffer lives from the wave that writes it to the last wave that reads it, and nodes
  // of one wave never share memory. A chain has one node per wave. The waves depend on the
  // graph alone, never on the thread count.
  std::vector<int> fstep(n, -1), bstep(n, -1);  // the wave of each node's forward / vjp
  for (NodeId id : order) {
    if (!needed[id] || graph.node(id).kind != NodeKind::op) continue;
    int wave = 0;
    for (NodeId in : graph.node(id).inputs)
      if (fstep[in] >= 0) wave = std::max(wave, fstep[in] + 1);
    fstep[id] = wave;
    forward_nodes.push_back(id);
  }
  std::stable_sort(forward_nodes.begin(), forward_nodes.end(),
                   [&](NodeId a, NodeId b) { return fstep[a] < fstep[b]; });
  const int F = forward_nodes.empty() ? 0 : fstep[forward_nodes.back()] + 1;
  // Backward: a vjp runs once every vjp that adds to its node's gradient has run, one wave
  // after the latest of them. Reverse forward order visits consumers first.
  for (auto it = forward_nodes.rbegin(); it != forward_nodes.rend(); ++it) {
    if (!vjp_runs(*it)) continue;
    const Node& node = graph.node(*it);
    if (!node.op->has_vjp())
      throw GraphError(node.origin.empty() ? "node '" + node.name + "'" : node.origin,
                       fmt::format("op '{}' has no vjp: cannot differentiate through it", node.op->name));
    int wave = F;
    for (NodeId c : graph.consumers(*it))
      if (bstep[c] >= 0) wave = std::max(wave, bstep[c] + 1);
    bstep[*it] = wave;
    backward_nodes.push_back(*it);
  }
  std::stable_sort(backward_nodes.begin(), backward_nodes.end(),
                   [&](NodeId a, NodeId b) { return bstep[a] < bstep[b]; });
  auto wave_starts = [](const std::vector<NodeId>& nodes, const std::vector<int>& wave) {
    std::vector<std::size_t> starts;
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (i == 0 || wave[nodes[i]] != wave[nodes[i - 1]]) starts.push_back(i);
    starts.push_back(nodes.size());
    return starts;
  };
  forward_waves_ = wave_starts(forward_nodes, fstep);
  backward_waves_ = wave_starts(backward_nodes, bstep);

  // Buffer requests.
  std::vector<BufferRequest> buffers;
  auto request = [&](const Shape& shape, int first, int last) {
    buffers.push_back({round_up(checked_bytes(shape.numel(), sizeof(T), "plan buffer")), first, last, 0});
    return static_cast<std::int64_t>(buffers.size() - 1);
  };
  std::vector<std::int64_t> value_buf(n, -1), work_buf(n, -1), grad_buf(n, -1);
  for (NodeId id : forward_nodes) {
    const Node& node = graph.node(id);
    int last = fstep[id];
    for (NodeId c : graph.consumers(id)) {
      if (!needed[c]) continue;
      last = std::max(last, fstep[c]);
      if (bstep[c] < 0) continue;
      const Node& cn = graph.node(c);
      for (std::size_t i = 0; i < cn.inputs.size(); ++i)
        if (cn.inputs[i] == id && cn.op->saves_input(static_cast<int>(i))) last = std::max(last, bstep[c]);
    }
    if (bstep[id] >= 0 && node.op->saves_output) last = std::max(last, bstep[id]);
    if (readable[id]) last = kForever;
    value_buf[id] = request(shapes[id], fstep[id], last);
    if (node.op->workspace) {
      std::vector<Shape> in_shapes;
      for (NodeId in : node.inputs) in_shapes.push_back(shapes[in]);
      const Shape ws = node.op->workspace(ShapeContext(*node.op, in_shapes, node.attrs));
      work_buf[id] = request(ws, fstep[id], bstep[id] >= 0 ? bstep[id] : fstep[id]);
    }
  }
  // Gradients: parameters and requested inputs keep theirs for the optimizer; an op
  // node's gradient lives from its first writer (or the seed) to its own vjp.
  for (NodeId id = 0; id < n; ++id) {
    if (!training) break;
    const Node& node = graph.node(id);
    if (grad_readable[id] || (loss && id == *loss && node.kind != NodeKind::op)) {
      grad_buf[id] = request(shapes[id], 0, kForever);
    } else if (bstep[id] >= 0) {
      int first = id == *loss ? F : kForever;
      for (NodeId c : graph.consumers(id))
        if (bstep[c] >= 0) first = std::min(first, bstep[c]);
      grad_buf[id] = request(shapes[id], first, bstep[id]);
    }
  }
  // Fan-out: the first vjp (in backward order) to reach a gradient writes it, later ones
  // write scratch that the engine adds. Scratch lives for its one step.
  struct Target {
    NodeId step_node;
    std::size_t slot;
    std::int64_t scratch;  // -1: writes the gradient directly
  };
  std::vector<Target> targets;
  {
    std::vector<char> written(n, 0);
    for (NodeId c : backward_nodes) {
      const Node& cn = graph.node(c);
      for (std::size_t i = 0; i < cn.inputs.size(); ++i) {
        const NodeId in = cn.inputs[i];
        if (!cn.op->inputs[i].differentiable || grad_buf[in] < 0) continue;
        if (!written[in]) {
          written[in] = 1;
          targets.push_back({c, i, -1});
        } else {
          targets.push_back({c, i, request(shapes[in], bstep[c], bstep[c])});
        }
      }
    }
  }

  // Sizes, the memory limit, one allocation.
  for (const auto& b : buffers)
    stats.unshared_bytes = static_cast<std::size_t>(checked_add(static_cast<std::int64_t>(stats.unshared_bytes),
                                                                static_cast<std::int64_t>(b.bytes), "plan"));
  stats.arena_bytes = pack_buffers(buffers);
  for (NodeId id : graph.params()) stats.param_bytes += values[id].nbytes();
  stats.forward_steps = static_cast<int>(forward_nodes.size());
  stats.backward_steps = static_cast<int>(backward_nodes.size());
  stats.forward_waves = static_cast<int>(forward_waves_.size()) - 1;
  stats.backward_waves = static_cast<int>(backward_waves_.size()) - 1;
  if (options.memory_limit > 0 && stats.arena_bytes > options.memory_limit)
    throw GraphError("plan", fmt::format("needs {} for batch {}, above the memory limit of {}: lower the batch "
                                         "size or raise the limit",
                                         human_bytes(stats.arena_bytes), options.batch,
                                         human_bytes(options.memory_limit)));
  {
    // One zeroed block, reserved from the process's memory budget first; every page is
    // touched now, not in the first step.
    const std::size_t bytes = std::max(stats.arena_bytes, kAlign);
    detail::reserve_memory(bytes, fmt::format("plan for batch {}", options.batch));
    void* block = nullptr;
    try {
      block = ::operator new(bytes, std::align_val_t{kAlign});
    } catch (...) {
      detail::release_memory(bytes);
      throw;
    }
    std::memset(block, 0, bytes);
    arena = std::shared_ptr<void>(block, [bytes](void* q) {
      ::operator delete(q, std::align_val_t{kAlign});
      detail::release_memory(bytes);
    });
  }
  value_at.assign(n, -1);
  grad_at.assign(n, -1);
  for (NodeId id = 0; id < n; ++id) {
    if (value_buf[id] >= 0) value_at[id] = static_cast<std::int64_t>(buffers[static_cast<std::size_t>(value_buf[id])].offset);
    if (grad_buf[id] >= 0) grad_at[id] = static_cast<std::int64_t>(buffers[static_cast<std::size_t>(grad_buf[id])].offset);
  }

  // Kernels bound to their buffers.
  steps_.resize(forward_nodes.size());
  input_uses_.assign(n, {});
  std::vector<Step<T>*> step_of(n, nullptr);
  for (std::size_t s = 0; s < forward_nodes.size(); ++s) {
    const NodeId id = forward_nodes[s];
    const Node& node = graph.node(id);
    Step<T>& step = steps_[s];
    step_of[id] = &step;
    step.node = id;
    step.forward = &forward_of<T>(*node.op);
    step.vjp = bstep[id] >= 0 ? &vjp_of<T>(*node.op) : nullptr;
    Kernel<T>& k = step.kernel;
    k.num_inputs_ = static_cast<int>(node.inputs.size());
    k.op_ = node.op;
    k.attrs_ = &node.attrs;
    k.node_name_ = &node.name;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      const NodeId in = node.inputs[i];
      const Node& inn = graph.node(in);
      T* data = nullptr;
      if (inn.kind == NodeKind::param) data = values[in].template data<T>();
      else if (inn.kind == NodeKind::op) data = at(value_at[in]);
      k.in_[i] = make_view<const T>(data, shapes[in]);
      if (inn.kind == NodeKind::input) input_uses_[in].push_back(&k.in_[i]);
    }
    k.out_ = make_view<T>(at(value_at[id]), shapes[id]);
    if (work_buf[id] >= 0) {
      const auto& wb = buffers[static_cast<std::size_t>(work_buf[id])];
      k.workspace_ = make_view<T>(at(static_cast<std::int64_t>(wb.offset)), Shape{static_cast<std::int64_t>(wb.bytes / sizeof(T))});
    }
    if (grad_at[id] >= 0 && bstep[id] >= 0) k.grad_out_ = make_view<const T>(at(grad_at[id]), shapes[id]);
  }
  for (const auto& t : targets) {
    Step<T>& step = *step_of[t.step_node];
    const NodeId in = graph.node(t.step_node).inputs[t.slot];
    T* grad = at(grad_at[in]);
    if (t.scratch < 0) {
      step.kernel.grad_in_[t.slot] = make_view<T>(grad, shapes[in]);
    } else {
      T* scratch = at(static_cast<std::int64_t>(buffers[static_cast<std::size_t>(t.scratch)].offset));
      step.kernel.grad_in_[t.slot] = make_view<T>(scratch, shapes[in]);
      step.accumulate.push_back({grad, scratch, shapes[in].numel()});
    }
  }
  for (NodeId id : backward_nodes) backward_steps_.push_back(step_of[id]);
  // The gradient targets of each node's vjp, by node (targets are in backward order).
  std::vector<std::vector<const Target*>> targets_of(n);
  for (const auto& t : targets) targets_of[t.step_node].push_back(&t);

  // Work per node, for profiles.
  for (NodeId id : forward_nodes) {
    const Node& node = graph.node(id);
    NodeProfile p;
    p.node = id;
    p.name = node.name;
    p.op = node.op->name;
    std::vector<Shape> in_shapes;
    double in_bytes = 0.0;
    for (NodeId in : node.inputs) {
      in_shapes.push_back(shapes[in]);
      in_bytes += static_cast<double>(shapes[in].numel() * static_cast<std::int64_t>(sizeof(T)));
    }
    const double out_bytes = static_cast<double>(shapes[id].numel() * static_cast<std::int64_t>(sizeof(T)));
    const OpCost cost = node.op->cost ? node.op->cost(ShapeContext(*node.op, in_shapes, node.attrs), shapes[id])
                                      : OpCost{static_cast<double>(shapes[id].numel()), 2.0 * static_cast<double>(shapes[id].numel())};
    p.forward_flops = cost.forward;
    // A vjp computes only the gradients someone needs (matmul skips dx for an input x).
    int differentiable = 0, needed = 0;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (!node.op->inputs[i].differentiable) continue;
      ++differentiable;
      needed += std::any_of(targets_of[id].begin(), targets_of[id].end(), [&](const Target* t) { return t->slot == i; });
    }
    p.backward_flops = differentiable ? cost.backward * needed / differentiable : 0.0;
    p.forward_bytes = in_bytes + out_bytes;
    p.backward_bytes = out_bytes + in_bytes * 2;  // gradient in; saved values and gradients out, at most
    profiles.push_back(std::move(p));
  }

  // Which waves run their nodes at once.
  auto concurrent = [&](const std::vector<std::size_t>& waves, const std::vector<NodeId>& nodes, bool forward) {
    std::vector<char> flags;
    for (std::size_t w = 0; w + 1 < waves.size(); ++w) {
      double work = 0.0;
      for (std::size_t i = waves[w]; i < waves[w + 1]; ++i) {
        const auto s = static_cast<std::size_t>(step_of[nodes[i]] - steps_.data());
        work += forward ? profiles[s].forward_flops : profiles[s].backward_flops;
      }
      flags.push_back(waves[w + 1] - waves[w] > 1 && work >= kConcurrentWaveFlops);
    }
    return flags;
  };
  forward_concurrent_ = concurrent(forward_waves_, forward_nodes, true);
  backward_concurrent_ = concurrent(backward_waves_, backward_nodes, false);
  stats.concurrent_waves = static_cast<int>(std::count(forward_concurrent_.begin(), forward_concurrent_.end(), 1) +
                                            std::count(backward_concurrent_.begin(), backward_concurrent_.end(), 1));

  // The same decisions, described for dumps.
  for (NodeId id : backward_nodes) {
    const Node& node = graph.node(id);
    BackwardStep info;
    info.node = id;
    for (int i : node.op->saved_inputs) info.reads.push_back(node.inputs[static_cast<std::size_t>(i)]);
    if (node.op->saves_output) info.reads.push_back(id);
    info.reads_workspace = work_buf[id] >= 0;
    for (const Target* t : targets_of[id]) (t->scratch < 0 ? info.writes : info.adds).push_back(node.inputs[t->slot]);
    backward_steps.push_back(std::move(info));
  }
}

template <class T>
void TypedPlan<T>::rebind_input(NodeId id) {
  const T* data = values[id].template data<T>();
  for (View<const T>* v : input_uses_[id]) v->data = data;
}

template <class T>
void TypedPlan<T>::run_forward() {
  for (NodeId id : needed_inputs)
    if (!values[id].defined())
      throw GraphError("forward", fmt::format("input '{}' has no value: call set_input(\"{}\", ...) first",
                                              graph.node(id).name, graph.node(id).name));
  detail::FloatModeGuard mode;
  if (!options.detect_anomaly && !options.profile) {
    for (std::size_t w = 0; w + 1 < forward_waves_.size(); ++w) {
      const std::size_t b = forward_waves_[w], e = forward_waves_[w + 1];
      if (forward_concurrent_[w])
        parallel_for(static_cast<std::int64_t>(e - b), 1, [&](std::int64_t i, std::int64_t) {
          Step<T>& step = steps_[b + static_cast<std::size_t>(i)];
          (*step.forward)(step.kernel);
        });
      else
        for (std::size_t s = b; s < e; ++s) (*steps_[s].forward)(steps_[s].kernel);  // nothing else per node
    }
    forward_done = true;
    return;
  }
  // Profiles and anomaly checks run one node at a time, in the same order (the bits are
  // the same: nodes of a wave are independent).
  if (options.detect_anomaly) {
    for (NodeId id : needed_inputs) {
      const Tensor& v = values[id];
      const std::int64_t bad = first_non_finite(v.template data<T>(), v.numel());
      if (bad >= 0)
        throw NumericError("forward", fmt::format("input '{}' holds {} at {}{}", graph.node(id).name, v.at(bad),
                                                  multi_index(bad, shapes[id]),
                                                  shapes[id].rank() > 1
                                                      ? fmt::format(" (sample {} of the batch)", bad / (v.numel() / shapes[id][0]))
                                                      : std::string()));
    }
  }
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    Step<T>& step = steps_[s];
    if (options.profile) {
      const auto t0 = std::chrono::steady_clock::now();
      (*step.forward)(step.kernel);
      profiles[s].forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++profiles[s].forward_calls;
    } else {
      (*step.forward)(step.kernel);
    }
    if (options.detect_anomaly) {
      const auto& out = step.kernel.out_;
      const std::int64_t bad = first_non_finite(out.data, out.size);
      if (bad >= 0)
        throw anomaly("forward", step, fmt::format("produced {}", static_cast<double>(out.data[bad])), bad, shapes[step.node]);
    }
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
    inputs.push_back(fmt::format("'{}' {} {}", graph.node(node.inputs[i]).name, shapes[node.inputs[i]],
                                 value_range(v.data, v.size)));
  }
  if (std::string(pass) == "backward")
    inputs.push_back(fmt::format("incoming gradient {}", value_range(step.kernel.grad_out_.data, step.kernel.grad_out_.size)));
  return NumericError(pass, fmt::format("node '{}' ({}{}) {} at {}; its inputs: {}", node.name, node.op->name,
                                        node.origin.empty() ? std::string() : ", declared at " + node.origin, what,
                                        multi_index(index, shape), fmt::join(inputs, "; ")));
}

template <class T>
void TypedPlan<T>::run_backward(const Tensor* seed) {
  if (!loss || !options.backward)
    throw GraphError("backward", "this plan was compiled without a loss: set the graph's loss or PlanOptions::loss");
  if (!forward_done) throw GraphError("backward", "no forward pass to differentiate: call forward() first");
  const Node& ln = graph.node(*loss);
  const Shape& shape = shapes[*loss];
  T* g = at(grad_at[*loss]);
  if (!seed) {
    if (shape.numel() != 1)
      throw GraphError("backward", fmt::format("loss '{}' is not a scalar (shape {}): pass a cotangent of that "
                                               "shape to backward(seed)",
                                               ln.name, shape));
    g[0] = T(1);
  } else {
    if (seed->shape() != shape)
      throw ShapeError("backward", fmt::format("seed of shape {} for '{}' of shape {}", seed->shape(), ln.name, shape));
    Tensor target = arena_tensor(grad_at[*loss], shape);
    target.copy_from(*seed);
  }
  detail::FloatModeGuard mode;
  const bool plain = !options.detect_anomaly && !options.profile;
  for (std::size_t w = 0; w + 1 < backward_waves_.size(); ++w) {
    const std::size_t b = backward_waves_[w], e = backward_waves_[w + 1];
    if (plain && backward_concurrent_[w])
      parallel_for(static_cast<std::int64_t>(e - b), 1, [&](std::int64_t i, std::int64_t) {
        Step<T>& step = *backward_steps_[b + static_cast<std::size_t>(i)];
        (*step.vjp)(step.kernel);
      });
    else
      for (std::size_t s = b; s < e; ++s) run_vjp(*backward_steps_[s]);
    // Fan-out sums after the whole wave (a wave may hold both the vjp that writes a
    // gradient first and one that adds to it), in backward order.
    for (std::size_t s = b; s < e; ++s) accumulate(*backward_steps_[s]);
  }
}

template <class T>
void TypedPlan<T>::run_vjp(Step<T>& step) {
  if (options.profile) {
    const auto t0 = std::chrono::steady_clock::now();
    (*step.vjp)(step.kernel);
    NodeProfile& p = profiles[static_cast<std::size_t>(&step - steps_.data())];
    p.backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++p.backward_calls;
  } else {
    (*step.vjp)(step.kernel);
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
                    bad, shapes[node.inputs[i]]);
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
  else impl_ = std::make_unique<TypedPlan<double>>(graph, params, std::move(options));
}

Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

void Plan::set_input(std::string_view name, const Tensor& value) {
  const NodeId id = impl_->input_node(name);
  const Shape& expected = impl_->shapes[id];
  if (value.dtype() != impl_->dtype)
    throw GraphError(fmt::format("input '{}'", name), fmt::format("expected {} values, got {}", impl_->dtype, value.dtype()));
  if (value.shape() != expected)
    throw ShapeError(fmt::format("input '{}'", name),
                     fmt::format("expected shape {} (declared {}), got {}", expected, impl_->graph.node(id).shape,
                                 value.shape()));
  impl_->values[id] = value;
  impl_->rebind_input(id);
  impl_->forward_done = false;
}

void Plan::forward() { impl_->run_forward(); }
void Plan::backward() { impl_->run_backward(nullptr); }
void Plan::backward(const Tensor& seed) { impl_->run_backward(&seed); }

Tensor Plan::value(std::string_view name) const {
  const NodeId id = impl_->graph.at(name);
  const Node& node = impl_->graph.node(id);
  if (node.kind != NodeKind::op) {
    if (!impl_->values[id].defined()) throw GraphError(fmt::format("input '{}' has no value", name));
    return impl_->values[id];
  }
  if (!impl_->readable[id])
    throw GraphError(fmt::format("value of '{}' is not kept after forward (its buffer is reused): list it in "
                                 "PlanOptions::keep",
                                 name));
  if (!impl_->forward_done) throw GraphError(fmt::format("value of '{}': call forward() first", name));
  return impl_->arena_tensor(impl_->value_at[id], impl_->shapes[id]);
}

double Plan::loss() const {
  if (!impl_->loss) throw GraphError("plan has no loss");
  return value(impl_->graph.node(*impl_->loss).name).item();
}

Tensor Plan::grad(std::string_view name) const {
  const NodeId id = impl_->graph.at(name);
  if (!impl_->grad_readable[id] || impl_->grad_at[id] < 0)
    throw GraphError(fmt::format("no gradient for '{}': gradients are kept for parameters and for inputs listed in "
                                 "PlanOptions::input_grads",
                                 name));
  return impl_->arena_tensor(impl_->grad_at[id], impl_->shapes[id]);
}

std::vector<ParamSlot> Plan::parameters() const {
  std::vector<ParamSlot> out;
  for (NodeId id : impl_->graph.params()) {
    const Node& node = impl_->graph.node(id);
    Tensor g = impl_->grad_at[id] >= 0 ? impl_->arena_tensor(impl_->grad_at[id], node.shape) : Tensor();
    out.push_back({node.name, impl_->values[id], g});
  }
  return out;
}

const Graph& Plan::graph() const { return impl_->graph; }
std::int64_t Plan::batch() const { return impl_->options.batch; }
DType Plan::dtype() const { return impl_->dtype; }
PlanStats Plan::stats() const { return impl_->stats; }
std::vector<NodeId> Plan::forward_order() const { return impl_->forward_nodes; }
std::vector<NodeId> Plan::backward_order() const { return impl_->backward_nodes; }
const std::vector<BackwardStep>& Plan::backward_steps() const { return impl_->backward_steps; }
const Shape& Plan::shape(NodeId node) const { return impl_->shapes.at(node); }

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
