// Data specs: sources, options, splits, and the errors for bad specs.
#include <doctest/doctest.h>

#include "../test_skip.hpp"

#include <opgraph/datasets/locate.hpp>
#include <opgraph/frontends/data_spec.hpp>

#include "../test_files.hpp"

using namespace opgraph;

TEST_CASE("data spec: synthetic and built-in sources with splits and transforms") {
  const LoadedData moons = load_data("moons:n=200,noise=0.1,test=0.25,seed=3");
  CHECK(moons.train.size() == 150);
  CHECK(moons.test.size() == 50);
  CHECK(moons.test.class_counts() == std::vector<std::int64_t>{25, 25});
  CHECK(moons.description == "moons:n=200,noise=0.1,test=0.25,seed=3: 150 training samples, 50 test samples, 2 "
                             "features, 2 classes");
  const LoadedData again = load_data("moons:n=200,noise=0.1,test=0.25,seed=3");
  CHECK(again.train.features.bitwise_equal(moons.train.features));

  const LoadedData iris = load_data("iris:test=0.3,standardize=true");
  CHECK(iris.train.size() == 105);
  REQUIRE(iris.standardizer.has_value());
  double mean = 0;
  for (std::int64_t i = 0; i < iris.train.size(); ++i) mean += iris.train.features.at({i, 0});
  CHECK(mean / 105 == doctest::Approx(0.0).epsilon(1e-6));
  // Statistics from a checkpoint replace fitted ones.
  const Standardizer fixed = Standardizer::from({0, 0, 0, 0}, {1, 1, 1, 1});
  const LoadedData raw = load_data("iris:test=0.3,standardize=true", {}, &fixed);
  CHECK(raw.train.features.at({0, 0}) == load_data("iris:test=0.3").train.features.at({0, 0}));

  CHECK(load_data("xor").train.size() == 4);
  CHECK(load_data("boxes:n=30,limit=10").train.size() == 10);
  CHECK(load_data("blobs:n=90,centers=3,dims=4,scale=1/2").train.num_features() == 4);
  CHECK(load_data("spirals:n=60,classes=4").train.num_classes() == 4);
  CHECK(load_data("circles:n=40,factor=0.3,noise=0").train.size() == 40);
}

TEST_CASE("data spec: csv files") {
  test::ScratchDir dir("spec");
  test::write_file(dir.file("train.csv"), "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n");
  test::write_file(dir.file("test.csv"), "a,b,label\n7,8,dog\n");
  const LoadedData d = load_data("csv:file=" + dir.file("train.csv") + ",test_file=" + dir.file("test.csv"));
  CHECK(d.train.size() == 3);
  CHECK(d.test.size() == 1);
  CHECK(d.train.class_names == std::vector<std::string>{"cat", "dog"});
  test::write_file(dir.file("first.csv"), "0,1.5,2.5\n1,3.5,4.5\n");
  CHECK(load_data("csv:file=" + dir.file("first.csv") + ",label=0,header=none").train.label(1) == 1);
}

TEST_CASE("data spec: csv label= by number or by the header's name, even one that looks like part of a number") {
  test::ScratchDir dir("spec_label");
  test::write_file(dir.file("e.csv"), "e,nan,a\n1,0,3\n0,1,6\n");
  // The label's column, by its name or its number: its first row's class.
  const std::pair<const char*, int> cases[] = {{"e", 1}, {"nan", 0}, {"+1", 0}, {"-1", 3}, {"0", 1}};
  for (const auto& [label, first] : cases) {
    const LoadedData d = load_data("csv:file=" + dir.file("e.csv") + ",label=" + label);
    REQUIRE(d.train.size() == 2);
    CHECK(d.train.num_features() == 2);
    CHECK(d.train.label(0) == first);
  }
}

TEST_CASE("data spec: csv files separated by tabs, semicolons or pipes") {
  test::ScratchDir dir("spec_sep");
  // The message for a row read as one field: the file, then the separator that reads it.
  auto single_field = [&](const std::string& file, const char* sep_was, const char* sep_is, const char* key) {
    return dir.file(file) + ":1: need at least one feature and a label: the row is a single field, as it was read with " +
           sep_was + " between fields and this file separates them with " + sep_is + " (sep=" + key + " reads it)";
  };
  // A .tsv file is read with tabs; an empty cell between two tabs stays a cell.
  test::write_file(dir.file("train.tsv"), "a\tb\tlabel\n1\t2\tcat\n3 \t 4\tdog\n");
  const LoadedData tsv = load_data("csv:file=" + dir.file("train.tsv"));
  REQUIRE(tsv.train.size() == 2);
  CHECK(tsv.train.num_features() == 2);
  CHECK(tsv.train.features.at(3) == 4.0);
  test::write_file(dir.file("gap.tsv"), "1\t\t0\n");
  const std::string gap = dir.file("gap.tsv") + ":1:3: empty cell, expected a number";
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("gap.tsv")), gap.c_str(), DataError);
  test::write_file(dir.file("semi.csv"), "1.5;2;0\n3;4.25;1\n");
  {
    const LoadedData semi = load_data("csv:file=" + dir.file("semi.csv") + ",sep=semicolon");
    REQUIRE(semi.train.size() == 2);
    CHECK(semi.train.features.at(3) == 4.25);
  }
  // Read with the wrong separator: the error names the one that reads it.
  const std::string semi = single_field("semi.csv", "commas", "';'", "semicolon");
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("semi.csv")), semi.c_str(), DataError);
  test::write_file(dir.file("tabs.csv"), "1\t2\t0\n");
  const std::string tabs = single_field("tabs.csv", "commas", "tabs", "tab");
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("tabs.csv")), tabs.c_str(), DataError);
  const std::string tsv_commas = single_field("train.tsv", "commas", "tabs", "tab");
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("train.tsv") + ",sep=comma"), tsv_commas.c_str(), DataError);
  const std::string csv_tabs = single_field("semi.csv", "tabs", "';'", "semicolon");
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("semi.csv") + ",sep=tab"), csv_tabs.c_str(), DataError);
  test::write_file(dir.file("pipes.txt"), "1.5|2|0\n3|4|1\n5|6|0\n");
  CHECK(load_data("csv:file=" + dir.file("pipes.txt") + ",sep=pipe").train.size() == 3);
  CHECK_THROWS_WITH_AS(load_data("csv:file=" + dir.file("pipes.txt") + ",sep=space"), doctest::Contains("sep"),
                       ParseError);
}

TEST_CASE("data spec: other sets in MNIST's format: a folder of prefixed names, or any pair of files") {
  auto bytes_to = [](std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i);
    return v;
  };
  // EMNIST names its files emnist-<split>-train-images-idx3-ubyte.gz and
  // emnist-<split>-test-...; its letters count from 1. They had been "no train-images-idx3-ubyte".
  test::ScratchDir dir("idx-emnist");
  test::write_gzip(dir.file("emnist-letters-train-images-idx3-ubyte.gz"), test::idx_bytes({4, 2, 2}, bytes_to(16)));
  test::write_gzip(dir.file("emnist-letters-train-labels-idx1-ubyte.gz"), test::idx_bytes({4}, {1, 3, 2, 3}));
  test::write_file(dir.file("emnist-letters-test-images-idx3-ubyte"), test::idx_bytes({2, 2, 2}, bytes_to(8)));
  test::write_file(dir.file("emnist-letters-test-labels-idx1-ubyte"), test::idx_bytes({2}, {3, 1}));
  const LoadedData folder = load_data("mnist:folder=" + dir.path() + ",classes=1/2/3");
  REQUIRE(folder.train.size() == 4);
  CHECK(folder.test.size() == 2);
  CHECK(folder.train.label(1) == 2);  // letter 3, the third class kept
  CHECK(folder.test.label(0) == 2);
  CHECK(folder.test.label(1) == 0);
  CHECK(folder.train.features.at({3, 0}) == 12.0);
  // The same files named one by one.
  const LoadedData pair = load_data("idx:images=" + dir.file("emnist-letters-train-images-idx3-ubyte.gz") +
                                    ",labels=" + dir.file("emnist-letters-train-labels-idx1-ubyte.gz") +
                                    ",test_images=" + dir.file("emnist-letters-test-images-idx3-ubyte") +
                                    ",test_labels=" + dir.file("emnist-letters-test-labels-idx1-ubyte") + ",per_class=1");
  CHECK(pair.train.size() == 3);  // one of each letter (and none of the absent class 0)
  CHECK(pair.test.size() == 2);
  CHECK(pair.train.name == "emnist-letters-train-images-idx3-ubyte.gz");
  // Two splits in one folder: which one is not guessed.
  test::write_gzip(dir.file("emnist-digits-train-images-idx3-ubyte.gz"), test::idx_bytes({1, 2, 2}, bytes_to(4)));
  CHECK_THROWS_WITH_AS(load_data("mnist:folder=" + dir.path()),
                       (dir.path() + ": 2 files could be the training images: emnist-digits-train-images-idx3-ubyte.gz, "
                                     "emnist-letters-train-images-idx3-ubyte.gz (name the pair: "
                                     "idx:images=FILE,labels=FILE)").c_str(),
                       DataError);
  CHECK_THROWS_WITH_AS(load_data("idx:images=" + dir.file("emnist-digits-train-images-idx3-ubyte.gz")),
                       doctest::Contains("idx needs images=FILE and labels=FILE"), ParseError);
  CHECK_THROWS_WITH_AS(load_data("idx:images=a,labels=b,test_images=c"),
                       doctest::Contains("test_images= and test_labels= go together"), ParseError);
}

TEST_CASE("data spec: bad specs say what is wrong") {
  CHECK_THROWS_WITH_AS(load_data("mnsit"), "data 'mnsit': unknown data source 'mnsit' (did you mean 'mnist'?)",
                       ParseError);
  // A path where a source's name or a key goes: how to name the file instead.
  CHECK_THROWS_WITH_AS(load_data("data/train.csv"),
                       "data 'data/train.csv': unknown data source 'data/train.csv': a file or folder is named inside a "
                       "source, as csv:file=data/train.csv",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("notes.txt"),
                       "data 'notes.txt': unknown data source 'notes.txt': a file or folder is named inside a source, as "
                       "text:file=notes.txt",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("csv:train.csv,label=0"),
                       "data 'csv:train.csv,label=0': unknown key 'train.csv' for csv (a path is given as file=PATH: "
                       "csv:file=train.csv)",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("mnist:/data/mnist"),
                       "data 'mnist:/data/mnist': unknown key '/data/mnist' for mnist (a path is given as folder=PATH: "
                       "mnist:folder=/data/mnist)",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:points.csv"),
                       "data 'moons:points.csv': unknown key 'points.csv' for moons (moons reads no file; "
                       "csv:file=points.csv does)",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:noize=0.1"),
                       "data 'moons:noize=0.1': unknown key 'noize' for moons (did you mean 'noise'?)", ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:n=lots"),
                       "data 'moons:n=lots': n: expected a whole number from 1 to 100000000, got 'lots'", ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:n=2.5"),
                       "data 'moons:n=2.5': n: expected a whole number from 1 to 100000000, got '2.5'", ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:test=1.5"), "data 'moons:test=1.5': test must be in (0, 1), got 1.5",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:scale=1/0"), "data 'moons:scale=1/0': scale: '1/0' is not a number",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("moons:n=10,n=20"), "data 'moons:n=10,n=20': key 'n' given twice", ParseError);
  CHECK_THROWS_WITH_AS(load_data("csv:file=x.csv,label=0.5"),
                       "data 'csv:file=x.csv,label=0.5': label: expected a whole number from -100000 to 100000, got '0.5'",
                       ParseError);
  CHECK_THROWS_WITH_AS(load_data("iris:standardize=maybe"),
                       "data 'iris:standardize=maybe': standardize: expected true or false, got 'maybe'", ParseError);
  CHECK_THROWS_WITH_AS(load_data("csv"), "data 'csv': csv needs file=PATH", ParseError);
  CHECK_THROWS_WITH_AS(load_data("csv:file=/no/such.csv"), "/no/such.csv: no such file", DataError);
  test::ScratchDir dir("spec-missing");
  CHECK_THROWS_WITH_AS(load_data("mnist", dir.path()),
                       (dir.path() + "/mnist: no such folder (the data folder " + dir.path() + " has no mnist/)").c_str(),
                       DataError);
}

TEST_CASE("data spec: MNIST with a class filter and per-class subset (needs OPGRAPH_DATA)") {
  if (data_folder().empty()) {
    test::skip("OPGRAPH_DATA is not set, so MNIST specs are not loaded");
    return;
  }
  const LoadedData d = load_data("mnist:classes=5/8,per_class=1000");
  CHECK(d.train.size() == 2000);
  CHECK(d.test.size() == 1866);
  CHECK(d.train.class_names == std::vector<std::string>{"5", "8"});
  CHECK_THROWS_WITH_AS(load_data("mnist:test=0.2"), "data 'mnist:test=0.2': mnist has its own test part: drop test=",
                       ParseError);
}
