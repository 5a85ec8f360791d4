// Direct convolution with stride 1: every output summed in registers from the padded
// input planes, no im2col.
//
// One image's input planes are copied, with their zero padding, into a buffer whose rows
// are wp = pl + w + pr long. The output at (oy, ox) reads, at tap (i, j), the value at
// q + (i·dh·wp + j·dw) with q = oy·wp + ox: one offset per tap whatever the position. So
// the kernels compute a "wide" output plane, every q in [0, ho·wp), and the columns
// ox >= wo of each of its rows (which straddle two input rows) are thrown away: wp / wo
// more work (14 / 10 for LeNet's second convolution), no gather and no copy of receptive
// fields. A block of S vectors of consecutive positions times OB output channels is OB·S
// accumulators; each term is S vector loads and OB broadcast weights for OB·S fused
// multiply-adds, where im2col first writes and reads every tap's copy of the input.
//
// The input gradient is the same kernel run on the output gradient, padded by the
// kernel's span less the forward padding, with the kernel flipped and its two channel
// axes swapped; or, where that padding is wide, scattered from the output gradient's wide
// positions (direct_scatter_block). The kernel gradient sums g[o][q]·in[c][q + offset(i, j)]
// over the wide positions of the images of a chunk, the output gradient's thrown-away
// columns zero. Each output sums its terms in one fixed order that depends only on the
// shapes. When the output channels fill more than half a vector, the forward pass and
// the kernel gradient can instead hold one position's channels in a vector
// (channel_forward_tile, channel_kernel_grad): no wide positions, the input value a
// broadcast. ops/conv2d.cpp chooses among them and lays out the buffers.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

namespace opgraph::ops::detail {

#if defined(__AVX512F__)
inline constexpr int kDirectBytes = 64;        // one vector register
inline constexpr int kDirectAccumulators = 24;  // of the 32 registers, the rest for loads
#else
inline constexpr int kDirectBytes = 32;
inline constexpr int kDirectAccumulators = 12;  // of 16
#endif
inline constexpr int kDirectMaxBlock = 8;  // output channels (and kernel-gradient taps) per block
inline constexpr int kDirectMaxStrips = 4;  // vectors of positions per forward block

template <class T>
struct DirectVec {
  typedef T V __attribute__((vector_size(kDirectBytes)));
  typedef T Unaligned __attribute__((vector_size(kDirectBytes), aligned(alignof(T)), may_alias));
  static constexpr int lanes = kDirectBytes / static_cast<int>(sizeof(T));
  static V load(const T* p) { return *reinterpret_cast<const Unaligned*>(p); }
  static void store(T* p, V v) { *reinterpret_cast<Unaligned*>(p) = v; }
  /// The lanes added pairwise (lane l with l + w, w = lanes/2, ..., 1): a fixed order.
  static T sum(V v) {
    for (int w = lanes / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) v[l] += v[l + w];
    return v[0];
  }
};

/// Copies n values: moves of 8 and 4 at a time, whose sizes the compiler knows (a run-time
/// count makes std::copy call memmove, which costs more than the copy for a short line).
template <class T>
inline void copy_line(const T* src, std::int64_t n, T* dst) {
  // The part past whole groups of 8 (or 4) is copied as the last 8 (4) of the line, which
  // rewrites some values already copied with the same values: no scalar tail (LeNet's
  // second convolution copies lines of 10).
  if (n >= 8) {
    for (std::int64_t q = 0; q + 8 <= n; q += 8) std::memcpy(dst + q, src + q, 8 * sizeof(T));
    if (n % 8 != 0) std::memcpy(dst + n - 8, src + n - 8, 8 * sizeof(T));
  } else if (n >= 4) {
    std::memcpy(dst, src, 4 * sizeof(T));
    std::memcpy(dst + n - 4, src + n - 4, 4 * sizeof(T));
  } else {
    for (std::int64_t q = 0; q < n; ++q) dst[q] = src[q];
  }
}

/// Writes the plane src [rows, cols] into dst [dst_rows, dst_cols] (row length dst_cols)
/// with its top-left corner at (top, left), either of which may be negative: what falls
/// outside dst is left out, and dst's other values are not touched.
template <class T>
void place_plane(const T* src, std::int64_t rows, std::int64_t cols, std::int64_t top, std::int64_t left,
                 std::int64_t dst_rows, std::int64_t dst_cols, T* dst) {
  const std::int64_t y0 = std::max<std::int64_t>(0, -top), y1 = std::min(rows, dst_rows - top);
  const std::int64_t x0 = std::max<std::int64_t>(0, -left), x1 = std::min(cols, dst_cols - left);
  if (x1 <= x0) return;
  for (std::int64_t y = y0; y < y1; ++y) copy_line(src + y * cols + x0, x1 - x0, dst + (y + top) * dst_cols + x0 + left);
}

/// One stage of a vector transpose: rows a (bit s of its index clear) and b (the row s
/// after it) swap their off-diagonal blocks of s values, bit s of the row with bit s of
/// the column. The lane indices of __builtin_shufflevector over (a, b), at compile time.
constexpr int transpose_low(int c, int s, int lanes) { return (c & s) == 0 ? c : lanes + c - s; }
constexpr int transpose_high(int c, int s, int lanes) { return (c & s) == 0 ? c + s : lanes + c; }
template <int S, class V, std::size_t... C>
[[gnu::always_inline]] inline void transpose_stage(V& a, V& b, std::index_sequence<C...>) {
  constexpr int L = static_cast<int>(sizeof...(C));
  const V lo = __builtin_shufflevector(a, b, transpose_low(static_cast<int>(C), S, L)...);
  const V hi = __builtin_shufflevector(a, b, transpose_high(static_cast<int>(C), S, L)...);
  a = lo;
  b = hi;
}

/// A square block of values transposed in registers: dst[k·dst_stride + r] =
/// src[r·src_stride + k] for r < rows and k < cols, lanes × lanes values at most, the
/// source rows past `rows` read as zero (the lanes past the channels of a vector of
/// channels). Each stage swaps one bit of the row index with the same bit of the column
/// index (log2(lanes) stages of `lanes` shuffles: 64 for floats on AVX-512, where one
/// value at a time took 256 loads and stores). For LeNet's output gradients by position
/// (16 channels by 100 positions an image) and its forward outputs back to NCHW.
template <class T>
void transpose_block(const T* src, std::int64_t src_stride, std::int64_t rows, T* dst, std::int64_t dst_stride,
                     std::int64_t cols) {
  using D = DirectVec<T>;
  using V = typename D::V;
  constexpr int L = D::lanes;
  V r[L];
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) r[i] = i < rows ? D::load(src + i * src_stride) : V{};
  const auto stage = [&]<int S>() {
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i)
      if ((i & S) == 0) transpose_stage<S>(r[i], r[i + S], std::make_index_sequence<L>());
  };
  if constexpr (L >= 16) stage.template operator()<8>();
  if constexpr (L >= 8) stage.template operator()<4>();
  if constexpr (L >= 4) stage.template operator()<2>();
  stage.template operator()<1>();
#pragma GCC unroll 16
  for (int k = 0; k < L; ++k)
    if (k < cols) D::store(dst + k * dst_stride, r[k]);
}

/// OB × S accumulators in registers: acc[o][s] += x[s]·w[o] for S vectors at x and OB
/// weights, the one step of the gathering and the scattering blocks.
template <class T, int OB, int S>
struct DirectAcc {
  typename DirectVec<T>::V acc[OB][S] = {};
  [[gnu::always_inline]] void add(const T* x, const T* w) {
    typename DirectVec<T>::V xv[S];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) xv[s] = DirectVec<T>::load(x + s * DirectVec<T>::lanes);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const T wv = w[o];
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) acc[o][s] += xv[s] * wv;
    }
  }
};

/// A kernel gradient's A × B vector sums: each stored to at(a, b) by a lane's first chunk
/// (`first`), added to what is there by the next.
template <class T, int A, int B, class At>
[[gnu::always_inline]] inline void store_or_add(const typename DirectVec<T>::V (&acc)[A][B], bool first, At at) {
#pragma GCC unroll 8
  for (int a = 0; a < A; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) {
      T* p = at(a, b);
      DirectVec<T>::store(p, first ? acc[a][b] : DirectVec<T>::load(p) + acc[a][b]);
    }
}

/// out[o][q] = sum over channels c and taps t of in[c·in_stride + q + offsets[t]] ·
/// w[(c·taps + t)·OB + o], for the OB output channels of a block and every wide position
/// q in [0, wide), rounded up to whole blocks of S vectors: out's planes are out_stride
/// apart, at least that rounded size. in must be readable that far past each plane's
/// last offset read.
template <class T, int OB, int S>
void direct_block(const T* in, std::int64_t channels, std::int64_t in_stride, const std::int64_t* offsets,
                  std::int64_t taps, const T* w, std::int64_t wide, T* out, std::int64_t out_stride) {
  using D = DirectVec<T>;
  constexpr int L = D::lanes;
  for (std::int64_t q0 = 0; q0 < wide; q0 += S * L) {
    DirectAcc<T, OB, S> a;
    const T* wr = w;
    for (std::int64_t c = 0; c < channels; ++c) {
      const T* plane = in + c * in_stride + q0;
      for (std::int64_t t = 0; t < taps; ++t, wr += OB) a.add(plane + offsets[t], wr);
    }
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) D::store(out + o * out_stride + q0 + s * L, a.acc[o][s]);
  }
}

/// The input gradient scattered: for the OB input channels of a block, each tap t and
/// each block of S vectors of wide positions q (of the output gradient, `wide` rounded
/// up), the sum over output channels o of w[(t·channels + o)·OB + c] · g[o·g_stride + q],
/// added to dst[c·dst_stride + q + offsets[t]] (the padded input's planes, which must
/// have room past the last position plus the last offset). Each position of dst takes its
/// terms in the order of the blocks and taps: fixed. Where the padding is wide (a valid
/// window: LeNet's second convolution reads 10x10 outputs into 14x14 inputs), this reads
/// only the output gradient's positions, where gathering reads the padded gradient's,
/// more than half of them zero.
template <class T, int OB, int S>
void direct_scatter_block(const T* g, std::int64_t channels, std::int64_t g_stride, const std::int64_t* offsets,
                          std::int64_t taps, const T* w, std::int64_t wide, T* dst, std::int64_t dst_stride) {
  using D = DirectVec<T>;
  constexpr int L = D::lanes;
  for (std::int64_t q0 = 0; q0 < wide; q0 += S * L) {
    for (std::int64_t t = 0; t < taps; ++t) {
      DirectAcc<T, OB, S> a;
      const T* wr = w + t * channels * OB;
      for (std::int64_t o = 0; o < channels; ++o, wr += OB) a.add(g + o * g_stride + q0, wr);
#pragma GCC unroll 8
      for (int c = 0; c < OB; ++c)
#pragma GCC unroll 4
        for (int s = 0; s < S; ++s) {
          T* p = dst + c * dst_stride + q0 + s * L + offsets[t];
          D::store(p, D::load(p) + a.acc[c][s]);
        }
    }
  }
}

/// The kernel gradient of OB output channels at TB taps, over images b and positions q in
/// [0, wide): lanes of sum g[b·g_image + o·g_stride + q] · in[b·in_image + q + offsets[t]],
/// wide rounded up to whole vectors (g zero past wide and in its thrown-away columns).
/// Stored to the vector at partial + (o·o_stride + t)·lanes (first), or added to it: the
/// lanes are added up once, after the last chunk (adding them up here, 24 vectors a call,
/// took longer than the products for small planes or few images a chunk).
template <class T, int OB, int TB>
void direct_kernel_grad(const T* in, std::int64_t in_image, const T* g, std::int64_t g_stride, std::int64_t g_image,
                        std::int64_t images, std::int64_t wide, const std::int64_t* offsets, T* partial,
                        std::int64_t o_stride, bool first) {
  using D = DirectVec<T>;
  using V = typename D::V;
  constexpr int L = D::lanes;
  V acc[OB][TB] = {};
  for (std::int64_t b = 0; b < images; ++b) {
    const T* x = in + b * in_image;
    const T* gb = g + b * g_image;
    for (std::int64_t q = 0; q < wide; q += L) {
      V xv[TB];
#pragma GCC unroll 8
      for (int t = 0; t < TB; ++t) {
        xv[t] = D::load(x + q + offsets[t]);
        // In a register: GCC would otherwise fold the load into each of the OB multiply-adds
        // that use it, OB unaligned loads (most of them across two cache lines) in place of
        // one, which made the loop bound by its loads (2.6 times slower).
        asm("" : "+v"(xv[t]));
      }
#pragma GCC unroll 8
      for (int o = 0; o < OB; ++o) {
        const V gv = D::load(gb + o * g_stride + q);
#pragma GCC unroll 8
        for (int t = 0; t < TB; ++t) acc[o][t] += gv * xv[t];
      }
    }
  }
  store_or_add<T>(acc, first, [&](int o, int t) { return partial + (o * o_stride + t) * L; });
}

/// The kernel gradient with the output channels in the lanes (at most one vector of
/// them): for one input channel, the taps of RB kernel rows (row_step apart in the padded
/// plane: the dilation times its row length) by KW consecutive columns, summed over images
/// b and the valid output positions (oy, ox): acc[r][j] += g[p] · in[oy·wp + ox + r·row_step + j],
/// g[p] the vector of every channel's output gradient at p = oy·wo + ox (gt, [images][ho·wo][lanes],
/// lanes past the channels zero). No wide positions thrown away and no lanes summed at the
/// end: each multiply-add is a whole vector of useful products, its input value a
/// broadcast (LeNet's second convolution, 16 output channels by 5x5 taps on 10x10
/// outputs: 25 accumulators per input channel, its kernel gradient 0.72 -> 0.40 ms at batch 64).
/// Stored to partial + (r·KW + j)·lanes (first), or added to it.
template <class T, int RB, int KW>
void channel_kernel_grad(const T* in, std::int64_t in_image, std::int64_t wp, std::int64_t row_step, const T* gt,
                         std::int64_t images, std::int64_t ho, std::int64_t wo, T* partial, bool first) {
  using D = DirectVec<T>;
  using V = typename D::V;
  constexpr int L = D::lanes;
  V acc[RB][KW] = {};
  for (std::int64_t b = 0; b < images; ++b) {
    const T* gb = gt + b * ho * wo * L;
    for (std::int64_t oy = 0; oy < ho; ++oy) {
      const T* row = in + b * in_image + oy * wp;
      const T* g = gb + oy * wo * L;
      for (std::int64_t ox = 0; ox < wo; ++ox) {
        const V gv = D::load(g + ox * L);
#pragma GCC unroll 8
        for (int r = 0; r < RB; ++r)
#pragma GCC unroll 8
          for (int j = 0; j < KW; ++j) acc[r][j] += gv * row[r * row_step + ox + j];
      }
    }
  }
  store_or_add<T>(acc, first, [&](int r, int j) { return partial + (r * KW + j) * L; });
}

/// The forward pass with the output channels in the lanes (at most one vector of them),
/// for a tile of RB output rows by CB output columns of one image: acc[r][x] sums over
/// input channels c and taps (i, j), in that order, w[(c·kh + i)·kw + j] ·
/// in[c·in_stride + (r + i·dh)·wp + x + j·dw], the weights of every output channel at a
/// tap in one vector (w, [cin][kh][kw][lanes], lanes past the channels zero), the input
/// value a broadcast. Only the tile's outputs are computed, no wide positions (a valid
/// window's: 10 of LeNet's second convolution's 14 columns). Stored to
/// out + r·out_row + x·lanes.
template <class T, int RB, int CB>
void channel_forward_tile(const T* in, std::int64_t in_stride, std::int64_t cin, std::int64_t wp, std::int64_t kh,
                          std::int64_t kw, std::int64_t dh, std::int64_t dw, const T* w, T* out, std::int64_t out_row) {
  using D = DirectVec<T>;
  using V = typename D::V;
  constexpr int L = D::lanes;
  V acc[RB][CB] = {};
  for (std::int64_t c = 0; c < cin; ++c)
    for (std::int64_t i = 0; i < kh; ++i) {
      const T* row = in + c * in_stride + i * dh * wp;
      for (std::int64_t j = 0; j < kw; ++j) {
        const V wv = D::load(w + ((c * kh + i) * kw + j) * L);
        const T* at = row + j * dw;
#pragma GCC unroll 12
        for (int r = 0; r < RB; ++r)
#pragma GCC unroll 12
          for (int x = 0; x < CB; ++x) acc[r][x] += wv * at[r * wp + x];
      }
    }
#pragma GCC unroll 12
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 12
    for (int x = 0; x < CB; ++x) D::store(out + r * out_row + x * L, acc[r][x]);
}

/// The most vectors of positions a forward block of OB channels takes: as many as the
/// accumulator registers allow, at most kDirectMaxStrips.
constexpr int direct_strips(int ob) {
  return std::clamp(kDirectAccumulators / ob, 1, kDirectMaxStrips);
}
/// The kernel gradient's output channels per block for TB taps at a time.
constexpr int direct_grad_channels(int tb) {
  return std::clamp(kDirectAccumulators / tb, 1, kDirectMaxBlock);
}

template <class T>
using DirectBlockFn = void (*)(const T*, std::int64_t, std::int64_t, const std::int64_t*, std::int64_t, const T*,
                               std::int64_t, T*, std::int64_t);
template <class T>
using DirectGradFn = void (*)(const T*, std::int64_t, const T*, std::int64_t, std::int64_t, std::int64_t,
                              std::int64_t, const std::int64_t*, T*, std::int64_t, bool);

/// direct_block (or, with Scatter, direct_scatter_block) for OB = 1 ... kDirectMaxBlock
/// channels and S = 1 ... kDirectMaxStrips vectors, by (OB - 1)·kDirectMaxStrips + S - 1;
/// null where the accumulators would not fit in registers (never chosen).
template <class T, bool Scatter, int OB, int S>
constexpr DirectBlockFn<T> direct_block_entry() {
  if constexpr (S > direct_strips(OB)) return nullptr;
  else if constexpr (Scatter) return &direct_scatter_block<T, OB, S>;
  else return &direct_block<T, OB, S>;
}
template <class T, bool Scatter, std::size_t... I>
constexpr std::array<DirectBlockFn<T>, sizeof...(I)> direct_blocks(std::index_sequence<I...>) {
  return {{direct_block_entry<T, Scatter, static_cast<int>(I / kDirectMaxStrips) + 1,
                              static_cast<int>(I % kDirectMaxStrips) + 1>()...}};
}
template <class T>
DirectBlockFn<T> direct_block_for(int ob, int strips, bool scatter) {
  constexpr auto all = std::make_index_sequence<kDirectMaxBlock * kDirectMaxStrips>();
  static constexpr auto gather_table = direct_blocks<T, false>(all), scatter_table = direct_blocks<T, true>(all);
  return (scatter ? scatter_table : gather_table)[static_cast<std::size_t>((ob - 1) * kDirectMaxStrips + strips - 1)];
}

/// direct_kernel_grad for TB = 1 ... kDirectMaxBlock taps and OB = 1 ... kDirectMaxBlock
/// output channels, by (TB - 1)·kDirectMaxBlock + OB - 1; null where the accumulators
/// would not fit in registers (never chosen).
template <class T, int OB, int TB>
constexpr DirectGradFn<T> direct_grad_entry() {
  if constexpr (OB <= direct_grad_channels(TB)) return &direct_kernel_grad<T, OB, TB>;
  else return nullptr;
}
template <class T, std::size_t... I>
constexpr std::array<DirectGradFn<T>, sizeof...(I)> direct_grads(std::index_sequence<I...>) {
  return {{direct_grad_entry<T, static_cast<int>(I % kDirectMaxBlock) + 1, static_cast<int>(I / kDirectMaxBlock) + 1>()...}};
}
template <class T>
DirectGradFn<T> direct_grad_for(int ob, int tb) {
  static constexpr auto table = direct_grads<T>(std::make_index_sequence<kDirectMaxBlock * kDirectMaxBlock>());
  return table[static_cast<std::size_t>((tb - 1) * kDirectMaxBlock + ob - 1)];
}

/// channel_kernel_grad's accumulators: one per tap of a block, beside the output
/// gradient's vector (the input values are broadcast from memory).
#if defined(__AVX512F__)
inline constexpr int kChannelGradAccumulators = 25;  // of 32: a 5x5 kernel in one pass
#else
inline constexpr int kChannelGradAccumulators = 12;  // of 16
#endif
inline constexpr int kChannelGradMaxWidth = 8;  // kernel columns (KW), and rows a block (RB)
/// Kernel rows a block of channel_kernel_grad takes for a kernel kw wide.
constexpr int channel_grad_rows(int kw) { return std::clamp(kChannelGradAccumulators / kw, 1, kChannelGradMaxWidth); }
template <class T>
using ChannelGradFn = void (*)(const T*, std::int64_t, std::int64_t, std::int64_t, const T*, std::int64_t, std::int64_t,
                               std::int64_t, T*, bool);
template <class T, int RB, int KW>
constexpr ChannelGradFn<T> channel_grad_entry() {
  if constexpr (RB <= channel_grad_rows(KW)) return &channel_kernel_grad<T, RB, KW>;
  else return nullptr;
}
template <class T, std::size_t... I>
constexpr std::array<ChannelGradFn<T>, sizeof...(I)> channel_grads(std::index_sequence<I...>) {
  return {{channel_grad_entry<T, static_cast<int>(I / kChannelGradMaxWidth) + 1,
                              static_cast<int>(I % kChannelGradMaxWidth) + 1>()...}};
}
/// channel_kernel_grad for RB = 1 ... kChannelGradMaxWidth rows and KW = 1 ...
/// kChannelGradMaxWidth columns; null where the accumulators would not fit (never chosen).
template <class T>
ChannelGradFn<T> channel_grad_for(int rb, int kw) {
  static constexpr auto table =
      channel_grads<T>(std::make_index_sequence<kChannelGradMaxWidth * kChannelGradMaxWidth>());
  return table[static_cast<std::size_t>((rb - 1) * kChannelGradMaxWidth + kw - 1)];
}

/// channel_forward_tile's columns (CB) and rows (RB) at most: RB·CB accumulators.
inline constexpr int kChannelTileCols = 12;
inline constexpr int kChannelTileRows = 8;
template <class T>
using ChannelTileFn = void (*)(const T*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                               std::int64_t, std::int64_t, const T*, T*, std::int64_t);
template <class T, int RB, int CB>
constexpr ChannelTileFn<T> channel_tile_entry() {
  if constexpr (RB * CB <= kDirectAccumulators) return &channel_forward_tile<T, RB, CB>;
  else return nullptr;
}
template <class T, std::size_t... I>
constexpr std::array<ChannelTileFn<T>, sizeof...(I)> channel_tiles(std::index_sequence<I...>) {
  return {{channel_tile_entry<T, static_cast<int>(I / kChannelTileCols) + 1, static_cast<int>(I % kChannelTileCols) + 1>()...}};
}
/// channel_forward_tile for RB = 1 ... kChannelTileRows and CB = 1 ... kChannelTileCols;
/// null past kDirectAccumulators accumulators (never chosen).
template <class T>
ChannelTileFn<T> channel_tile_for(int rb, int cb) {
  static constexpr auto table = channel_tiles<T>(std::make_index_sequence<kChannelTileRows * kChannelTileCols>());
  return table[static_cast<std::size_t>((rb - 1) * kChannelTileCols + cb - 1)];
}

}  // namespace opgraph::ops::detail
