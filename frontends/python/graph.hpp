// Graphs built from Python: a graph shared by the values made from it.
#pragma once

#include <memory>
#include <string>

#include <pybind11/pybind11.h>

#include <opgraph/graph/attr.hpp>
#include <opgraph/graph/graph.hpp>

namespace opgraph::python {

namespace py = pybind11;

/// A graph under construction; Values share it, so it lives as long as any of them.
struct PyGraph {
  std::shared_ptr<Graph> graph = std::make_shared<Graph>();
};

/// One node of a PyGraph.
struct PyValue {
  std::shared_ptr<Graph> graph;
  NodeId id = 0;
  const Node& node() const { return graph->node(id); }
};

/// A Python value as an attribute: int, float, bool, str, or a list of ints or floats.
AttrValue attr_from(const py::handle& value, const std::string& op, const std::string& name);
py::object attr_to_python(const AttrValue& value);

/// An initialiser from an og.Init or a name ("xavier", "glorot", "he", "zeros").
Init init_from(const py::handle& obj);

/// The folder of the opgraph package (set at import): frames from there are not callers.
std::string& package_dir();
/// Where the Python caller is: "script.py:12" (the innermost frame outside opgraph).
std::string python_origin();

/// Adds op `name` with these inputs and attributes to the inputs' graph; one Value, or a
/// tuple of Values for an op with several outputs.
py::object add_op(const std::string& name, const py::args& inputs, const py::kwargs& attrs);

}  // namespace opgraph::python
