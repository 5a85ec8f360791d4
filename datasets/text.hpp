// Text as a next-character task: windows of bytes, each labelled with the bytes that
// follow, for character-level language models.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

struct TextWindows {
  Dataset train, test;       // features [n, length]: byte values 0-255; labels [n, length]: the next bytes
  double unigram_bits = 0;   // entropy of the training part's byte frequencies, bits per character
};

/// Windows of `length` bytes starting every `stride` bytes, labels the same window one
/// byte later. The text is split by position: the last `test_fraction` of it is held out
/// (no window crosses the cut), so the test part is text the model never saw. Classes are
/// the 256 byte values (UTF-8 text is modelled byte by byte). Throws DataError when either
/// part is shorter than one window.
TextWindows make_text_windows(std::string_view text, std::int64_t length, std::int64_t stride, double test_fraction,
                              const std::string& name = "text");

}  // namespace opgraph
