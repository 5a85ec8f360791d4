// conv2d: 2-D convolution (cross-correlation, as PyTorch's conv2d) of NCHW activations with
// [out, in/groups, kh, kw] kernels. A window of stride 1 (one group, more than one tap)
// runs as a direct convolution (detail/direct_conv.hpp, the section "The direct path"
// below): the forward pass and the input gradient always, the kernel gradient for at most
// 16 channels in and out. Other windows, and the kernel gradient above, by "im2col" and
// the library's GEMM: the receptive
// fields of a few images become the columns of one [in*kh*kw, images*ho*wo] matrix (each
// image line a contiguous copy when the stride is 1, each whole row one copy when the
// output is as wide as the input), and one GEMM per group gives their outputs: W x cols
// for few output channels, cols^T x W^T (read transposed in place) for more, then put in
// NCHW order. The columns live in a lane's scratch, small enough to stay in cache, and
// the vjp builds them again from x. It uses the same GEMM: the input gradient is W^T x gy
// folded back into the images (col2im), the kernel gradient gy x cols^T (few output
// channels) or cols x gy^T summed chunk after chunk in a fixed order. docs/design.md gives
// the measurements behind the choice.
#include <algorithm>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/op.hpp>

#include "detail/direct_conv.hpp"
#include "detail/lane_runs.hpp"
#include "detail/simd.hpp"
#include "detail/window.hpp"

namespace opgraph::ops {

namespace {

using detail::copy_line;
using detail::evens8;
using detail::F8;
using detail::load8;
using detail::store8;
using detail::Window;

/// Everything one call needs to know about its shapes.
struct Conv {
  std::int64_t n = 0, cin = 0, cout = 0, groups = 1;
  Window win;
  std::int64_t cin_g() const { return cin / groups; }
  std::int64_t cout_g() const { return cout / groups; }
  std::int64_t k_g() const { return cin_g() * win.kh * win.kw; }  // GEMM depth per group
  std::int64_t rows() const { return cin * win.kh * win.kw; }      // receptive-field length
  std::int64_t positions() const { return win.ho * win.wo; }
  std::int64_t plane() const { return win.h * win.w; }
};

template <class C, class Fail>
Conv conv_of(const C& c, const std::int64_t* x, const std::int64_t* w, Fail&& fail) {
  Conv v;
  v.n = x[0];
  v.cin = x[1];
  v.cout = w[0];
  v.groups = c.attr_int("groups");
  v.win = detail::window_of(c, {w[2], w[3]}, x[2], x[3], true, fail);
  return v;
}

template <class K>
Conv conv_of(const K& k) {
  return conv_of(k, k.in(0).dims, k.in(1).dims, [&](const std::string& m) { k.fail("{}", m); });
}

/// Images whose receptive fields one GEMM takes: about kRows rows, so that a small plane
/// (14x14, 7x7) still gives the GEMM a tall operand.
constexpr std::int64_t kRows = 1024;
std::int64_t images_per_gemm(const Conv& v) { return std::max<std::int64_t>(1, kRows / std::max<std::int64_t>(v.positions(), 1)); }

/// Chunks of images (single images in the direct forward pass) go to kLanes lanes, each
/// a contiguous run of them (detail::for_each_lane, which says why contiguous), which run
/// in parallel, each with its own scratch; a lane sums its kernel gradient over its chunks
/// in order, and the lanes' sums are added in lane order. The lanes are fixed, not the
/// thread count, so the sums are the same on any pool.
constexpr std::int64_t kLanes = 4;

/// Up to this many output channels per group the forward product is W x cols (rows of
/// output channels, the GEMM's few-rows path: LeNet's 6 and 16, its step 5-7 % faster)
/// and the kernel gradient gy x cols^T (the GEMM's inner products: the step 7-10 % faster); above,
/// cols^T x W^T and cols x gy^T, whose outputs are whole vectors of channels. Interleaved
/// runs of bench/conv_bench on bench/CONV.md's shapes: cols^T x W^T 5-10 % faster for 32
/// channels on 14x14 planes, even for 64 channels, 5-8 % slower for 32 on 28x28.
constexpr std::int64_t kFewChannels = 16;

/// line[ox] = src[2 * ox] for ox in [x0, x1), the gather of a stride-2 window. Floats go
/// eight at a time: two loads of sixteen consecutive values, the even ones kept (the
/// last eight of a line overlapping the ones before, rewriting the same values); it reads
/// up to one value past the last it keeps, so only while that stays below `end`, the end
/// of the input plane. Scalar, the line took four cycles a value in the residual net's
/// strided convolutions.
template <class T>
void gather_even(const T* src, std::int64_t x0, std::int64_t x1, const T* end, T* line) {
  std::int64_t ox = x0;
  if constexpr (std::is_same_v<T, float>) {
    const auto eight = [&](std::int64_t o) {
      store8(line + o, evens8(src + 2 * o));
    };
    const auto fits = [&](std::int64_t o) { return src + 2 * o + 16 <= end; };
    for (; ox + 8 <= x1 && fits(ox); ox += 8) eight(ox);
    if (ox < x1 && x1 - 8 >= x0 && fits(x1 - 8)) {
      eight(x1 - 8);
      ox = x1;
    }
  }
  for (; ox < x1; ++ox) line[ox] = src[2 * ox];
}

/// line[2 * ox] += src[ox] for ox in [x0, x1), col2im's scatter for a stride-2 window:
/// floats eight at a time, spread over sixteen with zeros between and added (adding +0
/// leaves the values between as they are: the plane starts at +0 and never holds -0), as
/// long as the sixteen stay below `end`; the rest one by one.
template <class T>
void scatter_add_even(const T* src, std::int64_t x0, std::int64_t x1, const T* end, T* line) {
  std::int64_t ox = x0;
  if constexpr (std::is_same_v<T, float>) {
    const F8 zero = {};
    for (; ox + 8 <= x1 && line + 2 * ox + 16 <= end; ox += 8) {
      const F8 v = load8(src + ox);
      float* lo = line + 2 * ox;
      store8(lo, load8(lo) + __builtin_shufflevector(v, zero, 0, 8, 1, 9, 2, 10, 3, 11));
      store8(lo + 8, load8(lo + 8) + __builtin_shufflevector(v, zero, 4, 12, 5, 13, 6, 14, 7, 15));
    }
  }
  for (; ox < x1; ++ox) line[2 * ox] += src[ox];
}

/// One tap (i, j) of the window: the output lines and columns where it reads the input
/// (y0..y1, x0..x1; elsewhere it reads padding), computed once per call for all taps.
/// Stride 1 with the output as wide as the input ("same" padding, is_one_run): row
/// (c, i, j) of an image's columns is then its plane shifted by one offset, position q
/// holding plane[q + shift] for q in [lo, hi), except the columns that fall into the left or
/// right padding (ox outside [x0, x1) on each line), which wrap onto the neighbouring line
/// and hold zero. One copy (or one add, for the gradient) per row instead of one per line.
struct Tap {
  std::int64_t y0, y1, x0, x1;  // the valid lines and columns
  std::int64_t shift, lo, hi;   // the one run: the positions whose plane[q + shift] exists
};
bool is_one_run(const Window& w) { return w.sh == 1 && w.sw == 1 && w.wo == w.w; }
std::vector<Tap> taps_of(const Conv& v) {
  const Window& w = v.win;
  const std::int64_t p = v.positions();
  std::vector<Tap> taps;
  taps.reserve(static_cast<std::size_t>(w.kh * w.kw));
  for (std::int64_t i = 0; i < w.kh; ++i)
    for (std::int64_t j = 0; j < w.kw; ++j) {
      const auto [y0, y1] = w.valid_rows(i);
      const auto [x0, x1] = w.valid_cols(j);
      const std::int64_t shift = (i * w.dh - w.pt) * w.w + j * w.dw - w.pl;
      // Within [0, P]: a tap that only ever reads padding (a kernel wider than the plane)
      // has -shift past the last position, and then no run at all.
      const std::int64_t lo = std::clamp(std::max(y0 * w.wo, -shift), std::int64_t{0}, p);
      const std::int64_t hi = std::clamp(std::min(y1 * w.wo, v.plane() - shift), lo, p);
      taps.push_back({y0, y1, x0, x1, shift, lo, hi});
    }
  return taps;
}
/// Zeroes the padding columns of the valid lines of one image's row. Column by column,
/// a line apart: along a line, GCC would make each column's one or two stores a call of
/// memset.
template <class T>
void zero_edges(const Tap& g, std::int64_t wo, T* row) {
  const auto column = [&](std::int64_t ox) {
    for (std::int64_t oy = g.y0; oy < g.y1; ++oy) row[oy * wo + ox] = T(0);
  };
  for (std::int64_t ox = 0; ox < g.x0; ++ox) column(ox);
  for (std::int64_t ox = g.x1; ox < wo; ++ox) column(ox);
}

/// The receptive fields of images [0, nb) of x as columns: column (b, oy, ox), row
/// (c, i, j) holds x[b, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw], zero in the padding.
/// [C*kh*kw, nb*P], row stride ld = nb*P. One task per few rows; with stride 1 each output
/// line of a row is one contiguous run of an input line, and the whole row one run when
/// the output is as wide as the input (is_one_run).
template <class T>
void im2col(const Conv& v, const T* x, std::int64_t nb, T* cols) {
  const Window& w = v.win;
  const std::int64_t taps = w.kh * w.kw, p = v.positions(), ld = nb * p;
  const bool one_run = is_one_run(w);
  const std::vector<Tap> geometry = taps_of(v);
  parallel_for(v.rows(), std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(ld, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t c = r / taps, i = (r % taps) / w.kw, j = r % w.kw;
      const Tap& g = geometry[static_cast<std::size_t>(r % taps)];
      for (std::int64_t b = 0; b < nb; ++b) {
        const T* image = x + (b * v.cin + c) * v.plane();
        T* dst = cols + r * ld + b * p;
        if (one_run) {
          std::fill(dst, dst + g.lo, T(0));
          if (g.hi > g.lo) std::memcpy(dst + g.lo, image + g.lo + g.shift, static_cast<std::size_t>(g.hi - g.lo) * sizeof(T));
          std::fill(dst + g.hi, dst + p, T(0));
        } else {
          // The lines above and below the input whole, the valid part of each other line,
          // then the padding columns.
          std::fill(dst, dst + g.y0 * w.wo, T(0));
          std::fill(dst + g.y1 * w.wo, dst + p, T(0));
          for (std::int64_t oy = g.y0; oy < g.y1; ++oy) {
            const T* src = image + (oy * w.sh - w.pt + i * w.dh) * w.w + j * w.dw - w.pl;
            T* line = dst + oy * w.wo;
            if (w.sw == 1) copy_line(src + g.x0, g.x1 - g.x0, line + g.x0);
            else if (w.sw == 2) gather_even(src, g.x0, g.x1, image + v.plane(), line);
            else
              for (std::int64_t ox = g.x0; ox < g.x1; ++ox) line[ox] = src[ox * w.sw];
          }
        }
        zero_edges(g, w.wo, dst);
      }
    }
  });
}

/// dst[q] += src[q] for q in [0, n), the two not overlapping.
template <class T>
inline void add_run(const T* __restrict src, std::int64_t n, T* __restrict dst) {
  for (std::int64_t q = 0; q < n; ++q) dst[q] += src[q];
}

/// The inverse scatter: dx[b, c] = sum over the rows (c, i, j) of dcol placed back where
/// im2col read them. One task per (image, channel) plane, taps in a fixed order:
/// deterministic. With one run per row (is_one_run), each row is added in one run after
/// its padding columns are zeroed in dcol (the plane starts at +0, so adding +0 where they
/// wrap changes no bit: the same sums as line by line).
template <class T>
void col2im(const Conv& v, T* dcol, std::int64_t ld, std::int64_t nb, T* dx) {
  const Window& w = v.win;
  const std::int64_t taps = w.kh * w.kw, p = v.positions();
  const bool one_run = is_one_run(w);
  const std::vector<Tap> geometry = taps_of(v);
  parallel_for(v.cin * nb, 1, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t b = t / v.cin, c = t % v.cin;
      T* plane = dx + (b * v.cin + c) * v.plane();
      std::fill(plane, plane + v.plane(), T(0));
      for (std::int64_t tap = 0; tap < taps; ++tap) {
        const std::int64_t i = tap / w.kw, j = tap % w.kw;
        T* in = dcol + (c * taps + tap) * ld + b * p;
        const Tap& g = geometry[static_cast<std::size_t>(tap)];
        if (one_run) {
          zero_edges(g, w.wo, in);
          if (g.hi > g.lo) add_run(in + g.lo, g.hi - g.lo, plane + g.lo + g.shift);
          continue;
        }
        for (std::int64_t oy = g.y0; oy < g.y1; ++oy) {
          T* dst = plane + (oy * w.sh - w.pt + i * w.dh) * w.w + (j * w.dw - w.pl);
          const T* s = in + oy * w.wo;
          if (w.sw == 1)
            for (std::int64_t ox = g.x0; ox < g.x1; ++ox) dst[ox] += s[ox];
          else if (w.sw == 2)
            scatter_add_even(s, g.x0, g.x1, plane + v.plane(), dst);
          else
            for (std::int64_t ox = g.x0; ox < g.x1; ++ox) dst[ox * w.sw] += s[ox];
        }
      }
    }
  });
}

/// NCHW images [nb, C, P] side by side: [C, nb*P], the layout of the input gradient's GEMM
/// (to_wide) and of the forward GEMM's output (from_wide).
template <class T>
void to_wide(const T* images, std::int64_t nb, std::int64_t channels, std::int64_t p, T* wide) {
  parallel_for(channels * nb, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(p, 1)), [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t c = t / nb, b = t % nb;
      std::memcpy(wide + c * nb * p + b * p, images + (b * channels + c) * p, static_cast<std::size_t>(p) * sizeof(T));
    }
  });
}
template <class T>
void from_wide(const T* wide, std::int64_t nb, std::int64_t channels, std::int64_t p, T* images) {
  parallel_for(channels * nb, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(p, 1)), [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t c = t / nb, b = t % nb;
      std::memcpy(images + (b * channels + c) * p, wide + c * nb * p + b * p, static_cast<std::size_t>(p) * sizeof(T));
    }
  });
}
/// Between NCHW images [nb, C, P] and rows [nb*P, C] (one per position).
template <class T>
void from_rows(const T* rows, std::int64_t nb, std::int64_t channels, std::int64_t p, T* images) {
  parallel_for(nb, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b)
      for (std::int64_t c = 0; c < channels; ++c) {
        T* dst = images + (b * channels + c) * p;
        const T* src = rows + b * p * channels + c;
        for (std::int64_t q = 0; q < p; ++q) dst[q] = src[q * channels];
      }
  });
}
template <class T>
void to_rows(const T* images, std::int64_t nb, std::int64_t channels, std::int64_t p, T* rows) {
  parallel_for(nb, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b)
      for (std::int64_t c = 0; c < channels; ++c) {
        const T* src = images + (b * channels + c) * p;
        T* dst = rows + b * p * channels + c;
        for (std::int64_t q = 0; q < p; ++q) dst[q * channels] = src[q];
      }
  });
}

/// Per lane: the columns of a chunk's receptive fields [C*kh*kw, B*P] (and, once the kernel
/// gradient has read them, their gradient in the same place), the output gradient as rows
/// [B*P, out], and the outputs (or their gradient) side by side [out, B*P]; then every
/// lane's kernel-gradient sum ([groups][og][kg], or [groups][kg][og] when taken
/// transposed). The vjp builds the columns again from x: kept from the forward pass they
/// would take the whole batch's columns (5 MB for LeNet's first convolution at batch 64)
/// and leave the cache.
struct ScratchLayout {
  std::int64_t rows, outs, lane, partial;
};
ScratchLayout scratch_layout(const Conv& v) {
  const std::int64_t positions = images_per_gemm(v) * v.positions();
  ScratchLayout l;
  l.rows = positions * v.rows();
  l.outs = positions * v.cout;
  l.lane = l.rows + 2 * l.outs;
  l.partial = v.cout * v.k_g();
  return l;
}
std::int64_t scratch_elements(const Conv& v) {
  const ScratchLayout l = scratch_layout(v);
  return kLanes * (l.lane + l.partial);
}

/// f(lane, n0, nb, first chunk of the lane) for every chunk of images, lanes in parallel.
template <class F>
void for_each_chunk(const Conv& v, F f) {
  const std::int64_t per = images_per_gemm(v), chunks = (v.n + per - 1) / per;
  detail::for_each_lane(kLanes, chunks, [&](std::int64_t lane, std::int64_t first, std::int64_t end) {
    for (std::int64_t c = first; c < end; ++c) f(lane, c * per, std::min(per, v.n - c * per), c == first);
  });
}

// ---- The direct path (detail/direct_conv.hpp): stride 1, one group, more than one tap.

bool use_direct(const Conv& v) { return v.win.sh == 1 && v.win.sw == 1 && v.groups == 1 && v.win.kh * v.win.kw > 1; }
/// The kernel gradient directly too for at most 16 channels in and out (LeNet's: the step
/// 2.4 -> 2.05 ms at batch 64); above, the columns and the GEMM (bench/CONV.md: 32
/// channels by 3x3 on 28x28, 10.5 ms against 18.3 directly, whose sums reread each output
/// gradient block for every input channel and kernel row).
bool direct_for_kernel_grad(const Conv& v) { return use_direct(v) && v.cin <= 16 && v.cout <= 16; }
/// Of those, the kernel gradient with the output channels in the lanes
/// (detail::channel_kernel_grad) when they fill more than half a vector and the kernel's
/// columns are adjacent: no wide positions, no lanes summed at the end. LeNet's second
/// convolution (16 channels, 5x5 on 14x14 planes): 0.72 -> 0.40 ms at batch 64, 16 by 3x3
/// on 14x14 with "same" padding 0.95-1.12 -> 0.70-0.80 ms (Zen 4, one thread); its first
/// (6 channels of 16 lanes) keeps the positions in the lanes.
bool channel_kernel_grad(const Conv& v, std::int64_t lanes) {
  return direct_for_kernel_grad(v) && 2 * v.cout > lanes && v.cout <= lanes && v.win.dw == 1 &&
         v.win.kw <= detail::kChannelGradMaxWidth;
}

std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

/// The cost of a term (a channel and tap) for a block of ob channels by s vectors: the most
/// of ob·s multiply-adds, s + ob loads (at the same rate) and 8 (the multiply-adds two
/// pipes of a latency of 4 cycles keep going).
std::int64_t term_cost(std::int64_t ob, std::int64_t s) { return std::max({ob * s, s + ob, std::int64_t{8}}); }
/// Blocks of s vectors over `wide` positions.
std::int64_t blocks_over(std::int64_t wide, std::int64_t s, std::int64_t lanes) { return round_up(wide, s * lanes) / (s * lanes); }
/// Of the vectors of positions a block whose accumulators fit, the fewest cycles by
/// term_cost times the blocks the wide plane takes; the most vectors of equals.
std::int64_t best_strips(std::int64_t wide, std::int64_t ob, std::int64_t lanes) {
  const auto cost = [&](std::int64_t s) { return blocks_over(wide, s, lanes) * term_cost(ob, s); };
  std::int64_t best = 1;
  for (std::int64_t s = 2; s <= detail::direct_strips(static_cast<int>(ob)); ++s)
    if (cost(s) <= cost(best)) best = s;
  return best;
}

/// One direct convolution: `cin` planes [rows, cols] read, padded into [hp, wp] with the
/// plane's corner at (top, left); `cout` planes [ho, wo] written, the output channels in
/// `blocks` blocks of `ob` (the last padded with zero weights). L is the values per vector.
struct Direct {
  std::int64_t cin = 0, cout = 0, rows = 0, cols = 0, top = 0, left = 0, hp = 0, wp = 0, ho = 0, wo = 0;
  std::int64_t ob = 1, blocks = 1, lanes = 1;
  std::vector<std::int64_t> offsets;  // one per tap, row-major over the kernel
  std::int64_t taps() const { return static_cast<std::int64_t>(offsets.size()); }
  std::int64_t wide() const { return ho * wp; }
  std::int64_t in_stride() const { return round_up(hp * wp, lanes); }
  /// The padded planes of `images` images and the room past them the last block reads:
  /// up to kDirectMaxStrips vectors past a wide plane, plus a row's last offset.
  std::int64_t in_size(std::int64_t images) const {
    return images * cin * in_stride() + detail::kDirectMaxStrips * lanes + wp;
  }
  /// Vectors of positions a block, of those whose accumulators fit: the fewest cycles by
  /// a model of a term's cost, the most of ob·s multiply-adds, s + ob loads (at the same
  /// rate) and 8 (the multiply-adds two pipes of a latency of 4 cycles keep going), times
  /// the blocks the wide plane takes; the most vectors of equals. A 7x7 plane padded to 9
  /// columns has 63 positions: 8 channels take two vectors of 16, not three (33 wasted).
  std::int64_t strips() const { return best_strips(wide(), ob, lanes); }
  std::int64_t out_stride() const { return round_up(wide(), strips() * lanes); }
  /// Room for one block's wide outputs whatever the vector width.
  std::int64_t out_room() const { return ob * (wide() + detail::kDirectMaxStrips * lanes); }
  std::int64_t packed_size() const { return blocks * ob * cin * taps(); }
};

Direct direct_of(const Window& w, std::int64_t cin, std::int64_t cout, std::int64_t rows, std::int64_t cols,
                 std::int64_t top, std::int64_t left, std::int64_t hp, std::int64_t wp, std::int64_t lanes) {
  Direct d{.cin = cin, .cout = cout, .rows = rows, .cols = cols, .top = top, .left = left, .hp = hp, .wp = wp,
           .ho = hp - (w.kh - 1) * w.dh, .wo = wp - (w.kw - 1) * w.dw, .ob = 1, .blocks = 1, .lanes = lanes, .offsets = {}};
  // As few blocks of at most kDirectMaxBlock channels as there can be, as even as they
  // can be (LeNet's 6 output channels: one block of 6, not 8 with 2 of zeros).
  // At least one block: no channels at all (an input of 0 channels, whose gradient this
  // computes, or 0 filters) had divided by zero blocks.
  d.blocks = std::max<std::int64_t>(1, (cout + detail::kDirectMaxBlock - 1) / detail::kDirectMaxBlock);
  d.ob = std::max<std::int64_t>(1, (cout + d.blocks - 1) / d.blocks);
  for (std::int64_t i = 0; i < w.kh; ++i)
    for (std::int64_t j = 0; j < w.kw; ++j) d.offsets.push_back(i * w.dh * wp + j * w.dw);
  return d;
}
/// The forward pass: x's planes padded as the window says.
Direct direct_forward(const Conv& v, std::int64_t lanes) {
  const Window& w = v.win;
  return direct_of(w, v.cin, v.cout, w.h, w.w, w.pt, w.pl, w.h + w.pt + w.pb, w.w + w.pl + w.pr, lanes);
}
/// The input gradient: the output gradient's planes padded by the kernel's span less the
/// forward padding (a padding wider than the span crops them), read by the flipped kernel.
Direct direct_input_grad(const Conv& v, std::int64_t lanes) {
  const Window& w = v.win;
  const std::int64_t sh = (w.kh - 1) * w.dh, sw = (w.kw - 1) * w.dw;
  return direct_of(w, v.cout, v.cin, w.ho, w.wo, sh - w.pt, sw - w.pl, w.h + sh, w.w + sw, lanes);
}

/// Whether the input gradient is scattered from the output gradient's wide positions
/// (detail::direct_scatter_block) rather than gathered from its padded planes: when the
/// cost model says so, counting the scatter's read-add-write of each block's results
/// per tap. A valid window's padding is wide and the scatter wins (LeNet's second
/// convolution: 140 positions read where gathering reads 252, more than half of them
/// zero); with the padding of `same` gathering does.
bool scatter_input_grad(const Conv& v, std::int64_t lanes) {
  const Direct f = direct_forward(v, lanes), b = direct_input_grad(v, lanes);
  const std::int64_t sg = b.strips(), ss = best_strips(f.wide(), b.ob, lanes);
  const std::int64_t gather = blocks_over(b.wide(), sg, lanes) * term_cost(b.ob, sg) * v.cout;
  const std::int64_t scatter = blocks_over(f.wide(), ss, lanes) * (term_cost(b.ob, ss) * v.cout + 2 * b.ob * ss);
  return scatter < gather;
}

/// The kernel gradient's blocks: TB taps of a kernel row (at most kDirectMaxBlock) by
/// output channels in as even blocks as fit beside them.
struct GradBlocks {
  std::int64_t tb = 1, ob = 1, blocks = 1;
};
GradBlocks grad_blocks(const Window& w, std::int64_t cout) {
  GradBlocks g;
  g.tb = std::min<std::int64_t>(w.kw, detail::kDirectMaxBlock);
  const std::int64_t most = detail::direct_grad_channels(static_cast<int>(g.tb));
  g.blocks = std::max<std::int64_t>(1, (cout + most - 1) / most);  // at least one, as direct_of's
  g.ob = std::max<std::int64_t>(1, (cout + g.blocks - 1) / g.blocks);
  return g;
}

/// Images per chunk of the kernel gradient and the scattered input gradient: as many as
/// keep their padded inputs and wide output gradients, in floats, within two thirds of
/// this machine's L1d (detect_caches()), at least one, at most 16: every block of
/// channels and taps then rereads them from L1. Measured on the Zen 5 (48 KiB L1d) against
/// the 256 KB of floats it had been (kept in L2): LeNet's first kernel gradient 0.167 ->
/// 0.152 ms at batch 64 (one image a chunk), 8 -> 8 channels 3x3 on 28x28 0.91 -> 0.85 ms,
/// the rest unchanged (bench/CONV.md's shapes, one thread, alternated runs). The chunks
/// change which terms a lane sums first, so the bits depend on the L1's size, as the
/// GEMM's do on its blocking; never on the thread count.
std::int64_t direct_images(const Conv& v, const Direct& d) {
  static const std::int64_t budget = std::max<std::int64_t>(detect_caches().l1d, 16384) * 2 / 3 /
                                     static_cast<std::int64_t>(sizeof(float));
  const GradBlocks g = grad_blocks(v.win, v.cout);
  const std::int64_t per_image = d.cin * d.hp * d.wp + g.blocks * g.ob * d.wide();  // whatever the vector width
  return std::clamp<std::int64_t>(budget / std::max<std::int64_t>(per_image, 1), 1, 16);
}

/// The forward pass with the output channels in the lanes (detail::channel_forward_tile):
/// tiles of rb output rows by cb columns, each output row in as even blocks of at most
/// kChannelTileCols as there can be, rows as many as the accumulators then allow, evenly;
/// the last tile of a row or column moved back to end at the plane's edge (recomputing
/// some outputs, to the same bits).
struct ChannelTiles {
  std::int64_t rb = 1, cb = 1, row_tiles = 0, col_tiles = 0;
  std::int64_t positions() const { return row_tiles * rb * col_tiles * cb; }  // computed, with the overlaps
};
ChannelTiles channel_tiles(const Conv& v) {
  ChannelTiles t;
  t.col_tiles = (v.win.wo + detail::kChannelTileCols - 1) / detail::kChannelTileCols;
  t.cb = (v.win.wo + t.col_tiles - 1) / t.col_tiles;
  const std::int64_t most = std::clamp<std::int64_t>(detail::kDirectAccumulators / t.cb, 1, detail::kChannelTileRows);
  t.row_tiles = (v.win.ho + most - 1) / most;
  t.rb = (v.win.ho + t.row_tiles - 1) / t.row_tiles;
  return t;
}
/// Whether the forward pass takes the channels in the lanes: when they fill more than half
/// a vector and the tiles compute at most 4/5 of the values the wide blocks compute (every
/// output channel block times the wide positions rounded up to whole blocks of vectors);
/// the margin pays for the tiles' transpose to NCHW and their overlaps. A valid window on a
/// small plane: LeNet's second convolution computes 100 positions by 16 lanes where the
/// wide blocks compute 144 by 16 channels, its forward pass 0.45 -> 0.35 ms at batch 64
/// (Zen 4, one thread). 16 channels by 3x3 on 14x14 planes with "same" padding (210 by 16
/// against 224 by 16) stay wide: tiled, 0.69-0.88 ms against 0.67-0.73.
bool channel_forward(const Conv& v, std::int64_t lanes) {
  if (!use_direct(v) || 2 * v.cout <= lanes || v.cout > lanes || v.win.ho < 1 || v.win.wo < 1) return false;
  const Direct d = direct_forward(v, lanes);
  const std::int64_t s = d.strips();
  return channel_tiles(v).positions() * lanes * 5 < 4 * blocks_over(d.wide(), s, lanes) * s * lanes * d.blocks * d.ob;
}

/// The scratch: the packed weights of both passes, then kLanes lanes, each the larger of
/// the forward's (one padded image, one block's wide outputs) and the vjp's (a chunk's
/// padded inputs and wide output gradients, then either one padded output gradient and
/// one block's wide input gradients, or the padded planes the input gradient is scattered
/// into), then, when the kernel gradient is direct, kLanes sums of a vector per kernel
/// value [out][in·kh·kw][lanes].
struct DirectLayout {
  std::int64_t packed_fwd, packed_grad, lane, gyw, partial, dx_stride;
  std::int64_t gt = 0;  // where a lane's output gradient by position [images][ho·wo][lanes] starts (channel_kernel_grad)
};
/// The output gradient's wide planes: whole vectors, and zeros past them for the reads of
/// a scatter block of up to kDirectMaxStrips vectors.
std::int64_t gw_stride(const Direct& f, std::int64_t lanes) {
  return round_up(f.wide(), lanes) + (detail::kDirectMaxStrips - 1) * lanes;
}
/// The planes the input gradient is scattered into: the forward's padded planes, with room
/// for the writes of the last block past the last position plus the last tap's offset.
std::int64_t dx_stride(const Direct& f, std::int64_t lanes) {
  return round_up(f.hp * f.wp + detail::kDirectMaxStrips * lanes + f.wp, lanes);
}
DirectLayout direct_layout(const Conv& v, std::int64_t lanes) {
  const Direct f = direct_forward(v, lanes), b = direct_input_grad(v, lanes);
  const GradBlocks g = grad_blocks(v.win, v.cout);
  const std::int64_t per = direct_images(v, f);
  DirectLayout l;
  const bool by_channel = channel_forward(v, lanes);
  l.packed_fwd = by_channel ? std::max(f.packed_size(), v.k_g() * lanes) : f.packed_size();
  l.packed_grad = b.packed_size();
  l.gyw = f.in_size(per);
  const std::int64_t forward = f.in_size(1) + (by_channel ? std::max(f.out_room(), v.positions() * lanes) : f.out_room());
  l.dx_stride = dx_stride(f, lanes);
  const std::int64_t scattered = b.blocks * b.ob * l.dx_stride;  // the input gradient's padded planes
  std::int64_t vjp = l.gyw + per * g.blocks * g.ob * gw_stride(f, lanes) + std::max(b.in_size(1) + b.out_room(), scattered);
  if (channel_kernel_grad(v, lanes)) {
    l.gt = vjp;
    vjp += per * v.positions() * lanes;
  }
  l.lane = std::max(forward, vjp);
  l.partial = g.blocks * g.ob * v.k_g() * lanes;  // a vector per kernel value, padding channels too
  return l;
}
/// Values of the layout for vectors of `lanes` values. Without a direct kernel gradient, no
/// room for its sums (9.4 MB for 64 channels by 3x3).
std::int64_t direct_scratch(const Conv& v, std::int64_t lanes) {
  const DirectLayout l = direct_layout(v, lanes);
  return l.packed_fwd + l.packed_grad + kLanes * (l.lane + (direct_for_kernel_grad(v) ? l.partial : 0));
}
/// The scratch is sized before the scalar type is known: the larger of the floats' layout
/// and the doubles' (vectors of half as many values, whose strides are smaller but which
/// take the channels into their lanes for fewer of them: 6 channels do with doubles on
/// AVX-512, and their layout is then the larger).
std::int64_t direct_scratch(const Conv& v) {
  const std::int64_t floats = detail::kDirectBytes / static_cast<std::int64_t>(sizeof(float));
  return std::max(direct_scratch(v, floats), direct_scratch(v, floats / 2));
}

/// packed[((blk·cin + c)·taps + t)·ob + o'] = weight(blk·ob + o', c, t), zero for the
/// padding channels past cout.
template <class T, class W>
void pack_direct(const Direct& d, W weight, T* packed) {
  const std::int64_t taps = d.taps();
  for (std::int64_t blk = 0; blk < d.blocks; ++blk)
    for (std::int64_t c = 0; c < d.cin; ++c)
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t o = 0; o < d.ob; ++o) {
          const std::int64_t out = blk * d.ob + o;
          *packed++ = out < d.cout ? weight(out, c, t) : T(0);
        }
}

/// The plan's epilogue (OpBuilder::epilogue on axis 1) on the output planes [images, cout,
/// pos] of a few images, right after they are written and while they are in cache: plane o
/// + bias[o], then the activation — bias_add's add along the channels and the activation
/// op's function (math::activate), the same bits.
template <class T>
void plane_epilogue(const Epilogue<T>& e, T* out, std::int64_t images, std::int64_t cout, std::int64_t pos) {
  const T* bias = e.bias_data();
  for (std::int64_t r = 0; r < images * cout; ++r) {
    T* p = out + r * pos;
    const T b = bias ? bias[r % cout] : T(0);
    if (bias && e.act == math::Activation::relu) {
      for (std::int64_t q = 0; q < pos; ++q) p[q] = math::relu(p[q] + b);
      continue;
    }
    if (bias)
      for (std::int64_t q = 0; q < pos; ++q) p[q] = p[q] + b;
    math::activate(e.act, p, pos);
  }
}

/// The images of one lane handed to the nodes the plan runs per item inside this one
/// (Kernel::items_written after they are written, Kernel::grad_out_items before their
/// gradient is read), in runs of about kItemRunBytes of output: still in this core's
/// cache, and few calls (each sets up the follower's window again; image by image, that
/// cost LeNet's second layer at batch 256 about 50 us a pass at 1 thread).
constexpr std::int64_t kItemRunBytes = std::int64_t{32} << 10;
template <class K>
struct ItemRuns {
  const K& k;
  std::int64_t next;  // the first image not yet handed over
  std::int64_t end;   // the lane's last image + 1
  std::int64_t run;   // images a run
  ItemRuns(const K& kernel, const Conv& v, std::int64_t b0, std::int64_t b1)
      : k(kernel), next(b0), end(b1),
        run(std::max<std::int64_t>(1, kItemRunBytes / std::max<std::int64_t>(
                                          1, v.cout * v.positions() * static_cast<std::int64_t>(sizeof(scalar_of<K>))))) {}
  /// Forward: images up to `upto` are written; a run once it is whole, the rest at `upto == end`.
  void written(std::int64_t upto) {
    if (upto - next < run && upto < end) return;
    k.items_written(next, upto);
    next = upto;
  }
  /// Vjp: images [.., upto) are about to be read: their run (and the next, up to a run's worth) made ready.
  void ready(std::int64_t upto) {
    if (upto <= next) return;
    const std::int64_t to = std::min(end, std::max(upto, next + run));
    k.grad_out_items(next, to);
    next = to;
  }
};

/// One image: its planes padded into `padded` (whose padding is already zero), every block
/// of output channels computed wide into `wide`, the valid columns copied into out [cout, ho, wo].
template <class T>
void direct_image(const Direct& d, const T* packed, const T* in, T* padded, T* wide, T* out) {
  for (std::int64_t c = 0; c < d.cin; ++c)
    detail::place_plane(in + c * d.rows * d.cols, d.rows, d.cols, d.top, d.left, d.hp, d.wp, padded + c * d.in_stride());
  const auto block = detail::direct_block_for<T>(static_cast<int>(d.ob), static_cast<int>(d.strips()), false);
  const std::int64_t stride = d.out_stride(), per_block = d.cin * d.taps() * d.ob;
  for (std::int64_t blk = 0; blk < d.blocks; ++blk) {
    block(padded, d.cin, d.in_stride(), d.offsets.data(), d.taps(), packed + blk * per_block, d.wide(), wide, stride);
    for (std::int64_t o = blk * d.ob; o < std::min(d.cout, (blk + 1) * d.ob); ++o)
      for (std::int64_t oy = 0; oy < d.ho; ++oy)
        copy_line(wide + (o - blk * d.ob) * stride + oy * d.wp, d.wo, out + (o * d.ho + oy) * d.wo);
  }
}

template <class K>
void direct_forward_pass(K& k, const Conv& v) {
  using T = scalar_of<K>;
  const Direct d = direct_forward(v, detail::DirectVec<T>::lanes);
  const DirectLayout l = direct_layout(v, d.lanes);
  T* packed = k.scratch().data;
  const T* wt = k.in(1).data;
  const std::int64_t taps = d.taps();
  T* lanes = packed + l.packed_fwd + l.packed_grad;
  const T* x = k.in(0).data;
  T* y = k.out().data;
  if (channel_forward(v, d.lanes)) {
    // The weights as [cin][kh][kw][lanes] (the lanes past the channels zero), then per
    // image its padded planes, every tile into [positions][lanes], and those to NCHW.
    const std::int64_t L = d.lanes, pos = v.positions(), wo = v.win.wo;
    for (std::int64_t r = 0; r < v.k_g(); ++r)
      for (std::int64_t o = 0; o < L; ++o) packed[r * L + o] = o < v.cout ? wt[o * v.k_g() + r] : T(0);
    const ChannelTiles t = channel_tiles(v);
    const auto tile = detail::channel_tile_for<T>(static_cast<int>(t.rb), static_cast<int>(t.cb));
    detail::for_each_lane(kLanes, v.n, [&](std::int64_t lane, std::int64_t b0, std::int64_t b1) {
      ItemRuns<K> runs(k, v, b0, b1);
      T* padded = lanes + lane * l.lane;
      T* rows = padded + d.in_size(1);
      std::fill(padded, rows, T(0));
      for (std::int64_t b = b0; b < b1; ++b) {
        const T* in = x + b * v.cin * v.plane();
        for (std::int64_t c = 0; c < v.cin; ++c)
          detail::place_plane(in + c * d.rows * d.cols, d.rows, d.cols, d.top, d.left, d.hp, d.wp,
                              padded + c * d.in_stride());
        for (std::int64_t ty = 0; ty < t.row_tiles; ++ty)
          for (std::int64_t tx = 0; tx < t.col_tiles; ++tx) {
            const std::int64_t oy = std::min(ty * t.rb, v.win.ho - t.rb), ox = std::min(tx * t.cb, wo - t.cb);
            tile(padded + oy * d.wp + ox, d.in_stride(), v.cin, d.wp, v.win.kh, v.win.kw, v.win.dh, v.win.dw, packed,
                 rows + (oy * wo + ox) * L, wo * L);
          }
        // Back to NCHW: blocks of L positions transposed in registers, the rest one by one.
        T* out = y + b * v.cout * pos;
        const std::int64_t whole = pos / L * L;
        for (std::int64_t q0 = 0; q0 < whole; q0 += L) detail::transpose_block(rows + q0 * L, L, L, out + q0, pos, v.cout);
        for (std::int64_t o = 0; o < v.cout; ++o)
          for (std::int64_t q = whole; q < pos; ++q) out[o * pos + q] = rows[q * L + o];
        if (k.epilogue()) plane_epilogue(k.epilogue(), out, 1, v.cout, pos);
        runs.written(b + 1);
      }
    });
    return;
  }
  pack_direct<T>(d, [&](std::int64_t o, std::int64_t c, std::int64_t t) { return wt[(o * v.cin + c) * taps + t]; }, packed);
  detail::for_each_lane(kLanes, v.n, [&](std::int64_t lane, std::int64_t b0, std::int64_t b1) {
    ItemRuns<K> runs(k, v, b0, b1);
    T* padded = lanes + lane * l.lane;
    T* wide = padded + d.in_size(1);
    std::fill(padded, wide, T(0));
    for (std::int64_t b = b0; b < b1; ++b) {
      T* out = y + b * v.cout * v.positions();
      direct_image(d, packed, x + b * v.cin * v.plane(), padded, wide, out);
      if (k.epilogue()) plane_epilogue(k.epilogue(), out, 1, v.cout, v.positions());
      runs.written(b + 1);
    }
  });
}

/// The vjp from `base` in the scratch; the kernel gradient too when `kernel_grad`, which
/// also makes each chunk's output gradient ready first (Kernel::grad_out_items: the vjps
/// of a pool and bias the plan ran inside this one).
template <class K>
void direct_vjp(K& k, const Conv& v, scalar_of<K>* base, bool kernel_grad) {
  using T = scalar_of<K>;
  const std::int64_t L = detail::DirectVec<T>::lanes;
  const Direct f = direct_forward(v, L), b = direct_input_grad(v, L);
  const DirectLayout l = direct_layout(v, L);
  const GradBlocks gb = grad_blocks(v.win, v.cout);
  const std::int64_t taps = f.taps(), per = direct_images(v, f), gws = gw_stride(f, L);
  const std::int64_t cout_pad = gb.blocks * gb.ob, kw = v.win.kw;
  T* packed = base + l.packed_fwd;
  const T* wt = k.in(1).data;
  const bool dw_here = kernel_grad && k.needs_grad(1);
  const bool by_channel = dw_here && channel_kernel_grad(v, L);
  const bool scatter = k.needs_grad(0) && scatter_input_grad(v, L);
  if (scatter) {
    // [block][tap][o][ob]: for each tap, the weights of every output channel for the
    // block's input channels.
    T* p = packed;
    for (std::int64_t blk = 0; blk < b.blocks; ++blk)
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t o = 0; o < v.cout; ++o)
          for (std::int64_t c = blk * b.ob; c < (blk + 1) * b.ob; ++c) *p++ = c < v.cin ? wt[(o * v.cin + c) * taps + t] : T(0);
  } else if (k.needs_grad(0)) {
    pack_direct<T>(b, [&](std::int64_t c, std::int64_t o, std::int64_t t) { return wt[(o * v.cin + c) * taps + taps - 1 - t]; },
                   packed);
  }
  T* lanes = packed + l.packed_grad;
  T* partials = lanes + kLanes * l.lane;
  const T* x = k.in(0).data;
  const T* gy = k.grad_out().data;
  const std::int64_t chunks = (v.n + per - 1) / per;
  detail::for_each_lane(kLanes, chunks, [&](std::int64_t lane, std::int64_t first, std::int64_t end) {
    ItemRuns<K> runs(k, v, first * per, std::min(end * per, v.n));
    T* xin = lanes + lane * l.lane;  // a chunk's padded inputs
    T* gyw = xin + l.gyw;            // their output gradients, wide
    T* gpad = gyw + per * cout_pad * gws;
    T* dxw = gpad + b.in_size(1);
    std::fill(xin, dxw, T(0));
    T* dw = partials + lane * l.partial;
    for (std::int64_t c0 = first; c0 < end; ++c0) {
      const std::int64_t n0 = c0 * per, nb = std::min(per, v.n - n0);
      if (kernel_grad) runs.ready(n0 + nb);
      for (std::int64_t i = 0; i < nb && ((dw_here && !by_channel) || scatter); ++i)
        for (std::int64_t o = 0; o < v.cout; ++o)
          detail::place_plane(gy + ((n0 + i) * v.cout + o) * v.positions(), f.ho, f.wo, 0, 0, f.ho, f.wp,
                              gyw + (i * cout_pad + o) * gws);
      if (dw_here) {
        for (std::int64_t i = 0; i < nb; ++i)
          for (std::int64_t c = 0; c < v.cin; ++c)
            detail::place_plane(x + ((n0 + i) * v.cin + c) * v.plane(), f.rows, f.cols, f.top, f.left, f.hp, f.wp,
                                xin + (i * v.cin + c) * f.in_stride());
        if (by_channel) {
          // The output gradient by position, every channel's value at p in one vector
          // (the lanes past the channels zero); then per input channel, blocks of whole
          // kernel rows: dW[., c, i0 + r, j] in the vector at (c·taps + (i0 + r)·kw + j)·L.
          T* gt = xin + l.gt;
          const std::int64_t pos = v.positions();
          for (std::int64_t i = 0; i < nb; ++i) {
            const T* g = gy + (n0 + i) * v.cout * pos;
            T* dst = gt + i * pos * L;
            const std::int64_t whole = pos / L * L;
            for (std::int64_t q0 = 0; q0 < whole; q0 += L)
              detail::transpose_block(g + q0, pos, v.cout, dst + q0 * L, L, L);
            for (std::int64_t q = whole; q < pos; ++q) {
              for (std::int64_t o = 0; o < v.cout; ++o) dst[q * L + o] = g[o * pos + q];
              for (std::int64_t o = v.cout; o < L; ++o) dst[q * L + o] = T(0);
            }
          }
          const std::int64_t most = detail::channel_grad_rows(static_cast<int>(kw));
          const std::int64_t row_blocks = (v.win.kh + most - 1) / most, rb = (v.win.kh + row_blocks - 1) / row_blocks;
          for (std::int64_t c = 0; c < v.cin; ++c)
            for (std::int64_t i0 = 0; i0 < v.win.kh; i0 += rb) {
              const std::int64_t rows = std::min(rb, v.win.kh - i0);
              detail::channel_grad_for<T>(static_cast<int>(rows), static_cast<int>(kw))(
                  xin + c * f.in_stride() + i0 * v.win.dh * f.wp, v.cin * f.in_stride(), f.wp, v.win.dh * f.wp, gt, nb,
                  f.ho, f.wo, dw + (c * taps + i0 * kw) * L, c0 == first);
            }
        } else {
          // dW[o, c, i, j0 + t] over the chunk, block by block, in the lane's vectors:
          // stored by its first chunk, added to by the next.
          for (std::int64_t c = 0; c < v.cin; ++c)
            for (std::int64_t i = 0; i < v.win.kh; ++i)
              for (std::int64_t j0 = 0; j0 < kw; j0 += gb.tb) {
                const std::int64_t tb = std::min(gb.tb, kw - j0), t0 = i * kw + j0;
                const auto grad = detail::direct_grad_for<T>(static_cast<int>(gb.ob), static_cast<int>(tb));
                for (std::int64_t blk = 0; blk < gb.blocks; ++blk)
                  grad(xin + c * f.in_stride(), v.cin * f.in_stride(), gyw + blk * gb.ob * gws, gws,
                       cout_pad * gws, nb, f.wide(), f.offsets.data() + t0,
                       dw + ((blk * gb.ob * v.cin + c) * taps + t0) * L, v.cin * taps, c0 == first);
              }
        }
      }
      if (scatter) {
        // Into the forward's padded planes (gpad's place), then their inside to dx.
        const auto block =
            detail::direct_block_for<T>(static_cast<int>(b.ob), static_cast<int>(best_strips(f.wide(), b.ob, L)), true);
        T* dxp = gpad;
        for (std::int64_t i = 0; i < nb; ++i) {
          std::fill(dxp, dxp + b.blocks * b.ob * l.dx_stride, T(0));
          for (std::int64_t blk = 0; blk < b.blocks; ++blk)
            block(gyw + i * cout_pad * gws, v.cout, gws, f.offsets.data(), taps,
                  packed + blk * taps * v.cout * b.ob, f.wide(), dxp + blk * b.ob * l.dx_stride, l.dx_stride);
          T* dx = k.grad_in(0).data + (n0 + i) * v.cin * v.plane();
          for (std::int64_t c = 0; c < v.cin; ++c)
            detail::place_plane(dxp + c * l.dx_stride, f.hp, f.wp, -f.top, -f.left, f.rows, f.cols, dx + c * v.plane());
        }
      } else if (k.needs_grad(0)) {
        for (std::int64_t i = 0; i < nb; ++i)
          direct_image(b, packed, gy + (n0 + i) * v.cout * v.positions(), gpad, dxw,
                       k.grad_in(0).data + (n0 + i) * v.cin * v.plane());
      }
    }
  });
  if (!dw_here) return;
  const std::int64_t lanes_used = std::min(kLanes, chunks);
  T* dw = k.grad_in(1).data;
  if (by_channel) {
    // dW[o, c, t]: lane o of the vector of (c, t) in each lane of work, added in lane order.
    parallel_for(v.k_g(), 64, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t o = 0; o < v.cout; ++o) {
          T sum = T(0);
          for (std::int64_t lane = 0; lane < lanes_used; ++lane) sum += partials[lane * l.partial + r * L + o];
          dw[o * v.k_g() + r] = sum;
        }
    });
    return;
  }
  // Each kernel value: its vector in each lane added up, the lanes' sums added in lane order.
  parallel_for(v.cout * v.k_g(), 1024, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      T sum = T(0);
      for (std::int64_t lane = 0; lane < lanes_used; ++lane)
        sum += detail::DirectVec<T>::sum(detail::DirectVec<T>::load(partials + lane * l.partial + r * L));
      dw[r] = sum;
    }
  });
}

template <class K>
void conv_forward(K& k) {
  using T = scalar_of<K>;
  const Conv v = conv_of(k);
  if (use_direct(v)) return direct_forward_pass(k, v);
  const T* x = k.in(0).data;
  const T* wt = k.in(1).data;
  T* y = k.out().data;
  const std::int64_t p = v.positions(), kg = v.k_g(), og = v.cout_g();
  const ScratchLayout sl = scratch_layout(v);
  for_each_chunk(v, [&](std::int64_t lane, std::int64_t n0, std::int64_t nb, bool) {
    T* cols = k.scratch().data + lane * sl.lane;
    T* outs = cols + sl.rows;
    im2col(v, x + n0 * v.cin * v.plane(), nb, cols);
    const std::int64_t ld = nb * p;
    if (og <= kFewChannels) {
      // outs_g [og, nb*P] = W_g [og, kg] x cols_g [kg, nb*P]: few output channels by many
      // positions, the GEMM's few-rows path, the columns read in place. One image is
      // already NCHW: written straight into y.
      T* dst = nb == 1 ? y + n0 * v.cout * p : outs;
      for (std::int64_t g = 0; g < v.groups; ++g)
        gemm<T>(false, false, og, ld, kg, T(1), wt + g * og * kg, kg, cols + g * kg * ld, ld, T(0), dst + g * og * ld,
                ld);
      if (nb > 1) from_wide(outs, nb, v.cout, p, y + n0 * v.cout * p);
    } else {
      // outs_g [nb*P, og] = cols_g^T [nb*P, kg] x W_g^T: the tall operand read in place (its
      // transpose: each depth a contiguous run of positions), only the small kernel packed,
      // tiles of whole vectors of output channels; then transposed to NCHW.
      for (std::int64_t g = 0; g < v.groups; ++g)
        gemm<T>(true, true, ld, og, kg, T(1), cols + g * kg * ld, ld, wt + g * og * kg, kg, T(0), outs + g * og,
                v.cout);
      from_rows(outs, nb, v.cout, p, y + n0 * v.cout * p);
    }
    if (k.epilogue()) plane_epilogue(k.epilogue(), y + n0 * v.cout * p, nb, v.cout, p);
    k.items_written(n0, n0 + nb);
  });
}

template <class K>
void conv_vjp(K& k) {
  using T = scalar_of<K>;
  const Conv v = conv_of(k);
  if (direct_for_kernel_grad(v)) return direct_vjp(k, v, k.scratch().data, true);
  // Otherwise the kernel gradient from the columns, and the input gradient of a stride-1
  // window directly (after the columns' scratch).
  const bool dx_here = k.needs_grad(0) && !use_direct(v);
  const T* wt = k.in(1).data;
  const T* gy = k.grad_out().data;
  const std::int64_t p = v.positions(), kg = v.k_g(), og = v.cout_g();
  const ScratchLayout sl = scratch_layout(v);
  T* partials = k.scratch().data + kLanes * sl.lane;
  for_each_chunk(v, [&](std::int64_t lane, std::int64_t n0, std::int64_t nb, bool first) {
    k.grad_out_items(n0, n0 + nb);  // before any read of the chunk's output gradient
    // The receptive fields again (cols), then, once the kernel gradient has read them,
    // their gradient (dcol) in the same place.
    T* cols = k.scratch().data + lane * sl.lane;
    T* dcol = cols;
    T* grows = dcol + sl.rows;
    T* wide = grows + sl.outs;
    const T* gn = gy + n0 * v.cout * p;
    const std::int64_t ld = nb * p;
    const bool few = og <= kFewChannels;
    const T* g_wide = gn;  // gy_g [og, nb*P]: NCHW itself for one image
    if (nb > 1 && (dx_here || few)) {
      to_wide(gn, nb, v.cout, p, wide);
      g_wide = wide;
    }
    if (k.needs_grad(1)) {
      im2col(v, k.in(0).data + n0 * v.cin * v.plane(), nb, cols);
      // The lane's kernel gradient, summed chunk after chunk: for few output channels
      // dW_g [og, kg] += gy_g [og, nb*P] x cols_g^T, dot products along the positions (both
      // read in place; the GEMM's inner-product path when kg <= 256); for more,
      // dW_g^T [kg, og] += cols_g x gy_g as rows.
      T* dwl = partials + lane * sl.partial;
      const T beta = first ? T(0) : T(1);
      if (few) {
        for (std::int64_t g = 0; g < v.groups; ++g)
          gemm<T>(false, true, og, kg, ld, T(1), g_wide + g * og * ld, ld, cols + g * kg * ld, ld, beta,
                  dwl + g * og * kg, kg);
      } else {
        to_rows(gn, nb, v.cout, p, grows);
        for (std::int64_t g = 0; g < v.groups; ++g)
          gemm<T>(false, false, kg, og, ld, T(1), cols + g * kg * ld, ld, grows + g * og, v.cout, beta,
                  dwl + g * kg * og, og);
      }
    }
    if (dx_here) {
      // dcols_g [kg, nb*P] = W_g^T [kg, og] x gy_g [og, nb*P], folded back into the images
      // (the columns, not rows: col2im then reads each tap's values contiguously).
      for (std::int64_t g = 0; g < v.groups; ++g)
        gemm<T>(true, false, kg, ld, og, T(1), wt + g * og * kg, kg, g_wide + g * og * ld, ld, T(0), dcol + g * kg * ld, ld);
      col2im(v, dcol, ld, nb, k.grad_in(0).data + n0 * v.cin * v.plane());
    }
  });
  if (use_direct(v) && k.needs_grad(0)) direct_vjp(k, v, k.scratch().data + scratch_elements(v), false);
  if (!k.needs_grad(1)) return;
  // dW[g, o, kk] = the lanes' sums (transposed when they were taken as dW^T), added in
  // lane order.
  T* dw = k.grad_in(1).data;
  const std::int64_t per = images_per_gemm(v), lanes = std::min(kLanes, (v.n + per - 1) / per);
  const bool few = og <= kFewChannels;
  parallel_for(v.groups * og, 1, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t g = r / og, o = r % og;
      for (std::int64_t c = 0; c < kg; ++c) {
        const std::int64_t at = few ? (g * og + o) * kg + c : g * kg * og + c * og + o;
        T sum = T(0);
        for (std::int64_t lane = 0; lane < lanes; ++lane) sum += partials[lane * sl.partial + at];
        dw[(g * og + o) * kg + c] = sum;
      }
    }
  });
}

Conv conv_of_shapes(const ShapeContext& c) {
  const Shape &x = c.in(0), &w = c.in(1);
  if (x.rank() != 4) c.fail("x must be [N, C, H, W] (NCHW), got {}", x);
  if (w.rank() != 4) c.fail("w must be [out, in/groups, kh, kw], got {}", w);
  for (int d = 1; d < 4; ++d)
    if (x[d] < 0) c.fail("x {}: channels, height and width must be numbers", x);
  for (int d = 0; d < 4; ++d)
    if (w[d] < 0) c.fail("w {}: every dimension must be a number", w);
  const std::int64_t groups = c.attr_int("groups");
  if (x[1] % groups != 0 || w[0] % groups != 0)
    c.fail("groups={} must divide the input channels ({}) and the output channels ({})", groups, x[1], w[0]);
  if (w[1] * groups != x[1])
    c.fail("w {} takes {} input channels per group, x {} has {} in {} group{} ({} each)", w, w[1], x, x[1], groups,
           groups == 1 ? "" : "s", x[1] / groups);
  return conv_of(c, x.dims().data(), w.dims().data(), [&](const std::string& m) { c.fail("{}", m); });
}

}  // namespace

OPGRAPH_OP(conv2d)
    .lower([](LoweringContext& c) {
      const Shape& x = c.in_shape(0);
      const Shape& w = c.in_shape(1);
      if (is_symbolic(x[2]) || is_symbolic(x[3])) c.fail("the image size {} is symbolic", x);
      const detail::Window win = detail::window_of(c, {w[2], w[3]}, x[2], x[3], true, [&](const std::string& m) { c.fail("{}", m); });
      Attrs attrs = detail::onnx_window(win, true);
      attrs.emplace_back("group", c.attr_int("groups"));
      c.emit("Conv", {c.input(0), c.input(1)}, {c.output()}, std::move(attrs));
    })
    .doc("2-D convolution of x [N,C,H,W] with w [out, C/groups, kh, kw] (PyTorch's conv2d, no bias: add one with "
         "bias_add(y, b, axis=1)); padding ints, same or valid")
    .input("x")
    .input("w")
    .attr("stride", AttrType::int_list, IntList{1}, "step of the window: one int or (height, width)",
          detail::positive_pair)
    .attr("padding", AttrType::int_list, IntList{0},
          "zeros around the input: one int, (height, width), (top, left, bottom, right), same or valid",
          [](const AttrValue& v) { return detail::padding_value(v, true); })
    .attr("dilation", AttrType::int_list, IntList{1}, "spacing of the kernel taps: one int or (height, width)",
          detail::positive_pair)
    .attr("groups", AttrType::integer, 1, "input and output channels split into this many independent groups",
          [](const AttrValue& v) { return v.as_int() >= 1 ? "" : "must be positive"; })
    .shape([](const ShapeContext& c) {
      const Conv v = conv_of_shapes(c);
      return Shape{c.in(0)[0], v.cout, v.win.ho, v.win.wo};
    })
    .scratch([](const ShapeContext& c) {
      const Conv v = conv_of_shapes(c);
      if (!use_direct(v)) return Shape{scratch_elements(v)};
      return Shape{direct_for_kernel_grad(v) ? direct_scratch(v) : scratch_elements(v) + direct_scratch(v)};
    })
    .saves({"x", "w"})
    .epilogue(1)  // a bias per channel and an activation, on each image's planes (plane_epilogue)
    .item_followers()  // and then a pool, image by image, in both passes (items_written, grad_out_items)
    .forward([](auto& k) { conv_forward(k); })
    .vjp([](auto& k) { conv_vjp(k); })
    .cost([](const ShapeContext& c, const Shape& y) {
      const Conv v = conv_of_shapes(c);
      double outs = 1;
      for (auto d : y.dims()) outs *= static_cast<double>(d);
      const double flops = 2.0 * outs * static_cast<double>(v.k_g());
      return OpCost{flops, 2.0 * flops};
    })
    .check({"[a,b,6,7]", "[c,b,3,3]"})
    .check({"[a,b,5,6]", "[c,b,1,1]"})
    .check({"[a,b,7,6]", "[c,b,3,2]"}, {{"stride", IntList{2, 1}}, {"padding", IntList{1, 2}}})
    .check({"[a,b,8,8]", "[c,b,3,3]"}, {{"dilation", 2}, {"padding", IntList{0, 1, 2, 3}}})
    .check({"[a,4,6,5]", "[6,2,3,3]"}, {{"groups", 2}, {"padding", "same"}})
    .check({"[a,3,7,7]", "[3,1,2,2]"}, {{"groups", 3}, {"padding", "same"}})
    .check({"[a,b,9,8]", "[c,b,4,4]"}, {{"stride", 3}, {"padding", 1}, {"dilation", IntList{1, 2}}});

}  // namespace opgraph::ops
