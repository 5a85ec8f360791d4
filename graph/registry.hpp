// The registry of ops by name: built-in ops, ops of the program itself, plugin ops.
#pragma once

#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/graph/op.hpp>

namespace opgraph {

/// Holds every registered op. Reading it is safe from many threads at once; OpDef
/// pointers it hands out stay valid for the life of the process.
class Registry {
 public:
  /// The process-wide registry, holding the built-in ops and any registered since.
  static Registry& global();

  /// The op called `name`; throws GraphError "unknown op 'sofmax' (did you mean 'softmax'?)".
  const OpDef& get(std::string_view name) const;
  /// The op called `name`, or nullptr.
  const OpDef* find(std::string_view name) const;
  /// Adds an op; throws GraphError when the name is taken or the definition is incomplete.
  const OpDef& add(OpDef def);
  /// Adds several ops, all or none: nothing is added if any of them would be refused.
  void add_all(std::vector<OpDef> defs);
  /// Every op, sorted by name.
  std::vector<const OpDef*> ops() const;
  std::vector<std::string> names() const;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

 private:
  void validate(const OpDef& def) const;
  void take_staged() const;

  mutable std::shared_mutex mutex_;
  std::vector<std::unique_ptr<OpDef>> ops_;
};

namespace detail {
/// While a plugin loads, ops its static initialisers stage are captured here instead of
/// going to the global registry. Returns what was captured, with each entry's ABI version.
struct StagedOp {
  std::uint32_t abi;
  const OpDef* def;  // only dereference when abi == kPluginAbi
};
void begin_capture();
std::vector<StagedOp> end_capture();
}  // namespace detail

}  // namespace opgraph
