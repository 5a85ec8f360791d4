// The training loop: batches in, plan forward/backward, optimizer step, reports out.
#include <opgraph/frontends/train.hpp>

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/graph/op.hpp>

namespace opgraph {

namespace {
/// The prediction head must name at least one class.
PredictionHead checked(const Graph& graph, PredictionHead head) {
  if (head.outputs < 1) {
    const Node& n = graph.node(head.node);
    throw ShapeError(n.origin.empty() ? "node '" + n.name + "'" : n.origin,
                     fmt::format("the prediction '{}' has shape {}: it predicts no class", n.name, n.shape));
  }
  return head;
}
}  // namespace

PredictionHead prediction_head_checked(const Graph& graph);

PredictionHead prediction_head(const Graph& graph) {
  PredictionHead head;
  if (graph.loss()) {
    const Node& loss = graph.node(*graph.loss());
    if (loss.kind == NodeKind::op) {
      const std::string& op = loss.op->name;
      const bool known = op == "softmax_cross_entropy" || op == "binary_cross_entropy_with_logits" ||
                         op == "binary_cross_entropy" || op == "cross_entropy" || op == "mse";
      if (known) {
        head.node = loss.inputs[0];
        head.kind = op == "softmax_cross_entropy"              ? PredictionHead::Kind::logits
                    : op == "binary_cross_entropy_with_logits" ? PredictionHead::Kind::sigmoid_logits
                                                               : PredictionHead::Kind::probabilities;
        const Shape& s = graph.node(head.node).shape;
        head.outputs = s.rank() > 1 ? s.last() : 1;
        return head;
      }
    }
  }
  if (!graph.outputs().empty()) {
    head.node = graph.outputs().front();
    const Shape& s = graph.node(head.node).shape;
    head.outputs = s.rank() > 1 ? s.last() : 1;
    return head;
  }
  throw GraphError("model", "cannot tell which node predicts: use a built-in loss or mark an output");
}

PredictionHead prediction_head_checked(const Graph& graph) { return checked(graph, prediction_head(graph)); }

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Predicted class of row r of a head value [rows, outputs].
template <class T>
std::int64_t predicted(const T* row, std::int64_t outputs, PredictionHead::Kind kind) {
  if (outputs == 1) return kind == PredictionHead::Kind::probabilities ? (row[0] >= T(0.5)) : (row[0] >= T(0));
  std::int64_t best = 0;
  for (std::int64_t j = 1; j < outputs; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

}  // namespace

struct Trainer::Compiled {
  Plan plan;
  std::vector<ParamSlot> params;  // cached: no allocation per step
  Tensor labels;                  // one-hot or reshaped labels, when the model declares them so
  std::string head_name;
};

Trainer::Trainer(Model& model) : model_(model), head_(prediction_head_checked(model.graph)) {
  const auto check_input = [&](const std::string& name, const char* role) {
    const auto id = model_.graph.find(name);
    if (!id || model_.graph.node(*id).kind != NodeKind::input) {
      std::vector<std::string> inputs;
      for (NodeId i : model_.graph.inputs()) inputs.push_back(model_.graph.node(i).name);
      throw GraphError("model", fmt::format("no input '{}' for the {}{}", name, role, suggestion(name, inputs)));
    }
  };
  check_input(model_.input, "samples");
  if (model_.graph.loss()) check_input(model_.labels, "labels");
  const Graph& g = model_.graph;
  if (g.loss()) {
    const Node& loss = g.node(*g.loss());
    if (loss.shape.has_batch() || loss.shape.numel() != 1)
      throw ShapeError(loss.origin.empty() ? "node '" + loss.name + "'" : loss.origin,
                       fmt::format("the loss '{}' has shape {}: training needs one number; reduce it with mean or sum",
                                   loss.name, loss.shape));
  }
  // Every input the loss or the prediction reads must be one the trainer feeds.
  std::vector<char> needed(g.size(), 0);
  std::vector<NodeId> stack{head_.node};
  if (g.loss()) stack.push_back(*g.loss());
  while (!stack.empty()) {
    const NodeId id = stack.back();
    stack.pop_back();
    if (needed[id]) continue;
    needed[id] = 1;
    for (NodeId in : g.node(id).inputs) stack.push_back(in);
  }
  for (NodeId id : g.inputs()) {
    const Node& n = g.node(id);
    if (!needed[id] || n.name == model_.input || (g.loss() && n.name == model_.labels)) continue;
    throw GraphError(n.origin.empty() ? "input '" + n.name + "'" : n.origin,
                     fmt::format("the model reads input '{}', but training feeds only '{}' (the samples){}", n.name,
                                 model_.input, g.loss() ? fmt::format(" and '{}' (the labels)", model_.labels) : ""));
  }
}

Trainer::~Trainer() = default;

void Trainer::set_detect_anomaly(bool on) {
  if (on != detect_anomaly_) plans_.clear();
  detect_anomaly_ = on;
}

void Trainer::set_memory_limit(std::size_t bytes) {
  if (bytes != memory_limit_) plans_.clear();
  memory_limit_ = bytes;
}

void Trainer::check_finite(const Dataset& data) const {
  const std::int64_t d = data.size() ? data.features.numel() / data.size() : 0;
  for (std::int64_t i = 0; i < data.features.numel(); ++i) {
    const double v = data.features.at(i);
    if (!std::isfinite(v))
      throw NumericError(data.name.empty() ? std::string("data") : data.name,
                         fmt::format("sample {} holds {} in feature {}", i / d, v, i % d));
  }
  for (std::int64_t i = 0; i < data.labels.numel(); ++i)
    if (!std::isfinite(data.labels.at(i)))
      throw NumericError(data.name.empty() ? std::string("data") : data.name,
                         fmt::format("sample {} has the label {}", i, data.labels.at(i)));
}

void Trainer::check(const Dataset& data, bool with_labels) const {
  const Shape& in = model_.graph.node(model_.graph.at(model_.input)).shape;
  std::vector<std::int64_t> per_sample(in.dims().begin() + (in.rank() > 0 ? 1 : 0), in.dims().end());
  std::vector<std::int64_t> given(data.features.shape().dims().begin() + 1, data.features.shape().dims().end());
  if (per_sample != given)
    throw DataError(data.name, fmt::format("each sample has shape {}, the model's input '{}' takes {} per sample",
                                           Shape(given), model_.input, Shape(per_sample)));
  if (!with_labels || !model_.graph.loss()) return;
  const std::int64_t classes = data.num_classes();
  const std::int64_t can = head_.outputs == 1 ? 2 : head_.outputs;
  if (classes > can)
    throw DataError(data.name, fmt::format("the data has {} classes, the model predicts {}", classes, can));
}

Trainer::Compiled& Trainer::compiled(std::int64_t rows, bool training) {
  auto& slot = plans_[{rows, training}];
  if (!slot) {
    PlanOptions po;
    po.batch = rows;
    po.backward = training;
    po.keep = {model_.graph.node(head_.node).name};
    po.detect_anomaly = detect_anomaly_;
    po.memory_limit = memory_limit_;
    slot = std::make_unique<Compiled>(Compiled{Plan(model_.graph, model_.params, po), {}, {}, {}});
    slot->head_name = model_.graph.node(head_.node).name;
    if (training) slot->params = slot->plan.parameters();
  }
  return *slot;
}

void Trainer::bind(Compiled& c, const Tensor& features, const Tensor& labels) {
  c.plan.set_input(model_.input, features);
  if (!model_.graph.loss()) return;
  const NodeId lid = model_.graph.at(model_.labels);
  const Shape declared = model_.graph.node(lid).shape.bind(features.shape()[0]);
  if (declared == labels.shape()) {
    c.plan.set_input(model_.labels, labels);
  } else if (declared.numel() == labels.numel()) {  // [n] labels for a [N,1] input
    c.plan.set_input(model_.labels, labels.reshape(declared));
  } else if (declared.rank() == 2 && labels.shape().rank() == 1) {  // class indices for one-hot labels
    if (!c.labels.defined() || c.labels.numel() == 0 || c.labels.shape() != declared)
      c.labels = Tensor(declared, labels.dtype());
    c.labels.copy_from(one_hot(labels, declared[1]).to(labels.dtype()));
    c.plan.set_input(model_.labels, c.labels);
  } else {
    throw ShapeError("model", fmt::format("labels of shape {} do not fit the input '{}' of shape {}", labels.shape(),
                                          model_.labels, model_.graph.node(lid).shape));
  }
}

History Trainer::fit(const Dataset& train_in, Optimizer& optimizer, const TrainOptions& options) {
  if (options.epochs < 1 && options.start_epoch == 0)
    throw DataError("fit", fmt::format("epochs must be at least 1, got {}", options.epochs));
  if (!model_.graph.loss()) throw GraphError("fit", "the model has no loss to train on");
  check(train_in);
  if (options.validation) check(*options.validation);
  if (detect_anomaly_) {
    check_finite(train_in);
    if (options.validation) check_finite(*options.validation);
  }
  const DType dtype = model_.params.dtype();
  const Dataset train = train_in.features.dtype() == dtype ? train_in : train_in.to(dtype);
  Batcher batcher(train, options.batch, options.shuffle, options.seed);
  if (optimizer.options().schedule.kind == Schedule::Kind::cosine && optimizer.options().schedule.epochs <= 0.0)
    optimizer.options().schedule.epochs = options.epochs - optimizer.options().schedule.warmup;

  History history;
  const std::int64_t batches = batcher.batches();
  for (int epoch = options.start_epoch; epoch < options.epochs; ++epoch) {
    const auto t0 = Clock::now();
    batcher.start_epoch(epoch);
    double loss_sum = 0.0;
    std::int64_t correct = 0, seen = 0;
    for (std::int64_t b = 0; b < batches; ++b) {
      const auto batch = batcher.batch(b);
      Compiled& c = compiled(batch.rows, true);
      bind(c, batch.features, batch.labels);
      c.plan.forward();
      const double loss = c.plan.loss();
      loss_sum += loss * static_cast<double>(batch.rows);
      const Tensor out = c.plan.value(c.head_name);
      auto count = [&](const auto* values) {
        for (std::int64_t r = 0; r < batch.rows; ++r)
          correct += predicted(values + r * head_.outputs, head_.outputs, head_.kind) ==
                     static_cast<std::int64_t>(batch.labels.at(r));
      };
      if (dtype == DType::f32) count(out.data<float>());
      else count(out.data<double>());
      seen += batch.rows;
      c.plan.backward();
      optimizer.set_time(static_cast<double>(epoch) + static_cast<double>(b + 1) / static_cast<double>(batches));
      optimizer.step(c.params);
      if (options.on_step)
        options.on_step({epoch + 1, b + 1, batches, seen, train.size(), loss_sum / static_cast<double>(seen),
                         seconds_since(t0)});
    }
    EpochReport report;
    report.epoch = epoch + 1;
    report.epochs = options.epochs;
    report.seconds = seconds_since(t0);
    report.train_loss = loss_sum / static_cast<double>(seen);
    report.train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
    report.learning_rate = optimizer.learning_rate();
    report.samples = seen;
    if (options.validation) {
      const Evaluation v = evaluate(*options.validation);
      report.val_loss = v.loss;
      report.val_accuracy = v.accuracy;
    }
    history.epochs.push_back(report);
    if (options.on_epoch) options.on_epoch(report);
    if (!std::isfinite(report.train_loss)) break;  // nothing more to learn; the caller sees the NaN
    if (options.target_loss > 0.0 && report.train_loss <= options.target_loss) {
      history.reached_target = true;
      break;
    }
  }
  return history;
}

Evaluation Trainer::evaluate(const Dataset& data_in, std::int64_t batch) {
  const DType dtype = model_.params.dtype();
  const Dataset data = data_in.features.dtype() == dtype ? data_in : data_in.to(dtype);
  if (data.size() == 0) throw DataError(data.name, "empty dataset: nothing to evaluate");
  check(data);
  Batcher batcher(data, batch > 0 ? batch : 4096, false, 0);
  const std::int64_t classes = std::max(head_.outputs == 1 ? std::int64_t{2} : head_.outputs, data.num_classes());
  Evaluation e;
  e.confusion.assign(static_cast<std::size_t>(classes), std::vector<std::int64_t>(static_cast<std::size_t>(classes), 0));
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  for (std::int64_t b = 0; b < batcher.batches(); ++b) {
    const auto bt = batcher.batch(b);
    Compiled& c = compiled(bt.rows, false);
    bind(c, bt.features, bt.labels);
    c.plan.forward();
    if (model_.graph.loss()) loss_sum += c.plan.loss() * static_cast<double>(bt.rows);
    const Tensor out = c.plan.value(c.head_name);
    auto tally = [&](const auto* values) {
      for (std::int64_t r = 0; r < bt.rows; ++r) {
        const std::int64_t p = predicted(values + r * head_.outputs, head_.outputs, head_.kind);
        const auto t = static_cast<std::int64_t>(bt.labels.at(r));
        correct += p == t;
        ++e.confusion[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)];
      }
    };
    if (dtype == DType::f32) tally(out.data<float>());
    else tally(out.data<double>());
  }
  e.samples = data.size();
  e.loss = loss_sum / static_cast<double>(data.size());
  e.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
  return e;
}

std::vector<NodeProfile> Trainer::profile(const Dataset& data_in, std::int64_t batch, int steps) {
  check(data_in);
  const DType dtype = model_.params.dtype();
  const Dataset data = data_in.features.dtype() == dtype ? data_in : data_in.to(dtype);
  const std::int64_t rows = std::min(std::max<std::int64_t>(batch, 1), data.size());
  Batcher batcher(data, rows, true, 0);
  PlanOptions po;
  po.batch = rows;
  po.profile = true;
  po.detect_anomaly = detect_anomaly_;
  po.memory_limit = memory_limit_;
  Compiled c{Plan(model_.graph, model_.params, po), {}, {}, model_.graph.node(head_.node).name};
  const bool backward = model_.graph.loss().has_value();
  for (int s = 0; s <= steps; ++s) {
    if (s == 1) c.plan.reset_profile();  // the first pass warms caches and is not counted
    const auto b = batcher.batch(s % std::max<std::int64_t>(batcher.batches() - (batcher.rows_in(batcher.batches() - 1) < rows), 1));
    bind(c, b.features, b.labels);
    c.plan.forward();
    if (backward) c.plan.backward();
  }
  return c.plan.profile();
}

Predictions Trainer::predict(const Tensor& features_in, std::int64_t batch) {
  const DType dtype = model_.params.dtype();
  const Tensor features = features_in.dtype() == dtype ? features_in : features_in.to(dtype);
  const std::int64_t n = features.shape()[0];
  Dataset d;
  d.features = features;
  d.labels = Tensor({n}, dtype);  // placeholder labels: prediction reads no loss
  Batcher batcher(d, batch > 0 ? batch : 4096, false, 0);
  Predictions p;
  p.probabilities = Tensor({n, head_.outputs}, DType::f64);
  p.labels.resize(static_cast<std::size_t>(n));
  std::int64_t row0 = 0;
  for (std::int64_t b = 0; b < batcher.batches(); ++b) {
    const auto bt = batcher.batch(b);
    Compiled& c = compiled(bt.rows, false);
    bind(c, bt.features, bt.labels);
    c.plan.forward();
    const Tensor out = c.plan.value(c.head_name);
    const std::int64_t k = head_.outputs;
    for (std::int64_t r = 0; r < bt.rows; ++r) {
      std::vector<double> z(static_cast<std::size_t>(k));
      for (std::int64_t j = 0; j < k; ++j) z[static_cast<std::size_t>(j)] = out.at(r * k + j);
      if (head_.kind == PredictionHead::Kind::logits && k > 1) {
        const double m = *std::max_element(z.begin(), z.end());
        double s = 0.0;
        for (auto& v : z) s += (v = std::exp(v - m));
        for (auto& v : z) v /= s;
      } else if (head_.kind != PredictionHead::Kind::probabilities) {
        for (auto& v : z) v = 1.0 / (1.0 + std::exp(-v));
      }
      std::int64_t best = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        p.probabilities.set((row0 + r) * k + j, z[static_cast<std::size_t>(j)]);
        if (z[static_cast<std::size_t>(j)] > z[static_cast<std::size_t>(best)]) best = j;
      }
      p.labels[static_cast<std::size_t>(row0 + r)] = k == 1 ? (z[0] >= 0.5) : best;
    }
    row0 += bt.rows;
  }
  return p;
}

History fit(Model& model, const Dataset& train, Optimizer& optimizer, const TrainOptions& options) {
  return Trainer(model).fit(train, optimizer, options);
}

Evaluation evaluate(Model& model, const Dataset& data, std::int64_t batch) {
  return Trainer(model).evaluate(data, batch);
}

Predictions predict(Model& model, const Tensor& features, std::int64_t batch) {
  return Trainer(model).predict(features, batch);
}

}  // namespace opgraph
