// A small JSON writer for machine-readable output (--json, dumps).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace opgraph::json {

/// A JSON string literal with escapes.
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<int>(c));
        else out += c;
    }
  }
  return out + "\"";
}

/// A number; NaN and infinities become null (JSON has no literal for them).
inline std::string number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

/// Builds one object: {"a":1,"b":"x"}; values given as JSON text.
class Object {
 public:
  Object& raw(std::string_view key, std::string_view json_value) {
    if (!body_.empty()) body_ += ',';
    body_ += quote(key);
    body_ += ':';
    body_.append(json_value);
    return *this;
  }
  Object& add(std::string_view key, std::string_view value) { return raw(key, quote(value)); }
  Object& add(std::string_view key, const char* value) { return raw(key, quote(value)); }
  Object& add(std::string_view key, const std::string& value) { return raw(key, quote(value)); }
  Object& add(std::string_view key, double value) { return raw(key, number(value)); }
  Object& add(std::string_view key, std::int64_t value) { return raw(key, std::to_string(value)); }
  Object& add(std::string_view key, int value) { return raw(key, std::to_string(value)); }
  Object& add(std::string_view key, bool value) { return raw(key, value ? "true" : "false"); }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

/// A JSON array from already-encoded items.
template <class Range>
std::string array(const Range& items) {
  std::string out = "[";
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    out.append(std::string_view(item));
    first = false;
  }
  return out + "]";
}

}  // namespace opgraph::json
