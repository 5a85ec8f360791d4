// Command-line parsing for the subcommands: --name value, --name=value, flags.
#include "cli.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/spec.hpp>

namespace opgraph::cli {

Args::Args(std::string command, int argc, char** argv, int first, const std::vector<Option>& options)
    : command_(std::move(command)) {
  std::vector<std::string> names;
  for (const auto& o : options) names.push_back("--" + o.name);
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || a == "--") {
      if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.')))
        fail(fmt::format("unknown option '{}'{}", a, suggestion(a, names)));
      positional_.push_back(a);
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    const auto it = std::find_if(options.begin(), options.end(), [&](const Option& o) { return "--" + o.name == a; });
    if (it == options.end()) fail(fmt::format("unknown option '{}'{}", a, suggestion(a, names)));
    if (it->value.empty()) {
      if (inline_value) fail(fmt::format("{} takes no value", a));
    } else if (!inline_value) {
      if (i + 1 >= argc) fail(fmt::format("{} needs a value ({})", a, it->value));
      value = argv[++i];
    }
    if (!it->repeatable && values_.count(it->name)) fail(fmt::format("{} given twice", a));
    values_[it->name].push_back(value);
  }
}

void Args::fail(const std::string& what) const { throw UsageError(fmt::format("opgraph {}: {}", command_, what)); }

std::string Args::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

const std::vector<std::string>& Args::all(const std::string& name) const {
  static const std::vector<std::string> none;
  const auto it = values_.find(name);
  return it == values_.end() ? none : it->second;
}

std::int64_t Args::integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  if (!has(name)) return fallback;
  const std::string t = get(name);
  const auto v = parse_integer(t);
  if (!v || *v < min || *v > max) fail(fmt::format("--{}: expected a whole number {}, got '{}'", name, range_text(min, max), t));
  return *v;
}

double Args::fraction(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string t = get(name);
  const auto v = parse_real(t);
  if (!v || !(*v > 0 && *v < 1)) fail(fmt::format("--{}: expected a fraction between 0 and 1, got '{}'", name, t));
  return *v;
}

double Args::real(const std::string& name, double fallback, double min) const {
  if (!has(name)) return fallback;
  const std::string t = get(name);
  const auto v = parse_real(t);
  if (!v || *v < min) fail(fmt::format("--{}: expected a number >= {}, got '{}'", name, min, t));
  return *v;
}

std::optional<std::size_t> Args::bytes(const std::string& name) const {
  if (!has(name)) return std::nullopt;
  const std::string t = get(name);
  if (t == "none") return std::size_t{0};
  const auto v = parse_size(t);
  if (!v || *v < 1) fail(fmt::format("--{}: expected a size of at least 1 byte such as 512M or 2G (or none), got '{}'", name, t));
  return static_cast<std::size_t>(*v);
}

std::string Args::one_positional(const std::string& what) const {
  if (positional_.empty()) fail(fmt::format("missing {} (see opgraph {} --help)", what, command_));
  if (positional_.size() > 1) fail(fmt::format("unexpected argument '{}'", positional_[1]));
  return positional_[0];
}

std::string help_text(const std::string& usage, const std::string& about, const std::vector<Option>& options) {
  std::string s = "usage: " + usage + "\n\n" + about + "\n\noptions:\n";
  for (const auto& o : options) {
    const std::string flag = "--" + o.name + (o.value.empty() ? "" : " " + o.value);
    s += fmt::format("  {:<24} {}\n", flag, o.help);
  }
  s += fmt::format("  {:<24} {}\n", "--plugin FILE.so", "load ops from a plugin first (repeatable)");
  s += fmt::format("  {:<24} {}\n", "--help", "show this help");
  return s;
}

}  // namespace opgraph::cli
