// The training loop: batches in, plan forward/backward, optimizer step, reports out. How a
// loss is read (which input predicts, the threshold, the probabilities op) comes from the
// op's declared role: no op is named here.
#include <opgraph/frontends/train.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/graph/numeric.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/registry.hpp>

namespace opgraph {

namespace {

std::string where(const Node& n) { return n.origin.empty() ? "node '" + n.name + "'" : n.origin; }

std::int64_t last_dim(const Shape& s) { return s.rank() > 1 ? s.last() : 1; }

/// Nodes the given ones read, themselves included.
std::vector<char> upstream(const Graph& g, std::vector<NodeId> from) {
  return from.empty() ? std::vector<char>(g.size(), 0) : g.ancestors(from, false);
}

}  // namespace

PredictionHead prediction_head(const Graph& graph) {
  PredictionHead head;
  const auto read = [&](NodeId node) {
    const Shape& shape = graph.node(node).shape;
    head.node = node;
    head.outputs = last_dim(shape);
    head.per_sample = shape.rank() > 0 && shape[0] == N;
  };
  if (graph.loss()) {
    const Node& loss = graph.node(*graph.loss());
    if (loss.kind == NodeKind::op && loss.op->role.kind == OpRole::Kind::loss) {
      const OpRole& role = loss.op->role;
      head.exists = true;
      read(loss.inputs[static_cast<std::size_t>(role.prediction)]);
      head.classes = role.classes;
      head.threshold = role.threshold;
      head.probabilities = role.probabilities;
      return head;
    }
  }
  if (!graph.outputs().empty()) {
    head.exists = true;
    read(graph.outputs().front());
  }
  return head;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Predicted class of a row of head values.
template <class T>
std::int64_t predicted(const T* row, const PredictionHead& head) {
  for (std::int64_t j = 0; j < head.outputs; ++j)
    if (std::isnan(row[j])) return -1;  // no class: an argmax over NaN would make one up (class 0)
  if (head.outputs == 1) return row[0] >= static_cast<T>(head.threshold);
  std::int64_t best = 0;
  for (std::int64_t j = 1; j < head.outputs; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

/// "epoch 3, step 12 of 40" for errors met while training.
std::string step_name(int epoch, std::int64_t b, std::int64_t batches) {
  return fmt::format("epoch {}, step {} of {}", epoch + 1, b + 1, batches);
}

}  // namespace

struct Trainer::Parallel {
  Parallel(Communicator& comm, const ExchangeOptions& options) : exchange(comm, options) {}
  GradientExchange exchange;
  int shard = -1;                              // the shard whose backward pass runs
  double weight = 0.0;                         // its share of the batch's rows
  const std::vector<ParamSlot>* slots = nullptr;  // its plan's parameters
  std::vector<Tensor*> state;                  // running statistics and other op state
  std::vector<Tensor> state_start;             // their values when the step began
  std::vector<std::int64_t> sizes;             // per exchanged value
  std::vector<Tensor*> outputs;
  std::vector<double> metrics;                 // per shard: loss x rows, right, counted
};

struct Trainer::Compiled {
  Plan plan;
  std::vector<ParamSlot> params;     // cached: no allocation per step
  Tensor labels;                     // one-hot, reshaped or i64 labels, when the model declares them so
  std::vector<Tensor> inputs;        // per feed, when a feed is not the whole sample as it is
  std::string head_name;
  std::vector<ParamSlot> updated = {};  // the params not frozen (TrainOptions::frozen)
};

Trainer::Trainer(Model& model) : model_(model), head_(prediction_head(model.graph)) {
  const Graph& g = model_.graph;
  if (head_.exists && !is_symbolic(head_.outputs) && head_.outputs < 1) {
    const Node& n = g.node(head_.node);
    throw ShapeError(where(n), fmt::format("the prediction '{}' has shape {}: it predicts {}", n.name, n.shape,
                                           head_.classes ? "no class" : "nothing"));
  }
  if (g.loss()) {
    const Node& loss = g.node(*g.loss());
    if (loss.shape.has_symbols() || loss.shape.numel() != 1)
      throw ShapeError(where(loss), fmt::format("the loss '{}' has shape {}: training needs one number; reduce it with "
                                                "mean or sum",
                                                loss.name, loss.shape));
  }
  auto input_named = [&](const std::string& name) -> std::optional<NodeId> {
    const auto id = g.find(name);
    if (id && g.node(*id).kind == NodeKind::input) return id;
    return std::nullopt;
  };
  auto no_input = [&](const std::string& name, const char* role) {
    std::vector<std::string> inputs;
    for (NodeId i : g.inputs()) inputs.push_back(g.node(i).name);
    return GraphError("model", fmt::format("no input '{}' for the {}{}", name, role, suggestion(name, inputs)));
  };
  if (model_.feeds.empty()) {
    if (!input_named(model_.input)) throw no_input(model_.input, "samples");
  } else {
    for (const Feed& f : model_.feeds)
      if (!input_named(f.input)) throw no_input(f.input, "samples");
  }
  // Every input the loss or the prediction reads must be one the trainer feeds.
  std::vector<NodeId> roots;
  if (head_.exists) roots.push_back(head_.node);
  if (g.loss()) roots.push_back(*g.loss());
  const std::vector<char> needed = upstream(g, roots);
  const auto labels = input_named(model_.labels);
  supervised_ = labels && needed[*labels];
  std::vector<std::string> fed;
  if (model_.feeds.empty()) fed.push_back("'" + model_.input + "'");
  for (const Feed& f : model_.feeds) fed.push_back("'" + f.input + "'");
  for (NodeId id : g.inputs()) {
    const Node& n = g.node(id);
    if (!needed[id] || (supervised_ && id == *labels)) continue;
    if (std::find(fed.begin(), fed.end(), "'" + n.name + "'") != fed.end()) continue;
    // Most likely the labels were given a name the graph does not have.
    if (!labels && !model_.labels.empty()) throw no_input(model_.labels, "labels");
    throw GraphError(where(n), fmt::format("the model reads input '{}', but nothing feeds it: training feeds {} (the "
                                           "samples){}; give each input its columns (C++: Model::feeds; opgraph train: "
                                           "the data spec's inputs=NAME:FIRST-LAST/...)",
                                           n.name, fmt::join(fed, ", "),
                                           supervised_ ? fmt::format(" and '{}' (the labels)", model_.labels) : ""));
  }
}

Trainer::~Trainer() = default;

void Trainer::set_detect_anomaly(bool on) {
  if (on != detect_anomaly_) plans_.clear();
  detect_anomaly_ = on;
}

void Trainer::set_stats(bool on) {
  if (on != stats_on_) plans_.clear();
  stats_on_ = on;
}

void Trainer::set_memory_limit(std::size_t bytes) {
  if (bytes != memory_limit_) plans_.clear();
  memory_limit_ = bytes;
}

namespace {
/// The index of the first value of t that is NaN or infinite, or -1. Blocks of values in
/// parallel, each a branch-free test of the exponent bits that the compiler vectorises,
/// then the first bad block searched: a pass over MNIST's 47 million features in a few
/// milliseconds, a small part of an epoch (the benchmark's W2 calls fit once per epoch).
std::int64_t first_non_finite(const Tensor& t) {
  const auto scan = [&]<class U, class Bits>(const U* p, Bits exponent) -> std::int64_t {
    constexpr std::int64_t kBlock = 1 << 14;
    const std::int64_t n = t.numel(), blocks = (n + kBlock - 1) / kBlock;
    std::vector<char> bad(static_cast<std::size_t>(blocks), 0);
    parallel_for(blocks, 16, [&](std::int64_t b0, std::int64_t b1) {
      for (std::int64_t b = b0; b < b1; ++b) {
        const std::int64_t e = std::min(n, (b + 1) * kBlock);
        Bits any = 0;
        for (std::int64_t i = b * kBlock; i < e; ++i) {
          Bits bits;
          std::memcpy(&bits, p + i, sizeof bits);
          any |= static_cast<Bits>((bits & exponent) == exponent);  // all-ones exponent: NaN or infinity
        }
        bad[static_cast<std::size_t>(b)] = any != 0;
      }
    });
    for (std::int64_t b = 0; b < blocks; ++b)
      if (bad[static_cast<std::size_t>(b)]) return b * kBlock + opgraph::first_non_finite(p + b * kBlock, n - b * kBlock);
    return -1;
  };
  if (t.dtype() == DType::f32) return scan(t.data<float>(), std::uint32_t{0x7f800000});
  if (t.dtype() == DType::f64) return scan(t.data<double>(), std::uint64_t{0x7ff0000000000000});
  const std::vector<double> all = t.to_vector();  // integer features: no NaN, but the same answer
  return opgraph::first_non_finite(all.data(), static_cast<long long>(all.size()));
}
}  // namespace

void Trainer::check_finite(const Dataset& data, std::string_view consequence) {
  const auto known = [&](const Tensor& t) {
    // The same live buffer: an expired owner never compares equal to a new one, even at the
    // same address.
    return std::any_of(checked_.begin(), checked_.end(), [&](const CheckedBuffer& c) {
      return !c.owner.expired() && !c.owner.owner_before(t.owner()) && !t.owner().owner_before(c.owner) &&
             c.data == t.raw() && c.numel == t.numel();
    });
  };
  const auto remember = [&](const Tensor& t) {  // after known(t) said no
    if (!t.owner()) return;
    if (checked_.size() >= 4) checked_.erase(checked_.begin());
    checked_.push_back({t.owner(), t.raw(), t.numel()});
  };
  const std::string name = data.name.empty() ? std::string("data") : data.name;
  const std::int64_t d = data.size() ? data.features.numel() / data.size() : 0;
  const std::string fix = fmt::format("{}: drop or fill such samples", consequence);
  if (!known(data.features)) {
    if (const std::int64_t i = first_non_finite(data.features); i >= 0)
      throw NumericError(name, fmt::format("sample {} holds {} in feature {}: {}", i / d, data.features.at(i), i % d, fix));
    remember(data.features);
  }
  if (!known(data.labels)) {
    if (const std::int64_t i = first_non_finite(data.labels); i >= 0)
      throw NumericError(name, fmt::format("sample {} has the label {}: {}", i, data.labels.at(i), fix));
    remember(data.labels);
  }
}

std::vector<Trainer::ResolvedFeed> Trainer::resolve_feeds(std::int64_t width) const {
  std::vector<Feed> feeds = model_.feeds;
  if (feeds.empty()) feeds.push_back({model_.input, 0, -1});
  std::vector<ResolvedFeed> out;
  for (const Feed& f : feeds) {
    const NodeId id = model_.graph.at(f.input);
    const Shape& shape = model_.graph.node(id).shape;
    if (shape.rank() == 0 || shape[0] != N)
      throw ShapeError(where(model_.graph.node(id)),
                       fmt::format("input '{}' has shape {}: an input fed with samples has the batch N first", f.input,
                                   shape));
    const Shape per_sample(std::vector<std::int64_t>(shape.dims().begin() + 1, shape.dims().end()));
    if (per_sample.has_symbols())
      throw ShapeError(where(model_.graph.node(id)),
                       fmt::format("input '{}' has shape {}: samples fill fixed sizes only (name the sizes in the "
                                   "model)",
                                   f.input, shape));
    const std::int64_t want = per_sample.numel();
    const std::int64_t count = f.count < 0 ? width - f.first : f.count;
    if (f.first < 0 || f.first > width || count < 0 || f.first + count > width)
      throw DataError("data", fmt::format("input '{}' takes columns {}..{} of each sample, which has {} (0..{})",
                                          f.input, f.first, f.first + count - 1, width, width - 1));
    if (count != want) {
      if (model_.feeds.empty())
        throw DataError("data", fmt::format("each sample has {} values, the model's input '{}' takes {} per sample {}{}",
                                            width, f.input, want, per_sample,
                                            count + 1 == want ? kOneShortHint : ""));
      throw DataError("data", fmt::format("input '{}' takes {} values per sample {}, but its columns {}..{} are {}",
                                          f.input, want, per_sample, f.first, f.first + count - 1, count));
    }
    out.push_back({id, f.first, count});
  }
  return out;
}

void Trainer::check(const Dataset& data, bool with_labels) const {
  if (with_labels && supervised_ && !data.has_labels())
    throw DataError(data.name.empty() ? "data" : data.name,
                    "the data has no labels (label=none): training and evaluation need a label per sample; "
                    "predict needs none");
  const std::int64_t width = data.size() ? data.features.numel() / data.size() : data.num_features();
  if (model_.feeds.empty()) {
    const Shape& in = model_.graph.node(model_.graph.at(model_.input)).shape;
    if (in.rank() > 0 && Shape(std::vector<std::int64_t>(in.dims().begin() + 1, in.dims().end())).has_symbols())
      resolve_feeds(width);  // says which dimension is not a size
  }
  if (model_.feeds.empty()) {
    // One input takes whole samples: their shapes must agree exactly, or the features be flat.
    const Shape& in = model_.graph.node(model_.graph.at(model_.input)).shape;
    std::vector<std::int64_t> per_sample(in.dims().begin() + (in.rank() > 0 ? 1 : 0), in.dims().end());
    std::vector<std::int64_t> given(data.features.shape().dims().begin() + 1, data.features.shape().dims().end());
    if (per_sample != given && (given.size() != 1 || Shape(per_sample).has_symbols() ||
                                Shape(per_sample).numel() != given[0]))
      throw DataError(data.name, fmt::format("each sample has shape {}, the model's input '{}' takes {} per sample",
                                             Shape(given), model_.input, Shape(per_sample)));
  }
  resolve_feeds(width);
  if (!with_labels || !supervised_ || !head_.exists || !head_.classes) return;
  // Real-valued targets for a loss that predicts classes: say so before counting classes
  // (a label of 2.25 would count as class 2).
  const std::int64_t per = data.size() > 0 ? std::max<std::int64_t>(1, data.labels.numel() / data.size()) : 1;
  const Node& loss = model_.graph.node(*model_.graph.loss());
  // A negative label is a class only as the loss's ignore_index (padding), if it has one.
  const int ignore_at = loss.op->attr_index("ignore_index");
  const std::optional<std::int64_t> ignore =
      ignore_at >= 0 && !loss.attrs[static_cast<std::size_t>(ignore_at)].is_none()
          ? std::optional<std::int64_t>(loss.attrs[static_cast<std::size_t>(ignore_at)].as_int())
          : std::nullopt;
  for (std::int64_t i = 0; i < data.labels.numel(); ++i) {
    const double v = data.labels.at(i);
    if (!std::isfinite(v) || v != std::floor(v))  // infinity equals its floor, and no class
      throw DataError(data.name, fmt::format("label {:.7g} of sample {} is not a class index: the model's loss '{}' predicts "
                                             "classes; for real-valued targets use a regression loss such as mse",
                                             v, i / per, loss.op->name));
    if (v < 0 && !(ignore && v == static_cast<double>(*ignore)))
      throw DataError(data.name, fmt::format("label {:.7g} of sample {} is not a class index: classes count from 0{}", v,
                                             i / per,
                                             ignore         ? fmt::format(", and the loss '{}' ignores only label {}",
                                                                          loss.op->name, *ignore)
                                             : ignore_at >= 0 ? fmt::format(" (the loss '{}' ignores no label: give it "
                                                                          "ignore_index=-1 for padding)",
                                                                          loss.op->name)
                                                              : std::string()));
  }
  const std::int64_t classes = data.num_classes();
  const std::int64_t can = head_.outputs == 1 ? 2 : head_.outputs;
  if (classes > can) {
    // Labels numbered from 1 (as many files number classes) leave class 0 without a sample
    // and make the model look one output short: say so.
    std::int64_t first = classes;  // the smallest class a sample has (no table as long as the labels' range)
    for (std::int64_t i = 0; i < data.labels.numel(); ++i)
      if (data.label(i) >= 0) first = std::min(first, data.label(i));
    std::string why;
    if (first > 0 && first < classes && classes - first <= can)
      why = fmt::format(": its labels run from {} to {}, and class labels count from 0 (no sample has {}): "
                        "renumber them from 0",
                        first, classes - 1,
                        first == 1   ? std::string("label 0")
                        : first == 2 ? std::string("labels 0 and 1")
                                     : fmt::format("labels 0 to {}", first - 1));
    throw DataError(data.name, fmt::format("the data has {} classes, the model predicts {}{}", classes, can, why));
  }
}

Trainer::Compiled& Trainer::compiled(std::int64_t rows, bool training) {
  auto& slot = plans_[{rows, training}];
  if (!slot) {
    PlanOptions po;
    po.batch = rows;
    po.backward = training;
    po.mode = training ? Mode::train : Mode::eval;
    po.seed = seed_;
    if (head_.exists) po.keep = {model_.graph.node(head_.node).name};
    po.detect_anomaly = detect_anomaly_;
    po.memory_limit = memory_limit_;
    if (stats_on_ && training) {
      po.keep_all = true;
      po.keep_grads = true;
    }
    if (training && plans_hooked_)
      po.on_gradient = [this](std::size_t p) {
        if (parallel_ && parallel_->shard >= 0)
          parallel_->exchange.put(parallel_->shard, p, (*parallel_->slots)[p].grad, parallel_->weight);
      };
    slot = std::make_unique<Compiled>(Compiled{Plan(model_.graph, model_.params, po), {}, {}, {}, {}});
    if (head_.exists) slot->head_name = model_.graph.node(head_.node).name;
    if (training) slot->params = slot->plan.parameters();
  }
  return *slot;
}

namespace {

/// Columns [first, first + count) of every row of `features` into `out` (same dtype, or
/// i64 for an index input, whose values must be whole numbers).
void copy_columns(const Tensor& features, std::int64_t first, std::int64_t count, Tensor& out, const std::string& input) {
  const std::int64_t rows = features.shape()[0], width = features.numel() / std::max<std::int64_t>(rows, 1);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < count; ++j) {
      const double v = features.at(r * width + first + j);
      if (out.dtype() == DType::i64 && (v != std::floor(v) || std::abs(v) > kMaxExactInteger))
        throw DataError("data", fmt::format("input '{}' takes indices, but sample {} holds {} in column {}", input, r, v,
                                            first + j));
      out.set(r * count + j, v);
    }
}

}  // namespace

void Trainer::bind(Compiled& c, const Tensor& features, const Tensor& labels) {
  const std::int64_t rows = features.shape()[0];
  const std::int64_t width = rows ? features.numel() / rows : 0;
  const auto feeds = resolve_feeds(width);
  c.inputs.resize(feeds.size());
  for (std::size_t i = 0; i < feeds.size(); ++i) {
    const Node& in = model_.graph.node(feeds[i].input);
    const Shape shape = in.shape.bind(rows);
    if (!in.index && feeds[i].first == 0 && feeds[i].count == width) {
      c.plan.set_input(in.name, features.shape() == shape ? features : features.reshape(shape));
      continue;
    }
    const DType dtype = in.index ? DType::i64 : features.dtype();
    if (!c.inputs[i].defined() || c.inputs[i].shape() != shape || c.inputs[i].dtype() != dtype)
      c.inputs[i] = Tensor(shape, dtype);
    copy_columns(features, feeds[i].first, feeds[i].count, c.inputs[i], in.name);
    c.plan.set_input(in.name, c.inputs[i]);
  }
  if (!supervised_) return;
  const NodeId lid = model_.graph.at(model_.labels);
  const Node& ln = model_.graph.node(lid);
  const Shape declared = ln.shape.bind(rows);
  if (ln.index) {  // i64 class indices
    if (declared.numel() != labels.numel())
      throw ShapeError("model", fmt::format("labels of shape {} do not fit the input '{}' of shape {}", labels.shape(),
                                            model_.labels, ln.shape));
    if (!c.labels.defined() || c.labels.shape() != declared || c.labels.dtype() != DType::i64)
      c.labels = Tensor(declared, DType::i64);
    for (std::int64_t i = 0; i < labels.numel(); ++i) c.labels.set(i, labels.at(i));
    c.plan.set_input(model_.labels, c.labels);
  } else if (declared == labels.shape()) {
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
                                          model_.labels, ln.shape));
  }
}

void Trainer::collect_stats(Compiled& c, int epoch) {
  const Graph& g = model_.graph;
  if (stat_acc_.size() != g.size()) stat_acc_.assign(g.size(), {});
  auto add = [](Accumulator& a, const Tensor& t) {
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const double v = t.at(i);
      a.sum += v;
      a.sum2 += v * v;
      a.max_abs = std::max(a.max_abs, std::abs(v));
      if (v != v) a.max_abs = v;  // NaN stays visible
    }
    a.n += t.numel();
  };
  for (NodeId id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    if (n.kind != NodeKind::param && !n.computed()) continue;
    if (n.index) continue;
    try {
      add(stat_acc_[id].first, c.plan.value(n.name));
    } catch (const GraphError&) {
      continue;  // not computed by this plan
    }
    try {
      add(stat_acc_[id].second, c.plan.grad(n.name));
    } catch (const GraphError&) {
    }
  }
  (void)epoch;
}

namespace {
double norm(const Tensor& t) {
  double s = 0.0;
  for (std::int64_t i = 0; i < t.numel(); ++i) s += t.at(i) * t.at(i);
  return std::sqrt(s);
}
}  // namespace

Trainer::UpdateBlame Trainer::largest_update() const {
  // How far the last update moved each parameter, against its size before (floored, so a
  // zero-initialised bias does not count as size 0).
  UpdateBlame worst;
  for (std::size_t i = 0; i < last_params_.size() && i < before_.size(); ++i) {
    const ParamSlot& p = last_params_[i];
    const Tensor& old = before_[i];
    double moved = 0.0;
    for (std::int64_t j = 0; j < p.value.numel(); ++j) {
      const double d = p.value.at(j) - old.at(j);
      moved += d * d;
    }
    moved = std::sqrt(moved);
    const double size = norm(old), floor = 1e-3 * std::sqrt(static_cast<double>(p.value.numel()));
    const double ratio = moved / std::max(size, floor);
    // NaN counts as worst, and stays: a finite ratio after it must not replace it.
    if (!std::isnan(worst.ratio) && !(ratio <= worst.ratio)) worst = {p.name, moved, size, ratio, norm(p.grad)};
  }
  return worst;
}

std::string Trainer::UpdateBlame::text(double learning_rate) const {
  const std::string by = moved > ratio * size * 1.0000001 || size == 0.0
                             ? fmt::format("by {:.3g} from a size of {:.3g}", moved, size)
                             : fmt::format("by {:.3g}, {:.2g} times its size {:.3g}", moved, ratio, size);
  return fmt::format("the optimizer's update moved parameter '{}' {} (the gradient's norm was {:.3g}, the learning "
                     "rate {:.3g})",
                     name, by, grad_norm, learning_rate);
}

void Trainer::check_update(const Optimizer& optimizer, const std::string& step) const {
  // An update that breaks a parameter is the culprit, not the matmul that overflows next:
  // one that leaves it non-finite, or moves it by a million times its size.
  for (const ParamSlot& p : last_params_)
    for (std::int64_t j = 0; j < p.value.numel(); ++j)
      if (!std::isfinite(p.value.at(j)))
        throw NumericError(step, fmt::format("the optimizer's update made parameter '{}' hold {} at element {} (the "
                                             "gradient's norm was {:.3g}, the learning rate {:.3g}): lower the learning "
                                             "rate or clip the gradients",
                                             p.name, p.value.at(j), j, norm(p.grad), optimizer.learning_rate()));
  const UpdateBlame worst = largest_update();
  if (worst.ratio > 1e6)
    throw NumericError(step, worst.text(optimizer.learning_rate()) + ": lower the learning rate or clip the gradients");
}

NumericError Trainer::blame(const NumericError& e, const Optimizer& optimizer, const std::string& step) const {
  // A non-finite value right after an update that moved a parameter by more than ten times
  // its size: the update is the cause, the node where it overflowed the symptom.
  if (detect_anomaly_ && !last_params_.empty()) {
    const UpdateBlame worst = largest_update();
    if (worst.ratio > 10.0)
      return NumericError(step, fmt::format("{} at {}, and then {}: lower the learning rate or clip the gradients",
                                            worst.text(optimizer.learning_rate()), last_step_, e.what()));
  }
  return NumericError(step, e.what());
}

std::vector<char> Trainer::frozen_mask(const std::vector<std::string>& frozen) const {
  const Graph& g = model_.graph;
  std::vector<char> mask(g.size(), 0);
  for (const std::string& pattern : frozen) {
    const bool prefix = !pattern.empty() && pattern.back() == '*';
    const std::string_view stem = prefix ? std::string_view(pattern).substr(0, pattern.size() - 1) : pattern;
    bool matched = false;
    std::vector<std::string> names;
    for (NodeId id : g.params()) {
      const std::string& name = g.node(id).name;
      names.push_back(name);
      if (prefix ? std::string_view(name).substr(0, stem.size()) == stem : name == stem) {
        mask[id] = 1;
        matched = true;
      }
    }
    if (!matched)
      throw GraphError("fit", fmt::format("cannot freeze '{}': no parameter {}{}", pattern,
                                          prefix ? "starts with '" + std::string(stem) + "'" : "has that name",
                                          prefix ? std::string() : suggestion(pattern, names)));
  }
  return mask;
}

History Trainer::fit(const Dataset& train_in, Optimizer& optimizer, const TrainOptions& options) {
  if (options.epochs < 1 && options.start_epoch == 0)
    throw DataError("fit", fmt::format("epochs must be at least 1, got {}", options.epochs));
  if (!model_.graph.loss()) throw GraphError("fit", "the model has no loss to train on");
  if (model_.graph.params().empty())
    throw GraphError("fit", "the model has no parameters to train: declare them with 'param NAME [dims]'");
  // Always, not only with detect_anomaly: one NaN feature turns every weight it reaches to
  // NaN through the vjp's products, and the run is lost. First: check() counts classes,
  // which casts labels to integers (undefined for NaN and infinity).
  check_finite(train_in);
  if (options.validation) check_finite(*options.validation);
  check(train_in);
  if (options.validation) check(*options.validation);
  if (options.seed != seed_) {  // dropout masks are keyed by the seed the plans were compiled with
    seed_ = options.seed;
    plans_.clear();
  }
  if (options.communicator) {
    if (stats_on_)
      throw GraphError("fit", "per-node statistics are not collected in a data-parallel run (each process sees "
                              "only its shards)");
    if (!plans_hooked_) {  // data-parallel plans report each final gradient to the exchange
      plans_.clear();
      plans_hooked_ = true;
    }
    parallel_ = std::make_unique<Parallel>(*options.communicator, options.exchange);
    for (auto& [name, t] : model_.params)
      if (!model_.params.trainable(name)) {
        parallel_->state.push_back(&t);
        parallel_->state_start.push_back(t.clone());
      }
  }
  struct EndParallel {
    std::unique_ptr<Parallel>& p;
    ~EndParallel() { p.reset(); }
  } end_parallel{parallel_};
  const DType dtype = model_.params.dtype();
  const Dataset train = train_in.features.dtype() == dtype ? train_in : train_in.to(dtype);
  Batcher batcher(train, options.batch, options.shuffle, options.seed);
  batcher.set_augment(options.augment);
  if (optimizer.options().schedule.kind == Schedule::Kind::cosine && optimizer.options().schedule.epochs <= 0.0)
    optimizer.options().schedule.epochs = options.epochs - optimizer.options().schedule.warmup;
  const bool accuracy = measures_accuracy();
  const std::vector<char> frozen = frozen_mask(options.frozen);

  History history;
  const std::int64_t batches = batcher.batches();
  for (int epoch = options.start_epoch; epoch < options.epochs; ++epoch) {
    const auto t0 = Clock::now();
    batcher.start_epoch(epoch);
    double loss_sum = 0.0;
    std::int64_t correct = 0, seen = 0, tokens = 0;
    if (stats_on_) stat_acc_.assign(model_.graph.size(), {});
    for (std::int64_t b = 0; b < batches; ++b) {
      // The global step keys the random streams: the same dropout masks after a resume.
      const std::int64_t step = static_cast<std::int64_t>(epoch) * batches + b;
      Compiled* cp = nullptr;
      if (parallel_) {
        cp = &parallel_step(batcher, b, step, optimizer, step_name(epoch, b, batches), loss_sum, correct, tokens);
        seen += batcher.rows_in(b);
      } else {
        const auto batch = batcher.batch(b);
        cp = &compiled(batch.rows, true);
        bind(*cp, batch.features, batch.labels);
        cp->plan.set_step(step);
        try {
          cp->plan.forward();
        } catch (const NumericError& e) {
          throw blame(e, optimizer, step_name(epoch, b, batches));
        }
        loss_sum += cp->plan.loss() * static_cast<double>(batch.rows);
        if (accuracy) count_correct(*cp, batch.labels, batch.rows, correct, tokens);
        seen += batch.rows;
        try {
          cp->plan.backward();
        } catch (const NumericError& e) {
          throw blame(e, optimizer, step_name(epoch, b, batches));
        }
      }
      Compiled& c = *cp;
      if (stats_on_) collect_stats(c, epoch);
      optimizer.set_time(static_cast<double>(epoch) + static_cast<double>(b + 1) / static_cast<double>(batches));
      if (detect_anomaly_) {
        before_.resize(c.params.size());
        for (std::size_t i = 0; i < c.params.size(); ++i) {
          if (!before_[i].defined()) before_[i] = c.params[i].value.clone();
          else before_[i].copy_from(c.params[i].value);
        }
        last_params_ = c.params;
        last_step_ = step_name(epoch, b, batches);
      }
      if (options.frozen.empty()) {
        optimizer.step(c.params);
      } else {
        c.updated.clear();
        for (const ParamSlot& p : c.params)
          if (!frozen[static_cast<std::size_t>(model_.graph.at(p.name))]) c.updated.push_back(p);
        optimizer.step(c.updated);
      }
      if (detect_anomaly_) check_update(optimizer, last_step_);
      if (options.on_step)
        options.on_step({epoch + 1, b + 1, batches, seen, train.size(), loss_sum / static_cast<double>(seen),
                         seconds_since(t0)});
    }
    EpochReport report;
    report.epoch = epoch + 1;
    report.epochs = options.epochs;
    report.seconds = seconds_since(t0);
    report.train_loss = loss_sum / static_cast<double>(seen);
    report.train_accuracy = accuracy && tokens > 0 ? static_cast<double>(correct) / static_cast<double>(tokens)
                                                   : std::numeric_limits<double>::quiet_NaN();
    report.learning_rate = optimizer.learning_rate();
    report.samples = seen;
    if (stats_on_) {
      const Graph& g = model_.graph;
      for (NodeId id = 0; id < g.size(); ++id) {
        const auto& [v, gr] = stat_acc_[id];
        if (v.n == 0) continue;
        const Node& n = g.node(id);
        NodeStats s;
        s.epoch = epoch + 1;
        s.node = n.name;
        s.op = n.kind == NodeKind::param ? "param" : n.kind == NodeKind::part ? g.node(n.inputs[0]).op->name : n.op->name;
        auto fill = [](const Accumulator& a, double& mean, double& sd, double& mx) {
          if (a.n == 0) {
            mean = sd = mx = std::numeric_limits<double>::quiet_NaN();
            return;
          }
          mean = a.sum / static_cast<double>(a.n);
          sd = std::sqrt(std::max(0.0, a.sum2 / static_cast<double>(a.n) - mean * mean));
          mx = a.max_abs;
        };
        fill(v, s.value_mean, s.value_std, s.value_max_abs);
        fill(gr, s.grad_mean, s.grad_std, s.grad_max_abs);
        stats_.push_back(std::move(s));
      }
    }
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

void Trainer::count_correct(const Compiled& c, const Tensor& labels, std::int64_t rows, std::int64_t& correct,
                            std::int64_t& tokens) const {
  const Tensor out = c.plan.value(c.head_name);
  const std::int64_t per = labels.numel() / std::max<std::int64_t>(rows, 1);
  auto count = [&](const auto* values) {
    for (std::int64_t i = 0; i < rows * per; ++i) {
      const auto t = static_cast<std::int64_t>(labels.at(i));
      if (t < 0) continue;  // an ignored position (padding)
      correct += predicted(values + i * head_.outputs, head_) == t;
      ++tokens;
    }
  };
  if (out.dtype() == DType::f32) count(out.data<float>());
  else count(out.data<double>());
}

Trainer::Compiled& Trainer::parallel_step(Batcher& batcher, std::int64_t b, std::int64_t step,
                                          const Optimizer& optimizer, const std::string& name, double& loss_sum,
                                          std::int64_t& correct, std::int64_t& tokens) {
  Parallel& p = *parallel_;
  GradientExchange& ex = p.exchange;
  const int shards = ex.options().shards;
  const std::int64_t rows = batcher.rows_in(b);
  // The plan whose slots receive the summed gradients (one every process compiles).
  Compiled& out = compiled((rows + shards - 1) / shards, true);
  if (p.sizes.empty()) {
    for (const ParamSlot& slot : out.params) p.sizes.push_back(slot.grad.numel());
    for (const Tensor* t : p.state) p.sizes.push_back(t->numel());
  }
  p.outputs.clear();
  for (ParamSlot& slot : out.params) p.outputs.push_back(&slot.grad);
  for (Tensor* t : p.state) p.outputs.push_back(t);
  ex.begin(p.sizes, model_.params.dtype());
  for (std::size_t i = 0; i < p.state.size(); ++i) p.state_start[i].copy_from(*p.state[i]);
  p.metrics.assign(static_cast<std::size_t>(shards) * 3, 0.0);
  const bool accuracy = measures_accuracy();
  const std::size_t grads = out.params.size();
  for (int s = ex.first_shard(); s < ex.end_shard(); ++s) {
    const auto [first, count] = shard_rows(rows, s, shards);
    if (count == 0) {
      ex.skip(s);
      continue;
    }
    // Every shard starts from the step's state; the exchange averages what each left.
    if (s > ex.first_shard())
      for (std::size_t i = 0; i < p.state.size(); ++i) p.state[i]->copy_from(p.state_start[i]);
    const auto part = batcher.part(b, first, count);
    Compiled& c = compiled(count, true);
    bind(c, part.features, part.labels);
    c.plan.set_step(step);
    c.plan.set_sample_offset(first);
    try {
      c.plan.forward();
    } catch (const NumericError& e) {
      throw blame(e, optimizer, name);
    }
    const double weight = static_cast<double>(count) / static_cast<double>(rows);
    double* m = &p.metrics[static_cast<std::size_t>(s) * 3];
    m[0] = c.plan.loss() * static_cast<double>(count);
    if (accuracy) {
      std::int64_t right = 0, counted = 0;
      count_correct(c, part.labels, count, right, counted);
      m[1] = static_cast<double>(right);
      m[2] = static_cast<double>(counted);
    }
    for (std::size_t i = 0; i < p.state.size(); ++i) ex.put(s, grads + i, *p.state[i], weight);
    p.shard = s;
    p.weight = weight;
    p.slots = &c.params;
    try {
      c.plan.backward();  // each final gradient goes to the exchange (on_gradient)
    } catch (const NumericError& e) {
      p.shard = -1;
      throw blame(e, optimizer, name);
    }
    p.shard = -1;
  }
  ex.finish(p.outputs);
  ex.gather_rows(p.metrics);
  for (int s = 0; s < shards; ++s) {
    const double* m = &p.metrics[static_cast<std::size_t>(s) * 3];
    loss_sum += m[0];
    correct += static_cast<std::int64_t>(m[1]);
    tokens += static_cast<std::int64_t>(m[2]);
  }
  return out;
}

void Trainer::require_rows(const char* what) const {
  if (head_.per_sample) return;
  const Node& n = model_.graph.node(head_.node);
  throw ShapeError(where(n), fmt::format("{}: the prediction '{}' has shape {}, whose first axis is not the batch N: it "
                                         "holds no row per sample to {}; read it from a plan instead (C++: "
                                         "Plan::value(\"{}\"); Python: model.compile(batch=...).value(\"{}\"))",
                                         what, n.name, n.shape, what, n.name, n.name));
}

Evaluation Trainer::evaluate(const Dataset& data_in, std::int64_t batch) {
  if (!supervised_ && !model_.graph.loss())
    throw GraphError("evaluate", "the model has neither labels nor a loss: nothing to evaluate");
  if (supervised_ && head_.exists && head_.classes) require_rows("evaluate");
  const DType dtype = model_.params.dtype();
  const Dataset data = data_in.features.dtype() == dtype ? data_in : data_in.to(dtype);
  if (data.size() == 0) throw DataError(data.name, "empty dataset: nothing to evaluate");
  check(data);
  check_finite(data, "its loss would be NaN and its predicted class made up");
  Batcher batcher(data, batch > 0 ? batch : 4096, false, 0);
  const bool accuracy = measures_accuracy();
  const std::int64_t classes =
      accuracy ? std::max(head_.outputs == 1 ? std::int64_t{2} : head_.outputs, data.num_classes()) : 0;
  Evaluation e;
  e.confusion.assign(static_cast<std::size_t>(classes), std::vector<std::int64_t>(static_cast<std::size_t>(classes), 0));
  double loss_sum = 0.0;
  std::int64_t correct = 0, tokens = 0, whole = 0;
  const std::int64_t per = data.labels.numel() / std::max<std::int64_t>(data.size(), 1);
  for (std::int64_t b = 0, row0 = 0; b < batcher.batches(); row0 += batcher.rows_in(b), ++b) {
    const auto bt = batcher.batch(b);
    Compiled& c = compiled(bt.rows, false);
    bind(c, bt.features, bt.labels);
    c.plan.forward();
    if (model_.graph.loss()) loss_sum += c.plan.loss() * static_cast<double>(bt.rows);
    if (!accuracy) continue;
    const Tensor out = c.plan.value(c.head_name);
    // Per position (a token of a sequence, or the sample itself): [rows, per] labels
    // against [rows, per, classes] scores; a sequence counts whole when every position is right.
    auto tally = [&](const auto* values) {
      for (std::int64_t r = 0; r < bt.rows; ++r) {
        bool all = true;
        for (std::int64_t i = r * per; i < (r + 1) * per; ++i) {
          const auto t = static_cast<std::int64_t>(bt.labels.at(i));
          if (t < 0) continue;  // an ignored position (padding)
          const std::int64_t p = predicted(values + i * head_.outputs, head_);
          if (p < 0)
            throw NumericError("evaluate", fmt::format("the model's output for sample {} is NaN (its input is finite: "
                                                       "the parameters hold NaN or overflow): no class to score",
                                                       row0 + r));
          correct += p == t;
          all = all && p == t;
          ++tokens;
          ++e.confusion[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)];
        }
        whole += all;
      }
    };
    if (dtype == DType::f32) tally(out.data<float>());
    else tally(out.data<double>());
  }
  e.samples = data.size();
  e.loss = loss_sum / static_cast<double>(data.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  e.accuracy = accuracy && tokens > 0 ? static_cast<double>(correct) / static_cast<double>(tokens) : nan;
  e.positions = per;
  e.sequence_accuracy = accuracy && per > 1 ? static_cast<double>(whole) / static_cast<double>(data.size()) : nan;
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
  po.mode = Mode::train;
  po.detect_anomaly = detect_anomaly_;
  po.memory_limit = memory_limit_;
  const bool backward = model_.graph.loss().has_value();
  po.backward = backward;
  Compiled c{Plan(model_.graph, model_.params, po), {}, {}, {}, head_.exists ? model_.graph.node(head_.node).name : ""};
  for (int s = 0; s <= steps; ++s) {
    if (s == 1) c.plan.reset_profile();  // the first pass warms caches and is not counted
    const auto b = batcher.batch(s % std::max<std::int64_t>(batcher.batches() - (batcher.rows_in(batcher.batches() - 1) < rows), 1));
    bind(c, b.features, b.labels);
    c.plan.set_step(s);
    c.plan.forward();
    if (backward) c.plan.backward();
  }
  return c.plan.profile();
}

Predictions Trainer::predict(const Tensor& features_in, std::int64_t batch) {
  if (!head_.exists)
    throw GraphError("predict", "cannot tell which node predicts: use a loss op with a role (opgraph ops lists them) or "
                                "mark an output");
  require_rows("predict");
  const DType dtype = model_.params.dtype();
  const Tensor features = features_in.dtype() == dtype ? features_in : features_in.to(dtype);
  const std::int64_t n = features.shape()[0];
  // Predictions read the head through the op its loss names (softmax for logits, ...), in
  // a graph of their own with that node added.
  const std::string head_name = model_.graph.node(head_.node).name;
  std::string read = head_name;
  if (!head_.probabilities.empty()) {
    if (!predict_graph_) {
      auto g = std::make_unique<Graph>(model_.graph);
      read = "probabilities";
      while (g->find(read)) read += "_";
      g->add_output(g->add_op(head_.probabilities, {head_.node}, {}, read));
      predict_graph_ = std::move(g);
    }
    read = predict_graph_->node(predict_graph_->outputs().back()).name;
  }
  Dataset d;
  d.features = features;
  // Positions per sample: 1, or T for a head [N, T, C] (a class per token).
  const Shape& head_shape = model_.graph.node(head_.node).shape;
  std::int64_t per = 1;
  for (int i = 1; i + 1 < head_shape.rank(); ++i) per *= head_shape[i];
  // Placeholder labels (class 0), one per position: prediction reads no loss.
  d.labels = per > 1 ? Tensor({n, per}, dtype) : Tensor({n}, dtype);
  Predictions p;
  // The head's own shape with n samples: [n, C]; [n, T, C] (or [n, H, W, C]) for a class
  // per position; a value head's every axis ([n, 8, 8, 8] for feature maps).
  Shape shape = head_shape.rank() > 2 ? head_shape : Shape{n, head_.outputs};
  shape[0] = n;
  p.probabilities = Tensor(shape, DType::f64);
  const bool classes = head_.classes && supervised_;
  p.classes = classes;
  // One output is a probability when the head is read through its op: 0.5 is its threshold.
  PredictionHead read_head = head_;
  if (!head_.probabilities.empty()) read_head.threshold = 0.5;
  if (classes) p.labels.resize(static_cast<std::size_t>(n * per));
  if (n == 0) return p;  // no samples, no predictions: empty arrays of the head's shape
  Batcher batcher(d, batch > 0 ? batch : 4096, false, 0);
  const Graph& graph = predict_graph_ ? *predict_graph_ : model_.graph;
  std::map<std::int64_t, std::unique_ptr<Compiled>> plans;
  std::int64_t row0 = 0;
  for (std::int64_t b = 0; b < batcher.batches(); ++b) {
    const auto bt = batcher.batch(b);
    auto& slot = plans[bt.rows];
    if (!slot) {
      PlanOptions po;
      po.batch = bt.rows;
      po.backward = false;
      po.mode = Mode::eval;
      po.keep = {read};
      po.memory_limit = memory_limit_;
      po.detect_anomaly = detect_anomaly_;
      slot = std::make_unique<Compiled>(Compiled{Plan(graph, model_.params, po), {}, {}, {}, read});
    }
    Compiled& c = *slot;
    bind(c, bt.features, bt.labels);  // placeholder labels (class 0) for a loss the plan still computes
    c.plan.forward();
    const Tensor out = c.plan.value(read);
    const std::int64_t k = head_.outputs;
    const double* const probs = p.probabilities.data<double>();
    for (std::int64_t r = 0; r < bt.rows * per; ++r) {
      const std::int64_t at = (row0 * per + r) * k;
      for (std::int64_t j = 0; j < k; ++j) p.probabilities.set(at + j, out.at(r * k + j));
      // Read as evaluate reads it (a NaN output passes through, and has no class: -1).
      if (classes) p.labels[static_cast<std::size_t>(row0 * per + r)] = predicted(probs + at, read_head);
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
