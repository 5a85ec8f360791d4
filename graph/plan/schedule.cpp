// Planner pass 2: waves of independent nodes, forward then backward.
#include <algorithm>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan/passes.hpp>

namespace opgraph::planning {

namespace {

/// The nodes that read a value: its consumers, or for an op with several outputs the
/// consumers of every part.
template <class F>
void for_each_reader(const Graph& graph, const Analysis& a, NodeId id, F f) {
  const Node& node = graph.node(id);
  if (node.kind == NodeKind::op && !node.parts.empty()) {
    for (NodeId p : node.parts)
      for (NodeId c : a.consumers(p)) f(c);
  } else {
    for (NodeId c : a.consumers(id)) f(c);
  }
}

std::vector<std::size_t> wave_starts(const std::vector<NodeId>& nodes, const std::vector<int>& wave) {
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (i == 0 || wave[nodes[i]] != wave[nodes[i - 1]]) starts.push_back(i);
  starts.push_back(nodes.size());
  return starts;
}

}  // namespace

Schedule schedule(const Graph& graph, const Analysis& a, const CostModel& costs) {
  const std::size_t n = graph.size();
  Schedule s;
  s.fwave.assign(n, -1);
  s.bwave.assign(n, -1);
  // Forward: one wave after the latest wave of the op's inputs (a part shares its op's).
  for (NodeId id : a.order) {
    const Node& node = graph.node(id);
    if (!a.needed[id]) continue;
    if (node.kind == NodeKind::part) {
      s.fwave[id] = s.fwave[node.inputs[0]];
      continue;
    }
    if (node.kind != NodeKind::op) continue;
    int wave = 0;
    for (NodeId in : node.inputs)
      if (s.fwave[in] >= 0) wave = std::max(wave, s.fwave[in] + 1);
    s.fwave[id] = wave;
    s.forward.push_back(id);
  }
  std::stable_sort(s.forward.begin(), s.forward.end(), [&](NodeId x, NodeId y) { return s.fwave[x] < s.fwave[y]; });
  s.F = s.forward.empty() ? 0 : s.fwave[s.forward.back()] + 1;
  // Backward: a vjp runs once every vjp that adds to its outputs' gradients has run, one
  // wave after the latest of them. Reverse forward order visits consumers first.
  for (auto it = s.forward.rbegin(); it != s.forward.rend(); ++it) {
    if (!a.vjp_runs[*it]) continue;
    int wave = s.F;
    for_each_reader(graph, a, *it, [&](NodeId c) {
      if (s.bwave[c] >= 0) wave = std::max(wave, s.bwave[c] + 1);
    });
    s.bwave[*it] = wave;
    for (NodeId p : graph.node(*it).parts) s.bwave[p] = wave;
    s.backward.push_back(*it);
  }
  std::stable_sort(s.backward.begin(), s.backward.end(), [&](NodeId x, NodeId y) { return s.bwave[x] < s.bwave[y]; });
  s.forward_waves = wave_starts(s.forward, s.fwave);
  s.backward_waves = wave_starts(s.backward, s.bwave);

  // A wave runs its nodes at once when it holds at least two and enough work (about ten
  // microseconds on one core): decided from shapes, so the same for any thread count.
  auto concurrent = [&](const std::vector<std::size_t>& waves, const std::vector<NodeId>& nodes, bool forward) {
    std::vector<char> flags;
    for (std::size_t w = 0; w + 1 < waves.size(); ++w) {
      double work = 0.0;
      for (std::size_t i = waves[w]; i < waves[w + 1]; ++i) work += costs.flops(nodes[i], forward);
      flags.push_back(waves[w + 1] - waves[w] > 1 && work >= costs.concurrent_wave_flops);
    }
    return flags;
  };
  s.forward_concurrent = concurrent(s.forward_waves, s.forward, true);
  s.backward_concurrent = concurrent(s.backward_waves, s.backward, false);
  return s;
}

}  // namespace opgraph::planning
