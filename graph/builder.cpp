// GraphBuilder: order by Boost.Graph (cycle detection by depth-first search), then build.
#include <opgraph/graph/builder.hpp>

#include <algorithm>
#include <map>
#include <queue>
#include <set>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>

#include <opgraph/graph/error.hpp>

namespace opgraph {

GraphBuilder& GraphBuilder::input(std::string name, Shape shape, std::string origin, bool index) {
  Decl d{Decl::Kind::input, std::move(name), std::move(shape), index, {}, {}, {}, {}, std::move(origin)};
  decls_.push_back(std::move(d));
  return *this;
}

GraphBuilder& GraphBuilder::param(std::string name, Shape shape, Init init, std::string origin) {
  Decl d{Decl::Kind::param, std::move(name), std::move(shape), false, init, {}, {}, {}, std::move(origin)};
  decls_.push_back(std::move(d));
  return *this;
}

GraphBuilder& GraphBuilder::op(std::string name, std::string op, std::vector<std::string> inputs, Attrs attrs,
                               std::string origin) {
  Decl d{Decl::Kind::op, std::move(name), {}, false, {}, std::move(op), std::move(inputs), std::move(attrs),
         std::move(origin)};
  decls_.push_back(std::move(d));
  return *this;
}

GraphBuilder& GraphBuilder::loss(std::string name) {
  loss_ = std::move(name);
  return *this;
}

GraphBuilder& GraphBuilder::output(std::string name) {
  outputs_.push_back(std::move(name));
  return *this;
}

namespace {

using Digraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;

/// Records the first back edge a depth-first search meets and the tree edges that led to
/// it, from which the cycle is read.
struct CycleFinder : boost::default_dfs_visitor {
  std::vector<std::size_t>* parent;
  std::vector<std::size_t>* cycle;
  void tree_edge(Digraph::edge_descriptor e, const Digraph& g) const { (*parent)[boost::target(e, g)] = boost::source(e, g); }
  void back_edge(Digraph::edge_descriptor e, const Digraph& g) const {
    if (!cycle->empty()) return;
    // The back edge u -> v closes the cycle v -> ... -> u -> v along the tree edges.
    const std::size_t u = boost::source(e, g), v = boost::target(e, g);
    std::vector<std::size_t> path{u};
    for (std::size_t w = u; w != v; w = (*parent)[w]) path.push_back((*parent)[w]);
    std::reverse(path.begin(), path.end());
    path.push_back(v);
    *cycle = std::move(path);
  }
};

}  // namespace

Graph GraphBuilder::build() const {
  const std::size_t n = decls_.size();
  std::map<std::string, std::size_t, std::less<>> index;
  for (std::size_t i = 0; i < n; ++i) {
    const Decl& d = decls_[i];
    if (!index.emplace(d.name, i).second)
      throw GraphError(d.origin.empty() ? "node '" + d.name + "'" : d.origin, fmt::format("the name '{}' is declared twice", d.name));
  }
  std::vector<std::string> known;
  for (const auto& d : decls_) known.push_back(d.name);
  // The declaring node of a name: itself, or for a part "<op>.<output>" its op.
  auto source_of = [&](const Decl& consumer, const std::string& name) -> std::size_t {
    if (const auto it = index.find(name); it != index.end()) return it->second;
    if (const auto dot = name.rfind('.'); dot != std::string::npos)
      if (const auto it = index.find(std::string_view(name).substr(0, dot));
          it != index.end() && decls_[it->second].kind == Decl::Kind::op)
        return it->second;
    throw GraphError(consumer.origin.empty() ? "node '" + consumer.name + "'" : consumer.origin,
                     fmt::format("input '{}' names no node{}", name, suggestion(name, known)));
  };
  Digraph g(n);
  for (std::size_t i = 0; i < n; ++i)
    for (const auto& in : decls_[i].inputs) boost::add_edge(source_of(decls_[i], in), i, g);

  // A cycle, by depth-first search, printed as its path.
  std::vector<std::size_t> parent(n, n), cycle;
  std::vector<boost::default_color_type> colour(n);
  boost::depth_first_search(g, boost::visitor(CycleFinder{{}, &parent, &cycle})
                                   .color_map(boost::make_iterator_property_map(colour.begin(),
                                                                                boost::get(boost::vertex_index, g))));
  if (!cycle.empty()) {
    // Start the printed cycle at the node declared first in it.
    cycle.pop_back();
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    cycle.push_back(cycle.front());
    std::vector<std::string> names;
    for (std::size_t v : cycle) names.push_back(decls_[v].name);
    const Decl& first = decls_[cycle.front()];
    throw GraphError(first.origin.empty() ? "graph" : first.origin,
                     fmt::format("cycle: {} (a node cannot depend on itself)", fmt::join(names, " -> ")));
  }

  // Kahn's algorithm, the smallest name first among ready nodes.
  std::vector<std::size_t> waiting(n, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (auto [e, end] = boost::out_edges(i, g); e != end; ++e) ++waiting[boost::target(*e, g)];
  auto by_name = [&](std::size_t a, std::size_t b) { return decls_[a].name > decls_[b].name; };
  std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(by_name)> ready(by_name);
  for (std::size_t i = 0; i < n; ++i)
    if (waiting[i] == 0) ready.push(i);
  Graph graph;
  while (!ready.empty()) {
    const Decl& d = decls_[ready.top()];
    const std::size_t v = ready.top();
    ready.pop();
    switch (d.kind) {
      case Decl::Kind::input: graph.add_input(d.name, d.shape, d.origin, d.index); break;
      case Decl::Kind::param: graph.add_param(d.name, d.shape, d.init, d.origin); break;
      case Decl::Kind::op: {
        std::vector<NodeId> ins;
        for (const auto& in : d.inputs) ins.push_back(graph.at(in));
        graph.add_op(d.op, std::move(ins), d.attrs, d.name, d.origin);
        break;
      }
    }
    for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
      if (--waiting[boost::target(*e, g)] == 0) ready.push(boost::target(*e, g));
  }
  if (!loss_.empty()) graph.set_loss(graph.at(loss_));
  for (const auto& o : outputs_) graph.add_output(graph.at(o));
  return graph;
}

}  // namespace opgraph
