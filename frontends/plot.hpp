// Plots as SVG files a browser shows: curves, decision regions, misclassified images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

class Trainer;

struct Series {
  std::string name;
  std::vector<double> x, y;
};

/// A line chart: axes with ticks, one polyline per series (NaN points skipped), a legend.
std::string line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                       const std::vector<Series>& series);

/// For 2-D data: the trainer's predicted class over a grid covering the points, with the
/// points on top coloured by their true class (misclassified points outlined in red).
std::string decision_regions(Trainer& trainer, const Dataset& points, const std::string& title, int resolution = 200);

/// For image data (sample_shape [rows, cols]): up to `max_images` misclassified samples
/// with their true and predicted labels.
std::string misclassified_grid(const Dataset& data, const std::vector<std::int64_t>& predicted,
                               const std::string& title, int max_images = 48);

/// For image data whose model reproduces its input (an autoencoder): the first
/// `max_images` samples, each original above its reconstruction (`outputs`, one row of
/// rows x cols values per sample), both on the originals' grey scale.
std::string reconstruction_grid(const Dataset& data, const Tensor& outputs, const std::string& title,
                                int max_images = 16);

/// A PNG image (8-bit grey when channels == 1, RGB when 3) from row-major bytes.
/// A convolution kernel [out, in, kh, kw] as a grid of small images, one per output
/// channel (its first input channel when it has several, an RGB image when it has three):
/// red positive, blue negative, white zero, on one scale for the whole layer.
std::string filter_grid(const Tensor& kernel, const std::string& title, int max_filters = 64);

std::string encode_png(int width, int height, int channels, const std::vector<std::uint8_t>& pixels);

}  // namespace opgraph
