// Constant folding for the ONNX importer (internal): a node whose inputs are all known at
// import (Constant nodes, integer initializers, shapes, results of folding) is computed
// there, as ONNX Runtime would compute it, and its outputs become constants. This is how
// the parts of a model that depend on no input are written by exporters: positions
// (torch.arange(T) -> Range), sinusoidal encodings (Sin, Cos, ScatterND into zeros), a
// shifted window's attention mask (Mod, Range, ScatterND, Equal, Where), sizes computed
// from shapes. import.cpp decides which nodes qualify; this file only evaluates.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <opgraph/graph/tensor.hpp>

namespace onnx {
class NodeProto;
}

namespace opgraph::onnx_fold {

/// What makes a node impossible to compute (the importer adds the node's name): thrown by
/// evaluate.
struct FoldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The most values a folded input or result may hold: 2^24 (16 M; a shifted window's mask
/// for a 224x224 image holds 154 k). The folder holds values as doubles, with an index per
/// value for the moves: about 400 MB at most.
inline constexpr std::int64_t kMaxValues = std::int64_t{1} << 24;

/// Whether the folder evaluates operator `op_type` of the default domain.
bool evaluates(const std::string& op_type);

/// The operators evaluates() accepts, for docs and messages.
const std::vector<std::string>& folded_operators();

/// Node n's outputs computed from its inputs (a null pointer for an omitted optional input):
/// f32, f64 or i64 tensors, booleans as i64 0/1 (ONNX's BOOL results: comparisons, Not,
/// And, Or, Xor, a Cast to BOOL). `opset` selects the attribute-or-input form of axes and
/// split sizes. Floats are computed in double and rounded to the result's type once per
/// operator (Range's once per step: each value the one before plus delta, as ONNX Runtime
/// sums them). Throws FoldError on an input ONNX does not allow (a division of integers by
/// zero, an index out of range, a result of more than kMaxValues).
std::vector<Tensor> evaluate(const onnx::NodeProto& n, int opset, const std::vector<const Tensor*>& inputs);

}  // namespace opgraph::onnx_fold
