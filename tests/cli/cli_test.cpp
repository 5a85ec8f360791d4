// The opgraph command, through the built binary: exit status, error lines, --json,
// files it writes, resuming, dumps.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/frontends/files.hpp>
#include <opgraph/graph/registry.hpp>

#include "cli_util.hpp"

using namespace opgraph;
using namespace opgraph::test;
namespace fs = std::filesystem;


TEST_CASE("cli: help and commands") {
  test::ScratchDir dir("cli-help");
  const Run help = run("--help", dir.path());
  CHECK(help.status == 0);
  CHECK(help.out.find("train") != std::string::npos);
  for (const char* c : {"train", "eval", "predict", "dump", "ops", "data", "export"}) {
    const Run r = run(std::string(c) + " --help", dir.path());
    CAPTURE(c);
    CHECK(r.status == 0);
    CHECK(r.out.rfind(std::string("usage: opgraph ") + c, 0) == 0);
  }
  CHECK(run("", dir.path()).status == 2);
  const Run unknown = run("trian", dir.path());
  CHECK(unknown.status == 2);
  CHECK(unknown.err == "opgraph: unknown command 'trian' (did you mean 'train'?) (see opgraph --help)\n");
}

TEST_CASE("cli: usage errors exit 2 with one line") {
  test::ScratchDir dir("cli-usage");
  const std::string xor_model = kModels + "xor.og";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train", "opgraph train: missing MODEL.og (see opgraph train --help)"},
      {"train " + xor_model, "opgraph train: --data SPEC is required (see opgraph data)"},
      {"train " + xor_model + " --data xor --epoch 3", "opgraph train: unknown option '--epoch' (did you mean '--epochs'?)"},
      {"train " + xor_model + " --data xor --epochs", "opgraph train: --epochs needs a value (N)"},
      {"train " + xor_model + " --data xor --epochs 0", "opgraph train: --epochs: expected a whole number from 1 to 2147483647, got '0'"},
      {"train " + xor_model + " --data xor --batch -4", "opgraph train: --batch: expected a whole number >= 0, got '-4'"},
      {"train " + xor_model + " --data xor --optim adma:lr=1",
       "opgraph train: optimizer 'adma:lr=1': unknown optimizer 'adma' (did you mean 'adam'?)"},
      {"train " + xor_model + " --data xor --optim sgd:lr=fast",
       "opgraph train: optimizer 'sgd:lr=fast': lr: 'fast' is not a number"},
      {"train " + xor_model + " --data xro", "opgraph train: data 'xro': unknown data source 'xro' (did you mean 'xor'?)"},
      {"train " + xor_model + " --data xor --val-split 2", "opgraph train: --val-split: expected a fraction between 0 and 1, got '2'"},
      {"train " + xor_model + " --data xor --quiet --quiet", "opgraph train: --quiet given twice"},
      {"dump " + xor_model + " --format jsno", "opgraph dump: --format: expected og, dot, svg or json, got 'jsno' (did you "
                                               "mean 'json'?)"},
      {"eval " + xor_model, "opgraph eval: --load CKPT is required"},
  };
  for (const auto& [args, line] : cases) {
    const Run r = run(args, dir.path());
    const auto& command = args;  // CAPTURE makes a lambda, and clang before 16 cannot capture a structured binding
    CAPTURE(command);
    CHECK(r.status == 2);
    CHECK(r.err == line + "\n");
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: runtime errors exit 1 with one line and write nothing") {
  test::ScratchDir dir("cli-runtime");
  test::write_file(dir.file("typo.og"), "input x [N, 2]\nlabels y [N]\np = sofmax(x)\nloss l = cross_entropy(p, y)\n");
  test::write_file(dir.file("shapes.og"), "input x [N, 784]\nlabels y [N]\nparam W [265, 10]\nz = matmul(x, W)\n");
  test::write_file(dir.file("nolabels.og"), "input x [N, 2]\nloss l = sum(x)\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train typo.og --data xor --metrics m.csv --save s.ckpt",
       "opgraph train: typo.og:3:5: unknown op 'sofmax' (did you mean 'softmax'?)"},
      {"train shapes.og --data xor", "opgraph train: shapes.og:4:5: matmul: inner dimensions differ: [N,784] x [265,10] (784 against 265)"},
      {"train nolabels.og --data xor",
       "opgraph train: nolabels.og: the model has no parameters to train: declare them with 'param NAME [dims]'"},
      {"train missing.og --data xor", "opgraph train: missing.og: no such file"},
      {"train " + kModels + "mnist_binary.og --data mnist --data-dir " + dir.path(),
       "opgraph train: " + dir.path() + "/mnist: no such folder (the data folder " + dir.path() + " has no mnist/)"},
      {"train " + kModels + "iris.og --data moons --epochs 1",
       "opgraph train: moons: each sample has shape [2], the model's input 'x' takes [4] per sample"},
      {"train " + kModels + "two_layer_relu.og --data spirals:classes=3 --epochs 1",
       "opgraph train: spirals: the data has 3 classes, the model predicts 2"},
      {"eval " + kModels + "xor.og --load none.ckpt --data xor", "opgraph eval: none.ckpt: no such file"},
  };
  for (const auto& [args, line] : cases) {
    const Run r = run(args, dir.path(), "OPGRAPH_DATA=");
    const auto& command = args;  // CAPTURE makes a lambda, and clang before 16 cannot capture a structured binding
    CAPTURE(command);
    CHECK(r.status == 1);
    CHECK(r.err == line + "\n");
  }
  CHECK_FALSE(fs::exists(dir.file("m.csv")));
  CHECK_FALSE(fs::exists(dir.file("s.ckpt")));
}

TEST_CASE("cli: train prints JSON, writes metrics, plots and checkpoints, eval and predict read them") {
  test::ScratchDir dir("cli-train");
  const std::string model = kModels + "two_layer_relu.og";
  const std::string data = "moons:n=400,noise=0.1,test=0.25,seed=1";
  const Run r = run("train " + model + " --data " + data +
                        " --optim adam:lr=0.01 --epochs 40 --val-split 0.2 --json --metrics m.csv --plot plots --save m.ckpt",
                    dir.path());
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());  // --json: nothing but the object
  const test::Json j = json_of(r.out);
  CHECK(j["command"].string == "train");
  CHECK(j["epochs_run"].number == 40);
  CHECK(j["test_accuracy"].number >= 0.95);
  CHECK(j["val_accuracy"].number >= 0.9);  // 60 validation points
  CHECK(j["train_loss"].number < 0.2);
  CHECK(j["checkpoint"].string == "m.ckpt");

  const std::string csv = read_file(dir.file("m.csv"));
  CHECK(csv.rfind("epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 41);
  for (const char* plot : {"loss.svg", "accuracy.svg", "decision_regions.svg"}) {
    const std::string svg = read_file(dir.file(std::string("plots/") + plot));
    CAPTURE(plot);
    CHECK(test::xml_problem(svg) == "");
  }
  const std::string loss = read_file(dir.file("plots/loss.svg"));
  CHECK(loss.find("data-name=\"train\"") != std::string::npos);
  CHECK(loss.find("data-name=\"validation\"") != std::string::npos);
  CHECK(load_checkpoint(dir.file("m.ckpt")).epoch == 40);

  const Run e = run("eval " + model + " --load m.ckpt --json", dir.path());
  REQUIRE(e.status == 0);
  const test::Json ej = json_of(e.out);
  CHECK(ej["accuracy"].number == doctest::Approx(j["test_accuracy"].number));
  CHECK(ej["samples"].number == 100);
  double total = 0;
  for (const auto& row : ej["confusion"].items)
    for (const auto& cell : row.items) total += cell.number;
  CHECK(total == 100);
  const Run text = run("eval " + model + " --load m.ckpt --part train", dir.path());
  CHECK(text.status == 0);
  CHECK(text.out.find("confusion (rows: true, columns: predicted):") != std::string::npos);

  const Run p = run("predict " + model + " --load m.ckpt --out p.csv", dir.path());
  REQUIRE(p.status == 0);
  const std::string pred = read_file(dir.file("p.csv"));
  CHECK(pred.rfind("row,label,predicted,p_0,p_1\n", 0) == 0);
  CHECK(std::count(pred.begin(), pred.end(), '\n') == 101);

  const Run x = run("export " + model + " --load m.ckpt --npy npy", dir.path());
  CHECK(x.status == 0);
  CHECK(read_file(dir.file("npy/hidden.W.npy")).substr(1, 5) == "NUMPY");
}

TEST_CASE("cli: predict writes a line per sample and position for a class per position") {
  // It had written one line per sample with the position count taken for the class count:
  // p_0..p_7 of the first 8 of 10 probabilities, the labels of other positions.
  test::ScratchDir dir("cli-predict-positions");
  const std::string model = kModels + "transformer_sort.og";
  const std::string data = "sort_digits:n=400,length=8,test=0.25,seed=1";
  REQUIRE(run("train " + model + " --data " + data + " --optim adam:lr=0.002 --epochs 1 --batch 64 --save t.ckpt --quiet",
              dir.path()).status == 0);
  const Run p = run("predict " + model + " --load t.ckpt --data " + data + " --out p.csv", dir.path());
  REQUIRE(p.status == 0);
  const std::string csv = read_file(dir.file("p.csv"));
  CHECK(csv.rfind("row,position,label,predicted,p_0,p_1,p_2,p_3,p_4,p_5,p_6,p_7,p_8,p_9\n", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 100 * 8);
  // Each line: its row and position in order, the probabilities sum to 1, the predicted
  // class is their argmax; the right predictions give eval's accuracy per position.
  std::istringstream lines(csv);
  std::string line;
  std::getline(lines, line);
  std::int64_t i = 0, right = 0;
  while (std::getline(lines, line)) {
    std::vector<double> f;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) f.push_back(std::stod(cell));
    REQUIRE(f.size() == 14);
    CHECK(f[0] == static_cast<double>(i / 8));
    CHECK(f[1] == static_cast<double>(i % 8));
    const auto best = std::max_element(f.begin() + 4, f.end()) - (f.begin() + 4);
    CHECK(f[3] == static_cast<double>(best));
    CHECK(std::accumulate(f.begin() + 4, f.end(), 0.0) == doctest::Approx(1.0).epsilon(1e-4));
    right += f[2] == f[3];
    ++i;
  }
  const Run e = run("eval " + model + " --load t.ckpt --data " + data + " --json", dir.path());
  REQUIRE(e.status == 0);
  CHECK(static_cast<double>(right) / 800.0 == doctest::Approx(json_of(e.out)["accuracy"].number).epsilon(1e-9));
}

TEST_CASE("cli: a model with batch norm keeps the data statistics in its checkpoint, and eval scores what train scored") {
  // Before the fix, a checkpoint with running statistics dropped its last section (the
  // standardisation train applied), and eval read raw features: a silently wrong score.
  test::ScratchDir dir("cli-bn-ckpt");
  write_file_atomic(dir.file("bn.og"),
                    "input x [N, 4]\nlabels y [N]\n"
                    "param W [4, 8] xavier\nparam gamma [8] constant(1)\nparam beta [8] zeros\n"
                    "h = relu(batch_norm(matmul(x, W), gamma, beta))\n"
                    "param V [8, 3] xavier\nparam c [3] zeros\n"
                    "loss xent = softmax_cross_entropy(bias_add(matmul(h, V), c), y)\n");
  const std::string data = " --data iris:test=0.3,standardize=true,seed=1";
  const Run t = run("train bn.og" + data + " --optim adam:lr=0.05 --batch 16 --epochs 30 --json --save bn.ckpt",
                    dir.path());
  REQUIRE(t.status == 0);
  const double trained = json_of(t.out)["test_accuracy"].number;
  CHECK(trained >= 0.9);
  const Checkpoint c = load_checkpoint(dir.file("bn.ckpt"));
  REQUIRE(c.extra.size() == 2);
  CHECK(c.extra[1].first == "data.std");
  const Run e = run("eval bn.og --load bn.ckpt --json", dir.path());
  REQUIRE(e.status == 0);
  CHECK(json_of(e.out)["accuracy"].number == trained);
}

TEST_CASE("cli: a regression from a CSV of real-valued targets trains, evaluates and predicts them") {
  // The targets had been ranked as class names (0, 1, 2, ... for -1.75, -1.5, ...), mse
  // counted them as classes ("the data has 300 classes, the model predicts 2"), and the
  // stratified split indexed its strata with negative targets (a crash).
  test::ScratchDir dir("cli-regression");
  std::string csv = "a,b,target\n";
  for (int i = 0; i < 300; ++i) {
    const double a = -1.0 + 2.0 * ((i * 37) % 300) / 300.0, b = -1.0 + 2.0 * ((i * 91) % 300) / 300.0;
    csv += fmt::format("{:.4f},{:.4f},{:.4f}\n", a, b, 2.0 * a - b + 0.25);
  }
  write_file_atomic(dir.file("reg.csv"), csv);
  write_file_atomic(dir.file("reg.og"),
                    "input x [N, 2]\nlabels y [N, 1]\nparam W [2, 1] xavier\nparam c [1] zeros\n"
                    "output pred = bias_add(matmul(x, W), c)\nloss l = mse(pred, y)\n");
  const std::string data = " --data csv:file=reg.csv,test=0.2,seed=1";
  const Run t = run("train reg.og" + data + " --optim adam:lr=0.05 --batch 32 --epochs 60 --json --save r.ckpt", dir.path());
  REQUIRE(t.status == 0);
  const test::Json j = json_of(t.out);
  CHECK(j["test_loss"].number < 1e-4);  // the plane 2a - b + 0.25, learned
  CHECK(j["test_accuracy"].kind == test::Json::Kind::null);  // no classes, no accuracy
  const Run e = run("eval reg.og --load r.ckpt", dir.path());
  REQUIRE(e.status == 0);
  CHECK(e.out.rfind("60 samples  loss ", 0) == 0);
  CHECK(e.out.find("accuracy") == std::string::npos);
  const Run p = run("predict reg.og --load r.ckpt --out p.csv", dir.path());
  REQUIRE(p.status == 0);
  const std::string pred = read_file(dir.file("p.csv"));
  REQUIRE(pred.rfind("row,target_0,y_0\n", 0) == 0);
  std::istringstream lines(pred);
  std::string line;
  std::getline(lines, line);
  int rows = 0;
  while (std::getline(lines, line)) {
    const auto comma = line.find(','), second = line.find(',', comma + 1);
    CHECK(std::abs(std::stod(line.substr(comma + 1)) - std::stod(line.substr(second + 1))) < 0.02);
    ++rows;
  }
  CHECK(rows == 60);
  // A classifier on the same targets is told why it cannot train.
  write_file_atomic(dir.file("cls.og"), "input x [N, 2]\nlabels y [N]\nparam W [2, 3] xavier\n"
                                        "loss l = softmax_cross_entropy(matmul(x, W), y)\n");
  const Run c = run("train cls.og" + data, dir.path());
  CHECK(c.status == 1);
  CHECK(c.err.find("is not a class index: the model's loss 'softmax_cross_entropy' predicts classes; for real-valued "
                   "targets use a regression loss such as mse") != std::string::npos);
}

TEST_CASE("cli: new data without labels: predict reads every column, with the training's transforms and class names") {
  // Data to predict on has no label column: label=none reads every column as a feature.
  // The checkpoint keeps the classes' names and the standardisation; a spec that leaves
  // standardize= out had reached the model unstandardised (iris: accuracy 0.36, not 0.97).
  test::ScratchDir dir("cli-unlabelled");
  const std::string model = kModels + "iris.og";
  const Run t = run("train " + model + " --data iris:test=0.3,standardize=true,seed=1 --optim momentum:lr=0.05,gamma=0.9 "
                    "--batch 16 --epochs 30 --save m.ckpt --json", dir.path());
  REQUIRE(t.status == 0);
  const double trained = json_of(t.out)["test_accuracy"].number;
  CHECK(trained > 0.95);
  // The whole of iris, named without standardize=: the saved statistics apply, and it is said.
  const Run e = run("eval " + model + " --load m.ckpt --data iris", dir.path());
  REQUIRE(e.status == 0);
  CHECK(e.out.rfind("150 samples  loss ", 0) == 0);
  CHECK(std::stod(e.out.substr(e.out.find("accuracy ") + 9)) > 0.95);
  CHECK(e.err.find("data 'iris': standardized with the training data's statistics, as in training "
                   "('iris:test=0.3,standardize=true,seed=1'); scale=1 or standardize=false read it as it is") !=
        std::string::npos);
  const Run raw = run("eval " + model + " --load m.ckpt --data iris:standardize=false --json", dir.path());
  REQUIRE(raw.status == 0);
  CHECK(json_of(raw.out)["accuracy"].number < 0.7);  // unstandardised features: what the spec asked for
  CHECK(raw.err.empty());
  // Three flowers of iris (rows 0, 50 and 100: one of each class), features only.
  write_file_atomic(dir.file("new.csv"), "5.1,3.5,1.4,0.2\n7.0,3.2,4.7,1.4\n6.3,3.3,6.0,2.5\n");
  const Run p = run("predict " + model + " --load m.ckpt --data csv:file=new.csv,label=none", dir.path());
  REQUIRE(p.status == 0);
  std::istringstream lines(p.out);
  std::string line;
  std::getline(lines, line);
  CHECK(line == "row,predicted,p_setosa,p_versicolor,p_virginica");
  for (int row = 0; row < 3; ++row) {
    REQUIRE(std::getline(lines, line));
    CHECK(line.rfind(fmt::format("{},{},", row, row), 0) == 0);
  }
  CHECK(!std::getline(lines, line));
  // Read with a label column (the default), the file is one feature short, and told so.
  const Run short_by_one = run("predict " + model + " --load m.ckpt --data csv:file=new.csv", dir.path());
  CHECK(short_by_one.status == 1);
  CHECK(short_by_one.err == "opgraph predict: new.csv: each sample has 3 features, the standardisation (fitted in "
                            "training) takes 4 (one short: is the data's last column a feature? a CSV file's is read "
                            "as the label unless label=none)\n");
  // Training and evaluation need labels.
  for (const char* command : {"train", "eval"}) {
    const Run r = run(std::string(command) + " " + model + (command == std::string("eval") ? " --load m.ckpt" : "") +
                      " --data csv:file=new.csv,label=none", dir.path());
    CHECK(r.status == 1);
    CHECK(r.err.find("new.csv: the data has no labels (label=none): training and evaluation need a label per sample; "
                     "predict needs none") != std::string::npos);
  }
}

TEST_CASE("cli: a set in MNIST's format from any IDX files trains, and a folder of EMNIST's names") {
  // Two classes of 2x2 images (bright top row or bright bottom row), labelled 1 and 2 as
  // EMNIST's letters are: classes=1/2 keeps them as 0 and 1.
  test::ScratchDir dir("cli-idx");
  std::vector<std::uint8_t> pixels, labels;
  for (int i = 0; i < 64; ++i) {
    const bool top = i % 2 == 0;
    const auto shade = static_cast<std::uint8_t>(200 + i % 7);
    for (int p = 0; p < 4; ++p) pixels.push_back((p < 2) == top ? shade : static_cast<std::uint8_t>(i % 5));
    labels.push_back(top ? 1 : 2);
  }
  test::write_gzip(dir.file("emnist-letters-train-images-idx3-ubyte.gz"), test::idx_bytes({64, 2, 2}, pixels));
  test::write_gzip(dir.file("emnist-letters-train-labels-idx1-ubyte.gz"), test::idx_bytes({64}, labels));
  test::write_gzip(dir.file("emnist-letters-test-images-idx3-ubyte.gz"), test::idx_bytes({64, 2, 2}, pixels));
  test::write_gzip(dir.file("emnist-letters-test-labels-idx1-ubyte.gz"), test::idx_bytes({64}, labels));
  write_file_atomic(dir.file("m.og"), "input x [N, 4]\nlabels y [N]\nparam W [4, 2] xavier\nparam b [2] zeros\n"
                                      "loss l = softmax_cross_entropy(bias_add(matmul(x, W), b), y)\n");
  const std::string common = ",classes=1/2,scale=1/255 --optim adam:lr=0.1 --epochs 20 --batch 16 --json";
  const Run pair = run("train m.og --data idx:images=emnist-letters-train-images-idx3-ubyte.gz,"
                       "labels=emnist-letters-train-labels-idx1-ubyte.gz,test_images=emnist-letters-test-images-idx3-"
                       "ubyte.gz,test_labels=emnist-letters-test-labels-idx1-ubyte.gz" + common,
                       dir.path());
  REQUIRE(pair.status == 0);
  CHECK(json_of(pair.out)["test_accuracy"].number == 1.0);
  const Run folder = run("train m.og --data mnist:folder=." + common, dir.path());
  REQUIRE(folder.status == 0);
  CHECK(json_of(folder.out)["test_loss"].number == json_of(pair.out)["test_loss"].number);
}

TEST_CASE("cli: progress is one plain line per epoch off a terminal, nothing with --quiet") {
  test::ScratchDir dir("cli-progress");
  const Run r = run("train " + kModels + "xor.og --data xor --optim sgd:lr=0.3 --batch 0 --epochs 3", dir.path());
  CHECK(r.status == 0);
  CHECK(r.err.find("epoch   1/3  loss ") != std::string::npos);
  CHECK(r.err.find("epoch   3/3  loss ") != std::string::npos);
  CHECK(r.err.find('\r') == std::string::npos);
  CHECK(r.out.rfind("trained 3 epochs in ", 0) == 0);
  // The header says what --batch 0 means for this data, and counts epochs in English.
  CHECK(r.err.find("; batch 4 (the full set); 3 epochs\n") != std::string::npos);
  const Run one = run("train " + kModels + "iris.og --data iris --batch 16 --epochs 1", dir.path());
  CHECK(one.status == 0);
  CHECK(one.err.find("; batch 16; 1 epoch\n") != std::string::npos);
  const Run q = run("train " + kModels + "xor.og --data xor --epochs 3 --quiet", dir.path());
  CHECK(q.status == 0);
  CHECK(q.err.empty());
  CHECK(q.out.find("train       loss ") != std::string::npos);
}

TEST_CASE("cli: 10 epochs straight equal 5, save, resume, 5 more, bit for bit") {
  test::ScratchDir dir("cli-resume");
  const std::string common = "train " + kModels + "two_layer_tanh.og --data circles:n=300,test=0.3,seed=2 "
                             "--optim momentum:lr=0.05,gamma=0.9 --batch 16 --seed 5 --quiet ";
  REQUIRE(run(common + "--epochs 10 --save straight.ckpt", dir.path()).status == 0);
  REQUIRE(run(common + "--epochs 5 --save resumed.ckpt", dir.path()).status == 0);
  REQUIRE(run("train " + kModels + "two_layer_tanh.og --resume resumed.ckpt --epochs 10 --save resumed.ckpt --quiet",
              dir.path())
              .status == 0);
  const Checkpoint a = load_checkpoint(dir.file("straight.ckpt")), b = load_checkpoint(dir.file("resumed.ckpt"));
  CHECK(b.epoch == 10);
  for (const auto& [name, t] : a.params) {
    const auto& param = name;  // CAPTURE makes a lambda, and clang before 16 cannot capture a structured binding
    CAPTURE(param);
    CHECK(b.params.at(name).bitwise_equal(t));
  }
  for (std::size_t i = 0; i < a.optimizer_state.size(); ++i) CHECK(b.optimizer_state[i].second.bitwise_equal(a.optimizer_state[i].second));

  const Run other = run("train " + kModels + "xor.og --resume resumed.ckpt --epochs 12", dir.path());
  CHECK(other.status == 1);
  CHECK(other.err.rfind("opgraph train: resumed.ckpt: saved from another model than ", 0) == 0);
  const Run done = run("train " + kModels + "two_layer_tanh.og --resume resumed.ckpt --epochs 10", dir.path());
  CHECK(done.status == 0);
  CHECK(done.err == "opgraph train: resumed.ckpt has already done 10 epochs: nothing to do\n");
  const Run back = run("train " + kModels + "two_layer_tanh.og --resume resumed.ckpt --epochs 9", dir.path());
  CHECK(back.status == 2);
  CHECK(back.err == "opgraph train: --epochs 9: the checkpoint has already done 10 epochs\n");
  // Same parameter names and shapes, another activation: another model, refused by eval,
  // predict and export alike, saying what differs.
  for (const char* command : {"eval", "predict", "export"}) {
    CAPTURE(command);
    const Run other_act = run(std::string(command) + " " + kModels + "two_layer_relu.og --load resumed.ckpt" +
                                  (std::string(command) == "export" ? " --npy npy" : ""),
                              dir.path());
    CHECK(other_act.status == 1);
    CHECK(other_act.err == fmt::format("opgraph {}: resumed.ckpt: saved from another model than {}two_layer_relu.og: "
                                       "node 'h': op relu against tanh\n",
                                       command, kModels));
  }
  const Run wrong = run("eval " + kModels + "iris.og --load resumed.ckpt --data iris", dir.path());
  CHECK(wrong.status == 1);
  CHECK(wrong.err == fmt::format("opgraph eval: resumed.ckpt: saved from another model than {}iris.og: node 'x': shape "
                                 "[N,4] against [N,2]\n",
                                 kModels));
}

TEST_CASE("cli: dump, ops and data") {
  test::ScratchDir dir("cli-dump");
  const std::string model = kModels + "mnist_adam.og";
  const Run og = run("dump " + model, dir.path());
  CHECK(og.status == 0);
  CHECK(og.out.find("param hidden1.W [784, 512] he  # [784,512]") != std::string::npos);
  const Run dot = run("dump " + model + " --format dot --batch 128 --backward", dir.path());
  CHECK(dot.status == 0);
  CHECK(dot.out.find("\"x\" -> \"hidden1.matmul_1\" [label=\"[128,784]\"]") != std::string::npos);
  CHECK(dot.out.find("vjp:hidden1.matmul_1") != std::string::npos);
  const Run js = run("dump " + model + " --format json --out g.json", dir.path());
  CHECK(js.status == 0);
  CHECK(json_of(read_file(dir.file("g.json")))["loss"].string == "xent");

  // SVG goes through Graphviz's dot: a stand-in on PATH shows it is called with the DOT
  // text; without it the message says what to install.
  fs::create_directories(dir.file("bin"));
  test::write_file(dir.file("bin/dot"), "#!/bin/sh\n/bin/cp \"$2\" '" + dir.file("received.dot") +
                                            "'\necho '<svg xmlns=\"http://www.w3.org/2000/svg\"/>'\n");
  fs::permissions(dir.file("bin/dot"), fs::perms::owner_all);
  const Run svg = run("dump " + kModels + "xor.og --format svg", dir.path(), "PATH=" + dir.file("bin"));
  CHECK(svg.status == 0);
  CHECK(svg.out.rfind("<svg", 0) == 0);
  CHECK(read_file(dir.file("received.dot")).rfind("digraph opgraph {", 0) == 0);
  const Run nodot = run("dump " + kModels + "xor.og --format svg --out x.svg", dir.path(), "PATH=/nonexistent");
  CHECK(nodot.status == 1);
  CHECK(nodot.err == "opgraph dump: svg: rendering needs Graphviz's 'dot' program, which is not installed (apt-get "
                     "install graphviz); --format dot writes the graph for it\n");
  CHECK_FALSE(fs::exists(dir.file("x.svg")));

  const Run ops = run("ops --json", dir.path());
  CHECK(ops.status == 0);
  const test::Json list = json_of(ops.out);
  CHECK(list.items.size() >= 21);
  bool found = false;
  for (const auto& op : list.items)
    if (op["name"].string == "softmax_cross_entropy") {
      found = true;
      CHECK(op["inputs"].items[1]["differentiable"].boolean == false);
      CHECK(op["attrs"].items[0]["name"].string == "reduction");
    }
  CHECK(found);
  const Run text = run("ops", dir.path());
  CHECK(text.out.find("matmul(a, b, trans_a=false, trans_b=false)") != std::string::npos);
  CHECK(text.out.find("[labels takes no gradient]") != std::string::npos);
  const Run data = run("data", dir.path());
  CHECK(data.status == 0);
  for (const char* s : {"mnist", "iris", "csv", "moons", "boxes", "standardize=B"}) CHECK(data.out.find(s) != std::string::npos);
}

TEST_CASE("cli: opgraph check passes every built-in op and the example plugin, fails the broken ones") {
  test::ScratchDir dir("cli-check");
  const Run all = run("check", dir.path());
  CHECK(all.status == 0);
  const std::size_t ops = Registry::global().ops().size();
  CHECK(all.out.find(fmt::format("\n{} ops: {} passed, 0 failed\n", ops, ops)) != std::string::npos);
  CHECK(all.out.find("FAIL") == std::string::npos);
  const Run plugin = run("check --plugin " OPGRAPH_PLUGIN_DIR "/activations.so", dir.path());
  CHECK(plugin.status == 0);
  CHECK(plugin.out.find("3 ops: 3 passed, 0 failed") != std::string::npos);
  const Run broken = run("check --plugin " OPGRAPH_PLUGIN_DIR "/broken_ops.so --explain", dir.path());
  CHECK(broken.status == 1);
  CHECK(broken.out.find("15 ops: 0 passed, 15 failed") != std::string::npos);
  // An op declaring that its vjp takes over a relu's, which it never does: a plan that
  // skipped the relu's vjp would pass on gradients the relu zeroes.
  CHECK(broken.out.find("ignored_relu_vjp                   FAIL   ") != std::string::npos);
  CHECK(broken.out.find("relu vjp: [6,3] (f64): the vjp told that it takes over a relu's vjp gives another gradient "
                        "of 'x' than the vjp, then the relu's (zero where 'x' is not positive)") != std::string::npos);
  // An op declaring per-item kernels that ignore where their range starts: a plan running
  // it inside a convolution, image by image, would write every image over the first.
  CHECK(broken.out.find("unshifted_items                    FAIL   ") != std::string::npos);
  CHECK(broken.out.find("per item: [6,3] (f64): forward item by item (pieces cut at 1) differs from forward") !=
        std::string::npos);
  // A product declaring an epilogue it never applies: a plan that fused a bias into it would lose it.
  CHECK(broken.out.find("ignored_epilogue                   FAIL   ") != std::string::npos);
  CHECK(broken.out.find("epilogue: [6,3] [3,4] (f64): forward with the epilogue bias differs from forward, then the "
                        "bias added") != std::string::npos);
  // The sigmoid through tanh declared the logistic activation: a plan fusing it into a
  // product would run math::logistic, other bits.
  CHECK(broken.out.find("tanh_form_sigmoid                  FAIL   ") != std::string::npos);
  CHECK(broken.out.find("activation: [6,3] (f64): forward gives ") != std::string::npos);
  CHECK(broken.out.find(", logistic of ") != std::string::npos);
  // An op that turns a NaN input into 0 (std::max(0, x)): right on every number, caught.
  CHECK(broken.out.find("nan_dropping_relu                  FAIL   ") != std::string::npos);
  CHECK(broken.out.find("nan: [6,3] (f64): NaN at element ") != std::string::npos);
  CHECK(broken.out.find("nan: [6,3] (f64): NaN in the cotangent of output element 0, which the gradients depend on") !=
        std::string::npos);
  // An op declared in place whose kernels read what the other indices overwrote.
  CHECK(broken.out.find("in place: [6,3] (f64): forward written over 'x' differs from forward into its own buffer") !=
        std::string::npos);
  // An op returning NaN fails, named, with the value; a vjp writing 4096 elements past its
  // buffer is reported, not a crash.
  CHECK(broken.out.find("nan_tanh                           FAIL   nan        nan        finite: [") != std::string::npos);
  CHECK(broken.out.find("]: forward gives nan at output element 0 on inputs from its domain") != std::string::npos);
  CHECK(broken.out.find("overrun_double                     FAIL") != std::string::npos);
  CHECK(broken.out.find("vjp wrote outside the gradient of 'x'") != std::string::npos);
  CHECK(broken.out.find("likely: analytic / numeric = 18 everywhere (the element count of [6,3]): the vjp is off by a "
                        "constant factor — a missing or extra 1/N (mean against sum)?") != std::string::npos);
  CHECK(broken.out.find("likely: the vjp is wrong exactly where x < 0") != std::string::npos);
  CHECK(broken.out.find("saves: [6,3]: the vjp reads input 'x': declare it with .saves({\"x\"})") != std::string::npos);
  const Run one = run("check --op relu --json", dir.path());
  CHECK(one.status == 0);
  const test::Json j = json_of(one.out);
  CHECK(j["ops"].number == 1);
  REQUIRE(j["results"].items.size() == 1);
  // relu is in place and an activation: 'in place' and 'activation' are checked too.
  CHECK(j["results"].items[0]["checks"].items.size() == 11);
  const Run unknown = run("check --op sofmax", dir.path());
  CHECK(unknown.status == 1);
  CHECK(unknown.err == "opgraph check: unknown op 'sofmax' (did you mean 'softmax'?)\n");
}

TEST_CASE("cli: --plugin on any subcommand, and its refusals") {
  test::ScratchDir dir("cli-plugin");
  const std::string p = OPGRAPH_PLUGIN_DIR "/";
  const Run ops = run("ops --plugin " + p + "activations.so --plugin " + p + "activations.so", dir.path());
  CHECK(ops.status == 0);  // loading the same plugin twice is harmless
  CHECK(ops.out.find("snake(x, a=1.0)") != std::string::npos);
  const Run dump = run("dump " OPGRAPH_SOURCE_DIR "/examples/plugin/moons.og --plugin=" + p + "activations.so", dir.path());
  CHECK(dump.status == 0);
  CHECK(dump.out.find("h2 = snake(dense_2, a=1.5)  # [N,16]") != std::string::npos);
  const Run without = run("dump " OPGRAPH_SOURCE_DIR "/examples/plugin/moons.og", dir.path());
  CHECK(without.status == 1);
  CHECK(without.err.find("unknown op 'mish'") != std::string::npos);
  const Run train = run("train " OPGRAPH_SOURCE_DIR "/examples/plugin/moons.og --plugin " + p +
                            "activations.so --data moons:n=1000,noise=0.1,test=0.3,seed=1 --optim adam:lr=0.01 --epochs 60 "
                            "--json",
                        dir.path());
  REQUIRE(train.status == 0);
  CHECK(json_of(train.out)["test_accuracy"].number >= 0.95);
  test::write_file(dir.file("text.so"), "not a library");
  const std::vector<std::pair<std::string, std::string>> refusals = {
      {"text.so", "text.so: not a shared library (no ELF header): a plugin is a .so built with opgraph_add_plugin"},
      {p + "wrong_abi.so", p + "wrong_abi.so: built for opgraph plugin ABI 999, this opgraph has ABI 13: rebuild the "
                               "plugin against this version"},
      {p + "no_entry.so", p + "no_entry.so: not an opgraph plugin: no entry point 'opgraph_plugin_abi' (build it with "
                              "opgraph_add_plugin, or put OPGRAPH_PLUGIN_ENTRY() in one of its sources)"},
      {p + "duplicate_op.so", p + "duplicate_op.so: relu: op 'relu' is already registered (by built-in)"},
  };
  for (const auto& [file, line] : refusals) {
    const Run r = run("train " OPGRAPH_SOURCE_DIR "/examples/models/xor.og --data xor --plugin " + file, dir.path());
    const auto& plugin = file;  // CAPTURE makes a lambda, and clang before 16 cannot capture a structured binding
    CAPTURE(plugin);
    CHECK(r.status == 1);
    CHECK(r.err == "opgraph train: " + line + "\n");
  }
  const Run missing = run("ops --plugin", dir.path());
  CHECK(missing.status == 2);
  CHECK(missing.err == "opgraph ops: --plugin needs a value (FILE.so)\n");
}

TEST_CASE("cli: --detect-anomaly names the first non-finite value, profile times the nodes") {
  test::ScratchDir dir("cli-anomaly");
  const std::string model = OPGRAPH_SOURCE_DIR "/examples/models/two_layer_relu.og";
  const Run plain = run("train " + model + " --data moons:n=200 --optim sgd:lr=1e6 --epochs 5 --quiet", dir.path());
  CHECK(plain.status == 1);
  CHECK(plain.err == "opgraph train: epoch 1: the loss is not finite (-nan): lower the learning rate, or find the "
                     "first NaN with --detect-anomaly\n");
  // With --detect-anomaly the run stops at the update that blew a parameter up, before
  // any NaN: it names the step, the parameter, the sizes and the learning rate.
  const Run found = run("train " + model + " --data moons:n=200 --optim sgd:lr=1e6 --epochs 5 --quiet --detect-anomaly",
                        dir.path());
  CHECK(found.status == 1);
  CHECK(found.err.rfind("opgraph train: epoch 1, step 1 of 7: the optimizer's update moved parameter '", 0) == 0);
  CHECK(found.err.find("the learning rate 1e+06): lower the learning rate or clip the gradients\n") != std::string::npos);

  const Run p = run("profile " OPGRAPH_SOURCE_DIR "/examples/models/mnist_multiclass.og --data blobs:n=2000,dims=784,centers=10 "
                    "--batch 1000 --steps 3 --json",
                    dir.path());
  REQUIRE(p.status == 0);
  const test::Json j = json_of(p.out);
  CHECK(j["nodes"].items.size() == 6);
  CHECK(j["share_by_op"]["matmul"].number >= 0.0);  // a share, never compared: no timing in tests
  CHECK(j["nodes"].items[0]["forward_flops"].number == 2.0 * 1000 * 784 * 256);
  const Run text = run("profile " OPGRAPH_SOURCE_DIR "/examples/models/iris.og --steps 2", dir.path());
  CHECK(text.status == 0);
  CHECK(text.out.find("by op: ") != std::string::npos);
  // LeNet-5: each pool does the vjp of the relu before it and runs, with the bias_add's,
  // inside the convolution's: one line per chain, named by the node whose vjp runs them.
  const Run lenet = run("profile " OPGRAPH_SOURCE_DIR "/examples/models/lenet.og --steps 2", dir.path());
  CHECK(lenet.status == 0);
  CHECK(lenet.out.find("absorbed: conv_1.bias_add_1, conv_1, c1 run inside conv_1.conv2d_1's backward pass (counted "
                       "there)\n") != std::string::npos);
  CHECK(lenet.out.find("absorbed: conv_2.bias_add_1, conv_2, c2 run inside conv_2.conv2d_1's backward pass (counted "
                       "there)\n") != std::string::npos);
  CHECK(lenet.out.find("'s vjp done by") == std::string::npos);
  CHECK(lenet.out.find("   absorbed ") != std::string::npos);
  const Run dot = run("dump " OPGRAPH_SOURCE_DIR "/examples/models/iris.og --format dot --profile", dir.path());
  CHECK(dot.status == 0);
  CHECK(dot.out.find(" us\"") != std::string::npos);
}
