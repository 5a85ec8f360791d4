// Error formatting and name suggestions.
#include <opgraph/graph/error.hpp>

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace opgraph {

namespace {
std::string join_where(const std::string& where, const std::string& what) {
  return where.empty() ? what : where + ": " + what;
}
}  // namespace

Error::Error(std::string where, std::string what)
    : std::runtime_error(join_where(where, what)), where_(std::move(where)), detail_(std::move(what)) {}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance: Levenshtein plus adjacent transpositions,
  // so "sofmtax" is one edit from "softmax".
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string closest_name(std::string_view name, std::span<const std::string> known) {
  // A typo is at most a third of the name's length away (at least 1, at most 3 edits),
  // and fewer edits than the name has letters: any one-letter name is one edit from 'x'.
  const std::size_t limit = std::min(std::clamp<std::size_t>(name.size() / 3, 1, 3), name.size() - 1);
  if (name.empty()) return {};
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const auto& k : known) {
    const std::size_t d = edit_distance(name, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  return best;
}

std::string suggestion(std::string_view name, std::span<const std::string> known) {
  if (auto best = closest_name(name, known); !best.empty()) return " (did you mean '" + best + "'?)";
  if (known.empty()) return "";
  std::vector<std::string> sorted(known.begin(), known.end());
  std::sort(sorted.begin(), sorted.end());
  std::string list;
  for (const auto& k : sorted) list += (list.empty() ? "" : ", ") + k;
  return " (known: " + list + ")";
}

std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const std::size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(k) & 0xC0) != 0x80) return 0;
  if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F) || (c == 0xF0 && b(1) < 0x90) ||
      (c == 0xF4 && b(1) > 0x8F))
    return 0;
  return n;
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 1;
    if (c >= 0x80) n = utf8_length(text, i);
    if (i + std::max<std::size_t>(n, 1) > max) break;
    if (c >= 0x20 && c < 0x7F) out += static_cast<char>(c);
    else if (n > 1) out.append(text.substr(i, n));
    else out += fmt::format("\\x{:02x}", c), n = 1;
    i += n;
  }
  if (i < text.size()) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

}  // namespace opgraph
