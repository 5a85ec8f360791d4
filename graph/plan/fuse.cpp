// Planner pass 4: a bias and an activation after a product run inside it
// (OpBuilder::epilogue): a bias_add along the last axis, or an add of a vector as long as
// the last axis (x·W + b, as a model file writes a dense layer), then an op that declares
// OpBuilder::activation (relu, logistic, tanh).
//
// What it saves: each follower's pass over the product's output, and at two threads the
// hand-over of that output between the cores (the elementwise kernels split it in chunks
// of their own, not the product's tiles). Their vjps are untouched: bias_add's reads no
// forward value, an activation's reads its own output, which the fused product writes
// where the activation would have.
//
// And the mirror image in the backward pass: an activation's vjp left to the one node
// after it whose op declares OpBuilder::absorbs_activation_vjp (matmul: a dense layer's
// input gradient dy·Wᵀ taken through the activation before it in its product's epilogue)
// or, for a relu, OpBuilder::absorbs_relu_vjp (max_pool2d), which then writes the
// activation's input gradient itself; the activation's vjp step is skipped.
//
// And the node after the chain, item by item inside the producer (OpBuilder::per_item,
// OpBuilder::item_followers): a CNN's max_pool2d reads each image's planes as the
// convolution's lane has written them, in cache and on that core, not in a pass of its
// own over the whole batch (which at two threads read what the other core wrote); in the
// vjp the pool's, relu's and bias's work on each image happens in the lane about to read
// its gradient, which no pass then writes out and reads back.
#include <algorithm>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan/passes.hpp>

namespace opgraph::planning {

namespace {

/// The one needed node that reads `id`, or graph.size() when there are none or several.
NodeId only_reader(const Graph& graph, const Analysis& a, NodeId id) {
  NodeId reader = graph.size();
  for (NodeId c : a.consumers(id)) {
    if (!a.needed[c]) continue;
    if (reader != graph.size() && reader != c) return graph.size();
    reader = c;
  }
  if (reader == graph.size()) return reader;
  const Node& r = graph.node(reader);
  if (std::count(r.inputs.begin(), r.inputs.end(), id) != 1) return graph.size();  // read twice
  return reader;
}

/// Whether `follower` may run inside the producer whose output (or whose fused bias_add's
/// output) is `before`: it is the op `op` (or, for null, an op declaring
/// OpBuilder::activation), reads `before` through its first input, and writes its output
/// over it.
bool may_follow(const Graph& graph, const Analysis& a, const MemoryPlan& m, NodeId before, NodeId follower,
                const char* op) {
  if (follower >= graph.size()) return false;
  const Node& f = graph.node(follower);
  if (f.kind != NodeKind::op) return false;
  const bool is_op = op ? f.op->name == op : f.op->activation != math::Activation::none;
  return is_op && f.parts.empty() && f.inputs[0] == before &&
         !a.readable[before] && m.value_buf[before] >= 0 && m.value_buf[follower] == m.value_buf[before] &&
         !graph.node(before).index && !f.index;
}

/// Whether `id`'s op runs item by item for its bound shapes and attributes (OpBuilder::per_item).
bool per_item(const Graph& graph, const Analysis& a, NodeId id) {
  const Node& node = graph.node(id);
  if (node.kind != NodeKind::op || !node.op->per_item() || !node.parts.empty() || node.index) return false;
  if (!node.op->per_item_when) return true;
  std::vector<Shape> in_shapes;
  for (NodeId in : node.inputs) in_shapes.push_back(a.shapes[in]);
  return node.op->per_item_when(ShapeContext(*node.op, in_shapes, node.attrs));
}

/// Whether the vjp of `v` is the only writer of each gradient it writes (no fan-out): a vjp
/// run inside another step, in that step's wave, could otherwise come after a later
/// writer's sum, or write scratch with no wave of its own to add it after.
bool sole_writer(const Graph& graph, const MemoryPlan& m, NodeId v) {
  for (const GradTarget& t : m.targets) {
    if (t.node != v) continue;
    const NodeId in = graph.node(v).inputs[t.slot];
    if (std::count_if(m.targets.begin(), m.targets.end(),
                      [&](const GradTarget& u) { return graph.node(u.node).inputs[u.slot] == in; }) != 1)
      return false;
  }
  return true;
}

/// Buffer `b` (or none) alive through wave `w` too.
void live_through(MemoryPlan& m, std::int64_t b, int w) {
  if (b < 0 || w < 0) return;
  Buffer& buf = m.buffers[static_cast<std::size_t>(b)];
  buf.first = std::min(buf.first, w);
  buf.last = std::max(buf.last, w);
}

/// The activations whose vjps their consumers do (Fusions::vjp_into): their outputs, kept
/// until then for the activation's vjp, die at their last other use. The buffer holds the values
/// written in place before the relu's too (LeNet's conv2d, bias_add and relu outputs): it
/// lives as long as any of them is read. True when a buffer's life got shorter.
bool release_absorbed_outputs(const Graph& graph, const Analysis& a, const Schedule& s, MemoryPlan& m,
                              const Fusions& f) {
  const std::size_t n = graph.size();
  if (f.vjps_absorbed == 0) return false;
  std::vector<std::vector<NodeId>> values_of(m.buffers.size());
  for (NodeId v = 0; v < n; ++v)
    if (m.value_buf[v] >= 0) values_of[static_cast<std::size_t>(m.value_buf[v])].push_back(v);
  bool shorter = false;
  for (NodeId r = 0; r < n; ++r) {
    if (f.vjp_into[r] == n || m.value_buf[r] < 0) continue;
    const auto b = static_cast<std::size_t>(m.value_buf[r]);
    // The value that took the buffer first is among them: its last use is at least the
    // buffer's first wave.
    int last = -1;
    for (NodeId v : values_of[b]) last = std::max(last, value_last_use(graph, a, s, v, f.vjp_into[v] == n));
    if (last < m.buffers[b].last) {
      m.buffers[b].last = last;
      shorter = true;
    }
  }
  return shorter;
}

/// The per-item fusions (Fusions::items, vjp_items), after the epilogues and absorbed
/// relus; true when a buffer's life got longer.
bool fuse_items(const Graph& graph, const Analysis& a, const Schedule& s, MemoryPlan& m, Fusions& f) {
  const std::size_t n = graph.size();
  f.items.assign(n, n);
  f.vjp_items_into.assign(n, n);
  f.vjp_items.assign(n, {});
  bool moved = false;
  for (NodeId p : s.forward) {
    const Node& node = graph.node(p);
    if (!node.op->item_followers || !node.parts.empty() || node.index || a.shapes[p].rank() < 1) continue;
    // The end of the chain the producer runs: its activation, its bias, or itself.
    NodeId last = p;
    const NodeId b = f.bias[p];
    if (b != n) last = b;
    const bool act = f.act[p] != math::Activation::none;
    if (act)
      for (NodeId c : a.consumers(last))
        if (f.fused_into[c] == p && c != b) last = c;
    const NodeId r = act ? last : n;
    const NodeId x = only_reader(graph, a, last);
    if (x >= n || !per_item(graph, a, x) || graph.node(x).inputs[0] != last) continue;
    const Node& xn = graph.node(x);
    // Items line up: axis 0 of the producer's output, of the follower's input 0 and output.
    const Shape &ys = a.shapes[p], &xs = a.shapes[x];
    if (xs.rank() < 1 || xs[0] != ys[0] || a.shapes[last][0] != ys[0]) continue;
    // Its other inputs are there before the producer's wave.
    bool ready = true;
    for (std::size_t i = 1; i < xn.inputs.size(); ++i)
      if (xn.inputs[i] == last || s.fwave[xn.inputs[i]] >= s.fwave[p] || graph.node(xn.inputs[i]).index) ready = false;
    if (!ready) continue;
    f.items[p] = x;
    f.fused_into[x] = p;
    // Its output and workspace are written in the producer's wave.
    live_through(m, m.value_buf[x], s.fwave[p]);
    live_through(m, m.work_buf[x], s.fwave[p]);
    moved = true;

    // The vjps: the follower's, the relu's (absorbed by the follower), the bias's (per
    // item), each writing its input's gradient over its output's (one buffer down to the
    // producer's output gradient) and no gradient fanned out.
    const int bp = s.bwave[p];
    if (bp < 0 || s.bwave[x] < 0 || !xn.op->has_vjp() || !sole_writer(graph, m, x)) continue;
    if (r != n && f.vjp_into[r] != x) continue;
    if (b != n && (!per_item(graph, a, b) || s.bwave[b] < 0 || !sole_writer(graph, m, b))) continue;
    const std::int64_t g = m.grad_buf[p];
    if (g < 0 || m.grad_buf[last] != g || (b != n && m.grad_buf[b] != g)) continue;
    std::vector<NodeId> chain{x};
    if (b != n) chain.push_back(b);
    for (NodeId c : chain) {
      f.vjp_items_into[c] = p;
      ++f.vjps_absorbed;
      // What its vjp reads lives until the producer's: the gradient coming in, the
      // workspace, the saved values.
      const Node& cn = graph.node(c);
      live_through(m, m.grad_buf[c], bp);
      live_through(m, m.work_buf[c], bp);
      for (int i : cn.op->saved_inputs) live_through(m, m.value_buf[cn.inputs[static_cast<std::size_t>(i)]], bp);
      if (cn.op->saves_output) live_through(m, m.value_buf[c], bp);
    }
    f.vjp_items[p] = std::move(chain);
  }
  return moved;
}

}  // namespace

Fusions fuse_epilogues(const Graph& graph, const Analysis& a, const Schedule& s, MemoryPlan& m) {
  const std::size_t n = graph.size();
  Fusions f;
  f.fused_into.assign(n, n);
  f.bias.assign(n, n);
  f.act.assign(n, math::Activation::none);
  for (NodeId p : s.forward) {
    const Node& node = graph.node(p);
    if (!node.op->epilogue || !node.parts.empty() || a.shapes[p].rank() < 1) continue;
    NodeId last = p;
    const NodeId b = only_reader(graph, a, p);
    const bool bias_add = may_follow(graph, a, m, p, b, "bias_add");
    if (bias_add || may_follow(graph, a, m, p, b, "add")) {
      const Node& bn = graph.node(b);
      const Shape& y = a.shapes[p];
      const NodeId bias = bn.inputs[1];
      // The axis the op's epilogue adds its bias along (the last, or conv2d's channels).
      const auto normal = [&](std::int64_t axis) { return axis < 0 ? axis + y.rank() : axis; };
      const std::int64_t along = normal(node.op->epilogue_axis);
      // That axis: bias_add's, or for the last axis an add of a vector as long as it
      // (NumPy broadcasting lays it along the rows: x + b adds b[j] to column j).
      const bool same_axis =
          bias_add ? normal(bn.attrs[static_cast<std::size_t>(bn.op->attr_index("axis"))].as_int()) == along
                   : along == y.rank() - 1 && a.shapes[bias].rank() == 1 && a.shapes[bias][0] == y[y.rank() - 1] &&
                         a.shapes[b] == y;
      // The bias is read while the product runs: it must be there before the product's wave.
      if (along >= 0 && along < y.rank() && same_axis && bias != p && s.fwave[bias] < s.fwave[p] &&
          !graph.node(bias).index) {
        f.bias[p] = b;
        f.fused_into[b] = p;
        last = b;
      }
    }
    const NodeId r = only_reader(graph, a, last);
    if (may_follow(graph, a, m, last, r, nullptr)) {
      f.act[p] = graph.node(r).op->activation;
      f.fused_into[r] = p;
    }
  }
  // An activation's vjp taken over by the one node that reads its output
  // (OpBuilder::absorbs_activation_vjp; absorbs_relu_vjp for a relu's only): that node's
  // vjp is then the only writer of the activation's output gradient, and the activation's
  // input gradient is the same buffer (in place), so the consumer's gradient, taken
  // through the activation, lands where the activation's vjp would have written it.
  f.vjp_into.assign(n, n);
  for (NodeId r : s.backward) {
    const Node& rn = graph.node(r);
    if (rn.kind != NodeKind::op || rn.op->activation == math::Activation::none || !rn.parts.empty() || rn.index)
      continue;
    const NodeId c = only_reader(graph, a, r);
    if (c >= n) continue;
    const Node& cn = graph.node(c);
    const bool absorbs = cn.op->absorbs_activation_vjp ||
                         (cn.op->absorbs_relu_vjp && rn.op->activation == math::Activation::relu);
    if (!absorbs || !cn.parts.empty() || cn.inputs[0] != r || s.bwave[c] < 0 || s.bwave[r] < 0) continue;
    if (m.grad_buf[r] < 0 || m.grad_buf[r] != m.grad_buf[rn.inputs[0]]) continue;
    f.vjp_into[r] = c;
    ++f.vjps_absorbed;
  }
  const bool shorter = release_absorbed_outputs(graph, a, s, m, f);
  if (fuse_items(graph, a, s, m, f) || shorter) m.arena_bytes = place_buffers(m.buffers);
  // A fused bias's vjp taken over by its producer's (OpBuilder::absorbs_bias_vjp): the
  // bias_add's, or the add's of a vector along the last axis (x·W + b: its vjp sums the
  // gradient down to the vector with column_sums too, bit for bit bias_add's). Its input
  // gradient is its output gradient, in place (nothing to do), and it is the only writer of
  // the bias's gradient, which the producer's vjp then writes (Epilogue::bias_grad) as its
  // own vjp would have. No buffer lives longer: the gradient it reads is the producer's own
  // output gradient, and a parameter's gradient is kept. The add's had been left to run: a
  // pass of its own over dy for the bias (W8's 2048x512 `x·W1 + c1`, a model file's or an
  // ONNX import's every dense layer).
  f.bias_vjp_into.assign(n, n);
  for (NodeId p : s.forward) {
    const NodeId b = f.bias[p];
    if (b == n) continue;
    const Node& pn = graph.node(p);
    const Node& bn = graph.node(b);
    const int rank = a.shapes[p].rank();
    const std::int64_t along = pn.op->epilogue_axis < 0 ? pn.op->epilogue_axis + rank : pn.op->epilogue_axis;
    // f.bias holds an add only with a vector along the last axis (its input 1), the
    // product its input 0.
    if (!pn.op->absorbs_bias_vjp || (bn.op->name != "bias_add" && bn.op->name != "add") || along != rank - 1)
      continue;
    if (s.bwave[p] < 0 || s.bwave[b] < 0 || f.vjp_items_into[b] != n || !sole_writer(graph, m, b)) continue;
    if (m.grad_buf[b] < 0 || m.grad_buf[b] != m.grad_buf[p]) continue;
    f.bias_vjp_into[b] = p;
    ++f.vjps_absorbed;
  }
  f.fused = static_cast<int>(std::count_if(f.fused_into.begin(), f.fused_into.end(), [n](NodeId x) { return x != n; }));
  return f;
}

}  // namespace opgraph::planning
