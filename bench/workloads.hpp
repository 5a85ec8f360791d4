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

/// W8: a stack of pre-norm transformer blocks over T positions of d features, each block
/// x + attention(layer_norm(x)) then h + W2·gelu(W1·layer_norm(h) + c1) + c2, then a
/// linear head scoring kClasses8 classes at every position.
inline constexpr std::int64_t kBlocks8 = 2, kModel8 = 128, kHeads8 = 4, kPositions8 = 64, kHidden8 = 4 * kModel8,
                              kClasses8 = 16;

struct Workload {
  std::string name;         // "W1"
  std::string description;  // for the results table
  enum class Kind { mlp, towers, lenet, transformer } kind = Kind::mlp;
  std::vector<std::int64_t> layers;  // mlp: sizes from input to output; lenet: the dense layers; transformer: -
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
      {"W7-64", "LeNet-5 on 28x28 images: conv 5x5 (6, padding 2), max pool 2, conv 5x5 (16), max pool 2, 400-120-84-10 "
       "ReLU, softmax-CE, batch 64", K::lenet, {400, 120, 84, 10}, "relu", "softmax_ce", 64, 0, false, "ms/step", 0.01},
      {"W7-256", "LeNet-5 as W7-64, batch 256", K::lenet, {400, 120, 84, 10}, "relu", "softmax_ce", 256, 0, false,
       "ms/step", 0.01},
      {"W8", "2 pre-norm transformer blocks, d = 128, 4 heads, GELU MLP of 512, T = 64, a 16-class head per position, "
       "softmax-CE, batch 32", K::transformer, {}, "gelu", "softmax_ce", 32, 0, false, "ms/step", 0.01},
  };
}

inline const Workload* find_workload(const std::string& name) {
  static const auto all = workloads();
  for (const auto& w : all)
    if (w.name == name) return &w;
  return nullptr;
}

/// Whether bench/reference.cpp has this network (the dense ones).
inline bool has_reference(const Workload& w) { return w.kind == Workload::Kind::mlp || w.kind == Workload::Kind::towers; }

/// Whether the C++ peers (bench/libtorch_bench.cpp, bench/dlib_bench.cpp) have this
/// network: the MNIST-shaped dense ones a C++ user would write in them, and LeNet-5.
inline bool has_cpp_peers(const Workload& w) {
  return w.name == "W1" || w.name == "W2-64" || w.name == "W2-256" || w.name == "W5" || w.kind == Workload::Kind::lenet;
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
  } else if (w.kind == Workload::Kind::towers) {
    for (int t = 0; t < kTowers; ++t) {
      layer(w.layers[0], w.layers[1], true);
      layer(w.layers[1], w.layers[1], false);
    }
    layer(w.layers[1], w.layers[2], false);
  } else if (w.kind == Workload::Kind::lenet) {
    // The convolutions as the GEMMs they are: [positions, in*k*k] x [in*k*k, out].
    layer(1 * 5 * 5, 6 * 28 * 28, true);       // 784 positions x 25 x 6, counted per image
    layer(6 * 5 * 5, 16 * 10 * 10, false);     // 100 positions x 150 x 16
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l) layer(w.layers[l], w.layers[l + 1], false);
  } else {
    // Per position: q, k, v, o projections; scores and the weighted sum (T keys each);
    // the MLP; then the head. Every product needs its input gradient (the first block's
    // projections feed layer_norm's parameters).
    const std::int64_t d = kModel8;
    for (std::int64_t b = 0; b < kBlocks8; ++b) {
      for (int p = 0; p < 4; ++p) layer(d, d, false);
      layer(d, kPositions8, false);  // q·kᵀ: d x T per position
      layer(kPositions8, d, false);  // p·v
      layer(d, kHidden8, false);
      layer(kHidden8, d, false);
    }
    layer(d, kClasses8, false);
    per_row *= static_cast<double>(kPositions8);
  }
  return per_row * static_cast<double>(w.epoch_rows > 0 ? w.epoch_rows : w.batch);
}

/// Classes of the labels (1 output: two classes, 0 and 1).
inline std::int64_t classes(const Workload& w) {
  if (w.kind == Workload::Kind::transformer) return kClasses8;
  const std::int64_t out = w.layers.back();
  return out == 1 ? 2 : out;
}
/// Features of one sample (an image of 784 pixels; T x d for the transformer).
inline std::int64_t inputs(const Workload& w) {
  if (w.kind == Workload::Kind::lenet) return 28 * 28;
  if (w.kind == Workload::Kind::transformer) return kPositions8 * kModel8;
  return w.layers.front();
}
/// Labels of one sample (one per position for the transformer).
inline std::int64_t labels_per_sample(const Workload& w) {
  return w.kind == Workload::Kind::transformer ? kPositions8 : 1;
}
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
/// Class index of label r (row r, or position r % T of row r / T for the transformer).
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
  float constant = 0.0f;  // the value of every element when scale == 0 (layer norm gains: 1)
  std::int64_t numel() const { return cols ? rows * cols : rows; }
};

inline void add_weight(std::vector<ParamSpec>& out, const std::string& name, std::int64_t rows, std::int64_t cols,
                       double fan_in, double fan_out) {
  const auto seed = static_cast<std::uint64_t>(100 + out.size());
  out.push_back({name, rows, cols, seed, std::sqrt(6.0 / (fan_in + fan_out))});
}
inline void add_dense(std::vector<ParamSpec>& out, const std::string& name, std::int64_t in, std::int64_t width) {
  add_weight(out, name + ".W", in, width, static_cast<double>(in), static_cast<double>(width));
  out.push_back({name + ".b", width, 0, 0, 0.0});
}
/// A conv kernel [out, in, k, k], stored as [out, in*k*k] (the same bytes), and its bias.
inline void add_conv(std::vector<ParamSpec>& out, const std::string& name, std::int64_t in, std::int64_t outs,
                     std::int64_t k) {
  add_weight(out, name + ".W", outs, in * k * k, static_cast<double>(in * k * k), static_cast<double>(outs * k * k));
  out.push_back({name + ".b", outs, 0, 0, 0.0});
}

/// Every parameter of the network, in a fixed order. mlp: layers l0, l1, ...; towers:
/// t0a, t0b, ..., t3b, out; lenet: c1, c2, l0, l1, l2; transformer: per block bK.ln1.g,
/// .ln1.b, .Wq, .Wk, .Wv, .Wo, .ln2.g, .ln2.b, .W1, .c1, .W2, .c2, then ln.g, ln.b, out.W, out.b.
inline std::vector<ParamSpec> param_specs(const Workload& w) {
  std::vector<ParamSpec> specs;
  if (w.kind == Workload::Kind::mlp) {
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l)
      add_dense(specs, "l" + std::to_string(l), w.layers[l], w.layers[l + 1]);
  } else if (w.kind == Workload::Kind::lenet) {
    add_conv(specs, "c1", 1, 6, 5);
    add_conv(specs, "c2", 6, 16, 5);
    for (std::size_t l = 0; l + 1 < w.layers.size(); ++l)
      add_dense(specs, "l" + std::to_string(l), w.layers[l], w.layers[l + 1]);
  } else if (w.kind == Workload::Kind::transformer) {
    const std::int64_t d = kModel8;
    const auto norm = [&](const std::string& name) {
      specs.push_back({name + ".g", d, 0, 0, 0.0, 1.0f});
      specs.push_back({name + ".b", d, 0, 0, 0.0});
    };
    for (std::int64_t b = 0; b < kBlocks8; ++b) {
      const std::string p = "b" + std::to_string(b);
      norm(p + ".ln1");
      for (const char* m : {".Wq", ".Wk", ".Wv", ".Wo"}) add_weight(specs, p + m, d, d, static_cast<double>(d), static_cast<double>(d));
      norm(p + ".ln2");
      add_weight(specs, p + ".W1", d, kHidden8, static_cast<double>(d), static_cast<double>(kHidden8));
      specs.push_back({p + ".c1", kHidden8, 0, 0, 0.0});
      add_weight(specs, p + ".W2", kHidden8, d, static_cast<double>(kHidden8), static_cast<double>(d));
      specs.push_back({p + ".c2", d, 0, 0, 0.0});
    }
    norm("ln");
    add_dense(specs, "out", d, kClasses8);
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
    v[i] = p.scale == 0.0 ? p.constant
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
