// Comparing measured errors in checks: NaN and infinity are failures, never skipped.
// (std::max(acc, NaN) keeps acc, which let an op returning NaN pass every check.)
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

namespace opgraph {

/// The worse of two error measures. NaN wins: a computation that failed is the worst.
inline double worst_of(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(a, b);
}

/// Whether a measure passes a bound: only a number no larger than it does (NaN and
/// infinity fail).
inline bool within(double measure, double bound) { return std::isfinite(measure) && measure <= bound; }

/// The index of the first value that is NaN or infinite, or -1.
template <class T>
long long first_non_finite(const T* values, long long n) {
  for (long long i = 0; i < n; ++i)
    if (!std::isfinite(static_cast<double>(values[i]))) return i;
  return -1;
}

}  // namespace opgraph
