// layer_norm: normalises each row over the trailing axes that gain and bias cover
// (PyTorch's LayerNorm with normalized_shape = gain's shape), with the biased variance.
// The forward keeps each row's mean and 1/std for the vjp; gain's and bias's gradients
// are column sums in a fixed order (blocks of rows sized from the row length), so they
// are the same for any thread count.
#include <algorithm>

#include <opgraph/graph/op.hpp>

#include "detail/lanes.hpp"

namespace opgraph::ops {

namespace {

/// [rows, cols]: cols the values normalised together.
template <class V, class G>
std::pair<std::int64_t, std::int64_t> rows_cols(const V& x, const G& gain) {
  const std::int64_t cols = gain.size;
  return {cols ? x.size / cols : 0, cols};
}

}  // namespace

OPGRAPH_OP(layer_norm)
    .lower([](LoweringContext& c) {
      const int rank = c.in_shape(0).rank(), k = c.in_shape(1).rank();
      if (c.opset() >= 17) {
        c.emit("LayerNormalization", {c.input(0), c.input(1), c.input(2)}, {c.output()},
               {{"axis", std::int64_t{rank - k}}, {"epsilon", c.attr_float("eps")}});
        return;
      }
      // Before opset 17: (x - mean) / sqrt(var + eps) * gain + bias over the last k axes.
      IntList axes;
      for (int d = rank - k; d < rank; ++d) axes.push_back(d);
      const Attrs over{{"axes", axes}, {"keepdims", std::int64_t{1}}};
      const std::string mean = c.emit_fresh("ReduceMean", {c.input(0)}, "mean", over);
      const std::string d = c.emit_fresh("Sub", {c.input(0), mean}, "centred");
      const std::string var = c.emit_fresh("ReduceMean", {c.emit_fresh("Mul", {d, d}, "squared")}, "var", over);
      const std::string sd = c.emit_fresh("Sqrt", {c.emit_fresh("Add", {var, c.scalar(c.attr_float("eps"), "eps")}, "var_eps")}, "sd");
      const std::string z = c.emit_fresh("Mul", {c.emit_fresh("Div", {d, sd}, "normed"), c.input(1)}, "scaled");
      c.emit("Add", {z, c.input(2)}, {c.output()});
    })
    .doc("(x - mean) / sqrt(var + eps) * gain + bias over the trailing axes gain covers (PyTorch's LayerNorm)")
    .input("x")
    .input("gain")
    .input("bias")
    .attr("eps", AttrType::real, 1e-5, "added to the variance",
          [](const AttrValue& v) { return v.as_float() > 0 ? "" : "must be positive"; })
    .shape([](const ShapeContext& c) {
      const Shape &x = c.in(0), &gain = c.in(1), &bias = c.in(2);
      if (gain != bias) c.fail("gain {} and bias {} differ: both have the normalised axes' shape", gain, bias);
      if (gain.rank() == 0 || gain.rank() > x.rank() ||
          !std::equal(gain.dims().begin(), gain.dims().end(), x.dims().end() - gain.rank()))
        c.fail("gain {} is not the trailing axes of {} (for [N,T,64], gain and bias are [64])", gain, x);
      for (auto d : gain.dims())
        if (is_symbolic(d)) c.fail("gain {} has a symbolic dimension: the normalised axes must be sizes", gain);
      return x;
    })
    .saves({"x", "gain"})
    .workspace([](const ShapeContext& c) {  // per row: mean and 1/std
      std::vector<std::int64_t> dims(c.in(0).dims().begin(), c.in(0).dims().end() - c.in(1).rank());
      dims.push_back(2);
      return Shape(std::move(dims));
    })
    .scratch([](const ShapeContext& c) { return c.in(0); })  // the row blocks' column sums (the vjp)
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& gain = k.in(1);
      const auto& bias = k.in(2);
      const auto& y = k.out();
      const auto [rows_, n_] = rows_cols(x, gain);
      const std::int64_t rows = rows_, n = n_;  // clang before 16 cannot capture bindings
      T* stats = k.workspace().data;
      const double eps = k.attr_float("eps");
      for_each_row(rows, n, [&](std::int64_t r) {
        const T* xr = x.data + r * n;
        // Both sums in double, in lanes (detail/lanes.hpp): one running sum made the
        // transformer's layer norms 11 % of its step. Floats hold the lanes as two vectors
        // of doubles (the same bits): the forward pass at [2048, 128] 0.111 -> 0.089 ms.
        double mean, sq;
        if constexpr (std::is_same_v<T, float>) {
          mean = detail::lane_sum_doubles(n, [&](auto at) { return at(xr); }) / static_cast<double>(n);
          sq = detail::lane_sum_doubles(n, [&](auto at) {
            const auto d = at(xr) - mean;
            return d * d;
          });
        } else {
          mean = detail::lane_sum<double>(n, [&](std::int64_t j) { return static_cast<double>(xr[j]); }) /
                 static_cast<double>(n);
          sq = detail::lane_sum<double>(n, [&](std::int64_t j) {
            const double d = xr[j] - mean;
            return d * d;
          });
        }
        const T rstd = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
        const T m = static_cast<T>(mean);
        stats[2 * r] = m;
        stats[2 * r + 1] = rstd;
        T* yr = y.data + r * n;
        for (std::int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - m) * rstd * gain.data[j] + bias.data[j];
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& gain = k.in(1);
      const auto& g = k.grad_out();
      const auto [rows_, n_] = rows_cols(x, gain);
      const std::int64_t rows = rows_, n = n_;  // clang before 16 cannot capture bindings
      const T* stats = k.workspace().data;
      const bool dx_wanted = k.needs_grad(0), gain_wanted = k.needs_grad(1), bias_wanted = k.needs_grad(2);
      if (!dx_wanted && !gain_wanted && !bias_wanted) return;
      // One pass over the rows for everything: each block of R rows computes x's gradient
      // and its own sums of g * x_hat and of g down each column (gain's and bias's
      // gradients), and the blocks' sums are then added in block order. R depends on the
      // row length alone, so the sums are the same whatever the thread count. Three passes
      // (x's gradient writing g * x_hat, then a column sum of it and one of g, each over
      // every row on every thread) had made layer norm's vjp slower on 2 threads than on 1
      // in the transformer W8 on the Zen 5 (5 of them: 0.69 ms at 1 thread, 0.83 at 2).
      // At least 4 rows a block: the blocks' sums (2 n each) then fit in the scratch
      // (rows x n) whenever there are two blocks or more.
      const std::int64_t per = std::clamp<std::int64_t>(kElementwiseGrain / std::max<std::int64_t>(n, 1), 4, 256);
      const std::int64_t blocks = (rows + per - 1) / per;
      const bool sums = gain_wanted || bias_wanted;
      T* dgain = gain_wanted ? k.grad_in(1).data : nullptr;
      T* dbias = bias_wanted ? k.grad_in(2).data : nullptr;
      // Block b's sums: partial + 2 n b (gain's, then bias's); with one block, the gradients.
      T* partial = blocks > 1 ? k.scratch().data : nullptr;
      T* dx = dx_wanted ? k.grad_in(0).data : nullptr;
      const T* w = gain.data;
      parallel_for(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t blk = b0; blk < b1; ++blk) {
          T* sg = partial ? partial + 2 * n * blk : dgain;
          T* sb = partial ? partial + 2 * n * blk + n : dbias;
          if (sums)
            for (std::int64_t j = 0; j < n; ++j) {
              if (sg) sg[j] = T(0);
              if (sb) sb[j] = T(0);
            }
          for (std::int64_t r = blk * per; r < std::min(rows, (blk + 1) * per); ++r) {
            const T *xr = x.data + r * n, *gr = g.data + r * n;
            const T m = stats[2 * r], rstd = stats[2 * r + 1];
            if (sg)
              for (std::int64_t j = 0; j < n; ++j) sg[j] += gr[j] * ((xr[j] - m) * rstd);
            if (sb)
              for (std::int64_t j = 0; j < n; ++j) sb[j] += gr[j];
            if (!dx) continue;
            T mean_dh, mean_dh_xh;
            if constexpr (std::is_same_v<T, float>) {
              mean_dh = detail::lane_sum_floats(n, [&](auto at) { return at(gr) * at(w); }) / static_cast<T>(n);
              mean_dh_xh = detail::lane_sum_floats(n, [&](auto at) { return at(gr) * at(w) * (at(xr) - m) * rstd; }) /
                           static_cast<T>(n);
            } else {
              mean_dh = detail::lane_sum<T>(n, [&](std::int64_t j) { return gr[j] * w[j]; }) / static_cast<T>(n);
              mean_dh_xh =
                  detail::lane_sum<T>(n, [&](std::int64_t j) { return gr[j] * w[j] * (xr[j] - m) * rstd; }) /
                  static_cast<T>(n);
            }
            T* d = dx + r * n;
            for (std::int64_t j = 0; j < n; ++j) d[j] = rstd * (gr[j] * w[j] - mean_dh - (xr[j] - m) * rstd * mean_dh_xh);
          }
        }
      });
      if (!partial) return;
      // The blocks' sums in block order, columns in parallel.
      parallel_for(n, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(blocks, 1)),
                   [&](std::int64_t c0, std::int64_t c1) {
                     for (std::int64_t c = c0; c < c1; ++c) {
                       T tg = T(0), tb = T(0);
                       for (std::int64_t blk = 0; blk < blocks; ++blk) {
                         tg += partial[2 * n * blk + c];
                         tb += partial[2 * n * blk + n + c];
                       }
                       if (dgain) dgain[c] = tg;
                       if (dbias) dbias[c] = tb;
                     }
                   });
    })
    .check({"[a,b]", "[b]", "[b]"})
    .check({"[a,b,c]", "[c]", "[c]"})
    .check({"[a,b,c]", "[b,c]", "[b,c]"}, {{"eps", 1e-3}});

}  // namespace opgraph::ops
