// The opgraph command: shared pieces of the subcommands.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/error.hpp>

namespace opgraph::cli {

/// A mistake in the command line: exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Option {
  std::string name;   // "epochs" for --epochs
  std::string value;  // what it takes ("N", "SPEC"); empty for a flag
  std::string help;
  bool repeatable = false;
};

/// A parsed command line: positional arguments and option values.
class Args {
 public:
  Args(std::string command, int argc, char** argv, int first, const std::vector<Option>& options);

  bool help() const { return help_; }
  const std::string& command() const { return command_; }
  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  const std::vector<std::string>& all(const std::string& name) const;
  /// A whole number in [min, max]; UsageError names the option and the range otherwise.
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max = 2147483647) const;
  double fraction(const std::string& name, double fallback) const;  // in (0, 1)
  /// A finite number >= min.
  double real(const std::string& name, double fallback, double min) const;
  /// A size in bytes: a number with an optional unit K, M, G, T (powers of 1024; KB, KiB,
  /// ... read the same), e.g. 512M, 1.5G, 100000; "none" gives 0. Absent: nullopt.
  std::optional<std::size_t> bytes(const std::string& name) const;
  /// The single positional argument `what` (e.g. the model file).
  std::string one_positional(const std::string& what) const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string command_;
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
  bool help_ = false;
};

/// Runs `f`, turning a ParseError (a bad --optim or --data spec) into a UsageError:
/// specs are part of the command line.
template <class F>
auto spec(const char* command, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ParseError& e) {
    throw UsageError(std::string("opgraph ") + command + ": " + e.what());
  }
}

/// "usage: ..." followed by one line per option.
std::string help_text(const std::string& usage, const std::string& about, const std::vector<Option>& options);

int train(int argc, char** argv);
int evaluate(int argc, char** argv);
int predict(int argc, char** argv);
int dump(int argc, char** argv);
int ops(int argc, char** argv);
int data(int argc, char** argv);
int export_npy(int argc, char** argv);
int check(int argc, char** argv);
int profile(int argc, char** argv);

/// The whole command line: dispatch to a command, errors printed as one line, the exit
/// status returned (never exit()). main_entry adds the process setup and the final check
/// that everything written to stdout arrived.
int run(int argc, char** argv);
int main_entry(int argc, char** argv);

/// --threads and --memory-limit (the process's memory budget; default 80 % of RAM).
void set_threads(const Args& a);
void set_memory_limit_option(const Args& a);
/// What loading decided on the user's behalf (a CSV header), one line each on stderr.
void print_notes(const std::vector<std::string>& notes, bool quiet);

/// Random samples of the model's input shape with valid labels, for timing runs.
Dataset random_data(const Model& model, const Trainer& trainer, std::int64_t rows);

/// The communicator of a data-parallel run, opened once per process (under mpirun or with
/// --distributed: MPI; else one process). It lives until the process ends, so that an
/// error on one rank, caught in run(), can still end every rank (Communicator::abort)
/// instead of leaving the others waiting.
Communicator& open_distributed(bool mpi);
/// The open communicator, or null.
Communicator* distributed();

/// Ops of the plugins loaded with --plugin, in load order.
std::vector<std::string>& plugin_ops();

}  // namespace opgraph::cli
