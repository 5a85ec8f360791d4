// Batcher: seeded per-epoch orders and gathered batches in reusable buffers.
#include <opgraph/datasets/batcher.hpp>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>

namespace opgraph {

Batcher::Batcher(const Dataset& data, std::int64_t batch_size, bool shuffle, std::uint64_t seed)
    : data_(data), size_(data.size()), shuffle_(shuffle), seed_(seed) {
  if (size_ == 0) throw DataError(data.name, "empty dataset: nothing to train on");
  if (batch_size < 0) throw DataError(data.name, fmt::format("batch size must not be negative, got {}", batch_size));
  batch_ = batch_size == 0 || batch_size > size_ ? size_ : batch_size;
  order_.resize(static_cast<std::size_t>(size_));
  start_epoch(0);
}

std::int64_t Batcher::rows_in(std::int64_t b) const { return std::min(batch_, size_ - b * batch_); }

void Batcher::start_epoch(std::int64_t epoch) {
  epoch_ = epoch;
  for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
  if (!shuffle_) return;
  Rng rng(seed_ ^ (0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(epoch + 1)));
  for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
}

Batcher::Batch Batcher::batch(std::int64_t b) {
  const std::int64_t rows = rows_in(b);
  if (!shuffle_ && rows == size_ && !augment_.any()) return {data_.features, data_.labels, rows};
  return part(b, 0, rows);
}

Batcher::Batch Batcher::part(std::int64_t b, std::int64_t first, std::int64_t rows) {
  if (b < 0 || b >= batches() || first < 0 || rows < 1 || first + rows > rows_in(b))
    throw DataError(data_.name, fmt::format("rows [{}, {}) are not in batch {} of {} ({} rows)", first, first + rows, b,
                                            batches(), b >= 0 && b < batches() ? rows_in(b) : 0));
  const std::int64_t at = b * batch_ + first;  // position of the first row in the epoch's order
  auto& [features, labels] = buffers_[rows];
  if (!features.defined() || features.numel() == 0) {
    std::vector<std::int64_t> fd = data_.features.shape().dims(), ld = data_.labels.shape().dims();
    fd[0] = ld[0] = rows;
    features = Tensor(Shape(fd), data_.features.dtype());
    labels = Tensor(Shape(ld), data_.labels.dtype());
  }
  const std::size_t frow = data_.features.nbytes() / static_cast<std::size_t>(size_);
  const std::size_t lrow = data_.labels.nbytes() / static_cast<std::size_t>(size_);
  auto* fd = static_cast<std::byte*>(features.raw());
  auto* ld = static_cast<std::byte*>(labels.raw());
  const auto* fs = static_cast<const std::byte*>(data_.features.raw());
  const auto* ls = static_cast<const std::byte*>(data_.labels.raw());
  // Rows scattered over the whole set, mostly cache misses: gathered in parallel, about
  // 64 KiB per task (serial, the gather was 5 % of a 2-thread profile of 784-256-10 at
  // batch 256, with the second thread idle meanwhile).
  const auto row_bytes = static_cast<std::int64_t>(std::max<std::size_t>(frow, 1));
  const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{64} << 10) / row_bytes);
  parallel_for(rows, grain, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      const auto r = static_cast<std::size_t>(order_[static_cast<std::size_t>(at + i)]);
      std::memcpy(fd + static_cast<std::size_t>(i) * frow, fs + r * frow, frow);
      std::memcpy(ld + static_cast<std::size_t>(i) * lrow, ls + r * lrow, lrow);
    }
  });
  if (augment_.any()) {
    if (features.dtype() == DType::f32) augment_rows<float>(features, at);
    else augment_rows<double>(features, at);
  }
  return {features, labels, rows};
}

void Batcher::set_augment(const Augment& augment) {
  if (augment.any() && data_.sample_shape.rank() != 2 && data_.sample_shape.rank() != 3)
    throw DataError(data_.name, fmt::format("augmentation shifts and flips images, but its samples have shape {}: give "
                                            "image data (mnist, fashion)",
                                            data_.sample_shape.rank() ? data_.sample_shape : Shape{data_.num_features()}));
  if (augment.shift < 0) throw DataError(data_.name, fmt::format("augmentation shift must not be negative, got {}", augment.shift));
  augment_ = augment;
}

template <class T>
void Batcher::augment_rows(Tensor& features, std::int64_t at) const {
  const Shape& s = data_.sample_shape;
  const std::int64_t h = s[s.rank() - 2], w = s[s.rank() - 1], planes = s.rank() == 3 ? s[0] : 1;
  const std::int64_t rows = features.shape()[0], per = planes * h * w;
  T* data = features.data<T>();
  // Each row from its own generator: the rows in parallel, the same bits on any pool.
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(per, 1));
  parallel_for(rows, grain, [&](std::int64_t i0, std::int64_t i1) {
    std::vector<T> plane(static_cast<std::size_t>(h * w));
    for (std::int64_t i = i0; i < i1; ++i) {
      // Keyed by epoch and dataset row: the same change whatever batch the row lands in.
      const auto row = static_cast<std::uint64_t>(order_[static_cast<std::size_t>(at + i)]);
      Rng rng(seed_ ^ 0xa0761d6478bd642fULL ^ (0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(epoch_ + 1)) ^
              (0xe7037ed1a0b428dbULL * (row + 1)));
      const std::int64_t span = 2 * augment_.shift + 1;
      const std::int64_t dy = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(span))) - augment_.shift;
      const std::int64_t dx = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(span))) - augment_.shift;
      const bool flip = augment_.flip && rng.below(2) == 1;
      for (std::int64_t c = 0; c < planes; ++c) {
        T* img = data + i * per + c * h * w;
        std::copy(img, img + h * w, plane.begin());
        for (std::int64_t y = 0; y < h; ++y)
          for (std::int64_t x = 0; x < w; ++x) {
            const std::int64_t sy = y - dy, sx0 = x - dx, sx = flip ? w - 1 - sx0 : sx0;
            const bool inside = sy >= 0 && sy < h && sx0 >= 0 && sx0 < w;
            img[y * w + x] = inside ? plane[static_cast<std::size_t>(sy * w + sx)] : T(0);
          }
      }
    }
  });
}

}  // namespace opgraph
