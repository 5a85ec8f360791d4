// Layout ops by hand: transpose, flatten, expand and slice give NumPy's values, and their
// vjps put each gradient back where its value came from.
#include <doctest/doctest.h>

#include <limits>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {
std::vector<double> values(const Tensor& t) { return t.to_vector(); }
}  // namespace

TEST_CASE("layout: transpose permutes axes as NumPy's transpose does") {
  // x[i,j,k] = 12 i + 4 j + k for shape [2,3,4]; y = x.transpose(2,0,1): y[k,i,j].
  const Tensor x = iota({2, 3, 4});
  const auto r = run_op("transpose", {x}, {{"perm", IntList{2, 0, 1}}}, nullptr);
  CHECK(r.out.shape() == Shape{4, 2, 3});
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) CHECK(r.out.at((k * 2 + i) * 3 + j) == 12 * i + 4 * j + k);
  // Default: the last two axes swap.
  const auto d = run_op("transpose", {iota({2, 3})});
  CHECK(d.out.shape() == Shape{3, 2});
  CHECK(values(d.out) == std::vector<double>{0, 3, 1, 4, 2, 5});
  // The vjp sends each gradient to the element it came from: seeding with y's own values
  // gives x back.
  const Tensor seed = r.out.clone();
  const auto g = run_op("transpose", {x}, {{"perm", IntList{2, 0, 1}}}, &seed);
  CHECK(values(g.grads[0]) == values(x));
}

TEST_CASE("layout: flatten merges axis..end as PyTorch's flatten does") {
  const auto r = run_op("flatten", {iota({2, 3, 4, 5})}, {{"axis", 1}, {"end", 2}});
  CHECK(r.out.shape() == Shape{2, 12, 5});
  CHECK(values(r.out) == values(iota({2, 3, 4, 5})));
  CHECK(run_op("flatten", {iota({2, 3, 4})}).out.shape() == Shape{2, 12});
}

TEST_CASE("layout: expand broadcasts, and its vjp sums the copies back") {
  const Tensor x = Tensor::from({2, 1}, {1, 2}, DType::f64);
  const Tensor seed = Tensor::from({3, 2, 3}, std::vector<double>(18, 1.0), DType::f64);
  const auto r = run_op("expand", {x}, {{"shape", IntList{3, -1, 3}}}, &seed);
  CHECK(r.out.shape() == Shape{3, 2, 3});
  CHECK(values(r.out) == std::vector<double>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  CHECK(values(r.grads[0]) == std::vector<double>{9, 9});  // each value was copied 9 times
}

TEST_CASE("layout: slice takes x[begin:end:step] with Python's rules") {
  // x = arange(24).reshape(4, 6); x[1:, -5:100:2] = rows 1..3, columns 1, 3, 5.
  const Tensor x = iota({4, 6});
  const auto r = run_op("slice", {x}, {{"begin", IntList{1, -5}}, {"end", IntList{4, 100}}, {"step", IntList{1, 2}}});
  CHECK(r.out.shape() == Shape{3, 3});
  CHECK(values(r.out) == std::vector<double>{7, 9, 11, 13, 15, 17, 19, 21, 23});
  // One axis by name; an empty range gives a zero-size dimension, as NumPy.
  CHECK(values(run_op("slice", {x}, {{"begin", IntList{4}}, {"axes", IntList{-1}}}).out) ==
        std::vector<double>{4, 5, 10, 11, 16, 17, 22, 23});
  CHECK(run_op("slice", {x}, {{"begin", IntList{3}}, {"end", IntList{1}}}).out.shape() == Shape{0, 6});
  // Bounds and steps as large as an int64 (ONNX files write INT64_MAX for "to the end"):
  // the count of taken elements, ceil((end - begin) / step), must not overflow (fuzz_onnx).
  constexpr std::int64_t kHuge = std::numeric_limits<std::int64_t>::max();
  const auto huge = run_op("slice", {x}, {{"begin", IntList{2}}, {"end", IntList{kHuge}}, {"step", IntList{kHuge}}, {"axes", IntList{1}}});
  CHECK(huge.out.shape() == Shape{4, 1});
  CHECK(values(huge.out) == std::vector<double>{2, 8, 14, 20});
  CHECK(run_op("slice", {x}, {{"begin", IntList{-kHuge}}, {"end", IntList{kHuge}}, {"step", IntList{5}}, {"axes", IntList{1}}})
            .out.shape() == Shape{4, 2});
  // The vjp: the gradient lands on the taken elements, zeros elsewhere.
  const Tensor seed = Tensor::from({2, 6}, std::vector<double>(12, 1.0), DType::f64);
  const auto g = run_op("slice", {x}, {{"begin", IntList{0}}, {"step", IntList{2}}}, &seed);
  CHECK(values(g.grads[0]) == std::vector<double>{1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                                                  1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("layout: bad permutations, flattens, expansions, slices and reshapes are refused by name") {
  Graph g;
  const NodeId x = g.add_input("x", Shape{N, 3, 4});
  CHECK_THROWS_WITH(g.add_op("transpose", {x}, {{"perm", IntList{0, 0, 1}}}, "t"),
                    "node 't': transpose: perm=[0, 0, 1] names axis 0 twice: it must be a permutation");
  CHECK_THROWS_WITH(g.add_op("transpose", {x}, {{"perm", IntList{0, 1}}}, "t"),
                    "node 't': transpose: perm=[0, 1] has 2 axes but [N,3,4] has 3");
  CHECK_THROWS_WITH(g.add_op("flatten", {x}, {{"axis", 0}}, "f"),
                    "node 'f': flatten: axes 0..2 of [N,3,4] merge N with 12 values: a symbolic dimension merges only "
                    "with sizes of 1");
  CHECK_THROWS_WITH(g.add_op("expand", {x}, {{"shape", IntList{-1, 5, 4}}}, "e"),
                    "node 'e': expand: shape=[-1, 5, 4]: dimension 1 of [N,3,4] is 3, which broadcasts only to itself (or "
                    "give -1)");
  CHECK_THROWS_WITH(g.add_op("slice", {x}, {{"begin", IntList{0, 1}}, {"end", IntList{2, 3}}}, "s"),
                    "node 's': slice: axis 0 of [N,3,4] is N, not a size: only a whole symbolic dimension can be kept");
  CHECK_THROWS_WITH(g.add_op("slice", {x}, {{"begin", IntList{1}}, {"step", IntList{-1}}, {"axes", IntList{1}}}, "s"),
                    "node 's': slice: step -1 on axis 1: steps must be positive (negative steps are not supported)");
  CHECK(g.node(g.add_op("slice", {x}, {{"begin", IntList{0, 1}}}, "ok")).shape == Shape{N, 2, 4});
  // Sizes whose product would wrap an int64 (fuzz_onnx: a computed shape of 2^62 x 12).
  CHECK_THROWS_WITH(g.add_op("reshape", {x}, {{"shape", IntList{0, std::int64_t{1} << 62, 12}}}, "r"),
                    "node 'r': reshape: shape=[0, 4611686018427387904, 12] holds more than 2^62 values");
}
