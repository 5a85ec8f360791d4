// Planner pass 4: a bias and ReLU after a product run inside it (OpBuilder::epilogue): a
// bias_add along the last axis, or an add of a vector as long as the last axis (x·W + b,
// as a model file writes a dense layer), then a relu.
//
// What it saves: each follower's pass over the product's output, and at two threads the
// hand-over of that output between the cores (the elementwise kernels split it in chunks
// of their own, not the product's tiles). Their vjps are untouched: bias_add's reads no
// forward value, relu's reads its own output, which the fused product writes where the
// relu would have.
//
// And the mirror image in the backward pass: a relu's vjp left to the one node after it
// whose op declares OpBuilder::absorbs_relu_vjp (max_pool2d), which then writes the
// relu's input gradient itself; the relu's vjp step is skipped.
#include <algorithm>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan/passes.hpp>

namespace opgraph::planning {

namespace {

/// The one needed node that reads `id`, or graph.size() when there are none or several.
NodeId only_reader(const Graph& graph, const Analysis& a, NodeId id) {
  NodeId reader = graph.size();
  for (NodeId c : graph.consumers(id)) {
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
/// output) is `before`: it is the op `op`, reads `before` through its first input, and
/// writes its output over it.
bool may_follow(const Graph& graph, const Analysis& a, const MemoryPlan& m, NodeId before, NodeId follower,
                const char* op) {
  if (follower >= graph.size()) return false;
  const Node& f = graph.node(follower);
  return f.kind == NodeKind::op && f.op->name == op && f.parts.empty() && f.inputs[0] == before &&
         !a.readable[before] && m.value_buf[before] >= 0 && m.value_buf[follower] == m.value_buf[before] &&
         !graph.node(before).index && !f.index;
}

}  // namespace

Fusions fuse_epilogues(const Graph& graph, const Analysis& a, const Schedule& s, const MemoryPlan& m) {
  const std::size_t n = graph.size();
  Fusions f;
  f.fused_into.assign(n, n);
  f.bias.assign(n, n);
  f.relu.assign(n, 0);
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
    if (may_follow(graph, a, m, last, r, "relu")) {
      f.relu[p] = 1;
      f.fused_into[r] = p;
    }
  }
  // A relu's vjp taken over by the one node that reads its output (OpBuilder::absorbs_relu_vjp):
  // that node's vjp is then the only writer of the relu's output gradient, and the relu's
  // input gradient is the same buffer (in place), so the consumer's masked gradient lands
  // where the relu's vjp would have written it.
  f.vjp_into.assign(n, n);
  for (NodeId r : s.backward) {
    const Node& rn = graph.node(r);
    if (rn.kind != NodeKind::op || rn.op->name != "relu" || !rn.parts.empty() || rn.index) continue;
    const NodeId c = only_reader(graph, a, r);
    if (c >= n) continue;
    const Node& cn = graph.node(c);
    if (!cn.op->absorbs_relu_vjp || !cn.parts.empty() || cn.inputs[0] != r || s.bwave[c] < 0 || s.bwave[r] < 0)
      continue;
    if (m.grad_buf[r] < 0 || m.grad_buf[r] != m.grad_buf[rn.inputs[0]]) continue;
    f.vjp_into[r] = c;
    ++f.vjps_absorbed;
  }
  f.fused = static_cast<int>(std::count_if(f.fused_into.begin(), f.fused_into.end(), [n](NodeId x) { return x != n; }));
  return f;
}

}  // namespace opgraph::planning
