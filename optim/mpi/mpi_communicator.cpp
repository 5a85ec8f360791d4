// The MPI communicator: the only file of opgraph that includes <mpi.h>. It is compiled
// once per MPI found (Open MPI, MPICH: their ABIs differ) into libopgraph_mpi_<flavour>.so,
// which optim/communicator.cpp loads when a run asks for MPI.
// The C API only: the deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <sched.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <opgraph/optim/communicator.hpp>

namespace opgraph {
namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<std::size_t>(length));
}

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) throw CommError("MPI", fmt::format("{} failed: {}", call, mpi_error(code)));
}

int as_int(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw CommError("MPI", fmt::format("{} of {} bytes: MPI counts stop at 2 GiB; use smaller buckets", what, n));
  return static_cast<int>(n);
}

std::vector<int> as_ints(const std::vector<std::size_t>& v, const char* what) {
  std::vector<int> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = as_int(v[i], what);
  return out;
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (finalized) throw CommError("MPI", "MPI was finalised in this process already: it starts once per process");
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      std::atexit(finalize_at_exit);
    }
    // Two channels: all-to-alls on one, everything else on the other (see Communicator).
    for (MPI_Comm* c : {&comm_, &scatter_}) {
      check(MPI_Comm_dup(MPI_COMM_WORLD, c), "MPI_Comm_dup");
      // Errors come back as codes (and become CommError) instead of ending the process.
      check(MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    }
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    // The processes of this machine, for memory they share.
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &machine_), "MPI_Comm_split_type");
    check(MPI_Comm_set_errhandler(machine_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(machine_, &machine_rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(machine_, &machine_size_), "MPI_Comm_size");
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int length = 0;
    MPI_Get_library_version(version, &length);
    library_ = std::string(version, static_cast<std::size_t>(length));
    if (const auto nl = library_.find_first_of(",\n"); nl != std::string::npos) library_.resize(nl);
    // "MPICH Version:\t4.0.2" reads "MPICH 4.0.2".
    if (const auto v = library_.find(" Version:"); v != std::string::npos) library_.erase(v, 9);
    for (char& ch : library_)
      if (ch == '\t') ch = ' ';
  }
  ~MpiCommunicator() override {
    for (MPI_Request& r : requests_)
      if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      MPI_Comm_free(&comm_);
      MPI_Comm_free(&scatter_);
      MPI_Comm_free(&machine_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override {
    return fmt::format("{} ({} process{})", library_, size_, size_ == 1 ? "" : "es");
  }

  Request start_alltoallv(const void* send, const std::vector<std::size_t>& send_counts,
                          const std::vector<std::size_t>& send_offsets, void* recv,
                          const std::vector<std::size_t>& recv_counts,
                          const std::vector<std::size_t>& recv_offsets) override {
    Pending& p = add();
    p.a = as_ints(send_counts, "alltoallv");
    p.b = as_ints(send_offsets, "alltoallv");
    p.c = as_ints(recv_counts, "alltoallv");
    p.d = as_ints(recv_offsets, "alltoallv");
    for (std::size_t q = 0; q < send_counts.size(); ++q)
      if (static_cast<int>(q) != rank_) bytes_sent_ += send_counts[q];
    check(MPI_Ialltoallv(send, p.a.data(), p.b.data(), MPI_BYTE, recv, p.c.data(), p.d.data(), MPI_BYTE, scatter_,
                         &requests_[p.index]),
          "MPI_Ialltoallv");
    return p.index;
  }
  Request start_allgatherv(const void* send, std::size_t count, void* recv, const std::vector<std::size_t>& counts,
                           const std::vector<std::size_t>& offsets) override {
    Pending& p = add();
    p.a = as_ints(counts, "allgatherv");
    p.b = as_ints(offsets, "allgatherv");
    bytes_sent_ += count * static_cast<std::size_t>(size_ - 1);
    check(MPI_Iallgatherv(send, as_int(count, "allgatherv"), MPI_BYTE, recv, p.a.data(), p.b.data(), MPI_BYTE, comm_,
                          &requests_[p.index]),
          "MPI_Iallgatherv");
    return p.index;
  }
  Request start_allreduce_sum(void* data, std::size_t count, DType dtype) override {
    Pending& p = add();
    const std::size_t bytes = count * size_of(dtype);
    // A ring allreduce sends about twice the data (reduce-scatter, then all-gather).
    bytes_sent_ += size_ > 1 ? 2 * bytes * static_cast<std::size_t>(size_ - 1) / static_cast<std::size_t>(size_) : 0;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, as_int(count, "allreduce"), dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE,
                         MPI_SUM, comm_, &requests_[p.index]),
          "MPI_Iallreduce");
    return p.index;
  }
  bool test(Request r) override {
    MPI_Request& req = requests_.at(static_cast<std::size_t>(r));
    if (req == MPI_REQUEST_NULL) return true;
    int done = 0;
    check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) release(r);
    return done != 0;
  }
  void wait(Request r) override {
    // MPI_Test in a loop rather than MPI_Wait: a peer that hangs ends the wait after the
    // timeout instead of never.
    MPI_Request& req = requests_.at(static_cast<std::size_t>(r));
    const double start = MPI_Wtime();
    for (long polls = 0; req != MPI_REQUEST_NULL; ++polls) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) break;
      if (timeout_ > 0 && MPI_Wtime() - start > timeout_)
        throw CommError("MPI", fmt::format("no answer from the other processes for {} s: a process hung or its "
                                           "machine is unreachable (--comm-timeout sets the bound)",
                                           timeout_));
      if (polls > 1000) sched_yield();
    }
    release(r);
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    Pending& p = add();
    check(MPI_Ibcast(data, as_int(bytes, "broadcast"), MPI_BYTE, root, comm_, &requests_[p.index]), "MPI_Ibcast");
    wait(p.index);
  }
  void barrier() override {
    Pending& p = add();
    check(MPI_Ibarrier(comm_, &requests_[p.index]), "MPI_Ibarrier");
    wait(p.index);
  }
  int machine_rank() const override { return machine_rank_; }
  int machine_size() const override { return machine_size_; }
  void machine_barrier() override {
    Pending& p = add();
    check(MPI_Ibarrier(machine_, &requests_[p.index]), "MPI_Ibarrier");
    wait(p.index);
  }
  void machine_broadcast(void* data, std::size_t bytes) override {
    Pending& p = add();
    check(MPI_Ibcast(data, as_int(bytes, "broadcast"), MPI_BYTE, 0, machine_, &requests_[p.index]), "MPI_Ibcast");
    wait(p.index);
  }
  std::shared_ptr<void> machine_shared(std::size_t bytes) override {
    // A shared-memory window: the first process allocates it all, the others map it.
    void* base = nullptr;
    MPI_Win win = MPI_WIN_NULL;
    check(MPI_Win_allocate_shared(static_cast<MPI_Aint>(machine_rank_ == 0 ? bytes : 0), 1, MPI_INFO_NULL, machine_,
                                  &base, &win),
          "MPI_Win_allocate_shared");
    if (machine_rank_ != 0) {
      MPI_Aint size = 0;
      int unit = 0;
      check(MPI_Win_shared_query(win, 0, &size, &unit, &base), "MPI_Win_shared_query");
    }
    // Freeing a window is collective: it stays until MPI is finalised, which frees it.
    windows_.push_back(win);
    return std::shared_ptr<void>(base, [](void*) {});
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  // The count arrays of a started collective must live until it completes.
  struct Pending {
    int index = 0;
    std::vector<int> a, b, c, d;
  };
  Pending& add() {
    std::size_t i = 0;
    while (i < requests_.size() && (requests_[i] != MPI_REQUEST_NULL || used_[i])) ++i;
    if (i == requests_.size()) {
      requests_.push_back(MPI_REQUEST_NULL);
      used_.push_back(0);
      pending_.emplace_back();
    }
    used_[i] = 1;
    pending_[i] = Pending{static_cast<int>(i), {}, {}, {}, {}};
    return pending_[i];
  }
  void release(Request r) {
    used_.at(static_cast<std::size_t>(r)) = 0;
    pending_[static_cast<std::size_t>(r)] = Pending{};
  }

  MPI_Comm comm_ = MPI_COMM_NULL, scatter_ = MPI_COMM_NULL, machine_ = MPI_COMM_NULL;
  int machine_rank_ = 0, machine_size_ = 1;
  std::vector<MPI_Win> windows_;
  int rank_ = 0, size_ = 1;
  std::string library_;
  std::vector<MPI_Request> requests_;
  std::vector<char> used_;
  std::vector<Pending> pending_;
};

}  // namespace
}  // namespace opgraph

extern "C" __attribute__((visibility("default"))) opgraph::Communicator* opgraph_mpi_open(char* error,
                                                                                          std::size_t size) {
  try {
    return new opgraph::MpiCommunicator();
  } catch (const std::exception& e) {
    std::snprintf(error, size, "%s", e.what());
  }
  return nullptr;
}
