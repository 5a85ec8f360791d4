// Training a model on a dataset: fit, evaluate, predict, and the histories they report.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <opgraph/datasets/dataset.hpp>
#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/optim/optimizer.hpp>

namespace opgraph {

/// A network ready to train: its graph (with a loss), its parameter values, and which
/// inputs take the samples and the labels. Labels may be declared [N] (class indices),
/// [N,1] (one sigmoid output) or [N,C] (one-hot); datasets hold class indices and the
/// trainer feeds them in the declared form.
struct Model {
  Graph graph;
  Params params;
  std::string input = "x";
  std::string labels = "y";
};

/// How the node that predicts is read, decided by the loss: softmax_cross_entropy reads
/// its input as logits, binary_cross_entropy_with_logits as sigmoid logits, the other
/// losses as probabilities (or values, for mse).
struct PredictionHead {
  enum class Kind : std::uint8_t { probabilities, logits, sigmoid_logits };
  NodeId node = 0;
  Kind kind = Kind::probabilities;
  std::int64_t outputs = 1;  // 1: binary (>= 0.5), more: argmax
};

/// The head of a graph: the loss's first input when the loss is a built-in loss, else
/// the graph's first output. Throws GraphError when neither exists.
PredictionHead prediction_head(const Graph& graph);

struct EpochReport {
  int epoch = 0;   // 1-based
  int epochs = 0;  // planned
  double train_loss = 0.0;
  double train_accuracy = 0.0;  // over the epoch's batches, as they were seen
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double learning_rate = 0.0;
  double seconds = 0.0;  // training time of the epoch (not validation)
  std::int64_t samples = 0;
  bool has_validation() const { return val_loss == val_loss; }
};

struct StepReport {
  int epoch = 0;
  std::int64_t batch = 0, batches = 0;
  std::int64_t samples_done = 0, samples_total = 0;
  double running_loss = 0.0;
  double seconds = 0.0;  // since the epoch started
};

struct TrainOptions {
  int epochs = 10;
  /// Rows per step: 0 for full-batch gradient descent, 1 for one sample at a time.
  std::int64_t batch = 0;
  bool shuffle = true;
  std::uint64_t seed = 0;
  /// Stop after the first epoch whose training loss is at most this (0: never).
  double target_loss = 0.0;
  /// Epochs already done (when resuming); training runs epochs start_epoch+1 .. epochs.
  int start_epoch = 0;
  const Dataset* validation = nullptr;
  std::function<void(const EpochReport&)> on_epoch = {};
  std::function<void(const StepReport&)> on_step = {};
};

struct History {
  std::vector<EpochReport> epochs;
  bool reached_target = false;
};

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t samples = 0;
  /// confusion[true][predicted]
  std::vector<std::vector<std::int64_t>> confusion;
};

struct Predictions {
  Tensor probabilities;  // [n, C], or [n, 1] for one sigmoid output
  std::vector<std::int64_t> labels;
};

/// Runs a Model: compiles a plan per batch size on first use and reuses it, so a loop of
/// fit/evaluate calls compiles each shape once. Results are bitwise identical for any
/// thread count.
class Trainer {
 public:
  explicit Trainer(Model& model);
  ~Trainer();

  /// Trains with `optimizer` and returns per-epoch loss and accuracy (train and, with
  /// options.validation, validation).
  History fit(const Dataset& train, Optimizer& optimizer, const TrainOptions& options);
  /// Mean loss, accuracy and confusion matrix over `data`, `batch` rows at a time (0: 4096).
  Evaluation evaluate(const Dataset& data, std::int64_t batch = 0);
  /// Probabilities and predicted labels (argmax, or >= 0.5 for one output).
  Predictions predict(const Tensor& features, std::int64_t batch = 0);

  /// Times `steps` forward+backward passes on batches of `data` (after one warm-up pass),
  /// node by node.
  std::vector<NodeProfile> profile(const Dataset& data, std::int64_t batch, int steps);

  /// Turns NaN/Inf localisation on: plans check every value they compute, and datasets are
  /// checked before training (a bad sample is reported by its index). See
  /// PlanOptions::detect_anomaly.
  void set_detect_anomaly(bool on);
  /// Refuses, with a GraphError before allocating, any plan whose buffers would exceed
  /// `bytes` (0: no limit). See PlanOptions::memory_limit.
  void set_memory_limit(std::size_t bytes);

  /// Checks that `data` fits the model: features per sample against the sample input's
  /// shape, and (with labels) classes against the prediction head. Throws DataError.
  void check(const Dataset& data, bool with_labels = true) const;

  const PredictionHead& head() const { return head_; }

 private:
  struct Compiled;
  Compiled& compiled(std::int64_t rows, bool training);
  void bind(Compiled& c, const Tensor& features, const Tensor& labels);

  void check_finite(const Dataset& data) const;

  Model& model_;
  PredictionHead head_;
  bool detect_anomaly_ = false;
  std::size_t memory_limit_ = 0;
  std::map<std::pair<std::int64_t, bool>, std::unique_ptr<Compiled>> plans_;
};

History fit(Model& model, const Dataset& train, Optimizer& optimizer, const TrainOptions& options);
Evaluation evaluate(Model& model, const Dataset& data, std::int64_t batch = 0);
Predictions predict(Model& model, const Tensor& features, std::int64_t batch = 0);

}  // namespace opgraph
