// upsample2d: upsampling of NCHW planes by whole factors (PyTorch's F.interpolate with
// scale_factor=s, and nn.Upsample). mode=nearest: y[n, c, i, j] = x[n, c, i / sh, j / sw];
// the vjp sums each sh x sw block of the output gradient, its rows in order and each row
// left to right. mode=bilinear: each output pixel interpolates the four input pixels
// around its source position, which is (o + 1/2) / s - 1/2 (clamped at 0) along an axis,
// or o (n - 1) / (n s - 1) with align_corners (PyTorch's two conventions); the vjp adds each
// output gradient's four weighted parts to those pixels, the output's pixels in order.
// Either way a plane's gradient is written by one task: the same sums on any thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include <opgraph/graph/op.hpp>

#include "detail/window.hpp"

namespace opgraph::ops {

namespace {

std::array<std::int64_t, 2> scale_of(const IntList& scale) { return detail::pair_of(scale); }

/// One call's geometry: the factors and x's plane (the output's is sh*h by sw*w).
struct Geometry {
  std::int64_t sh, sw, h, w;
  std::int64_t wo() const { return w * sw; }
  std::int64_t in_plane() const { return h * w; }
  std::int64_t out_plane() const { return h * w * sh * sw; }
};
template <class K, class V>
Geometry geometry_of(const K& k, const V& x) {
  const auto s = scale_of(k.attr_ints("scale"));
  return {s[0], s[1], x.dims[2], x.dims[3]};
}

/// Along one axis of n input pixels upsampled by s: output o reads pixels i0 and i1 with
/// weights 1 - w and w.
struct Lerp {
  std::int64_t i0, i1;
  double w;
};
std::vector<Lerp> lerps(std::int64_t n, std::int64_t s, bool align_corners) {
  const std::int64_t m = n * s;
  std::vector<Lerp> out(static_cast<std::size_t>(m));
  for (std::int64_t o = 0; o < m; ++o) {
    double src = align_corners ? (m > 1 ? static_cast<double>(o) * static_cast<double>(n - 1) / static_cast<double>(m - 1) : 0.0)
                               : std::max(0.0, (static_cast<double>(o) + 0.5) / static_cast<double>(s) - 0.5);
    std::int64_t i0 = std::min(static_cast<std::int64_t>(src), n - 1);
    out[static_cast<std::size_t>(o)] = {i0, std::min(i0 + 1, n - 1), src - static_cast<double>(i0)};
  }
  return out;
}
bool bilinear(const std::string& mode) { return mode == "bilinear"; }
/// The rows' and the columns' interpolation of a call, from its geometry and align_corners.
template <class K>
std::pair<std::vector<Lerp>, std::vector<Lerp>> lerp_tables(const K& k, const Geometry& g) {
  const bool corners = k.attr_bool("align_corners");
  return {lerps(g.h, g.sh, corners), lerps(g.w, g.sw, corners)};
}

/// f(plane) for every (n, c) plane of x, a task per group of planes.
template <class F>
void for_each_plane(std::int64_t planes, std::int64_t plane_size, F f) {
  parallel_for(planes, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(plane_size, 1)),
               [&](std::int64_t p0, std::int64_t p1) {
                 for (std::int64_t p = p0; p < p1; ++p) f(p);
               });
}

}  // namespace

OPGRAPH_OP(upsample2d)
    .lower([](LoweringContext& c) {
      // Nearest: Resize with asymmetric coordinates and floor (how PyTorch exports it):
      // source pixel floor(i / s), which is i / s for whole factors. Bilinear: Resize in
      // linear mode, half-pixel or align-corners coordinates.
      const auto factors = scale_of(c.attr_ints("scale"));
      const std::int64_t sh = factors[0], sw = factors[1];
      Tensor scales(Shape{4}, DType::f32);
      for (std::int64_t i = 0; i < 4; ++i) scales.set(i, i < 2 ? 1.0 : static_cast<double>(i == 2 ? sh : sw));
      const std::string scales_name = c.constant(std::move(scales), "scales");
      if (bilinear(c.attr_string("mode"))) {
        c.emit("Resize", {c.input(0), "", scales_name}, {c.output()},
               {{"mode", std::string("linear")},
                {"coordinate_transformation_mode", std::string(c.attr_bool("align_corners") ? "align_corners" : "half_pixel")}});
        return;
      }
      c.emit("Resize", {c.input(0), "", scales_name}, {c.output()},
             {{"mode", std::string("nearest")}, {"coordinate_transformation_mode", std::string("asymmetric")},
              {"nearest_mode", std::string("floor")}});
    })
    .doc("x [N,C,H,W] upsampled by whole factors: each pixel repeated into a scale x scale block (mode=nearest), or "
         "interpolated between its neighbours (mode=bilinear); PyTorch's F.interpolate")
    .input("x")
    .attr("scale", AttrType::int_list, IntList{2}, "the factor: one int for both axes, or (height, width)",
          detail::positive_pair)
    .attr_choice("mode", {"nearest", "bilinear"}, "nearest: repeat each pixel; bilinear: interpolate the four around")
    .attr("align_corners", AttrType::boolean, false,
          "bilinear only: the corner pixels of input and output aligned (PyTorch's align_corners=True); false: "
          "pixel centres at half-pixel positions")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      if (x.rank() != 4) c.fail("x must be [N, C, H, W] (NCHW), got {}", x);
      if (c.attr_bool("align_corners") && !bilinear(c.attr_string("mode")))
        c.fail("align_corners=true applies to mode=bilinear only");
      if (is_symbolic(x[2]) || is_symbolic(x[3])) c.fail("x {}: height and width must be numbers", x);
      const auto factors = scale_of(c.attr_ints("scale"));
      const std::int64_t sh = factors[0], sw = factors[1];
      return Shape{x[0], x[1], x[2] * sh, x[3] * sw};
    })
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const Geometry g = geometry_of(k, x);
      T* y = k.out().data;
      if (bilinear(k.attr_string("mode"))) {
        const auto tables = lerp_tables(k, g);  // not a structured binding: clang before 16 cannot capture one
        const std::vector<Lerp>& rows = tables.first;
        const std::vector<Lerp>& cols = tables.second;
        for_each_plane(x.dims[0] * x.dims[1], g.out_plane(), [&](std::int64_t p) {
          const T* src = x.data + p * g.in_plane();
          T* dst = y + p * g.out_plane();
          for (std::int64_t i = 0; i < g.h * g.sh; ++i) {
            const Lerp& r = rows[static_cast<std::size_t>(i)];
            const T *top = src + r.i0 * g.w, *bottom = src + r.i1 * g.w;
            const T wr = static_cast<T>(r.w);
            for (std::int64_t j = 0; j < g.wo(); ++j) {
              const Lerp& c = cols[static_cast<std::size_t>(j)];
              const T wc = static_cast<T>(c.w);
              const T t = top[c.i0] + wc * (top[c.i1] - top[c.i0]), b = bottom[c.i0] + wc * (bottom[c.i1] - bottom[c.i0]);
              dst[i * g.wo() + j] = t + wr * (b - t);
            }
          }
        });
        return;
      }
      for_each_plane(x.dims[0] * x.dims[1], g.out_plane(), [&](std::int64_t p) {
        const T* src = x.data + p * g.in_plane();
        T* dst = y + p * g.out_plane();
        for (std::int64_t i = 0; i < g.h; ++i) {
          T* row = dst + i * g.sh * g.wo();
          for (std::int64_t j = 0; j < g.w; ++j) std::fill(row + j * g.sw, row + (j + 1) * g.sw, src[i * g.w + j]);
          for (std::int64_t a = 1; a < g.sh; ++a)
            std::memcpy(row + a * g.wo(), row, static_cast<std::size_t>(g.wo()) * sizeof(T));
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& dx = k.grad_in(0);
      const Geometry g = geometry_of(k, dx);
      const T* gy = k.grad_out().data;
      if (bilinear(k.attr_string("mode"))) {
        const auto tables = lerp_tables(k, g);  // not a structured binding: clang before 16 cannot capture one
        const std::vector<Lerp>& rows = tables.first;
        const std::vector<Lerp>& cols = tables.second;
        for_each_plane(dx.dims[0] * dx.dims[1], g.out_plane(), [&](std::int64_t p) {
          const T* src = gy + p * g.out_plane();
          T* dst = dx.data + p * g.in_plane();
          std::fill(dst, dst + g.in_plane(), T(0));
          for (std::int64_t i = 0; i < g.h * g.sh; ++i) {
            const Lerp& r = rows[static_cast<std::size_t>(i)];
            T *top = dst + r.i0 * g.w, *bottom = dst + r.i1 * g.w;
            const T wr = static_cast<T>(r.w);
            for (std::int64_t j = 0; j < g.wo(); ++j) {
              const Lerp& c = cols[static_cast<std::size_t>(j)];
              const T wc = static_cast<T>(c.w), v = src[i * g.wo() + j];
              const T b = wr * v, t = v - b;  // the rows' shares, then the columns'
              const T tr = wc * t, br = wc * b;
              top[c.i0] += t - tr;
              top[c.i1] += tr;
              bottom[c.i0] += b - br;
              bottom[c.i1] += br;
            }
          }
        });
        return;
      }
      for_each_plane(dx.dims[0] * dx.dims[1], g.out_plane(), [&](std::int64_t p) {
        const T* src = gy + p * g.out_plane();
        T* dst = dx.data + p * g.in_plane();
        for (std::int64_t i = 0; i < g.h; ++i)
          for (std::int64_t j = 0; j < g.w; ++j) {
            T s = T(0);
            for (std::int64_t a = 0; a < g.sh; ++a)
              for (std::int64_t b = 0; b < g.sw; ++b) s += src[(i * g.sh + a) * g.wo() + j * g.sw + b];
            dst[i * g.w + j] = s;
          }
      });
    })
    .cost([](const ShapeContext&, const Shape& y) {
      return OpCost{0.0, static_cast<double>(y.numel())};
    })
    .check({"[a,b,3,4]"})
    .check({"[a,b,2,3]"}, {{"scale", IntList{3, 1}}})
    .check({"[a,b,3,4]"}, {{"mode", std::string("bilinear")}})
    .check({"[a,b,2,3]"}, {{"scale", IntList{3, 2}}, {"mode", std::string("bilinear")}, {"align_corners", true}})
    .check({"[a,b,1,3]"}, {{"scale", IntList{2, 3}}, {"mode", std::string("bilinear")}, {"align_corners", true}});

}  // namespace opgraph::ops
