// Training a model on a dataset: fit, evaluate, predict, and the histories they report.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/datasets/dataset.hpp>
#include <opgraph/graph/graph.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/optim/communicator.hpp>
#include <opgraph/optim/exchange.hpp>
#include <opgraph/optim/optimizer.hpp>

namespace opgraph {

/// Which features of each sample feed one input: columns [first, first + count) of the
/// sample's flattened features, reshaped to the input's shape (less its batch dimension).
struct Feed {
  std::string input;
  std::int64_t first = 0;
  std::int64_t count = -1;  // -1: every column from `first` on
};

/// A network ready to train: its graph (with a loss), its parameter values and state, and
/// what feeds its inputs. Without `feeds`, every feature of a sample goes to `input`.
/// `labels` names the input fed with the dataset's labels: [N] class indices (real or
/// i64), [N,1] for one sigmoid output, [N,C] one-hot; the trainer converts. A model whose
/// graph has no input of that name trains without labels (an autoencoder's loss compares
/// the output with an input).
struct Model {
  Graph graph;
  Params params;
  std::string input = "x";
  std::string labels = "y";
  std::vector<Feed> feeds = {};
};

/// How the node that predicts is read, as the loss op declares it (OpRole): its classes
/// by argmax (several outputs) or a threshold (one), and the op that turns it into
/// probabilities. Without a loss with a role, the graph's first output, read as values.
struct PredictionHead {
  bool exists = false;
  NodeId node = 0;
  std::int64_t outputs = 1;   // values per sample (the last dimension)
  bool classes = false;       // accuracy and class predictions mean something
  double threshold = 0.5;     // one output: class 1 when the value is at least this
  std::string probabilities;  // op mapping the head to probabilities; "" when it holds them
  bool per_sample = false;    // its first axis is the batch N: a row per sample
};

/// The head of a graph: the prediction input of a loss whose op declares a role, else the
/// graph's first output; `exists` is false when there is neither.
PredictionHead prediction_head(const Graph& graph);

struct EpochReport {
  int epoch = 0;   // 1-based
  int epochs = 0;  // planned
  double train_loss = 0.0;
  double train_accuracy = 0.0;  // over the epoch's batches, as they were seen; NaN without classes to predict
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double learning_rate = 0.0;
  double seconds = 0.0;  // training time of the epoch (not validation)
  std::int64_t samples = 0;
  bool has_validation() const { return val_loss == val_loss; }
  bool has_accuracy() const { return train_accuracy == train_accuracy; }
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
  /// Random shifts and flips of the training images (never of validation or test data).
  Augment augment = {};
  /// Parameters the optimizer leaves as they are (fine-tuning the last layers of an
  /// imported model): names, or prefixes ending in '*' ("conv1.*"). Their gradients are
  /// still computed; a name that matches no parameter is an error.
  std::vector<std::string> frozen = {};
  /// Data-parallel training (docs/distributed.md): every process of `communicator` calls
  /// fit with the same model, data and options; each computes its block of the
  /// `exchange.shards` shards of every batch, and every process applies the same update.
  /// The result depends on the shard count, never on the process count or threads. Null:
  /// this process alone, one shard.
  Communicator* communicator = nullptr;
  ExchangeOptions exchange = {};
  std::function<void(const EpochReport&)> on_epoch = {};
  std::function<void(const StepReport&)> on_step = {};
};

struct History {
  std::vector<EpochReport> epochs;
  bool reached_target = false;
};

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;  // NaN when the model predicts no classes (or trains without labels)
  std::int64_t samples = 0;
  /// Labels per sample: 1, or T for sequence labels [n, T], where `accuracy` is per
  /// position (positions labelled < 0 are ignored) and `sequence_accuracy` the share of
  /// samples right at every position (NaN for one label per sample).
  std::int64_t positions = 1;
  double sequence_accuracy = 0.0;
  /// confusion[true][predicted]
  std::vector<std::vector<std::int64_t>> confusion;
};

struct Predictions {
  Tensor probabilities;  // [n, C], or [n, 1] for one sigmoid output; [n, T, C] for a class per position; the head's values, in its shape, when it predicts no classes
  std::vector<std::int64_t> labels;  // n (or n * T) classes, -1 where the output is NaN; empty when it predicts no classes
  bool classes = false;              // whether the model predicts classes (labels then hold one each, of none for n = 0)
};

/// Per-node statistics of one epoch (Trainer::set_stats): over every element of the
/// node's value (and of its gradient) in every step of the epoch.
struct NodeStats {
  int epoch = 0;
  std::string node, op;
  double value_mean = 0.0, value_std = 0.0, value_max_abs = 0.0;
  double grad_mean = 0.0, grad_std = 0.0, grad_max_abs = 0.0;  // NaN when no gradient reaches the node
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

  /// Turns NaN/Inf localisation on: plans check every value they compute, datasets are
  /// checked before training (a bad sample is reported by its index), parameters after
  /// every optimizer update (the update that broke one is blamed, with its gradient's
  /// norm), and errors name the epoch and step. See PlanOptions::detect_anomaly.
  void set_detect_anomaly(bool on);
  /// Collects per-node statistics of values and gradients during fit, one row per node
  /// per epoch (stats()). Costs a pass over every tensor each step.
  void set_stats(bool on);
  const std::vector<NodeStats>& stats() const { return stats_; }
  /// Refuses, with a GraphError before allocating, any plan whose buffers would exceed
  /// `bytes` (0: no limit). See PlanOptions::memory_limit.
  void set_memory_limit(std::size_t bytes);

  /// Checks that `data` fits the model: features per sample against the inputs they feed,
  /// and (with labels) classes against the prediction head. Throws DataError.
  void check(const Dataset& data, bool with_labels = true) const;

  const PredictionHead& head() const { return head_; }
  /// Whether the dataset's labels feed an input (false: training without labels).
  bool supervised() const { return supervised_; }
  /// Whether accuracy is measured: labels, and a head that predicts classes, a row per sample.
  bool measures_accuracy() const { return supervised_ && head_.exists && head_.classes && head_.per_sample; }
  /// Throws ShapeError naming `what` unless the head holds a row per sample (its first
  /// axis is the batch): a reduction over the batch, or a transpose moving it, holds none.
  void require_rows(const char* what) const;

 private:
  struct Compiled;
  struct ResolvedFeed {
    NodeId input;
    std::int64_t first, count;
  };
  Compiled& compiled(std::int64_t rows, bool training);
  struct Parallel;
  /// One data-parallel step: this process's shards of batch b forward and backward, the
  /// exchange, and the batch's loss and counts over every shard. Returns the plan whose
  /// parameter slots hold the summed gradients.
  Compiled& parallel_step(Batcher& batcher, std::int64_t b, std::int64_t step, const Optimizer& optimizer,
                          const std::string& name, double& loss_sum, std::int64_t& correct, std::int64_t& tokens);
  /// Adds the batch's right predictions and counted positions (labels >= 0) to the tallies.
  void count_correct(const Compiled& c, const Tensor& labels, std::int64_t rows, std::int64_t& correct,
                     std::int64_t& tokens) const;
  void bind(Compiled& c, const Tensor& features, const Tensor& labels);
  std::vector<ResolvedFeed> resolve_feeds(std::int64_t width) const;
  void collect_stats(Compiled& c, int epoch);
  struct UpdateBlame {
    std::string name;
    double moved = 0.0, size = 0.0, ratio = 0.0, grad_norm = 0.0;
    std::string text(double learning_rate) const;
  };
  UpdateBlame largest_update() const;
  void check_update(const Optimizer& optimizer, const std::string& step) const;
  NumericError blame(const NumericError& e, const Optimizer& optimizer, const std::string& step) const;

  /// Throws NumericError for a feature or label that is NaN or infinite, saying what it
  /// would do (`consequence`: training would turn the weights to NaN; an evaluation or a
  /// prediction would be NaN, and its argmax a made-up class). A buffer that passed is
  /// remembered (by its owner, address and size) and not scanned again: the benchmark's
  /// epochs, and any loop of one-epoch fits, pay for the pass once.
  void check_finite(const Dataset& data,
                    std::string_view consequence = "training on it would turn the weights to NaN");
  struct CheckedBuffer {
    std::weak_ptr<void> owner;
    const void* data = nullptr;
    std::int64_t numel = 0;
  };
  std::vector<CheckedBuffer> checked_;  // the last few buffers check_finite passed
  /// Per node: whether TrainOptions::frozen names it; throws GraphError for a name that
  /// matches no parameter.
  std::vector<char> frozen_mask(const std::vector<std::string>& frozen) const;

  Model& model_;
  PredictionHead head_;
  bool supervised_ = false;
  bool detect_anomaly_ = false;
  bool stats_on_ = false;
  std::size_t memory_limit_ = 0;
  std::uint64_t seed_ = 0;
  std::map<std::pair<std::int64_t, bool>, std::unique_ptr<Compiled>> plans_;
  bool plans_hooked_ = false;             // the cached plans report final gradients (on_gradient)
  std::unique_ptr<Parallel> parallel_;    // during a data-parallel fit
  std::unique_ptr<Graph> predict_graph_;
  std::vector<Tensor> before_;          // parameters before the last update (detect_anomaly)
  std::vector<ParamSlot> last_params_;  // what the last update changed
  std::string last_step_;
  std::vector<NodeStats> stats_;
  struct Accumulator {
    double sum = 0, sum2 = 0, max_abs = 0;
    std::int64_t n = 0;
  };
  std::vector<std::pair<Accumulator, Accumulator>> stat_acc_;  // per node: value, gradient
};

History fit(Model& model, const Dataset& train, Optimizer& optimizer, const TrainOptions& options);
Evaluation evaluate(Model& model, const Dataset& data, std::int64_t batch = 0);
Predictions predict(Model& model, const Tensor& features, std::int64_t batch = 0);

}  // namespace opgraph
