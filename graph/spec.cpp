// Parsing numbers, sizes and specs.
#include <opgraph/graph/spec.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

namespace {
std::optional<double> plain_real(std::string_view t) {
  if (t.empty()) return std::nullopt;
  const char* first = t.data();
  if (*first == '+') ++first;
  // from_chars takes "inf", "nan" and hex floats with the right format; people's
  // numbers are none of those.
  for (const char* p = first; p != t.data() + t.size(); ++p)
    if (!(std::isdigit(static_cast<unsigned char>(*p)) || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' || *p == '+'))
      return std::nullopt;
  double v = 0;
  const auto [p, ec] = std::from_chars(first, t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}
}  // namespace

std::optional<std::int64_t> parse_integer(std::string_view t) {
  if (t.empty()) return std::nullopt;
  std::int64_t v = 0;
  const char* first = t.data() + (t[0] == '+' ? 1 : 0);
  if (auto [p, ec] = std::from_chars(first, t.data() + t.size(), v); ec == std::errc() && p == t.data() + t.size())
    return v;
  const auto r = plain_real(t);
  if (!r || *r != std::floor(*r) || std::fabs(*r) > kMaxExactInteger) return std::nullopt;
  return static_cast<std::int64_t>(*r);
}

std::optional<double> parse_real(std::string_view t) {
  const auto slash = t.find('/');
  if (slash == std::string_view::npos) return plain_real(t);
  const auto num = plain_real(t.substr(0, slash)), den = plain_real(t.substr(slash + 1));
  if (!num || !den || *den == 0) return std::nullopt;
  const double v = *num / *den;
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view t) {
  std::size_t digits = 0;
  while (digits < t.size() && (std::isdigit(static_cast<unsigned char>(t[digits])) || t[digits] == '.' ||
                               ((t[digits] == 'e' || t[digits] == 'E') && digits > 0 && digits + 1 < t.size() &&
                                std::isdigit(static_cast<unsigned char>(t[digits + 1])))))
    ++digits;
  const auto v = plain_real(t.substr(0, digits));
  std::string unit(t.substr(digits));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") scale = 0x1p10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") scale = 0x1p20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") scale = 0x1p30;
  else if (unit == "T" || unit == "TB" || unit == "TIB") scale = 0x1p40;
  if (!v || scale == 0 || *v < 0 || *v * scale >= 0x1p62) return std::nullopt;
  return static_cast<std::uint64_t>(std::floor(*v * scale));
}

std::string range_text(std::int64_t lo, std::int64_t hi) {
  constexpr auto min = std::numeric_limits<std::int64_t>::min(), max = std::numeric_limits<std::int64_t>::max();
  if (lo == min && hi == max) return "any";
  if (hi == max) return fmt::format(">= {}", lo);
  if (lo == min) return fmt::format("<= {}", hi);
  return fmt::format("from {} to {}", lo, hi);
}

Spec::Spec(std::string_view text, std::string kind) : kind_(std::move(kind)), text_(text) {
  const std::size_t colon = text.find(':');
  name_ = std::string(text.substr(0, colon));
  if (name_.empty()) fail("expected a name before ':'");
  if (colon == std::string_view::npos) return;
  std::string_view rest = text.substr(colon + 1);
  if (rest.empty()) fail(fmt::format("nothing after '{}:': drop the ':' or add key=value", name_));
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    if (item.empty()) fail("an empty item between commas");
    const std::size_t eq = item.find('=');
    std::string key(item.substr(0, eq));
    if (key.empty()) fail(fmt::format("'{}' has no key before '='", item));
    if (values_.count(key)) fail(fmt::format("key '{}' given twice", key));
    values_[key] = eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
    if (eq == std::string_view::npos) values_[key] = "\x01";  // a bare key: only flags take it
    order_.push_back(std::move(key));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
}

void Spec::fail(const std::string& what) const { throw ParseError(fmt::format("{} '{}'", kind_, text_), what); }

void Spec::allow(const std::vector<std::string>& known, const std::function<std::string(const std::string&)>& hint) const {
  for (const auto& key : order_) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string near = closest_name(key, known);
    std::string why = hint ? hint(key) : std::string();
    if (why.empty())
      why = near.empty() ? (known.empty() ? "it takes none" : fmt::format("it takes {}", fmt::join(known, ", ")))
                         : fmt::format("did you mean '{}'?", near);
    fail(fmt::format("unknown key '{}' for {} ({})", key, name_, why));
  }
}

std::string Spec::string(std::string_view key, std::string fallback) const {
  const auto it = values_.find(std::string(key));
  if (it == values_.end()) return fallback;
  if (it->second == "\x01") fail(fmt::format("{} needs a value ({}=...)", key, key));
  return it->second;
}

std::string Spec::choice(std::string_view key, std::string fallback, const std::vector<std::string>& choices) const {
  const std::string v = string(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) == choices.end())
    fail(fmt::format("{}: expected {}, got '{}'{}", key, fmt::join(choices, ", "), v,
                     closest_name(v, choices).empty() ? "" : fmt::format(" (did you mean '{}'?)", closest_name(v, choices))));
  return v;
}

std::int64_t Spec::integer(std::string_view key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const {
  if (!has(key)) return fallback;
  const std::string t = string(key);
  const auto v = parse_integer(t);
  if (!v || *v < lo || *v > hi) fail(fmt::format("{}: expected a whole number {}, got '{}'", key, range_text(lo, hi), t));
  return *v;
}

double Spec::real(std::string_view key, double fallback, double lo, double hi, bool open_lo, bool open_hi) const {
  if (!has(key)) return fallback;
  const std::string t = string(key);
  const auto v = parse_real(t);
  if (!v) fail(fmt::format("{}: '{}' is not a number", key, t));
  const bool below = open_lo ? *v <= lo : *v < lo, above = open_hi ? *v >= hi : *v > hi;
  if (below || above) {
    std::string range;
    const bool has_lo = lo > -std::numeric_limits<double>::max(), has_hi = hi < std::numeric_limits<double>::max();
    if (has_lo && has_hi) range = fmt::format("in {}{}, {}{}", open_lo ? "(" : "[", lo, hi, open_hi ? ")" : "]");
    else if (has_lo && lo == 0) range = open_lo ? "positive" : "zero or more";
    else if (has_lo) range = open_lo ? fmt::format("above {}", lo) : fmt::format("at least {}", lo);
    else range = open_hi ? fmt::format("below {}", hi) : fmt::format("at most {}", hi);
    fail(fmt::format("{} must be {}, got {}", key, range, t));
  }
  return *v;
}

bool Spec::flag(std::string_view key, bool fallback) const {
  const auto it = values_.find(std::string(key));
  if (it == values_.end()) return fallback;
  const std::string& t = it->second;
  if (t == "\x01" || t == "true" || t == "1" || t == "yes") return true;
  if (t == "false" || t == "0" || t == "no") return false;
  fail(fmt::format("{}: expected true or false, got '{}'", key, t));
}

}  // namespace opgraph
