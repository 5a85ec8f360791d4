// add, sub, mul: elementwise on two tensors of the same shape.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

namespace {
ShapeFn same_shapes() {
  return [](const ShapeContext& c) {
    if (c.in(0) != c.in(1)) c.fail("shapes differ: {} vs {}", c.in(0), c.in(1));
    return c.in(0);
  };
}
}  // namespace

OPGRAPH_OP(add)
    .doc("a + b, elementwise, same shapes")
    .input("a")
    .input("b")
    .shape(same_shapes())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.in(1), k.out(), [](T a, T b) { return a + b; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      for (int i = 0; i < 2; ++i)
        if (k.needs_grad(i)) map(k.grad_out(), k.grad_in(i), [](T g) { return g; });
    })
    .check({"[a,b]", "[a,b]"});

OPGRAPH_OP(sub)
    .doc("a - b, elementwise, same shapes")
    .input("a")
    .input("b")
    .shape(same_shapes())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.in(1), k.out(), [](T a, T b) { return a - b; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      if (k.needs_grad(0)) map(k.grad_out(), k.grad_in(0), [](T g) { return g; });
      if (k.needs_grad(1)) map(k.grad_out(), k.grad_in(1), [](T g) { return -g; });
    })
    .check({"[a,b]", "[a,b]"});

OPGRAPH_OP(mul)
    .doc("a * b, elementwise, same shapes")
    .input("a")
    .input("b")
    .shape(same_shapes())
    .saves({"a", "b"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.in(1), k.out(), [](T a, T b) { return a * b; });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      if (k.needs_grad(0)) zip(k.grad_out(), k.in(1), k.grad_in(0), [](T g, T b) { return g * b; });
      if (k.needs_grad(1)) zip(k.grad_out(), k.in(0), k.grad_in(1), [](T g, T a) { return g * a; });
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b,c]", "[a,b,c]"});

}  // namespace opgraph::ops
