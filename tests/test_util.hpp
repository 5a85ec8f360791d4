// Small helpers shared by the tests: seeded tensors and labels, a NaN-keeping maximum.
#pragma once

#include <cmath>

#include <opgraph/graph/random.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph::test {

inline Tensor random_tensor(Shape shape, double lo, double hi, std::uint64_t seed, DType dtype = DType::f64) {
  Tensor t(std::move(shape), dtype);
  Rng rng(seed);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.set(i, rng.uniform(lo, hi));
  return t;
}

/// Class indices in [0, classes) as a [rows] tensor.
inline Tensor labels(std::int64_t rows, std::int64_t classes, std::uint64_t seed, DType dtype = DType::f64) {
  Tensor t({rows}, dtype);
  Rng rng(seed);
  for (std::int64_t i = 0; i < rows; ++i) t.set(i, static_cast<double>(rng.below(static_cast<std::uint64_t>(classes))));
  return t;
}

/// The larger of a running worst error and a new one, where a NaN wins and stays:
/// std::max(worst, NaN) keeps worst, and a NaN result would pass a tolerance check unseen.
inline double worse(double worst, double d) { return std::isnan(worst) || d <= worst ? worst : d; }

}  // namespace opgraph::test
