// The example CNNs through the C++ API: bitwise the same weights after an epoch at 1 and
// 2 threads (conv2d's lanes, the pools, batch norm); image augmentation that moves the
// pixels it says, the same for any batch split; the filter plot.
#include <doctest/doctest.h>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/plot.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/optim/optimizer.hpp>

#include "../test_util.hpp"

using namespace opgraph;
using namespace opgraph::test;

namespace {

/// n random 28x28 "images" whose class is the quadrant holding the brightest blob: a
/// task a CNN learns, with no data files needed.
Dataset blobs28(std::int64_t n, std::uint64_t seed) {
  Dataset d;
  d.name = "blobs28";
  d.features = Tensor(Shape{n, 784});
  d.labels = Tensor(Shape{n});
  d.sample_shape = Shape{28, 28};
  Rng rng(seed);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto cls = static_cast<std::int64_t>(rng.below(4));
    const std::int64_t cy = (cls / 2) * 14 + 4 + static_cast<std::int64_t>(rng.below(6));
    const std::int64_t cx = (cls % 2) * 14 + 4 + static_cast<std::int64_t>(rng.below(6));
    for (std::int64_t p = 0; p < 784; ++p) {
      const double dy = static_cast<double>(p / 28 - cy), dx = static_cast<double>(p % 28 - cx);
      d.features.set(i * 784 + p, std::exp(-(dy * dy + dx * dx) / 8.0) + 0.2 * rng.uniform());
    }
    d.labels.set(i, static_cast<double>(cls));
  }
  return d;
}

std::string model_path(const char* file) { return std::string(OPGRAPH_SOURCE_DIR) + "/examples/models/" + file; }

}  // namespace

TEST_CASE("cnn: LeNet and the residual net train to bitwise the same weights at 1 and 2 threads") {
  const Dataset data = blobs28(192, 5);
  for (const char* file : {"lenet.og", "resnet_mnist.og"}) {
    CAPTURE(file);
    std::vector<Params> finals;
    std::vector<double> losses;
    for (int threads : {1, 2}) {
      ThreadCount t(threads);
      ModelFile f = load_model(model_path(file));
      Model m{std::move(f.graph), {}, f.input, f.labels};
      m.params = m.graph.init_params(3);
      auto adam = make_adam({.lr = 0.003});
      const History h = fit(m, data, *adam, {.epochs = 1, .batch = 32, .seed = 4, .augment = {.shift = 2}});
      losses.push_back(h.epochs.back().train_loss);
      finals.push_back(m.params);
    }
    CHECK(std::isfinite(losses[0]));
    CHECK(losses[1] == losses[0]);
    std::size_t compared = 0;
    for (const auto& entry : finals[0]) {  // not a structured binding: clang 14 cannot capture one
      const std::string& name = entry.first;
      const Tensor& value = entry.second;
      CAPTURE(name);
      CHECK(finals[1].at(name).bitwise_equal(value));
      ++compared;
    }
    CHECK(compared >= 10);
  }
}

TEST_CASE("cnn: LeNet learns the quadrant task from image-shaped inputs") {
  const Dataset train = blobs28(1024, 1), test = blobs28(256, 2);
  ModelFile f = load_model(model_path("lenet.og"));
  Model m{std::move(f.graph), {}, f.input, f.labels};
  m.params = m.graph.init_params(1);
  auto adam = make_adam({.lr = 0.003});
  Trainer t(m);
  t.fit(train, *adam, {.epochs = 3, .batch = 32, .seed = 1});
  CHECK(t.evaluate(test).accuracy >= 0.95);
}

TEST_CASE("augment: shifts move the pixels with zeros in the border, flips mirror, any batch split the same") {
  Dataset d;
  d.name = "ramp";
  d.features = Tensor(Shape{6, 12});
  d.labels = Tensor(Shape{6});
  d.sample_shape = Shape{3, 4};
  for (std::int64_t i = 0; i < 72; ++i) d.features.set(i, static_cast<double>(i % 12 + 1));
  auto rows_of = [&](std::int64_t batch, Augment a) {
    Batcher b(d, batch, false, 7);
    b.set_augment(a);
    b.start_epoch(3);
    std::vector<double> all;
    for (std::int64_t k = 0; k < b.batches(); ++k) {
      const auto v = b.batch(k).features.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const auto whole = rows_of(6, {.shift = 1});
  CHECK(rows_of(2, {.shift = 1}) == whole);
  CHECK(rows_of(1, {.shift = 1}) == whole);
  std::int64_t moved = 0;
  for (std::int64_t i = 0; i < 6; ++i) {
    // Each image is the original moved by (dy, dx) in [-1, 1]^2: find the move, check every pixel.
    bool found = false;
    for (std::int64_t dy = -1; dy <= 1 && !found; ++dy)
      for (std::int64_t dx = -1; dx <= 1 && !found; ++dx) {
        bool all = true;
        for (std::int64_t y = 0; y < 3; ++y)
          for (std::int64_t x = 0; x < 4; ++x) {
            const std::int64_t sy = y - dy, sx = x - dx;
            const double want = sy >= 0 && sy < 3 && sx >= 0 && sx < 4 ? static_cast<double>(sy * 4 + sx + 1) : 0.0;
            all = all && whole[static_cast<std::size_t>(i * 12 + y * 4 + x)] == want;
          }
        if (all) {
          found = true;
          moved += dy != 0 || dx != 0;
        }
      }
    CHECK(found);
  }
  CHECK(moved >= 3);  // 8 of 9 moves are not the identity
  // Flips alone: each image is the original or its mirror, both kinds seen over 6 images.
  const auto flips = rows_of(6, {.flip = true});
  std::int64_t mirrored = 0;
  for (std::int64_t i = 0; i < 6; ++i) {
    bool same = true, mirror = true;
    for (std::int64_t p = 0; p < 12; ++p) {
      same = same && flips[static_cast<std::size_t>(i * 12 + p)] == static_cast<double>(p + 1);
      mirror = mirror && flips[static_cast<std::size_t>(i * 12 + p)] == static_cast<double>((p / 4) * 4 + (3 - p % 4) + 1);
    }
    CHECK((same || mirror));
    mirrored += mirror;
  }
  CHECK(mirrored >= 1);
  CHECK(mirrored <= 5);
  // Another epoch draws other moves; the dataset itself is never changed.
  Batcher other(d, 6, false, 7);
  other.set_augment({.shift = 1});
  other.start_epoch(4);
  CHECK(other.batch(0).features.to_vector() != whole);
  CHECK(d.features.at(0) == 1.0);
  Dataset flat = d;
  flat.sample_shape = Shape{};
  Batcher refuse(flat, 6, false, 7);
  CHECK_THROWS_WITH(refuse.set_augment({.shift = 2}), "ramp: augmentation shifts and flips images, but its samples have "
                                                      "shape [12]: give image data (mnist, fashion)");
}

TEST_CASE("plot: the filter grid draws one image per output channel, on one scale") {
  Tensor k(Shape{6, 1, 5, 5}, DType::f64);
  for (std::int64_t i = 0; i < k.numel(); ++i) k.set(i, static_cast<double>(i % 7) - 3.0);
  const std::string svg = filter_grid(k, "First-layer filters: conv_1.W");
  std::size_t images = 0;
  for (std::size_t at = svg.find("class=\"filter\""); at != std::string::npos; at = svg.find("class=\"filter\"", at + 1)) ++images;
  CHECK(images == 6);
  CHECK(svg.find("6 filters of 5x5: red positive, blue negative, one scale (largest |w| = 3)") != std::string::npos);
  CHECK_THROWS_WITH(filter_grid(Tensor(Shape{6, 25}), "w"), "w: a filter grid needs a kernel [out, in, kh, kw], got [6,25]");
}
