// Numbers and specs written by people: whole numbers, reals, sizes, and the
// "name:key=value,..." specs of optimizers and data sources. One parser for all of them,
// so that ranges, units, duplicate keys and "did you mean" work the same everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace opgraph {

/// A whole number: digits with an optional sign, or a real that is exactly whole
/// ("1e6", "2.0"); nothing else ("0.5", "0x10", "5 ", "nan" are refused). Values beyond
/// +-2^53 are refused unless written as plain digits that fit 64 bits.
std::optional<std::int64_t> parse_integer(std::string_view text);
/// A finite real: "0.5", "1e-3", "-2", or a fraction "1/255".
std::optional<double> parse_real(std::string_view text);
/// A byte count: a number and an optional unit B, K, M, G, T (powers of 1024; KB, KiB,
/// MB, ... read the same), rounded down to whole bytes: "512M", "1.5G", "100000".
std::optional<std::uint64_t> parse_size(std::string_view text);

/// "from 1 to 2147483647", ">= 0", "<= 10", "any" for error messages.
std::string range_text(std::int64_t lo, std::int64_t hi);

/// A spec "name:key=value,key=value". Keys are checked against the ones the reader
/// declares; duplicates and unknown keys are errors; values are read with types and
/// ranges. Errors are ParseError located at `<kind> '<spec>'`, e.g.
///   optimizer 'sgd:momentum=0.9': unknown key 'momentum' for sgd (...)
class Spec {
 public:
  /// Parses `text` ("name" alone is fine). Throws ParseError for an empty name, an item
  /// without '=', or a key given twice.
  Spec(std::string_view text, std::string kind);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  bool has(std::string_view key) const { return values_.count(std::string(key)) > 0; }
  /// The keys given, in the order written.
  const std::vector<std::string>& keys() const { return order_; }

  /// Refuses any key not in `known`: "unknown key 'x' for NAME (did you mean 'y'?)".
  /// `hint(key)`, when it returns text, replaces the parenthesis (e.g. "did you mean the
  /// momentum optimizer?" for a key another optimizer takes).
  void allow(const std::vector<std::string>& known,
             const std::function<std::string(const std::string&)>& hint = {}) const;

  std::string string(std::string_view key, std::string fallback = {}) const;
  /// One of `choices`.
  std::string choice(std::string_view key, std::string fallback, const std::vector<std::string>& choices) const;
  /// A whole number in [lo, hi].
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const;
  /// A real in [lo, hi] (open at an end when `open_lo` / `open_hi`).
  double real(std::string_view key, double fallback, double lo, double hi, bool open_lo = false,
              bool open_hi = false) const;
  /// true/false, yes/no, 1/0; a bare key means true.
  bool flag(std::string_view key, bool fallback) const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string kind_, text_, name_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> order_;
};

}  // namespace opgraph
