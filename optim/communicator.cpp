// The one-process communicator, launcher detection, and the loader of the MPI modules.
#include <opgraph/optim/communicator.hpp>

#include <dlfcn.h>

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#ifndef OPGRAPH_MPI_FLAVOURS
#define OPGRAPH_MPI_FLAVOURS ""
#endif

namespace opgraph {

namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "one process"; }
  Request start_alltoallv(const void* send, const std::vector<std::size_t>& send_counts,
                          const std::vector<std::size_t>& send_offsets, void* recv,
                          const std::vector<std::size_t>& recv_counts,
                          const std::vector<std::size_t>& recv_offsets) override {
    if (send_counts.size() != 1 || recv_counts.size() != 1 || send_counts[0] != recv_counts[0])
      throw CommError("alltoallv", "one process sends exactly what it receives");
    if (send_counts[0] > 0)
      std::memmove(static_cast<char*>(recv) + recv_offsets[0], static_cast<const char*>(send) + send_offsets[0],
                   send_counts[0]);
    return 0;
  }
  Request start_allgatherv(const void* send, std::size_t count, void* recv, const std::vector<std::size_t>& counts,
                           const std::vector<std::size_t>& offsets) override {
    if (counts.size() != 1 || counts[0] != count) throw CommError("allgatherv", "one process gathers its own block");
    if (count > 0) std::memmove(static_cast<char*>(recv) + offsets[0], send, count);
    return 0;
  }
  Request start_allreduce_sum(void*, std::size_t, DType) override { return 0; }
  bool test(Request) override { return true; }
  void wait(Request) override {}
  void broadcast(void*, std::size_t, int root) override {
    if (root != 0) throw CommError("broadcast", fmt::format("no rank {} in a one-process run", root));
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

std::vector<std::string> split_flavours() {
  std::vector<std::string> out;
  std::string s = OPGRAPH_MPI_FLAVOURS;
  std::size_t at = 0;
  while (at < s.size()) {
    const std::size_t comma = s.find(',', at);
    const std::size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > at) out.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

/// The folder libopgraph was loaded from: the modules are installed beside it.
std::filesystem::path library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&make_local_communicator), &info) && info.dli_fname)
    return std::filesystem::path(info.dli_fname).parent_path();
  return {};
}

}  // namespace

std::shared_ptr<void> Communicator::machine_shared(std::size_t bytes) {
  return std::shared_ptr<void>(::operator new(std::max<std::size_t>(bytes, 1)), [](void* p) { ::operator delete(p); });
}

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

std::string detect_mpi_launcher() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) return "openmpi";
  if (std::getenv("PMI_SIZE") || std::getenv("PMI_RANK") || std::getenv("HYDRA_CONTROL_FD")) return "mpich";
  return "";
}

std::vector<std::string> mpi_flavours_built() { return split_flavours(); }

std::unique_ptr<Communicator> open_mpi_communicator(const std::string& requested) {
  const std::vector<std::string> built = mpi_flavours_built();
  std::string flavour = requested.empty() ? detect_mpi_launcher() : requested;
  if (flavour.empty() && !built.empty()) flavour = built.front();
  if (flavour != "openmpi" && flavour != "mpich")
    throw CommError("MPI", flavour.empty() ? std::string("this opgraph was built without MPI: install libopenmpi-dev "
                                                         "(or libmpich-dev) and rebuild")
                                           : fmt::format("unknown MPI '{}': openmpi or mpich", flavour));
  if (std::find(built.begin(), built.end(), flavour) == built.end())
    throw CommError("MPI", fmt::format("this process was started by {}'s launcher, but opgraph was built with {}: {}",
                                       flavour == "openmpi" ? "Open MPI" : "MPICH",
                                       built.empty() ? std::string("no MPI") : fmt::format("{}", fmt::join(built, ", ")),
                                       flavour == "openmpi" ? "install libopenmpi-dev and rebuild, or launch with "
                                                              "mpiexec.mpich"
                                                            : "install libmpich-dev and rebuild, or launch with "
                                                              "mpirun.openmpi"));
  const char* dir_env = std::getenv("OPGRAPH_MPI_MODULE_DIR");
  const std::filesystem::path dir = dir_env && *dir_env ? std::filesystem::path(dir_env) : library_dir();
  const std::string path = (dir / fmt::format("libopgraph_mpi_{}.so", flavour)).string();

  static std::mutex mutex;
  std::lock_guard lock(mutex);
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);  // MPI's own plugins need its symbols global
  if (!handle) {
    const char* err = dlerror();
    throw CommError(path, fmt::format("cannot load the MPI module: {}", err ? err : "unknown error"));
  }
  using OpenFn = Communicator* (*)(char*, std::size_t);
  const auto open = reinterpret_cast<OpenFn>(dlsym(handle, "opgraph_mpi_open"));
  if (!open) throw CommError(path, "not an opgraph MPI module (no opgraph_mpi_open)");
  char error[1024] = {};
  Communicator* comm = open(error, sizeof error);
  if (!comm) throw CommError("MPI", error[0] ? error : "MPI did not start");
  return std::unique_ptr<Communicator>(comm);
}

}  // namespace opgraph
