// The gradient exchange of data-parallel training: every global batch is split into a
// fixed number of virtual shards, independent of the process count; each process computes
// the gradients of its shards, and the shard gradients are summed along one fixed binary
// tree over the shards, so that every process count gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <opgraph/graph/tensor.hpp>
#include <opgraph/optim/communicator.hpp>

namespace opgraph {

struct ExchangeOptions {
  /// Virtual shards per global batch: at least the number of processes; the result depends
  /// on it (not on the process count).
  int shards = 4;
  /// true: the fixed tree (bitwise the same for any process count). false: each process
  /// sums its shards, then MPI_Allreduce in MPI's order (the same bits only for the same
  /// process count and MPI).
  bool ordered = true;
  /// Start exchanging a bucket as soon as all its values are final (during the last
  /// shard's backward pass), instead of after the whole backward pass.
  bool overlap = true;
  /// Values are grouped into buckets of at least this many bytes.
  std::size_t bucket_bytes = std::size_t{1} << 20;
};

/// Rows [first, first + count) of a batch of `rows` rows that shard `shard` of `shards` takes.
std::pair<std::int64_t, std::int64_t> shard_rows(std::int64_t rows, int shard, int shards);

/// Shards [first, end) that rank `rank` of `size` computes: a contiguous block.
std::pair<int, int> shard_block(int rank, int size, int shards);

/// Sums weighted per-shard values (gradients, and state such as running statistics) over
/// every shard of every process. One step: begin(), then put() every value of every local
/// shard (or skip() a shard without rows), then finish().
class GradientExchange {
 public:
  /// Throws CommError when there are fewer shards than processes.
  GradientExchange(Communicator& comm, ExchangeOptions options);
  ~GradientExchange();
  GradientExchange(const GradientExchange&) = delete;
  GradientExchange& operator=(const GradientExchange&) = delete;

  int first_shard() const { return first_; }
  int end_shard() const { return end_; }
  const ExchangeOptions& options() const { return options_; }
  Communicator& communicator() { return comm_; }

  /// Starts a step whose values have these element counts (the same on every process,
  /// every step of a run: a change re-plans the buckets).
  void begin(const std::vector<std::int64_t>& sizes, DType dtype);
  /// Value k of local shard `shard`, times `weight` (its share of the batch's rows). When
  /// every value of a bucket is in for every local shard, that bucket starts (overlap).
  void put(int shard, std::size_t k, const Tensor& value, double weight);
  /// A shard with no rows: it contributes zeros.
  void skip(int shard);
  /// Waits for every bucket and writes each value's sum over all shards into outputs[k].
  void finish(const std::vector<Tensor*>& outputs);

  /// Sums `per_shard` (shards x width doubles, this process's shards filled, the rest 0)
  /// over processes, exactly: each entry has one contributor.
  void gather_rows(std::vector<double>& per_shard);

 private:
  struct Bucket;
  template <class T>
  void start(Bucket& b);
  template <class T>
  void gathered(Bucket& b);
  void progress();
  void value_in(int shard, std::size_t k);
  void start_ready();

  Communicator& comm_;
  ExchangeOptions options_;
  int first_ = 0, end_ = 0;
  std::vector<std::pair<int, int>> roots_;                  // every rank's tree roots, by first shard
  std::vector<int> root_rank_;                              // which rank holds each root
  std::vector<std::int64_t> sizes_, offsets_;               // per value, in elements
  DType dtype_ = DType::f32;
  std::vector<std::vector<char>> shard_buf_;                // per local shard: every value, weighted
  std::vector<int> missing_;                                // per value: local shards not yet put
  std::vector<char> in_;                                    // per local shard and value: put this step
  std::vector<std::size_t> bucket_of_;                      // per value
  std::vector<Bucket> buckets_;
};

}  // namespace opgraph
