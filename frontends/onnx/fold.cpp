// Constant folding for the ONNX importer: see fold.hpp. Each operator as its ONNX schema
// defines it (NumPy broadcasting, negative axes counting from the end, Python's bounds for
// Slice), on values held as doubles (f32, f64) or int64 (i64 and booleans).
#include "fold.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

namespace opgraph::onnx_fold {

namespace {

using Dims = std::vector<std::int64_t>;

[[noreturn]] void fail(const std::string& what) { throw FoldError(what); }

std::string dims_text(const Dims& d) { return fmt::format("[{}]", fmt::join(d, ", ")); }

/// The values of `d`, refused past kMaxValues.
std::int64_t count_of(const Dims& d) {
  std::int64_t n = 1;
  for (std::int64_t v : d) {
    if (v < 0) fail(fmt::format("a negative size in the shape {}", dims_text(d)));
    if (__builtin_mul_overflow(n, v, &n) || n > kMaxValues)
      fail(fmt::format("the result {} would hold more than 2^24 values", dims_text(d)));
  }
  return n;
}

/// A value being computed: its type, sizes, and its elements as doubles (floats) or int64.
struct Arr {
  DType dtype = DType::f32;
  Dims dims;
  std::vector<double> f;
  std::vector<std::int64_t> i;
  bool is_int() const { return dtype == DType::i64; }
  std::int64_t size() const { return is_int() ? static_cast<std::int64_t>(i.size()) : static_cast<std::int64_t>(f.size()); }
  int rank() const { return static_cast<int>(dims.size()); }
};

Arr empty_like(DType dtype, Dims dims) {
  Arr a;
  a.dtype = dtype;
  const auto n = static_cast<std::size_t>(count_of(dims));
  a.dims = std::move(dims);
  if (a.is_int()) a.i.resize(n);
  else a.f.resize(n);
  return a;
}

Arr from_tensor(const Tensor& t) {
  Arr a;
  a.dtype = t.dtype();
  a.dims = t.shape().dims();
  if (a.is_int()) a.i.assign(t.data<std::int64_t>(), t.data<std::int64_t>() + t.numel());
  else a.f = t.to_vector();
  return a;
}

Tensor to_tensor(const Arr& a) {
  Tensor t(Shape(a.dims), a.dtype);
  if (a.is_int()) std::copy(a.i.begin(), a.i.end(), t.data<std::int64_t>());
  else if (a.dtype == DType::f64) std::copy(a.f.begin(), a.f.end(), t.data<double>());
  else std::transform(a.f.begin(), a.f.end(), t.data<float>(), [](double v) { return static_cast<float>(v); });
  return t;
}

/// v rounded to what `dtype` holds (a float result is rounded once per operator).
double rounded(double v, DType dtype) { return dtype == DType::f32 ? static_cast<double>(static_cast<float>(v)) : v; }

/// out[k] = a[src[k]] for an index map `src`: the moves of Reshape, Transpose, Slice,
/// Gather, Expand, Tile, Concat's parts.
Arr take(const Arr& a, Dims dims, const std::vector<std::int64_t>& src) {
  Arr out;
  out.dtype = a.dtype;
  out.dims = std::move(dims);
  if (a.is_int()) {
    out.i.reserve(src.size());
    for (std::int64_t s : src) out.i.push_back(a.i[static_cast<std::size_t>(s)]);
  } else {
    out.f.reserve(src.size());
    for (std::int64_t s : src) out.f.push_back(a.f[static_cast<std::size_t>(s)]);
  }
  return out;
}

Dims strides_of(const Dims& d) {
  Dims s(d.size(), 1);
  for (std::size_t k = d.size(); k-- > 1;) s[k - 1] = s[k] * d[k];
  return s;
}

/// Calls f(flat index, multi-index) for every element of `dims` in row-major order.
template <class F>
void for_each_index(const Dims& dims, F f) {
  const std::int64_t n = count_of(dims);
  Dims idx(dims.size(), 0);
  for (std::int64_t k = 0; k < n; ++k) {
    f(k, idx);
    for (std::size_t a = dims.size(); a-- > 0;) {
      if (++idx[a] < dims[a]) break;
      idx[a] = 0;
    }
  }
}

/// NumPy's broadcast of shapes.
Dims broadcast(const std::vector<Dims>& shapes) {
  std::size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Dims out(rank, 1);
  for (const auto& s : shapes)
    for (std::size_t k = 0; k < s.size(); ++k) {
      std::int64_t& o = out[rank - s.size() + k];
      const std::int64_t v = s[k];
      if (v == o || v == 1) continue;
      if (o != 1) {
        std::vector<std::string> texts;
        for (const auto& t : shapes) texts.push_back(dims_text(t));
        fail(fmt::format("shapes {} do not broadcast", fmt::join(texts, " and ")));
      }
      o = v;
    }
  return out;
}

/// For each element of `out`, the element of a value of sizes `in` broadcast to it.
std::vector<std::int64_t> broadcast_index(const Dims& in, const Dims& out) {
  const Dims st = strides_of(in);
  const std::size_t lead = out.size() - in.size();
  std::vector<std::int64_t> src;
  src.reserve(static_cast<std::size_t>(count_of(out)));
  for_each_index(out, [&](std::int64_t, const Dims& idx) {
    std::int64_t s = 0;
    for (std::size_t k = 0; k < in.size(); ++k)
      if (in[k] != 1) s += idx[lead + k] * st[k];
    src.push_back(s);
  });
  return src;
}

std::int64_t axis_in(std::int64_t axis, std::int64_t rank) {
  if (axis < -rank || axis >= rank) fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
  return axis < 0 ? axis + rank : axis;
}

// ---- attributes ----

const onnx::AttributeProto* attr(const onnx::NodeProto& n, const char* name, onnx::AttributeProto::AttributeType type) {
  for (const auto& a : n.attribute()) {
    if (a.name() != name) continue;
    if (a.type() != type && a.type() != onnx::AttributeProto::UNDEFINED)
      fail(fmt::format("attribute '{}' is {}, the operator takes {}", name,
                       onnx::AttributeProto::AttributeType_Name(a.type()), onnx::AttributeProto::AttributeType_Name(type)));
    return &a;
  }
  return nullptr;
}
std::int64_t attr_int(const onnx::NodeProto& n, const char* name, std::int64_t fallback) {
  const auto* a = attr(n, name, onnx::AttributeProto::INT);
  return a ? a->i() : fallback;
}
std::optional<Dims> attr_ints(const onnx::NodeProto& n, const char* name) {
  const auto* a = attr(n, name, onnx::AttributeProto::INTS);
  if (!a) return std::nullopt;
  return Dims(a->ints().begin(), a->ints().end());
}
std::string attr_string(const onnx::NodeProto& n, const char* name, std::string fallback) {
  const auto* a = attr(n, name, onnx::AttributeProto::STRING);
  return a ? a->s() : fallback;
}

// ---- the operators ----

using Inputs = std::vector<const Arr*>;

const Arr& need(const Inputs& in, std::size_t k) {
  if (k >= in.size() || !in[k]) fail(fmt::format("input {} is missing", k));
  return *in[k];
}
Dims ints_of(const Arr& a, const char* what) {
  if (!a.is_int()) fail(fmt::format("{} must be integers", what));
  return a.i;
}
std::int64_t scalar_int(const Arr& a, const char* what) {
  if (!a.is_int() || a.size() != 1) fail(fmt::format("{} must be one integer", what));
  return a.i[0];
}

/// Same type for every input, as ONNX's elementwise operators require.
void same_type(const Inputs& in) {
  for (const Arr* a : in)
    if (a && a->dtype != in[0]->dtype)
      fail(fmt::format("inputs of types {} and {}", to_string(in[0]->dtype), to_string(a->dtype)));
}

using FloatFn = std::function<double(const std::vector<double>&)>;
using IntFn = std::function<std::int64_t(const std::vector<std::int64_t>&)>;

/// An elementwise operator over broadcast inputs: `fi` on integers, `ff` on floats (its
/// result rounded to the type), the result typed `out` (the inputs' type when left f32
/// for floats... see callers), or i64 when `boolean`.
Arr elementwise(const Inputs& in, const FloatFn& ff, const IntFn& fi, bool boolean = false) {
  std::vector<Dims> shapes;
  for (const Arr* a : in) shapes.push_back(a->dims);
  const Dims dims = broadcast(shapes);
  std::vector<std::vector<std::int64_t>> src;
  for (const Arr* a : in) src.push_back(broadcast_index(a->dims, dims));
  const bool ints = in[0]->is_int();
  Arr out = empty_like(boolean ? DType::i64 : in[0]->dtype, dims);
  const std::size_t n = static_cast<std::size_t>(count_of(dims));
  std::vector<double> fv(in.size());
  std::vector<std::int64_t> iv(in.size());
  for (std::size_t k = 0; k < n; ++k) {
    if (ints) {
      for (std::size_t j = 0; j < in.size(); ++j) iv[j] = in[j]->i[static_cast<std::size_t>(src[j][k])];
      out.i[k] = fi ? fi(iv) : (fail("this operator takes floats"), 0);
    } else {
      for (std::size_t j = 0; j < in.size(); ++j) fv[j] = in[j]->f[static_cast<std::size_t>(src[j][k])];
      if (boolean) out.i[k] = static_cast<std::int64_t>(ff(fv));
      else out.f[k] = rounded(ff(fv), out.dtype);
    }
  }
  return out;
}

[[noreturn]] void overflows() { fail("an integer result overflows"); }
std::int64_t add_i(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflows();
  return r;
}
std::int64_t sub_i(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflows();
  return r;
}
std::int64_t mul_i(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflows();
  return r;
}

Arr arithmetic(const std::string& t, const onnx::NodeProto& n, const Inputs& in) {
  if (t != "Pow") same_type(in);
  if (t == "Add")
    return elementwise(in, [](auto& v) { return v[0] + v[1]; },
                       [](auto& v) { return add_i(v[0], v[1]); });
  if (t == "Sub")
    return elementwise(in, [](auto& v) { return v[0] - v[1]; },
                       [](auto& v) { return sub_i(v[0], v[1]); });
  if (t == "Mul")
    return elementwise(in, [](auto& v) { return v[0] * v[1]; },
                       [](auto& v) { return mul_i(v[0], v[1]); });
  if (t == "Div")
    return elementwise(in, [](auto& v) { return v[0] / v[1]; }, [](auto& v) {
      if (v[1] == 0) fail("divides an integer by 0");
      if (v[0] == std::numeric_limits<std::int64_t>::min() && v[1] == -1) overflows();
      return v[0] / v[1];  // truncated, as ONNX Runtime divides integers
    });
  if (t == "Mod") {
    const bool fmod = attr_int(n, "fmod", 0) != 0;
    if (!in[0]->is_int() && !fmod) fail("Mod of floats needs fmod=1");
    return elementwise(in, [](auto& v) { return std::fmod(v[0], v[1]); }, [fmod](auto& v) {
      if (v[1] == 0) fail("takes an integer modulo 0");
      if (v[1] == -1) return std::int64_t{0};
      const std::int64_t r = v[0] % v[1];
      // fmod=0: the sign of the divisor, as Python's % (and NumPy's mod); fmod=1: of the dividend.
      return !fmod && r != 0 && ((r < 0) != (v[1] < 0)) ? r + v[1] : r;
    });
  }
  if (t == "Pow") {  // the base's type; integers by repeated products
    Inputs both = in;
    Arr exponent;
    if (in[0]->is_int() != in[1]->is_int()) {  // an exponent of the other kind, as values of the base's
      exponent = empty_like(in[0]->dtype, in[1]->dims);
      for (std::size_t k = 0; k < exponent.i.size() + exponent.f.size(); ++k) {
        if (in[0]->is_int()) {
          const double e = in[1]->f[k];
          if (e != std::floor(e)) fail("an integer raised to a fractional power");
          exponent.i[k] = static_cast<std::int64_t>(e);
        } else {
          exponent.f[k] = static_cast<double>(in[1]->i[k]);
        }
      }
      both[1] = &exponent;
    }
    return elementwise(both, [](auto& v) { return std::pow(v[0], v[1]); }, [](auto& v) {
      if (v[1] < 0) fail("an integer raised to a negative power");
      std::int64_t r = 1;
      for (std::int64_t k = 0; k < v[1] && r != 0; ++k) r = mul_i(r, v[0]);
      return r;
    });
  }
  fail("not arithmetic");
}

Arr compare(const std::string& t, const Inputs& in) {
  same_type(in);
  std::function<bool(double, double)> c;
  if (t == "Equal") c = std::equal_to<double>();
  else if (t == "Less") c = std::less<double>();
  else if (t == "LessOrEqual") c = std::less_equal<double>();
  else if (t == "Greater") c = std::greater<double>();
  else c = std::greater_equal<double>();
  std::function<bool(std::int64_t, std::int64_t)> ci;
  if (t == "Equal") ci = std::equal_to<std::int64_t>();
  else if (t == "Less") ci = std::less<std::int64_t>();
  else if (t == "LessOrEqual") ci = std::less_equal<std::int64_t>();
  else if (t == "Greater") ci = std::greater<std::int64_t>();
  else ci = std::greater_equal<std::int64_t>();
  return elementwise(in, [&](auto& v) { return c(v[0], v[1]) ? 1.0 : 0.0; },
                     [&](auto& v) { return std::int64_t{ci(v[0], v[1])}; }, true);
}

Arr logical(const std::string& t, const Inputs& in) {
  for (const Arr* a : in)
    if (!a->is_int()) fail("takes booleans");
  return elementwise(in, nullptr, [&](auto& v) -> std::int64_t {
    if (t == "Not") return v[0] == 0;
    const bool a = v[0] != 0, b = v[1] != 0;
    return t == "And" ? a && b : t == "Or" ? a || b : a != b;
  });
}

Arr unary(const std::string& t, const Inputs& in) {
  const Arr& x = need(in, 0);
  if (x.is_int()) {
    IntFn fi;
    if (t == "Neg") fi = [](auto& v) { return sub_i(0, v[0]); };
    else if (t == "Abs") fi = [](auto& v) { return v[0] < 0 ? sub_i(0, v[0]) : v[0]; };
    else if (t == "Sign") fi = [](auto& v) { return std::int64_t{(v[0] > 0) - (v[0] < 0)}; };
    else if (t == "Relu") fi = [](auto& v) { return std::max<std::int64_t>(v[0], 0); };
    else if (t == "Identity") fi = [](auto& v) { return v[0]; };
    else fail(fmt::format("{} takes floats", t));
    return elementwise({&x}, nullptr, fi);
  }
  static const std::unordered_map<std::string, double (*)(double)> fns = {
      {"Neg", [](double v) { return -v; }},
      {"Abs", [](double v) { return std::fabs(v); }},
      {"Sign", [](double v) { return std::isnan(v) ? v : static_cast<double>((v > 0) - (v < 0)); }},
      {"Sqrt", [](double v) { return std::sqrt(v); }},
      {"Exp", [](double v) { return std::exp(v); }},
      {"Log", [](double v) { return std::log(v); }},
      {"Sin", [](double v) { return std::sin(v); }},
      {"Cos", [](double v) { return std::cos(v); }},
      {"Tan", [](double v) { return std::tan(v); }},
      {"Atan", [](double v) { return std::atan(v); }},
      {"Floor", [](double v) { return std::floor(v); }},
      {"Ceil", [](double v) { return std::ceil(v); }},
      {"Round", [](double v) { return std::nearbyint(v); }},  // halves to even, as ONNX's Round
      {"Reciprocal", [](double v) { return 1.0 / v; }},
      {"Relu", [](double v) { return v > 0 ? v : 0.0; }},
      {"Sigmoid", [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
      {"Tanh", [](double v) { return std::tanh(v); }},
      {"Erf", [](double v) { return std::erf(v); }},
      {"Identity", [](double v) { return v; }},
  };
  const auto it = fns.find(t);
  if (it == fns.end()) fail(fmt::format("{} takes booleans", t));
  const auto fn = it->second;
  return elementwise({&x}, [fn](auto& v) { return fn(v[0]); }, nullptr);
}

Arr cast(const onnx::NodeProto& n, const Arr& x) {
  const auto to = attr_int(n, "to", 0);
  Arr out;
  out.dims = x.dims;
  switch (to) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::DOUBLE:
      out.dtype = to == onnx::TensorProto::FLOAT ? DType::f32 : DType::f64;
      if (x.is_int()) for (std::int64_t v : x.i) out.f.push_back(rounded(static_cast<double>(v), out.dtype));
      else for (double v : x.f) out.f.push_back(rounded(v, out.dtype));
      return out;
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::BOOL: {
      out.dtype = DType::i64;
      const bool boolean = to == onnx::TensorProto::BOOL;
      const double lo = to == onnx::TensorProto::INT32 ? -2147483648.0 : -9223372036854775808.0;
      const double hi = to == onnx::TensorProto::INT32 ? 2147483648.0 : 9223372036854775808.0;
      if (x.is_int()) {
        for (std::int64_t v : x.i) {
          if (!boolean && (v < lo || v >= hi)) fail(fmt::format("{} does not fit the type cast to", v));
          out.i.push_back(boolean ? v != 0 : v);
        }
        return out;
      }
      for (double v : x.f) {
        if (boolean) {
          out.i.push_back(v != 0.0);
          continue;
        }
        if (!(v >= lo && v < hi)) fail(fmt::format("{} does not fit the type cast to", v));
        out.i.push_back(static_cast<std::int64_t>(v));  // toward zero, as C++ and ONNX Runtime cast
      }
      return out;
    }
    default:
      fail(fmt::format("a cast to {}: the folder computes float, double, int64, int32 and bool",
                       onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(to))));
  }
}

Arr range(const Inputs& in) {
  same_type(in);
  for (int k = 0; k < 3; ++k)
    if (need(in, static_cast<std::size_t>(k)).size() != 1) fail("start, limit and delta must be single values");
  const Arr& s = *in[0];
  if (s.is_int()) {
    const std::int64_t start = in[0]->i[0], limit = in[1]->i[0], delta = in[2]->i[0];
    if (delta == 0) fail("delta is 0: the range would never reach its limit");
    const long double span = static_cast<long double>(limit) - static_cast<long double>(start);
    const long double count = std::max<long double>(0, std::ceil(span / delta));
    if (count > static_cast<long double>(kMaxValues)) fail(fmt::format("a range of {} values", static_cast<double>(count)));
    const auto steps = static_cast<std::int64_t>(count);
    Arr out = empty_like(DType::i64, {steps});
    // Each value the one before plus delta: every one lies between start and limit, where
    // k * delta for the last k may not (start -2^63, limit 2^63 - 1, delta 2^62).
    std::int64_t value = start;
    for (std::int64_t k = 0; k < steps; ++k) {
      out.i[static_cast<std::size_t>(k)] = value;
      if (k + 1 < steps) value += delta;
    }
    return out;
  }
  const double start = in[0]->f[0], limit = in[1]->f[0], delta = in[2]->f[0];
  if (delta == 0 || !std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta))
    fail("start, limit and delta must be finite, and delta not 0");
  const double steps = std::max(0.0, std::ceil((limit - start) / delta));
  if (steps > static_cast<double>(kMaxValues)) fail(fmt::format("a range of {} values", steps));
  Arr out = empty_like(s.dtype, {static_cast<std::int64_t>(steps)});
  // Each value the one before plus delta, rounded to the type: ONNX Runtime's sums, to the
  // bit (start + k * delta differs in the last bit for delta 0.1).
  double value = start;
  for (std::size_t k = 0; k < out.f.size(); ++k, value = rounded(value + delta, s.dtype)) out.f[k] = value;
  return out;
}

Arr reshape(const onnx::NodeProto& n, const Arr& x, Dims dims) {
  const bool allowzero = attr_int(n, "allowzero", 0) != 0;
  std::int64_t known = 1, infer = -1;
  for (std::size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 0 && !allowzero) {
      if (k >= x.dims.size()) fail("a 0 copies a size the input does not have");
      dims[k] = x.dims[k];
    }
    if (dims[k] == -1) {
      if (infer >= 0) fail("-1 is given twice");
      infer = static_cast<std::int64_t>(k);
    } else if (dims[k] < 0) {
      fail(fmt::format("a size of {}", dims[k]));
    } else if (__builtin_mul_overflow(known, dims[k], &known)) {
      fail(fmt::format("the shape {} overflows", dims_text(dims)));
    }
  }
  if (infer >= 0 && known > 0) dims[static_cast<std::size_t>(infer)] = x.size() / known;
  if (count_of(dims) != x.size()) fail(fmt::format("reshapes {} values to {}", x.size(), dims_text(dims)));
  Arr out = x;
  out.dims = std::move(dims);
  return out;
}

Arr transpose(const onnx::NodeProto& n, const Arr& x) {
  const auto r = static_cast<std::int64_t>(x.dims.size());
  Dims perm = attr_ints(n, "perm").value_or(Dims{});
  if (perm.empty())
    for (std::int64_t k = r; k-- > 0;) perm.push_back(k);
  Dims sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t k = 0; k < r; ++k)
    if (static_cast<std::int64_t>(sorted.size()) != r || sorted[static_cast<std::size_t>(k)] != k)
      fail(fmt::format("perm {} is not a permutation of {} axes", dims_text(perm), r));
  Dims dims, st = strides_of(x.dims);
  for (std::int64_t p : perm) dims.push_back(x.dims[static_cast<std::size_t>(p)]);
  std::vector<std::int64_t> src;
  for_each_index(dims, [&](std::int64_t, const Dims& idx) {
    std::int64_t s = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) s += idx[k] * st[static_cast<std::size_t>(perm[k])];
    src.push_back(s);
  });
  return take(x, dims, src);
}

Arr concat(const onnx::NodeProto& n, const Inputs& in) {
  same_type(in);
  const auto r = static_cast<std::int64_t>(in[0]->dims.size());
  const std::int64_t axis = axis_in(attr_int(n, "axis", 0), r);
  Dims dims = in[0]->dims;
  dims[static_cast<std::size_t>(axis)] = 0;
  for (const Arr* a : in) {
    for (std::int64_t k = 0; k < r; ++k)
      if (a->rank() != r || (k != axis && a->dims[static_cast<std::size_t>(k)] != dims[static_cast<std::size_t>(k)]))
        fail(fmt::format("concatenates {} with {} along axis {}", dims_text(in[0]->dims), dims_text(a->dims), axis));
    dims[static_cast<std::size_t>(axis)] += a->dims[static_cast<std::size_t>(axis)];
  }
  Arr out = empty_like(in[0]->dtype, dims);
  // Row-major: each input contributes blocks of (its axis size x inner) per outer index.
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t k = 0; k < axis; ++k) outer *= dims[static_cast<std::size_t>(k)];
  for (std::int64_t k = axis + 1; k < r; ++k) inner *= dims[static_cast<std::size_t>(k)];
  std::size_t at = 0;
  for (std::int64_t o = 0; o < outer; ++o)
    for (const Arr* a : in) {
      const std::int64_t block = a->dims[static_cast<std::size_t>(axis)] * inner;
      for (std::int64_t k = 0; k < block; ++k, ++at) {
        const auto s = static_cast<std::size_t>(o * block + k);
        if (out.is_int()) out.i[at] = a->i[s];
        else out.f[at] = a->f[s];
      }
    }
  return out;
}

/// ONNX's Slice (opset 10 on): starts, ends, optional axes and steps; Python's bounds.
Arr slice(const Inputs& in) {
  const Arr& x = need(in, 0);
  const Dims starts = ints_of(need(in, 1), "starts"), ends = ints_of(need(in, 2), "ends");
  const auto r = static_cast<std::int64_t>(x.dims.size());
  Dims axes, steps;
  if (in.size() > 3 && in[3]) axes = ints_of(*in[3], "axes");
  else
    for (std::size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<std::int64_t>(k));
  if (in.size() > 4 && in[4]) steps = ints_of(*in[4], "steps");
  else steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    fail("starts, ends, axes and steps differ in length");
  Dims first(static_cast<std::size_t>(r), 0), step(static_cast<std::size_t>(r), 1), dims = x.dims;
  std::vector<bool> seen(static_cast<std::size_t>(r), false);
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const auto a = static_cast<std::size_t>(axis_in(axes[k], r));
    if (seen[a]) fail(fmt::format("axis {} is sliced twice", axes[k]));
    seen[a] = true;
    const std::int64_t len = x.dims[a], s = steps[k];
    if (s == 0) fail("a step of 0");
    auto clamp = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
      if (v < 0) v = v < -len ? -1 : v + len;  // -len - 1 and below: before the start
      return std::clamp(v, lo, hi);
    };
    // ONNX's bounds: a start within [0, len] ([0, len - 1] stepping back), an end within
    // [0, len] ([-1, len - 1] stepping back: -1 takes index 0 in).
    const std::int64_t b = s > 0 ? clamp(starts[k], 0, len) : clamp(starts[k], 0, len - 1);
    const std::int64_t e = s > 0 ? clamp(ends[k], 0, len) : clamp(ends[k], -1, len - 1);
    // ceil(span / |step|), in unsigned arithmetic: a step near INT64_MIN or INT64_MAX (a
    // file may write any) must not overflow the count; the span is at most len + 1.
    const std::uint64_t span = static_cast<std::uint64_t>(s > 0 ? e - b : b - e);
    const std::uint64_t mag = s > 0 ? static_cast<std::uint64_t>(s) : std::uint64_t{0} - static_cast<std::uint64_t>(s);
    const std::int64_t n = (s > 0 ? e > b : b > e) ? static_cast<std::int64_t>((span - 1) / mag + 1) : 0;
    first[a] = b;
    step[a] = s;
    dims[a] = n;
  }
  const Dims st = strides_of(x.dims);
  std::vector<std::int64_t> src;
  for_each_index(dims, [&](std::int64_t, const Dims& idx) {
    std::int64_t s = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) s += (first[k] + idx[k] * step[k]) * st[k];
    src.push_back(s);
  });
  return take(x, dims, src);
}

/// An index into an axis of `len`, negative counting from the end, checked.
std::int64_t index_in(std::int64_t i, std::int64_t len) {
  if (i < -len || i >= len) fail(fmt::format("index {} is out of range for an axis of {}", i, len));
  return i < 0 ? i + len : i;
}

Arr gather(const onnx::NodeProto& n, const Arr& x, const Arr& idx, bool elements) {
  const auto r = static_cast<std::int64_t>(x.dims.size());
  if (r == 0) fail("gathers from a scalar");
  const auto axis = static_cast<std::size_t>(axis_in(attr_int(n, "axis", 0), r));
  const Dims ind = ints_of(idx, "indices");
  const Dims st = strides_of(x.dims);
  std::vector<std::int64_t> src;
  if (elements) {  // GatherElements: out has the indices' shape
    if (idx.rank() != r) fail("indices must have the data's rank");
    for_each_index(idx.dims, [&](std::int64_t k, const Dims& at) {
      std::int64_t s = 0;
      for (std::size_t a = 0; a < at.size(); ++a)
        s += (a == axis ? index_in(ind[static_cast<std::size_t>(k)], x.dims[a]) : at[a]) * st[a];
      src.push_back(s);
    });
    return take(x, idx.dims, src);
  }
  Dims dims(x.dims.begin(), x.dims.begin() + static_cast<std::ptrdiff_t>(axis));
  dims.insert(dims.end(), idx.dims.begin(), idx.dims.end());
  dims.insert(dims.end(), x.dims.begin() + static_cast<std::ptrdiff_t>(axis) + 1, x.dims.end());
  const std::size_t ir = idx.dims.size();
  for_each_index(dims, [&](std::int64_t, const Dims& at) {
    std::int64_t flat_i = 0;
    for (std::size_t k = 0; k < ir; ++k) flat_i = flat_i * idx.dims[k] + at[axis + k];
    std::int64_t s = index_in(ind[static_cast<std::size_t>(flat_i)], x.dims[axis]) * st[axis];
    for (std::size_t a = 0; a < axis; ++a) s += at[a] * st[a];
    for (std::size_t a = axis + 1; a < x.dims.size(); ++a) s += at[a + ir - 1] * st[a];
    src.push_back(s);
  });
  return take(x, dims, src);
}

/// out[i] = combine(out[i], u) for each update, in order (ScatterND, ScatterElements).
void scatter_one(Arr& out, std::size_t at, const Arr& upd, std::size_t k, const std::string& reduction) {
  if (out.is_int()) {
    std::int64_t& o = out.i[at];
    const std::int64_t u = upd.i[k];
    if (reduction == "none") o = u;
    else if (reduction == "add") o = add_i(o, u);
    else if (reduction == "mul") o = mul_i(o, u);
    else if (reduction == "max") o = std::max(o, u);
    else o = std::min(o, u);
    return;
  }
  double& o = out.f[at];
  const double u = upd.f[k];
  if (reduction == "none") o = u;
  else if (reduction == "add") o = rounded(o + u, out.dtype);
  else if (reduction == "mul") o = rounded(o * u, out.dtype);
  else if (reduction == "max") o = std::max(o, u);
  else o = std::min(o, u);
}

std::string reduction_of(const onnx::NodeProto& n) {
  const std::string r = attr_string(n, "reduction", "none");
  if (r != "none" && r != "add" && r != "mul" && r != "max" && r != "min")
    fail(fmt::format("reduction '{}' is not one of none, add, mul, max, min", r));
  return r;
}

Arr scatter_nd(const onnx::NodeProto& n, const Inputs& in) {
  const Arr &x = need(in, 0), &idx = need(in, 1), &upd = need(in, 2);
  if (x.dtype != upd.dtype) fail("data and updates differ in type");
  const Dims ind = ints_of(idx, "indices");
  if (idx.rank() < 1) fail("indices must have at least one axis");
  const auto q = static_cast<std::size_t>(idx.dims.back());
  if (q > x.dims.size()) fail(fmt::format("indices of {} values index data of rank {}", q, x.dims.size()));
  Dims want(idx.dims.begin(), idx.dims.end() - 1);
  want.insert(want.end(), x.dims.begin() + static_cast<std::ptrdiff_t>(q), x.dims.end());
  if (upd.dims != want) fail(fmt::format("updates are {}, the indices and data make {}", dims_text(upd.dims), dims_text(want)));
  const std::string reduction = reduction_of(n);
  const Dims st = strides_of(x.dims);
  std::int64_t slice = 1;
  for (std::size_t a = q; a < x.dims.size(); ++a) slice *= x.dims[a];
  Arr out = x;
  const auto tuples = static_cast<std::size_t>(count_of(Dims(idx.dims.begin(), idx.dims.end() - 1)));
  for (std::size_t k = 0; k < tuples; ++k) {
    std::int64_t base = 0;
    for (std::size_t a = 0; a < q; ++a) base += index_in(ind[k * q + a], x.dims[a]) * st[a];
    for (std::int64_t e = 0; e < slice; ++e)
      scatter_one(out, static_cast<std::size_t>(base + e), upd, static_cast<std::size_t>(static_cast<std::int64_t>(k) * slice + e),
                  reduction);
  }
  return out;
}

Arr scatter_elements(const onnx::NodeProto& n, const Inputs& in) {
  const Arr &x = need(in, 0), &idx = need(in, 1), &upd = need(in, 2);
  if (x.dtype != upd.dtype) fail("data and updates differ in type");
  if (idx.dims != upd.dims || idx.rank() != x.rank()) fail("indices and updates must have one shape, of the data's rank");
  const auto axis = static_cast<std::size_t>(axis_in(attr_int(n, "axis", 0), x.rank()));
  const std::string reduction = reduction_of(n);
  const Dims ind = ints_of(idx, "indices"), st = strides_of(x.dims);
  Arr out = x;
  for_each_index(idx.dims, [&](std::int64_t k, const Dims& at) {
    std::int64_t s = 0;
    for (std::size_t a = 0; a < at.size(); ++a) {
      if (a != axis && at[a] >= x.dims[a]) fail("indices reach past the data");
      s += (a == axis ? index_in(ind[static_cast<std::size_t>(k)], x.dims[a]) : at[a]) * st[a];
    }
    scatter_one(out, static_cast<std::size_t>(s), upd, static_cast<std::size_t>(k), reduction);
  });
  return out;
}

Arr expand(const Arr& x, const Dims& shape) {
  const Dims dims = broadcast({x.dims, shape});
  return take(x, dims, broadcast_index(x.dims, dims));
}

Arr tile(const Arr& x, const Dims& repeats) {
  if (repeats.size() != x.dims.size()) fail(fmt::format("{} repeats for rank {}", repeats.size(), x.dims.size()));
  Dims dims;
  for (std::size_t k = 0; k < repeats.size(); ++k) {
    if (repeats[k] < 0) fail("a negative repeat");
    std::int64_t d;
    if (__builtin_mul_overflow(x.dims[k], repeats[k], &d)) fail("the result overflows");
    dims.push_back(d);
  }
  const Dims st = strides_of(x.dims);
  std::vector<std::int64_t> src;
  for_each_index(dims, [&](std::int64_t, const Dims& at) {
    std::int64_t s = 0;
    for (std::size_t k = 0; k < at.size(); ++k) s += (at[k] % x.dims[k]) * st[k];
    src.push_back(s);
  });
  return take(x, dims, src);
}

/// The axes a reduction names (all when none), sorted, and the kept shape.
std::vector<bool> reduced_axes(const Dims& axes, std::int64_t r) {
  std::vector<bool> red(static_cast<std::size_t>(r), axes.empty());
  for (std::int64_t a : axes) red[static_cast<std::size_t>(axis_in(a, r))] = true;
  return red;
}

Arr reduce(const std::string& t, const onnx::NodeProto& n, const Arr& x, const Dims& axes, bool arg) {
  const auto r = static_cast<std::int64_t>(x.dims.size());
  std::vector<bool> red = reduced_axes(axes, r);
  const bool keep = attr_int(n, "keepdims", 1) != 0;
  Dims kept;  // the result's sizes with every axis kept (reduced ones 1)
  for (std::int64_t k = 0; k < r; ++k) kept.push_back(red[static_cast<std::size_t>(k)] ? 1 : x.dims[static_cast<std::size_t>(k)]);
  Dims dims;
  for (std::int64_t k = 0; k < r; ++k)
    if (keep || !red[static_cast<std::size_t>(k)]) dims.push_back(kept[static_cast<std::size_t>(k)]);
  const std::size_t m = static_cast<std::size_t>(count_of(kept));
  const bool last = attr_int(n, "select_last_index", 0) != 0;
  Arr out = empty_like(arg || x.is_int() ? DType::i64 : x.dtype, dims);
  std::vector<double> acc(m), best(m);
  std::vector<std::int64_t> acci(m), counts(m, 0);
  const Dims kst = strides_of(kept);
  const std::size_t axis = arg ? static_cast<std::size_t>(std::find(red.begin(), red.end(), true) - red.begin()) : 0;
  for_each_index(x.dims, [&](std::int64_t k, const Dims& at) {
    std::int64_t o = 0;
    for (std::size_t a = 0; a < at.size(); ++a) o += (red[a] ? 0 : at[a]) * kst[a];
    const auto j = static_cast<std::size_t>(o);
    const double v = x.is_int() ? static_cast<double>(x.i[static_cast<std::size_t>(k)]) : x.f[static_cast<std::size_t>(k)];
    const std::int64_t vi = x.is_int() ? x.i[static_cast<std::size_t>(k)] : 0;
    const bool first = counts[j]++ == 0;
    if (arg) {  // ArgMax/ArgMin: the index along the axis of the first (or last) extreme
      const bool better = t == "ArgMax" ? v > best[j] || (last && v == best[j]) : v < best[j] || (last && v == best[j]);
      if (first || better) best[j] = v, acci[j] = at[axis];
      return;
    }
    if (x.is_int()) {
      std::int64_t& a = acci[j];
      if (first) a = t == "ReduceProd" ? 1 : t == "ReduceSum" || t == "ReduceMean" ? 0 : vi;
      if (t == "ReduceSum" || t == "ReduceMean") a = add_i(a, vi);
      else if (t == "ReduceProd") a = mul_i(a, vi);
      else if (t == "ReduceMax") a = std::max(a, vi);
      else a = std::min(a, vi);
      return;
    }
    double& a = acc[j];
    if (first) a = t == "ReduceProd" ? 1.0 : t == "ReduceSum" || t == "ReduceMean" ? 0.0 : v;
    if (t == "ReduceSum" || t == "ReduceMean") a += v;
    else if (t == "ReduceProd") a *= v;
    else if (t == "ReduceMax") a = std::isnan(v) || v > a ? v : a;
    else a = std::isnan(v) || v < a ? v : a;
  });
  for (std::size_t j = 0; j < m; ++j) {
    if (arg) out.i[j] = acci[j];
    else if (x.is_int()) out.i[j] = t == "ReduceMean" && counts[j] ? acci[j] / counts[j] : acci[j];
    else out.f[j] = rounded(t == "ReduceMean" ? acc[j] / static_cast<double>(counts[j]) : acc[j], out.dtype);
  }
  return out;
}

Arr cumsum(const onnx::NodeProto& n, const Arr& x, std::int64_t axis_value) {
  const auto axis = static_cast<std::size_t>(axis_in(axis_value, x.rank()));
  const bool exclusive = attr_int(n, "exclusive", 0) != 0, reverse = attr_int(n, "reverse", 0) != 0;
  const Dims st = strides_of(x.dims);
  const std::int64_t len = x.dims[axis], stride = st[axis];
  Arr out = empty_like(x.dtype, x.dims);
  for_each_index(x.dims, [&](std::int64_t k, const Dims& at) {
    if (at[axis] != 0) return;  // one run per line along the axis, started at its first element
    double sum = 0;
    std::int64_t sumi = 0;
    for (std::int64_t s = 0; s < len; ++s) {
      const std::int64_t e = reverse ? len - 1 - s : s;
      const auto p = static_cast<std::size_t>(k + e * stride);
      if (x.is_int()) {
        if (exclusive) out.i[p] = sumi;
        sumi = add_i(sumi, x.i[p]);
        if (!exclusive) out.i[p] = sumi;
      } else {
        if (exclusive) out.f[p] = sum;
        sum = rounded(sum + x.f[p], x.dtype);
        if (!exclusive) out.f[p] = sum;
      }
    }
  });
  return out;
}

Arr trilu(const onnx::NodeProto& n, const Arr& x, std::int64_t k) {
  if (x.rank() < 2) fail("needs two axes");
  const bool upper = attr_int(n, "upper", 1) != 0;
  const std::int64_t rows = x.dims[x.dims.size() - 2], cols = x.dims.back();
  Arr out = x;
  for (std::int64_t e = 0; e < x.size(); ++e) {
    const std::int64_t j = e % cols, i = (e / cols) % rows;
    if (upper ? j - i >= k : j - i <= k) continue;
    if (out.is_int()) out.i[static_cast<std::size_t>(e)] = 0;
    else out.f[static_cast<std::size_t>(e)] = 0.0;
  }
  return out;
}

Arr where(const Inputs& in) {
  const Arr &c = need(in, 0), &a = need(in, 1), &b = need(in, 2);
  if (!c.is_int()) fail("the condition must be booleans");
  if (a.dtype != b.dtype) fail(fmt::format("chooses between types {} and {}", to_string(a.dtype), to_string(b.dtype)));
  const Dims dims = broadcast({c.dims, a.dims, b.dims});
  const auto sc = broadcast_index(c.dims, dims), sa = broadcast_index(a.dims, dims), sb = broadcast_index(b.dims, dims);
  Arr out = empty_like(a.dtype, dims);
  for (std::size_t k = 0; k < sc.size(); ++k) {
    const bool pick = c.i[static_cast<std::size_t>(sc[k])] != 0;
    if (out.is_int()) out.i[k] = pick ? a.i[static_cast<std::size_t>(sa[k])] : b.i[static_cast<std::size_t>(sb[k])];
    else out.f[k] = pick ? a.f[static_cast<std::size_t>(sa[k])] : b.f[static_cast<std::size_t>(sb[k])];
  }
  return out;
}

/// Squeeze/Unsqueeze's axes, Split's sizes: input 1 from opset 13, the attribute before.
Dims list_of(const onnx::NodeProto& n, int opset, const Inputs& in, const char* name) {
  if (opset >= 13) return in.size() > 1 && in[1] ? ints_of(*in[1], name) : Dims{};
  return attr_ints(n, name).value_or(Dims{});
}

Arr squeeze(const std::string& t, const Arr& x, const Dims& axes) {
  Dims dims;
  if (t == "Unsqueeze") {
    const auto r = static_cast<std::int64_t>(x.dims.size() + axes.size());
    std::vector<bool> one(static_cast<std::size_t>(r), false);
    for (std::int64_t a : axes) {
      const auto at = static_cast<std::size_t>(axis_in(a, r));
      if (one[at]) fail(fmt::format("axis {} is given twice", a));
      one[at] = true;
    }
    std::size_t next = 0;
    for (std::int64_t d = 0; d < r; ++d) dims.push_back(one[static_cast<std::size_t>(d)] ? 1 : x.dims[next++]);
  } else {
    std::vector<bool> drop = reduced_axes(axes, x.rank());
    for (std::size_t d = 0; d < x.dims.size(); ++d) {
      if (drop[d] && x.dims[d] == 1) continue;
      if (drop[d] && !axes.empty()) fail(fmt::format("axis {} has size {}, not 1", d, x.dims[d]));
      dims.push_back(x.dims[d]);
    }
  }
  Arr out = x;
  out.dims = std::move(dims);
  return out;
}

std::vector<Arr> split(const onnx::NodeProto& n, int opset, const Inputs& in) {
  const Arr& x = need(in, 0);
  const auto axis = static_cast<std::size_t>(axis_in(attr_int(n, "axis", 0), x.rank()));
  Dims sizes = list_of(n, opset, in, "split");
  const std::int64_t len = x.dims[axis];
  if (sizes.empty()) {
    const std::int64_t parts = attr_int(n, "num_outputs", n.output_size());
    if (parts < 1) fail("splits into no parts");
    const std::int64_t each = (len + parts - 1) / parts;  // the last part the smaller (opset 18's rule)
    for (std::int64_t k = 0, left = len; k < parts; ++k, left -= each) sizes.push_back(std::max<std::int64_t>(0, std::min(each, left)));
  }
  if (static_cast<int>(sizes.size()) != n.output_size() ||
      std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0}) != len)
    fail(fmt::format("sizes {} for {} outputs of an axis of {}", dims_text(sizes), n.output_size(), len));
  std::vector<Arr> out;
  std::int64_t at = 0;
  for (std::int64_t s : sizes) {
    Arr begin = empty_like(DType::i64, {1}), end = empty_like(DType::i64, {1}), ax = empty_like(DType::i64, {1});
    begin.i[0] = at, end.i[0] = at + s, ax.i[0] = static_cast<std::int64_t>(axis);
    out.push_back(slice({&x, &begin, &end, &ax}));
    at += s;
  }
  return out;
}

const std::vector<std::string>& operators() {
  static const std::vector<std::string> ops = {
      "Abs", "Add", "And", "ArgMax", "ArgMin", "Atan", "Cast", "Ceil", "Concat", "Cos", "CumSum", "Div", "Equal",
      "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements", "Greater", "GreaterOrEqual",
      "Identity", "Less", "LessOrEqual", "Log", "Max", "Mean", "Min", "Mod", "Mul", "Neg", "Not", "Or", "Pow",
      "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape",
      "Round", "ScatterElements", "ScatterND", "Sigmoid", "Sign", "Sin", "Size", "Slice", "Split", "Sqrt", "Squeeze",
      "Sub", "Sum", "Tan", "Tanh", "Tile", "Transpose", "Trilu", "Unsqueeze", "Where", "Xor"};
  return ops;
}

std::vector<Arr> run(const onnx::NodeProto& n, int opset, const Inputs& in) {
  const std::string& t = n.op_type();
  auto one = [](Arr a) { return std::vector<Arr>{std::move(a)}; };
  if (t == "Add" || t == "Sub" || t == "Mul" || t == "Div" || t == "Mod" || t == "Pow")
    return one(arithmetic(t, n, {&need(in, 0), &need(in, 1)}));
  if (t == "Equal" || t == "Less" || t == "LessOrEqual" || t == "Greater" || t == "GreaterOrEqual")
    return one(compare(t, {&need(in, 0), &need(in, 1)}));
  if (t == "And" || t == "Or" || t == "Xor") return one(logical(t, {&need(in, 0), &need(in, 1)}));
  if (t == "Not") return one(logical(t, {&need(in, 0)}));
  if (t == "Max" || t == "Min" || t == "Sum" || t == "Mean") {  // variadic, left to right
    Inputs all;
    for (std::size_t k = 0; k < in.size(); ++k) all.push_back(&need(in, k));
    same_type(all);
    Arr acc = *all[0];
    for (std::size_t k = 1; k < all.size(); ++k) {
      if (t == "Max") acc = elementwise({&acc, all[k]}, [](auto& v) { return std::isnan(v[1]) || v[1] > v[0] ? v[1] : v[0]; },
                                        [](auto& v) { return std::max(v[0], v[1]); });
      else if (t == "Min") acc = elementwise({&acc, all[k]}, [](auto& v) { return std::isnan(v[1]) || v[1] < v[0] ? v[1] : v[0]; },
                                             [](auto& v) { return std::min(v[0], v[1]); });
      else acc = arithmetic("Add", n, {&acc, all[k]});
    }
    if (t == "Mean") {
      if (acc.is_int()) fail("Mean takes floats");
      const double parts = static_cast<double>(all.size());
      for (double& v : acc.f) v = rounded(v / parts, acc.dtype);
    }
    return one(std::move(acc));
  }
  if (t == "Cast") return one(cast(n, need(in, 0)));
  if (t == "Where") return one(where(in));
  if (t == "Range") return one(range(in));
  if (t == "Reshape") return one(reshape(n, need(in, 0), ints_of(need(in, 1), "the shape")));
  if (t == "Flatten") {
    const Arr& x = need(in, 0);
    const std::int64_t axis = attr_int(n, "axis", 1);
    const std::int64_t at = axis < 0 ? axis + x.rank() : axis;
    if (at < 0 || at > x.rank()) fail(fmt::format("axis {} is out of range for rank {}", axis, x.rank()));
    std::int64_t rows = 1;
    for (std::int64_t k = 0; k < at; ++k) rows *= x.dims[static_cast<std::size_t>(k)];
    Arr out = x;
    out.dims = {rows, rows ? x.size() / rows : 0};
    return one(std::move(out));
  }
  if (t == "Transpose") return one(transpose(n, need(in, 0)));
  if (t == "Squeeze" || t == "Unsqueeze") return one(squeeze(t, need(in, 0), list_of(n, opset, in, "axes")));
  if (t == "Concat") {
    Inputs all;
    for (std::size_t k = 0; k < in.size(); ++k) all.push_back(&need(in, k));
    return one(concat(n, all));
  }
  if (t == "Split") return split(n, opset, in);
  if (t == "Slice") return one(slice(in));
  if (t == "Gather" || t == "GatherElements") return one(gather(n, need(in, 0), need(in, 1), t == "GatherElements"));
  if (t == "ScatterND") return one(scatter_nd(n, in));
  if (t == "ScatterElements") return one(scatter_elements(n, in));
  if (t == "Expand") return one(expand(need(in, 0), ints_of(need(in, 1), "the shape")));
  if (t == "Tile") return one(tile(need(in, 0), ints_of(need(in, 1), "repeats")));
  if (t == "Size") {
    Arr out = empty_like(DType::i64, {});
    out.i[0] = need(in, 0).size();
    return one(std::move(out));
  }
  if (t == "CumSum") return one(cumsum(n, need(in, 0), scalar_int(need(in, 1), "the axis")));
  if (t == "Trilu") return one(trilu(n, need(in, 0), in.size() > 1 && in[1] ? scalar_int(*in[1], "k") : 0));
  if (t == "ArgMax" || t == "ArgMin") {
    const Arr& x = need(in, 0);
    return one(reduce(t, n, x, {axis_in(attr_int(n, "axis", 0), x.rank())}, true));
  }
  if (t.starts_with("Reduce")) {
    const Arr& x = need(in, 0);
    const bool as_input = opset >= 18 || (t == "ReduceSum" && opset >= 13);
    const Dims axes = as_input ? (in.size() > 1 && in[1] ? ints_of(*in[1], "axes") : Dims{}) : attr_ints(n, "axes").value_or(Dims{});
    if (axes.empty() && as_input && attr_int(n, "noop_with_empty_axes", 0) != 0) return one(x);
    return one(reduce(t, n, x, axes, false));
  }
  return one(unary(t, in));
}

}  // namespace

bool evaluates(const std::string& op_type) {
  static const std::unordered_map<std::string, bool> set = [] {
    std::unordered_map<std::string, bool> s;
    for (const auto& o : operators()) s[o] = true;
    return s;
  }();
  return set.count(op_type) > 0;
}

const std::vector<std::string>& folded_operators() { return operators(); }

std::vector<Tensor> evaluate(const onnx::NodeProto& n, int opset, const std::vector<const Tensor*>& inputs) {
  std::vector<Arr> held;
  held.reserve(inputs.size());
  Inputs in;
  for (const Tensor* t : inputs) {
    if (!t) {
      in.push_back(nullptr);
      continue;
    }
    held.push_back(from_tensor(*t));
    in.push_back(&held.back());
  }
  std::vector<Tensor> out;
  for (const Arr& a : run(n, opset, in)) out.push_back(to_tensor(a));
  return out;
}

}  // namespace opgraph::onnx_fold
