// Synthetic datasets. Points are generated class by class, then shuffled (seeded) so that
// minibatches mix the classes.
#include <opgraph/datasets/synthetic.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

namespace {

/// Collects (point, label) pairs straight into the dataset's tensors, allocated first: a
/// set past the memory limit is refused before a single point is drawn (no staging copy
/// of doubles). build() then shuffles the rows in place (seeded).
class Builder {
 public:
  Builder(std::string name, std::int64_t dims, std::int64_t points, std::uint64_t seed)
      : dims_(dims), rng_(seed) {
    data_.name = std::move(name);
    data_.features = Tensor({points, dims});
    data_.labels = Tensor({points});
  }
  Rng& rng() { return rng_; }
  void add(const std::vector<double>& point, std::int64_t label) {
    for (std::int64_t j = 0; j < dims_; ++j) data_.features.set(added_ * dims_ + j, point[static_cast<std::size_t>(j)]);
    data_.labels.set(added_, static_cast<double>(label));
    ++added_;
  }
  Dataset build(std::int64_t classes) {
    const std::int64_t n = added_;
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng_.below(i)]);
    // Row i of the result is row order[i] of what was added: follow each cycle of the
    // permutation once, holding one row aside.
    std::vector<char> done(static_cast<std::size_t>(n), 0);
    std::vector<double> row(static_cast<std::size_t>(dims_));
    auto copy_row = [&](std::int64_t to, std::int64_t from) {
      for (std::int64_t j = 0; j < dims_; ++j) data_.features.set(to * dims_ + j, data_.features.at(from * dims_ + j));
      data_.labels.set(to, data_.labels.at(from));
    };
    for (std::int64_t start = 0; start < n; ++start) {
      if (done[static_cast<std::size_t>(start)]) continue;
      for (std::int64_t j = 0; j < dims_; ++j) row[static_cast<std::size_t>(j)] = data_.features.at(start * dims_ + j);
      const double label = data_.labels.at(start);
      std::int64_t at = start;
      for (;;) {
        done[static_cast<std::size_t>(at)] = 1;
        const std::int64_t from = order[static_cast<std::size_t>(at)];
        if (from == start) break;
        copy_row(at, from);
        at = from;
      }
      for (std::int64_t j = 0; j < dims_; ++j) data_.features.set(at * dims_ + j, row[static_cast<std::size_t>(j)]);
      data_.labels.set(at, label);
    }
    for (std::int64_t c = 0; c < classes; ++c) data_.class_names.push_back(std::to_string(c));
    return std::move(data_);
  }

 private:
  std::int64_t dims_, added_ = 0;
  Rng rng_;
  Dataset data_;
};

void require_positive(std::int64_t n, const char* what, const char* set) {
  if (n < 1) throw DataError(set, fmt::format("{} must be at least 1, got {}", what, n));
}

}  // namespace

Dataset make_xor(std::int64_t copies, double noise, std::uint64_t seed) {
  require_positive(copies, "copies", "xor");
  Builder b("xor", 2, checked_mul(copies, 4, "xor: copies x 4"), seed);
  for (std::int64_t k = 0; k < copies; ++k)
    for (int a = 0; a < 2; ++a)
      for (int c = 0; c < 2; ++c)
        b.add({a + noise * b.rng().normal(), c + noise * b.rng().normal()}, a ^ c);
  if (copies == 1 && noise == 0.0) {  // the four points in their usual order
    Dataset d;
    d.name = "xor";
    d.features = Tensor::from({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1});
    d.labels = Tensor::from({4}, {0, 1, 1, 0});
    d.class_names = {"0", "1"};
    return d;
  }
  return b.build(2);
}

Dataset make_blobs(std::int64_t n, std::int64_t centers, double spread, std::int64_t dims, std::uint64_t seed) {
  require_positive(n, "n", "blobs");
  require_positive(centers, "centers", "blobs");
  require_positive(dims, "dims", "blobs");
  Builder b("blobs", dims, n, seed);
  std::vector<std::vector<double>> c(static_cast<std::size_t>(centers), std::vector<double>(static_cast<std::size_t>(dims)));
  for (auto& center : c)
    for (auto& v : center) v = b.rng().uniform(-10.0, 10.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = i % centers;
    std::vector<double> p(static_cast<std::size_t>(dims));
    for (std::size_t j = 0; j < p.size(); ++j) p[j] = c[static_cast<std::size_t>(k)][j] + spread * b.rng().normal();
    b.add(p, k);
  }
  return b.build(centers);
}

Dataset make_moons(std::int64_t n, double noise, std::uint64_t seed) {
  require_positive(n, "n", "moons");
  Builder b("moons", 2, n, seed);
  const std::int64_t outer = n / 2, inner = n - outer;
  const double pi = std::numbers::pi;
  for (std::int64_t i = 0; i < outer; ++i) {
    const double t = outer > 1 ? pi * static_cast<double>(i) / static_cast<double>(outer - 1) : 0.0;
    b.add({std::cos(t) + noise * b.rng().normal(), std::sin(t) + noise * b.rng().normal()}, 0);
  }
  for (std::int64_t i = 0; i < inner; ++i) {
    const double t = inner > 1 ? pi * static_cast<double>(i) / static_cast<double>(inner - 1) : 0.0;
    b.add({1.0 - std::cos(t) + noise * b.rng().normal(), 0.5 - std::sin(t) + noise * b.rng().normal()}, 1);
  }
  return b.build(2);
}

Dataset make_circles(std::int64_t n, double noise, double factor, std::uint64_t seed) {
  require_positive(n, "n", "circles");
  if (!(factor > 0.0 && factor < 1.0))
    throw DataError("circles", fmt::format("factor must be between 0 and 1, got {}", factor));
  Builder b("circles", 2, n, seed);
  const std::int64_t outer = n / 2, inner = n - outer;
  const double tau = 2.0 * std::numbers::pi;
  for (std::int64_t i = 0; i < outer; ++i) {
    const double t = tau * static_cast<double>(i) / static_cast<double>(outer);
    b.add({std::cos(t) + noise * b.rng().normal(), std::sin(t) + noise * b.rng().normal()}, 0);
  }
  for (std::int64_t i = 0; i < inner; ++i) {
    const double t = tau * static_cast<double>(i) / static_cast<double>(inner);
    b.add({factor * std::cos(t) + noise * b.rng().normal(), factor * std::sin(t) + noise * b.rng().normal()}, 1);
  }
  return b.build(2);
}

Dataset make_spirals(std::int64_t n, std::int64_t classes, double noise, std::uint64_t seed) {
  require_positive(n, "n", "spirals");
  require_positive(classes, "classes", "spirals");
  Builder b("spirals", 2, n, seed);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = i % classes;
    const double r = static_cast<double>(i / classes + 1) / static_cast<double>((n + classes - 1) / classes);
    const double angle = 4.0 * r + 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(classes) +
                         noise * b.rng().normal();
    b.add({r * std::sin(angle), r * std::cos(angle)}, k);
  }
  return b.build(classes);
}

Dataset make_uniform_boxes(std::int64_t n, std::vector<std::pair<double, double>> boxes, std::int64_t dims,
                           std::uint64_t seed) {
  require_positive(n, "n", "boxes");
  require_positive(dims, "dims", "boxes");
  if (boxes.empty()) throw DataError("boxes", "needs at least one box");
  Builder b("boxes", dims, n, seed);
  const auto classes = static_cast<std::int64_t>(boxes.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = i % classes;
    const auto [lo, hi] = boxes[static_cast<std::size_t>(k)];
    std::vector<double> p(static_cast<std::size_t>(dims));
    for (auto& v : p) v = b.rng().uniform(lo, hi);
    b.add(p, k);
  }
  return b.build(classes);
}

Dataset make_sort_digits(std::int64_t n, std::int64_t length, std::int64_t digits, std::uint64_t seed) {
  require_positive(n, "n", "sort_digits");
  require_positive(length, "length", "sort_digits");
  if (digits < 2) throw DataError("sort_digits", fmt::format("digits must be at least 2, got {}", digits));
  checked_mul(n, length, "sort_digits: n x length");
  Rng rng(seed);
  Dataset d;
  d.name = "sort_digits";
  d.features = Tensor({n, length});
  d.labels = Tensor({n, length});
  std::vector<std::int64_t> seq(static_cast<std::size_t>(length));
  for (std::int64_t i = 0; i < n; ++i) {
    for (auto& v : seq) v = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(digits)));
    for (std::int64_t t = 0; t < length; ++t) d.features.set(i * length + t, static_cast<double>(seq[static_cast<std::size_t>(t)]));
    std::sort(seq.begin(), seq.end());
    for (std::int64_t t = 0; t < length; ++t) d.labels.set(i * length + t, static_cast<double>(seq[static_cast<std::size_t>(t)]));
  }
  for (std::int64_t c = 0; c < digits; ++c) d.class_names.push_back(std::to_string(c));
  return d;
}

}  // namespace opgraph
