// opgraph profile: time, FLOPs and bytes per node of a training step.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <opgraph/frontends/data_spec.hpp>
#include <opgraph/frontends/json.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>

#include "cli.hpp"

namespace opgraph::cli {

int profile(int argc, char** argv) {
  const std::vector<Option> options = {
      {"data", "SPEC", "the data to run on (see opgraph data); default: random values of the input's shape"},
      {"data-dir", "DIR", "the data folder (default $OPGRAPH_DATA)"},
      {"batch", "N", "rows per step (default 128)"},
      {"steps", "N", "steps to time, after one warm-up step (default 10)"},
      {"seed", "N", "seed of the parameters (default 0)"},
      {"threads", "N", "worker threads"},
      {"memory-limit", "SIZE", "the most memory tensors, plans and data may take, e.g. 512M (default: 80% of RAM)"},
      {"json", "", "print the profile as one JSON object"},
  };
  const Args a("profile", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph profile MODEL.og [--data SPEC] [--steps N] [--batch B] [--json]",
                         "Times each node's forward and backward pass over training steps and reports FLOPs, bytes "
                         "moved, share of the step and GFLOP/s.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  set_threads(a);
  set_memory_limit_option(a);
  const std::int64_t batch = a.integer("batch", 128, 1);
  const int steps = static_cast<int>(a.integer("steps", 10, 1, 1'000'000));
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, 0, std::numeric_limits<std::int64_t>::max()));
  const ModelFile file = load_model(a.one_positional("MODEL.og"));
  Model model{file.graph, file.graph.init_params(seed), file.input, file.labels};
  Trainer trainer(model);
  const Dataset data = a.has("data") ? spec("profile", [&] { return load_data(a.get("data"), a.get("data-dir")); }).train
                                     : random_data(model, trainer, std::max<std::int64_t>(batch, 256));
  const std::vector<NodeProfile> nodes = trainer.profile(data, batch, steps);
  const double per_step = 1.0 / steps;
  double total = 0.0;
  for (const auto& n : nodes) total += (n.forward_seconds + n.backward_seconds) * per_step;
  std::map<std::string, double> by_op;
  for (const auto& n : nodes) by_op[n.op] += (n.forward_seconds + n.backward_seconds) * per_step;
  auto gflops = [&](const NodeProfile& n) {
    const double t = (n.forward_seconds + n.backward_seconds) * per_step;
    const double flops = n.forward_flops + (n.backward_calls ? n.backward_flops : 0.0);
    return t > 0 ? flops / t / 1e9 : 0.0;
  };
  if (a.has("json")) {
    std::vector<std::string> rows;
    for (const auto& n : nodes)
      rows.push_back(json::Object()
                         .add("node", n.name)
                         .add("op", n.op)
                         .add("forward_ms", 1e3 * n.forward_seconds * per_step)
                         .add("backward_ms", 1e3 * n.backward_seconds * per_step)
                         .add("share", total > 0 ? (n.forward_seconds + n.backward_seconds) * per_step / total : 0.0)
                         .add("forward_flops", n.forward_flops)
                         .add("backward_flops", n.backward_calls ? n.backward_flops : 0.0)
                         .add("bytes", n.forward_bytes + (n.backward_calls ? n.backward_bytes : 0.0))
                         .add("gflops", gflops(n))
                         .add("fused_into", n.fused_into)
                         .add("vjp_absorbed_by", n.vjp_absorbed_by)
                         .str());
    json::Object ops;
    for (const auto& [op, t] : by_op) ops.add(op, total > 0 ? t / total : 0.0);
    std::printf("%s\n", json::Object()
                            .add("command", "profile")
                            .add("batch", batch)
                            .add("steps", steps)
                            .add("step_ms", 1e3 * total)
                            .raw("nodes", json::array(rows))
                            .raw("share_by_op", ops.str())
                            .str()
                            .c_str());
    return 0;
  }
  std::printf("%-28s %-22s %10s %11s %7s %9s %10s\n", "node", "op", "forward ms", "backward ms", "share", "GFLOP/s",
              "MB moved");
  std::map<std::string, std::vector<std::string>> fused;  // producer -> the nodes it runs
  std::map<std::string, std::string> absorbed_by;  // node -> the node whose vjp does its vjp's work
  std::vector<std::string> absorbed;                 // those nodes, in the plan's order
  for (const auto& n : nodes) {
    const double t = (n.forward_seconds + n.backward_seconds) * per_step;
    // A fused node's forward runs inside its producer's and is timed there.
    const std::string forward = n.fused_into.empty() ? fmt::format("{:10.3f}", 1e3 * n.forward_seconds * per_step)
                                                     : fmt::format("{:>10}", "fused");
    if (!n.fused_into.empty()) fused[n.fused_into].push_back(n.name);
    // A relu whose vjp its consumer's does: no backward pass of its own.
    const std::string backward = n.vjp_absorbed_by.empty()
                                     ? fmt::format("{:11.3f}", 1e3 * n.backward_seconds * per_step)
                                     : fmt::format("{:>11}", "absorbed");
    if (!n.vjp_absorbed_by.empty()) {
      absorbed_by[n.name] = n.vjp_absorbed_by;
      absorbed.push_back(n.name);
    }
    std::printf("%-28.28s %-22.22s %s %s %6.1f%% %9.1f %10.2f\n", n.name.c_str(), n.op.c_str(), forward.c_str(),
                backward.c_str(), total > 0 ? 100 * t / total : 0.0, gflops(n),
                (n.forward_bytes + (n.backward_calls ? n.backward_bytes : 0.0)) / 1e6);
  }
  std::printf("%-51s %10.3f ms per step (batch %lld, %d steps timed)\n", "total", 1e3 * total,
              static_cast<long long>(batch), steps);
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [op, t] : by_op) ranked.emplace_back(t, op);
  std::sort(ranked.rbegin(), ranked.rend());
  std::string summary;
  for (const auto& [t, op] : ranked) summary += fmt::format("{}{} {:.1f}%", summary.empty() ? "" : ", ", op, total > 0 ? 100 * t / total : 0.0);
  std::printf("by op: %s\n", summary.c_str());
  for (const auto& [producer, names] : fused)
    std::printf("fused: %s run inside %s's forward pass (counted there)\n", fmt::format("{}", fmt::join(names, ", ")).c_str(),
                producer.c_str());
  // Absorbed vjps by the node whose backward pass runs them in the end: a relu's vjp is
  // done by the pool's after it, which itself may run inside the convolution's (LeNet's
  // conv_1: bias_add, relu and pool all in the conv2d's), so one line per chain, as for
  // the fused forward passes above.
  std::map<std::string, std::vector<std::string>> absorbing;  // the node whose vjp runs -> the nodes it does
  std::vector<std::string> absorbers;                          // in the order their first absorbed node comes
  for (const auto& name : absorbed) {
    std::string by = absorbed_by.at(name);
    for (std::size_t hops = 0; absorbed_by.count(by) && hops < absorbed_by.size(); ++hops) by = absorbed_by.at(by);
    if (!absorbing.count(by)) absorbers.push_back(by);
    absorbing[by].push_back(name);
  }
  for (const auto& by : absorbers)
    std::printf("absorbed: %s run inside %s's backward pass (counted there)\n",
                fmt::format("{}", fmt::join(absorbing.at(by), ", ")).c_str(), by.c_str());
  return 0;
}

Dataset random_data(const Model& model, const Trainer& trainer, std::int64_t rows) {
  const Shape& in = model.graph.node(model.graph.at(model.input)).shape;
  Dataset d;
  d.name = "random";
  d.features = Tensor(in.bind(rows));
  Rng rng(1);
  for (std::int64_t i = 0; i < d.features.numel(); ++i) d.features.set(i, rng.normal());
  d.labels = Tensor({rows});
  const std::int64_t classes = trainer.head().outputs == 1 ? 2 : trainer.head().outputs;
  for (std::int64_t i = 0; i < rows; ++i) d.labels.set(i, static_cast<double>(i % classes));
  return d;
}

}  // namespace opgraph::cli
