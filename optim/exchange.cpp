// The gradient exchange: weighted shard values, one fixed summation tree over the shards,
// buckets exchanged as reduce-scatter (alltoallv of tree roots) then all-gather.
//
// The tree: node [lo, hi) of the shards is a leaf when hi - lo == 1, else the sum
// left + right with mid = lo + ceil((hi - lo) / 2). A rank owns a contiguous block of
// shards and reduces locally every node inside its block (its "roots" are the largest
// such nodes); each rank then receives its chunk of every root from every rank and
// evaluates the rest of the tree for that chunk. Every node is computed by the same
// elementwise additions wherever it is computed, so the result does not depend on how
// the shards are spread over processes.
#include <opgraph/optim/exchange.hpp>

#include <algorithm>
#include <cstring>
#include <exception>
#include <tuple>

#include <fmt/format.h>

#include <opgraph/graph/parallel.hpp>

namespace opgraph {

std::pair<std::int64_t, std::int64_t> shard_rows(std::int64_t rows, int shard, int shards) {
  const std::int64_t first = rows * shard / shards, end = rows * (shard + 1) / shards;
  return {first, end - first};
}

std::pair<int, int> shard_block(int rank, int size, int shards) {
  return {rank * shards / size, (rank + 1) * shards / size};
}

namespace {

int tree_mid(int lo, int hi) { return lo + (hi - lo + 1) / 2; }

void tree_roots(int lo, int hi, int a, int b, std::vector<std::pair<int, int>>& out) {
  if (hi <= a || lo >= b) return;
  if (a <= lo && hi <= b) {
    out.emplace_back(lo, hi);
    return;
  }
  const int mid = tree_mid(lo, hi);
  tree_roots(lo, mid, a, b, out);
  tree_roots(mid, hi, a, b, out);
}

int tree_depth(int lo, int hi) { return hi - lo <= 1 ? 1 : 1 + tree_depth(lo, tree_mid(lo, hi)); }

// Elementwise, in chunks that depend only on n: the same bits on any number of threads.
constexpr std::int64_t kGrain = std::int64_t{1} << 15;

template <class T>
void add_into(T* out, const T* in, std::int64_t n) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) out[i] += in[i];
  });
}

template <class T>
void copy_values(T* out, const T* in, std::int64_t n) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    std::memcpy(out + b, in + b, static_cast<std::size_t>(e - b) * sizeof(T));
  });
}

}  // namespace

struct GradientExchange::Bucket {
  std::size_t v0 = 0, v1 = 0;   // values [v0, v1)
  std::int64_t e0 = 0, e1 = 0;  // their elements
  std::size_t missing = 0;      // values not yet in from every local shard
  int stage = 0;                // 0 waiting, 1 alltoallv running, 2 allgatherv/allreduce running, 3 done
  Communicator::Request request = 0;
  std::vector<char> send, recv, chunk, scratch, result;
  std::vector<std::size_t> send_counts, send_offsets, recv_counts, recv_offsets, counts, offsets;
  std::int64_t chunk_first(int q, int n) const { return (e1 - e0) * q / n; }
  std::int64_t chunk_size(int q, int n) const { return chunk_first(q + 1, n) - chunk_first(q, n); }
};

GradientExchange::GradientExchange(Communicator& comm, ExchangeOptions options) : comm_(comm), options_(options) {
  const int n = comm_.size();
  if (options_.shards < 1) throw CommError("data parallel", fmt::format("shards must be at least 1, got {}", options_.shards));
  if (options_.shards < n)
    throw CommError("data parallel", fmt::format("{} processes but {} shards per batch: each process needs a shard "
                                                 "(use --shards {} or more; results depend on the shard count, not "
                                                 "on the process count)",
                                                 n, options_.shards, n));
  std::tie(first_, end_) = shard_block(comm_.rank(), n, options_.shards);
  for (int r = 0; r < n; ++r) {
    const auto [a, b] = shard_block(r, n, options_.shards);
    tree_roots(0, options_.shards, a, b, roots_);
    root_rank_.resize(roots_.size(), r);
  }
}

GradientExchange::~GradientExchange() {
  bool running = false;
  for (Bucket& b : buckets_) {
    if (b.stage != 1 && b.stage != 2) continue;
    try {
      running = running || !comm_.test(b.request);
    } catch (...) {
      running = true;
    }
  }
  if (!running) return;
  if (std::uncaught_exceptions() > 0) {
    // A step abandoned by an error: the other processes may never finish its collectives
    // (the frontend ends the run), and waiting would hold the error back until the
    // timeout. The buffers MPI may still write into are left allocated on purpose.
    struct Abandoned {
      std::vector<Bucket> buckets;
      std::vector<std::vector<char>> shards;
    };
    new Abandoned{std::move(buckets_), std::move(shard_buf_)};  // NOLINT: leaked on purpose
    return;
  }
  for (Bucket& b : buckets_)
    if (b.stage == 1 || b.stage == 2) {
      try {
        comm_.wait(b.request);
      } catch (...) {
      }
    }
}

void GradientExchange::begin(const std::vector<std::int64_t>& sizes, DType dtype) {
  for (const Bucket& b : buckets_)
    if (b.stage == 1 || b.stage == 2) throw CommError("data parallel", "begin() while the last step's exchange runs");
  const std::size_t elem = size_of(dtype);
  const std::size_t local = static_cast<std::size_t>(end_ - first_);
  if (sizes != sizes_ || dtype != dtype_ || buckets_.empty()) {
    sizes_ = sizes;
    dtype_ = dtype;
    offsets_.assign(sizes.size() + 1, 0);
    for (std::size_t k = 0; k < sizes.size(); ++k) offsets_[k + 1] = offsets_[k] + sizes[k];
    const auto total = static_cast<std::size_t>(offsets_.back());
    shard_buf_.assign(local, std::vector<char>(total * elem));
    buckets_.clear();
    bucket_of_.assign(sizes.size(), 0);
    for (std::size_t k = 0; k < sizes.size();) {
      Bucket b;
      b.v0 = k;
      std::size_t bytes = 0;
      while (k < sizes.size() && (bytes == 0 || bytes < options_.bucket_bytes)) {
        bytes += static_cast<std::size_t>(sizes[k]) * elem;
        bucket_of_[k] = buckets_.size();
        ++k;
      }
      b.v1 = k;
      b.e0 = offsets_[b.v0];
      b.e1 = offsets_[b.v1];
      buckets_.push_back(std::move(b));
    }
  }
  missing_.assign(sizes.size(), static_cast<int>(local));
  in_.assign(local * sizes.size(), 0);
  for (Bucket& b : buckets_) {
    b.missing = b.v1 - b.v0;
    b.stage = 0;
  }
}

void GradientExchange::put(int shard, std::size_t k, const Tensor& value, double weight) {
  if (shard < first_ || shard >= end_ || k >= sizes_.size())
    throw CommError("data parallel", fmt::format("value {} of shard {}: not a value of this process's shards", k, shard));
  if (value.numel() != sizes_[k] || value.dtype() != dtype_)
    throw CommError("data parallel", fmt::format("value {} has {} {} elements, the exchange expects {} {}", k,
                                                 value.numel(), value.dtype(), sizes_[k], dtype_));
  char* dst = shard_buf_[static_cast<std::size_t>(shard - first_)].data() + static_cast<std::size_t>(offsets_[k]) * size_of(dtype_);
  auto copy = [&](auto* out, const auto* in) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(out)>>;
    const T w = static_cast<T>(weight);
    parallel_for(sizes_[k], kGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) out[i] = in[i] * w;
    });
  };
  value_in(shard, k);
  if (dtype_ == DType::f32) copy(reinterpret_cast<float*>(dst), value.data<float>());
  else copy(reinterpret_cast<double*>(dst), value.data<double>());
  start_ready();
}

void GradientExchange::skip(int shard) {
  if (shard < first_ || shard >= end_) throw CommError("data parallel", fmt::format("shard {} is not this process's", shard));
  auto& buf = shard_buf_[static_cast<std::size_t>(shard - first_)];
  for (std::size_t k = 0; k < sizes_.size(); ++k) value_in(shard, k);
  std::fill(buf.begin(), buf.end(), char{0});
  start_ready();
}

void GradientExchange::value_in(int shard, std::size_t k) {
  char& in = in_[static_cast<std::size_t>(shard - first_) * sizes_.size() + k];
  if (in) throw CommError("data parallel", fmt::format("value {} of shard {} was put twice in one step", k, shard));
  in = 1;
  if (--missing_[k] == 0) --buckets_[bucket_of_[k]].missing;
}

void GradientExchange::start_ready() {
  if (!options_.overlap) return;
  // Buckets start in one fixed order on every process (last first: the backward pass
  // finishes the last layers first), each once it is complete: collectives must be
  // started in the same order everywhere.
  for (std::size_t i = buckets_.size(); i-- > 0;) {
    Bucket& b = buckets_[i];
    if (b.stage > 0) continue;
    if (b.missing > 0) break;
    if (dtype_ == DType::f32) start<float>(b);
    else start<double>(b);
  }
  progress();
}

template <class T>
void GradientExchange::start(Bucket& b) {
  const int n = comm_.size(), me = comm_.rank();
  auto buf = [&](int shard) { return reinterpret_cast<T*>(shard_buf_[static_cast<std::size_t>(shard - first_)].data()); };
  const std::int64_t len = b.e1 - b.e0;
  if (!options_.ordered) {
    // Plain: this process's shards in order, then MPI's allreduce.
    for (int s = first_ + 1; s < end_; ++s) add_into(buf(first_) + b.e0, buf(s) + b.e0, len);
    b.request = comm_.start_allreduce_sum(buf(first_) + b.e0, static_cast<std::size_t>(len), dtype_);
    b.stage = 2;
    return;
  }
  // Reduce every node inside this process's block, in place in the buffer of its first shard.
  auto local = [&](auto&& self, int lo, int hi) -> void {
    if (hi - lo <= 1) return;
    const int mid = tree_mid(lo, hi);
    self(self, lo, mid);
    self(self, mid, hi);
    add_into(buf(lo) + b.e0, buf(mid) + b.e0, len);
  };
  std::vector<std::size_t> mine;
  for (std::size_t i = 0; i < roots_.size(); ++i)
    if (root_rank_[i] == me) {
      mine.push_back(i);
      local(local, roots_[i].first, roots_[i].second);
    }
  if (n == 1) {  // one process: the whole tree is done, in the first shard's buffer
    b.stage = 3;
    return;
  }
  // Chunk q of each of this process's roots goes to process q. With one root (a block
  // that is a tree node: the usual case) the chunks lie in order in its buffer already.
  b.send_counts.assign(static_cast<std::size_t>(n), 0);
  b.send_offsets.assign(static_cast<std::size_t>(n), 0);
  const char* send = nullptr;
  if (mine.size() == 1) {
    send = reinterpret_cast<const char*>(buf(roots_[mine[0]].first) + b.e0);
    for (int q = 0; q < n; ++q) {
      b.send_offsets[static_cast<std::size_t>(q)] = static_cast<std::size_t>(b.chunk_first(q, n)) * sizeof(T);
      b.send_counts[static_cast<std::size_t>(q)] = static_cast<std::size_t>(b.chunk_size(q, n)) * sizeof(T);
    }
  } else {
    b.send.resize(static_cast<std::size_t>(len) * mine.size() * sizeof(T));
    std::size_t at = 0;
    for (int q = 0; q < n; ++q) {
      b.send_offsets[static_cast<std::size_t>(q)] = at;
      const std::int64_t c0 = b.chunk_first(q, n), cn = b.chunk_size(q, n);
      for (std::size_t i : mine) {
        copy_values(reinterpret_cast<T*>(b.send.data() + at), buf(roots_[i].first) + b.e0 + c0, cn);
        at += static_cast<std::size_t>(cn) * sizeof(T);
      }
      b.send_counts[static_cast<std::size_t>(q)] = at - b.send_offsets[static_cast<std::size_t>(q)];
    }
    send = b.send.data();
  }
  // This process's chunk of every root, in root order (which is rank order).
  const auto mine_len = static_cast<std::size_t>(b.chunk_size(me, n));
  b.recv.resize(mine_len * roots_.size() * sizeof(T));
  b.recv_counts.assign(static_cast<std::size_t>(n), 0);
  b.recv_offsets.assign(static_cast<std::size_t>(n), 0);
  for (std::size_t i = 0; i < roots_.size(); ++i) b.recv_counts[static_cast<std::size_t>(root_rank_[i])] += mine_len * sizeof(T);
  for (int q = 1; q < n; ++q)
    b.recv_offsets[static_cast<std::size_t>(q)] = b.recv_offsets[static_cast<std::size_t>(q - 1)] + b.recv_counts[static_cast<std::size_t>(q - 1)];
  b.request = comm_.start_alltoallv(send, b.send_counts, b.send_offsets, b.recv.data(), b.recv_counts, b.recv_offsets);
  b.stage = 1;
}

template <class T>
void GradientExchange::gathered(Bucket& b) {
  const int n = comm_.size(), me = comm_.rank();
  const auto len = static_cast<std::size_t>(b.chunk_size(me, n));
  const int depth = tree_depth(0, options_.shards);
  b.chunk.resize(len * sizeof(T));
  b.scratch.resize(len * sizeof(T) * static_cast<std::size_t>(depth));
  const T* received = reinterpret_cast<const T*>(b.recv.data());
  T* scratch = reinterpret_cast<T*>(b.scratch.data());
  auto eval = [&](auto&& self, int lo, int hi, T* out, int level) -> void {
    for (std::size_t i = 0; i < roots_.size(); ++i)
      if (roots_[i].first == lo && roots_[i].second == hi) {
        copy_values(out, received + i * len, static_cast<std::int64_t>(len));
        return;
      }
    const int mid = tree_mid(lo, hi);
    T* tmp = scratch + static_cast<std::size_t>(level) * len;
    self(self, lo, mid, out, level + 1);
    self(self, mid, hi, tmp, level + 1);
    add_into(out, tmp, static_cast<std::int64_t>(len));
  };
  eval(eval, 0, options_.shards, reinterpret_cast<T*>(b.chunk.data()), 0);
  b.result.resize(static_cast<std::size_t>(b.e1 - b.e0) * sizeof(T));
  b.counts.assign(static_cast<std::size_t>(n), 0);
  b.offsets.assign(static_cast<std::size_t>(n), 0);
  for (int q = 0; q < n; ++q) {
    b.counts[static_cast<std::size_t>(q)] = static_cast<std::size_t>(b.chunk_size(q, n)) * sizeof(T);
    b.offsets[static_cast<std::size_t>(q)] = static_cast<std::size_t>(b.chunk_first(q, n)) * sizeof(T);
  }
  b.request = comm_.start_allgatherv(b.chunk.data(), len * sizeof(T), b.result.data(), b.counts, b.offsets);
  b.stage = 2;
}

void GradientExchange::progress() {
  // All-gathers start in bucket start order (last bucket first), each after its
  // reduce-scatter: the first bucket still running its reduce-scatter stops the scan.
  for (std::size_t i = buckets_.size(); i-- > 0;) {
    Bucket& b = buckets_[i];
    if (b.stage == 0) break;
    if (b.stage == 1) {
      if (!comm_.test(b.request)) break;
      if (dtype_ == DType::f32) gathered<float>(b);
      else gathered<double>(b);
    }
    if (b.stage == 2 && comm_.test(b.request)) b.stage = 3;
  }
}

void GradientExchange::finish(const std::vector<Tensor*>& outputs) {
  for (std::size_t k = 0; k < sizes_.size(); ++k)
    if (missing_[k] > 0) throw CommError("data parallel", fmt::format("value {} is missing from {} shard(s)", k, missing_[k]));
  if (outputs.size() != sizes_.size())
    throw CommError("data parallel", fmt::format("{} outputs for {} values", outputs.size(), sizes_.size()));
  for (std::size_t i = buckets_.size(); i-- > 0;) {
    Bucket& b = buckets_[i];
    if (b.stage == 0) {
      if (dtype_ == DType::f32) start<float>(b);
      else start<double>(b);
    }
  }
  for (std::size_t i = buckets_.size(); i-- > 0;) {
    Bucket& b = buckets_[i];
    if (b.stage == 1) {
      comm_.wait(b.request);
      if (dtype_ == DType::f32) gathered<float>(b);
      else gathered<double>(b);
    }
  }
  const std::size_t elem = size_of(dtype_);
  for (std::size_t i = buckets_.size(); i-- > 0;) {
    Bucket& b = buckets_[i];
    if (b.stage == 2) comm_.wait(b.request);
    b.stage = 3;
    const char* sum = options_.ordered && comm_.size() > 1
                          ? b.result.data()
                          : shard_buf_[0].data() + static_cast<std::size_t>(b.e0) * elem;
    for (std::size_t k = b.v0; k < b.v1; ++k) {
      Tensor& out = *outputs[k];
      if (out.numel() != sizes_[k] || out.dtype() != dtype_)
        throw CommError("data parallel", fmt::format("output {} does not match value {}", k, k));
      const char* from = sum + static_cast<std::size_t>(offsets_[k] - b.e0) * elem;
      if (dtype_ == DType::f32) copy_values(out.data<float>(), reinterpret_cast<const float*>(from), sizes_[k]);
      else copy_values(out.data<double>(), reinterpret_cast<const double*>(from), sizes_[k]);
    }
  }
}

void GradientExchange::gather_rows(std::vector<double>& per_shard) { comm_.allreduce_sum(per_shard.data(), per_shard.size(), DType::f64); }

}  // namespace opgraph
