// Building a Graph from a description in any order (an importer's): nodes refer to their
// inputs by name, the builder orders them, finds cycles and names them.
#pragma once

#include <string>
#include <vector>

#include <opgraph/graph/graph.hpp>

namespace opgraph {

/// Collects inputs, parameters and op nodes in any order, then builds a Graph. Nodes name
/// their inputs; a part of a multi-output op is named `<op>.<output>`. build() adds the
/// nodes in a topological order that depends only on the description (among nodes ready
/// at once, the smallest name first), so the same network declared in any order gives
/// the same Graph, node for node, and the same plan.
class GraphBuilder {
 public:
  GraphBuilder& input(std::string name, Shape shape, std::string origin = {}, bool index = false);
  GraphBuilder& param(std::string name, Shape shape, Init init = Init::xavier(), std::string origin = {});
  GraphBuilder& op(std::string name, std::string op, std::vector<std::string> inputs, Attrs attrs = {},
                   std::string origin = {});
  GraphBuilder& loss(std::string name);
  GraphBuilder& output(std::string name);

  /// The Graph. Throws GraphError on a name used twice, an input naming no node (with a
  /// suggestion), or a cycle, printed as its path: "cycle: a -> b -> c -> a"; and what
  /// Graph::add_op throws for a bad node.
  Graph build() const;

 private:
  struct Decl {
    enum class Kind : std::uint8_t { input, param, op } kind;
    std::string name;
    Shape shape;
    bool index = false;
    Init init;
    std::string op;
    std::vector<std::string> inputs;
    Attrs attrs;
    std::string origin;
  };
  std::vector<Decl> decls_;
  std::string loss_;
  std::vector<std::string> outputs_;
};

}  // namespace opgraph
