// Writes the bad inputs that are generated rather than committed: binary garbage, a 50 MB
// model file, broken IDX folders, damaged checkpoints.
//
//   bad_input_files OUT_DIR VALID_CHECKPOINT
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <zlib.h>

namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::string read(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void put_u32(std::string& s, std::uint32_t v) {  // big-endian, as IDX wants
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

/// An IDX file: magic 0x0803 (images) or 0x0801 (labels), dims, then `payload` bytes.
std::string idx(std::uint32_t magic, const std::vector<std::uint32_t>& dims, std::size_t payload) {
  std::string s;
  put_u32(s, magic);
  for (auto d : dims) put_u32(s, d);
  s.append(payload, '\x07');
  return s;
}

/// One gzip member holding `bytes`.
std::string gzip_member(const std::string& bytes) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

/// A gzip bomb: `head`, then `mib` MiB of zeros, as concatenated gzip members (which
/// gzip and zlib read as one stream): about 1 KB on disk per MiB inflated.
std::string gzip_bomb(const std::string& head, int mib) {
  std::string out = gzip_member(head);
  const std::string zeros = gzip_member(std::string(1 << 20, '\0'));
  for (int i = 0; i < mib; ++i) out += zeros;
  return out;
}

/// A folder laid out like MNIST: train and test images and labels.
void mnist(const fs::path& dir, const std::string& train_images, const std::string& train_labels) {
  write(dir / "train-images-idx3-ubyte", train_images);
  write(dir / "train-labels-idx1-ubyte", train_labels);
  write(dir / "t10k-images-idx3-ubyte", idx(0x803, {2, 28, 28}, 2 * 784));
  write(dir / "t10k-labels-idx1-ubyte", idx(0x801, {2}, 2));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bad_input_files OUT_DIR VALID_CHECKPOINT\n");
    return 2;
  }
  const fs::path out = argv[1];
  fs::create_directories(out);

  // Model files.
  std::string garbage;
  std::uint32_t x = 12345;
  for (int i = 0; i < 4096; ++i) {
    x = x * 1664525u + 1013904223u;
    garbage.push_back(static_cast<char>(0x80 | (x >> 24)));  // high bytes: never text
  }
  write(out / "garbage.og", garbage);
  // CSV cells that are no number: control and non-UTF-8 bytes, and a cell of 3000 bytes.
  write(out / "binary_cell.csv", std::string("a,b,c,d,label\n1,2,3,4,x\n5,\x01\xff\xfe\x1b[31m,7,8,y\n"));
  write(out / "long_cell.csv", "a,b,c,d,label\n1,2,3,4,x\n5," + std::string(3000, '9') + "z,7,8,y\n");
  std::string huge;
  const std::string line = "# padding: a model file this large is not a model file ..............................\n";
  while (huge.size() < 50u * 1024 * 1024) huge += line;
  write(out / "huge.og", huge);

  // IDX folders (mnist:folder=...).
  mnist(out / "mnist_truncated", idx(0x803, {100, 28, 28}, 1000), idx(0x801, {100}, 100));
  mnist(out / "mnist_magic", idx(0x999, {10, 28, 28}, 10 * 784), idx(0x801, {10}, 10));
  mnist(out / "mnist_count", idx(0x803, {10, 28, 28}, 10 * 784), idx(0x801, {9}, 9));
  {
    // gzip magic, then bytes that do not inflate.
    std::string gz = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";
    gz += garbage.substr(0, 200);
    fs::create_directories(out / "mnist_gzip");
    write(out / "mnist_gzip" / "train-images-idx3-ubyte.gz", gz);
    write(out / "mnist_gzip" / "train-labels-idx1-ubyte", idx(0x801, {10}, 10));
  }
  fs::create_directories(out / "mnist_empty");

  // Files that promise little and inflate to a lot, and headers that promise the moon.
  write(out / "bomb.og.gz", gzip_bomb("# a model file, then 20 MiB of zeros\n", 20));
  write(out / "bomb.csv.gz", gzip_bomb("1,2,0\n", 1100));
  write(out / "bomb.ckpt", gzip_bomb("OPGRAPHC", 120));
  mnist(out / "mnist_bomb", gzip_bomb(idx(0x803, {60000, 28, 28}, 0), 1100), idx(0x801, {60000}, 60000));
  fs::rename(out / "mnist_bomb" / "train-images-idx3-ubyte", out / "mnist_bomb" / "train-images-idx3-ubyte.gz");
  mnist(out / "mnist_header_huge", idx(0x803, {65535, 65535, 65535}, 16), idx(0x801, {10}, 10));

  // A flat model of 100 001 op nodes, one per line: past the limit without any block.
  {
    std::string flat = "input x [N, 2]\nlabels y [N]\nh0 = relu(x)\n";
    for (int i = 1; i <= 100000; ++i) flat += "h" + std::to_string(i) + " = relu(h" + std::to_string(i - 1) + ")\n";
    flat += "loss l = softmax_cross_entropy(h100000, y)\n";
    write(out / "flat_100001.og", flat);
  }

  // Checkpoints, from a valid one.
  const std::string ckpt = read(argv[2]);
  if (ckpt.size() < 64) {
    std::fprintf(stderr, "%s: not a checkpoint to start from\n", argv[2]);
    return 1;
  }
  write(out / "truncated.ckpt", ckpt.substr(0, ckpt.size() / 2));
  std::string flipped = ckpt;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x10);
  write(out / "flipped.ckpt", flipped);
  std::string newer = ckpt;
  newer[8] = 2;  // the version, a little-endian u32 after the 8-byte magic
  write(out / "newer.ckpt", newer);
  write(out / "empty.ckpt", "");
  return 0;
}
