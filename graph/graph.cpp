// Graph construction and validation, initialisers, parameter store.
#include <opgraph/graph/graph.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <queue>

#include <functional>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/filtered_graph.hpp>
#include <boost/graph/reverse_graph.hpp>

#include <opgraph/graph/random.hpp>
#include <opgraph/graph/registry.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

// ---- Init ----

std::string Init::str() const {
  auto num = [](double v) { return fmt::format("{}", v); };
  switch (kind) {
    case Kind::zeros: return "zeros";
    case Kind::constant: return "constant(" + num(a) + ")";
    case Kind::normal: return "normal(" + num(a) + ", " + num(b) + ")";
    case Kind::uniform: return "uniform(" + num(a) + ", " + num(b) + ")";
    case Kind::xavier: return "xavier";
    case Kind::he: return "he";
  }
  return "?";
}

void Init::fill(Tensor& t, Rng& rng) const {
  const Shape& s = t.shape();
  double fan_in = s.rank() == 0 ? 1.0 : static_cast<double>(s[0]);
  double fan_out = s.rank() == 0 ? 1.0 : static_cast<double>(s.last());
  if (s.rank() >= 3) {  // a convolution kernel [out, in/groups, kh, kw, ...]
    double field = 1.0;
    for (int d = 2; d < s.rank(); ++d) field *= static_cast<double>(s[d]);
    fan_in = static_cast<double>(s[1]) * field;
    fan_out = static_cast<double>(s[0]) * field;
  }
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    double v = 0.0;
    switch (kind) {
      case Kind::zeros: v = 0.0; break;
      case Kind::constant: v = a; break;
      case Kind::normal: v = rng.normal(a, b); break;
      case Kind::uniform: v = rng.uniform(a, b); break;
      case Kind::xavier: {
        const double limit = std::sqrt(6.0 / (fan_in + fan_out));
        v = rng.uniform(-limit, limit);
        break;
      }
      case Kind::he: v = rng.normal(0.0, std::sqrt(2.0 / fan_in)); break;
    }
    t.set(i, v);
  }
}

// ---- Params ----

bool Params::contains(std::string_view name) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == name; });
}

const Tensor& Params::at(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.first == name) return e.second;
  throw GraphError(fmt::format("no parameter '{}'{}", name, suggestion(name, names())));
}

Tensor& Params::at(std::string_view name) {
  return const_cast<Tensor&>(static_cast<const Params&>(*this).at(name));
}

void Params::put(std::string name, Tensor value, bool trainable) {
  if (value.dtype() != dtype_)
    throw GraphError(fmt::format("{} '{}' is {}, these parameters are {}", trainable ? "parameter" : "state", name,
                                 value.dtype(), dtype_));
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].first == name) {
      entries_[i].second = std::move(value);
      trainable_[i] = trainable ? 1 : 0;
      return;
    }
  entries_.emplace_back(std::move(name), std::move(value));
  trainable_.push_back(trainable ? 1 : 0);
}

// One path for both kinds: set_state once called set() and then fixed the flags up with
// `name` after it had been moved from (marking every entry named "" as state) and with
// trainable_.back() (the wrong entry when an existing name was replaced). A checkpoint
// with a parameter named "" then changed on each save and load (fuzz_checkpoint).
void Params::set(std::string name, Tensor value) { put(std::move(name), std::move(value), true); }

void Params::set_state(std::string name, Tensor value) { put(std::move(name), std::move(value), false); }

bool Params::trainable(std::string_view name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].first == name) return trainable_[i] != 0;
  return false;
}

std::vector<std::string> Params::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

Params Params::clone() const {
  Params p(dtype_);
  for (const auto& e : entries_) p.entries_.emplace_back(e.first, e.second.clone());
  p.trainable_ = trainable_;
  return p;
}

// ---- Graph ----

struct Edge {
  int slot = 0;  // which input of the consumer this edge feeds
};

struct Graph::Impl {
  using Adjacency = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, Node, Edge>;
  Adjacency g;
  std::map<std::string, NodeId, std::less<>> by_name;
  std::map<std::string, int, std::less<>> next_auto;  // per op: the k of the next "<op>_<k>" to try
};

Graph::Graph() : impl_(std::make_shared<Impl>()) {}
Graph::~Graph() = default;
Graph::Graph(const Graph& other) = default;
Graph& Graph::operator=(const Graph& other) = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;

Graph::Impl& Graph::mutable_impl() {
  // Shared with another Graph: this one takes its own copy before changing it. A count of
  // one cannot grow meanwhile: only a copy of this object could share it.
  if (impl_.use_count() > 1) impl_ = std::make_shared<Impl>(*impl_);
  return const_cast<Impl&>(*impl_);
}

namespace {

bool valid_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; });
}

std::string located(const std::string& origin, const std::string& fallback) {
  return origin.empty() ? fallback : origin;
}

/// What every shape in a graph must be: at most kMaxRank dimensions, each >= 0 (or N
/// where the batch is allowed), and few enough elements that f64 values of it, with N
/// bound to 1, fit in 2^62 bytes. Returns the problem, or "" when there is none.
std::string shape_problem(const Shape& shape, bool allow_batch) {
  if (shape.rank() > kMaxRank) return fmt::format("more than {} dimensions", kMaxRank);
  std::int64_t n = 1;
  for (auto d : shape.dims()) {
    if (d < 0 && is_dim_symbol(d)) {
      if (allow_batch) continue;
      return d == N ? std::string("the batch dimension N (parameters need fixed sizes)")
                    : fmt::format("the symbolic dimension {} (parameters need fixed sizes)", dim_name(d));
    }
    if (d < 0) return fmt::format("a negative dimension ({})", d);
    if (!mul_fits(n, d, &n)) return "more values than fit in memory (over 2^62 bytes)";
  }
  if (!mul_fits(n, 8, &n)) return "more values than fit in memory (over 2^62 bytes)";
  return {};
}

/// Checks and completes the attributes given for `op` (defaults filled, ints widened to floats).
std::vector<AttrValue> resolve_attrs(const OpDef& op, const Attrs& given, const std::string& where) {
  std::vector<AttrValue> values;
  for (const auto& spec : op.attrs) values.push_back(spec.default_value);
  std::vector<bool> seen(op.attrs.size(), false);
  auto fail = [&](const std::string& what) { throw GraphError(where, op.name + ": " + what); };
  for (const auto& [name, value] : given) {
    const int i = op.attr_index(name);
    if (i < 0) {
      std::vector<std::string> known;
      for (const auto& a : op.attrs) known.push_back(a.name);
      fail(fmt::format("unknown attribute '{}'{}", name, known.empty() ? std::string(" (it takes none)") : suggestion(name, known)));
    }
    const auto idx = static_cast<std::size_t>(i);
    if (seen[idx]) fail(fmt::format("attribute '{}' given twice", name));
    seen[idx] = true;
    const AttrSpec& spec = op.attrs[idx];
    AttrValue v = value;
    // An enumeration may have a choice called "none" (gelu's approximate=none, as in
    // PyTorch): the bare word none names it.
    if (v.is_none() && std::find(spec.choices.begin(), spec.choices.end(), "none") != spec.choices.end())
      v = AttrValue(std::string("none"));
    if (v.is_none()) {
      if (!spec.default_value.is_none()) fail(fmt::format("attribute '{}' cannot be none", name));
    } else if (spec.type == AttrType::real && v.type() == AttrType::integer) {
      v = AttrValue(v.as_float());
    } else if (spec.type == AttrType::int_list && v.type() == AttrType::integer) {
      v = AttrValue(IntList{v.as_int()});  // kernel=3 reads as kernel=[3]
    } else if (spec.type == AttrType::int_list && v.type() == AttrType::string && spec.check) {
      // A word in place of the list (conv2d's padding=same): the op's check below decides
      // which words it takes.
    } else if (spec.type == AttrType::real_list &&
               (v.type() == AttrType::integer || v.type() == AttrType::real || v.type() == AttrType::int_list)) {
      v = AttrValue(v.as_reals());
    } else if (v.type() != spec.type) {
      fail(fmt::format("attribute '{}' expects {}, got {}", name, to_string(spec.type),
                       v.type() == AttrType::string ? fmt::format("the string '{}'", v.as_string())
                                                    : fmt::format("{} {}", to_string(v.type()), v.str())));
    }
    if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), v.as_string()) == spec.choices.end())
      fail(fmt::format("attribute '{}' must be one of {}; got {}", name, fmt::join(spec.choices, ", "), v.str()));
    if (spec.check && !v.is_none())
      if (std::string problem = spec.check(v); !problem.empty())
        fail(fmt::format("attribute '{}' {}, got {}", name, problem, v.str()));
    values[idx] = std::move(v);
  }
  return values;
}

}  // namespace

void Graph::check_new_name(const std::string& name, const std::string& origin) const {
  if (!valid_name(name))
    throw GraphError(located(origin, ""), fmt::format("invalid node name '{}': a name starts with a letter or '_' "
                                                      "and holds letters, digits, '_' and '.'",
                                                      name));
  if (auto it = impl_->by_name.find(name); it != impl_->by_name.end()) {
    const std::string& first = node(it->second).origin;
    throw GraphError(located(origin, ""), fmt::format("duplicate node name '{}'{}", name,
                                                      first.empty() ? "" : " (first declared at " + first + ")"));
  }
}

NodeId Graph::add_node(Node node) {
  Impl& impl = mutable_impl();
  // A blank vertex, then the node moved in: add_vertex(node, g) would copy its strings
  // and lists.
  const NodeId id = boost::add_vertex(impl.g);
  impl.g[id] = std::move(node);
  impl.by_name.emplace(impl.g[id].name, id);
  for (std::size_t slot = 0; slot < impl.g[id].inputs.size(); ++slot)
    boost::add_edge(impl.g[id].inputs[slot], id, Edge{static_cast<int>(slot)}, impl.g);
  return id;
}

NodeId Graph::add_input(std::string name, Shape shape, std::string origin, bool index) {
  check_new_name(name, origin);
  if (auto problem = shape_problem(shape, true); !problem.empty())
    throw ShapeError(located(origin, "input '" + name + "'"), fmt::format("shape {} has {}", shape, problem));
  Node n;
  n.name = std::move(name);
  n.kind = NodeKind::input;
  n.shape = std::move(shape);
  n.index = index;
  n.origin = std::move(origin);
  return add_node(std::move(n));
}

NodeId Graph::add_param(std::string name, Shape shape, Init init, std::string origin) {
  check_new_name(name, origin);
  const std::string where = located(origin, "param '" + name + "'");
  if (shape.has_batch())
    throw ShapeError(where, fmt::format("shape {} holds the batch dimension N; parameters need fixed sizes", shape));
  for (auto d : shape.dims())
    if (d < 0 && !is_dim_symbol(d)) throw ShapeError(where, fmt::format("negative dimension in shape {}", shape));
  if (auto problem = shape_problem(shape, false); !problem.empty())
    throw ShapeError(where, origin.empty() ? fmt::format("shape {} has {}", shape, problem)
                                           : fmt::format("param '{}': shape {} has {}", name, shape, problem));
  Node n;
  n.name = std::move(name);
  n.kind = NodeKind::param;
  n.shape = std::move(shape);
  n.init = init;
  n.origin = std::move(origin);
  return add_node(std::move(n));
}

NodeId Graph::add_op(std::string_view op_name, std::vector<NodeId> inputs, Attrs attrs, std::string name,
                     std::string origin) {
  const OpDef* op = Registry::global().find(op_name);
  if (!op) {
    const auto known = Registry::global().names();
    throw GraphError(origin, fmt::format("unknown op '{}'{}", op_name, suggestion(op_name, known)));
  }
  if (name.empty()) {
    // "<op>_<k>" from a counter per op, so that naming n nodes costs n lookups, not n^2/2.
    int& k = mutable_impl().next_auto[op->name];
    do name = fmt::format("{}_{}", op->name, ++k);
    while (impl_->by_name.count(name));
  }
  check_new_name(name, origin);
  const std::string where = located(origin, "node '" + name + "'");

  // Arity: exactly the declared inputs, or at least one node for a variadic last input.
  const std::size_t fixed = op->inputs.size() - (op->variadic() ? 1 : 0);
  if (op->variadic() ? inputs.size() < fixed + 1 : inputs.size() != op->inputs.size()) {
    std::vector<std::string> in_names;
    for (const auto& i : op->inputs) in_names.push_back(i.variadic ? i.name + "..." : i.name);
    const std::size_t expected = op->variadic() ? fixed + 1 : op->inputs.size();
    throw GraphError(where, fmt::format("{}: expects {}{} input{} ({}), got {}", op->name,
                                        op->variadic() ? "at least " : "", expected, expected == 1 ? "" : "s",
                                        fmt::join(in_names, ", "), inputs.size()));
  }
  std::vector<Shape> shapes;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputSpec& spec = op->input(i);
    if (inputs[i] >= size())
      throw GraphError(where, fmt::format("{}: input '{}' is not a node of this graph", op->name, spec.name));
    const Node& in = node(inputs[i]);
    if (in.kind == NodeKind::op && !in.parts.empty())
      throw GraphError(where, fmt::format("{}: input '{}' is '{}', an op with {} outputs: use one of them ({})", op->name,
                                          spec.name, in.name, in.parts.size(), node(in.parts.front()).name));
    // Value kinds: reals where reals are declared, indices where indices are.
    if (spec.kind == ValueKind::real && in.index)
      throw GraphError(where, fmt::format("{}: input '{}' takes real values, but '{}' holds indices (i64)", op->name,
                                          spec.name, in.name));
    if (spec.kind == ValueKind::index && !in.index)
      throw GraphError(where, fmt::format("{}: input '{}' takes indices (i64), but '{}' holds real values: declare it "
                                          "with i64 (input {} {} i64)",
                                          op->name, spec.name, in.name, in.name, in.shape));
    shapes.push_back(in.shape);
  }
  Node n;
  n.attrs = resolve_attrs(*op, attrs, where);
  std::vector<Shape> out_shapes;
  try {
    out_shapes = op->shapes(ShapeContext(*op, shapes, n.attrs));
  } catch (const ShapeError& e) {
    throw ShapeError(where, e.detail());
  } catch (const GraphError& e) {
    throw GraphError(where, e.detail());
  }
  const std::string from = op->source == "built-in" || op->source.empty() ? "" : " (from " + op->source + ")";
  if (op->variadic_outputs() ? out_shapes.size() < op->outputs.size() : out_shapes.size() != op->outputs.size())
    throw ShapeError(where, fmt::format("{}: its shape rule{} returned {} shapes for {}{} outputs", op->name, from,
                                        out_shapes.size(), op->variadic_outputs() ? "at least " : "",
                                        op->outputs.size()));
  // The engine checks what every shape rule returns (a plugin's too): a negative or
  // huge dimension must never reach a kernel or a size computation.
  for (const Shape& shape : out_shapes)
    if (auto problem = shape_problem(shape, true); !problem.empty())
      throw ShapeError(where, fmt::format("{}: its shape rule{} returned {}, which has {}", op->name, from, shape,
                                          problem));
  // Every name is checked before anything is added: a failed call leaves the graph as it was.
  // Parts: one per output, named <node>.<output> (numbered for a variadic output). An op
  // with one declared output has none, unless that output is variadic.
  const bool has_parts = op->outputs.size() > 1 || op->variadic_outputs();
  auto part_name = [&](std::size_t k) {
    return op->output(k).variadic ? fmt::format("{}.{}", name, k - (op->outputs.size() - 1))
                                  : name + "." + op->outputs[k].name;
  };
  if (has_parts)
    for (std::size_t k = 0; k < out_shapes.size(); ++k) check_new_name(part_name(k), origin);
  n.name = name;
  n.kind = NodeKind::op;
  n.op = op;
  n.shape = out_shapes.front();
  n.index = op->outputs.front().kind == ValueKind::index;
  n.inputs = std::move(inputs);
  n.origin = origin;
  const NodeId id = add_node(std::move(n));
  if (has_parts) {
    // One part per output: what consumers use.
    std::vector<NodeId> parts;
    for (std::size_t k = 0; k < out_shapes.size(); ++k) {
      Node p;
      p.name = part_name(k);
      p.kind = NodeKind::part;
      p.shape = out_shapes[k];
      p.index = op->output(k).kind == ValueKind::index;
      p.inputs = {id};
      p.part = static_cast<int>(k);
      p.origin = origin;
      parts.push_back(add_node(std::move(p)));
    }
    mutable_impl().g[static_cast<Impl::Adjacency::vertex_descriptor>(id)].parts = std::move(parts);
  }
  return id;
}

void Graph::set_loss(NodeId id) {
  node(id);  // bounds check
  loss_ = id;
}

void Graph::add_output(NodeId id) {
  node(id);
  if (std::find(outputs_.begin(), outputs_.end(), id) == outputs_.end()) outputs_.push_back(id);
}

void Graph::rename(NodeId id, std::string name) {
  const Node& current = node(id);  // bounds check
  if (current.name == name) return;
  check_new_name(name, current.origin);
  Impl& impl = mutable_impl();
  Node& n = impl.g[static_cast<Impl::Adjacency::vertex_descriptor>(id)];
  impl.by_name.erase(n.name);
  n.name = std::move(name);
  impl.by_name.emplace(n.name, id);
}

std::size_t Graph::size() const { return boost::num_vertices(impl_->g); }

const Node& Graph::node(NodeId id) const {
  if (id >= size()) throw GraphError(fmt::format("node id {} out of range (graph has {} nodes)", id, size()));
  return impl_->g[static_cast<Impl::Adjacency::vertex_descriptor>(id)];
}

std::optional<NodeId> Graph::find(std::string_view name) const {
  if (auto it = impl_->by_name.find(name); it != impl_->by_name.end()) return it->second;
  return std::nullopt;
}

NodeId Graph::at(std::string_view name) const {
  if (auto id = find(name)) return *id;
  throw GraphError(fmt::format("no node '{}'{}", name, suggestion(name, names())));
}

std::vector<NodeId> Graph::consumers(NodeId id) const {
  std::vector<NodeId> out;
  for (auto [e, end] = boost::out_edges(id, impl_->g); e != end; ++e) out.push_back(boost::target(*e, impl_->g));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<NodeId> Graph::topological_order() const {
  // Kahn's algorithm on the adjacency list, smallest id first among the ready nodes: a
  // deterministic order that follows declaration order wherever dependencies allow, so
  // schedules, dumps and printed models read in the order the network was written.
  const auto& g = impl_->g;
  std::vector<std::size_t> waiting(size());
  std::priority_queue<NodeId, std::vector<NodeId>, std::greater<>> ready;
  for (NodeId v = 0; v < size(); ++v) {
    waiting[v] = boost::in_degree(v, g);
    if (waiting[v] == 0) ready.push(v);
  }
  std::vector<NodeId> order;
  order.reserve(size());
  while (!ready.empty()) {
    const NodeId v = ready.top();
    ready.pop();
    order.push_back(v);
    for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
      if (--waiting[boost::target(*e, g)] == 0) ready.push(boost::target(*e, g));
  }
  if (order.size() != size()) throw GraphError("graph", "the graph has a cycle");  // add_* cannot make one
  return order;
}

std::vector<NodeId> Graph::inputs() const {
  std::vector<NodeId> out;
  for (NodeId i = 0; i < size(); ++i)
    if (node(i).kind == NodeKind::input) out.push_back(i);
  return out;
}

std::vector<NodeId> Graph::params() const {
  std::vector<NodeId> out;
  for (NodeId i = 0; i < size(); ++i)
    if (node(i).kind == NodeKind::param) out.push_back(i);
  return out;
}

std::vector<std::string> Graph::names() const {
  std::vector<std::string> out;
  for (NodeId i = 0; i < size(); ++i) out.push_back(node(i).name);
  return out;
}

Params Graph::init_params(std::uint64_t seed, DType dtype) const {
  if (!is_float(dtype)) throw GraphError(fmt::format("parameters are f32 or f64, not {}", dtype));
  Params params(dtype);
  for (NodeId id : this->params()) {
    const Node& n = node(id);
    Tensor t(n.shape, dtype);
    Rng rng(seed ^ stable_hash(n.name));
    n.init.fill(t, rng);
    params.set(n.name, std::move(t));
  }
  for (NodeId id = 0; id < size(); ++id) {
    const Node& n = node(id);
    if (n.kind != NodeKind::op) continue;
    for (const auto& [name, shape, initial] : state_specs(id)) {
      Tensor t(shape, dtype);
      t.fill(initial);
      params.set_state(name, std::move(t));
    }
  }
  return params;
}

std::vector<Graph::StateSlot> Graph::state_specs(NodeId id) const {
  const Node& n = node(id);
  std::vector<StateSlot> out;
  if (n.kind != NodeKind::op || n.op->states.empty()) return out;
  std::vector<Shape> in_shapes;
  for (NodeId in : n.inputs) in_shapes.push_back(node(in).shape);
  for (const StateSpec& spec : n.op->states) {
    const Shape shape = spec.shape(ShapeContext(*n.op, in_shapes, n.attrs));
    if (shape.has_symbols())
      throw ShapeError(located(n.origin, "node '" + n.name + "'"),
                       fmt::format("{}: state '{}' has shape {}: state needs fixed sizes", n.op->name, spec.name, shape));
    out.push_back({n.name + "." + spec.name, shape, spec.initial});
  }
  return out;
}

std::vector<std::pair<std::string, Shape>> Graph::states() const {
  std::vector<std::pair<std::string, Shape>> out;
  for (NodeId id = 0; id < size(); ++id)
    for (const auto& s : state_specs(id)) out.emplace_back(s.name, s.shape);
  return out;
}

std::vector<std::string> Graph::unreachable_params() const {
  std::vector<std::string> out;
  if (!loss_) return out;
  const std::vector<char> reached = ancestors({*loss_}, true);
  for (NodeId id : params())
    if (!reached[id]) out.push_back(node(id).name);
  return out;
}

namespace {

/// Breadth-first search from `starts` over `g` (any Boost graph with the adjacency's
/// vertex indices), following only the edges `keep` accepts; the reached vertices.
template <class G, class Keep>
std::vector<char> reach(const G& g, std::size_t n, const std::vector<NodeId>& starts, const Keep& keep) {
  // The filter's iterators copy the predicate at every out-edge list: a pointer to it,
  // default-constructible as Boost asks, not a std::function (an allocation per copy, ten
  // per node of a 100 000-node graph).
  struct Filter {
    const Keep* keep = nullptr;
    bool operator()(const typename boost::graph_traits<G>::edge_descriptor& e) const { return (*keep)(e); }
  };
  const boost::filtered_graph<G, Filter> sub(g, Filter{&keep});
  std::vector<boost::default_color_type> colour(n, boost::white_color);
  auto colours = boost::make_iterator_property_map(colour.begin(), boost::get(boost::vertex_index, g));
  // breadth_first_visit, not breadth_first_search: the latter whitens every vertex first,
  // which would forget what the earlier starts reached.
  boost::queue<typename boost::graph_traits<G>::vertex_descriptor> queue;
  for (NodeId s : starts)
    if (colour[s] == boost::white_color)
      boost::breadth_first_visit(sub, boost::vertex(s, g), queue, boost::default_bfs_visitor(), colours);
  std::vector<char> out(n, 0);
  for (std::size_t v = 0; v < n; ++v) out[v] = colour[v] != boost::white_color;
  return out;
}

}  // namespace

std::vector<char> Graph::ancestors(const std::vector<NodeId>& targets, bool gradients_only) const {
  const auto& g = impl_->g;
  using Reversed = boost::reverse_graph<Impl::Adjacency>;
  const Reversed reversed(g);
  return reach(reversed, size(), targets, [&](const boost::graph_traits<Reversed>::edge_descriptor& e) {
    const auto underlying = boost::get(boost::edge_underlying, reversed, e);
    return !gradients_only || carries_gradient(&underlying);
  });
}

std::vector<char> Graph::descendants(const std::vector<NodeId>& sources, bool gradients_only) const {
  const auto& g = impl_->g;
  return reach(g, size(), sources, [&](const Impl::Adjacency::edge_descriptor& e) {
    return !gradients_only || carries_gradient(&e);
  });
}

bool Graph::carries_gradient(const void* edge) const {
  const auto& e = *static_cast<const Impl::Adjacency::edge_descriptor*>(edge);
  const auto& g = impl_->g;
  const Node& consumer = g[boost::target(e, g)];
  if (consumer.kind == NodeKind::part) return true;
  return consumer.kind == NodeKind::op && consumer.op->input(static_cast<std::size_t>(g[e].slot)).differentiable;
}

}  // namespace opgraph
