// Validators for the tests: is a text well-formed XML (for SVG files), and a small JSON
// reader (for --json output and dumps). Fresh machines have no Python to do this.
#pragma once

#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace opgraph::test {

/// "" when `text` is well-formed XML (one root element, balanced tags, quoted
/// attributes, known entities); otherwise what is wrong and where.
inline std::string xml_problem(const std::string& text) {
  std::size_t i = 0;
  std::vector<std::string> open;
  int roots = 0;
  auto err = [&](const std::string& what) { return what + " at byte " + std::to_string(i); };
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.'; };
  auto entity = [&]() -> bool {  // at '&'
    const std::size_t semi = text.find(';', i);
    if (semi == std::string::npos || semi - i > 10) return false;
    const std::string e = text.substr(i + 1, semi - i - 1);
    const bool ok = e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" ||
                    (e.size() > 1 && e[0] == '#' && e.find_first_not_of("0123456789", 1) == std::string::npos);
    i = semi + 1;
    return ok;
  };
  while (i < text.size()) {
    if (text[i] != '<') {
      if (text[i] == '&') {
        if (!entity()) return err("bad entity");
        continue;
      }
      if (open.empty() && !std::isspace(static_cast<unsigned char>(text[i]))) return err("text outside the root");
      ++i;
      continue;
    }
    if (text.compare(i, 5, "<?xml") == 0) {
      const auto end = text.find("?>", i);
      if (end == std::string::npos) return err("unterminated declaration");
      i = end + 2;
      continue;
    }
    if (text.compare(i, 4, "<!--") == 0) {
      const auto end = text.find("-->", i);
      if (end == std::string::npos) return err("unterminated comment");
      i = end + 3;
      continue;
    }
    const bool closing = i + 1 < text.size() && text[i + 1] == '/';
    i += closing ? 2 : 1;
    const std::size_t start = i;
    while (i < text.size() && name_char(text[i])) ++i;
    const std::string name = text.substr(start, i - start);
    if (name.empty()) return err("empty tag name");
    if (closing) {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= text.size() || text[i] != '>') return err("bad closing tag");
      ++i;
      if (open.empty() || open.back() != name) return err("</" + name + "> does not close <" + (open.empty() ? "" : open.back()) + ">");
      open.pop_back();
      continue;
    }
    for (;;) {  // attributes
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= text.size()) return err("unterminated tag");
      if (text[i] == '>' || text.compare(i, 2, "/>") == 0) break;
      const std::size_t a = i;
      while (i < text.size() && name_char(text[i])) ++i;
      if (i == a) return err("bad attribute name");
      if (i >= text.size() || text[i] != '=') return err("attribute without value");
      ++i;
      if (i >= text.size() || (text[i] != '"' && text[i] != '\'')) return err("unquoted attribute");
      const char q = text[i++];
      while (i < text.size() && text[i] != q) {
        if (text[i] == '<') return err("'<' in an attribute");
        if (text[i] == '&') {
          if (!entity()) return err("bad entity in an attribute");
        } else {
          ++i;
        }
      }
      if (i >= text.size()) return err("unterminated attribute");
      ++i;
    }
    if (open.empty()) ++roots;
    if (text.compare(i, 2, "/>") == 0) {
      i += 2;
    } else {
      ++i;
      open.push_back(name);
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (roots != 1) return "expected one root element, found " + std::to_string(roots);
  return "";
}

/// A parsed JSON value.
struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> items;
  std::map<std::string, Json> fields;
  const Json& operator[](const std::string& key) const {
    static const Json none;
    const auto it = fields.find(key);
    return it == fields.end() ? none : it->second;
  }
  bool has(const std::string& key) const { return fields.count(key) > 0; }
};

/// Parses JSON; sets `error` (and returns null) when the text is not valid JSON.
inline Json parse_json(const std::string& text, std::string& error) {
  std::size_t i = 0;
  auto ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  std::function<Json()> value;
  auto fail = [&](const std::string& what) {
    if (error.empty()) error = what + " at byte " + std::to_string(i);
    return Json{};
  };
  auto string = [&]() -> std::string {
    std::string s;
    ++i;
    while (i < text.size() && text[i] != '"') {
      if (text[i] == '\\') {
        ++i;
        if (i < text.size() && text[i] == 'u') i += 4;
        else if (i < text.size()) s += text[i] == 'n' ? '\n' : text[i] == 't' ? '\t' : text[i];
        ++i;
        continue;
      }
      if (static_cast<unsigned char>(text[i]) < 0x20) {
        fail("control character in a string");
        return s;
      }
      s += text[i++];
    }
    if (i >= text.size()) fail("unterminated string");
    ++i;
    return s;
  };
  value = [&]() -> Json {
    ws();
    if (i >= text.size()) return fail("unexpected end");
    Json j;
    const char c = text[i];
    if (c == '{') {
      j.kind = Json::Kind::object;
      ++i;
      ws();
      if (i < text.size() && text[i] == '}') return ++i, j;
      for (;;) {
        ws();
        if (i >= text.size() || text[i] != '"') return fail("expected a key");
        const std::string key = string();
        ws();
        if (i >= text.size() || text[i] != ':') return fail("expected ':'");
        ++i;
        j.fields[key] = value();
        ws();
        if (i < text.size() && text[i] == ',') {
          ++i;
          continue;
        }
        if (i < text.size() && text[i] == '}') return ++i, j;
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      j.kind = Json::Kind::array;
      ++i;
      ws();
      if (i < text.size() && text[i] == ']') return ++i, j;
      for (;;) {
        j.items.push_back(value());
        ws();
        if (i < text.size() && text[i] == ',') {
          ++i;
          continue;
        }
        if (i < text.size() && text[i] == ']') return ++i, j;
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      j.kind = Json::Kind::string;
      j.string = string();
      return j;
    }
    if (text.compare(i, 4, "true") == 0) return i += 4, j.kind = Json::Kind::boolean, j.boolean = true, j;
    if (text.compare(i, 5, "false") == 0) return i += 5, j.kind = Json::Kind::boolean, j;
    if (text.compare(i, 4, "null") == 0) return i += 4, j;
    std::size_t used = 0;
    try {
      j.number = std::stod(text.substr(i, 40), &used);
    } catch (...) {
      return fail("expected a value");
    }
    i += used;
    j.kind = Json::Kind::number;
    return j;
  };
  Json root = value();
  ws();
  if (error.empty() && i != text.size()) fail("trailing text");
  return error.empty() ? root : Json{};
}

}  // namespace opgraph::test
