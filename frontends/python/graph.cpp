// og.Graph, og.Value, og.Init and og.op: the C++ Graph and nn:: helpers as Python sees them.
#include "graph.hpp"

#include <fmt/format.h>
#include <pybind11/stl.h>

#include <opgraph/frontends/dump.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/registry.hpp>

#include "arrays.hpp"
#include "bindings.hpp"

namespace opgraph::python {

AttrValue attr_from(const py::handle& v, const std::string& op, const std::string& name) {
  auto bad = [&](const std::string& what) {
    return py::type_error(fmt::format("{}: attribute '{}': {}", op, name, what));
  };
  if (v.is_none()) return AttrValue();
  if (py::isinstance<py::bool_>(v)) return AttrValue(v.cast<bool>());
  if (py::isinstance<py::int_>(v)) return AttrValue(v.cast<std::int64_t>());
  if (py::isinstance<py::float_>(v)) return AttrValue(v.cast<double>());
  if (py::isinstance<py::str>(v)) return AttrValue(v.cast<std::string>());
  if (const py::object plain = plain_scalar(v); !plain.is(v)) return attr_from(plain, op, name);  // NumPy scalar
  if (py::isinstance<py::sequence>(v)) {
    // Plain numbers: a list may hold NumPy scalars, and a 1-D NumPy array is one.
    py::list items;
    for (const py::handle& e : v) items.append(plain_scalar(e));
    bool all_int = true;
    for (const py::handle& e : items) {
      if (py::isinstance<py::bool_>(e) || !(py::isinstance<py::int_>(e) || py::isinstance<py::float_>(e)))
        throw bad(fmt::format("a list holds ints or floats, got {}", py::repr(e).cast<std::string>()));
      all_int = all_int && py::isinstance<py::int_>(e);
    }
    if (all_int) return AttrValue(items.cast<IntList>());
    return AttrValue(items.cast<RealList>());
  }
  throw bad(fmt::format("expected an int, float, bool, str or a list of numbers, got {}",
                        py::str(py::type::of(v).attr("__name__")).cast<std::string>()));
}

py::object attr_to_python(const AttrValue& a) {
  switch (a.type()) {
    case AttrType::none: return py::none();
    case AttrType::integer: return py::int_(a.as_int());
    case AttrType::real: return py::float_(a.as_float());
    case AttrType::string: return py::str(a.as_string());
    case AttrType::boolean: return py::bool_(a.as_bool());
    case AttrType::int_list: return py::cast(a.as_ints());
    case AttrType::real_list: return py::cast(a.as_reals());
  }
  return py::none();
}

Init init_from(const py::handle& obj) {
  if (py::isinstance<Init>(obj)) return obj.cast<Init>();
  if (py::isinstance<py::str>(obj)) {
    const std::string s = obj.cast<std::string>();
    if (s == "xavier" || s == "glorot") return Init::xavier();
    if (s == "he") return Init::he();
    if (s == "zeros") return Init::zeros();
    if (s == "ones") return Init::constant(1.0);
    throw py::value_error(fmt::format("unknown initialiser '{}': use 'xavier', 'he', 'zeros', 'ones' or og.Init "
                                      "(og.Init.normal(0, 0.01), og.Init.uniform(-1, 1), og.Init.constant(0.1))",
                                      s));
  }
  throw py::type_error("an initialiser is a name ('xavier', 'he', 'zeros') or an og.Init");
}

std::string& package_dir() {
  static std::string dir;
  return dir;
}

std::string python_origin() {
  // The caller's frame: the first one whose file is not part of the opgraph package.
  PyFrameObject* frame = PyEval_GetFrame();
  while (frame) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    std::string file = py::reinterpret_steal<py::object>(py::handle(reinterpret_cast<PyObject*>(code)))
                           .attr("co_filename")
                           .cast<std::string>();
    const int line = PyFrame_GetLineNumber(frame);
    if (package_dir().empty() || file.rfind(package_dir(), 0) != 0) {
      if (auto slash = file.rfind('/'); slash != std::string::npos) file = file.substr(slash + 1);
      return fmt::format("{}:{}", file, line);
    }
    frame = PyFrame_GetBack(frame);
    if (frame) Py_DECREF(frame);  // PyFrame_GetBack returns a new reference; the chain stays alive
  }
  return {};
}

py::object add_op(const std::string& name, const py::args& inputs, const py::kwargs& kwargs) {
  const OpDef& def = Registry::global().get(name);
  std::shared_ptr<Graph> graph;
  std::vector<NodeId> ids;
  auto take = [&](const py::handle& h) {
    if (!py::isinstance<PyValue>(h))
      throw py::type_error(fmt::format("{}: inputs are graph values (og.Value), got {}; constants enter through "
                                       "attributes or og.Graph.input",
                                       name, py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
    const PyValue& v = h.cast<const PyValue&>();
    if (graph && graph != v.graph) throw GraphError(fmt::format("{}: inputs belong to different graphs", name));
    graph = v.graph;
    ids.push_back(v.id);
  };
  for (const py::handle& h : inputs) {
    if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h))
      for (const py::handle& e : h) take(e);  // a variadic input given as a list
    else
      take(h);
  }
  if (!graph) throw py::type_error(fmt::format("{}: give at least one input value", name));
  std::string node_name;
  Attrs attrs;
  for (const auto& [k, v] : kwargs) {
    const std::string key = k.cast<std::string>();
    if (key == "name" && def.attr_index("name") < 0) {
      node_name = v.cast<std::string>();
      continue;
    }
    attrs.emplace_back(key, attr_from(v, name, key));
  }
  const NodeId id = graph->add_op(name, std::move(ids), std::move(attrs), node_name, python_origin());
  const Node& node = graph->node(id);
  if (node.parts.empty()) return py::cast(PyValue{graph, id});
  py::tuple parts(node.parts.size());
  for (std::size_t i = 0; i < node.parts.size(); ++i) parts[i] = py::cast(PyValue{graph, node.parts[i]});
  return parts;
}

namespace {

py::object scale(const PyValue& v, double factor, double offset) {
  py::kwargs kw;
  kw["factor"] = factor;
  if (offset != 0.0) kw["offset"] = offset;
  return add_op("scale", py::make_tuple(v), kw);
}

py::object binary(const char* op, const PyValue& a, const py::object& b, bool reflected) {
  if (py::isinstance<PyValue>(b)) {
    return reflected ? add_op(op, py::make_tuple(b, a), py::kwargs()) : add_op(op, py::make_tuple(a, b), py::kwargs());
  }
  if (!(py::isinstance<py::int_>(b) || py::isinstance<py::float_>(b))) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  const double c = b.cast<double>();
  const std::string o = op;
  if (o == "add") return scale(a, 1.0, c);
  if (o == "mul") return scale(a, c, 0.0);
  if (o == "sub") return reflected ? scale(a, -1.0, c) : scale(a, 1.0, -c);
  if (o == "div" && !reflected) return scale(a, 1.0 / c, 0.0);
  return py::reinterpret_borrow<py::object>(Py_NotImplemented);
}

std::string value_repr(const PyValue& v) {
  const Node& n = v.node();
  const char* kind = n.kind == NodeKind::input ? "input" : n.kind == NodeKind::param ? "param" : nullptr;
  return fmt::format("<og.Value '{}': {} {}{}>", n.name, kind ? kind : (n.op ? n.op->name.c_str() : "part"),
                     n.shape.str(), n.index ? " i64" : "");
}

}  // namespace

void bind_graph(py::module_& m) {
  py::class_<Init>(m, "Init", "How a parameter's first values are drawn (from the model's seed).")
      .def_static("zeros", &Init::zeros)
      .def_static("constant", &Init::constant, py::arg("value"))
      .def_static("normal", &Init::normal, py::arg("mean") = 0.0, py::arg("std") = 1.0)
      .def_static("uniform", &Init::uniform, py::arg("low"), py::arg("high"))
      .def_static("xavier", &Init::xavier, "Glorot/Xavier uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).")
      .def_static("he", &Init::he, "He/Kaiming normal: N(0, 2 / fan_in).")
      .def("__repr__", [](const Init& i) { return "og.Init(" + i.str() + ")"; })
      .def("__str__", &Init::str)
      .def("__eq__", [](const Init& a, const Init& b) { return a == b; });

  py::class_<PyValue>(m, "Value",
                      "A node of a graph under construction. Arithmetic (+, -, *, /, @, unary -) adds "
                      "nodes; any op is og.op(name, *values, **attributes).")
      .def_property_readonly("name", [](const PyValue& v) { return v.node().name; })
      .def_property_readonly("shape", [](const PyValue& v) { return shape_tuple(v.node().shape); })
      .def_property_readonly("op", [](const PyValue& v) -> py::object {
        const Node& n = v.node();
        if (n.kind == NodeKind::input) return py::str("input");
        if (n.kind == NodeKind::param) return py::str("param");
        if (n.kind == NodeKind::part) return py::str(v.graph->node(n.inputs.at(0)).op->name);
        return py::str(n.op->name);
      })
      .def_property_readonly("dtype", [](const PyValue& v) { return v.node().index ? "int64" : "real"; })
      .def_property_readonly("graph", [](const PyValue& v) { return PyGraph{v.graph}; })
      .def(
          "named",
          [](const PyValue& v, const std::string& name) {
            v.graph->rename(v.id, name);
            return v;
          },
          py::arg("name"), "Renames the node (plans, dumps and errors call it by this name); returns the value.")
      .def("__add__", [](const PyValue& a, const py::object& b) { return binary("add", a, b, false); })
      .def("__radd__", [](const PyValue& a, const py::object& b) { return binary("add", a, b, true); })
      .def("__sub__", [](const PyValue& a, const py::object& b) { return binary("sub", a, b, false); })
      .def("__rsub__", [](const PyValue& a, const py::object& b) { return binary("sub", a, b, true); })
      .def("__mul__", [](const PyValue& a, const py::object& b) { return binary("mul", a, b, false); })
      .def("__rmul__", [](const PyValue& a, const py::object& b) { return binary("mul", a, b, true); })
      .def("__truediv__", [](const PyValue& a, const py::object& b) { return binary("div", a, b, false); })
      .def("__rtruediv__", [](const PyValue& a, const py::object& b) { return binary("div", a, b, true); })
      .def("__matmul__", [](const PyValue& a, const PyValue& b) { return add_op("matmul", py::make_tuple(a, b), py::kwargs()); })
      .def("__neg__", [](const PyValue& a) { return scale(a, -1.0, 0.0); })
      .def("__repr__", &value_repr);

  py::class_<PyGraph>(m, "Graph",
                      "A network under construction: inputs, parameters and ops. og.Model(graph) gives it "
                      "parameter values.")
      .def(py::init<>())
      .def(
          "input",
          [](PyGraph& g, const std::string& name, const py::object& shape, const py::object& dtype) {
            const bool index = !dtype.is_none() && dtype_from(dtype) == DType::i64;
            return PyValue{g.graph, g.graph->add_input(name, shape_from(shape, "input '" + name + "'"),
                                                       python_origin(), index)};
          },
          py::arg("name"), py::arg("shape"), py::arg("dtype") = py::none(),
          "An input fed at run time: shape ('N', 784) where 'N' is the batch (other names are named "
          "dimensions); dtype 'int64' for indices (labels, token ids).")
      .def(
          "param",
          [](PyGraph& g, const std::string& name, const py::object& shape, const py::object& init) {
            return PyValue{g.graph, g.graph->add_param(name, shape_from(shape, "param '" + name + "'"),
                                                       init_from(init), python_origin())};
          },
          py::arg("name"), py::arg("shape"), py::arg("init") = "xavier", "A trainable parameter of fixed shape.")
      .def(
          "op", [](PyGraph&, const std::string& name, const py::args& a, const py::kwargs& k) { return add_op(name, a, k); },
          py::arg("op"), "Adds op `op` (see og.op).")
      .def(
          "set_loss",
          [](PyGraph& g, const PyValue& v) {
            if (v.graph != g.graph) throw GraphError("set_loss: the value belongs to another graph");
            g.graph->set_loss(v.id);
          },
          py::arg("value"))
      .def(
          "add_output",
          [](PyGraph& g, const PyValue& v) {
            if (v.graph != g.graph) throw GraphError("add_output: the value belongs to another graph");
            g.graph->add_output(v.id);
          },
          py::arg("value"), "Marks a value as an output: plans keep it readable after forward().")
      .def_property_readonly("loss",
                             [](const PyGraph& g) -> py::object {
                               if (auto l = g.graph->loss()) return py::cast(PyValue{g.graph, *l});
                               return py::none();
                             })
      .def_property_readonly("names", [](const PyGraph& g) { return g.graph->names(); })
      .def("__getitem__", [](const PyGraph& g, const std::string& name) { return PyValue{g.graph, g.graph->at(name)}; })
      .def("__contains__", [](const PyGraph& g, const std::string& name) { return g.graph->find(name).has_value(); })
      .def("__len__", [](const PyGraph& g) { return g.graph->size(); })
      .def("__str__", [](const PyGraph& g) { return print_model(*g.graph); }, "The graph as .og model text.")
      .def("__repr__", [](const PyGraph& g) { return fmt::format("<og.Graph: {} nodes>", g.graph->size()); });

  m.def("op", &add_op, py::arg("op"),
        "Adds a node of any registered op (plugins' and Python-defined ops too) to the graph of its "
        "inputs: og.op('layer_norm', x, g, b, eps=1e-5). Keyword arguments are the op's attributes "
        "(name=... names the node). Returns a Value, or a tuple of Values for an op with several outputs.");
}

}  // namespace opgraph::python
