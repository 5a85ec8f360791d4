// Shapes and tensors.
#include <doctest/doctest.h>

#include <opgraph/graph/tensor.hpp>

using namespace opgraph;

TEST_CASE("tensor: shapes print with the symbolic batch dimension") {
  CHECK(Shape{N, 784}.str() == "[N,784]");
  CHECK(Shape{}.str() == "[]");
  CHECK(fmt::format("{}", Shape{3, 4}) == "[3,4]");
  CHECK(Shape{N, 784}.has_batch());
  CHECK(Shape{N, 784}.bind(32) == Shape{32, 784});
  CHECK(Shape{2, 3, 4}.numel() == 24);
  CHECK(Shape{}.numel() == 1);
  CHECK_THROWS_WITH_AS(Shape({N, 3}).numel(), "shape [N,3] has no size until the batch dimension N is bound", ShapeError);
}

TEST_CASE("tensor: values, conversion, views") {
  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.dtype() == DType::f32);
  CHECK(t.numel() == 6);
  CHECK(t.nbytes() == 24);
  CHECK(t.at({1, 2}) == 6.0);
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw()) % 64 == 0);

  Tensor d = t.to(DType::f64);
  CHECK(d.dtype() == DType::f64);
  CHECK(d.at(4) == 5.0);

  Tensor rows = t.slice_rows(1, 2);
  CHECK(rows.shape() == Shape{1, 3});
  CHECK(rows.at(0) == 4.0);
  rows.set(0, 40.0);
  CHECK(t.at({1, 0}) == 40.0);  // a view shares the buffer

  Tensor c = t.clone();
  c.set(0, -1.0);
  CHECK(t.at(0) == 1.0);
  CHECK(t.reshape({3, 2}).at({2, 1}) == 6.0);
  CHECK(t.bitwise_equal(t.clone()));
  CHECK_FALSE(t.bitwise_equal(c));
}

TEST_CASE("tensor: misuse gives clear errors") {
  Tensor t({2, 2});
  CHECK_THROWS_WITH_AS(t.data<double>(), "tensor of dtype f32 accessed as f64", GraphError);
  CHECK_THROWS_WITH_AS(t.at({2, 0}), "index 2 out of range on axis 0 of shape [2,2]", ShapeError);
  CHECK_THROWS_WITH_AS(t.reshape({3}), "cannot reshape [2,2] into [3]", ShapeError);
  CHECK_THROWS_WITH_AS(Tensor::from({2}, {1, 2, 3}), "tensor of shape [2] needs 2 values, got 3", ShapeError);
  CHECK_THROWS_WITH_AS(Tensor(Shape{N, 2}), "cannot allocate a tensor of shape [N,2]", ShapeError);
  CHECK_THROWS_WITH_AS(t.item(), "item() needs a one-element tensor, got shape [2,2]", ShapeError);
  CHECK_THROWS_WITH_AS(parse_dtype("f16"), "unknown dtype 'f16' (use f32, f64 or i64)", ParseError);
  // Found by fuzzing the model parser: the element count must not wrap around.
  CHECK_THROWS_WITH_AS(Shape({std::int64_t{1} << 40, std::int64_t{1} << 40}).numel(),
                       "shape [1099511627776,1099511627776] holds more than 2^62 elements", ShapeError);
  CHECK(Shape({std::int64_t{1} << 31, std::int64_t{1} << 31}).numel() == std::int64_t{1} << 62);
}
