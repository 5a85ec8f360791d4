// Op plugins: shared libraries whose op files are written exactly like those in ops/.
//
// A plugin is built with the installed CMake package:
//   find_package(opgraph REQUIRED)
//   opgraph_add_plugin(myops swish.cpp gelu.cpp)
// which adds the entry point below. Without CMake, put OPGRAPH_PLUGIN_ENTRY() in one source.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opgraph/graph/op.hpp>

/// The versioned C entry point every plugin exports: the contract version it was built for.
#define OPGRAPH_PLUGIN_ENTRY()                                                                 \
  extern "C" __attribute__((visibility("default"))) std::uint32_t opgraph_plugin_abi() {       \
    return ::opgraph::kPluginAbi;                                                              \
  }

namespace opgraph {

/// Loads a plugin and registers its ops, all or none. Throws Error naming the file (and
/// the op) when the file is missing or not a shared library, has no entry point, was
/// built for another contract version, cannot be loaded (e.g. an undefined symbol), or
/// defines an op whose name is taken. Loading the same file again does nothing and
/// returns its ops again. Plans already compiled are unaffected: OpDefs never move.
/// Returns the names of the plugin's ops, sorted.
std::vector<std::string> load_plugin(const std::string& path);

}  // namespace opgraph
