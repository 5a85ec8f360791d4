// Plans: call order errors, fan-out, memory reuse and limits, thread-count independence.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/plan/bind.hpp>
#include <opgraph/graph/plan/passes.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/size.hpp>
#include <opgraph/graph/registry.hpp>

#include "../test_util.hpp"

using namespace opgraph;

namespace {

Graph mnist_net(bool sigmoid = true) {
  Graph g;
  auto x = nn::input(g, "x", {N, 784});
  auto y = nn::input(g, "y", {N});
  auto z = nn::dense(x, 256, "hidden", Init::normal(0, 0.01));
  auto h = sigmoid ? nn::logistic(z) : nn::relu(z);
  auto logits = nn::dense(h, 10, "out", Init::normal(0, 0.01)).named("logits");
  g.set_loss(nn::softmax_cross_entropy(logits, y).named("loss"));
  g.add_output(logits);
  return g;
}

// An op without a vjp, to show what happens when one stands on the path to the loss.
OPGRAPH_OP(test_no_vjp)
    .doc("identity without a vjp (test only)")
    .input("x")
    .shape(same_shape_as(0))
    .forward([](auto& k) { map(k.in(0), k.out(), [](auto v) { return v; }); });

}  // namespace

TEST_CASE("plan: calls in the wrong order or with the wrong data give clear errors") {
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto h = nn::relu(nn::dense(x, 3, "h")).named("act");
  g.set_loss(h);
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 4});
  CHECK_THROWS_WITH_AS(plan.forward(), "forward: input 'x' has no value: call set_input(\"x\", ...) first", GraphError);
  CHECK_THROWS_WITH_AS(plan.set_input("x", Tensor({3, 2})), "input 'x': expected shape [4,2] (declared [N,2]), got [3,2]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(plan.set_input("x", Tensor({4, 2}, DType::f64)), "input 'x': expected f32 values, got f64",
                       GraphError);
  CHECK_THROWS_WITH_AS(plan.set_input("xx", Tensor({4, 2})), "no input 'xx' (did you mean 'x'?)", GraphError);
  plan.set_input("x", Tensor({4, 2}));
  CHECK_THROWS_WITH_AS(plan.backward(), "backward: no forward pass to differentiate: call forward() first", GraphError);
  plan.forward();
  CHECK_THROWS_WITH_AS(plan.backward(),
                       "backward: loss 'act' is not a scalar (shape [4,3]): pass a cotangent of that shape to "
                       "backward(seed)",
                       GraphError);
  CHECK_THROWS_WITH_AS(plan.value("h"),
                       "value of 'h' is not kept after forward (its buffer is reused): list it in PlanOptions::keep",
                       GraphError);
  CHECK_THROWS_WITH_AS(plan.grad("act"),
                       "no gradient for 'act': gradients are kept for parameters and for inputs listed in "
                       "PlanOptions::input_grads (or for every node with PlanOptions::keep_grads)",
                       GraphError);
  plan.backward(Tensor::from({4, 3}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));  // an explicit cotangent works

  Plan inference(g, params, {.batch = 4, .backward = false});
  inference.set_input("x", Tensor({4, 2}));
  inference.forward();
  CHECK_THROWS_WITH_AS(inference.backward(),
                       "backward: this plan was compiled without a loss: set the graph's loss or PlanOptions::loss",
                       GraphError);
  CHECK_THROWS_WITH_AS(Plan(g, params, {.batch = 0}), "plan: batch must be at least 1, got 0", GraphError);
  Params other(DType::f32);
  CHECK_THROWS_WITH_AS(Plan(g, other, {}),
                       "plan: no value for parameter 'h.W': initialise the parameters from this graph", GraphError);
}

TEST_CASE("plan: an op without a vjp on the path to the loss is refused at compile time") {
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto w = nn::param(g, "w", {2, 2});
  const int line = __LINE__ + 1;
  auto y = nn::op("test_no_vjp", {nn::matmul(x, w)});
  g.set_loss(nn::sum(y));
  Params params = g.init_params(1);
  CHECK_THROWS_WITH_AS(
      Plan(g, params, {.batch = 2}).stats(),
      fmt::format("plan_test.cpp:{}: op 'test_no_vjp' has no vjp: cannot differentiate through it", line).c_str(),
      GraphError);
  Plan inference(g, params, {.batch = 2, .backward = false});  // fine without gradients
  CHECK(inference.stats().backward_steps == 0);
}

TEST_CASE("plan: gradients of a value that fans out are summed") {
  // y = sum(x*x + x + relu(x)) over x > 0: dy/dx = 2x + 2
  Graph g;
  auto x = nn::input(g, "x", {N, 3});
  g.set_loss(nn::sum(x * x + x + nn::relu(x)));
  Params params(DType::f64);
  Plan plan(g, params, {.batch = 2, .input_grads = {"x"}});
  const Tensor xv = Tensor::from({2, 3}, {0.5, 1, 2, 3, 4, 5}, DType::f64);
  plan.set_input("x", xv);
  plan.forward();
  plan.backward();
  const Tensor dx = plan.grad("x");
  for (int i = 0; i < 6; ++i) CHECK(dx.at(i) == 2 * xv.at(i) + 2);
  CHECK(plan.loss() == doctest::Approx(0.25 + 1 + 4 + 9 + 16 + 25 + 2 * 15.5));
}

TEST_CASE("plan: a parameter off the path to the loss gets a zero gradient") {
  Graph g;
  auto x = nn::input(g, "x", {N, 2});
  auto unused = nn::dense(x, 2, "unused").named("side");
  g.add_output(unused);
  g.set_loss(nn::sum(nn::dense(x, 1, "used")));
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 3});
  plan.set_input("x", Tensor::from({3, 2}, {1, 2, 3, 4, 5, 6}));
  plan.forward();
  plan.backward();
  for (double v : plan.grad("unused.W").to_vector()) CHECK(v == 0.0);
  CHECK(plan.grad("used.b").at(0) == 3.0);  // d(sum)/db = number of rows
}

TEST_CASE("plan: buffers whose values are dead are reused") {
  Graph g;
  auto x = nn::input(g, "x", {N, 512});
  nn::Value h = x;
  for (int i = 0; i < 6; ++i) h = nn::relu(nn::dense(h, 512, fmt::format("l{}", i)));
  g.add_output(h);
  g.set_loss(nn::sum(h));
  Params params = g.init_params(1);
  Plan inference(g, params, {.batch = 100, .backward = false});
  // Eighteen [100,512] values and the scalar sum (one 64-byte slot); two live at a time.
  const std::size_t value = 100 * 512 * 4;
  CHECK(inference.stats().unshared_bytes == 18 * value + 64);
  CHECK(inference.stats().arena_bytes == 2 * value);
  // Training keeps the parameter gradients and each relu output (read by its own vjp and
  // the next matmul's); pre-activations die as soon as the next op has read them. At the
  // peak (the last relu's vjp) six saved outputs and two gradients are live.
  Plan training(g, params, {.batch = 100});
  const std::size_t param_bytes = 6 * (512 * 512 + 512) * 4;
  CHECK(training.stats().param_bytes == param_bytes);
  CHECK(training.stats().arena_bytes == param_bytes + 8 * value + 64);
  CHECK(training.stats().arena_bytes < training.stats().unshared_bytes);
}

namespace {

/// The greedy placement as its rule states it: largest first (ties in their order), each at
/// the lowest offset past the buffers already placed that are alive with it, taken in order
/// of (offset, end). The arena size.
std::size_t greedy_by_rule(std::vector<planning::Buffer>& buffers) {
  std::vector<std::size_t> order(buffers.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<std::size_t> placed;
  std::size_t total = 0;
  for (std::size_t i : order) {
    planning::Buffer& b = buffers[i];
    if (b.bytes == 0) continue;
    std::vector<std::pair<std::size_t, std::size_t>> busy;
    for (std::size_t j : placed)
      if (buffers[j].first <= b.last && b.first <= buffers[j].last)
        busy.emplace_back(buffers[j].offset, buffers[j].offset + buffers[j].bytes);
    std::sort(busy.begin(), busy.end());
    std::size_t offset = 0;
    for (auto [begin, end] : busy) {
      if (offset + b.bytes <= begin) break;
      offset = std::max(offset, end);
    }
    b.offset = offset;
    total = std::max(total, offset + b.bytes);
    placed.push_back(i);
  }
  return total;
}

/// A whole number in [lo, hi].
int pick(Rng& rng, int lo, int hi) { return std::min(hi, lo + static_cast<int>(rng.uniform() * (hi - lo + 1))); }

/// `count` buffers of a few sizes (many equal: ties) alive over random ranges of `waves` waves.
std::vector<planning::Buffer> random_buffers(Rng& rng, int count, int waves) {
  std::vector<planning::Buffer> buffers(static_cast<std::size_t>(count));
  for (auto& b : buffers) {
    b.bytes = 64 * static_cast<std::size_t>(pick(rng, 0, 6)) * (rng.uniform(0, 1) < 0.2 ? 16 : 1);
    b.first = pick(rng, 0, waves - 1);
    b.last = std::min(waves - 1, b.first + pick(rng, 0, waves / 3));
  }
  return buffers;
}

/// Whether no two buffers alive in the same wave share a byte, and every one lies within `arena`.
bool disjoint(const std::vector<planning::Buffer>& buffers, std::size_t arena) {
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const auto& a = buffers[i];
    if (a.bytes > 0 && a.offset + a.bytes > arena) return false;
    for (std::size_t j = i + 1; j < buffers.size(); ++j) {
      const auto& b = buffers[j];
      if (a.bytes == 0 || b.bytes == 0 || a.first > b.last || b.first > a.last) continue;
      if (a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes) return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("plan: the greedy placement puts each buffer where its rule says, and the timeline's never overlap") {
  Rng rng(7);
  // Up to 4 096 buffers: the greedy, every offset the rule's (it walks the placed buffers in
  // (offset, end) order instead of sorting those alive with each one).
  for (int trial = 0; trial < 40; ++trial) {
    const int count = trial < 30 ? pick(rng, 1, 300) : 2000 + 50 * trial;
    std::vector<planning::Buffer> buffers = random_buffers(rng, count, trial < 20 ? 12 : 200);
    std::vector<planning::Buffer> expected = buffers;
    const std::size_t arena = planning::place_buffers(buffers);
    CAPTURE(trial);
    CHECK(arena == greedy_by_rule(expected));
    bool same = true;
    for (std::size_t i = 0; i < buffers.size(); ++i) same = same && buffers[i].offset == expected[i].offset;
    CHECK(same);
    CHECK(disjoint(buffers, arena));
  }
  // Past 4 096 buffers, the timeline: no two alive at once overlap.
  std::vector<planning::Buffer> many = random_buffers(rng, 5000, 400);
  const std::size_t arena = planning::place_buffers(many);
  CHECK(arena > 0);
  CHECK(disjoint(many, arena));
}

TEST_CASE("plan: elementwise ops write over their input when nothing else needs it") {
  // conv-style chain: matmul -> bias_add -> relu, twice, then a sum. In place: each
  // bias_add over its matmul, each relu over its bias_add (forward, 3 values), each relu's
  // and bias_add's vjp over their output's gradient (backward, 3 gradients).
  Graph g;
  auto x = nn::input(g, "x", {N, 64});
  auto h = nn::relu(nn::dense(x, 64, "l0")).named("h");
  auto out = nn::dense(h, 32, "l1").named("out");
  g.set_loss(nn::sum(out).named("loss"));
  g.add_output(out);
  Params params = g.init_params(3);
  Tensor xv({5, 64});
  for (std::int64_t i = 0; i < xv.numel(); ++i) xv.set(i, std::sin(0.37 * static_cast<double>(i)));
  Plan plan(g, params, {.batch = 5});
  CHECK(plan.stats().in_place == 6);
  // Nothing shared when every value and gradient stays readable: the same bits.
  Plan apart(g, params, {.batch = 5, .keep_all = true, .keep_grads = true});
  CHECK(apart.stats().in_place == 0);
  CHECK(plan.stats().arena_bytes < apart.stats().arena_bytes);
  for (Plan* p : {&plan, &apart}) {
    p->set_input("x", xv);
    p->forward();
    p->backward();
  }
  CHECK(plan.loss() == apart.loss());
  for (const char* name : {"l0.W", "l0.b", "l1.W", "l1.b"})
    CHECK(plan.grad(name).to_vector() == apart.grad(name).to_vector());
  CHECK(plan.value("out").to_vector() == apart.value("out").to_vector());
}

TEST_CASE("plan: reshape and flatten copy nothing when their input dies there") {
  // x -> matmul -> reshape [N,4,8] -> transpose -> flatten -> matmul -> sum: the reshape
  // takes the first matmul's output as it is and the flatten the transpose's, forward and
  // backward (4 buffers shared); both kernels then skip their copy. The same bits as a
  // plan that keeps every value and gradient apart.
  Graph g;
  auto x = nn::input(g, "x", {N, 16});
  auto a = nn::matmul(x, nn::param(g, "W1", {16, 32}));
  auto r = nn::op("reshape", {a}, {{"shape", IntList{0, 4, 8}}});
  auto t = nn::op("transpose", {r}, {{"perm", IntList{0, 2, 1}}});
  auto f = nn::op("flatten", {t}).named("f");
  auto out = nn::matmul(f, nn::param(g, "W2", {32, 3})).named("out");
  g.set_loss(nn::sum(out * out).named("loss"));
  Params params = g.init_params(4);
  Tensor xv({6, 16});
  for (std::int64_t i = 0; i < xv.numel(); ++i) xv.set(i, std::cos(0.21 * static_cast<double>(i)));
  Plan plan(g, params, {.batch = 6});
  CHECK(plan.stats().in_place == 4);
  Plan apart(g, params, {.batch = 6, .keep_all = true, .keep_grads = true});
  CHECK(apart.stats().in_place == 0);
  for (Plan* p : {&plan, &apart}) {
    p->set_input("x", xv);
    p->forward();
    p->backward();
  }
  CHECK(plan.loss() == apart.loss());
  CHECK(plan.grad("W1").to_vector() == apart.grad("W1").to_vector());
  CHECK(plan.grad("W2").to_vector() == apart.grad("W2").to_vector());
}

TEST_CASE("plan: a value another node still reads is not written over") {
  // h feeds relu and scale in the same wave, and k is kept: neither may be overwritten.
  Graph g;
  auto x = nn::input(g, "x", {N, 4});
  auto w = nn::param(g, "w", {4}, Init::zeros());
  auto h = nn::bias_add(x, w).named("h");
  auto k = nn::scale(h, -1.0).named("k");
  auto y = (nn::relu(h) + nn::relu(k)).named("y");  // |h|
  g.set_loss(nn::sum(nn::scale(y, 2.0)).named("loss"));
  g.add_output(y);
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 2, .keep = {"k"}});
  plan.set_input("x", Tensor::from({2, 4}, {1, -2, 3, -4, -5, 6, -7, 8}));
  plan.forward();
  CHECK(plan.value("k").to_vector() == std::vector<double>{-1, 2, -3, 4, 5, -6, 7, -8});
  CHECK(plan.value("y").to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(plan.loss() == 72.0);
  plan.backward();
  // d loss / d w_j = 2 * sum over rows of sign(h)
  CHECK(plan.grad("w").to_vector() == std::vector<double>{0, 0, 0, 0});
  plan.set_input("x", Tensor::from({2, 4}, {1, 2, 3, -4, 5, -6, 7, -8}));
  plan.forward();
  plan.backward();
  CHECK(plan.grad("w").to_vector() == std::vector<double>{4, 0, 4, -4});
}

TEST_CASE("plan: a parameter's gradient is never written over, and outlives the next forward") {
  // relu(w)'s vjp writes w's gradient first; w's gradient must stay its own buffer, alive
  // from the start, so the next forward's values cannot land on it.
  Graph g;
  auto x = nn::input(g, "x", {N, 16});
  auto w = nn::param(g, "w", {16}, Init::normal(0, 1));
  auto z = (x + nn::relu(w)).named("z");
  g.set_loss(nn::sum(z * z).named("loss"));
  Params params = g.init_params(5);
  Plan plan(g, params, {.batch = 8});
  Tensor a({8, 16}), b({8, 16});
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    a.set(i, std::cos(0.3 * static_cast<double>(i)));
    b.set(i, 100.0 + static_cast<double>(i));
  }
  plan.set_input("x", a);
  plan.forward();
  plan.backward();
  const std::vector<double> grad = plan.grad("w").to_vector();
  for (std::int64_t j = 0; j < 16; ++j) {
    double expect = 0.0;
    const double rw = std::max(params.at("w").at(j), 0.0);
    for (std::int64_t r = 0; r < 8; ++r) expect += rw > 0 ? 2 * (a.at(r * 16 + j) + rw) : 0.0;
    CHECK(grad[static_cast<std::size_t>(j)] == doctest::Approx(expect).epsilon(1e-5));
  }
  plan.set_input("x", b);
  plan.forward();
  CHECK(plan.grad("w").to_vector() == grad);
}

TEST_CASE("plan: a plan over the memory limit is refused before allocating") {
  Graph g;
  auto x = nn::input(g, "x", {N, 1000});
  g.add_output(nn::relu(x));
  Params params;
  CHECK_THROWS_WITH_AS(Plan(g, params, {.batch = 1000, .backward = false, .memory_limit = 1 << 20}),
                       "plan: needs 3.8 MiB for batch 1000, above the memory limit of 1.0 MiB: lower the batch size or "
                       "raise the limit",
                       GraphError);
}

TEST_CASE("plan: the process's memory budget refuses a plan, a tensor and a parameter before allocating") {
  const std::size_t saved = memory_limit();
  const std::size_t in_use = memory_in_use();
  set_memory_limit(in_use + (std::size_t{1} << 20));
  Graph g;
  auto x = nn::input(g, "x", {N, 1000});
  g.add_output(nn::relu(x));
  Params params;
  CHECK_THROWS_WITH_AS(Plan(g, params, {.batch = 1000, .backward = false}),
                       fmt::format("plan for batch 1000: needs 3.8 MiB, above the memory limit of {} ({} already in "
                                   "use): use less data, a smaller batch or model, or raise the limit (--memory-limit)",
                                   human_bytes(static_cast<double>(in_use + (1 << 20))), human_bytes(static_cast<double>(in_use)))
                           .c_str(),
                       ResourceError);
  CHECK_THROWS_AS(Tensor({1000, 1000}), ResourceError);
  CHECK(memory_in_use() == in_use);  // nothing was kept by the refused requests
  {
    const Tensor small({100, 100});
    CHECK(memory_in_use() == in_use + 40000);
  }
  CHECK(memory_in_use() == in_use);
  set_memory_limit(saved);
}

TEST_CASE("plan: forward and backward are bitwise identical with 1 and 2 threads") {
  for (bool sigmoid : {true, false}) {
    Graph g = mnist_net(sigmoid);
    const Tensor x = test::random_tensor({700, 784}, 0.0, 1.0, 9, DType::f32);
    const Tensor y = test::labels(700, 10, 10, DType::f32);
    std::vector<std::vector<Tensor>> results;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Params params = g.init_params(7);
      Plan plan(g, params, {.batch = 700});
      plan.set_input("x", x);
      plan.set_input("y", y);
      plan.forward();
      plan.backward();
      std::vector<Tensor> r = {plan.value("loss").clone(), plan.value("logits").clone()};
      for (const auto& slot : plan.parameters()) r.push_back(slot.grad.clone());
      results.push_back(std::move(r));
    }
    set_num_threads(0);
    REQUIRE(results[0].size() == 6);
    for (std::size_t i = 0; i < results[0].size(); ++i) {
      CAPTURE(i);
      CHECK(results[0][i].bitwise_equal(results[1][i]));
    }
  }
}

TEST_CASE("plan: independent branches share a wave and run at once, with the same bits and right gradients") {
  // Four towers on one input, added back: x fans out four ways into one backward wave.
  Graph g;
  auto x = nn::input(g, "x", {N, 64});
  auto t = nn::input(g, "t", {N, 64});
  std::vector<nn::Value> towers;
  for (int k = 0; k < 4; ++k)
    towers.push_back(nn::dense(nn::tanh(nn::dense(x, 64, fmt::format("t{}a", k))), 64, fmt::format("t{}b", k)));
  g.set_loss(nn::mse(towers[0] + towers[1] + towers[2] + towers[3], t));
  const Tensor xv = test::random_tensor({128, 64}, -1.0, 1.0, 31);
  const Tensor tv = test::random_tensor({128, 64}, -1.0, 1.0, 32);

  std::vector<std::vector<Tensor>> results;
  Params params = g.init_params(5, DType::f64);
  for (int threads : {1, 2}) {
    ThreadCount count(threads);
    Plan plan(g, params, {.batch = 128, .input_grads = {"x"}});
    // 4 x (matmul, bias_add, tanh, matmul, bias_add) forward in 5 waves of 4, then 3 adds and the loss.
    CHECK(plan.stats().forward_steps == 24);
    CHECK(plan.stats().forward_waves == 9);
    CHECK(plan.stats().concurrent_waves >= 4);  // the towers' matmuls, both passes
    plan.set_input("x", xv);
    plan.set_input("t", tv);
    plan.forward();
    plan.backward();
    std::vector<Tensor> r = {plan.value(g.node(*g.loss()).name).clone(), plan.grad("x").clone()};
    for (const auto& slot : plan.parameters()) r.push_back(slot.grad.clone());
    results.push_back(std::move(r));
  }
  for (std::size_t i = 0; i < results[0].size(); ++i) {
    CAPTURE(i);
    CHECK(results[0][i].bitwise_equal(results[1][i]));
  }
  // dx (summed from four vjps of one wave) against central differences along random directions.
  Plan probe(g, params, {.batch = 128, .backward = false});
  probe.set_input("t", tv);
  auto loss_at = [&](const Tensor& xs) {
    probe.set_input("x", xs);
    probe.forward();
    return probe.loss();
  };
  const Tensor& dx = results[0][1];
  for (std::uint64_t seed : {41, 42, 43}) {
    const Tensor d = test::random_tensor({128, 64}, -1.0, 1.0, seed);
    double analytic = 0.0;
    for (std::int64_t i = 0; i < d.numel(); ++i) analytic += dx.at(i) * d.at(i);
    const double h = 1e-5;
    Tensor plus = xv.clone(), minus = xv.clone();
    for (std::int64_t i = 0; i < d.numel(); ++i) {
      plus.set(i, xv.at(i) + h * d.at(i));
      minus.set(i, xv.at(i) - h * d.at(i));
    }
    const double numeric = (loss_at(plus) - loss_at(minus)) / (2 * h);
    CAPTURE(seed);
    CHECK(std::abs(analytic - numeric) <= 1e-6 * std::max(1.0, std::abs(numeric)));
  }
}

TEST_CASE("plan: f32 and f64 plans agree") {
  Graph g = mnist_net();
  const Tensor x = test::random_tensor({50, 784}, 0.0, 1.0, 3);
  const Tensor y = test::labels(50, 10, 4);
  Params p64 = g.init_params(5, DType::f64);
  Params p32 = g.init_params(5, DType::f32);
  Plan a(g, p64, {.batch = 50}), b(g, p32, {.batch = 50});
  a.set_input("x", x);
  a.set_input("y", y);
  const Tensor x32 = x.to(DType::f32), y32 = y.to(DType::f32);
  b.set_input("x", x32);
  b.set_input("y", y32);
  a.forward();
  b.forward();
  a.backward();
  b.backward();
  CHECK(b.loss() == doctest::Approx(a.loss()).epsilon(1e-6));
  const Tensor g64 = a.grad("hidden.W"), g32 = b.grad("hidden.W");
  double worst = 0, scale = 0;
  for (std::int64_t i = 0; i < g64.numel(); ++i) {
    worst = test::worse(worst, std::abs(g64.at(i) - g32.at(i)));
    scale = std::max(scale, std::abs(g64.at(i)));
  }
  CHECK(worst <= 1e-4 * scale);
}

TEST_CASE("plan: values listed in keep stay readable, inputs and parameters always are") {
  Graph g = mnist_net();
  Params params = g.init_params(1);
  Plan plan(g, params, {.batch = 2, .keep = {"hidden"}});
  const Tensor x({2, 784}), y = Tensor::from({2}, {3, 7});
  plan.set_input("x", x);
  plan.set_input("y", y);
  plan.forward();
  for (double v : plan.value("hidden").to_vector()) CHECK(v == params.at("hidden.b").at(0));
  CHECK(plan.value("y").at(1) == 7.0);
  CHECK(plan.value("out.W").bitwise_equal(params.at("out.W")));
  // The loss agrees with the kept logits: mean of logsumexp(z) - z[label].
  const Tensor z = plan.value("logits");
  double expected = 0;
  for (int r = 0; r < 2; ++r) {
    double lse = 0;
    for (int c = 0; c < 10; ++c) lse += std::exp(z.at({r, c}));
    expected += std::log(lse) - z.at({r, static_cast<std::int64_t>(y.at(r))});
  }
  CHECK(plan.loss() == doctest::Approx(expected / 2).epsilon(1e-6));
}

TEST_CASE("plan: loss() reads the scalar loss of an f32 or f64 plan, and says when there is none yet") {
  for (const DType dtype : {DType::f32, DType::f64}) {
    Graph g;
    auto x = nn::input(g, "x", {N, 2});
    g.set_loss(nn::sum(x * x).named("total"));
    Params params(dtype);
    Plan plan(g, params, {.batch = 2});
    plan.set_input("x", Tensor::from({2, 2}, {0.5, -1.5, 2, 3}, dtype));
    CHECK_THROWS_WITH_AS(plan.loss(), "value of 'total': call forward() first", GraphError);
    plan.forward();
    CHECK(plan.loss() == 0.25 + 2.25 + 4 + 9);
    CHECK(plan.loss() == plan.value("total").item());
  }
  // A loss of shape [1] (not a scalar) is read as value() reads it.
  Graph g;
  auto x = nn::input(g, "x", {N, 1});
  g.set_loss(nn::op("reshape", {nn::sum(x)}, {{"shape", IntList{1}}}).named("one"));
  Params params(DType::f32);
  Plan plan(g, params, {.batch = 3});
  plan.set_input("x", Tensor::from({3, 1}, {1, 2, 4}, DType::f32));
  plan.forward();
  CHECK(plan.loss() == 7.0);
}

TEST_CASE("plan: a ViewStore hands out the views it reserved, and refuses more rather than move them") {
  planning::ViewStore<float> store;
  store.reserve(3, 2, 1);  // reals in: 3 inputs + 2 cotangents; reals out: 2 outputs + 3 gradients + 1 state
  const auto a = store.reals_in(2);
  a[0].data = reinterpret_cast<const float*>(0x40);
  const auto b = store.reals_in(3);
  CHECK(b.data() == a.data() + 2);
  CHECK(a[0].data == reinterpret_cast<const float*>(0x40));
  CHECK(b[2].data == nullptr);
  CHECK(store.reals_out(6).size() == 6);
  CHECK(store.index_in(3).size() == 3);
  CHECK(store.index_out(2).size() == 2);
  CHECK_THROWS_WITH_AS(store.reals_in(1), "planning::ViewStore: more views than reserved", std::logic_error);
  CHECK_THROWS_AS(store.index_out(1), std::logic_error);
  CHECK(a.data() + 2 == b.data());  // nothing moved
  // From 2 MiB up the arrays sit on huge-page boundaries (detail::PageAllocator).
  std::vector<int, detail::PageAllocator<int>> big(detail::kHugePageBytes / sizeof(int));
  CHECK(reinterpret_cast<std::uintptr_t>(big.data()) % detail::kHugePageBytes == 0);
  std::vector<int, detail::PageAllocator<int>> small(10, 7);
  CHECK(reinterpret_cast<std::uintptr_t>(small.data()) % 64 == 0);
  CHECK(small[9] == 7);
}
