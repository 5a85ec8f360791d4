// scale: factor * x + offset, for constants; what `x * 2`, `x / 2`, `x + 1e-5` and `1 - x`
// mean in a model file.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(scale)
    .lower([](LoweringContext& c) {
      const double f = c.attr_float("factor"), o = c.attr_float("offset");
      std::string x = c.input(0);
      if (f == 1.0 && o == 0.0) {
        c.emit("Identity", {x}, {c.output()});
        return;
      }
      if (f != 1.0) x = o == 0.0 ? c.emit("Mul", {x, c.scalar(f, "factor")}, {c.output()})
                                 : c.emit_fresh("Mul", {x, c.scalar(f, "factor")}, "scaled");
      if (o != 0.0) c.emit("Add", {x, c.scalar(o, "offset")}, {c.output()});
    })
    .doc("factor * x + offset, elementwise, for constants factor and offset")
    .input("x")
    .attr("factor", AttrType::real, 1.0, "the constant multiplier")
    .attr("offset", AttrType::real, 0.0, "the constant added")
    .shape(same_shape_as(0))
    .in_place("x")
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
