// identity: y = x; lets a block take "no activation" as an op, and names a value.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(identity)
    .lower(lowering::same("Identity"))
    .doc("x unchanged (no activation)")
    .input("x")
    .shape(same_shape_as(0))
    .in_place("x")
    .forward([](auto& k) {
      if (k.out().data != k.in(0).data) map(k.in(0), k.out(), [](auto v) { return v; });
    })
    .vjp([](auto& k) {
      if (k.grad_in(0).data != k.grad_out().data) map(k.grad_out(), k.grad_in(0), [](auto g) { return g; });
    })
    .check({"[a,b]"});

}  // namespace opgraph::ops
