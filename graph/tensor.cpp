// Shape and Tensor implementation.
#include <opgraph/graph/tensor.hpp>

#include <algorithm>
#include <opgraph/graph/size.hpp>
#include <cstring>
#include <new>

namespace opgraph {

std::int64_t Shape::last() const {
  if (dims_.empty()) throw ShapeError("shape [] has no last dimension");
  return dims_.back();
}

bool Shape::has_batch() const {
  return std::find(dims_.begin(), dims_.end(), N) != dims_.end();
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (auto d : dims_) {
    if (d == N) throw ShapeError(fmt::format("shape {} has no size until the batch dimension N is bound", str()));
    if (d < 0) throw ShapeError(fmt::format("shape {} has a negative dimension", str()));
    if (!mul_fits(n, d, &n)) throw ShapeError(fmt::format("shape {} holds more than 2^62 elements", str()));
  }
  return n;
}

Shape Shape::bind(std::int64_t batch) const {
  Shape s = *this;
  for (auto& d : s.dims_)
    if (d == N) d = batch;
  return s;
}

std::string Shape::str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ',';
    s += dims_[i] == N ? std::string("N") : std::to_string(dims_[i]);
  }
  return s + "]";
}

std::string_view to_string(DType dtype) { return dtype == DType::f32 ? "f32" : "f64"; }

std::size_t size_of(DType dtype) { return dtype == DType::f32 ? 4 : 8; }

DType parse_dtype(std::string_view text) {
  if (text == "f32" || text == "float32") return DType::f32;
  if (text == "f64" || text == "float64") return DType::f64;
  throw ParseError(fmt::format("unknown dtype '{}' (use f32 or f64)", text));
}

namespace {

constexpr std::size_t kAlign = 64;

/// Zeroed, aligned memory, reserved from the memory budget first (released with it).
std::shared_ptr<void> allocate(std::size_t bytes, const Shape& shape, DType dtype) {
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  if (!detail::try_reserve_memory(rounded))
    detail::throw_over_limit(rounded, fmt::format("a tensor of shape {} ({})", shape.str(), to_string(dtype)));
  void* p = nullptr;
  try {
    p = ::operator new(rounded, std::align_val_t{kAlign});
  } catch (...) {
    detail::release_memory(rounded);
    throw;
  }
  std::memset(p, 0, rounded);
  // On failure shared_ptr's constructor calls the deleter itself.
  return {p, [rounded](void* q) {
            ::operator delete(q, std::align_val_t{kAlign});
            detail::release_memory(rounded);
          }};
}

template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  if (dtype == DType::f32) return f(float{});
  return f(double{});
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  for (auto d : shape_.dims())
    if (d < 0) throw ShapeError(fmt::format("cannot allocate a tensor of shape {}", shape_.str()));
  numel_ = shape_.numel();
  std::int64_t bytes = 0;
  if (!mul_fits(numel_, static_cast<std::int64_t>(size_of(dtype_)), &bytes))
    throw ShapeError(fmt::format("a tensor of shape {} ({}) needs more than 2^62 bytes", shape_.str(), to_string(dtype_)));
  owner_ = allocate(static_cast<std::size_t>(bytes), shape_, dtype_);
  data_ = owner_.get();
}

Tensor Tensor::from(Shape shape, std::span<const double> values, DType dtype) {
  Tensor t(std::move(shape), dtype);
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw ShapeError(fmt::format("tensor of shape {} needs {} values, got {}", t.shape().str(), t.numel(), values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) t.set(static_cast<std::int64_t>(i), values[i]);
  return t;
}

Tensor Tensor::from(Shape shape, std::initializer_list<double> values, DType dtype) {
  return from(std::move(shape), std::span<const double>(values.begin(), values.size()), dtype);
}

Tensor Tensor::view(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = t.shape_.numel();
  t.dtype_ = dtype;
  t.owner_ = std::move(owner);
  t.data_ = data;
  return t;
}

void Tensor::check_dtype(DType requested) const {
  if (requested != dtype_)
    throw GraphError(fmt::format("tensor of dtype {} accessed as {}", to_string(dtype_), to_string(requested)));
}

double Tensor::at(std::int64_t i) const {
  if (i < 0 || i >= numel_) throw ShapeError(fmt::format("index {} out of range for shape {}", i, shape_.str()));
  return visit_dtype(dtype_, [&](auto t) -> double { return static_cast<const decltype(t)*>(data_)[i]; });
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  if (static_cast<int>(index.size()) != shape_.rank())
    throw ShapeError(fmt::format("index of rank {} for shape {}", index.size(), shape_.str()));
  std::int64_t flat = 0;
  int axis = 0;
  for (auto i : index) {
    if (i < 0 || i >= shape_[axis])
      throw ShapeError(fmt::format("index {} out of range on axis {} of shape {}", i, axis, shape_.str()));
    flat = flat * shape_[axis] + i;
    ++axis;
  }
  return at(flat);
}

void Tensor::set(std::int64_t i, double value) {
  if (i < 0 || i >= numel_) throw ShapeError(fmt::format("index {} out of range for shape {}", i, shape_.str()));
  visit_dtype(dtype_, [&](auto t) {
    using T = decltype(t);
    static_cast<T*>(data_)[i] = static_cast<T>(value);
  });
}

double Tensor::item() const {
  if (numel_ != 1) throw ShapeError(fmt::format("item() needs a one-element tensor, got shape {}", shape_.str()));
  return at(0);
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> v(static_cast<std::size_t>(numel_));
  for (std::int64_t i = 0; i < numel_; ++i) v[static_cast<std::size_t>(i)] = at(i);
  return v;
}

void Tensor::fill(double value) {
  visit_dtype(dtype_, [&](auto t) {
    using T = decltype(t);
    std::fill_n(static_cast<T*>(data_), numel_, static_cast<T>(value));
  });
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_);
  if (numel_ > 0) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  Tensor t(shape_, dtype);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape.numel() != numel_)
    throw ShapeError(fmt::format("cannot reshape {} into {}", shape_.str(), shape.str()));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice_rows(std::int64_t begin, std::int64_t end) const {
  if (shape_.rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw ShapeError(fmt::format("rows [{}, {}) out of range for shape {}", begin, end, shape_.str()));
  const std::int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.data_ = static_cast<std::byte*>(data_) + static_cast<std::size_t>(begin * row) * size_of(dtype_);
  return t;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.shape_ != shape_)
    throw ShapeError(fmt::format("cannot copy a tensor of shape {} into one of shape {}", other.shape_.str(), shape_.str()));
  if (other.dtype_ == dtype_) {
    if (numel_ > 0 && data_ != other.data_) std::memmove(data_, other.data_, nbytes());
    return;
  }
  visit_dtype(dtype_, [&](auto d) {
    visit_dtype(other.dtype_, [&](auto s) {
      using D = decltype(d);
      using S = decltype(s);
      const S* src = static_cast<const S*>(other.data_);
      D* dst = static_cast<D*>(data_);
      for (std::int64_t i = 0; i < numel_; ++i) dst[i] = static_cast<D>(src[i]);
    });
  });
}

bool Tensor::bitwise_equal(const Tensor& other) const {
  return dtype_ == other.dtype_ && shape_ == other.shape_ &&
         (numel_ == 0 || std::memcmp(data_, other.data_, nbytes()) == 0);
}

}  // namespace opgraph
