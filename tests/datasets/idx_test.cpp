// The IDX reader on files the test writes, and on real MNIST when OPGRAPH_DATA has it.
#include <doctest/doctest.h>

#include "../test_skip.hpp"

#include <opgraph/datasets/idx.hpp>
#include <opgraph/datasets/locate.hpp>

#include "../test_files.hpp"

using namespace opgraph;
using test::idx_bytes;

namespace {
std::vector<std::uint8_t> ramp(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i % 251);
  return v;
}
}  // namespace

TEST_CASE("idx: images and labels, gzip or raw") {
  test::ScratchDir dir("idx");
  test::write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({3, 2, 2}, ramp(12)));
  test::write_file(dir.file("train-labels-idx1-ubyte"), idx_bytes({3}, {7, 0, 9}));
  const IdxArray a = read_idx(dir.file("train-images-idx3-ubyte.gz"));
  CHECK(a.dims == std::vector<std::int64_t>{3, 2, 2});
  CHECK(a.values == ramp(12));
  const Dataset d = load_mnist(dir.path(), true);
  CHECK(d.size() == 3);
  CHECK(d.features.shape() == Shape{3, 4});
  CHECK(d.sample_shape == Shape{2, 2});
  CHECK(d.features.at({1, 3}) == 7.0);
  CHECK(d.label(0) == 7);
  CHECK(d.label(2) == 9);
  CHECK(d.num_classes() == 10);
}

TEST_CASE("idx: broken files give errors naming the file and the fault") {
  test::ScratchDir dir("idx-bad");
  const std::string f = dir.file("f");
  test::write_file(f, idx_bytes({2, 28, 28}, ramp(100)));
  CHECK_THROWS_WITH_AS(read_idx(f), (f + ": truncated after 116 of 1584 bytes").c_str(), DataError);
  test::write_gzip(f, idx_bytes({2, 28, 28}, ramp(100)));
  CHECK_THROWS_WITH_AS(read_idx(f), (f + ": truncated after 116 of 1584 bytes").c_str(), DataError);
  test::write_file(f, idx_bytes({2}, {1, 2, 3, 4, 5, 6, 7, 8}, 0x00000d01));
  CHECK_THROWS_WITH_AS(read_idx(f),
                       (f + ": bad magic 0x00000d01: element type 0x0d is not supported (only unsigned bytes, 0x08)").c_str(),
                       DataError);
  test::write_file(f, "GIF89a garbage");
  CHECK_THROWS_WITH_AS(read_idx(f), (f + ": bad magic 0x47494638: not an IDX file").c_str(), DataError);
  test::write_file(f, "");
  CHECK_THROWS_WITH_AS(read_idx(f), (f + ": truncated after 0 of at least 4 bytes (no IDX header)").c_str(), DataError);
  test::write_file(f, idx_bytes({2}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(read_idx(f), (f + ": 1 bytes after the 10 the header announces").c_str(), DataError);
  CHECK_THROWS_WITH_AS(read_idx(dir.file("missing")), (dir.file("missing") + ": no such file").c_str(), DataError);
  CHECK_THROWS_WITH_AS(read_idx(dir.path()), (dir.path() + ": is a directory, expected a file").c_str(), DataError);

  // A gzip file cut in the middle of its compressed stream.
  test::write_gzip(f, idx_bytes({50, 28, 28}, ramp(50 * 784)));
  std::string bytes;
  {
    std::ifstream in(f, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  test::write_file(f, bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_AS(read_idx(f), DataError);

  test::write_file(dir.file("images"), idx_bytes({3, 2, 2}, ramp(12)));
  test::write_file(dir.file("labels"), idx_bytes({4}, {1, 2, 3, 4}));
  CHECK_THROWS_WITH_AS(load_idx_pair(dir.file("images"), dir.file("labels"), "pair"),
                       (dir.file("labels") + ": label count 4 does not match image count 3 in " + dir.file("images")).c_str(),
                       DataError);
  // A label file where the images belong.
  CHECK_THROWS_WITH_AS(load_idx_pair(dir.file("labels"), dir.file("labels"), "pair"),
                       (dir.file("labels") + ": bad magic 0x00000801: expected 0x00000803 for an image file [n, rows, cols]")
                           .c_str(),
                       DataError);
  CHECK_THROWS_WITH_AS(load_mnist(dir.path(), false), (dir.path() + ": no t10k-images-idx3-ubyte[.gz] in this folder").c_str(),
                       DataError);
}

TEST_CASE("idx: the real MNIST files (needs OPGRAPH_DATA)") {
  if (data_folder().empty()) {
    test::skip("OPGRAPH_DATA is not set, so real MNIST is not read");
    return;
  }
  const std::string folder = find_data("mnist");
  const Dataset train = load_mnist(folder, true), test = load_mnist(folder, false);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.features.shape() == Shape{60000, 784});
  // Facts from the data README: class counts and the first labels.
  CHECK(train.class_counts() == std::vector<std::int64_t>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
  CHECK(test.class_counts() == std::vector<std::int64_t>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
  for (int i = 0; i < 10; ++i) {
    CHECK(train.label(i) == std::vector<int>{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}[static_cast<std::size_t>(i)]);
    CHECK(test.label(i) == std::vector<int>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}[static_cast<std::size_t>(i)]);
  }
  double lo = 1e9, hi = -1e9;
  for (float v : train.features.values<float>()) {
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
  }
  CHECK(lo == 0.0);
  CHECK(hi == 255.0);
}
