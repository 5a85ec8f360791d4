// NumPy arrays <-> opgraph tensors for the Python module: views where dtype and layout
// allow, copies (named as such in docs/python.md) where they must happen.
#pragma once

#include <string>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <opgraph/graph/tensor.hpp>

namespace opgraph::python {

namespace py = pybind11;

/// The dtype a Python argument names: "f32"/"float32"/np.float32, "f64"/..., "i64"/...
DType dtype_from(const py::handle& obj);
py::dtype numpy_dtype(DType dtype);

/// A tensor for `obj` (any array-like) holding values of `want`. A C-contiguous array of
/// that dtype is used in place: the tensor keeps the array alive and sees its memory.
/// Anything else is converted into a new tensor (real numbers from any real or integer
/// array; indices only from integer or boolean arrays). `what` names the value in errors
/// ("input 'x'"). Raises TypeError for non-numeric data (complex, strings, objects).
Tensor tensor_from(const py::handle& obj, DType want, const std::string& what);

/// The same, with the dtype of the array when it is one opgraph has (float32, float64,
/// int64), else float32 for reals and int64 for integers.
Tensor tensor_from_any(const py::handle& obj, const std::string& what);

/// A NumPy array over the tensor's memory (no copy); the array keeps the memory alive.
py::array array_view(const Tensor& t, bool writeable);

/// A NumPy array holding a copy of the tensor's values.
py::array array_copy(const Tensor& t);

/// A shape as Python sees it: a tuple of ints, with "N" (or a named dimension) where the
/// graph has a symbol.
py::tuple shape_tuple(const Shape& shape);
/// The reverse: ints, and strings for symbols ("N", "T").
Shape shape_from(const py::handle& obj, const std::string& what);

/// A NumPy scalar (np.int64(3), np.float32(0.5): what indexing an array or y.max() + 1
/// gives) as the Python number it holds; anything else as it is.
py::object plain_scalar(const py::handle& v);

}  // namespace opgraph::python
