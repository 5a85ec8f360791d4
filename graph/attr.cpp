// AttrValue conversions and printing.
#include <opgraph/graph/attr.hpp>

#include <cctype>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>

namespace opgraph {

std::string_view to_string(AttrType type) {
  switch (type) {
    case AttrType::none: return "none";
    case AttrType::integer: return "int";
    case AttrType::real: return "float";
    case AttrType::string: return "string";
    case AttrType::boolean: return "bool";
    case AttrType::int_list: return "int list";
    case AttrType::real_list: return "float list";
  }
  return "?";
}

const IntList& AttrValue::as_ints() const {
  if (auto* l = std::get_if<IntList>(&v_)) return *l;
  if (auto* i = std::get_if<std::int64_t>(&v_)) {
    single_ = {*i};
    return single_;
  }
  throw GraphError(fmt::format("attribute value {} is not a list of ints", str()));
}

RealList AttrValue::as_reals() const {
  if (auto* l = std::get_if<RealList>(&v_)) return *l;
  if (auto* l = std::get_if<IntList>(&v_)) return RealList(l->begin(), l->end());
  if (type() == AttrType::integer || type() == AttrType::real) return {as_float()};
  throw GraphError(fmt::format("attribute value {} is not a list of floats", str()));
}

std::int64_t AttrValue::as_int() const {
  if (auto* i = std::get_if<std::int64_t>(&v_)) return *i;
  throw GraphError(fmt::format("attribute value {} is not an int", str()));
}

double AttrValue::as_float() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  throw GraphError(fmt::format("attribute value {} is not a float", str()));
}

const std::string& AttrValue::as_string() const {
  if (auto* s = std::get_if<std::string>(&v_)) return *s;
  throw GraphError(fmt::format("attribute value {} is not a string", str()));
}

bool AttrValue::as_bool() const {
  if (auto* b = std::get_if<bool>(&v_)) return *b;
  throw GraphError(fmt::format("attribute value {} is not a bool", str()));
}

std::string AttrValue::str() const {
  switch (type()) {
    case AttrType::none: return "none";
    case AttrType::integer: return std::to_string(std::get<std::int64_t>(v_));
    case AttrType::real: {
      // Shortest text that reads back to the same double, always with a '.' or exponent
      // so that it reads back as a float, not an int.
      std::string s = fmt::format("{}", std::get<double>(v_));
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case AttrType::boolean: return std::get<bool>(v_) ? "true" : "false";
    case AttrType::int_list: return fmt::format("[{}]", fmt::join(std::get<IntList>(v_), ", "));
    case AttrType::real_list: {
      std::vector<std::string> items;
      for (double d : std::get<RealList>(v_)) items.push_back(AttrValue(d).str());
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
    case AttrType::string: {
      const auto& s = std::get<std::string>(v_);
      bool bare = !s.empty() && (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_');
      for (char c : s) bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (s == "true" || s == "false" || s == "none") bare = false;
      if (bare) return s;
      std::string quoted = "\"";
      for (char c : s) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
      }
      return quoted + "\"";
    }
  }
  return "?";
}

}  // namespace opgraph
