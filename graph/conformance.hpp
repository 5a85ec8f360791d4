// Conformance checks for any op (what `opgraph check` runs): metadata, shape rule
// against the kernel, vjp against finite differences, f32 against f64, 1 against N
// threads, linearity of the vjp, and the values the vjp really reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opgraph/graph/op.hpp>

namespace opgraph {

struct ConformanceOptions {
  std::uint64_t seed = 1;
  double gradient_tolerance = 1e-6;  // relative error of the vjp against f64 differences
  double f32_tolerance = 1e-3;       // f32 forward against f64, relative to the output's scale
  double linearity_tolerance = 1e-9;
};

/// One property checked for one op.
struct ConformanceItem {
  std::string property;  // "metadata", "shapes", "finite", "gradient", "f32", "threads", "linearity", "saves",
                         // "nan" (NaN in, NaN out), "in place", "epilogue", "activation", "relu vjp",
                         // "per item"
  bool passed = true;
  double measure = 0.0;  // the worst error seen, where one applies
  std::string detail;    // why it failed, or a note
};

struct ConformanceReport {
  std::string op;
  std::vector<ConformanceItem> items;
  bool passed() const;
  /// The first failing item, or nullptr.
  const ConformanceItem* first_failure() const;
  const ConformanceItem* item(const std::string& property) const;
};

/// Runs every property on `op`, on each of its check cases.
ConformanceReport check_conformance(const OpDef& op, const ConformanceOptions& options = {});

/// For an op whose vjp disagrees with finite differences: analytic against numeric
/// gradient element by element for the first failing case, and the usual culprits it
/// recognises (a constant factor such as a missing 1/N, a sign error, a wrong mask on
/// one side of a kink, a vjp that writes zeros, cancellation in the forward).
std::string explain_gradient(const OpDef& op, const ConformanceOptions& options = {});

}  // namespace opgraph
