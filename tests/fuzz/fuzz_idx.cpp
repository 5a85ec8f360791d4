// libFuzzer target: the IDX reader (MNIST's format). Any input must parse or throw
// opgraph::DataError; what parses holds exactly the bytes its header announces.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <opgraph/datasets/idx.hpp>
#include <opgraph/graph/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const opgraph::IdxArray a = opgraph::parse_idx(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.idx");
    std::size_t count = 1;
    for (auto d : a.dims) count *= static_cast<std::size_t>(d);
    if (count != a.values.size()) __builtin_trap();
  } catch (const opgraph::DataError&) {
  }
  return 0;
}
