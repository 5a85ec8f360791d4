// Text windows for next-character prediction.
#include <opgraph/datasets/text.hpp>

#include <array>
#include <cmath>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

namespace {

/// Windows over text[begin, end): starts begin, begin + stride, ... while a window and
/// its next byte fit.
Dataset windows(std::string_view text, std::size_t begin, std::size_t end, std::int64_t length, std::int64_t stride,
                const std::string& name) {
  const auto span = static_cast<std::int64_t>(end - begin);
  const std::int64_t n = span > length ? (span - length - 1) / stride + 1 : 0;
  Dataset d;
  d.name = name;
  d.features = Tensor({n, length}, DType::f32);  // reserves the memory first: refused before any copy
  d.labels = Tensor({n, length}, DType::f32);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::size_t at = begin + static_cast<std::size_t>(i * stride);
    for (std::int64_t t = 0; t < length; ++t) {
      d.features.set(i * length + t, static_cast<unsigned char>(text[at + static_cast<std::size_t>(t)]));
      d.labels.set(i * length + t, static_cast<unsigned char>(text[at + static_cast<std::size_t>(t) + 1]));
    }
  }
  for (int c = 0; c < 256; ++c) {
    const auto ch = static_cast<char>(c);
    d.class_names.push_back(c == '\n' ? "\\n" : c == '\t' ? "\\t" : c >= 32 && c < 127 ? std::string(1, ch)
                                                                                       : fmt::format("\\x{:02x}", c));
  }
  return d;
}

}  // namespace

TextWindows make_text_windows(std::string_view text, std::int64_t length, std::int64_t stride, double test_fraction,
                              const std::string& name) {
  if (length < 1) throw DataError(name, fmt::format("length must be at least 1, got {}", length));
  if (stride < 1) throw DataError(name, fmt::format("stride must be at least 1, got {}", stride));
  if (!(test_fraction >= 0.0 && test_fraction < 1.0))
    throw DataError(name, fmt::format("test must be in [0, 1), got {}", test_fraction));
  const auto cut = static_cast<std::size_t>(std::llround(static_cast<double>(text.size()) * (1.0 - test_fraction)));
  TextWindows w;
  w.train = windows(text, 0, cut, length, stride, name);
  if (w.train.size() == 0)
    throw DataError(name, fmt::format("the training part has {} character{}, too few for one window of {} and the "
                                      "character after it: use a longer text or a smaller length",
                                      cut, cut == 1 ? "" : "s", length));
  if (test_fraction > 0.0) {
    w.test = windows(text, cut, text.size(), length, length, name);  // disjoint windows: each character once
    if (w.test.size() == 0)
      throw DataError(name, fmt::format("the held-out part has {} character{}, too few for one window of {}: raise "
                                        "test= or lower length=",
                                        text.size() - cut, text.size() - cut == 1 ? "" : "s", length));
  }
  std::array<double, 256> counts{};
  for (std::size_t i = 0; i < cut; ++i) counts[static_cast<unsigned char>(text[i])] += 1;
  for (double c : counts)
    if (c > 0) w.unigram_bits -= c / static_cast<double>(cut) * std::log2(c / static_cast<double>(cut));
  return w;
}

}  // namespace opgraph
