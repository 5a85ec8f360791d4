// max_pool2d and avg_pool2d over the planes of NCHW activations (PyTorch's; the output size
// rounded down, or up with ceil_mode).
// Max pooling keeps, per output, which tap of its window won (the first maximum in
// row-major window order; NaN wins, so a NaN propagates as in PyTorch), and its vjp sends
// each gradient there. Average pooling divides by the whole window (count_include_pad,
// PyTorch's default) or by its taps inside the input.
#include <opgraph/graph/op.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
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
  Window win = detail::window_of(c, detail::pair_of(kernel.as_ints()), h, w, dilation, fail);
  if (2 * std::max(win.pt, win.pb) > win.kh || 2 * std::max(win.pl, win.pr) > win.kw)
    fail(fmt::format("padding may be at most half the {}x{} kernel (as in PyTorch), got [{},{},{},{}]", win.kh, win.kw,
                     win.pt, win.pl, win.pb, win.pr));
  if (c.attr_bool("ceil_mode")) {
    // One more output where the floor leaves input or bottom/right padding under no window,
    // as long as that window starts inside x or its top/left padding (PyTorch's rule: a
    // window starting in the bottom or right padding would see only padding). The taps
    // past the padded input are left out; average pooling divides by the taps within it.
    const auto more = [](std::int64_t outs, std::int64_t size, std::int64_t lead, std::int64_t trail, std::int64_t span,
                         std::int64_t stride) {
      const std::int64_t rest = size + lead + trail - span - (outs - 1) * stride;  // >= 0, < stride
      return rest > 0 && outs * stride < size + lead ? outs + 1 : outs;
    };
    win.ho = more(win.ho, h, win.pt, win.pb, win.span_h(), win.sh);
    win.wo = more(win.wo, w, win.pl, win.pr, win.span_w(), win.sw);
  }
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

/// f(p0, p1) over the (n, c) planes [p0, p1), a task per group of planes.
template <class F>
void for_each_plane_range(std::int64_t planes, std::int64_t plane_size, F f) {
  parallel_for(planes, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(plane_size, 1)), f);
}
/// f(plane index) for every (n, c) plane, a task per group of planes.
template <class F>
void for_each_plane(std::int64_t planes, std::int64_t plane_size, F f) {
  for_each_plane_range(planes, plane_size, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) f(p);
  });
}

/// The vjp's walk over planes [p0, p1) of dx: each plane zeroed, then add(plane of dx,
/// output index, oy, ox) for each of that plane's outputs.
template <class T, class F>
void scatter_plane_range(T* dx, const Window& w, std::int64_t p0, std::int64_t p1, F add) {
  const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
  for (std::int64_t p = p0; p < p1; ++p) {
    T* dp = dx + p * in_plane;
    std::fill(dp, dp + in_plane, T(0));
    for (std::int64_t oy = 0; oy < w.ho; ++oy)
      for (std::int64_t ox = 0; ox < w.wo; ++ox) add(dp, p * out_plane + oy * w.wo + ox, oy, ox);
  }
}
/// The same over every plane of dx, one task per group of planes.
template <class T, class F>
void scatter_planes(const View<T>& dx, const Window& w, F add) {
  for_each_plane_range(dx.dims[0] * dx.dims[1], w.h * w.w,
                       [&](std::int64_t p0, std::int64_t p1) { scatter_plane_range(dx.data, w, p0, p1, add); });
}

/// Vectors of N floats for the 2x2 pool: 16 (AVX-512, the forward pass's rows of more than
/// 8 outputs), 8 (AVX) or 4 (SSE, for a plane's last row of 5 to 7 outputs, or of 4).
template <int N>
struct PoolLanes;
#if defined(__AVX512F__)
template <>
struct PoolLanes<16> {
  typedef float V __attribute__((vector_size(64)));
  typedef int M __attribute__((vector_size(64)));
  typedef float U __attribute__((vector_size(64), aligned(4), may_alias));
  static V load(const float* p) { return *reinterpret_cast<const U*>(p); }
  static void store(float* p, V v) { *reinterpret_cast<U*>(p) = v; }
  static V evens(const float* p) {
    return __builtin_shufflevector(load(p), load(p + 16), 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  }
  static V odds(const float* p) {
    return __builtin_shufflevector(load(p), load(p + 16), 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  }
  static void interleave(float* p, V a, V b) {
    store(p, __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
    store(p + 16, __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
  }
};
inline constexpr int kPoolWide = 16;
#else
inline constexpr int kPoolWide = 8;
#endif
template <>
struct PoolLanes<8> {
  using V = detail::F8;
  using M = detail::I8;
  static V load(const float* p) { return detail::load8(p); }
  static void store(float* p, V v) { detail::store8(p, v); }
  static V evens(const float* p) { return detail::evens8(p); }
  static V odds(const float* p) { return detail::odds8(p); }
  /// a[0], b[0], a[1], b[1], ...: 2N values to p.
  static void interleave(float* p, V a, V b) {
    store(p, __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
    store(p + 8, __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15));
  }
};
template <>
struct PoolLanes<4> {
  typedef float V __attribute__((vector_size(16)));
  typedef int M __attribute__((vector_size(16)));
  typedef float U __attribute__((vector_size(16), aligned(4), may_alias));
  static V load(const float* p) { return *reinterpret_cast<const U*>(p); }
  static void store(float* p, V v) { *reinterpret_cast<U*>(p) = v; }
  static V evens(const float* p) { return __builtin_shufflevector(load(p), load(p + 4), 0, 2, 4, 6); }
  static V odds(const float* p) { return __builtin_shufflevector(load(p), load(p + 4), 1, 3, 5, 7); }
  static void interleave(float* p, V a, V b) {
    store(p, __builtin_shufflevector(a, b, 0, 4, 1, 5));
    store(p + 4, __builtin_shufflevector(a, b, 2, 6, 3, 7));
  }
};

/// The 2x2 pool of stride 2 over one whole output row of wo >= N outputs (rows r0 and r1
/// of x), N outputs at a time, the last N overlapping the ones before (computing some
/// again, to the same values: no scalar tail, which was most of LeNet's pools, whose rows
/// are 14 and 5 outputs); or, with wo < N, one vector whose lanes past the row write the
/// start of the next row of outputs (the caller's to allow). The scalar loop's winners, as
/// lane masks and selects: with branches they mispredicted about every other time. Taken
/// as a tree (two dependent comparisons, not three in a chain) and with a NaN-aware
/// comparison of two instructions, not four, LeNet's pools at batch 64 on the Zen 4 went
/// 67 -> 37 us (28x28 planes) and 53 -> 29 us (10x10, also one vector of 8 a row, not two of 4).
///
/// With `positive_only` (the vjp of a relu before the pool absorbed: drop_non_positive), a
/// window whose winner is not positive gets tap -1, in the same registers.
template <int N>
void max_pool_2x2_row(const float* r0, const float* r1, std::int64_t wo, float* best, float* won, bool positive_only) {
  using P = PoolLanes<N>;
  using V = typename P::V;
  using M = typename P::M;
  // v wins over m when larger, or NaN over a number: m not NaN and not m >= v.
  const auto better = [](V v, V m) -> M { return ~(m >= v) & (m == m); };
  const auto step = [&](std::int64_t ox) {
    const V a = P::evens(r0 + 2 * ox), b = P::odds(r0 + 2 * ox);
    const V c = P::evens(r1 + 2 * ox), d = P::odds(r1 + 2 * ox);
    // The first maximum of a, b, c, d as a tree: of (a, b), of (c, d), then the second pair's
    // only if better than the first's. The same winner as comparing them in order (a tap
    // replaces an earlier one only when better), in two dependent steps, not three.
    const M take_b = better(b, a), take_d = better(d, c);
    const V ab = take_b ? b : a, cd = take_d ? d : c;
    const V tab = take_b ? V{} + 1.0f : V{}, tcd = take_d ? V{} + 3.0f : V{} + 2.0f;
    const M take_cd = better(cd, ab);
    const V m = take_cd ? cd : ab;
    const V t = take_cd ? tcd : tab;
    P::store(best + ox, m);
    P::store(won + ox, positive_only ? (m > 0.0f ? t : V{} - 1.0f) : t);
  };
  if (wo < N) return step(0);  // the caller's row of fewer outputs, with room after it
  std::int64_t ox = 0;
  for (; ox + N <= wo; ox += N) step(ox);
  if (ox < wo) step(wo - N);
}

/// The vjp of the 2x2 pool over one output row: the two rows of dx under it, each gradient
/// where its window's winner was and zero at the other three taps (the windows do not
/// overlap), N outputs at a time as in the forward pass. +0 added to each value, as the
/// scatter into a zeroed plane does (a gradient of -0 gives +0).
template <int N>
void max_pool_2x2_grad_row(const float* g, const float* won, std::int64_t wo, float* d0, float* d1) {
  using P = PoolLanes<N>;
  using V = typename P::V;
  const auto step = [&](std::int64_t ox) {
    const V gv = P::load(g + ox), t = P::load(won + ox), zero = V{};
    P::interleave(d0 + 2 * ox, (t == 0.0f ? gv : zero) + 0.0f, (t == 1.0f ? gv : zero) + 0.0f);
    P::interleave(d1 + 2 * ox, (t == 2.0f ? gv : zero) + 0.0f, (t == 3.0f ? gv : zero) + 0.0f);
  };
  if (wo < N) return step(0);  // the caller's row of fewer outputs, with room after it
  std::int64_t ox = 0;
  for (; ox + N <= wo; ox += N) step(ox);
  if (ox < wo) step(wo - N);
}

/// Windows whose winner is not positive (0, or NaN) marked as sending no gradient (tap
/// -1), when the plan left the vjp of a relu before the pool to the pool's
/// (Kernel::relu_vjp_absorbed): the relu's vjp would zero the gradient there, and a relu's
/// output is nowhere negative, so a window's winner is 0 only when the relu zeroed it.
/// A select per value, which vectorises (a conditional store, taken about as often as
/// not, had cost LeNet's first pool 2.4 times its forward pass in mispredicted branches).
template <class T>
void drop_non_positive(const T* __restrict best, std::int64_t n, T* __restrict won) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T t = won[i];
    won[i] = best[i] > T(0) ? t : T(-1);
  }
}

/// The usual 2x2 window of stride 2, undilated, every window inside x: no padding on top
/// or left, and none read at the bottom or right (a padding of (0, 0, 1, 1) on an odd
/// plane puts the last windows half over it; the rows and columns they would read past x
/// were out of bounds).
bool is_2x2(const Window& w) {
  return w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2 && w.dh == 1 && w.dw == 1 && w.pt == 0 && w.pl == 0 &&
         2 * w.ho <= w.h && 2 * w.wo <= w.w;
}

/// The attributes both pools share: the window and its step.
/// max_pool2d's forward over planes [p0, p1) of x (the (n, c) planes in order), one after
/// another: the output and each output's winning tap (the workspace).
template <class K>
void max_pool_forward_planes(const K& k, const Window& w, std::int64_t p0, std::int64_t p1) {
  using T = scalar_of<K>;
  const T* xd = k.in(0).data;
  T* y = k.out().data;
  T* arg = k.workspace().data;
  const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
  // A tap wins over the best so far when larger, or NaN over a number: the first maximum
  // in row-major window order, NaN propagating.
  const auto better = [](T v, T b) { return v > b || (v != v && b == b); };
  const bool relu_before = k.relu_vjp_absorbed();
  if (is_2x2(w)) {
    // The usual 2x2 window of stride 2, unpadded: each output compares its four taps in
    // window order in one loop over the row.
    for (std::int64_t p = p0; p < p1; ++p) {
      const T* xp = xd + p * in_plane;
      for (std::int64_t oy = 0; oy < w.ho; ++oy) {
        const T* r0 = xp + 2 * oy * w.w;
        const T* r1 = r0 + w.w;
        T* best = y + p * out_plane + oy * w.wo;
        T* won = arg + p * out_plane + oy * w.wo;
        std::int64_t ox = 0;
        if constexpr (std::is_same_v<T, float>) {
          // A row of 4 to 7 outputs above another row of the plane: one vector of 8,
          // its lanes past the row landing on the next row's outputs, which that row
          // then writes (LeNet's second pool, rows of 5: 2 vectors of 4 before). It
          // reads 16 values of each input row, within the plane above its last row pair.
          const bool above = oy + 1 < w.ho;
          if (w.wo >= kPoolWide || (w.wo > 8 && above))
            max_pool_2x2_row<kPoolWide>(r0, r1, w.wo, best, won, relu_before), ox = w.wo;
          else if (w.wo >= 8 || (w.wo > 4 && above))
            max_pool_2x2_row<8>(r0, r1, w.wo, best, won, relu_before), ox = w.wo;
          else if (w.wo >= 4)
            max_pool_2x2_row<4>(r0, r1, w.wo, best, won, relu_before), ox = w.wo;
        }
        const std::int64_t vector_end = ox;
        for (; ox < w.wo; ++ox) {
          const T a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
          T m = a, t = T(0);
          if (better(b, m)) m = b, t = T(1);
          if (better(c, m)) m = c, t = T(2);
          if (better(d, m)) m = d, t = T(3);
          best[ox] = m;
          won[ox] = t;
        }
        if (relu_before && vector_end < w.wo) drop_non_positive(best + vector_end, w.wo - vector_end, won + vector_end);
      }
    }
    return;
  }
  // Otherwise tap after tap in window order, each over a whole row of outputs (a loop
  // the compiler vectorises), y and arg holding the best so far.
  for (std::int64_t p = p0; p < p1; ++p) {
    const T* xp = xd + p * in_plane;
    for (std::int64_t oy = 0; oy < w.ho; ++oy) {
      T* best = y + p * out_plane + oy * w.wo;
      T* won = arg + p * out_plane + oy * w.wo;
      // A window over padding alone (a dilated window can step over x) stays -inf, as in
      // PyTorch, and sends no gradient (its tap stays -1).
      std::fill(won, won + w.wo, T(-1));
      std::fill(best, best + w.wo, -std::numeric_limits<T>::infinity());
      for (std::int64_t i = 0; i < w.kh; ++i) {
        const std::int64_t iy = oy * w.sh - w.pt + i * w.dh;
        if (iy < 0 || iy >= w.h) continue;
        for (std::int64_t j = 0; j < w.kw; ++j) {
          const auto [x0, x1] = w.valid_cols(j);
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
      if (relu_before) drop_non_positive(best, w.wo, won);
    }
  }
}

/// max_pool2d's vjp over planes [p0, p1) of dx: each plane zeroed, then each output's
/// gradient added at its winning tap.
template <class K>
void max_pool_vjp_planes(const K& k, const Window& w, std::int64_t p0, std::int64_t p1) {
  using T = scalar_of<K>;
  const T* g = k.grad_out().data;
  const T* arg = k.workspace().data;
  T* dx = k.grad_in(0).data;
  const std::int64_t in_plane = w.h * w.w, out_plane = w.ho * w.wo;
  if constexpr (std::is_same_v<T, float>) {
    if (is_2x2(w) && w.wo >= 4) {
      // Row by row, vectors; the odd last column and row of dx, under no window, zero.
      for (std::int64_t p = p0; p < p1; ++p) {
        T* dp = dx + p * in_plane;
        for (std::int64_t oy = 0; oy < w.ho; ++oy) {
          T* d0 = dp + 2 * oy * w.w;
          const T* gr = g + p * out_plane + oy * w.wo;
          const T* tr = arg + p * out_plane + oy * w.wo;
          // As in the forward pass, a short row above another in one vector of 8: its
          // lanes past the row write dx rows the next row's vector then writes.
          // (Vectors of 16 made no difference here: as many shuffles a value.)
          if (w.wo >= 8 || (w.wo > 4 && oy + 1 < w.ho)) max_pool_2x2_grad_row<8>(gr, tr, w.wo, d0, d0 + w.w);
          else max_pool_2x2_grad_row<4>(gr, tr, w.wo, d0, d0 + w.w);
          if (w.w % 2 != 0) d0[w.w - 1] = d0[2 * w.w - 1] = T(0);
        }
        std::fill(dp + 2 * w.ho * w.w, dp + in_plane, T(0));
      }
      return;
    }
  }
  // Each tap's offset in the plane from its window's corner, once per call (a division and
  // a remainder per output were most of this pass: LeNet's first pool 0.85 ms a step); on
  // the stack for windows of up to 64 taps.
  const std::int64_t taps = w.kh * w.kw;
  std::array<std::int64_t, 64> local{};
  std::vector<std::int64_t> heap;
  std::int64_t* offset = local.data();
  if (taps > 64) {
    heap.resize(static_cast<std::size_t>(taps));
    offset = heap.data();
  }
  for (std::int64_t t = 0; t < taps; ++t) offset[t] = (t / w.kw) * w.dh * w.w + (t % w.kw) * w.dw;
  scatter_plane_range(dx, w, p0, p1, [&](T* dp, std::int64_t o, std::int64_t oy, std::int64_t ox) {
    if (arg[o] < T(0)) return;  // a window over padding alone
    dp[(oy * w.sh - w.pt) * w.w + ox * w.sw - w.pl + offset[static_cast<std::int64_t>(arg[o])]] += g[o];
  });
}

void window_attrs(OpBuilder& b) {
  b.attr("kernel", AttrType::int_list, AttrValue(), "window: one int or (height, width)", detail::positive_pair)
      .attr("stride", AttrType::int_list, AttrValue(), "step of the window (default: the kernel)", detail::positive_pair)
      .attr("ceil_mode", AttrType::boolean, false, "round the output size up, not down: a last, partial window over "
            "what the stride leaves (PyTorch's ceil_mode)");
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

/// MaxPool or AveragePool with the op's window and ceil_mode.
void pool_lowering(LoweringContext& c, const char* type, bool max) {
  const Shape& x = c.in_shape(0);
  if (is_symbolic(x[2]) || is_symbolic(x[3])) c.fail("the image size {} is symbolic", x);
  const detail::Window win = pool_window(c, x[2], x[3], max, [&](const std::string& m) { c.fail("{}", m); });
  Attrs attrs = detail::onnx_window(win, max);
  if (c.attr_bool("ceil_mode")) attrs.emplace_back("ceil_mode", std::int64_t{1});
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
    .absorbs_relu_vjp()  // a relu before it: windows whose winner is not positive send nothing
    .shape([](const ShapeContext& c) { return pool_shape(c, true); })
    .workspace([](const ShapeContext& c) { return pool_shape(c, true); })  // the winning tap of each output
    .forward([](auto& k) {
      const Window w = pool_window(k, true);
      for_each_plane_range(k.in(0).dims[0] * k.in(0).dims[1], w.ho * w.wo,
                           [&](std::int64_t p0, std::int64_t p1) { max_pool_forward_planes(k, w, p0, p1); });
    })
    .vjp([](auto& k) {
      const Window w = pool_window(k, true);
      for_each_plane_range(k.in(0).dims[0] * k.in(0).dims[1], w.h * w.w,
                           [&](std::int64_t p0, std::int64_t p1) { max_pool_vjp_planes(k, w, p0, p1); });
    })
    // Image by image (inside a convolution's lanes, OpBuilder::item_followers): the planes
    // of images [b0, b1), the same code as above.
    .per_item(
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          const std::int64_t c = k.in(0).dims[1];
          max_pool_forward_planes(k, pool_window(k, true), b0 * c, b1 * c);
        },
        [](const auto& k, std::int64_t b0, std::int64_t b1) {
          const std::int64_t c = k.in(0).dims[1];
          max_pool_vjp_planes(k, pool_window(k, true), b0 * c, b1 * c);
        })
    .cost([](const ShapeContext& c, const Shape& y) {
      const auto kernel = detail::pair_of(c.attr_ints("kernel"));
      const double taps = static_cast<double>(kernel[0] * kernel[1]);
      return OpCost{static_cast<double>(y.numel()) * taps, static_cast<double>(y.numel())};
    })
    .check({"[a,b,6,6]"}, {{"kernel", 2}})
    .check({"[a,b,7,9]"}, {{"kernel", 2}})  // the 2x2 path's odd last row and column of dx, under no window
    .check({"[a,b,5,7]"}, {{"kernel", 2}, {"padding", IntList{0, 0, 1, 1}}})  // windows over the bottom and right padding
    .check({"[a,b,7,5]"}, {{"kernel", 3}, {"stride", IntList{2, 1}}, {"padding", 1}})
    .check({"[a,b,9,8]"}, {{"kernel", IntList{2, 3}}, {"dilation", 2}, {"padding", IntList{1, 0}}})
    // ceil_mode: a last window past the bottom and right (no padding there), and one over
    // the bottom padding and past it, dilated
    .check({"[a,b,5,7]"}, {{"kernel", 2}, {"ceil_mode", true}})
    .check({"[a,b,8,7]"}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}, {"dilation", IntList{1, 2}}, {"ceil_mode", true}});

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
    .check({"[a,b,7,6]"}, {{"kernel", IntList{3, 2}}, {"padding", IntList{1, 1}}, {"count_include_pad", false}})
    // ceil_mode: the divisor stops at the padded input, with and without the padding counted
    .check({"[a,b,7,5]"}, {{"kernel", 2}, {"ceil_mode", true}})
    .check({"[a,b,8,7]"}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}, {"ceil_mode", true}})
    .check({"[a,b,8,7]"}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}, {"ceil_mode", true}, {"count_include_pad", false}});

}  // namespace opgraph::ops
