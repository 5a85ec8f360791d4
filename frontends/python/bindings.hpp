// The Python module's pieces, each bound by its own file; module.cpp puts them together.
#pragma once

#include <pybind11/pybind11.h>

#include <opgraph/graph/gradcheck.hpp>

namespace opgraph::python {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_graph(py::module_& m);
void bind_model(py::module_& m);
void bind_python_ops(py::module_& m);

/// A gradient check's result as Python sees it: {config, max_error, passed, failure}.
py::dict gradcheck_dict(const GradCheckResult& r);

/// Raises KeyboardInterrupt (as py::error_already_set) when Ctrl-C arrived; call with the
/// GIL held, between steps.
void check_signals();

}  // namespace opgraph::python
