// Data specs: parse "source:key=value,...", load, filter, split, scale.
#include <opgraph/frontends/data_spec.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include <opgraph/datasets/csv.hpp>
#include <opgraph/datasets/idx.hpp>
#include <opgraph/datasets/locate.hpp>
#include <opgraph/datasets/synthetic.hpp>

namespace opgraph {

namespace {

struct SourceInfo {
  std::string name;
  std::string what;
  std::vector<std::string> keys;  // source-specific keys
  std::string example;
};

const std::vector<std::string> kCommonKeys = {"seed", "test", "stratify", "standardize", "scale", "limit"};

const std::vector<SourceInfo>& sources() {
  static const std::vector<SourceInfo> s = {
      {"mnist", "MNIST digits from <data>/mnist (IDX, gzip or raw); train and test files",
       {"classes", "per_class", "folder"}, "mnist:classes=5/8,per_class=1000"},
      {"fashion", "Fashion-MNIST from <data>/fashion (same layout as mnist)", {"classes", "per_class", "folder"},
       "fashion:scale=1/255"},
      {"iris", "iris, 150 flowers x 4 features, 3 classes (built in)", {}, "iris:test=0.3,standardize=true"},
      {"wine", "wine, 178 x 13, 3 classes (built in)", {}, "wine:test=0.3,standardize=true"},
      {"digits", "8x8 digits, 1797 x 64, from <data>/small/digits.csv.gz", {}, "digits:test=0.25,scale=1/16"},
      {"breast_cancer", "breast cancer, 569 x 30, 2 classes, from <data>/small/breast_cancer.csv", {},
       "breast_cancer:test=0.3,standardize=true"},
      {"csv", "a CSV file: features then the label (see also label, header)", {"file", "label", "header", "test_file"},
       "csv:file=data.csv,label=-1,test=0.2"},
      {"xor", "the four XOR points (copies with noise on request)", {"copies", "noise"}, "xor"},
      {"blobs", "points around random centres", {"n", "centers", "spread", "dims"}, "blobs:n=500,centers=3,test=0.4"},
      {"moons", "two interleaving half circles", {"n", "noise"}, "moons:n=1000,noise=0.1,test=0.3"},
      {"circles", "a circle inside another", {"n", "noise", "factor"}, "circles:n=1000,factor=0.5,test=0.3"},
      {"spirals", "interleaved spiral arms", {"n", "classes", "noise"}, "spirals:n=600,classes=3,test=0.3"},
      {"boxes", "3 classes uniform in [1,5]^3, [10,15]^3, [20,25]^3", {"n"}, "boxes:n=300,test=0.3,standardize=true"},
  };
  return s;
}

class Options {
 public:
  Options(std::string spec, std::map<std::string, std::string> values) : spec_(std::move(spec)), v_(std::move(values)) {}
  [[noreturn]] void fail(const std::string& what) const { throw ParseError(fmt::format("data '{}'", spec_), what); }
  bool has(const std::string& k) const { return v_.count(k) > 0; }
  std::string text(const std::string& k, const std::string& fallback = {}) const {
    const auto it = v_.find(k);
    return it == v_.end() ? fallback : it->second;
  }
  /// A number; "1/255" is allowed.
  double number(const std::string& k, double fallback) const {
    if (!has(k)) return fallback;
    const std::string t = text(k);
    const auto slash = t.find('/');
    auto parse = [&](std::string_view s) {
      double x = 0;
      const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(x))
        fail(fmt::format("{}: '{}' is not a number", k, t));
      return x;
    };
    if (slash == std::string::npos) return parse(t);
    const double den = parse(std::string_view(t).substr(slash + 1));
    if (den == 0) fail(fmt::format("{}: division by zero in '{}'", k, t));
    return parse(std::string_view(t).substr(0, slash)) / den;
  }
  std::int64_t integer(const std::string& k, std::int64_t fallback, std::int64_t min = 0) const {
    const double x = number(k, static_cast<double>(fallback));
    if (x != std::floor(x) || x < static_cast<double>(min) || x > kMaxExactInteger)
      fail(fmt::format("{} must be a whole number >= {}, got {}", k, min, text(k)));
    return static_cast<std::int64_t>(x);
  }
  bool flag(const std::string& k, bool fallback) const {
    if (!has(k)) return fallback;
    const std::string t = text(k);
    if (t == "true" || t == "1" || t == "yes" || t.empty()) return true;
    if (t == "false" || t == "0" || t == "no") return false;
    fail(fmt::format("{}: expected true or false, got '{}'", k, t));
  }

 private:
  std::string spec_;
  std::map<std::string, std::string> v_;
};

std::vector<std::int64_t> class_list(const Options& o, const std::string& text) {
  std::vector<std::int64_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = text.find('/', start);
    const std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || p != part.data() + part.size() || v < 0)
      o.fail(fmt::format("classes: expected class numbers separated by '/', such as 5/8, got '{}'", text));
    out.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

Dataset limit_rows(const Dataset& d, std::int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = i;
  return d.rows(rows);
}

}  // namespace

LoadedData load_data(std::string_view spec_text, const std::string& data_folder, const Standardizer* standardizer) {
  const std::string spec(spec_text);
  const std::size_t colon = spec.find(':');
  const std::string source = spec.substr(0, colon);
  const auto info = std::find_if(sources().begin(), sources().end(), [&](const SourceInfo& s) { return s.name == source; });
  if (info == sources().end()) {
    std::vector<std::string> names;
    for (const auto& s : sources()) names.push_back(s.name);
    throw ParseError(fmt::format("data '{}'", spec),
                     fmt::format("unknown data source '{}'{}", source, suggestion(source, names)));
  }
  std::map<std::string, std::string> values;
  if (colon != std::string::npos) {
    std::string_view rest = std::string_view(spec).substr(colon + 1);
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      const std::size_t eq = item.find('=');
      const std::string key(item.substr(0, eq));
      std::vector<std::string> allowed = info->keys;
      allowed.insert(allowed.end(), kCommonKeys.begin(), kCommonKeys.end());
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        throw ParseError(fmt::format("data '{}'", spec),
                         fmt::format("{} takes no key '{}'{}", source, key, suggestion(key, allowed)));
      values[key] = eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1));
    }
  }
  const Options o(spec, values);
  const auto seed = static_cast<std::uint64_t>(o.integer("seed", 0));

  LoadedData out;
  if (source == "mnist" || source == "fashion") {
    const std::string folder = o.has("folder") ? o.text("folder") : find_data(source, data_folder);
    out.train = load_mnist(folder, true);
    out.test = load_mnist(folder, false);
    if (o.has("classes")) {
      const auto keep = class_list(o, o.text("classes"));
      out.train = filter_classes(out.train, keep);
      out.test = filter_classes(out.test, keep);
    }
    if (o.has("per_class")) out.train = first_per_class(out.train, o.integer("per_class", 0, 1));
  } else if (source == "iris" || source == "wine") {
    out.train = load_builtin(source);
  } else if (source == "digits" || source == "breast_cancer") {
    const std::string small = find_data("small", data_folder);
    out.train = read_csv(small + (source == "digits" ? "/digits.csv.gz" : "/breast_cancer.csv"));
    out.train.name = source;
  } else if (source == "csv") {
    if (!o.has("file")) o.fail("csv needs file=PATH");
    CsvOptions c;
    c.label_column = static_cast<int>(o.number("label", -1));
    const std::string header = o.text("header", "detect");
    if (header == "detect") c.header = CsvOptions::Header::detect;
    else if (header == "none") c.header = CsvOptions::Header::none;
    else if (header == "names") c.header = CsvOptions::Header::names;
    else if (header == "sklearn") c.header = CsvOptions::Header::sklearn;
    else o.fail(fmt::format("header: expected detect, none, names or sklearn, got '{}'", header));
    out.train = read_csv(o.text("file"), c);
    if (o.has("test_file")) out.test = read_csv(o.text("test_file"), c);
  } else if (source == "xor") {
    out.train = make_xor(o.integer("copies", 1, 1), o.number("noise", 0.0), seed);
  } else if (source == "blobs") {
    out.train = make_blobs(o.integer("n", 500, 1), o.integer("centers", 3, 1), o.number("spread", 1.0),
                           o.integer("dims", 2, 1), seed);
  } else if (source == "moons") {
    out.train = make_moons(o.integer("n", 1000, 1), o.number("noise", 0.1), seed);
  } else if (source == "circles") {
    out.train = make_circles(o.integer("n", 1000, 1), o.number("noise", 0.05), o.number("factor", 0.5), seed);
  } else if (source == "spirals") {
    out.train = make_spirals(o.integer("n", 600, 1), o.integer("classes", 3, 1), o.number("noise", 0.2), seed);
  } else if (source == "boxes") {
    out.train = make_uniform_boxes(o.integer("n", 300, 1), {{1, 5}, {10, 15}, {20, 25}}, 3, seed);
  }

  if (o.has("limit")) {
    out.train = limit_rows(out.train, o.integer("limit", 0, 1));
    if (out.has_test()) out.test = limit_rows(out.test, o.integer("limit", 0, 1));
  }
  if (o.has("test")) {
    if (out.has_test()) o.fail(fmt::format("{} has its own test part: drop test=", source));
    const double f = o.number("test", 0.0);
    if (!(f > 0.0 && f < 1.0)) o.fail(fmt::format("test must be a fraction between 0 and 1, got {}", o.text("test")));
    Split s = train_test_split(out.train, f, seed, o.flag("stratify", true));
    out.train = std::move(s.train);
    out.test = std::move(s.test);
  }
  if (o.has("scale")) {
    const double f = o.number("scale", 1.0);
    out.train = scaled(out.train, f);
    if (out.has_test()) out.test = scaled(out.test, f);
  }
  if (o.flag("standardize", false)) {
    if (standardizer) {
      out.standardizer = *standardizer;
    } else {
      out.standardizer.emplace();
      out.standardizer->fit(out.train);
    }
    out.train = out.standardizer->apply(out.train);
    if (out.has_test()) out.test = out.standardizer->apply(out.test);
  }
  out.description = fmt::format("{}: {} training samples{}, {} features, {} classes", spec, out.train.size(),
                                out.has_test() ? fmt::format(", {} test samples", out.test.size()) : std::string(),
                                out.train.num_features(), out.train.num_classes());
  return out;
}

std::string data_spec_help() {
  std::string s =
      "Data specs name a source and options: SOURCE[:key=value,...]\n"
      "The data folder is --data DIR or $OPGRAPH_DATA; it holds mnist/, fashion/, small/.\n\nSources:\n";
  for (const auto& src : sources()) {
    s += fmt::format("  {:<14} {}\n", src.name, src.what);
    if (!src.keys.empty()) s += fmt::format("  {:<14} keys: {}\n", "", fmt::join(src.keys, ", "));
    s += fmt::format("  {:<14} e.g. {}\n", "", src.example);
  }
  s += "\nKeys for every source:\n"
       "  seed=N          generation and split seed (default 0)\n"
       "  test=F          hold out a fraction F as the test part (sources without their own)\n"
       "  stratify=B      keep class shares in the split (default true)\n"
       "  standardize=B   centre and scale each feature with the training part's statistics\n"
       "  scale=F         multiply every feature by F (a fraction such as 1/255 is allowed)\n"
       "  limit=N         keep the first N rows of each part\n"
       "  classes=A/B/..  (mnist, fashion) keep these digits, relabelled 0, 1, ...\n"
       "  per_class=N     (mnist, fashion) the first N training images of each class\n";
  return s;
}

}  // namespace opgraph
