// The compiled part of `import opgraph` (opgraph._opgraph): thin bindings of the C++ API.
// The package's Python files (frontends/python/opgraph/) give it its Pythonic face.
#include <fmt/format.h>
#include <pybind11/stl.h>

#include <opgraph/frontends/onnx/onnx.hpp>
#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plugin.hpp>
#include <opgraph/graph/registry.hpp>

#include "arrays.hpp"
#include "bindings.hpp"
#include "graph.hpp"

namespace opgraph::python {

namespace {

py::dict op_info(const OpDef& d) {
  py::dict out;
  out["name"] = d.name;
  out["doc"] = d.doc;
  out["source"] = d.source;
  out["signature"] = d.signature();
  py::list inputs;
  for (const auto& in : d.inputs) inputs.append(in.name + (in.variadic ? "..." : ""));
  out["inputs"] = inputs;
  py::list outputs;
  for (const auto& o : d.outputs) outputs.append(o.name + (o.variadic ? "..." : ""));
  out["outputs"] = outputs;
  py::dict attrs;
  for (const auto& a : d.attrs) attrs[py::str(a.name)] = attr_to_python(a.default_value);
  out["attrs"] = attrs;
  out["has_vjp"] = d.has_vjp();
  out["onnx"] = static_cast<bool>(d.lower);  // exportable to ONNX
  out["checks"] = d.checks.size();
  return out;
}

py::list check(const std::vector<std::string>& names, std::uint64_t seed) {
  std::vector<const OpDef*> ops;
  for (const auto& n : names) ops.push_back(&Registry::global().get(n));
  ConformanceOptions o;
  o.seed = seed;
  std::vector<ConformanceReport> reports;
  {
    py::gil_scoped_release release;  // a Python-defined op's kernels take the GIL themselves
    for (const OpDef* op : ops) reports.push_back(check_conformance(*op, o));
  }
  py::list out;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const ConformanceReport& r = reports[i];
    py::dict d;
    d["op"] = ops[i]->name;
    d["source"] = ops[i]->source;
    d["passed"] = r.passed();
    py::list items;
    for (const auto& it : r.items) {
      py::dict e;
      e["property"] = it.property;
      e["passed"] = it.passed;
      e["measure"] = it.measure;
      e["detail"] = it.detail;
      items.append(e);
    }
    d["checks"] = items;
    out.append(d);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_opgraph, m) {
  m.doc() = "opgraph's compiled core; use the `opgraph` package.";
  bind_errors(m);
  bind_graph(m);
  bind_model(m);
  bind_python_ops(m);

  m.def("_set_package_dir", [](const std::string& dir) { package_dir() = dir; });
  m.def(
      "ops",
      [](const std::string& source) {
        std::vector<std::string> out;
        for (const OpDef* d : Registry::global().ops())
          if (source.empty() || d->source == source) out.push_back(d->name);
        return out;
      },
      py::arg("source") = "", "Names of every registered op (or those from one source: 'built-in', 'python', a plugin file).");
  m.def(
      "op_info", [](const std::string& name) { return op_info(Registry::global().get(name)); }, py::arg("name"),
      "An op's doc, signature, inputs, outputs and attribute defaults.");
  m.def("_check", &check, py::arg("ops"), py::arg("seed") = 1);
  m.def(
      "_onnx_case",
      [](const std::string& name, std::size_t case_index, std::uint64_t seed) {
        const OpDef& op = Registry::global().get(name);
        OnnxCheckCase c;
        {
          py::gil_scoped_release release;
          c = onnx_check_case(op, case_index, seed);
        }
        py::dict inputs, outputs;
        for (const auto& [k, t] : c.inputs) inputs[py::str(k)] = array_copy(t);
        for (const auto& [k, t] : c.outputs) outputs[py::str(k)] = array_copy(t);
        return py::make_tuple(c.config, py::bytes(c.bytes), inputs, outputs);
      },
      py::arg("op"), py::arg("case_index"), py::arg("seed") = 1,
      "One op's check case as an ONNX model with its inputs and opgraph's outputs (tests/python/test_onnx.py).");
  m.def(
      "_gradcheck_op",
      [](const std::string& name, std::uint64_t seed, double tolerance, const std::vector<std::int64_t>& sizes) {
        const OpDef& op = Registry::global().get(name);
        GradCheckOptions o;
        o.seed = seed;
        o.tolerance = tolerance;
        o.sizes = sizes;
        std::vector<GradCheckResult> results;
        {
          py::gil_scoped_release release;
          results = check_op_gradients(op, o);
        }
        py::list out;
        for (const auto& r : results) out.append(gradcheck_dict(r));
        return out;
      },
      py::arg("op"), py::arg("seed"), py::arg("tolerance"), py::arg("sizes"));
  m.def(
      "load_plugin",
      [](const std::string& path) {
        py::gil_scoped_release release;
        return load_plugin(path);
      },
      py::arg("path"), "Loads a plugin (.so) and registers its ops; returns their names.");
  m.def(
      "set_threads", [](int n) { set_num_threads(n); }, py::arg("n"),
      "Threads the plans use (results are bitwise the same for any count); 0 for every core.");
  m.def("threads", &num_threads, "Threads the plans use.");
}

}  // namespace opgraph::python
