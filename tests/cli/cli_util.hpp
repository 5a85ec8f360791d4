// Running the opgraph binary from tests: captured output, scratch folders, child
// processes with limits or a kill at a chosen moment.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <opgraph/datasets/read_file.hpp>

#include "../check_formats.hpp"
#include "../test_files.hpp"

#include <doctest/doctest.h>

namespace opgraph::test {

inline const std::string kModels = OPGRAPH_SOURCE_DIR "/examples/models/";

struct Run {
  int status;
  std::string out, err;
};

/// Runs `opgraph ARGS` in `dir` (with an optional environment prefix); stdout and stderr
/// are captured separately, stderr is not a terminal.
inline Run run(const std::string& args, const std::string& dir, const std::string& env = "") {
  const std::string out = dir + "/.stdout", err = dir + "/.stderr";
  const std::string cmd = "cd '" + dir + "' && " + env + " '" OPGRAPH_BINARY "' " + args + " > '" + out + "' 2> '" + err + "'";
  const int rc = std::system(cmd.c_str());
  Run r{WIFEXITED(rc) ? WEXITSTATUS(rc) : 128, read_file(out), read_file(err)};
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

inline Json json_of(const std::string& text) {
  std::string error;
  Json j = parse_json(text, error);
  CAPTURE(text);
  CHECK_MESSAGE(error.empty(), error);
  return j;
}

/// `opgraph ARGS...` as a child process in `dir`, stdout and stderr to /dev/null (or to
/// `err_file`), optionally with a limit on the size of any file it writes (the binary itself
/// turns SIGXFSZ into a reported write error) and one more environment variable "K=V".
inline pid_t spawn(const std::vector<std::string>& args, const std::string& dir, long file_size_limit = 0,
                   const std::string& err_file = "/dev/null", const std::string& env = "") {
  std::fflush(stdout);  // or the child would flush a copy of what the parent has buffered
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(126);
    if (!env.empty()) putenv(const_cast<char*>(env.c_str()));
    if (file_size_limit > 0) {
      const rlimit lim{static_cast<rlim_t>(file_size_limit), static_cast<rlim_t>(file_size_limit)};
      setrlimit(RLIMIT_FSIZE, &lim);
    }
    if (!freopen("/dev/null", "w", stdout) || !freopen(err_file.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> argv;
    static std::string binary = OPGRAPH_BINARY;
    argv.push_back(binary.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(OPGRAPH_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

/// Waits for a child; its exit status, or 128 + the signal that ended it.
inline int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace opgraph::test
