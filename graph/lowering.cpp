#include <opgraph/graph/lowering.hpp>

#include <algorithm>

namespace opgraph {

const AttrValue& LoweringContext::attr(std::string_view name) const {
  for (std::size_t i = 0; i < attr_names_.size(); ++i)
    if (attr_names_[i] == name) return attrs_[i];
  throw GraphError(fmt::format("node '{}'", node_), fmt::format("{}: lowering reads an unknown attribute '{}'", op_, name));
}

std::string LoweringContext::fresh(std::string_view hint) {
  std::string base = fmt::format("{}/{}", node_, hint), name = base;
  for (int k = 2; taken && taken->count(name); ++k) name = fmt::format("{}_{}", base, k);
  if (taken) taken->insert(name);
  return name;
}

std::string LoweringContext::constant(Tensor t, std::string_view hint) {
  std::string name = fresh(hint);
  constants.emplace_back(name, std::move(t));
  return name;
}

std::string LoweringContext::ints(const std::vector<std::int64_t>& values, std::string_view hint) {
  Tensor t(Shape{static_cast<std::int64_t>(values.size())}, DType::i64);
  std::copy(values.begin(), values.end(), t.data<std::int64_t>());
  return constant(std::move(t), hint);
}

std::string LoweringContext::scalar(double value, std::string_view hint) {
  return constant(Tensor::from(Shape{}, {value}, dtype_), hint);
}

std::string LoweringContext::emit(std::string type, std::vector<std::string> inputs, std::vector<std::string> outputs,
                                  Attrs attrs) {
  std::string first = outputs.empty() ? std::string() : outputs.front();
  nodes.push_back({std::move(type), std::move(inputs), std::move(outputs), std::move(attrs), {}});
  return first;
}

std::string LoweringContext::emit_fresh(std::string type, std::vector<std::string> inputs, std::string_view hint,
                                        Attrs attrs) {
  return emit(std::move(type), std::move(inputs), {fresh(hint)}, std::move(attrs));
}

namespace lowering {

LowerFn same(std::string type, Attrs attrs) {
  return [type = std::move(type), attrs = std::move(attrs)](LoweringContext& c) {
    std::vector<std::string> in;
    for (int i = 0; i < c.num_inputs(); ++i) in.push_back(c.input(i));
    c.emit(type, std::move(in), {c.output()}, attrs);
  };
}

std::int64_t axis(const LoweringContext& c, std::string_view attr, int rank) {
  const std::int64_t a = c.attr_int(attr);
  return a < 0 ? a + rank : a;
}

std::string reshape_target(LoweringContext& c, const Shape& from, const Shape& to) {
  std::vector<std::int64_t> dims;
  int inferred = 0;
  for (int i = 0; i < to.rank(); ++i) {
    const std::int64_t d = to[i];
    if (!is_symbolic(d)) {
      dims.push_back(d);
    } else if (i < from.rank() && from[i] == d) {
      dims.push_back(0);
    } else {
      dims.push_back(-1);
      ++inferred;
    }
  }
  if (inferred > 1) c.fail("the shape {} has two symbolic dimensions that moved: ONNX can infer only one", to);
  return c.ints(dims, "shape");
}

std::string reshape(LoweringContext& c, const std::string& x, const Shape& from, const Shape& to, std::string out) {
  const std::string target = reshape_target(c, from, to);
  if (out.empty()) return c.emit_fresh("Reshape", {x, target}, "reshaped");
  return c.emit("Reshape", {x, target}, {std::move(out)});
}

void reduce(LoweringContext& c, const std::string& type, const std::string& x, const std::string& out) {
  const AttrValue& axis = c.attr("axis");
  const std::int64_t keep = c.attr_bool("keepdims") ? 1 : 0;
  if (type == "ReduceSum") {  // opset 13: axes are an input
    std::vector<std::string> in{x};
    if (!axis.is_none()) in.push_back(c.ints(axis.as_ints(), "axes"));
    c.emit(type, std::move(in), {out}, {{"keepdims", keep}});
    return;
  }
  Attrs attrs{{"keepdims", keep}};
  if (!axis.is_none()) attrs.emplace_back("axes", axis.as_ints());
  c.emit(type, {x}, {out}, std::move(attrs));
}

}  // namespace lowering

}  // namespace opgraph
