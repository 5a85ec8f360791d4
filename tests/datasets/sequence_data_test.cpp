// Sequence datasets: sort_digits labels each sequence with its sorted digits, and text
// windows label each byte with the one after it, split by position.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/datasets/text.hpp>
#include <opgraph/graph/error.hpp>

using namespace opgraph;

TEST_CASE("sequence data: sort_digits labels are the features sorted, seeded") {
  const Dataset d = make_sort_digits(50, 6, 10, 3);
  REQUIRE(d.features.shape() == Shape{50, 6});
  REQUIRE(d.labels.shape() == Shape{50, 6});
  for (std::int64_t i = 0; i < 50; ++i) {
    std::vector<double> x, y;
    for (std::int64_t t = 0; t < 6; ++t) {
      x.push_back(d.features.at(i * 6 + t));
      y.push_back(d.labels.at(i * 6 + t));
    }
    CHECK(std::is_sorted(y.begin(), y.end()));
    std::sort(x.begin(), x.end());
    CHECK(x == y);  // the same digits
  }
  CHECK(make_sort_digits(50, 6, 10, 3).features.to_vector() == d.features.to_vector());
  CHECK(make_sort_digits(50, 6, 10, 4).features.to_vector() != d.features.to_vector());
  CHECK(d.num_classes() == 10);
}

TEST_CASE("sequence data: text windows predict the next byte, the held-out part is the tail") {
  // 20 bytes; 80 % for training = the first 16: windows of 4 every 2 bytes.
  const std::string text = "abcdefghijklmnopqrst";
  const TextWindows w = make_text_windows(text, 4, 2, 0.0);
  CHECK(w.test.size() == 0);
  REQUIRE(w.train.features.shape() == Shape{8, 4});  // starts 0, 2, ..., 14: a window and its next byte fit in 20
  for (std::int64_t i = 0; i < 8; ++i)
    for (std::int64_t t = 0; t < 4; ++t) {
      CHECK(w.train.features.at(i * 4 + t) == 'a' + 2 * i + t);
      CHECK(w.train.labels.at(i * 4 + t) == 'a' + 2 * i + t + 1);
    }
  // 20 % held out: the tail "qrst", where a window of 4 and its next byte do not fit.
  CHECK_THROWS_WITH_AS(make_text_windows(text, 4, 2, 0.2, "t"),
                       "t: the held-out part has 4 characters, too few for one window of 4: raise test= or lower length=",
                       DataError);
  const TextWindows v = make_text_windows(text, 3, 2, 0.2);
  REQUIRE(v.test.size() == 1);
  CHECK(v.test.features.at(0) == 'q');
  CHECK(v.test.labels.at(2) == 't');
  // Entropy of 16 distinct equally frequent bytes: 4 bits.
  CHECK(v.unigram_bits == doctest::Approx(4.0));
  CHECK(make_text_windows("aaaaaaaaaa", 3, 1, 0.0).unigram_bits == 0.0);
}
