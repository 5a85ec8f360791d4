// Graph dumps: DOT, JSON and annotated .og; SVG through Graphviz.
#include <opgraph/frontends/dump.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

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

std::string dump_dot(const Graph& g, const DumpOptions& o) {
  std::string out = "digraph opgraph {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
  double slowest = 0.0;
  for (const auto& [name, s] : o.node_seconds) slowest = std::max(slowest, s);
  for (NodeId id : g.topological_order()) {
    const Node& n = g.node(id);
    const std::string name = dot_escape(n.name), shape = shown(n, o).str();
    if (n.kind == NodeKind::input) {
      out += fmt::format("  \"{}\" [shape=parallelogram, style=filled, fillcolor=\"#dbeafe\", label=\"{}\\n{}\\n{}\"];\n",
                         name, name, n.name == o.labels ? "labels" : "input", shape);
    } else if (n.kind == NodeKind::param) {
      out += fmt::format("  \"{}\" [shape=ellipse, style=filled, fillcolor=\"#fef3c7\", label=\"{}\\nparam {}\\n{}\"];\n",
                         name, name, shape, dot_escape(n.init.str()));
    } else if (n.kind == NodeKind::part) {
      out += fmt::format("  \"{}\" [shape=box, style=\"filled\", fillcolor=\"#ecfccb\", fontsize=9, label=\"{}\\n{}\"];\n", name,
                         name, shape);
    } else {
      std::string fill = "#f3f4f6";
      std::string timing;
      if (const auto it = o.node_seconds.find(n.name); it != o.node_seconds.end() && slowest > 0) {
        fill = heat(it->second / slowest);
        timing = it->second >= 1e-3 ? fmt::format("\\n{:.2f} ms", 1e3 * it->second)
                                     : fmt::format("\\n{:.1f} us", 1e6 * it->second);
      }
      const bool is_loss = g.loss() && *g.loss() == id;
      const bool is_output = std::find(g.outputs().begin(), g.outputs().end(), id) != g.outputs().end();
      out += fmt::format("  \"{}\" [shape=box, style=\"rounded,filled{}\", fillcolor=\"{}\"{}, label=\"{}\\n{}\\n{}{}\"];\n",
                         name, is_output ? ",bold" : "", fill, is_loss ? ", peripheries=2, color=\"#b91c1c\"" : "", name,
                         n.op->name, shape, timing);
    }
  }
  for (NodeId id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    for (std::size_t slot = 0; slot < n.inputs.size(); ++slot) {
      const Node& in = g.node(n.inputs[slot]);
      out += fmt::format("  \"{}\" -> \"{}\" [label=\"{}\"];\n", dot_escape(in.name), dot_escape(n.name),
                         shown(in, o).str());
    }
  }
  if (o.backward) {
    // Every value that receives a gradient gets a gradient node "d:<name>" (a "+" when
    // several vjps feed it: the engine sums them); each vjp reads its node's gradient and
    // the forward values it saved, and writes its inputs' gradients.
    Params params = g.init_params(0);
    const Plan plan = backward_plan(g, params, o);
    const NodeId loss = *g.loss();
    std::map<NodeId, int> sources;
    sources[loss] = 1;  // the seed
    for (const auto& step : plan.backward_steps()) {
      for (NodeId t : step.writes) ++sources[t];
      for (NodeId t : step.adds) ++sources[t];
    }
    out += "  subgraph cluster_backward {\n    label=\"backward pass\"; style=dashed; color=\"#9ca3af\";\n";
    for (const auto& [id, count] : sources) {
      const std::string name = dot_escape(g.node(id).name);
      if (id == loss)
        out += fmt::format("    \"d:{}\" [shape=box, style=filled, fillcolor=\"#fee2e2\", label=\"d{} = 1\"];\n", name, name);
      else if (count > 1)
        out += fmt::format("    \"d:{}\" [shape=circle, style=filled, fillcolor=\"#fde68a\", label=\"+\\nd{}\\n{} terms\"];\n",
                           name, name, count);
      else
        out += fmt::format("    \"d:{}\" [shape=box, style=filled, fillcolor=\"#fee2e2\", label=\"d{}\\n{}\"];\n", name,
                           name, plan.shape(id).str());
    }
    for (const auto& step : plan.backward_steps()) {
      const Node& n = g.node(step.node);
      const std::string name = dot_escape(n.name);
      out += fmt::format("    \"vjp:{}\" [shape=box, style=\"rounded,filled\", fillcolor=\"#fecaca\", label=\"vjp {}\\n{}\"];\n",
                         name, n.op->name, name);
      out += fmt::format("    \"d:{}\" -> \"vjp:{}\" [color=\"#b91c1c\"];\n", name, name);
      for (NodeId t : step.writes)
        out += fmt::format("    \"vjp:{}\" -> \"d:{}\" [color=\"#b91c1c\", label=\"writes\"];\n", name,
                           dot_escape(g.node(t).name));
      for (NodeId t : step.adds)
        out += fmt::format("    \"vjp:{}\" -> \"d:{}\" [color=\"#b91c1c\", label=\"adds\"];\n", name,
                           dot_escape(g.node(t).name));
    }
    out += "  }\n";
    for (const auto& step : plan.backward_steps()) {
      const std::string name = dot_escape(g.node(step.node).name);
      for (NodeId r : step.reads)
        out += fmt::format("  \"{}\" -> \"vjp:{}\" [style=dashed, color=\"#6b7280\", label=\"saved\"];\n",
                           dot_escape(g.node(r).name), name);
      if (step.reads_workspace)
        out += fmt::format("  \"{}\" -> \"vjp:{}\" [style=dashed, color=\"#6b7280\", label=\"workspace\"];\n", name, name);
    }
  }
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
