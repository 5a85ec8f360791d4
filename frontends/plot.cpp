// SVG plots. Rasters (regions, images) are embedded as PNG data URIs.
#include <opgraph/frontends/plot.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <zlib.h>

#include <opgraph/frontends/train.hpp>

namespace opgraph {

namespace {

const char* const kColors[] = {"#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
                               "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c"};
const std::uint8_t kRegion[][3] = {{191, 210, 250}, {250, 196, 196}, {190, 236, 205}, {252, 226, 180}, {221, 205, 252},
                                   {186, 234, 243}, {250, 200, 224}, {216, 238, 186}, {210, 216, 224}, {253, 210, 186}};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

/// Round tick steps (1, 2, 5 x 10^k) covering [lo, hi] with about `count` ticks.
std::vector<double> ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / count;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) out.push_back(std::abs(t) < 1e-12 ? 0.0 : t);
  return out;
}

std::string svg_open(int w, int h) {
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"Helvetica, Arial, sans-serif\">\n"
                     "<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n",
                     w, h, w, h, w, h);
}

void append_be32(std::string& s, std::uint32_t v) {
  s += static_cast<char>(v >> 24);
  s += static_cast<char>(v >> 16);
  s += static_cast<char>(v >> 8);
  s += static_cast<char>(v);
}

void png_chunk(std::string& out, const char* type, const std::string& data) {
  append_be32(out, static_cast<std::uint32_t>(data.size()));
  std::string body = std::string(type, 4) + data;
  out += body;
  append_be32(out, static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()),
                                                    static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode_png(int width, int height, int channels, const std::vector<std::uint8_t>& pixels) {
  std::string raw;  // each row prefixed by filter type 0
  const std::size_t row = static_cast<std::size_t>(width * channels);
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(pixels.data()) + static_cast<std::size_t>(y) * row, row);
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(size, '\0');
  compress2(reinterpret_cast<Bytef*>(packed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
            static_cast<uLong>(raw.size()), 9);
  packed.resize(size);
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  append_be32(ihdr, static_cast<std::uint32_t>(width));
  append_be32(ihdr, static_cast<std::uint32_t>(height));
  ihdr += static_cast<char>(8);                     // bit depth
  ihdr += static_cast<char>(channels == 1 ? 0 : 2);  // grey or RGB
  ihdr += std::string(3, '\0');                      // compression, filter, interlace
  png_chunk(out, "IHDR", ihdr);
  png_chunk(out, "IDAT", packed);
  png_chunk(out, "IEND", "");
  return out;
}

std::string line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                       const std::vector<Series>& series) {
  const int W = 720, H = 440, left = 70, right = 20, top = 40, bottom = 60;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + (y0 == 0 ? 1 : std::abs(y0) * 0.1);
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  std::string out = svg_open(W, H);
  out += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n", W / 2, escape(title));
  out += fmt::format("<g stroke=\"#e5e7eb\" stroke-width=\"1\">\n");
  for (double t : ticks(y0, y1, 6)) out += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\"/>\n", left, py(t), W - right, py(t));
  out += "</g>\n<g font-size=\"11\" fill=\"#374151\">\n";
  for (double t : ticks(y0, y1, 6))
    out += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n", left - 6, py(t) + 4, t);
  for (double t : ticks(x0, x1, 8))
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", px(t), H - bottom + 16, t);
  out += "</g>\n";
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#6b7280\"/>\n", left, top,
                     W - left - right, H - top - bottom);
  out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n", (left + W - right) / 2,
                     H - 18, escape(x_label));
  out += fmt::format("<text x=\"16\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
                     (top + H - bottom) / 2, (top + H - bottom) / 2, escape(y_label));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    std::string points;
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    const char* color = kColors[k % 10];
    out += fmt::format("<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
                       "points=\"{}\"/>\n",
                       escape(s.name), color, points);
    const int ly = top + 14 + 18 * static_cast<int>(k);
    out += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>\n",
                       W - right - 150, ly, W - right - 126, ly, color, W - right - 120, ly + 4, escape(s.name));
  }
  return out + "</svg>\n";
}

std::string decision_regions(Trainer& trainer, const Dataset& points, const std::string& title, int resolution) {
  if (points.num_features() != 2) throw DataError(points.name, "decision regions need 2-D data");
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (std::int64_t i = 0; i < points.size(); ++i) {
    x0 = std::min(x0, points.features.at({i, 0}));
    x1 = std::max(x1, points.features.at({i, 0}));
    y0 = std::min(y0, points.features.at({i, 1}));
    y1 = std::max(y1, points.features.at({i, 1}));
  }
  const double mx = 0.08 * std::max(x1 - x0, 1e-9), my = 0.08 * std::max(y1 - y0, 1e-9);
  x0 -= mx, x1 += mx, y0 -= my, y1 += my;
  const int R = resolution;
  Tensor grid({static_cast<std::int64_t>(R) * R, 2}, points.features.dtype());
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < R; ++c) {
      const std::int64_t i = static_cast<std::int64_t>(r) * R + c;
      grid.set(2 * i, x0 + (c + 0.5) / R * (x1 - x0));
      grid.set(2 * i + 1, y1 - (r + 0.5) / R * (y1 - y0));  // row 0 at the top
    }
  const Predictions regions = trainer.predict(grid);
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(R) * R * 3);
  for (std::size_t i = 0; i < regions.labels.size(); ++i)
    for (int ch = 0; ch < 3; ++ch) rgb[3 * i + static_cast<std::size_t>(ch)] = kRegion[regions.labels[i] % 10][ch];
  const Predictions at_points = trainer.predict(points.features);

  const int S = 560, M = 50;
  auto px = [&](double x) { return M + (x - x0) / (x1 - x0) * S; };
  auto py = [&](double y) { return M + (y1 - y) / (y1 - y0) * S; };
  std::string out = svg_open(S + 2 * M, S + 2 * M);
  out += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n", M + S / 2, escape(title));
  out += fmt::format("<image class=\"regions\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" "
                     "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                     M, M, S, S, base64(encode_png(R, R, 3, rgb)));
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < points.size(); ++i) {
    const std::int64_t label = points.label(i);
    const bool miss = at_points.labels[static_cast<std::size_t>(i)] != label;
    wrong += miss;
    out += fmt::format("<circle class=\"point{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.2\" fill=\"{}\" stroke=\"{}\" "
                       "stroke-width=\"{}\"/>\n",
                       miss ? " miss" : "", px(points.features.at({i, 0})), py(points.features.at({i, 1})),
                       kColors[label % 10], miss ? "#b91c1c" : "white", miss ? 1.6 : 0.6);
  }
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#6b7280\"/>\n", M, M, S, S);
  out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} points, {} misclassified "
                     "(red outline)</text>\n",
                     M + S / 2, S + 2 * M - 16, points.size(), wrong);
  return out + "</svg>\n";
}

std::string misclassified_grid(const Dataset& data, const std::vector<std::int64_t>& predicted, const std::string& title,
                               int max_images) {
  if (data.sample_shape.rank() != 2) throw DataError(data.name, "an image grid needs image data [rows, cols]");
  const auto rows = static_cast<int>(data.sample_shape[0]), cols = static_cast<int>(data.sample_shape[1]);
  std::vector<std::int64_t> wrong;
  for (std::int64_t i = 0; i < data.size() && static_cast<int>(wrong.size()) < max_images; ++i)
    if (predicted[static_cast<std::size_t>(i)] != data.label(i)) wrong.push_back(i);
  std::int64_t total_wrong = 0;
  for (std::int64_t i = 0; i < data.size(); ++i) total_wrong += predicted[static_cast<std::size_t>(i)] != data.label(i);
  const int per_row = 8, cell = 84, img = 56, top = 56;
  const int lines = std::max<int>(1, (static_cast<int>(wrong.size()) + per_row - 1) / per_row);
  std::string out = svg_open(per_row * cell + 20, top + lines * (cell + 16) + 20);
  out += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{} ({} of {} misclassified)</text>\n"
                     "<text x=\"{}\" y=\"42\" font-size=\"11\" text-anchor=\"middle\" fill=\"#4b5563\">each image: "
                     "true label &#8594; predicted label</text>\n",
                     (per_row * cell + 20) / 2, escape(title), total_wrong, data.size(), (per_row * cell + 20) / 2);
  for (std::size_t k = 0; k < wrong.size(); ++k) {
    const std::int64_t i = wrong[k];
    double lo = 1e300, hi = -1e300;
    for (std::int64_t p = 0; p < rows * cols; ++p) {
      lo = std::min(lo, data.features.at(i * rows * cols + p));
      hi = std::max(hi, data.features.at(i * rows * cols + p));
    }
    std::vector<std::uint8_t> grey(static_cast<std::size_t>(rows * cols));
    for (std::int64_t p = 0; p < rows * cols; ++p)  // ink dark on white, whatever the scale
      grey[static_cast<std::size_t>(p)] =
          static_cast<std::uint8_t>(255.0 - 255.0 * (data.features.at(i * rows * cols + p) - lo) / std::max(hi - lo, 1e-12));
    const int x = 10 + static_cast<int>(k % per_row) * cell, y = top + static_cast<int>(k / per_row) * (cell + 16);
    out += fmt::format("<image class=\"sample\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                       "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                       x + (cell - img) / 2, y, img, img, base64(encode_png(cols, rows, 1, grey)));
    out += fmt::format("<text class=\"caption\" x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} &#8594; "
                       "<tspan fill=\"#b91c1c\">{}</tspan></text>\n",
                       x + cell / 2, y + img + 14, escape(data.class_name(data.label(i))),
                       escape(data.class_name(predicted[static_cast<std::size_t>(i)])));
  }
  return out + "</svg>\n";
}

std::string filter_grid(const Tensor& kernel, const std::string& title, int max_filters) {
  const Shape& k = kernel.shape();
  if (k.rank() != 4 || k.has_symbols())
    throw DataError(title, fmt::format("a filter grid needs a kernel [out, in, kh, kw], got {}", k));
  const std::int64_t outs = k[0], ins = k[1], kh = k[2], kw = k[3];
  const bool rgb = ins == 3;
  double scale = 0.0;
  for (std::int64_t i = 0; i < kernel.numel(); ++i) {
    const double v = std::abs(kernel.at(i));
    if (v > scale || std::isnan(v)) scale = v;  // a NaN weight makes the whole grid grey, not a silent picture
  }
  const int shown = static_cast<int>(std::min<std::int64_t>(outs, max_filters));
  const int per_row = 8, cell = 72, img = 56, top = 56;
  const int lines = std::max(1, (shown + per_row - 1) / per_row);
  std::string out = svg_open(per_row * cell + 20, top + lines * (cell + 4) + 10);
  out += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n"
                     "<text x=\"{}\" y=\"42\" font-size=\"11\" text-anchor=\"middle\" fill=\"#4b5563\">{} "
                     "filters of {}x{}{}: red positive, blue negative, one scale (largest |w| = {:.3g})</text>\n",
                     (per_row * cell + 20) / 2, escape(title), (per_row * cell + 20) / 2, outs, kh, kw,
                     rgb ? ", RGB" : ins > 1 ? fmt::format(", input channel 0 of {}", ins) : std::string(), scale);
  const auto pixels = static_cast<std::size_t>(kh * kw);
  for (int f = 0; f < shown; ++f) {
    std::vector<std::uint8_t> image(pixels * 3);
    for (std::size_t p = 0; p < pixels; ++p) {
      auto at = [&](std::int64_t c) { return kernel.at((f * ins + c) * kh * kw + static_cast<std::int64_t>(p)); };
      if (rgb) {
        for (int c = 0; c < 3; ++c)  // each channel from black (-scale) to full (+scale)
          image[p * 3 + static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(
              std::isnan(at(c)) || !(scale > 0) ? 128 : std::lround(127.5 + 127.5 * std::clamp(at(c) / scale, -1.0, 1.0)));
        continue;
      }
      const double v = std::isnan(at(0)) || !(scale > 0) ? 0.0 : std::clamp(at(0) / scale, -1.0, 1.0);
      const auto fade = static_cast<std::uint8_t>(std::lround(255.0 * (1.0 - std::abs(v))));
      image[p * 3 + 0] = v >= 0 ? 255 : fade;
      image[p * 3 + 1] = fade;
      image[p * 3 + 2] = v <= 0 ? 255 : fade;
    }
    const int x = 10 + (f % per_row) * cell, y = top + (f / per_row) * (cell + 4);
    out += fmt::format("<image class=\"filter\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                       "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                       x + (cell - img) / 2, y, img, img,
                       base64(encode_png(static_cast<int>(kw), static_cast<int>(kh), 3, image)));
  }
  return out + "</svg>\n";
}

std::string reconstruction_grid(const Dataset& data, const Tensor& outputs, const std::string& title, int max_images) {
  if (data.sample_shape.rank() != 2) throw DataError(data.name, "an image grid needs image data [rows, cols]");
  const auto rows = static_cast<int>(data.sample_shape[0]), cols = static_cast<int>(data.sample_shape[1]);
  const std::int64_t pixels = static_cast<std::int64_t>(rows) * cols;
  if (outputs.numel() != data.size() * pixels)
    throw DataError(data.name, fmt::format("outputs of shape {} are not one {}x{} image per sample", outputs.shape(), rows,
                                           cols));
  const int shown = static_cast<int>(std::min<std::int64_t>(data.size(), max_images));
  const int per_row = 8, cell = 72, img = 56, top = 56;
  const int lines = std::max(1, (shown + per_row - 1) / per_row);
  std::string out = svg_open(per_row * cell + 110, top + lines * (2 * img + 28) + 10);
  out += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n"
                     "<text x=\"{}\" y=\"42\" font-size=\"11\" text-anchor=\"middle\" fill=\"#4b5563\">each "
                     "column: the original above, the model's reconstruction below</text>\n",
                     (per_row * cell + 110) / 2, escape(title), (per_row * cell + 110) / 2);
  auto png = [&](auto value, double lo, double hi) {
    std::vector<std::uint8_t> grey(static_cast<std::size_t>(pixels));
    for (std::int64_t p = 0; p < pixels; ++p)  // ink dark on white
      grey[static_cast<std::size_t>(p)] = static_cast<std::uint8_t>(
          255.0 - 255.0 * std::clamp((value(p) - lo) / std::max(hi - lo, 1e-12), 0.0, 1.0));
    return base64(encode_png(cols, rows, 1, grey));
  };
  for (int k = 0; k < shown; ++k) {
    double lo = 1e300, hi = -1e300;
    for (std::int64_t p = 0; p < pixels; ++p) {
      lo = std::min(lo, data.features.at(k * pixels + p));
      hi = std::max(hi, data.features.at(k * pixels + p));
    }
    const int x = 100 + (k % per_row) * cell, y = top + (k / per_row) * (2 * img + 28);
    if (k % per_row == 0)
      out += fmt::format("<text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#4b5563\">original</text>\n"
                         "<text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#4b5563\">reconstructed</text>\n",
                         y + img / 2, y + img + 4 + img / 2);
    const std::string original = png([&](std::int64_t p) { return data.features.at(k * pixels + p); }, lo, hi);
    const std::string rebuilt = png([&](std::int64_t p) { return outputs.at(k * pixels + p); }, lo, hi);
    for (int which = 0; which < 2; ++which)
      out += fmt::format("<image class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                         "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                         which ? "reconstruction" : "original", x, y + which * (img + 4), img, img,
                         which ? rebuilt : original);
  }
  return out + "</svg>\n";
}

}  // namespace opgraph
