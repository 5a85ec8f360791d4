// Plots are well-formed SVG with the expected series; dumps hold the graph.
#include <doctest/doctest.h>

#include <zlib.h>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/dump.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/plot.hpp>
#include <opgraph/frontends/train.hpp>

#include "../check_formats.hpp"

using namespace opgraph;

namespace {
int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("plots: line charts are well-formed SVG with one polyline per series") {
  const std::string svg = line_chart("Loss <train & val>", "epoch", "loss",
                                     {{"train", {1, 2, 3}, {0.9, 0.5, 0.3}}, {"validation", {1, 2, 3}, {1.0, NAN, 0.4}}});
  CHECK(test::xml_problem(svg) == "");
  CHECK(count(svg, "<polyline class=\"series\"") == 2);
  CHECK(svg.find("data-name=\"train\"") != std::string::npos);
  CHECK(svg.find("data-name=\"validation\"") != std::string::npos);
  CHECK(svg.find("Loss &lt;train &amp; val&gt;") != std::string::npos);
  CHECK(test::xml_problem("<svg><g></svg>") != "");  // the checker itself catches a bad file
}

TEST_CASE("plots: decision regions and misclassified images") {
  Model m;
  auto x = nn::input(m.graph, "x", {N, 2});
  auto y = nn::input(m.graph, "y", {N});
  m.graph.set_loss(nn::softmax_cross_entropy(nn::dense(nn::tanh(nn::dense(x, 8, "h")), 2, "o"), y));
  m.params = m.graph.init_params(1);
  const Dataset data = make_moons(100, 0.1, 2);
  Trainer t(m);
  auto adam = make_adam({.lr = 0.05});
  t.fit(data, *adam, {.epochs = 30, .batch = 20});
  const std::string regions = decision_regions(t, data, "moons", 40);
  CHECK(test::xml_problem(regions) == "");
  CHECK(count(regions, "<circle class=\"point") == 100);
  CHECK(count(regions, "<image class=\"regions\"") == 1);

  Dataset images;
  images.name = "tiny";
  images.features = Tensor({3, 4});
  for (int i = 0; i < 12; ++i) images.features.set(i, i % 5);
  images.labels = Tensor::from({3}, {0, 1, 1});
  images.sample_shape = Shape{2, 2};
  const std::string grid = misclassified_grid(images, {0, 0, 1}, "tiny");
  CHECK(test::xml_problem(grid) == "");
  CHECK(count(grid, "<image class=\"sample\"") == 1);
  CHECK(grid.find("(1 of 3 misclassified)") != std::string::npos);
}

TEST_CASE("plots: PNG chunks carry valid CRCs") {
  const std::string png = encode_png(2, 2, 1, {0, 64, 128, 255});
  CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  std::size_t pos = 8;
  int chunks = 0;
  while (pos < png.size()) {
    const auto be = [&](std::size_t p) {
      return (static_cast<std::uint32_t>(static_cast<unsigned char>(png[p])) << 24) |
             (static_cast<std::uint32_t>(static_cast<unsigned char>(png[p + 1])) << 16) |
             (static_cast<std::uint32_t>(static_cast<unsigned char>(png[p + 2])) << 8) |
             static_cast<unsigned char>(png[p + 3]);
    };
    const std::uint32_t length = be(pos);
    const std::uint32_t crc = be(pos + 8 + length);
    CHECK(crc == crc32(0L, reinterpret_cast<const Bytef*>(png.data() + pos + 4), length + 4));
    pos += 12 + length;
    ++chunks;
  }
  CHECK(chunks == 3);
  CHECK(pos == png.size());
}

TEST_CASE("dump: DOT, JSON and annotated .og show nodes, shapes and the backward pass") {
  const ModelFile m = parse_model("input x [N, 2]\nlabels y [N, 2]\nparam W [2, 2]\nh = tanh(matmul(x, W))\n"
                                  "s = h + h * h\nloss l = mse(s, y)\n",
                                  "fan.og");
  const DumpOptions o{.batch = 4, .backward = true, .labels = "y"};
  const std::string dot = dump_dot(m.graph, o);
  CHECK(dot.rfind("digraph opgraph {", 0) == 0);
  CHECK(dot.find("\"h\" [shape=box") != std::string::npos);
  CHECK(dot.find("label=\"W\\nparam [2,2]\\nxavier\"") != std::string::npos);
  CHECK(dot.find("\"x\" -> \"matmul_1\" [label=\"[4,2]\"]") != std::string::npos);
  // h fans out: its gradient is summed from three vjps before tanh's vjp reads it.
  CHECK(dot.find("\"sum:h\" [shape=circle, style=filled, fillcolor=\"#fde68a\", label=\"+\\n3\"]") != std::string::npos);
  CHECK(dot.find("\"sum:h\" -> \"vjp:h\" [color=\"#b91c1c\", fontcolor=\"#991b1b\", label=\"[4,2]\"]") !=
        std::string::npos);
  CHECK(dot.find("label=\"vjp tanh\\nh\\nreads h\"") != std::string::npos);  // tanh saves its output
  CHECK(dot.find("\"vjp:matmul_1\" -> \"d:W\"") != std::string::npos);      // the parameter's gradient

  std::string error;
  const test::Json j = test::parse_json(dump_json(m.graph, o), error);
  REQUIRE(error == "");
  CHECK(j["loss"].string == "l");
  CHECK(j["batch"].number == 4);
  CHECK(j["nodes"].items.size() == 8);
  CHECK(j["nodes"].items[1]["kind"].string == "labels");
  CHECK(j["edges"].items.size() == 9);
  CHECK(j["nodes"].items[3]["origin"].string == "fan.og:4:10");  // the inner matmul
  const auto& back = j["backward"].items;
  REQUIRE(back.size() == 5);
  CHECK(back[0]["node"].string == "l");
  CHECK(back[4]["node"].string == "matmul_1");
  CHECK(back[4]["writes"].items[0].string == "W");

  CHECK(dump_og(m.graph, {.batch = 4}).find("s = add(h, mul_1)  # [4,2]") != std::string::npos);
  CHECK_THROWS_WITH_AS(dump_dot(parse_model("input x [N, 2]\nh = relu(x)\n").graph, {.backward = true}),
                       "dump: the model has no loss, so there is no backward pass to show", GraphError);
}

TEST_CASE("dump: a vjp done inside another node's is drawn dashed and names it") {
  // LeNet's layer: the relu's vjp done by the pool's, the pool's and the bias's by the
  // convolution's (image by image); the convolution's own vjp drawn plain.
  const ModelFile m = parse_model(
      "input x [N, 1, 8, 8]\nlabels y [N]\nparam K [2, 1, 3, 3]\nparam b [2]\nparam V [32, 3]\n"
      "c = conv2d(x, K, padding=1)\nr = relu(bias_add(c, b, axis=1))\np = max_pool2d(r, kernel=2)\n"
      "loss l = softmax_cross_entropy(matmul(reshape(p, shape=[-1, 32]), V), y)\n",
      "cnn.og");
  const DumpOptions o{.batch = 4, .backward = true, .labels = "y"};
  const std::string dot = dump_dot(m.graph, o);
  CHECK(dot.find("\"vjp:p\" [shape=box, style=\"rounded,filled,dashed\", fillcolor=\"#fecaca\", label=\"vjp "
                 "max_pool2d\\np\\ndone in c's vjp\"]") != std::string::npos);
  // The relu reads nothing of its own: the pool's vjp works from its winners.
  CHECK(dot.find("label=\"vjp relu\\nr\\ndone in p's vjp\"") != std::string::npos);
  CHECK(dot.find("\"vjp:c\" [shape=box, style=\"rounded,filled\", fillcolor=\"#fecaca\", label=\"vjp conv2d\\nc\\n") !=
        std::string::npos);
  std::string error;
  const test::Json j = test::parse_json(dump_json(m.graph, o), error);
  REQUIRE(error == "");
  int elsewhere = 0;
  for (const auto& step : j["backward"].items) {
    const std::string node = step["node"].string, by = step["done_by"].string;
    CAPTURE(node);
    if (node == "p" || node.rfind("bias_add", 0) == 0) {
      CHECK(by == "c");
      ++elsewhere;
    } else if (node == "r") {
      CHECK(by == "p");
      ++elsewhere;
    } else {
      CHECK(by == node);
    }
  }
  CHECK(elsewhere == 3);
}

TEST_CASE("dump: block instances as clusters, collapsed on request, identities hidden, gradient shapes keep N") {
  const ModelFile m = parse_model(
      "block dense(x, in, out, act=relu):\n  param W [in, out]\n  param b [out]\n  return act(bias_add(matmul(x, W), b))\n"
      "end\ninput x [N, 3]\nlabels y [N]\nh1 = dense(x, 3, 4)\nh2 = dense(h1, 4, 4)\n"
      "output logits = dense(h1 + h2, 4, 2, identity)\nloss l = softmax_cross_entropy(logits, y)\n",
      "blocks.og");
  const std::string plain = dump_dot(m.graph, {.backward = true});
  CHECK(plain.find("subgraph \"cluster_h1\" {") != std::string::npos);
  CHECK(plain.find("\"h1.W\" [shape=ellipse") != std::string::npos);
  CHECK(plain.find("\"logits\" [shape=box") != std::string::npos);  // an identity, drawn
  CHECK(plain.find("label=\"[N,4]\"") != std::string::npos);          // gradients keep N
  const std::string collapsed = dump_dot(m.graph, {.backward = true, .collapse = true, .hide_identity = true});
  CHECK(collapsed.find("\"block:h1\" [shape=box3d, style=filled, fillcolor=\"#e0e7ff\", label=\"h1\\nblock, 5 nodes\\n[N,4]\"]") !=
        std::string::npos);
  CHECK(collapsed.find("\"h1.W\" [") == std::string::npos);
  CHECK(collapsed.find("\"block:h1\" -> \"block:h2\" [label=\"[N,4]\"]") != std::string::npos);
  CHECK(collapsed.find("\"vjp:block:h2\"") != std::string::npos);
  CHECK(collapsed.find("vjp identity") == std::string::npos);
  // Without blocks, hiding identities joins their input to their consumers.
  const ModelFile flat = parse_model("input x [N, 2]\nh = identity(x)\nloss l = sum(relu(h))\n", "flat.og");
  const std::string hidden = dump_dot(flat.graph, {.hide_identity = true});
  CHECK(hidden.find("\"x\" -> \"relu_1\"") != std::string::npos);
  CHECK(hidden.find("\"h\" [") == std::string::npos);
}
