// add, sub, mul, div: elementwise with NumPy broadcasting ([N,4] - [N,1], [N,c] * [c], x + scalar).
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(add)
    .lower(lowering::same("Add"))
    .doc("a + b, elementwise, NumPy broadcasting")
    .input("a")
    .input("b")
    .shape(broadcast_shape())
    .in_place("a")
    .forward([](auto& k) { broadcast_map([](auto a, auto b) { return a + b; }, k.out(), k.in(0), k.in(1)); })
    .vjp([](auto& k) {
      for (int i = 0; i < 2; ++i)
        if (k.needs_grad(i)) sum_to(k.grad_out(), k.grad_in(i));
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[b]"})
    .check({"[a,1]", "[a,b]"})
    .check({"[]", "[a,b,c]"})
    .check({"[a,b,c]", "[a,1,c]"})
    .check_broadcast({"[a,b,c]", "[a,b,c]"})
    .check_broadcast({"[a,b,c,d]", "[a,b,c,d]"});

OPGRAPH_OP(sub)
    .lower(lowering::same("Sub"))
    .doc("a - b, elementwise, NumPy broadcasting")
    .input("a")
    .input("b")
    .shape(broadcast_shape())
    .in_place("a")
    .forward([](auto& k) { broadcast_map([](auto a, auto b) { return a - b; }, k.out(), k.in(0), k.in(1)); })
    .vjp([](auto& k) {
      if (k.needs_grad(0)) sum_to(k.grad_out(), k.grad_in(0));
      if (k.needs_grad(1)) {
        sum_to(k.grad_out(), k.grad_in(1));
        map(k.grad_in(1), k.grad_in(1), [](auto g) { return -g; });
      }
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[a,1]"})
    .check({"[b]", "[a,b]"})
    .check({"[a,1,c]", "[a,b,c]"})
    .check_broadcast({"[a,b,c]", "[a,b,c]"});

OPGRAPH_OP(mul)
    .lower(lowering::same("Mul"))
    .doc("a * b, elementwise, NumPy broadcasting")
    .input("a")
    .input("b")
    .shape(broadcast_shape())
    .saves({"a", "b"})
    .scratch(broadcast_scratch())
    .forward([](auto& k) { broadcast_map([](auto a, auto b) { return a * b; }, k.out(), k.in(0), k.in(1)); })
    .vjp([](auto& k) {
      broadcast_vjp(k, 0, [](auto g, auto, auto b) { return g * b; });
      broadcast_vjp(k, 1, [](auto g, auto a, auto) { return g * a; });
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b,c]", "[a,b,c]"})
    .check({"[a,b]", "[b]"})
    .check({"[a,1]", "[a,b]"})
    .check({"[a,b]", "[]"})
    .check({"[a,b,c]", "[a,1,c]"})
    .check_broadcast({"[a,b,c]", "[a,b,c]"});

OPGRAPH_OP(div)
    .lower(lowering::same("Div"))
    .doc("a / b, elementwise, NumPy broadcasting")
    .input("a")
    .input("b")
    .domain("b", {.lo = 0.5, .hi = 2.0})
    .shape(broadcast_shape())
    .saves({"a", "b"})
    .scratch(broadcast_scratch())
    .forward([](auto& k) { broadcast_map([](auto a, auto b) { return a / b; }, k.out(), k.in(0), k.in(1)); })
    .vjp([](auto& k) {
      broadcast_vjp(k, 0, [](auto g, auto, auto b) { return g / b; });
      broadcast_vjp(k, 1, [](auto g, auto a, auto b) { return -g * a / (b * b); });
    })
    .check({"[a,b]", "[a,b]"})
    .check({"[a,b]", "[a,1]"})
    .check({"[a,b]", "[b]"})
    .check({"[1,b,c]", "[a,b,1]"})
    .check_broadcast({"[a,b,c]", "[a,b,c]"});

}  // namespace opgraph::ops
