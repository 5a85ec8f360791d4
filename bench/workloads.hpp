// The benchmark workloads: one training step is forward + loss + backward + SGD update,
// float32. Shared by the opgraph and hand-written contenders (the PyTorch one mirrors it).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

/// W6: independent towers joined by add.
inline constexpr int kTowers = 4;

struct Workload {
  std::string name;         // "W1"
  std::string description;  // for the results table
  enum class Kind { mlp, towers } kind = Kind::mlp;
  std::vector<std::int64_t> layers;  // mlp: sizes from input to output
  std::string hidden;                // hidden activation: "logistic" or "relu"
  std::string output;                // "softmax_ce" (logits), "softmax_then_ce" (probabilities), "sigmoid_bce"
  std::int64_t batch = 0;
  std::int64_t epoch_rows = 0;  // > 0: time a whole epoch over this many rows (shuffled minibatches)
  bool inference = false;       // forward only
  std::string unit;             // "ms/step", "us/step", "s/epoch"
  double lr = 0.01;
};

inline std::vector<Workload> workloads() {
  using K = Workload::Kind;
  return {
      {"W1", "784-256-10, sigmoid hidden, softmax-CE, full batch of 10 000", K::mlp, {784, 256, 10}, "logistic",
       "softmax_ce", 10000, 0, false, "ms/step", 0.1},
      {"W2-64", "784-256-10 as W1, minibatches of 64 over 60 000 rows", K::mlp, {784, 256, 10}, "logistic", "softmax_ce",
       64, 60000, false, "s/epoch", 0.1},
      {"W2-256", "784-256-10 as W1, minibatches of 256 over 60 000 rows", K::mlp, {784, 256, 10}, "logistic",
       "softmax_ce", 256, 60000, false, "s/epoch", 0.1},
      {"W3-xor", "XOR 2-2-1 sigmoid, binary CE, 4 samples", K::mlp, {2, 2, 1}, "logistic", "sigmoid_bce", 4, 0, false,
       "us/step", 0.3},
      {"W3-iris", "iris-shaped 4-8-3 sigmoid, softmax-CE, 150 samples", K::mlp, {4, 8, 3}, "logistic", "softmax_ce", 150,
       0, false, "us/step", 0.1},
      {"W4", "3 -> 3 relu -> 3 logistic -> 3 softmax, cross-entropy, 210 samples", K::mlp, {3, 3, 3, 3}, "relu/logistic",
       "softmax_then_ce", 210, 0, false, "us/step", 0.1},
      {"W5", "784-1024-1024-10 ReLU, softmax-CE, batch 256", K::mlp, {784, 1024, 1024, 10}, "relu", "softmax_ce", 256,
       0, false, "ms/step", 0.01},
      {"W6", "four independent 256-wide towers (2 ReLU layers each) joined by add, 256 -> 10, batch 256", K::towers,
       {256, 256, 10}, "relu", "softmax_ce", 256, 0, false, "ms/step", 0.01},
      {"I1", "inference only: W1's net, forward at batch 10 000", K::mlp, {784, 256, 10}, "logistic", "softmax_ce",
       10000, 0, true, "ms/step", 0.0},
  };
}

inline const Workload* find_workload(const std::string& name) {
  static const auto all = workloads();
  for (const auto& w : all)
    if (w.name == name) return &w;
  return nullptr;
}

/// The activation of hidden layer l (0-based): W4 alternates relu then logistic.
inline std::string hidden_activation(const Workload& w, std::size_t l) {
  if (w.hidden == "relu/logistic") return l == 0 ? "relu" : "logistic";
  return w.hidden;
}

/// Multiply-add work of one step in the GEMMs, counted as 2 flops each: forward x·W per
/// layer; backward xᵀ·dz per layer and dz·Wᵀ for every layer but the first. An epoch
/// workload counts one epoch.
inline double step_flops(const Workload& w) {
  double per_row = 0.0;
  auto layer = [&](std::int64_t in, std::int64_t out, bool first) {
    const double f = 2.0 * static_cast<double>(in) * static_cast<double>(out);
    per_row += w.inference ? f : (first ? 2.0 : 3.0) * f;
  };
  if (w.kind == Workload::Kind::mlp) {
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l) layer(w.layers[l], w.layers[l + 1], l == 0);
  } else {
    for (int t = 0; t < kTowers; ++t) {
      layer(w.layers[0], w.layers[1], true);
      layer(w.layers[1], w.layers[1], false);
    }
    layer(w.layers[1], w.layers[2], false);
  }
  return per_row * static_cast<double>(w.epoch_rows > 0 ? w.epoch_rows : w.batch);
}

/// Classes of the labels (1 output: two classes, 0 and 1).
inline std::int64_t classes(const Workload& w) {
  const std::int64_t out = w.layers.back();
  return out == 1 ? 2 : out;
}
inline std::int64_t inputs(const Workload& w) { return w.layers.front(); }
/// Rows of the data set a run holds: the epoch for W2, one batch otherwise.
inline std::int64_t data_rows(const Workload& w) { return w.epoch_rows > 0 ? w.epoch_rows : w.batch; }

// ---- Data and initial weights every contender computes the same way (torch_bench.py too),
// so that their losses after a few steps can be compared.

/// splitmix64 of (seed << 32) ^ i.
inline std::uint64_t mix(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = ((seed << 32) ^ i) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/// Uniform in [0, 1), 24 bits.
inline float uniform(std::uint64_t seed, std::uint64_t i) {
  return static_cast<float>(mix(seed, i) >> 40) * (1.0f / 16777216.0f);
}

/// Features [rows, inputs]: uniform in [0, 1), like scaled pixels.
inline void fill_features(float* x, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t i = 0; i < rows * cols; ++i) x[i] = uniform(1, static_cast<std::uint64_t>(i));
}
/// Class index of row r.
inline std::int64_t label(const Workload& w, std::int64_t r) {
  return static_cast<std::int64_t>(mix(2, static_cast<std::uint64_t>(r)) % static_cast<std::uint64_t>(classes(w)));
}

/// A parameter: [rows, cols] (cols == 0: a vector [rows]); weights uniform in
/// [-scale, scale) (Xavier), biases zero.
struct ParamSpec {
  std::string name;
  std::int64_t rows = 0, cols = 0;
  std::uint64_t seed = 0;
  double scale = 0.0;
  std::int64_t numel() const { return cols ? rows * cols : rows; }
};

inline void add_dense(std::vector<ParamSpec>& out, const std::string& name, std::int64_t in, std::int64_t width) {
  const auto seed = static_cast<std::uint64_t>(100 + out.size());
  out.push_back({name + ".W", in, width, seed, std::sqrt(6.0 / static_cast<double>(in + width))});
  out.push_back({name + ".b", width, 0, 0, 0.0});
}

/// Every parameter of the network, in a fixed order. mlp: layers l0, l1, ...; towers:
/// t0a, t0b, ..., t3b, out.
inline std::vector<ParamSpec> param_specs(const Workload& w) {
  std::vector<ParamSpec> specs;
  if (w.kind == Workload::Kind::mlp) {
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l)
      add_dense(specs, "l" + std::to_string(l), w.layers[l], w.layers[l + 1]);
  } else {
    for (int t = 0; t < kTowers; ++t) {
      add_dense(specs, "t" + std::to_string(t) + "a", w.layers[0], w.layers[1]);
      add_dense(specs, "t" + std::to_string(t) + "b", w.layers[1], w.layers[1]);
    }
    add_dense(specs, "out", w.layers[1], w.layers[2]);
  }
  return specs;
}

inline void fill_param(const ParamSpec& p, float* v) {
  for (std::int64_t i = 0; i < p.numel(); ++i)
    v[i] = p.scale == 0.0 ? 0.0f
                          : static_cast<float>((2.0 * uniform(p.seed, static_cast<std::uint64_t>(i)) - 1.0) * p.scale);
}

/// FNV-1a over the bytes of every parameter, in spec order: equal checksums mean bitwise
/// equal weights.
inline std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace bench
