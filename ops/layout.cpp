// transpose, flatten and expand: the same values in another layout. transpose permutes
// axes (a copy through strided reads), flatten merges neighbouring axes (no data moves),
// expand broadcasts to a larger shape (NumPy's broadcast_to; its vjp sums back).
#include <array>

#include <opgraph/graph/op.hpp>

#include "detail/strided.hpp"

namespace opgraph::ops {

namespace {


/// The permutation of transpose made non-negative: perm=none swaps the last two axes.
using Perm = std::array<int, kMaxRank>;

Perm permutation(const AttrValue& perm, int rank) {
  Perm p{};
  for (int i = 0; i < rank; ++i) p[static_cast<std::size_t>(i)] = i;
  if (perm.is_none()) {
    if (rank >= 2) std::swap(p[static_cast<std::size_t>(rank - 2)], p[static_cast<std::size_t>(rank - 1)]);
    return p;
  }
  const IntList& given = perm.as_ints();
  for (int i = 0; i < rank; ++i) {
    const std::int64_t a = given[static_cast<std::size_t>(i)];
    p[static_cast<std::size_t>(i)] = static_cast<int>(a < 0 ? a + rank : a);
  }
  return p;
}

/// y = x with its axes permuted (inverse: y's axes put back) for transpose and its vjp.
template <class T>
void permute(const View<const T>& x, const View<T>& y, const Perm& perm, bool inverse) {
  std::int64_t x_strides[kMaxRank], strides[kMaxRank], dims[kMaxRank];
  if (!inverse) {
    detail::contiguous_strides(x.dims, x.rank, x_strides);
    for (int i = 0; i < x.rank; ++i) {
      dims[i] = y.dims[i];
      strides[i] = x_strides[perm[static_cast<std::size_t>(i)]];
    }
    detail::strided_copy(true, x.data, y.data, 0, dims, strides, x.rank);
  } else {
    // x is the output's gradient (permuted layout); write it scattered into y's layout.
    detail::contiguous_strides(y.dims, y.rank, x_strides);
    for (int i = 0; i < x.rank; ++i) {
      dims[i] = x.dims[i];
      strides[i] = x_strides[perm[static_cast<std::size_t>(i)]];
    }
    detail::strided_copy(false, x.data, y.data, 0, dims, strides, x.rank);
  }
}

}  // namespace

OPGRAPH_OP(transpose)
    .lower([](LoweringContext& c) {
      const int r = c.in_shape(0).rank();
      IntList perm;
      if (c.attr("perm").is_none()) {
        for (int d = 0; d < r; ++d) perm.push_back(d);
        if (r >= 2) std::swap(perm[r - 1], perm[r - 2]);
      } else {
        for (std::int64_t p : c.attr_ints("perm")) perm.push_back(p < 0 ? p + r : p);
      }
      c.emit("Transpose", {c.input(0)}, {c.output()}, {{"perm", perm}});
    })
    .doc("x with its axes permuted: y's axis i is x's axis perm[i] (NumPy's transpose); perm=none swaps the last two")
    .input("x")
    .attr("perm", AttrType::int_list, AttrValue(), "a permutation of the axes (negative counts from the end)")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const AttrValue& perm = c.attr("perm");
      if (perm.is_none()) {
        if (x.rank() < 2) c.fail("{} has fewer than two axes to swap: give perm=[...]", x);
      } else {
        const IntList& p = perm.as_ints();
        if (static_cast<int>(p.size()) != x.rank())
          c.fail("perm=[{}] has {} axes but {} has {}", fmt::join(p, ", "), p.size(), x, x.rank());
        std::vector<bool> seen(static_cast<std::size_t>(x.rank()));
        for (auto a : p) {
          if (a < -x.rank() || a >= x.rank())
            c.fail("perm=[{}]: axis {} is out of range for rank {}", fmt::join(p, ", "), a, x.rank());
          const auto i = static_cast<std::size_t>(a < 0 ? a + x.rank() : a);
          if (seen[i]) c.fail("perm=[{}] names axis {} twice: it must be a permutation", fmt::join(p, ", "), i);
          seen[i] = true;
        }
      }
      const auto p = permutation(perm, x.rank());
      std::vector<std::int64_t> dims;
      for (int i = 0; i < x.rank(); ++i) dims.push_back(x[p[static_cast<std::size_t>(i)]]);
      return Shape(std::move(dims));
    })
    .forward([](auto& k) { permute(k.in(0), k.out(), permutation(k.attr("perm"), k.in(0).rank), false); })
    .vjp([](auto& k) { permute(k.grad_out(), k.grad_in(0), permutation(k.attr("perm"), k.grad_in(0).rank), true); })
    .check({"[a,b]"})
    .check({"[a,b,c]"})
    .check({"[a,b,c,d]"}, {{"perm", IntList{0, 2, 1, 3}}})
    .check({"[a,b,c]"}, {{"perm", IntList{2, 0, 1}}})
    .check({"[a,b,c]"}, {{"perm", IntList{-1, 0, 1}}});

OPGRAPH_OP(flatten)
    .lower([](LoweringContext& c) { lowering::reshape(c, c.input(0), c.in_shape(0), c.out_shape(), c.output()); })
    .doc("x with axes axis..end merged into one (PyTorch's flatten): [N,C,H,W] -> [N,C*H*W] by default")
    .input("x")
    .attr("axis", AttrType::integer, 1, "the first axis merged")
    .attr("end", AttrType::integer, -1, "the last axis merged")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      if (x.rank() == 0) c.fail("a scalar has no axes to flatten");
      const int a = c.axis("axis", x.rank()), e = c.axis("end", x.rank());
      if (e < a) c.fail("end={} comes before axis={} in {}", c.attr_int("end"), c.attr_int("axis"), x);
      std::vector<std::int64_t> dims(x.dims().begin(), x.dims().begin() + a);
      std::int64_t size = 1, symbol = 0;
      for (int i = a; i <= e; ++i) {
        if (!is_symbolic(x[i])) {
          size *= x[i];
        } else if (symbol != 0) {
          c.fail("axes {}..{} of {} hold two symbolic dimensions, which cannot merge into one", a, e, x);
        } else {
          symbol = x[i];
        }
      }
      if (symbol != 0 && size != 1)
        c.fail("axes {}..{} of {} merge {} with {} values: a symbolic dimension merges only with sizes of 1", a, e, x,
               dim_text(symbol), size);
      dims.push_back(symbol != 0 ? symbol : size);
      dims.insert(dims.end(), x.dims().begin() + e + 1, x.dims().end());
      return Shape(std::move(dims));
    })
    .in_place("x")  // the same values in the same order: over its input it copies nothing
    .forward([](auto& k) {
      if (k.out().data != k.in(0).data) map(k.in(0), k.out(), [](auto v) { return v; });
    })
    .vjp([](auto& k) {
      if (k.grad_in(0).data != k.grad_out().data) map(k.grad_out(), k.grad_in(0), [](auto v) { return v; });
    })
    .check({"[a,b,c]"})
    .check({"[a,b,c,d]"}, {{"axis", 2}})
    .check({"[a,b,c,d]"}, {{"axis", 0}, {"end", 1}});

OPGRAPH_OP(expand)
    .lower([](LoweringContext& c) {
      // ONNX's Expand broadcasts both ways: a 1 keeps x's size, which is how a symbolic
      // dimension (the batch) is kept. (Reshape's 0 for "keep" is no size here: a batch
      // expanded by it failed in ONNX Runtime.)
      std::vector<std::int64_t> dims;
      for (std::int64_t d : c.out_shape().dims()) dims.push_back(is_symbolic(d) ? 1 : d);
      c.emit("Expand", {c.input(0), c.ints(dims, "shape")}, {c.output()});
    })
    .doc("x broadcast to a larger shape (NumPy's broadcast_to, PyTorch's expand): -1 keeps x's dimension")
    .input("x")
    .attr("shape", AttrType::int_list, IntList{-1}, "the new shape, aligned on the right with x's; -1 keeps x's size")
    .shape([](const ShapeContext& c) {
      const Shape& x = c.in(0);
      const IntList& want = c.attr_ints("shape");
      const int rank = static_cast<int>(want.size());
      if (rank < x.rank()) c.fail("shape=[{}] has fewer axes than {}", fmt::join(want, ", "), x);
      std::vector<std::int64_t> dims;
      for (int i = 0; i < rank; ++i) {
        const int xi = i - (rank - x.rank());  // x's axis aligned with axis i, or < 0
        const std::int64_t w = want[static_cast<std::size_t>(i)];
        if (w == -1) {
          if (xi < 0) c.fail("shape=[{}]: -1 at position {} keeps a dimension {} does not have", fmt::join(want, ", "), i, x);
          dims.push_back(x[xi]);
        } else if (w < 0) {
          c.fail("shape=[{}] has {}: dimensions are sizes, or -1 to keep x's", fmt::join(want, ", "), w);
        } else {
          if (xi >= 0 && x[xi] != 1 && x[xi] != w)
            c.fail("shape=[{}]: dimension {} of {} is {}, which broadcasts only to itself (or give -1)",
                   fmt::join(want, ", "), xi, x, dim_text(x[xi]));
          dims.push_back(w);
        }
      }
      return Shape(std::move(dims));
    })
    .forward([](auto& k) { broadcast_map([](auto v) { return v; }, k.out(), k.in(0)); })
    .vjp([](auto& k) { sum_to(k.grad_out(), k.grad_in(0)); })
    .check({"[a,1]"}, {{"shape", IntList{-1, 4}}})
    .check({"[b]"}, {{"shape", IntList{3, -1}}})
    .check({"[1,b]"}, {{"shape", IntList{2, 3, -1}}});

/// ONNX's Expand to a shape that holds the batch, of a tensor that has none (a class token
/// expanded to every sample, ViT's class_token.expand(n, -1, -1)): the batch comes from a
/// tensor that has it.
OPGRAPH_OP(expand_batch)
    .lower([](LoweringContext& c) {
      // Expand(x, [batch of like, x's other sizes]): Shape(like)[0:1] concatenated with them.
      const Shape& x = c.in_shape(0);
      const std::string batch = c.emit_fresh(
          "Slice", {c.emit_fresh("Shape", {c.input(1)}, "like_shape"), c.ints({0}, "zero"), c.ints({1}, "one")},
          "batch");
      std::vector<std::int64_t> rest(x.dims().begin() + 1, x.dims().end());
      const std::string shape =
          rest.empty() ? batch : c.emit_fresh("Concat", {batch, c.ints(rest, "rest")}, "shape", {{"axis", std::int64_t{0}}});
      c.emit("Expand", {c.input(0), shape}, {c.output()});
    })
    .doc("x [1, ...] repeated along its first axis to like's first (the batch): [N, ...]; like gives its size only")
    .input("x")
    .input("like", false)
    .shape([](const ShapeContext& c) {
      const Shape &x = c.in(0), &like = c.in(1);
      if (x.rank() == 0 || x[0] != 1) c.fail("x {} must have a first axis of size 1, repeated to the batch", x);
      if (like.rank() == 0) c.fail("like {} has no first axis to take the batch from", like);
      std::vector<std::int64_t> dims = x.dims();
      dims[0] = like[0];
      return Shape(std::move(dims));
    })
    .saves({})
    .forward([](auto& k) { broadcast_map([](auto v) { return v; }, k.out(), k.in(0)); })
    .vjp([](auto& k) { sum_to(k.grad_out(), k.grad_in(0)); })  // the samples' rows summed
    .check({"[1,b]", "[a,c]"})
    .check({"[1,b,c]", "[a]"});

}  // namespace opgraph::ops
