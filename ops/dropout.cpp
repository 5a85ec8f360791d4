// dropout: in training, zero each element with probability p and scale the rest by 1/(1-p)
// (inverted dropout, as PyTorch); in evaluation, the identity. The mask comes from the
// node's counter-based random stream, so the vjp regenerates it instead of storing it, and
// it is the same for any thread count, wave schedule or batch split, and after a resume.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {

/// Calls f(i, keep) for every element of a tensor of `size` elements, `per_sample` of them
/// per sample, with keep = whether element i survives at rate p.
template <class F>
void for_mask(const RandomStream& stream, std::int64_t offset, std::int64_t size, double p, F f) {
  const auto threshold = static_cast<std::uint32_t>(p * 16777216.0);  // p in units of 2^-24
  parallel_for(size, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
    std::uint32_t w[4];
    std::uint64_t cached = ~std::uint64_t{0};
    for (std::int64_t i = b; i < e; ++i) {
      const auto g = static_cast<std::uint64_t>(offset + i);
      if ((g >> 2) != cached) {
        cached = g >> 2;
        stream.block(cached, w);
      }
      f(i, (w[g & 3] >> 8) >= threshold);
    }
  });
}

std::int64_t first_element(const auto& k, const auto& x) {
  const std::int64_t per_sample = x.rank > 0 && x.dims[0] > 0 ? x.size / x.dims[0] : x.size;
  return k.sample_offset() * per_sample;
}

}  // namespace

OPGRAPH_OP(dropout)
    .lower(lowering::same("Identity"))
    .doc("drops each element with probability p in training and scales the rest by 1/(1-p); the identity in evaluation")
    .input("x")
    .attr("p", AttrType::real, 0.5, "probability of dropping an element, in [0, 1)",
          [](const AttrValue& v) { return v.as_float() >= 0.0 && v.as_float() < 1.0 ? "" : "must be in [0, 1)"; })
    .shape(same_shape_as(0))
    .in_place("x")
    .random()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& x = k.in(0);
      const auto& y = k.out();
      const double p = k.attr_float("p");
      if (!k.training() || p == 0.0) {
        map(x, y, [](T v) { return v; });
        return;
      }
      const T scale = static_cast<T>(1.0 / (1.0 - p));
      for_mask(k.random(), first_element(k, x), x.size, p,
               [&](std::int64_t i, bool keep) { y.data[i] = keep ? x.data[i] * scale : T(0); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& g = k.grad_out();
      const auto& dx = k.grad_in(0);
      const double p = k.attr_float("p");
      if (!k.training() || p == 0.0) {
        map(g, dx, [](T v) { return v; });
        return;
      }
      const T scale = static_cast<T>(1.0 / (1.0 - p));
      for_mask(k.random(), first_element(k, g), g.size, p,
               [&](std::int64_t i, bool keep) { dx.data[i] = keep ? g.data[i] * scale : T(0); });
    })
    .check({"[a,b]"}, {{"p", 0.3}})
    .check({"[a,b,c]"}, {{"p", 0.5}})
    .check({"[a,b]"}, {{"p", 0.0}});

}  // namespace opgraph::ops
