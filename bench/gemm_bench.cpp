// GEMM on the W1/W3-iris/W5/W7/W8 shapes: opgraph's own kernel against Eigen and OpenBLAS, measured
// in the same run (contenders alternate), 1 and 2 threads. Writes a markdown table.
//
//   gemm_bench [--out FILE] [--reps N] [--quick]
//
// OpenBLAS is loaded at run time with its core type forced to SkylakeX when the CPU has
// AVX-512: Debian's build does not recognise newer CPUs and otherwise picks an older
// kernel. The bench sets OPENBLAS_CORETYPE=SkylakeX (overriding any other value, such as
// a Haswell set machine-wide) and re-executes itself so that OpenBLAS sees it at load.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <sys/wait.h>
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
    // W3-iris (4-8-3, 150 samples): the GEMM's small path, no packing and no threads.
    {"W3 iris forward x·W1", 150, 8, 4, false, false},
    {"W3 iris forward h·W2", 150, 3, 8, false, false},
    {"W3 iris dW1 = xᵀ·da", 4, 8, 150, true, false},
    {"W3 iris dh = dz·W2ᵀ", 150, 8, 3, false, true},
    {"W5 forward x·W1", 256, 1024, 784, false, false},
    {"W5 forward h·W2", 256, 1024, 1024, false, false},
    {"W5 forward h·W3", 256, 10, 1024, false, false},
    {"W5 dW1 = xᵀ·da", 784, 1024, 256, true, false},
    {"W5 dW2 = hᵀ·da", 1024, 1024, 256, true, false},
    {"W5 dh = da·W2ᵀ", 256, 1024, 1024, false, true},
    {"W5 dh = dz·W3ᵀ", 256, 1024, 10, false, true},
    // W7 (LeNet-5, batch 64): conv2d's products per chunk of images (ops/conv2d.cpp: W·cols
    // and gy·colsᵀ for its few output channels, the columns read in place), then the first
    // dense layer.
    {"W7 conv1 forward W·cols", 6, 784, 25, false, false},
    {"W7 conv2 forward W·cols", 16, 1000, 150, false, false},
    {"W7 conv1 dW = gy·colsᵀ", 6, 25, 784, false, true},
    {"W7 conv2 dW = gy·colsᵀ", 16, 150, 1000, false, true},
    {"W7 conv2 dcols = Wᵀ·gy", 150, 1000, 16, true, false},
    {"W7 forward x·W3", 64, 120, 400, false, false},
    // W8 (transformer, 32 x 64 positions, d = 128): projections, the MLP, their gradients
    // (dWq: each of the four 128x128 projections), and one head's attention scores.
    {"W8 forward x·Wq", 2048, 128, 128, false, false},
    {"W8 forward x·W1", 2048, 512, 128, false, false},
    {"W8 forward u·W2", 2048, 128, 512, false, false},
    {"W8 dW1 = xᵀ·du", 128, 512, 2048, true, false},
    {"W8 dW2 = uᵀ·dy", 512, 128, 2048, true, false},
    {"W8 du = dy·W2ᵀ", 2048, 512, 128, false, true},
    {"W8 dx = du·W1ᵀ", 2048, 128, 512, false, true},
    {"W8 dWq = xᵀ·dq", 128, 128, 2048, true, false},
    {"W8 scores q·kᵀ", 64, 64, 32, false, true},
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

/// Every contender this build and machine offer, in a fixed order. OpenBLAS is opened
/// only when `with_openblas` (so that a block of another contender never starts its
/// threads); `openblas_note` says what was found.
std::vector<Contender> make_contenders(bool with_openblas, std::string& openblas_note) {
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
                          if (s.ta && s.tb) C.noalias() = A.transpose() * B.transpose();
                          else if (s.ta) C.noalias() = A.transpose() * B;
                          else if (s.tb) C.noalias() = A * B.transpose();
                          else C.noalias() = A * B;
                        },
                        [](int t) { Eigen::setNbThreads(t); }});
#endif
  // OpenBLAS through dlopen, so that its core type can be forced before it initialises.
  openblas_note = "OpenBLAS not installed (libopenblas0): not measured";
  const bool forced = std::getenv("OPENBLAS_CORETYPE") != nullptr;
  if (void* lib = with_openblas ? dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL) : nullptr) {
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
                                    static_cast<int>(s.ta ? s.m : s.k), b, static_cast<int>(s.tb ? s.k : s.n), 0.0f,
                                    c, static_cast<int>(s.n));
                            },
                            threads});
    }
  }
  return contenders;
}

Shape sized(const Shape& s, bool quick) {
  return quick ? Shape{s.name, std::min<std::int64_t>(s.m, 64), std::min<std::int64_t>(s.n, 64),
                       std::min<std::int64_t>(s.k, 64), s.ta, s.tb}
               : s;
}

/// A float buffer on a 64-byte boundary, zeroed.
struct Aligned {
  std::size_t size;
  float* data;
  explicit Aligned(std::size_t n)
      : size(n), data(static_cast<float*>(std::aligned_alloc(64, (std::max<std::size_t>(n, 1) * 4 + 63) / 64 * 64))) {
    if (data) std::fill_n(data, n, 0.0f);
  }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  ~Aligned() { std::free(data); }
};

/// One block, in a process of its own: contender `who` on shape `shape` at `threads`
/// threads, untimed calls for 0.3 s, then `reps` timed ones; prints the best time in seconds.
int run_block(std::size_t shape, int threads, std::size_t who, int reps, bool quick) {
  // OpenBLAS is opened only for its own blocks: opened, it starts a worker thread that
  // spins and yields for a while, and the other contenders' blocks would share a core with
  // it (opgraph's W1 dz·W2ᵀ, 10000x256x10, ran at 37 GFLOP/s on 1 thread of the Zen 4
  // with it and at 77 without).
  std::string note;
  auto contenders = make_contenders(false, note);
  if (who >= contenders.size()) contenders = make_contenders(true, note);
  if (shape >= std::size(kShapes) || who >= contenders.size()) return 2;
  const Shape s = sized(kShapes[shape], quick);
  // Operands 64-byte aligned, as a plan's arena and opgraph's tensors lay them out (every
  // contender gets the same buffers). A std::vector's are 16-byte aligned, and where its
  // row length is a whole number of cache lines every vector load of a matrix read in place
  // straddles two lines: conv1's 6x784x25, B read in place, ran at 131 GFLOP/s so and at
  // 162 aligned (this Xeon, 1 thread), the table's figure depending on where malloc put it.
  const Aligned a(static_cast<std::size_t>(s.m * s.k)), b(static_cast<std::size_t>(s.k * s.n)),
      c(static_cast<std::size_t>(s.m * s.n));
  if (!a.data || !b.data || !c.data) return 2;
  opgraph::Rng rng(1);
  for (std::size_t i = 0; i < a.size; ++i) a.data[i] = static_cast<float>(rng.uniform(-1, 1));
  for (std::size_t i = 0; i < b.size; ++i) b.data[i] = static_cast<float>(rng.uniform(-1, 1));
  Contender& ct = contenders[who];
  ct.set_threads(threads);
  // Warm up for a while, not a call or two: a new process's second thread starts on the
  // same core as the first, and the scheduler takes some milliseconds to move it.
  const auto warm = Clock::now();
  for (int w = 0; w < 2 || (!quick && std::chrono::duration<double>(Clock::now() - warm).count() < 0.3); ++w)
    ct.run(s, a.data, b.data, c.data);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    ct.run(s, a.data, b.data, c.data);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::printf("%.9g\n", best);
  return 0;
}

/// Runs this program with `args` and returns the number it prints (NaN on failure).
double child(const std::vector<std::string>& args) {
  int fd[2];
  if (pipe(fd) != 0) return NAN;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    std::vector<char*> argv;
    static std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    for (const auto& x : args) argv.push_back(const_cast<char*>(x.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fd[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fd[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) return NAN;
  return std::atof(out.c_str());
}

}  // namespace

/// The machine's caches and the blocking the GEMM derived from them.
std::string blocking_note() {
  const opgraph::CacheSizes c = opgraph::detect_caches();
  const opgraph::GemmBlocking b = opgraph::gemm_blocking(4);
  char text[256];
  std::snprintf(text, sizeof text,
                "Caches (%s): L1d %lld KiB %d-way, L2 %lld KiB %d-way, L3 %lld MiB; f32 blocking: %dx%d tiles, kc %lld, "
                "mc %lld, nc %lld.",
                c.source, static_cast<long long>(c.l1d >> 10), c.l1d_ways, static_cast<long long>(c.l2 >> 10),
                c.l2_ways, static_cast<long long>(c.l3 >> 20), b.mr, b.nr, static_cast<long long>(b.kc),
                static_cast<long long>(b.mc), static_cast<long long>(b.nc));
  return text;
}

int main(int argc, char** argv) {
  std::string out_path;
  int reps = 7;
  bool quick = false;
  long block_shape = -1, block_threads = 0, block_who = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "--block" && i + 3 < argc) {  // internal: one block in this process
      block_shape = std::atol(argv[++i]);
      block_threads = std::atol(argv[++i]);
      block_who = std::atol(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: gemm_bench [--out FILE] [--reps N] [--quick]\n");
      return 2;
    }
  }
  if (quick) reps = 1;
  if (block_shape >= 0)
    return run_block(static_cast<std::size_t>(block_shape), static_cast<int>(block_threads),
                     static_cast<std::size_t>(block_who), reps, quick);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  if (!quick && __builtin_cpu_supports("avx512f") && (!coretype || std::string(coretype) != "SkylakeX") &&
      !std::getenv("OPGRAPH_BENCH_REEXEC")) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("OPGRAPH_BENCH_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then measure what loads
  }

  // The parent only asks: which contenders exist (OpenBLAS is opened to read its core
  // name, and never runs here). Each block runs in a child process of its own, so that no
  // contender's idle threads (OpenBLAS's spin for ~0.1 s) steal a core from the next.
  std::string openblas_note;
  const auto contenders = make_contenders(!quick, openblas_note);

  const int max_threads = std::min(2u, std::max(1u, std::thread::hardware_concurrency()));
  std::string table = "| shape | m×n×k | threads |";
  for (const auto& c : contenders) table += " " + c.name + " GFLOP/s |";
  table += " opgraph / best other |\n|---|---|---|";
  for (std::size_t i = 0; i <= contenders.size(); ++i) table += "---|";
  table += "\n";

  std::size_t rotation = 0;
  int busy_waits = 0, redone = 0;
  for (std::size_t si = 0; si < std::size(kShapes); ++si) {
    const Shape s = sized(kShapes[si], quick);
    for (int threads = 1; threads <= max_threads; ++threads) {
      std::vector<double> best(contenders.size(), NAN);
      ++rotation;  // the order of the contenders rotates from block to block
      for (std::size_t n = 0; n < contenders.size(); ++n) {
        const std::size_t i = (n + rotation) % contenders.size();
        std::vector<std::string> args = {"--block", std::to_string(si), std::to_string(threads), std::to_string(i),
                                         "--reps", std::to_string(reps)};
        if (quick) args.push_back("--quick");
        // At 2 threads a block counts only with both cores free before and after it, as
        // in the suite's runs: a core lost to another tenant halved one contender's cell.
        for (int attempt = 0;; ++attempt) {
          const auto ready = [&] { return threads < 2 || quick || opgraph_bench::cores_available(threads) >= 0.8 * threads; };
          for (int wait = 0; wait < 30 && !ready(); ++wait) {
            ++busy_waits;
            std::this_thread::sleep_for(std::chrono::seconds(2));
          }
          best[i] = child(args);
          if (ready() || attempt == 2) break;
          ++redone;
        }
      }
      double best_other = 0;
      std::string row = std::string("| ") + s.name + " | " + std::to_string(s.m) + "×" + std::to_string(s.n) + "×" +
                        std::to_string(s.k) + " | " + std::to_string(threads) + " |";
      for (std::size_t i = 0; i < contenders.size(); ++i) {
        const double g = gflops(s, best[i]);
        if (i > 0 && std::isfinite(g)) best_other = std::max(best_other, g);
        char cell[32];
        std::snprintf(cell, sizeof cell, std::isfinite(g) ? " %.1f |" : " failed |", g);
        row += cell;
      }
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, " %.0f %% |", best_other > 0 ? 100.0 * gflops(s, best[0]) / best_other : 0.0);
      row += best_other > 0 ? ratio : " – |";
      table += row + "\n";
      std::fprintf(stderr, "%s\n", row.c_str());
    }
  }

  std::string doc = "# GEMM: opgraph's kernel against the libraries\n\n"
                    "Written by `bench/gemm_bench`: the best of " + std::to_string(reps) +
                    " timed calls after 0.3 s of untimed ones, each (contender, shape, threads) block in a process of "
                    "its own, the order of the contenders rotating from block to block; float32, every operand 64-byte "
                    "aligned as a plan lays it out. A 2-thread block "
                    "counts only with both cores free before and after it (" + std::to_string(busy_waits) +
                    " waits of 2 s, " + std::to_string(redone) + " blocks redone). " +
                    opgraph_bench::machine_description() + "\n\n" + "opgraph micro-kernel ISA: " + opgraph::gemm_isa() +
                    ". " + blocking_note() + " " + openblas_note + ".\n\n" + table;
  if (!out_path.empty()) {
    std::ofstream(out_path) << doc;
  } else {
    std::fputs(doc.c_str(), stdout);
  }
  return 0;
}
