// conv2d against a direct convolution written from the definition (values and both
// gradients, every attribute), bitwise equality at 1, 2 and 4 threads; the pools with
// known values, exact ties and PyTorch's divisors; bias_add along the channel axis; the
// refusals.
#include <doctest/doctest.h>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/parallel.hpp>

#include "op_run.hpp"
#include "../../ops/detail/direct_conv.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {

struct Geometry {
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, groups = 1;
};

/// y[n, o, oy, ox] = sum over (c in o's group, i, j) of x[n, c, oy*sh-pt+i*dh, ox*sw-pl+j*dw] * w[o, c', i, j],
/// with the vjp's two gradients for the cotangent g, all from the definition.
struct Naive {
  Tensor y, dx, dw;
};

Naive naive_conv(const Tensor& x, const Tensor& w, const Tensor* g, const Geometry& p) {
  const auto N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const auto O = w.shape()[0], Cg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
  const auto Ho = (H + p.pt + p.pb - p.dh * (KH - 1) - 1) / p.sh + 1, Wo = (W + p.pl + p.pr - p.dw * (KW - 1) - 1) / p.sw + 1;
  const auto Og = O / p.groups;
  Naive r{Tensor(Shape{N, O, Ho, Wo}, DType::f64), Tensor(x.shape(), DType::f64), Tensor(w.shape(), DType::f64)};
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t oy = 0; oy < Ho; ++oy)
        for (std::int64_t ox = 0; ox < Wo; ++ox) {
          double s = 0;
          const double gv = g ? g->at({n, o, oy, ox}) : 0.0;
          for (std::int64_t c = 0; c < Cg; ++c)
            for (std::int64_t i = 0; i < KH; ++i)
              for (std::int64_t j = 0; j < KW; ++j) {
                const std::int64_t iy = oy * p.sh - p.pt + i * p.dh, ix = ox * p.sw - p.pl + j * p.dw;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const std::int64_t ci = (o / Og) * Cg + c;
                s += x.at({n, ci, iy, ix}) * w.at({o, c, i, j});
                r.dx.set(((n * C + ci) * H + iy) * W + ix, r.dx.at({n, ci, iy, ix}) + gv * w.at({o, c, i, j}));
                r.dw.set(((o * Cg + c) * KH + i) * KW + j, r.dw.at({o, c, i, j}) + gv * x.at({n, ci, iy, ix}));
              }
          r.y.set(((n * O + o) * Ho + oy) * Wo + ox, s);
        }
  return r;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    m = test::worse(m, std::abs(a.at(i) - b.at(i)));
  }
  return m;
}

Attrs attrs_of(const Geometry& p) {
  return {{"stride", IntList{p.sh, p.sw}},
          {"dilation", IntList{p.dh, p.dw}},
          {"padding", IntList{p.pt, p.pl, p.pb, p.pr}},
          {"groups", p.groups}};
}

}  // namespace

TEST_CASE("conv2d: equals the direct convolution, values and both gradients, for every attribute") {
  struct Case {
    Shape x, w;
    Geometry p;
  };
  const std::vector<Case> cases = {
      {{2, 3, 9, 8}, {4, 3, 3, 3}, {}},
      {{3, 5, 6, 7}, {2, 5, 1, 1}, {}},                                   // pointwise: no im2col
      {{2, 2, 11, 9}, {3, 2, 3, 2}, {.sh = 2, .sw = 3, .pt = 1, .pl = 2, .pb = 1, .pr = 2}},
      {{1, 3, 12, 10}, {2, 3, 3, 3}, {.dh = 2, .dw = 3, .pt = 0, .pl = 1, .pb = 2, .pr = 3}},
      {{2, 6, 7, 7}, {4, 3, 3, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1, .groups = 2}},
      {{2, 4, 8, 6}, {4, 1, 3, 3}, {.sh = 2, .sw = 2, .pt = 1, .pl = 1, .pb = 1, .pr = 1, .groups = 4}},  // depthwise
      {{1, 2, 5, 5}, {3, 2, 5, 5}, {}},                                  // the window is the whole image
      {{2, 3, 6, 6}, {2, 3, 2, 2}, {.sh = 2, .sw = 2, .pt = 0, .pl = 0, .pb = 1, .pr = 1}},
      {{1, 4, 30, 31}, {8, 4, 3, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1}},  // wide rows: several GEMM tiles
      // Valid, stride 1: lines of 10 (LeNet's second convolution), 15 and 5 copied as
      // whole 8s (4s) and the last 8 (4) overlapping.
      {{2, 6, 14, 14}, {16, 6, 5, 5}, {}},
      {{1, 2, 9, 17}, {3, 2, 3, 3}, {}},
      {{1, 2, 7, 7}, {2, 2, 3, 3}, {}},
      // More than 16 output channels per group: the forward product the other way round.
      {{3, 3, 7, 6}, {20, 3, 3, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1}},
      {{2, 4, 6, 5}, {36, 2, 3, 2}, {.sh = 2, .pt = 1, .pl = 0, .pb = 1, .pr = 1, .groups = 2}},
      // Stride 2 on lines of 19 and 8 outputs: floats gathered eight at a time, the last
      // eight overlapping, and near the end of a plane one by one.
      {{2, 3, 23, 37}, {5, 3, 3, 3}, {.sh = 2, .sw = 2, .pt = 1, .pl = 1, .pb = 1, .pr = 1}},
      {{2, 2, 9, 16}, {3, 2, 1, 1}, {.sh = 2, .sw = 2}},
      // Kernels wider than the plane with "same" padding: taps that only ever read padding.
      {{2, 3, 1, 1}, {4, 3, 5, 5}, {.pt = 2, .pl = 2, .pb = 2, .pr = 2}},
      {{1, 2, 2, 3}, {3, 2, 7, 5}, {.pt = 3, .pl = 2, .pb = 3, .pr = 2}},
      // The direct path (stride 1, one group): padding wider than the kernel's span (the
      // input gradient's padded output gradient cropped), a kernel row of 11 taps (the
      // kernel gradient in blocks of 8 and 3), 12 input channels (the input gradient in two
      // blocks of 6), 17 images (chunks of 12 and 5 on a 48 KiB L1d, of 8, 8 and 1 on a
      // 32 KiB one), and 9 images of 60x60, one a chunk on any L1: nine chunks on four
      // lanes, the first lane adding a second and a third chunk's kernel gradient.
      {{1, 2, 5, 5}, {3, 2, 2, 2}, {.pt = 3, .pl = 2, .pb = 1, .pr = 3}},
      {{2, 12, 6, 9}, {5, 12, 3, 11}, {.pt = 1, .pl = 5, .pb = 1, .pr = 5}},
      {{17, 3, 6, 6}, {9, 3, 3, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1}},
      {{9, 2, 60, 60}, {4, 2, 3, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1}},
      // The kernel gradient with the output channels in the lanes (more than half a
      // vector of them: 9 to 16 floats, 5 to 8 doubles with AVX-512): LeNet's above, and
      // 17 images above; 9 kernel rows in two blocks (5 and 4); rows dilated.
      {{3, 2, 13, 9}, {12, 2, 9, 3}, {.pt = 1, .pl = 1, .pb = 1, .pr = 1}},
      // LeNet's second convolution over 12 images: chunks of 2 (48 KiB L1d) or 1 (32 KiB),
      // so that lanes take several chunks each, the first stored and the next added.
      {{12, 6, 14, 14}, {16, 6, 5, 5}, {}},
      {{2, 3, 10, 8}, {6, 3, 3, 2}, {.dh = 2, .pt = 2, .pl = 0, .pb = 2, .pr = 1}},
  };
  std::uint64_t seed = 10;
  for (const auto& c : cases) {
    CAPTURE(c.x);
    CAPTURE(c.w);
    const Tensor x = random_tensor(c.x, -1, 1, ++seed), w = random_tensor(c.w, -1, 1, ++seed);
    const Tensor probe = run_op("conv2d", {x, w}, attrs_of(c.p)).out;
    const Tensor g = random_tensor(probe.shape(), -1, 1, ++seed);
    const auto got = run_op("conv2d", {x, w}, attrs_of(c.p), &g);
    const Naive want = naive_conv(x, w, &g, c.p);
    // Each value sums `terms` products; the error grows with them: about 1e-16 a term in
    // f64 (1e-12 at least), 1e-7 in f32 for these inputs in (-1, 1) (the direct path sums
    // LeNet's input gradient, 16 channels by 25 taps, in one running vector per value:
    // 1.1e-5; the kernel gradient of 9 images of 60x60, 32 400 terms, 1.4e-12 in f64).
    const double taps = static_cast<double>(c.w[2] * c.w[3]);
    const double y_terms = static_cast<double>(c.w[1]) * taps, dx_terms = static_cast<double>(c.w[0] / c.p.groups) * taps;
    const double dw_terms = static_cast<double>(probe.shape()[0] * probe.shape()[2] * probe.shape()[3]);
    const auto tol64 = [](double terms) { return std::max(1e-12, 1e-16 * terms); };
    CHECK(max_abs_diff(got.out, want.y) <= tol64(y_terms));
    CHECK(max_abs_diff(got.grads[0], want.dx) <= tol64(dx_terms));
    CHECK(max_abs_diff(got.grads[1], want.dw) <= tol64(dw_terms));
    // f32 follows within its precision (its own kernels: the gathers of a stride-2 window
    // are vectorised for floats only).
    const Tensor g32 = g.to(DType::f32);
    const auto got32 = run_op("conv2d", {x.to(DType::f32), w.to(DType::f32)}, attrs_of(c.p), &g32);
    CHECK(max_abs_diff(got32.out.to(DType::f64), want.y) <= 1e-7 * y_terms);
    CHECK(max_abs_diff(got32.grads[0].to(DType::f64), want.dx) <= 1e-7 * dx_terms);
    CHECK(max_abs_diff(got32.grads[1].to(DType::f64), want.dw) <= 1e-7 * dw_terms);
  }
}

TEST_CASE("conv2d: padding=same keeps the plane, an even kernel's extra row and column at the bottom and right") {
  const Tensor x = random_tensor({1, 2, 5, 6}, -1, 1, 1), w = random_tensor({3, 2, 2, 4}, -1, 1, 2);
  const auto same = run_op("conv2d", {x, w}, {{"padding", "same"}});
  CHECK(same.out.shape() == Shape{1, 3, 5, 6});
  // 2x4 kernel: rows 0 above and 1 below, columns 1 left and 2 right.
  CHECK(max_abs_diff(same.out, naive_conv(x, w, nullptr, {.pt = 0, .pl = 1, .pb = 1, .pr = 2}).y) <= 1e-12);
  const auto dilated = run_op("conv2d", {x, w}, {{"padding", "same"}, {"dilation", 2}});
  CHECK(dilated.out.shape() == Shape{1, 3, 5, 6});
  CHECK(run_op("conv2d", {x, w}, {{"padding", "valid"}}).out.shape() == Shape{1, 3, 4, 3});
}

TEST_CASE("conv2d: forward and both gradients bitwise equal at 1, 2 and 4 threads") {
  // 32 output channels (colsᵀ·Wᵀ), LeNet's first layer, 6 (W·cols, the few-rows GEMM), and
  // 16 channels by 5x5 (the kernel gradient with the channels in the lanes, 40 images in
  // chunks on several lanes).
  for (const auto& shapes : {std::pair{Shape{6, 16, 14, 14}, Shape{32, 16, 3, 3}}, std::pair{Shape{40, 1, 28, 28}, Shape{6, 1, 5, 5}},
                             std::pair{Shape{40, 6, 14, 14}, Shape{16, 6, 5, 5}}}) {
    const Shape& xs = shapes.first;  // not a structured binding: clang 14 cannot capture one
    const Shape& ws = shapes.second;
    CAPTURE(ws);
    const Tensor x = random_tensor(xs, -1, 1, 3, DType::f32), w = random_tensor(ws, -1, 1, 4, DType::f32);
    const std::int64_t pad = ws[2] / 2;
    const Tensor g = random_tensor({xs[0], ws[0], xs[2], xs[3]}, -1, 1, 5, DType::f32);
    std::vector<OpRun> runs;
    for (int threads : {1, 2, 4}) {
      ThreadCount t(threads);
      runs.push_back(run_op("conv2d", {x, w}, {{"padding", pad}}, &g));
    }
    for (std::size_t i = 1; i < runs.size(); ++i) {
      CHECK(runs[i].out.to_vector() == runs[0].out.to_vector());
      CHECK(runs[i].grads[0].to_vector() == runs[0].grads[0].to_vector());
      CHECK(runs[i].grads[1].to_vector() == runs[0].grads[1].to_vector());
    }
    const Naive want = naive_conv(x.to(DType::f64), w.to(DType::f64), nullptr, {.pt = pad, .pl = pad, .pb = pad, .pr = pad});
    CHECK(max_abs_diff(runs[0].out.to(DType::f64), want.y) <= 1e-4);
  }
}

TEST_CASE("conv2d: shapes and attributes that do not fit are refused by name") {
  Graph g;
  const NodeId x = g.add_input("x", Shape{N, 4, 8, 8});
  auto w = [&](Shape s) {
    std::string name = "w";  // not "w" + to_string(...): GCC 12 warns of a memcpy overflow in it
    name += std::to_string(g.size());
    return g.add_input(name, std::move(s));
  };
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 3, 3, 3})}, {}, "c"),
                    "node 'c': conv2d: w [6,3,3,3] takes 3 input channels per group, x [N,4,8,8] has 4 in 1 group (4 each)");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 2, 3, 3})}, {{"groups", 3}}, "c"),
                    "node 'c': conv2d: groups=3 must divide the input channels (4) and the output channels (6)");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 4, 9, 3})}, {}, "c"),
                    "node 'c': conv2d: a 9x3 window does not fit in a 8x8 input padded by nothing");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 4, 3, 3})}, {{"padding", "same"}, {"stride", 2}}, "c"),
                    "node 'c': conv2d: padding=same needs stride 1 (as in PyTorch)");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 4, 3, 3})}, {{"padding", "full"}}, "c"),
                    "node 'c': conv2d: attribute 'padding' must be ints, same or valid, got full");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 4, 3, 3})}, {{"padding", IntList{1, 2, 3}}}, "c"),
                    "node 'c': conv2d: attribute 'padding' must be 1, 2 or 4 ints (all sides; height, width; top, left, "
                    "bottom, right), same or valid, got [1, 2, 3]");
  CHECK_THROWS_WITH(g.add_op("conv2d", {x, w({6, 4, 3, 3})}, {{"stride", 0}}, "c"),
                    "node 'c': conv2d: attribute 'stride' must be positive, got [0]");
  CHECK_THROWS_WITH(g.add_op("conv2d", {g.add_input("flat", Shape{N, 64}), w({6, 4, 3, 3})}, {}, "c"),
                    "node 'c': conv2d: x must be [N, C, H, W] (NCHW), got [N,64]");
  CHECK(g.node(g.add_op("conv2d", {x, w({6, 2, 3, 3})}, {{"groups", 2}, {"stride", 2}, {"padding", 1}}, "ok")).shape ==
        Shape{N, 6, 4, 4});
}

TEST_CASE("max_pool2d: known values, the gradient to each window's first maximum, NaN propagates") {
  const Tensor x = iota({1, 1, 4, 4});
  const Tensor seed = Tensor::from({1, 1, 2, 2}, {1, 2, 3, 4}, DType::f64);
  const auto r = run_op("max_pool2d", {x}, {{"kernel", 2}}, &seed);
  CHECK(r.out.to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(r.grads[0].to_vector() == std::vector<double>{0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4});
  // Exact ties: every value equal, so each window's first tap (its top left) wins.
  const Tensor flat = Tensor::from({1, 1, 3, 3}, std::vector<double>(9, 2.0), DType::f64);
  const Tensor ones = Tensor::from({1, 1, 2, 2}, {1, 10, 100, 1000}, DType::f64);
  const auto tie = run_op("max_pool2d", {flat}, {{"kernel", 2}, {"stride", 1}}, &ones);
  CHECK(tie.out.to_vector() == std::vector<double>{2, 2, 2, 2});
  CHECK(tie.grads[0].to_vector() == std::vector<double>{1, 10, 0, 100, 1000, 0, 0, 0, 0});
  // Padding is -infinity: a window half outside takes the maximum of what is inside.
  const Tensor neg = Tensor::from({1, 1, 2, 2}, {-5, -6, -7, -8}, DType::f64);
  CHECK(run_op("max_pool2d", {neg}, {{"kernel", 2}, {"stride", 1}, {"padding", 1}}).out.to_vector() ==
        std::vector<double>{-5, -5, -6, -5, -5, -6, -7, -7, -8});
  Tensor nan = iota({1, 1, 2, 2});
  nan.set(3, std::nan(""));
  nan.set(1, 9);
  CHECK(std::isnan(run_op("max_pool2d", {nan}, {{"kernel", 2}}).out.at(0)));
}

TEST_CASE("max_pool2d: the f32 2x2 path (vectors of sixteen, eight or four, the last overlapping) agrees with f64") {
  // Rows of 19 outputs (vectors of sixteen or eight, the last overlapping), 14 (one vector
  // of sixteen with AVX-512, its lanes past the row on the next row, but in a plane's last
  // row), 5 from an odd width of 11 and from LeNet's 10x10 planes (one vector of eight
  // spilling onto the next row, four at a plane's last row), 4, and 3 (one by one); odd
  // heights leave a row of dx under no window. Values on a coarse grid so that windows tie,
  // and NaN at several taps (each position of a 2x2 window): the f32 path takes the four
  // taps as a tree, the f64 one in order, and they must pick the same winner.
  for (const Shape& xs : {Shape{2, 3, 6, 38}, Shape{2, 3, 6, 28}, Shape{2, 3, 7, 11}, Shape{3, 4, 10, 10},
                          Shape{1, 2, 5, 8}, Shape{1, 2, 4, 7}}) {
    CAPTURE(xs[3]);
    std::vector<double> v(static_cast<std::size_t>(xs.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 7919) % 5) - 2.0;
    for (std::size_t i : {0ul, 3ul, 75ul, 77ul, 116ul, 200ul, 233ul, 1000ul, 1037ul}) v[i % v.size()] = std::nan("");
    const Tensor x64 = Tensor::from(xs, v, DType::f64);
    const Tensor g64 = random_tensor({xs[0], xs[1], xs[2] / 2, xs[3] / 2}, -1, 1, 9, DType::f64);
    const Tensor g32 = g64.to(DType::f32);
    const auto want = run_op("max_pool2d", {x64}, {{"kernel", 2}}, &g64);
    const auto got = run_op("max_pool2d", {x64.to(DType::f32)}, {{"kernel", 2}}, &g32);
    int nans = 0;
    for (std::int64_t i = 0; i < want.out.numel(); ++i) {
      CAPTURE(i);
      const double a = want.out.at(i), b = got.out.at(i);
      nans += std::isnan(a) ? 1 : 0;
      CHECK(std::isnan(a) == std::isnan(b));
      if (!std::isnan(a)) CHECK(a == b);
    }
    if (xs[3] == 38) CHECK(nans == 9);  // each NaN in its own window, one in the last three outputs of a row
    CHECK(nans > 0);
    // The gradient goes to the same tap: the first maximum, or the NaN; zero elsewhere.
    for (std::int64_t i = 0; i < want.grads[0].numel(); ++i) {
      CAPTURE(i);
      CHECK(static_cast<float>(want.grads[0].at(i)) == got.grads[0].at(i));
    }
  }
}

TEST_CASE("avg_pool2d: PyTorch's divisors with and without the padding counted") {
  const Tensor x = iota({1, 1, 3, 3});  // 0..8
  CHECK(run_op("avg_pool2d", {x}, {{"kernel", 2}, {"stride", 1}}).out.to_vector() == std::vector<double>{2, 3, 5, 6});
  // padding 1, kernel 2, stride 2: windows at rows/cols {-1,0}, {1,2}; PyTorch 1.13 gives
  // [[0, 0.75], [2.25, 6]] with the padding counted and [[0, 1.5], [4.5, 6]] without.
  const auto with_pad = run_op("avg_pool2d", {x}, {{"kernel", 2}, {"padding", 1}});
  CHECK(with_pad.out.to_vector() == std::vector<double>{0, 0.75, 2.25, 6});
  const auto without = run_op("avg_pool2d", {x}, {{"kernel", 2}, {"padding", 1}, {"count_include_pad", false}});
  CHECK(without.out.to_vector() == std::vector<double>{0, 1.5, 4.5, 6});
  const Tensor seed = Tensor::from({1, 1, 2, 2}, {4, 4, 4, 4}, DType::f64);
  const auto g = run_op("avg_pool2d", {x}, {{"kernel", 2}, {"padding", 1}}, &seed);
  CHECK(g.grads[0].to_vector() == std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 1});
}

TEST_CASE("pools: a missing kernel and too much padding are refused") {
  Graph g;
  const NodeId x = g.add_input("x", Shape{N, 2, 6, 6});
  CHECK_THROWS_WITH(g.add_op("max_pool2d", {x}, {}, "p"),
                    "node 'p': max_pool2d: needs kernel= (one int or two: height, width)");
  CHECK_THROWS_WITH(g.add_op("avg_pool2d", {x}, {{"kernel", 2}, {"padding", 2}}, "p"),
                    "node 'p': avg_pool2d: padding may be at most half the 2x2 kernel (as in PyTorch), got [2,2,2,2]");
  CHECK(g.node(g.add_op("max_pool2d", {x}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}}, "ok")).shape ==
        Shape{N, 2, 3, 3});
}

TEST_CASE("bias_add: axis=1 adds a bias per channel of [N,C,H,W] and sums its gradient over the rest") {
  const Tensor x = iota({2, 3, 1, 2});
  const Tensor b = Tensor::from({3}, {100, 200, 300}, DType::f64);
  const Tensor seed = iota({2, 3, 1, 2});
  const auto r = run_op("bias_add", {x, b}, {{"axis", 1}}, &seed);
  CHECK(r.out.to_vector() == std::vector<double>{100, 101, 202, 203, 304, 305, 106, 107, 208, 209, 310, 311});
  CHECK(r.grads[1].to_vector() == std::vector<double>{0 + 1 + 6 + 7, 2 + 3 + 8 + 9, 4 + 5 + 10 + 11});
  CHECK(r.grads[0].to_vector() == seed.to_vector());
  Graph g;
  CHECK_THROWS_WITH(g.add_op("bias_add", {g.add_input("x", Shape{N, 3, 4, 4}), g.add_input("b", Shape{4})}, {{"axis", 1}}, "y"),
                    "node 'y': bias_add: bias of shape [4] does not match axis 1 of [N,3,4,4]");
}
TEST_CASE("max_pool2d: 2x2 windows over the bottom and right padding read only x, and send gradients inside it") {
  // A 5x5 plane padded (0, 0, 1, 1): the last row and column of windows hold one row or
  // column of x and the padding. The 2x2 fast path once read (and its vjp wrote) the row
  // and column past x there.
  std::vector<double> v(25);
  for (int i = 0; i < 25; ++i) v[static_cast<std::size_t>(i)] = -100.0 - i;
  for (const DType dt : {DType::f64, DType::f32}) {
    const Tensor x = Tensor::from(Shape{1, 1, 5, 5}, v, dt);
    const Tensor g = Tensor::from(Shape{1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, dt);
    const auto r = run_op("max_pool2d", {x}, {{"kernel", 2}, {"padding", IntList{0, 0, 1, 1}}}, &g);
    CHECK(r.out.to_vector() == std::vector<double>{-100, -102, -104, -110, -112, -114, -120, -122, -124});
    std::vector<double> dx(25, 0.0);
    for (int oy = 0; oy < 3; ++oy)
      for (int ox = 0; ox < 3; ++ox) dx[static_cast<std::size_t>(10 * oy + 2 * ox)] = 1 + 3 * oy + ox;  // each window's top-left
    CHECK(r.grads[0].to_vector() == dx);
  }
}

TEST_CASE_TEMPLATE("conv2d: a block of values transposed in registers puts each where a plain loop does", T, float, double) {
  // transpose_block, the channel path's [channels][positions] <-> [positions][lanes]:
  // square blocks, source rows past `rows` read as zero, destination rows past `cols` left
  // alone; strides wider than the block, as the convolution's planes are.
  constexpr std::int64_t L = ops::detail::DirectVec<T>::lanes;
  for (const auto& rc : {std::pair<std::int64_t, std::int64_t>{L, L}, {L - 3, L}, {L, L - 5}, {1, 1}, {6, L}}) {
    const std::int64_t rows = rc.first, cols = rc.second;  // not a structured binding: clang 14 cannot capture one
    CAPTURE(rows);
    CAPTURE(cols);
    const std::int64_t src_stride = L + 7, dst_stride = L + 3;
    std::vector<T> src(static_cast<std::size_t>(L * src_stride)), dst(static_cast<std::size_t>(L * dst_stride), T(-1));
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<T>(i) + T(0.5);
    ops::detail::transpose_block(src.data(), src_stride, rows, dst.data(), dst_stride, cols);
    for (std::int64_t k = 0; k < L; ++k)
      for (std::int64_t r = 0; r < dst_stride; ++r) {
        const T got = dst[static_cast<std::size_t>(k * dst_stride + r)];
        const T want = k >= cols || r >= L ? T(-1) : r < rows ? src[static_cast<std::size_t>(r * src_stride + k)] : T(0);
        if (got != want) FAIL_CHECK("dst[" << k << "][" << r << "] = " << got << ", want " << want);
      }
  }
}

TEST_CASE("conv2d: no input channels or no filters: zeros, no crash, every output written") {
  // An input of 0 channels gives outputs of sums of no terms (zeros); 0 filters give an
  // empty output and a zero input gradient. Sizing the direct kernels' scratch had divided
  // by the number of channel blocks, 0 (SIGFPE at plan compilation). The outputs and
  // gradients are filled with NaN between two passes, as the arena may hand their buffers
  // over holding other values: the second pass must write every element. Stride 1 (the
  // direct path) and 2 (the columns and the GEMM).
  struct Case {
    std::int64_t cin, cout, stride;
  };
  for (const Case& c : {Case{0, 2, 1}, Case{0, 2, 2}, Case{3, 0, 1}, Case{3, 0, 2}, Case{0, 0, 1}}) {
    CAPTURE(c.cin);
    CAPTURE(c.cout);
    CAPTURE(c.stride);
    Graph g;
    const NodeId x = g.add_input("x", Shape{4, c.cin, 6, 6}), w = g.add_input("w", Shape{c.cout, c.cin, 3, 3});
    const NodeId y = g.add_op("conv2d", {x, w},
                              {{"padding", IntList{1, 1}}, {"stride", IntList{c.stride, c.stride}}}, "y");
    g.add_output(y);
    Params params(DType::f32);
    Plan plan(g, params, {.loss = "y", .input_grads = {"x", "w"}});
    Tensor xs(Shape{4, c.cin, 6, 6}, DType::f32), ws(Shape{c.cout, c.cin, 3, 3}, DType::f32);
    xs.fill(1.0);
    ws.fill(1.0);
    plan.set_input("x", xs);
    plan.set_input("w", ws);
    const std::int64_t ho = c.stride == 1 ? 6 : 3;
    const Tensor seed = random_tensor(Shape{4, c.cout, ho, ho}, -1.0, 1.0, 7);
    const auto poison = [](Tensor t) {
      float* p = static_cast<float*>(t.raw());
      std::fill(p, p + t.numel(), std::numeric_limits<float>::quiet_NaN());
    };
    for (int pass = 0; pass < 2; ++pass) {
      plan.forward();
      plan.backward(Tensor::from(seed.shape(), seed.to_vector(), DType::f32));
      if (pass == 0) {
        poison(plan.value("y"));
        poison(plan.grad("x"));
        poison(plan.grad("w"));
      }
    }
    CHECK(plan.value("y").shape() == Shape{4, c.cout, ho, ho});
    for (double v : plan.value("y").to_vector()) CHECK(v == 0.0);
    for (double v : plan.grad("x").to_vector()) CHECK(v == 0.0);
    CHECK(plan.grad("w").numel() == 0);
  }
}
