// libFuzzer target: the opgraph command line itself, argv and small files together.
// An input is argv (tokens separated by newlines), then up to three files, each after a
// "\n\0\n" separator; tokens may name the files as @0, @1, @2 (alone or inside a spec such
// as csv:file=@1). The run must end with an exit status (0, 1 or 2) and never crash, hang
// or trip a sanitizer. Inputs that could reach outside the scratch folder (paths with '/',
// plugins) or ask for long work (numbers above 2000) are skipped.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/frontends/files.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/size.hpp>
#include <opgraph/graph/spec.hpp>

#include "../../frontends/cli/cli.hpp"

namespace {

bool asks_for_long_work(const std::string& token) {
  std::string number;
  auto flush = [&] {
    const auto v = opgraph::parse_real(number);
    number.clear();
    return v && (*v > 2000.0 || *v < -2000.0);
  };
  for (char c : token + " ") {
    if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || ((c == '-' || c == '+') && !number.empty()))
      number += c;
    else if (!number.empty() && flush())
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t sep = input.find(std::string("\n\0\n", 3), start);
    parts.push_back(input.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos || parts.size() == 4) break;
    start = sep + 3;
  }
  static const fs::path dir = fs::temp_directory_path() / ("opgraph-fuzz-cli-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> files;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    files.push_back((dir / ("f" + std::to_string(i - 1))).string());
    std::ofstream(files.back(), std::ios::binary) << parts[i];
  }
  std::vector<std::string> tokens{"opgraph"};
  std::string token;
  for (char c : parts[0] + "\n") {
    if (c != '\n') {
      token += c;
      continue;
    }
    if (token.empty()) continue;
    if (token.find('/') != std::string::npos || token.find("plugin") != std::string::npos || asks_for_long_work(token))
      return 0;
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t at; (at = token.find("@" + std::to_string(i))) != std::string::npos;)
        token.replace(at, 2, i < files.size() ? files[i] : (dir / "missing").string());
    tokens.push_back(token);
    token.clear();
    if (tokens.size() > 32) return 0;
  }
  std::vector<char*> argv;
  for (auto& t : tokens) argv.push_back(t.data());
  argv.push_back(nullptr);

  // Each run starts from the same process state.
  opgraph::set_num_threads(1);
  opgraph::set_memory_limit(std::size_t{256} << 20);
  opgraph::clear_protected_inputs();
  opgraph::cli::plugin_ops().clear();
  const fs::path here = fs::current_path();
  fs::current_path(dir);
  const int status = opgraph::cli::run(static_cast<int>(argv.size()) - 1, argv.data());
  std::fflush(stdout);
  std::clearerr(stdout);
  fs::current_path(here);
  if (status < 0 || status > 2) __builtin_trap();  // only the documented statuses
  return 0;
}
