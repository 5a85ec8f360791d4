// ONNX export: walks the nodes the exported outputs depend on in topological order and
// asks each op's lowering for its ONNX nodes; writes the ModelProto with Debian's ONNX
// protobuf classes (libonnx-dev), not a codec of our own.
#include <opgraph/frontends/onnx/onnx.hpp>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <opgraph/frontends/files.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/lowering.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph {

namespace {

int onnx_type(DType d) {
  switch (d) {
    case DType::f32: return onnx::TensorProto::FLOAT;
    case DType::f64: return onnx::TensorProto::DOUBLE;
    case DType::i64: return onnx::TensorProto::INT64;
  }
  return onnx::TensorProto::FLOAT;
}

void set_tensor(onnx::TensorProto* t, const std::string& name, const Tensor& value) {
  t->set_name(name);
  t->set_data_type(onnx_type(value.dtype()));
  for (std::int64_t d : value.shape().dims()) t->add_dims(d);
  t->set_raw_data(std::string(static_cast<const char*>(value.raw()), value.nbytes()));  // little-endian, as ONNX wants
}

void set_value_info(onnx::ValueInfoProto* v, const std::string& name, const Shape& shape, DType dtype) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx_type(dtype));
  auto* s = tensor->mutable_shape();
  for (std::int64_t d : shape.dims()) {
    auto* dim = s->add_dim();
    if (is_symbolic(d))
      dim->set_dim_param(dim_name(d));
    else
      dim->set_dim_value(d);
  }
}

void set_attr(onnx::AttributeProto* a, const std::string& name, const AttrValue& v) {
  a->set_name(name);
  switch (v.type()) {
    case AttrType::integer:
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(v.as_int());
      break;
    case AttrType::boolean:
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(v.as_bool() ? 1 : 0);
      break;
    case AttrType::real:
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(static_cast<float>(v.as_float()));
      break;
    case AttrType::string:
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(v.as_string());
      break;
    case AttrType::int_list:
      a->set_type(onnx::AttributeProto::INTS);
      for (std::int64_t i : v.as_ints()) a->add_ints(i);
      break;
    case AttrType::real_list:
      a->set_type(onnx::AttributeProto::FLOATS);
      for (double f : v.as_reals()) a->add_floats(static_cast<float>(f));
      break;
    case AttrType::none:
      break;
  }
}

/// The nodes exported as outputs: as asked, or the prediction head and the graph's outputs.
std::vector<NodeId> export_outputs(const Graph& graph, const OnnxExportOptions& options) {
  std::vector<NodeId> out;
  auto add = [&](NodeId id) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (!options.outputs.empty()) {
    for (const auto& name : options.outputs) add(graph.at(name));
    return out;
  }
  const PredictionHead head = prediction_head(graph);
  if (head.exists) add(head.node);
  for (NodeId id : graph.outputs())
    if (!graph.loss() || id != *graph.loss()) add(id);
  if (out.empty())
    throw GraphError("export", "the model has no output to export: declare one with 'output' or give a loss that "
                               "reads a prediction");
  return out;
}

}  // namespace

std::string export_onnx(const Graph& graph, const Params& params, const OnnxExportOptions& options) {
  if (options.opset < 13 || options.opset > 17)
    throw GraphError("export", fmt::format("opset {} is not supported: opgraph writes opsets 13 to 17", options.opset));
  const DType dtype = params.dtype();
  const std::vector<NodeId> outputs = export_outputs(graph, options);
  const std::vector<char> needed = graph.ancestors(outputs, false);
  // A model file is run by feeding it: outputs computed from the parameters alone would
  // make a file without inputs, which no runtime can give data to (and opgraph refuses).
  const std::vector<NodeId> inputs = graph.inputs();
  if (std::none_of(inputs.begin(), inputs.end(), [&](NodeId id) { return needed[id] != 0; })) {
    std::vector<std::string> names;
    for (NodeId id : outputs) names.push_back(graph.node(id).name);
    throw GraphError("export", fmt::format("the exported outputs ({}) read no input, only parameters: connect the "
                                           "model's input to them, or name other outputs",
                                           fmt::join(names, ", ")));
  }

  onnx::ModelProto model;
  model.set_ir_version(8);  // ONNX 1.10+; opsets 13-17 need at least IR 7
  model.set_producer_name("opgraph");
  model.set_producer_version("0.1.0");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(options.name);

  std::unordered_set<std::string> taken;
  for (NodeId id = 0; id < graph.size(); ++id) taken.insert(graph.node(id).name);
  std::unordered_set<std::string> written_states;

  for (NodeId id : graph.topological_order()) {
    if (!needed[id]) continue;
    const Node& n = graph.node(id);
    switch (n.kind) {
      case NodeKind::input:
        set_value_info(g->add_input(), n.name, n.shape, n.index ? DType::i64 : dtype);
        continue;
      case NodeKind::param:
        set_tensor(g->add_initializer(), n.name, params.at(n.name));
        continue;
      case NodeKind::part:
        continue;  // written by its op
      case NodeKind::op:
        break;
    }
    if (!n.op->lower)
      throw GraphError(fmt::format("node '{}'", n.name),
                       fmt::format("{}: cannot be exported: the op has no ONNX lowering (a plugin op can declare one "
                                   "with OpBuilder::lower; see docs/onnx.md)",
                                   n.op->name));
    std::vector<LoweringContext::Value> ins, outs;
    for (NodeId in : n.inputs) {
      const Node& i = graph.node(in);
      ins.push_back({i.name, i.shape, i.index ? DType::i64 : dtype});
    }
    if (n.parts.empty()) {
      outs.push_back({n.name, n.shape, n.index ? DType::i64 : dtype});
    } else {
      for (NodeId p : n.parts) {
        const Node& part = graph.node(p);
        outs.push_back({part.name, part.shape, part.index ? DType::i64 : dtype});
      }
    }
    std::vector<std::string> states;
    for (const auto& s : n.op->states) {
      const std::string name = n.name + "." + s.name;
      states.push_back(name);
      if (written_states.insert(name).second) set_tensor(g->add_initializer(), name, params.at(name));
    }
    std::vector<std::string> attr_names;
    for (const auto& a : n.op->attrs) attr_names.push_back(a.name);
    LoweringContext c(n.op->name, n.name, options.opset, std::move(ins), std::move(outs), std::move(states),
                      std::move(attr_names), n.attrs, dtype);
    c.taken = &taken;
    n.op->lower(c);
    for (const auto& [name, t] : c.constants) set_tensor(g->add_initializer(), name, t);
    for (const LoweredNode& ln : c.nodes) {
      onnx::NodeProto* node = g->add_node();
      node->set_op_type(ln.type);
      node->set_domain(ln.domain);
      node->set_name(ln.outputs.empty() ? n.name : ln.outputs.front());
      for (const auto& i : ln.inputs) node->add_input(i);
      for (const auto& o : ln.outputs) node->add_output(o);
      for (const auto& [k, v] : ln.attrs) set_attr(node->add_attribute(), k, v);
    }
  }
  for (NodeId id : outputs) {
    const Node& n = graph.node(id);
    set_value_info(g->add_output(), n.name, n.shape, n.index ? DType::i64 : dtype);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw DataError("export", "the ONNX model could not be serialised");
  return bytes;
}

OnnxCheckCase onnx_check_case(const OpDef& op, std::size_t case_index, std::uint64_t seed) {
  const CheckInstance inst = check_instance(op, case_index, seed);
  Graph g;
  std::vector<NodeId> ids;
  OnnxCheckCase out;
  out.config = inst.config;
  for (std::size_t i = 0; i < inst.inputs.size(); ++i) {
    const std::string name = check_input_name(op, i);
    const bool index = inst.inputs[i].dtype() == DType::i64;
    ids.push_back(g.add_input(name, inst.shapes[i], {}, index));
    out.inputs.emplace_back(name, index ? inst.inputs[i] : inst.inputs[i].to(DType::f32));
  }
  const NodeId y = g.add_op(op.name, ids, inst.attrs, "y");
  std::vector<std::string> names;
  if (g.node(y).parts.empty()) {
    g.add_output(y);
    names.push_back("y");
  } else {
    for (NodeId p : g.node(y).parts) {
      g.add_output(p);
      names.push_back(g.node(p).name);
    }
  }
  Params params = g.init_params(seed, DType::f32);
  PlanOptions po;
  po.mode = Mode::eval;
  po.backward = false;
  po.seed = seed;
  Plan plan(g, params, po);
  for (const auto& [name, t] : out.inputs) plan.set_input(name, t);
  plan.forward();
  for (const auto& name : names) out.outputs.emplace_back(name, plan.value(name).clone());
  OnnxExportOptions eo;
  eo.outputs = names;
  eo.name = op.name;
  out.bytes = export_onnx(g, params, eo);
  return out;
}

void save_onnx(const std::string& path, const Graph& graph, const Params& params, const OnnxExportOptions& options) {
  write_file_atomic(path, export_onnx(graph, params, options));
}

}  // namespace opgraph
