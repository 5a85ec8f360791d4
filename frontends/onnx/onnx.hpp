// ONNX export and import. Export: a model's eval-mode inference graph as an ONNX file
// (opset 17), every op written by its lowering (graph/lowering.hpp). Import: an ONNX file
// (opsets 11-22) as an ordinary Graph with its parameter values. docs/onnx.md lists the
// operators both ways.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph {

struct OnnxExportOptions {
  /// The opset written; lowerings may use any operator of it (13-17 are accepted).
  int opset = 17;
  /// Nodes exported as the graph's outputs; empty: the prediction head (the input a loss
  /// reads its prediction from) and the graph's other outputs, never the loss.
  std::vector<std::string> outputs = {};
  /// The graph's name in the file.
  std::string name = "opgraph";
};

/// The ONNX bytes (a serialised ModelProto): inputs with a symbolic batch dimension "N"
/// (and named dimensions by their names), parameters and state as initializers, node and
/// value names from the model. Throws GraphError naming the op and node when an op has no
/// lowering or a lowering cannot express an attribute.
std::string export_onnx(const Graph& graph, const Params& params, const OnnxExportOptions& options = {});

/// export_onnx written to `path` atomically (the output-file policy of every writer).
void save_onnx(const std::string& path, const Graph& graph, const Params& params,
               const OnnxExportOptions& options = {});

/// One op alone as an ONNX model, for checking its lowering against a runtime: the op's
/// check case `case_index` (graph/gradcheck.hpp's instance: shapes, attributes, inputs from
/// the op's domains) as a graph of fixed shapes, exported in f32, with the inputs and the
/// outputs opgraph computes for them in eval mode.
struct OnnxCheckCase {
  std::string config;  // "[3,4] axis=1"
  std::string bytes;   // the ONNX model
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<std::pair<std::string, Tensor>> outputs;
};
OnnxCheckCase onnx_check_case(const OpDef& op, std::size_t case_index, std::uint64_t seed);

/// The largest ONNX file opgraph reads.
inline constexpr std::size_t kMaxOnnxFileBytes = std::size_t{1} << 30;

/// An imported model: its graph as a model file would give it (the first input feeds the
/// samples; a labels input and a loss on the first output are added when that output is
/// [N, C]: softmax cross-entropy on scores, cross-entropy on a Softmax's probabilities),
/// and the values of its initializers (parameters, batch norm's running statistics).
struct OnnxModel {
  ModelFile file;
  Params params;
};

/// Parses ONNX bytes; `file` names them in messages. Throws DataError for a malformed file
/// or an operator, attribute or opset it does not support, naming the node, the operator,
/// its domain and the opset, and listing what is supported.
OnnxModel parse_onnx(std::string_view bytes, const std::string& file);
OnnxModel load_onnx(const std::string& path);
/// Whether a model path names an ONNX file (by its extension, .onnx).
bool is_onnx_path(const std::string& path);

}  // namespace opgraph
