// libtorch (PyTorch's C++ API, Debian's libtorch-dev) on one workload: what a C++ user
// would pick instead of opgraph. torch::nn::Linear / Conv2d modules, torch::optim::SGD,
// cross_entropy on logits; the same data and initial weights as every other contender
// (workloads.hpp). Dense networks with a softmax-CE output (W1, W2, W5) and LeNet-5 (W7).
// Threads: torch::set_num_threads; its GEMMs run in OpenBLAS, whose thread count and core
// type bench_suite sets in the environment (as for PyTorch).
#include <torch/torch.h>

#include <numeric>
#include <random>

#include "peer_harness.hpp"

namespace {

using bench::Workload;

torch::Tensor from_spec(const bench::ParamSpec& spec) {
  std::vector<float> v(static_cast<std::size_t>(spec.numel()));
  bench::fill_param(spec, v.data());
  auto t = torch::from_blob(v.data(), {spec.numel()}, torch::kFloat32).clone();
  return spec.cols ? t.reshape({spec.rows, spec.cols}) : t;
}

struct Net : torch::nn::Module {
  std::vector<torch::nn::Conv2d> convs;
  std::vector<torch::nn::Linear> linears;
  bool lenet = false, sigmoid = false;

  explicit Net(const Workload& w) {
    lenet = w.kind == Workload::Kind::lenet;
    sigmoid = w.hidden == "logistic";
    const auto specs = bench::param_specs(w);
    std::size_t s = 0;
    torch::NoGradGuard no_grad;
    if (lenet) {
      const std::int64_t ins[] = {1, 6}, outs[] = {6, 16}, pads[] = {2, 0};
      for (int c = 0; c < 2; ++c, s += 2) {
        auto conv = register_module("c" + std::to_string(c + 1),
                                    torch::nn::Conv2d(torch::nn::Conv2dOptions(ins[c], outs[c], 5).padding(pads[c])));
        conv->weight.copy_(from_spec(specs[s]).reshape({outs[c], ins[c], 5, 5}));
        conv->bias.zero_();
        convs.push_back(conv);
      }
    }
    for (std::size_t l = 0; s < specs.size(); ++l, s += 2) {
      auto lin = register_module("l" + std::to_string(l), torch::nn::Linear(specs[s].rows, specs[s].cols));
      lin->weight.copy_(from_spec(specs[s]).t());  // ours is [in, out], torch's [out, in]
      lin->bias.zero_();
      linears.push_back(lin);
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    if (lenet) {
      x = x.reshape({x.size(0), 1, 28, 28});
      for (auto& c : convs) x = torch::max_pool2d(torch::relu(c->forward(x)), 2);
      x = x.flatten(1);
    }
    for (std::size_t l = 0; l < linears.size(); ++l) {
      x = linears[l]->forward(x);
      if (l + 1 < linears.size()) x = sigmoid ? torch::sigmoid(x) : torch::relu(x);
    }
    return x;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const bench::PeerOptions o = bench::parse_peer("libtorch_bench", argc, argv);
  torch::set_num_threads(o.threads);
  if (o.mode == "baseline") {
    auto t = torch::ones({1 << 16}).mul_(2.0);
    std::printf("{\"mode\":\"baseline\",\"threads\":%d}\n", o.threads);
    return 0;
  }
  Workload w = *bench::find_workload(o.workload);
  if (!((w.kind == Workload::Kind::mlp && w.output == "softmax_ce" && !w.inference) || w.kind == Workload::Kind::lenet))
    bench::peer_usage("libtorch_bench", "covers the dense softmax-CE networks (W1, W2, W5) and LeNet-5 (W7) only");
  if (o.quick) w.epoch_rows = w.epoch_rows ? 4 * w.batch : 0;

  const std::int64_t rows = bench::data_rows(w), cols = bench::inputs(w);
  std::vector<float> xv(static_cast<std::size_t>(rows * cols));
  bench::fill_features(xv.data(), rows, cols);
  std::vector<std::int64_t> lv(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) lv[static_cast<std::size_t>(r)] = bench::label(w, r);
  const torch::Tensor x_all = torch::from_blob(xv.data(), {rows, cols}, torch::kFloat32);
  const torch::Tensor y_all = torch::from_blob(lv.data(), {rows}, torch::kInt64);

  auto net = std::make_shared<Net>(w);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(w.lr));
  const torch::Tensor xb0 = x_all.slice(0, 0, w.batch), yb0 = y_all.slice(0, 0, w.batch);
  auto train = [&](const torch::Tensor& xb, const torch::Tensor& yb) {
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(xb), yb);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
    return loss;
  };
  bench::Peer p;
  p.step = [&] { return train(xb0, yb0).item<double>(); };
  p.epoch = [&](int epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::mt19937_64 rng(static_cast<std::uint64_t>(epoch + 1));
    std::shuffle(order.begin(), order.end(), rng);
    const torch::Tensor perm = torch::from_blob(order.data(), {rows}, torch::kInt64);
    double loss_sum = 0.0;
    for (std::int64_t b = 0; b < rows; b += w.batch) {
      const torch::Tensor idx = perm.slice(0, b, std::min(rows, b + w.batch));
      loss_sum += train(x_all.index_select(0, idx), y_all.index_select(0, idx)).item<double>();
    }
    if (!std::isfinite(loss_sum)) std::fprintf(stderr, "libtorch_bench: the loss is not finite\n");
  };
  return bench::run_peer("libtorch", o, w, p);
}
