// The sliding window of conv2d and the 2-D pools: kernel, stride, dilation and padding
// read from the attributes (one value for both axes or one per axis, as PyTorch's ints or
// pairs), the output size, and the attribute checks with their messages.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <opgraph/graph/op.hpp>

namespace opgraph::ops::detail {

/// Attribute check: 1 or 2 positive ints.
inline std::string positive_pair(const AttrValue& v) {
  if (v.type() != AttrType::int_list || (v.as_ints().size() != 1 && v.as_ints().size() != 2))
    return "must be one int or two (height, width)";
  for (auto d : v.as_ints())
    if (d < 1) return "must be positive";
  return "";
}

/// Attribute check for padding: 1, 2 or 4 non-negative ints ([all], [height, width], or
/// ONNX's [top, left, bottom, right]), or (`words`) same / valid.
inline std::string padding_value(const AttrValue& v, bool words) {
  if (words && v.type() == AttrType::string) {
    if (v.as_string() == "same" || v.as_string() == "valid") return "";
    return "must be ints, same or valid";
  }
  if (v.type() != AttrType::int_list || (v.as_ints().size() != 1 && v.as_ints().size() != 2 && v.as_ints().size() != 4))
    return words ? "must be 1, 2 or 4 ints (all sides; height, width; top, left, bottom, right), same or valid"
                 : "must be 1, 2 or 4 ints (all sides; height, width; top, left, bottom, right)";
  for (auto d : v.as_ints())
    if (d < 0) return "must not be negative";
  return "";
}

inline std::array<std::int64_t, 2> pair_of(const IntList& v) { return {v[0], v.size() > 1 ? v[1] : v[0]}; }

/// One window geometry over [H, W] planes.
struct Window {
  std::int64_t kh = 1, kw = 1;   // kernel
  std::int64_t sh = 1, sw = 1;   // stride
  std::int64_t dh = 1, dw = 1;   // dilation
  std::int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // padding: top, left, bottom, right
  std::int64_t h = 0, w = 0;     // input plane
  std::int64_t ho = 0, wo = 0;   // output plane

  std::int64_t span_h() const { return dh * (kh - 1) + 1; }
  std::int64_t span_w() const { return dw * (kw - 1) + 1; }
  /// The output columns ox whose tap at kernel column j reads inside the row: [lo, hi).
  std::array<std::int64_t, 2> valid_cols(std::int64_t j) const { return valid(j * dw - pl, sw, w, wo); }
  std::array<std::int64_t, 2> valid_rows(std::int64_t i) const { return valid(i * dh - pt, sh, h, ho); }

 private:
  // o in [0, outs) with 0 <= o * stride + offset < size.
  static std::array<std::int64_t, 2> valid(std::int64_t offset, std::int64_t stride, std::int64_t size, std::int64_t outs) {
    std::int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    std::int64_t hi = size - offset <= 0 ? 0 : (size - offset - 1) / stride + 1;
    lo = std::min(lo, outs);
    hi = std::clamp(hi, lo, outs);
    return {lo, hi};
  }
};

/// The window as ONNX's Conv and pool attributes: kernel_shape, strides, pads (top, left,
/// bottom, right as ONNX orders them: x1_begin, x2_begin, x1_end, x2_end), dilations.
inline Attrs onnx_window(const Window& w, bool dilations) {
  Attrs a{{"kernel_shape", IntList{w.kh, w.kw}}, {"strides", IntList{w.sh, w.sw}}, {"pads", IntList{w.pt, w.pl, w.pb, w.pr}}};
  if (dilations) a.emplace_back("dilations", IntList{w.dh, w.dw});
  return a;
}

/// The window of an op over input planes [h, w]: kernel from `kernel` (ints), the rest
/// from the attributes `stride` (none: the kernel), `dilation` (if the op has it) and
/// `padding`. `c` is a ShapeContext or a Kernel (both read attributes). Fails through
/// `fail(message)` when the window does not fit.
template <class C, class Fail>
Window window_of(const C& c, std::array<std::int64_t, 2> kernel, std::int64_t h, std::int64_t w, bool has_dilation,
                 Fail&& fail) {
  Window win;
  win.kh = kernel[0];
  win.kw = kernel[1];
  win.h = h;
  win.w = w;
  const AttrValue& stride = c.attr("stride");
  const auto s = stride.is_none() ? kernel : pair_of(stride.as_ints());
  win.sh = s[0];
  win.sw = s[1];
  if (has_dilation) {
    const auto d = pair_of(c.attr_ints("dilation"));
    win.dh = d[0];
    win.dw = d[1];
  }
  const AttrValue& padding = c.attr("padding");
  if (padding.type() == AttrType::string) {
    if (padding.as_string() == "same") {
      if (win.sh != 1 || win.sw != 1) fail("padding=same needs stride 1 (as in PyTorch)");
      // The extra row or column of an even kernel goes at the bottom and right (PyTorch).
      win.pt = (win.span_h() - 1) / 2;
      win.pb = win.span_h() - 1 - win.pt;
      win.pl = (win.span_w() - 1) / 2;
      win.pr = win.span_w() - 1 - win.pl;
    }
  } else {
    const IntList& p = padding.as_ints();
    if (p.size() == 4) {
      win.pt = p[0], win.pl = p[1], win.pb = p[2], win.pr = p[3];
    } else {
      const auto hw = pair_of(p);
      win.pt = win.pb = hw[0];
      win.pl = win.pr = hw[1];
    }
  }
  const std::int64_t rows = h + win.pt + win.pb - win.span_h(), cols = w + win.pl + win.pr - win.span_w();
  if (rows < 0 || cols < 0)
    fail(fmt::format("a {}x{} window{} does not fit in a {}x{} input padded by {}", win.kh, win.kw,
                     win.dh * win.dw > 1 ? fmt::format(" dilated {}x{}", win.dh, win.dw) : std::string(), h, w,
                     win.pt + win.pb == 0 && win.pl + win.pr == 0 ? std::string("nothing")
                                                                   : fmt::format("[{},{},{},{}]", win.pt, win.pl, win.pb, win.pr)));
  win.ho = rows / win.sh + 1;
  win.wo = cols / win.sw + 1;
  return win;
}

}  // namespace opgraph::ops::detail
