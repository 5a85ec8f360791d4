// Faults through the opgraph binary: killed while saving, files that cannot be written
// whole, the same seed giving the same bits at any thread count.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <opgraph/frontends/checkpoint.hpp>

#include "cli_util.hpp"

using namespace opgraph;
using namespace opgraph::test;
namespace fs = std::filesystem;

namespace {

// A 2-128-128-3 ReLU net: big enough that an epoch over 20 000 points takes a while and a
// checkpoint (about 70 KB) takes more than one write.
const char* kModel = R"(input x [N, 2]
labels y [N]
block dense(x, in, out, act=relu):
  param W [in, out] he
  param b [out] zeros
  return act(bias_add(matmul(x, W), b))
end
h1 = dense(x, 2, 128)
h2 = dense(h1, 128, 128)
output logits = dense(h2, 128, 3, identity)
loss xent = softmax_cross_entropy(logits, y)
)";

std::vector<std::string> train_args(const std::string& model, int epochs, const std::string& save) {
  return {"train", model, "--data", "blobs:n=20000,centers=3", "--batch", "64", "--epochs", std::to_string(epochs),
          "--optim", "momentum:lr=0.01,gamma=0.9", "--seed", "3", "--save", save, "--quiet"};
}

/// Every parameter and optimizer state tensor of two checkpoints is bitwise equal.
void check_same_training(const Checkpoint& a, const Checkpoint& b) {
  CHECK(a.epoch == b.epoch);
  CHECK(a.optimizer_steps == b.optimizer_steps);
  REQUIRE(a.params.size() == b.params.size());
  for (const auto& [name, t] : a.params) {
    const auto& param = name;  // CAPTURE makes a lambda, and clang before 16 cannot capture a structured binding
    CAPTURE(param);
    CHECK(t.bitwise_equal(b.params.at(name)));
  }
  REQUIRE(a.optimizer_state.size() == b.optimizer_state.size());
  for (std::size_t i = 0; i < a.optimizer_state.size(); ++i) {
    CAPTURE(a.optimizer_state[i].first);
    CHECK(a.optimizer_state[i].first == b.optimizer_state[i].first);
    CHECK(a.optimizer_state[i].second.bitwise_equal(b.optimizer_state[i].second));
  }
}

std::vector<std::string> leftovers(const std::string& dir, const std::set<std::string>& expected) {
  std::vector<std::string> extra;
  for (const auto& e : fs::directory_iterator(dir))
    if (!expected.count(e.path().filename().string())) extra.push_back(e.path().filename().string());
  return extra;
}

}  // namespace

TEST_CASE("reliability: killed inside every save, and at random moments, training resumes to the same bits") {
  ScratchDir dir("kill");
  const std::string model = dir.file("model.og");
  write_file(model, kModel);
  constexpr int kEpochs = 8;

  REQUIRE(wait_for(spawn(train_args(model, kEpochs, "reference.ckpt"), dir.path())) == 0);
  const Checkpoint reference = load_checkpoint(dir.file("reference.ckpt"));
  REQUIRE(reference.epoch == kEpochs);

  // After a kill: the checkpoint on disk (if any) is whole, and resuming from it ends with
  // the uninterrupted run's bits and removes the killed run's temporary file.
  auto resume_and_compare = [&](const std::string& ckpt) {
    std::vector<std::string> resume = train_args(model, kEpochs, "run.ckpt");
    if (fs::exists(ckpt)) resume.insert(resume.begin() + 2, {"--resume", "run.ckpt"});
    REQUIRE(wait_for(spawn(resume, dir.path())) == 0);
    check_same_training(load_checkpoint(ckpt), reference);
    CHECK(leftovers(dir.path(), {"model.og", "reference.ckpt", "run.ckpt"}).empty());
  };

  // Deterministic: the test hook holds the k-th save after its temporary file is written and
  // before the rename; the kill lands there, in every save of the run.
  for (int k = 1; k <= kEpochs; ++k) {
    CAPTURE(k);
    const std::string ckpt = dir.file("run.ckpt"), marker = dir.file("held");
    fs::remove(ckpt);
    fs::remove(marker);
    const pid_t pid = spawn(train_args(model, kEpochs, "run.ckpt"), dir.path(), 0, "/dev/null",
                            "OPGRAPH_TEST_HOLD_SAVE=" + std::to_string(k) + ":" + marker);
    while (!fs::exists(marker)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    fs::remove(marker);
    kill(pid, SIGKILL);
    CHECK(wait_for(pid) != 0);
    const auto extra = leftovers(dir.path(), {"model.og", "reference.ckpt", "run.ckpt"});
    REQUIRE(extra.size() == 1);  // the whole temporary file of the save that was cut off
    CHECK(extra[0].rfind(".run.ckpt.tmp.", 0) == 0);
    if (k == 1) {
      CHECK_FALSE(fs::exists(ckpt));  // the first save never renamed: nothing to resume from
    } else {
      CHECK(load_checkpoint(ckpt).epoch == k - 1);  // the previous checkpoint, whole
    }
    resume_and_compare(ckpt);
  }

  // Random moments too (where they land depends on the machine's speed, so nothing is
  // counted): whatever is on disk is whole and resumes to the same bits.
  std::mt19937 rng(2026);
  for (int trial = 0; trial < 10; ++trial) {
    CAPTURE(trial);
    const std::string ckpt = dir.file("run.ckpt");
    fs::remove(ckpt);
    const pid_t pid = spawn(train_args(model, kEpochs, "run.ckpt"), dir.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng)));
    kill(pid, SIGKILL);
    wait_for(pid);
    for (const auto& name : leftovers(dir.path(), {"model.og", "reference.ckpt", "run.ckpt"}))
      CHECK(name.rfind(".run.ckpt.tmp.", 0) == 0);
    if (fs::exists(ckpt)) {
      Checkpoint c;
      REQUIRE_NOTHROW(c = load_checkpoint(ckpt));
      CHECK(c.epoch >= 1);
    }
    resume_and_compare(ckpt);
  }
}

TEST_CASE("reliability: an output that cannot be written whole leaves the old file and no other") {
  ScratchDir dir("partial");
  const std::string model = dir.file("model.og");
  write_file(model, kModel);
  // A trained checkpoint to predict and export from.
  REQUIRE(wait_for(spawn(train_args(model, 1, "trained.ckpt"), dir.path())) == 0);
  const std::string trained = read_file(dir.file("trained.ckpt"));

  struct Case {
    const char* what;
    std::vector<std::string> args;
    std::string target;  // the file that must keep its old bytes
    long limit;          // bytes any file may have
  };
  const std::vector<Case> cases = {
      {"checkpoint", {"train", model, "--data", "blobs:n=500", "--epochs", "1", "--save", "old.out", "--quiet"},
       "old.out", 16 * 1024},
      {"predictions",
       {"predict", model, "--load", "trained.ckpt", "--data", "blobs:n=2000", "--out", "old.out"},
       "old.out", 4096},
      {"plot", {"train", model, "--data", "blobs:n=500", "--epochs", "1", "--plot", "plots", "--quiet"},
       "plots/decision_regions.svg", 16 * 1024},
      {"npy export", {"export", model, "--load", "trained.ckpt", "--npy", "npy"}, "npy/h2.W.npy", 16 * 1024},
      // Rewritten after every epoch: the first epochs fit, a later one does not.
      {"metrics", {"train", model, "--data", "blobs:n=500", "--epochs", "40", "--metrics", "old.out", "--quiet"},
       "old.out", 1024},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const std::string old = std::string("old contents of ") + c.what + "\n";
    fs::create_directories(fs::path(dir.file(c.target)).parent_path());
    write_file(dir.file(c.target), old);
    const std::string err = dir.file("stderr.txt");
    const int status = wait_for(spawn(c.args, dir.path(), c.limit, err));
    const std::string message = read_file(err);
    fs::remove(err);
    CAPTURE(message);
    CHECK(status == 1);
    CHECK(message.find("File too large") != std::string::npos);
    CHECK(message.find(c.target) != std::string::npos);  // names the file
    const std::string now = read_file(dir.file(c.target));
    if (std::string(c.what) == "metrics") {
      // The version of the last epoch that fitted, whole: every line has all 7 columns.
      CHECK(now != old);
      CHECK(now.size() <= static_cast<std::size_t>(c.limit));
      CHECK(now.back() == '\n');
      std::istringstream lines(now);
      int rows = 0;
      for (std::string line; std::getline(lines, line); ++rows) CHECK(std::count(line.begin(), line.end(), ',') == 6);
      CHECK(rows > 2);
      CHECK(rows < 41);
    } else {
      CHECK(now == old);  // the old bytes, untouched
    }
    // No temporary file anywhere.
    for (const auto& e : fs::recursive_directory_iterator(dir.path()))
      CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    fs::remove_all(dir.file(c.target));
  }
  CHECK(read_file(dir.file("trained.ckpt")) == trained);
}

TEST_CASE("reliability: the same seed trains to the same bits, run after run and with 1, 2 and 4 threads") {
  ScratchDir dir("determinism");
  const std::string model = dir.file("model.og");
  write_file(model, kModel);
  std::string first;
  for (const char* threads : {"2", "1", "2", "4"}) {
    CAPTURE(threads);
    const std::string name = std::string("t") + threads + ".ckpt";
    std::vector<std::string> args = train_args(model, 3, name);
    args.insert(args.end(), {"--threads", threads, "--metrics", "m.csv"});
    args[3] = "blobs:n=3000,centers=3";
    REQUIRE(wait_for(spawn(args, dir.path())) == 0);
    const std::string bytes = read_file(dir.file(name));
    // Losses and accuracies per epoch (the seconds column aside) agree too.
    std::string losses;
    std::istringstream csv(read_file(dir.file("m.csv")));
    for (std::string line; std::getline(csv, line);) losses += line.substr(0, line.rfind(',')) + "\n";
    if (first.empty()) {
      first = bytes + losses;
    } else {
      CHECK(bytes + losses == first);
    }
  }
}
