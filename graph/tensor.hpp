// Shapes (with a symbolic batch dimension), dtypes, and the row-major Tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>

namespace opgraph {

/// The symbolic batch dimension: a shape `{N, 784}` prints as `[N,784]` and is bound
/// to a concrete size when a plan is compiled.
inline constexpr std::int64_t N = -1;

/// A named symbolic dimension besides the batch (`T` in `[N, T, 64]`): a negative id,
/// the same for the same name everywhere in the process, bound when a plan is compiled
/// (PlanOptions::dims). dim("N") is N. Names are letters, digits and '_'.
std::int64_t dim(std::string_view name);
/// The name of a symbolic dimension ("N", "T"); throws ShapeError for a size.
std::string dim_name(std::int64_t symbol);
/// Whether `d` names a dimension symbol of this process (N, or a name given to dim()).
bool is_dim_symbol(std::int64_t d);
/// A dimension as shapes print it: "4", "N", "T" (in messages).
std::string dim_text(std::int64_t d);
/// Whether a dimension is symbolic (N or a named one) rather than a size.
inline bool is_symbolic(std::int64_t d) { return d < 0; }

/// 2^53: doubles hold every whole number up to it, and converting one to std::int64_t is
/// safe. Readers of numbers in text (model files, CSV, data specs) refuse larger counts.
inline constexpr double kMaxExactInteger = 9007199254740992.0;

/// A list of dimensions; a dimension is a size >= 0 or `N`.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  /// The last dimension (throws ShapeError on a scalar).
  std::int64_t last() const;
  const std::vector<std::int64_t>& dims() const { return dims_; }

  bool is_scalar() const { return dims_.empty(); }
  bool has_batch() const;
  /// Whether any dimension is symbolic (N or named).
  bool has_symbols() const;
  /// Number of elements; throws ShapeError while the shape holds `N`.
  std::int64_t numel() const;
  /// The same shape with every `N` replaced by `batch`.
  Shape bind(std::int64_t batch) const;
  /// The same shape with every symbol in `sizes` (symbol id -> size) replaced.
  Shape bind(const std::vector<std::pair<std::int64_t, std::int64_t>>& sizes) const;
  /// `[N,784]`, `[]` for a scalar.
  std::string str() const;

  bool operator==(const Shape&) const = default;

 private:
  std::vector<std::int64_t> dims_;
};

/// Element types: the two float types plans compute in, and an index type for labels and
/// token indices. Indices are 64-bit like NumPy's and PyTorch's default integers and
/// ONNX's Gather indices, so data and models carry across without conversion.
enum class DType : std::uint8_t { f32, f64, i64 };

std::string_view to_string(DType dtype);
std::size_t size_of(DType dtype);
/// Whether a dtype holds floating-point values.
inline bool is_float(DType d) { return d != DType::i64; }
/// Parses "f32"/"float32"/"f64"/"float64"/"i64"/"int64"; throws ParseError otherwise.
DType parse_dtype(std::string_view text);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<double>() { return DType::f64; }
template <>
constexpr DType dtype_of<std::int64_t>() { return DType::i64; }

/// A dense row-major array of f32, f64 or i64 values. Copies share the buffer (like a
/// shared_ptr); use clone() for a deep copy. Buffers are 64-byte aligned and zeroed.
class Tensor {
 public:
  Tensor() = default;
  /// Allocates a zero-filled tensor; the shape must not contain `N`.
  explicit Tensor(Shape shape, DType dtype = DType::f32);

  /// A tensor holding `values` (converted to `dtype`); sizes must agree.
  static Tensor from(Shape shape, std::span<const double> values, DType dtype = DType::f32);
  static Tensor from(Shape shape, std::initializer_list<double> values, DType dtype = DType::f32);
  /// A tensor over memory owned by someone else; `owner` keeps that memory alive.
  static Tensor view(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner);

  bool defined() const { return data_ != nullptr || shape_.numel() == 0; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * size_of(dtype_); }

  /// Typed access; throws GraphError when T does not match the dtype.
  template <class T>
  T* data() {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<const T*>(data_);
  }
  template <class T>
  std::span<T> values() {
    return {data<T>(), static_cast<std::size_t>(numel_)};
  }
  template <class T>
  std::span<const T> values() const {
    return {data<T>(), static_cast<std::size_t>(numel_)};
  }
  void* raw() { return data_; }
  const void* raw() const { return data_; }
  /// What keeps the buffer alive (shared by views and slices of it; null when empty): its
  /// identity, for a cache that must not mistake a new buffer at a reused address for it.
  const std::shared_ptr<void>& owner() const { return owner_; }

  /// Element at a flat row-major index, as double (for tests and reports, not kernels).
  double at(std::int64_t flat_index) const;
  /// Element at a multi-index, as double.
  double at(std::initializer_list<std::int64_t> index) const;
  void set(std::int64_t flat_index, double value);
  /// The value of a one-element tensor.
  double item() const;
  /// All elements converted to double.
  std::vector<double> to_vector() const;

  void fill(double value);
  Tensor clone() const;
  Tensor to(DType dtype) const;
  /// A view with another shape of the same element count (shares the buffer).
  Tensor reshape(Shape shape) const;
  /// Rows [begin, end) along the first dimension (shares the buffer).
  Tensor slice_rows(std::int64_t begin, std::int64_t end) const;
  /// Copies values from `other` (same shape; dtypes may differ).
  void copy_from(const Tensor& other);
  /// Same dtype, shape and bits.
  bool bitwise_equal(const Tensor& other) const;

 private:
  void check_dtype(DType requested) const;

  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

}  // namespace opgraph

template <>
struct fmt::formatter<opgraph::Shape> : fmt::formatter<std::string_view> {
  auto format(const opgraph::Shape& s, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(s.str(), ctx);
  }
};

template <>
struct fmt::formatter<opgraph::DType> : fmt::formatter<std::string_view> {
  auto format(opgraph::DType d, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(opgraph::to_string(d), ctx);
  }
};
