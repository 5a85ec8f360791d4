// opgraph's errors as Python exceptions: one class per C++ error, each also a subclass of
// the built-in exception a Python user would catch (a bad shape is a ValueError).
#include <pybind11/pybind11.h>

#include <opgraph/graph/error.hpp>

#include "bindings.hpp"

namespace opgraph::python {

namespace {

struct Classes {
  PyObject* base = nullptr;
  PyObject* shape = nullptr;
  PyObject* graph = nullptr;
  PyObject* parse = nullptr;
  PyObject* data = nullptr;
  PyObject* numeric = nullptr;
};
Classes classes;  // created once at import, kept for the life of the process

PyObject* make_class(py::module_& m, const char* name, const char* doc, PyObject* base, PyObject* builtin) {
  py::tuple bases = builtin ? py::make_tuple(py::handle(base), py::handle(builtin)) : py::make_tuple(py::handle(base));
  const std::string qualified = std::string("opgraph.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.attr(name) = py::handle(cls);
  return cls;
}

void raise(PyObject* cls, const Error& e) {
  py::object exc = py::reinterpret_steal<py::object>(PyObject_CallFunction(cls, "s", e.what()));
  if (!exc) return;  // the call set its own error
  exc.attr("where") = py::str(e.where());
  exc.attr("detail") = py::str(e.detail());
  PyErr_SetObject(cls, exc.ptr());
}

}  // namespace

void bind_errors(py::module_& m) {
  PyObject* base = PyExc_Exception;
  classes.base = make_class(m, "Error",
                            "Base of opgraph's errors. `str(e)` is the one-line message the command line prints; "
                            "`e.where` is where it happened (a file:line, a node), `e.detail` what went wrong.",
                            base, nullptr);
  classes.shape = make_class(m, "ShapeError", "A shape that does not fit (an op's shape rule, an input's shape).",
                             classes.base, PyExc_ValueError);
  classes.graph = make_class(m, "GraphError", "A graph that cannot be built or run as asked (unknown op or node, "
                                              "wrong arity, a value read before forward()).",
                             classes.base, PyExc_ValueError);
  classes.parse = make_class(m, "ParseError", "Text that does not parse: a model file, an optimizer or data spec.",
                             classes.base, PyExc_ValueError);
  classes.data = make_class(m, "DataError", "Bad data or files: a label out of range, a corrupt checkpoint, a "
                                            "missing file.",
                            classes.base, PyExc_ValueError);
  classes.numeric = make_class(m, "NumericError", "A NaN or infinity found while running (detect_anomaly).",
                               classes.base, PyExc_FloatingPointError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ShapeError& e) {
      raise(classes.shape, e);
    } catch (const GraphError& e) {
      raise(classes.graph, e);
    } catch (const ParseError& e) {
      raise(classes.parse, e);
    } catch (const DataError& e) {
      raise(classes.data, e);
    } catch (const NumericError& e) {
      raise(classes.numeric, e);
    } catch (const Error& e) {
      raise(classes.base, e);
    }
  });
}

void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

}  // namespace opgraph::python
