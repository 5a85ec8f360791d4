// W9: plan compilation time against the node count, for a chain (every MLP's shape) and
// for a branchy graph (towers joined by adds, fan-out everywhere). Planning must grow
// linearly (or n log n), so that the 100 000 nodes a model file may hold compile in well
// under two seconds. Writes a markdown table.
//
//   plan_bench [--out FILE] [--quick]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/plan.hpp>

#include "machine.hpp"
#include "table_bench.hpp"

using namespace opgraph;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// A chain: x -> matmul -> tanh -> tanh -> ... -> softmax_cross_entropy, `n` nodes in all.
Graph chain(std::int64_t n) {
  Graph g;
  const NodeId x = g.add_input("x", {N, 8});
  const NodeId y = g.add_input("y", {N});
  NodeId h = g.add_op("matmul", {x, g.add_param("W", {8, 8})});
  for (std::int64_t i = 5; i < n; ++i) h = g.add_op("tanh", {h});
  g.set_loss(g.add_op("softmax_cross_entropy", {h, y}));
  return g;
}

/// Towers of four nodes (tanh, relu, tanh, add back into the trunk): fan-out at every step.
Graph branchy(std::int64_t n) {
  Graph g;
  const NodeId x = g.add_input("x", {N, 8});
  const NodeId y = g.add_input("y", {N});
  NodeId h = g.add_op("matmul", {x, g.add_param("W", {8, 8})});
  for (std::int64_t i = 5; i + 4 <= n; i += 4) {
    const NodeId a = g.add_op("tanh", {h});
    const NodeId b = g.add_op("relu", {h});
    const NodeId c = g.add_op("tanh", {b});
    h = g.add_op("add", {a, c});
  }
  g.set_loss(g.add_op("softmax_cross_entropy", {h, y}));
  return g;
}

struct Row {
  std::string kind;
  std::int64_t nodes;
  double build, train, infer;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// One (kind, size) measured once: a warm-up compilation of a small graph of that kind
/// (the registry, the code, the thread pool), then the graph built, compiled for training
/// and compiled for inference.
Row measure(const char* kind, std::int64_t n) {
  const auto make = [&](std::int64_t size) { return std::string(kind) == "chain" ? chain(size) : branchy(size); };
  {
    Graph g = make(100);
    Params params = g.init_params(1);
    Plan train(g, params, {.batch = 32});
    Plan infer(g, params, {.batch = 32, .backward = false});
  }
  Row r{kind, 0, 0, 0, 0};
  auto t0 = Clock::now();
  Graph g = make(n);
  r.build = since(t0);
  r.nodes = static_cast<std::int64_t>(g.size());
  Params params = g.init_params(1);
  t0 = Clock::now();
  { Plan p(g, params, {.batch = 32}); }
  r.train = since(t0);
  t0 = Clock::now();
  { Plan p(g, params, {.batch = 32, .backward = false}); }
  r.infer = since(t0);
  return r;
}

/// measure() in a child process: every compilation starts from a fresh heap, as a program
/// that compiles its model once does. In one process the 10 000-node plans reused the
/// memory the plans before them had freed (already mapped, no page to fault in), while the
/// 100 000-node ones, too large for that (their arena alone is 100 MB, mapped afresh),
/// took fresh pages every time: their cost per node had looked 1.7-2 times the smaller
/// ones' (0.94 against 1.79 us on the Xeon), largely the kernel zeroing pages.
/// NaN times when the child fails.
Row measure_apart(const char* kind, std::int64_t n) {
  Row failed{kind, n, NAN, NAN, NAN};
  int fd[2];
  if (pipe(fd) != 0) return failed;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    return failed;
  }
  if (pid == 0) {
    close(fd[0]);
    int status = 1;
    try {
      const Row r = measure(kind, n);
      const double values[4] = {static_cast<double>(r.nodes), r.build, r.train, r.infer};
      status = write(fd[1], values, sizeof values) == static_cast<ssize_t>(sizeof values) ? 0 : 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plan_bench: %s %lld nodes: %s\n", kind, static_cast<long long>(n), e.what());
    }
    _exit(status);
  }
  close(fd[1]);
  double values[4];
  std::size_t got = 0;
  while (got < sizeof values) {
    const ssize_t k = read(fd[0], reinterpret_cast<char*>(values) + got, sizeof values - got);
    if (k <= 0) break;
    got += static_cast<std::size_t>(k);
  }
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof values || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return failed;
  return {kind, static_cast<std::int64_t>(values[0]), values[1], values[2], values[3]};
}

}  // namespace

int main(int argc, char** argv) {
  const opgraph_bench::TableArgs args = opgraph_bench::table_args(argc, argv, "plan_bench");
  if (!args.ok) return 2;
  const std::vector<std::int64_t> sizes = args.quick ? std::vector<std::int64_t>{100, 1000}
                                                : std::vector<std::int64_t>{1000, 10000, 100000};
  const int reps = args.quick ? 1 : 5;
  std::vector<Row> rows;
  for (const char* kind : {"chain", "branchy"}) {
    for (std::int64_t n : sizes) {
      std::vector<double> build, train, infer;
      std::int64_t nodes = 0;
      for (int r = 0; r < reps; ++r) {  // one compilation a process
        const Row one = measure_apart(kind, n);
        if (!std::isfinite(one.train)) {
          std::fprintf(stderr, "plan_bench: the %s of %lld nodes failed\n", kind, static_cast<long long>(n));
          return 1;
        }
        nodes = one.nodes;
        build.push_back(one.build);
        train.push_back(one.train);
        infer.push_back(one.infer);
      }
      rows.push_back({kind, nodes, median(build), median(train), median(infer)});
      std::fprintf(stderr, "%s %lld nodes: build %.3f s, training plan %.3f s, inference plan %.3f s\n", kind,
                   static_cast<long long>(rows.back().nodes), rows.back().build, rows.back().train,
                   rows.back().infer);
    }
  }
  std::string md = fmt::format("{}\n\nMedian of {} compilations, batch 32, f32; each in a process of its own (a fresh heap, as a program that compiles its model once has), after a warm-up compilation of 100 nodes.\n\n", opgraph_bench::machine_description(), reps);
  md += "| graph | nodes | build the graph | compile for training | compile for inference | training, µs per node |\n"
        "|---|---|---|---|---|---|\n";
  for (const auto& r : rows)
    md += fmt::format("| {} | {} | {:.3f} s | {:.3f} s | {:.3f} s | {:.2f} |\n", r.kind, r.nodes, r.build, r.train,
                      r.infer, 1e6 * r.train / static_cast<double>(r.nodes));
  opgraph_bench::write_table(md, args.out);
  return 0;
}
