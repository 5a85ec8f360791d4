// The opgraph command: dispatch, plugin loading, error reporting and exit statuses.
// Exit status: 0 success, 1 a runtime error, 2 a usage error; errors are one line on stderr.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <opgraph/frontends/files.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/plugin.hpp>

#include "cli.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* about;
};

const Command kCommands[] = {
    {"train", opgraph::cli::train, "train a model on a dataset"},
    {"eval", opgraph::cli::evaluate, "loss, accuracy and confusion matrix of a trained model"},
    {"predict", opgraph::cli::predict, "predicted labels and probabilities as CSV"},
    {"dump", opgraph::cli::dump, "show a model's graph: og, dot, svg or json"},
    {"ops", opgraph::cli::ops, "list the registered ops"},
    {"data", opgraph::cli::data, "list the dataset sources and how to name them"},
    {"export", opgraph::cli::export_npy, "write a checkpoint's parameters as .npy files"},
    {"check", opgraph::cli::check, "check ops against their contract (gradients, shapes, threads, ...)"},
    {"profile", opgraph::cli::profile, "time, FLOPs and bytes of every node of a training step"},
};

/// The plugin being loaded, for the exit handler: a plugin that calls exit() from its
/// static initialisers is named, and the run fails, instead of ending silently. A plain
/// buffer: static objects may already be destroyed when exit handlers run.
char loading_plugin[4096] = {};
const char* current_command = "";

void on_exit_handler(int status, void*) {
  if (!loading_plugin[0]) return;
  std::fprintf(stderr, "opgraph %s: %s: the plugin called exit(%d) while loading: fix its static initialisers\n",
               current_command, loading_plugin, status);
  std::fflush(stderr);
  ::_exit(1);
}

/// Loads every --plugin FILE (any subcommand takes it) and removes it from argv.
void load_plugins(const char* command, int& argc, char** argv) {
  int kept = 2;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    std::string path;
    if (a == "--plugin") {
      if (i + 1 >= argc) throw opgraph::cli::UsageError(fmt::format("opgraph {}: --plugin needs a value (FILE.so)", command));
      path = argv[++i];
    } else if (a.rfind("--plugin=", 0) == 0) {
      path = a.substr(9);
    } else {
      argv[kept++] = argv[i];
      continue;
    }
    if (path.empty()) throw opgraph::cli::UsageError(fmt::format("opgraph {}: --plugin needs a file path, got ''", command));
    std::snprintf(loading_plugin, sizeof loading_plugin, "%s", path.c_str());
    try {
      for (auto& op : opgraph::load_plugin(path)) opgraph::cli::plugin_ops().push_back(op);
    } catch (...) {
      loading_plugin[0] = '\0';
      throw;
    }
    loading_plugin[0] = '\0';
    opgraph::protect_input(path, "a plugin of this run");
  }
  argc = kept;
}

void usage(FILE* out) {
  std::fputs("usage: opgraph COMMAND [options]   (opgraph COMMAND --help for details)\n\ncommands:\n", out);
  for (const auto& c : kCommands) std::fprintf(out, "  %-9s %s\n", c.name, c.about);
  std::fputs("\nevery command takes --plugin FILE.so (repeatable) to load ops from a plugin first\n", out);
}

/// One line, whatever the message holds.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

bool stdout_was_closed = false;
int stdout_error = 0;  // errno of the first write to stdout that failed

/// stdout's writes, through ::write, remembering why the first failure failed (stdio keeps
/// only a flag, and errno is long overwritten by the time the run ends).
ssize_t write_stdout(void*, const char* buf, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(1, buf + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (!stdout_error) stdout_error = errno;
      return -1;
    }
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(size);
}

}  // namespace

namespace opgraph::cli {

std::vector<std::string>& plugin_ops() {
  static std::vector<std::string> ops;
  return ops;
}

namespace {
std::unique_ptr<Communicator>& distributed_slot() {
  static std::unique_ptr<Communicator> comm;
  return comm;
}

/// Prints an error and returns its exit status; in a run of several processes, names the
/// rank and ends every process (the others would wait for this one forever).
int failed(int status, const std::string& line) {
  Communicator* comm = distributed();
  if (comm && comm->size() > 1) {
    std::fprintf(stderr, "%s (rank %d of %d: ending every process)\n", line.c_str(), comm->rank(), comm->size());
    std::fflush(stderr);
    comm->abort(status);
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return status;
}
}  // namespace

Communicator& open_distributed(bool mpi) {
  auto& comm = distributed_slot();
  if (!comm) comm = mpi ? open_mpi_communicator() : make_local_communicator();
  return *comm;
}

Communicator* distributed() { return distributed_slot().get(); }

int run(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    std::fputs("opgraph: missing COMMAND (see the list above)\n", stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  if (name == "--version") {
    std::puts("opgraph 0.1.0");
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    current_command = c.name;
    try {
      load_plugins(c.name, argc, argv);
      return c.run(argc, argv);
    } catch (const UsageError& e) {
      return failed(2, one_line(e.what()));
    } catch (const Error& e) {
      return failed(1, fmt::format("opgraph {}: {}", c.name, one_line(e.what())));
    } catch (const std::bad_alloc&) {
      return failed(1, fmt::format("opgraph {}: out of memory: use less data, a smaller batch or model, or "
                                   "--memory-limit",
                                   c.name));
    } catch (const std::exception& e) {
      return failed(1, fmt::format("opgraph {}: {}", c.name, one_line(e.what())));
    }
  }
  std::vector<std::string> names;
  for (const auto& c : kCommands) names.emplace_back(c.name);
  std::fprintf(stderr, "opgraph: unknown command '%s'%s (see opgraph --help)\n", name.c_str(),
               suggestion(name, names).c_str());
  return 2;
}

int main_entry(int argc, char** argv) {
  // A write past `ulimit -f` returns an error (reported with the file) instead of killing
  // the process with SIGXFSZ and leaving a temporary file behind.
  std::signal(SIGXFSZ, SIG_IGN);
  // A closed standard stream would let the next file opened take its number, and output
  // meant for the terminal would land in a checkpoint. Park /dev/null there, read-only,
  // so that writes to it fail and are reported.
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
    if (fd == 1) stdout_was_closed = true;
  }
  ::on_exit(on_exit_handler, nullptr);
  if (FILE* out = ::fopencookie(nullptr, "w", cookie_io_functions_t{nullptr, write_stdout, nullptr, nullptr})) {
    std::setvbuf(out, nullptr, ::isatty(1) ? _IOLBF : _IOFBF, 1 << 16);
    stdout = out;
  }
  int status = run(argc, argv);
  // Output that did not reach stdout (a full disk, a closed stream, /dev/full) is a
  // failure: say so and exit 1, never 0.
  const bool flushed = std::fflush(stdout) == 0 && !std::ferror(stdout);
  if (!flushed || stdout_error) {
    const char* why = stdout_was_closed ? "stdout is closed" : std::strerror(stdout_error ? stdout_error : EIO);
    std::fprintf(stderr, "opgraph%s%s: cannot write the output to stdout: %s\n", *current_command ? " " : "",
                 current_command, why);
    if (status == 0) status = 1;
  }
  return status;
}

}  // namespace opgraph::cli
