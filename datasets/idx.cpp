// IDX reader: big-endian header, unsigned-byte payload, every size checked.
#include <opgraph/datasets/idx.hpp>

#include <filesystem>
#include <map>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/graph/error.hpp>

namespace opgraph {

namespace {

std::uint32_t big_endian(std::string_view bytes, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  // The header promises the size: read it first, then exactly that many bytes (plus one
  // to see whether more follow), so a gzip bomb is never inflated past its promise.
  InputFile f(path, {std::size_t{1} << 32, "an IDX file"});
  std::string bytes;
  f.read(bytes, 4);
  if (bytes.size() == 4) {
    const std::uint32_t rank = static_cast<unsigned char>(bytes[3]);
    const std::uint32_t type = static_cast<unsigned char>(bytes[2]);
    if ((big_endian(bytes, 0) >> 16) == 0 && rank >= 1 && rank <= 4 && type == 0x08) {
      f.read(bytes, 4 * rank);
      if (bytes.size() == 4 + 4 * rank) {
        long double count = 1;
        for (std::uint32_t i = 0; i < rank; ++i) count *= big_endian(bytes, 4 + 4 * i);
        if (count <= static_cast<long double>(std::uint64_t{1} << 32)) {
          const auto want = static_cast<std::size_t>(count);
          f.read(bytes, want);
          // Bytes past the promise are an error; count up to 64 KiB of them for the message.
          constexpr std::size_t kExtra = 1 << 16;
          if (bytes.size() == 4 + 4 * rank + want && f.read(bytes, kExtra) == kExtra && !f.at_end())
            throw DataError(path, fmt::format("more than {} bytes after the {} the header announces", kExtra,
                                              4 + 4 * rank + want));
          return parse_idx(bytes, path);
        }
        throw DataError(path, fmt::format("the header announces {:.0f} values, more than the 2^32 an IDX file may hold",
                                          count));
      }
    }
  }
  return parse_idx(bytes, path);  // reports what is wrong with the header
}

IdxArray parse_idx(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 4)
    throw DataError(path, fmt::format("truncated after {} of at least 4 bytes (no IDX header)", bytes.size()));
  const std::uint32_t magic = big_endian(bytes, 0);
  const std::uint32_t type = (magic >> 8) & 0xff, rank = magic & 0xff;
  if ((magic >> 16) != 0 || rank == 0 || rank > 4)
    throw DataError(path, fmt::format("bad magic 0x{:08x}: not an IDX file", magic));
  if (type != 0x08)
    throw DataError(path, fmt::format("bad magic 0x{:08x}: element type 0x{:02x} is not supported (only unsigned "
                                      "bytes, 0x08)",
                                      magic, type));
  const std::size_t header = 4 + 4 * rank;
  if (bytes.size() < header)
    throw DataError(path, fmt::format("truncated after {} of {} header bytes", bytes.size(), header));
  IdxArray out;
  out.magic = magic;
  // The element count, in a width that cannot overflow: four dimensions of up to 2^32
  // each can announce far more bytes than any file holds.
  long double count = 1;
  for (std::uint32_t i = 0; i < rank; ++i) {
    const std::uint32_t d = big_endian(bytes, 4 + 4 * i);
    out.dims.push_back(d);
    count *= d;
  }
  if (count > static_cast<long double>(bytes.size()))
    throw DataError(path, fmt::format("truncated after {} of {:.0f} bytes", bytes.size(),
                                      static_cast<long double>(header) + count));
  const std::uint64_t expected = header + static_cast<std::uint64_t>(count);
  if (bytes.size() < expected)
    throw DataError(path, fmt::format("truncated after {} of {} bytes", bytes.size(), expected));
  if (bytes.size() > expected)
    throw DataError(path, fmt::format("{} bytes after the {} the header announces", bytes.size() - expected, expected));
  out.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, const std::string& name) {
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  if (images.dims.size() != 3)
    throw DataError(images_path, fmt::format("bad magic 0x{:08x}: expected 0x00000803 for an image file [n, rows, cols]",
                                             images.magic));
  if (labels.dims.size() != 1)
    throw DataError(labels_path, fmt::format("bad magic 0x{:08x}: expected 0x00000801 for a label file [n]",
                                             labels.magic));
  if (labels.dims[0] != images.dims[0])
    throw DataError(labels_path, fmt::format("label count {} does not match image count {} in {}", labels.dims[0],
                                             images.dims[0], images_path));
  const std::int64_t n = images.dims[0], rows = images.dims[1], cols = images.dims[2];
  Dataset d;
  d.name = name;
  d.sample_shape = Shape{rows, cols};
  d.features = Tensor({n, rows * cols});
  float* f = d.features.data<float>();
  for (std::size_t i = 0; i < images.values.size(); ++i) f[i] = images.values[i];
  d.labels = Tensor({n});
  float* l = d.labels.data<float>();
  std::int64_t classes = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    l[i] = labels.values[static_cast<std::size_t>(i)];
    classes = std::max<std::int64_t>(classes, labels.values[static_cast<std::size_t>(i)] + 1);
  }
  for (std::int64_t c = 0; c < classes; ++c) d.class_names.push_back(std::to_string(c));
  return d;
}

std::vector<std::string> mnist_files(const std::string& folder, bool train) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(folder)) throw DataError(folder, "no such folder (expected the MNIST IDX files in it)");
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& kind) {
    const std::string base = (fs::path(folder) / (prefix + "-" + kind)).string();
    if (fs::exists(base + ".gz")) return base + ".gz";
    if (fs::exists(base)) return base;
    // Other sets in MNIST's format put a name before it and call the test part "test"
    // (EMNIST: emnist-letters-train-images-idx3-ubyte.gz, emnist-letters-test-...): one
    // file whose name ends so is taken, gzip preferred; several are ambiguous.
    std::map<std::string, std::string> found;  // name without .gz -> the file to read
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      const std::string plain = name.ends_with(".gz") ? name.substr(0, name.size() - 3) : name;
      for (const std::string& part : {prefix, std::string(train ? "train" : "test")})
        if (plain.ends_with("-" + part + "-" + kind) && (!found.count(plain) || name.ends_with(".gz")))
          found[plain] = entry.path().string();
    }
    if (found.size() == 1) return found.begin()->second;
    if (found.empty()) throw DataError(folder, fmt::format("no {}-{}[.gz] in this folder", prefix, kind));
    std::vector<std::string> names;
    for (const auto& [plain, path] : found) names.push_back(fs::path(path).filename().string());
    throw DataError(folder, fmt::format("{} files could be the {} {}: {} (name the pair: idx:images=FILE,labels=FILE)",
                                        names.size(), train ? "training" : "test", kind.substr(0, kind.find('-')),
                                        fmt::join(names, ", ")));
  };
  return {find("images-idx3-ubyte"), find("labels-idx1-ubyte")};
}

Dataset load_mnist(const std::string& folder, bool train) {
  const auto files = mnist_files(folder, train);
  return load_idx_pair(files[0], files[1],
                       std::filesystem::path(folder).filename().string() + (train ? "/train" : "/test"));
}

}  // namespace opgraph
