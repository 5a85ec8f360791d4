// The op registry: built-in ops present, lookups, duplicate and incomplete registrations.
#include <doctest/doctest.h>

#include <algorithm>

#include <opgraph/graph/registry.hpp>

using namespace opgraph;

TEST_CASE("registry: the built-in ops are registered") {
  const std::vector<std::string> expected = {
      "add", "bias_add", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "exp", "log",
      "log_softmax", "logistic", "matmul", "mean", "mse", "mul", "relu", "scale", "softmax",
      "softmax_cross_entropy", "sub", "sum", "tanh"};
  const auto names = Registry::global().names();
  for (const auto& name : expected) {
    CAPTURE(name);
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
    const OpDef& op = Registry::global().get(name);
    CHECK(op.source == "built-in");
    CHECK_FALSE(op.doc.empty());
    CHECK(op.has_vjp());
  }
}

TEST_CASE("registry: an op a program defines itself is labelled with the program, not built-in") {
  // plan_test.cpp defines test_no_vjp with OPGRAPH_OP inside this test program.
  const OpDef& op = Registry::global().get("test_no_vjp");
  CHECK(op.source != "built-in");
  CHECK(op.source.find("opgraph_tests") != std::string::npos);
}

TEST_CASE("registry: unknown names get a suggestion or the list") {
  CHECK_THROWS_WITH_AS(Registry::global().get("sofmax"), "unknown op 'sofmax' (did you mean 'softmax'?)", GraphError);
  CHECK_THROWS_WITH_AS(Registry::global().get("matmull"), "unknown op 'matmull' (did you mean 'matmul'?)", GraphError);
  CHECK(Registry::global().find("no_such_op") == nullptr);
}

TEST_CASE("registry: a duplicate name is rejected naming the op") {
  OpDef def = Registry::global().get("relu");
  CHECK_THROWS_WITH_AS(Registry::global().add(def), "relu: op 'relu' is already registered (by built-in)", GraphError);
}

TEST_CASE("registry: an incomplete definition is rejected") {
  OpDef def;
  def.name = "half_done";
  def.doc = "has no kernels";
  def.shapes = [](const ShapeContext& c) { return std::vector<Shape>{c.in(0)}; };
  CHECK_THROWS_WITH_AS(Registry::global().add(def), "half_done: op definition: no forward kernel", GraphError);
  OpBuilder b("typo_saves");
  b.doc("saves an input it does not have").input("x").saves({"y"});
  CHECK_THROWS_WITH_AS(Registry::global().add(b.def()), "typo_saves: op definition: saves unknown input 'y'",
                       GraphError);
  CHECK(Registry::global().find("half_done") == nullptr);
}

TEST_CASE("registry: signatures read like model-file calls") {
  CHECK(Registry::global().get("matmul").signature() == "matmul(a, b, trans_a=false, trans_b=false)");
  CHECK(Registry::global().get("softmax").signature() == "softmax(x, axis=-1)");
  CHECK(Registry::global().get("mse").signature() == "mse(pred, target, reduction=mean|sum)");
}

TEST_CASE("errors: quoted text is printable and bounded") {
  CHECK(printable("abc") == "abc");
  CHECK(printable(std::string("a\x01\x7f\xff\n", 5)) == "a\\x01\\x7f\\xff\\x0a");
  CHECK(printable(std::string("x\0y", 3)) == "x\\x00y");
  CHECK(printable("na\xc3\xafve \xe2\x82\xac") == "na\xc3\xafve \xe2\x82\xac");  // UTF-8 kept: naive with i-diaeresis, euro
  CHECK(printable("\xc3") == "\\xc3");                        // a truncated sequence
  CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");              // overlong
  CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");    // a surrogate
  CHECK(printable(std::string(50, 'z'), 10) == "zzzzzzzzzz... (50 bytes)");
  CHECK(printable("abcdefghi\xe2\x82\xac", 10) == "abcdefghi... (12 bytes)");  // never half a character
  CHECK(printable(std::string(40, 'q')) == std::string(40, 'q'));
}

TEST_CASE("registry: edit distance and suggestions") {
  CHECK(edit_distance("softmax", "sofmtax") == 1);
  CHECK(edit_distance("relu", "relu") == 0);
  CHECK(edit_distance("", "abc") == 3);
  const std::vector<std::string> known = {"alpha", "beta"};
  CHECK(suggestion("alpah", known) == " (did you mean 'alpha'?)");
  CHECK(suggestion("zzzzzz", known) == " (known: alpha, beta)");
}
