// Transforms, synthetic sets and batching.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include <opgraph/datasets/batcher.hpp>
#include <opgraph/datasets/dataset.hpp>
#include <opgraph/datasets/synthetic.hpp>

using namespace opgraph;

namespace {
Dataset small_set() {
  Dataset d;
  d.name = "small";
  d.features = Tensor::from({6, 2}, {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60});
  d.labels = Tensor::from({6}, {0, 1, 2, 0, 1, 2});
  d.class_names = {"a", "b", "c"};
  return d;
}
}  // namespace

TEST_CASE("datasets: one-hot, scale, rows") {
  const Tensor oh = one_hot(Tensor::from({3}, {2, 0, 1}), 3);
  CHECK(oh.to_vector() == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 0});
  CHECK_THROWS_WITH_AS(one_hot(Tensor::from({2}, {1, 3}), 3),
                       "one_hot: label 3 in row 1 is not a class index in [0, 3)", DataError);
  const Dataset s = scaled(small_set(), 0.5);
  CHECK(s.features.at({5, 1}) == 30.0);
  const Dataset r = small_set().rows({4, 0});
  CHECK(r.features.to_vector() == std::vector<double>{5, 50, 1, 10});
  CHECK(r.label(0) == 1);
}

TEST_CASE("datasets: standardise with statistics of the training part") {
  const Dataset d = small_set();
  Standardizer st;
  st.fit(d.rows({0, 1, 2}));
  CHECK(st.mean() == std::vector<double>{2, 20});
  CHECK(st.stddev()[0] == doctest::Approx(std::sqrt(2.0 / 3.0)));
  const Dataset applied = st.apply(d);
  CHECK(applied.features.at({1, 0}) == doctest::Approx(0.0));
  CHECK(applied.features.at({4, 0}) == doctest::Approx(3.0 / std::sqrt(2.0 / 3.0)));
  Dataset constant = d;
  constant.features = Tensor::from({6, 2}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  st.fit(constant);
  CHECK(st.apply(constant).features.at(0) == 0.0);  // a constant feature is centred, not divided by 0
}

TEST_CASE("datasets: seeded splits, stratified or not") {
  const Dataset blobs = make_blobs(300, 3, 1.0, 2, 4);
  const Split a = train_test_split(blobs, 0.3, 7, true), b = train_test_split(blobs, 0.3, 7, true);
  CHECK(a.train.size() == 210);
  CHECK(a.test.size() == 90);
  CHECK(a.test.class_counts() == std::vector<std::int64_t>{30, 30, 30});
  CHECK(a.test.features.bitwise_equal(b.test.features));
  const Split c = train_test_split(blobs, 0.3, 8, false);
  CHECK(c.test.size() == 90);
  CHECK_FALSE(c.test.features.bitwise_equal(a.test.features));
  CHECK_THROWS_WITH_AS(train_test_split(blobs, 1.5, 1), "blobs: test fraction must be between 0 and 1, got 1.5",
                       DataError);
}

TEST_CASE("datasets: class filter, relabel, first N per class") {
  const Dataset d = small_set();
  const Dataset f = filter_classes(d, {2, 0});
  CHECK(f.size() == 4);
  CHECK(f.class_names == std::vector<std::string>{"c", "a"});
  CHECK(f.label(0) == 1);  // the first row was class 0 = "a", now 1
  CHECK(f.label(1) == 0);  // class 2 = "c" is now 0
  const Dataset first = first_per_class(d, 1);
  CHECK(first.features.to_vector() == std::vector<double>{1, 10, 2, 20, 3, 30});
  CHECK_THROWS_WITH_AS(filter_classes(d, {5}), "small: no class 5 (the set has 3 classes)", DataError);
}

TEST_CASE("datasets: a label past 2^24 classes is refused before any per-class table") {
  // Class counts, a stratified split and a confusion matrix are sized by the classes: a
  // label of 2^40 had asked for a table of 8 TiB (std::bad_alloc), 1e8 for 800 MB.
  Dataset d = small_set();
  d.labels.set(4, 16777215.0);  // the largest class a dataset may have
  CHECK(d.num_classes() == kMaxClasses);
  d.labels.set(4, 1099511627776.0);
  CHECK_THROWS_WITH_AS(d.class_counts(),
                       "small: label 1099511627776 of sample 4 would make 1099511627777 classes, more than the 16777216 a "
                       "dataset may hold: class labels count 0, 1, 2, ... (renumber them; for real-valued targets use a "
                       "regression loss such as mse)",
                       DataError);
  CHECK_THROWS_AS(train_test_split(d, 0.5, 1, true), DataError);
}

TEST_CASE("datasets: synthetic sets are seeded and shaped as asked") {
  const Dataset x = make_xor();
  CHECK(x.features.to_vector() == std::vector<double>{0, 0, 0, 1, 1, 0, 1, 1});
  CHECK(x.labels.to_vector() == std::vector<double>{0, 1, 1, 0});
  CHECK(make_xor(25, 0.1, 1).size() == 100);

  const Dataset m1 = make_moons(200, 0.0, 3), m2 = make_moons(200, 0.0, 3);
  CHECK(m1.features.bitwise_equal(m2.features));
  CHECK(m1.class_counts() == std::vector<std::int64_t>{100, 100});
  // Without noise, class 0 lies on the unit upper half circle.
  for (std::int64_t i = 0; i < m1.size(); ++i)
    if (m1.label(i) == 0)
      CHECK(std::hypot(m1.features.at({i, 0}), m1.features.at({i, 1})) == doctest::Approx(1.0).epsilon(1e-6));

  const Dataset c = make_circles(100, 0.0, 0.3, 1);
  for (std::int64_t i = 0; i < c.size(); ++i)
    CHECK(std::hypot(c.features.at({i, 0}), c.features.at({i, 1})) ==
          doctest::Approx(c.label(i) == 0 ? 1.0 : 0.3).epsilon(1e-6));

  const Dataset b = make_uniform_boxes(300, {{1, 5}, {10, 15}, {20, 25}}, 3, 2);
  CHECK(b.features.shape() == Shape{300, 3});
  CHECK(b.class_counts() == std::vector<std::int64_t>{100, 100, 100});
  for (std::int64_t i = 0; i < b.size(); ++i) {
    const double lo = std::vector<double>{1, 10, 20}[static_cast<std::size_t>(b.label(i))];
    for (int j = 0; j < 3; ++j) {
      CHECK(b.features.at({i, j}) >= lo);
      CHECK(b.features.at({i, j}) <= lo + 5);
    }
  }
  const Dataset sp = make_spirals(300, 3, 0.1, 1);
  CHECK(sp.class_counts() == std::vector<std::int64_t>{100, 100, 100});
  const Dataset bl = make_blobs(500, 4, 0.5, 5, 9);
  CHECK(bl.features.shape() == Shape{500, 5});
  CHECK(bl.num_classes() == 4);
  CHECK_THROWS_WITH_AS(make_circles(10, 0.1, 1.5, 1), "circles: factor must be between 0 and 1, got 1.5", DataError);
  CHECK_THROWS_WITH_AS(make_moons(0), "moons: n must be at least 1, got 0", DataError);
}

TEST_CASE("batcher: seeded shuffles, every row once per epoch, last partial batch kept") {
  const Dataset d = make_blobs(10, 2, 1.0, 2, 1);
  Batcher b(d, 4, true, 5);
  CHECK(b.batches() == 3);
  CHECK(b.rows_in(2) == 2);
  b.start_epoch(0);
  const auto order0 = b.order();
  std::multiset<double> seen;
  for (std::int64_t i = 0; i < b.batches(); ++i) {
    const auto batch = b.batch(i);
    CHECK(batch.features.shape() == Shape{batch.rows, 2});
    for (std::int64_t r = 0; r < batch.rows; ++r) seen.insert(batch.features.at({r, 0}));
  }
  std::multiset<double> all;
  for (std::int64_t r = 0; r < d.size(); ++r) all.insert(d.features.at({r, 0}));
  CHECK(seen == all);
  b.start_epoch(1);
  CHECK(b.order() != order0);
  b.start_epoch(0);
  CHECK(b.order() == order0);  // an epoch's order can be recomputed (resuming)

  Batcher full(d, 0, false, 0);
  CHECK(full.batches() == 1);
  CHECK(full.batch(0).features.raw() == d.features.raw());  // no copy
  Batcher single(d, 1, false, 0);
  CHECK(single.batches() == 10);
  CHECK(single.batch(3).features.at(0) == d.features.at({3, 0}));
  CHECK_THROWS_WITH_AS(Batcher(d, -2, false, 0), "blobs: batch size must not be negative, got -2", DataError);
}

TEST_CASE("batcher: every label stays with its row, shuffled or not, full or partial batch") {
  // Labels made from the features (label = feature 0): any mix-up of rows shows.
  Dataset d;
  d.name = "tagged";
  d.features = Tensor({23, 3});
  d.labels = Tensor({23});
  for (std::int64_t r = 0; r < 23; ++r) {
    d.features.set(r * 3, static_cast<double>(r % 5));
    d.features.set(r * 3 + 1, static_cast<double>(r));
    d.features.set(r * 3 + 2, -static_cast<double>(r));
    d.labels.set(r, static_cast<double>(r % 5));
  }
  for (std::int64_t size : {1, 4, 7, 23, 0}) {
    for (bool shuffle : {false, true}) {
      CAPTURE(size);
      CAPTURE(shuffle);
      Batcher b(d, size, shuffle, 3);
      std::multiset<double> rows;
      for (int epoch = 0; epoch < 2; ++epoch) {
        b.start_epoch(epoch);
        for (std::int64_t i = 0; i < b.batches(); ++i) {
          const auto batch = b.batch(i);
          for (std::int64_t r = 0; r < batch.rows; ++r) {
            CHECK(batch.labels.at(r) == batch.features.at({r, 0}));
            CHECK(batch.features.at({r, 2}) == -batch.features.at({r, 1}));
            if (epoch == 0) rows.insert(batch.features.at({r, 1}));
          }
        }
      }
      CHECK(rows.size() == 23);
      CHECK(std::set<double>(rows.begin(), rows.end()).size() == 23);  // every row exactly once
    }
  }
}
