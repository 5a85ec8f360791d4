// libFuzzer target: the CSV reader, with the header mode and label column taken from the
// first byte. Any input must parse or throw opgraph::Error; what parses is consistent: one
// label per row, class indices or (a regression) finite real targets.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <opgraph/datasets/csv.hpp>
#include <opgraph/graph/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  opgraph::CsvOptions options;
  options.header = static_cast<opgraph::CsvOptions::Header>(data[0] % 4);
  options.label_column = static_cast<int>((data[0] >> 2) % 5) - 2;  // -2 .. 2
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const opgraph::Dataset d = opgraph::parse_csv(text, "fuzz.csv", options);
    if (d.labels.numel() != d.size()) __builtin_trap();
    // Class indices (whole numbers, at least 0), or a regression's real targets when some
    // label is not whole: finite either way.
    bool whole = true;
    for (std::int64_t r = 0; r < d.size(); ++r) {
      const double v = d.labels.at(r);
      if (!std::isfinite(v)) __builtin_trap();
      whole = whole && v == std::floor(v);
    }
    for (std::int64_t r = 0; whole && r < d.size(); ++r)
      if (d.label(r) < 0) __builtin_trap();
  } catch (const opgraph::Error&) {
  }
  return 0;
}
