// Data specs: parse "source:key=value,...", load, filter, split, scale.
#include <opgraph/frontends/data_spec.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include <opgraph/datasets/csv.hpp>
#include <opgraph/datasets/idx.hpp>
#include <opgraph/datasets/locate.hpp>
#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/datasets/text.hpp>
#include <opgraph/datasets/read_file.hpp>
#include <opgraph/graph/size.hpp>
#include <opgraph/graph/spec.hpp>

namespace opgraph {

namespace {

struct SourceInfo {
  std::string name;
  std::string what;
  std::vector<std::string> keys;  // source-specific keys
  std::string example;
};

const std::vector<std::string> kCommonKeys = {"seed", "test", "stratify", "standardize", "scale", "limit", "inputs"};

const std::vector<SourceInfo>& sources() {
  static const std::vector<SourceInfo> s = {
      {"mnist", "MNIST digits from <data>/mnist (IDX, gzip or raw); train and test files",
       {"classes", "per_class", "folder"}, "mnist:classes=5/8,per_class=1000"},
      {"fashion", "Fashion-MNIST from <data>/fashion (same layout as mnist)", {"classes", "per_class", "folder"},
       "fashion:scale=1/255"},
      {"idx", "images and labels in IDX files (MNIST's format: EMNIST, KMNIST, your own); a test pair optional",
       {"images", "labels", "test_images", "test_labels", "classes", "per_class"},
       "idx:images=letters-images.gz,labels=letters-labels.gz,scale=1/255"},
      {"iris", "iris, 150 flowers x 4 features, 3 classes (built in)", {}, "iris:test=0.3,standardize=true"},
      {"wine", "wine, 178 x 13, 3 classes (built in)", {}, "wine:test=0.3,standardize=true"},
      {"digits", "8x8 digits, 1797 x 64, from <data>/small/digits.csv.gz", {}, "digits:test=0.25,scale=1/16"},
      {"breast_cancer", "breast cancer, 569 x 30, 2 classes, from <data>/small/breast_cancer.csv", {},
       "breast_cancer:test=0.3,standardize=true"},
      {"csv", "a CSV file: features and a label column, the last or label=COL (a number, or the header's name for it)",
       {"file", "label", "header", "sep", "test_file"},
       "csv:file=data.csv,label=species,test=0.2"},
      {"xor", "the four XOR points (copies with noise on request)", {"copies", "noise"}, "xor"},
      {"blobs", "points around random centres", {"n", "centers", "spread", "dims"}, "blobs:n=500,centers=3,test=0.4"},
      {"moons", "two interleaving half circles", {"n", "noise"}, "moons:n=1000,noise=0.1,test=0.3"},
      {"circles", "a circle inside another", {"n", "noise", "factor"}, "circles:n=1000,factor=0.5,test=0.3"},
      {"spirals", "interleaved spiral arms", {"n", "classes", "noise"}, "spirals:n=600,classes=3,test=0.3"},
      {"text", "windows of a text file's characters, labelled with the next ones; the last test= part held out",
       {"file", "length", "stride"}, "text:file=notes.txt,length=64,stride=16,test=0.1"},
      {"sort_digits", "sequences of digits; the labels are each sequence sorted (a class per position)",
       {"n", "length", "digits"}, "sort_digits:n=20000,length=8,test=0.1"},
      {"boxes", "3 classes uniform in [1,5]^3, [10,15]^3, [20,25]^3", {"n"}, "boxes:n=300,test=0.3,standardize=true"},
  };
  return s;
}

std::vector<std::int64_t> class_list(const Spec& o, const std::string& text) {
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

/// inputs=x:0-1/z:2-3: per input, an inclusive column range ("A-B"), one column ("A") or
/// every column from A on ("A-").
std::vector<Feed> feeds(const Spec& o, const std::string& text) {
  std::vector<Feed> out;
  auto bad = [&](const std::string& item, const std::string& why) {
    o.fail(fmt::format("inputs: '{}' {}; write NAME:FIRST-LAST per input, separated by '/', such as "
                       "inputs=x:0-1/z:2-3",
                       item, why));
  };
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = text.find('/', start);
    const std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0) bad(item, "has no 'NAME:'");
    Feed f;
    f.input = item.substr(0, colon);
    for (const auto& other : out)
      if (other.input == f.input) bad(item, fmt::format("names input '{}' a second time", f.input));
    const std::string range = item.substr(colon + 1);
    const std::size_t dash = range.find('-');
    const auto first = parse_integer(range.substr(0, dash));
    if (!first || *first < 0) bad(item, "does not start with a column number");
    f.first = *first;
    if (dash == std::string::npos) {
      f.count = 1;
    } else if (dash + 1 == range.size()) {
      f.count = -1;  // to the last column
    } else {
      const auto last = parse_integer(range.substr(dash + 1));
      if (!last || *last < *first) bad(item, "has a last column before its first");
      f.count = *last - *first + 1;
    }
    out.push_back(std::move(f));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

/// Whether `text` reads as a path to data rather than a name: it holds a '/', ends in a
/// data file's extension, or names something on disk.
bool looks_like_path(const std::string& text) {
  if (text.find('/') != std::string::npos) return true;
  for (const char* ext : {".csv", ".tsv", ".txt", ".gz", ".idx", ".ubyte"})
    if (text.size() > std::strlen(ext) && text.compare(text.size() - std::strlen(ext), std::string::npos, ext) == 0)
      return true;
  std::error_code ec;
  return std::filesystem::exists(text, ec);
}

/// How to name the data at `path` in a spec: a folder as mnist's, a .txt file as text's,
/// any other file as csv's.
std::string spec_for_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return "mnist:folder=" + path;
  const bool text = path.size() > 4 && path.compare(path.size() - 4, 4, ".txt") == 0;
  return (text ? "text:file=" : "csv:file=") + path;
}

Dataset limit_rows(const Dataset& d, std::int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = i;
  return d.rows(rows);
}

}  // namespace

/// The most samples a synthetic source generates.
constexpr std::int64_t kMaxSynthetic = 100'000'000;

LoadedData load_data(std::string_view spec_text, const std::string& data_folder, const Standardizer* standardizer) {
  const Spec o(spec_text, "data");
  const std::string& source = o.name();
  const auto info = std::find_if(sources().begin(), sources().end(), [&](const SourceInfo& s) { return s.name == source; });
  if (info == sources().end()) {
    std::vector<std::string> names;
    for (const auto& s : sources()) names.push_back(s.name);
    // A path where a source's name goes (--data data.csv): say how a file is named.
    if (looks_like_path(source))
      o.fail(fmt::format("unknown data source '{}': a file or folder is named inside a source, as {}", source,
                         spec_for_path(source)));
    o.fail(fmt::format("unknown data source '{}'{}", source, suggestion(source, names)));
  }
  std::vector<std::string> allowed = info->keys;
  allowed.insert(allowed.end(), kCommonKeys.begin(), kCommonKeys.end());
  // A path where a key goes (csv:data.csv): the key that takes it.
  o.allow(allowed, [&](const std::string& key) -> std::string {
    if (!looks_like_path(key)) return "";
    for (const char* takes : {"file", "folder"})
      if (std::find(info->keys.begin(), info->keys.end(), takes) != info->keys.end())
        return fmt::format("a path is given as {}=PATH: {}:{}={}", takes, source, takes, key);
    return fmt::format("{} reads no file; {} does", source, spec_for_path(key));
  });
  const std::string spec = o.text();
  constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
  const auto seed = static_cast<std::uint64_t>(o.integer("seed", 0, 0, kMaxInt));
  auto count = [&](const char* key, std::int64_t fallback) { return o.integer(key, fallback, 1, kMaxSynthetic); };
  auto real = [&](const char* key, double fallback) {
    return o.real(key, fallback, 0.0, std::numeric_limits<double>::max());
  };

  LoadedData out;
  if (source == "mnist" || source == "fashion") {
    const std::string folder = o.has("folder") ? o.string("folder") : find_data(source, data_folder);
    out.train = load_mnist(folder, true);
    out.test = load_mnist(folder, false);
    for (bool train : {true, false})
      for (auto& f : mnist_files(folder, train)) out.files.push_back(f);
  } else if (source == "idx") {
    // Any pair of IDX files; the test pair, when given, whole.
    if (!o.has("images") || !o.has("labels")) o.fail("idx needs images=FILE and labels=FILE");
    if (o.has("test_images") != o.has("test_labels")) o.fail("test_images= and test_labels= go together");
    const std::string images = o.string("images");
    out.train = load_idx_pair(images, o.string("labels"), std::filesystem::path(images).filename().string());
    out.files = {images, o.string("labels")};
    if (o.has("test_images")) {
      out.test = load_idx_pair(o.string("test_images"), o.string("test_labels"),
                               std::filesystem::path(o.string("test_images")).filename().string());
      out.files.push_back(o.string("test_images"));
      out.files.push_back(o.string("test_labels"));
    }
  } else if (source == "iris" || source == "wine") {
    out.train = load_builtin(source);
  } else if (source == "digits" || source == "breast_cancer") {
    const std::string small = find_data("small", data_folder);
    const std::string file = small + (source == "digits" ? "/digits.csv.gz" : "/breast_cancer.csv");
    out.train = read_csv(file);
    out.files.push_back(file);
    out.train.name = source;
  } else if (source == "csv") {
    if (!o.has("file")) o.fail("csv needs file=PATH");
    CsvOptions c;
    // label=none: every column a feature (data to predict on).
    c.labelled = !(o.has("label") && o.string("label") == "none");
    // label=COL counts columns (negative from the end); label=NAME names one in the header.
    const std::string label = o.has("label") ? o.string("label") : std::string();
    // Anything that reads as a number, with a digit, is a column number (label=0.5 is then
    // refused as one); anything else a name, even 'e' or 'nan'.
    std::string_view number = label;
    if (number.starts_with('+')) number.remove_prefix(1);
    double as_number = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), as_number);
    const bool numbered = label.empty() || (ec == std::errc() && end == number.data() + number.size() &&
                                            number.find_first_of("0123456789") != std::string_view::npos);
    if (c.labelled && numbered) c.label_column = static_cast<int>(o.integer("label", -1, -100000, 100000));
    else if (c.labelled) c.label_name = label;
    const std::string header = o.choice("header", "detect", {"detect", "yes", "no", "names", "none", "sklearn"});
    if (header == "detect") c.header = CsvOptions::Header::detect;
    else if (header == "none" || header == "no") c.header = CsvOptions::Header::none;
    else if (header == "names" || header == "yes") c.header = CsvOptions::Header::names;
    else c.header = CsvOptions::Header::sklearn;
    // The field separator: commas, but tabs for a .tsv file; sep= says otherwise.
    const std::string file = o.string("file");
    const bool tsv = file.ends_with(".tsv") || file.ends_with(".tsv.gz");
    const std::string sep = o.choice("sep", tsv ? "tab" : "comma", {"comma", "semicolon", "tab", "pipe"});
    c.delimiter = sep == "comma" ? ',' : sep == "tab" ? '\t' : sep == "semicolon" ? ';' : '|';
    CsvReport report;
    c.report = &report;
    out.train = read_csv(o.string("file"), c);
    out.files.push_back(o.string("file"));
    if (!report.note.empty()) out.notes.push_back(report.note);
    if (o.has("test_file")) {
      out.test = read_csv(o.string("test_file"), c);
      out.files.push_back(o.string("test_file"));
      if (!report.note.empty()) out.notes.push_back(report.note);
    }
  } else if (source == "xor") {
    out.train = make_xor(o.integer("copies", 1, 1, kMaxSynthetic / 4), real("noise", 0.0), seed);
  } else if (source == "blobs") {
    const std::int64_t n = count("n", 500), dims = o.integer("dims", 2, 1, 1'000'000);
    // The features are n x dims values: refuse what the memory limit would refuse, before
    // the centres are even drawn.
    checked_mul(n, dims, "blobs: n x dims");
    out.train = make_blobs(n, o.integer("centers", 3, 1, 1'000'000), real("spread", 1.0), dims, seed);
  } else if (source == "moons") {
    out.train = make_moons(count("n", 1000), real("noise", 0.1), seed);
  } else if (source == "circles") {
    out.train = make_circles(count("n", 1000), real("noise", 0.05), o.real("factor", 0.5, 0.0, 1.0, true, true), seed);
  } else if (source == "spirals") {
    out.train = make_spirals(count("n", 600), o.integer("classes", 3, 1, 1000), real("noise", 0.2), seed);
  } else if (source == "text") {
    if (!o.has("file")) o.fail("text needs file=PATH");
    const std::string file = o.string("file");
    const std::int64_t length = o.integer("length", 64, 1, 1 << 20);
    const std::string text = read_file(file, {std::size_t{256} << 20, "a text file", "train on a part of it"});
    TextWindows w = make_text_windows(text, length, o.integer("stride", std::max<std::int64_t>(1, length / 4), 1, 1 << 20),
                                      o.real("test", 0.1, 0.0, 1.0, false, true), "text");
    out.train = std::move(w.train);
    out.test = std::move(w.test);
    out.unigram_bits = w.unigram_bits;
    out.files.push_back(file);
  } else if (source == "sort_digits") {
    out.train = make_sort_digits(count("n", 20000), o.integer("length", 8, 1, 4096), o.integer("digits", 10, 2, 1'000'000),
                                 seed);
  } else if (source == "boxes") {
    out.train = make_uniform_boxes(count("n", 300), {{1, 5}, {10, 15}, {20, 25}}, 3, seed);
  }

  if (o.has("classes") && (source == "mnist" || source == "fashion" || source == "idx")) {
    const auto keep = class_list(o, o.string("classes"));
    out.train = filter_classes(out.train, keep);
    if (out.has_test()) out.test = filter_classes(out.test, keep);
  }
  if (o.has("per_class")) out.train = first_per_class(out.train, o.integer("per_class", 0, 1, kMaxInt));
  if (o.has("inputs")) out.feeds = feeds(o, o.string("inputs"));
  if (o.has("limit")) {
    out.train = limit_rows(out.train, o.integer("limit", 0, 1, kMaxInt));
    if (out.has_test()) out.test = limit_rows(out.test, o.integer("limit", 0, 1, kMaxInt));
  }
  if (o.has("test") && source != "text") {  // text splits by position itself
    if (out.has_test()) o.fail(fmt::format("{} has its own test part: drop test=", source));
    const double f = o.real("test", 0.0, 0.0, 1.0, true, true);
    Split s = train_test_split(out.train, f, seed, o.flag("stratify", true));
    out.train = std::move(s.train);
    out.test = std::move(s.test);
  }
  if (o.has("scale")) {
    const double f = o.real("scale", 1.0, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max());
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
  out.description = fmt::format("{}: {} training samples{}, {} features, {}", spec, out.train.size(),
                                out.has_test() ? fmt::format(", {} test samples", out.test.size()) : std::string(),
                                out.train.num_features(),
                                !out.train.has_labels()       ? std::string("no labels")
                                : out.train.has_class_labels() ? fmt::format("{} classes", out.train.num_classes())
                                                               : std::string("real-valued targets"));
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
       "  inputs=x:0-1/z:2-3  which feature columns feed which input of the model (inclusive\n"
       "                  ranges; A- runs to the last column); default: all to the first input\n"
       "  classes=A/B/..  (mnist, fashion, idx) keep these classes, relabelled 0, 1, ...\n"
       "  per_class=N     (mnist, fashion, idx) the first N training images of each class\n";
  return s;
}

}  // namespace opgraph
