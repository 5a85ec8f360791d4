// GEMM on the W1/W5 shapes: opgraph's own kernel against Eigen and OpenBLAS, measured
// in the same run (contenders alternate), 1 and 2 threads. Writes a markdown table.
//
//   gemm_bench [--out FILE] [--reps N] [--quick]
//
// OpenBLAS is loaded at run time with its core type forced to SkylakeX when the CPU has
// AVX-512: Debian's build does not recognise newer CPUs and otherwise picks an older
// kernel. The bench sets OPENBLAS_CORETYPE=SkylakeX (overriding any other value, such as
// a Haswell set machine-wide) and re-executes itself so that OpenBLAS sees it at load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <unistd.h>

#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>

#ifdef OPGRAPH_BENCH_EIGEN
#include <Eigen/Core>
#endif

#include "machine.hpp"

namespace {

struct Shape {
  const char* name;
  std::int64_t m, n, k;
  bool ta, tb;
};

const Shape kShapes[] = {
    {"W1 forward x·W1", 10000, 256, 784, false, false},
    {"W1 forward h·W2", 10000, 10, 256, false, false},
    {"W1 dW2 = hᵀ·dz", 256, 10, 10000, true, false},
    {"W1 dh = dz·W2ᵀ", 10000, 256, 10, false, true},
    {"W1 dW1 = xᵀ·da", 784, 256, 10000, true, false},
    {"W5 forward x·W1", 256, 1024, 784, false, false},
    {"W5 forward h·W2", 256, 1024, 1024, false, false},
    {"W5 forward h·W3", 256, 10, 1024, false, false},
    {"W5 dW1 = xᵀ·da", 784, 1024, 256, true, false},
    {"W5 dW2 = hᵀ·da", 1024, 1024, 256, true, false},
    {"W5 dh = da·W2ᵀ", 256, 1024, 1024, false, true},
    {"W5 dh = dz·W3ᵀ", 256, 1024, 10, false, true},
};

using Clock = std::chrono::steady_clock;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using SetThreadsFn = void (*)(int);

struct Contender {
  std::string name;
  std::function<void(const Shape&, const float*, const float*, float*)> run;
  std::function<void(int)> set_threads;
};

double gflops(const Shape& s, double seconds) { return 2.0 * s.m * s.n * s.k / seconds / 1e9; }

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  int reps = 7;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: gemm_bench [--out FILE] [--reps N] [--quick]\n");
      return 2;
    }
  }
  if (quick) reps = 1;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  if (!quick && __builtin_cpu_supports("avx512f") && (!coretype || std::string(coretype) != "SkylakeX") &&
      !std::getenv("OPGRAPH_BENCH_REEXEC")) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("OPGRAPH_BENCH_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then measure what loads
  }

  std::vector<Contender> contenders;
  contenders.push_back({"opgraph", [](const Shape& s, const float* a, const float* b, float* c) {
                          opgraph::gemm<float>(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a, s.ta ? s.m : s.k, b,
                                               s.tb ? s.k : s.n, 0.0f, c, s.n);
                        },
                        [](int t) { opgraph::set_num_threads(t); }});
#ifdef OPGRAPH_BENCH_EIGEN
  contenders.push_back({"Eigen 3.4", [](const Shape& s, const float* a, const float* b, float* c) {
                          using M = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
                          Eigen::Map<const M> A(a, s.ta ? s.k : s.m, s.ta ? s.m : s.k);
                          Eigen::Map<const M> B(b, s.tb ? s.n : s.k, s.tb ? s.k : s.n);
                          Eigen::Map<M> C(c, s.m, s.n);
                          if (s.ta) C.noalias() = A.transpose() * B;
                          else if (s.tb) C.noalias() = A * B.transpose();
                          else C.noalias() = A * B;
                        },
                        [](int t) { Eigen::setNbThreads(t); }});
#endif
  // OpenBLAS through dlopen, so that its core type can be forced before it initialises.
  std::string openblas_note = "OpenBLAS not installed (libopenblas0): not measured";
  if (!quick) {
    const bool forced = std::getenv("OPENBLAS_CORETYPE") != nullptr;
    if (void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL)) {
      auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
      auto threads = reinterpret_cast<SetThreadsFn>(dlsym(lib, "openblas_set_num_threads"));
      auto corename = reinterpret_cast<char* (*)()>(dlsym(lib, "openblas_get_corename"));
      if (sgemm && threads) {
        const std::string core = corename ? corename() : "?";
        openblas_note = "OpenBLAS core: " + core + (forced ? " (forced with OPENBLAS_CORETYPE)" : "");
        contenders.push_back({"OpenBLAS " + core, [sgemm](const Shape& s, const float* a, const float* b, float* c) {
                                // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112
                                sgemm(101, s.ta ? 112 : 111, s.tb ? 112 : 111, static_cast<int>(s.m),
                                      static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, a,
                                      static_cast<int>(s.ta ? s.m : s.k), b, static_cast<int>(s.tb ? s.k : s.n),
                                      0.0f, c, static_cast<int>(s.n));
                              },
                              threads});
      }
    }
  }

  const int max_threads = std::min(2u, std::max(1u, std::thread::hardware_concurrency()));
  std::string table = "| shape | m×n×k | threads |";
  for (const auto& c : contenders) table += " " + c.name + " GFLOP/s |";
  table += " opgraph / best other |\n|---|---|---|";
  for (std::size_t i = 0; i <= contenders.size(); ++i) table += "---|";
  table += "\n";

  for (const Shape& s : kShapes) {
    const Shape sized = quick ? Shape{s.name, std::min<std::int64_t>(s.m, 64), std::min<std::int64_t>(s.n, 64),
                                      std::min<std::int64_t>(s.k, 64), s.ta, s.tb}
                              : s;
    std::vector<float> a(static_cast<std::size_t>(sized.m * sized.k)), b(static_cast<std::size_t>(sized.k * sized.n)),
        c(static_cast<std::size_t>(sized.m * sized.n));
    opgraph::Rng rng(1);
    for (auto& v : a) v = static_cast<float>(rng.uniform(-1, 1));
    for (auto& v : b) v = static_cast<float>(rng.uniform(-1, 1));
    for (int threads = 1; threads <= max_threads; ++threads) {
      std::vector<double> best(contenders.size(), 1e30);
      for (auto& ct : contenders) {
        ct.set_threads(threads);
        ct.run(sized, a.data(), b.data(), c.data());  // warm up
      }
      for (int r = 0; r < reps; ++r)
        for (std::size_t i = 0; i < contenders.size(); ++i) {  // contenders alternate
          contenders[i].set_threads(threads);
          const auto t0 = Clock::now();
          contenders[i].run(sized, a.data(), b.data(), c.data());
          best[i] = std::min(best[i], std::chrono::duration<double>(Clock::now() - t0).count());
        }
      double best_other = 0;
      std::string row = std::string("| ") + s.name + " | " + std::to_string(sized.m) + "×" + std::to_string(sized.n) +
                        "×" + std::to_string(sized.k) + " | " + std::to_string(threads) + " |";
      for (std::size_t i = 0; i < contenders.size(); ++i) {
        const double g = gflops(sized, best[i]);
        if (i > 0) best_other = std::max(best_other, g);
        char cell[32];
        std::snprintf(cell, sizeof cell, " %.1f |", g);
        row += cell;
      }
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, " %.0f %% |", best_other > 0 ? 100.0 * gflops(sized, best[0]) / best_other : 0.0);
      row += best_other > 0 ? ratio : " – |";
      table += row + "\n";
      std::fprintf(stderr, "%s\n", row.c_str());
    }
  }
  opgraph::set_num_threads(0);

  std::string doc = "# GEMM: opgraph's kernel against the libraries\n\n"
                    "Written by `bench/gemm_bench` (best of " + std::to_string(reps) +
                    " runs, contenders alternating, float32). " + opgraph_bench::machine_description() + "\n\n" +
                    "opgraph micro-kernel ISA: " + opgraph::gemm_isa() + ". " + openblas_note + ".\n\n" + table;
  if (!out_path.empty()) {
    std::ofstream(out_path) << doc;
  } else {
    std::fputs(doc.c_str(), stdout);
  }
  return 0;
}
