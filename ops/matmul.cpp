// matmul: the matrix product [n,k] x [k,m] -> [n,m]; the vjp is two transposed products.
#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(matmul)
    .doc("matrix product a·b of [n,k] and [k,m] into [n,m]")
    .input("a")
    .input("b")
    .shape([](const ShapeContext& c) {
      c.expect_rank(0, 2);
      c.expect_rank(1, 2);
      if (c.in(0)[1] != c.in(1)[0]) c.fail("inner dimensions differ: {} x {}", c.in(0), c.in(1));
      return Shape{c.in(0)[0], c.in(1)[1]};
    })
    .saves({"a", "b"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& a = k.in(0);
      const auto& b = k.in(1);
      const std::int64_t n = a.dim(0), inner = a.dim(1), m = b.dim(1);
      gemm<T>(false, false, n, m, inner, T(1), a.data, inner, b.data, m, T(0), k.out().data, m);
    })
    .vjp([](auto& k) {
      // da = g·bᵀ [n,k] and db = aᵀ·g [k,m], transposes read in place.
      using T = scalar_of<decltype(k)>;
      const auto& a = k.in(0);
      const auto& b = k.in(1);
      const auto& g = k.grad_out();
      const std::int64_t n = a.dim(0), inner = a.dim(1), m = b.dim(1);
      if (k.needs_grad(0)) gemm<T>(false, true, n, inner, m, T(1), g.data, m, b.data, m, T(0), k.grad_in(0).data, inner);
      if (k.needs_grad(1)) gemm<T>(true, false, inner, m, n, T(1), a.data, inner, g.data, m, T(0), k.grad_in(1).data, m);
    })
    .cost([](const ShapeContext& c, const Shape&) {
      const double flops = 2.0 * static_cast<double>(c.in(0)[0]) * static_cast<double>(c.in(0)[1]) *
                           static_cast<double>(c.in(1)[1]);
      return OpCost{flops, 2.0 * flops};
    })
    .check({"[a,b]", "[b,c]"})
    .check({"[1,b]", "[b,c]"})
    .check({"[a,b]", "[b,1]"});

}  // namespace opgraph::ops
