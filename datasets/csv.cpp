// CSV parsing: RFC 4180 records, header detection, numeric cells, label columns.
#include <opgraph/datasets/csv.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/graph/error.hpp>

namespace opgraph {

namespace {

/// A separator as messages name it: "commas", "tabs", "';'" (plural), or as the data
/// spec's sep= key takes it ("comma", "tab", "semicolon").
std::string separator_name(char sep, bool plural) {
  switch (sep) {
    case ',': return plural ? "commas" : "comma";
    case '\t': return plural ? "tabs" : "tab";
    case ';': return plural ? "';'" : "semicolon";
    case '|': return plural ? "'|'" : "pipe";
    default: return fmt::format("'{}'", sep);
  }
}

struct Field {
  std::string text;
  std::size_t line;    // 1-based line where the field starts
  std::size_t column;  // 1-based character column where the field starts
};

/// Splits text into records of fields (RFC 4180: quoted fields may hold the delimiter,
/// line breaks and "" for a quote). Blank lines are skipped; unquoted fields are trimmed.
class Records {
 public:
  Records(std::string_view text, char delimiter, const std::string& name)
      : text_(text), delimiter_(delimiter), name_(name) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // UTF-8 byte-order mark
  }

  /// The next record, or false at the end.
  bool next(std::vector<Field>& fields) {
    fields.clear();
    for (;;) {
      if (pos_ >= text_.size()) return false;
      // Skip a blank line.
      std::size_t p = pos_;
      while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t' || text_[p] == '\r')) ++p;
      if (p < text_.size() && text_[p] == '\n') {
        pos_ = p + 1;
        ++line_;
        line_start_ = pos_;
        continue;
      }
      if (p >= text_.size()) return false;
      break;
    }
    for (;;) {
      Field f{{}, line_, pos_ - line_start_ + 1};
      std::size_t p = pos_;
      while (p < text_.size() && pad(text_[p])) ++p;
      if (p < text_.size() && text_[p] == '"') {
        f.column = p - line_start_ + 1;
        ++p;
        for (;;) {
          if (p >= text_.size())
            throw DataError(fmt::format("{}:{}:{}", name_, f.line, f.column), "unterminated quoted field");
          const char c = text_[p];
          if (c == '"') {
            if (p + 1 < text_.size() && text_[p + 1] == '"') {
              f.text += '"';
              p += 2;
              continue;
            }
            ++p;
            break;
          }
          if (c == '\n') {
            ++line_;
            line_start_ = p + 1;
          }
          f.text += c;
          ++p;
        }
        while (p < text_.size() && (pad(text_[p]) || text_[p] == '\r')) ++p;
        if (p < text_.size() && text_[p] != delimiter_ && text_[p] != '\n')
          throw DataError(fmt::format("{}:{}:{}", name_, line_, p - line_start_ + 1),
                          fmt::format("unexpected '{}' after a closing quote", printable(text_.substr(p, std::max<std::size_t>(1, utf8_length(text_, p))))));
      } else {
        std::size_t end = p;
        while (end < text_.size() && text_[end] != delimiter_ && text_[end] != '\n') ++end;
        std::string_view raw = text_.substr(p, end - p);
        while (!raw.empty() && (pad(raw.back()) || raw.back() == '\r')) raw.remove_suffix(1);
        f.column = p - line_start_ + 1;
        f.text = std::string(raw);
        p = end;
      }
      fields.push_back(std::move(f));
      if (p >= text_.size()) {
        pos_ = p;
        return true;
      }
      if (text_[p] == '\n') {
        pos_ = p + 1;
        ++line_;
        line_start_ = pos_;
        return true;
      }
      pos_ = p + 1;  // the delimiter; a field follows, possibly empty
    }
  }

 private:
  /// Spaces and tabs around a field, unless they are the delimiter (a tab-separated file's
  /// empty field stays a field).
  bool pad(char c) const { return (c == ' ' || c == '\t') && c != delimiter_; }

  std::string_view text_;
  char delimiter_;
  const std::string& name_;
  std::size_t pos_ = 0, line_ = 1, line_start_ = 0;
};

/// A finite number in plain decimal notation ("5", "-0.25", "1e-3"); nothing else:
/// "nan", "inf", "0x10", "5 .1", "5,1" are not numbers.
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
      return std::nullopt;
  double v = 0.0;
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  const auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<std::int64_t> integer(const std::string& s) {
  const auto v = number(s);
  // Whole numbers up to 2^53 (past it doubles are no longer exact; the cast would overflow).
  if (!v || *v < 0 || *v > kMaxExactInteger || *v != std::floor(*v)) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

/// A cell someone meant as a number (it starts like one), even if it is malformed:
/// "5,1", "0x10", "5 .1", "-3abc". A header cell is a name, never like this.
bool looks_numeric(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') ++i;
  return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]));
}

bool is_data_row(const std::vector<Field>& row, int label_col) {
  for (std::size_t c = 0; c < row.size(); ++c) {
    if (static_cast<int>(c) == label_col) continue;
    if (!number(row[c].text)) return false;
  }
  return true;
}

/// A row that reads as column names: no empty cell, no malformed number, and at least
/// one name (numbers are allowed, e.g. a heading "0" for a label column).
bool is_name_row(const std::vector<Field>& row) {
  bool any_name = false;
  for (const Field& f : row) {
    if (f.text.empty()) return false;
    if (number(f.text)) continue;
    if (looks_numeric(f.text)) return false;
    any_name = true;
  }
  return any_name;
}

/// The columns a header leaves out because it does not name them: a first column with no
/// name (the row index that pandas' to_csv and R's write.csv write before the data) and
/// the unnamed columns at the end (a spreadsheet's trailing commas), which must then be
/// empty in every row.
struct Unnamed {
  bool index = false;        // the first column is a row index
  std::size_t trailing = 0;  // this many last columns are empty
  bool any() const { return index || trailing > 0; }
};
Unnamed unnamed_columns(const std::vector<Field>& header) {
  Unnamed u;
  while (u.trailing < header.size() && header[header.size() - 1 - u.trailing].text.empty()) ++u.trailing;
  u.index = u.trailing < header.size() && header[0].text.empty();
  return u;
}

/// A header with unnamed columns (Unnamed): between them, at least two names (a feature and
/// a label) and nothing else, no gap and no number. A data row with missing values has
/// numbers beside its gaps, or at most one name (its label).
bool is_gapped_name_row(const std::vector<Field>& row) {
  const Unnamed u = unnamed_columns(row);
  const std::size_t begin = u.index ? 1 : 0;
  if (!u.any() || begin + u.trailing + 2 > row.size()) return false;
  for (std::size_t c = begin; c + u.trailing < row.size(); ++c)
    if (row[c].text.empty() || looks_numeric(row[c].text)) return false;
  return true;
}

/// A row of the header's length without the columns `u` leaves out.
std::vector<Field> without_unnamed(const std::vector<Field>& row, const Unnamed& u) {
  return std::vector<Field>(row.begin() + (u.index ? 1 : 0), row.end() - static_cast<std::ptrdiff_t>(u.trailing));
}

int resolve_label(int label_column, std::size_t columns) {
  return label_column < 0 ? static_cast<int>(columns) + label_column : label_column;
}
/// The label's column in a row of `columns` fields, or -1 when the data has none.
int label_of(const CsvOptions& options, std::size_t columns) {
  return options.labelled ? resolve_label(options.label_column, columns) : -1;
}

}  // namespace

Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& options) {
  Records records(text, options.delimiter, name);
  std::vector<Field> first, row;
  if (!records.next(first)) throw DataError(name, "empty file (no rows)");
  if (!options.label_name.empty()) {
    // label=NAME: the first row is the header, the label the column it names (counted
    // without the columns left unnamed, as label= counts them).
    if (options.header == CsvOptions::Header::none || options.header == CsvOptions::Header::sklearn)
      throw DataError(name, fmt::format("label={} names a column, and header={} says the file has no row of names: "
                                        "give the label's column number (label=-1 for the last)",
                                        options.label_name, options.header == CsvOptions::Header::none ? "no" : "sklearn"));
    const std::vector<Field> named = without_unnamed(first, unnamed_columns(first));
    std::vector<std::string> names;
    int at = -1;
    for (std::size_t c = 0; c < named.size(); ++c) {
      names.push_back(printable(named[c].text));
      if (named[c].text != options.label_name) continue;
      if (at >= 0)
        throw DataError(fmt::format("{}:{}", name, first[0].line),
                        fmt::format("two columns are named '{}' (columns {} and {} of the header): give the label's "
                                    "column number",
                                    printable(options.label_name), at + 1, c + 1));
      at = static_cast<int>(c);
    }
    if (at < 0) {
      std::string shown = fmt::format("{}", fmt::join(names, ", "));
      if (shown.size() > 200) shown = shown.substr(0, 197) + "...";
      throw DataError(fmt::format("{}:{}", name, first[0].line),
                      fmt::format("no column is named '{}': the first row names {}", printable(options.label_name), shown));
    }
    CsvOptions by_number = options;
    by_number.label_name.clear();
    by_number.label_column = at;
    by_number.header = CsvOptions::Header::names;
    return parse_csv(text, name, by_number);
  }
  const bool has_second = records.next(row);

  CsvOptions::Header header = options.header;
  if (header == CsvOptions::Header::detect) {
    const int label_col = label_of(options, first.size());
    const bool sklearn = options.labelled && first.size() >= 3 && integer(first[0].text) && integer(first[1].text) && has_second &&
                         static_cast<std::int64_t>(row.size()) == *integer(first[1].text) + 1;
    if (sklearn) header = CsvOptions::Header::sklearn;
    else if (is_data_row(first, label_col)) header = CsvOptions::Header::none;
    // A header only when the first row cannot be data, reads as names, and the second row
    // is data: a malformed number in the first row is an error, never a header.
    else if (is_name_row(first) && has_second && is_data_row(row, label_of(options, row.size())))
      header = CsvOptions::Header::names;
    // Names over a row of numbers with a bad cell (text in a feature column, "?" for a
    // missing value): the header still, so that the error is that cell's, under its name
    // (it had been the first heading's, "not a number: 'age'"). Nothing is dropped: the
    // row with the bad cell stops the reading either way.
    else if (is_name_row(first) && has_second &&
             std::any_of(row.begin(), row.end(), [](const Field& f) { return number(f.text).has_value(); }))
      header = CsvOptions::Header::names;
    else if (is_gapped_name_row(first) && has_second) {
      // Unnamed columns: the second row, without them, must be data (a value under an
      // unnamed trailing column is then an error at its cell).
      header = CsvOptions::Header::none;
      if (row.size() == first.size()) {
        const std::vector<Field> kept = without_unnamed(row, unnamed_columns(first));
        if (is_data_row(kept, label_of(options, kept.size()))) header = CsvOptions::Header::names;
      }
    } else if ((is_name_row(first) || is_gapped_name_row(first)) && !has_second)
      throw DataError(name, "only one row, and it reads as a header: no samples (header=no reads it as data)");
    else header = CsvOptions::Header::none;
  }
  // A header's unnamed columns are left out of every row before anything else (label=
  // counts the columns left).
  const Unnamed unnamed = header == CsvOptions::Header::names ? unnamed_columns(first) : Unnamed{};
  if (header == CsvOptions::Header::names && unnamed.index + unnamed.trailing >= first.size())
    throw DataError(fmt::format("{}:{}", name, first[0].line), "the header names no column");
  std::vector<std::string> declared_classes;
  std::optional<std::int64_t> declared_samples;
  if (header == CsvOptions::Header::sklearn) {
    if (first.size() < 2 || !integer(first[0].text) || !integer(first[1].text))
      throw DataError(fmt::format("{}:{}", name, first[0].line), "expected a header n_samples,n_features,class names...");
    declared_samples = *integer(first[0].text);
    for (std::size_t i = 2; i < first.size(); ++i) declared_classes.push_back(first[i].text);
  }
  if (options.report) {
    options.report->header = header != CsvOptions::Header::none;
    options.report->note.clear();
    if (header == CsvOptions::Header::names && options.header == CsvOptions::Header::detect) {
      std::vector<std::string> names;
      for (const auto& f : first) names.push_back(f.text);
      std::string shown = fmt::format("{}", fmt::join(names, ","));
      if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
      options.report->note = fmt::format("{}: header row detected: {} (header=no reads it as data)", name, shown);
    }
    std::vector<std::string> left_out;
    if (unnamed.index)
      left_out.push_back("column 1 has no name: a row index (pandas' to_csv and R's write.csv write one), left out "
                         "(name it in the header to use it)");
    if (unnamed.trailing > 0)
      left_out.push_back(unnamed.trailing == 1
                             ? fmt::format("column {} has no name and no values, left out", first.size())
                             : fmt::format("columns {}-{} have no name and no values, left out",
                                           first.size() - unnamed.trailing + 1, first.size()));
    for (const std::string& what : left_out)
      options.report->note += (options.report->note.empty() ? name + ": " : "; ") + what;
  }

  // The rows: the first unless it is a header, then the rest.
  std::size_t columns = 0;
  int label_col = 0;
  std::vector<float> features;
  std::vector<std::int32_t> label_ids;  // index into label_texts
  std::vector<std::string> label_texts;
  std::unordered_map<std::string, std::int32_t> label_index;
  std::int64_t rows = 0;
  // The header's names of the columns read (unnamed ones left out), for messages.
  std::vector<std::string> column_names;
  if (header == CsvOptions::Header::names)
    for (const Field& f : unnamed.any() ? without_unnamed(first, unnamed) : first) column_names.push_back(f.text);
  // Why a feature cell is not a number, with what it looks like: a missing value (UCI's
  // "?", pandas' "NA"), a decimal comma (a file separated by ';'), and the column's name.
  auto not_a_number = [&](const Field& field, std::size_t c) {
    std::string why = fmt::format("not a number: '{}'", printable(field.text));
    std::string lower;
    for (char ch : field.text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const bool decimal_comma = options.delimiter != ',' && std::count(field.text.begin(), field.text.end(), ',') == 1 &&
                               number(std::string(field.text).replace(field.text.find(','), 1, "."));
    if (lower == "?" || lower == "na" || lower == "n/a" || lower == "nan" || lower == "null" || lower == "none" ||
        lower == "-" || lower == "missing")
      why += ", a missing value? opgraph reads none: drop or fill the rows that have them";
    else if (decimal_comma)
      why += ", a decimal comma? write numbers with a decimal point";
    if (c < column_names.size()) why += fmt::format(" (column '{}')", printable(column_names[c]));
    return why;
  };
  auto take = [&](const std::vector<Field>& whole) {
    if (unnamed.any()) {
      if (whole.size() != first.size())
        throw DataError(fmt::format("{}:{}", name, whole[0].line),
                        fmt::format("expected {} fields, got {}", first.size(), whole.size()));
      for (std::size_t c = first.size() - unnamed.trailing; c < first.size(); ++c)
        if (!whole[c].text.empty())
          throw DataError(fmt::format("{}:{}:{}", name, whole[c].line, whole[c].column),
                          fmt::format("'{}' under a column the header does not name (name it to use it)",
                                      printable(whole[c].text)));
    }
    std::vector<Field> named;
    if (unnamed.any()) named = without_unnamed(whole, unnamed);
    const std::vector<Field>& r = unnamed.any() ? named : whole;
    if (rows == 0) {
      columns = r.size();
      if (columns < (options.labelled ? 2u : 1u)) {
        // One field: often a file that separates its fields with something else.
        std::string why = "need at least one feature and a label";
        for (const char sep : {',', ';', '\t', '|'})
          if (sep != options.delimiter && r[0].text.find(sep) != std::string::npos) {
            why += fmt::format(": the row is a single field, as it was read with {} between fields and this file "
                               "separates them with {} (sep={} reads it)",
                               separator_name(options.delimiter, true), separator_name(sep, true),
                               separator_name(sep, false));
            break;
          }
        throw DataError(fmt::format("{}:{}", name, r[0].line), why);
      }
      label_col = label_of(options, columns);
      if (options.labelled && (label_col < 0 || label_col >= static_cast<int>(columns)))
        throw DataError(name, fmt::format("label column {} out of range for {} columns", options.label_column, columns));
    }
    if (r.size() != columns)
      throw DataError(fmt::format("{}:{}", name, r[0].line), fmt::format("expected {} fields, got {}", columns, r.size()));
    for (std::size_t c = 0; c < columns; ++c) {
      const Field& field = r[c];
      if (static_cast<int>(c) == label_col) {
        if (field.text.empty()) throw DataError(fmt::format("{}:{}:{}", name, field.line, field.column), "empty label");
        auto [it, added] = label_index.try_emplace(field.text, static_cast<std::int32_t>(label_texts.size()));
        if (added) label_texts.push_back(field.text);
        label_ids.push_back(it->second);
        continue;
      }
      const auto v = number(field.text);
      if (!v || std::fabs(*v) > std::numeric_limits<float>::max())
        throw DataError(fmt::format("{}:{}:{}", name, field.line, field.column),
                        field.text.empty() ? std::string("empty cell, expected a number")
                        : v ? fmt::format("{} does not fit a 32-bit float", field.text)
                            : not_a_number(field, c));
      features.push_back(static_cast<float>(*v));
    }
    ++rows;
  };
  if (header == CsvOptions::Header::none) take(first);
  if (has_second) {
    take(row);
    while (records.next(row)) take(row);
  }
  if (rows == 0) throw DataError(name, "no rows after the header");
  if (declared_samples && *declared_samples != rows) {
    // Detected, not asked for: a first row such as "1,2,0" has the form of scikit-learn's
    // header (two counts, the second the number of features) by chance. When it reads as a
    // sample and announces a count the file does not have, it is one: read it as data, and
    // say so. A header that cannot be data, or one asked for (header=sklearn), is an error.
    if (options.header == CsvOptions::Header::detect &&
        is_data_row(first, label_of(options, first.size()))) {
      CsvOptions as_data = options;
      as_data.header = CsvOptions::Header::none;
      Dataset data = parse_csv(text, name, as_data);
      if (options.report) {
        std::vector<std::string> cells;
        for (const auto& f : first) cells.push_back(f.text);
        options.report->note = fmt::format(
            "{}: the first row ({}) has the form of scikit-learn's header n_samples,n_features,classes but announces "
            "{} samples for the file's {}: read as data (header=sklearn reads it as a header)",
            name, fmt::join(cells, ","), *declared_samples, rows);
      }
      return data;
    }
    throw DataError(name, fmt::format("the header announces {} samples, the file has {}", *declared_samples, rows));
  }

  const std::int64_t d = static_cast<std::int64_t>(columns) - (options.labelled ? 1 : 0);
  Dataset data;
  data.name = name;
  data.features = Tensor({rows, d});
  std::copy(features.begin(), features.end(), data.features.data<float>());
  if (!options.labelled) {
    data.labels = Tensor({rows, 0});
    return data;
  }
  data.labels = Tensor({rows});
  float* l = data.labels.data<float>();
  const bool numeric_labels = std::all_of(label_texts.begin(), label_texts.end(), [](const std::string& t) {
    return integer(t).has_value() && *integer(t) < (std::int64_t{1} << 24);  // exact in f32
  });
  // Numbers that are not all class indices (2.25, -0.5): the targets of a regression, kept
  // as they are. (Ranked as class names, they had become 0, 1, 2, ... silently.)
  const bool real_labels = !numeric_labels && std::all_of(label_texts.begin(), label_texts.end(), [](const std::string& t) {
    const auto v = number(t);
    return v && std::fabs(*v) <= std::numeric_limits<float>::max();
  }) && std::any_of(label_texts.begin(), label_texts.end(), [](const std::string& t) {
    return *number(t) != std::floor(*number(t));
  });
  if (real_labels) {
    for (std::int64_t r = 0; r < rows; ++r)
      l[r] = static_cast<float>(*number(label_texts[static_cast<std::size_t>(label_ids[static_cast<std::size_t>(r)])]));
    // A fraction survives in at least one float, or the targets would read as class indices
    // (has_class_labels: 16777217.5 is 16777218 as a float), and a regression would become
    // a classification over millions of classes.
    if (std::all_of(l, l + rows, [](float v) { return v == std::floor(v); })) {
      const auto text_of = [&](std::int64_t r) -> const std::string& {
        return label_texts[static_cast<std::size_t>(label_ids[static_cast<std::size_t>(r)])];
      };
      std::int64_t r = 0;  // the first sample whose text has a fraction (real_labels: one has)
      while (*number(text_of(r)) == std::floor(*number(text_of(r)))) ++r;
      throw DataError(name, fmt::format("label '{}' of sample {} is a real number, but as a 32-bit float it is {:.0f}, "
                                        "and every label is such a whole number: they would read as class indices "
                                        "(a float keeps no fraction from 2^23 = 8388608 on); scale the targets down",
                                        printable(text_of(r)), r, l[r]));
    }
  } else if (numeric_labels) {
    for (std::int64_t r = 0; r < rows; ++r)
      l[r] = static_cast<float>(*integer(label_texts[static_cast<std::size_t>(label_ids[static_cast<std::size_t>(r)])]));
    data.class_names = declared_classes;
    const std::int64_t classes = data.num_classes();
    if (!declared_classes.empty() && classes > static_cast<std::int64_t>(declared_classes.size()))
      throw DataError(name, fmt::format("label {} but the header names {} classes", classes - 1, declared_classes.size()));
  } else {
    // Class names in sorted order; when every name is a number (whole numbers past 2^24,
    // as IDs are), in the numbers' order: as text "10" came before "2".
    const bool all_numbers = std::all_of(label_texts.begin(), label_texts.end(),
                                         [](const std::string& t) { return number(t).has_value(); });
    const auto before = [all_numbers](const std::string& a, const std::string& b) {
      if (all_numbers && *number(a) != *number(b)) return *number(a) < *number(b);
      return a < b;
    };
    std::vector<std::string> sorted = label_texts;
    std::sort(sorted.begin(), sorted.end(), before);
    std::vector<float> rank(label_texts.size());
    for (std::size_t i = 0; i < label_texts.size(); ++i)
      rank[i] = static_cast<float>(std::lower_bound(sorted.begin(), sorted.end(), label_texts[i], before) - sorted.begin());
    for (std::int64_t r = 0; r < rows; ++r) l[r] = rank[static_cast<std::size_t>(label_ids[static_cast<std::size_t>(r)])];
    data.class_names = std::move(sorted);
  }
  return data;
}

Dataset read_csv(const std::string& path, const CsvOptions& options) {
  const ReadLimit limit{
      .bytes = kMaxCsvBytes, .what = "a CSV file", .hint = "split it, or convert it to IDX", .text = true};
  return parse_csv(read_file(path, limit), path, options);
}

}  // namespace opgraph
