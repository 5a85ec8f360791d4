// CSV datasets: one sample per line, features then (by default) the label.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

struct CsvOptions {
  enum class Header : std::uint8_t {
    detect,   // the first row is a header when it cannot be read as data (a feature cell is
              // a name, not a number) and the second row can; sklearn's form is recognised
    none,     // every line is a sample
    names,    // the first line names the columns
    sklearn,  // the first line is "n_samples,n_features,class0,class1,..." (scikit-learn's bundled sets)
  };
  Header header = Header::detect;
  /// The column holding the label; negative counts from the end (-1: the last).
  int label_column = -1;
  /// The label's column by the name the header gives it (the first row is then the
  /// header, and must name it once); empty: label_column.
  std::string label_name{};
  /// False: no column is a label, every one a feature (data to predict on); the labels are
  /// then [n, 0], none per sample.
  bool labelled = true;
  char delimiter = ',';
  /// When set, receives what was decided (e.g. that the first row was taken as a header).
  struct CsvReport* report = nullptr;
};

/// What read_csv decided on the caller's behalf, for the caller to tell the user.
struct CsvReport {
  bool header = false;
  std::string note;  // e.g. "data.csv: header row detected: a, b, label (header=no reads it as data)"
};

/// The most a CSV file may hold, decompressed: 1 GiB.
inline constexpr std::size_t kMaxCsvBytes = std::size_t{1} << 30;

/// Reads a CSV file (gzip or plain; RFC 4180 quoting, a UTF-8 byte-order mark skipped).
/// Labels are integers (class indices) or names (mapped to indices in sorted order). A
/// header's unnamed columns are left out (label_column counts the rest): a first one is a
/// row index (pandas' to_csv, R's write.csv), unnamed ones at the end must be empty.
/// Throws DataError "<file>:<line>:<col>: ..." for a cell that is not a finite number
/// (NaN and infinity included), "<file>:<line>: expected 5 fields, got 4" for a ragged row.
Dataset read_csv(const std::string& path, const CsvOptions& options = {});

/// The same from text in memory; `name` stands for the file in messages.
Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& options = {});

}  // namespace opgraph
