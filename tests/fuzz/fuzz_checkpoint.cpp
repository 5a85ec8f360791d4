// libFuzzer target: the checkpoint reader. Any input must decode or throw
// opgraph::DataError; what decodes encodes to bytes that decode to the same checkpoint.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/graph/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  opgraph::Checkpoint c;
  try {
    c = opgraph::decode_checkpoint(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.ckpt");
  } catch (const opgraph::DataError&) {
    return 0;
  }
  const std::string once = opgraph::encode_checkpoint(c);
  const std::string twice = opgraph::encode_checkpoint(opgraph::decode_checkpoint(once, "encoded.ckpt"));
  if (once != twice) __builtin_trap();
  return 0;
}
