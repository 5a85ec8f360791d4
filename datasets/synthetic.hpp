// Seeded synthetic datasets: xor, blobs, moons, circles, spirals, uniform boxes.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

/// The four XOR points, each repeated `copies` times with Gaussian `noise` (0: exact).
Dataset make_xor(std::int64_t copies = 1, double noise = 0.0, std::uint64_t seed = 0);

/// `n` points around `centers` centres drawn uniformly in [-10, 10]^dims, each point
/// normal around its centre with standard deviation `spread`.
Dataset make_blobs(std::int64_t n, std::int64_t centers = 3, double spread = 1.0, std::int64_t dims = 2,
                   std::uint64_t seed = 0);

/// Two interleaving half circles (upper: class 0, lower shifted: class 1) with Gaussian noise.
Dataset make_moons(std::int64_t n, double noise = 0.1, std::uint64_t seed = 0);

/// A circle of radius 1 (class 0) around one of radius `factor` (class 1), with noise.
Dataset make_circles(std::int64_t n, double noise = 0.05, double factor = 0.5, std::uint64_t seed = 0);

/// `classes` interleaved spiral arms from the origin, with noise on the angle.
Dataset make_spirals(std::int64_t n, std::int64_t classes = 3, double noise = 0.2, std::uint64_t seed = 0);

/// A sequence-to-sequence task: `n` sequences of `length` digits in [0, digits), drawn
/// uniformly (seeded); features [n, length] are the digits, labels [n, length] the same
/// digits sorted ascending (one class per position).
Dataset make_sort_digits(std::int64_t n, std::int64_t length = 8, std::int64_t digits = 10, std::uint64_t seed = 0);

/// Class k uniform in its own box [lo_k, hi_k]^dims; the reference set uses
/// {[1,5], [10,15], [20,25]} in 3 dimensions.
Dataset make_uniform_boxes(std::int64_t n, std::vector<std::pair<double, double>> boxes = {{1, 5}, {10, 15}, {20, 25}},
                           std::int64_t dims = 3, std::uint64_t seed = 0);

}  // namespace opgraph
