// Graph dumps: DOT, JSON and annotated .og; SVG through Graphviz.
#include <opgraph/frontends/dump.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <tuple>

#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <opgraph/frontends/json.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan.hpp>

namespace opgraph {

namespace {

Shape shown(const Node& n, const DumpOptions& o) { return o.batch > 0 ? n.shape.bind(o.batch) : n.shape; }

/// A shape as JSON: sizes as numbers, symbolic dimensions as their names ("N", "T").
std::string json_shape(const Shape& shape) {
  std::vector<std::string> dims;
  for (auto d : shape.dims()) dims.push_back(is_symbolic(d) ? json::quote(dim_name(d)) : std::to_string(d));
  return json::array(dims);
}

/// An attribute value as JSON.
std::string json_attr(const AttrValue& v) {
  switch (v.type()) {
    case AttrType::none: return "null";
    case AttrType::integer: return std::to_string(v.as_int());
    case AttrType::real: return json::number(v.as_float());
    case AttrType::boolean: return v.as_bool() ? "true" : "false";
    case AttrType::string: return json::quote(v.as_string());
    case AttrType::int_list: {
      std::vector<std::string> items;
      for (auto i : v.as_ints()) items.push_back(std::to_string(i));
      return json::array(items);
    }
    case AttrType::real_list: {
      std::vector<std::string> items;
      for (auto r : v.as_reals()) items.push_back(json::number(r));
      return json::array(items);
    }
  }
  return "null";
}

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

/// The plan whose backward pass a dump shows: batch as asked (1 if symbolic).
Plan backward_plan(const Graph& g, Params& params, const DumpOptions& o) {
  if (!g.loss()) throw GraphError("dump", "the model has no loss, so there is no backward pass to show");
  return Plan(g, params, {.batch = o.batch > 0 ? o.batch : 1});
}

/// White through orange to red for the share of the slowest node's time.
std::string heat(double share) {
  const int g = static_cast<int>(255 - 170 * std::clamp(share, 0.0, 1.0));
  const int b = static_cast<int>(255 - 235 * std::clamp(share, 0.0, 1.0));
  return fmt::format("#ff{:02x}{:02x}", g, b);
}

}  // namespace

namespace {

/// Block instances as nested clusters: a node named "a.b.c" sits in cluster "a.b" (inside
/// "a"); a node named exactly like a cluster ("h1", the instance's result) sits in it.
struct Clusters {
  std::map<std::string, std::vector<NodeId>> members;  // cluster -> nodes directly in it
  std::map<NodeId, std::string> of;                    // node -> its innermost cluster ("" none)

  explicit Clusters(const Graph& g) {
    std::set<std::string> names;
    for (NodeId id = 0; id < g.size(); ++id) {
      const std::string& n = g.node(id).name;
      for (auto dot = n.find('.'); dot != std::string::npos; dot = n.find('.', dot + 1)) names.insert(n.substr(0, dot));
    }
    for (NodeId id = 0; id < g.size(); ++id) {
      const Node& node = g.node(id);
      std::string c = names.count(node.name) ? node.name : "";
      if (c.empty())
        if (const auto dot = node.name.rfind('.'); dot != std::string::npos) c = node.name.substr(0, dot);
      // A part belongs with its op.
      if (node.kind == NodeKind::part) c = of.count(node.inputs[0]) ? of[node.inputs[0]] : c;
      of[id] = c;
      if (!c.empty()) members[c].push_back(id);
    }
    for (const auto& name : names) members[name];  // clusters that only hold clusters
  }
  /// The outermost cluster a node sits in ("" none).
  std::string top(NodeId id) const {
    const std::string& c = of.at(id);
    return c.substr(0, c.find('.'));
  }
  /// Children clusters of `c` (one level down).
  std::vector<std::string> children(const std::string& c) const {
    std::vector<std::string> out;
    for (const auto& [name, nodes] : members)
      if (name.size() > c.size() + 1 && name.compare(0, c.size() + 1, c + ".") == 0 &&
          name.find('.', c.size() + 1) == std::string::npos)
        out.push_back(name);
    return out;
  }
};

std::string shape_of(const Graph& g, NodeId id, const DumpOptions& o) { return shown(g.node(id), o).str(); }

}  // namespace

std::string dump_dot(const Graph& g, const DumpOptions& o) {
  std::string out = "digraph opgraph {\n  rankdir=TB;\n  newrank=true;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
  double slowest = 0.0;
  for (const auto& [name, s] : o.node_seconds) slowest = std::max(slowest, s);
  const Clusters clusters(g);
  auto hidden = [&](NodeId id) {
    const Node& n = g.node(id);
    return o.hide_identity && n.kind == NodeKind::op && n.op->name == "identity";
  };
  // What an edge from `id` is drawn from: through hidden identities to their input, and to
  // the box of a collapsed block.
  std::function<NodeId(NodeId)> through = [&](NodeId id) { return hidden(id) ? through(g.node(id).inputs[0]) : id; };
  auto drawn = [&](NodeId id) {
    id = through(id);
    if (o.collapse && !clusters.top(id).empty()) return "block:" + clusters.top(id);
    return g.node(id).name;
  };

  auto node_line = [&](NodeId id) -> std::string {
    const Node& n = g.node(id);
    const std::string name = dot_escape(n.name), shape = shown(n, o).str();
    if (n.kind == NodeKind::input)
      return fmt::format("\"{}\" [shape=parallelogram, style=filled, fillcolor=\"#dbeafe\", label=\"{}\\n{}{}\\n{}\"];\n",
                         name, name, n.name == o.labels ? "labels" : "input", n.index ? " i64" : "", shape);
    if (n.kind == NodeKind::param)
      return fmt::format("\"{}\" [shape=ellipse, style=filled, fillcolor=\"#fef3c7\", label=\"{}\\nparam {}\\n{}\"];\n",
                         name, name, shape, dot_escape(n.init.str()));
    if (n.kind == NodeKind::part)
      return fmt::format("\"{}\" [shape=box, style=\"filled\", fillcolor=\"#ecfccb\", fontsize=9, label=\"{}\\n{}\"];\n",
                         name, name, shape);
    std::string fill = "#f3f4f6", timing;
    if (const auto it = o.node_seconds.find(n.name); it != o.node_seconds.end() && slowest > 0) {
      fill = heat(it->second / slowest);
      timing = it->second >= 1e-3 ? fmt::format("\\n{:.2f} ms", 1e3 * it->second)
                                   : fmt::format("\\n{:.1f} us", 1e6 * it->second);
    }
    const bool is_loss = g.loss() && *g.loss() == id;
    const bool is_output = std::find(g.outputs().begin(), g.outputs().end(), id) != g.outputs().end();
    return fmt::format("\"{}\" [shape=box, style=\"rounded,filled{}\", fillcolor=\"{}\"{}, label=\"{}\\n{}\\n{}{}\"];\n",
                       name, is_output ? ",bold" : "", fill, is_loss ? ", peripheries=2, color=\"#b91c1c\"" : "", name,
                       n.op->name, n.parts.empty() ? shape : fmt::format("{} outputs", n.parts.size()), timing);
  };

  // Forward nodes, cluster by cluster.
  std::function<void(const std::string&, int)> emit_cluster = [&](const std::string& c, int depth) {
    const std::string pad(static_cast<std::size_t>(2 * depth), ' ');
    if (!c.empty() && o.collapse) {
      // One box: the instance's name, its size, and the shape of its result.
      std::size_t count = 0;
      std::function<void(const std::string&)> tally = [&](const std::string& k) {
        count += clusters.members.at(k).size();
        for (const auto& child : clusters.children(k)) tally(child);
      };
      tally(c);
      const auto result = g.find(c);
      out += fmt::format("{}\"block:{}\" [shape=box3d, style=filled, fillcolor=\"#e0e7ff\", label=\"{}\\nblock, {} nodes{}\"];\n",
                         pad, dot_escape(c), dot_escape(c), count,
                         result ? "\\n" + shape_of(g, *result, o) : std::string());
      return;
    }
    if (!c.empty())
      out += fmt::format("{}subgraph \"cluster_{}\" {{\n{}  label=\"{}\"; style=\"rounded,dashed\"; color=\"#6366f1\"; "
                         "fontcolor=\"#4338ca\";\n",
                         pad, dot_escape(c), pad, dot_escape(c));
    const std::vector<NodeId> inside = c.empty() ? [&] {
      std::vector<NodeId> top;
      for (NodeId id : g.topological_order())
        if (clusters.of.at(id).empty()) top.push_back(id);
      return top;
    }()
                                                 : clusters.members.at(c);
    for (NodeId id : inside)
      if (!hidden(id)) out += pad + "  " + node_line(id);
    for (const auto& child : c.empty() ? [&] {
           std::vector<std::string> roots;
           for (const auto& [name, nodes] : clusters.members)
             if (name.find('.') == std::string::npos) roots.push_back(name);
           return roots;
         }()
                                       : clusters.children(c))
      emit_cluster(child, depth + 1);
    if (!c.empty()) out += pad + "}\n";
  };
  emit_cluster("", 0);

  // Forward edges, once per drawn pair (a collapsed block's inner edges disappear).
  std::set<std::pair<std::string, std::string>> seen;
  for (NodeId id : g.topological_order()) {
    const Node& n = g.node(id);
    if (hidden(id)) continue;
    for (NodeId in : n.inputs) {
      const std::string from = drawn(in), to = drawn(id);
      if (from == to || !seen.insert({from, to}).second) continue;
      out += fmt::format("  \"{}\" -> \"{}\" [label=\"{}\"];\n", dot_escape(from), dot_escape(to),
                         shape_of(g, through(in), o));
    }
  }
  if (!o.backward) return out + "}\n";

  // The backward pass: one node per vjp (per collapsed block), gradients as edges.
  Params params = g.init_params(0);
  const Plan plan = backward_plan(g, params, o);
  const NodeId loss = *g.loss();
  auto producer = [&](NodeId v) { return g.node(v).kind == NodeKind::part ? g.node(v).inputs[0] : v; };
  auto vjp_name = [&](NodeId id) {
    id = producer(through(id));
    if (o.collapse && !clusters.top(id).empty()) return "vjp:block:" + clusters.top(id);
    return "vjp:" + g.node(id).name;
  };
  std::map<NodeId, int> sources;  // gradient -> how many vjps write it (the seed counts for the loss)
  sources[loss] = 1;
  for (const auto& step : plan.backward_steps())
    for (const auto* list : {&step.writes, &step.adds})
      for (NodeId t : *list) ++sources[t];
  out += "  subgraph cluster_backward {\n    label=\"backward pass\"; style=dashed; color=\"#9ca3af\";\n";
  out += fmt::format("    \"seed\" [shape=box, style=filled, fillcolor=\"#fee2e2\", label=\"d{} = 1\"];\n",
                     dot_escape(g.node(loss).name));
  std::set<std::string> vjp_drawn;
  std::map<std::string, std::vector<std::string>> reads_of;
  for (const auto& step : plan.backward_steps()) {
    const std::string v = vjp_name(step.node);
    for (NodeId r : step.reads) reads_of[v].push_back(g.node(r).name);
  }
  for (const auto& step : plan.backward_steps()) {
    const std::string v = vjp_name(step.node);
    if (!vjp_drawn.insert(v).second) continue;
    const Node& n = g.node(step.node);
    std::string reads;
    if (!o.collapse && !reads_of[v].empty()) {
      auto& r = reads_of[v];
      std::sort(r.begin(), r.end());
      r.erase(std::unique(r.begin(), r.end()), r.end());
      reads = fmt::format("\\nreads {}", dot_escape(fmt::format("{}", fmt::join(r, ", "))));
    }
    // A vjp the plan left to another node's (a relu's to the pool after it, a pool's to
    // the convolution before it): drawn dashed, naming where it runs.
    const bool elsewhere = step.done_by != step.node && !(o.collapse && v.rfind("vjp:block:", 0) == 0);
    const std::string where =
        elsewhere ? fmt::format("\\ndone in {}'s vjp", dot_escape(g.node(step.done_by).name)) : std::string();
    const std::string label = o.collapse && v.rfind("vjp:block:", 0) == 0
                                  ? fmt::format("vjp {}", dot_escape(v.substr(10)))
                                  : fmt::format("vjp {}\\n{}{}{}", n.op->name, dot_escape(n.name), reads, where);
    out += fmt::format("    \"{}\" [shape=box, style=\"{}\", fillcolor=\"#fecaca\", label=\"{}\"];\n",
                       dot_escape(v), elsewhere ? "rounded,filled,dashed" : "rounded,filled", label);
  }
  // Where each gradient goes: the vjp of the node that produced the value, through a "+"
  // when several vjps write it; a parameter's or an input's gradient is a result.
  auto target_of = [&](NodeId t) -> std::string {
    const NodeId at = through(t);
    if (g.node(at).kind == NodeKind::param || g.node(at).kind == NodeKind::input) return "d:" + g.node(at).name;
    return vjp_name(at);
  };
  std::set<std::string> ends, sums;
  std::set<std::tuple<std::string, std::string, std::string>> edges;
  auto edge = [&](const std::string& from, const std::string& to, const std::string& label) {
    if (from == to || !edges.insert({from, to, label}).second) return;
    out += fmt::format("    \"{}\" -> \"{}\" [color=\"#b91c1c\", fontcolor=\"#991b1b\", label=\"{}\"];\n",
                       dot_escape(from), dot_escape(to), label);
  };
  auto deliver = [&](const std::string& from, NodeId t) {
    const std::string shape = shape_of(g, t, o);
    std::string to = target_of(t);
    if (to.rfind("d:", 0) == 0) ends.insert(to);
    if (sources[t] > 1 && !(o.collapse && from == to)) {
      const std::string plus = "sum:" + g.node(t).name;
      if (sums.insert(plus).second) {
        out += fmt::format("    \"{}\" [shape=circle, style=filled, fillcolor=\"#fde68a\", label=\"+\\n{}\"];\n",
                           dot_escape(plus), sources[t]);
        edge(plus, to, shape);
      }
      to = plus;
    }
    edge(from, to, shape);
  };
  deliver("seed", loss);
  for (const auto& step : plan.backward_steps())
    for (const auto* list : {&step.writes, &step.adds})
      for (NodeId t : *list) deliver(vjp_name(step.node), t);
  for (const auto& e : ends)
    out += fmt::format("    \"{}\" [shape=box, style=filled, fillcolor=\"#fee2e2\", fontsize=9, label=\"d{}\"];\n",
                       dot_escape(e), dot_escape(e.substr(2)));
  out += "  }\n";
  return out + "}\n";
}

std::string dump_json(const Graph& g, const DumpOptions& o) {
  std::vector<std::string> nodes, edges;
  for (NodeId id : g.topological_order()) {
    const Node& n = g.node(id);
    json::Object obj;
    obj.add("name", n.name);
    obj.add("kind", n.kind == NodeKind::input ? (n.name == o.labels ? "labels" : "input")
                    : n.kind == NodeKind::param ? "param"
                    : n.kind == NodeKind::part  ? "part"
                                                : "op");
    if (n.kind == NodeKind::op) obj.add("op", n.op->name);
    obj.raw("shape", json_shape(shown(n, o)));
    obj.add("dtype", n.index ? "i64" : "real");
    if (n.kind == NodeKind::param) obj.add("init", n.init.str());
    if (n.kind == NodeKind::part) obj.add("output", n.part);
    if (n.kind == NodeKind::op) {
      json::Object attrs;
      for (std::size_t i = 0; i < n.op->attrs.size(); ++i) attrs.raw(n.op->attrs[i].name, json_attr(n.attrs[i]));
      obj.raw("attrs", attrs.str());
      if (!n.parts.empty()) {
        std::vector<std::string> parts;
        for (NodeId p : n.parts) parts.push_back(json::quote(g.node(p).name));
        obj.raw("parts", json::array(parts));
      }
      std::vector<std::string> ins;
      for (NodeId in : n.inputs) ins.push_back(json::quote(g.node(in).name));
      obj.raw("inputs", json::array(ins));
    }
    if (!n.origin.empty()) obj.add("origin", n.origin);
    nodes.push_back(obj.str());
    for (std::size_t slot = 0; slot < n.inputs.size(); ++slot)
      edges.push_back(json::Object()
                          .add("from", g.node(n.inputs[slot]).name)
                          .add("to", n.name)
                          .add("slot", static_cast<int>(slot))
                          .add("shape", shown(g.node(n.inputs[slot]), o).str())
                          .str());
  }
  std::vector<std::string> outputs;
  for (NodeId id : g.outputs()) outputs.push_back(json::quote(g.node(id).name));
  json::Object root;
  root.raw("nodes", json::array(nodes)).raw("edges", json::array(edges)).raw("outputs", json::array(outputs));
  root.raw("loss", g.loss() ? json::quote(g.node(*g.loss()).name) : "null");
  if (o.batch > 0) root.add("batch", o.batch);
  if (o.backward) {
    Params params = g.init_params(0);
    const Plan plan = backward_plan(g, params, o);
    std::vector<std::string> steps;
    auto names = [&](const std::vector<NodeId>& ids) {
      std::vector<std::string> out;
      for (NodeId id : ids) out.push_back(json::quote(g.node(id).name));
      return json::array(out);
    };
    for (const auto& s : plan.backward_steps())
      steps.push_back(json::Object()
                          .add("node", g.node(s.node).name)
                          .add("op", g.node(s.node).op->name)
                          .raw("reads", names(s.reads))
                          .add("reads_workspace", s.reads_workspace)
                          .raw("writes", names(s.writes))
                          .raw("adds", names(s.adds))
                          .add("done_by", g.node(s.done_by).name)
                          .str());
    root.raw("backward", json::array(steps));
  }
  return root.str() + "\n";
}

std::string dump_og(const Graph& g, const DumpOptions& o) {
  return print_model(g, {.labels = o.labels, .shapes = true, .batch = o.batch});
}

std::string render_svg(const std::string& dot) {
  namespace fs = std::filesystem;
  std::string program;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty() && program.empty()) {
      const auto colon = rest.find(':');
      const fs::path candidate = fs::path(std::string(rest.substr(0, colon))) / "dot";
      if (::access(candidate.c_str(), X_OK) == 0) program = candidate.string();
      rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    }
  }
  if (program.empty())
    throw Error("svg", "rendering needs Graphviz's 'dot' program, which is not installed (apt-get install graphviz); "
                       "--format dot writes the graph for it");
  std::string tmp = (fs::temp_directory_path() / "opgraph-dump-XXXXXX").string();
  const int fd = mkstemp(tmp.data());
  if (fd < 0) throw Error("svg", "cannot create a temporary file");
  const bool written = ::write(fd, dot.data(), dot.size()) == static_cast<ssize_t>(dot.size());
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    throw Error("svg", "cannot write a temporary file");
  }
  const std::string command = fmt::format("'{}' -Tsvg '{}' 2>&1", program, tmp);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string out;
  char buffer[4096];
  std::size_t n = 0;
  while (pipe && (n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0) out.append(buffer, n);
  const int status = pipe ? pclose(pipe.release()) : -1;
  ::unlink(tmp.c_str());
  if (status != 0) throw Error("svg", fmt::format("dot failed: {}", out.substr(0, 200)));
  return out;
}

}  // namespace opgraph
