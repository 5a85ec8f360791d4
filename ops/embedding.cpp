// embedding: rows of a table picked by integer ids (token embeddings), as PyTorch's
// F.embedding(ids, table); the table's gradient sums the rows' cotangents per id.
#include <opgraph/graph/op.hpp>

namespace opgraph::ops {

OPGRAPH_OP(embedding)
    .lower([](LoweringContext& c) { c.emit("Gather", {c.input(1), c.input(0)}, {c.output()}, {{"axis", std::int64_t{0}}}); })
    .doc("table[ids]: for i64 ids [...] and a table [V, d], rows of the table, shape [..., d]")
    .index_input("ids")
    .input("table")
    .domain("ids", {.kind = Domain::Kind::indices, .lo = 0.0, .hi = 7.0})
    .shape([](const ShapeContext& c) {
      c.expect_rank(1, 2);
      std::vector<std::int64_t> dims = c.in(0).dims();
      dims.push_back(c.in(1)[1]);
      return Shape(std::move(dims));
    })
    .saves({"ids"})
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const auto& ids = k.index_in(0);
      const auto& table = k.in(1);
      const auto& y = k.out();
      const std::int64_t vocab = table.dims[0], d = table.dims[1];
      parallel_for(ids.size, row_grain(d), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) {
          const std::int64_t id = ids.data[i];
          if (id < 0 || id >= vocab) k.fail("id {} at position {} is outside the table's {} rows", id, i, vocab);
          const T* row = table.data + id * d;
          std::copy(row, row + d, y.data + i * d);
        }
      });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      if (!k.needs_grad(1)) return;
      const auto& ids = k.index_in(0);
      const auto& g = k.grad_out();
      const auto& dt = k.grad_in(1);
      const std::int64_t d = dt.dims[1];
      std::fill(dt.data, dt.data + dt.size, T(0));
      // Columns split across threads, every position added in order: the same sums for any
      // thread count, and no two threads write one element.
      parallel_for(d, std::max<std::int64_t>(16, kElementwiseGrain / std::max<std::int64_t>(ids.size, 1)),
                   [&](std::int64_t c0, std::int64_t c1) {
                     for (std::int64_t i = 0; i < ids.size; ++i) {
                       T* row = dt.data + ids.data[i] * d;
                       const T* gi = g.data + i * d;
                       for (std::int64_t c = c0; c < c1; ++c) row[c] += gi[c];
                     }
                   });
    })
    .check({"[a]", "[7,b]"})
    .check({"[a,b]", "[7,c]"});

}  // namespace opgraph::ops
