// Minibatches of a dataset, epoch after epoch.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

/// Splits a dataset into batches of `batch_size` rows (0, or at least the set's size:
/// one full batch; 1: one sample at a time). With `shuffle`, each epoch visits the rows in
/// a fresh order drawn from (seed, epoch), so an epoch's order can be recomputed, e.g.
/// when training resumes. The last partial batch is kept.
/// Random changes to training images, drawn per epoch and per sample from the seed (the
/// same whatever the batch size or thread count, and after a resume): a shift of up to
/// `shift` pixels along each axis (the uncovered border filled with zeros) and, with
/// `flip`, a left-right mirror half of the time. Images are samples of shape [H, W] or
/// [C, H, W] (Dataset::sample_shape).
struct Augment {
  std::int64_t shift = 0;
  bool flip = false;
  bool any() const { return shift > 0 || flip; }
};

class Batcher {
 public:
  Batcher(const Dataset& data, std::int64_t batch_size, bool shuffle, std::uint64_t seed);

  std::int64_t batch_size() const { return batch_; }
  std::int64_t batches() const { return (size_ + batch_ - 1) / batch_; }
  /// Rows in batch b (batch_size, or fewer for the last).
  std::int64_t rows_in(std::int64_t b) const;
  /// Sets the row order of `epoch`.
  void start_epoch(std::int64_t epoch);
  const std::vector<std::int64_t>& order() const { return order_; }

  struct Batch {
    Tensor features;  // [rows, d]
    Tensor labels;    // [rows]
    std::int64_t rows;
  };
  /// Batch b of the current epoch. The tensors are reused by later calls with the same
  /// row count; a full batch in file order is the dataset itself, not a copy.
  Batch batch(std::int64_t b);
  /// Rows [first, first + count) of batch b, in their own buffers (a data-parallel
  /// process gathers only its shards of each batch).
  Batch part(std::int64_t b, std::int64_t first, std::int64_t count);
  /// Augments every later batch. Throws DataError when the samples are not images.
  void set_augment(const Augment& augment);

 private:
  template <class T>
  void augment_rows(Tensor& features, std::int64_t at) const;

  const Dataset& data_;
  std::int64_t size_, batch_;
  bool shuffle_;
  std::uint64_t seed_;
  std::vector<std::int64_t> order_;
  Augment augment_;
  std::int64_t epoch_ = 0;
  std::map<std::int64_t, std::pair<Tensor, Tensor>> buffers_;  // by row count
};

}  // namespace opgraph
