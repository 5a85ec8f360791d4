// Data folder lookup and the built-in sets.
#include <opgraph/datasets/locate.hpp>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include <opgraph/datasets/csv.hpp>

#include "builtin_data.hpp"

namespace opgraph {

std::string data_folder(const std::string& folder) {
  if (!folder.empty()) return folder;
  if (const char* env = std::getenv("OPGRAPH_DATA"); env && *env) return env;
  return {};
}

std::string find_data(const std::string& sub, const std::string& folder) {
  const std::string root = data_folder(folder);
  if (root.empty())
    throw DataError(sub, fmt::format("no data folder: pass --data DIR or set OPGRAPH_DATA to a folder holding {}/", sub));
  const std::filesystem::path path = std::filesystem::path(root) / sub;
  if (!std::filesystem::is_directory(path))
    throw DataError(path.string(), fmt::format("no such folder (the data folder {} has no {}/)", root, sub));
  return path.string();
}

std::vector<std::string> builtin_datasets() { return {"iris", "wine"}; }

Dataset load_builtin(std::string_view name) {
  if (name == "iris") return parse_csv(detail::kIrisCsv, "iris");
  if (name == "wine") return parse_csv(detail::kWineCsv, "wine");
  throw DataError(fmt::format("unknown built-in dataset '{}'{}", name, suggestion(name, builtin_datasets())));
}

}  // namespace opgraph
