// Communication between the processes of a data-parallel run: the interface the gradient
// exchange uses, a one-process implementation, and the loader of the MPI one. Nothing
// here includes MPI: the MPI implementation is a module (libopgraph_mpi_<flavour>.so)
// built when that MPI is found and loaded when a run asks for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/tensor.hpp>

namespace opgraph {

/// Communication failed: MPI could not start or reported an error, the MPI module was not
/// built, or the processes disagree about the run.
class CommError : public Error {
 public:
  using Error::Error;
};

/// The processes of one run. Collectives are called by every rank in the same order,
/// with one relaxation: all-to-alls form a sequence of their own, so a process may
/// interleave them with the other collectives differently from another (an MPI
/// implementation runs them on a communicator of their own). `start_*` returns at once and
/// the buffers stay in use until wait() (or a test() that returned true) says it is done.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "Open MPI v4.1.4 (2 processes)", "one process".
  virtual std::string name() const = 0;

  using Request = int;
  /// Byte blocks to and from every rank: to rank q goes send + send_offsets[q] (send_counts[q]
  /// bytes); from rank q comes recv + recv_offsets[q] (recv_counts[q] bytes).
  virtual Request start_alltoallv(const void* send, const std::vector<std::size_t>& send_counts,
                                  const std::vector<std::size_t>& send_offsets, void* recv,
                                  const std::vector<std::size_t>& recv_counts,
                                  const std::vector<std::size_t>& recv_offsets) = 0;
  /// Every rank's `count` bytes at `send` land at recv + offsets[rank] on every rank
  /// (counts[rank] == count).
  virtual Request start_allgatherv(const void* send, std::size_t count, void* recv,
                                   const std::vector<std::size_t>& counts,
                                   const std::vector<std::size_t>& offsets) = 0;
  /// Sums `count` values of `dtype` over every rank, in place, in an order MPI chooses
  /// (not the same for every process count: see docs/distributed.md).
  virtual Request start_allreduce_sum(void* data, std::size_t count, DType dtype) = 0;
  /// Whether the collective is done (each call also lets MPI progress it).
  virtual bool test(Request request) = 0;
  virtual void wait(Request request) = 0;

  void allreduce_sum(void* data, std::size_t count, DType dtype) { wait(start_allreduce_sum(data, count, dtype)); }
  /// `bytes` at `data` on rank `root` are copied to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  /// The processes on this machine (those that can share memory): this one's place among
  /// them, and how many there are.
  virtual int machine_rank() const { return 0; }
  virtual int machine_size() const { return 1; }
  /// Waits for every process on this machine.
  virtual void machine_barrier() {}
  /// `bytes` from the machine's first process to every process on the machine.
  virtual void machine_broadcast(void* data, std::size_t bytes) { (void)data, (void)bytes; }
  /// One block of `bytes` that every process on this machine maps (every one of them
  /// calls this, in the same order): the machine's first process writes it, the others
  /// read it after a machine_barrier(). It lives as long as the returned pointer's last
  /// copy, or to the end of the run. One process: ordinary memory.
  virtual std::shared_ptr<void> machine_shared(std::size_t bytes);

  /// Ends every process of the run with exit status `code`. For a frontend whose rank
  /// failed alone (the others would wait for it forever); the library never calls it.
  [[noreturn]] virtual void abort(int code) = 0;

  /// A collective that has not completed after this many seconds throws CommError (a
  /// process hung, or its machine is unreachable): failures end in bounded time.
  /// 0: wait forever. Default 600.
  void set_timeout(double seconds) { timeout_ = seconds; }
  double timeout() const { return timeout_; }

  /// Bytes this rank has handed to collectives since it was made (what it sent).
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 protected:
  std::uint64_t bytes_sent_ = 0;
  double timeout_ = 600.0;
};

/// One process: collectives copy locally.
std::unique_ptr<Communicator> make_local_communicator();

/// Which MPI launched this process, from the environment its launcher sets: "openmpi"
/// (OMPI_COMM_WORLD_SIZE), "mpich" (PMI_SIZE, Hydra), or "" when it was not launched by
/// mpirun/mpiexec.
std::string detect_mpi_launcher();

/// The MPI flavours this build has a module for ("openmpi", "mpich").
std::vector<std::string> mpi_flavours_built();

/// Initialises MPI and returns a communicator over every process of the run. `flavour` is
/// "openmpi", "mpich", or "" for the launcher's (else the first built). Loads
/// libopgraph_mpi_<flavour>.so from beside libopgraph (or OPGRAPH_MPI_MODULE_DIR). Throws
/// CommError when that module was not built or MPI does not start. MPI is finalised when
/// the last communicator is destroyed; it can be initialised once per process.
std::unique_ptr<Communicator> open_mpi_communicator(const std::string& flavour = "");

}  // namespace opgraph
