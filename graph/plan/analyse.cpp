// Planner pass 1: shapes bound, what is needed, which gradients flow.
#include <algorithm>

#include <fmt/format.h>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan/passes.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph::planning {

namespace {
std::string located(const Node& n) {
  if (!n.origin.empty()) return n.origin;
  return (n.kind == NodeKind::input ? "input '" : n.kind == NodeKind::param ? "parameter '" : "node '") + n.name + "'";
}
}  // namespace

Analysis analyse(const Graph& graph, const PlanOptions& options, std::size_t float_size) {
  const std::size_t n = graph.size();
  if (options.batch < 1) throw GraphError("plan", fmt::format("batch must be at least 1, got {}", options.batch));
  Analysis a;
  a.order = graph.topological_order();

  // Shapes: N is the batch, every other symbol a named dimension of the options.
  std::vector<std::pair<std::int64_t, std::int64_t>> sizes = {{N, options.batch}};
  for (const auto& [name, size] : options.dims) {
    if (size < 1) throw GraphError("plan", fmt::format("dimension {} must be at least 1, got {}", name, size));
    sizes.emplace_back(dim(name), size);
  }
  // Consumers, in the adjacency list's order: by consumer, then by input slot.
  a.consumer_lists = group_by_node<NodeId>(n, [&](auto emit) {
    for (NodeId id = 0; id < n; ++id)
      for (NodeId in : graph.node(id).inputs) emit(in, id);
  });
  a.shapes.resize(n);
  for (NodeId id = 0; id < n; ++id) {
    const Node& node = graph.node(id);
    a.shapes[id] = node.shape.bind(sizes);
    for (auto d : a.shapes[id].dims())
      if (d < 0)
        throw ShapeError(located(node), fmt::format("shape {} has the dimension {}, which the plan does not bind: give "
                                                    "its size in PlanOptions::dims",
                                                    node.shape, dim_name(d)));
    std::int64_t bytes = 0;
    if (!mul_fits(checked_product(a.shapes[id].dims(), "node '" + node.name + "'"),
                  static_cast<std::int64_t>(node.index ? 8 : float_size), &bytes))
      throw ShapeError(located(node), fmt::format("shape {} at batch {} needs more than 2^62 bytes", node.shape,
                                                  options.batch));
  }

  // What matters: ancestors of the outputs, the loss and the kept nodes (all nodes when
  // nothing is named).
  if (!options.loss.empty()) a.loss = graph.at(options.loss);
  else if (graph.loss()) a.loss = graph.loss();
  a.training = options.backward && a.loss.has_value();
  a.readable.assign(n, options.keep_all ? 1 : 0);
  for (NodeId id : graph.outputs()) a.readable[id] = 1;
  if (a.loss) a.readable[*a.loss] = 1;
  for (const auto& name : options.keep) a.readable[graph.at(name)] = 1;
  std::vector<NodeId> targets;
  for (NodeId id = 0; id < n; ++id)
    if (a.readable[id]) targets.push_back(id);
  a.needed = targets.empty() ? std::vector<char>(n, 1) : graph.ancestors(targets, false);
  // A multi-output op needed through one part computes them all: its other parts need
  // buffers too.
  for (NodeId id = 0; id < n; ++id) {
    const Node& node = graph.node(id);
    if (node.kind == NodeKind::op && a.needed[id])
      for (NodeId p : node.parts) a.needed[p] = 1;
  }

  // Which gradients flow: from parameters and requested inputs forward, from the loss
  // backward, both along the edges that carry gradients.
  a.grad_readable.assign(n, 0);
  std::vector<NodeId> sources;
  for (const auto& name : options.input_grads) {
    const auto id = graph.find(name);
    if (!id || graph.node(*id).kind != NodeKind::input) {
      std::vector<std::string> inputs;
      for (NodeId i : graph.inputs()) inputs.push_back(graph.node(i).name);
      throw GraphError(fmt::format("no input '{}'{}", name, suggestion(name, inputs)));
    }
    a.grad_readable[*id] = 1;
    sources.push_back(*id);
  }
  for (NodeId id : graph.params()) {
    a.grad_readable[id] = 1;
    sources.push_back(id);
  }
  a.requires_grad = graph.descendants(sources, true);
  const std::vector<char> on_path = a.training ? graph.ancestors({*a.loss}, true) : std::vector<char>(n, 0);
  a.vjp_runs.assign(n, 0);
  a.grad_flows.assign(n, 0);
  for (NodeId id = 0; id < n; ++id) {
    const Node& node = graph.node(id);
    const bool flows = a.training && a.needed[id] && a.requires_grad[id] && on_path[id];
    a.grad_flows[id] = flows || (a.training && a.grad_readable[id]);
    if (node.kind == NodeKind::op && flows) {
      if (!node.op->has_vjp())
        throw GraphError(located(node), fmt::format("op '{}' has no vjp: cannot differentiate through it", node.op->name));
      a.vjp_runs[id] = 1;
    }
  }
  if (a.training && options.keep_grads)
    for (NodeId id = 0; id < n; ++id) {
      const Node& node = graph.node(id);
      if (a.grad_flows[id] && !node.index && (node.computed() || node.kind != NodeKind::op)) a.grad_readable[id] = 1;
    }
  if (a.training) {
    for (NodeId id : graph.params())
      if (!on_path[id])
        a.warnings.push_back(fmt::format("parameter '{}' does not reach the loss '{}': it will not train",
                                         graph.node(id).name, graph.node(*a.loss).name));
  }
  return a;
}

CostModel declared_costs(const Graph& graph, const Analysis& a) {
  auto flops = [&graph, &a](NodeId id, bool forward) {
    const Node& node = graph.node(id);
    if (node.kind != NodeKind::op) return 0.0;
    const Shape& out = node.parts.empty() ? a.shapes[id] : a.shapes[node.parts.front()];
    const double elements = static_cast<double>(out.numel());
    OpCost cost{elements, 2.0 * elements};
    if (node.op->cost) {
      std::vector<Shape> in_shapes;
      in_shapes.reserve(node.inputs.size());
      for (NodeId in : node.inputs) in_shapes.push_back(a.shapes[in]);
      cost = node.op->cost(ShapeContext(*node.op, in_shapes, node.attrs), out);
    }
    if (forward) return cost.forward;
    // A vjp computes only the gradients someone needs (matmul skips dx for an input x).
    int differentiable = 0, needed = 0;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (!node.op->input(i).differentiable) continue;
      ++differentiable;
      needed += a.grad_flows[node.inputs[i]] != 0;
    }
    return differentiable ? cost.backward * needed / differentiable : 0.0;
  };
  return {flops, 1e6};
}

}  // namespace opgraph::planning
