// opgraph train / eval / predict / export.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <array>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/frontends/data_spec.hpp>
#include <opgraph/frontends/files.hpp>
#include <opgraph/frontends/json.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/onnx/onnx.hpp>
#include <opgraph/frontends/plot.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/size.hpp>
#include <opgraph/graph/spec.hpp>

#include "cli.hpp"
#include "progress.hpp"

namespace opgraph::cli {

namespace {

namespace fs = std::filesystem;

const Option kDataDir{"data-dir", "DIR", "the data folder holding mnist/, small/, ... (default $OPGRAPH_DATA)"};
const Option kThreads{"threads", "N", "worker threads (default: one per core; results do not depend on it)"};
const Option kDetectAnomaly{"detect-anomaly", "",
                            "stop at the first NaN or infinity, naming the node, its op and where it was declared"};
const Option kMemoryLimit{"memory-limit", "SIZE",
                          "the most memory tensors, plans and data may take, e.g. 512M or 2G, or none (default: 80% "
                          "of physical memory)"};

}  // namespace

void set_threads(const Args& a) {
  if (a.has("threads")) set_num_threads(static_cast<int>(a.integer("threads", 0, 1, 1024)));
}

void set_memory_limit_option(const Args& a) {
  if (const auto bytes = a.bytes("memory-limit")) set_memory_limit(*bytes);
}

void print_notes(const std::vector<std::string>& notes, bool quiet) {
  if (quiet) return;
  for (const auto& n : notes) std::fprintf(stderr, "%s\n", n.c_str());
}

namespace {

/// The model file, which must declare a loss (a `labels` input is optional: without one,
/// training needs no labels, as an autoencoder's loss compares its output with an input).
ModelFile load_trainable(const std::string& path) {
  ModelFile m = load_model(path);
  if (!m.graph.loss()) throw GraphError(path, "the model declares no loss: add one such as 'loss xent = ...'");
  if (m.graph.params().empty())
    throw GraphError(path, "the model has no parameters to train: declare them with 'param NAME [dims]'");
  return m;
}

/// "loss 0.1234  accuracy 0.9500", or the loss alone for a model without classes.
std::string metrics_text(double loss, double accuracy) {
  return std::isnan(accuracy) ? fmt::format("loss {:.4f}", loss) : fmt::format("loss {:.4f}  accuracy {:.4f}", loss, accuracy);
}

/// metrics_text, with the share of whole sequences right for a class per position; for
/// text (next-character prediction), bits per character instead.
std::string metrics_text(const Evaluation& e, const LoadedData& data) {
  std::string s = metrics_text(e.loss, e.accuracy);
  if (!std::isnan(data.unigram_bits)) s += fmt::format("  bits/char {:.3f}", e.loss / std::log(2.0));
  else if (!std::isnan(e.sequence_accuracy)) s += fmt::format(" per position, {:.4f} of sequences exact", e.sequence_accuracy);
  return s;
}

/// The evaluation's numbers in a JSON object, keys prefixed ("test_loss", ...).
void add_metrics(json::Object& j, const std::string& prefix, const Evaluation& e, const LoadedData& data) {
  j.add(prefix + "loss", e.loss).add(prefix + "accuracy", e.accuracy);
  if (!std::isnan(data.unigram_bits)) j.add(prefix + "bits_per_char", e.loss / std::log(2.0));
  else if (!std::isnan(e.sequence_accuracy)) j.add(prefix + "sequence_accuracy", e.sequence_accuracy);
}

/// Per-node statistics as CSV, one row per node per epoch.
void write_stats(const std::string& path, const std::vector<NodeStats>& stats) {
  std::string csv = "epoch,node,op,value_mean,value_std,value_max_abs,grad_mean,grad_std,grad_max_abs\n";
  auto num = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); };
  for (const auto& s : stats)
    csv += fmt::format("{},{},{},{},{},{},{},{},{}\n", s.epoch, s.node, s.op, num(s.value_mean), num(s.value_std),
                       num(s.value_max_abs), num(s.grad_mean), num(s.grad_std), num(s.grad_max_abs));
  write_file_atomic(path, csv);
}

/// The same as a plot: per node, the standard deviation of its values and of its
/// gradients against the epoch, on a log scale (vanishing or exploding signals show as
/// lines falling or rising by decades).
std::string stats_svg(const std::vector<NodeStats>& stats) {
  std::map<std::string, Series> values, grads;
  std::vector<std::string> order;
  for (const auto& s : stats) {
    if (!values.count(s.node)) order.push_back(s.node);
    auto& v = values[s.node];
    v.name = s.node;
    v.x.push_back(s.epoch);
    v.y.push_back(s.value_std > 0 ? std::log10(s.value_std) : std::numeric_limits<double>::quiet_NaN());
    auto& g = grads[s.node];
    g.name = s.node;
    g.x.push_back(s.epoch);
    g.y.push_back(s.grad_std > 0 ? std::log10(s.grad_std) : std::numeric_limits<double>::quiet_NaN());
  }
  std::vector<Series> vs, gs;
  for (const auto& n : order) {
    vs.push_back(values[n]);
    gs.push_back(grads[n]);
  }
  const std::string a = line_chart("Values: std per node", "epoch", "log10 std", vs);
  const std::string b = line_chart("Gradients: std per node", "epoch", "log10 std", gs);
  // Two charts one above the other in one file.
  auto body = [](const std::string& svg) {
    const auto open = svg.find('>', svg.find("<svg")) + 1;
    return svg.substr(open, svg.rfind("</svg>") - open);
  };
  auto height = [](const std::string& svg) {
    const auto at = svg.find("height=\"") + 8;
    return std::stoi(svg.substr(at, svg.find('"', at) - at));
  };
  auto width = [](const std::string& svg) {
    const auto at = svg.find("width=\"") + 7;
    return std::stoi(svg.substr(at, svg.find('"', at) - at));
  };
  const int h1 = height(a), h2 = height(b), w = std::max(width(a), width(b));
  return fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\">\n"
                     "<g>{}</g>\n<g transform=\"translate(0,{})\">{}</g>\n</svg>\n",
                     w, h1 + h2, body(a), h1, body(b));
}

std::optional<Standardizer> saved_standardizer(const Checkpoint& c) {
  const Tensor *mean = nullptr, *stddev = nullptr;
  for (const auto& [name, t] : c.extra) {
    if (name == "data.mean") mean = &t;
    if (name == "data.std") stddev = &t;
  }
  if (!mean || !stddev) return std::nullopt;
  return Standardizer::from(mean->to_vector(), stddev->to_vector());
}

/// Refuses a checkpoint saved from another architecture than `file`, saying what differs:
/// the saved model text is compared node by node; without one (a checkpoint written from
/// C++), the recorded fingerprint.
void check_same_model(const ModelFile& file, const Checkpoint& c, const std::string& ckpt_path) {
  if (!c.model.empty()) {
    ModelFile saved;
    try {
      saved = parse_model(c.model, ckpt_path + " (model)");
    } catch (const Error& e) {
      const auto plugins = c.meta.find("plugins");
      if (plugins != c.meta.end() && !plugins->second.empty())
        throw DataError(ckpt_path, fmt::format("its model needs ops from plugins: {}: load them with --plugin ({})",
                                               plugins->second, e.detail()));
      throw;
    }
    std::string why;
    if (!same_graph(file.graph, saved.graph, &why))
      throw DataError(ckpt_path, fmt::format("saved from another model than {}: {}", file.name, why));
    return;
  }
  if (const auto it = c.meta.find("graph"); it != c.meta.end() && it->second != graph_fingerprint(file.graph))
    throw DataError(ckpt_path, fmt::format("saved from another model than {} (graph fingerprint {} against {})",
                                           file.name, it->second, graph_fingerprint(file.graph)));
}

/// The model with the checkpoint's parameters, after checking the checkpoint was saved
/// from this architecture, and each parameter by name and shape.
Model restored(const ModelFile& file, const Checkpoint& c, const std::string& ckpt_path) {
  check_same_model(file, c, ckpt_path);
  Model m{file.graph, file.graph.init_params(c.seed, c.params.size() ? c.params.dtype() : DType::f32), file.input,
          file.labels};
  restore_params(c, m.params, ckpt_path);
  return m;
}

/// "parameter 'out.W' holds inf", or "" when every parameter is finite.
std::string non_finite_parameter(const Params& params) {
  for (const auto& [name, t] : params)
    for (std::int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t.at(i))) return fmt::format("parameter '{}' holds {}", name, t.at(i));
  return {};
}

void write_metrics(const std::string& path, const std::vector<EpochReport>& history) {
  std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n";
  for (const auto& e : history)
    csv += fmt::format("{},{},{},{},{},{},{}\n", e.epoch, e.train_loss, e.train_accuracy,
                       e.has_validation() ? fmt::format("{}", e.val_loss) : std::string(),
                       e.has_validation() ? fmt::format("{}", e.val_accuracy) : std::string(), e.learning_rate,
                       e.seconds);
  write_file_atomic(path, csv);
}

/// The kernel of the model's first convolution, if a parameter: the filters a CNN learned.
const Node* first_conv_kernel(const Model& model) {
  for (NodeId id : model.graph.topological_order()) {
    const Node& n = model.graph.node(id);
    if (n.op && n.op->name == "conv2d" && n.inputs.size() > 1 && model.graph.node(n.inputs[1]).kind == NodeKind::param)
      return &model.graph.node(n.inputs[1]);
  }
  return nullptr;
}

void write_plots(const std::string& dir, const std::vector<EpochReport>& history, Trainer& trainer, const Model& model,
                 const Dataset& shown, bool quiet) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw DataError(dir, "cannot create the plot folder");
  Series loss{"train", {}, {}}, val_loss{"validation", {}, {}}, acc{"train", {}, {}}, val_acc{"validation", {}, {}};
  bool has_val = false;
  for (const auto& e : history) {
    loss.x.push_back(e.epoch);
    loss.y.push_back(e.train_loss);
    acc.x.push_back(e.epoch);
    acc.y.push_back(e.train_accuracy);
    val_loss.x.push_back(e.epoch);
    val_loss.y.push_back(e.val_loss);
    val_acc.x.push_back(e.epoch);
    val_acc.y.push_back(e.val_accuracy);
    has_val = has_val || e.has_validation();
  }
  std::vector<Series> losses{loss}, accuracies{acc};
  if (has_val) {
    losses.push_back(val_loss);
    accuracies.push_back(val_acc);
  }
  std::vector<std::string> written;
  auto write = [&](const std::string& name, const std::string& svg) {
    write_file_atomic((fs::path(dir) / name).string(), svg);
    written.push_back(name);
  };
  write("loss.svg", line_chart("Loss", "epoch", "loss", losses));
  const bool classes = trainer.measures_accuracy();
  if (classes) write("accuracy.svg", line_chart("Accuracy", "epoch", "accuracy", accuracies));
  if (classes && shown.num_features() == 2)
    write("decision_regions.svg", decision_regions(trainer, shown, "Decision regions: " + shown.name));
  if (classes && shown.sample_shape.rank() == 2)
    write("misclassified.svg", misclassified_grid(shown, trainer.predict(shown.features).labels,
                                                  "Misclassified: " + shown.name));
  // A model that reproduces its images (an autoencoder): originals next to reconstructions.
  if (!classes && shown.sample_shape.rank() == 2 && trainer.head().exists &&
      trainer.head().outputs == shown.num_features()) {
    Dataset first = shown.rows([&] {
      std::vector<std::int64_t> r;
      for (std::int64_t i = 0; i < std::min<std::int64_t>(16, shown.size()); ++i) r.push_back(i);
      return r;
    }());
    write("reconstructions.svg", reconstruction_grid(first, trainer.predict(first.features).probabilities,
                                                     "Reconstructions: " + shown.name));
  }
  if (const Node* kernel = first_conv_kernel(model))
    write("filters.svg", filter_grid(model.params.at(kernel->name), "First-layer filters: " + kernel->name));
  if (!quiet) std::fprintf(stderr, "plots: %s in %s\n", fmt::format("{}", fmt::join(written, ", ")).c_str(), dir.c_str());
}

std::string confusion_text(const Evaluation& e, const Dataset& d) {
  std::string s = "confusion (rows: true, columns: predicted):\n      ";
  for (std::size_t j = 0; j < e.confusion.size(); ++j) s += fmt::format(" {:>6.6}", d.class_name(static_cast<std::int64_t>(j)));
  s += "\n";
  for (std::size_t i = 0; i < e.confusion.size(); ++i) {
    s += fmt::format("{:>6.6}", d.class_name(static_cast<std::int64_t>(i)));
    for (auto v : e.confusion[i]) s += fmt::format(" {:>6}", v);
    s += "\n";
  }
  return s;
}

std::string confusion_json(const Evaluation& e) {
  std::vector<std::string> rows;
  for (const auto& r : e.confusion) {
    std::vector<std::string> cells;
    for (auto v : r) cells.push_back(std::to_string(v));
    rows.push_back(json::array(cells));
  }
  return json::array(rows);
}

/// The part of the data eval and predict use: --part, else test when there is one.
const Dataset& chosen_part(const Args& a, const LoadedData& d) {
  const std::string part = a.get("part", d.has_test() ? "test" : "train");
  if (part == "test") {
    if (!d.has_test()) a.fail("--part test: this data has no test part (add test=F to the spec)");
    return d.test;
  }
  if (part == "train") return d.train;
  a.fail(fmt::format("--part: expected train or test, got '{}'", part));
}

/// --augment shift=N,flip: the image augmentation of the training batches.
Augment parse_augment(const Args& a, const std::string& text) {
  Augment aug;
  if (text.empty() || text == "none") return aug;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    if (item == "flip" || item == "flip=true") {
      aug.flip = true;
    } else if (item == "flip=false") {
      aug.flip = false;
    } else if (item.rfind("shift=", 0) == 0) {
      const auto n = parse_integer(item.substr(6));
      if (!n || *n < 0 || *n > 64)
        a.fail(fmt::format("--augment {}: shift takes whole pixels from 0 to 64, got '{}'", text, item.substr(6)));
      aug.shift = *n;
    } else {
      a.fail(fmt::format("--augment {}: unknown item '{}': expected shift=N and flip, e.g. shift=2 or shift=4,flip", text,
                         item));
    }
    start = end + 1;
  }
  return aug;
}

}  // namespace

/// The machine's first process copies its training set into memory every process of
/// the machine maps, and returns views of it (every process on the machine calls this).
static Dataset share_on_machine(Communicator& comm, const Dataset& mine) {
  // Shape and dtype of features and labels, from the first process.
  std::array<std::int64_t, 20> head{};
  if (comm.machine_rank() == 0) {
    const Shape& f = mine.features.shape();
    const Shape& l = mine.labels.shape();
    if (f.rank() > 8 || l.rank() > 8) throw DataError(mine.name, "cannot share a dataset of rank above 8");
    head[0] = static_cast<std::int64_t>(mine.features.dtype());
    head[1] = static_cast<std::int64_t>(mine.labels.dtype());
    head[2] = f.rank();
    head[3] = l.rank();
    for (int i = 0; i < f.rank(); ++i) head[static_cast<std::size_t>(4 + i)] = f[i];
    for (int i = 0; i < l.rank(); ++i) head[static_cast<std::size_t>(12 + i)] = l[i];
  }
  comm.machine_broadcast(head.data(), sizeof head);
  std::vector<std::int64_t> fd(head.begin() + 4, head.begin() + 4 + head[2]), ld(head.begin() + 12, head.begin() + 12 + head[3]);
  const auto fdt = static_cast<DType>(head[0]), ldt = static_cast<DType>(head[1]);
  const std::size_t fbytes = checked_bytes(Shape(fd).numel(), size_of(fdt), "the shared training set");
  const std::size_t lbytes = checked_bytes(Shape(ld).numel(), size_of(ldt), "the shared training labels");
  const std::size_t at = (fbytes + 63) / 64 * 64;
  std::shared_ptr<void> block = comm.machine_shared(at + lbytes);
  if (comm.machine_rank() == 0) {
    std::memcpy(block.get(), mine.features.raw(), fbytes);
    std::memcpy(static_cast<char*>(block.get()) + at, mine.labels.raw(), lbytes);
  }
  comm.machine_barrier();  // written before anyone reads
  Dataset out = mine;
  out.features = Tensor::view(block.get(), Shape(fd), fdt, block);
  out.labels = Tensor::view(static_cast<char*>(block.get()) + at, Shape(ld), ldt, block);
  return out;
}

/// Replaces this process's training set by the machine's shared copy, after checking that
/// it loaded the same data (a process reading other files than its neighbours would
/// otherwise train on data it never saw).
static void adopt_shared(const Dataset& shared, Dataset& mine) {
  if (mine.features.shape() != shared.features.shape() || mine.labels.shape() != shared.labels.shape() ||
      mine.features.dtype() != shared.features.dtype() ||
      std::memcmp(mine.features.raw(), shared.features.raw(), mine.features.nbytes()) != 0 ||
      std::memcmp(mine.labels.raw(), shared.labels.raw(), mine.labels.nbytes()) != 0)
    throw DataError(mine.name, "this process loaded other training data than the first process on its machine: every "
                               "process must read the same data (the same --data, files and data folder)");
  mine.features = shared.features;
  mine.labels = shared.labels;
}

int train(int argc, char** argv) {
  const std::vector<Option> options = {
      {"data", "SPEC", "the data (see opgraph data), e.g. moons:n=1000,test=0.3"},
      kDataDir,
      {"optim", "SPEC", "optimizer, e.g. momentum:lr=0.01,gamma=0.9 (default adam:lr=0.001)"},
      {"epochs", "N", "total epochs (default 10)"},
      {"batch", "N", "rows per step; 0 = full batch (default 32)"},
      {"seed", "N", "seed of the initial weights and the data order (default 0)"},
      kThreads,
      kMemoryLimit,
      {"val-split", "F", "hold out a fraction of the training data for validation"},
      {"target-loss", "F", "stop after an epoch whose training loss is at most F"},
      {"augment", "SPEC", "shift and flip the training images at random: shift=N (pixels along each axis), flip "
                          "(left-right, half the time), e.g. shift=2"},
      {"dtype", "f32|f64", "precision of the parameters and arithmetic (default f32)"},
      {"freeze", "NAMES", "parameters to leave as they are, comma-separated; a name ending in * is a prefix "
                          "(e.g. conv1.*,hidden.W)"},
      {"save", "CKPT", "write a checkpoint after every epoch"},
      {"resume", "CKPT", "continue the training saved in CKPT (same model, data, batch)"},
      {"metrics", "FILE.csv", "write per-epoch loss and accuracy as CSV"},
      {"stats", "FILE.csv", "write per-node statistics of values and gradients per epoch as CSV, and as a plot "
                            "beside it (FILE.svg)"},
      {"plot", "DIR", "write SVG plots: loss and accuracy curves, decision regions, misclassified images, "
                      "reconstructions"},
      {"json", "", "print the final metrics as one JSON object on stdout"},
      {"quiet", "", "print nothing but the result"},
      kDetectAnomaly,
      {"distributed", "", "train data-parallel over MPI (automatic under mpirun or mpiexec); see docs/distributed.md"},
      {"shards", "S", "data-parallel: split every batch into S shards (default 4, at least the process count); the "
                      "result depends on S, never on the process count; without MPI, S shards in this process"},
      {"allreduce", "", "data-parallel: sum gradients with MPI_Allreduce (faster; the bits then depend on the "
                        "process count)"},
      {"no-overlap", "", "data-parallel: exchange gradients after the backward pass, not while it runs"},
      {"bucket-kb", "N", "data-parallel: gradients are exchanged in buckets of at least N KiB (default 1024)"},
      {"comm-timeout", "S", "data-parallel: end the run when the other processes do not answer for S seconds "
                            "(default 600)"},
  };
  const Args a("train", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph train MODEL.og --data SPEC [options]",
                         "Trains the model in MODEL.og and reports loss and accuracy.", options)
                   .c_str(),
               stdout);
    return 0;
  }
  const std::string model_path = a.one_positional("MODEL.og");
  // Data-parallel: every process of the run executes this same command; rank 0 alone
  // prints and writes files.
  const bool mpi = a.has("distributed") || !detect_mpi_launcher().empty();
  const std::int64_t shards_given = a.integer("shards", 0, 1, 1 << 16);
  const std::int64_t bucket_kb = a.integer("bucket-kb", 1024, 1, std::int64_t{1} << 21);
  const double comm_timeout = a.real("comm-timeout", 600.0, 0.0);
  Communicator* comm = mpi ? &open_distributed(true) : nullptr;
  if (comm) comm->set_timeout(comm_timeout);
  const int rank = comm ? comm->rank() : 0;
  if (comm && comm->size() > 1 && !a.has("threads")) {
    // Processes on one machine share its cores: each takes its part, not all of them.
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = std::getenv("MPI_LOCALNRANKS");
    const int per_machine = local ? std::max(1, std::atoi(local)) : comm->size();
    set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / per_machine));
  }
  set_threads(a);
  set_memory_limit_option(a);
  const bool speaks = rank == 0;
  const bool quiet = a.has("quiet") || !speaks, as_json = a.has("json");
  // Numbers first: a usage error is reported before any file is read.
  const std::int64_t epochs = a.integer("epochs", 10, 1);
  const double target_loss = a.real("target-loss", 0.0, 0.0);
  if (a.has("dtype") && a.get("dtype") != "f32" && a.get("dtype") != "f64")
    a.fail(fmt::format("--dtype: expected f32 or f64, got '{}'", a.get("dtype")));

  protect_input(model_path, "the model file");
  std::optional<Checkpoint> resume;
  if (a.has("resume")) {
    resume = load_checkpoint(a.get("resume"));
    // Saving where one resumes from is the usual way to continue a run; anything else
    // must not overwrite the checkpoint being resumed.
    if (a.get("save") != a.get("resume")) protect_input(a.get("resume"), "the checkpoint being resumed");
  }
  // Outputs that could not be written, or would replace an input, fail now, not after
  // the training.
  const std::string stats_svg_path =
      a.has("stats") ? (fs::path(a.get("stats")).replace_extension(".svg")).string() : std::string();
  if (a.has("stats") && stats_svg_path == a.get("stats"))
    a.fail(fmt::format("--stats {}: name a .csv file (the plot goes beside it as .svg)", a.get("stats")));
  if (a.has("save"))
    if (const std::string problem = checkpoint_path_problem(a.get("save")); !problem.empty())
      a.fail(fmt::format("--save {}: {}", a.get("save"), problem));
  const std::vector<std::pair<std::string, std::string>> outputs = {{"--save", a.get("save")},
                                                                    {"--metrics", a.get("metrics")},
                                                                    {"--stats", a.get("stats")},
                                                                    {"--stats (its plot)", stats_svg_path}};
  check_outputs(outputs);
  if (a.has("plot")) check_folder_for_output(a.get("plot"));

  auto meta = [&](const char* key, const std::string& fallback) {
    if (resume)
      if (auto it = resume->meta.find(key); it != resume->meta.end()) return it->second;
    return fallback;
  };
  const std::string spec = a.get("data", meta("data", ""));
  if (spec.empty()) a.fail("--data SPEC is required (see opgraph data)");

  const ModelFile file = load_trainable(model_path);
  if (resume) check_same_model(file, *resume, a.get("resume"));
  const std::uint64_t seed = static_cast<std::uint64_t>(
      a.integer("seed", resume ? static_cast<std::int64_t>(resume->seed) : 0, 0, std::numeric_limits<std::int64_t>::max()));
  if (resume && seed != resume->seed)
    a.fail(fmt::format("--seed {} differs from the checkpoint's seed {}: resuming needs the same data order", seed,
                       resume->seed));
  const DType dtype = parse_dtype(a.get("dtype", meta("dtype", "f32")));
  // The shard count decides the bits of a data-parallel run: a resumed run keeps its own.
  std::int64_t shards = shards_given;
  if (const std::string m = meta("shards", ""); !m.empty()) {
    const auto saved = parse_integer(m);
    if (!saved || *saved < 1) throw DataError(a.get("resume"), fmt::format("corrupt checkpoint: shards '{}'", m));
    if (shards_given > 0 && shards_given != *saved)
      a.fail(fmt::format("--shards {} differs from the checkpoint's {}: resuming bit for bit needs the same shards",
                         shards_given, *saved));
    shards = *saved;
  }
  if (comm && shards == 0) shards = ExchangeOptions{}.shards;
  const bool allreduce = a.has("allreduce") || meta("reduce", "") == "allreduce";
  if (shards == 0 && (a.has("allreduce") || a.has("no-overlap") || a.has("bucket-kb") || a.has("comm-timeout")))
    a.fail("--allreduce, --no-overlap, --bucket-kb and --comm-timeout belong to a data-parallel run: run under "
           "mpirun, or add --shards S");
  if (shards > 0 && a.has("stats"))
    a.fail("--stats: per-node statistics are not collected in a data-parallel run (each process sees only its "
           "shards)");
  Communicator* exchange = comm ? comm : shards > 0 ? &open_distributed(false) : nullptr;
  std::int64_t saved_batch = 32;
  if (const std::string b = meta("batch", ""); !b.empty()) {
    const auto parsed = parse_integer(b);
    if (!parsed || *parsed < 0) throw DataError(a.get("resume"), fmt::format("corrupt checkpoint: batch '{}'", b));
    saved_batch = *parsed;
  }
  const std::int64_t batch = a.integer("batch", saved_batch, 0, std::numeric_limits<std::int64_t>::max());
  const std::string augment_text = a.get("augment", meta("augment", ""));
  const std::string frozen_text = a.get("freeze", meta("frozen", ""));
  std::vector<std::string> frozen;
  for (std::size_t start = 0; start < frozen_text.size();) {
    const std::size_t comma = std::min(frozen_text.find(',', start), frozen_text.size());
    if (comma == start) a.fail(fmt::format("--freeze '{}': an empty name", frozen_text));
    frozen.push_back(frozen_text.substr(start, comma - start));
    start = comma + 1;
    if (comma + 1 == frozen_text.size()) a.fail(fmt::format("--freeze '{}': an empty name", frozen_text));
  }
  const Augment augment = parse_augment(a, augment_text);
  if (resume && epochs < resume->epoch)
    a.fail(fmt::format("--epochs {}: the checkpoint has already done {} epochs", epochs, resume->epoch));
  if (resume && epochs == resume->epoch) {
    // Resuming a run that had in fact finished (killed after its last save, say) is not
    // an error: there is nothing left to do, and the checkpoint stays as it is.
    if (speaks)
      std::fprintf(stderr, "opgraph train: %s has already done %lld epochs: nothing to do\n", a.get("resume").c_str(),
                   static_cast<long long>(epochs));
    return 0;
  }

  std::optional<Standardizer> fitted;
  if (resume) fitted = saved_standardizer(*resume);
  LoadedData data;
  Dataset train_set, val_set;
  auto load = [&] {
    data = cli::spec("train", [&] { return load_data(spec, a.get("data-dir"), fitted ? &*fitted : nullptr); });
    for (const auto& f : data.files) protect_input(f, "the training data");
    check_outputs(outputs);
    print_notes(data.notes, quiet || as_json);
    train_set = data.train;
    if (a.has("val-split")) {
      Split s = train_test_split(data.train, a.fraction("val-split", 0.0), seed, true);
      train_set = std::move(s.train);
      val_set = std::move(s.test);
    }
    data.train = Dataset{};  // train_set holds what training reads
  };
  if (comm && comm->machine_size() > 1) {
    // Several processes on this machine: they load one after another, and the training
    // set lives once per machine, in memory they share (docs/distributed.md).
    Dataset shared;
    for (int turn = 0; turn < comm->machine_size(); ++turn) {
      if (turn == comm->machine_rank()) load();
      if (turn == 0) shared = share_on_machine(*comm, train_set);
      if (turn == comm->machine_rank()) adopt_shared(shared, train_set);
      comm->machine_barrier();
    }
  } else {
    load();
  }

  Model model{file.graph, file.graph.init_params(seed, dtype), file.input, file.labels, data.feeds};
  apply_initial(file, model.params);  // an ONNX file's weights: fine-tuning starts from them
  const std::string optim_spec = a.get("optim", resume && !resume->optimizer.empty() ? resume->optimizer : "adam:lr=1e-3");
  auto optimizer = cli::spec("train", [&] { return parse_optimizer(optim_spec); });
  if (resume) {
    restore_params(*resume, model.params, a.get("resume"));
    optimizer->load_state(resume->optimizer_state, resume->optimizer_steps, resume->optimizer_time);
  }

  Trainer trainer(model);
  trainer.set_detect_anomaly(a.has("detect-anomaly"));
  trainer.set_stats(a.has("stats"));
  trainer.check(train_set);
  if (data.has_test()) trainer.check(data.test);
  if (!quiet && !as_json) {
    std::int64_t values = 0;
    for (const auto& [n, t] : model.params) values = checked_add(values, t.numel(), "parameter count");
    std::fprintf(stderr, "model %s: %zu parameters (%lld values); %s\n", model_path.c_str(), model.params.size(),
                 static_cast<long long>(values), data.description.c_str());
    // --batch 0 trains on the whole set at once: say how many rows that is.
    const std::string batch_text =
        batch > 0 ? std::to_string(batch) : fmt::format("{} (the full set)", train_set.size());
    std::fprintf(stderr, "optimizer %s; batch %s; %lld epoch%s%s\n", optimizer->describe().c_str(),
                 batch_text.c_str(), static_cast<long long>(epochs), epochs == 1 ? "" : "s",
                 resume ? fmt::format(" (resuming after epoch {})", resume->epoch).c_str() : "");
    if (exchange)
      std::fprintf(stderr, "data parallel: %s, %lld shards per batch, %s%s\n", exchange->name().c_str(),
                   static_cast<long long>(shards), allreduce ? "MPI_Allreduce" : "summed in shard order",
                   a.has("no-overlap") ? "" : ", overlapping the backward pass");
  }
  // Parameters no gradient from the loss reaches never change: almost always a mistake
  // in the model (a branch not connected to the loss).
  if (!as_json && speaks)
    for (const auto& p : file.graph.unreachable_params())
      std::fprintf(stderr, "opgraph train: warning: parameter '%s' does not reach the loss '%s': it will not train\n",
                   p.c_str(), file.graph.node(*file.graph.loss()).name.c_str());

  Progress progress(quiet || as_json);
  std::vector<EpochReport> history;
  TrainOptions o;
  o.epochs = static_cast<int>(epochs);
  o.batch = batch;
  o.seed = seed;
  o.start_epoch = resume ? resume->epoch : 0;
  o.target_loss = target_loss;
  o.augment = augment;
  o.frozen = frozen;
  o.validation = val_set.size() > 0 ? &val_set : nullptr;
  o.on_step = [&](const StepReport& s) { progress.step(s); };
  o.communicator = exchange;
  o.exchange.shards = static_cast<int>(shards);
  o.exchange.ordered = !allreduce;
  o.exchange.overlap = !a.has("no-overlap");
  o.exchange.bucket_bytes = static_cast<std::size_t>(bucket_kb) * 1024;
  int diverged_at = 0, last_saved = resume ? resume->epoch : 0;
  std::string diverged;  // why the first diverged epoch did
  o.on_epoch = [&](const EpochReport& e) {
    progress.epoch(e);
    history.push_back(e);
    if (!speaks) return;  // rank 0 writes for the run
    if (a.has("metrics")) write_metrics(a.get("metrics"), history);
    // An epoch that diverged is never saved over the last good checkpoint.
    std::string why = std::isfinite(e.train_loss) ? non_finite_parameter(model.params)
                                                  : fmt::format("the loss is not finite ({})", e.train_loss);
    if (!why.empty()) {
      if (diverged_at == 0) {
        diverged_at = e.epoch;
        diverged = std::move(why);
      }
      return;
    }
    if (a.has("save")) {
      Checkpoint c;
      c.model = file.text;
      c.params = model.params;
      c.optimizer = optim_spec;
      c.optimizer_state = optimizer->state();
      c.optimizer_steps = optimizer->steps();
      c.optimizer_time = optimizer->time();
      c.epoch = e.epoch;
      c.seed = seed;
      c.meta = {{"data", spec},
                {"batch", std::to_string(batch)},
                {"augment", augment_text},
                {"frozen", frozen_text},
                {"dtype", std::string(to_string(dtype))},
                {"graph", graph_fingerprint(file.graph)},
                {"plugins", fmt::format("{}", fmt::join(plugins_used(file.graph), ","))}};
      // The classes' names, for predict on data without labels (a line each).
      const auto& names = train_set.class_names;
      if (!names.empty() && std::none_of(names.begin(), names.end(), [](const std::string& t) {
            return t.find('\n') != std::string::npos;
          }))
        c.meta["classes"] = fmt::format("{}", fmt::join(names, "\n"));
      if (exchange) {
        c.meta["shards"] = std::to_string(shards);
        c.meta["reduce"] = allreduce ? "allreduce" : "ordered";
      }
      if (data.standardizer) {
        const auto& m = data.standardizer->mean();
        const auto& s = data.standardizer->stddev();
        c.extra.emplace_back("data.mean", Tensor::from({static_cast<std::int64_t>(m.size())}, m, DType::f64));
        c.extra.emplace_back("data.std", Tensor::from({static_cast<std::int64_t>(s.size())}, s, DType::f64));
      }
      save_checkpoint(a.get("save"), c);
      last_saved = e.epoch;
    }
  };
  const History h = trainer.fit(train_set, *optimizer, o);
  if (a.has("stats")) {
    write_stats(a.get("stats"), trainer.stats());
    write_file_atomic(stats_svg_path, stats_svg(trainer.stats()));
  }

  // A run that diverged ends with that, not with scores of NaN parameters (evaluate
  // refuses to score NaN outputs: their argmax would be a made-up class).
  const auto report_divergence = [&](int epoch, const std::string& why) {
    const std::string kept = !a.has("save") ? std::string()
                             : last_saved > 0
                                 ? fmt::format("; {} keeps epoch {}", a.get("save"), last_saved)
                                 : fmt::format("; nothing was saved to {}", a.get("save"));
    if (speaks)
      std::fprintf(stderr,
                   "opgraph train: epoch %d: %s%s: lower the learning rate, or find the first NaN with --detect-anomaly\n",
                   epoch, why.c_str(), kept.c_str());
    return 1;
  };
  if (diverged_at > 0) return report_divergence(diverged_at, diverged);

  double seconds = 0.0;
  for (const auto& e : history) seconds += e.seconds;
  const Evaluation tr = trainer.evaluate(train_set);
  std::optional<Evaluation> va, te;
  if (val_set.size() > 0) va = trainer.evaluate(val_set);
  if (data.has_test()) te = trainer.evaluate(data.test);
  if (a.has("plot") && speaks)
    write_plots(a.get("plot"), history, trainer, model, data.has_test() ? data.test : train_set, quiet || as_json);

  if (!speaks) {
  } else if (as_json) {
    json::Object j;
    j.add("command", "train").add("model", model_path).add("data", spec).add("optimizer", optimizer->describe());
    j.add("epochs", static_cast<int>(epochs)).add("epochs_run", static_cast<int>(history.size()));
    add_metrics(j, "train_", tr, data);
    if (va) add_metrics(j, "val_", *va, data);
    if (te) add_metrics(j, "test_", *te, data);
    if (!std::isnan(data.unigram_bits)) j.add("unigram_bits_per_char", data.unigram_bits);
    j.add("reached_target", h.reached_target).add("seconds", seconds);
    if (exchange)
      j.add("processes", exchange->size())
          .add("shards", static_cast<int>(shards))
          .add("steps", static_cast<double>(optimizer->steps()))
          .add("bytes_sent", static_cast<double>(exchange->bytes_sent()));
    if (a.has("save")) j.add("checkpoint", a.get("save"));
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("trained %zu epoch%s in %.2f s\n", history.size(), history.size() == 1 ? "" : "s", seconds);
    std::printf("train       %s  (%lld samples)\n", metrics_text(tr, data).c_str(),
                static_cast<long long>(tr.samples));
    if (va) std::printf("validation  %s  (%lld samples)\n", metrics_text(*va, data).c_str(),
                        static_cast<long long>(va->samples));
    if (te) std::printf("test        %s  (%lld samples)\n", metrics_text(*te, data).c_str(),
                        static_cast<long long>(te->samples));
    if (!std::isnan(data.unigram_bits))
      std::printf("unigram entropy of the training text: %.3f bits/char (a model that ignores context reaches it)\n",
                  data.unigram_bits);
  }
  if (!std::isfinite(tr.loss))
    return report_divergence(static_cast<int>(history.size()), fmt::format("the loss is not finite ({})", tr.loss));
  return 0;
}

namespace {

const std::vector<Option> kLoadOptions = {
    {"load", "CKPT", "the checkpoint with the trained parameters"},
    {"data", "SPEC", "the data (see opgraph data)"},
    kDataDir,
    {"part", "train|test", "which part of the data (default: test when there is one)"},
    {"batch", "N", "rows per forward pass (default 4096)"},
    kThreads,
    kMemoryLimit,
    kDetectAnomaly,
};

/// The data spec `given` for a model trained on `trained` (the checkpoint's): the features
/// transformed as in training. A spec that says nothing of scale= or standardize= gets the
/// training's (standardisation with the statistics saved in the checkpoint); without them
/// new data reached the model unscaled, and its predictions were silently wrong. What was
/// added is said in `notes`; scale=1 or standardize=false in `given` keep the data as it is.
std::string with_training_transforms(const std::string& given, const std::string& trained,
                                     std::vector<std::string>& notes) {
  if (trained.empty() || given == trained) return given;
  std::optional<Spec> g, t;
  try {
    g.emplace(given, "data");
    t.emplace(trained, "data");
  } catch (const ParseError&) {
    return given;  // load_data says what is wrong with it
  }
  std::string out = given, added;
  auto append = [&](const std::string& item, const std::string& what) {
    out += (out.find(':') == std::string::npos ? ":" : ",") + item;
    added += (added.empty() ? "" : " and ") + what;
  };
  if (!g->has("scale") && t->has("scale"))
    append("scale=" + t->string("scale"), "scaled by " + t->string("scale"));
  if (!g->has("standardize") && t->flag("standardize", false))
    append("standardize=true", "standardized with the training data's statistics");
  if (!added.empty())
    notes.push_back(fmt::format("data '{}': {}, as in training ('{}'); scale=1 or standardize=false read it as it is",
                                given, added, trained));
  return out;
}

struct Loaded {
  ModelFile file;
  Checkpoint checkpoint;
  Model model;
  LoadedData data;
};

Loaded load_for_inference(const Args& a, const std::vector<std::pair<std::string, std::string>>& outputs = {}) {
  const std::string model_path = a.one_positional("MODEL.og");
  // An ONNX file carries its weights: --load is optional for it.
  if (!a.has("load") && !is_onnx_path(model_path)) a.fail("--load CKPT is required");
  set_threads(a);
  set_memory_limit_option(a);
  const std::int64_t batch = a.integer("batch", 0, 1);
  (void)batch;  // checked here, read by the command
  protect_input(model_path, "the model file");
  if (a.has("load")) protect_input(a.get("load"), "the checkpoint");
  check_outputs(outputs);
  Checkpoint c = a.has("load") ? load_checkpoint(a.get("load")) : Checkpoint{};
  ModelFile file = load_model(model_path);
  Model model = a.has("load") ? restored(file, c, a.get("load")) : Model{file.graph, file.initial.clone(), file.input, file.labels};
  const std::string trained = c.meta.count("data") ? c.meta.at("data") : "";
  std::vector<std::string> spec_notes;
  const std::string spec = with_training_transforms(a.get("data", trained), trained, spec_notes);
  if (spec.empty()) a.fail("--data SPEC is required (see opgraph data)");
  const std::optional<Standardizer> fitted = saved_standardizer(c);
  LoadedData data = cli::spec(a.command().c_str(),
                              [&] { return load_data(spec, a.get("data-dir"), fitted ? &*fitted : nullptr); });
  data.notes.insert(data.notes.begin(), spec_notes.begin(), spec_notes.end());
  for (const auto& f : data.files) protect_input(f, "the data");
  check_outputs(outputs);
  print_notes(data.notes, a.has("json"));
  model.feeds = data.feeds;
  return {std::move(file), std::move(c), std::move(model), std::move(data)};
}

}  // namespace

int evaluate(int argc, char** argv) {
  std::vector<Option> options = kLoadOptions;
  options.push_back({"json", "", "print the result as one JSON object"});
  const Args a("eval", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph eval MODEL.og --load CKPT --data SPEC [options]",
                         "Reports loss, accuracy and the confusion matrix of a trained model.", options)
                   .c_str(),
               stdout);
    return 0;
  }
  Loaded l = load_for_inference(a);
  const Dataset& part = chosen_part(a, l.data);
  Trainer trainer(l.model);
  if (!trainer.supervised() && !l.model.graph.loss())
    throw GraphError(l.file.name, "the model has neither labels nor a loss: nothing to evaluate");
  trainer.set_detect_anomaly(a.has("detect-anomaly"));
  const Evaluation e = trainer.evaluate(part, a.integer("batch", 0, 1));
  if (a.has("json")) {
    json::Object j;
    j.add("command", "eval").add("samples", e.samples);
    add_metrics(j, "", e, l.data);
    if (!e.confusion.empty()) j.raw("confusion", confusion_json(e));
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("%lld samples  %s\n%s", static_cast<long long>(e.samples), metrics_text(e, l.data).c_str(),
                e.confusion.empty() ? "" : confusion_text(e, part).c_str());
  }
  return 0;
}

int predict(int argc, char** argv) {
  std::vector<Option> options = kLoadOptions;
  options.push_back({"out", "FILE.csv", "write the predictions here (default: stdout)"});
  const Args a("predict", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph predict MODEL.og --load CKPT --data SPEC [--out FILE.csv]",
                         "Writes each sample's true label, predicted label and class probabilities as CSV (a line per "
                         "sample and position for a class per position); for a model that predicts no classes, each "
                         "sample's output values.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  Loaded l = load_for_inference(a, {{"--out", a.get("out")}});
  const Dataset& part = chosen_part(a, l.data);
  Trainer trainer(l.model);
  trainer.set_detect_anomaly(a.has("detect-anomaly"));
  const Predictions p = trainer.predict(part.features, a.integer("batch", 0, 1));
  const bool classes = p.classes;
  const std::int64_t n = part.size();
  // With classes: the true and predicted label and each class's probability, a line per
  // sample, or per sample and position for a class per position (a transformer's [N, T,
  // C]: the position a column of its own). Without (an autoencoder, a regression, feature
  // maps): each sample's output values y_0, y_1, ... in row-major order.
  const Shape& shape = p.probabilities.shape();
  const std::int64_t k = classes ? shape.last() : (n > 0 ? p.probabilities.numel() / n : shape.numel());
  const std::int64_t per = classes ? static_cast<std::int64_t>(p.labels.size()) / std::max<std::int64_t>(n, 1) : 1;
  // A regression's targets, when the data hold one per output: target_0, ... before y_0, ...
  const bool targets = !classes && part.labels.numel() == n * k && n > 0;
  // Data without labels (label=none): no label column; the classes' names then come from
  // the training data, as the checkpoint keeps them.
  const bool labelled = part.has_labels();
  std::vector<std::string> names = part.class_names;
  if (const auto it = l.checkpoint.meta.find("classes"); names.empty() && it != l.checkpoint.meta.end())
    for (std::size_t at = 0; at <= it->second.size();) {
      const std::size_t end = std::min(it->second.find('\n', at), it->second.size());
      names.push_back(it->second.substr(at, end - at));
      at = end + 1;
    }
  auto class_name = [&](std::int64_t j) {
    return j < static_cast<std::int64_t>(names.size()) ? names[static_cast<std::size_t>(j)] : std::to_string(j);
  };
  std::string csv = !classes ? "row" : std::string(per > 1 ? "row,position" : "row") + (labelled ? ",label" : "") + ",predicted";
  for (std::int64_t j = 0; targets && j < k; ++j) csv += fmt::format(",target_{}", j);
  for (std::int64_t j = 0; j < k; ++j)
    csv += classes ? ",p_" + (k == 1 ? std::string("1") : class_name(j)) : fmt::format(",y_{}", j);
  csv += "\n";
  for (std::int64_t i = 0; i < n * per; ++i) {
    if (!classes) {
      csv += std::to_string(i);
      for (std::int64_t j = 0; targets && j < k; ++j) csv += fmt::format(",{:.6g}", part.labels.at(i * k + j));
    } else {
      csv += per > 1 ? fmt::format("{},{}", i / per, i % per) : std::to_string(i);
      if (labelled) csv += fmt::format(",{}", static_cast<std::int64_t>(part.labels.at(i)));
      csv += fmt::format(",{}", p.labels[static_cast<std::size_t>(i)]);
    }
    for (std::int64_t j = 0; j < k; ++j) csv += fmt::format(",{:.6g}", p.probabilities.at(i * k + j));
    csv += "\n";
  }
  if (a.has("out")) write_file_atomic(a.get("out"), csv);
  else std::fputs(csv.c_str(), stdout);
  return 0;
}

int export_npy(int argc, char** argv) {
  const std::vector<Option> options = {{"load", "CKPT", "the checkpoint with the trained parameters"},
                                       {"npy", "DIR", "the folder to write <parameter>.npy files into"},
                                       {"onnx", "FILE", "write the eval-mode inference graph as ONNX (docs/onnx.md)"},
                                       {"opset", "N", "the ONNX opset to write, 13 to 17 (default 17)"},
                                       kMemoryLimit};
  const Args a("export", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph export MODEL.og --load CKPT (--npy DIR | --onnx FILE)",
                         "Writes each parameter as a NumPy .npy file (numpy.load reads it), or the model as an ONNX "
                         "file for other runtimes (ONNX Runtime, viewers): the inference graph in eval mode, a "
                         "symbolic batch dimension N, the parameters as initializers.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  const std::string model_path = a.one_positional("MODEL.og");
  if (!a.has("load")) a.fail("--load CKPT is required");
  if (!a.has("npy") && !a.has("onnx")) a.fail("--npy DIR or --onnx FILE is required");
  const int opset = static_cast<int>(a.integer("opset", 17, 13, 17));
  set_memory_limit_option(a);
  if (a.has("npy")) check_folder_for_output(a.get("npy"));
  protect_input(model_path, "the model file");
  protect_input(a.get("load"), "the checkpoint");
  const Checkpoint c = load_checkpoint(a.get("load"));
  const ModelFile file = load_model(model_path);
  const Model model = restored(file, c, a.get("load"));
  if (a.has("onnx")) {
    check_outputs({{"--onnx", a.get("onnx")}});
    OnnxExportOptions o;
    o.opset = opset;
    o.name = fs::path(model_path).stem().string();
    save_onnx(a.get("onnx"), model.graph, model.params, o);
    std::printf("%s: ONNX opset %d\n", a.get("onnx").c_str(), opset);
    if (!a.has("npy")) return 0;
  }
  std::vector<std::pair<std::string, std::string>> files, outputs;
  for (const auto& [name, t] : model.params) {
    const std::string path = (fs::path(a.get("npy")) / (name + ".npy")).string();
    outputs.emplace_back(name + ".npy", path);
    files.emplace_back(path, encode_npy(t));
  }
  std::error_code ec;
  const bool created = !fs::exists(a.get("npy"));
  fs::create_directories(a.get("npy"), ec);
  if (!fs::is_directory(a.get("npy"))) throw DataError(a.get("npy"), "cannot create the folder");
  // All files or none: a failure (a full disk, a size limit) leaves the folder as it was,
  // and removes it again when this run made it.
  try {
    check_outputs(outputs);
    write_files_atomic(files);
  } catch (...) {
    if (created) fs::remove(a.get("npy"), ec);
    throw;
  }
  for (const auto& [name, t] : model.params)
    std::printf("%s %s\n", (fs::path(a.get("npy")) / (name + ".npy")).string().c_str(), t.shape().str().c_str());
  return 0;
}

}  // namespace opgraph::cli
