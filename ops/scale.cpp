// scale: factor * x + offset, for constants; what `x * 2`, `x / 2`, `x + 1e-5` and `1 - x`
// mean in a model file.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(scale)
    .doc("factor * x + offset, elementwise, for constants factor and offset")
    .input("x")
    .attr("factor", AttrType::real, 1.0, "the constant multiplier")
    .attr("offset", AttrType::real, 0.0, "the constant added")
    .shape(same_shape_as(0))
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T f = static_cast<T>(k.attr_float("factor")), o = static_cast<T>(k.attr_float("offset"));
      map(k.in(0), k.out(), [f, o](T x) { return f * x + o; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T f = static_cast<T>(k.attr_float("factor"));
      map(k.grad_out(), k.grad_in(0), [f](T g) { return f * g; });
    })
    .check({"[a,b]"}, {{"factor", -2.5}})
    .check({"[a,b,c]"}, {{"factor", 0.5}, {"offset", 3.0}});

}  // namespace opgraph::ops
