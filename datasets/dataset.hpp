// A labelled dataset in memory, and the transforms the reference experiments use.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// Said when data holds one value a sample fewer than a model or a standardisation takes:
/// a CSV file's last column was read as the label, and data to predict on has none.
inline constexpr const char* kOneShortHint =
    " (one short: is the data's last column a feature? a CSV file's is read as the label unless label=none)";

/// The most classes a dataset's labels may make (2^24): more than any vocabulary, and
/// per-class tables (counts, a stratified split, a confusion matrix) stay bounded.
inline constexpr std::int64_t kMaxClasses = std::int64_t{1} << 24;

/// Samples as rows: features [n, d] (f32) and labels [n] holding class indices.
struct Dataset {
  std::string name;
  Tensor features;                       // [n, d]
  Tensor labels;                         // [n] class indices as values 0, 1, ...
  std::vector<std::string> class_names;  // index -> name; may be empty
  Shape sample_shape;                    // one sample for display, e.g. [28,28]; empty: [d]

  std::int64_t size() const { return features.shape().rank() ? features.shape()[0] : 0; }
  std::int64_t num_features() const { return features.shape().rank() > 1 ? features.shape()[1] : 1; }
  /// Number of classes: the class names, or the largest label + 1. Throws DataError above
  /// kMaxClasses (a label such as 2^40 would otherwise size every per-class table).
  std::int64_t num_classes() const;
  /// Whether every label is a class index (a whole number, at least 0; -1 marks an ignored
  /// position of sequence labels): false for a regression's real-valued targets.
  bool has_class_labels() const;
  std::int64_t label(std::int64_t row) const { return static_cast<std::int64_t>(labels.at(row)); }
  /// Whether the samples carry labels: false for data to predict on, whose labels are [n, 0]
  /// (a CSV file read with label=none).
  bool has_labels() const { return size() == 0 || labels.numel() > 0; }
  std::vector<std::int64_t> class_counts() const;
  /// The name of class `c` ("5" for MNIST, "setosa" for iris).
  std::string class_name(std::int64_t c) const;
  /// A copy holding the given rows, in that order.
  Dataset rows(const std::vector<std::int64_t>& indices) const;
  /// The same data in another dtype.
  Dataset to(DType dtype) const;
};

/// One-hot rows [n, classes] for class-index labels [n].
Tensor one_hot(const Tensor& labels, std::int64_t classes);

/// Features multiplied by `factor` (e.g. 1/255 for pixels).
Dataset scaled(const Dataset& data, double factor);

/// Per-feature standardisation, fitted on one set and applied to others.
class Standardizer {
 public:
  /// Learns each feature's mean and standard deviation (constant features keep scale 1).
  void fit(const Dataset& data);
  /// A standardiser with known statistics (e.g. saved in a checkpoint).
  static Standardizer from(std::vector<double> mean, std::vector<double> stddev);
  Dataset apply(const Dataset& data) const;
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& stddev() const { return stddev_; }

 private:
  std::vector<double> mean_, stddev_;
};

struct Split {
  Dataset train, test;
};

/// A seeded random split; `stratified` keeps each class's share in both parts.
Split train_test_split(const Dataset& data, double test_fraction, std::uint64_t seed, bool stratified = false);

/// Keeps the rows of the listed classes and relabels them 0, 1, ... in that order
/// (MNIST {5, 8} -> 5 becomes 0, 8 becomes 1).
Dataset filter_classes(const Dataset& data, const std::vector<std::int64_t>& keep);

/// The first `n` rows of each class, in file order (all of a class when it has fewer).
Dataset first_per_class(const Dataset& data, std::int64_t n);

}  // namespace opgraph
