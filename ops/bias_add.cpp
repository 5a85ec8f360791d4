// bias_add: x + b with b broadcast over every row of x.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(bias_add)
    .doc("x + b, the vector b added to every row of x: [...,c] + [c]")
    .input("x")
    .input("b")
    .shape([](const ShapeContext& c) {
      c.expect_rank(1, 1);
      if (c.in(0).rank() < 1 || c.in(0).last() != c.in(1)[0])
        c.fail("bias of shape {} does not match the last dimension of {}", c.in(1), c.in(0));
      return c.in(0);
    })
    .forward([](auto& k) {
      const auto& x = k.in(0);
      const auto& b = k.in(1);
      const auto& y = k.out();
      with_width(x.cols(), [&](auto cols) {
        for_row_chunks(x.rows(), cols, [&](std::int64_t r0, std::int64_t r1) {
          for (std::int64_t r = r0; r < r1; ++r)
            for (std::int64_t c = 0; c < cols; ++c) y.data[r * cols + c] = x.data[r * cols + c] + b.data[c];
        });
      });
    })
    .vjp([](auto& k) {
      const auto& g = k.grad_out();
      if (k.needs_grad(0)) map(g, k.grad_in(0), [](auto v) { return v; });
      if (k.needs_grad(1)) column_sums(g, k.grad_in(1).data);
    })
    .check({"[a,b]", "[b]"})
    .check({"[a,b,c]", "[c]"});

}  // namespace opgraph::ops
