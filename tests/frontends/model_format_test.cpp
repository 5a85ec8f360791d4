// The .og format: every example parses and round-trips, blocks, printing, exact errors.
#include <doctest/doctest.h>

#include <filesystem>

#include <fmt/format.h>

#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/plan.hpp>

using namespace opgraph;

namespace {

void check_round_trip(const Graph& g, const std::string& labels, const std::string& what) {
  const std::string text = print_model(g, {.labels = labels});
  const ModelFile again = parse_model(text, what + " (printed)");
  std::string why;
  CAPTURE(what);
  CAPTURE(text);
  CHECK_MESSAGE(same_graph(g, again.graph, &why), why);
  CHECK(again.labels == labels);
  CHECK(print_model(again.graph, {.labels = labels}) == text);  // printing is a fixed point
}

std::string error_of(const std::string& text) {
  try {
    parse_model(text, "model.og");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("model format: every example model parses, compiles and round-trips") {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(OPGRAPH_SOURCE_DIR "/examples/models")) {
    if (entry.path().extension() != ".og") continue;
    ++count;
    const ModelFile m = load_model(entry.path().string());
    CAPTURE(entry.path().string());
    if (m.graph.size() == 0) {  // a library of blocks (blocks.og): parsed; its blocks are tested on their own
      CHECK(entry.path().filename() == "blocks.og");
      continue;
    }
    CHECK(m.graph.loss().has_value());
    Params params = m.graph.init_params(1);
    CHECK_NOTHROW(Plan(m.graph, params, {.batch = 2}));
    check_round_trip(m.graph, m.labels, entry.path().filename().string());
  }
  CHECK(count >= 10);
}

TEST_CASE("model format: graphs built with the C++ API print and parse back") {
  Graph g;
  auto x = nn::input(g, "x", {N, 16});
  auto y = nn::input(g, "y", {N});
  auto h1 = nn::relu(nn::dense(x, 16, "block1", Init::he()));
  auto h2 = nn::tanh(nn::dense(h1, 16, "block2", Init::normal(0.5, 0.01)));
  auto skip = (h1 + h2 * h1 - h2).named("skip");
  auto logits = nn::dense(skip, 4, "head", Init::uniform(-0.1, 0.1), Init::constant(0.25)).named("logits");
  g.add_output(nn::log_softmax(logits).named("loss"));  // a node called like a keyword
  g.set_loss(nn::op("softmax_cross_entropy", {logits, y}, {{"reduction", "sum"}}).named("xent"));
  g.add_output(nn::scale(nn::sum(logits, 1), 0.5).named("half"));
  check_round_trip(g, "y", "C++ graph");
}

TEST_CASE("model format: blocks make parameters per instance") {
  const ModelFile m = parse_model(R"(
block dense(x, in, out, act=relu):
  param W [in, out] he
  param b [out] zeros
  return act(bias_add(matmul(x, W), b))
end
block tower(x, width):
  a = dense(x, width, width)
  return x + dense(a, width, width, act=tanh)
end
input x [N, 8]
labels y [N]
t1 = tower(x, 8)
t2 = tower(t1, 8)
logits = dense(t2, 8, 3, identity)
loss l = softmax_cross_entropy(logits, y)
)",
                                 "tower.og");
  const Graph& g = m.graph;
  for (const char* p : {"t1.a.W", "t1.a.b", "t2.a.W", "t1.dense_1.W", "t2.dense_1.W", "logits.W", "logits.b"}) {
    CAPTURE(p);
    REQUIRE(g.find(p));
    CHECK(g.node(*g.find(p)).kind == NodeKind::param);
  }
  CHECK(g.node(g.at("t1.a.W")).shape == Shape{8, 8});
  CHECK(g.node(g.at("t1.a.W")).init == Init::he());
  CHECK(g.node(g.at("t1")).op->name == "add");  // the tower's result carries its name
  CHECK(g.node(g.at("t1.a")).op->name == "relu");
  CHECK(g.node(g.at("t1.dense_1")).op->name == "tanh");
  CHECK(g.node(g.at("logits")).op->name == "identity");
  CHECK(g.params().size() == 10);
  CHECK(g.node(g.at("t1.a.W")).origin == "tower.og:3:3");
}

TEST_CASE("model format: attributes, literals, operators, outputs") {
  const ModelFile m = parse_model(R"(input x [N, 4]   # comment after a statement
labels y [N, 4]
s = scale(x, factor=-2.5)
a = sum(s, axis=1)
p = softmax(x, axis=-1)
q = x * x + x - s
output p
loss e = mse(q, y, reduction=sum)
)");
  const Graph& g = m.graph;
  CHECK(g.node(g.at("s")).attrs[0].as_float() == -2.5);
  CHECK(g.node(g.at("a")).attrs[0].as_ints() == IntList{1});  // one axis is a list of one
  CHECK(g.node(g.at("a")).shape == Shape{N});
  // q = x * x + x - s parses as ((x * x) + x) - s: check the whole tree, not only the top.
  const Node& q = g.node(g.at("q"));
  CHECK(q.op->name == "sub");
  REQUIRE(q.inputs.size() == 2);
  CHECK(g.node(q.inputs[1]).name == "s");
  const Node& plus = g.node(q.inputs[0]);
  CHECK(plus.op->name == "add");
  REQUIRE(plus.inputs.size() == 2);
  CHECK(g.node(plus.inputs[1]).name == "x");
  const Node& times = g.node(plus.inputs[0]);
  CHECK(times.op->name == "mul");
  CHECK(times.inputs == std::vector<NodeId>{g.at("x"), g.at("x")});
  // and a - b - c is (a - b) - c; a - b * c is a - (b * c).
  const ModelFile p2 = parse_model("input a [N, 2]\ninput b [N, 2]\ninput c [N, 2]\nl = a - b - c\nr = a - b * c\n");
  const Graph& h = p2.graph;
  CHECK(h.node(h.node(h.at("l")).inputs[0]).op->name == "sub");
  CHECK(h.node(h.at("l")).inputs[1] == h.at("c"));
  CHECK(h.node(h.at("r")).inputs[0] == h.at("a"));
  CHECK(h.node(h.node(h.at("r")).inputs[1]).op->name == "mul");
  CHECK(g.node(g.at("e")).attrs[0].as_string() == "sum");
  CHECK(g.outputs() == std::vector<NodeId>{g.at("p")});
  CHECK(m.labels == "y");
  CHECK(m.name == "<model>");
}

TEST_CASE("model format: shapes as comments") {
  const ModelFile m = parse_model("input x [N, 3]\nparam W [3, 2]\nh = matmul(x, W)\n");
  CHECK(print_model(m.graph, {.shapes = true}) == "input x [N, 3]\nparam W [3, 2] xavier  # [3,2]\nh = matmul(x, W)  # [N,2]\n");
  CHECK(print_model(m.graph, {.shapes = true, .batch = 8}).find("h = matmul(x, W)  # [8,2]") != std::string::npos);
}

TEST_CASE("model format: errors carry file:line:col, the offending text and a suggestion") {
  CHECK(error_of("input x [N, 784]\n\n\n\n\n\np = sofmax(x)\n") == "model.og:7:5: unknown op 'sofmax' (did you mean 'softmax'?)");
  CHECK(error_of("input x [N, 784]\nparam W [265, 10]\n\n\n\n\n\n\nh = matmul(x, W)\n") ==
        "model.og:9:5: matmul: inner dimensions differ: [N,784] x [265,10] (784 against 265)");
  CHECK(error_of("input x [N,2]\nh = relu(x)\nh = tanh(x)\n") ==
        "model.og:3:5: duplicate node name 'h' (first declared at model.og:2:5)");
  CHECK(error_of("input x [N,2]\nh = relu(x, alpha=0.1)\n") == "model.og:2:5: relu: unknown attribute 'alpha' (it takes none)");
  CHECK(error_of("input x [N,2]\nh = softmax(x, axs=1)\n") ==
        "model.og:2:5: softmax: unknown attribute 'axs' (did you mean 'axis'?)");
  CHECK(error_of("input x [N,2]\nh = matmul(x)\n") == "model.og:2:5: matmul: expects 2 inputs (a, b), got 1");
  CHECK(error_of("input x [N,2]\nh = relu(x)\nk = tanh(hh)\n") == "model.og:3:10: unknown name 'hh' (did you mean 'h'?)");
  CHECK(error_of("input x [N 2]") == "model.og:1:12: expected ']' or ',', got '2'");
  CHECK(error_of("input x [N,2]\nparam W [2,2] gaussian(0, 1)\n") ==
        "model.og:2:15: unknown initialiser 'gaussian' (known: constant, glorot, he, normal, uniform, xavier, zeros)");
  CHECK(error_of("input x [N,2]\nparam W [2,2] normal(0)\n") == "model.og:2:15: 'normal' takes 2 numbers, got 1");
  CHECK(error_of("input x [N,2]\nh relu(x)\n") == "model.og:2:3: expected '=' after 'h', got 'relu'");
  CHECK(error_of("input x [N,2]\nh = relu(x))\n") == "model.og:2:12: expected the end of the line, got ')'");
  CHECK(error_of("input x [N,2]\nh = relu(x\n") == "model.og:2:11: expected ')' or ',', got the end of the line");
  CHECK(error_of("param W [N, 3]\n") == "model.og:1:1: shape [N,3] holds the batch dimension N; parameters need fixed sizes");
  CHECK(error_of("input x [N, -3]\n") == 
        "model.og:1:13: a dimension must be a whole number >= 0 or a name (N, T, ...), got the number -3");
  CHECK(error_of("input x [N,2]\nh = relu(3)\n") == "model.og:2:10: relu: expected a value (a node), got the number 3 (relu takes relu(x))");
  CHECK(error_of("input x [N,2]\nh = scale(x, factor=x)\n") ==
        "model.og:2:14: scale: attribute 'factor' takes a number or a word, got node 'x'");
  CHECK(error_of("input x [N,2]\nloss a\n") == "model.og:2:6: unknown name 'a' (known: x)");
  CHECK(error_of("input x [N,2]\nloss a = sum(x)\nloss b = mean(x)\n") ==
        "model.og:3:1: a second loss 'b' (the first is 'a')");
  CHECK(error_of("input x [N,2]\nh = x @ x\n") == "model.og:2:7: unexpected character '@'");
  CHECK(error_of(std::string("\xff\xfe\x01 binary", 10)) == "model.og:1:1: unexpected byte 0xff: not a text model file");
  CHECK(error_of("input x [N,2]\nh = tanh(x, name=\"open)\n") == "model.og:2:18: unterminated string");
  // Limits that keep hostile files from overflowing numbers or the stack (found by fuzzing).
  CHECK(error_of("input x [N, 99999999999999999999]\n") ==
        "model.og:1:13: a dimension must be at most 2^53, got the number 1e+20");
  CHECK(error_of("input x [N,2]\nh = softmax(x, axis=99999999999999999999)\n") ==
        "model.og:2:16: softmax: attribute 'axis' must be at most 2^53 in size, got the number 1e+20");
  std::string deep = "input x [N,2]\nh = ";
  for (int i = 0; i < 201; ++i) deep += "(";
  CHECK(error_of(deep + "x\n") == "model.og:2:205: expression nested more than 200 levels deep: name some of its parts");
  std::string chain = "input x [N,2]\nh = x";
  for (int i = 0; i < 201; ++i) chain += " + x";
  CHECK(error_of(chain + "\n") == "model.og:2:807: expression nested more than 200 levels deep: name some of its parts");
  chain = "input x [N,2]\nh = x";
  for (int i = 0; i < 200; ++i) chain += " + x";
  CHECK_NOTHROW(parse_model(chain + "\nloss l = sum(h)\n", "model.og"));
}

TEST_CASE("model format: block errors say which call expanded them") {
  CHECK(error_of("block d(x, n):\n  param W [3, n]\n  return matmul(x, W)\nend\ninput x [N,2]\ny = d(x, 4)\n") ==
        "model.og:3:10: matmul: inner dimensions differ: [N,2] x [3,4] (2 against 3) (in block 'd' at model.og:6:5)");
  CHECK(error_of("block a(x):\n  return b(x)\nend\nblock b(x):\n  return a(x)\nend\ninput x [N,2]\ny = a(x)\n") ==
        "model.og:5:10: block 'a' calls itself: a -> b -> a (in block 'b' at model.og:2:10) (in block 'a' at "
        "model.og:8:5)");
  CHECK(error_of("block a(x):\n  return a(x)\nend\ninput x [N,2]\ny = a(x)\n") ==
        "model.og:2:10: block 'a' calls itself: a -> a (in block 'a' at model.og:5:5)");
  CHECK(error_of("block d(x, n):\n  return relu(x)\nend\ninput x [N,2]\ny = d(x)\n") ==
        "model.og:5:5: block 'd' needs argument 'n'");
  CHECK(error_of("block d(x):\n  return relu(x)\nend\ninput x [N,2]\ny = d(x, m=3)\n") ==
        "model.og:5:10: block 'd' has no parameter 'm' (known: x)");
  CHECK(error_of("block d(x):\n  return relu(x)\nend\ninput x [N,2]\ny = d(x, 3)\n") ==
        "model.og:5:10: block 'd' takes 1 argument, got more");
  CHECK(error_of("block d(x):\n  h = relu(x)\nend\n") == "model.og:1:1: block 'd' has no 'return'");
  CHECK(error_of("block d(x):\n  return relu(x)\n") == "model.og:1:1: block 'd' has no 'end'");
  CHECK(error_of("block d(x):\n  input z [N]\nend\n") == "model.og:2:3: 'input' cannot appear inside a block");
  CHECK(error_of("block d(x):\n  return x\nend\nblock d(y):\n  return y\nend\n") ==
        "model.og:4:1: block 'd' is defined twice (first at model.og:1:1)");
  CHECK(error_of("return x\n") == "model.og:1:1: 'return' outside a block");
}

TEST_CASE("model format: files") {
  CHECK_THROWS_WITH_AS(load_model("/nonexistent/model.og"), "/nonexistent/model.og: no such file", DataError);
}

TEST_CASE("model format: the limits are where the docs say: 200 levels of nesting, 100 000 nodes") {
  auto nested = [](int n, const std::string& open, const std::string& close) {
    std::string e = "x";
    for (int i = 0; i < n; ++i) e = open + e + close;
    return "input x [N, 2]\nh = " + e + "\n";
  };
  // 200 levels pass, 201 do not, whether they are parentheses or calls.
  CHECK_NOTHROW(parse_model(nested(200, "(", ")")));
  CHECK_THROWS_WITH_AS(parse_model(nested(201, "(", ")")),
                       "<model>:2:205: expression nested more than 200 levels deep: name some of its parts", ParseError);
  CHECK_NOTHROW(parse_model(nested(200, "relu(", ")")));
  CHECK_THROWS_AS(parse_model(nested(201, "relu(", ")")), ParseError);
  // 100 000 nodes pass, written out one per line; one more does not.
  auto flat = [](int nodes) {
    std::string t = "input x [N, 2]\nh1 = relu(x)\n";
    for (int i = 2; i < nodes; ++i) t += "h" + std::to_string(i) + " = relu(h" + std::to_string(i - 1) + ")\n";
    return t;
  };
  CHECK(parse_model(flat(100000)).graph.size() == 100000);
  CHECK_THROWS_WITH_AS(parse_model(flat(100001)), "<model>:100001:11: the model expands to more than 100000 nodes",
                       ParseError);
  // From blocks: b0 makes 2^16 - 1 nodes (each level adds two calls of the next); after x
  // and `lines` relus the bound holds or not. A call sure to pass it is refused at the call
  // from the blocks' text, before any of its nodes is made; a block called through a
  // parameter, when the call is reached.
  auto blocks = [](int lines, const std::string& call) {
    std::string t = "input x [N, 2]\n";
    for (int k = 0; k < 15; ++k) t += fmt::format("block b{}(v):\n  return b{}(v) + b{}(v)\nend\n", k, k + 1, k + 1);
    t += "block b15(v):\n  return relu(v)\nend\nblock apply(f, v):\n  return f(v)\nend\nh0 = x\n";
    for (int i = 1; i <= lines; ++i) t += fmt::format("h{} = relu(h{})\n", i, i - 1);
    return t + "t = " + call + "\n";
  };
  CHECK(parse_model(blocks(34463, "b0(x)")).graph.size() == 100000);
  CHECK_THROWS_WITH_AS(parse_model(blocks(34464, "b0(x)")),
                       "<model>:34518:5: the model expands to more than 100000 nodes: block 'b0' makes at least 65535",
                       ParseError);
  CHECK(parse_model(blocks(34463, "apply(b0, x)")).graph.size() == 100000);
  CHECK(error_of(blocks(34464, "apply(b0, x)")) ==
        "model.og:51:10: the model expands to more than 100000 nodes: block 'b0' makes at least 65535 "
        "(in block 'apply' at model.og:34518:5)");
}

TEST_CASE("model format: several outputs, list attributes, i64 inputs, named dimensions, constants") {
  const std::string text =
      "input x [N, 6]\n"
      "input ids [N, T] i64\n"
      "labels y [N]\n"
      "param E [10, 3] normal(0, 0.1)\n"
      "a, b = split(x, sizes=[2, 4])\n"
      "s = split(x, parts=3)\n"
      "e = embedding(ids, E)\n"
      "c = x - reshape(mean(x, axis=-1), shape=[-1, 1])\n"
      "z = concat(a, b, s.2) * 0.5 + 1e-5\n"
      "param W [8, 2] xavier\n"
      "logits = matmul(z, W) / 2\n"
      "loss l = softmax_cross_entropy(logits, y)\n";
  const ModelFile m = parse_model(text, "parts.og");
  const Graph& g = m.graph;
  CHECK(g.node(g.at("a")).kind == NodeKind::part);
  CHECK(g.node(g.at("b")).shape == Shape{N, 4});
  CHECK(g.node(g.at("s.2")).shape == Shape{N, 2});
  CHECK(g.node(g.at("ids")).index);
  CHECK(g.node(g.at("ids")).shape.str() == "[N,T]");
  CHECK(g.node(g.at("e")).shape.str() == "[N,T,3]");
  CHECK(g.node(g.at("logits")).op->name == "scale");
  CHECK(g.node(g.at("logits")).attrs[0].as_float() == 0.5);
  CHECK(g.node(g.at("z")).attrs[1].as_float() == 1e-5);
  check_round_trip(g, "y", "parts.og");
  const std::string printed = print_model(g, {.labels = "y"});
  CHECK(printed.find("a, b = split(x, sizes=[2, 4])\n") != std::string::npos);
  CHECK(printed.find("s = split(x, parts=3)\n") != std::string::npos);
  CHECK(printed.find("input ids [N, T] i64\n") != std::string::npos);
  // Lists of reals, and 1 - x.
  const ModelFile r = parse_model("input x [N, 2]\nh = 1 - x\nloss l = sum(h)\n", "r.og");
  CHECK(r.graph.node(r.graph.at("h")).attrs[0].as_float() == -1.0);
  CHECK(r.graph.node(r.graph.at("h")).attrs[1].as_float() == 1.0);
}

TEST_CASE("model format: errors of the new syntax") {
  CHECK(error_of("input x [N, 4]\na, b = relu(x)\n") ==
        "model.og:2:1: 2 names on the left of '=' need an op with 2 outputs; the right side gives one output (relu_1 of "
        "relu)");
  CHECK(error_of("input x [N, 4]\na, b = split(x, parts=4)\n") ==
        "model.og:2:1: 2 names on the left of '=' need an op with 2 outputs; the right side gives 4 outputs");
  CHECK(error_of("input x [N, 4]\na, a = split(x, parts=2)\n") == "model.og:2:4: 'a' is named twice on the left of '='");
  CHECK(error_of("input x [N, 4] f16\n") ==
        "model.og:1:16: unknown element type 'f16': an input holds real values (the default) or i64 indices (write i64)");
  CHECK(error_of("input x [N, 4]\nh = softmax(x, 1)\n") ==
        "model.og:2:16: softmax: expected a value (a node), got the number 1: attributes are given by name, e.g. axis=1 "
        "(softmax takes softmax(x, axis=-1))");
  CHECK(error_of("input x [N, 4]\nh = split(x, sizes=[2, x])\n") ==
        "model.og:2:24: a list holds numbers, got node 'x'");
  CHECK(error_of("input x [N, 4]\nh = relu(x, act=elu)\n").find("model.og:2:5: relu: unknown attribute 'act'") == 0);
  const std::string elu = error_of("input x [N, 4]\nh = swishy(x)\n");
  CHECK(elu.rfind("model.og:2:5: unknown op 'swishy' (known: abs, add, ", 0) == 0);
  CHECK(elu.find("): if an op of that name comes from a plugin, load it (opgraph --plugin FILE.so; load_plugin in C++)") !=
        std::string::npos);
  CHECK(error_of("input x [N, 4]\nparam W [T, 4]\n") ==
        "model.og:2:1: param 'W': shape [T,4] has the symbolic dimension T (parameters need fixed sizes)");
  CHECK(error_of("input x [N, 4]\nh = 2 / x\n") ==
        "model.og:2:7: the number 2 / node 'x': dividing a number by a node needs div(a, b) with both as nodes");
}
