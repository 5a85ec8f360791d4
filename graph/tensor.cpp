// Shape and Tensor implementation.
#include <opgraph/graph/tensor.hpp>

#include <algorithm>
#include <opgraph/graph/size.hpp>
#include <cstring>
#include <cctype>
#include <cmath>
#include <type_traits>
#include <mutex>
#include <new>

namespace opgraph {

std::int64_t Shape::last() const {
  if (dims_.empty()) throw ShapeError("shape [] has no last dimension");
  return dims_.back();
}

bool Shape::has_batch() const {
  return std::find(dims_.begin(), dims_.end(), N) != dims_.end();
}

bool Shape::has_symbols() const {
  return std::any_of(dims_.begin(), dims_.end(), [](std::int64_t d) { return is_dim_symbol(d); });
}

namespace {
/// Named dimensions other than N are numbered down from here, far from the small
/// negative numbers a wrong shape rule returns (-3 must read as a mistake, not as "T").
constexpr std::int64_t kFirstNamed = -(std::int64_t{1} << 40);
std::int64_t symbol_of(std::size_t index) { return index == 0 ? N : kFirstNamed - static_cast<std::int64_t>(index - 1); }
/// The index of a symbol in the names, or SIZE_MAX for a number that is none.
std::size_t index_of(std::int64_t d) {
  if (d == N) return 0;
  if (d > kFirstNamed) return SIZE_MAX;
  return static_cast<std::size_t>(kFirstNamed - d) + 1;
}
/// Symbol names, process-wide: index 0 is N, index k > 0 the symbol symbol_of(k).
struct Symbols {
  std::mutex mutex;
  std::vector<std::string> names{"N"};
};
Symbols& symbols() {
  static Symbols s;
  return s;
}
}  // namespace

std::int64_t dim(std::string_view name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      }) || std::isdigit(static_cast<unsigned char>(name[0])))
    throw ShapeError(fmt::format("'{}' is not a dimension name (letters, digits and '_')", name));
  Symbols& s = symbols();
  std::lock_guard lock(s.mutex);
  for (std::size_t i = 0; i < s.names.size(); ++i)
    if (s.names[i] == name) return symbol_of(i);
  if (s.names.size() >= 1u << 20) throw ShapeError("too many dimension names");
  s.names.emplace_back(name);
  return symbol_of(s.names.size() - 1);
}

bool is_dim_symbol(std::int64_t d) {
  if (d >= 0) return false;
  Symbols& s = symbols();
  std::lock_guard lock(s.mutex);
  return index_of(d) < s.names.size();
}

std::string dim_text(std::int64_t d) { return is_dim_symbol(d) ? dim_name(d) : std::to_string(d); }

std::string dim_name(std::int64_t symbol) {
  if (symbol >= 0) throw ShapeError(fmt::format("{} is a size, not a dimension name", symbol));
  Symbols& s = symbols();
  std::lock_guard lock(s.mutex);
  const std::size_t i = index_of(symbol);
  return i < s.names.size() ? s.names[i] : std::to_string(symbol);
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (auto d : dims_) {
    if (d == N) throw ShapeError(fmt::format("shape {} has no size until the batch dimension N is bound", str()));
    if (is_dim_symbol(d))
      throw ShapeError(fmt::format("shape {} has no size until its dimension {} is bound", str(), dim_name(d)));
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

Shape Shape::bind(const std::vector<std::pair<std::int64_t, std::int64_t>>& sizes) const {
  Shape s = *this;
  for (auto& d : s.dims_)
    for (const auto& [symbol, size] : sizes)
      if (d == symbol) d = size;
  return s;
}

std::string Shape::str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ',';
    s += dim_text(dims_[i]);
  }
  return s + "]";
}

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
  }
  return "?";
}

std::size_t size_of(DType dtype) { return dtype == DType::f32 ? 4 : 8; }

DType parse_dtype(std::string_view text) {
  if (text == "f32" || text == "float32") return DType::f32;
  if (text == "f64" || text == "float64") return DType::f64;
  if (text == "i64" || text == "int64") return DType::i64;
  throw ParseError(fmt::format("unknown dtype '{}' (use f32, f64 or i64)", text));
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
    p = detail::allocate_zeroed(rounded);
  } catch (...) {
    detail::release_memory(rounded);
    throw;
  }
  // On failure shared_ptr's constructor calls the deleter itself.
  return {p, [rounded](void* q) {
            detail::free_zeroed(q, rounded);
            detail::release_memory(rounded);
          }};
}

/// A value stored as T: floats as they come; into an index, only whole numbers within
/// ±2^53 (a NaN or 1e300 converted to an integer would be undefined behaviour).
template <class T>
T convert(double value) {
  if constexpr (std::is_same_v<T, std::int64_t>) {
    if (!(value == std::floor(value) && std::fabs(value) <= kMaxExactInteger))
      throw DataError(fmt::format("{} is not a whole number an index can hold", value));
    return static_cast<std::int64_t>(value);
  } else {
    return static_cast<T>(value);
  }
}

template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  if (dtype == DType::f32) return f(float{});
  if (dtype == DType::i64) return f(std::int64_t{});
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
    static_cast<T*>(data_)[i] = convert<T>(value);
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
    std::fill_n(static_cast<T*>(data_), numel_, convert<T>(value));
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
      for (std::int64_t i = 0; i < numel_; ++i) dst[i] = convert<D>(static_cast<double>(src[i]));
    });
  });
}

bool Tensor::bitwise_equal(const Tensor& other) const {
  return dtype_ == other.dtype_ && shape_ == other.shape_ &&
         (numel_ == 0 || std::memcmp(data_, other.data_, nbytes()) == 0);
}

}  // namespace opgraph
