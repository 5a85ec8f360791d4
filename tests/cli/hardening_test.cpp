// What the hardening changed for users, through the binary: the paths that must work still
// work (a symlinked output, saving where one resumes, a headerless UCI file), and what was
// decided on the user's behalf is said.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include <opgraph/frontends/checkpoint.hpp>

#include "cli_util.hpp"

using namespace opgraph;
using namespace opgraph::test;
namespace fs = std::filesystem;

TEST_CASE("hardening: a headerless UCI file with text labels keeps every row, a header is detected and said") {
  ScratchDir dir("hard-csv");
  write_file(dir.file("iris.data"), "5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n"
                                    "6.2,3.4,5.4,2.3,Iris-virginica\n5.9,3.0,5.1,1.8,Iris-virginica\n"
                                    "5.5,2.3,4.0,1.3,Iris-versicolor\n6.5,2.8,4.6,1.5,Iris-versicolor\n");
  const Run plain = run("train " + kModels + "iris.og --data csv:file=iris.data --epochs 1", dir.path());
  CHECK(plain.status == 0);
  CHECK(plain.err.find("csv:file=iris.data: 6 training samples, 4 features, 3 classes") != std::string::npos);
  CHECK(plain.err.find("header row detected") == std::string::npos);
  write_file(dir.file("named.csv"), "sepal_length,sepal_width,petal_length,petal_width,species\n"
                                    "5.1,3.5,1.4,0.2,a\n4.9,3.0,1.4,0.2,b\n");
  const Run named = run("train " + kModels + "iris.og --data csv:file=named.csv --epochs 1", dir.path());
  CHECK(named.status == 0);
  CHECK(named.err.rfind("named.csv: header row detected: sepal_length,sepal_width,petal_length,petal_width,species "
                        "(header=no reads it as data)\n",
                        0) == 0);
  CHECK(named.err.find("2 training samples") != std::string::npos);
  const Run quiet = run("train " + kModels + "iris.og --data csv:file=named.csv --epochs 1 --quiet", dir.path());
  CHECK(quiet.err.empty());
}

TEST_CASE("hardening: a symlinked output replaces the file it names and stays a link, saving where one resumes works") {
  ScratchDir dir("hard-link");
  write_file(dir.file("target.ckpt"), "old");
  fs::create_symlink("target.ckpt", dir.file("latest.ckpt"));
  const Run r = run("train " + kModels + "iris.og --data iris --epochs 2 --save latest.ckpt --quiet", dir.path());
  REQUIRE(r.status == 0);
  CHECK(fs::is_symlink(dir.file("latest.ckpt")));
  CHECK(load_checkpoint(dir.file("target.ckpt")).epoch == 2);
  // Resuming and saving to the same checkpoint is the usual way to continue.
  const Run again = run("train " + kModels + "iris.og --resume latest.ckpt --save latest.ckpt --epochs 4 --quiet",
                        dir.path());
  CHECK(again.status == 0);
  CHECK(load_checkpoint(dir.file("target.ckpt")).epoch == 4);
  CHECK(fs::is_symlink(dir.file("latest.ckpt")));
  // Nothing else was left in the folder.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename().string()[0] != '.';
  CHECK(files == 2);
}

TEST_CASE("hardening: a write past the file-size limit exits 1 with the file named, without the test's signal setup") {
  ScratchDir dir("hard-fsize");
  // spawn() does not ignore SIGXFSZ: the binary must, or it would die of the signal (153).
  const std::string err = dir.file("err.txt");
  const pid_t pid = spawn({"train", kModels + "iris.og", "--data", "iris", "--epochs", "1", "--save", "x.ckpt", "--quiet"},
                          dir.path(), 1000, err);
  CHECK(wait_for(pid) == 1);
  CHECK(read_file(err) == "opgraph train: x.ckpt: write failed: File too large\n");
  CHECK_FALSE(fs::exists(dir.file("x.ckpt")));
}

TEST_CASE("hardening: --help of every command lists --plugin, --memory-limit takes none") {
  ScratchDir dir("hard-help");
  for (const char* command : {"train", "eval", "predict", "dump", "ops", "data", "export", "check", "profile"}) {
    CAPTURE(command);
    const Run h = run(std::string(command) + " --help", dir.path());
    CHECK(h.status == 0);
    CHECK(h.out.find("--plugin FILE.so") != std::string::npos);
  }
  const Run none = run("train " + kModels + "xor.og --data xor --epochs 1 --memory-limit none --quiet", dir.path());
  CHECK(none.status == 0);
}

TEST_CASE("hardening: three runs saving to one file at once all succeed, the file is one of theirs, whole") {
  ScratchDir dir("hard-concurrent");
  std::vector<pid_t> pids;
  for (int seed = 1; seed <= 3; ++seed)
    pids.push_back(spawn({"train", kModels + "iris.og", "--data", "iris", "--epochs", "30", "--batch", "8", "--seed",
                          std::to_string(seed), "--save", "shared.ckpt", "--quiet"},
                         dir.path()));
  for (pid_t p : pids) CHECK(wait_for(p) == 0);  // none deleted another's temporary file
  const Checkpoint c = load_checkpoint(dir.file("shared.ckpt"));
  CHECK(c.epoch == 30);
  CHECK((c.seed >= 1 && c.seed <= 3));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename().string()[0] != '.' ||
                                                                  e.path().filename().string().rfind(".shared", 0) == 0;
  CHECK(files == 1);  // the checkpoint, and no temporary file left
}
