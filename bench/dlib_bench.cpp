// dlib 19.24's dnn module (Debian's libdlib-dev) on one workload: what a C++ user would
// pick instead of opgraph. The networks as dlib types (fc, sig/relu, con, max_pool,
// loss_multiclass_log), trained by dnn_trainer with plain SGD (no weight decay, no
// momentum) one mini-batch per train_one_step; the same data and initial weights as every
// other contender (workloads.hpp), written into dlib's parameter tensors, whose layouts are
// ours (fc: [in, out] then the bias row; con: [out, in, k, k] then the biases). dlib does
// its products in BLAS (Debian's OpenBLAS; bench_suite sets its threads and core type) and
// sizes its own thread pool by the cores it may use, so the process is pinned to --threads
// cores.
#include <dlib/dnn.h>

#include <numeric>
#include <random>

#include "peer_harness.hpp"

namespace {

using bench::Workload;
using namespace dlib;

using Column = matrix<float, 0, 1>;
using W1Net = loss_multiclass_log<fc<10, sig<fc<256, input<Column>>>>>;
using W5Net = loss_multiclass_log<fc<10, relu<fc<1024, relu<fc<1024, input<Column>>>>>>>;
/// A 5x5 convolution of stride 1 with the given padding (dlib's con alias pads by half the kernel).
template <long filters, int padding, class SUBNET>
using con5 = add_layer<con_<filters, 5, 5, 1, 1, padding, padding>, SUBNET>;
using LeNet = loss_multiclass_log<fc<10, relu<fc<84, relu<fc<120, max_pool<2, 2, 2, 2, relu<con5<16, 0,
              max_pool<2, 2, 2, 2, relu<con5<6, 2, input<matrix<float>>>>>>>>>>>>>>;

/// Writes the shared initial weights into the network's parameter tensors, input side
/// first; false when the sizes do not line up.
template <class Net>
bool load_weights(Net& net, const Workload& w) {
  std::vector<tensor*> params;
  visit_computational_layers(net, [&](auto& layer) {
    if (layer.get_layer_params().size() > 0) params.push_back(&layer.get_layer_params());
  });
  const auto specs = bench::param_specs(w);
  if (params.size() * 2 != specs.size()) return false;
  // visit_computational_layers goes from the output to the input; the specs the other way.
  std::reverse(params.begin(), params.end());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& weight = specs[2 * i];
    const auto& bias = specs[2 * i + 1];
    if (static_cast<std::int64_t>(params[i]->size()) != weight.numel() + bias.numel()) return false;
    float* p = params[i]->host();
    bench::fill_param(weight, p);
    bench::fill_param(bias, p + weight.numel());
  }
  return true;
}

template <class Net, class Sample>
int run(const bench::PeerOptions& o, const Workload& w, std::vector<Sample> samples) {
  const std::int64_t rows = static_cast<std::int64_t>(samples.size());
  std::vector<unsigned long> labels(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) labels[static_cast<std::size_t>(r)] = static_cast<unsigned long>(bench::label(w, r));
  Net net;
  // One forward pass allocates the parameters; then the shared initial weights go in.
  net.compute_loss(samples.begin(), samples.begin() + std::min<std::int64_t>(rows, 2), labels.begin());
  if (!load_weights(net, w)) {
    std::fprintf(stderr, "dlib_bench: the network's parameters do not match workloads.hpp's\n");
    return 1;
  }
  dnn_trainer<Net> trainer(net, sgd(0.0f, 0.0f));
  trainer.set_learning_rate(w.lr);
  trainer.set_min_learning_rate(w.lr * 1e-3);
  trainer.set_iterations_without_progress_threshold(1000000);  // never shrink the rate
  trainer.set_mini_batch_size(static_cast<unsigned long>(w.batch));
  const auto batch = static_cast<std::ptrdiff_t>(w.batch);

  bench::Peer p;
  const bool verify = o.mode == "verify";
  p.step = [&] {
    // In verify mode the loss of the weights this step starts from (what the other
    // contenders report); timing only trains.
    double loss = 0.0;
    if (verify) loss = trainer.get_net().compute_loss(samples.begin(), samples.begin() + batch, labels.begin());
    trainer.train_one_step(samples.begin(), samples.begin() + batch, labels.begin());
    return loss;
  };
  std::vector<Sample> xb(static_cast<std::size_t>(w.batch));
  std::vector<unsigned long> yb(static_cast<std::size_t>(w.batch));
  p.epoch = [&](int epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::mt19937_64 rng(static_cast<std::uint64_t>(epoch + 1));
    std::shuffle(order.begin(), order.end(), rng);
    for (std::int64_t b = 0; b < rows; b += w.batch) {
      const std::int64_t n = std::min(w.batch, rows - b);
      for (std::int64_t i = 0; i < n; ++i) {
        xb[static_cast<std::size_t>(i)] = samples[static_cast<std::size_t>(order[static_cast<std::size_t>(b + i)])];
        yb[static_cast<std::size_t>(i)] = labels[static_cast<std::size_t>(order[static_cast<std::size_t>(b + i)])];
      }
      trainer.train_one_step(xb.begin(), xb.begin() + n, yb.begin());
    }
  };
  p.sync = [&] { trainer.get_net(); };  // waits for the trainer's thread to finish its steps
  return bench::run_peer("dlib", o, w, p);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::PeerOptions o = bench::parse_peer("dlib_bench", argc, argv);
  bench::pin_to_cores(o.threads);
  if (o.mode == "baseline") {
    W1Net net;
    std::printf("{\"mode\":\"baseline\",\"threads\":%d}\n", o.threads);
    return 0;
  }
  Workload w = *bench::find_workload(o.workload);
  if (o.quick) w.epoch_rows = w.epoch_rows ? 4 * w.batch : 0;
  const std::int64_t rows = bench::data_rows(w), cols = bench::inputs(w);
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  bench::fill_features(x.data(), rows, cols);
  const bool w1 = w.kind == Workload::Kind::mlp && w.layers == std::vector<std::int64_t>{784, 256, 10} &&
                  w.hidden == "logistic" && !w.inference;
  const bool w5 = w.kind == Workload::Kind::mlp && w.layers == std::vector<std::int64_t>{784, 1024, 1024, 10};
  if (w1 || w5) {
    std::vector<Column> samples(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) samples[static_cast<std::size_t>(r)] = mat(x.data() + r * cols, cols, 1);
    return w1 ? run<W1Net>(o, w, std::move(samples)) : run<W5Net>(o, w, std::move(samples));
  }
  if (w.kind == Workload::Kind::lenet) {
    std::vector<matrix<float>> samples(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) samples[static_cast<std::size_t>(r)] = mat(x.data() + r * cols, 28, 28);
    return run<LeNet>(o, w, std::move(samples));
  }
  bench::peer_usage("dlib_bench", "covers W1, W2, W5 and LeNet-5 (W7) only");
}
