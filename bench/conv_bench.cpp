// conv2d's three passes (forward, input gradient, kernel gradient) against the rate of
// our GEMM on the product each pass amounts to (one GEMM of the same m, n, k), measured
// in the same run, on 1 and 2 threads. With --torch, PyTorch's conv2d on the same shapes
// (bench/conv_torch.py, its own process) in the same run. Writes a markdown table.
//
//   conv_bench [--out FILE] [--reps N] [--quick] [--torch PYTHON]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/optim/optimizer.hpp>
#include <opgraph/frontends/train.hpp>

#include "machine.hpp"

namespace {

using namespace opgraph;
using Clock = std::chrono::steady_clock;

struct Case {
  std::int64_t n, c, hw, k;  // batch, channels in = out, plane side, kernel side
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double time_it(int reps, const std::function<void()>& f) {
  f();  // warm up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

Tensor random_f32(Shape s, std::uint64_t seed) {
  Tensor t(std::move(s), DType::f32);
  Rng rng(seed);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.set(i, rng.uniform(-1, 1));
  return t;
}

/// Seconds per call of conv2d's forward, and of its backward computing only dx or only dw.
struct ConvTimes {
  double forward, dx, dw;
};

ConvTimes time_conv(const Case& c, int reps) {
  Graph g;
  const NodeId x = g.add_input("x", Shape{c.n, c.c, c.hw, c.hw});
  const NodeId w = g.add_input("w", Shape{c.c, c.c, c.k, c.k});
  const NodeId y = g.add_op("conv2d", {x, w}, {{"padding", "same"}}, "y");
  g.add_output(y);
  Params params(DType::f32);
  const Tensor xv = random_f32({c.n, c.c, c.hw, c.hw}, 1), wv = random_f32({c.c, c.c, c.k, c.k}, 2);
  const Tensor seed = random_f32({c.n, c.c, c.hw, c.hw}, 3);
  ConvTimes t{};
  for (const char* which : {"x", "w"}) {
    Plan plan(g, params, {.loss = "y", .input_grads = {which}});
    plan.set_input("x", xv);
    plan.set_input("w", wv);
    if (which[0] == 'x') t.forward = time_it(reps, [&] { plan.forward(); });
    plan.forward();
    (which[0] == 'x' ? t.dx : t.dw) = time_it(reps, [&] { plan.backward(seed); });
  }
  return t;
}

/// Seconds of one GEMM of [m,k] x [k,n], as conv2d's forward is per image (m = out
/// channels, n = positions, k = in channels x taps), over the whole batch.
double time_gemm(const Case& c, int reps) {
  const std::int64_t m = c.c, n = c.hw * c.hw, k = c.c * c.k * c.k;
  const Tensor a = random_f32({m, k}, 4), b = random_f32({k, n * c.n}, 5);
  Tensor out(Shape{m, n * c.n}, DType::f32);
  // One GEMM with the whole batch side by side: the rate our GEMM reaches on this product.
  return time_it(reps, [&] {
    gemm<float>(false, false, m, n * c.n, k, 1.0f, a.data<float>(), k, b.data<float>(), n * c.n, 0.0f,
                out.data<float>(), n * c.n);
  });
}

/// Seconds of one SGD training step (forward, loss, backward, update) of an example model
/// at this batch, float32, on random images and labels.
double time_model_step(const std::string& path, std::int64_t batch, int reps) {
  ModelFile m = load_model(path);
  Params params = m.graph.init_params(1, DType::f32);
  Plan plan(m.graph, params, {.batch = batch, .backward = true});
  plan.set_input(m.input, random_f32({batch, 1, 28, 28}, 6));
  Tensor labels(Shape{batch}, DType::f32);
  Rng rng(7);
  for (std::int64_t i = 0; i < batch; ++i) labels.set(i, static_cast<double>(rng.below(10)));
  plan.set_input(m.labels, labels);
  auto sgd = make_sgd({.lr = 0.01});
  auto slots = plan.parameters();
  return time_it(reps, [&] {
    plan.forward();
    plan.backward();
    sgd->step(slots);
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench/CONV.md", python;
  int reps = 15;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--torch" && i + 1 < argc) python = argv[++i];
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: conv_bench [--out FILE] [--reps N] [--quick] [--torch PYTHON]\n");
      return 2;
    }
  }
  // The residual net's 8 and 16 channels first, then wider layers.
  std::vector<Case> cases = {{64, 8, 28, 3}, {64, 16, 14, 3}, {64, 32, 28, 3}, {64, 32, 14, 3}, {64, 64, 14, 3}, {64, 64, 7, 3}, {64, 16, 14, 5}, {64, 32, 14, 5}};
  if (quick) {
    cases = {{2, 8, 6, 3}};
    reps = 1;
  }
  std::string table =
      "| conv (batch, channels in = out, plane, kernel) | threads | pass | opgraph ms | GFLOP/s | our GEMM GFLOP/s on "
      "the same product | conv / GEMM | pytorch ms | pytorch / opgraph |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const Case& c : cases) {
    const double flops = 2.0 * static_cast<double>(c.n * c.c * c.hw * c.hw) * static_cast<double>(c.c * c.k * c.k);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const ConvTimes t = time_conv(c, reps);
      const double g = time_gemm(c, reps);
      std::map<std::string, double> torch;
      if (!python.empty()) {
        const std::string cmd = fmt::format("{} {}/conv_torch.py {} {} {} {} {} {}", python, OPGRAPH_BENCH_DIR, c.n, c.c,
                                            c.hw, c.k, threads, reps);
        if (FILE* p = popen(cmd.c_str(), "r")) {
          char pass[16];
          double ms;
          while (std::fscanf(p, "%15s %lf", pass, &ms) == 2) torch[pass] = ms;
          pclose(p);
        }
      }
      const std::pair<const char*, double> passes[] = {{"forward", t.forward}, {"input gradient", t.dx}, {"kernel gradient", t.dw}};
      const char* keys[] = {"forward", "dx", "dw"};
      for (int p = 0; p < 3; ++p) {
        const double ms = passes[p].second * 1e3;
        const auto it = torch.find(keys[p]);
        table += fmt::format("| [{},{},{}x{}] {}x{} | {} | {} | {:.2f} | {:.1f} | {:.1f} | {:.0f} % | {} | {} |\n", c.n, c.c,
                             c.hw, c.hw, c.k, c.k, threads, passes[p].first, ms, flops / passes[p].second * 1e-9,
                             flops / g * 1e-9, 100.0 * g / passes[p].second,
                             it == torch.end() ? std::string("") : fmt::format("{:.2f}", it->second),
                             it == torch.end() ? std::string("") : fmt::format("{:.2f}×", it->second / ms));
      }
      std::fprintf(stderr, "conv [%ld,%ld,%ld] %d thread(s) done\n", static_cast<long>(c.n), static_cast<long>(c.c),
                   static_cast<long>(c.hw), threads);
    }
  }
  // Whole training steps of the example CNNs against PyTorch's same network.
  std::string steps =
      "| model | batch | threads | opgraph ms/step | pytorch ms/step | pytorch / opgraph |\n|---|---|---|---|---|---|\n";
  const std::pair<const char*, const char*> models[] = {{"lenet", "lenet.og"}, {"resnet", "resnet_mnist.og"}};
  const std::int64_t batch = quick ? 2 : 64;
  for (const auto& [key, file] : models)
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const double ms = time_model_step(fmt::format("{}/../examples/models/{}", OPGRAPH_BENCH_DIR, file), batch, reps) * 1e3;
      double torch_ms = 0.0;
      if (!python.empty()) {
        const std::string cmd = fmt::format("{} {}/cnn_torch.py {} {} {} {}", python, OPGRAPH_BENCH_DIR, key, batch, threads, reps);
        if (FILE* p = popen(cmd.c_str(), "r")) {
          if (std::fscanf(p, "%lf", &torch_ms) != 1) torch_ms = 0.0;
          pclose(p);
        }
      }
      steps += fmt::format("| examples/models/{} | {} | {} | {:.2f} | {} | {} |\n", file, batch, threads, ms,
                           torch_ms > 0 ? fmt::format("{:.2f}", torch_ms) : std::string(),
                           torch_ms > 0 ? fmt::format("{:.2f}×", torch_ms / ms) : std::string());
    }
  set_num_threads(0);
  table += "\n## Training steps of the example CNNs\n\nOne SGD step (forward, softmax cross-entropy, backward, update), "
           "float32, random images, median of the same number of steps; PyTorch: `bench/cnn_torch.py`, the same layers "
           "in `nn.Sequential` with `torch.optim.SGD`.\n\n" + steps;
  const std::string doc = fmt::format(
      "# conv2d against our GEMM{}\n\nWritten by `build/bench/conv_bench{}`; do not edit by hand.\n\n{}\n\n"
      "float32, padding=same, median of {} calls. GEMM: one [out, in·k·k] × [in·k·k, batch·positions] product, the "
      "work of the forward pass in a single call. The input-gradient pass includes col2im, the kernel-gradient pass "
      "its im2col.{}\n\n{}",
      python.empty() ? "" : " and PyTorch", python.empty() ? "" : " --torch " + python,
      opgraph_bench::machine_description(), reps,
      python.empty() ? ""
                     : " PyTorch: `bench/conv_torch.py`, `F.conv2d` and `torch.autograd.grad` for each gradient alone, "
                       "`torch.set_num_threads` as ours.",
      table);
  if (quick) {
    std::fputs(doc.c_str(), stdout);
    return 0;
  }
  std::ofstream(out_path) << doc;
  std::fputs(doc.c_str(), stdout);
  return 0;
}
