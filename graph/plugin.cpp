// Plugin loading: file checks, dlopen under a staging capture, ABI check, registration.
#include <opgraph/graph/plugin.hpp>

#include <cxxabi.h>
#include <algorithm>
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include <opgraph/graph/registry.hpp>

namespace opgraph {

namespace {

std::mutex& load_mutex() {
  static std::mutex m;
  return m;
}

/// Plugins loaded so far, by canonical path, with their ops.
std::map<std::string, std::vector<std::string>>& loaded() {
  static std::map<std::string, std::vector<std::string>> m;
  return m;
}

/// dlerror() text made readable: a mangled C++ symbol is demangled.
std::string readable(std::string message) {
  const std::string key = "undefined symbol: ";
  const auto at = message.find(key);
  if (at == std::string::npos) return message;
  const std::string mangled = message.substr(at + key.size());
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return fmt::format("undefined symbol {}: it was built against another opgraph; rebuild it against this one",
                     status == 0 && name ? name.get() : mangled);
}

}  // namespace

std::vector<std::string> load_plugin(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path, "no such plugin file");
  if (fs::is_directory(path, ec)) throw Error(path, "is a directory, expected a plugin (.so)");
  {
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
    if (in.gcount() < 4 || magic[0] != 0x7f || magic[1] != 'E' || magic[2] != 'L' || magic[3] != 'F')
      throw Error(path, "not a shared library (no ELF header): a plugin is a .so built with opgraph_add_plugin");
  }
  const std::string canonical = fs::canonical(path, ec).string();

  std::lock_guard lock(load_mutex());
  if (auto it = loaded().find(canonical); it != loaded().end()) return it->second;

  detail::begin_capture();
  dlerror();
  void* handle = nullptr;
  // glibc declares dlopen noexcept, so a try around a direct call would be compiled away;
  // through a pointer of a throwing type the handler stays.
  void* (*volatile open_library)(const char*, int) = dlopen;
  try {
    handle = open_library(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  } catch (const std::exception& e) {  // a static initialiser of the plugin threw
    detail::end_capture();
    throw Error(path, fmt::format("threw while loading: {}: fix its static initialisers", e.what()));
  } catch (...) {
    detail::end_capture();
    throw Error(path, "threw an unknown exception while loading: fix its static initialisers");
  }
  const std::vector<detail::StagedOp> staged = detail::end_capture();
  if (!handle) {
    const char* err = dlerror();
    throw Error(path, fmt::format("cannot load: {}", readable(err ? err : "unknown error")));
  }
  // From here on a refused plugin is closed again: nothing of it was registered.
  auto refuse = [&](const std::string& what) {
    dlclose(handle);
    throw Error(path, what);
  };
  using AbiFn = std::uint32_t (*)();
  const auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "opgraph_plugin_abi"));
  if (!abi)
    refuse("not an opgraph plugin: no entry point 'opgraph_plugin_abi' (build it with opgraph_add_plugin, or put "
           "OPGRAPH_PLUGIN_ENTRY() in one of its sources)");
  const std::uint32_t version = abi();
  if (version != kPluginAbi)
    refuse(fmt::format("built for opgraph plugin ABI {}, this opgraph has ABI {}: rebuild the plugin against this "
                       "version",
                       version, kPluginAbi));
  if (staged.empty()) refuse("the plugin defines no ops (OPGRAPH_OP)");
  std::vector<OpDef> defs;
  std::vector<std::string> names;
  for (const auto& s : staged) {
    if (s.abi != kPluginAbi) refuse(fmt::format("an op was built for plugin ABI {}, this opgraph has ABI {}", s.abi, kPluginAbi));
    OpDef def = *s.def;
    def.source = canonical;
    names.push_back(def.name);
    defs.push_back(std::move(def));
  }
  try {
    Registry::global().add_all(std::move(defs));
  } catch (const GraphError& e) {
    refuse(e.what());  // "<op>: op '<op>' is already registered (by built-in)"
  }
  std::sort(names.begin(), names.end());
  loaded()[canonical] = names;
  return names;
}

}  // namespace opgraph
