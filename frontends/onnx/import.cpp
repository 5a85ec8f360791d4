// ONNX import: a ModelProto (Debian's ONNX protobuf classes) into an ordinary Graph and its
// parameter values. Nodes are sorted topologically with Boost.Graph (files need not list
// them in order); each ONNX operator has a converter to opgraph ops; initializers become
// parameters; a labels input and a loss are added so that the model trains and evaluates
// like a .og model. docs/onnx.md lists the operators.
#include <opgraph/frontends/onnx/onnx.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/topological_sort.hpp>
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/registry.hpp>
#include <opgraph/graph/size.hpp>

#include "fold.hpp"

namespace opgraph {

namespace {

/// The opsets of the default domain the importer reads. Of what it converts, opsets 11 and
/// 12 take Squeeze's, Unsqueeze's and ReduceSum's axes and Split's sizes as attributes (and
/// Dropout's ratio, 11) and normalise Softmax over a flattened matrix; opsets 18 to 22
/// change the reductions' axes (an input from 18), Split (num_outputs), Pad (an input of
/// axes), Resize (antialias, axes, keep_aspect_ratio_policy; half_pixel_symmetric) and
/// AveragePool (dilations), and add Mish (18) and Gelu (20); the rest are new types.
constexpr int kFirstOpset = 11, kLastOpset = 22;

/// Operators opgraph has no op for, computed at import when their inputs are constants
/// (fold.hpp): positions, encodings and masks that depend on no input.
const std::vector<std::string>& constants_only_operators() {
  static const std::vector<std::string> ops = {"And", "ArgMax", "ArgMin", "Atan", "Ceil", "Cos", "Floor",
                                               "GatherElements", "Mod", "Or", "Range", "Round", "ScatterElements",
                                               "ScatterND", "Sign", "Sin", "Size", "Tan", "Trilu", "Xor"};
  return ops;
}
bool computed_only_at_import(const std::string& op_type) {
  const auto& ops = constants_only_operators();
  return std::find(ops.begin(), ops.end(), op_type) != ops.end();
}

/// Anything a file is refused for: "<file>: <what>".
[[noreturn]] void bad(const std::string& file, const std::string& what) { throw DataError(file, what); }

/// Where a tensor kept outside the model file is (ONNX's external data: `location`, a path
/// relative to the model's folder, and the bytes at `offset`, `length` of them), checked:
/// within the model's folder, a regular file that holds those bytes.
struct ExternalData {
  std::string path;
  std::uint64_t offset = 0, length = 0;
};
ExternalData external_data(const onnx::TensorProto& t, const std::string& file, const std::string& what) {
  std::string location;
  std::optional<std::uint64_t> offset, length;
  for (const auto& e : t.external_data()) {
    if (e.key() == "location") {
      location = e.value();
    } else if (e.key() == "offset" || e.key() == "length") {
      const std::string& v = e.value();
      std::uint64_t x = 0;
      bool ok = !v.empty() && v.size() <= 19;  // below 10^19: no overflow
      for (char c : v) ok = ok && c >= '0' && c <= '9', x = x * 10 + static_cast<std::uint64_t>(c - '0');
      if (!ok) bad(file, fmt::format("{} '{}': external data {} '{}' is not a number of bytes", what, t.name(), e.key(), v));
      (e.key() == "offset" ? offset : length) = x;
    }
  }
  if (location.empty())
    bad(file, fmt::format("{} '{}' keeps its data in an external file and names none (no 'location')", what, t.name()));
  const std::filesystem::path rel(location);
  bool inside = !rel.is_absolute() && !rel.has_root_name();
  for (const auto& part : rel) inside = inside && part != "..";
  if (!inside)
    bad(file, fmt::format("{} '{}' keeps its data in '{}', outside the model's folder: ONNX names external data by a "
                          "path within the folder of the model",
                          what, t.name(), location));
  ExternalData d;
  d.path = (std::filesystem::path(file).parent_path() / rel).string();
  try {
    check_input_file(d.path);
  } catch (const DataError&) {
    bad(file, fmt::format("{} '{}' keeps its data in '{}', which is not a file that can be read: keep the model's "
                          "external data beside it, as it was saved",
                          what, t.name(), d.path));
  }
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(d.path, ec);
  if (ec) bad(file, fmt::format("{} '{}': the size of its external data '{}' cannot be read ({})", what, t.name(), d.path, ec.message()));
  d.offset = offset.value_or(0);
  if (d.offset > size)
    bad(file, fmt::format("{} '{}': its external data starts at byte {} of '{}', which holds {} bytes", what, t.name(),
                          d.offset, d.path, size));
  d.length = length.value_or(size - d.offset);
  if (d.length > size - d.offset)
    bad(file, fmt::format("{} '{}': its external data, {} bytes from byte {} of '{}', runs past the file's {} bytes",
                          what, t.name(), d.length, d.offset, d.path, size));
  return d;
}

/// The tensor an initializer or a Constant holds (f32, f64 or i64; i32 read as i64), in
/// the model file or, saved with external data, in a file beside it.
Tensor tensor_of(const onnx::TensorProto& t, const std::string& file, const std::string& what) {
  const bool external = t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0;
  if (external && t.has_raw_data())
    bad(file, fmt::format("{} '{}' holds its data both in the file and in external data", what, t.name()));
  std::vector<std::int64_t> dims;
  std::int64_t count = 1;
  for (std::int64_t d : t.dims()) {
    if (d < 0) bad(file, fmt::format("{} '{}' has a negative dimension ({})", what, t.name(), d));
    if (!mul_fits(count, d, &count) || count > (std::int64_t{1} << 40))
      bad(file, fmt::format("{} '{}' declares more elements than any file can hold", what, t.name()));
    dims.push_back(d);
  }
  DType dtype;
  std::size_t width;
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: dtype = DType::f32; width = 4; break;
    case onnx::TensorProto::DOUBLE: dtype = DType::f64; width = 8; break;
    case onnx::TensorProto::INT64: dtype = DType::i64; width = 8; break;
    case onnx::TensorProto::INT32: dtype = DType::i64; width = 4; break;
    case onnx::TensorProto::BOOL: dtype = DType::i64; width = 1; break;  // 0 and 1, as the folder computes them
    default:
      bad(file, fmt::format("{} '{}' holds {} values: opgraph reads float, double, int64, int32 and bool tensors", what,
                            t.name(), onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t.data_type()))));
  }
  // The values must be there before the tensor is made: a few bytes of file can declare
  // 2^40 elements (fuzz_onnx: 12.5 GB asked for by a 5 kB file).
  const auto n = static_cast<std::size_t>(count);
  if (external) {
    const ExternalData d = external_data(t, file, what);
    if (d.length != static_cast<std::uint64_t>(n) * width)
      bad(file, fmt::format("{} '{}' declares {} values ({} bytes) and its external data in '{}' holds {} bytes", what,
                            t.name(), n, static_cast<std::uint64_t>(n) * width, d.path, d.length));
    Tensor out(Shape(std::move(dims)), dtype);  // reserved from the memory limit, once the file is known to hold it
    std::ifstream in(d.path, std::ios::binary);
    const bool wide = width == 8 || t.data_type() == onnx::TensorProto::FLOAT;  // read in place: f32, f64, i64
    std::string narrow(wide ? 0 : n * width, '\0');
    in.seekg(static_cast<std::streamoff>(d.offset));
    in.read(wide ? static_cast<char*>(out.raw()) : narrow.data(), static_cast<std::streamsize>(n * width));
    if (!in || static_cast<std::size_t>(in.gcount()) != n * width)
      bad(file, fmt::format("{} '{}': reading {} bytes of its external data from '{}' failed", what, t.name(), n * width, d.path));
    for (std::size_t i = 0; !wide && i < n; ++i) {
      std::int32_t v = narrow[i] != 0;  // bool
      if (width == 4) std::memcpy(&v, narrow.data() + i * 4, 4);
      out.data<std::int64_t>()[i] = v;
    }
    return out;
  }
  std::size_t held = 0;
  if (t.has_raw_data()) {
    held = t.raw_data().size() / width;
  } else {
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT: held = static_cast<std::size_t>(t.float_data_size()); break;
      case onnx::TensorProto::DOUBLE: held = static_cast<std::size_t>(t.double_data_size()); break;
      case onnx::TensorProto::INT64: held = static_cast<std::size_t>(t.int64_data_size()); break;
      default: held = static_cast<std::size_t>(t.int32_data_size());
    }
  }
  if (held != n || (t.has_raw_data() && t.raw_data().size() != n * width))
    bad(file, fmt::format("{} '{}' declares {} values and holds {}", what, t.name(), n, held));
  Tensor out(Shape(std::move(dims)), dtype);
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (t.data_type() == onnx::TensorProto::INT32) {
      for (std::size_t i = 0; i < n; ++i) {
        std::int32_t v;
        std::memcpy(&v, raw.data() + i * 4, 4);
        out.data<std::int64_t>()[i] = v;
      }
    } else if (t.data_type() == onnx::TensorProto::BOOL) {
      for (std::size_t i = 0; i < n; ++i) out.data<std::int64_t>()[i] = raw[i] != 0;
    } else if (n > 0) {
      std::memcpy(out.raw(), raw.data(), n * width);
    }
    return out;
  }
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      std::copy(t.float_data().begin(), t.float_data().end(), out.data<float>());
      break;
    case onnx::TensorProto::DOUBLE:
      std::copy(t.double_data().begin(), t.double_data().end(), out.data<double>());
      break;
    case onnx::TensorProto::INT64:
      std::copy(t.int64_data().begin(), t.int64_data().end(), out.data<std::int64_t>());
      break;
    case onnx::TensorProto::BOOL:
      std::transform(t.int32_data().begin(), t.int32_data().end(), out.data<std::int64_t>(),
                     [](std::int32_t v) { return std::int64_t{v != 0}; });
      break;
    default:
      std::copy(t.int32_data().begin(), t.int32_data().end(), out.data<std::int64_t>());
  }
  return out;
}

/// A node name opgraph and its model files accept: letters, digits, '_' and '.', starting
/// with a letter or '_' ("/fc1/Gemm_output_0" -> "_fc1_Gemm_output_0").
std::string clean_name(const std::string& name) {
  std::string out;
  for (char ch : name) out += std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' ? ch : '_';
  if (out.empty() || !(std::isalpha(static_cast<unsigned char>(out[0])) || out[0] == '_')) out = "v_" + out;
  static const std::unordered_set<std::string> words = {"input", "labels", "param", "output", "loss", "block",
                                                        "end", "return", "include"};
  if (words.count(out)) out += "_";
  return out;
}

/// The batch dimension in an integer tensor computed at import (Shape's output): no size
/// a file can hold, and not -1, which Reshape reads as "infer". A multiple of it, c·N (the
/// batch times the heads, which PyTorch's nn.MultiheadAttention folds together), is
/// kBatch + c - 1, for c below kMaxMultiple.
constexpr std::int64_t kBatch = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxMultiple = std::int64_t{1} << 40;
bool is_batch(std::int64_t v) { return v < kBatch + kMaxMultiple; }
std::int64_t multiple_of(std::int64_t v) { return v - kBatch + 1; }
std::int64_t batch_times(std::int64_t c) { return kBatch + (c - 1); }
/// A size as the messages show it: 7, N or 4·N.
std::string size_text(std::int64_t v) {
  if (!is_batch(v)) return std::to_string(v);
  return multiple_of(v) == 1 ? std::string("N") : fmt::format("{}·N", multiple_of(v));
}

/// Whether groups (node axes per ONNX axis) fold any two together.
bool folds(const std::vector<int>& groups) {
  return std::any_of(groups.begin(), groups.end(), [](int g) { return g != 1; });
}

/// Where a node's shape holds the batch: its axis (-1: none), and the products of the
/// sizes before and after it; `named` when another axis has a symbolic size.
struct BatchAxis {
  int axis = -1;
  std::int64_t pre = 1, post = 1;
  bool named = false;
};
BatchAxis batch_axis(const Shape& s) {
  BatchAxis b;
  for (int a = 0; a < s.rank(); ++a) {
    if (s[a] == N) b.axis = a;
    else if (is_symbolic(s[a])) b.named = true;
    else (b.axis < 0 ? b.pre : b.post) *= s[a];
  }
  return b;
}

/// A reshape of a node whose batch is as `from` says to ONNX sizes `dims` that hold the
/// batch, c·N, at axis j: the folded axis holds a·N·b, a the factor of the node's sizes
/// before the batch that the target's sizes before j leave over, b likewise after it, and
/// the batch lands at node axis `axis` (j, or j + 1 when a > 1). `failure` says why no such
/// split exists.
struct BatchSplit {
  std::int64_t a = 1, b = 1;
  int axis = -1;
  const char* failure = nullptr;
};
BatchSplit batch_split(const BatchAxis& from, const std::vector<std::int64_t>& dims, int j, std::int64_t c) {
  BatchSplit s;
  std::int64_t before = 1, after = 1;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    std::int64_t& side = i < j ? before : after;
    if (i != j && __builtin_mul_overflow(side, dims[static_cast<std::size_t>(i)], &side)) {
      s.failure = "the sizes overflow";
      return s;
    }
  }
  if (before <= 0 || after <= 0 || from.pre % before != 0 || from.post % after != 0 ||
      (from.pre / before) * (from.post / after) != c) {
    s.failure = "the batch would mix with the axes around it, which opgraph keeps apart";
    return s;
  }
  s.a = from.pre / before;
  s.b = from.post / after;
  s.axis = j + (s.a > 1 ? 1 : 0);
  return s;
}

struct Importer {
  Importer(const onnx::ModelProto& m, std::string f) : model(m), file(std::move(f)) {}
  const onnx::ModelProto& model;
  std::string file;
  int opset = 0;
  Graph graph;
  std::unordered_map<std::string, NodeId> values;     // ONNX value name -> node
  // ONNX's booleans, held as reals: the 0/1 masks of comparisons (and Not, and casts of
  // them), and values read as true where nonzero (a float cast to BOOL, for Where).
  std::unordered_set<std::string> masks, truthy;
  std::unordered_map<std::string, Tensor> constants;  // initializers and Constant outputs not yet nodes
  // The float initializers: weights, which a constant folded at import would stop
  // fine-tuning from training (W * 2 stays a parameter and a scale).
  std::unordered_set<std::string> weights;
  // Integer constants computed from the batch's size (see fold): the folder leaves them alone.
  std::unordered_set<std::string> batch_sizes;
  // The values some node or the graph's outputs read.
  std::unordered_set<std::string> read;
  std::vector<std::pair<std::string, Tensor>> param_values, state_values;
  std::unordered_set<std::string> names;  // opgraph names taken
  std::int64_t exported_batch = 0;        // the inputs' first dimension in the file, when fixed (0: symbolic)
  // ONNX values that fold the batch with other axes: PyTorch's nn.MultiheadAttention
  // reshapes [T, N, 32] to [T, N·4, 8], the batch and the heads as one axis, which no
  // opgraph shape can hold. Such a value's node keeps them apart ([T, N, 4, 8]), and
  // folded[name][i] is how many of the node's axes ONNX axis i spans, in order. Values
  // not listed have one axis per ONNX axis; only the converters that read a value
  // through in_folded (Reshape, Transpose, MatMul, Gemm, Softmax, Shape, Cast, and
  // Add/Sub/Mul/Div with a scalar or a value that broadcasts over the folded axes) accept
  // a folded one.
  std::unordered_map<std::string, std::vector<int>> folded;

  /// An opgraph name for ONNX value `onnx_name`: cleaned, unique, and not an op's name (a
  /// node called 'matmul' would read as a call in the model text a checkpoint keeps).
  std::string fresh(const std::string& onnx_name) {
    std::string base = clean_name(onnx_name);
    if (Registry::global().find(base)) base += "_";
    std::string name = base;
    for (int k = 2; names.count(name) || graph.find(name); ++k) name = fmt::format("{}_{}", base, k);
    names.insert(name);
    return name;
  }

  [[noreturn]] void fail_node(const onnx::NodeProto& n, const std::string& what) const {
    const std::string name = !n.name().empty() ? n.name() : n.output_size() > 0 ? n.output(0) : std::string("?");
    bad(file, fmt::format("node '{}' ({}{}, opset {}): {}", name, n.op_type(),
                          n.domain().empty() ? "" : " in domain " + n.domain(), opset, what));
  }

  // ONNX values that are an Identity of an initializer not yet a node: PyTorch's exporter
  // writes one where two initializers hold the same values (a fresh batch norm's running
  // variance and its weight, both ones). Read as a constant (the statistics), the value is
  // the initializer's; read as data, the identity of the initializer's node, as the file has it.
  std::unordered_map<std::string, std::string> aliases;

  // ConstantOfShape sized by the batch (torch.zeros_like(x), a mask's fill): one value
  // that arithmetic broadcasts against a value holding the batch. Held as that one value
  // (a number in `constants`), with its ONNX sizes here; a node that reads it is checked
  // after conversion (check_batch_fill): an elementwise operator whose result has every
  // size the fill has, the batch where it has the batch.
  std::unordered_map<std::string, std::vector<std::int64_t>> batch_fills;
  mutable std::vector<std::string> fills_read;  // by the node being converted

  const Tensor* constant(const std::string& name) const {
    if (auto a = aliases.find(name); a != aliases.end()) return constant(a->second);
    if (batch_fills.count(name) && std::find(fills_read.begin(), fills_read.end(), name) == fills_read.end())
      fills_read.push_back(name);
    auto it = constants.find(name);
    return it == constants.end() ? nullptr : &it->second;
  }
  /// Input i of n as a constant that is not yet a node (read at import, not as data), or null.
  const Tensor* unbound_constant(const onnx::NodeProto& n, int i) const {
    return has_input(n, i) && !values.count(n.input(i)) ? constant(n.input(i)) : nullptr;
  }
  /// `name` as one value `fill` broadcast where it is read, of ONNX sizes `dims` (the batch
  /// as kBatch): see batch_fills.
  void set_batch_fill(const std::string& name, std::vector<std::int64_t> dims, DType dtype, double fill) {
    Tensor one(Shape{}, dtype);
    one.set(0, fill);
    constants.insert_or_assign(name, std::move(one));
    batch_fills[name] = std::move(dims);
  }
  /// A parameter named after ONNX value `onnx_name` holding `value` (f32).
  NodeId add_param(const onnx::NodeProto& n, const std::string& onnx_name, const Tensor& value) {
    const std::string pname = fresh(onnx_name);
    NodeId id = 0;
    try {
      id = graph.add_param(pname, value.shape(), Init::zeros(), file);
    } catch (const Error& e) {
      fail_node(n, e.detail());
    }
    param_values.emplace_back(pname, value.to(DType::f32));
    return id;
  }

  /// The node holding ONNX value `name`: a graph value, or an initializer made a parameter.
  NodeId node(const onnx::NodeProto& n, const std::string& name) {
    if (auto it = values.find(name); it != values.end()) return it->second;
    if (auto a = aliases.find(name); a != aliases.end()) {
      const NodeId source = node(n, a->second);
      NodeId id = 0;
      try {
        id = graph.add_op("identity", {source}, {}, fresh(name), file);
      } catch (const Error& e) {
        fail_node(n, e.detail());
      }
      return values[name] = id;
    }
    if (batch_indices.count(name))
      fail_node(n, fmt::format("'{}' holds integer constants expanded to the batch, which opgraph reads only as the "
                               "indices of a Gather (positions for every sample)",
                               name));
    if (const Tensor* c = constant(name)) {
      // An integer constant read as data (the padding id that ids != 0 compares with): its
      // values as reals, exact up to 2^24; a size that is the batch has none.
      if (c->dtype() == DType::i64)
        for (std::int64_t v : c->values<std::int64_t>())
          if (is_batch(v) || v > (1 << 24) || v < -(1 << 24))
            fail_node(n, fmt::format("the integer tensor '{}' is read as data, and {} has no exact float value", name,
                                     size_text(v)));
      return values[name] = add_param(n, name, *c);
    }
    fail_node(n, fmt::format("its input '{}' is not produced by any node, input or initializer", name));
  }
  // Integer inputs read as reals (to_float), one node per value.
  std::unordered_map<std::string, NodeId> reals;
  // Integer constants expanded to the batch (positions for every sample): the indices of one
  // sample, which only a Gather reads.
  std::unordered_map<std::string, Tensor> batch_indices;
  /// A value with the batch first for expand_batch to copy it from: the first input that
  /// has it (an integer input read as reals).
  std::optional<NodeId> batch_like(const onnx::NodeProto& n) {
    for (NodeId i : graph.inputs()) {
      const Node& v = graph.node(i);
      if (v.shape.rank() == 0 || v.shape[0] != N) continue;
      if (!v.index) return i;
      for (const auto& [name, id] : values)
        if (id == i) return in_value(n, name);
    }
    return std::nullopt;
  }
  /// ONNX value `name` as reals (see in).
  NodeId in_value(const onnx::NodeProto& n, const std::string& name) {
    NodeId id = node(n, name);
    if (!graph.node(id).index) return id;
    if (auto r = reals.find(name); r != reals.end()) return r->second;
    return reals[name] = add(n, "to_float", {id});
  }
  /// Input i of n as the node that holds it, integers as they are (an embedding's ids).
  NodeId in_indices(const onnx::NodeProto& n, int i) {
    if (i >= n.input_size() || n.input(i).empty()) fail_node(n, fmt::format("input {} is missing", i));
    return node(n, n.input(i));
  }
  /// Input i of n as reals: an integer input of the graph (token ids) through to_float, as
  /// ONNX's arithmetic and comparisons on it compute in the integers' values.
  NodeId in(const onnx::NodeProto& n, int i) {
    if (i >= n.input_size() || n.input(i).empty()) fail_node(n, fmt::format("input {} is missing", i));
    const NodeId id = in_value(n, n.input(i));
    if (auto it = folded.find(n.input(i)); it != folded.end())
      fail_node(n, fmt::format("its input '{}' {} folds the batch with other axes (as nn.MultiheadAttention's heads "
                               "are), which only Reshape, Transpose, MatMul, Gemm, Softmax and arithmetic that "
                               "broadcasts over the folded axes read; this operator would need the folded axis itself",
                               n.input(i), dims_text(onnx_dims(id, it->second))));
    return id;
  }
  /// A node and how its axes group into the ONNX value's (one each unless folded).
  struct Folded {
    NodeId id;
    std::vector<int> groups;
    bool folded() const { return folds(groups); }
  };
  Folded in_folded(const onnx::NodeProto& n, int i) {
    if (i >= n.input_size() || n.input(i).empty()) fail_node(n, fmt::format("input {} is missing", i));
    const NodeId id = node(n, n.input(i));
    if (auto it = folded.find(n.input(i)); it != folded.end()) return {id, it->second};
    return {id, std::vector<int>(static_cast<std::size_t>(shape(id).rank()), 1)};
  }
  /// The ONNX sizes of a node whose axes group as `groups`: each group's product, with the
  /// batch as kBatch times the rest of its group.
  std::vector<std::int64_t> onnx_dims(NodeId id, const std::vector<int>& groups) const {
    const Shape& s = shape(id);
    std::vector<std::int64_t> out;
    int axis = 0;
    for (int g : groups) {
      std::int64_t size = 1;
      bool batch = false;
      for (int k = 0; k < g; ++k, ++axis) {
        if (s[axis] == N) batch = true;
        else if (is_symbolic(s[axis])) bad(file, fmt::format("a value of shape {} folds a named dimension", s));
        else size *= s[axis];
      }
      if (batch && size >= kMaxMultiple) bad(file, fmt::format("a value of shape {} folds the batch with {} values", s, size));
      out.push_back(batch ? batch_times(size) : size);
    }
    return out;
  }
  static std::string dims_text(const std::vector<std::int64_t>& dims) {
    std::vector<std::string> parts;
    for (auto d : dims) parts.push_back(size_text(d));
    return fmt::format("[{}]", fmt::join(parts, ", "));
  }
  /// Output `out` of n is node id, its axes grouped as `groups`.
  void set_folded(const onnx::NodeProto& n, NodeId id, const std::vector<int>& groups, int out = 0) {
    values[n.output(out)] = id;
    if (folds(groups)) folded[n.output(out)] = groups;
  }
  bool has_input(const onnx::NodeProto& n, int i) const { return i < n.input_size() && !n.input(i).empty(); }

  /// Adds op `op` for ONNX node n's output `out` (default: its first).
  NodeId add(const onnx::NodeProto& n, std::string_view op, std::vector<NodeId> inputs, Attrs attrs = {},
             int out = -1) {
    // An intermediate node of a converter (Conv's convolution before its bias) gets the
    // graph's own name, <op>_<k>.
    const std::string name = out >= 0 && !n.output(out).empty() ? fresh(n.output(out)) : std::string();
    try {
      return graph.add_op(op, std::move(inputs), std::move(attrs), name, file);
    } catch (const Error& e) {
      fail_node(n, e.detail());
    }
  }
  void set(const onnx::NodeProto& n, NodeId id, int out = 0) { values[n.output(out)] = id; }

  // ---- attributes ----
  /// A Constant node's value: a tensor (`value`, as PyTorch writes it), or opset 12's
  /// numbers (`value_float`, `value_floats`, `value_int`, `value_ints`: a scalar or a
  /// vector of f32 or i64), as tools that write ONNX by hand give them.
  Tensor constant_value(const onnx::NodeProto& n) const {
    if (n.attribute_size() != 1)
      fail_node(n, fmt::format("a Constant takes one attribute (value, value_float, value_floats, value_int or "
                               "value_ints), the node has {}",
                               n.attribute_size()));
    const std::string& which = n.attribute(0).name();
    if (which == "value") {
      const auto* v = attr(n, "value", onnx::AttributeProto::TENSOR);
      if (!v->has_t()) fail_node(n, "attribute 'value' holds no tensor");
      return tensor_of(v->t(), file, "constant");
    }
    if (which == "value_float" || which == "value_floats") {
      const bool one = which == "value_float";
      const auto* v = attr(n, which, one ? onnx::AttributeProto::FLOAT : onnx::AttributeProto::FLOATS);
      Tensor out(one ? Shape{} : Shape{v->floats_size()}, DType::f32);
      for (std::int64_t i = 0; i < out.numel(); ++i) out.set(i, one ? v->f() : v->floats(static_cast<int>(i)));
      return out;
    }
    if (which == "value_int" || which == "value_ints") {
      const bool one = which == "value_int";
      const auto* v = attr(n, which, one ? onnx::AttributeProto::INT : onnx::AttributeProto::INTS);
      Tensor out(one ? Shape{} : Shape{v->ints_size()}, DType::i64);
      for (std::int64_t i = 0; i < out.numel(); ++i) out.data<std::int64_t>()[i] = one ? v->i() : v->ints(static_cast<int>(i));
      return out;
    }
    fail_node(n, fmt::format("a Constant's '{}' is not supported: opgraph reads value (a tensor), value_float, "
                             "value_floats, value_int and value_ints",
                             which));
  }
  /// Attribute `name` of node n, or null; one of another type than the operator's schema
  /// gives it is refused (read through the wrong field it would be a silent 0). A file
  /// that leaves the type unset (UNDEFINED, before IR version 2) is read as it is.
  const onnx::AttributeProto* attr(const onnx::NodeProto& n, const std::string& name,
                                   onnx::AttributeProto::AttributeType type) const {
    for (const auto& a : n.attribute()) {
      if (a.name() != name) continue;
      if (a.type() != type && a.type() != onnx::AttributeProto::UNDEFINED)
        fail_node(n, fmt::format("attribute '{}' is {}, the operator takes {}", name,
                                 onnx::AttributeProto::AttributeType_Name(a.type()),
                                 onnx::AttributeProto::AttributeType_Name(type)));
      return &a;
    }
    return nullptr;
  }
  std::int64_t attr_int(const onnx::NodeProto& n, const std::string& name, std::int64_t fallback) const {
    const auto* a = attr(n, name, onnx::AttributeProto::INT);
    return a ? a->i() : fallback;
  }
  double attr_float(const onnx::NodeProto& n, const std::string& name, double fallback) const {
    const auto* a = attr(n, name, onnx::AttributeProto::FLOAT);
    return a ? a->f() : fallback;
  }
  IntList attr_ints(const onnx::NodeProto& n, const std::string& name, IntList fallback) const {
    const auto* a = attr(n, name, onnx::AttributeProto::INTS);
    if (!a) return fallback;
    return IntList(a->ints().begin(), a->ints().end());
  }
  std::string attr_string(const onnx::NodeProto& n, const std::string& name, std::string fallback) const {
    const auto* a = attr(n, name, onnx::AttributeProto::STRING);
    return a ? a->s() : fallback;
  }
  /// Fails on an attribute the converter does not read, or reads with another value.
  void only(const onnx::NodeProto& n, std::initializer_list<const char*> known) const {
    for (const auto& a : n.attribute())
      if (std::none_of(known.begin(), known.end(), [&](const char* k) { return a.name() == k; }))
        fail_node(n, fmt::format("attribute '{}' is not supported (supported: {})", a.name(),
                                 known.size() ? fmt::format("{}", fmt::join(known, ", ")) : std::string("none")));
  }
  /// An int64 constant input (shapes, axes, pads), read at import time.
  IntList const_ints(const onnx::NodeProto& n, int i) const {
    if (i >= n.input_size()) fail_node(n, fmt::format("input {} is missing", i));
    const Tensor* c = constant(n.input(i));
    if (!c || c->dtype() != DType::i64)
      fail_node(n, fmt::format("input '{}' must be a constant integer tensor (computed shapes are not supported)",
                               n.input(i)));
    return IntList(c->data<std::int64_t>(), c->data<std::int64_t>() + c->numel());
  }
  /// A Slice's constant starts, ends, axes (default: the first axes) and steps (default 1).
  struct SliceInputs {
    IntList starts, ends, axes, steps;
  };
  SliceInputs slice_inputs(const onnx::NodeProto& n) const {
    SliceInputs a{const_ints(n, 1), const_ints(n, 2), {}, {}};
    a.steps = has_input(n, 4) ? const_ints(n, 4) : IntList(a.starts.size(), 1);
    if (has_input(n, 3)) a.axes = const_ints(n, 3);
    else
      for (std::size_t i = 0; i < a.starts.size(); ++i) a.axes.push_back(static_cast<std::int64_t>(i));
    return a;
  }
  /// A scalar constant input (Pow's exponent, Add's offset), or nothing.
  std::optional<double> const_scalar(const onnx::NodeProto& n, int i) const {
    if (i >= n.input_size()) return std::nullopt;
    const Tensor* c = constant(n.input(i));
    if (!c || c->numel() != 1) return std::nullopt;
    return c->at(0);
  }
  const Shape& shape(NodeId id) const { return graph.node(id).shape; }

  void check_arity(const onnx::NodeProto& n) const;
  void convert(const onnx::NodeProto& n);
  void check_batch_fill(const onnx::NodeProto& n);
  bool fold(const onnx::NodeProto& n);
  bool fold_constant(const onnx::NodeProto& n);
  bool fold_sizes(const onnx::NodeProto& n);
  void reshape_to(const onnx::NodeProto& n, NodeId x, const std::vector<std::int64_t>& dims);
  void reshape_folded(const onnx::NodeProto& n, const Folded& x, std::vector<std::int64_t> dims);
  void window(const onnx::NodeProto& n, Attrs& attrs, bool dilations, const IntList& kernel, const Shape& x) const;
  void recurrent(const onnx::NodeProto& n);
  void einsum(const onnx::NodeProto& n);
  std::string without_ellipsis(const onnx::NodeProto& n, const std::string& eq);
  /// Whether a reduction takes its axes as input 1 (ReduceSum from opset 13, every other
  /// one from opset 18) rather than as the attribute `axes`.
  bool axes_input(const onnx::NodeProto& n) const { return opset >= 18 || (n.op_type() == "ReduceSum" && opset >= 13); }
  /// Whether Squeeze, Unsqueeze and Split take their axes or sizes as input 1 (opset 13 on)
  /// rather than as the attribute `axes` or `split` (opsets 11 and 12).
  bool lists_as_input() const { return opset >= 13; }
  /// The axes a node names, empty for none: the constant input 1 when `as_input`, else the
  /// attribute `axes`.
  IntList axes_of(const onnx::NodeProto& n, bool as_input) const {
    if (!as_input) return attr_ints(n, "axes", {});
    return has_input(n, 1) ? const_ints(n, 1) : IntList{};
  }
  /// A reduction's attributes: keepdims, and axes or noop_with_empty_axes as its opset has them.
  void only_reduce(const onnx::NodeProto& n) const {
    if (axes_input(n)) only(n, {"keepdims", "noop_with_empty_axes"});
    else only(n, {"axes", "keepdims"});
  }
  /// The axes a reduction names, empty for none.
  IntList reduce_axes(const onnx::NodeProto& n) const { return axes_of(n, axes_input(n)); }
  /// A reduction that names no axes with noop_with_empty_axes = 1: the identity.
  bool reduces_nothing(const onnx::NodeProto& n) const {
    return axes_input(n) && reduce_axes(n).empty() && attr_int(n, "noop_with_empty_axes", 0) != 0;
  }
  /// keepdims, and the axes when named (none: every axis).
  Attrs reduce_attrs(const onnx::NodeProto& n) const {
    Attrs attrs{{"keepdims", attr_int(n, "keepdims", 1) != 0}};
    if (const IntList axes = reduce_axes(n); !axes.empty()) attrs.emplace_back("axis", axes);
    return attrs;
  }
  /// A sequence [N, C, L] as the image [N, C, 1, L] a 1-D window reads, and back.
  NodeId as_image(const onnx::NodeProto& n, NodeId x) {
    return add(n, "reshape", {x}, {{"shape", IntList{0, shape(x)[1], 1, shape(x)[2]}}});
  }
  NodeId as_sequence(const onnx::NodeProto& n, NodeId y) {
    return add(n, "reshape", {y}, {{"shape", IntList{0, shape(y)[1], shape(y)[3]}}}, 0);
  }
};

void Importer::window(const onnx::NodeProto& n, Attrs& attrs, bool dilations, const IntList& kernel,
                      const Shape& x) const {
  const std::string ap = attr_string(n, "auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER")
    fail_node(n, fmt::format("auto_pad={} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER", ap));
  if (kernel.size() == 1) {
    // A 1-D window (Conv1d, MaxPool1d, AvgPool1d over [N, C, L]): the 2-D window of height
    // 1 over [N, C, 1, L] that the converters reshape to.
    const IntList s1 = attr_ints(n, "strides", {1}), p1 = attr_ints(n, "pads", {0, 0});
    const IntList d1 = dilations ? attr_ints(n, "dilations", {1}) : IntList{1};
    if (s1.size() != 1 || p1.size() != 2 || d1.size() != 1)
      fail_node(n, "a 1-D window needs one stride, one dilation and two pads");
    onnx::NodeProto two = n;
    const auto set_ints = [&](const char* name, const IntList& v) {
      onnx::AttributeProto* a = nullptr;
      for (auto& at : *two.mutable_attribute())
        if (at.name() == name) a = &at;
      if (!a) a = two.add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INTS);
      a->clear_ints();
      for (const std::int64_t i : v) a->add_ints(i);
    };
    set_ints("strides", {1, s1[0]});
    set_ints("pads", {0, p1[0], 0, p1[1]});
    if (dilations) set_ints("dilations", {1, d1[0]});
    const Shape x4 = x.rank() == 3 ? Shape{x[0], x[1], 1, x[2]} : x;
    return window(two, attrs, dilations, {1, kernel[0]}, x4);
  }
  IntList strides = attr_ints(n, "strides", {1, 1}), pads = attr_ints(n, "pads", {0, 0, 0, 0});
  const IntList dilation = dilations ? attr_ints(n, "dilations", {1, 1}) : IntList{1, 1};
  if (strides.size() != 2 || pads.size() != 4 || dilation.size() != 2 || kernel.size() != 2)
    fail_node(n, "only 1-D and 2-D windows (sequences and images) are supported");
  if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
    // ONNX's SAME: ceil(size / stride) outputs, the padding they need split evenly, the odd
    // one at the end (SAME_UPPER, TensorFlow's "SAME") or at the beginning (SAME_LOWER).
    if (x.rank() != 4 || is_symbolic(x[2]) || is_symbolic(x[3]))
      fail_node(n, fmt::format("auto_pad={} needs the image size, and the input is {}", ap, x));
    for (int a = 0; a < 2; ++a) {
      const auto i = static_cast<std::size_t>(a);
      if (strides[i] < 1 || dilation[i] < 1 || kernel[i] < 1) fail_node(n, "strides, dilations and kernel must be positive");
      const std::int64_t size = x[2 + a], outs = (size + strides[i] - 1) / strides[i];
      const std::int64_t total = std::max<std::int64_t>(0, (outs - 1) * strides[i] + (kernel[i] - 1) * dilation[i] + 1 - size);
      const std::int64_t head = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[i] = head;
      pads[i + 2] = total - head;
    }
  } else if (ap == "VALID") {
    pads = {0, 0, 0, 0};
  }
  attrs.emplace_back("stride", strides);
  attrs.emplace_back("padding", pads);  // ONNX's order, which opgraph takes as it is
  if (dilations) attrs.emplace_back("dilation", dilation);
}

/// RNN, GRU and LSTM (ONNX's recurrent layers, as torch.nn.RNN/GRU/LSTM export them),
/// unrolled over the sequence's fixed length into the ops a cell is made of: the inputs'
/// projections for every step at once (one matmul, the biases added), then per step the
/// hidden state's product, the gates (logistic, tanh) and the state's update, the steps
/// of the reverse direction from the last position back. The weights stay the file's
/// (parameters, or what the file computes from them), each direction's read by a slice, so
/// the imported model fine-tunes through time. The initial states are zero
/// (absent, or the zeros PyTorch writes, sized by the batch) or values of the graph; Y is
/// [T, directions, N, H], Y_h and Y_c [directions, N, H]. Gates in ONNX's order: LSTM i, o,
/// f, c; GRU z, r, h (linear_before_reset as PyTorch writes it, 1, or 0).
void Importer::recurrent(const onnx::NodeProto& n) {
  const std::string& t = n.op_type();
  const bool lstm = t == "LSTM", gru = t == "GRU";
  if (lstm) only(n, {"hidden_size", "direction", "layout", "activations", "activation_alpha", "activation_beta", "clip", "input_forget"});
  else if (gru) only(n, {"hidden_size", "direction", "layout", "activations", "activation_alpha", "activation_beta", "clip", "linear_before_reset"});
  else only(n, {"hidden_size", "direction", "layout", "activations", "activation_alpha", "activation_beta", "clip"});
  const int gates = lstm ? 4 : gru ? 3 : 1;
  const std::int64_t hidden = attr_int(n, "hidden_size", 0);
  const std::string direction = attr_string(n, "direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    fail_node(n, fmt::format("direction '{}' is not forward, reverse or bidirectional", direction));
  if (attr_int(n, "layout", 0) != 0)
    fail_node(n, "layout=1 (batch first) is not supported: PyTorch writes layout 0 with a Transpose before");
  if (attr(n, "clip", onnx::AttributeProto::FLOAT)) fail_node(n, "clip is not supported");
  if (lstm && attr_int(n, "input_forget", 0) != 0) fail_node(n, "input_forget=1 is not supported");
  if (const auto* a = attr(n, "activations", onnx::AttributeProto::STRINGS)) {
    const std::vector<std::string> usual = lstm ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
                                           : gru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                 : std::vector<std::string>{"Tanh"};
    for (int i = 0; i < a->strings_size(); ++i)
      if (a->strings(i) != usual[static_cast<std::size_t>(i) % usual.size()])
        fail_node(n, fmt::format("activations other than {} are not supported", fmt::join(usual, ", ")));
  }
  const bool before_reset = gru && attr_int(n, "linear_before_reset", 0) != 0;
  const int dirs = direction == "bidirectional" ? 2 : 1;
  if (lstm && has_input(n, 7)) fail_node(n, "peepholes (input P) are not supported (PyTorch's nn.LSTM has none)");
  // X [T, N, I]: the sequence first, the batch second (the node's axis 1)
  const NodeId x = in(n, 0);
  const Shape xs = shape(x);
  if (xs.rank() != 3 || is_symbolic(xs[0]) || is_symbolic(xs[2]) || xs[1] != N)
    fail_node(n, fmt::format("X is {}: opgraph unrolls a sequence [T, N, I] of a fixed length T, the batch second", xs));
  const std::int64_t steps = xs[0], features = xs[2];
  if (has_input(n, 4)) {  // sequence_lens: every sequence as long as T, or refused
    const Tensor* lens = unbound_constant(n, 4);
    bool whole = lens != nullptr;
    for (std::int64_t i = 0; whole && i < lens->numel(); ++i) whole = lens->at(i) == static_cast<double>(steps);
    if (!whole) fail_node(n, "sequence_lens other than the whole length of every sequence are not supported");
  }
  if (hidden < 1) fail_node(n, "hidden_size must be positive");
  const std::int64_t g = gates * hidden;
  // W [dirs, gates·H, I], R [dirs, gates·H, H], B [dirs, 2·gates·H]: initializers (then
  // parameters, as the file names them) or values computed from them (PyTorch reorders its
  // gates with Slice and Concat of the weights when it does not fold constants).
  auto weight = [&](int i, Shape want) {
    const NodeId w = in(n, i);
    if (shape(w) != want) fail_node(n, fmt::format("input {} ('{}') is {}, not {}", i, n.input(i), shape(w), want));
    return w;
  };
  const NodeId w_all = weight(1, Shape{dirs, g, features}), r_all = weight(2, Shape{dirs, g, hidden});
  const bool biased = has_input(n, 3);
  const NodeId b_all = biased ? weight(3, Shape{dirs, 2 * g}) : NodeId{};
  // The initial states: absent or a fill of zeros sized by the batch (none), or a value [dirs, N, H].
  auto state = [&](int i) -> std::optional<NodeId> {
    if (!has_input(n, i)) return std::nullopt;
    if (auto f = batch_fills.find(n.input(i)); f != batch_fills.end()) {
      if (constants.at(n.input(i)).at(0) != 0.0) fail_node(n, "an initial state filled with a value other than 0");
      return std::nullopt;
    }
    const NodeId v = in(n, i);
    if (shape(v) != Shape{dirs, N, hidden})
      fail_node(n, fmt::format("initial state {} is {}, not [{}, N, {}]", i, shape(v), dirs, hidden));
    return v;
  };
  const std::optional<NodeId> h0 = state(5), c0 = lstm ? state(6) : std::nullopt;
  auto slice_last = [&](NodeId v, std::int64_t k) {  // gate k of [.., gates·H]
    return add(n, "slice", {v}, {{"begin", IntList{k * hidden}}, {"end", IntList{(k + 1) * hidden}}, {"step", IntList{1}},
                                 {"axes", IntList{-1}}});
  };
  auto op = [&](const char* name, std::vector<NodeId> ins, Attrs a = {}) { return add(n, name, std::move(ins), std::move(a)); };
  std::vector<NodeId> ys[2], last_h(static_cast<std::size_t>(dirs)), last_c(static_cast<std::size_t>(dirs));
  for (int d = 0; d < dirs; ++d) {
    const bool back = direction == "reverse" || d == 1;
    const std::string tag = back ? "_reverse" : "_forward";
    // Direction d's weights, x·Wᵀ for every step, and the biases added outside the reset gate.
    auto range = [&](NodeId v, std::int64_t axis, std::int64_t b, std::int64_t e) {
      return op("slice", {v}, {{"begin", IntList{b}}, {"end", IntList{e}}, {"step", IntList{1}}, {"axes", IntList{axis}}});
    };
    const NodeId wp = op("reshape", {range(w_all, 0, d, d + 1)}, {{"shape", IntList{g, features}}});
    const NodeId rp = op("reshape", {range(r_all, 0, d, d + 1)}, {{"shape", IntList{g, hidden}}});
    NodeId xw = op("matmul", {x, wp}, {{"trans_b", true}});  // [T, N, gates·H]
    std::optional<NodeId> rh;  // GRU's Rb of h, inside the reset gate (linear_before_reset)
    if (biased) {
      const NodeId bd = op("reshape", {range(b_all, 0, d, d + 1)}, {{"shape", IntList{2 * g}}});
      const NodeId wb = range(bd, 0, 0, g), rb = range(bd, 0, g, 2 * g);
      NodeId bias = op("add", {wb, rb});
      if (before_reset) {
        bias = op("concat", {range(bias, 0, 0, 2 * hidden), range(wb, 0, 2 * hidden, g)}, {{"axis", std::int64_t{0}}});
        rh = range(rb, 0, 2 * hidden, g);
      }
      xw = op("bias_add", {xw, bias});
    }
    auto initial = [&](const std::optional<NodeId>& s) -> std::optional<NodeId> {  // direction d's [N, H]
      if (!s) return std::nullopt;
      const NodeId one = op("slice", {*s}, {{"begin", IntList{d}}, {"end", IntList{d + 1}}, {"step", IntList{1}}, {"axes", IntList{0}}});
      return op("reshape", {one}, {{"shape", IntList{-1, hidden}}});
    };
    std::optional<NodeId> h = initial(h0), c = initial(c0);
    std::vector<NodeId> hs(static_cast<std::size_t>(steps));
    for (std::int64_t s0 = 0; s0 < steps; ++s0) {
      const std::int64_t step = back ? steps - 1 - s0 : s0;
      const NodeId at = op("slice", {xw}, {{"begin", IntList{step}}, {"end", IntList{step + 1}}, {"step", IntList{1}}, {"axes", IntList{0}}});
      NodeId xt = op("reshape", {at}, {{"shape", IntList{-1, g}}});  // [N, gates·H]
      std::optional<NodeId> hr;  // h·Rᵀ
      if (h) hr = op("matmul", {*h, rp}, {{"trans_b", true}});
      if (lstm) {
        const NodeId sum = hr ? op("add", {xt, *hr}) : xt;
        const NodeId i = op("logistic", {slice_last(sum, 0)}), o = op("logistic", {slice_last(sum, 1)});
        const NodeId f = op("logistic", {slice_last(sum, 2)}), cand = op("tanh", {slice_last(sum, 3)});
        const NodeId ic = op("mul", {i, cand});
        c = c ? op("add", {op("mul", {f, *c}), ic}) : ic;
        h = op("mul", {o, op("tanh", {*c})});
      } else if (gru) {
        NodeId zr = slice_last(xt, 0), rr = slice_last(xt, 1);
        if (hr) zr = op("add", {zr, slice_last(*hr, 0)}), rr = op("add", {rr, slice_last(*hr, 1)});
        const NodeId z = op("logistic", {zr}), r = op("logistic", {rr});
        NodeId inner = slice_last(xt, 2);
        if (before_reset) {  // r ⊙ (h·Rhᵀ + Rbh)
          std::optional<NodeId> hh;
          if (hr) hh = slice_last(*hr, 2);
          if (hh && rh) hh = op("bias_add", {*hh, *rh});
          if (hh) inner = op("add", {inner, op("mul", {r, *hh})});
          else if (rh) inner = op("add", {inner, op("mul", {r, *rh})});
        } else if (h) {  // (r ⊙ h)·Rhᵀ
          const NodeId rhp = op("slice", {rp}, {{"begin", IntList{2 * hidden}}, {"end", IntList{3 * hidden}}, {"step", IntList{1}}, {"axes", IntList{0}}});
          inner = op("add", {inner, op("matmul", {op("mul", {r, *h}), rhp}, {{"trans_b", true}})});
        }
        const NodeId cand = op("tanh", {inner});
        const NodeId keep = op("scale", {z}, {{"factor", -1.0}, {"offset", 1.0}});  // 1 - z
        const NodeId fresh_part = op("mul", {keep, cand});
        h = h ? op("add", {fresh_part, op("mul", {z, *h})}) : fresh_part;
      } else {
        h = op("tanh", {hr ? op("add", {xt, *hr}) : xt});
      }
      hs[static_cast<std::size_t>(step)] = *h;
    }
    last_h[static_cast<std::size_t>(d)] = *h;
    if (lstm) last_c[static_cast<std::size_t>(d)] = *c;
    ys[d] = hs;
  }
  // Outputs, each only when something reads it: Y [T, dirs, N, H], Y_h and Y_c [dirs, N, H].
  auto stacked = [&](const std::vector<NodeId>& parts, IntList shape, std::int64_t axis, int out) {
    std::vector<NodeId> shaped;
    for (NodeId p : parts) shaped.push_back(op("reshape", {p}, {{"shape", shape}}));
    return shaped.size() == 1 ? add(n, "identity", {shaped[0]}, {}, out)
                              : add(n, "concat", std::move(shaped), {{"axis", axis}}, out);
  };
  if (n.output_size() > 0 && !n.output(0).empty() && read.count(n.output(0))) {
    std::vector<NodeId> per_dir;
    for (int d = 0; d < dirs; ++d) {
      std::vector<NodeId> steps_d;
      for (NodeId hsd : ys[d]) steps_d.push_back(op("reshape", {hsd}, {{"shape", IntList{1, 1, -1, hidden}}}));
      per_dir.push_back(steps_d.size() == 1 ? steps_d[0] : op("concat", std::move(steps_d), {{"axis", std::int64_t{0}}}));
    }
    set(n, per_dir.size() == 1 ? add(n, "identity", {per_dir[0]}, {}, 0) : add(n, "concat", std::move(per_dir), {{"axis", std::int64_t{1}}}, 0), 0);
  }
  if (n.output_size() > 1 && !n.output(1).empty() && read.count(n.output(1)))
    set(n, stacked(last_h, {1, -1, hidden}, 0, 1), 1);
  if (lstm && n.output_size() > 2 && !n.output(2).empty() && read.count(n.output(2)))
    set(n, stacked(last_c, {1, -1, hidden}, 0, 2), 2);
}

/// The operands' labels of an equation's left side ("ij,jk" -> {"ij", "jk"}).
std::vector<std::string> einsum_operands(const std::string& lhs) {
  std::vector<std::string> terms;
  for (std::size_t at = 0;;) {
    const auto comma = lhs.find(',', at);
    terms.push_back(lhs.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (comma == std::string::npos) return terms;
    at = comma + 1;
  }
}

/// An equation with an ellipsis ("...ij,...jk->...ik", "b...d" and the like) written with
/// a label for each axis it stands for: letters the equation does not use, the operands'
/// ellipsis axes aligned on the right (as they broadcast), all of them in the output where
/// it has "..." or, with no output given, ahead of the labels met once.
std::string Importer::without_ellipsis(const onnx::NodeProto& n, const std::string& eq) {
  const auto arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  const std::vector<std::string> terms = einsum_operands(lhs);
  std::string unused;
  for (char ch = 'A'; ch <= 'Z'; ++ch) if (eq.find(ch) == std::string::npos) unused += ch;
  for (char ch = 'a'; ch <= 'z'; ++ch) if (eq.find(ch) == std::string::npos) unused += ch;
  std::vector<std::int64_t> spans(terms.size(), 0);
  std::int64_t widest = 0;
  for (std::size_t k = 0; k < terms.size(); ++k) {
    const auto dots = terms[k].find("...");
    if (dots == std::string::npos) continue;
    if (terms[k].find("...", dots + 3) != std::string::npos)
      fail_node(n, fmt::format("the equation '{}' has two ellipses in operand {}", eq, k));
    if (k >= static_cast<std::size_t>(n.input_size()) || !has_input(n, static_cast<int>(k)))
      fail_node(n, fmt::format("the equation '{}' names more operands than the node has inputs", eq));
    const std::int64_t labels = static_cast<std::int64_t>(terms[k].size()) - 3;
    spans[k] = shape(in(n, static_cast<int>(k))).rank() - labels;
    if (spans[k] < 0)
      fail_node(n, fmt::format("operand {} is {}, and the equation '{}' gives it {} labels besides its ellipsis", k,
                               shape(in(n, static_cast<int>(k))), eq, labels));
    widest = std::max(widest, spans[k]);
  }
  if (widest > static_cast<std::int64_t>(unused.size()))
    fail_node(n, fmt::format("the equation '{}': its ellipsis stands for more axes than there are free labels", eq));
  const std::string all = unused.substr(0, static_cast<std::size_t>(widest));
  std::string out;
  for (std::size_t k = 0; k < terms.size(); ++k) {
    std::string t = terms[k];
    if (const auto dots = t.find("..."); dots != std::string::npos)
      t.replace(dots, 3, all.substr(static_cast<std::size_t>(widest - spans[k])));
    out += (k ? "," : "") + t;
  }
  if (arrow != std::string::npos) {
    std::string rhs = eq.substr(arrow + 2);
    if (const auto dots = rhs.find("..."); dots != std::string::npos) rhs.replace(dots, 3, all);
    return out + "->" + rhs;
  }
  // Implicit output: the ellipsis's axes, then the labels met once, in alphabetical order.
  std::map<char, int> seen;
  for (char ch : lhs) if (std::isalpha(static_cast<unsigned char>(ch))) ++seen[ch];
  std::string rhs = all;
  for (const auto& [ch, count] : seen) if (count == 1) rhs += ch;
  return out + "->" + rhs;
}

/// Einsum of one or two operands ("bhid,bhjd->bhij", "ij,jk", "bij->bj"): labels summed in
/// one operand only are summed first; of two, the labels both keep in the output are batch
/// axes, those both have and the output lacks are contracted, the rest free. Each operand is
/// transposed to [batch, free, contracted] (the second to [batch, contracted, free]),
/// reshaped to three axes' worth, multiplied (matmul, its batch axes broadcast), and the
/// product reshaped and transposed to the output's labels. Repeated labels in one operand
/// (diagonals) are refused; an ellipsis is first written as labels (without_ellipsis).
void Importer::einsum(const onnx::NodeProto& n) {
  only(n, {"equation"});
  std::string eq;
  for (char ch : attr_string(n, "equation", "")) if (ch != ' ') eq += ch;
  if (eq.find("...") != std::string::npos) eq = without_ellipsis(n, eq);
  const auto arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms = einsum_operands(lhs);
  if (terms.size() != static_cast<std::size_t>(n.input_size()) || terms.size() > 2)
    fail_node(n, fmt::format("the equation '{}' names {} operands for {} inputs; opgraph takes one or two", eq,
                             terms.size(), n.input_size()));
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
  } else {  // implicit: the labels met once, in alphabetical order
    std::map<char, int> seen;
    for (const auto& term : terms)
      for (char ch : term) ++seen[ch];
    for (const auto& [ch, k] : seen)
      if (k == 1) out += ch;
  }
  auto valid = [&](const std::string& labels, const char* what) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (!std::isalpha(static_cast<unsigned char>(labels[i])))
        fail_node(n, fmt::format("the equation '{}': '{}' is not a label", eq, labels[i]));
      if (labels.find(labels[i], i + 1) != std::string::npos)
        fail_node(n, fmt::format("the equation '{}' repeats '{}' in {} (a diagonal): not supported", eq, labels[i], what));
    }
  };
  for (const auto& term : terms) valid(term, "an operand");
  valid(out, "the output");
  for (char ch : out)
    if (std::none_of(terms.begin(), terms.end(), [&](const std::string& t) { return t.find(ch) != std::string::npos; }))
      fail_node(n, fmt::format("the equation '{}': output label '{}' is in no operand", eq, ch));
  std::vector<NodeId> ops;
  std::map<char, std::int64_t> size;
  for (std::size_t k = 0; k < terms.size(); ++k) {
    ops.push_back(in(n, static_cast<int>(k)));
    const Shape& xs = shape(ops.back());
    if (xs.rank() != static_cast<int>(terms[k].size()))
      fail_node(n, fmt::format("operand {} is {}, and the equation '{}' gives it {} labels", k, xs, eq, terms[k].size()));
    for (std::size_t i = 0; i < terms[k].size(); ++i) {
      const char ch = terms[k][i];
      const std::int64_t d = xs[static_cast<int>(i)];
      if (auto it = size.find(ch); it != size.end() && it->second != d && it->second != 1 && d != 1)
        fail_node(n, fmt::format("the equation '{}': label '{}' is {} in one operand and {} in another", eq, ch,
                                 dim_text(it->second), dim_text(d)));
      if (!size.count(ch) || size[ch] == 1) size[ch] = d;
    }
  }
  auto has = [](const std::string& labels, char ch) { return labels.find(ch) != std::string::npos; };
  // Labels one operand has alone and the output lacks: summed there first.
  for (std::size_t k = 0; k < terms.size(); ++k) {
    IntList axes;
    std::string kept;
    for (std::size_t i = 0; i < terms[k].size(); ++i) {
      const char ch = terms[k][i];
      const bool elsewhere = terms.size() == 2 && has(terms[1 - k], ch);
      if (!has(out, ch) && !elsewhere) axes.push_back(static_cast<std::int64_t>(i));
      else kept += ch;
    }
    if (axes.empty()) continue;
    if (std::any_of(axes.begin(), axes.end(), [&](std::int64_t a) { return shape(ops[k])[static_cast<int>(a)] == N; }))
      fail_node(n, fmt::format("the equation '{}' sums over the batch", eq));
    ops[k] = add(n, "sum", {ops[k]}, {{"axis", axes}, {"keepdims", false}});
    terms[k] = kept;
  }
  auto permute = [&](NodeId x, const std::string& from, const std::string& to) {
    IntList perm;
    for (char ch : to) perm.push_back(static_cast<std::int64_t>(from.find(ch)));
    bool same = true;
    for (std::size_t i = 0; i < perm.size(); ++i) same = same && perm[i] == static_cast<std::int64_t>(i);
    return same ? x : add(n, "transpose", {x}, {{"perm", perm}});
  };
  auto product = [&](const std::string& labels) {
    std::int64_t p = 1;
    for (char ch : labels) {
      if (is_symbolic(size[ch])) fail_node(n, fmt::format("the equation '{}' merges label '{}', the batch, with others", eq, ch));
      p *= size[ch];
    }
    return p;
  };
  if (terms.size() == 1) return set(n, add(n, "identity", {permute(ops[0], terms[0], out)}, {}, 0));
  std::string batch, contracted, free_a, free_b;
  for (char ch : terms[0]) (has(terms[1], ch) ? (has(out, ch) ? batch : contracted) : free_a) += ch;
  for (char ch : terms[1]) if (!has(terms[0], ch)) free_b += ch;
  auto symbolic = [&](const std::string& labels) {
    return std::any_of(labels.begin(), labels.end(), [&](char ch) { return is_symbolic(size[ch]); });
  };
  if (symbolic(contracted)) fail_node(n, fmt::format("the equation '{}' sums over the batch", eq));
  // The batch among the second operand's free labels: the product taken the other way round.
  if (symbolic(free_b)) {
    std::swap(ops[0], ops[1]);
    std::swap(terms[0], terms[1]);
    std::swap(free_a, free_b);
  }
  // [batch, free_a..., contracted] x [batch, 1..., contracted, free_b]: matmul over the
  // last two axes, the leading ones broadcast; the first operand's free labels stay axes
  // (the batch may be one of them), the contracted ones and the second's free ones merge.
  auto keep = [&](NodeId t, int i) { return is_symbolic(shape(t)[i]) ? std::int64_t{0} : shape(t)[i]; };
  const NodeId ta = permute(ops[0], terms[0], batch + free_a + contracted);
  IntList a_dims;
  for (int i = 0; i < static_cast<int>(batch.size() + free_a.size()); ++i) a_dims.push_back(keep(ta, i));
  if (free_a.empty()) a_dims.push_back(1);
  a_dims.push_back(product(contracted));
  const NodeId tb = permute(ops[1], terms[1], batch + contracted + free_b);
  IntList b_dims;
  for (int i = 0; i < static_cast<int>(batch.size()); ++i) b_dims.push_back(keep(tb, i));
  for (std::size_t i = 1; i < std::max<std::size_t>(free_a.size(), 1); ++i) b_dims.push_back(1);
  b_dims.push_back(product(contracted));
  b_dims.push_back(product(free_b));
  const NodeId ab = add(n, "matmul", {add(n, "reshape", {ta}, {{"shape", a_dims}}), add(n, "reshape", {tb}, {{"shape", b_dims}})});
  IntList dims;  // [batch, free_a..., free_b...]
  for (int i = 0; i < static_cast<int>(batch.size() + free_a.size()); ++i) dims.push_back(keep(ab, i));
  for (char ch : free_b) dims.push_back(size[ch]);
  const NodeId shaped = add(n, "reshape", {ab}, {{"shape", dims}});
  set(n, add(n, "identity", {permute(shaped, batch + free_a + free_b, out)}, {}, 0));
}

/// How many inputs and outputs an operator takes in opsets 13 to 17 (ONNX's operator
/// schemas), omitted optional ones ("") counted: a node outside the range is malformed.
/// Importer::check_arity adjusts it for the other opsets (arity_in).
struct Arity {
  int min_in, max_in, min_out, max_out;
};
constexpr int many = 1 << 30;
const std::unordered_map<std::string, Arity>& arities() {
  static const std::unordered_map<std::string, Arity> table = [] {
    std::unordered_map<std::string, Arity> a;
    for (const char* t : {"Abs", "Elu", "Erf", "Exp", "Flatten", "GlobalAveragePool", "GlobalMaxPool", "Identity", "LeakyRelu", "Log",
                          "LogSoftmax", "Neg", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "Relu", "Sigmoid",
                          "Softmax", "Softplus", "Sqrt", "Tanh", "Transpose", "AveragePool", "ReduceL1", "ReduceL2",
                          "ReduceSumSquare", "ReduceMin", "ReduceProd"})
      a[t] = {1, 1, 1, 1};
    for (const char* t : {"Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Reshape", "Gather"}) a[t] = {2, 2, 1, 1};
    a["Gemm"] = a["Conv"] = a["ConvTranspose"] = {2, 3, 1, 1};
    a["Pad"] = {2, 3, 1, 1};
    for (const char* t : {"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "Expand"}) a[t] = {2, 2, 1, 1};
    a["Not"] = a["Reciprocal"] = {1, 1, 1, 1};
    a["Where"] = {3, 3, 1, 1};
    a["Clip"] = {1, 3, 1, 1};
    a["Max"] = a["Min"] = {1, many, 1, 1};
    a["Split"] = {1, 2, 1, many};
    a["HardSigmoid"] = a["HardSwish"] = a["Selu"] = a["Softsign"] = a["Celu"] = {1, 1, 1, 1};
    a["Gelu"] = a["Mish"] = {1, 1, 1, 1};
    a["PRelu"] = {2, 2, 1, 1};
    a["Resize"] = {1, 4, 1, 1};
    a["Sum"] = a["Mean"] = {1, many, 1, 1};
    a["ReduceSum"] = {1, 2, 1, 1};
    a["Dropout"] = {1, 3, 1, 2};
    a["MaxPool"] = {1, 1, 1, 2};
    a["BatchNormalization"] = {5, 5, 1, 3};
    a["LayerNormalization"] = {2, 3, 1, 3};
    a["InstanceNormalization"] = {3, 3, 1, 1};
    a["Concat"] = {1, many, 1, 1};
    a["Shape"] = a["Cast"] = {1, 1, 1, 1};
    a["Unsqueeze"] = a["Squeeze"] = {1, 2, 1, 1};
    a["Slice"] = {3, 5, 1, 1};
    a["Constant"] = {0, 0, 1, 1};
    a["ConstantOfShape"] = {1, 1, 1, 1};
    a["Tile"] = {2, 2, 1, 1};
    a["DepthToSpace"] = a["SpaceToDepth"] = {1, 1, 1, 1};
    for (const char* t : {"ArgMax", "ArgMin", "Atan", "Ceil", "Cos", "Floor", "Round", "Sign", "Sin", "Size", "Tan"})
      a[t] = {1, 1, 1, 1};
    for (const char* t : {"And", "Or", "Xor", "Mod", "GatherElements", "CumSum"}) a[t] = {2, 2, 1, 1};
    a["Range"] = a["ScatterND"] = a["ScatterElements"] = {3, 3, 1, 1};
    a["Trilu"] = {1, 2, 1, 1};
    a["Einsum"] = {1, many, 1, 1};
    a["LSTM"] = {3, 8, 0, 3};
    a["GRU"] = a["RNN"] = {3, 6, 0, 2};
    return a;
  }();
  return table;
}

std::string count_of(int k, const char* what) { return fmt::format("{} {}{}", k, what, k == 1 ? "" : "s"); }

std::string range_of(int lo, int hi, const char* what) {
  if (lo == hi) return count_of(lo, what);
  if (hi == many) return fmt::format("at least {}", count_of(lo, what));
  return fmt::format("{} to {} {}s", lo, hi, what);
}

/// An operator's arity in `opset`: before 13 Squeeze, Unsqueeze, Split and ReduceSum took
/// their axes or sizes as an attribute, before 12 Dropout its ratio, and before 14
/// BatchNormalization had up to 5 outputs (training); opset 18 gave the reductions their
/// axes as an optional input (ReduceSum had it from 13) and Pad an optional input of the
/// axes its pads are for.
Arity arity_in(const std::string& op, Arity a, int opset) {
  if (opset < 13 && (op == "Squeeze" || op == "Unsqueeze" || op == "Split" || op == "ReduceSum")) a.max_in = 1;
  if (opset < 12 && op == "Dropout") a.max_in = 1;
  if (opset < 14 && op == "BatchNormalization") a.max_out = 5;
  if (opset >= 18 && op.starts_with("Reduce") && op != "ReduceSum") a.max_in = 2;
  if (opset >= 18 && op == "Pad") a.max_in = 4;
  return a;
}

void Importer::check_arity(const onnx::NodeProto& n) const {
  const auto& table = arities();
  const auto it = table.find(n.op_type());
  if (it == table.end()) return;  // convert() names the supported operators
  const Arity a = arity_in(n.op_type(), it->second, opset);
  if (n.input_size() < a.min_in || n.input_size() > a.max_in)
    fail_node(n, fmt::format("the operator takes {}, the node has {}", range_of(a.min_in, a.max_in, "input"),
                             n.input_size()));
  if (n.output_size() < a.min_out || n.output_size() > a.max_out)
    fail_node(n, fmt::format("the operator has {}, the node names {}", range_of(a.min_out, a.max_out, "output"),
                             n.output_size()));
}

/// x reshaped to `dims` (Reshape's: sizes, 0 to keep x's, -1 to infer), where kBatch, the
/// batch, must stay where it is in x: it becomes reshape's 0 ("keep").
void Importer::reshape_to(const onnx::NodeProto& n, NodeId x, const std::vector<std::int64_t>& dims) {
  IntList want;
  const Shape& xs = shape(x);
  const auto symbols = std::count_if(xs.dims().begin(), xs.dims().end(), [](std::int64_t d) { return is_symbolic(d); });
  const bool inferred = std::find(dims.begin(), dims.end(), -1) != dims.end();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] != kBatch) {
      want.push_back(dims[i]);
      continue;
    }
    if (static_cast<int>(i) < xs.rank() && xs[static_cast<int>(i)] == N) {
      want.push_back(0);  // kept in place
    } else if (symbols == 1 && !inferred && xs.has_batch()) {
      want.push_back(-1);  // moved (an RNN's [T, 1, N, H] squeezed to [T, N, H]): the one symbol, inferred
    } else {
      fail_node(n, fmt::format("the batch dimension of {} would move to position {}: opgraph keeps it first", xs, i));
    }
  }
  set(n, add(n, "reshape", {x}, {{"shape", want}}, 0));
}

/// x reshaped to `dims` where x folds the batch with other axes or dims sizes an axis by a
/// multiple of the batch (c·N): PyTorch's nn.MultiheadAttention reshapes [T, N, 32] to
/// [T, N·4, 8] and back from [T, N·4, 8] to [T·N, 32]. The node keeps the batch an axis
/// of its own, between the factors the folded axis holds before and after it: [T, N, 4,
/// 8] and [T, N, 32], the ONNX axes folding (1, 2, 1) and (2, 1) of them. Possible when
/// the sizes before the batch's axis in x's node multiply to those before the target's
/// folded axis times a whole factor (and so after it), and the batch keeps its axis
/// index; otherwise refused by name.
void Importer::reshape_folded(const onnx::NodeProto& n, const Folded& x, std::vector<std::int64_t> dims) {
  const std::vector<std::int64_t> from = onnx_dims(x.id, x.groups);
  const Shape& xs = shape(x.id);
  auto refuse = [&](const std::string& why) {
    fail_node(n, fmt::format("reshapes {} to {}: {}", dims_text(from), dims_text(dims), why));
  };
  int infer = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) {  // keeps the input's size (allowzero=0)
      if (i >= from.size()) refuse(fmt::format("the 0 at position {} copies a size the input does not have", i));
      dims[i] = from[i];
    } else if (dims[i] == -1) {
      if (infer >= 0) refuse("-1 is given twice");
      infer = static_cast<int>(i);
    } else if (dims[i] < 0 && !is_batch(dims[i])) {
      refuse(fmt::format("a size of {}", dims[i]));
    }
  }
  const BatchAxis batch = batch_axis(xs);
  if (batch.named) refuse(fmt::format("the input's node {} has a named dimension", xs));
  const std::int64_t total = batch.pre * batch.post;  // the values of a sample
  int j = -1;  // the target's axis holding the batch
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (is_batch(dims[i])) {
      if (j >= 0) refuse("two sizes hold the batch");
      j = static_cast<int>(i);
    }
  if (batch.axis < 0) refuse("the input has no batch to size an axis by");
  // Sizes from the file: any int64, so their products are checked.
  auto times = [&](std::int64_t a, std::int64_t b) {
    std::int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) refuse("the sizes overflow");
    return r;
  };
  auto product_but = [&](int skip1, int skip2) {
    std::int64_t r = 1;
    for (int i = 0; i < static_cast<int>(dims.size()); ++i)
      if (i != skip1 && i != skip2) r = times(r, dims[static_cast<std::size_t>(i)]);
    return r;
  };
  if (j < 0) {  // the -1 takes the batch
    if (infer < 0) refuse("fixed sizes for a value that holds the batch");
    const std::int64_t others = product_but(infer, -1);
    if (others <= 0 || total % others != 0) refuse("the sizes do not divide the input's");
    if (total / others >= kMaxMultiple) refuse("the batch would fold with too many values");
    dims[static_cast<std::size_t>(infer)] = batch_times(total / others);
    j = infer;
    infer = -1;
  }
  const std::int64_t c = multiple_of(dims[static_cast<std::size_t>(j)]);
  if (infer >= 0) {
    const std::int64_t others = times(product_but(infer, j), c);
    if (others <= 0 || total % others != 0) refuse("the sizes do not divide the input's");
    dims[static_cast<std::size_t>(infer)] = total / others;
  }
  const BatchSplit split = batch_split(batch, dims, j, c);
  if (split.failure) refuse(split.failure);
  if (split.axis != batch.axis)
    refuse(fmt::format("the batch would move from axis {} of opgraph's shape {} to axis {}", batch.axis, xs, split.axis));
  IntList want;
  std::vector<int> groups;
  for (int i = 0; i < j; ++i) {
    want.push_back(dims[static_cast<std::size_t>(i)]);
    groups.push_back(1);
  }
  if (split.a > 1) want.push_back(split.a);
  want.push_back(0);  // the batch, kept
  if (split.b > 1) want.push_back(split.b);
  groups.push_back(1 + (split.a > 1 ? 1 : 0) + (split.b > 1 ? 1 : 0));
  for (int i = j + 1; i < static_cast<int>(dims.size()); ++i) {
    want.push_back(dims[static_cast<std::size_t>(i)]);
    groups.push_back(1);
  }
  bool same = static_cast<int>(want.size()) == xs.rank();
  for (int i = 0; same && i < xs.rank(); ++i) same = i == batch.axis || want[static_cast<std::size_t>(i)] == xs[i];
  set_folded(n, same ? x.id : add(n, "reshape", {x.id}, {{"shape", want}}, 0), groups);
}

/// Integer tensors computed at import time. PyTorch exports x.view(x.size(0), -1) as Shape,
/// Gather, Unsqueeze and Concat before the Reshape, and x.size(1) * x.size(2) as a Mul of
/// two Gathers: on integer constants (the shapes of the graph's tensors, with kBatch for
/// the batch), these are computed here and the Reshape reads the result. Unsqueeze and
/// Squeeze of a tensor of the graph become a reshape; a Cast of one to float, nothing.
/// Returns whether n was handled.
/// Node n computed at import by the folder (fold.hpp) when every input is known there: a
/// constant not yet a node, not a weight (a float initializer), not computed from the
/// batch's size (batch_sizes), none past the folder's limit. The batch's sizes and ConstantOfShape by the batch are left
/// to fold() below, which knows what they may become.
bool Importer::fold_constant(const onnx::NodeProto& n) {
  if (!onnx_fold::evaluates(n.op_type())) return false;
  std::vector<const Tensor*> in;
  for (int i = 0; i < n.input_size(); ++i) {
    if (!has_input(n, i)) {
      in.push_back(nullptr);
      continue;
    }
    const std::string& name = n.input(i);
    if (values.count(name) || batch_fills.count(name) || aliases.count(name) || weights.count(name) ||
        batch_sizes.count(name))
      return false;
    const Tensor* c = constant(name);
    if (!c || c->numel() > onnx_fold::kMaxValues) return false;
    in.push_back(c);
  }
  if (in.empty()) return false;
  std::vector<Tensor> out;
  try {
    out = onnx_fold::evaluate(n, opset, in);
  } catch (const onnx_fold::FoldError& e) {
    fail_node(n, e.what());
  }
  for (std::size_t k = 0; k < out.size() && k < static_cast<std::size_t>(n.output_size()); ++k)
    if (!n.output(static_cast<int>(k)).empty()) constants.insert_or_assign(n.output(static_cast<int>(k)), std::move(out[k]));
  return true;
}

bool Importer::fold(const onnx::NodeProto& n) {
  if (fold_constant(n)) return true;
  if (!fold_sizes(n)) return false;
  // Sizes that hold the batch (kBatch: Shape of a value with it, and what is computed from
  // them and still holds it) stay with fold_sizes, which knows what the batch may become.
  // Known by origin, not by value alone: a file's own INT64_MIN + 1 (a Slice's end "to
  // the start") is a number; a width gathered from a shape with the batch is one too.
  bool from_batch = false;
  for (int i = 0; i < n.input_size(); ++i) from_batch = from_batch || batch_sizes.count(n.input(i)) > 0;
  for (int k = 0; k < n.output_size(); ++k) {
    // (constants, not constant(): that would count a fill sized by the batch as read)
    const auto it = n.output(k).empty() || values.count(n.output(k)) ? constants.end() : constants.find(n.output(k));
    const Tensor* c = it == constants.end() ? nullptr : &it->second;
    bool holds = false;
    if (c && c->dtype() == DType::i64 && (from_batch || n.op_type() == "Shape"))
      for (std::int64_t v : c->values<std::int64_t>()) holds = holds || is_batch(v);
    if (holds) batch_sizes.insert(n.output(k));
  }
  return true;
}

bool Importer::fold_sizes(const onnx::NodeProto& n) {
  const std::string& t = n.op_type();
  if (computed_only_at_import(t)) {
    for (int i = 0; i < n.input_size(); ++i) {
      const std::string& name = n.input(i);
      const char* what = !has_input(n, i)      ? nullptr
                         : values.count(name) ? "data (a tensor of the graph)"
                         : weights.count(name) || aliases.count(name)
                             ? "a weight (a float initializer, which fine-tuning trains)"
                         : batch_sizes.count(name) || batch_fills.count(name)
                             ? "computed from the batch's size (not a number until a plan is compiled)"
                             : nullptr;
      if (what)
        fail_node(n, fmt::format("opgraph computes {} only at import, from constants, and its input '{}' is {}; "
                                 "opgraph has no op for it (a plugin can add one: docs/adding-an-op.md)",
                                 t, name, what));
    }
    fail_node(n, "its inputs are not all known at import");
  }
  auto ints = [&](int i) -> const Tensor* {
    if (!has_input(n, i)) return nullptr;
    const Tensor* c = constant(n.input(i));
    return c && c->dtype() == DType::i64 ? c : nullptr;
  };
  auto values_of = [](const Tensor& c) {
    return std::vector<std::int64_t>(c.data<std::int64_t>(), c.data<std::int64_t>() + c.numel());
  };
  auto result = [&](std::vector<std::int64_t> dims, const std::vector<std::int64_t>& v) {
    Tensor out(Shape(std::move(dims)), DType::i64);
    std::copy(v.begin(), v.end(), out.data<std::int64_t>());
    constants.insert_or_assign(n.output(0), std::move(out));
    return true;
  };
  auto axis_in = [&](std::int64_t axis, std::int64_t rank) {
    if (axis < -rank || axis >= rank) fail_node(n, fmt::format("axis {} is out of range for rank {}", axis, rank));
    return axis < 0 ? axis + rank : axis;
  };
  // A bound of Shape's start/end or of a Slice, by Python's rules: negative counts from
  // the end, out of range clamps.
  auto bound = [](std::int64_t v, std::int64_t len) { return std::clamp<std::int64_t>(v < 0 ? v + len : v, 0, len); };
  if (t == "Shape") {
    only(n, {"start", "end"});
    Shape s;
    const auto fill = batch_fills.find(n.input(0));  // its sizes, not its one value's
    if (fill == batch_fills.end()) {
      if (auto it = values.find(n.input(0)); it != values.end()) s = shape(it->second);
      else if (const Tensor* c = constant(n.input(0))) s = c->shape();
      else in(n, 0);  // names the missing input
    }
    std::vector<std::int64_t> all;  // the ONNX sizes, the batch as kBatch (times what it is folded with)
    if (fill != batch_fills.end()) {
      all = fill->second;
    } else if (auto it = folded.find(n.input(0)); it != folded.end()) {
      all = onnx_dims(values.at(n.input(0)), it->second);
    } else {
      for (int d = 0; d < s.rank(); ++d) {
        if (s[d] < 0 && s[d] != N) fail_node(n, fmt::format("dimension {} of {} is symbolic", d, s));
        all.push_back(s[d] == N ? kBatch : s[d]);
      }
    }
    const std::int64_t rank = static_cast<std::int64_t>(all.size());
    const std::int64_t start = bound(attr_int(n, "start", 0), rank), end = bound(attr_int(n, "end", rank), rank);
    return result({std::max<std::int64_t>(0, end - start)}, std::vector<std::int64_t>(all.begin() + start, all.begin() + std::max(start, end)));
  }
  if (t == "ConstantOfShape") {
    // torch.zeros(2, 3) in a forward pass: a constant of a shape known at import (at most
    // 2^28 values, the 1 GiB a model file may hold), float or integer as `value` is.
    only(n, {"value"});
    const Tensor* s = ints(0);
    if (!s) fail_node(n, "the shape must be known at import (a constant, or computed from Shape)");
    std::vector<std::int64_t> dims = values_of(*s);
    // A file exported with a fixed batch holds its size where torch.zeros_like(x) took x's
    // batch: a fill of one value is the same either way at that size, and follows the batch.
    if (exported_batch > 0 && !dims.empty() && dims[0] == exported_batch) dims[0] = kBatch;
    std::int64_t count = 1;
    bool batch = false;
    for (std::int64_t d : dims) {
      if (is_batch(d) && multiple_of(d) == 1) {
        batch = true;
        continue;
      }
      if (is_batch(d))
        fail_node(n, fmt::format("makes a value of shape {} from nothing: opgraph cannot size a constant by a multiple "
                                 "of the batch",
                                 dims_text(dims)));
      if (d < 0) fail_node(n, fmt::format("a negative size in the shape {}", dims_text(dims)));
      if (__builtin_mul_overflow(count, d, &count) || count > (std::int64_t{1} << 28))
        fail_node(n, fmt::format("a constant of shape {} holds more than 2^28 values (1 GiB, the most a model file "
                                 "holds)", dims_text(dims)));
    }
    double fill = 0.0;
    DType dtype = DType::f32;
    if (const auto* v = attr(n, "value", onnx::AttributeProto::TENSOR)) {
      const Tensor value = tensor_of(v->t(), file, "value");
      if (value.numel() != 1) fail_node(n, fmt::format("value holds {} values, not one", value.numel()));
      fill = value.at(0);
      if (value.dtype() == DType::i64) dtype = DType::i64;
    }
    if (batch) {  // one value, broadcast where it is read
      set_batch_fill(n.output(0), std::move(dims), dtype, fill);
      return true;
    }
    Tensor out(Shape(std::move(dims)), dtype);
    for (std::int64_t i = 0; i < out.numel(); ++i) out.set(i, fill);
    constants.insert_or_assign(n.output(0), std::move(out));
    return true;
  }
  if (t == "Cast") {
    only(n, {"to", "saturate"});
    const auto to = attr_int(n, "to", 0);
    const bool to_int = to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32;
    if (const Tensor* c = ints(0); c && to_int) return result(c->shape().dims(), values_of(*c));
    const bool to_float = to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE;
    if (const Tensor* c = constant(n.input(0)); c && !values.count(n.input(0)) && to == onnx::TensorProto::BOOL &&
                                                c->dtype() != DType::i64) {
      // A constant condition (opgraph's causal mask exports as one): 0/1, read by Where.
      Tensor b(c->shape(), DType::f32);
      for (std::int64_t i = 0; i < c->numel(); ++i) b.set(i, c->at(i) != 0.0 ? 1.0 : 0.0);
      constants.insert_or_assign(n.output(0), std::move(b));
      masks.insert(n.output(0));
      return true;
    }
    if (const Tensor* c = constant(n.input(0)); c && !values.count(n.input(0)) && to_float) {
      // A constant cast to a float (F.normalize's eps, a double, before its Clip; the count
      // x.std(1) divides by): a float constant. A size that is the batch has no number.
      if (c->dtype() == DType::i64)
        for (std::int64_t v : values_of(*c))
          if (is_batch(v))
            fail_node(n, fmt::format("uses the batch size as a number ({} cast to a float, as x * x.size(0) or "
                                     "x.std(0) do): opgraph's batch is not a number until a plan is compiled; "
                                     "compute with sizes of the other axes",
                                     size_text(v)));
      constants.insert_or_assign(n.output(0), c->to(DType::f32));
      return true;
    }
    if (values.count(n.input(0)) && !graph.node(values.at(n.input(0))).index) {
      const std::string& x = n.input(0);
      if (to == onnx::TensorProto::BOOL) {  // a mask stays one; a float is true where nonzero
        (masks.count(x) ? masks : truthy).insert(n.output(0));
        set(n, values.at(x));
        return true;
      }
      if (to_float && truthy.count(x))
        fail_node(n, "a cast to a float of a float cast to BOOL is not supported (compare with 0 instead)");
      if (to_float) {  // already a float, or a 0/1 mask
        set(n, values.at(x));
        if (auto it = folded.find(x); it != folded.end()) folded[n.output(0)] = it->second;
        return true;
      }
    }
    if (values.count(n.input(0)) && graph.node(values.at(n.input(0))).index) {  // an integer input (token ids)
      if (to_int) {
        set(n, values.at(n.input(0)));
        return true;
      }
      if (to_float || to == onnx::TensorProto::BOOL) {  // its values as reals; as BOOL, true where nonzero
        set(n, in(n, 0));
        if (to == onnx::TensorProto::BOOL) truthy.insert(n.output(0));
        return true;
      }
    }
    fail_node(n, "only casts of integer shapes to integers, of float tensors and constants to float, of float "
                 "tensors to BOOL, of integer inputs, and of booleans to float are supported");
  }
  if (t == "Identity") {
    if (const Tensor* c = ints(0)) return result(c->shape().dims(), values_of(*c));
    return false;
  }
  if (t == "ReduceProd") {
    // The number of values a reduction counts (x.std(1) and x.var(1) divide by the product
    // of sizes gathered from Shape): integer sizes known at import, multiplied with an
    // overflow check; a batch factor stays one (N·5).
    only_reduce(n);
    const Tensor* c = ints(0);
    if (!c) fail_node(n, "only a product of integer sizes known at import is supported (of data it is not)");
    if (reduces_nothing(n)) return result(c->shape().dims(), values_of(*c));
    const std::int64_t rank = c->shape().rank();
    const IntList axes = reduce_axes(n);
    std::vector<bool> reduce(static_cast<std::size_t>(rank), axes.empty());
    for (std::int64_t a : axes) reduce[static_cast<std::size_t>(axis_in(a, rank))] = true;
    if (rank > 1 && std::find(reduce.begin(), reduce.end(), false) != reduce.end())
      fail_node(n, "only a product over every axis is supported");
    std::int64_t product = 1, batches = 0;
    for (std::int64_t v : values_of(*c)) {
      if (is_batch(v)) ++batches;
      const std::int64_t factor = is_batch(v) ? multiple_of(v) : v;
      if (factor < 0 || __builtin_mul_overflow(product, factor, &product) || product >= kMaxMultiple)
        fail_node(n, fmt::format("the product of the sizes {} overflows", dims_text(values_of(*c))));
    }
    if (batches > 1) fail_node(n, fmt::format("the product of the sizes {} holds the batch twice", dims_text(values_of(*c))));
    std::vector<std::int64_t> dims;
    if (attr_int(n, "keepdims", 1) != 0) dims.assign(static_cast<std::size_t>(rank), 1);
    return result(dims, {batches ? batch_times(product) : product});
  }
  if (t == "Gather") {
    const Tensor* data = ints(0);
    const Tensor* idx = ints(1);
    if (!data) return false;  // an embedding lookup (convert)
    only(n, {"axis"});
    if (!idx) fail_node(n, "gathers from an integer constant with indices computed from data");
    if (data->shape().rank() != 1) fail_node(n, "gathers from an integer constant of rank other than 1");
    const std::int64_t len = data->numel();
    axis_in(attr_int(n, "axis", 0), 1);
    std::vector<std::int64_t> v;
    for (std::int64_t i : values_of(*idx)) {
      if (i < -len || i >= len) fail_node(n, fmt::format("index {} is out of range for {} values", i, len));
      v.push_back(data->data<std::int64_t>()[i < 0 ? i + len : i]);
    }
    return result(idx->shape().dims(), v);
  }
  if (t == "Unsqueeze" || t == "Squeeze") {
    if (lists_as_input()) only(n, {});
    else only(n, {"axes"});
    const IntList axes = axes_of(n, lists_as_input());
    const Tensor* c = ints(0);
    if (!c) in(n, 0);  // names a missing input, or refuses a folded one
    std::vector<std::int64_t> dims = c ? c->shape().dims() : shape(values.at(n.input(0))).dims();
    std::vector<std::int64_t> out;
    if (t == "Unsqueeze") {
      const std::int64_t rank = static_cast<std::int64_t>(dims.size() + axes.size());
      std::vector<bool> one(static_cast<std::size_t>(rank), false);
      for (std::int64_t a : axes) {
        const auto at = static_cast<std::size_t>(axis_in(a, rank));
        if (one[at]) fail_node(n, fmt::format("axis {} is given twice", a));
        one[at] = true;
      }
      std::size_t next = 0;
      for (std::int64_t d = 0; d < rank; ++d) out.push_back(one[static_cast<std::size_t>(d)] ? 1 : dims[next++]);
    } else {
      const std::int64_t rank = static_cast<std::int64_t>(dims.size());
      std::vector<bool> drop(dims.size(), axes.empty());
      for (std::int64_t a : axes) drop[static_cast<std::size_t>(axis_in(a, rank))] = true;
      for (std::size_t d = 0; d < dims.size(); ++d) {
        if (drop[d] && dims[d] == 1) continue;
        if (drop[d] && !axes.empty())
          fail_node(n, fmt::format("axis {} has size {}, not 1", d, dims[d] == N ? std::string("N") : std::to_string(dims[d])));
        out.push_back(dims[d]);
      }
    }
    if (c) return result(out, values_of(*c));
    for (auto& d : out) d = d == N ? kBatch : d;
    reshape_to(n, values.at(n.input(0)), out);
    return true;
  }
  if (t == "Concat") {
    bool floats = true;  // float constants of rank 1 (PyTorch builds Resize's scales so)
    for (int i = 0; i < n.input_size(); ++i) {
      const Tensor* c = has_input(n, i) && !values.count(n.input(i)) ? constant(n.input(i)) : nullptr;
      floats = floats && c && c->dtype() != DType::i64 && c->shape().rank() == 1;
    }
    if (floats && n.input_size() > 0) {
      only(n, {"axis"});
      axis_in(attr_int(n, "axis", 0), 1);
      std::vector<double> v;
      for (int i = 0; i < n.input_size(); ++i)
        for (std::int64_t j = 0; j < constant(n.input(i))->numel(); ++j) v.push_back(constant(n.input(i))->at(j));
      Tensor out(Shape{static_cast<std::int64_t>(v.size())}, DType::f32);
      for (std::size_t j = 0; j < v.size(); ++j) out.set(static_cast<std::int64_t>(j), v[j]);
      constants.insert_or_assign(n.output(0), std::move(out));
      return true;
    }
    for (int i = 0; i < n.input_size(); ++i)
      if (!ints(i)) return false;  // tensors of the graph (convert)
    only(n, {"axis"});
    std::vector<std::int64_t> v;
    for (int i = 0; i < n.input_size(); ++i) {
      if (ints(i)->shape().rank() != 1) fail_node(n, "concatenates integer constants of rank other than 1");
      const auto part = values_of(*ints(i));
      v.insert(v.end(), part.begin(), part.end());
    }
    axis_in(attr_int(n, "axis", 0), 1);
    return result({static_cast<std::int64_t>(v.size())}, v);
  }
  if (t == "Slice" && batch_fills.count(n.input(0))) {
    // A slice of a fill sized by the batch (a stacked RNN's initial states, zeros of
    // [layers·directions, N, H], one layer's taken): the same one value over fewer sizes.
    only(n, {});
    std::vector<std::int64_t> dims = batch_fills.at(n.input(0));
    const auto [starts, ends, axes, steps] = slice_inputs(n);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      fail_node(n, "starts, ends, axes and steps differ in length");
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const auto a = static_cast<std::size_t>(axis_in(axes[i], static_cast<std::int64_t>(dims.size())));
      if (is_batch(dims[a])) fail_node(n, "slices the batch dimension: opgraph keeps every sample of a batch");
      if (steps[i] != 1) fail_node(n, "only slices with step 1 of a fill sized by the batch are supported");
      const std::int64_t first = bound(starts[i], dims[a]);
      dims[a] = std::max(first, bound(ends[i], dims[a])) - first;
    }
    const Tensor& one = constants.at(n.input(0));
    set_batch_fill(n.output(0), std::move(dims), one.dtype(), one.at(0));
    return true;
  }
  if (t == "Slice") {
    const Tensor* data = ints(0);
    only(n, {});
    if (!data) {  // a slice of a tensor of the graph (or of a weight): the slice op
      const NodeId x = in(n, 0);
      auto [starts, ends, axes, steps] = slice_inputs(n);
      // The slice op refuses mismatched lengths and steps of 0, by name.
      for (std::size_t i = 0; i < axes.size(); ++i) {
        axes[i] = axis_in(axes[i], shape(x).rank());
        if (shape(x)[static_cast<int>(axes[i])] == N)
          fail_node(n, "slices the batch dimension: opgraph keeps every sample of a batch");
      }
      const bool back = std::any_of(steps.begin(), steps.end(), [](std::int64_t v) { return v < 0; });
      if (!back || starts.size() != axes.size() || ends.size() != axes.size() || steps.size() != axes.size()) {
        set(n, add(n, "slice", {x}, {{"begin", starts}, {"end", ends}, {"step", steps}, {"axes", axes}}, 0));
        return true;
      }
      // Steps back (torch.flip: a step of -1 from the end to before the start): along each
      // such axis the positions ONNX's bounds give, taken in their order (take); the axes
      // stepped forward by one slice before.
      IntList fs, fe, fst, fa;
      for (std::size_t i = 0; i < axes.size(); ++i)
        if (steps[i] > 0) fs.push_back(starts[i]), fe.push_back(ends[i]), fst.push_back(steps[i]), fa.push_back(axes[i]);
      NodeId y = fa.empty() ? x : add(n, "slice", {x}, {{"begin", fs}, {"end", fe}, {"step", fst}, {"axes", fa}});
      for (std::size_t i = 0; i < axes.size(); ++i) {
        if (steps[i] > 0) continue;
        const std::int64_t len = shape(x)[static_cast<int>(axes[i])];
        if (is_symbolic(len)) fail_node(n, fmt::format("steps back along axis {} of {}, which is symbolic", axes[i], shape(x)));
        auto clamp = [&](std::int64_t v) { return std::clamp<std::int64_t>(v < 0 ? v + len : v, -1, len - 1); };
        const std::int64_t b = std::max<std::int64_t>(clamp(starts[i]), 0), e = clamp(ends[i]);
        IntList taken;
        for (std::int64_t k = b; k > e; k += steps[i]) taken.push_back(k);
        if (taken.empty()) fail_node(n, fmt::format("steps back along axis {} and takes nothing", axes[i]));
        y = add(n, "take", {y}, {{"indices", taken}, {"axis", axes[i]}});
      }
      set(n, add(n, "identity", {y}, {}, 0));
      return true;
    }
    if (data->shape().rank() != 1) fail_node(n, "slices an integer constant of rank other than 1");
    const IntList starts = const_ints(n, 1), ends = const_ints(n, 2);
    const IntList axes = has_input(n, 3) ? const_ints(n, 3) : IntList{0};
    const IntList steps = has_input(n, 4) ? const_ints(n, 4) : IntList{1};
    if (starts.size() != 1 || ends.size() != 1 || axes.size() != 1 || steps.size() != 1 || axis_in(axes[0], 1) != 0)
      fail_node(n, "slices a shape along more than its one axis");
    if (steps[0] != 1) fail_node(n, "only slices with step 1 are supported");
    const std::int64_t len = data->numel();
    const std::int64_t first = bound(starts[0], len), last = std::max(first, bound(ends[0], len));
    const auto all = values_of(*data);
    std::vector<std::int64_t> v(all.begin() + first, all.begin() + last);
    return result({static_cast<std::int64_t>(v.size())}, v);
  }
  if (t == "Reshape" && ints(0)) {  // a shape reshaped (ViT's expand(n, -1, -1): [N, -1, -1] to one axis)
    only(n, {"allowzero"});
    const Tensor* data = ints(0);
    std::vector<std::int64_t> dims = const_ints(n, 1);
    std::int64_t known = 1, infer = -1;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == 0 && attr_int(n, "allowzero", 0) == 0) {
        if (i >= static_cast<std::size_t>(data->shape().rank())) fail_node(n, "a 0 copies a size the input does not have");
        dims[i] = data->shape()[static_cast<int>(i)];
      }
      if (dims[i] == -1) {
        if (infer >= 0) fail_node(n, "-1 is given twice");
        infer = static_cast<std::int64_t>(i);
      } else if (dims[i] < 0) {
        fail_node(n, fmt::format("a size of {}", dims[i]));
      } else {
        known *= dims[i];
      }
    }
    if (infer >= 0 && known > 0) dims[static_cast<std::size_t>(infer)] = data->numel() / known;
    if (Shape(dims).numel() != data->numel())
      fail_node(n, fmt::format("reshapes {} integers to {}", data->numel(), dims_text(dims)));
    return result(dims, values_of(*data));
  }
  if ((t == "Equal" && ints(0) && ints(1)) || (t == "Where" && ints(0) && ints(1) && ints(2))) {
    // Shapes compared and chosen from (how PyTorch writes x.expand(n, -1, -1): the sizes
    // that are -1 replaced by 1), elementwise with a broadcast of single values. The batch
    // equals itself and no -1; compared with a number, it has none to compare.
    only(n, {});
    const int count = t == "Equal" ? 2 : 3;
    std::vector<std::vector<std::int64_t>> in;
    std::size_t len = 1;
    const Tensor* widest = ints(0);
    for (int i = 0; i < count; ++i) {
      in.push_back(values_of(*ints(i)));
      if (in.back().size() != 1) {
        if (len != 1 && len != in.back().size())
          fail_node(n, fmt::format("integer constants of {} and {} values do not broadcast", len, in.back().size()));
        len = in.back().size();
        widest = ints(i);
      }
    }
    std::vector<std::int64_t> v;
    for (std::size_t j = 0; j < len; ++j) {
      auto at = [&](int i) { return in[static_cast<std::size_t>(i)][in[static_cast<std::size_t>(i)].size() == 1 ? 0 : j]; };
      if (t == "Where") {
        v.push_back(at(0) != 0 ? at(1) : at(2));
        continue;
      }
      const std::int64_t a = at(0), b = at(1);
      if ((is_batch(a) || is_batch(b)) && !(is_batch(a) && is_batch(b)) && (is_batch(a) ? b : a) >= 0)
        fail_node(n, fmt::format("compares the batch size with {}: opgraph's batch is not a number until a plan is "
                                 "compiled",
                                 is_batch(a) ? b : a));
      v.push_back(a == b ? 1 : 0);
    }
    return result(widest->shape().dims(), v);
  }
  if (t == "Mul" || t == "Add" || t == "Sub" || t == "Div") {
    const Tensor* a = ints(0);
    const Tensor* b = ints(1);
    const auto scalar = [&](int i) -> const Tensor* {  // a float constant of one value, not yet a node
      const Tensor* c = unbound_constant(n, i);
      return c && c->dtype() != DType::i64 && c->numel() == 1 ? c : nullptr;
    };
    if (const Tensor *fa = scalar(0), *fb = scalar(1); fa && fb) {
      // Arithmetic of two float numbers (x.std(1)'s count less one): a number, computed in
      // float as ONNX Runtime does, not two parameters a fine-tuning would train.
      only(n, {});
      const auto x = static_cast<float>(fa->at(0)), y = static_cast<float>(fb->at(0));
      Tensor out(fa->shape().rank() >= fb->shape().rank() ? fa->shape() : fb->shape(), DType::f32);
      out.set(0, t == "Mul" ? x * y : t == "Add" ? x + y : t == "Sub" ? x - y : x / y);
      constants.insert_or_assign(n.output(0), std::move(out));
      return true;
    }
    if (!a || !b) return false;  // arithmetic on the graph's tensors (convert)
    only(n, {});
    const auto va = values_of(*a), vb = values_of(*b);
    if (va.size() != vb.size() && va.size() != 1 && vb.size() != 1)
      fail_node(n, fmt::format("integer constants of {} and {} values do not broadcast", va.size(), vb.size()));
    const std::size_t len = std::max(va.size(), vb.size());
    std::vector<std::int64_t> v;
    for (std::size_t i = 0; i < len; ++i) {
      const std::int64_t x = va[va.size() == 1 ? 0 : i], y = vb[vb.size() == 1 ? 0 : i];
      if (is_batch(x) || is_batch(y)) {
        // The batch times a number, or a multiple of it divided by one that divides it: sizes
        // of axes that fold the batch with others (x.size(0) * heads). Anything else has no
        // value opgraph can size an axis by.
        const std::int64_t c = multiple_of(is_batch(x) ? x : y), k = is_batch(x) ? y : x;
        std::int64_t r = 0;
        if (t == "Mul" && !is_batch(k) && k >= 1 && !__builtin_mul_overflow(c, k, &r) && r < kMaxMultiple) {
          v.push_back(batch_times(r));
          continue;
        }
        if (t == "Div" && is_batch(x) && !is_batch(y) && y >= 1 && c % y == 0) {
          v.push_back(batch_times(c / y));
          continue;
        }
        fail_node(n, fmt::format("computes {} {} {} with the batch size: opgraph's batch is not a number, only "
                                 "multiples of it size an axis (use -1 in the shape instead)",
                                 size_text(x), t == "Mul" ? "*" : t == "Add" ? "+" : t == "Sub" ? "-" : "/",
                                 size_text(y)));
      }
      if (t == "Div" && y == 0) fail_node(n, "divides an integer by 0");
      std::int64_t r = 0;
      // Div truncates, as ONNX Runtime's integer division does; INT64_MIN / -1 cannot
      // happen (INT64_MIN is kBatch, handled above).
      const bool fits = t == "Mul"   ? !__builtin_mul_overflow(x, y, &r)
                        : t == "Add" ? !__builtin_add_overflow(x, y, &r)
                        : t == "Sub" ? !__builtin_sub_overflow(x, y, &r)
                                     : (r = x / y, true);
      if (!fits) fail_node(n, "an integer result overflows");
      v.push_back(r);
    }
    const bool a_shape = va.size() != vb.size() ? va.size() > vb.size() : a->shape().rank() >= b->shape().rank();
    return result(a_shape ? a->shape().dims() : b->shape().dims(), v);
  }
  return false;
}

void Importer::check_batch_fill(const onnx::NodeProto& n) {
  if (fills_read.empty()) return;
  static const std::unordered_set<std::string> broadcasting = {
      "Add", "Sub", "Mul", "Div", "Where", "Max", "Min", "Pow", "Equal", "Less", "LessOrEqual", "Greater",
      "GreaterOrEqual", "Sum", "Mean"};
  const std::vector<std::string> read = std::move(fills_read);
  fills_read.clear();
  for (const std::string& name : read) {
    const std::vector<std::int64_t>& dims = batch_fills.at(name);
    const auto refuse = [&](const std::string& why) {
      fail_node(n, fmt::format("reads '{}', a constant of shape {} made from nothing (ConstantOfShape sized by the "
                               "batch, as torch.zeros_like(x) is), which opgraph holds as one value broadcast against "
                               "a value with the batch; {}",
                               name, dims_text(dims), why));
    };
    if (!broadcasting.count(n.op_type()) || n.output_size() != 1) refuse("this operator does not broadcast it");
    const auto it = values.find(n.output(0));
    if (it == values.end()) refuse("the result is a constant, not a value with the batch");
    // Right-aligned, the result must have every size the fill has (the batch where it has
    // the batch): then broadcasting it changed nothing.
    const Shape& out = shape(it->second);
    const std::int64_t lead = out.rank() - static_cast<std::int64_t>(dims.size());
    bool covers = lead >= 0 && !folded.count(n.output(0));
    for (std::size_t i = 0; covers && i < dims.size(); ++i) {
      const std::int64_t have = out[lead + static_cast<std::int64_t>(i)];
      covers = dims[i] == 1 || (is_batch(dims[i]) ? have == N : have == dims[i]);
    }
    if (!covers) refuse(fmt::format("the result, {}, does not hold all of its shape", out));
  }
}

/// The operators the importer converts, as the error lists them (a note in parentheses
/// where only some of an operator's forms are).
const std::vector<std::string>& supported_operators() {
  static const std::vector<std::string> supported = {
      "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "CumSum", "ConvTranspose (1-D, 2-D)", "DepthToSpace", "Div",
      "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GRU",
      "GreaterOrEqual", "Gelu (opset 20)", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less",
      "LessOrEqual", "Log", "LogSoftmax", "LSTM", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mish (opset 18)", "Mul", "Neg", "Not",
      "Pad (constant, reflect, edge)", "Pow", "PRelu", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
      "ReduceMin", "ReduceProd (of sizes)", "ReduceSum", "ReduceSumSquare", "Relu", "RNN",
      "Reshape", "Resize (nearest, linear)", "Selu", "Shape", "Sigmoid", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze",
      "Sub", "Sum", "Tanh", "Tile", "Transpose", "Unsqueeze", "Where"};
  static const std::vector<std::string> all = [] {
    std::vector<std::string> out = supported;
    for (const auto& op : constants_only_operators()) out.push_back(op + " (of constants)");
    std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                          [](char x, char y) { return std::tolower(x) < std::tolower(y); });
    });
    return out;
  }();
  return all;
}

/// Whether op_type is one of supported_operators (its name before any note).
bool is_supported_operator(const std::string& op_type) {
  static const std::unordered_set<std::string> names = [] {
    std::unordered_set<std::string> out;
    for (const auto& s : supported_operators()) out.insert(s.substr(0, s.find(' ')));
    return out;
  }();
  return names.count(op_type) > 0;
}

std::string unsupported_operator(const std::string& op_type) {
  // Control flow: an opgraph graph is one fixed DAG, so a branch or loop chosen by values
  // has nothing to import into; say where such nodes come from and how to avoid them.
  if (op_type == "If" || op_type == "Loop" || op_type == "Scan")
    return fmt::format("control flow ({}) is not supported: an opgraph graph is one fixed graph of ops. PyTorch "
                       "writes {} for Python control flow in scripted code (torch.jit.script; exporting the module "
                       "itself traces it and writes the path taken) and for a few layers whose export checks its "
                       "input (nn.LocalResponseNorm)",
                       op_type, op_type == "If" ? "an If" : "a " + op_type);
  return fmt::format("the operator is not supported; opgraph imports {}", fmt::join(supported_operators(), ", "));
}

void Importer::convert(const onnx::NodeProto& n) {
  if (fold(n)) return;
  const std::string& t = n.op_type();
  auto unary = [&](const char* op) {
    only(n, {});
    set(n, add(n, op, {in(n, 0)}, {}, 0));
  };
  if (t == "Relu") return unary("relu");
  if (t == "Sigmoid") return unary("logistic");
  if (t == "Tanh") return unary("tanh");
  if (t == "Exp") return unary("exp");
  if (t == "Log") return unary("log");
  if (t == "Sqrt") return unary("sqrt");
  if (t == "Abs") return unary("abs");
  if (t == "Erf") return unary("erf");
  if (t == "Identity") {
    if (unbound_constant(n, 0)) {
      only(n, {});
      aliases[n.output(0)] = n.input(0);
      return;
    }
    return unary("identity");
  }
  if (t == "Dropout") {  // inference: the identity (a mask output, if read, is not supported)
    // PyTorch 1.13 names the mask of F.dropout(x, p, training=False) though nothing reads it.
    if (n.output_size() > 1 && !n.output(1).empty() && read.count(n.output(1)))
      fail_node(n, "its mask output is read, which opgraph does not support");
    if (opset < 12) only(n, {"seed", "ratio"});  // the ratio an attribute before opset 12
    else only(n, {"seed"});
    const Folded x = in_folded(n, 0);  // attention's probabilities may fold the batch
    return set_folded(n, add(n, "identity", {x.id}, {}, 0), x.groups);
  }
  if (t == "Pad") {  // PyTorch puts a Pad of zeros before its average pools; reflect and edge: ReflectionPad2d, ReplicationPad2d
    only(n, {"mode"});
    const std::string mode = attr_string(n, "mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge")
      fail_node(n, fmt::format("mode={} is not supported: constant, reflect and edge are", mode));
    IntList pads = const_ints(n, 1);
    const NodeId x = in(n, 0);
    const int rank = shape(x).rank();
    if (has_input(n, 3)) {
      // Opset 18: the pads are for these axes only (a begin for each, then an end for each).
      const IntList axes = const_ints(n, 3);
      if (pads.size() != 2 * axes.size())
        fail_node(n, fmt::format("pads has {} values for {} axes (a begin and an end per axis)", pads.size(), axes.size()));
      IntList full(static_cast<std::size_t>(2 * rank), 0);
      std::vector<bool> seen(static_cast<std::size_t>(rank), false);
      for (std::size_t k = 0; k < axes.size(); ++k) {
        if (axes[k] < -rank || axes[k] >= rank) fail_node(n, fmt::format("axis {} is out of range for {}", axes[k], shape(x)));
        const std::size_t d = static_cast<std::size_t>(axes[k] < 0 ? axes[k] + rank : axes[k]);
        if (seen[d]) fail_node(n, fmt::format("axis {} is named twice", d));
        seen[d] = true;
        full[d] = pads[k];
        full[d + static_cast<std::size_t>(rank)] = pads[k + axes.size()];
      }
      pads = std::move(full);
    }
    if (static_cast<int>(pads.size()) != 2 * rank)
      fail_node(n, fmt::format("pads has {} values for an input of rank {} (a begin and an end per axis)", pads.size(), rank));
    double value = 0.0;
    if (has_input(n, 2)) {
      const std::optional<double> v = const_scalar(n, 2);
      if (!v) fail_node(n, "the padding value must be a constant scalar");
      value = *v;
    }
    IntList before, after, axes;
    for (int d = 0; d < rank; ++d) {
      const std::int64_t b = pads[static_cast<std::size_t>(d)], e = pads[static_cast<std::size_t>(d + rank)];
      if (b == 0 && e == 0) continue;
      if (b < 0 || e < 0) fail_node(n, fmt::format("negative pads ({} and {} on axis {}) crop: not supported", b, e, d));
      if (d == 0) fail_node(n, "padding along the batch axis is not supported");
      before.push_back(b), after.push_back(e), axes.push_back(d);
    }
    if (axes.empty()) return set(n, add(n, "identity", {x}, {}, 0));
    if (mode != "constant")  // the value input, if any, does not apply
      return set(n, add(n, "pad", {x}, {{"before", before}, {"after", after}, {"axes", axes},
                                        {"mode", std::string(mode == "edge" ? "replicate" : "reflect")}}, 0));
    return set(n, add(n, "pad", {x}, {{"before", before}, {"after", after}, {"axes", axes}, {"value", value}}, 0));
  }
  if (t == "Less" || t == "LessOrEqual" || t == "Greater" || t == "GreaterOrEqual" || t == "Equal") {
    only(n, {});
    const char* op = t == "Less" ? "less" : t == "LessOrEqual" ? "less_equal" : t == "Greater" ? "greater"
                   : t == "GreaterOrEqual" ? "greater_equal" : "equal";
    masks.insert(n.output(0));
    return set(n, add(n, op, {in(n, 0), in(n, 1)}, {}, 0));
  }
  if (t == "Not") {
    only(n, {});
    if (!masks.count(n.input(0))) fail_node(n, "only Not of a comparison's result is supported");
    masks.insert(n.output(0));
    return set(n, add(n, "scale", {in(n, 0)}, {{"factor", -1.0}, {"offset", 1.0}}, 0));  // 1 - mask
  }
  if (t == "Where") {
    only(n, {});
    if (const Tensor* c = unbound_constant(n, 0)) {
      // A constant condition: opgraph's causal mask (row i keeps keys j <= i + S - T of the
      // last two axes of x, the rest `fill`), as it exports it.
      const NodeId x = in(n, 1);
      const std::optional<double> fill = const_scalar(n, 2);
      const Shape& xs = shape(x);
      if (xs.rank() >= 2 && (is_symbolic(xs[xs.rank() - 1]) || is_symbolic(xs[xs.rank() - 2])))
        fail_node(n, fmt::format("a constant condition over the last two axes of {}, which are not both sizes (the "
                                 "batch is N): opgraph's causal mask needs fixed queries and keys", xs));
      bool causal = fill && xs.rank() >= 2 && c->shape().rank() >= 2 &&
                    c->shape()[c->shape().rank() - 2] == xs[xs.rank() - 2] && c->shape().last() == xs.last() &&
                    c->numel() == xs[xs.rank() - 2] * xs.last();
      const std::int64_t rows = causal ? xs[xs.rank() - 2] : 0, cols = causal ? xs.last() : 0;
      for (std::int64_t i = 0; causal && i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j)
          if ((c->at(i * cols + j) != 0.0) != (j <= i + cols - rows)) causal = false;
      if (!causal)
        fail_node(n, "a constant condition is supported only as a causal mask over the last two axes, with a constant "
                     "scalar for the masked entries");
      return set(n, add(n, "causal_mask", {x}, {{"fill", *fill}}, 0));
    }
    if (!masks.count(n.input(0)) && !truthy.count(n.input(0)))
      fail_node(n, fmt::format("the condition '{}' must be a comparison's result or a cast to BOOL", n.input(0)));
    return set(n, add(n, "where", {in(n, 0), in(n, 1), in(n, 2)}, {}, 0));
  }
  if (t == "Clip") {  // opset 11 on: the bounds are optional scalar inputs
    only(n, {});
    Attrs attrs;
    for (int i : {1, 2}) {
      if (!has_input(n, i)) continue;
      const std::optional<double> v = const_scalar(n, i);
      if (!v) fail_node(n, fmt::format("the {} bound must be a constant scalar", i == 1 ? "lower" : "upper"));
      attrs.emplace_back(i == 1 ? "min" : "max", *v);
    }
    return set(n, add(n, "clamp", {in(n, 0)}, std::move(attrs), 0));
  }
  if (t == "Max" || t == "Min") {  // variadic: a chain, left to right
    only(n, {});
    NodeId y = in(n, 0);
    if (n.input_size() == 1) return set(n, add(n, "identity", {y}, {}, 0));
    for (int i = 1; i < n.input_size(); ++i)
      y = add(n, t == "Max" ? "maximum" : "minimum", {y, in(n, i)}, {}, i + 1 == n.input_size() ? 0 : -1);
    return set(n, y);
  }
  if (t == "HardSigmoid" || t == "HardSwish") {  // clamp(alpha x + beta, 0, 1), times x for HardSwish
    if (t == "HardSigmoid") only(n, {"alpha", "beta"});
    else only(n, {});
    const double alpha = t == "HardSwish" ? 1.0 / 6.0 : attr_float(n, "alpha", 0.2);
    const double beta = t == "HardSwish" ? 0.5 : attr_float(n, "beta", 0.5);
    const NodeId x = in(n, 0);
    const NodeId lin = add(n, "scale", {x}, {{"factor", alpha}, {"offset", beta}});
    const NodeId gate = add(n, "clamp", {lin}, {{"min", 0.0}, {"max", 1.0}}, t == "HardSigmoid" ? 0 : -1);
    return set(n, t == "HardSigmoid" ? gate : add(n, "mul", {x, gate}, {}, 0));
  }
  if (t == "PRelu") {  // relu(x) + slope * min(x, 0), the slope a parameter that trains
    only(n, {});
    const NodeId x = in(n, 0);
    const NodeId negative = add(n, "scale", {add(n, "relu", {add(n, "scale", {x}, {{"factor", -1.0}})})}, {{"factor", -1.0}});
    return set(n, add(n, "add", {add(n, "relu", {x}), add(n, "mul", {in(n, 1), negative})}, {}, 0));
  }
  if (t == "Selu") {  // gamma * elu(x, alpha)
    only(n, {"alpha", "gamma"});
    const NodeId e = add(n, "elu", {in(n, 0)}, {{"alpha", attr_float(n, "alpha", 1.67326319217681884765625)}});
    return set(n, add(n, "scale", {e}, {{"factor", attr_float(n, "gamma", 1.05070102214813232421875)}}, 0));
  }
  if (t == "Softsign") {  // x / (1 + |x|)
    only(n, {});
    const NodeId x = in(n, 0);
    return set(n, add(n, "div", {x, add(n, "scale", {add(n, "abs", {x})}, {{"offset", 1.0}})}, {}, 0));
  }
  if (t == "Sum" || t == "Mean") {  // variadic, left to right
    only(n, {});
    NodeId y = in(n, 0);
    for (int i = 1; i < n.input_size(); ++i) y = add(n, "add", {y, in(n, i)}, {}, t == "Sum" && i + 1 == n.input_size() ? 0 : -1);
    if (t == "Mean") return set(n, add(n, "scale", {y}, {{"factor", 1.0 / n.input_size()}}, 0));
    return set(n, n.input_size() == 1 ? add(n, "identity", {y}, {}, 0) : y);
  }
  if (t == "Resize") {  // by whole factors, nearest-neighbour or bilinear: upsample2d
    only(n, {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
             "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy"});  // the last three: opset 18
    const std::string mode = attr_string(n, "mode", "nearest");
    if (mode != "nearest" && mode != "linear")
      fail_node(n, fmt::format("mode={} is not supported: only nearest and linear", mode));
    const std::string coords = attr_string(n, "coordinate_transformation_mode", "half_pixel");
    // half_pixel_symmetric (opset 19) differs from half_pixel only where the output size is
    // not the input's times the scale: never at a whole factor; pytorch_half_pixel only
    // where an output axis has one pixel, which reads pixel 0 either way.
    const bool half = coords == "half_pixel" || coords == "pytorch_half_pixel" || coords == "half_pixel_symmetric";
    Attrs how;
    if (mode == "linear") {
      // Bilinear: half-pixel coordinates (PyTorch's align_corners=False) or aligned corners.
      if (!half && coords != "align_corners")
        fail_node(n, fmt::format("coordinate_transformation_mode={} in linear mode is not supported (half_pixel or "
                                 "align_corners: PyTorch's two bilinear conventions)",
                                 coords));
      how = {{"mode", std::string("bilinear")}, {"align_corners", coords == "align_corners"}};
    } else {
      // The coordinate and rounding rules that pick pixel i / s for output i at a whole
      // factor s (the source position lies strictly between k - 1/2 and k + 1/2, or at k).
      const std::string rounding = attr_string(n, "nearest_mode", "round_prefer_floor");
      if (!((coords == "asymmetric" && rounding == "floor") || (coords == "tf_half_pixel_for_nn" && rounding == "floor") ||
            (half && (rounding == "round_prefer_floor" || rounding == "round_prefer_ceil"))))
        fail_node(n, fmt::format("coordinate_transformation_mode={} with nearest_mode={} is not supported (opgraph "
                                 "repeats each pixel: asymmetric with floor, or half_pixel with rounding)",
                                 coords, rounding));
    }
    const NodeId x = in(n, 0);
    const Shape& xs = shape(x);
    if (xs.rank() != 4 || is_symbolic(xs[2]) || is_symbolic(xs[3]))
      fail_node(n, fmt::format("only the planes of NCHW images of known size are resized, the input is {}", xs));
    // The axes the scales or sizes are for (opset 18's `axes`; all four before it).
    IntList axes = attr_ints(n, "axes", {0, 1, 2, 3});
    for (std::int64_t& a : axes) {
      if (a < -4 || a >= 4) fail_node(n, fmt::format("axis {} is out of range for {}", a, xs));
      if (a < 0) a += 4;
    }
    std::vector<double> given;
    const bool by_sizes = !(has_input(n, 2) && constant(n.input(2)) && constant(n.input(2))->numel() > 0);
    if (!by_sizes) {
      const Tensor* sc = constant(n.input(2));
      for (std::int64_t i = 0; i < sc->numel(); ++i) given.push_back(sc->at(i));
    } else if (has_input(n, 3)) {
      const IntList sizes = const_ints(n, 3);
      if (sizes.size() != axes.size())
        fail_node(n, fmt::format("sizes must hold {} values, one for each of the axes {}", axes.size(), dims_text(axes)));
      // The batch keeps its size: F.interpolate(x, size=...) writes sizes as x's first two
      // sizes (computed from Shape: the batch, a symbol) and the new height and width.
      for (std::size_t k = 0; k < sizes.size(); ++k)
        given.push_back(is_batch(sizes[k]) || is_symbolic(xs[axes[k]])
                            ? 1.0
                            : static_cast<double>(sizes[k]) / static_cast<double>(xs[axes[k]]));
      // keep_aspect_ratio_policy (opset 18): one scale for every axis named, the smallest
      // (not_larger) or the largest (not_smaller) of theirs.
      const std::string policy = attr_string(n, "keep_aspect_ratio_policy", "stretch");
      if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
        fail_node(n, fmt::format("keep_aspect_ratio_policy={} is not one of stretch, not_larger, not_smaller", policy));
      if (policy != "stretch" && !given.empty()) {
        const double one = policy == "not_larger" ? *std::min_element(given.begin(), given.end())
                                                  : *std::max_element(given.begin(), given.end());
        std::fill(given.begin(), given.end(), one);
      }
    } else {
      fail_node(n, "scales or sizes must be a constant");
    }
    if (given.size() != axes.size())
      fail_node(n, fmt::format("{} scales for the axes {}", given.size(), dims_text(axes)));
    std::vector<double> factors(4, 1.0);
    for (std::size_t k = 0; k < axes.size(); ++k) factors[static_cast<std::size_t>(axes[k])] = given[k];
    if (factors[0] != 1.0 || factors[1] != 1.0)
      fail_node(n, fmt::format("scales [{}]: only the height and width are resized", fmt::join(factors, ", ")));
    IntList scale;
    for (int a : {2, 3}) {
      const double f = factors[static_cast<std::size_t>(a)];
      if (!(f >= 1.0 && f == std::floor(f) && f <= 4096.0))
        fail_node(n, fmt::format("scale {} on axis {} is not a whole factor of at least 1", f, a));
      scale.push_back(static_cast<std::int64_t>(f));
    }
    how.emplace_back("scale", scale);
    return set(n, add(n, "upsample2d", {x}, std::move(how), 0));
  }
  if (t == "Reciprocal") {
    only(n, {});
    return set(n, add(n, "pow", {in(n, 0)}, {{"exponent", -1.0}}, 0));
  }
  if (t == "Expand") {  // ONNX broadcasts both ways: a 1 in the shape keeps x's size
    only(n, {});
    if (const Tensor* c = unbound_constant(n, 0); c && c->dtype() == DType::i64) {
      // Integer constants expanded to the batch (BERT's positions, torch.arange(T).expand(n,
      // T)): the same indices for every sample, kept for the Gather that reads them.
      const IntList dims = const_ints(n, 1);
      const Shape& cs = c->shape();
      const bool batch_first = !dims.empty() && dims[0] == kBatch && static_cast<int>(dims.size()) >= cs.rank() &&
                               (static_cast<int>(dims.size()) > cs.rank() || cs[0] == 1);
      if (batch_first) {
        std::vector<std::int64_t> rest(dims.begin() + 1, dims.end());
        const int lead = static_cast<int>(dims.size()) - cs.rank();
        Tensor row(Shape(std::vector<std::int64_t>(cs.dims().begin() + (lead > 0 ? 0 : 1), cs.dims().end())), DType::i64);
        std::copy(c->data<std::int64_t>(), c->data<std::int64_t>() + c->numel(), row.data<std::int64_t>());
        if (row.shape().dims() != rest)
          fail_node(n, fmt::format("expands integers {} to {}: only along the batch", cs, dims_text(dims)));
        batch_indices.insert_or_assign(n.output(0), std::move(row));
        return;
      }
    }
    // A constant of one value (not a weight) expanded to sizes that hold the batch: a fill
    // sized by the batch, as ConstantOfShape makes one. A recurrent network exported with a
    // fixed batch writes its zero initial state so (torch.zeros(1, 1, H).expand(layers, n,
    // H)), the batch at axis 1.
    if (const Tensor* c = unbound_constant(n, 0); c && !weights.count(n.input(0)) && c->numel() > 0) {
      std::vector<std::int64_t> dims = const_ints(n, 1);
      bool same = true, batch = false;
      for (std::int64_t i = 1; same && i < c->numel(); ++i) same = c->at(i) == c->at(0);
      for (std::int64_t& d : dims) batch = batch || (is_batch(d) && multiple_of(d) == 1);
      const int lead = static_cast<int>(dims.size()) - c->shape().rank();
      same = same && lead >= 0;  // else the result has the constant's rank: the general path
      for (int j = 0; same && batch && j < c->shape().rank(); ++j) {  // broadcast against dims, aligned on the right
        std::int64_t& d = dims[static_cast<std::size_t>(j + lead)];
        const std::int64_t cj = c->shape()[j];
        // The constant may hold the batch itself where the file was exported with a fixed one.
        const bool batch_there = is_batch(d) && multiple_of(d) == 1 && exported_batch > 0 && cj == exported_batch;
        if (cj != 1 && d != 1 && cj != d && !batch_there)
          fail_node(n, fmt::format("cannot expand a constant of shape {} to {}: each size must be 1 or the size it "
                                   "expands to",
                                   dims_text(c->shape().dims()), dims_text(const_ints(n, 1))));
        if (d == 1) d = cj;
      }
      if (same && batch) {
        for (std::int64_t d : dims)
          if (d < 0 && !(is_batch(d) && multiple_of(d) == 1))
            fail_node(n, fmt::format("expands a constant to {}: only by the batch and known sizes", dims_text(dims)));
        set_batch_fill(n.output(0), std::move(dims), c->dtype(), c->at(0));
        return;
      }
    }
    const NodeId x = in(n, 0);
    IntList dims = const_ints(n, 1);
    const Shape& xs = shape(x);
    const int lead = static_cast<int>(dims.size()) - xs.rank();
    // To the batch, of a tensor without it (ViT's class token, class_token.expand(n, -1, -1)):
    // its first axis, of size 1 (or added), repeated to the batch of the data's input, then
    // any other size expanded as below.
    if (!dims.empty() && dims[0] == kBatch && (lead > 0 || (xs.rank() > 0 && xs[0] == 1))) {
      const std::optional<NodeId> like = batch_like(n);
      if (!like) fail_node(n, "expands to the batch size, and no input of the model has the batch");
      IntList full(static_cast<std::size_t>(lead), 1);  // x with dims' rank: leading 1s added
      for (int d = 0; d < xs.rank(); ++d) full.push_back(is_symbolic(xs[d]) ? -1 : xs[d]);
      IntList rest{-1};
      bool more = false;
      for (std::size_t i = 1; i < dims.size(); ++i) {
        if (is_batch(dims[i]))
          fail_node(n, fmt::format("expands {} to {}: the batch only as the first axis", xs, dims_text(dims)));
        more = more || (dims[i] != 1 && dims[i] != full[i]);
        rest.push_back(dims[i] == 1 ? -1 : dims[i]);
      }
      const NodeId y = add(n, "expand_batch", {lead > 0 ? add(n, "reshape", {x}, {{"shape", full}}) : x, *like}, {},
                           more ? -1 : 0);
      return set(n, more ? add(n, "expand", {y}, {{"shape", rest}}, 0) : y);
    }
    for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
      const int j = i - lead;  // x's axis aligned on the right, if any
      std::int64_t& d = dims[static_cast<std::size_t>(i)];
      // The batch, computed from a Shape (F.normalize expands its norms to x's shape), or
      // the size a file exported without dynamic axes holds: kept where x has it.
      const bool batch = d == kBatch || (exported_batch > 0 && d == exported_batch);
      if (j >= 0 && (d == 1 || (batch && is_symbolic(xs[j])))) d = -1;
      else if (d == kBatch)
        fail_node(n, fmt::format("expanding {} to the batch size along axis {}: opgraph cannot size an axis by the batch",
                                 xs, i));
    }
    return set(n, add(n, "expand", {x}, {{"shape", dims}}, 0));
  }
  if (t == "Tile") {  // x.repeat(...): each axis repeated, as copies concatenated along it
    only(n, {});
    const NodeId x = in(n, 0);
    const IntList repeats = const_ints(n, 1);
    const Shape& xs = shape(x);
    if (static_cast<int>(repeats.size()) != xs.rank())
      fail_node(n, fmt::format("repeats [{}] for {}: one for each of its {} axes", fmt::join(repeats, ", "), xs,
                               xs.rank()));
    std::vector<int> axes;
    for (int k = 0; k < xs.rank(); ++k) {
      const std::int64_t r = repeats[static_cast<std::size_t>(k)];
      if (r < 1) fail_node(n, fmt::format("repeats axis {} {} times: an empty result is not supported", k, r));
      if (r > 1 && is_symbolic(xs[k]))
        fail_node(n, fmt::format("repeats axis {} of {}, the batch, {} times: opgraph keeps the batch its own size", k,
                                 xs, r));
      if (r > 1) axes.push_back(k);
    }
    if (axes.empty()) return set(n, add(n, "identity", {x}, {}, 0));
    NodeId y = x;
    for (std::size_t i = 0; i < axes.size(); ++i)
      y = add(n, "concat", std::vector<NodeId>(static_cast<std::size_t>(repeats[static_cast<std::size_t>(axes[i])]), y),
              {{"axis", std::int64_t{axes[i]}}}, i + 1 == axes.size() ? 0 : -1);
    return set(n, y);
  }
  if (t == "DepthToSpace" || t == "SpaceToDepth") {  // nn.PixelShuffle, nn.PixelUnshuffle
    const bool to_space = t == "DepthToSpace";
    if (to_space) only(n, {"blocksize", "mode"});
    else only(n, {"blocksize"});
    const NodeId x = in(n, 0);
    const Shape& xs = shape(x);
    if (xs.rank() != 4) fail_node(n, fmt::format("input {}: expected 4 axes [N, C, H, W]", xs));
    const std::int64_t b = attr_int(n, "blocksize", 0), c = xs[1], h = xs[2], w = xs[3];
    if (b < 1) fail_node(n, fmt::format("blocksize={}: expected at least 1", b));
    if (is_symbolic(c) || is_symbolic(h) || is_symbolic(w))
      fail_node(n, fmt::format("input {}: channels, height and width must be known sizes", xs));
    // Through six axes: the channels split into blocks and C / b^2, the blocks moved
    // beside the rows and columns (or back).
    IntList split, perm, out;
    if (to_space) {
      if (c % (b * b) != 0) fail_node(n, fmt::format("{} channels are not a multiple of blocksize^2 = {}", c, b * b));
      const std::string mode = attr_string(n, "mode", "DCR");
      if (mode != "DCR" && mode != "CRD") fail_node(n, fmt::format("mode={}: expected DCR or CRD", mode));
      split = mode == "DCR" ? IntList{0, b, b, c / (b * b), h, w} : IntList{0, c / (b * b), b, b, h, w};
      perm = mode == "DCR" ? IntList{0, 3, 4, 1, 5, 2} : IntList{0, 1, 4, 2, 5, 3};
      out = {0, c / (b * b), h * b, w * b};
    } else {
      if (h % b != 0 || w % b != 0)
        fail_node(n, fmt::format("height {} and width {} must be multiples of blocksize={}", h, w, b));
      split = {0, c, h / b, b, w / b, b};
      perm = {0, 3, 5, 1, 2, 4};
      out = {0, c * b * b, h / b, w / b};
    }
    const NodeId blocks = add(n, "reshape", {x}, {{"shape", split}});
    const NodeId moved = add(n, "transpose", {blocks}, {{"perm", perm}});
    return set(n, add(n, "reshape", {moved}, {{"shape", out}}, 0));
  }
  if (t == "Split") {
    if (lists_as_input()) only(n, {"axis", "num_outputs"});
    else only(n, {"axis", "split"});
    const NodeId x = in(n, 0);
    Attrs attrs{{"axis", attr_int(n, "axis", 0)}};
    if (attr(n, "num_outputs", onnx::AttributeProto::INT)) {
      // Opset 18: parts of ceil(size / num_outputs), the last one what is left.
      const std::int64_t parts = attr_int(n, "num_outputs", 0);
      if (has_input(n, 1)) fail_node(n, "num_outputs and the split input are exclusive");
      if (parts != n.output_size())
        fail_node(n, fmt::format("num_outputs={} but the node names {} outputs", parts, n.output_size()));
      const Shape& xs = shape(x);
      const std::int64_t a = attr_int(n, "axis", 0);
      if (a < -xs.rank() || a >= xs.rank()) fail_node(n, fmt::format("axis {} is out of range for {}", a, xs));
      const std::int64_t size = xs[a < 0 ? a + xs.rank() : a];
      if (is_symbolic(size) || size % parts == 0) {
        attrs.emplace_back("parts", parts);
      } else {
        const std::int64_t chunk = (size + parts - 1) / parts;
        if (chunk * (parts - 1) >= size)
          fail_node(n, fmt::format("{} parts of {} values leave the last one empty", parts, size));
        IntList sizes(static_cast<std::size_t>(parts), chunk);
        sizes.back() = size - chunk * (parts - 1);
        attrs.emplace_back("sizes", sizes);
      }
    } else if (has_input(n, 1)) {
      attrs.emplace_back("sizes", const_ints(n, 1));
    } else if (!lists_as_input() && attr(n, "split", onnx::AttributeProto::INTS)) {
      attrs.emplace_back("sizes", attr_ints(n, "split", {}));
    } else {
      attrs.emplace_back("parts", static_cast<std::int64_t>(n.output_size()));
    }
    if (n.output_size() == 1) return set(n, add(n, "identity", {x}, {}, 0));
    // Outputs named <base>.0, <base>.1, ... (opgraph's parts, as it exports them): the op
    // named <base>, so that its parts keep those names.
    std::string base = n.output(0).size() > 2 && n.output(0).ends_with(".0") ? n.output(0).substr(0, n.output(0).size() - 2) : "";
    for (int i = 0; i < n.output_size() && !base.empty(); ++i)
      if (n.output(i) != fmt::format("{}.{}", base, i)) base.clear();
    const std::string name = base.empty() ? std::string() : fresh(base);
    NodeId op;
    try {
      op = graph.add_op("split", {x}, std::move(attrs), name, file);
    } catch (const Error& e) {
      fail_node(n, e.detail());
    }
    const std::vector<NodeId>& parts = graph.parts(op);
    if (static_cast<int>(parts.size()) != n.output_size())
      fail_node(n, fmt::format("{} outputs for {} parts", n.output_size(), parts.size()));
    for (int i = 0; i < n.output_size(); ++i)
      if (!n.output(i).empty()) set(n, parts[static_cast<std::size_t>(i)], i);
    return;
  }
  if (t == "Neg") {
    only(n, {});
    return set(n, add(n, "scale", {in(n, 0)}, {{"factor", -1.0}}, 0));
  }
  if (t == "Softmax" || t == "LogSoftmax") {
    only(n, {"axis"});
    const Folded x = in_folded(n, 0);
    std::int64_t axis = attr_int(n, "axis", opset < 13 ? 1 : -1);
    if (opset < 13) {
      // Before opset 13: the input as a matrix, the axes before `axis` (default 1) its rows
      // and those from it on its columns, normalised along the rows. The same as a softmax
      // along one axis when the axes after it hold one value each (`axis` the last: the
      // attention's scores); otherwise through a reshape to [rows, columns] and back.
      const std::vector<std::int64_t> dims = x.folded() ? onnx_dims(x.id, x.groups) : shape(x.id).dims();
      const auto rank = static_cast<std::int64_t>(dims.size());
      if (axis < -rank || axis >= std::max<std::int64_t>(rank, 1))
        fail_node(n, fmt::format("axis {} is out of range for rank {}", axis, rank));
      if (axis < 0) axis += rank;
      std::int64_t last = std::max<std::int64_t>(rank - 1, 0);  // the last axis of more than one value
      while (last > axis && dims[static_cast<std::size_t>(last)] == 1) --last;
      if (last != axis) {
        const Shape& xs = shape(x.id);
        if (x.folded()) fail_node(n, "normalises over several axes of an input that folds the batch with others");
        std::int64_t columns = 1;
        for (int d = static_cast<int>(axis); d < xs.rank(); ++d) {
          if (is_symbolic(xs[d])) fail_node(n, fmt::format("normalises over axis {} of {}, which has no fixed size", d, xs));
          columns *= xs[d];
        }
        IntList rows, back;
        for (int d = 0; d < xs.rank(); ++d) (d < axis ? rows : back).push_back(is_symbolic(xs[d]) ? 0 : xs[d]);
        back.insert(back.begin(), rows.begin(), rows.end());
        rows.push_back(columns);
        const char* op = t == "Softmax" ? "softmax" : "log_softmax";
        const NodeId normed = add(n, op, {add(n, "reshape", {x.id}, {{"shape", rows}})}, {{"axis", std::int64_t{-1}}});
        return set(n, add(n, "reshape", {normed}, {{"shape", back}}, 0));
      }
    }
    if (x.folded()) {  // the axis of x's node that ONNX's axis is (one not folded)
      const auto rank = static_cast<std::int64_t>(x.groups.size());
      if (axis < -rank || axis >= rank) fail_node(n, fmt::format("axis {} is out of range for rank {}", axis, rank));
      if (axis < 0) axis += rank;
      if (x.groups[static_cast<std::size_t>(axis)] != 1)
        fail_node(n, fmt::format("normalises along axis {}, which folds the batch with other axes", axis));
      axis = std::accumulate(x.groups.begin(), x.groups.begin() + axis, std::int64_t{0});
    }
    return set_folded(n, add(n, t == "Softmax" ? "softmax" : "log_softmax", {x.id}, {{"axis", axis}}, 0), x.groups);
  }
  if (t == "LeakyRelu") {
    only(n, {"alpha"});
    return set(n, add(n, "leaky_relu", {in(n, 0)}, {{"negative_slope", attr_float(n, "alpha", 0.01)}}, 0));
  }
  if (t == "Elu") {
    only(n, {"alpha"});
    return set(n, add(n, "elu", {in(n, 0)}, {{"alpha", attr_float(n, "alpha", 1.0)}}, 0));
  }
  if (t == "Celu") {  // alpha * elu(x / alpha)
    only(n, {"alpha"});
    const double alpha = attr_float(n, "alpha", 1.0);
    if (!(alpha > 0.0) || !std::isfinite(alpha)) fail_node(n, fmt::format("alpha={} is not a positive number", alpha));
    const NodeId e = add(n, "elu", {add(n, "scale", {in(n, 0)}, {{"factor", 1.0 / alpha}})}, {{"alpha", 1.0}});
    return set(n, add(n, "scale", {e}, {{"factor", alpha}}, 0));
  }
  if (t == "Softplus") return unary("softplus");
  if (t == "Gelu") {  // opset 20
    if (opset < 20) fail_node(n, "Gelu is an operator of opset 20 and later");
    only(n, {"approximate"});
    const std::string approximate = attr_string(n, "approximate", "none");
    if (approximate != "none" && approximate != "tanh")
      fail_node(n, fmt::format("approximate={} is not one of none, tanh", approximate));
    return set(n, add(n, "gelu", {in(n, 0)}, {{"approximate", approximate}}, 0));
  }
  if (t == "Mish") {  // opset 18: x tanh(softplus(x))
    if (opset < 18) fail_node(n, "Mish is an operator of opset 18 and later");
    only(n, {});
    const NodeId x = in(n, 0);
    return set(n, add(n, "mul", {x, add(n, "tanh", {add(n, "softplus", {x})})}, {}, 0));
  }
  if (t == "Add" || t == "Sub" || t == "Mul" || t == "Div") {
    only(n, {});
    // A scalar constant on one side is a scale: no parameter for a 0.5 or a 1.0.
    const auto a = const_scalar(n, 0), b = const_scalar(n, 1);
    if (b && !a) {
      const double c = *b;
      Attrs s = t == "Add" ? Attrs{{"offset", c}} : t == "Sub" ? Attrs{{"offset", -c}} : t == "Mul" ? Attrs{{"factor", c}}
                                                                                                   : Attrs{{"factor", 1.0 / c}};
      if (t == "Div" && c == 0.0) fail_node(n, "division by the constant 0");
      const Folded x = in_folded(n, 0);
      return set_folded(n, add(n, "scale", {x.id}, std::move(s), 0), x.groups);
    }
    if (a && !b && t != "Div") {
      const double c = *a;
      Attrs s = t == "Add" ? Attrs{{"offset", c}} : t == "Sub" ? Attrs{{"factor", -1.0}, {"offset", c}} : Attrs{{"factor", c}};
      const Folded x = in_folded(n, 1);
      return set_folded(n, add(n, "scale", {x.id}, std::move(s), 0), x.groups);
    }
    const char* op = t == "Add" ? "add" : t == "Sub" ? "sub" : t == "Mul" ? "mul" : "div";
    const Folded fa = in_folded(n, 0), fb = in_folded(n, 1);
    if (!fa.folded() && !fb.folded()) return set(n, add(n, op, {fa.id, fb.id}, {}, 0));
    // A value that folds the batch (attention scores [N·2, T, S]) with one that is 1 along
    // the folded axes or does not reach them (a causal mask [1, T, S] or [T, S]), or with
    // one folded alike: the nodes broadcast as the ONNX values do.
    const Folded& f = fa.folded() ? fa : fb;
    const Folded& other = fa.folded() ? fb : fa;
    const Shape& os = shape(other.id);
    const auto rank = static_cast<int>(f.groups.size());
    bool fits = !other.folded() && os.rank() <= rank;
    for (int k = 0; fits && k < os.rank(); ++k)
      fits = f.groups[static_cast<std::size_t>(rank - os.rank() + k)] == 1 || os[k] == 1;
    const bool alike = other.folded() && other.groups == f.groups && os == shape(f.id);
    if (!fits && !alike)
      fail_node(n, fmt::format("{} {} with {}: the second reaches the axes where the first folds the batch",
                               t == "Add" ? "adds" : t == "Sub" ? "subtracts" : t == "Mul" ? "multiplies" : "divides",
                               dims_text(onnx_dims(f.id, f.groups)),
                               other.folded() ? dims_text(onnx_dims(other.id, other.groups)) : fmt::format("{}", shape(other.id))));
    return set_folded(n, add(n, op, {fa.id, fb.id}, {}, 0), f.groups);
  }
  if (t == "Pow") {
    only(n, {});
    const auto e = const_scalar(n, 1);
    if (!e) fail_node(n, "the exponent must be a constant scalar");
    return set(n, add(n, "pow", {in(n, 0)}, {{"exponent", *e}}, 0));
  }
  if (t == "MatMul") {
    only(n, {});
    const Folded a = in_folded(n, 0), b = in_folded(n, 1);
    if (!a.folded() && !b.folded()) return set(n, add(n, "matmul", {a.id, b.id}, {}, 0));
    // Folded batch axes ([N·4, T, 8] as [N, 4, T, 8]): the product's own two axes are
    // single ones, and the batch axes of the two fold alike (or one has none), so that
    // the node's product broadcasts over the node's batch axes as ONNX's over its own.
    auto batch_groups = [&](const Folded& f) {
      const std::size_t r = f.groups.size();
      if (r < 2) fail_node(n, "multiplies a value that folds the batch with other axes by a vector");
      if (f.groups[r - 1] != 1 || f.groups[r - 2] != 1)
        fail_node(n, "multiplies along an axis that folds the batch with other axes");
      return std::vector<int>(f.groups.begin(), f.groups.end() - 2);
    };
    const std::vector<int> ga = batch_groups(a), gb = batch_groups(b);
    if (!ga.empty() && !gb.empty() && ga != gb)
      fail_node(n, fmt::format("its inputs {} and {} fold their batch axes differently",
                               dims_text(onnx_dims(a.id, a.groups)), dims_text(onnx_dims(b.id, b.groups))));
    std::vector<int> groups = ga.empty() ? gb : ga;
    groups.insert(groups.end(), {1, 1});
    return set_folded(n, add(n, "matmul", {a.id, b.id}, {}, 0), groups);
  }
  if (t == "Gemm") {  // alpha * A' B' + beta * C
    only(n, {"alpha", "beta", "transA", "transB"});
    const double alpha = attr_float(n, "alpha", 1.0), beta = attr_float(n, "beta", 1.0);
    const bool last = !has_input(n, 2);
    // A [T·N, 32] whose rows fold the batch (nn.MultiheadAttention's output projection):
    // its node [T, N, 32] times B, the bias along the last axis, the rows folded alike.
    const Folded fa = in_folded(n, 0);
    if (fa.folded() && (attr_int(n, "transA", 0) != 0 || fa.groups.size() != 2 || fa.groups[1] != 1))
      fail_node(n, fmt::format("A {} folds the batch into its columns (transA=1)", dims_text(onnx_dims(fa.id, fa.groups))));
    if (fa.folded() && !last && shape(in(n, 2)).rank() == 2 && shape(in(n, 2))[0] != 1)
      fail_node(n, fmt::format("C {} has a row per row of A {}, whose rows fold the batch", shape(in(n, 2)),
                               dims_text(onnx_dims(fa.id, fa.groups))));
    NodeId y = add(n, "matmul", {fa.id, in(n, 1)},
                   {{"trans_a", attr_int(n, "transA", 0) != 0}, {"trans_b", attr_int(n, "transB", 0) != 0}},
                   last && alpha == 1.0 ? 0 : -1);
    if (alpha != 1.0) y = add(n, "scale", {y}, {{"factor", alpha}}, last ? 0 : -1);
    if (!last) {
      NodeId c = in(n, 2);
      if (beta != 1.0) c = add(n, "scale", {c}, {{"factor", beta}});
      y = shape(c).rank() == 1 ? add(n, "bias_add", {y, c}, {}, 0) : add(n, "add", {y, c}, {}, 0);
    }
    return set_folded(n, y, fa.folded() ? std::vector<int>{fa.groups[0], 1} : std::vector<int>{});
  }
  if (t == "Conv") {
    only(n, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    NodeId x = in(n, 0), w = in(n, 1);
    const Shape ws = shape(w);
    // A 1-D convolution (Conv1d: x [N, C, L], kernels [out, in, k]) is the 2-D one of height
    // 1: x and the kernels reshaped to [N, C, 1, L] and [out, in, 1, k], the result back to
    // [N, out, L'].
    const bool one_d = ws.rank() == 3;
    if (ws.rank() != 4 && !one_d) fail_node(n, "only 1-D and 2-D convolutions (3-D and 4-D kernels) are supported");
    if (one_d && shape(x).rank() != 3) fail_node(n, fmt::format("a 1-D convolution of {}: x must be [N, C, L]", shape(x)));
    const IntList kernel = one_d ? IntList{ws[2]} : IntList{ws[2], ws[3]};
    const IntList declared = attr_ints(n, "kernel_shape", kernel);
    if (declared != kernel)
      fail_node(n, fmt::format("kernel_shape=[{}] but the kernel '{}' is {}", fmt::join(declared, ", "), n.input(1), ws));
    Attrs attrs;
    window(n, attrs, true, kernel, shape(x));
    attrs.emplace_back("groups", attr_int(n, "group", 1));
    if (one_d) {
      x = as_image(n, x);
      w = add(n, "reshape", {w}, {{"shape", IntList{ws[0], ws[1], 1, ws[2]}}});
    }
    const bool bias = has_input(n, 2);
    NodeId y = add(n, "conv2d", {x, w}, std::move(attrs), bias || one_d ? -1 : 0);
    if (bias) y = add(n, "bias_add", {y, in(n, 2)}, {{"axis", std::int64_t{1}}}, one_d ? -1 : 0);
    if (one_d) y = as_sequence(n, y);
    return set(n, y);
  }
  if (t == "ConvTranspose") {
    // PyTorch's ConvTranspose2d (a decoder's or a U-Net's upsampling): the convolution, of
    // stride 1, of x with zeros put between its pixels (stride - 1 after each: a reshape to
    // [N, C, H, 1, W, 1], a pad along the new axes, a reshape back) and padded by the
    // kernel's span less the pads, by the kernel with its in and out channels swapped and
    // flipped in space, computed at import from the initializer.
    only(n, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "output_padding"});
    const std::string ap = attr_string(n, "auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID") fail_node(n, fmt::format("auto_pad={} is not supported (give pads)", ap));
    if (attr_int(n, "group", 1) != 1) fail_node(n, "only group=1 is supported");
    const Tensor* wc = unbound_constant(n, 1);
    if (!wc || wc->dtype() == DType::i64) fail_node(n, "the kernel must be a float initializer");
    NodeId x = in(n, 0);
    // 1-D (ConvTranspose1d over [N, C, L], an audio or sequence decoder's upsampling): the
    // 2-D one of height 1 over [N, C, 1, L], as Conv.
    const bool one_d = wc->shape().rank() == 3 && shape(x).rank() == 3;
    const Shape ws = one_d ? Shape{wc->shape()[0], wc->shape()[1], 1, wc->shape()[2]} : wc->shape();
    if (!one_d && (ws.rank() != 4 || shape(x).rank() != 4))
      fail_node(n, fmt::format("only 1-D and 2-D transposed convolutions ([N, C, L], [N, C, H, W]) are supported; x is "
                               "{}, the kernel {}", shape(x), ws));
    if (shape(x)[1] != ws[0] || is_symbolic(shape(x)[2]) || (!one_d && is_symbolic(shape(x)[3])))
      fail_node(n, fmt::format("x {} against the kernel {} [in, out, {}]", shape(x), wc->shape(), one_d ? "k" : "kh, kw"));
    if (one_d) x = as_image(n, x);
    const Shape xs = shape(x);
    const IntList kernel{ws[2], ws[3]};
    const IntList declared = one_d ? IntList{ws[3]} : kernel;  // kernel_shape as the file writes it
    if (attr_ints(n, "kernel_shape", declared) != declared)
      fail_node(n, fmt::format("kernel_shape disagrees with the kernel {}", wc->shape()));
    const IntList ones = one_d ? IntList{1} : IntList{1, 1};
    if (attr_ints(n, "dilations", ones) != ones) fail_node(n, "only dilations of 1 are supported");
    IntList stride = attr_ints(n, "strides", ones), extra = attr_ints(n, "output_padding", one_d ? IntList{0} : IntList{0, 0});
    IntList pads = ap == "VALID" ? IntList(2 * ones.size(), 0) : attr_ints(n, "pads", IntList(2 * ones.size(), 0));
    if (one_d) {
      if (stride.size() != 1 || extra.size() != 1 || pads.size() != 2) fail_node(n, "strides, output_padding and pads must be 1, 1 and 2 numbers");
      stride = {1, stride[0]}, extra = {0, extra[0]}, pads = {0, pads[0], 0, pads[1]};
    }
    if (stride.size() != 2 || extra.size() != 2 || pads.size() != 4) fail_node(n, "strides, output_padding and pads must be 2, 2 and 4 numbers");
    for (int a = 0; a < 2; ++a) {
      const auto i = static_cast<std::size_t>(a);
      if (stride[i] < 1 || stride[i] > 64) fail_node(n, fmt::format("stride {} is not from 1 to 64", stride[i]));
      if (extra[i] < 0 || extra[i] >= stride[i]) fail_node(n, fmt::format("output_padding {} is not below the stride {}", extra[i], stride[i]));
      if (pads[i] < 0 || pads[i + 2] < 0 || pads[i] + pads[i + 2] >= (xs[2 + a] - 1) * stride[i] + kernel[i] + extra[i])
        fail_node(n, fmt::format("pads [{}] leave no output", fmt::join(pads, ", ")));
    }
    const std::int64_t cin = ws[0], cout = ws[1], kh = ws[2], kw = ws[3];
    if (stride[0] > 1 || stride[1] > 1) {
      x = add(n, "reshape", {x}, {{"shape", IntList{0, cin, xs[2], 1, xs[3], 1}}});
      x = add(n, "pad", {x}, {{"before", IntList{0, 0}}, {"after", IntList{stride[0] - 1, stride[1] - 1}}, {"axes", IntList{3, 5}}});
      x = add(n, "reshape", {x}, {{"shape", IntList{0, cin, xs[2] * stride[0], xs[3] * stride[1]}}});
    }
    // The padding of the stride-1 convolution; the zeros after the last pixel already there
    // count, and a padding below zero crops.
    IntList before{kh - 1 - pads[0], kw - 1 - pads[1]};
    IntList after{kh - 1 - pads[2] + extra[0] - (stride[0] - 1), kw - 1 - pads[3] + extra[1] - (stride[1] - 1)};
    IntList begin{0, 0}, end{xs[2] * stride[0], xs[3] * stride[1]};
    bool crop = false;
    for (std::size_t i = 0; i < 2; ++i) {
      if (before[i] < 0) begin[i] = -before[i], before[i] = 0, crop = true;
      if (after[i] < 0) end[i] += after[i], after[i] = 0, crop = true;
    }
    if (crop) x = add(n, "slice", {x}, {{"begin", begin}, {"end", end}, {"step", IntList{1, 1}}, {"axes", IntList{2, 3}}});
    Tensor flipped(Shape{cout, cin, kh, kw}, DType::f32);
    for (std::int64_t i = 0; i < cin; ++i)
      for (std::int64_t o = 0; o < cout; ++o)
        for (std::int64_t a = 0; a < kh; ++a)
          for (std::int64_t b = 0; b < kw; ++b)
            flipped.set(((o * cin + i) * kh + a) * kw + b, wc->at(((i * cout + o) * kh + (kh - 1 - a)) * kw + (kw - 1 - b)));
    const NodeId w = add_param(n, n.input(1) + "_transposed", flipped);
    const bool bias = has_input(n, 2);
    NodeId y = add(n, "conv2d", {x, w}, {{"padding", IntList{before[0], before[1], after[0], after[1]}}}, bias || one_d ? -1 : 0);
    if (bias) y = add(n, "bias_add", {y, in(n, 2)}, {{"axis", std::int64_t{1}}}, one_d ? -1 : 0);
    return set(n, one_d ? as_sequence(n, y) : y);
  }
  if (t == "MaxPool" || t == "AveragePool") {
    const bool max = t == "MaxPool";
    if (max) only(n, {"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad", "storage_order"});
    else only(n, {"kernel_shape", "strides", "pads", "ceil_mode", "auto_pad", "count_include_pad", "dilations"});
    if (!max)  // opset 19's dilations, of which opgraph's average pool takes none
      for (const std::int64_t d : attr_ints(n, "dilations", {}))
        if (d != 1) fail_node(n, "dilations other than 1 are not supported for average pooling");
    if (max && n.output_size() > 1 && !n.output(1).empty()) fail_node(n, "the indices output is not supported");
    const IntList kernel = attr_ints(n, "kernel_shape", {});
    NodeId x = in(n, 0);
    // 1-D pooling (MaxPool1d, AvgPool1d over [N, C, L]): the 2-D pool of height 1, as Conv.
    const bool one_d = kernel.size() == 1;
    if (kernel.size() != 2 && !one_d) fail_node(n, "only 1-D and 2-D pooling is supported");
    if (one_d && shape(x).rank() != 3) fail_node(n, fmt::format("1-D pooling of {}: x must be [N, C, L]", shape(x)));
    Attrs attrs{{"kernel", one_d ? IntList{1, kernel[0]} : kernel}};
    window(n, attrs, max, kernel, shape(x));
    if (attr_int(n, "ceil_mode", 0) != 0) attrs.emplace_back("ceil_mode", true);
    if (!max) attrs.emplace_back("count_include_pad", attr_int(n, "count_include_pad", 0) != 0);
    if (!one_d) return set(n, add(n, max ? "max_pool2d" : "avg_pool2d", {x}, std::move(attrs), 0));
    return set(n, as_sequence(n, add(n, max ? "max_pool2d" : "avg_pool2d", {as_image(n, x)}, std::move(attrs))));
  }
  if (t == "GlobalAveragePool" || t == "GlobalMaxPool") {  // nn.AdaptiveAvgPool2d(1), AdaptiveMaxPool2d(1)
    only(n, {});
    const NodeId x = in(n, 0);
    IntList axes;
    for (int d = 2; d < shape(x).rank(); ++d) axes.push_back(d);
    if (axes.empty()) fail_node(n, fmt::format("input {} has no axes past the channels to pool over", shape(x)));
    return set(n, add(n, t == "GlobalMaxPool" ? "max" : "mean", {x}, {{"axis", axes}, {"keepdims", true}}, 0));
  }
  if (t == "BatchNormalization") {
    only(n, {"epsilon", "momentum", "training_mode"});
    if (attr_int(n, "training_mode", 0) != 0) fail_node(n, "training_mode=1 is not supported (export in eval mode)");
    if (n.output_size() > 1) fail_node(n, "the running-statistics outputs are not supported (export in eval mode)");
    const Tensor* mean = constant(n.input(3));
    const Tensor* var = constant(n.input(4));
    if (!mean || !var) fail_node(n, "the running mean and variance must be initializers");
    const NodeId y = add(n, "batch_norm", {in(n, 0), in(n, 1), in(n, 2)},
                         {{"eps", attr_float(n, "epsilon", 1e-5)}, {"momentum", 1.0 - attr_float(n, "momentum", 0.9)}}, 0);
    state_values.emplace_back(graph.node(y).name + ".running_mean", mean->to(DType::f32));
    state_values.emplace_back(graph.node(y).name + ".running_var", var->to(DType::f32));
    return set(n, y);
  }
  if (t == "InstanceNormalization") {
    // Each (sample, channel) normalised over the axes past the channels, then scaled and
    // shifted per channel (PyTorch's InstanceNorm; its GroupNorm reshapes to [N, G, -1]
    // around one with a scale of ones and a bias of zeros, which add nothing here):
    // opgraph's reductions composed, the variance the mean of the squared deviations.
    only(n, {"epsilon"});
    const NodeId x = in(n, 0);
    const Shape xs = shape(x);
    if (xs.rank() < 3 || xs[0] != N)
      fail_node(n, fmt::format("x is {}: it must be [N, C, ...] with an axis to normalise over", xs));
    IntList axes, per_channel{xs[1]};
    for (int d = 2; d < xs.rank(); ++d) {
      axes.push_back(d);
      per_channel.push_back(1);
    }
    const auto all = [&](int i, double v) {
      const Tensor* c = unbound_constant(n, i);
      if (!c) return false;
      for (std::int64_t k = 0; k < c->numel(); ++k)
        if (c->at(k) != v) return false;
      return true;
    };
    const bool unscaled = all(1, 1.0), unshifted = all(2, 0.0);
    for (int i : {1, 2}) {  // a constant is checked without becoming a parameter
      const Tensor* c = unbound_constant(n, i);
      const Shape ps = c ? c->shape() : shape(in(n, i));
      if (ps != Shape{xs[1]})
        fail_node(n, fmt::format("the {} has shape {}; x {} needs [{}]", i == 1 ? "scale" : "bias", ps, xs, xs[1]));
    }
    const Attrs over{{"axis", axes}, {"keepdims", true}};
    const NodeId d = add(n, "sub", {x, add(n, "mean", {x}, over)});
    const NodeId var = add(n, "mean", {add(n, "mul", {d, d})}, over);
    const NodeId sd = add(n, "sqrt", {add(n, "scale", {var}, {{"offset", attr_float(n, "epsilon", 1e-5)}})});
    NodeId y = add(n, "div", {d, sd}, {}, unscaled && unshifted ? 0 : -1);
    if (!unscaled)
      y = add(n, "mul", {y, add(n, "reshape", {in(n, 1)}, {{"shape", per_channel}})}, {}, unshifted ? 0 : -1);
    if (!unshifted) y = add(n, "bias_add", {y, in(n, 2)}, {{"axis", std::int64_t{1}}}, 0);
    return set(n, y);
  }
  if (t == "LayerNormalization") {
    only(n, {"axis", "epsilon", "stash_type"});
    if (n.output_size() > 1) fail_node(n, "the mean and inverse-deviation outputs are not supported");
    const NodeId x = in(n, 0), g = in(n, 1);
    std::int64_t axis = attr_int(n, "axis", -1);
    if (axis < 0) axis += shape(x).rank();
    if (axis != shape(x).rank() - shape(g).rank())
      fail_node(n, fmt::format("axis {} with a scale of shape {}: opgraph normalises over the scale's axes", axis,
                               shape(g)));
    if (!has_input(n, 2)) fail_node(n, "a layer norm without a bias is not supported");
    return set(n, add(n, "layer_norm", {x, g, in(n, 2)}, {{"eps", attr_float(n, "epsilon", 1e-5)}}, 0));
  }
  if (t == "Flatten") {
    only(n, {"axis"});
    const NodeId x = in(n, 0);
    std::int64_t axis = attr_int(n, "axis", 1);
    if (axis < 0) axis += shape(x).rank();
    if (axis != 1) fail_node(n, fmt::format("axis={} is not supported (only 1: [N, ...] to [N, features])", axis));
    return set(n, add(n, "flatten", {x}, {{"axis", std::int64_t{1}}}, 0));
  }
  if (t == "Reshape") {
    only(n, {"allowzero"});
    if (attr_int(n, "allowzero", 0) != 0) fail_node(n, "allowzero=1 is not supported");
    // A shape computed from Shape holds the batch as kBatch; one exported with a fixed
    // batch (no dynamic axes) holds its size first, which is the batch when the data's
    // first dimension is.
    const Folded x = in_folded(n, 0);
    std::vector<std::int64_t> dims = const_ints(n, 1);
    if (!dims.empty() && exported_batch > 0 && dims[0] == exported_batch && shape(x.id).rank() > 0 &&
        shape(x.id)[0] == N)
      dims[0] = kBatch;
    // With a fixed batch B folded with other axes ([T, B·4, 8], nn.MultiheadAttention
    // exported without dynamic axes), the batch is in the one size that is B times the
    // factors around the batch axis of the data's node.
    const BatchAxis batch = batch_axis(shape(x.id));
    if (exported_batch > 0 && batch.axis >= 0 && !batch.named &&
        std::none_of(dims.begin(), dims.end(), [](std::int64_t d) { return d <= 0 || is_batch(d); })) {
      int found = -1, count = 0;
      for (int j = 0; j < static_cast<int>(dims.size()); ++j) {
        const std::int64_t c = dims[static_cast<std::size_t>(j)] / exported_batch;
        if (dims[static_cast<std::size_t>(j)] % exported_batch != 0 || c >= kMaxMultiple) continue;
        const BatchSplit split = batch_split(batch, dims, j, c);
        if (split.failure || split.axis != batch.axis) continue;
        found = j;
        ++count;
      }
      if (count == 1) dims[static_cast<std::size_t>(found)] = batch_times(dims[static_cast<std::size_t>(found)] / exported_batch);
    }
    // A -1 that takes the batch with other sizes (Swin's attn.view(-1, heads, T, T) of [N,
    // windows, heads, T, T]): the multiple of the batch it is, for reshape_folded.
    if (std::count(dims.begin(), dims.end(), -1) == 1) {
      const std::vector<std::int64_t> xd = onnx_dims(x.id, x.groups);
      std::int64_t rest = 1, factor = 0, others = 1;  // x's sizes but the batch's, its multiple, dims' sizes
      bool known = true, batch_named = false;
      for (std::int64_t v : xd) {
        if (is_batch(v)) factor = multiple_of(v);
        else known = known && v >= 0 && mul_fits(rest, v, &rest);
      }
      std::vector<std::int64_t> sized = dims;
      for (std::size_t i = 0; i < sized.size(); ++i) {
        if (sized[i] == 0 && i < xd.size()) sized[i] = xd[i];
        if (sized[i] == -1) continue;
        if (is_batch(sized[i])) batch_named = true;
        else known = known && sized[i] > 0 && mul_fits(others, sized[i], &others);
      }
      std::int64_t all = 0;
      if (known && factor > 0 && !batch_named && mul_fits(rest, factor, &all) && all % others == 0 &&
          all / others > 1 && all / others < kMaxMultiple) {
        std::replace(sized.begin(), sized.end(), std::int64_t{-1}, batch_times(all / others));
        dims = sized;
      }
    }
    const bool multiples = std::any_of(dims.begin(), dims.end(), [](std::int64_t d) { return is_batch(d) && d != kBatch; });
    if (!x.folded() && !multiples) return reshape_to(n, x.id, dims);
    return reshape_folded(n, x, dims);
  }
  if (t == "Transpose") {
    only(n, {"perm"});
    const Folded x = in_folded(n, 0);
    const int rank = static_cast<int>(x.groups.size());
    IntList perm = attr_ints(n, "perm", {});
    if (perm.empty())
      for (int d = rank - 1; d >= 0; --d) perm.push_back(d);
    if (!x.folded()) return set(n, add(n, "transpose", {x.id}, {{"perm", perm}}, 0));
    // Each ONNX axis moves with the node's axes it folds, in their order.
    std::vector<bool> seen(static_cast<std::size_t>(rank), false);
    for (std::int64_t p : perm) {
      if (p < 0 || p >= rank || seen[static_cast<std::size_t>(p)])
        fail_node(n, fmt::format("perm=[{}] is not a permutation of {} axes", fmt::join(perm, ", "), rank));
      seen[static_cast<std::size_t>(p)] = true;
    }
    if (static_cast<int>(perm.size()) != rank)
      fail_node(n, fmt::format("perm=[{}] is not a permutation of {} axes", fmt::join(perm, ", "), rank));
    IntList axes;
    std::vector<int> groups;
    for (std::int64_t p : perm) {
      const int first = std::accumulate(x.groups.begin(), x.groups.begin() + p, 0);
      for (int k = 0; k < x.groups[static_cast<std::size_t>(p)]; ++k) axes.push_back(first + k);
      groups.push_back(x.groups[static_cast<std::size_t>(p)]);
    }
    return set_folded(n, add(n, "transpose", {x.id}, {{"perm", axes}}, 0), groups);
  }
  if (t == "Concat") {
    only(n, {"axis"});
    std::vector<NodeId> ins;
    for (int i = 0; i < n.input_size(); ++i) ins.push_back(in(n, i));
    return set(n, add(n, "concat", std::move(ins), {{"axis", attr_int(n, "axis", 0)}}, 0));
  }
  if (t == "ReduceMean" || t == "ReduceMax" || t == "ReduceLogSumExp") {
    only_reduce(n);
    if (reduces_nothing(n)) return set(n, add(n, "identity", {in(n, 0)}, {}, 0));  // one value each
    const char* op = t == "ReduceMean" ? "mean" : t == "ReduceMax" ? "max" : "logsumexp";
    return set(n, add(n, op, {in(n, 0)}, reduce_attrs(n), 0));
  }
  if (t == "ReduceL1" || t == "ReduceL2" || t == "ReduceSumSquare" || t == "ReduceMin") {
    // Sums of |x| or x^2 (the norms: F.normalize exports ReduceL2), and the minimum as the
    // maximum of -x negated: opgraph's reductions composed.
    only_reduce(n);
    if (reduces_nothing(n)) {
      if (t != "ReduceMin") fail_node(n, "noop_with_empty_axes=1 without axes is not supported");
      return set(n, add(n, "identity", {in(n, 0)}, {}, 0));
    }
    Attrs attrs = reduce_attrs(n);
    const NodeId x = in(n, 0);
    if (t == "ReduceMin") {
      const NodeId m = add(n, "max", {add(n, "scale", {x}, {{"factor", -1.0}})}, std::move(attrs));
      return set(n, add(n, "scale", {m}, {{"factor", -1.0}}, 0));
    }
    const NodeId terms = t == "ReduceL1" ? add(n, "abs", {x}) : add(n, "mul", {x, x});
    if (t != "ReduceL2") return set(n, add(n, "sum", {terms}, std::move(attrs), 0));
    return set(n, add(n, "sqrt", {add(n, "sum", {terms}, std::move(attrs))}, {}, 0));
  }
  if (t == "ReduceSum") {
    only_reduce(n);
    // No axes: every axis, or with noop_with_empty_axes = 1 none, the identity (that
    // attribute had been accepted and ignored).
    if (reduces_nothing(n)) return set(n, add(n, "identity", {in(n, 0)}, {}, 0));
    return set(n, add(n, "sum", {in(n, 0)}, reduce_attrs(n), 0));
  }
  if (t == "CumSum") {  // of data (of constants it is folded)
    only(n, {"exclusive", "reverse"});
    const Tensor* a = unbound_constant(n, 1);
    if (!a || a->dtype() != DType::i64 || a->numel() != 1) fail_node(n, "the axis must be one integer constant");
    const NodeId x = in(n, 0);
    const std::int64_t rank = shape(x).rank(), axis = a->data<std::int64_t>()[0];
    if (axis < -rank || axis >= rank) fail_node(n, fmt::format("axis {} is out of range for {}", axis, shape(x)));
    if (shape(x)[static_cast<int>(axis < 0 ? axis + rank : axis)] == N)
      fail_node(n, "sums along the batch: each sample's outputs would depend on the others");
    return set(n, add(n, "cumsum", {x}, {{"axis", axis < 0 ? axis + rank : axis}, {"exclusive", attr_int(n, "exclusive", 0) != 0},
                                         {"reverse", attr_int(n, "reverse", 0) != 0}}, 0));
  }
  if (t == "Einsum") return einsum(n);
  if (t == "LSTM" || t == "GRU" || t == "RNN") return recurrent(n);
  if (t == "Gather" && batch_indices.count(n.input(1))) {
    // Every sample's same indices (BERT's positions) into a value or weight: the slices taken
    // once, then repeated to the batch ([T, d] -> [N, T, d]).
    only(n, {"axis"});
    if (attr_int(n, "axis", 0) != 0) fail_node(n, "indices expanded to the batch gather along axis 0 only");
    const Tensor& idx = batch_indices.at(n.input(1));
    const NodeId x = in(n, 0);
    const Shape xs = shape(x);
    if (xs.rank() < 1 || is_symbolic(xs[0])) fail_node(n, fmt::format("gathers from {} along its first axis", xs));
    IntList all(idx.data<std::int64_t>(), idx.data<std::int64_t>() + idx.numel());
    for (std::int64_t i : all)
      if (i < -xs[0] || i >= xs[0]) fail_node(n, fmt::format("index {} is out of range for axis 0 of {}", i, xs));
    const NodeId taken = add(n, "take", {x}, {{"indices", all}, {"axis", std::int64_t{0}}});
    IntList one{1};  // [1, indices' sizes..., x's other sizes]
    for (std::int64_t d : idx.shape().dims()) one.push_back(d);
    for (int d = 1; d < xs.rank(); ++d) one.push_back(xs[d]);
    const std::optional<NodeId> like = batch_like(n);
    if (!like) fail_node(n, "gathers for every sample, and no input of the model has the batch");
    return set(n, add(n, "expand_batch", {add(n, "reshape", {taken}, {{"shape", one}}), *like}, {}, 0));
  }
  if (t == "Gather") {
    only(n, {"axis"});
    const Tensor* idx = unbound_constant(n, 1);
    bool known = idx && idx->dtype() == DType::i64 && (values.count(n.input(0)) || unbound_constant(n, 0));
    for (std::int64_t k = 0; known && k < idx->numel(); ++k) known = !is_batch(idx->data<std::int64_t>()[k]);
    if (known) {
      // Indices known at import into a value or a weight (x[:, -1], a sequence's last
      // position; x[:, [2, 0]]; an embedding table's rows at torch.arange(T); a relative
      // position bias read from its table): take along the axis, then the indices' axes
      // in its place (none for a single index).
      // A value that folds the batch with other axes ([3, N·4, 2, 16, 12], a shifted
      // window's q, k, v side by side) is indexed along an axis it does not fold, its node's
      // axes grouped as before.
      const Folded fx = in_folded(n, 0);
      const NodeId x = fx.id;
      const Shape xs = shape(x);
      const std::int64_t rank = static_cast<std::int64_t>(fx.groups.size()), a = attr_int(n, "axis", 0);
      if (a < -rank || a >= rank)
        fail_node(n, fmt::format("axis {} is out of range for {}", a, dims_text(onnx_dims(x, fx.groups))));
      const std::int64_t onnx_axis = a < 0 ? a + rank : a;
      std::int64_t axis = 0;  // the node's axis
      for (std::int64_t d = 0; d < onnx_axis; ++d) axis += fx.groups[static_cast<std::size_t>(d)];
      if (fx.groups[static_cast<std::size_t>(onnx_axis)] != 1)
        fail_node(n, fmt::format("gathers along axis {} of {}, which folds the batch with other axes", onnx_axis,
                                 dims_text(onnx_dims(x, fx.groups))));
      if (is_symbolic(xs[static_cast<int>(axis)]))
        fail_node(n, fmt::format("gathers along axis {} of {}, which is {}: only axes of a fixed size are indexed",
                                 axis, xs, axis == 0 && xs[0] == N ? "the batch" : "symbolic"));
      if (idx->numel() == 0) fail_node(n, "no indices");
      const IntList all(idx->data<std::int64_t>(), idx->data<std::int64_t>() + idx->numel());
      for (std::int64_t i : all)
        if (i < -xs[static_cast<int>(axis)] || i >= xs[static_cast<int>(axis)])
          fail_node(n, fmt::format("index {} is out of range for axis {} of {}", i, axis, xs));
      const bool flat = idx->shape().rank() == 1;
      const NodeId taken = add(n, "take", {x}, {{"indices", all}, {"axis", axis}}, flat ? 0 : -1);
      if (flat) return set_folded(n, taken, fx.groups);
      // The indices' axes in place of the taken one: 0 keeps a size where it stays, -1 finds
      // the batch where it moves (a single index drops the axis before it).
      IntList dims;
      std::vector<int> groups;
      bool batch_moves = false;
      for (std::int64_t d = 0; d < xs.rank(); ++d) {
        if (d == axis) {
          for (std::int64_t v : idx->shape().dims()) dims.push_back(v);
          batch_moves = idx->shape().rank() != 1;
          continue;
        }
        if (!is_symbolic(xs[static_cast<int>(d)])) dims.push_back(xs[static_cast<int>(d)]);
        else if (!batch_moves) dims.push_back(0);
        else if (xs[static_cast<int>(d)] == N && std::find(dims.begin(), dims.end(), -1) == dims.end()) dims.push_back(-1);
        else fail_node(n, fmt::format("moving axis {} of {}, a symbolic axis after the indexed one", d, xs));
      }
      for (std::int64_t g = 0; g < rank; ++g) {
        if (g != onnx_axis) groups.push_back(fx.groups[static_cast<std::size_t>(g)]);
        else groups.insert(groups.end(), static_cast<std::size_t>(idx->shape().rank()), 1);
      }
      return set_folded(n, add(n, "reshape", {taken}, {{"shape", dims}}, 0), groups);
    }
    if (attr_int(n, "axis", 0) != 0) fail_node(n, "only axis=0 (an embedding lookup) is supported");
    return set(n, add(n, "embedding", {in_indices(n, 1), in(n, 0)}, {}, 0));
  }
  fail_node(n, unsupported_operator(t));
}

}  // namespace

OnnxModel parse_onnx(std::string_view bytes, const std::string& file) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    bad(file, "not an ONNX model: the protobuf does not parse (a truncated file, or another kind of file)");
  if (!model.has_graph()) bad(file, "not an ONNX model: it holds no graph");
  Importer im(model, file);
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") im.opset = static_cast<int>(o.version());
  }
  if (im.opset < kFirstOpset || im.opset > kLastOpset)
    bad(file, fmt::format("opset {} of the default domain: opgraph imports opsets {} to {} (re-export with "
                          "opset_version=17)",
                          im.opset, kFirstOpset, kLastOpset));
  const onnx::GraphProto& g = model.graph();
  for (const auto& init : g.initializer()) {
    Tensor value = tensor_of(init, file, "initializer");
    if (value.dtype() != DType::i64) im.weights.insert(init.name());
    im.constants.emplace(init.name(), std::move(value));
  }

  // Inputs (not initializers): the batch dimension N first, fixed sizes after it. The
  // batch is a first dimension the file leaves symbolic; in a file whose inputs are all of
  // fixed size (exported without dynamic axes), the first input's first size and every
  // other input's equal to it. An input of fixed size otherwise stays so (a second input
  // of [7] beside x [N, 7]).
  std::vector<const onnx::ValueInfoProto*> feeds;
  for (const auto& vi : g.input())
    if (!im.constants.count(vi.name())) feeds.push_back(&vi);
  const auto first_dim = [](const onnx::ValueInfoProto& vi) -> std::int64_t {  // -1 symbolic, 0 none
    const auto& s = vi.type().tensor_type().shape();
    if (!vi.type().has_tensor_type() || s.dim_size() == 0) return 0;
    return s.dim(0).has_dim_value() && s.dim(0).dim_value() > 0 ? s.dim(0).dim_value() : -1;
  };
  const bool any_symbolic = std::any_of(feeds.begin(), feeds.end(), [&](auto* vi) { return first_dim(*vi) < 0; });
  if (!any_symbolic && !feeds.empty()) im.exported_batch = first_dim(*feeds.front());
  for (const auto* vip : feeds) {
    const auto& vi = *vip;
    const auto& type = vi.type();
    if (!type.has_tensor_type()) bad(file, fmt::format("input '{}' is not a tensor", vi.name()));
    const auto elem = type.tensor_type().elem_type();
    if (elem != onnx::TensorProto::FLOAT && elem != onnx::TensorProto::INT64)
      bad(file, fmt::format("input '{}' holds {} values: opgraph feeds float and int64 inputs", vi.name(),
                            onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(elem))));
    std::vector<std::int64_t> dims;
    const auto& s = type.tensor_type().shape();
    const std::int64_t first = first_dim(vi);
    const bool batched = first < 0 || (first > 0 && first == im.exported_batch);
    for (int i = 0; i < s.dim_size(); ++i) {
      const auto& d = s.dim(i);
      if (i == 0 && batched) {
        dims.push_back(N);  // the batch, whatever size the file fixed
      } else if (d.has_dim_value() && d.dim_value() > 0) {
        dims.push_back(d.dim_value());
      } else {
        bad(file, fmt::format("input '{}': dimension {} is symbolic ('{}'): opgraph needs fixed sizes after the batch",
                              vi.name(), i, d.dim_param()));
      }
    }
    const std::string name = im.fresh(vi.name());
    im.values[vi.name()] = im.graph.add_input(name, Shape(std::move(dims)), file, elem == onnx::TensorProto::INT64);
  }

  for (const auto& node : g.node())
    for (const auto& in : node.input()) im.read.insert(in);
  for (const auto& o : g.output()) im.read.insert(o.name());
  // Nodes in dependency order (Boost.Graph's topological sort), whatever order the file has.
  const int count = g.node_size();
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < count; ++i)
    for (const auto& o : g.node(i).output())
      if (!o.empty()) producer[o] = i;
  using Dag = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
  Dag dag(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    for (const auto& in : g.node(i).input())
      if (auto it = producer.find(in); it != producer.end()) boost::add_edge(static_cast<std::size_t>(it->second), static_cast<std::size_t>(i), dag);
  std::vector<std::size_t> reversed;
  try {
    boost::topological_sort(dag, std::back_inserter(reversed));
  } catch (const boost::not_a_dag&) {
    bad(file, "the graph has a cycle");
  }
  // An operator opgraph does not import is named first, wherever it is: converting the
  // nodes before it could otherwise fail on a side effect of it (an LSTM's initial state,
  // an Expand by the batch, had been the error).
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) {
    const onnx::NodeProto& n = g.node(static_cast<int>(*it));
    if (!n.domain().empty() && n.domain() != "ai.onnx")
      im.fail_node(n, "operators of other domains are not supported");
    if (!is_supported_operator(n.op_type())) im.fail_node(n, unsupported_operator(n.op_type()));
  }
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) {
    const onnx::NodeProto& n = g.node(static_cast<int>(*it));
    // Every converter writes output 0 (and reads inputs through checked accessors).
    if (n.output_size() < 1 || n.output(0).empty()) im.fail_node(n, "the node has no output");
    im.check_arity(n);
    if (n.op_type() == "Constant") {
      Tensor value = im.constant_value(n);
      // A file exported with a fixed batch holds torch.zeros_like(x) as a constant of the
      // batch's size, every value the same: one value, as a ConstantOfShape by the batch.
      bool fill = im.exported_batch > 0 && value.dtype() != DType::i64 && value.shape().rank() > 0 &&
                  value.shape()[0] == im.exported_batch;
      for (std::int64_t i = 1; fill && i < value.numel(); ++i) fill = value.at(i) == value.at(0);
      if (fill) {
        std::vector<std::int64_t> dims = value.shape().dims();
        dims[0] = kBatch;
        im.set_batch_fill(n.output(0), std::move(dims), value.dtype(), value.at(0));
      } else {
        im.constants.insert_or_assign(n.output(0), std::move(value));
      }
      continue;
    }
    im.fills_read.clear();
    im.convert(n);
    im.check_batch_fill(n);
  }

  if (g.output_size() == 0) bad(file, "the graph has no output");
  std::vector<NodeId> outputs;
  for (const auto& o : g.output()) {
    auto it = im.values.find(o.name());
    if (auto f = im.batch_fills.find(o.name()); f != im.batch_fills.end() && it == im.values.end())
      bad(file, fmt::format("output '{}' {} is a constant made from nothing (ConstantOfShape sized by the batch): "
                            "opgraph cannot size a constant by the batch",
                            o.name(), Importer::dims_text(f->second)));
    if (it == im.values.end()) bad(file, fmt::format("output '{}' is not computed by any node", o.name()));
    if (auto f = im.folded.find(o.name()); f != im.folded.end())
      bad(file, fmt::format("output '{}' {} folds the batch with other axes, which no opgraph value can hold",
                            o.name(), Importer::dims_text(im.onnx_dims(it->second, f->second))));
    NodeId id = it->second;
    // The output by its own name: a converter that maps it onto another node (a Cast of a
    // comparison, an Identity) would otherwise leave it under that node's name.
    const std::string want = clean_name(o.name());
    if (im.graph.node(id).name != want && !im.names.count(want) && !im.graph.find(want) && !Registry::global().find(want)) {
      im.names.insert(want);
      id = im.graph.add_op("identity", {id}, {}, want, file);
    }
    im.graph.add_output(id);
    outputs.push_back(id);
  }

  // A labels input and a loss on the first output, so that it trains and evaluates: class
  // scores [N, C] (or [N, T, C], a class per position) take softmax cross-entropy,
  // probabilities (a Softmax output) cross-entropy;
  // one output [N, 1] is a binary classifier's probability when a Sigmoid gives it (binary
  // cross-entropy), a regression's value otherwise (mse: softmax over one class is
  // constant, and such a model could neither train nor evaluate).
  OnnxModel result;
  if (im.graph.inputs().empty()) bad(file, "the graph has no input (every value is an initializer)");
  result.file.input = im.graph.node(im.graph.inputs().front()).name;
  // Copies, not references: adding nodes below moves the graph's node storage.
  const Shape head_shape = im.graph.node(outputs.front()).shape;
  NodeId source = outputs.front();  // through the identities that name outputs
  while (im.graph.node(source).kind == NodeKind::op && im.graph.node(source).op->name == "identity")
    source = im.graph.node(source).inputs.front();
  const std::string head_op = im.graph.node(source).kind == NodeKind::op ? im.graph.node(source).op->name : "";
  // Scores per position, [N, T, C] from a linear head (a product, its bias, or a Softmax
  // of them: a sequence model's, C > 1), take the same losses with a class per position,
  // labels [N, T]. Not other [N, C, L] values (a 1-D convolution's feature maps).
  const bool linear_head = head_op == "matmul" || head_op == "bias_add" || head_op == "add" || head_op == "softmax";
  const bool per_position = head_shape.rank() == 3 && head_shape[0] == N && !is_symbolic(head_shape[1]) &&
                            head_shape[2] > 1 && linear_head;
  if ((head_shape.rank() == 2 && head_shape[0] == N) || per_position) {
    const bool one = !per_position && head_shape[1] == 1;
    const std::string labels = im.fresh("y");
    const Shape label_shape = per_position ? Shape(std::vector<std::int64_t>(head_shape.dims().begin(), head_shape.dims().end() - 1))
                              : one        ? Shape{N, 1}
                                           : Shape{N};
    const NodeId y = im.graph.add_input(labels, label_shape, file);
    const char* op = one ? (head_op == "logistic" ? "binary_cross_entropy" : "mse")
                         : (head_op == "softmax" ? "cross_entropy" : "softmax_cross_entropy");
    const NodeId loss = im.graph.add_op(op, {outputs.front(), y}, {}, im.fresh(one ? "loss" : "xent"), file);
    im.graph.set_loss(loss);
    result.file.labels = labels;
  }
  result.file.graph = std::move(im.graph);
  result.file.name = file;
  PrintOptions po;
  po.labels = result.file.labels;
  result.file.text = print_model(result.file.graph, po);
  result.params = result.file.graph.init_params(0);
  for (auto& [name, t] : im.param_values) result.params.at(name).copy_from(t);
  for (auto& [name, t] : im.state_values) {
    if (result.params.at(name).shape() != t.shape())
      bad(file, fmt::format("'{}' has shape {}, the batch norm needs {}", name, t.shape(), result.params.at(name).shape()));
    result.params.at(name).copy_from(t);
  }
  return result;
}

OnnxModel load_onnx(const std::string& path) {
  return parse_onnx(read_file(path, {kMaxOnnxFileBytes, "an ONNX file", "opgraph reads models of up to 1 GiB"}), path);
}

bool is_onnx_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

}  // namespace opgraph
