// ONNX export: a model's eval-mode inference graph as an ONNX file (opset 17), every op
// written by its lowering (graph/lowering.hpp). docs/onnx.md lists the mapping.
#pragma once

#include <string>
#include <vector>

#include <opgraph/graph/graph.hpp>

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

}  // namespace opgraph
