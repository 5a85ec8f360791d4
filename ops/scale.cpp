// scale: multiply by a constant attribute.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(scale)
    .doc("factor * x, elementwise, for a constant factor")
    .input("x")
    .attr("factor", AttrType::real, 1.0, "the constant multiplier")
    .shape(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T f = static_cast<T>(k.attr_float("factor"));
      map(k.in(0), k.out(), [f](T x) { return f * x; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T f = static_cast<T>(k.attr_float("factor"));
      map(k.grad_out(), k.grad_in(0), [f](T g) { return f * g; });
    })
    .check({"[a,b]"}, {{"factor", -2.5}});

}  // namespace opgraph::ops
