// Fused ops against their compositions from primitives, in f64: attention (plain and
// causal) against matmul, scale, causal_mask, softmax and matmul; layer_norm against its
// formula. Values and every input's gradient agree to 1e-6 (in fact to rounding).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include <opgraph/graph/random.hpp>

#include "../test_util.hpp"

#include "op_run.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {

/// The output of `build` on inputs in0, in1, ... and the gradients of <seed, output>.
/// The output of `build` on inputs in0, in1, ... and the gradients of <seed, output>, in
/// `dtype`, for the inputs `wanted` lists (all when empty; the others get none).
OpRun run_graph(const std::vector<Tensor>& inputs, const std::function<NodeId(Graph&, std::vector<NodeId>)>& build,
                const Tensor& seed, DType dtype = DType::f64, std::vector<std::size_t> wanted = {}) {
  Graph g;
  std::vector<NodeId> ids;
  std::vector<std::string> names, grads;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    names.push_back("in" + std::to_string(i));
    ids.push_back(g.add_input(names.back(), inputs[i].shape()));
  }
  if (wanted.empty())
    for (std::size_t i = 0; i < inputs.size(); ++i) wanted.push_back(i);
  for (std::size_t i : wanted) grads.push_back(names[i]);
  const NodeId out = build(g, ids);
  g.add_output(out);
  Params params(dtype);
  Plan plan(g, params, {.loss = g.node(out).name, .input_grads = grads});
  for (std::size_t i = 0; i < inputs.size(); ++i) plan.set_input(names[i], inputs[i].to(dtype));
  plan.forward();
  OpRun r{plan.value(g.node(out).name).to(DType::f64), {}};
  plan.backward(seed.to(dtype));
  for (const auto& n : grads) r.grads.push_back(plan.grad(n).to(DType::f64));
  return r;
}

/// [N, T, heads * f] as [N, heads, T, f]: reshaped, then the T and heads axes swapped.
NodeId split_heads(Graph& g, NodeId v, std::int64_t heads, std::int64_t f, const std::string& name) {
  const NodeId r = g.add_op("reshape", {v}, {{"shape", IntList{0, 0, heads, f}}}, name + "_r");
  return g.add_op("transpose", {r}, {{"perm", IntList{0, 2, 1, 3}}}, name + "_t");
}

void check_close(const Tensor& a, const Tensor& b, double tol) {
  REQUIRE(a.shape() == b.shape());
  double worst = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) worst = test::worse(worst, std::abs(a.at(i) - b.at(i)));
  CAPTURE(worst);
  CHECK(worst <= tol);
  CHECK(std::isfinite(worst));
}

}  // namespace

TEST_CASE("attention: the fused op equals matmul, scale, causal_mask, softmax, matmul in f64") {
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    // [batch 7, heads 3, 5 queries, 4 features]; 7 keys (5 when causal: T = S). 21 items:
    // the vjp's 16 lanes take one or two each, in turn in one block of scratch.
    const std::int64_t keys = causal ? 5 : 7;
    const std::vector<Tensor> in = {random_tensor({7, 3, 5, 4}, -2, 2, 1), random_tensor({7, 3, keys, 4}, -2, 2, 2),
                                    random_tensor({7, 3, keys, 6}, -1.0, 1.0, 3)};
    const Tensor seed = random_tensor({7, 3, 5, 6}, -1.0, 1.0, 4);
    const auto fused = run_graph(
        in, [&](Graph& g, std::vector<NodeId> x) { return g.add_op("attention", x, {{"causal", causal}}, "y"); }, seed);
    const auto composed = run_graph(
        in,
        [&](Graph& g, std::vector<NodeId> x) {
          NodeId s = g.add_op("matmul", {x[0], x[1]}, {{"trans_b", true}}, "scores");
          s = g.add_op("scale", {s}, {{"factor", 0.5}}, "scaled");  // 1/sqrt(4)
          if (causal) s = g.add_op("causal_mask", {s}, {}, "masked");
          const NodeId p = g.add_op("softmax", {s}, {}, "p");
          return g.add_op("matmul", {p, x[2]}, {}, "y");
        },
        seed);
    check_close(fused.out, composed.out, 1e-12);
    for (std::size_t i = 0; i < 3; ++i) check_close(fused.grads[i], composed.grads[i], 1e-12);
  }
}

TEST_CASE("attention: heads=H on [N, T, H*d] equals splitting the heads, attention per head, and merging") {
  // q, k [2, 5, 3*4] (7 keys when not causal), v [2, keys, 3*2]: three heads side by side.
  for (bool causal : {false, true}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      CAPTURE(causal);
      CAPTURE(dtype);
      const std::int64_t keys = causal ? 5 : 7, heads = 3;
      const std::vector<Tensor> in = {random_tensor({2, 5, 12}, -2, 2, 21), random_tensor({2, keys, 12}, -2, 2, 22),
                                      random_tensor({2, keys, 6}, -1.0, 1.0, 23)};
      const Tensor seed = random_tensor({2, 5, 6}, -1.0, 1.0, 24);
      const auto fused = run_graph(
          in,
          [&](Graph& g, std::vector<NodeId> x) {
            return g.add_op("attention", x, {{"causal", causal}, {"heads", heads}}, "y");
          },
          seed, dtype);
      const auto split = run_graph(
          in,
          [&](Graph& g, std::vector<NodeId> x) {
            auto heads_of = [&](NodeId v, std::int64_t d, const std::string& name) { return split_heads(g, v, heads, d, name); };
            const NodeId a = g.add_op("attention", {heads_of(x[0], 4, "q"), heads_of(x[1], 4, "k"), heads_of(x[2], 2, "v")},
                                      {{"causal", causal}}, "a");
            const NodeId t = g.add_op("transpose", {a}, {{"perm", IntList{0, 2, 1, 3}}}, "at");
            return g.add_op("reshape", {t}, {{"shape", IntList{0, 0, 6}}}, "y");
          },
          seed, dtype);
      // The same products and sums, only read with other strides: the same bits.
      check_close(fused.out, split.out, 0.0);
      for (std::size_t i = 0; i < 3; ++i) check_close(fused.grads[i], split.grads[i], 0.0);
    }
  }
}

TEST_CASE("attention: f32 follows the f64 composition, query and key counts off the vector width") {
  // 37 queries and 50 keys (21 and 3 past whole vectors of 16), causal with more keys than
  // queries (the first 13 keys seen by every query), two heads: the column softmax's
  // vector and scalar parts and its masked ranges, against matmul, scale, causal_mask,
  // softmax, matmul in f64.
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    const std::int64_t t = 37, s = 50, heads = 2, d = 8, dv = 5;
    const std::vector<Tensor> in = {random_tensor({3, t, heads * d}, -2, 2, 31),
                                    random_tensor({3, s, heads * d}, -2, 2, 32),
                                    random_tensor({3, s, heads * dv}, -1.0, 1.0, 33)};
    const Tensor seed = random_tensor({3, t, heads * dv}, -1.0, 1.0, 34);
    const auto fused = run_graph(
        in,
        [&](Graph& g, std::vector<NodeId> x) {
          return g.add_op("attention", x, {{"causal", causal}, {"heads", heads}}, "y");
        },
        seed, DType::f32);
    const auto composed = run_graph(
        in,
        [&](Graph& g, std::vector<NodeId> x) {
          auto heads_of = [&](NodeId v, std::int64_t f, const std::string& name) { return split_heads(g, v, heads, f, name); };
          NodeId sc = g.add_op("matmul", {heads_of(x[0], d, "q"), heads_of(x[1], d, "k")}, {{"trans_b", true}}, "scores");
          sc = g.add_op("scale", {sc}, {{"factor", 1.0 / std::sqrt(static_cast<double>(d))}}, "scaled");
          if (causal) sc = g.add_op("causal_mask", {sc}, {}, "masked");
          const NodeId p = g.add_op("softmax", {sc}, {}, "p");
          const NodeId a = g.add_op("matmul", {p, heads_of(x[2], dv, "v")}, {}, "a");
          const NodeId at = g.add_op("transpose", {a}, {{"perm", IntList{0, 2, 1, 3}}}, "at");
          return g.add_op("reshape", {at}, {{"shape", IntList{0, 0, heads * dv}}}, "y");
        },
        seed);
    check_close(fused.out, composed.out, 2e-6);
    for (std::size_t i = 0; i < 3; ++i) check_close(fused.grads[i], composed.grads[i], 1e-5);
  }
}

TEST_CASE("attention: a NaN in one query's scores makes that query's output NaN, and only it") {
  // q's row 3 holds a NaN: every score of query 3 is NaN, in each head; the other queries
  // are untouched (the column softmax keeps each query to itself).
  Tensor q = random_tensor({1, 6, 4}, -1, 1, 41, DType::f32);
  q.set(3 * 4 + 1, std::nan(""));
  const Tensor k = random_tensor({1, 9, 4}, -1, 1, 42, DType::f32), v = random_tensor({1, 9, 4}, -1, 1, 43, DType::f32);
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    const auto r = run_op("attention", {q, k, v}, {{"causal", causal}, {"heads", std::int64_t{2}}});
    for (std::int64_t i = 0; i < 6; ++i)
      for (std::int64_t f = 0; f < 4; ++f) {
        CAPTURE(i);
        CAPTURE(f);
        // Head 0 (features 0-1) holds the NaN (feature 1); head 1 does not see it.
        CHECK(std::isnan(r.out.at(i * 4 + f)) == (i == 3 && f < 2));
      }
  }
}

TEST_CASE("attention: scores far past exp's range in f32 still give the softmax (each query's max taken out)") {
  // Key 1's score is 200 for every query, the others at most 20: e^200 overflows a float,
  // e^(200 - max) does not. Every query puts all its weight on key 1.
  Tensor q(Shape{1, 5, 4}, DType::f32), k = random_tensor({1, 7, 4}, -1, 1, 51, DType::f32);
  const Tensor v = random_tensor({1, 7, 3}, -1, 1, 52, DType::f32);
  for (std::int64_t i = 0; i < q.numel(); ++i) q.set(i, 10.0);
  for (std::int64_t f = 0; f < 4; ++f) k.set(4 + f, 10.0);
  const auto r = run_op("attention", {q, k, v}, {});
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t f = 0; f < 3; ++f) CHECK(r.out.at(i * 3 + f) == v.at(3 + f));
}

TEST_CASE("attention: no keys at all gives zeros") {
  // k and v [2, 0, 4]: the product over 0 keys is 0; the softmax has no column to touch.
  const Tensor q = random_tensor({2, 3, 4}, -1, 1, 61, DType::f32);
  const Tensor none(Shape{2, 0, 4}, DType::f32);
  const Tensor seed = random_tensor({2, 3, 4}, -1, 1, 62, DType::f32);
  const auto r = run_op("attention", {q, none, none}, {}, &seed);
  REQUIRE(r.out.shape() == Shape{2, 3, 4});
  for (std::int64_t i = 0; i < r.out.numel(); ++i) CHECK(r.out.at(i) == 0.0);
  // The output does not depend on q: its gradient is zeros (written, not left as it was).
  REQUIRE(r.grads.size() == 3);
  REQUIRE(r.grads[0].shape() == q.shape());
  for (std::int64_t i = 0; i < r.grads[0].numel(); ++i) CHECK(r.grads[0].at(i) == 0.0);
}

TEST_CASE("attention: the vjp's scratch is a block per lane, not the probabilities again") {
  // [8, 256, 64] with 8 heads: 64 items of 256 x 256 probabilities, 16 MiB kept for the
  // vjp. A block of their gradient per item would add as much again in the vjp's wave (the
  // arena then above 2 P); one per lane (16) adds a quarter.
  Graph g;
  const NodeId x = g.add_input("x", Shape{8, 256, 64});
  const NodeId a = g.add_op("attention", {x, x, x}, {{"heads", std::int64_t{8}}}, "a");
  g.add_output(g.add_op("mean", {a}, {}, "loss"));
  Params params = g.init_params(1);
  const Plan plan(g, params, {.loss = "loss", .input_grads = {"x"}});
  const double probabilities = 64.0 * 256 * 256 * sizeof(float);
  const auto arena = static_cast<double>(plan.stats().arena_bytes);
  CAPTURE(arena);
  CHECK(arena > probabilities);
  CHECK(arena < 1.5 * probabilities);
}

TEST_CASE("attention: heads must divide the features of q, k and v") {
  Graph g;
  const NodeId q = g.add_input("q", {2, 5, 12}), v = g.add_input("v", {2, 5, 8});
  CHECK_THROWS_WITH_AS(g.add_op("attention", {q, q, v}, {{"heads", 5}}, "y"),
                       "node 'y': attention: q [2,5,12] has 12 features, not a multiple of heads=5", ShapeError);
  CHECK_THROWS_WITH_AS(g.add_op("attention", {q, q, v}, {{"heads", 3}}, "y"),
                       "node 'y': attention: v [2,5,8] has 8 features, not a multiple of heads=3", ShapeError);
  CHECK_THROWS_WITH_AS(g.add_op("attention", {q, q, v}, {{"heads", 0}}, "y"),
                       "node 'y': attention: heads=0 must be at least 1", ShapeError);
  // Features named, not numbered: one head takes any number of them, several need it known.
  const NodeId qs = g.add_input("qs", {N, 5, dim("D")});
  CHECK_NOTHROW(g.add_op("attention", {qs, qs, qs}, {}, "one"));
  CHECK_THROWS_WITH_AS(g.add_op("attention", {qs, qs, qs}, {{"heads", 2}}, "two"),
                       "node 'two': attention: q [N,5,D] has D features: heads=2 splits a known number of them",
                       ShapeError);
}

TEST_CASE("attention: causal means query i ignores later keys") {
  // With one feature and values 0, 1, 2, query 0 sees only key 0: its output is v[0] = 0.
  const Tensor q = Tensor::from({3, 1}, {1, 1, 1}, DType::f64), v = Tensor::from({3, 1}, {0, 1, 2}, DType::f64);
  const auto r = run_op("attention", {q, q, v}, {{"causal", true}});
  CHECK(r.out.at(0) == 0.0);
  CHECK(r.out.at(1) == doctest::Approx(0.5));  // equal scores: the mean of v[0], v[1]
  CHECK(r.out.at(2) == doctest::Approx(1.0));
}

TEST_CASE("layer_norm: equals (x - mean) / sqrt(var + eps) * gain + bias, gradients by the composition") {
  const std::vector<Tensor> in = {random_tensor({4, 3, 8}, -3, 3, 5), random_tensor({8}, -1.0, 1.0, 6), random_tensor({8}, -1.0, 1.0, 7)};
  const Tensor seed = random_tensor({4, 3, 8}, -1.0, 1.0, 8);
  const auto fused = run_graph(
      in, [](Graph& g, std::vector<NodeId> x) { return g.add_op("layer_norm", x, {{"eps", 1e-5}}, "y"); }, seed);
  const auto composed = run_graph(
      in,
      [](Graph& g, std::vector<NodeId> x) {
        const NodeId mean = g.add_op("reshape", {g.add_op("mean", {x[0]}, {{"axis", -1}}, "m")}, {{"shape", IntList{4, 3, 1}}}, "mk");
        const NodeId c = g.add_op("sub", {x[0], mean}, {}, "c");
        const NodeId var = g.add_op("reshape", {g.add_op("mean", {g.add_op("mul", {c, c}, {}, "c2")}, {{"axis", -1}}, "v")},
                                    {{"shape", IntList{4, 3, 1}}}, "vk");
        const NodeId sd = g.add_op("exp", {g.add_op("scale", {g.add_op("log", {g.add_op("scale", {var}, {{"offset", 1e-5}}, "ve")}, {}, "lv")},
                                                   {{"factor", 0.5}}, "hl")}, {}, "sd");
        const NodeId xh = g.add_op("div", {c, sd}, {}, "xh");
        return g.add_op("add", {g.add_op("mul", {xh, x[1]}, {}, "xg"), x[2]}, {}, "y");
      },
      seed);
  check_close(fused.out, composed.out, 1e-10);
  for (std::size_t i = 0; i < 3; ++i) check_close(fused.grads[i], composed.grads[i], 1e-10);
}

TEST_CASE("layer_norm: f32 to float rounding of f64, with each set of wanted gradients") {
  // Rows of 37 (two full sets of 16 lanes and a tail) and of 16 over two trailing axes.
  for (const auto& [x_shape, g_shape] : std::vector<std::pair<Shape, Shape>>{{{3, 37}, {37}}, {{6, 2, 8}, {2, 8}}}) {
    const Shape xs = x_shape, gs = g_shape;  // clang cannot capture structured bindings
    CAPTURE(xs);
    // Rows far from zero (the mean about 70 standard deviations out), where a one-pass
    // variance in float would lose its digits.
    const std::vector<Tensor> in = {random_tensor(xs, 39, 41, 11), random_tensor(gs, -1.0, 1.0, 12),
                                    random_tensor(gs, -1.0, 1.0, 13)};
    const Tensor seed = random_tensor(xs, -1.0, 1.0, 14);
    auto layer_norm = [](Graph& g, std::vector<NodeId> v) { return g.add_op("layer_norm", v, {}, "y"); };
    const auto exact = run_graph(in, layer_norm, seed);
    for (const std::vector<std::size_t>& wanted : std::vector<std::vector<std::size_t>>{{0, 1, 2}, {0}, {1, 2}, {1}, {2}}) {
      CAPTURE(wanted.size());
      CAPTURE(wanted.front());
      const auto f32 = run_graph(in, layer_norm, seed, DType::f32, wanted);
      check_close(f32.out, exact.out, 2e-5);
      for (std::size_t i = 0; i < wanted.size(); ++i) {
        CAPTURE(wanted[i]);
        // x's gradient scales with 1/std (about 1.7 here) and sums over the row.
        check_close(f32.grads[i], exact.grads[wanted[i]], 1e-4);
      }
    }
  }
}

TEST_CASE("layer_norm: gradients over many row blocks follow f64 and are bitwise equal at 1, 2 and 4 threads") {
  // The vjp sums gain's and bias's gradients in blocks of rows sized from the row length
  // (16384 / n rows, between 4 and 256): 700 rows of 40 make 3 blocks (the last partial),
  // 2048 rows of 128 (the transformer's) 16, 37 rows of 5000 10 blocks of 4 rows, and 3
  // rows of 5000 a single one (summed straight into the gradients).
  for (const Shape& xs : {Shape{700, 40}, Shape{16, 128, 128}, Shape{37, 5000}, Shape{3, 5000}}) {
    CAPTURE(xs);
    const std::int64_t n = xs[xs.rank() - 1];
    const std::vector<Tensor> in = {random_tensor(xs, -3, 5, 21), random_tensor({n}, -1.0, 1.0, 22),
                                    random_tensor({n}, -1.0, 1.0, 23)};
    const Tensor seed = random_tensor(xs, -1.0, 1.0, 24);
    auto layer_norm = [](Graph& g, std::vector<NodeId> v) { return g.add_op("layer_norm", v, {}, "y"); };
    // Gain's and bias's gradients written out in f64: the sums over the rows of seed * x_hat
    // and of seed.
    const std::int64_t rows = xs.numel() / n;
    Tensor dgain(Shape{n}, DType::f64), dbias(Shape{n}, DType::f64);  // zeros
    for (std::int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (std::int64_t j = 0; j < n; ++j) mean += in[0].at(r * n + j) / static_cast<double>(n);
      for (std::int64_t j = 0; j < n; ++j) var += std::pow(in[0].at(r * n + j) - mean, 2) / static_cast<double>(n);
      for (std::int64_t j = 0; j < n; ++j) {
        const double s = seed.at(r * n + j);
        dgain.set(j, dgain.at(j) + s * (in[0].at(r * n + j) - mean) / std::sqrt(var + 1e-5));
        dbias.set(j, dbias.at(j) + s);
      }
    }
    const auto exact = run_graph(in, layer_norm, seed);
    check_close(exact.grads[1], dgain, 1e-9);
    check_close(exact.grads[2], dbias, 1e-9);
    std::vector<OpRun> runs;
    for (int threads : {1, 2, 4}) {
      ThreadCount t(threads);
      runs.push_back(run_graph(in, layer_norm, seed, DType::f32));
    }
    for (std::size_t r = 1; r < runs.size(); ++r)
      for (std::size_t i = 0; i < 3; ++i) CHECK(runs[r].grads[i].to_vector() == runs[0].grads[i].to_vector());
    // Gain's and bias's gradients are sums over every row (up to 2048 of them, each term
    // up to about 2 in size): float rounding of the f64 sums, relative to the row count.
    check_close(runs[0].grads[0], exact.grads[0], 1e-4);
    check_close(runs[0].grads[1], dgain, 2e-6 * static_cast<double>(rows));
    check_close(runs[0].grads[2], dbias, 2e-6 * static_cast<double>(rows));
  }
}
