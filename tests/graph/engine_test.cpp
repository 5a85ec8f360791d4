// The generalised engine: random streams, train/eval mode, state, several outputs,
// variadic and index inputs, named dimensions, broadcasting, graphs built in any order.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include <opgraph/graph/builder.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/registry.hpp>

#include "../test_util.hpp"

using namespace opgraph;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

Tensor ramp(Shape shape, double scale = 0.01) {
  Tensor t(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.set(i, scale * static_cast<double>(i % 1013) - 3.0);
  return t;
}

/// y = dropout(x) over a [rows, 300] input, in training mode at a given step.
struct DropoutRun {
  Tensor y, dx;
};
DropoutRun run_dropout(std::int64_t rows, std::int64_t step, int threads, std::int64_t offset = 0) {
  Graph g;
  const NodeId x = g.add_input("x", {N, 300});
  g.set_loss(g.add_op("dropout", {x}, {{"p", 0.25}}, "d"));
  Params params = g.init_params(1);
  ThreadCount count(threads);
  Plan plan(g, params, {.batch = rows, .seed = 42, .input_grads = {"x"}});
  plan.set_step(step);
  plan.set_sample_offset(offset);
  const Tensor xv = ramp({rows, 300});
  plan.set_input("x", xv);
  plan.forward();
  Tensor seed({rows, 300});
  seed.fill(1.0);
  plan.backward(seed);
  return {plan.value("d").clone(), plan.grad("x").clone()};
}

}  // namespace

TEST_CASE("engine: a dropout mask is the same at 1, 2 and 4 threads, per step, and however the batch is split") {
  const DropoutRun one = run_dropout(200, 7, 1);
  for (int threads : {2, 4}) {
    const DropoutRun other = run_dropout(200, 7, threads);
    CHECK(same_bits(one.y, other.y));
    CHECK(same_bits(one.dx, other.dx));
  }
  // About a quarter dropped, the rest scaled by 1/(1-p); the vjp drops the same elements.
  std::int64_t dropped = 0;
  const Tensor x = ramp({200, 300});
  for (std::int64_t i = 0; i < one.y.numel(); ++i) {
    // The vjp's seed is all ones, so dx tells a dropped element even where x is 0 (the
    // ramp crosses 0 exactly or not depending on FMA contraction: -O1 and -O2 differ).
    if (one.dx.at(i) == 0.0) {
      ++dropped;
      CHECK(one.y.at(i) == 0.0);
    } else {
      CHECK(one.y.at(i) == doctest::Approx(x.at(i) / 0.75).epsilon(1e-6));
      CHECK(one.dx.at(i) == doctest::Approx(1 / 0.75).epsilon(1e-6));
    }
  }
  CHECK(std::abs(static_cast<double>(dropped) / 60000.0 - 0.25) < 0.01);
  // Another step draws another mask; the same step the same one.
  CHECK_FALSE(same_bits(one.y, run_dropout(200, 8, 1).y));
  CHECK(same_bits(one.y, run_dropout(200, 7, 1).y));
  // Rows 100..199 of the batch, run as a batch of their own with sample offset 100, get
  // the same mask as inside the whole batch (a data-parallel split).
  const DropoutRun half = run_dropout(100, 7, 2, 100);
  for (std::int64_t r = 0; r < 100; ++r)
    for (std::int64_t c = 0; c < 300; ++c) {
      const bool kept_whole = one.dx.at((100 + r) * 300 + c) != 0.0;
      const bool kept_half = half.dx.at(r * 300 + c) != 0.0;
      REQUIRE(kept_whole == kept_half);
    }
}

TEST_CASE("engine: evaluation mode runs dropout as the identity and batch norm on its running statistics") {
  Graph g;
  const NodeId x = g.add_input("x", {N, 3});
  const NodeId gamma = g.add_param("gamma", {3}, Init::constant(2.0));
  const NodeId beta = g.add_param("beta", {3}, Init::constant(0.5));
  const NodeId bn = g.add_op("batch_norm", {x, gamma, beta}, {{"momentum", 0.5}}, "bn");
  const NodeId d = g.add_op("dropout", {bn}, {{"p", 0.5}}, "d");
  g.set_loss(g.add_op("sum", {d}, {}, "loss"));
  g.add_output(d);
  Params params = g.init_params(1, DType::f64);
  CHECK(params.names() == std::vector<std::string>{"gamma", "beta", "bn.running_mean", "bn.running_var"});
  CHECK_FALSE(params.trainable("bn.running_mean"));
  const Tensor xv = Tensor::from({4, 3}, {1, 2, 3, 3, 2, 1, 5, 0, 1, 7, 4, 3}, DType::f64);

  // Training: batch statistics, and the running ones move halfway towards them.
  Plan train(g, params, {.batch = 4, .mode = Mode::train, .keep = {"bn"}});
  CHECK(train.training());
  train.set_input("x", xv);
  train.forward();
  const double mean0 = (1 + 3 + 5 + 7) / 4.0, var0 = ((1 - 4.0) * (1 - 4.0) + 1 + 1 + 9) / 4.0;
  CHECK(train.value("bn").at(0) == doctest::Approx(2.0 * (1 - mean0) / std::sqrt(var0 + 1e-5) + 0.5));
  CHECK(params.at("bn.running_mean").at(0) == doctest::Approx(0.5 * mean0));
  CHECK(params.at("bn.running_var").at(0) == doctest::Approx(0.5 * 1.0 + 0.5 * var0 * 4.0 / 3.0));
  // Parameters see no gradient from the state; optimizers never see the state.
  for (const auto& slot : train.parameters()) CHECK((slot.name == "gamma" || slot.name == "beta"));

  // Evaluation: the running statistics, no dropout, nothing updated.
  const Tensor rm = params.at("bn.running_mean").clone(), rv = params.at("bn.running_var").clone();
  Plan eval(g, params, {.batch = 4, .mode = Mode::eval, .backward = false});
  CHECK_FALSE(eval.training());
  eval.set_input("x", xv);
  eval.forward();
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t c = 0; c < 3; ++c)
      CHECK(eval.value("d").at(r * 3 + c) ==
            doctest::Approx(2.0 * (xv.at(r * 3 + c) - rm.at(c)) / std::sqrt(rv.at(c) + 1e-5) + 0.5));
  CHECK(same_bits(params.at("bn.running_mean"), rm));
  CHECK(same_bits(params.at("bn.running_var"), rv));
}

TEST_CASE("engine: an op with several outputs gives parts, a missing cotangent is zero") {
  Graph g;
  const NodeId x = g.add_input("x", {N, 7});
  const NodeId s = g.add_op("split", {x}, {{"sizes", IntList{3, 4}}}, "s");
  REQUIRE(g.parts(s).size() == 2);
  CHECK(g.node(g.parts(s)[0]).name == "s.0");
  CHECK(g.node(g.parts(s)[1]).shape == Shape{N, 4});
  CHECK_THROWS_WITH_AS(g.add_op("relu", {s}), "node 'relu_1': relu: input 'x' is 's', an op with 2 outputs: use one of "
                                              "them (s.0)",
                       GraphError);
  // Only the second part reaches the loss: the first part's cotangent is absent and its
  // slice of dx is zero.
  g.set_loss(g.add_op("sum", {g.parts(s)[1]}, {}, "loss"));
  Params params = g.init_params(1, DType::f64);
  Plan plan(g, params, {.batch = 2, .input_grads = {"x"}, .keep = {"s.0"}});
  const Tensor xv = ramp({2, 7}, 1.0);
  Tensor x64 = xv.to(DType::f64);
  plan.set_input("x", x64);
  plan.forward();
  CHECK(plan.value("s.0").at(3) == x64.at(7));
  CHECK(plan.loss() == doctest::Approx(x64.at(3) + x64.at(4) + x64.at(5) + x64.at(6) + x64.at(10) + x64.at(11) +
                                       x64.at(12) + x64.at(13)));
  plan.backward();
  const Tensor dx = plan.grad("x");
  for (std::int64_t i = 0; i < 14; ++i) CHECK(dx.at(i) == (i % 7 >= 3 ? 1.0 : 0.0));
  CHECK_THROWS_WITH_AS(plan.value("s"), "'s' has 2 outputs: read one of them ('s.0', ...)", GraphError);
}

TEST_CASE("engine: variadic inputs, index inputs and named dimensions") {
  Graph g;
  const NodeId a = g.add_input("a", {N, 2});
  CHECK_THROWS_WITH_AS(g.add_op("concat", {}, {}, "c"), "node 'c': concat: expects at least 1 input (x...), got 0",
                       GraphError);
  const NodeId tokens = g.add_input("tokens", {N, dim("T")}, {}, true);
  CHECK(g.node(tokens).shape.str() == "[N,T]");
  const NodeId table = g.add_param("E", {10, 4});
  CHECK_THROWS_WITH_AS(g.add_op("embedding", {a, table}, {}, "bad"),
                       "node 'bad': embedding: input 'ids' takes indices (i64), but 'a' holds real values: declare it "
                       "with i64 (input a [N,2] i64)",
                       GraphError);
  CHECK_THROWS_WITH_AS(g.add_op("relu", {tokens}, {}, "bad"),
                       "node 'bad': relu: input 'x' takes real values, but 'tokens' holds indices (i64)", GraphError);
  const NodeId e = g.add_op("embedding", {tokens, table}, {}, "e");
  CHECK(g.node(e).shape.str() == "[N,T,4]");
  const NodeId joined = g.add_op("concat", {e, e, e}, {}, "joined");
  CHECK(g.node(joined).shape.str() == "[N,T,12]");
  g.add_output(joined);
  Params params = g.init_params(3);
  CHECK_THROWS_WITH_AS(Plan(g, params, {.batch = 2, .backward = false}),
                       "input 'tokens': shape [N,T] has the dimension T, which the plan does not bind: give its size in "
                       "PlanOptions::dims",
                       ShapeError);
  Plan plan(g, params, {.batch = 2, .dims = {{"T", 3}}, .backward = false});
  CHECK(plan.shape(joined) == Shape{2, 3, 12});
  CHECK_THROWS_WITH_AS(plan.set_input("tokens", Tensor({2, 3})),
                       "input 'tokens': expected i64 values (indices), got f32", GraphError);
  Tensor ids = Tensor::from({2, 3}, {0, 9, 3, 3, 1, 2}, DType::i64);
  plan.set_input("tokens", ids);
  plan.forward();
  const Tensor out = plan.value("joined");
  for (std::int64_t c = 0; c < 4; ++c) {
    CHECK(out.at(1 * 12 + c) == params.at("E").at(9 * 4 + c));  // position 1 is id 9
    CHECK(out.at(1 * 12 + 8 + c) == params.at("E").at(9 * 4 + c));
  }
  // An id outside the table is an error naming the node and the value, never a wild read.
  ids.set(4, 10);
  CHECK_THROWS_WITH_AS(plan.forward(), "node 'e': embedding: id 10 at position 4 is outside the table's 10 rows",
                       DataError);
}

TEST_CASE("engine: elementwise ops broadcast like NumPy") {
  Graph g;
  const NodeId x = g.add_input("x", {N, 4});
  const NodeId m = g.add_op("mean", {x}, {{"axis", -1}}, "m");
  CHECK(g.node(m).shape == Shape{N});
  // x - mean(x, axis=-1) needs the mean as a column: [N] against [N,4] aligns N with 4.
  CHECK_THROWS_WITH_AS(g.add_op("sub", {x, m}), "node 'sub_1': sub: shapes [N,4] and [N] do not broadcast: dimension -1 "
                                                "is 4 against N (NumPy's rule: sizes aligned on the right must be equal "
                                                "or 1)",
                       ShapeError);
  const NodeId col = g.add_op("reshape", {m}, {{"shape", IntList{-1, 1}}}, "col");
  const NodeId centred = g.add_op("sub", {x, col}, {}, "centred");
  CHECK(g.node(centred).shape == Shape{N, 4});
  const NodeId scaled = g.add_op("mul", {centred, g.add_param("s", {4}, Init::constant(2.0))}, {}, "scaled");
  g.set_loss(g.add_op("sum", {g.add_op("mul", {scaled, scaled})}, {}, "loss"));
  g.add_output(centred);
  Params params = g.init_params(1, DType::f64);
  Plan plan(g, params, {.batch = 2, .input_grads = {"x"}});
  const Tensor xv = Tensor::from({2, 4}, {1, 2, 3, 6, -1, 0, 1, 4}, DType::f64);
  plan.set_input("x", xv);
  plan.forward();
  const double expect[] = {-2, -1, 0, 3, -2, -1, 0, 3};
  for (int i = 0; i < 8; ++i) CHECK(plan.value("centred").at(i) == expect[i]);
  CHECK(plan.loss() == doctest::Approx(4.0 * 2 * (4 + 1 + 0 + 9)));
  plan.backward();
  // d/ds of sum((c*s)^2) = 2 s sum_rows c^2 per column.
  const Tensor ds = plan.grad("s");
  for (int c = 0; c < 4; ++c) CHECK(ds.at(c) == doctest::Approx(2 * 2.0 * 2 * expect[c] * expect[c]));
}

TEST_CASE("engine: a graph built in any order gives the same graph and the same plan") {
  auto declare = [](GraphBuilder& b, bool reverse) {
    std::vector<std::function<void()>> steps = {
        [&] { b.input("x", {N, 3}); },
        [&] { b.input("y", {N}); },
        [&] { b.param("W1", {3, 5}); },
        [&] { b.param("W2", {5, 2}); },
        [&] { b.op("h", "tanh", {"z1"}); },
        [&] { b.op("z1", "matmul", {"x", "W1"}); },
        [&] { b.op("branch", "relu", {"z1"}); },
        [&] { b.op("both", "add", {"h", "branch"}); },
        [&] { b.op("logits", "matmul", {"both", "W2"}); },
        [&] { b.op("loss", "softmax_cross_entropy", {"logits", "y"}); },
    };
    if (reverse) std::reverse(steps.begin(), steps.end());
    for (auto& s : steps) s();
    b.loss("loss");
  };
  GraphBuilder forward_order, reverse_order;
  declare(forward_order, false);
  declare(reverse_order, true);
  const Graph a = forward_order.build(), b = reverse_order.build();
  REQUIRE(a.size() == b.size());
  for (NodeId id = 0; id < a.size(); ++id) CHECK(a.node(id).name == b.node(id).name);
  Params pa = a.init_params(5), pb = b.init_params(5);
  Plan plan_a(a, pa, {.batch = 4}), plan_b(b, pb, {.batch = 4});
  CHECK(plan_a.forward_order() == plan_b.forward_order());
  CHECK(plan_a.backward_order() == plan_b.backward_order());
  CHECK(plan_a.stats().arena_bytes == plan_b.stats().arena_bytes);
  const Tensor x = ramp({4, 3}), y = Tensor::from({4}, {0, 1, 1, 0});
  for (Plan* p : {&plan_a, &plan_b}) {
    p->set_input("x", x);
    p->set_input("y", y);
    p->forward();
    p->backward();
  }
  CHECK(plan_a.loss() == plan_b.loss());
  CHECK(same_bits(plan_a.grad("W1"), plan_b.grad("W1")));
}

TEST_CASE("engine: a cycle is reported with its path, an unknown name with a suggestion") {
  GraphBuilder b;
  b.input("x", {N, 2});
  b.op("a", "relu", {"c"});
  b.op("b", "tanh", {"a"});
  b.op("c", "add", {"b", "x"});
  CHECK_THROWS_WITH_AS(b.build(), "graph: cycle: a -> b -> c -> a (a node cannot depend on itself)", GraphError);
  GraphBuilder typo;
  typo.input("x", {N, 2});
  typo.op("h", "relu", {"xx"});
  CHECK_THROWS_WITH_AS(typo.build(), "node 'h': input 'xx' names no node (did you mean 'x'?)", GraphError);
  GraphBuilder twice;
  twice.input("x", {N, 2});
  twice.op("x", "relu", {"x"});
  CHECK_THROWS_WITH_AS(twice.build(), "node 'x': the name 'x' is declared twice", GraphError);
  // A part of a multi-output op by its name.
  GraphBuilder parts;
  parts.op("r", "relu", {"s.1"});
  parts.op("s", "split", {"x"}, {{"parts", 2}});
  parts.input("x", {N, 4});
  const Graph g = parts.build();
  CHECK(g.node(g.at("r")).shape == Shape{N, 2});
}

TEST_CASE("engine: a parameter that cannot reach the loss is warned about") {
  Graph g;
  const NodeId x = g.add_input("x", {N, 2});
  const NodeId y = g.add_input("y", {N});
  const NodeId w = g.add_param("W", {2, 2});
  const NodeId unused = g.add_param("V", {2, 2});
  g.add_output(g.add_op("matmul", {x, unused}, {}, "side"));
  g.set_loss(g.add_op("softmax_cross_entropy", {g.add_op("matmul", {x, w}), y}, {}, "loss"));
  CHECK(g.unreachable_params() == std::vector<std::string>{"V"});
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 2});
  CHECK(plan.warnings() == std::vector<std::string>{"parameter 'V' does not reach the loss 'loss': it will not train"});
  Plan inference(g, params, {.batch = 2, .backward = false});
  CHECK(inference.warnings().empty());
}

TEST_CASE("engine: embedding's table gradient sums repeated ids bitwise the same at 1, 2 and 4 threads") {
  // 4096 positions drawing from 7 rows: every row is hit hundreds of times, so the order of
  // the scatter-add would show in the last bits if it followed the threads.
  Graph g;
  const NodeId ids = g.add_input("ids", {N, 64}, {}, true);
  const NodeId table = g.add_param("table", {7, 33}, Init::normal(0.0, 1.0));
  const NodeId e = g.add_op("embedding", {ids, table}, {}, "e");
  g.set_loss(g.add_op("sum", {g.add_op("mul", {e, e}, {}, "sq")}, {}, "loss"));
  Tensor values({64, 64}, DType::i64);
  Rng rng(11);
  std::vector<double> counts(7, 0.0);
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    const auto id = static_cast<std::int64_t>(rng.below(7));
    values.set(i, static_cast<double>(id));
    counts[static_cast<std::size_t>(id)] += 1;
  }
  std::vector<std::vector<double>> grads;
  for (int threads : {1, 2, 4}) {
    ThreadCount t(threads);
    Params params = g.init_params(5, DType::f32);
    Plan plan(g, params, {.batch = 64});
    plan.set_input("ids", values);
    plan.forward();
    plan.backward();
    grads.push_back(plan.grad("table").to_vector());
    // d/dE sum(E[id]^2) = 2 E[row] x (times the row is used).
    CHECK(grads.back()[33 * 3 + 5] == doctest::Approx(2 * params.at("table").at(33 * 3 + 5) * counts[3]).epsilon(1e-5));
  }
  CHECK(grads[1] == grads[0]);
  CHECK(grads[2] == grads[0]);
}
