// Registry storage, op staging at load time, and OpDef/OpBuilder/ShapeContext helpers.
#include <opgraph/graph/registry.hpp>

#include <algorithm>
#include <mutex>

#include <dlfcn.h>

namespace opgraph {

namespace {

// Ops staged by static initialisers (OPGRAPH_OP) and not yet moved into the registry.
struct Stage {
  std::mutex mutex;
  std::vector<detail::StagedOp> pending;  // built-in or program ops
  std::vector<detail::StagedOp>* capture = nullptr;  // set while a plugin loads
  bool has_pending = false;
  std::string error;  // why the built-in ops could not be registered, if they could not
};

Stage& stage() {
  static Stage s;
  return s;
}

}  // namespace

}  // namespace opgraph

extern "C" void opgraph_stage_op(std::uint32_t abi, void* op_def) {
  auto& s = opgraph::stage();
  std::lock_guard lock(s.mutex);
  const opgraph::detail::StagedOp entry{abi, static_cast<const opgraph::OpDef*>(op_def)};
  if (s.capture) {
    s.capture->push_back(entry);
  } else {
    s.pending.push_back(entry);
    s.has_pending = true;
  }
}

namespace opgraph {

namespace detail {

void begin_capture() {
  Registry::global();  // settle built-in ops first so they are not mistaken for the plugin's
  auto& s = stage();
  std::lock_guard lock(s.mutex);
  s.capture = new std::vector<StagedOp>();
}

std::vector<StagedOp> end_capture() {
  auto& s = stage();
  std::lock_guard lock(s.mutex);
  std::vector<StagedOp> captured = std::move(*s.capture);
  delete s.capture;
  s.capture = nullptr;
  return captured;
}

[[noreturn]] void unknown_attr(const OpDef& op, std::string_view name) {
  std::vector<std::string> known;
  for (const auto& a : op.attrs) known.push_back(a.name);
  throw GraphError(op.name, fmt::format("unknown attribute '{}'{}", name, suggestion(name, known)));
}

}  // namespace detail

Registry& Registry::global() {
  static Registry registry;
  registry.take_staged();
  auto& s = stage();
  std::lock_guard lock(s.mutex);
  if (!s.error.empty()) throw GraphError(s.error);
  return registry;
}

void Registry::take_staged() const {
  // Built-in ops are staged while the library loads; move them in on first use. A
  // failure here (two built-in ops with one name) is thrown to every caller, never aborts.
  auto& s = stage();
  // One thread at a time moves staged ops in, and the others wait until it is done: a
  // second thread must not find the staging area empty and go on to look up an op that
  // is not in the registry yet.
  static std::mutex taking;
  std::lock_guard take(taking);
  std::vector<detail::StagedOp> pending;
  {
    std::lock_guard lock(s.mutex);
    if (!s.has_pending) return;
    pending = std::move(s.pending);
    s.pending.clear();
    s.has_pending = false;
  }
  // Ops defined in this library are "built-in"; ops a program defines itself (OPGRAPH_OP
  // in its own sources) carry the program's path, found from where their definition lives.
  Dl_info self{};
  dladdr(reinterpret_cast<void*>(&opgraph_stage_op), &self);
  std::vector<OpDef> defs;
  for (const auto& p : pending) {
    if (p.abi != kPluginAbi) continue;  // cannot happen in-process: same headers, same version
    OpDef def = *p.def;
    Dl_info where{};
    if (def.source.empty()) {
      const bool found = dladdr(static_cast<const void*>(p.def), &where) != 0 && where.dli_fname;
      def.source = !found || !self.dli_fname || std::string_view(where.dli_fname) == self.dli_fname
                       ? "built-in"
                       : std::string(where.dli_fname);
    }
    defs.push_back(std::move(def));
  }
  try {
    const_cast<Registry*>(this)->add_all(std::move(defs));
  } catch (const GraphError& e) {
    std::lock_guard lock(s.mutex);
    s.error = e.what();
  }
}

void Registry::validate(const OpDef& d) const {
  // Called with the unique lock held: look at ops_ directly, not through find().
  if (d.name.empty()) throw GraphError("op registration: an op has no name");
  if (!d.definition_error.empty()) throw GraphError(d.name, "op definition: " + d.definition_error);
  for (const auto& op : ops_)
    if (op->name == d.name)
      throw GraphError(d.name, fmt::format("op '{}' is already registered (by {})", d.name, op->source));
  auto incomplete = [&](std::string_view what) {
    throw GraphError(d.name, fmt::format("op definition: no {}", what));
  };
  if (d.doc.empty()) incomplete("doc");
  if (!d.shapes) incomplete("shape rule");
  if (!d.forward_f32 || !d.forward_f64) incomplete("forward kernel");
  if (d.outputs.empty()) incomplete("output");
  auto bad = [&](std::string what) { throw GraphError(d.name, "op definition: " + what); };
  for (std::size_t i = 0; i + 1 < d.inputs.size(); ++i)
    if (d.inputs[i].variadic) bad(fmt::format("variadic input '{}' must be the last", d.inputs[i].name));
  for (std::size_t i = 0; i < d.inputs.size(); ++i) {
    const auto& in = d.inputs[i];
    if (in.kind == ValueKind::index && in.differentiable)
      bad(fmt::format("index input '{}' cannot be differentiable", in.name));
    for (std::size_t j = 0; j < i; ++j)
      if (d.inputs[j].name == in.name) bad(fmt::format("two inputs named '{}'", in.name));
  }
  for (std::size_t i = 0; i + 1 < d.outputs.size(); ++i)
    if (d.outputs[i].variadic) bad(fmt::format("variadic output '{}' must be the last", d.outputs[i].name));
  for (std::size_t i = 0; i < d.outputs.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (d.outputs[j].name == d.outputs[i].name) bad(fmt::format("two outputs named '{}'", d.outputs[i].name));
  for (std::size_t i = 0; i < d.attrs.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (d.attrs[j].name == d.attrs[i].name) bad(fmt::format("two attributes named '{}'", d.attrs[i].name));
  for (const auto& a : d.attrs)
    if (a.check && !a.choices.empty()) bad(fmt::format("attribute '{}' has both choices and a check", a.name));
  for (const auto& st : d.states)
    if (!st.shape) bad(fmt::format("state '{}' has no shape rule", st.name));
  if (d.role.kind == OpRole::Kind::loss) {
    const int n = static_cast<int>(d.inputs.size());
    if (d.role.prediction < 0 || d.role.prediction >= n)
      bad(fmt::format("loss role reads prediction from input {}, but the op has {} inputs", d.role.prediction, n));
    if (d.role.labels >= n || d.role.labels < -1)
      bad(fmt::format("loss role reads labels from input {}, but the op has {} inputs", d.role.labels, n));
  }
  if (d.has_vjp() != static_cast<bool>(d.vjp_f32)) incomplete("f32 vjp");
  if (d.in_place >= 0) {
    const auto& in = d.inputs[static_cast<std::size_t>(d.in_place)];
    if (d.outputs.size() != 1 || d.outputs[0].variadic || d.outputs[0].kind != ValueKind::real)
      bad(fmt::format("in place over '{}' needs exactly one real output", in.name));
    if (in.kind != ValueKind::real || in.variadic)
      bad(fmt::format("in place over '{}': only a single real input can be overwritten", in.name));
  }
}

const OpDef& Registry::add(OpDef def) {
  const std::string name = def.name;
  std::vector<OpDef> one;
  one.push_back(std::move(def));
  add_all(std::move(one));
  return *find(name);
}

void Registry::add_all(std::vector<OpDef> defs) {
  std::unique_lock lock(mutex_);
  for (std::size_t i = 0; i < defs.size(); ++i) {
    validate(defs[i]);
    for (std::size_t j = 0; j < i; ++j)
      if (defs[j].name == defs[i].name)
        throw GraphError(defs[i].name, fmt::format("op '{}' is registered twice (by {})", defs[i].name, defs[i].source));
  }
  for (auto& d : defs) ops_.push_back(std::make_unique<OpDef>(std::move(d)));
}

const OpDef* Registry::find(std::string_view name) const {
  std::shared_lock lock(mutex_);
  for (const auto& op : ops_)
    if (op->name == name) return op.get();
  return nullptr;
}

const OpDef& Registry::get(std::string_view name) const {
  if (const OpDef* op = find(name)) return *op;
  const auto known = names();
  throw GraphError(fmt::format("unknown op '{}'{}", name, suggestion(name, known)));
}

std::vector<const OpDef*> Registry::ops() const {
  std::shared_lock lock(mutex_);
  std::vector<const OpDef*> out;
  for (const auto& op : ops_) out.push_back(op.get());
  std::sort(out.begin(), out.end(), [](const OpDef* a, const OpDef* b) { return a->name < b->name; });
  return out;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const OpDef* op : ops()) out.push_back(op->name);
  return out;
}

// ---- OpDef, OpBuilder, ShapeContext ----

int OpDef::input_index(std::string_view input) const {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == input) return static_cast<int>(i);
  return -1;
}

int OpDef::attr_index(std::string_view attr) const { return detail::find_attr(attrs, attr); }

bool OpDef::saves_input(int i) const {
  return std::find(saved_inputs.begin(), saved_inputs.end(), i) != saved_inputs.end();
}

std::string OpDef::signature() const {
  std::string s = name + "(";
  for (std::size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + inputs[i].name + (inputs[i].variadic ? "..." : "");
  for (const auto& a : attrs) {
    s += (s.back() == '(' ? "" : ", ") + a.name + "=";
    s += a.choices.empty() ? a.default_value.str() : fmt::format("{}", fmt::join(a.choices, "|"));
  }
  return s + ")";
}

OpBuilder& OpBuilder::saves(std::initializer_list<std::string_view> inputs) {
  for (auto name : inputs) {
    const int i = def_.input_index(name);
    // An op file naming an undeclared input is a bug in that file; registering the op
    // reports it (static initialisers must not throw).
    if (i >= 0) def_.saved_inputs.push_back(i);
    else def_.definition_error = fmt::format("saves unknown input '{}'", name);
  }
  return *this;
}

OpBuilder& OpBuilder::in_place(std::string_view input) {
  const int i = def_.input_index(input);
  if (i >= 0) def_.in_place = i;
  else def_.definition_error = fmt::format("in place over unknown input '{}'", input);
  return *this;
}

OpBuilder& OpBuilder::domain(std::string_view input, Domain d) {
  const int i = def_.input_index(input);
  if (i >= 0) def_.domains[static_cast<std::size_t>(i)] = std::move(d);
  else def_.definition_error = fmt::format("domain for unknown input '{}'", input);
  return *this;
}

const AttrValue& ShapeContext::attr(std::string_view name) const {
  const int i = op_.attr_index(name);
  if (i < 0) detail::unknown_attr(op_, name);
  return attrs_[static_cast<std::size_t>(i)];
}

const std::string& ShapeContext::op_name() const { return op_.name; }

void ShapeContext::expect_equal(std::int64_t a, std::int64_t b, std::string_view what) const {
  if (a != b) fail("{}", what);
}

void ShapeContext::expect_rank(int i, int rank) const {
  if (in(i).rank() != rank)
    fail("input '{}' must have rank {}, got shape {}", op_.input(static_cast<std::size_t>(i)).name, rank, in(i));
}

int ShapeContext::axis(std::string_view name, int rank) const {
  const std::int64_t a = attr_int(name);
  if (a < -rank || a >= rank) {
    if (rank == 0) fail("{}={} but the input is a scalar, which has no axis", name, a);
    fail("{}={} is out of range for rank {} (use {}..{})", name, a, rank, -rank, rank - 1);
  }
  return static_cast<int>(a < 0 ? a + rank : a);
}

ShapeFn same_shape_as(int input) {
  return [input](const ShapeContext& c) { return c.in(input); };
}

ShapeFn scalar_shape() {
  return [](const ShapeContext&) { return Shape{}; };
}

}  // namespace opgraph
