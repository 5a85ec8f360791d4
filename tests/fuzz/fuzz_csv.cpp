// libFuzzer target: the CSV reader, with the header mode and label column taken from the
// first byte. Any input must parse or throw opgraph::Error; what parses is consistent.
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
    for (std::int64_t r = 0; r < d.size(); ++r)
      if (d.label(r) < 0) __builtin_trap();
  } catch (const opgraph::Error&) {
  }
  return 0;
}
