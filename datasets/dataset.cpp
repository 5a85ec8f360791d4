// Dataset helpers and transforms.
#include <opgraph/datasets/dataset.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include <opgraph/graph/random.hpp>

namespace opgraph {

std::int64_t Dataset::num_classes() const {
  std::int64_t classes = static_cast<std::int64_t>(class_names.size());
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    const double v = labels.at(i);
    if (!std::isfinite(v)) continue;  // no integer for NaN or infinity
    if (v >= static_cast<double>(kMaxClasses)) {
      const std::int64_t per = size() > 0 ? labels.numel() / size() : 1;
      throw DataError(name.empty() ? "data" : name,
                      fmt::format("label {:.17g} of sample {} would make {:.17g} classes, more than the {} a dataset may "
                                  "hold: class labels count 0, 1, 2, ... (renumber them; for real-valued targets use a "
                                  "regression loss such as mse)",
                                  v, i / std::max<std::int64_t>(per, 1), std::floor(v) + 1, kMaxClasses));
    }
    classes = std::max(classes, label(i) + 1);
  }
  return classes;
}

bool Dataset::has_class_labels() const {
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    const double v = labels.at(i);
    if (!std::isfinite(v) || v != std::floor(v) || v < -1.0) return false;
  }
  return true;
}

std::vector<std::int64_t> Dataset::class_counts() const {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(num_classes()), 0);
  // Every label: one per sample, or one per position of sequence labels [n, T]; negative
  // labels (ignored positions) are not classes.
  for (std::int64_t i = 0; i < labels.numel(); ++i)
    if (label(i) >= 0) ++counts[static_cast<std::size_t>(label(i))];
  return counts;
}

std::string Dataset::class_name(std::int64_t c) const {
  if (c >= 0 && c < static_cast<std::int64_t>(class_names.size())) return class_names[static_cast<std::size_t>(c)];
  return std::to_string(c);
}

Dataset Dataset::rows(const std::vector<std::int64_t>& indices) const {
  Dataset out;
  out.name = name;
  out.class_names = class_names;
  out.sample_shape = sample_shape;
  const auto n = static_cast<std::int64_t>(indices.size());
  std::vector<std::int64_t> fdims = features.shape().dims();
  fdims[0] = n;
  out.features = Tensor(Shape(fdims), features.dtype());
  std::vector<std::int64_t> ldims = labels.shape().dims();
  ldims[0] = n;
  out.labels = Tensor(Shape(ldims), labels.dtype());
  const std::size_t frow = features.nbytes() / static_cast<std::size_t>(std::max<std::int64_t>(size(), 1));
  const std::size_t lrow = labels.nbytes() / static_cast<std::size_t>(std::max<std::int64_t>(size(), 1));
  auto* fdst = static_cast<std::byte*>(out.features.raw());
  auto* ldst = static_cast<std::byte*>(out.labels.raw());
  const auto* fsrc = static_cast<const std::byte*>(features.raw());
  const auto* lsrc = static_cast<const std::byte*>(labels.raw());
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = indices[static_cast<std::size_t>(i)];
    if (r < 0 || r >= size()) throw DataError(name, fmt::format("row {} out of range (the set has {})", r, size()));
    std::memcpy(fdst + static_cast<std::size_t>(i) * frow, fsrc + static_cast<std::size_t>(r) * frow, frow);
    std::memcpy(ldst + static_cast<std::size_t>(i) * lrow, lsrc + static_cast<std::size_t>(r) * lrow, lrow);
  }
  return out;
}

Dataset Dataset::to(DType dtype) const {
  Dataset out = *this;
  out.features = features.to(dtype);
  out.labels = labels.to(dtype);
  return out;
}

Tensor one_hot(const Tensor& labels, std::int64_t classes) {
  const std::int64_t n = labels.numel();
  Tensor out({n, classes}, labels.dtype());
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = labels.at(i);
    // Range first: casting NaN or a huge value to an integer is undefined.
    if (!(v >= 0.0 && v < static_cast<double>(classes)) || v != std::floor(v))
      throw DataError(fmt::format("one_hot: label {} in row {} is not a class index in [0, {})", v, i, classes));
    out.set(i * classes + static_cast<std::int64_t>(v), 1.0);
  }
  return out;
}

Dataset scaled(const Dataset& data, double factor) {
  Dataset out = data;
  out.features = data.features.clone();
  auto scale = [&](auto* v) {
    using T = std::remove_pointer_t<decltype(v)>;
    for (std::int64_t i = 0; i < out.features.numel(); ++i) v[i] = static_cast<T>(v[i] * factor);
  };
  if (out.features.dtype() == DType::f32) scale(out.features.data<float>());
  else scale(out.features.data<double>());
  return out;
}

void Standardizer::fit(const Dataset& data) {
  const std::int64_t n = data.size(), d = data.num_features();
  if (n == 0) throw DataError(data.name, "cannot standardise an empty set");
  mean_.assign(static_cast<std::size_t>(d), 0.0);
  stddev_.assign(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) mean_[static_cast<std::size_t>(j)] += data.features.at(i * d + j);
  for (auto& m : mean_) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const double diff = data.features.at(i * d + j) - mean_[static_cast<std::size_t>(j)];
      stddev_[static_cast<std::size_t>(j)] += diff * diff;
    }
  for (auto& s : stddev_) {
    s = std::sqrt(s / static_cast<double>(n));
    if (s == 0.0) s = 1.0;  // a constant feature stays centred, not divided by zero
  }
}

Standardizer Standardizer::from(std::vector<double> mean, std::vector<double> stddev) {
  if (mean.size() != stddev.size())
    throw DataError(fmt::format("standardiser: {} means and {} deviations", mean.size(), stddev.size()));
  Standardizer s;
  s.mean_ = std::move(mean);
  s.stddev_ = std::move(stddev);
  return s;
}

Dataset Standardizer::apply(const Dataset& data) const {
  const std::int64_t n = data.size(), d = data.num_features();
  if (static_cast<std::size_t>(d) != mean_.size())
    throw DataError(data.name,
                    fmt::format("each sample has {} features, the standardisation (fitted in training) takes {}{}", d,
                                mean_.size(),
                                static_cast<std::size_t>(d) + 1 == mean_.size() ? kOneShortHint : ""));
  Dataset out = data;
  out.features = data.features.clone();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const auto k = static_cast<std::size_t>(j);
      out.features.set(i * d + j, (data.features.at(i * d + j) - mean_[k]) / stddev_[k]);
    }
  return out;
}

namespace {
void shuffle(std::vector<std::int64_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}
}  // namespace

Split train_test_split(const Dataset& data, double test_fraction, std::uint64_t seed, bool stratified) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0))
    throw DataError(data.name, fmt::format("test fraction must be between 0 and 1, got {}", test_fraction));
  Rng rng(seed);
  std::vector<std::int64_t> train, test;
  auto take = [&](std::vector<std::int64_t> idx) {
    shuffle(idx, rng);
    const auto n_test = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(idx.size())));
    test.insert(test.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n_test));
    train.insert(train.end(), idx.begin() + static_cast<std::ptrdiff_t>(n_test), idx.end());
  };
  // Strata are classes of samples: sequence labels [n, T] and real-valued targets (a
  // regression) split at random. (A negative target had indexed the strata out of bounds.)
  bool classes = data.labels.shape().rank() <= 1 && data.has_class_labels();
  for (std::int64_t i = 0; classes && i < data.labels.numel(); ++i) classes = data.labels.at(i) >= 0.0;
  if (stratified && classes) {
    std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(data.num_classes()));
    for (std::int64_t i = 0; i < data.size(); ++i) by_class[static_cast<std::size_t>(data.label(i))].push_back(i);
    for (auto& c : by_class) take(std::move(c));
    // Mix the classes again so that an unshuffled pass does not see them in blocks.
    shuffle(train, rng);
    shuffle(test, rng);
  } else {
    std::vector<std::int64_t> all(static_cast<std::size_t>(data.size()));
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
    take(std::move(all));
  }
  return {data.rows(train), data.rows(test)};
}

Dataset filter_classes(const Dataset& data, const std::vector<std::int64_t>& keep) {
  std::vector<std::int64_t> rows;
  std::vector<std::int64_t> new_label(static_cast<std::size_t>(std::max<std::int64_t>(data.num_classes(), 0)), -1);
  for (std::size_t k = 0; k < keep.size(); ++k) {
    if (keep[k] < 0 || keep[k] >= data.num_classes())
      throw DataError(data.name, fmt::format("no class {} (the set has {} classes)", keep[k], data.num_classes()));
    new_label[static_cast<std::size_t>(keep[k])] = static_cast<std::int64_t>(k);
  }
  for (std::int64_t i = 0; i < data.size(); ++i)
    if (new_label[static_cast<std::size_t>(data.label(i))] >= 0) rows.push_back(i);
  Dataset out = data.rows(rows);
  for (std::int64_t i = 0; i < out.size(); ++i)
    out.labels.set(i, static_cast<double>(new_label[static_cast<std::size_t>(out.label(i))]));
  out.class_names.clear();
  for (auto c : keep) out.class_names.push_back(data.class_name(c));
  return out;
}

Dataset first_per_class(const Dataset& data, std::int64_t n) {
  std::vector<std::int64_t> taken(static_cast<std::size_t>(data.num_classes()), 0), rows;
  for (std::int64_t i = 0; i < data.size(); ++i) {
    auto& t = taken[static_cast<std::size_t>(data.label(i))];
    if (t < n) {
      ++t;
      rows.push_back(i);
    }
  }
  return data.rows(rows);
}

}  // namespace opgraph
