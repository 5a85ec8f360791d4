// opgraph: train, evaluate and inspect models from the terminal.
// Exit status: 0 success, 1 a runtime error, 2 a usage error; errors are one line on stderr.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

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
    for (auto& op : opgraph::load_plugin(path)) opgraph::cli::plugin_ops().push_back(op);
  }
  argc = kept;
}

void usage(FILE* out) {
  std::fputs("usage: opgraph COMMAND [options]   (opgraph COMMAND --help for details)\n\ncommands:\n", out);
  for (const auto& c : kCommands) std::fprintf(out, "  %-9s %s\n", c.name, c.about);
}

/// One line, whatever the message holds.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

namespace opgraph::cli {
std::vector<std::string>& plugin_ops() {
  static std::vector<std::string> ops;
  return ops;
}
}  // namespace opgraph::cli

int main(int argc, char** argv) {
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
    try {
      load_plugins(c.name, argc, argv);
      return c.run(argc, argv);
    } catch (const opgraph::cli::UsageError& e) {
      std::fprintf(stderr, "%s\n", one_line(e.what()).c_str());
      return 2;
    } catch (const opgraph::Error& e) {
      std::fprintf(stderr, "opgraph %s: %s\n", c.name, one_line(e.what()).c_str());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "opgraph %s: out of memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "opgraph %s: %s\n", c.name, one_line(e.what()).c_str());
      return 1;
    }
  }
  std::vector<std::string> names;
  for (const auto& c : kCommands) names.emplace_back(c.name);
  std::fprintf(stderr, "opgraph: unknown command '%s'%s (see opgraph --help)\n", name.c_str(),
               opgraph::suggestion(name, names).c_str());
  return 2;
}
