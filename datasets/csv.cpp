// CSV parsing: fields, headers, numeric cells, label columns.
#include <opgraph/datasets/csv.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/graph/error.hpp>

namespace opgraph {

namespace {

struct Field {
  std::string text;
  std::size_t column;  // 1-based character column where the field starts
};

struct Line {
  std::vector<Field> fields;
  std::size_t number;  // 1-based line number
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<Line> split_lines(std::string_view text, char delimiter, const std::string& name) {
  std::vector<Line> lines;
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (trim(raw).empty()) continue;
    Line line{{}, line_no};
    std::size_t i = 0;
    while (true) {
      const std::size_t start = i;
      std::string value;
      if (i < raw.size() && raw[i] == '"') {  // quoted field, "" for a quote
        ++i;
        bool closed = false;
        while (i < raw.size()) {
          if (raw[i] == '"') {
            if (i + 1 < raw.size() && raw[i + 1] == '"') {
              value += '"';
              i += 2;
              continue;
            }
            closed = true;
            ++i;
            break;
          }
          value += raw[i++];
        }
        if (!closed) throw DataError(fmt::format("{}:{}:{}", name, line_no, start + 1), "unterminated quoted field");
        while (i < raw.size() && raw[i] != delimiter) ++i;
      } else {
        const std::size_t next = raw.find(delimiter, i);
        const std::size_t stop = next == std::string_view::npos ? raw.size() : next;
        value = std::string(trim(raw.substr(i, stop - i)));
        i = stop;
      }
      line.fields.push_back({std::move(value), start + 1});
      if (i >= raw.size()) break;
      ++i;  // the delimiter
      if (i == raw.size()) {
        line.fields.push_back({"", i + 1});
        break;
      }
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  double v = 0.0;
  const char* first = s.data();
  if (*first == '+') ++first;
  const auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> integer(const std::string& s) {
  const auto v = number(s);
  // Whole numbers up to 2^53 (past it doubles are no longer exact; the cast would overflow).
  if (!v || *v < 0 || *v > kMaxExactInteger || *v != std::floor(*v)) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

}  // namespace

Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& options) {
  std::vector<Line> lines = split_lines(text, options.delimiter, name);
  if (lines.empty()) throw DataError(name, "empty file (no rows)");

  CsvOptions::Header header = options.header;
  const Line& first = lines.front();
  if (header == CsvOptions::Header::detect) {
    // A header has a cell that is text; an empty cell is a data error, not a header.
    const bool all_numbers = std::all_of(first.fields.begin(), first.fields.end(),
                                         [](const Field& f) { return f.text.empty() || number(f.text).has_value(); });
    if (all_numbers) {
      header = CsvOptions::Header::none;
    } else {
      const bool sklearn = first.fields.size() >= 3 && integer(first.fields[0].text) &&
                           integer(first.fields[1].text) && lines.size() > 1 &&
                           static_cast<std::int64_t>(lines[1].fields.size()) == *integer(first.fields[1].text) + 1;
      header = sklearn ? CsvOptions::Header::sklearn : CsvOptions::Header::names;
    }
  }
  std::vector<std::string> declared_classes;
  std::optional<std::int64_t> declared_samples;
  std::size_t begin = 0;
  if (header == CsvOptions::Header::sklearn) {
    if (first.fields.size() < 2 || !integer(first.fields[0].text) || !integer(first.fields[1].text))
      throw DataError(fmt::format("{}:{}", name, first.number),
                      "expected a header n_samples,n_features,class names...");
    declared_samples = *integer(first.fields[0].text);
    for (std::size_t i = 2; i < first.fields.size(); ++i) declared_classes.push_back(first.fields[i].text);
    begin = 1;
  } else if (header == CsvOptions::Header::names) {
    begin = 1;
  }
  if (begin >= lines.size()) throw DataError(name, "no rows after the header");

  const std::size_t columns = lines[begin].fields.size();
  if (columns < 2) throw DataError(fmt::format("{}:{}", name, lines[begin].number), "need at least one feature and a label");
  const int label_col = options.label_column < 0 ? static_cast<int>(columns) + options.label_column : options.label_column;
  if (label_col < 0 || label_col >= static_cast<int>(columns))
    throw DataError(name, fmt::format("label column {} out of range for {} columns", options.label_column, columns));
  const std::int64_t rows = static_cast<std::int64_t>(lines.size() - begin);
  const std::int64_t d = static_cast<std::int64_t>(columns) - 1;
  if (declared_samples && *declared_samples != rows)
    throw DataError(name, fmt::format("the header announces {} samples, the file has {}", *declared_samples, rows));

  Dataset data;
  data.name = name;
  data.features = Tensor({rows, d});
  data.labels = Tensor({rows});
  float* f = data.features.data<float>();
  std::vector<std::string> label_text(static_cast<std::size_t>(rows));
  bool numeric_labels = true;
  for (std::int64_t r = 0; r < rows; ++r) {
    const Line& line = lines[begin + static_cast<std::size_t>(r)];
    if (line.fields.size() != columns)
      throw DataError(fmt::format("{}:{}", name, line.number),
                      fmt::format("expected {} fields, got {}", columns, line.fields.size()));
    std::int64_t j = 0;
    for (std::size_t c = 0; c < columns; ++c) {
      const Field& field = line.fields[c];
      if (static_cast<int>(c) == label_col) {
        if (field.text.empty())
          throw DataError(fmt::format("{}:{}:{}", name, line.number, field.column), "empty label");
        label_text[static_cast<std::size_t>(r)] = field.text;
        if (!integer(field.text)) numeric_labels = false;
        continue;
      }
      const auto v = number(field.text);
      if (!v)
        throw DataError(fmt::format("{}:{}:{}", name, line.number, field.column),
                        field.text.empty() ? std::string("empty cell, expected a number")
                                           : fmt::format("not a number: '{}'", field.text));
      f[r * d + j++] = static_cast<float>(*v);
    }
  }
  float* l = data.labels.data<float>();
  if (numeric_labels) {
    for (std::int64_t r = 0; r < rows; ++r) l[r] = static_cast<float>(*integer(label_text[static_cast<std::size_t>(r)]));
    data.class_names = declared_classes;
    const std::int64_t classes = data.num_classes();
    if (!declared_classes.empty() && classes > static_cast<std::int64_t>(declared_classes.size()))
      throw DataError(name, fmt::format("label {} but the header names {} classes", classes - 1, declared_classes.size()));
  } else {
    const std::set<std::string> names(label_text.begin(), label_text.end());
    data.class_names.assign(names.begin(), names.end());
    std::map<std::string, float> index;
    for (std::size_t i = 0; i < data.class_names.size(); ++i) index[data.class_names[i]] = static_cast<float>(i);
    for (std::int64_t r = 0; r < rows; ++r) l[r] = index[label_text[static_cast<std::size_t>(r)]];
  }
  return data;
}

Dataset read_csv(const std::string& path, const CsvOptions& options) {
  return parse_csv(read_file(path), path, options);
}

}  // namespace opgraph
