// The CSV reader: header forms, label columns, class names, gzip, and bad files.
#include <doctest/doctest.h>

#include "../test_skip.hpp"

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

TEST_CASE("csv: a first row of data shaped like scikit-learn's header by chance is read as data, and said") {
  // "1,2,0": two counts, the second the number of features, as n_samples,n_features,classes
  // would be; but it announces 1 sample for a file of 4 rows, and reads as a sample.
  CsvReport report;
  const Dataset d = parse_csv("1,2,0\n3,4,1\n5,6,0\n7,8,1\n", "d.csv", {.report = &report});
  CHECK(d.size() == 4);
  CHECK(d.features.at({0, 1}) == 2.0);
  CHECK(d.label(0) == 0);
  CHECK(!report.header);
  CHECK(report.note ==
        "d.csv: the first row (1,2,0) has the form of scikit-learn's header n_samples,n_features,classes but "
        "announces 1 samples for the file's 3: read as data (header=sklearn reads it as a header)");
  // A count that matches is scikit-learn's header; asked for, a wrong count is an error.
  CHECK(parse_csv("3,2,a,b\n1,2,0\n3,4,1\n5,6,0\n", "s.csv").size() == 3);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,4,1\n5,6,0\n", "d.csv", {.header = CsvOptions::Header::sklearn}),
                       "d.csv: the header announces 1 samples, the file has 2", DataError);
}

TEST_CASE("csv: whole-number labels past 2^24 are class names in the numbers' order") {
  // Too large to be class indices (a float holds every whole number only up to 2^24):
  // names, ranked as numbers, so 20000000 comes before 100000000 (as text it came after).
  const Dataset d = parse_csv("1,100000000\n2,20000000\n3,300000000\n4,20000000\n", "ids.csv");
  CHECK(d.class_names == std::vector<std::string>{"20000000", "100000000", "300000000"});
  CHECK(d.label(0) == 1);
  CHECK(d.label(1) == 0);
  CHECK(d.label(3) == 0);
  // Names that are not all numbers keep the order of text.
  CHECK(parse_csv("1,b10\n2,b2\n", "t.csv").class_names == std::vector<std::string>{"b10", "b2"});
}

TEST_CASE("csv: bad cells and rows are reported with their place") {
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,abc,1\n", "d.csv"), "d.csv:2:3: not a number: 'abc'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,4\n", "d.csv"), "d.csv:2: expected 3 fields, got 2", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,,0\n", "d.csv"), "d.csv:1:3: empty cell, expected a number", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("", "d.csv"), "d.csv: empty file (no rows)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("\n\n", "d.csv"), "d.csv: empty file (no rows)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("a,b,c\n", "d.csv"),
                       "d.csv: only one row, and it reads as a header: no samples (header=no reads it as data)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("3,1,x,y\n1,0\n2,1\n", "d.csv"), "d.csv: the header announces 3 samples, the file has 2",
                       DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,\n", "d.csv"), "d.csv:1:5: empty label", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,\"2,0\n", "d.csv"), "d.csv:1:3: unterminated quoted field", DataError);
  // What a bad cell looks like, said: text in a feature column under its name (the header
  // kept: the error had been its first heading's), a missing value, a decimal comma.
  CHECK_THROWS_WITH_AS(parse_csv("age,sex,label\n30,male,0\n40,female,1\n", "d.csv"),
                       "d.csv:2:4: not a number: 'male' (column 'sex')", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\nNA,4,1\n", "d.csv"),
                       "d.csv:2:1: not a number: 'NA', a missing value? opgraph reads none: drop or fill the rows that "
                       "have them",
                       DataError);
  CsvOptions semi;
  semi.delimiter = ';';
  CHECK_THROWS_WITH_AS(parse_csv("a;b;label\n1,5;2;0\n", "d.csv", semi),
                       "d.csv:2:1: not a number: '1,5', a decimal comma? write numbers with a decimal point (column 'a')",
                       DataError);
}

TEST_CASE("csv: labelled=false reads every column as a feature, and the labels are [n, 0]") {
  CsvOptions o;
  o.labelled = false;
  const Dataset d = parse_csv("a,b,c\n1,2,3\n4,5,6.5\n", "d.csv", o);
  CHECK(d.features.shape() == Shape{2, 3});
  CHECK(d.features.at(5) == 6.5);
  CHECK(d.labels.shape() == Shape{2, 0});
  CHECK(!d.has_labels());
  CHECK(d.rows({1}).features.at(0) == 4.0);
  CHECK(d.rows({1}).labels.shape() == Shape{1, 0});
  // One column is a feature; a name in the last column is not a label but a bad number.
  CHECK(parse_csv("7\n8\n", "d.csv", o).features.shape() == Shape{2, 1});
  CHECK_THROWS_WITH_AS(parse_csv("1,2,3\n1,2,cat\n", "d.csv", o), "d.csv:2:5: not a number: 'cat'", DataError);
  // With labels (the default), the same rows have them.
  CHECK(parse_csv("1.5,2,3\n4,5,6\n", "d.csv").has_labels());
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
    test::skip("OPGRAPH_DATA is not set, so the shared small sets are not read");
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

TEST_CASE("csv: a header is a row that cannot be data followed by one that can, nothing else drops a row") {
  // UCI's iris.data: no header, text labels. All rows are samples.
  const std::string uci = "5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n6.2,3.4,5.4,2.3,Iris-virginica\n";
  CsvReport report;
  const Dataset d = parse_csv(uci, "iris.data", {.report = &report});
  CHECK(d.size() == 3);
  CHECK(d.features.at(0) == doctest::Approx(5.1));
  CHECK(d.class_names == std::vector<std::string>{"Iris-setosa", "Iris-virginica"});
  CHECK_FALSE(report.header);
  CHECK(report.note.empty());
  // The same behind a byte-order mark.
  CHECK(parse_csv("\xEF\xBB\xBF" + uci, "bom.data").size() == 3);
  // A names header is detected and said.
  const Dataset h = parse_csv("sepal_length,sepal_width,species\n5.1,3.5,a\n4.9,3,b\n", "h.csv", {.report = &report});
  CHECK(h.size() == 2);
  CHECK(report.header);
  CHECK(report.note == "h.csv: header row detected: sepal_length,sepal_width,species (header=no reads it as data)");
  // A malformed number in the first row is an error at that cell, never a header.
  CHECK_THROWS_WITH_AS(parse_csv("\"5,1\",3.5,a\n4.9,3,b\n", "q.csv"), "q.csv:1:1: not a number: '5,1'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("0x10,3.5,a\n4.9,3,b\n", "x.csv"), "x.csv:1:1: not a number: '0x10'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("5 .1,3.5,a\n4.9,3,b\n", "s.csv"), "s.csv:1:1: not a number: '5 .1'", DataError);
  // Explicit choices override detection.
  CHECK(parse_csv("a,b,c\n1,2,0\n", "y.csv", {.header = CsvOptions::Header::names}).size() == 1);
  CHECK_THROWS_WITH_AS(parse_csv("a,b,c\n1,2,0\n", "n.csv", {.header = CsvOptions::Header::none}),
                       "n.csv:1:1: not a number: 'a'", DataError);
}

TEST_CASE("csv: a header's unnamed columns, a row index and a spreadsheet's trailing commas, are left out") {
  // pandas' to_csv writes its index first, under no name.
  CsvReport report;
  const Dataset p = parse_csv(",a,b,species\n0,1.5,2,x\n1,3,4,y\n2,5,6,x\n", "p.csv", {.report = &report});
  CHECK(p.size() == 3);
  CHECK(p.num_features() == 2);
  CHECK(p.features.at({0, 0}) == 1.5);
  CHECK(p.features.at({2, 1}) == 6.0);
  CHECK(p.class_names == std::vector<std::string>{"x", "y"});
  CHECK(report.header);
  CHECK(report.note == "p.csv: header row detected: ,a,b,species (header=no reads it as data); column 1 has no name: a "
                       "row index (pandas' to_csv and R's write.csv write one), left out (name it in the header to use it)");
  // R's write.csv: quoted, the row names counting from 1, as text.
  const Dataset r = parse_csv("\"\",\"a\",\"b\",\"species\"\n\"1\",1.5,2,\"x\"\n\"r2\",3,4,\"y\"\n", "r.csv");
  CHECK(r.num_features() == 2);
  CHECK(r.features.at({1, 0}) == 3.0);
  // A spreadsheet's trailing commas: columns with no name and no values.
  const Dataset t = parse_csv("a,b,species,,\n1,2,x,,\n3,4,y,,\n", "t.csv", {.report = &report});
  CHECK(t.num_features() == 2);
  CHECK(t.class_names == std::vector<std::string>{"x", "y"});
  CHECK(report.note == "t.csv: header row detected: a,b,species,, (header=no reads it as data); columns 4-5 have no "
                       "name and no values, left out");
  // Both, and a header given as such; label= counts the columns left.
  const Dataset both = parse_csv(",species,a,b,\n0,x,1,2,\n1,y,3,4,\n", "b.csv",
                                 {.header = CsvOptions::Header::names, .label_column = 0, .report = &report});
  CHECK(both.num_features() == 2);
  CHECK(both.features.at({1, 1}) == 4.0);
  CHECK(both.class_names == std::vector<std::string>{"x", "y"});
  CHECK(report.note == "b.csv: column 1 has no name: a row index (pandas' to_csv and R's write.csv write one), left out "
                       "(name it in the header to use it); column 5 has no name and no values, left out");
  // A value under an unnamed trailing column, and a ragged row, at their place.
  CHECK_THROWS_WITH_AS(parse_csv("a,b,species,\n1,2,x,\n3,4,y,7\n", "v.csv"),
                       "v.csv:3:7: '7' under a column the header does not name (name it to use it)", DataError);
  CHECK_THROWS_WITH_AS(parse_csv(",a,b,species\n0,1,2,x\n1,3,4\n", "g.csv"), "g.csv:3: expected 4 fields, got 3",
                       DataError);
  // Not headers: data rows with missing values (numbers beside the gaps, or one name, the
  // label, alone), which stay errors at the empty cell; a header that names nothing.
  CHECK_THROWS_WITH_AS(parse_csv(",2.5,x\n1,2,y\n", "m.csv"), "m.csv:1:1: empty cell, expected a number", DataError);
  CHECK_THROWS_WITH_AS(parse_csv(",,x\n1,2,y\n", "m.csv"), "m.csv:1:1: empty cell, expected a number", DataError);
  CHECK_THROWS_WITH_AS(parse_csv(",x\n5,y\n", "m.csv"), "m.csv:1:1: empty cell, expected a number", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,x,,\n3,4,y,,\n", "m.csv"), "m.csv:1:5: not a number: 'x'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv(",,\n1,2,y\n", "n.csv", {.header = CsvOptions::Header::names}),
                       "n.csv:1: the header names no column", DataError);
  CHECK_THROWS_WITH_AS(parse_csv(",a,b,\n", "o.csv"),
                       "o.csv: only one row, and it reads as a header: no samples (header=no reads it as data)", DataError);
}

TEST_CASE("csv: RFC 4180 quoting, and cells that are not finite f32 numbers") {
  const Dataset q = parse_csv("x,y,name\n1,\"2\",\"two\nlines, \"\"quoted\"\"\"\n3,4,b\n", "q.csv");
  CHECK(q.size() == 2);
  CHECK(q.class_names.front() == "b");
  CHECK(q.class_names.back() == "two\nlines, \"quoted\"");
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,\"4\"x,1\n", "j.csv"), "j.csv:2:6: unexpected 'x' after a closing quote",
                       DataError);
  // A whole UTF-8 character, or a byte that is none, escaped.
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,\"4\"\xc3\xa9,1\n", "j.csv"),
                       "j.csv:2:6: unexpected '\xc3\xa9' after a closing quote", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n3,\"4\"\x1b[2J,1\n", "j.csv"),
                       "j.csv:2:6: unexpected '\\x1b' after a closing quote", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\nnan,4,1\n", "n.csv"), "n.csv:2:1: not a number: 'nan', a missing value? opgraph reads none: drop or fill the rows that have them",
                       DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\ninf,4,1\n", "n.csv"), "n.csv:2:1: not a number: 'inf'", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("1,2,0\n1e39,4,1\n", "n.csv"), "n.csv:2:1: 1e39 does not fit a 32-bit float",
                       DataError);
}

TEST_CASE("csv: label=NAME takes the column the header names, wherever it is") {
  // The label in the middle: the features are the other columns, in order.
  const Dataset a = parse_csv("x,kind,y\n1,cat,2\n3,dog,4\n5,cat,6\n", "a.csv", {.label_name = "kind"});
  CHECK(a.num_features() == 2);
  CHECK(a.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(a.label(1) == 1);
  CHECK(a.features.at({2, 0}) == 5.0);
  CHECK(a.features.at({2, 1}) == 6.0);
  // A first row that would read as data but for the name: it is the header.
  const Dataset b = parse_csv("1,0,2\n3,1,4\n5,0,6\n", "b.csv", {.label_name = "0"});
  CHECK(b.size() == 2);
  CHECK(b.label(0) == 1);
  CHECK(b.features.at({1, 1}) == 6.0);
  // pandas' unnamed row index left out before the columns are counted.
  const Dataset c = parse_csv(",a,target,b\n0,1.5,1,2\n1,3,0,4\n", "c.csv", {.label_name = "target"});
  CHECK(c.num_features() == 2);
  CHECK(c.features.at({0, 0}) == 1.5);
  CHECK(c.features.at({1, 1}) == 4.0);
  CHECK(c.label(0) == 1);
  CHECK_THROWS_WITH_AS(parse_csv("a,b,c\n1,2,3\n", "d.csv", {.label_name = "species"}),
                       "d.csv:1: no column is named 'species': the first row names a, b, c", DataError);
  CHECK_THROWS_WITH_AS(parse_csv("a,b,a\n1,2,3\n", "e.csv", {.label_name = "a"}),
                       "e.csv:1: two columns are named 'a' (columns 1 and 3 of the header): give the label's column "
                       "number",
                       DataError);
  CHECK_THROWS_WITH_AS(parse_csv("a,b\n1,2\n", "f.csv", {.header = CsvOptions::Header::none, .label_name = "a"}),
                       "f.csv: label=a names a column, and header=no says the file has no row of names: give the "
                       "label's column number (label=-1 for the last)",
                       DataError);
}
