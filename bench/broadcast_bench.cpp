// Broadcasting against the dedicated op it generalises: `add(x, b)` with b of shape [c]
// against `bias_add(x, b)`, forward + backward, and the other common patterns (a column
// [N,1], a scalar, a general broadcast) at the same element count. Writes a markdown table.
//
//   broadcast_bench [--out FILE] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>

#include "machine.hpp"
#include "table_bench.hpp"

using namespace opgraph;

namespace {

using Clock = std::chrono::steady_clock;

struct Case {
  std::string label, op;
  Shape x, b;
};

/// Median seconds of one forward + backward of y = op(x, b), gradients for both.
double time_case(const Case& c, std::int64_t rows, int threads, int reps) {
  Graph g;
  const NodeId x = g.add_input("x", c.x);
  // b is a parameter, or an input when it has the batch dimension (a per-row column).
  const NodeId b = c.b.has_batch() ? g.add_input("b", c.b) : g.add_param("b", c.b, Init::normal(0, 1));
  const NodeId y = g.add_op(c.op, {x, b}, {}, "y");
  g.set_loss(y);
  Params params = g.init_params(1);
  ThreadCount count(threads);
  std::vector<std::string> grads = {"x"};
  if (c.b.has_batch()) grads.push_back("b");
  Plan plan(g, params, {.batch = rows, .input_grads = grads});
  const Shape xs = c.x.bind(rows);
  Tensor xv(xs);
  for (std::int64_t i = 0; i < xv.numel(); ++i) xv.set(i, 0.001 * static_cast<double>(i % 997));
  Tensor seed(plan.shape(y));
  seed.fill(1.0);
  plan.set_input("x", xv);
  Tensor bv(c.b.bind(rows));
  bv.fill(0.5);
  if (c.b.has_batch()) plan.set_input("b", bv);
  std::vector<double> times;
  for (int r = 0; r < reps + 3; ++r) {
    const auto t0 = Clock::now();
    plan.forward();
    plan.backward(seed);
    if (r >= 3) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const opgraph_bench::TableArgs args = opgraph_bench::table_args(argc, argv, "broadcast_bench");
  if (!args.ok) return 2;
  const int reps = args.quick ? 3 : 51;
  struct Size {
    std::int64_t rows, cols;
  };
  const std::vector<Size> sizes = args.quick ? std::vector<Size>{{150, 8}} : std::vector<Size>{{150, 8}, {256, 1024}, {10000, 256}};
  std::string md = fmt::format("{}\n\nMedian of {} steps (forward + backward, gradients of x and b), f32.\n\n",
                               opgraph_bench::machine_description(), reps);
  md += "| x [rows,c] | threads | bias_add(x, b[c]) | add(x, b[c]) | add / bias_add | add(x, y[rows,c]) | sub(x, m[rows,1]) | "
        "mul(x, g[c]) | mul(x, s[]) | add(x[rows,2,c/2], b[2,1]) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : sizes) {
    for (int threads : {1, 2}) {
      const double bias = time_case({"", "bias_add", {N, s.cols}, {s.cols}}, s.rows, threads, reps);
      const double add = time_case({"", "add", {N, s.cols}, {s.cols}}, s.rows, threads, reps);
      const double sub_col = time_case({"", "sub", {N, s.cols}, {N, 1}}, s.rows, threads, reps);
      const double mul_row = time_case({"", "mul", {N, s.cols}, {s.cols}}, s.rows, threads, reps);
      const double mul_scalar = time_case({"", "mul", {N, s.cols}, {}}, s.rows, threads, reps);
      const double general = time_case({"", "add", {N, 2, s.cols / 2}, {2, 1}}, s.rows, threads, reps);
      const double same = time_case({"", "add", {N, s.cols}, {N, s.cols}}, s.rows, threads, reps);
      auto us = [](double t) { return fmt::format("{:.1f} µs", 1e6 * t); };
      md += fmt::format("| [{},{}] | {} | {} | {} | {:.2f}× | {} | {} | {} | {} | {} |\n", s.rows, s.cols, threads, us(bias),
                        us(add), add / bias, us(same), us(sub_col), us(mul_row), us(mul_scalar), us(general));
      std::fprintf(stderr, "[%lld,%lld] %d threads: bias_add %.1f us, add %.1f us\n", static_cast<long long>(s.rows),
                   static_cast<long long>(s.cols), threads, 1e6 * bias, 1e6 * add);
    }
  }
  opgraph_bench::write_table(md, args.out);
  return 0;
}
