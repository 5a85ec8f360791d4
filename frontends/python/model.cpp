// og.Model, og.Plan, og.Optimizer and the functions around them: the C++ Model, Trainer
// and Plan as Python sees them. Every call that runs a plan releases the GIL.
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/frontends/data_spec.hpp>
#include <opgraph/frontends/dump.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/onnx/onnx.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/optim/optimizer.hpp>

#include "arrays.hpp"
#include "bindings.hpp"
#include "graph.hpp"

namespace opgraph::python {

namespace {

/// A model: the C++ Model (graph, parameter values, what feeds the inputs), the text it
/// came from, and the Trainer that keeps its compiled plans between calls.
struct PyModel {
  Model model;
  std::string text;  // the .og text; empty for a graph built in Python (printed when saved)
  std::string name;  // for messages: the file, or "<python>"
  std::uint64_t seed = 0;
  int epochs_done = 0;
  std::map<std::string, std::string> meta;            // a checkpoint's free-form facts
  std::vector<std::pair<std::string, Tensor>> extra;  // a checkpoint's other tensors
  std::unique_ptr<Trainer> trainer;

  Trainer& trainer_for(const std::vector<Feed>& feeds) {
    const bool same = feeds.size() == model.feeds.size() &&
                      std::equal(feeds.begin(), feeds.end(), model.feeds.begin(), [](const Feed& a, const Feed& b) {
                        return a.input == b.input && a.first == b.first && a.count == b.count;
                      });
    if (!same || !trainer) {
      trainer.reset();
      model.feeds = feeds;
      trainer = std::make_unique<Trainer>(model);
    }
    return *trainer;
  }
};

using ModelPtr = std::shared_ptr<PyModel>;

/// An optimizer from a spec ("adam:lr=1e-3"); its state (moments, step count) carries
/// from one fit to the next.
struct PyOptimizer {
  std::string spec;
  std::shared_ptr<Optimizer> optimizer;
};

PyOptimizer make_optimizer_from(const std::string& spec) { return {spec, std::shared_ptr<Optimizer>(parse_optimizer(spec))}; }

PyOptimizer optimizer_arg(const py::handle& obj) {
  if (py::isinstance<PyOptimizer>(obj)) return obj.cast<PyOptimizer>();
  if (py::isinstance<py::str>(obj)) return make_optimizer_from(obj.cast<std::string>());
  throw py::type_error("optimizer: a spec such as 'adam:lr=1e-3' or an og.Optimizer");
}

/// The first input of the graph that is not the labels.
std::string first_input(const Graph& g, const std::string& labels) {
  for (NodeId i : g.inputs())
    if (g.node(i).name != labels) return g.node(i).name;
  return {};
}

/// The input a loss with a role reads its targets from, if that is an input of the graph.
std::string labels_input(const Graph& g) {
  if (!g.loss()) return {};
  const Node& loss = g.node(*g.loss());
  if (loss.kind != NodeKind::op || loss.op->role.kind != OpRole::Kind::loss || loss.op->role.labels < 0) return {};
  const NodeId lid = loss.inputs.at(static_cast<std::size_t>(loss.op->role.labels));
  const Node& l = g.node(lid);
  if (l.kind != NodeKind::input) return {};
  // An autoencoder's target is its own input: an input the prediction reads is data, not labels.
  const NodeId prediction = loss.inputs.at(static_cast<std::size_t>(loss.op->role.prediction));
  if (g.ancestors({prediction}, false)[lid]) return {};
  return l.name;
}

ModelPtr model_from_graph(const Graph& graph, std::uint64_t seed, DType dtype, const std::string& input,
                          const std::optional<std::string>& labels, std::string text, std::string name) {
  auto m = std::make_shared<PyModel>();
  m->model.graph = graph;
  m->model.labels = labels ? *labels : labels_input(graph);
  m->model.input = input.empty() ? first_input(graph, m->model.labels) : input;
  if (m->model.labels.empty()) m->model.labels = "y";  // no labels input: trains without labels
  m->model.params = graph.init_params(seed, dtype);
  m->seed = seed;
  m->text = std::move(text);
  m->name = std::move(name);
  return m;
}

bool is_checkpoint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  f.read(magic, sizeof magic);
  return f.gcount() == 8 && std::memcmp(magic, "OPGRAPHC", 8) == 0;
}

ModelPtr load(const std::string& path, std::uint64_t seed, const py::object& dtype) {
  py::gil_scoped_release release;  // reading and parsing may run Python ops' shape rules
  if (is_checkpoint(path)) {
    Checkpoint c = load_checkpoint(path);
    ModelFile file = parse_model(c.model, path + " (its model)");
    const DType dt = c.params.size() ? c.params.dtype() : DType::f32;
    auto m = model_from_graph(file.graph, c.seed, dt, file.input,
                              file.labels.empty() ? std::optional<std::string>() : file.labels, c.model, path);
    restore_params(c, m->model.params, path);
    m->epochs_done = c.epoch;
    m->meta = c.meta;
    m->extra = c.extra;
    return m;
  }
  ModelFile file = load_model(path);
  DType dt = DType::f32;
  {
    py::gil_scoped_acquire gil;
    if (!dtype.is_none()) dt = dtype_from(dtype);
  }
  auto m = model_from_graph(file.graph, seed, dt, file.input,
                            file.labels.empty() ? std::optional<std::string>() : file.labels, file.text, file.name);
  apply_initial(file, m->model.params);  // an ONNX file's weights
  return m;
}

std::string model_text(const PyModel& m) {
  if (!m.text.empty()) return m.text;
  PrintOptions o;
  o.labels = m.model.labels;
  return print_model(m.model.graph, o);
}

void save(const PyModel& m, const std::string& path, const std::optional<PyOptimizer>& optimizer) {
  Checkpoint c;
  c.model = model_text(m);
  c.params = m.model.params;
  if (optimizer) {
    c.optimizer = optimizer->spec;
    c.optimizer_state = optimizer->optimizer->state();
    c.optimizer_steps = optimizer->optimizer->steps();
    c.optimizer_time = optimizer->optimizer->time();
  }
  c.epoch = m.epochs_done;
  c.seed = m.seed;
  c.meta = m.meta;
  c.meta["dtype"] = std::string(to_string(m.model.params.dtype()));
  c.meta["graph"] = graph_fingerprint(m.model.graph);
  c.meta["plugins"] = fmt::format("{}", fmt::join(plugins_used(m.model.graph), ","));
  c.extra = m.extra;
  py::gil_scoped_release release;
  save_checkpoint(path, c);
}

/// Samples as a Dataset: an array [n, ...] (flattened per sample, in place when it can
/// be), or a dict of arrays by input name (copied side by side, with the feeds that split
/// them again). Labels converted to the model's dtype.
struct Samples {
  Dataset data;
  std::vector<Feed> feeds;
};

Tensor rows_of(const py::handle& obj, DType dtype, const std::string& what) {
  Tensor t = tensor_from(obj, dtype, what);
  if (t.shape().rank() == 0) throw ShapeError(what, "expected one row per sample, got a scalar");
  const std::int64_t n = t.shape()[0];
  const std::int64_t width = n ? t.numel() / n : 0;
  return t.shape().rank() == 2 ? t : t.reshape({n, width});
}

Samples samples(PyModel& m, const py::handle& x, const py::handle& y, const char* call) {
  Samples s;
  const DType dtype = m.model.params.dtype();
  if (py::isinstance<py::dict>(x)) {
    const py::dict d = py::reinterpret_borrow<py::dict>(x);
    std::vector<std::pair<std::string, Tensor>> parts;
    std::int64_t rows = -1, width = 0;
    for (const auto& [k, v] : d) {
      const std::string name = k.cast<std::string>();
      const auto id = m.model.graph.find(name);
      if (!id || m.model.graph.node(*id).kind != NodeKind::input) {
        std::vector<std::string> inputs;
        for (NodeId i : m.model.graph.inputs()) inputs.push_back(m.model.graph.node(i).name);
        throw GraphError(call, fmt::format("no input '{}' in the model{}", name, suggestion(name, inputs)));
      }
      Tensor t = rows_of(v, dtype, fmt::format("{}: input '{}'", call, name));
      if (rows >= 0 && t.shape()[0] != rows)
        throw ShapeError(call, fmt::format("input '{}' has {} rows, the inputs before it {}", name, t.shape()[0], rows));
      rows = t.shape()[0];
      s.feeds.push_back({name, width, t.shape()[1]});
      width += t.shape()[1];
      parts.emplace_back(name, std::move(t));
    }
    if (parts.empty()) throw GraphError(call, "the dict of inputs is empty");
    Tensor all(Shape{rows, width}, dtype);
    const std::size_t size = size_of(dtype);
    for (std::size_t p = 0; p < parts.size(); ++p) {
      const Tensor& t = parts[p].second;
      const std::int64_t w = t.shape()[1], first = s.feeds[p].first;
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(static_cast<std::byte*>(all.raw()) + static_cast<std::size_t>(r * width + first) * size,
                    static_cast<const std::byte*>(t.raw()) + static_cast<std::size_t>(r * w) * size,
                    static_cast<std::size_t>(w) * size);
    }
    s.data.features = std::move(all);
  } else {
    s.data.features = rows_of(x, dtype, fmt::format("{}: x", call));
    // A 1-D x is a column of samples of one value each; given a single sample of a model
    // that takes several values (NumPy's x[0]), say so, not "each sample has 1 values".
    const auto input = m.model.graph.find(m.model.input);
    if (input && s.data.features.shape()[1] == 1 && py::isinstance<py::array>(x) &&
        py::reinterpret_borrow<py::array>(x).ndim() == 1) {
      const Shape& in = m.model.graph.node(*input).shape;
      std::int64_t per_sample = 1;
      for (int d = 1; d < in.rank(); ++d) per_sample = is_symbolic(in[d]) ? -1 : per_sample * in[d];
      if (per_sample > 1)
        throw ShapeError(fmt::format("{}: x", call),
                         fmt::format("has shape ({},): a 1-D array is one value per sample, and the model's input '{}' "
                                     "takes {} per sample {}: give one sample as x.reshape(1, -1), several as rows of a "
                                     "2-D array",
                                     s.data.size(), m.model.input, per_sample,
                                     Shape(std::vector<std::int64_t>(in.dims().begin() + 1, in.dims().end()))));
    }
  }
  s.data.name = fmt::format("{}: x", call);
  if (!y.is_none()) {
    // Class names (strings) are not numbered behind the caller's back: say how.
    const auto texts = [](const py::array& a) {  // strings, or objects that are strings
      return std::string("USO").find(a.dtype().kind()) != std::string::npos && a.size() > 0 &&
             py::isinstance<py::str>(a.attr("flat")[py::int_(0)]);
    };
    if (py::isinstance<py::array>(y) && texts(py::reinterpret_borrow<py::array>(y)))
      throw py::type_error(fmt::format("{}: y: class names (text), not class indices: number them, as names, y = "
                                       "np.unique(y, return_inverse=True) does (class i is names[i])",
                                       call));
    Tensor labels = tensor_from(y, dtype, fmt::format("{}: y", call));
    if (labels.shape().rank() == 0 || labels.shape()[0] != s.data.size())
      throw ShapeError(call, fmt::format("y has shape {}, x has {} rows: give one label (or row of targets) per "
                                         "sample",
                                         labels.shape(), s.data.size()));
    // One-hot rows (Keras' to_categorical) for a model whose labels are class indices: the
    // index of each row's 1. Rows that are not one-hot (soft labels) are refused.
    const auto lid = m.model.graph.find(m.model.labels);
    if (lid && m.model.graph.node(*lid).shape.rank() == 1 && labels.shape().rank() == 2 && labels.shape()[1] > 1) {
      const std::int64_t n = labels.shape()[0], c = labels.shape()[1];
      Tensor indices(Shape{n}, dtype);
      for (std::int64_t r = 0; r < n; ++r) {
        std::int64_t hot = -1;
        for (std::int64_t j = 0; j < c; ++j) {
          const double v = labels.at(r * c + j);
          if (v == 1.0 && hot < 0) hot = j;
          else if (v != 0.0) hot = -2;
          if (hot == -2) break;
        }
        if (hot < 0)
          throw ShapeError(call, fmt::format("y has shape {}: row {} is not one-hot (a single 1, the rest 0), and the "
                                             "model's labels input '{}' takes a class index per sample {}: give "
                                             "y.argmax(1) for the likeliest class",
                                             labels.shape(), r, m.model.labels, m.model.graph.node(*lid).shape));
        indices.set(r, static_cast<double>(hot));
      }
      labels = std::move(indices);
    }
    s.data.labels = std::move(labels);
  } else {
    s.data.labels = Tensor(Shape{s.data.size()}, dtype);
  }
  return s;
}

bool needs_labels(const PyModel& m) {
  const auto id = m.model.graph.find(m.model.labels);
  return id && m.model.graph.node(*id).kind == NodeKind::input;
}

struct StopTraining {};

}  // namespace

py::dict gradcheck_dict(const GradCheckResult& r) {
  py::dict d;
  d["config"] = r.config;
  d["max_error"] = r.max_error;
  d["passed"] = r.passed;
  d["failure"] = r.failure;
  return d;
}

namespace {

py::dict report_dict(const EpochReport& e) {
  py::dict d;
  d["epoch"] = e.epoch;
  d["epochs"] = e.epochs;
  d["train_loss"] = e.train_loss;
  d["train_accuracy"] = e.train_accuracy;
  d["val_loss"] = e.val_loss;
  d["val_accuracy"] = e.val_accuracy;
  d["learning_rate"] = e.learning_rate;
  d["seconds"] = e.seconds;
  d["samples"] = e.samples;
  return d;
}

/// The communicator of data-parallel fits: MPI's (once per process), or one process.
Communicator& python_communicator(bool mpi) {
  static std::unique_ptr<Communicator> with_mpi, local;
  auto& slot = mpi ? with_mpi : local;
  if (!slot) slot = mpi ? open_mpi_communicator() : make_local_communicator();
  return *slot;
}

py::dict fit(const ModelPtr& m, const py::object& x, const py::object& y, const py::object& optimizer_obj, int epochs,
             std::int64_t batch, bool shuffle, const std::optional<std::uint64_t>& seed, const py::object& validation,
             const py::object& callback, double target_loss, int verbose, const std::vector<std::string>& frozen,
             int shards, const std::optional<bool>& distributed, bool overlap, bool allreduce) {
  if (y.is_none() && needs_labels(*m))
    throw GraphError("fit", fmt::format("the loss reads labels from input '{}': pass them as y", m->model.labels));
  Samples train = samples(*m, x, needs_labels(*m) ? y : py::none(), "fit");
  std::optional<Samples> val;
  if (!validation.is_none()) {
    if (!py::isinstance<py::tuple>(validation) || py::len(validation) != 2)
      throw py::type_error("fit: validation is a tuple (x, y)");
    const py::tuple v = validation;
    val = samples(*m, v[0], needs_labels(*m) ? py::object(v[1]) : py::none(), "fit (validation)");
  }
  PyOptimizer opt = optimizer_arg(optimizer_obj);
  Trainer& trainer = m->trainer_for(train.feeds);
  TrainOptions o;
  o.epochs = epochs;
  o.batch = batch;
  o.shuffle = shuffle;
  o.seed = seed ? *seed : m->seed;
  o.target_loss = target_loss;
  o.frozen = frozen;
  o.validation = val ? &val->data : nullptr;
  const bool mpi = distributed ? *distributed : !detect_mpi_launcher().empty();
  if (mpi || shards > 0) {
    o.communicator = &python_communicator(mpi);
    if (shards > 0) o.exchange.shards = shards;  // else ExchangeOptions' default
    o.exchange.overlap = overlap;
    o.exchange.ordered = !allreduce;
  }
  std::vector<EpochReport> reports;
  o.on_step = [](const StepReport&) {
    py::gil_scoped_acquire gil;
    check_signals();  // Ctrl-C: KeyboardInterrupt between steps, the model as the last step left it
  };
  o.on_epoch = [&](const EpochReport& e) {
    reports.push_back(e);
    py::gil_scoped_acquire gil;
    if (verbose)
      py::print(fmt::format("epoch {}/{}: loss {:.6g}{}{} ({:.2f} s)", e.epoch, e.epochs, e.train_loss,
                            e.has_accuracy() ? fmt::format(", accuracy {:.4f}", e.train_accuracy) : "",
                            e.has_validation() ? fmt::format(", val loss {:.6g}", e.val_loss) : "", e.seconds),
                py::arg("flush") = true);
    if (!callback.is_none()) {
      py::object r = callback(report_dict(e));
      if (!r.is_none() && !r.cast<bool>()) throw StopTraining{};
    }
  };
  bool reached = false, stopped = false;
  {
    py::gil_scoped_release release;
    try {
      reached = trainer.fit(train.data, *opt.optimizer, o).reached_target;
    } catch (const StopTraining&) {
      stopped = true;
    }
  }
  m->epochs_done += static_cast<int>(reports.size());
  py::list epochs_out;
  for (const auto& e : reports) epochs_out.append(report_dict(e));
  py::dict h;
  h["epochs"] = epochs_out;
  h["reached_target"] = reached;
  h["stopped"] = stopped;
  h["optimizer"] = py::cast(opt);
  return h;
}

py::dict evaluation_dict(const Evaluation& e) {
  py::dict d;
  d["loss"] = e.loss;
  d["accuracy"] = e.accuracy;
  d["samples"] = e.samples;
  if (e.positions > 1) {
    d["positions"] = e.positions;
    d["sequence_accuracy"] = e.sequence_accuracy;
  }
  const std::int64_t c = static_cast<std::int64_t>(e.confusion.size());
  Tensor conf(Shape{c, c}, DType::i64);
  for (std::int64_t i = 0; i < c; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      conf.data<std::int64_t>()[i * c + j] = e.confusion[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)];
  d["confusion"] = array_view(conf, true);
  return d;
}

py::dict params_dict(const PyModel& m, const ModelPtr&) {
  py::dict d;
  for (const auto& [name, t] : m.model.params) d[py::str(name)] = array_view(t, true);
  return d;
}

/// A compiled plan of a model, with the arrays bound to its inputs kept alive.
struct PyPlan {
  ModelPtr model;
  std::unique_ptr<Plan> plan;
};

void set_inputs(PyPlan& p, const py::handle& inputs) {
  if (inputs.is_none()) return;
  if (!py::isinstance<py::dict>(inputs)) throw py::type_error("forward: inputs are a dict {input name: array}");
  for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(inputs)) {
    const std::string name = k.cast<std::string>();
    const Graph& g = p.plan->graph();
    const auto id = g.find(name);
    const DType want = id && g.node(*id).index ? DType::i64 : p.plan->dtype();
    p.plan->set_input(name, tensor_from(v, want, fmt::format("input '{}'", name)));
  }
}

PyPlan compile(const ModelPtr& m, std::int64_t batch, const std::string& mode, const std::vector<std::string>& keep,
               const std::vector<std::string>& input_grads, const std::map<std::string, std::int64_t>& dims,
               bool backward, const std::optional<std::uint64_t>& seed, bool keep_all, bool keep_grads,
               bool detect_anomaly, bool profile, bool fuse) {
  PlanOptions o;
  o.batch = batch;
  if (mode == "train") o.mode = Mode::train;
  else if (mode == "eval") o.mode = Mode::eval;
  else if (mode == "auto") o.mode = Mode::automatic;
  else throw py::value_error(fmt::format("compile: mode is 'train', 'eval' or 'auto', got '{}'", mode));
  for (const auto& [k, v] : dims) o.dims.emplace_back(k, v);
  o.keep = keep;
  o.input_grads = input_grads;
  o.backward = backward;
  o.seed = seed ? *seed : m->seed;
  o.keep_all = keep_all;
  o.keep_grads = keep_grads;
  o.detect_anomaly = detect_anomaly;
  o.profile = profile;
  o.fuse = fuse;
  PyPlan p{m, nullptr};
  py::gil_scoped_release release;
  p.plan = std::make_unique<Plan>(m->model.graph, m->model.params, std::move(o));
  return p;
}

std::string dump(const Graph& g, const std::string& format, bool backward, std::int64_t batch, bool collapse,
                 bool hide_identity, const std::string& labels) {
  DumpOptions o;
  o.backward = backward;
  o.batch = batch;
  o.collapse = collapse;
  o.hide_identity = hide_identity;
  o.labels = labels;
  if (format == "dot") return dump_dot(g, o);
  if (format == "svg") return render_svg(dump_dot(g, o));
  if (format == "json") return dump_json(g, o);
  if (format == "og") return dump_og(g, o);
  throw py::value_error(fmt::format("dump: format is 'dot', 'svg', 'json' or 'og', got '{}'", format));
}

}  // namespace

void bind_model(py::module_& m) {
  m.def("_distributed", [](const std::optional<bool>& distributed) {
    const bool mpi = distributed ? *distributed : !detect_mpi_launcher().empty();
    Communicator& c = python_communicator(mpi);
    py::dict d;
    d["rank"] = c.rank();
    d["size"] = c.size();
    d["name"] = c.name();
    return d;
  });
  py::class_<PyOptimizer>(m, "Optimizer",
                          "An optimizer from a spec ('sgd:lr=0.1', 'adam:lr=1e-3,schedule=cosine'; see "
                          "`opgraph train --help`). Its state carries from one fit to the next.")
      .def(py::init(&make_optimizer_from), py::arg("spec"))
      .def_readonly("spec", &PyOptimizer::spec)
      .def_property_readonly("steps", [](const PyOptimizer& o) { return o.optimizer->steps(); })
      .def_property_readonly("learning_rate", [](const PyOptimizer& o) { return o.optimizer->learning_rate(); })
      .def("step",
           [](PyOptimizer& o, const py::object& plan_obj) {
             PyPlan& p = plan_obj.cast<PyPlan&>();
             const auto slots = p.plan->parameters();
             py::gil_scoped_release release;
             o.optimizer->step(slots);
           },
           py::arg("plan"), "One update of every parameter of the plan from the gradients of its last backward().")
      .def("__repr__", [](const PyOptimizer& o) { return "og.Optimizer(" + o.optimizer->describe() + ")"; });

  py::class_<PyPlan>(m, "Plan",
                     "A compiled plan: buffers and schedule for one batch size. Inputs are bound, not "
                     "copied, when their dtype and layout match; value() and grad() are views of the plan's "
                     "buffers (the next pass overwrites them: copy with np.array to keep one).")
      .def(
          "set_input", [](PyPlan& p, const std::string& name, const py::object& v) { set_inputs(p, py::dict(py::arg(name.c_str()) = v)); },
          py::arg("name"), py::arg("array"))
      .def(
          "forward",
          [](PyPlan& p, const py::object& inputs) {
            set_inputs(p, inputs);
            py::gil_scoped_release release;
            p.plan->forward();
          },
          py::arg("inputs") = py::none(), "Binds the inputs given ({name: array}) and runs the forward pass.")
      .def(
          "backward",
          [](PyPlan& p, const py::object& seed) {
            if (seed.is_none()) {
              py::gil_scoped_release release;
              p.plan->backward();
              return;
            }
            Tensor s = tensor_from(seed, p.plan->dtype(), "backward: seed");
            py::gil_scoped_release release;
            p.plan->backward(s);
          },
          py::arg("seed") = py::none(), "The reverse pass from the loss (or from `seed`, d(out)/d(loss node)).")
      .def_property_readonly("loss", [](const PyPlan& p) { return p.plan->loss(); })
      .def(
          "value", [](const PyPlan& p, const std::string& name) { return array_view(p.plan->value(name), false); },
          py::arg("node"), "A read-only view of a node's value after forward().")
      .def(
          "grad", [](const PyPlan& p, const std::string& name) { return array_view(p.plan->grad(name), false); },
          py::arg("node"), "A read-only view of d(loss)/d(node) after backward().")
      .def_property_readonly("params",
                             [](const PyPlan& p) {
                               py::dict d;
                               for (const auto& s : p.plan->parameters()) d[py::str(s.name)] = array_view(s.value, true);
                               return d;
                             })
      .def_property_readonly("grads",
                             [](const PyPlan& p) {
                               py::dict d;
                               for (const auto& s : p.plan->parameters())
                                 if (s.grad.defined() && s.grad.numel() > 0) d[py::str(s.name)] = array_view(s.grad, false);
                               return d;
                             })
      .def_property("step", [](const PyPlan& p) { return p.plan->step(); },
                    [](PyPlan& p, std::int64_t s) { p.plan->set_step(s); })
      .def_property_readonly("batch", [](const PyPlan& p) { return p.plan->batch(); })
      .def_property_readonly("dtype", [](const PyPlan& p) { return std::string(to_string(p.plan->dtype())); })
      .def_property_readonly("training", [](const PyPlan& p) { return p.plan->training(); })
      .def_property_readonly("warnings", [](const PyPlan& p) { return p.plan->warnings(); })
      .def("profile",
           [](const PyPlan& p) {
             py::list out;
             for (const auto& n : p.plan->profile()) {
               py::dict d;
               d["node"] = n.name;
               d["op"] = n.op;
               d["forward_seconds"] = n.forward_seconds;
               d["backward_seconds"] = n.backward_seconds;
               d["forward_calls"] = n.forward_calls;
               d["backward_calls"] = n.backward_calls;
               d["forward_flops"] = n.forward_flops;
               d["backward_flops"] = n.backward_flops;
               d["fused_into"] = n.fused_into.empty() ? py::object(py::none()) : py::object(py::str(n.fused_into));
               d["vjp_absorbed_by"] =
                   n.vjp_absorbed_by.empty() ? py::object(py::none()) : py::object(py::str(n.vjp_absorbed_by));
               out.append(d);
             }
             return out;
           })
      .def("__repr__", [](const PyPlan& p) {
        return fmt::format("<og.Plan batch {} {} {}>", p.plan->batch(), to_string(p.plan->dtype()),
                           p.plan->training() ? "train" : "eval");
      });

  py::class_<PyModel, ModelPtr>(m, "_Model")
      .def_static(
          "_from_graph",
          [](const PyGraph& g, std::uint64_t seed, const py::object& dtype, const std::string& input,
             const std::optional<std::string>& labels) {
            return model_from_graph(*g.graph, seed, dtype.is_none() ? DType::f32 : dtype_from(dtype), input, labels, {},
                                    "<python>");
          },
          py::arg("graph"), py::arg("seed"), py::arg("dtype"), py::arg("input"), py::arg("labels"))
      .def_static("_load", &load, py::arg("path"), py::arg("seed"), py::arg("dtype"))
      .def("save", &save, py::arg("path"), py::arg("optimizer") = std::optional<PyOptimizer>())
      .def("fit", &fit, py::arg("x"), py::arg("y"), py::arg("optimizer"), py::arg("epochs"), py::arg("batch"),
           py::arg("shuffle"), py::arg("seed"), py::arg("validation"), py::arg("callback"), py::arg("target_loss"),
           py::arg("verbose"), py::arg("frozen"), py::arg("shards"), py::arg("distributed"), py::arg("overlap"),
           py::arg("allreduce"))
      .def(
          "evaluate",
          [](const ModelPtr& pm, const py::object& x, const py::object& y, std::int64_t batch) {
            if (y.is_none() && needs_labels(*pm))
              throw GraphError("evaluate", fmt::format("the loss reads labels from input '{}': pass them as y",
                                                        pm->model.labels));
            Samples s = samples(*pm, x, needs_labels(*pm) ? y : py::none(), "evaluate");
            Trainer& t = pm->trainer_for(s.feeds);
            Evaluation e;
            {
              py::gil_scoped_release release;
              e = t.evaluate(s.data, batch);
            }
            return evaluation_dict(e);
          },
          py::arg("x"), py::arg("y"), py::arg("batch"))
      .def(
          "predict",
          [](const ModelPtr& pm, const py::object& x, std::int64_t batch) {
            Samples s = samples(*pm, x, py::none(), "predict");
            Trainer& t = pm->trainer_for(s.feeds);
            Predictions p;
            {
              py::gil_scoped_release release;
              p = t.predict(s.data.features, batch);
            }
            // A class per position: the labels [n, T] (the probabilities' shape without the classes).
            const auto& dims = p.probabilities.shape().dims();
            Tensor labels(dims.size() > 2 ? Shape(std::vector<std::int64_t>(dims.begin(), dims.end() - 1))
                                          : Shape{static_cast<std::int64_t>(p.labels.size())},
                          DType::i64);
            if (!p.labels.empty()) std::memcpy(labels.raw(), p.labels.data(), labels.nbytes());
            return py::make_tuple(array_view(p.probabilities, true),
                                  p.classes ? py::object(array_view(labels, true)) : py::object(py::none()));
          },
          py::arg("x"), py::arg("batch"))
      .def("compile", &compile, py::arg("batch"), py::arg("mode"), py::arg("keep"), py::arg("input_grads"),
           py::arg("dims"), py::arg("backward"), py::arg("seed"), py::arg("keep_all"), py::arg("keep_grads"),
           py::arg("detect_anomaly"), py::arg("profile"), py::arg("fuse"))
      .def("params", [](const ModelPtr& pm) { return params_dict(*pm, pm); })
      .def("trainable", [](const PyModel& pm) {
        std::vector<std::string> out;
        for (const auto& [name, t] : pm.model.params)
          if (pm.model.params.trainable(name)) out.push_back(name);
        return out;
      })
      .def("dump",
           [](const PyModel& pm, const std::string& format, bool backward, std::int64_t batch, bool collapse,
              bool hide_identity) {
             return dump(pm.model.graph, format, backward, batch, collapse, hide_identity, pm.model.labels);
           })
      .def("export_onnx",
           [](const PyModel& pm, const std::string& path, int opset, const std::vector<std::string>& outputs) {
             OnnxExportOptions o;
             o.opset = opset;
             o.outputs = outputs;
             py::gil_scoped_release release;
             save_onnx(path, pm.model.graph, pm.model.params, o);
           })
      .def("text", &model_text)
      .def("graph", [](const PyModel& pm) { return PyGraph{std::make_shared<Graph>(pm.model.graph)}; })
      .def_property_readonly("input", [](const PyModel& pm) { return pm.model.input; })
      .def_property_readonly("labels",
                             [](const PyModel& pm) { return needs_labels(pm) ? pm.model.labels : std::string(); })
      .def_property_readonly("seed", [](const PyModel& pm) { return pm.seed; })
      .def_property_readonly("dtype", [](const PyModel& pm) { return std::string(to_string(pm.model.params.dtype())); })
      .def_property_readonly("epochs_done", [](const PyModel& pm) { return pm.epochs_done; })
      .def_property_readonly("name", [](const PyModel& pm) { return pm.name; })
      .def_property_readonly("meta", [](const PyModel& pm) { return pm.meta; })
      .def_property_readonly("extra", [](const PyModel& pm) {
        py::dict d;
        for (const auto& [k, t] : pm.extra) d[py::str(k)] = array_view(t, false);
        return d;
      })
      .def("gradcheck",
           [](const PyModel& pm, const py::dict& inputs, std::int64_t batch, std::uint64_t seed, double tolerance) {
             // In f64, on a copy of the parameters: the model's own values are untouched.
             Params p64(DType::f64);
             for (const auto& [name, t] : pm.model.params) {
               if (pm.model.params.trainable(name)) p64.set(name, t.to(DType::f64));
               else p64.set_state(name, t.to(DType::f64));
             }
             std::vector<std::pair<std::string, Tensor>> in;
             for (const auto& [k, v] : inputs) {
               const std::string name = k.cast<std::string>();
               const auto id = pm.model.graph.find(name);
               const DType want = id && pm.model.graph.node(*id).index ? DType::i64 : DType::f64;
               in.emplace_back(name, tensor_from(v, want, fmt::format("gradcheck: input '{}'", name)));
             }
             GradCheckOptions o;
             o.seed = seed;
             o.tolerance = tolerance;
             GradCheckResult r;
             {
               py::gil_scoped_release release;
               r = check_graph_gradients(pm.model.graph, p64, in, batch, o);
             }
             return gradcheck_dict(r);
           });

  m.def(
      "load_data",
      [](const std::string& spec, const std::string& data_dir) {
        LoadedData d;
        {
          py::gil_scoped_release release;
          d = load_data(spec, data_dir);
        }
        py::dict out;
        out["x"] = array_view(d.train.features, true);
        out["y"] = array_view(d.train.labels, true);
        out["x_test"] = d.has_test() ? py::object(array_view(d.test.features, true)) : py::object(py::none());
        out["y_test"] = d.has_test() ? py::object(array_view(d.test.labels, true)) : py::object(py::none());
        out["class_names"] = d.train.class_names;
        out["sample_shape"] = shape_tuple(d.train.sample_shape);
        out["description"] = d.description;
        out["notes"] = d.notes;
        return out;
      },
      py::arg("spec"), py::arg("data_dir") = "");
  m.def("_dump_graph", [](const PyGraph& g, const std::string& format, bool backward, std::int64_t batch, bool collapse,
                          bool hide_identity) { return dump(*g.graph, format, backward, batch, collapse, hide_identity, {}); });
}

}  // namespace opgraph::python
