// The .og model format: a readable text that declares a whole network. See
// docs/model-format.md for the grammar.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/graph/graph.hpp>

namespace opgraph {

/// A model file read into a graph, and which inputs take the samples and the labels.
struct ModelFile {
  Graph graph;
  std::string input;   // the first `input` declared
  std::string labels;  // the `labels` input, "" when the file declares none
  std::string name;    // the file name used in messages
  std::string text;    // the source text (checkpoints keep it)
  /// Parameter values the file carries (an ONNX model's initializers); empty for .og text.
  Params initial = {};
};

/// Parses .og text. Errors are ParseError/GraphError/ShapeError located at
/// `<name>:<line>:<col>` with the offending text and a suggestion where one exists:
/// "model.og:7:12: unknown op 'sofmax' (did you mean 'softmax'?)".
ModelFile parse_model(std::string_view text, const std::string& name = "<model>");

/// Reads and parses a model file.
ModelFile load_model(const std::string& path);
/// Copies a file's own parameter values (ModelFile::initial) into `params`, converting to
/// their dtype; nothing when the file carries none.
void apply_initial(const ModelFile& file, Params& params);

/// Model files larger than this are refused before they are read: an .og file holds an
/// architecture, a few KB; weights belong in checkpoints.
inline constexpr std::size_t kMaxModelFileBytes = 16u << 20;

struct PrintOptions {
  /// The input to declare with `labels` instead of `input`.
  std::string labels = {};
  /// Append each node's inferred shape as a comment.
  bool shapes = false;
  /// With shapes: bind N to this batch size (0: print N).
  std::int64_t batch = 0;
};

/// The graph as .og text: inputs, parameters, op nodes in topological order, outputs and
/// the loss. parse_model(print_model(g)) gives a graph equal to g.
std::string print_model(const Graph& graph, const PrintOptions& options = {});

/// Whether two graphs have the same nodes (names, kinds, shapes, ops, attributes,
/// inputs, initialisers), outputs and loss. Origins are not compared. On a difference,
/// `why` says where.
bool same_graph(const Graph& a, const Graph& b, std::string* why = nullptr);

/// A fingerprint of a graph's structure (ops, shapes, attributes, names, initialisers,
/// outputs, loss): 16 hex digits of a hash of its printed form. Checkpoints record it, so
/// loading parameters into another architecture with the same parameter names is refused.
std::string graph_fingerprint(const Graph& graph);

/// The plugin files whose ops the graph uses (OpDef::source of every op not built in).
std::vector<std::string> plugins_used(const Graph& graph);

}  // namespace opgraph
