// Checkpoints: round trip, corruption of every kind, model mismatches, atomic writes, .npy.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <zlib.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/frontends/checkpoint.hpp>
#include <opgraph/frontends/files.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/random.hpp>

#include "../test_files.hpp"

using namespace opgraph;

namespace {

Checkpoint sample() {
  const ModelFile m = parse_model("input x [N, 3]\nlabels y [N]\nparam W [3, 2] normal(0, 1)\nparam b [2]\n"
                                  "loss l = softmax_cross_entropy(bias_add(matmul(x, W), b), y)\n");
  Checkpoint c;
  c.model = m.text;
  c.params = m.graph.init_params(7);
  c.optimizer = "momentum:lr=0.01,gamma=0.9";
  c.optimizer_state = {{"W.velocity", Tensor::from({3, 2}, {1, 2, 3, 4, 5, 6})}};
  c.optimizer_steps = 12;
  c.optimizer_time = 2.75;
  c.epoch = 3;
  c.seed = 0xfedcba9876543210ULL;
  c.meta = {{"data", "moons:n=100"}, {"batch", "16"}};
  c.extra = {{"data.mean", Tensor::from({2}, {0.5, -1.0}, DType::f64)}};
  return c;
}

}  // namespace

TEST_CASE("checkpoint: everything saved comes back bit for bit") {
  const Checkpoint c = sample();
  const Checkpoint d = decode_checkpoint(encode_checkpoint(c), "ckpt");
  CHECK(d.model == c.model);
  CHECK(d.params.names() == c.params.names());
  for (const auto& [name, t] : c.params) CHECK(d.params.at(name).bitwise_equal(t));
  CHECK(d.optimizer == c.optimizer);
  REQUIRE(d.optimizer_state.size() == 1);
  CHECK(d.optimizer_state[0].first == "W.velocity");
  CHECK(d.optimizer_state[0].second.bitwise_equal(c.optimizer_state[0].second));
  CHECK(d.optimizer_steps == 12);
  CHECK(d.optimizer_time == 2.75);
  CHECK(d.epoch == 3);
  CHECK(d.seed == 0xfedcba9876543210ULL);
  CHECK(d.meta == c.meta);
  CHECK(d.extra[0].second.bitwise_equal(c.extra[0].second));
}

TEST_CASE("checkpoint: a model with state (running statistics) keeps every section, the data statistics too") {
  // The section count once said 5 whatever was written: with a state section the sixth
  // (the data statistics --normalize saves) was never read back (found by fuzz_checkpoint).
  Checkpoint c = sample();
  c.params.set_state("bn.mean", Tensor::from({2}, {0.25, -0.5}));
  c.extra.emplace_back("data.std", Tensor::from({2}, {2.0, 4.0}, DType::f64));
  const Checkpoint d = decode_checkpoint(encode_checkpoint(c), "ckpt");
  CHECK(d.params.names() == c.params.names());
  CHECK_FALSE(d.params.trainable("bn.mean"));
  CHECK(d.params.at("bn.mean").bitwise_equal(c.params.at("bn.mean")));
  REQUIRE(d.optimizer_state.size() == 1);
  REQUIRE(d.extra.size() == 2);
  CHECK(d.extra[0].first == "data.mean");
  CHECK(d.extra[1].first == "data.std");
  CHECK(d.extra[1].second.bitwise_equal(c.extra[1].second));
  CHECK(encode_checkpoint(d) == encode_checkpoint(c));

  // A file from before the fix: count 5, six sections. The sixth is read all the same.
  std::string legacy = encode_checkpoint(c);
  const std::uint32_t five = 5;
  std::memcpy(legacy.data() + 12, &five, 4);
  const auto crc = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(legacy.data()), static_cast<uInt>(legacy.size() - 4)));
  std::memcpy(legacy.data() + legacy.size() - 4, &crc, 4);
  const Checkpoint old = decode_checkpoint(legacy, "old.ckpt");
  REQUIRE(old.extra.size() == 2);
  CHECK(old.extra[1].second.bitwise_equal(c.extra[1].second));
}

TEST_CASE("checkpoint: what decodes encodes to a fixed point, whatever the order and names of its sections") {
  // Found by fuzz_checkpoint: a state section before the parameters, and a parameter
  // named "". Loading marked the "" parameter as state (Params::set_state used the name
  // after moving it), so each save and load wrote a different file.
  Checkpoint c = sample();
  Params params;
  params.set_state("s", Tensor::from({1}, {0.5}));
  params.set("", Tensor::from({2}, {1, 2}));
  params.set("W", Tensor::from({1}, {3}));
  c.params = params;
  const std::string once = encode_checkpoint(c);
  const Checkpoint d = decode_checkpoint(once, "once.ckpt");
  CHECK(d.params.trainable(""));
  CHECK(d.params.trainable("W"));
  CHECK_FALSE(d.params.trainable("s"));
  CHECK(encode_checkpoint(d) == once);
  CHECK(encode_checkpoint(decode_checkpoint(encode_checkpoint(d), "twice.ckpt")) == once);
}

TEST_CASE("checkpoint: index (i64) tensors in the optimizer's and the extra lists come back, and i64 parameters are refused") {
  Checkpoint c = sample();
  c.extra.emplace_back("data.classes", Tensor::from({3}, {0, 4, 9}, DType::i64));
  const Checkpoint d = decode_checkpoint(encode_checkpoint(c), "ckpt");
  REQUIRE(d.extra.size() == 2);
  CHECK(d.extra[1].second.dtype() == DType::i64);
  CHECK(d.extra[1].second.bitwise_equal(c.extra[1].second));

  Params ints(DType::i64);
  ints.set("W", Tensor::from({2}, {1, 2}, DType::i64));
  c.params = ints;
  CHECK_THROWS_WITH(decode_checkpoint(encode_checkpoint(c), "int.ckpt"),
                    "int.ckpt: corrupt checkpoint: parameter 'W' is i64: parameters and state are f32 or f64");
}

TEST_CASE("checkpoint: tensors of megabytes come back bit for bit, f32 and f64") {
  test::ScratchDir dir("ckpt-large");
  Checkpoint c = sample();
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(to_string(dtype));
    Tensor big({1000, 700}, dtype);  // 2.8 MB in f32, 5.6 MB in f64
    Rng rng(5);
    for (std::int64_t i = 0; i < big.numel(); ++i) big.set(i, rng.normal());
    big.set(big.numel() - 1, -0.0);
    Params params(dtype);
    params.set("big", big);
    params.set("small", Tensor::from({3}, {1, 2, 3}, dtype));
    c.params = params;
    c.optimizer_state = {{"big.m", big.clone()}};
    save_checkpoint(dir.file("big.ckpt"), c);
    const Checkpoint back = load_checkpoint(dir.file("big.ckpt"));
    CHECK(back.params.at("big").bitwise_equal(big));
    CHECK(back.params.at("small").bitwise_equal(params.at("small")));
    REQUIRE(back.optimizer_state.size() == 1);
    CHECK(back.optimizer_state[0].second.bitwise_equal(big));
  }
}

TEST_CASE("checkpoint: parameters holding NaN or infinity are never saved, and the old file stays") {
  test::ScratchDir dir("ckpt-nan");
  Checkpoint c = sample();
  save_checkpoint(dir.file("good.ckpt"), c);
  const std::string before = read_file(dir.file("good.ckpt"));
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    CAPTURE(bad);
    Checkpoint broken = sample();
    broken.params.at("W").set(4, bad);
    CHECK_THROWS_WITH_AS(save_checkpoint(dir.file("good.ckpt"), broken),
                         fmt::format("{}: parameter 'W' holds {} at index 4: a checkpoint is never written with "
                                     "non-finite parameters",
                                     dir.file("good.ckpt"), bad)
                             .c_str(),
                         NumericError);
    CHECK(read_file(dir.file("good.ckpt")) == before);
  }
}

TEST_CASE("checkpoint: truncation, flipped bytes, bad magic and newer versions are refused") {
  const std::string bytes = encode_checkpoint(sample());
  CHECK_THROWS_WITH_AS(decode_checkpoint(bytes.substr(0, 10), "c.ckpt"),
                       "c.ckpt: truncated after 10 bytes: not a complete opgraph checkpoint", DataError);
  const std::string cut = bytes.substr(0, bytes.size() - 50);
  CHECK_THROWS_AS(decode_checkpoint(cut, "c.ckpt"), DataError);
  try {
    decode_checkpoint(cut, "c.ckpt");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).find("checksum mismatch") != std::string::npos);
  }
  // Every single flipped byte is caught.
  int caught = 0;
  for (std::size_t i = 0; i < bytes.size(); i += 7) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x20);
    try {
      decode_checkpoint(flipped, "c.ckpt");
    } catch (const DataError&) {
      ++caught;
    }
  }
  CHECK(caught == static_cast<int>((bytes.size() + 6) / 7));
  std::string magic = bytes;
  magic[0] = 'X';
  CHECK_THROWS_WITH_AS(decode_checkpoint(magic, "c.ckpt"), "c.ckpt: not an opgraph checkpoint (bad magic)", DataError);
  std::string newer = bytes;
  const std::uint32_t v = kCheckpointVersion + 1;
  std::memcpy(newer.data() + 8, &v, 4);
  CHECK_THROWS_WITH_AS(decode_checkpoint(newer, "c.ckpt"),
                       "c.ckpt: checkpoint format version 2 is newer than this opgraph reads (1): upgrade opgraph",
                       DataError);
  CHECK_THROWS_WITH_AS(decode_checkpoint(std::string(100, '\0'), "c.ckpt"),
                       "c.ckpt: not an opgraph checkpoint (bad magic)", DataError);
}

TEST_CASE("checkpoint: a file whose checksum holds but whose sizes lie allocates nothing") {
  // Found by fuzzing with the checksum repaired: a tensor header asking for 2^39 values.
  Checkpoint c = sample();
  c.extra = {{"marker", Tensor::from({3}, {1, 2, 3})}};
  std::string bytes = encode_checkpoint(c);
  const std::size_t at = bytes.find("marker");
  REQUIRE(at != std::string::npos);
  const std::int64_t huge = std::int64_t{1} << 39;
  std::memcpy(bytes.data() + at + 6 + 2, &huge, 8);  // past the name, the dtype and the rank
  const auto crc = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size() - 4)));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  try {
    decode_checkpoint(bytes, "c.ckpt");
    FAIL("decoded a tensor of 2^39 values from a few hundred bytes");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).starts_with("c.ckpt: corrupt checkpoint: a record at byte "));
    CHECK(std::string(e.what()).ends_with(" runs past the end"));
  }
}

TEST_CASE("checkpoint: loading into another model names the parameter that differs") {
  const Checkpoint c = sample();
  const ModelFile wider = parse_model("input x [N, 3]\nlabels y [N]\nparam W [3, 5]\nparam b [5]\n"
                                      "loss l = softmax_cross_entropy(bias_add(matmul(x, W), b), y)\n");
  Params p = wider.graph.init_params(1);
  CHECK_THROWS_WITH_AS(restore_params(c, p, "c.ckpt"),
                       "c.ckpt: parameter 'W' has shape [3,2] in the checkpoint, the model declares [3,5]", DataError);
  const ModelFile other = parse_model("input x [N, 3]\nlabels y [N]\nparam V [3, 2]\nparam b [2]\n"
                                      "loss l = softmax_cross_entropy(bias_add(matmul(x, V), b), y)\n");
  Params q = other.graph.init_params(1);
  CHECK_THROWS_WITH_AS(restore_params(c, q, "c.ckpt"),
                       "c.ckpt: no parameter 'V' in the checkpoint: it was saved from another model", DataError);
  Params f64 = wider.graph.init_params(1, DType::f64);
  CHECK_THROWS_WITH_AS(restore_params(c, f64, "c.ckpt"),
                       "c.ckpt: the checkpoint holds f32 parameters, the model uses f64", DataError);
  const ModelFile same = parse_model(c.model);
  Params r = same.graph.init_params(99);
  restore_params(c, r, "c.ckpt");
  CHECK(r.at("W").bitwise_equal(c.params.at("W")));
}

TEST_CASE("checkpoint: files are replaced atomically and failures leave the old file") {
  test::ScratchDir dir("ckpt");
  const std::string path = dir.file("model.ckpt");
  save_checkpoint(path, sample());
  const std::string before = read_file(path);
  Checkpoint later = sample();
  later.epoch = 4;
  save_checkpoint(path, later);
  CHECK(load_checkpoint(path).epoch == 4);
  CHECK(read_file(path) != before);
  // No temporary files are left next to it.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  CHECK(files == 1);
  CHECK_THROWS_WITH_AS(write_file_atomic(dir.file("missing/x.ckpt"), "data"),
                       (dir.file("missing/x.ckpt") + ": no folder " + dir.file("missing") + " to write into").c_str(),
                       DataError);
  CHECK_THROWS_WITH_AS(write_file_atomic(dir.path(), "data"),
                       (dir.path() + ": is a directory, expected a file to write").c_str(), DataError);
  CHECK(load_checkpoint(path).epoch == 4);
}

TEST_CASE("checkpoint: parameters as .npy") {
  const std::string npy = encode_npy(Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}));
  CHECK(npy.substr(0, 6) == "\x93NUMPY");
  CHECK(npy[6] == 1);
  const std::size_t header = static_cast<unsigned char>(npy[8]) | (static_cast<unsigned char>(npy[9]) << 8);
  CHECK((10 + header) % 64 == 0);
  const std::string h = npy.substr(10, header);
  CHECK(h.find("'descr': '<f4'") != std::string::npos);
  CHECK(h.find("'shape': (2,3)") != std::string::npos);
  CHECK(h.back() == '\n');
  float values[6];
  std::memcpy(values, npy.data() + 10 + header, sizeof values);
  CHECK(values[5] == 6.0f);
  CHECK(npy.size() == 10 + header + 24);
  CHECK(encode_npy(Tensor::from({3}, {1, 2, 3}, DType::f64)).find("'shape': (3,)") != std::string::npos);
}
