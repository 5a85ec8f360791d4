// Plans and the registry used from several threads at once (these tests also run under
// ThreadSanitizer in CI).
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/kernel.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/registry.hpp>
#include <opgraph/optim/optimizer.hpp>

using namespace opgraph;

namespace {

Graph mlp() {
  Graph g;
  auto x = nn::input(g, "x", {N, 16});
  auto y = nn::input(g, "y", {N});
  auto h = nn::relu(nn::dense(x, 64, "l0"));
  auto h2 = nn::logistic(nn::dense(h, 64, "l1"));
  g.set_loss(nn::softmax_cross_entropy(nn::dense(h2 + h, 4, "out"), y));
  return g;
}

struct Data {
  Tensor x, y;
};

Data data(std::int64_t rows, std::uint64_t seed) {
  Data d{Tensor(Shape{rows, 16}), Tensor(Shape{rows})};
  Rng rng(seed);
  for (auto& v : d.x.values<float>()) v = static_cast<float>(rng.uniform(-1, 1));
  for (std::int64_t r = 0; r < rows; ++r) d.y.set(r, static_cast<double>(r % 4));
  return d;
}

/// Trains `steps` SGD steps on a plan of its own over `params`; returns the losses.
std::vector<double> train(const Graph& g, Params& params, const Data& d, int steps) {
  Plan plan(g, params, {.batch = d.x.shape()[0]});
  plan.set_input("x", d.x);
  plan.set_input("y", d.y);
  const auto slots = plan.parameters();
  auto sgd = make_sgd({.lr = 0.1});
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    plan.forward();
    losses.push_back(plan.loss());
    plan.backward();
    sgd->step(slots);
  }
  return losses;
}

bool same(const Params& a, const Params& b) {
  for (const auto& [name, t] : a)
    if (!t.bitwise_equal(b.at(name))) return false;
  return true;
}

}  // namespace

TEST_CASE("concurrency: two plans of one graph run at once give the results they give one after the other") {
  const Graph g = mlp();
  const Data d1 = data(512, 1), d2 = data(300, 2);  // different batch sizes, different data
  const Params start = g.init_params(5);

  Params seq1 = start.clone(), seq2 = start.clone();
  const auto l1 = train(g, seq1, d1, 20);
  const auto l2 = train(g, seq2, d2, 20);

  for (int round = 0; round < 3; ++round) {
    Params par1 = start.clone(), par2 = start.clone();
    std::vector<double> p1, p2;
    std::thread a([&] { p1 = train(g, par1, d1, 20); });
    std::thread b([&] { p2 = train(g, par2, d2, 20); });
    a.join();
    b.join();
    CHECK(p1 == l1);
    CHECK(p2 == l2);
    CHECK(same(par1, seq1));
    CHECK(same(par2, seq2));
  }
}

TEST_CASE("concurrency: the registry is read from many threads while ops are added and used") {
  std::atomic<bool> stop = false;
  std::atomic<int> graphs = 0;
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      const Data d = data(64, 3);
      while (!stop) {
        CHECK(Registry::global().find("softmax") != nullptr);
        CHECK(Registry::global().names().size() >= 21);
        Graph g = mlp();  // every add_op looks its op up
        Params p = g.init_params(1);
        train(g, p, d, 1);
        ++graphs;
      }
    });
  // Meanwhile, new ops are registered one by one.
  for (int i = 0; i < 50; ++i) {
    OpBuilder b("test_concurrent_op_" + std::to_string(i));
    b.doc("identity (test only)").input("x").shape(same_shape_as(0)).forward([](auto& k) {
      map(k.in(0), k.out(), [](auto v) { return v; });
    });
    Registry::global().add(std::move(b.def()));
  }
  while (graphs < 20) std::this_thread::yield();
  stop = true;
  for (auto& r : readers) r.join();
  for (int i = 0; i < 50; ++i) CHECK(Registry::global().find("test_concurrent_op_" + std::to_string(i)) != nullptr);
}
