// examples/models/blocks.og, included by a model: each block against the fused op it
// spells out (layer_norm, attention, a whole transformer block written with them) or the
// formula it implements (the GRU cell, PyTorch's GRUCell), in f64. Also the include
// statement's errors and a checkpoint's self-contained text.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>

#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>

#include "../test_files.hpp"

using namespace opgraph;

namespace {

const std::string kBlocks = std::string(OPGRAPH_SOURCE_DIR) + "/examples/models/blocks.og";

double worst_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double w = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(a.at(i) - b.at(i));
    w = std::isnan(d) ? d : std::max(w, d);
  }
  return w;
}

}  // namespace

TEST_CASE("blocks: each block of blocks.og equals its fused op or formula in f64") {
  const std::string model = "include \"" + kBlocks + R"("
input x [N, 6, 8]
input s [N, 3]
ln = layer_norm_block(x, 8)
ln_fused = layer_norm(x, ln.gain, ln.bias)

q = reshape(x, shape=[0, 0, 2, 4])
att = attend(q, q * 0.5, q + 1, 0.5)
att_fused = attention(q, q * 0.5, q + 1)
causal = attend_causal(q, q * 0.5, q + 1, 0.5)
causal_fused = attention(q, q * 0.5, q + 1, causal=true)

tb = transformer_block(x, 8, 2, 4, 0.5, 16)
h1 = layer_norm(x, tb.layer_norm_block_1.gain, tb.layer_norm_block_1.bias)
hq = transpose(reshape(matmul(h1, tb.self_attention_1.Wq), shape=[0, 0, 2, 4]), perm=[0, 2, 1, 3])
hk = transpose(reshape(matmul(h1, tb.self_attention_1.Wk), shape=[0, 0, 2, 4]), perm=[0, 2, 1, 3])
hv = transpose(reshape(matmul(h1, tb.self_attention_1.Wv), shape=[0, 0, 2, 4]), perm=[0, 2, 1, 3])
ha = reshape(transpose(attention(hq, hk, hv), perm=[0, 2, 1, 3]), shape=[0, 0, 8])
h = x + matmul(ha, tb.self_attention_1.Wo)
h2 = layer_norm(h, tb.layer_norm_block_2.gain, tb.layer_norm_block_2.bias)
tb_fused = h + matmul(gelu(matmul(h2, tb.W1) + tb.c1), tb.W2) + tb.c2

g = gru_cell(flatten(x), s, 48, 3)
)";
  ModelFile m = parse_model(model, "blocks_test.og");
  for (const char* out : {"ln", "ln_fused", "att", "att_fused", "causal", "causal_fused", "tb", "tb_fused", "g"})
    m.graph.add_output(m.graph.at(out));
  Params params = m.graph.init_params(7, DType::f64);
  // Gains, biases and the GRU's biases away from their constant initial values.
  Rng rng(3);
  for (const auto& [name, t] : params)
    if (name.find("gain") != std::string::npos || name.find("bias") != std::string::npos || name.starts_with("g.b") ||
        name.find(".c") != std::string::npos)
      for (std::int64_t i = 0; i < t.numel(); ++i) params.at(name).set(i, rng.uniform(-1.0, 1.0));
  Plan plan(m.graph, params, {.batch = 5, .backward = false});
  Tensor x({5, 6, 8}, DType::f64), s({5, 3}, DType::f64);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.set(i, rng.uniform(-2.0, 2.0));
  for (std::int64_t i = 0; i < s.numel(); ++i) s.set(i, rng.uniform(-1.0, 1.0));
  plan.set_input("x", x);
  plan.set_input("s", s);
  plan.forward();
  CHECK(worst_difference(plan.value("ln"), plan.value("ln_fused")) < 1e-12);
  CHECK(worst_difference(plan.value("att"), plan.value("att_fused")) < 1e-12);
  CHECK(worst_difference(plan.value("causal"), plan.value("causal_fused")) < 1e-12);
  CHECK(worst_difference(plan.value("tb"), plan.value("tb_fused")) < 1e-12);

  // GRU: z = σ(x Wz + h Uz + bz), r = σ(x Wr + h Ur + br), n = tanh(x Wn + bn + r (h Un + bhn)),
  // h' = (1 - z) n + z h, element by element.
  const Tensor g = plan.value("g");
  auto p = [&](const char* n) { return params.at(std::string("g.") + n); };
  const Tensor flat = x.reshape({5, 48});
  for (int row = 0; row < 5; ++row)
    for (int j = 0; j < 3; ++j) {
      auto affine = [&](const char* W, const char* U, double bias, double* hu) {
        double a = 0, b = 0;
        for (int i = 0; i < 48; ++i) a += flat.at({row, i}) * p(W).at({i, j});
        for (int i = 0; i < 3; ++i) b += s.at({row, i}) * p(U).at({i, j});
        *hu = b;
        return a + bias;
      };
      double hz, hr, hn;
      const double z = 1 / (1 + std::exp(-(affine("Wz", "Uz", p("bz").at(j), &hz) + hz)));
      const double r = 1 / (1 + std::exp(-(affine("Wr", "Ur", p("br").at(j), &hr) + hr)));
      const double xn = affine("Wn", "Un", p("bn").at(j), &hn);
      const double n = std::tanh(xn + r * (hn + p("bhn").at(j)));
      CHECK(g.at({row, j}) == doctest::Approx((1 - z) * n + z * s.at({row, j})).epsilon(1e-12));
    }
}

TEST_CASE("blocks: include errors name the file, and checkpoints keep the included blocks") {
  test::ScratchDir dir("blocks");
  const std::string lib = dir.path() + "/lib.og", model = dir.path() + "/model.og";
  std::ofstream(lib) << "block twice(x):\n  return x * 2\nend\n";
  std::ofstream(model) << "include \"lib.og\"\ninput x [N, 2]\noutput y = twice(x)\n";
  const ModelFile m = load_model(model);
  CHECK(m.graph.find("y"));
  // The text a checkpoint keeps builds the same model without lib.og.
  CHECK(m.text.find("# (included below) include \"lib.og\"") != std::string::npos);
  CHECK(same_graph(parse_model(m.text, "checkpoint").graph, m.graph));
  // Errors inside an included file point into it.
  std::ofstream(lib) << "block twice(x):\n  return relu(x, slope=2)\nend\n";
  CHECK_THROWS_WITH(load_model(model), (lib + ":2:10: relu: unknown attribute 'slope' (it takes none) (in block "
                                              "'twice' at " + model + ":3:12)").c_str());
  std::ofstream(lib) << "input z [N, 2]\n";
  CHECK_THROWS_WITH(load_model(model), (lib + ":1:1: an included file defines blocks only (and includes others), got "
                                              "'input': move the statement into the model").c_str());
  std::ofstream(lib) << "include \"model.og\"\n";
  const std::string real = std::filesystem::weakly_canonical(dir.path()).string();
  CHECK_THROWS_WITH(load_model(model), (lib + ":1:9: an include cycle: " + real + "/model.og -> " + real +
                                        "/lib.og -> " + real + "/model.og").c_str());
  std::ofstream(model) << "include \"nowhere.og\"\n";
  std::string missing;
  try {
    load_model(model);
  } catch (const std::exception& e) {
    missing = e.what();
  }
  CHECK(missing.rfind(model + ":1:9: cannot include \"nowhere.og\": ", 0) == 0);
}
