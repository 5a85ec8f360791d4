// The planner as passes over plain data: analyse (shapes, what is needed, which gradients
// flow) -> schedule (waves) -> memory plan (lifetimes -> offsets) -> epilogues (a bias and
// ReLU run inside the product before them). Plan's constructor runs them in that order and
// then binds the kernels (bind.hpp); each pass is a function a test can call alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/math.hpp>
#include <opgraph/graph/plan.hpp>

namespace opgraph::planning {

/// Entries grouped by node in one array: `of(id)` lists node id's, in the order they
/// were emitted.
template <class V>
struct ByNode {
  std::vector<std::size_t> start;  // per node, then the end
  std::vector<V> entries;
  std::span<const V> of(NodeId id) const { return {entries.data() + start[id], entries.data() + start[id + 1]}; }
};
/// Groups what `each(emit)` emits, as emit(node, value) for nodes below `n`, by a counting
/// sort: `each` runs twice (once to count, once to fill), emitting the same both times.
template <class V, class Each>
ByNode<V> group_by_node(std::size_t n, const Each& each) {
  ByNode<V> g;
  g.start.assign(n + 1, 0);
  each([&](NodeId id, const V&) { ++g.start[id + 1]; });
  for (std::size_t i = 0; i < n; ++i) g.start[i + 1] += g.start[i];
  g.entries.resize(g.start[n]);
  std::vector<std::size_t> fill(g.start.begin(), g.start.end() - 1);
  each([&](NodeId id, const V& v) { g.entries[fill[id]++] = v; });
  return g;
}

/// Pass 1: what the graph asks of a plan, from the graph and the options alone.
struct Analysis {
  std::vector<NodeId> order;        // every node, inputs before their consumers
  std::vector<Shape> shapes;        // per node: N bound to the batch, named dimensions to PlanOptions::dims
  std::vector<char> needed;         // ancestors of the outputs, the loss and the kept nodes
  std::vector<char> readable;       // values kept after forward()
  std::vector<char> requires_grad;  // a parameter or a requested input is upstream
  std::vector<char> grad_readable;  // parameters and requested inputs: their gradients stay
  std::vector<char> vjp_runs;       // op nodes whose vjp runs in backward()
  std::vector<char> grad_flows;     // nodes whose gradient is computed
  std::optional<NodeId> loss;
  bool training = false;            // backward compiled
  std::vector<std::string> warnings;  // e.g. parameters the loss never reaches
  // Graph::consumers of every node in one array (its readers, one entry per edge, in the
  // graph's order): the passes ask for them node after node, and on a graph larger than
  // the cache the adjacency list's edges cost a miss each, and a vector each call.
  ByNode<NodeId> consumer_lists;
  std::span<const NodeId> consumers(NodeId id) const { return consumer_lists.of(id); }
};
/// Throws GraphError/ShapeError on options the graph cannot meet (unknown names, a
/// missing vjp on the path to the loss, an unbound dimension, sizes past 2^62 bytes).
Analysis analyse(const Graph& graph, const PlanOptions& options, std::size_t float_size);

/// The scheduler's cost model: FLOPs of a node's forward (forward = true) or vjp, and the
/// work a wave needs before its nodes run at once.
struct CostModel {
  std::function<double(NodeId, bool forward)> flops;
  double concurrent_wave_flops = 1e6;
};
/// The cost model of the ops' declared costs (default: one flop per output element
/// forward, two backward, scaled by the share of inputs whose gradients are needed).
CostModel declared_costs(const Graph& graph, const Analysis& analysis);

/// Pass 2: waves. Forward waves are numbered 0..F-1, backward waves F.. on; the nodes of a
/// wave depend only on earlier waves and may run at once.
struct Schedule {
  std::vector<NodeId> forward, backward;  // op nodes in the order they run
  std::vector<int> fwave, bwave;          // per node: its forward / vjp wave (a part: its op's), -1 none
  std::vector<std::size_t> forward_waves, backward_waves;  // wave starts into forward / backward, then the end
  std::vector<char> forward_concurrent, backward_concurrent;  // per wave: run its nodes at once
  int F = 0;
};
Schedule schedule(const Graph& graph, const Analysis& analysis, const CostModel& costs);

/// One buffer of the arena: its size and the waves [first, last] in which it holds
/// something still needed; `offset` is filled by place_buffers.
struct Buffer {
  std::size_t bytes = 0;
  int first = 0;
  int last = 0;
  std::size_t offset = 0;
};
/// Places every buffer so that buffers alive in the same wave never overlap; returns the
/// arena size. Greedy (largest first, lowest free offset) up to 4 096 buffers, an
/// allocator simulated along the timeline beyond (O(n log n)).
std::size_t place_buffers(std::vector<Buffer>& buffers);

/// Where one vjp writes the gradient of its input `slot`: into the gradient itself
/// (scratch = -1) or, for a later writer of a fanned-out value, into scratch that the
/// engine adds in after the wave.
struct GradTarget {
  NodeId node;
  std::size_t slot;
  std::int64_t scratch;
};

/// Pass 3: every buffer's lifetime and place.
struct MemoryPlan {
  std::vector<Buffer> buffers;
  std::vector<std::int64_t> value_buf, grad_buf, work_buf;  // per node: buffer index, -1 none
  std::vector<std::int64_t> forward_scratch, backward_scratch;  // per node: buffer index, -1 none
  std::vector<GradTarget> targets;                          // in backward order
  std::size_t arena_bytes = 0, unshared_bytes = 0;
  int in_place_values = 0, in_place_grads = 0;  // outputs and gradients written over another buffer
};
/// The last wave that reads value `id`: its consumers' forward waves, the backward waves
/// of the consumers whose vjps save it and, unless `own_vjp_reads` is false (its vjp's
/// work left to a consumer's, fuse_epilogues), its own op's when that vjp reads its
/// outputs; "forever" (INT_MAX) when it stays readable.
int value_last_use(const Graph& graph, const Analysis& analysis, const Schedule& schedule, NodeId id,
                   bool own_vjp_reads = true);
/// With `in_place`, an op that declares `.in_place(input)` writes its output over that
/// input's buffer when nothing else reads the input from its wave on, and its vjp writes
/// that input's gradient over the output's gradient when it is the gradient's first writer
/// and the gradient is not kept.
MemoryPlan plan_memory(const Graph& graph, const Analysis& analysis, const Schedule& schedule,
                       std::size_t float_size, bool in_place = true);

/// Pass 4: epilogues. A node whose op declares OpBuilder::epilogue (matmul, conv2d) takes
/// over the forward pass of a bias (a bias_add along the op's epilogue axis, or for the
/// last axis an add of a vector as long as it) and then of an activation (an op declaring
/// OpBuilder::activation: relu, logistic, tanh) that follow it, when
/// each is the only reader of the value before it, that value is not kept, the memory plan
/// put the follower's output over it (in place: nothing else needs it) and the bias is
/// computed before the producer's wave. The followers' forward steps are skipped; their
/// vjps run as planned.
///
/// And vjps: an activation (relu, logistic, tanh) whose output only a node whose op
/// declares OpBuilder::absorbs_activation_vjp (or, for a relu, absorbs_relu_vjp) reads
/// (its input 0, once) leaves its vjp to that node when the memory plan wrote the
/// activation's input gradient over its output gradient (in place: the gradient is not
/// kept and the activation is its input gradient's first writer). Its vjp step is skipped;
/// the consumer's kernels see Kernel::absorbed_activation. The activation's output, which
/// only its own vjp had kept, then dies at its last other use (with the values written in place
/// before it, one buffer): LeNet's full-resolution activations are not kept for the
/// backward pass.
///
/// And items: a node whose op declares OpBuilder::per_item and reads nothing but the end
/// of such a chain (input 0) and values computed before the producer's wave runs item by
/// item inside a producer that declares OpBuilder::item_followers (conv2d's max_pool2d):
/// its forward on each range of images the producer has written; and, when the chain's
/// vjps can follow (the relu's absorbed by it, the bias_add's per item, every gradient in
/// place, none fanned out), its vjp and the chain's on each range of images before the
/// producer's vjp reads them, their last steps (per_item_finish) after it. The buffers
/// they use then live through the producer's waves (the memory plan is placed again).
///
/// And a bias: a bias_add fused into a producer whose op declares
/// OpBuilder::absorbs_bias_vjp (matmul) leaves its vjp to the producer's when its input
/// gradient is written over its output gradient (in place) and it is the only writer of
/// the bias's gradient: the producer's vjp writes that gradient (Epilogue::bias_grad), and
/// the bias_add's vjp step is skipped.
struct Fusions {
  std::vector<NodeId> fused_into;     // per node: the producer running its forward, or graph.size()
  std::vector<NodeId> bias;           // per producer: the bias_add or add node fused in, or graph.size()
  std::vector<math::Activation> act;  // per producer: the activation op fused in (OpBuilder::activation), or none
  std::vector<NodeId> items;          // per producer: the per-item node run inside it, or graph.size()
  std::vector<NodeId> vjp_into;       // per activation: the consumer whose vjp does its work, or graph.size()
  std::vector<NodeId> vjp_items_into; // per node: the producer whose vjp runs its vjp item by item, or graph.size()
  std::vector<std::vector<NodeId>> vjp_items;  // per producer: those nodes, in backward order
  std::vector<NodeId> bias_vjp_into;  // per fused bias (bias_add, or add of a vector): the producer whose vjp writes its bias's gradient, or graph.size()
  int fused = 0;                      // forward steps skipped
  int vjps_absorbed = 0;              // vjp steps skipped
};
/// Decides the fusions; shortens the lives of the absorbed relus' outputs, lengthens those
/// of the buffers the per-item fusions use and places the memory plan's buffers again.
Fusions fuse_epilogues(const Graph& graph, const Analysis& analysis, const Schedule& schedule, MemoryPlan& memory);

}  // namespace opgraph::planning
