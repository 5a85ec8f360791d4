// The exception types opgraph throws on bad input, and "did you mean" suggestions.
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace opgraph {

/// Base of every error opgraph throws on user input. The message reads
/// `<where>: <what>`; `where` (a node, op, file:line:col) may be empty.
class Error : public std::runtime_error {
 public:
  Error(std::string where, std::string what);
  explicit Error(std::string what) : Error({}, std::move(what)) {}

  /// Where it happened: `model.og:7:12`, `node 'h1'`, a file name, or empty.
  const std::string& where() const noexcept { return where_; }
  /// What went wrong, without the location.
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string where_;
  std::string detail_;
};

/// Shapes that do not fit an op's shape rule.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Malformed graphs and misuse of graphs and plans: unknown ops, arity, names, order of calls.
class GraphError : public Error {
 public:
  using Error::Error;
};

/// Syntax and meaning errors in model files and command-line specs.
class ParseError : public Error {
 public:
  using Error::Error;
};

/// Bad or unreadable data: dataset files, checkpoints, label values.
class DataError : public Error {
 public:
  using Error::Error;
};

/// A NaN or infinity found by anomaly detection (PlanOptions::detect_anomaly).
class NumericError : public Error {
 public:
  using Error::Error;
};

/// Edit distance between two names (insertions, deletions, substitutions, transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The closest of `known` to `name` when it is close enough to be a likely typo, else "".
std::string closest_name(std::string_view name, std::span<const std::string> known);

/// " (did you mean 'x'?)" when a close name exists, else " (known: a, b, c)"; for error messages.
std::string suggestion(std::string_view name, std::span<const std::string> known);

/// The length of the UTF-8 character of two to four bytes starting at text[at], or 0 when
/// none starts there: ASCII, a lone continuation byte, a truncated or overlong sequence, a
/// surrogate, a code point above U+10FFFF.
std::size_t utf8_length(std::string_view text, std::size_t at);

/// Text from a file or a user, made safe to quote in an error message: control bytes,
/// DEL and bytes that are not UTF-8 as \xNN (a binary file's bytes never reach the
/// terminal raw), valid UTF-8 kept, and text longer than `max` bytes cut at a character
/// boundary with "..." and the full length: `abc... (3000 bytes)`.
std::string printable(std::string_view text, std::size_t max = 40);

}  // namespace opgraph
