// max_pool2d and avg_pool2d over the planes of NCHW activations (PyTorch's, floor mode).
// Max pooling keeps, per output, which tap of its window won (the first maximum in
// row-major window order; NaN wins, so a NaN propagates as in PyTorch), and its vjp sends
// each gradient there. Average pooling divides by the whole window (count_include_pad,
// PyTorch's default) or by its taps inside the input.
#include <opgraph/graph/op.hpp>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "detail/simd.hpp"
#include "detail/window.hpp"

namespace opgraph::ops {

namespace {

using detail::Window;

template <class C, class Fail>
Window pool_window(const C& c, std::int64_t h, std::int64_t w, bool dilation, Fail&& fail) {
  const AttrValue& kernel = c.attr("kernel");
  if (kernel.is_none()) fail("needs kernel= (one int or two: height, width)");
  const Window win = detail::window_of(c, detail::pair_of(kernel.as_ints()), h, w, dilation, fail);
  if (2 * std::max(win.pt, win.pb) > win.kh || 2 * std::max(win.pl, win.pr) > win.kw)
    fail(fmt::format("padding may be at most half the {}x{} kernel (as in PyTorch), got [{},{},{},{}]", win.kh, win.kw,
                     win.pt, win.pl, win.pb, win.pr));
  return win;
}

template <class K>
Window pool_window(const K& k, bool dilation) {
  const auto& x = k.in(0);
  return pool_window(k, x.dims[2], x.dims[3], dilation, [&](const std::string& m) { k.fail("{}", m); });
}

Shape pool_shape(const ShapeContext& c, bool dilation) {
  const Shape& x = c.in(0);
  if (x.rank() != 4) c.fail("x must be [N, C, H, W] (NCHW), got {}", x);
  if (x[2] < 0 || x[3] < 0) c.fail("x {}: height and width must be numbers", x);
  const Window w = pool_window(c, x[2], x[3], dilation, [&](const std::string& m) { c.fail("{}", m); });
  return Shape{x[0], x[1], w.ho, w.wo};
}

/// f(plane index) for every (n, c) plane, a task per group of planes.
template <class F>
void for_each_plane(std::int64_t planes, std::int64_t plane_size, F f) {
  parallel_for(planes, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(plane_size, 1)),
               [&](std::int64_t p0, std::int64_t p1) {
                 for (std::int64_t p = p0; p < p1; ++p) f(p);
               });
}

/// The vjp's walk: each plane of dx zeroed, then add(plane of dx, output index, oy, ox)
/// for each of that plane's outputs; one task per group of planes.
template <class T, class F>
void scatter_planes(const View<T>& dx, const Window& w, F add) {
  const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
  for_each_plane(dx.dims[0] * dx.dims[1], in_plane, [&](std::int64_t p) {
    T* dp = dx.data + p * in_plane;
    std::fill(dp, dp + in_plane, T(0));
    for (std::int64_t oy = 0; oy < w.ho; ++oy)
      for (std::int64_t ox = 0; ox < w.wo; ++ox) add(dp, p * out_plane + oy * w.wo + ox, oy, ox);
  });
}

/// The 2x2 pool of stride 2 over one whole output row (rows r0 and r1 of x), eight outputs
/// at a time and then one by one: the same comparisons in the same order as the scalar
/// loop, as lane masks and selects instead of branches. Returns wo. With branches the compares mispredicted
/// about every other time: 8 ns an output, 0.6 ms of LeNet's 4.5 ms step at batch 64 for
/// the first pool (Zen 5).
std::int64_t max_pool_2x2_row(const float* r0, const float* r1, std::int64_t wo, float* best, float* won) {
  using detail::F8;
  using detail::I8;
  // v wins over m when larger, or NaN over a number.
  const auto better = [](F8 v, F8 m) -> I8 { return (v > m) | ((v != v) & (m == m)); };
  std::int64_t ox = 0;
  for (; ox + 8 <= wo; ox += 8) {
    const F8 a = detail::evens8(r0 + 2 * ox), b = detail::odds8(r0 + 2 * ox);
    const F8 c = detail::evens8(r1 + 2 * ox), d = detail::odds8(r1 + 2 * ox);
    F8 m = a, t = F8{} + 0.0f;
    I8 take = better(b, m);
    m = take ? b : m;
    t = take ? F8{} + 1.0f : t;
    take = better(c, m);
    m = take ? c : m;
    t = take ? F8{} + 2.0f : t;
    take = better(d, m);
    detail::store8(best + ox, take ? d : m);
    detail::store8(won + ox, take ? F8{} + 3.0f : t);
  }
  // The rest (LeNet's second pool has 5 outputs a row), without branches too: selects on
  // the bits.
  const auto pick = [](bool take, float v, float m) {
    const std::uint32_t mask = 0u - static_cast<std::uint32_t>(take);
    return std::bit_cast<float>((std::bit_cast<std::uint32_t>(v) & mask) | (std::bit_cast<std::uint32_t>(m) & ~mask));
  };
  const auto wins = [](float v, float m) { return (v > m) | ((v != v) & (m == m)); };
  for (; ox < wo; ++ox) {
    const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
    bool take = wins(b, a);
    float m = pick(take, b, a), t = pick(take, 1.0f, 0.0f);
    take = wins(c, m);
    m = pick(take, c, m);
    t = pick(take, 2.0f, t);
    take = wins(d, m);
    best[ox] = pick(take, d, m);
    won[ox] = pick(take, 3.0f, t);
  }
  return ox;
}

/// The attributes both pools share: the window and its step.
void window_attrs(OpBuilder& b) {
  b.attr("kernel", AttrType::int_list, AttrValue(), "window: one int or (height, width)", detail::positive_pair)
      .attr("stride", AttrType::int_list, AttrValue(), "step of the window (default: the kernel)", detail::positive_pair);
}

/// One average-pooling window: its taps inside x, and the divisor (PyTorch's: with
/// count_include_pad, the window clipped to the padded input).
struct AvgCell {
  std::int64_t y0, y1, x0, x1, count;
};
AvgCell avg_cell(const Window& w, std::int64_t oy, std::int64_t ox, bool whole) {
  const std::int64_t top = oy * w.sh - w.pt, left = ox * w.sw - w.pl;
  AvgCell a{std::max<std::int64_t>(top, 0), std::min(top + w.kh, w.h), std::max<std::int64_t>(left, 0),
            std::min(left + w.kw, w.w), 0};
  a.count = whole ? (std::min(top + w.kh, w.h + w.pb) - top) * (std::min(left + w.kw, w.w + w.pr) - left)
                  : (a.y1 - a.y0) * (a.x1 - a.x0);
  return a;
}

}  // namespace

namespace {

/// MaxPool or AveragePool with the op's window; ceil_mode 0 as opgraph's pools.
void pool_lowering(LoweringContext& c, const char* type, bool max) {
  const Shape& x = c.in_shape(0);
  if (is_symbolic(x[2]) || is_symbolic(x[3])) c.fail("the image size {} is symbolic", x);
  const auto kernel = detail::pair_of(c.attr_ints("kernel"));
  const detail::Window win = detail::window_of(c, kernel, x[2], x[3], max, [&](const std::string& m) { c.fail("{}", m); });
  Attrs attrs = detail::onnx_window(win, max);
  if (!max) attrs.emplace_back("count_include_pad", std::int64_t{c.attr_bool("count_include_pad") ? 1 : 0});
  c.emit(type, {c.input(0)}, {c.output()}, std::move(attrs));
}

}  // namespace

OPGRAPH_OP(max_pool2d)
    .lower([](LoweringContext& c) { pool_lowering(c, "MaxPool", true); })
    .doc("maximum over each kh x kw window of x [N,C,H,W] (PyTorch's max_pool2d); ties go to the first maximum in "
         "row-major order, NaN propagates")
    .input("x")
    .apply(window_attrs)
    .attr("padding", AttrType::int_list, IntList{0}, "implicit -inf around the input: one int, (height, width) or "
          "(top, left, bottom, right)", [](const AttrValue& v) { return detail::padding_value(v, false); })
    .attr("dilation", AttrType::int_list, IntList{1}, "spacing of the window's taps", detail::positive_pair)
    .domain("x", {.kind = Domain::Kind::distinct})
    .shape([](const ShapeContext& c) { return pool_shape(c, true); })
    .workspace([](const ShapeContext& c) { return pool_shape(c, true); })  // the winning tap of each output
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Window w = pool_window(k, true);
      T* y = k.out().data;
      T* arg = k.workspace().data;
      const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
      // A tap wins over the best so far when larger, or NaN over a number: the first maximum
      // in row-major window order, NaN propagating.
      const auto better = [](T v, T b) { return v > b || (v != v && b == b); };
      if (w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2 && w.dh == 1 && w.dw == 1 && w.pt == 0 && w.pl == 0) {
        // The usual 2x2 window of stride 2, unpadded: each output compares its four taps in
        // window order in one loop over the row.
        for_each_plane(x.dims[0] * x.dims[1], out_plane, [&](std::int64_t p) {
          const T* xp = x.data + p * in_plane;
          for (std::int64_t oy = 0; oy < w.ho; ++oy) {
            const T* r0 = xp + 2 * oy * w.w;
            const T* r1 = r0 + w.w;
            T* best = y + p * out_plane + oy * w.wo;
            T* won = arg + p * out_plane + oy * w.wo;
            std::int64_t ox = 0;
            if constexpr (std::is_same_v<T, float>) ox = max_pool_2x2_row(r0, r1, w.wo, best, won);
            for (; ox < w.wo; ++ox) {
              const T a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
              T m = a, t = T(0);
              if (better(b, m)) m = b, t = T(1);
              if (better(c, m)) m = c, t = T(2);
              if (better(d, m)) m = d, t = T(3);
              best[ox] = m;
              won[ox] = t;
            }
          }
        });
        return;
      }
      // Otherwise tap after tap in window order, each over a whole row of outputs (a loop
      // the compiler vectorises), y and arg holding the best so far.
      std::vector<std::array<std::int64_t, 2>> cols(static_cast<std::size_t>(w.kw));  // valid ox per tap column
      for (std::int64_t j = 0; j < w.kw; ++j) cols[static_cast<std::size_t>(j)] = w.valid_cols(j);
      for_each_plane(x.dims[0] * x.dims[1], out_plane, [&](std::int64_t p) {
        const T* xp = x.data + p * in_plane;
        for (std::int64_t oy = 0; oy < w.ho; ++oy) {
          T* best = y + p * out_plane + oy * w.wo;
          T* won = arg + p * out_plane + oy * w.wo;
          std::fill(won, won + w.wo, T(-1));
          std::fill(best, best + w.wo, T(0));
          for (std::int64_t i = 0; i < w.kh; ++i) {
            const std::int64_t iy = oy * w.sh - w.pt + i * w.dh;
            if (iy < 0 || iy >= w.h) continue;
            for (std::int64_t j = 0; j < w.kw; ++j) {
              const auto [x0, x1] = cols[static_cast<std::size_t>(j)];
              const T* line = xp + iy * w.w + j * w.dw - w.pl;
              const T tap = static_cast<T>(i * w.kw + j);
              for (std::int64_t ox = x0; ox < x1; ++ox) {
                const T v = line[ox * w.sw], b = best[ox];
                const bool take = won[ox] < T(0) || better(v, b);
                best[ox] = take ? v : b;
                won[ox] = take ? tap : won[ox];
              }
            }
          }
          // Padding is at most half the kernel, so every window holds a tap of x.
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const Window w = pool_window(k, true);
      const T* g = k.grad_out().data;
      const T* arg = k.workspace().data;
      // Each tap's offset in the plane from its window's corner, once (a division and a
      // remainder per output were most of this pass: LeNet's first pool 0.85 ms a step).
      std::vector<std::int64_t> offset(static_cast<std::size_t>(w.kh * w.kw));
      for (std::int64_t t = 0; t < w.kh * w.kw; ++t)
        offset[static_cast<std::size_t>(t)] = (t / w.kw) * w.dh * w.w + (t % w.kw) * w.dw;
      scatter_planes(k.grad_in(0), w, [&](T* dp, std::int64_t o, std::int64_t oy, std::int64_t ox) {
        const auto t = static_cast<std::size_t>(arg[o]);
        dp[(oy * w.sh - w.pt) * w.w + ox * w.sw - w.pl + offset[t]] += g[o];
      });
    })
    .cost([](const ShapeContext& c, const Shape& y) {
      const auto kernel = detail::pair_of(c.attr_ints("kernel"));
      const double taps = static_cast<double>(kernel[0] * kernel[1]);
      return OpCost{static_cast<double>(y.numel()) * taps, static_cast<double>(y.numel())};
    })
    .check({"[a,b,6,6]"}, {{"kernel", 2}})
    .check({"[a,b,7,5]"}, {{"kernel", 3}, {"stride", IntList{2, 1}}, {"padding", 1}})
    .check({"[a,b,9,8]"}, {{"kernel", IntList{2, 3}}, {"dilation", 2}, {"padding", IntList{1, 0}}});

OPGRAPH_OP(avg_pool2d)
    .lower([](LoweringContext& c) { pool_lowering(c, "AveragePool", false); })
    .doc("mean over each kh x kw window of x [N,C,H,W] (PyTorch's avg_pool2d); the padding counts as zeros unless "
         "count_include_pad=false")
    .input("x")
    .apply(window_attrs)
    .attr("padding", AttrType::int_list, IntList{0}, "zeros around the input: one int, (height, width) or (top, left, "
          "bottom, right)", [](const AttrValue& v) { return detail::padding_value(v, false); })
    .attr("count_include_pad", AttrType::boolean, true, "divide by the whole window, padding included (PyTorch's "
          "default), or by its taps inside x")
    .shape([](const ShapeContext& c) { return pool_shape(c, false); })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Window w = pool_window(k, false);
      const bool whole = k.attr_bool("count_include_pad");
      T* y = k.out().data;
      const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
      for_each_plane(x.dims[0] * x.dims[1], out_plane, [&](std::int64_t p) {
        const T* xp = x.data + p * in_plane;
        for (std::int64_t oy = 0; oy < w.ho; ++oy)
          for (std::int64_t ox = 0; ox < w.wo; ++ox) {
            const AvgCell a = avg_cell(w, oy, ox, whole);
            T sum = T(0);
            for (std::int64_t iy = a.y0; iy < a.y1; ++iy)
              for (std::int64_t ix = a.x0; ix < a.x1; ++ix) sum += xp[iy * w.w + ix];
            y[p * out_plane + oy * w.wo + ox] = sum / static_cast<T>(a.count);
          }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const Window w = pool_window(k, false);
      const bool whole = k.attr_bool("count_include_pad");
      const T* g = k.grad_out().data;
      scatter_planes(k.grad_in(0), w, [&](T* dp, std::int64_t o, std::int64_t oy, std::int64_t ox) {
        const AvgCell a = avg_cell(w, oy, ox, whole);
        const T share = g[o] / static_cast<T>(a.count);
        for (std::int64_t iy = a.y0; iy < a.y1; ++iy)
          for (std::int64_t ix = a.x0; ix < a.x1; ++ix) dp[iy * w.w + ix] += share;
      });
    })
    .check({"[a,b,6,6]"}, {{"kernel", 2}})
    .check({"[a,b,7,5]"}, {{"kernel", 3}, {"stride", IntList{2, 1}}, {"padding", 1}})
    .check({"[a,b,7,6]"}, {{"kernel", IntList{3, 2}}, {"padding", IntList{1, 1}}, {"count_include_pad", false}});

}  // namespace opgraph::ops
