// upsample2d: nearest-neighbour upsampling of NCHW planes by whole factors (PyTorch's
// F.interpolate(mode="nearest", scale_factor=s) and nn.Upsample): y[n, c, i, j] =
// x[n, c, i / sh, j / sw]. The vjp sums each sh x sw block of the output gradient, its
// rows in order and each row left to right: the same sums on any thread count.
#include <algorithm>
#include <array>
#include <cstring>

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
      // Resize in nearest mode with asymmetric coordinates and floor (how PyTorch exports
      // it): source pixel floor(i / s), which is i / s for whole factors.
      const auto factors = scale_of(c.attr_ints("scale"));
      const std::int64_t sh = factors[0], sw = factors[1];
      Tensor scales(Shape{4}, DType::f32);
      for (std::int64_t i = 0; i < 4; ++i) scales.set(i, i < 2 ? 1.0 : static_cast<double>(i == 2 ? sh : sw));
      c.emit("Resize", {c.input(0), "", c.constant(std::move(scales), "scales")}, {c.output()},
             {{"mode", std::string("nearest")}, {"coordinate_transformation_mode", std::string("asymmetric")},
              {"nearest_mode", std::string("floor")}});
    })
    .doc("x [N,C,H,W] upsampled by whole factors, each pixel repeated into a scale x scale block (PyTorch's "
         "F.interpolate with mode=nearest)")
    .input("x")
    .attr("scale", AttrType::int_list, IntList{2}, "the factor: one int for both axes, or (height, width)",
          detail::positive_pair)
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      if (x.rank() != 4) c.fail("x must be [N, C, H, W] (NCHW), got {}", x);
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
    .check({"[a,b,2,3]"}, {{"scale", IntList{3, 1}}});

}  // namespace opgraph::ops
