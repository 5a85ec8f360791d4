#include "arrays.hpp"

#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace opgraph::python {

namespace {

/// Keeps a Python object alive for a tensor; the last release may happen on any thread
/// (a plan dropped inside a GIL-free call), so it takes the GIL to drop the reference.
std::shared_ptr<void> hold(py::object obj) {
  auto* held = new py::object(std::move(obj));
  return std::shared_ptr<void>(held, [](void* p) {
    if (!Py_IsInitialized()) return;  // the interpreter is gone: nothing left to release
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
}

std::string kind_text(const py::dtype& dt) { return py::str(static_cast<const py::object&>(dt)).cast<std::string>(); }

bool is_real_or_int(char kind) { return kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b'; }

template <class T>
Tensor convert(const py::array& arr, DType dtype) {
  auto converted = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!converted) throw py::error_already_set();
  std::vector<std::int64_t> dims(converted.shape(), converted.shape() + converted.ndim());
  Tensor t(Shape(std::move(dims)), dtype);
  if (t.numel() > 0) std::memcpy(t.raw(), converted.data(), t.nbytes());
  return t;
}

}  // namespace

DType dtype_from(const py::handle& obj) {
  if (py::isinstance<py::str>(obj)) {
    const std::string s = obj.cast<std::string>();
    if (s == "float32") return DType::f32;
    if (s == "float64") return DType::f64;
    if (s == "int64") return DType::i64;
    return parse_dtype(s);
  }
  const py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
  if (dt.is(py::dtype::of<float>()) || (dt.kind() == 'f' && dt.itemsize() == 4)) return DType::f32;
  if (dt.kind() == 'f' && dt.itemsize() == 8) return DType::f64;
  if (dt.kind() == 'i' && dt.itemsize() == 8) return DType::i64;
  throw py::type_error(fmt::format("opgraph has no dtype {}: use float32, float64 or int64", kind_text(dt)));
}

py::dtype numpy_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return py::dtype::of<float>();
    case DType::f64: return py::dtype::of<double>();
    case DType::i64: return py::dtype::of<std::int64_t>();
  }
  return py::dtype::of<float>();
}

Tensor tensor_from(const py::handle& obj, DType want, const std::string& what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) {
    PyErr_Clear();
    throw py::type_error(fmt::format("{}: expected an array of numbers, got {}", what,
                                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>()));
  }
  const char kind = arr.dtype().kind();
  if (kind == 'O' && !py::isinstance<py::array>(obj))  // NumPy made an object array of it: not numbers
    throw py::type_error(fmt::format("{}: expected an array of numbers, got {}", what,
                                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>()));
  if (!is_real_or_int(kind))
    throw py::type_error(fmt::format("{}: expected real numbers, got an array of {}", what, kind_text(arr.dtype())));
  if (want == DType::i64 && kind == 'f')
    throw py::type_error(fmt::format("{}: expected integer indices (int64), got {} values: convert with "
                                     ".astype(np.int64)",
                                     what, kind_text(arr.dtype())));
  const bool in_place = arr.dtype().is(numpy_dtype(want)) &&
                        (arr.flags() & py::array::c_style) != 0 && (arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
  if (in_place) {
    std::vector<std::int64_t> dims(arr.shape(), arr.shape() + arr.ndim());
    void* data = const_cast<void*>(arr.data());
    return Tensor::view(data, Shape(std::move(dims)), want, hold(arr));
  }
  switch (want) {
    case DType::f32: return convert<float>(arr, want);
    case DType::f64: return convert<double>(arr, want);
    case DType::i64: return convert<std::int64_t>(arr, want);
  }
  return {};
}

Tensor tensor_from_any(const py::handle& obj, const std::string& what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) {
    PyErr_Clear();
    return tensor_from(obj, DType::f32, what);  // raises the TypeError
  }
  const py::dtype dt = arr.dtype();
  if (dt.kind() == 'f' && dt.itemsize() == 8) return tensor_from(arr, DType::f64, what);
  if (dt.kind() == 'i' || dt.kind() == 'u') return tensor_from(arr, DType::i64, what);
  return tensor_from(arr, DType::f32, what);
}

py::array array_view(const Tensor& t, bool writeable) {
  auto* keep = new Tensor(t);
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(t.shape().dims().begin(), t.shape().dims().end());
  py::array a(numpy_dtype(t.dtype()), shape, {}, const_cast<void*>(keep->raw()), owner);
  if (!writeable) a.attr("setflags")(py::arg("write") = false);
  return a;
}

py::array array_copy(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape().dims().begin(), t.shape().dims().end());
  py::array a(numpy_dtype(t.dtype()), shape);
  if (t.numel() > 0) std::memcpy(a.mutable_data(), t.raw(), t.nbytes());
  return a;
}

py::tuple shape_tuple(const Shape& shape) {
  py::tuple out(static_cast<std::size_t>(shape.rank()));
  for (int i = 0; i < shape.rank(); ++i) {
    const std::int64_t d = shape[i];
    if (is_symbolic(d))
      out[static_cast<std::size_t>(i)] = py::str(dim_name(d));
    else
      out[static_cast<std::size_t>(i)] = py::int_(d);
  }
  return out;
}

py::object plain_scalar(const py::handle& v) {
  if (py::hasattr(v, "dtype") && py::hasattr(v, "item") && py::hasattr(v, "shape") && py::len(v.attr("shape")) == 0)
    return v.attr("item")();
  return py::reinterpret_borrow<py::object>(v);
}

Shape shape_from(const py::handle& obj, const std::string& what) {
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
    throw py::type_error(fmt::format("{}: a shape is a list or tuple of sizes and names, e.g. ('N', 784)", what));
  std::vector<std::int64_t> dims;
  for (const py::handle& item : obj) {
    const py::object d = plain_scalar(item);  // np.int64(3) is the size 3
    if (py::isinstance<py::str>(d)) {
      dims.push_back(dim(d.cast<std::string>()));
    } else if (py::isinstance<py::int_>(d) && !py::isinstance<py::bool_>(d)) {
      const auto v = d.cast<std::int64_t>();
      if (v < 0) throw py::value_error(fmt::format("{}: dimension {} is negative", what, v));
      dims.push_back(v);
    } else {
      throw py::type_error(fmt::format("{}: a dimension is an int or a name such as 'N', got {}", what,
                                       py::str(py::repr(d)).cast<std::string>()));
    }
  }
  return Shape(std::move(dims));
}

}  // namespace opgraph::python
