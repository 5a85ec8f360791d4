// The CSV reader: header forms, label columns, class names, gzip, and bad files.
#include <doctest/doctest.h>

#include <opgraph/datasets/csv.hpp>
#include <opgraph/datasets/locate.hpp>

#include "../test_files.hpp"

using namespace opgraph;

TEST_CASE("csv: scikit-learn's header, a names header, no header") {
  const Dataset a = parse_csv("3,2,cat,dog\n1.5,2,0\n3,4.25,1\n-1,0,1\n", "a.csv");
  CHECK(a.size() == 3);
  CHECK(a.num_features() == 2);
  CHECK(a.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(a.features.at({1, 1}) == 4.25);
  CHECK(a.label(2) == 1);

  const Dataset b = parse_csv("len,width,kind\n1,2,setosa\n3,4,virginica\n5,6,setosa\n", "b.csv");
  CHECK(b.class_names == std::vector<std::string>{"setosa", "virginica"});
  CHECK(b.label(1) == 1);
  CHECK(b.label(2) == 0);

  const Dataset c = parse_csv("1,2,3,4\r\n5,6,7,8\r\n\r\n", "c.csv", {.label_column = 0});
  CHECK(c.size() == 2);
  CHECK(c.label(1) == 5);
  CHECK(c.features.at({1, 0}) == 6.0);

  const Dataset quoted = parse_csv("x,y,name\n1,2,\"a, b\"\n", "q.csv");
  CHECK(quoted.class_names == std::vector<std::string>{"a, b"});
}

TEST_CASE("csv: bad cells and rows are reported with their place") {
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,abc,1\n", "d.csv"), "d.csv:2:3: not a number: 'abc'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,4\n", "d.csv"), "d.csv:2: expected 3 fields, got 2", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,,0\n", "d.csv"), "d.csv:1:3: empty cell, expected a number", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("", "d.csv"), "d.csv: empty file (no rows)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("\n\n", "d.csv"), "d.csv: empty file (no rows)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("a,b,c\n", "d.csv"), "d.csv: no rows after the header", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("3,1,x,y\n1,0\n2,1\n", "d.csv"), "d.csv: the header announces 3 samples, the file has 2",
                       DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,\n", "d.csv"), "d.csv:1:5: empty label", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,\"2,0\n", "d.csv"), "d.csv:1:3: unterminated quoted field", DataError);
}

TEST_CASE("csv: files, gzip, and the built-in sets") {
  test::ScratchDir dir("csv");
  test::write_gzip(dir.file("s.csv.gz"), "2,1,no,yes\n0.5,1\n0.25,0\n");
  const Dataset s = read_csv(dir.file("s.csv.gz"));
  CHECK(s.size() == 2);
  CHECK(s.class_name(1) == "yes");
  CHECK_THROWS_WITH_AS(read_csv(dir.file("none.csv")), (dir.file("none.csv") + ": no such file").c_str(), DataError);

  const Dataset iris = load_builtin("iris");
  CHECK(iris.size() == 150);
  CHECK(iris.num_features() == 4);
  CHECK(iris.class_counts() == std::vector<std::int64_t>{50, 50, 50});
  CHECK(iris.class_name(2) == "virginica");
  CHECK(iris.features.at({0, 0}) == doctest::Approx(5.1));
  const Dataset wine = load_builtin("wine");
  CHECK(wine.size() == 178);
  CHECK(wine.num_features() == 13);
  CHECK(wine.class_counts() == std::vector<std::int64_t>{59, 71, 48});
  CHECK_THROWS_WITH_AS(load_builtin("irsi"), "unknown built-in dataset 'irsi' (did you mean 'iris'?)", DataError);
}

TEST_CASE("csv: the shared small sets load (needs OPGRAPH_DATA)") {
  if (data_folder().empty()) {
    MESSAGE("skipped: OPGRAPH_DATA is not set, so the shared small sets are not read");
    return;
  }
  const std::string small = find_data("small");
  const Dataset digits = read_csv(small + "/digits.csv.gz");
  CHECK(digits.size() == 1797);
  CHECK(digits.num_features() == 64);
  CHECK(digits.class_counts() == std::vector<std::int64_t>{178, 182, 177, 183, 181, 182, 181, 179, 174, 180});
  const Dataset cancer = read_csv(small + "/breast_cancer.csv");
  CHECK(cancer.size() == 569);
  CHECK(cancer.num_features() == 30);
  CHECK(cancer.class_names == std::vector<std::string>{"malignant", "benign"});
  CHECK(cancer.class_counts() == std::vector<std::int64_t>{212, 357});
  CHECK(read_csv(small + "/iris.csv").size() == 150);
  CHECK(read_csv(small + "/wine_data.csv").size() == 178);
}

TEST_CASE("locate: the data folder comes from --data, then OPGRAPH_DATA") {
  CHECK(data_folder("/some/where") == "/some/where");
  test::ScratchDir dir("locate");
  CHECK_THROWS_WITH_AS(find_data("mnist", dir.path()),
                       (dir.path() + "/mnist: no such folder (the data folder " + dir.path() + " has no mnist/)").c_str(),
                       DataError);
}
