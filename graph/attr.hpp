// Op attributes: typed values with defaults, as declared by ops and given by graphs.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace opgraph {

enum class AttrType : std::uint8_t { none, integer, real, string, boolean, int_list, real_list };

using IntList = std::vector<std::int64_t>;
using RealList = std::vector<double>;

std::string_view to_string(AttrType type);

/// One attribute value: nothing, an integer, a real, a string, a bool, or a list of
/// integers or of reals (`kernel=[3, 3]`, `sizes=[3, 5]`, `scale=[0.5, 2.0]`).
class AttrValue {
 public:
  AttrValue() = default;
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  AttrValue(I v) : v_(static_cast<std::int64_t>(v)) {}
  template <std::floating_point F>
  AttrValue(F v) : v_(static_cast<double>(v)) {}
  AttrValue(bool v) : v_(v) {}
  AttrValue(const char* v) : v_(std::string(v)) {}
  AttrValue(std::string v) : v_(std::move(v)) {}
  AttrValue(std::string_view v) : v_(std::string(v)) {}
  AttrValue(IntList v) : v_(std::move(v)) {}
  AttrValue(RealList v) : v_(std::move(v)) {}

  AttrType type() const { return static_cast<AttrType>(v_.index()); }
  bool is_none() const { return v_.index() == 0; }
  std::int64_t as_int() const;
  /// The value as a real; integers convert.
  double as_float() const;
  const std::string& as_string() const;
  bool as_bool() const;
  /// The list; an int list reads as reals too, a single int as a list of one.
  const IntList& as_ints() const;
  RealList as_reals() const;
  /// As written in a model file: `3`, `0.5`, `true`, `mean`, `"two words"`, `none`.
  std::string str() const;

  bool operator==(const AttrValue& o) const { return v_ == o.v_; }

 private:
  std::variant<std::monostate, std::int64_t, double, std::string, bool, IntList, RealList> v_;
  mutable IntList single_;  // as_ints() of a single int
};

/// An attribute an op declares: its name, type, default, (for enumerations) allowed
/// values, and an optional check of the value given ("" when fine, else what is wrong,
/// e.g. "must be positive").
struct AttrSpec {
  std::string name;
  AttrType type = AttrType::real;
  AttrValue default_value;  // none: optional, absent means "not given" (e.g. sum over all axes)
  std::vector<std::string> choices;
  std::string doc;
  /// An int-list attribute with a check may also take words the check accepts
  /// (conv2d's padding=same).
  std::function<std::string(const AttrValue&)> check = {};
};

/// Attributes as a graph gives them: name = value pairs, in any order.
using Attrs = std::vector<std::pair<std::string, AttrValue>>;

}  // namespace opgraph
