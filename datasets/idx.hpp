// The IDX format of MNIST and Fashion-MNIST, gzip-compressed or raw.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

/// An IDX array of unsigned bytes: its dimensions and its values, row-major.
struct IdxArray {
  std::uint32_t magic = 0;
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;
};

/// Reads and validates an IDX file of unsigned bytes (magic 0x0000 08 <rank>): magic,
/// element type, dimensions and byte count. Throws DataError naming the file:
/// "bad magic 0x00000802 ...", "truncated after 12 of 47040016 bytes", ...
IdxArray read_idx(const std::string& path);

/// The same from bytes in memory (already decompressed); `name` stands for the file in
/// messages.
IdxArray parse_idx(std::string_view bytes, const std::string& name);

/// Images [n, rows*cols] (pixel values 0..255, as f32) and labels from an IDX pair;
/// throws DataError when the counts differ.
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, const std::string& name);

/// MNIST or Fashion-MNIST from a folder holding the four standard files
/// (train-images-idx3-ubyte[.gz], ...): the training set or the test set.
Dataset load_mnist(const std::string& folder, bool train);
/// The image and label files load_mnist reads from `folder` (gzip preferred).
std::vector<std::string> mnist_files(const std::string& folder, bool train);

}  // namespace opgraph
