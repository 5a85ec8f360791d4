// Data specs: one string naming a dataset source and its options, as the CLI takes them.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/datasets/dataset.hpp>
#include <opgraph/frontends/train.hpp>

namespace opgraph {

/// A dataset loaded from a spec: its training part and, when the source has one or the
/// spec asks for a split, its test part.
struct LoadedData {
  Dataset train;
  Dataset test;  // empty (size 0) when there is none
  std::optional<Standardizer> standardizer;  // fitted on train when the spec standardises
  std::string description;                   // one line for reports
  std::vector<std::string> files;            // the files read (outputs must not replace them)
  std::vector<std::string> notes;            // what was decided on the user's behalf, e.g. a CSV header
  std::vector<Feed> feeds;                   // inputs=x:0-1/z:2-3: which columns feed which input
  /// text: the entropy of the training part's character frequencies, in bits (a model
  /// that ignores context does no better); NaN for other sources.
  double unigram_bits = std::numeric_limits<double>::quiet_NaN();
  bool has_test() const { return test.size() > 0; }
};

/// Loads `spec`: "SOURCE[:key=value,...]". Sources: mnist, fashion (IDX folders under
/// the data folder), iris, wine (built in), digits, breast_cancer (the data folder's
/// small/), csv (file=PATH), and the synthetic xor, blobs, moons, circles, spirals,
/// boxes, sort_digits, and text (file=PATH: next-character windows). See data_spec_help() for every key. `data_folder` is the --data option ("":
/// $OPGRAPH_DATA). With `standardizer`, a spec that standardises uses those statistics
/// (from a checkpoint) instead of fitting new ones. Throws ParseError for a bad spec,
/// DataError for missing or bad data.
LoadedData load_data(std::string_view spec, const std::string& data_folder = {},
                     const Standardizer* standardizer = nullptr);

/// What `opgraph data` prints: every source, its keys and an example.
std::string data_spec_help();

}  // namespace opgraph
