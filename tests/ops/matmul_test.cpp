// Batched matmul against a naive triple loop: batch axes broadcast, transposed operands,
// gradients, and bitwise equality at 1, 2 and 4 threads.
#include <doctest/doctest.h>

#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {

/// NumPy's matmul by definition: element (batch, i, j) of op(a) op(b).
double naive(const Tensor& a, const Tensor& b, bool ta, bool tb, const std::vector<std::int64_t>& out_batch,
             std::int64_t i, std::int64_t j) {
  const Shape &sa = a.shape(), &sb = b.shape();
  const int ra = sa.rank(), rb = sb.rank(), r = static_cast<int>(out_batch.size());
  auto at = [&](const Tensor& t, const Shape& s, int rank, std::int64_t row, std::int64_t col) {
    std::int64_t flat = 0;
    for (int d = 0; d < rank - 2; ++d) {
      const std::int64_t ix = out_batch[static_cast<std::size_t>(d + (r - (rank - 2)))];
      flat = flat * s[d] + (s[d] == 1 ? 0 : ix);
    }
    return t.at((flat * s[rank - 2] + row) * s[rank - 1] + col);
  };
  const std::int64_t k = ta ? sa[ra - 2] : sa[ra - 1];
  double v = 0;
  for (std::int64_t p = 0; p < k; ++p)
    v += (ta ? at(a, sa, ra, p, i) : at(a, sa, ra, i, p)) * (tb ? at(b, sb, rb, j, p) : at(b, sb, rb, p, j));
  return v;
}

void check_against_naive(Shape sa, Shape sb, bool ta, bool tb, Shape expected) {
  const Tensor a = random_tensor(sa, -1.0, 1.0, 1), b = random_tensor(sb, -1.0, 1.0, 2);
  const auto r = run_op("matmul", {a, b}, {{"trans_a", ta}, {"trans_b", tb}});
  REQUIRE(r.out.shape() == expected);
  const int rank = expected.rank();
  const std::int64_t n = expected[rank - 2], m = expected[rank - 1];
  std::vector<std::int64_t> batch(static_cast<std::size_t>(rank - 2));
  for (std::int64_t flat = 0; flat < r.out.numel(); ++flat) {
    std::int64_t rest = flat / (n * m);
    for (int d = rank - 3; d >= 0; --d) {
      batch[static_cast<std::size_t>(d)] = rest % expected[d];
      rest /= expected[d];
    }
    CHECK(r.out.at(flat) == doctest::Approx(naive(a, b, ta, tb, batch, (flat / m) % n, flat % m)).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("matmul: batched products equal NumPy's definition") {
  check_against_naive({3, 4}, {4, 5}, false, false, {3, 5});
  check_against_naive({2, 3, 4}, {4, 5}, false, false, {2, 3, 5});           // rows of a batch: one GEMM
  check_against_naive({2, 3, 4}, {2, 4, 5}, false, false, {2, 3, 5});        // attention's q k^T shape
  check_against_naive({2, 4, 3}, {2, 4, 5}, true, false, {2, 3, 5});
  check_against_naive({2, 3, 4}, {2, 5, 4}, false, true, {2, 3, 5});
  check_against_naive({2, 1, 3, 4}, {3, 4, 5}, false, false, {2, 3, 3, 5});  // batch axes broadcast
  check_against_naive({3, 4}, {2, 5, 4}, false, true, {2, 3, 5});            // a matrix against a batch
  check_against_naive({2, 4, 3}, {5, 4}, true, true, {2, 3, 5});
}

TEST_CASE("matmul: gradients sum over broadcast batches, bitwise equal at 1, 2 and 4 threads") {
  const Tensor a = random_tensor({2, 1, 40, 33}, -1.0, 1.0, 3), b = random_tensor({5, 33, 17}, -1.0, 1.0, 4);
  const Tensor seed = random_tensor({2, 5, 40, 17}, -1.0, 1.0, 5);
  std::vector<OpRun> runs;
  for (int threads : {1, 2, 4}) {
    ThreadCount t(threads);
    runs.push_back(run_op("matmul", {a, b}, {}, &seed));
  }
  for (std::size_t i = 1; i < runs.size(); ++i) {
    CHECK(runs[i].out.to_vector() == runs[0].out.to_vector());
    CHECK(runs[i].grads[0].to_vector() == runs[0].grads[0].to_vector());
    CHECK(runs[i].grads[1].to_vector() == runs[0].grads[1].to_vector());
  }
  // db[j] = sum over the batches using b[j] of a^T g: element (0, 0, 0) by hand.
  double v = 0;
  for (int i = 0; i < 2; ++i)
    for (int r = 0; r < 40; ++r) v += a.at({i, 0, r, 0}) * seed.at({i, 0, r, 0});
  CHECK(runs[0].grads[1].at({0, 0, 0}) == doctest::Approx(v).epsilon(1e-12));
}

TEST_CASE("matmul: mismatched operands are refused with both shapes") {
  Graph g;
  const NodeId a = g.add_input("a", Shape{N, 3, 4}), b = g.add_input("b", Shape{5, 4});
  CHECK_THROWS_WITH(g.add_op("matmul", {a, b}, {}, "m"),
                    "node 'm': matmul: inner dimensions differ: [N,3,4] x [5,4] (4 against 5)");
  CHECK(g.node(g.add_op("matmul", {a, b}, {{"trans_b", true}}, "ok")).shape == Shape{N, 3, 5});
  const NodeId v = g.add_input("v", Shape{4});
  CHECK_THROWS_WITH(g.add_op("matmul", {a, v}, {}, "m2"),
                    "node 'm2': matmul: [4] has rank 1: matmul needs matrices (rank 2 or more; reshape a vector to "
                    "[1,k] or [k,1])");
}

TEST_CASE("matmul: an inner dimension of 0 gives zeros, whatever its output's buffer held") {
  // Sums of no terms: a [5, 0] x [0, 3] product is [5, 3] of zeros (NumPy's, PyTorch's).
  // The output's buffer is filled with NaN between two passes, as the arena may hand it
  // over holding another value's: the second pass must write every element. Flat, batched
  // and transposed; the gradients of the empty operands are empty.
  struct Case {
    Shape a, b;
    bool ta, tb;
    Shape y;
  };
  for (const Case& c : {Case{{5, 0}, {0, 3}, false, false, {5, 3}}, Case{{2, 4, 0}, {0, 3}, false, false, {2, 4, 3}},
                        Case{{2, 4, 0}, {2, 0, 3}, false, false, {2, 4, 3}}, Case{{0, 5}, {3, 0}, true, true, {5, 3}}}) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    Graph g;
    const NodeId a = g.add_input("a", c.a), b = g.add_input("b", c.b);
    const NodeId y = g.add_op("matmul", {a, b}, {{"trans_a", c.ta}, {"trans_b", c.tb}}, "y");
    g.add_output(y);
    Params params(DType::f32);
    Plan plan(g, params, {});
    plan.set_input("a", Tensor(c.a, DType::f32));
    plan.set_input("b", Tensor(c.b, DType::f32));
    plan.forward();
    Tensor out = plan.value("y");
    REQUIRE(out.shape() == c.y);
    float* data = static_cast<float*>(out.raw());
    std::fill(data, data + out.numel(), std::numeric_limits<float>::quiet_NaN());
    plan.forward();
    for (double v : plan.value("y").to_vector()) CHECK(v == 0.0);
  }
}
