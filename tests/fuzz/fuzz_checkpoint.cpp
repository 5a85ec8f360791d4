// libFuzzer target: the checkpoint reader. Any input must decode or throw
// opgraph::DataError; what decodes encodes to bytes that decode to the same checkpoint.
// Each input is tried twice: as it is, and with its trailing CRC-32 recomputed, so that
// mutations get past the checksum into the sections and tensors behind it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <zlib.h>

#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/graph/error.hpp>

namespace {
void decode_and_round_trip(std::string_view bytes) {
  opgraph::Checkpoint c;
  try {
    c = opgraph::decode_checkpoint(bytes, "fuzz.ckpt");
  } catch (const opgraph::DataError&) {
    return;
  }
  const std::string once = opgraph::encode_checkpoint(c);
  const std::string twice = opgraph::encode_checkpoint(opgraph::decode_checkpoint(once, "encoded.ckpt"));
  if (once != twice) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  decode_and_round_trip(raw);
  if (size >= 4) {
    std::string fixed(raw);
    const auto crc = static_cast<std::uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(fixed.data()), static_cast<uInt>(fixed.size() - 4)));
    std::memcpy(fixed.data() + fixed.size() - 4, &crc, 4);
    decode_and_round_trip(fixed);
  }
  return 0;
}
