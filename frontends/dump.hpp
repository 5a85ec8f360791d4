// Graph dumps for debugging: Graphviz DOT (and SVG through it), JSON, annotated .og.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <opgraph/graph/graph.hpp>

namespace opgraph {

struct DumpOptions {
  /// Bind N to this batch size in the shapes shown (0: keep N).
  std::int64_t batch = 0;
  /// Show the reverse pass: which vjp runs, what it reads from the forward pass, where
  /// gradients of a fanned-out value are summed.
  bool backward = false;
  /// The labels input (declared `labels` in .og output).
  std::string labels = {};
  /// Seconds per node (forward + backward), to colour nodes by time (from a profile).
  std::map<std::string, double> node_seconds = {};
  /// Draw each block instance (the nodes named `h1.*`, and `h1` itself) as one box.
  bool collapse = false;
  /// Leave out identity nodes, joining their input to their consumers.
  bool hide_identity = false;
};

/// Graphviz: one node per op (name, op, output shape), parameters and inputs drawn
/// differently, edges labelled with shapes (with N unless `batch` binds it); the loss
/// doubly outlined. Each block instance is a cluster (nested instances nested), or one box
/// with `collapse`. With `backward`, the reverse pass beside it: one node per vjp, naming
/// what it reads from the forward pass, joined by the gradients it passes on (with their
/// shapes); a `+` where the gradients of a fanned-out value are summed; the parameters'
/// gradients at the ends.
std::string dump_dot(const Graph& graph, const DumpOptions& options = {});
/// Nodes, edges, shapes and attributes for tools.
std::string dump_json(const Graph& graph, const DumpOptions& options = {});
/// The .og text with each node's shape as a comment.
std::string dump_og(const Graph& graph, const DumpOptions& options = {});
/// Renders DOT to SVG with Graphviz's `dot` program; throws Error when it is not installed.
std::string render_svg(const std::string& dot);

}  // namespace opgraph
