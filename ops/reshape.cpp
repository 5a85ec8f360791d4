// reshape: the same values in another shape (row-major order kept), like NumPy's reshape,
// with ONNX's 0 ("keep this dimension") so that shapes with the batch N can be written.
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph::ops {

OPGRAPH_OP(reshape)
    .lower([](LoweringContext& c) { lowering::reshape(c, c.input(0), c.in_shape(0), c.out_shape(), c.output()); })
    .doc("x with another shape of as many values: shape=[0, -1] keeps dimension 0 and infers the last")
    .input("x")
    .attr("shape", AttrType::int_list, IntList{-1}, "the new dimensions: one may be -1 (inferred), 0 keeps x's")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const IntList& want = c.attr_ints("shape");
      std::vector<std::int64_t> dims;
      int infer = -1;
      for (std::size_t i = 0; i < want.size(); ++i) {
        const std::int64_t d = want[i];
        if (d == -1) {
          if (infer >= 0) c.fail("shape=[{}] has more than one -1", fmt::join(want, ", "));
          infer = static_cast<int>(i);
          dims.push_back(1);
        } else if (d == 0) {
          if (static_cast<int>(i) >= x.rank()) c.fail("shape=[{}]: 0 at position {} keeps a dimension {} does not have",
                                                      fmt::join(want, ", "), i, x);
          dims.push_back(x[static_cast<int>(i)]);
        } else if (d < 0) {
          c.fail("shape=[{}] has {}: dimensions are sizes, -1 (infer) or 0 (keep)", fmt::join(want, ", "), d);
        } else {
          dims.push_back(d);
        }
      }
      // Sizes and symbols on both sides: symbols must match one for one, except one that
      // the -1 takes over; the sizes' products must agree.
      std::vector<std::int64_t> in_symbols, out_symbols;
      std::int64_t in_size = 1, out_size = 1;
      auto times = [&](std::int64_t& size, std::int64_t d) {  // no product may wrap (fuzz_onnx: 2^62 x 12)
        if (!mul_fits(size, d, &size)) c.fail("shape=[{}] holds more than 2^62 values", fmt::join(want, ", "));
      };
      for (auto d : x.dims()) is_symbolic(d) ? in_symbols.push_back(d) : times(in_size, d);
      for (auto d : dims) is_symbolic(d) ? out_symbols.push_back(d) : times(out_size, d);
      for (auto s : out_symbols) {
        const auto it = std::find(in_symbols.begin(), in_symbols.end(), s);
        if (it == in_symbols.end()) c.fail("shape=[{}] cannot make {} from {}", fmt::join(want, ", "), Shape(dims), x);
        in_symbols.erase(it);
      }
      if (infer >= 0) {
        if (out_size == 0 ? in_size != 0 : in_size % out_size != 0)
          c.fail("shape=[{}] cannot hold the values of {}: {} values are not a multiple of {}", fmt::join(want, ", "), x,
                 in_size, out_size);
        if (in_symbols.size() > 1 || (in_symbols.size() == 1 && in_size != out_size)) {
          std::vector<std::string> parts;
          for (auto d : in_symbols) parts.push_back(dim_text(d));
          if (out_size == 0 || in_size / out_size != 1) parts.push_back(std::to_string(out_size ? in_size / out_size : 0));
          c.fail("shape=[{}]: -1 would be {}, which is not one dimension: keep symbolic dimensions with 0 (e.g. "
                 "shape=[0, -1])",
                 fmt::join(want, ", "), fmt::join(parts, " x "));
        }
        dims[static_cast<std::size_t>(infer)] = in_symbols.empty() ? (out_size ? in_size / out_size : 0) : in_symbols.front();
      } else if (!in_symbols.empty() || in_size != out_size) {
        c.fail("shape=[{}] gives {}, which does not hold the values of {}", fmt::join(want, ", "), Shape(dims), x);
      }
      return Shape(std::move(dims));
    })
    .in_place("x")  // the same values in the same order: over its input it copies nothing
    .forward([](auto& k) {
      if (k.out().data != k.in(0).data) map(k.in(0), k.out(), [](auto v) { return v; });
    })
    .vjp([](auto& k) {
      if (k.grad_in(0).data != k.grad_out().data) map(k.grad_out(), k.grad_in(0), [](auto v) { return v; });
    })
    .check({"[a,6]"}, {{"shape", IntList{0, 2, 3}}})
    .check({"[a,b,c]"}, {{"shape", IntList{-1}}})
    .check({"[2,3,a]"}, {{"shape", IntList{3, -1}}});

}  // namespace opgraph::ops
