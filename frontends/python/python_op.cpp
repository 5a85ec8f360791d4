// Ops defined in Python: forward and vjp as NumPy functions, registered at run time like a
// plugin's ops. Each call takes the GIL, so such an op runs one call at a time: the
// prototyping path (docs/python.md), slower than a C++ op.
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include <opgraph/graph/op.hpp>
#include <opgraph/graph/registry.hpp>

#include "arrays.hpp"
#include "bindings.hpp"
#include "graph.hpp"

namespace opgraph::python {

namespace {

/// The Python functions of one op. Registered ops live for the process, so these
/// references are never released (the registry may outlive the interpreter).
struct Functions {
  PyObject* forward = nullptr;
  PyObject* vjp = nullptr;
  PyObject* shape = nullptr;
  std::vector<std::string> attrs;
};

template <class T>
py::array copy_of(const View<const T>& v) {
  std::vector<py::ssize_t> shape(v.dims, v.dims + v.rank);
  py::array_t<T> a(shape);
  if (v.size > 0) std::memcpy(a.mutable_data(), v.data, static_cast<std::size_t>(v.size) * sizeof(T));
  return a;
}

template <class T>
py::kwargs attrs_of(const Functions& f, const Kernel<T>& k) {
  py::kwargs kw;
  for (const auto& a : f.attrs) kw[py::str(a)] = attr_to_python(k.attr(a));
  return kw;
}

/// `result` as an array of T with exactly the shape of `out`, copied into it.
template <class T>
void write(const py::handle& result, const View<T>& out, const Kernel<T>& k, const char* what) {
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(result);
  if (!a) {
    PyErr_Clear();
    k.fail("{} returned {}, not an array", what, py::str(py::type::of(result).attr("__name__")).cast<std::string>());
  }
  std::vector<std::int64_t> got(a.shape(), a.shape() + a.ndim());
  const Shape want = out.shape();
  if (Shape(got) != want) {
    // A scalar result broadcasts only for a one-element output.
    k.fail("{} returned shape {}, expected {}", what, Shape(got), want);
  }
  if (out.size > 0) std::memcpy(out.data, a.data(), static_cast<std::size_t>(out.size) * sizeof(T));
}

/// "ValueError: boom (at myops.py:12)": the exception in one line, with the line of Python
/// that raised it.
std::string python_error(const py::error_already_set& e) {
  std::string text = fmt::format("{}: {}", py::str(e.type().attr("__name__")).cast<std::string>(),
                                 py::str(e.value()).cast<std::string>());
  py::object tb = e.trace();
  if (tb && !tb.is_none()) {
    while (!tb.attr("tb_next").is_none()) tb = tb.attr("tb_next");
    std::string file = tb.attr("tb_frame").attr("f_code").attr("co_filename").cast<std::string>();
    if (auto slash = file.rfind('/'); slash != std::string::npos) file = file.substr(slash + 1);
    text += fmt::format(" (at {}:{})", file, tb.attr("tb_lineno").cast<int>());
  }
  return text;
}

[[noreturn]] void rethrow_python(py::error_already_set& e, const std::string& node, const std::string& op,
                                 const char* what) {
  throw DataError(fmt::format("node '{}'", node), fmt::format("{}: {} raised {}", op, what, python_error(e)));
}

template <class T>
void forward(const Functions& f, Kernel<T>& k) {
  py::gil_scoped_acquire gil;
  try {
    py::tuple args(static_cast<std::size_t>(k.num_inputs()));
    for (int i = 0; i < k.num_inputs(); ++i) args[static_cast<std::size_t>(i)] = copy_of(k.in(i));
    py::object r = py::reinterpret_borrow<py::object>(f.forward)(*args, **attrs_of(f, k));
    write(r, k.out(0), k, "forward");
  } catch (py::error_already_set& e) {
    rethrow_python(e, k.node_name(), k.op_name(), "forward");
  }
}

template <class T>
void vjp(const Functions& f, Kernel<T>& k) {
  py::gil_scoped_acquire gil;
  try {
    py::tuple args(static_cast<std::size_t>(k.num_inputs()) + 2);
    const View<const T> out(k.out(0));
    if (k.has_grad_out(0)) {
      args[0] = copy_of(k.grad_out(0));
    } else {  // no gradient reaches the output: its cotangent is zero
      std::vector<py::ssize_t> shape(out.dims, out.dims + out.rank);
      py::array_t<T> zeros(shape);
      std::memset(zeros.mutable_data(), 0, static_cast<std::size_t>(out.size) * sizeof(T));
      args[0] = zeros;
    }
    args[1] = copy_of(out);
    for (int i = 0; i < k.num_inputs(); ++i) args[static_cast<std::size_t>(i) + 2] = copy_of(k.in(i));
    py::object r = py::reinterpret_borrow<py::object>(f.vjp)(*args, **attrs_of(f, k));
    py::tuple grads;
    if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r))
      grads = py::tuple(r);
    else
      grads = py::make_tuple(r);
    if (static_cast<int>(grads.size()) != k.num_inputs())
      k.fail("vjp returned {} gradients, the op has {} inputs (return one per input, None for none)", grads.size(),
             k.num_inputs());
    for (int i = 0; i < k.num_inputs(); ++i) {
      if (!k.needs_grad(i)) continue;
      const py::handle g = grads[static_cast<std::size_t>(i)];
      if (g.is_none()) {
        std::memset(k.grad_in(i).data, 0, static_cast<std::size_t>(k.grad_in(i).size) * sizeof(T));
        continue;
      }
      write(g, k.grad_in(i), k, fmt::format("vjp (gradient {})", i).c_str());
    }
  } catch (py::error_already_set& e) {
    rethrow_python(e, k.node_name(), k.op_name(), "vjp");
  }
}

Shape shape_rule(const Functions& f, const ShapeContext& c) {
  if (!f.shape) return c.in(0);
  py::gil_scoped_acquire gil;
  try {
    py::tuple args(static_cast<std::size_t>(c.num_inputs()));
    for (int i = 0; i < c.num_inputs(); ++i) args[static_cast<std::size_t>(i)] = shape_tuple(c.in(i));
    py::kwargs kw;
    for (const auto& a : f.attrs) kw[py::str(a)] = attr_to_python(c.attr(a));
    py::object r = py::reinterpret_borrow<py::object>(f.shape)(*args, **kw);
    return shape_from(r, c.op().name + ": the shape rule's result");
  } catch (py::error_already_set& e) {
    c.fail("the shape rule raised {}", python_error(e));
  } catch (const py::builtin_exception& e) {
    c.fail("{}", e.what());
  }
}

const OpDef& register_op(const std::string& name, const py::function& fwd, const py::object& vjp_fn,
                         const py::object& shape_fn, const std::vector<std::string>& inputs, const py::dict& attrs,
                         const std::string& doc, const py::object& domains, const py::object& checks,
                         bool replaces_nan) {
  auto* f = new Functions;  // lives as long as the registered op: the process
  f->forward = fwd.inc_ref().ptr();
  if (!vjp_fn.is_none()) f->vjp = vjp_fn.inc_ref().ptr();
  if (!shape_fn.is_none()) f->shape = shape_fn.inc_ref().ptr();

  OpDef d;
  d.name = name;
  d.doc = doc.empty() ? fmt::format("{} (defined in Python)", name) : doc;
  d.source = "python";
  if (inputs.empty()) throw py::value_error(fmt::format("register_op('{}'): an op takes at least one input", name));
  for (const auto& in : inputs) d.inputs.push_back({in, f->vjp != nullptr, ValueKind::real, false});
  d.outputs.push_back({"y", ValueKind::real, false});
  for (const auto& [k, v] : attrs) {
    AttrSpec a;
    a.name = k.cast<std::string>();
    a.default_value = attr_from(v, name, a.name);
    a.type = a.default_value.type();
    if (a.type == AttrType::none)
      throw py::value_error(fmt::format("register_op('{}'): attribute '{}' needs a default value (its type comes from "
                                        "it)",
                                        name, a.name));
    f->attrs.push_back(a.name);
    d.attrs.push_back(std::move(a));
  }
  d.shapes = [f](const ShapeContext& c) { return std::vector<Shape>{shape_rule(*f, c)}; };
  for (std::size_t i = 0; i < inputs.size(); ++i) d.saved_inputs.push_back(static_cast<int>(i));
  d.saves_output = true;
  d.replaces_nan = replaces_nan;
  d.forward_f32 = [f](Kernel<float>& k) { forward(*f, k); };
  d.forward_f64 = [f](Kernel<double>& k) { forward(*f, k); };
  if (f->vjp) {
    d.vjp_f32 = [f](Kernel<float>& k) { vjp(*f, k); };
    d.vjp_f64 = [f](Kernel<double>& k) { vjp(*f, k); };
  }
  // Where the gradient checker samples each input: (lo, hi), or a dict with lo, hi, kinks.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Domain dom;
    if (!domains.is_none()) {
      const py::sequence seq = domains;
      if (py::len(seq) != inputs.size())
        throw py::value_error(fmt::format("register_op('{}'): give one domain per input ({}), got {}", name,
                                          inputs.size(), py::len(seq)));
      const py::handle di = seq[i];
      if (py::isinstance<py::dict>(di)) {
        const py::dict dd = py::reinterpret_borrow<py::dict>(di);
        if (dd.contains("lo")) dom.lo = dd["lo"].cast<double>();
        if (dd.contains("hi")) dom.hi = dd["hi"].cast<double>();
        if (dd.contains("kinks")) dom.kinks = dd["kinks"].cast<std::vector<double>>();
        if (dd.contains("margin")) dom.margin = dd["margin"].cast<double>();
      } else {
        const auto lohi = di.cast<std::pair<double, double>>();
        dom.lo = lohi.first;
        dom.hi = lohi.second;
      }
    }
    d.domains.push_back(dom);
  }
  if (checks.is_none()) {
    d.checks.push_back({std::vector<std::string>(inputs.size(), "[a,b]"), {}, 0.0, false});
  } else {
    for (const py::handle c : checks) {
      CheckCase cc;
      cc.shapes = c.cast<std::vector<std::string>>();
      if (cc.shapes.size() != inputs.size())
        throw py::value_error(fmt::format("register_op('{}'): a check case gives one shape per input ({}), got {}",
                                          name, inputs.size(), cc.shapes.size()));
      d.checks.push_back(std::move(cc));
    }
  }
  py::gil_scoped_release release;
  return Registry::global().add(std::move(d));
}

}  // namespace

void bind_python_ops(py::module_& m) {
  m.def(
      "register_op",
      [](const std::string& name, const py::function& fwd, const py::object& vjp_fn, const py::object& shape_fn,
         const std::vector<std::string>& inputs, const py::dict& attrs, const std::string& doc,
         const py::object& domains, const py::object& checks, bool replaces_nan) {
        return register_op(name, fwd, vjp_fn, shape_fn, inputs, attrs, doc, domains, checks, replaces_nan).name;
      },
      py::arg("name"), py::arg("forward"), py::arg("vjp") = py::none(), py::arg("shape") = py::none(),
      py::arg("inputs") = std::vector<std::string>{"x"}, py::arg("attrs") = py::dict(), py::arg("doc") = "",
      py::arg("domains") = py::none(), py::arg("checks") = py::none(), py::arg("replaces_nan") = false);
}

}  // namespace opgraph::python
