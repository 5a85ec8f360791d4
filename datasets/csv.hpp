// CSV datasets: one sample per line, features then (by default) the label.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

struct CsvOptions {
  enum class Header : std::uint8_t {
    detect,   // a first line with a non-number in it is a header; sklearn's form is recognised
    none,     // every line is a sample
    names,    // the first line names the columns
    sklearn,  // the first line is "n_samples,n_features,class0,class1,..." (scikit-learn's bundled sets)
  };
  Header header = Header::detect;
  /// The column holding the label; negative counts from the end (-1: the last).
  int label_column = -1;
  char delimiter = ',';
};

/// Reads a CSV file (gzip or plain). Labels are integers (class indices) or names (mapped
/// to indices in sorted order). Throws DataError "<file>:<line>:<col>: ..." for a cell
/// that is not a number, "<file>:<line>: expected 5 fields, got 4" for a ragged row.
Dataset read_csv(const std::string& path, const CsvOptions& options = {});

/// The same from text in memory; `name` stands for the file in messages.
Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& options = {});

}  // namespace opgraph
