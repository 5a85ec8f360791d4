// batch_norm: normalises each channel (axis 1) of [N,C] or [N,C,...] over the batch and the
// positions; in training with the batch's statistics (and updates running ones), in
// evaluation with the running statistics, as PyTorch's BatchNorm1d/2d.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// x viewed as [n, channels, positions].
struct Layout {
  std::int64_t n, channels, positions;
  std::int64_t at(std::int64_t i, std::int64_t c, std::int64_t s) const { return (i * channels + c) * positions + s; }
  std::int64_t count() const { return n * positions; }
};

template <class V>
Layout layout_of(const V& x) {
  Layout l{x.dims[0], x.dims[1], 1};
  for (int d = 2; d < x.rank; ++d) l.positions *= x.dims[d];
  return l;
}

/// Sum of f(element index) over one channel, in a fixed order: per sample, eight running
/// sums over the positions (independent additions the CPU overlaps, where one running
/// sum waits on each add), combined in a fixed tree.
template <class F>
double channel_sum(const Layout& l, std::int64_t c, F f) {
  double total = 0.0;
  for (std::int64_t i = 0; i < l.n; ++i) {
    const std::int64_t base = l.at(i, c, 0);
    double lane[8] = {};
    std::int64_t s = 0;
    for (; s + 8 <= l.positions; s += 8)
      for (int j = 0; j < 8; ++j) lane[j] += f(base + s + j);
    for (; s < l.positions; ++s) lane[s % 8] += f(base + s);
    total += ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  }
  return total;
}

}  // namespace

OPGRAPH_OP(batch_norm)
    .lower([](LoweringContext& c) {
      // Eval mode: the running statistics. ONNX's momentum weighs the old statistics.
      c.emit("BatchNormalization", {c.input(0), c.input(1), c.input(2), c.state(0), c.state(1)}, {c.output()},
             {{"epsilon", c.attr_float("eps")}, {"momentum", 1.0 - c.attr_float("momentum")}});
    })
    .doc("(x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1): batch statistics in training, running "
         "ones in evaluation")
    .input("x")
    .input("gamma")
    .input("beta")
    .attr("momentum", AttrType::real, 0.1, "weight of the new batch in the running statistics (PyTorch's convention)",
          [](const AttrValue& v) { return v.as_float() >= 0.0 && v.as_float() <= 1.0 ? "" : "must be in [0, 1]"; })
    .attr("eps", AttrType::real, 1e-5, "added to the variance",
          [](const AttrValue& v) { return v.as_float() > 0.0 ? "" : "must be positive"; })
    .shape([](const ShapeContext& c) {
      if (c.in(0).rank() < 2) c.fail("x must be [N,C] or [N,C,...], got {}", c.in(0));
      for (int i : {1, 2})
        if (c.in(i) != Shape{c.in(0)[1]})
          c.fail("{} must have shape [{}] (the channels of {}), got {}", i == 1 ? "gamma" : "beta",
                 c.in(0)[1] == N ? "N" : std::to_string(c.in(0)[1]), c.in(0), c.in(i));
      return c.in(0);
    })
    .state("running_mean", [](const ShapeContext& c) { return Shape{c.in(0)[1]}; }, 0.0)
    .state("running_var", [](const ShapeContext& c) { return Shape{c.in(0)[1]}; }, 1.0)
    .workspace([](const ShapeContext& c) { return Shape{2, c.in(0)[1]}; })  // the mean and 1/std used
    .saves({"x", "gamma"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& gamma = k.in(1);
      const auto& beta = k.in(2);
      const auto& y = k.out();
      const Layout l = layout_of(x);
      T* mean = k.workspace().data;
      T* invstd = mean + l.channels;
      const double eps = k.attr_float("eps"), momentum = k.attr_float("momentum");
      const bool training = k.training();
      if (training && l.count() < 2) k.fail("batch statistics need at least 2 values per channel, got {}", l.count());
      parallel_for(l.channels, 1, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          double m, var;
          if (training) {
            const double count = static_cast<double>(l.count());
            m = channel_sum(l, c, [&](std::int64_t i) { return static_cast<double>(x.data[i]); }) / count;
            var = channel_sum(l, c, [&](std::int64_t i) {
                    const double d = static_cast<double>(x.data[i]) - m;
                    return d * d;
                  }) / count;
            T* running_mean = k.state(0).data;
            T* running_var = k.state(1).data;
            running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * var * count / (count - 1.0));
          } else {
            m = static_cast<double>(k.state(0).data[c]);
            var = static_cast<double>(k.state(1).data[c]);
          }
          mean[c] = static_cast<T>(m);
          invstd[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
          const T scale = gamma.data[c] * invstd[c], shift = beta.data[c] - mean[c] * scale;
          for (std::int64_t i = 0; i < l.n; ++i)
            for (std::int64_t s = 0; s < l.positions; ++s) {
              const std::int64_t at = l.at(i, c, s);
              y.data[at] = x.data[at] * scale + shift;
            }
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& gamma = k.in(1);
      const auto& g = k.grad_out();
      const Layout l = layout_of(x);
      const T* mean = k.workspace().data;
      const T* invstd = mean + l.channels;
      const bool training = k.training();
      parallel_for(l.channels, 1, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          const double m = mean[c], is = invstd[c];
          const T* xs = x.data;
          const T* gs = g.data;
          const double dbeta = channel_sum(l, c, [&](std::int64_t i) { return static_cast<double>(gs[i]); });
          const double dgamma = channel_sum(
              l, c, [&](std::int64_t i) { return static_cast<double>(gs[i]) * ((static_cast<double>(xs[i]) - m) * is); });
          if (k.needs_grad(1)) k.grad_in(1).data[c] = static_cast<T>(dgamma);
          if (k.needs_grad(2)) k.grad_in(2).data[c] = static_cast<T>(dbeta);
          if (!k.needs_grad(0)) continue;
          const double gis = static_cast<double>(gamma.data[c]) * is;
          const double count = static_cast<double>(l.count());
          const double db = dbeta / count;
          for (std::int64_t i = 0; i < l.n; ++i) {
            // One line of the channel through restrict pointers, so that the loop is
            // vectorised (it was scalar, a division per element).
            const T* __restrict xl = xs + l.at(i, c, 0);
            const T* __restrict gl = gs + l.at(i, c, 0);
            T* __restrict dx = k.grad_in(0).data + l.at(i, c, 0);
            if (training)  // the batch statistics depend on x too
              for (std::int64_t s = 0; s < l.positions; ++s) {
                const double xhat = (static_cast<double>(xl[s]) - m) * is;
                dx[s] = static_cast<T>(gis * (static_cast<double>(gl[s]) - db - xhat * dgamma / count));
              }
            else
              for (std::int64_t s = 0; s < l.positions; ++s) dx[s] = static_cast<T>(gis * static_cast<double>(gl[s]));
          }
        }
      });
    })
    .check({"[a,b]", "[b]", "[b]"})
    .check({"[a,b,c,d]", "[b]", "[b]"})
    .check({"[a,b,c]", "[b]", "[b]"}, {{"momentum", 0.5}, {"eps", 0.001}});

}  // namespace opgraph::ops
