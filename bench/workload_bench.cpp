// One contender on one workload at one thread count; prints one JSON line. bench_suite
// runs it (and torch_bench.py) in separate processes, alternating, and writes RESULTS.md.
//
//   workload_bench --workload W1 [--contender opgraph|opgraph-unfused|reference] --threads N   (default: opgraph)
//                  [--mode time|verify|profile|baseline] [--reps R] [--min-seconds S] [--steps K] [--quick]
//
// time:     warm up, then R repetitions; each times K steps (chosen so a repetition lasts
//           at least S seconds) or, for an epoch workload, one epoch. Prints per-repetition
//           figures in the workload's unit.
// verify:   K training steps from the shared initial weights on the first batch; prints the
//           losses and a checksum of the weights (equal checksums: bitwise equal weights).
// profile:  opgraph only: one warm-up step, then K steps through a plan compiled with
//           PlanOptions::profile; prints each op's forward and backward milliseconds a
//           step summed over its nodes (largest first, with its share and GFLOP/s), then
//           the 16 slowest nodes.
// baseline: loads everything and starts the thread pool, nothing else (the RSS floor).
//
// opgraph-unfused: opgraph with PlanOptions::fuse off (every bias_add and relu its own
// pass), to measure what the epilogues save, alternated with `opgraph` (the same bits).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/optim/optimizer.hpp>

#include "peer_harness.hpp"
#include "reference.hpp"
#include "timing.hpp"
#include "workloads.hpp"

namespace {

using bench::Workload;

using Options = bench::PeerOptions;

[[noreturn]] void usage(const char* why) { bench::peer_usage("workload_bench", why, true); }

Options parse(int argc, char** argv) {
  Options o = bench::parse_peer("workload_bench", argc, argv, true);
  if (o.contender.empty()) o.contender = "opgraph";
  if (o.mode != "baseline" && o.contender != "opgraph" && o.contender != "opgraph-unfused" && o.contender != "reference")
    usage("--contender must be opgraph, opgraph-unfused or reference");
  if (o.mode != "baseline" && o.contender == "reference" && !bench::has_reference(*bench::find_workload(o.workload)))
    usage("the hand-written reference covers the dense networks only (W1-W6, I1)");
  if (o.mode == "profile" && o.contender == "reference") usage("--mode profile times opgraph's nodes only");
  return o;
}

/// The data a run trains on: features and labels of data_rows(w) rows.
struct Data {
  std::int64_t rows = 0, cols = 0;
  std::vector<float> x;
  std::vector<std::int64_t> labels;
};

Data make_data(const Workload& w) {
  Data d;
  d.rows = bench::data_rows(w);
  d.cols = bench::inputs(w);
  d.x.resize(static_cast<std::size_t>(d.rows * d.cols));
  bench::fill_features(d.x.data(), d.rows, d.cols);
  for (std::int64_t r = 0; r < d.rows * bench::labels_per_sample(w); ++r) d.labels.push_back(bench::label(w, r));
  return d;
}

/// A contender: one training step on a batch, one epoch of shuffled minibatches, the
/// weights (for checksums), and the bytes it says it needs.
struct Contender {
  std::function<double()> step;            // on the first batch; returns the loss
  std::function<void(int epoch)> epoch;    // epoch workloads
  std::function<std::uint64_t()> checksum;
  std::size_t bytes = 0;
};

// ---- opgraph through its C++ API: nn:: to build, Plan + Optimizer to step, Trainer::fit
// for epochs.

opgraph::nn::Value activation(const std::string& name, opgraph::nn::Value v) {
  return name == "relu" ? opgraph::nn::relu(v) : opgraph::nn::logistic(v);
}

/// W7: LeNet-5 as examples/models/lenet.og, parameters named as workloads.hpp's specs.
opgraph::nn::Value lenet(opgraph::nn::Value x, const Workload& w) {
  using namespace opgraph;
  Graph& g = x.graph();
  auto conv = [&](nn::Value in, const std::string& name, std::int64_t cin, std::int64_t cout, std::int64_t pad) {
    auto kernel = nn::param(g, name + ".W", {cout, cin, 5, 5});
    auto bias = nn::param(g, name + ".b", {cout}, Init::zeros());
    auto y = nn::op("conv2d", {in, kernel}, {{"padding", IntList{pad}}});
    y = nn::op("bias_add", {y, bias}, {{"axis", std::int64_t{1}}});
    return nn::op("max_pool2d", {nn::relu(y)}, {{"kernel", IntList{2}}});
  };
  nn::Value h = nn::op("flatten", {conv(conv(x, "c1", 1, 6, 2), "c2", 6, 16, 0)});
  for (std::size_t l = 0; l + 1 < w.layers.size(); ++l) {
    h = nn::dense(h, w.layers[l + 1], "l" + std::to_string(l));
    if (l + 2 < w.layers.size()) h = nn::relu(h);
  }
  return h;
}

/// W8: the transformer stack of workloads.hpp, written as examples/models/transformer_sort.og.
opgraph::nn::Value transformer(opgraph::nn::Value x) {
  using namespace opgraph;
  Graph& g = x.graph();
  const std::int64_t d = bench::kModel8, heads = bench::kHeads8;
  auto norm = [&](nn::Value in, const std::string& name) {
    return nn::op("layer_norm", {in, nn::param(g, name + ".g", {d}), nn::param(g, name + ".b", {d})});
  };
  nn::Value h = x;
  for (std::int64_t b = 0; b < bench::kBlocks8; ++b) {
    const std::string p = "b" + std::to_string(b);
    auto n1 = norm(h, p + ".ln1");
    auto proj = [&](const std::string& name) { return nn::matmul(n1, nn::param(g, p + name, {d, d})); };
    // The heads side by side in the last axis, as the projections give them.
    auto a = nn::op("attention", {proj(".Wq"), proj(".Wk"), proj(".Wv")}, {{"heads", heads}});
    h = h + nn::matmul(a, nn::param(g, p + ".Wo", {d, d}));
    auto n2 = norm(h, p + ".ln2");
    auto u = nn::op("gelu", {nn::matmul(n2, nn::param(g, p + ".W1", {d, bench::kHidden8})) +
                             nn::param(g, p + ".c1", {bench::kHidden8})});
    h = h + nn::matmul(u, nn::param(g, p + ".W2", {bench::kHidden8, d})) + nn::param(g, p + ".c2", {d});
  }
  return nn::matmul(norm(h, "ln"), nn::param(g, "out.W", {d, bench::kClasses8})) +
         nn::param(g, "out.b", {bench::kClasses8});
}

struct OpgraphRun {
  opgraph::Model model;
  std::unique_ptr<opgraph::Plan> plan;
  std::vector<opgraph::ParamSlot> slots;
  std::unique_ptr<opgraph::Optimizer> sgd;
  opgraph::Tensor x, y;
  opgraph::Dataset data;
  std::unique_ptr<opgraph::Trainer> trainer;
};

Contender make_opgraph(const Workload& w, std::int64_t batch, std::shared_ptr<OpgraphRun>& run, bool profile,
                       bool fuse) {
  using namespace opgraph;
  run = std::make_shared<OpgraphRun>();
  Graph& g = run->model.graph;
  const bool sigmoid = w.output == "sigmoid_bce";
  const Shape x_shape = w.kind == Workload::Kind::lenet         ? Shape{N, 1, 28, 28}
                        : w.kind == Workload::Kind::transformer ? Shape{N, bench::kPositions8, bench::kModel8}
                                                                : Shape{N, bench::inputs(w)};
  auto x = nn::input(g, "x", x_shape);
  auto y = sigmoid ? nn::input(g, "y", {N, 1})
                   : bench::labels_per_sample(w) > 1 ? nn::input(g, "y", {N, bench::labels_per_sample(w)})
                                                     : nn::input(g, "y", {N});
  nn::Value out = x;
  if (w.kind == Workload::Kind::lenet) {
    out = lenet(x, w);
  } else if (w.kind == Workload::Kind::transformer) {
    out = transformer(x);
  } else if (w.kind == Workload::Kind::mlp) {
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l) {
      out = nn::dense(out, w.layers[l + 1], "l" + std::to_string(l));
      if (l + 2 < w.layers.size()) out = activation(bench::hidden_activation(w, l), out);
    }
  } else {
    std::vector<nn::Value> towers;
    for (int t = 0; t < bench::kTowers; ++t) {
      const std::string name = "t" + std::to_string(t);
      towers.push_back(nn::relu(nn::dense(nn::relu(nn::dense(x, w.layers[1], name + "a")), w.layers[1], name + "b")));
    }
    nn::Value sum = towers[0];
    for (int t = 1; t < bench::kTowers; ++t) sum = sum + towers[static_cast<std::size_t>(t)];
    out = nn::dense(sum, w.layers[2], "out");
  }
  if (w.output == "softmax_ce") g.set_loss(nn::softmax_cross_entropy(out, y).named("loss"));
  else if (w.output == "softmax_then_ce") g.set_loss(nn::cross_entropy(nn::softmax(out), y).named("loss"));
  else g.set_loss(nn::binary_cross_entropy(nn::logistic(out), y).named("loss"));

  Params& params = run->model.params;
  params = g.init_params(0);
  for (const auto& spec : bench::param_specs(w)) bench::fill_param(spec, params.at(spec.name).data<float>());
  if (!w.inference) run->sgd = make_sgd({.lr = w.lr});  // inference runs no optimizer

  // The dataset (all rows), generated in place: features, and labels as y expects them.
  const std::int64_t rows = bench::data_rows(w), cols = bench::inputs(w), per = bench::labels_per_sample(w);
  run->data.name = w.name;
  run->data.features = Tensor(Shape{rows, cols});
  bench::fill_features(run->data.features.data<float>(), rows, cols);
  run->data.labels = per > 1 ? Tensor(Shape{rows, per}) : Tensor(Shape{rows});
  for (std::int64_t r = 0; r < rows * per; ++r) run->data.labels.data<float>()[r] = static_cast<float>(bench::label(w, r));

  Contender c;
  OpgraphRun* r = run.get();
  if (w.epoch_rows > 0) {
    r->trainer = std::make_unique<Trainer>(r->model);
    c.epoch = [r, batch](int epoch) {
      TrainOptions o{.epochs = 1, .batch = batch, .shuffle = true, .seed = static_cast<std::uint64_t>(epoch)};
      r->trainer->fit(r->data, *r->sgd, o);
    };
  }
  // Steps on the first batch, through a plan.
  r->plan = std::make_unique<Plan>(g, params, PlanOptions{.batch = batch, .backward = !w.inference, .profile = profile, .fuse = fuse});
  r->x = r->data.features.slice_rows(0, batch);
  if (w.kind != Workload::Kind::mlp && w.kind != Workload::Kind::towers) {
    Shape s = x_shape;
    s[0] = batch;
    r->x = r->x.reshape(s);
  }
  r->y = r->data.labels.slice_rows(0, batch);
  if (sigmoid) r->y = r->y.reshape(Shape{batch, 1});
  r->plan->set_input("x", r->x);
  r->plan->set_input("y", r->y);
  r->slots = r->plan->parameters();
  if (w.inference) {
    c.step = [r] {
      r->plan->forward();
      return r->plan->loss();
    };
  } else {
    c.step = [r] {
      r->plan->forward();
      const double loss = r->plan->loss();
      r->plan->backward();
      r->sgd->step(r->slots);
      return loss;
    };
  }
  c.checksum = [r, w] {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& spec : bench::param_specs(w)) {
      const Tensor& t = r->model.params.at(spec.name);
      h = bench::fnv1a(t.raw(), t.nbytes(), h);
    }
    return h;
  };
  const PlanStats s = r->plan->stats();
  c.bytes = s.arena_bytes + s.param_bytes + r->x.nbytes() + r->y.nbytes();
  return c;
}

/// Per op: forward and backward milliseconds a step, over all its nodes, largest first.
void print_profile(const opgraph::Plan& plan, int steps) {
  struct Row {
    std::string op;
    int nodes = 0;
    double fwd = 0.0, bwd = 0.0, flops = 0.0;
  };
  std::vector<opgraph::NodeProfile> nodes = plan.profile();
  std::vector<Row> rows;
  double total = 0.0;
  for (const auto& n : nodes) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.op == n.op; });
    if (it == rows.end()) it = rows.insert(rows.end(), Row{n.op});
    ++it->nodes;
    it->fwd += n.forward_seconds * 1e3 / steps;
    it->bwd += n.backward_seconds * 1e3 / steps;
    it->flops += (n.forward_flops * static_cast<double>(n.forward_calls) +
                  n.backward_flops * static_cast<double>(n.backward_calls)) / steps;
    total += (n.forward_seconds + n.backward_seconds) * 1e3 / steps;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.fwd + a.bwd > b.fwd + b.bwd; });
  std::printf("%-24s %5s %10s %10s %7s %10s\n", "op", "nodes", "fwd ms", "bwd ms", "share", "GFLOP/s");
  for (const Row& r : rows) {
    const double ms = r.fwd + r.bwd;
    std::printf("%-24s %5d %10.3f %10.3f %6.1f%% %10.1f\n", r.op.c_str(), r.nodes, r.fwd, r.bwd,
                total > 0 ? 100.0 * ms / total : 0.0, ms > 0 ? r.flops / ms / 1e6 : 0.0);
  }
  std::printf("%-24s %5s %21.3f ms a step in the nodes (the optimizer's update not included)\n\n", "total", "", total);
  // The nodes themselves, the 16 slowest.
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
  });
  nodes.resize(std::min<std::size_t>(nodes.size(), 16));
  std::printf("%-24s %-22s %10s %10s %10s %10s\n", "node", "op", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s");
  for (const auto& n : nodes) {
    const double f = n.forward_seconds * 1e3 / steps, b = n.backward_seconds * 1e3 / steps;
    const std::string op = n.fused_into.empty() ? n.op : n.op + " (fused)";
    std::printf("%-24s %-22s %10.3f %10.3f %10.1f %10.1f\n", n.name.substr(0, 24).c_str(), op.c_str(), f, b,
                f > 0 ? n.forward_flops * static_cast<double>(n.forward_calls) / steps / f / 1e6 : 0.0,
                b > 0 ? n.backward_flops * static_cast<double>(n.backward_calls) / steps / b / 1e6 : 0.0);
  }
}

// ---- The hand-written reference.

Contender make_reference(const Workload& w, const Data& d, std::int64_t batch, std::shared_ptr<bench::Reference>& ref,
                         std::shared_ptr<std::vector<float>>& scratch) {
  ref = std::make_shared<bench::Reference>(w, batch);
  bench::Reference* r = ref.get();
  Contender c;
  if (w.inference) c.step = [r, &d, batch] { return r->forward(d.x.data(), d.labels.data(), batch); };
  else c.step = [r, &d, batch] { return r->train_step(d.x.data(), d.labels.data(), batch); };
  if (w.epoch_rows > 0) {
    // A shuffled order per epoch; each minibatch gathered into one buffer, as a training loop does.
    scratch = std::make_shared<std::vector<float>>(static_cast<std::size_t>(batch * d.cols));
    auto labels = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(batch));
    auto order = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(d.rows));
    float* xb = scratch->data();
    c.epoch = [r, &d, batch, xb, labels, order](int epoch) {
      std::iota(order->begin(), order->end(), std::int64_t{0});
      std::mt19937_64 rng(static_cast<std::uint64_t>(epoch));
      std::shuffle(order->begin(), order->end(), rng);
      std::int64_t correct = 0;
      double loss_sum = 0.0;
      for (std::int64_t b = 0; b < d.rows; b += batch) {
        const std::int64_t rows = std::min(batch, d.rows - b);
        for (std::int64_t i = 0; i < rows; ++i) {
          const std::int64_t src = (*order)[static_cast<std::size_t>(b + i)];
          std::memcpy(xb + i * d.cols, d.x.data() + src * d.cols, static_cast<std::size_t>(d.cols) * sizeof(float));
          (*labels)[static_cast<std::size_t>(i)] = d.labels[static_cast<std::size_t>(src)];
        }
        loss_sum += r->train_step(xb, labels->data(), rows, &correct) * static_cast<double>(rows);
      }
      if (!std::isfinite(loss_sum) || correct < 0) std::fprintf(stderr, "reference: bad epoch\n");
    };
  }
  c.checksum = [r] {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& p : r->params()) h = bench::fnv1a(p.data(), p.size() * sizeof(float), h);
    return h;
  };
  c.bytes = r->bytes() + (scratch ? scratch->size() * sizeof(float) : 0) +
            static_cast<std::size_t>(batch * d.cols) * sizeof(float);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  opgraph::set_num_threads(o.threads);
  if (o.mode == "baseline") {
    // The process floor: libraries loaded, the thread pool started, nothing allocated.
    std::vector<float> v(1 << 16, 1.0f);
    opgraph::parallel_for(static_cast<std::int64_t>(v.size()), 1024, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) v[static_cast<std::size_t>(i)] *= 2.0f;
    });
    std::printf("{\"mode\":\"baseline\",\"threads\":%d}\n", o.threads);
    return 0;
  }

  Workload w = *bench::find_workload(o.workload);
  if (o.quick) w.epoch_rows = w.epoch_rows ? 4 * w.batch : 0;
  const std::int64_t batch = w.batch;

  try {
    std::shared_ptr<OpgraphRun> og;
    std::shared_ptr<bench::Reference> ref;
    std::shared_ptr<std::vector<float>> scratch;
    Data data;
    if (o.contender == "reference") data = make_data(w);
    Contender c = o.contender != "reference"
                      ? make_opgraph(w, batch, og, o.mode == "profile", o.contender == "opgraph")
                      : make_reference(w, data, batch, ref, scratch);

    if (o.mode == "verify") {
      std::printf("{\"mode\":\"verify\",\"workload\":\"%s\",\"contender\":\"%s\",\"threads\":%d,\"losses\":[",
                  w.name.c_str(), o.contender.c_str(), o.threads);
      for (int s = 0; s < o.steps; ++s) std::printf("%s%.9g", s ? "," : "", c.step());
      std::printf("],\"checksum\":\"%016llx\",\"bytes\":%zu}\n", static_cast<unsigned long long>(c.checksum()), c.bytes);
      return 0;
    }

    if (o.mode == "profile") {
      c.step();  // warms caches and the arena; not counted
      og->plan->reset_profile();
      for (int s = 0; s < o.steps; ++s) c.step();
      print_profile(*og->plan, o.steps);
      return 0;
    }

    // time
    const bench::Timed t = bench::time_workload(w, o.quick, o.reps, o.min_seconds, c.step, c.epoch);
    std::printf("{\"mode\":\"time\",\"workload\":\"%s\",\"contender\":\"%s\",\"threads\":%d,\"unit\":\"%s\","
                "\"steps_per_rep\":%lld,\"bytes\":%zu,\"values\":[",
                w.name.c_str(), o.contender.c_str(), o.threads, w.unit.c_str(), static_cast<long long>(t.per_rep),
                c.bytes);
    for (std::size_t i = 0; i < t.values.size(); ++i) std::printf("%s%.6g", i ? "," : "", t.values[i]);
    std::printf("]}\n");
  } catch (const opgraph::Error& e) {
    std::fprintf(stderr, "workload_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
