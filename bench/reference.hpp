// The hand-written floor: each workload's forward pass, loss, backward pass and SGD update
// written by hand for float32, with opgraph's GEMM (the same one the framework uses) and
// plain TBB loops, no graph, no framework. What a careful programmer writes for one
// network: bias and activation fused into one pass after each GEMM, softmax and
// cross-entropy fused into one pass that also writes the gradient, buffers allocated once.
#pragma once

#include <cstdint>
#include <vector>

#include "workloads.hpp"

namespace bench {

class Reference {
 public:
  /// Buffers for batches of up to `max_batch` rows.
  Reference(const Workload& w, std::int64_t max_batch);

  /// Parameters in param_specs order.
  std::vector<std::vector<float>>& params() { return params_; }
  /// One training step on `rows` rows: x [rows, inputs], labels (class indices). Returns
  /// the mean loss; counts correct predictions into *correct when given.
  double train_step(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct = nullptr);
  /// Forward only: the loss.
  double forward(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct = nullptr);
  /// Bytes of every buffer this network allocated (parameters, gradients, activations).
  std::size_t bytes() const;

 private:
  enum class Act : std::uint8_t { none, relu, logistic };
  struct Layer {
    std::int64_t in = 0, out = 0;
    float *w = nullptr, *b = nullptr, *dw = nullptr, *db = nullptr;
    Act act = Act::none;
    std::vector<float> a;  // activation [rows, out] (logits of the last layer)
  };
  double run_forward(const float* x, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct);
  void dense(Layer& l, const float* x, std::int64_t rows);
  double loss(Layer& last, const std::int64_t* labels, std::int64_t rows, std::int64_t* correct);
  void dense_backward(Layer& l, const float* x, const float* dz, std::int64_t rows, float* dx);
  void column_sums(const float* dz, std::int64_t rows, std::int64_t cols, float* out);
  void sgd();

  const Workload& w_;
  std::int64_t max_batch_;
  std::vector<std::vector<float>> params_, grads_;
  std::vector<Layer> layers_;      // mlp: in order; towers: t0a, t0b, t1a, ..., out
  std::vector<float> sum_;         // towers: the joined activation
  std::vector<float> d1_, d2_, d3_;  // gradient scratch [rows, widest]
  std::vector<float> row_loss_;      // per row
  std::vector<unsigned char> hit_;   // per row: predicted the label
  std::vector<float> partials_;    // column-sum partials
};

}  // namespace bench
