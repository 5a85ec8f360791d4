// What every example shares: its few options, data lookup with a visible skip, timing,
// and the one line of JSON with its final figures that ends its output.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <opgraph/datasets/locate.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/error.hpp>
#include <opgraph/graph/parallel.hpp>

// Examples that read files of the source tree are built with its path.
#ifndef OPGRAPH_SOURCE_DIR
#define OPGRAPH_SOURCE_DIR "."
#endif

namespace example {

/// Exit status of an example whose data is missing (CTest reports it as skipped).
inline constexpr int kSkipped = 77;

struct Args {
  std::string data;        // --data DIR (else $OPGRAPH_DATA)
  std::uint64_t seed = 0;  // --seed N
  int threads = 0;         // --threads N (0: all cores)
  int epochs = 0;          // --epochs N (0: the example's own)
  int seeds = 1;           // --seeds K: examples that support it run seeds seed .. seed+K-1
  std::string model;       // --model FILE.og, for examples that load one
};

inline Args parse_args(int argc, char** argv, std::uint64_t default_seed) {
  Args a;
  a.seed = default_seed;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", argv[0], arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--data") a.data = value();
    else if (arg == "--seed") a.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (arg == "--threads") a.threads = std::atoi(value().c_str());
    else if (arg == "--epochs") a.epochs = std::atoi(value().c_str());
    else if (arg == "--seeds") a.seeds = std::max(1, std::atoi(value().c_str()));
    else if (arg == "--model") a.model = value();
    else {
      std::fprintf(stderr, "usage: %s [--data DIR] [--seed N] [--seeds K] [--threads N] [--epochs N] [--model FILE.og]\n", argv[0]);
      std::exit(2);
    }
  }
  opgraph::set_num_threads(a.threads);
  return a;
}

/// A file of the source tree: examples/text/..., examples/models/...
inline std::string source_file(const std::string& relative) { return std::string(OPGRAPH_SOURCE_DIR) + "/" + relative; }

/// The model of --model FILE.og, else `fallback` (relative to the source tree), its
/// parameters initialised from --seed.
inline opgraph::Model load_model(const Args& args, const std::string& fallback) {
  opgraph::ModelFile file = opgraph::load_model(args.model.empty() ? source_file(fallback) : args.model);
  opgraph::Model model{std::move(file.graph), {}, file.input, file.labels};
  model.params = model.graph.init_params(args.seed);
  return model;
}

/// The data subfolder `sub`, or exits with kSkipped and says why.
inline std::string data_or_skip(const Args& args, const std::string& sub) {
  try {
    return opgraph::find_data(sub, args.data);
  } catch (const opgraph::DataError& e) {
    std::printf("skipped: %s\n", e.what());
    std::exit(kSkipped);
  }
}

class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// One JSON object on one line: {"example":"xor","loss":0.0099,...}.
class Json {
 public:
  explicit Json(const std::string& example) { add("example", example); }
  Json& add(const std::string& key, const std::string& value) {
    fields_.push_back("\"" + key + "\":\"" + value + "\"");
    return *this;
  }
  Json& add(const std::string& key, double value) {
    char buf[64];
    if (!std::isfinite(value)) std::snprintf(buf, sizeof buf, "null");
    else std::snprintf(buf, sizeof buf, "%.6g", value);
    fields_.push_back("\"" + key + "\":" + buf);
    return *this;
  }
  Json& add(const std::string& key, int value) { return add(key, static_cast<double>(value)); }
  void print() const {
    std::string s = "{";
    for (std::size_t i = 0; i < fields_.size(); ++i) s += (i ? "," : "") + fields_[i];
    std::printf("%s}\n", s.c_str());
  }

 private:
  std::vector<std::string> fields_;
};

}  // namespace example
