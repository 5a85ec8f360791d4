// Epilogues: a bias_add and activation (relu, logistic, tanh) after a matmul or conv2d run
// inside it (planning::fuse_epilogues),
// only where nothing else reads the values between them, to the bits of the unfused plan;
// and a relu's vjp left to a max_pool2d after it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/plan/passes.hpp>
#include <opgraph/graph/random.hpp>

using namespace opgraph;

namespace {

/// Every value a user reads after a step: the loss, the outputs, every parameter's gradient.
struct Run {
  std::vector<Tensor> values;
  PlanStats stats;
  std::vector<NodeProfile> profile;
};

Run run(const ModelFile& m, bool fuse, int threads, std::vector<std::string> keep = {}, bool profile = false,
        std::int64_t batch = 37) {
  ThreadCount scope(threads);
  Params params = m.graph.init_params(3);
  Plan plan(m.graph, params, {.batch = batch, .keep = std::move(keep), .profile = profile, .fuse = fuse});
  for (NodeId id : m.graph.inputs()) {
    const Node& in = m.graph.node(id);
    Tensor t(in.shape.bind(batch));
    Rng rng(id + 1);
    for (std::int64_t i = 0; i < t.numel(); ++i)
      t.set(i, in.name == "y" ? static_cast<double>(i % 5) : rng.uniform(-1, 1));
    plan.set_input(in.name, t);
  }
  Run r;
  for (int step = 0; step < 2; ++step) {
    plan.forward();
    plan.backward();
  }
  r.values.push_back(Tensor::from({1}, {plan.loss()}));
  for (NodeId id : m.graph.outputs()) r.values.push_back(plan.value(m.graph.node(id).name));
  for (const auto& p : plan.parameters()) r.values.push_back(p.grad);
  r.stats = plan.stats();
  if (profile) r.profile = plan.profile();
  return r;
}

bool same_tensor_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

/// Fused and unfused plans, at 1 and 2 threads: the same bits everywhere; `fused` forward
/// steps skipped, and `absorbed` vjps left to another node's (a relu's to the node after
/// it, a pool's and a bias's run per item inside the convolution before them).
void check_fuses(const std::string& text, int fused, std::vector<std::string> keep = {}, int absorbed = 0,
                 std::int64_t batch = 37) {
  CAPTURE(text);
  const ModelFile m = parse_model(text);
  const Run plain = run(m, false, 1, keep, false, batch);
  CHECK(plain.stats.fused == 0);
  CHECK(plain.stats.vjps_absorbed == 0);
  for (int threads : {1, 2}) {
    const Run f = run(m, true, threads, keep, false, batch);
    CAPTURE(threads);
    CHECK(f.stats.fused == fused);
    CHECK(f.stats.vjps_absorbed == absorbed);
    CHECK(f.stats.backward_steps == plain.stats.backward_steps - absorbed);
    REQUIRE(f.values.size() == plain.values.size());
    for (std::size_t i = 0; i < f.values.size(); ++i) {
      CAPTURE(i);
      CHECK(same_tensor_bits(f.values[i], plain.values[i]));
    }
  }
}

/// A convolution on each of its paths: the direct one with the positions in the lanes (6
/// channels, "same"), with the channels in the lanes (16 channels, 5x5 valid: LeNet's
/// second), im2col and the GEMM (stride 2), groups.
constexpr const char* kConvPaths[] = {"conv2d(x, K, padding=2)", "conv2d(x, K, padding=0)",
                                      "conv2d(x, K, stride=2, padding=1)", "conv2d(x, K, groups=2, padding=same)"};
/// The declarations a model around `conv` (one of kConvPaths) needs: x, y, K, b, V.
std::string conv_head(const std::string& conv) {
  const std::string cout = conv.find("padding=0") != std::string::npos ? "16" : "6";
  return "input x [N, 4, 12, 12]\nlabels y [N]\nparam K [" + cout + ", " +
         (conv.find("groups") != std::string::npos ? "2" : "4") + ", 5, 5] normal(0, 0.2)\nparam b [" + cout +
         "] normal(0, 0.3)\nparam V [" + cout + ", 5] normal(0, 0.3)\n";
}

}  // namespace

TEST_CASE("fuse: bias and ReLU after a product run inside it, to the same bits, only where nothing else reads between") {
  const std::string head = "input x [N, 24]\nlabels y [N]\nparam W [24, 40] normal(0, 0.3)\nparam b [40] normal(0, 0.3)\n"
                           "param V [40, 5] normal(0, 0.3)\nparam c [5] normal(0, 0.3)\n";
  const std::string tail = "output logits = bias_add(matmul(h, V), c)\nloss xent = softmax_cross_entropy(logits, y)\n";
  // A dense layer with its ReLU, and the head's bias (its output read by the user). The
  // ReLU's vjp goes to the head's product, which alone reads its output (the next test).
  check_fuses(head + "h = relu(bias_add(matmul(x, W), b))\n" + tail, 3, {}, 3);
  // The bias as an add of a vector (x·W + b), its vjp too left to the product's (the bias's
  // gradient summed as dW packs dy: the same bits as the add's own); not an add of a
  // matrix, nor b + x·W (the add writes over its first input, the bias).
  check_fuses(head + "h = relu(matmul(x, W) + b)\n" + tail, 3, {}, 3);
  check_fuses(head + "input z [N, 40]\nh = relu(matmul(x, W) + z)\n" + tail, 1, {}, 2);
  check_fuses(head + "h = relu(b + matmul(x, W))\n" + tail, 1, {}, 2);
  // ReLU without a bias; a bias without an activation.
  check_fuses(head + "h = relu(matmul(x, W))\n" + tail, 2, {}, 2);
  check_fuses(head + "h = exp(bias_add(matmul(x, W), b))\n" + tail, 2, {}, 2);
  // The other activations (OpBuilder::activation): logistic and tanh, with and without a
  // bias; a second activation after the first runs on its own.
  check_fuses(head + "h = logistic(bias_add(matmul(x, W), b))\n" + tail, 3, {}, 3);
  check_fuses(head + "h = tanh(matmul(x, W) + b)\n" + tail, 3, {}, 3);
  check_fuses(head + "h = logistic(matmul(x, W))\n" + tail, 2, {}, 2);
  check_fuses(head + "h = relu(tanh(bias_add(matmul(x, W), b)))\n" + tail, 3, {}, 3);
  // Wide enough for the blocked path's full tiles (activated as they are stored), and
  // ragged ones, over several depth blocks.
  check_fuses("input x [N, 700]\nlabels y [N]\nparam W [700, 100] normal(0, 0.05)\nparam b [100] normal(0, 0.3)\n"
              "param V [100, 5] normal(0, 0.3)\nh = logistic(bias_add(matmul(x, W), b))\n"
              "loss xent = softmax_cross_entropy(matmul(h, V), y)\n",
              2, {}, 2);
  // The biased value read twice: the bias runs inside, the ReLU on its own.
  check_fuses(head + "z = bias_add(matmul(x, W), b)\nh = relu(z) + z\n" + tail, 2, {}, 2);
  // The product read twice: neither.
  check_fuses(head + "p = matmul(x, W)\nh = relu(bias_add(p, b)) + p\n" + tail, 1, {}, 1);
  // The product kept for the user: neither.
  check_fuses(head + "p = matmul(x, W)\nh = relu(bias_add(p, b))\n" + tail, 1, {"p"}, 2);
  // A bias computed in the product's wave (it must be there when the product runs): the
  // ReLU alone cannot follow the bias_add it does not read, so nothing.
  check_fuses(head + "h = relu(bias_add(matmul(x, W), tanh(b)))\n" + tail, 1, {}, 2);
  // A bias along another axis: no (only a dense layer's last-axis bias is an epilogue).
  check_fuses("input x [N, 6, 8]\nlabels y [N]\nparam W [8, 8] normal(0, 0.3)\nparam b [6] normal(0, 0.3)\n"
              "param V [48, 5] normal(0, 0.3)\n"
              "h = relu(bias_add(matmul(x, W), b, axis=1))\n"
              "loss xent = softmax_cross_entropy(matmul(reshape(h, shape=[-1, 48]), V), y)\n",
              0);
  // Batched: [N, 6, 8] x [8, 8], the bias along the last axis of every product.
  check_fuses("input x [N, 6, 8]\nlabels y [N]\nparam W [8, 8] normal(0, 0.3)\nparam b [8] normal(0, 0.3)\n"
              "param V [48, 5] normal(0, 0.3)\n"
              "h = relu(bias_add(matmul(x, W), b))\n"
              "loss xent = softmax_cross_entropy(matmul(reshape(h, shape=[-1, 48]), V), y)\n",
              2, {}, 1);
}

TEST_CASE("fuse: a convolution runs the bias per channel and activation after it, on every path, to the same bits") {
  // Every path (kConvPaths); then a bias along the wrong axis (the last), which stays a
  // node of its own.
  for (const char* conv : kConvPaths) {
    const std::string c = conv, head = conv_head(c);
    const std::string tail = "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n";
    check_fuses(head + "h = relu(bias_add(" + c + ", b, axis=1))\n" + tail, 2);
    check_fuses(head + "h = relu(" + c + ")\n" + tail, 1);
    check_fuses(head + "h = tanh(bias_add(" + c + ", b, axis=1))\n" + tail, 2);
    check_fuses(head + "h = logistic(" + c + ")\n" + tail, 1);
  }
  check_fuses("input x [N, 4, 6, 6]\nlabels y [N]\nparam K [6, 4, 3, 3] normal(0, 0.2)\nparam b [6] normal(0, 0.3)\n"
              "param V [6, 5] normal(0, 0.3)\nh = relu(bias_add(conv2d(x, K, padding=1), b, axis=-1))\n"
              "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n",
              0);
}

TEST_CASE("fuse: profiles name the node a fused one runs in, and anomaly checks run every node alone") {
  const ModelFile m = parse_model(
      "input x [N, 24]\nlabels y [N]\nparam W [24, 40]\nparam b [40]\nparam V [40, 5]\nparam c [5]\n"
      "h = relu(bias_add(matmul(x, W), b))\noutput logits = bias_add(matmul(h, V), c)\n"
      "loss xent = softmax_cross_entropy(logits, y)\n");
  const Run r = run(m, true, 1, {}, true);
  int fused = 0;
  for (const auto& n : r.profile) {
    CAPTURE(n.name);
    if (n.op == "bias_add" || n.op == "relu") {
      CHECK(n.forward_calls == 0);
      CHECK(n.fused_into == (n.name == "logits" ? "matmul_2" : "matmul_1"));
      // None of their vjps runs: the relu's is the head's product's, and each bias's
      // gradient its own product's.
      CHECK(n.backward_calls == 0);
      CHECK(n.vjp_absorbed_by == (n.op == "relu" || n.name == "logits" ? "matmul_2" : "matmul_1"));
      ++fused;
    } else {
      CHECK(n.forward_calls == 2);
      CHECK(n.fused_into.empty());
    }
  }
  CHECK(fused == 3);
  Params params = m.graph.init_params(3);
  Plan checked(m.graph, params, {.batch = 4, .detect_anomaly = true});
  CHECK(checked.stats().fused == 0);
}

TEST_CASE("fuse: an activation before a product leaves its vjp to the product's, to the same bits, only where it alone reads it") {
  const std::string head = "input x [N, 24]\nlabels y [N]\nparam W [24, 40] normal(0, 0.3)\nparam b [40] normal(0, 0.3)\n"
                           "param V [40, 5] normal(0, 0.3)\nparam c [5] normal(0, 0.3)\n";
  const std::string tail = "output logits = bias_add(matmul(h, V), c)\nloss xent = softmax_cross_entropy(logits, y)\n";
  // Each activation of a dense layer, read by the next layer's product alone: its vjp is
  // the product's input gradient taken through it (the small path: on all of dh after it).
  for (const char* act : {"logistic", "tanh", "relu"}) check_fuses(head + "h = " + act + "(bias_add(matmul(x, W), b))\n" + tail, 3, {}, 3);
  // Wide enough for the blocked path (dh = dz·Vᵀ is 37x256x64: full 12x32 tiles taken
  // through the activation as they are stored, and ragged ones).
  check_fuses("input x [N, 30]\nlabels y [N]\nparam W [30, 256] normal(0, 0.2)\nparam V [256, 64] normal(0, 0.1)\n"
              "h = logistic(matmul(x, W))\nloss xent = softmax_cross_entropy(matmul(h, V), y)\n",
              1, {}, 1);
  // Batched products: each sequence's own matrix (a pass over da after the products), and
  // one matrix broadcast over the batch (its gradient summed over it first).
  check_fuses("input x [N, 6, 8]\nlabels y [N]\nparam W [8, 8] normal(0, 0.3)\nparam V [36, 5] normal(0, 0.3)\n"
              "h = tanh(matmul(x, W))\nq = matmul(h, x, trans_b=true)\n"
              "loss xent = softmax_cross_entropy(matmul(reshape(q, shape=[-1, 36]), V), y)\n",
              1, {}, 1);
  check_fuses("input x [N, 8, 5]\nlabels y [N]\nparam P [6, 8] normal(0, 0.5)\nparam V [30, 5] normal(0, 0.3)\n"
              "h = logistic(P + P)\nq = matmul(h, x)\n"
              "loss xent = softmax_cross_entropy(matmul(reshape(q, shape=[-1, 30]), V), y)\n",
              0, {}, 1);
  // Not absorbed: the activation's output read by another node too, or as the product's
  // second operand; an activation of a parameter (its input gradient is the parameter's
  // own, not written over the activation's output gradient); nor a function that is not
  // an activation (exp).
  check_fuses(head + "h0 = logistic(bias_add(matmul(x, W), b))\nh = h0 + h0\n" + tail, 3, {}, 2);
  check_fuses(head + "h = tanh(bias_add(matmul(x, W), b))\noutput logits = bias_add(matmul(h, V), c) + matmul(h, V)\n"
                     "loss xent = softmax_cross_entropy(logits, y)\n",
              3, {}, 2);
  check_fuses("input x [N, 24]\nlabels y [N]\nparam W [24, 5] normal(0, 0.3)\nparam U [5, 24] normal(0, 0.3)\n"
              "h = logistic(U + U)\nloss xent = softmax_cross_entropy(matmul(x, matmul(W, h)), y)\n",
              0);
  check_fuses(head + "h = tanh(W)\nloss xent = softmax_cross_entropy(matmul(matmul(x, h), V), y)\n", 0);
  check_fuses(head + "h = exp(matmul(x, W))\n" + tail, 1, {}, 1);
}

TEST_CASE("fuse: a dense layer's bias gradient is its product's vjp's work, to the same bits, only where the bias_add alone writes it") {
  const std::string head = "input x [N, 24]\nlabels y [N]\nparam W [24, 40] normal(0, 0.3)\nparam b [40] normal(0, 0.3)\n"
                           "param V [40, 5] normal(0, 0.3)\n";
  const std::string tail = "loss xent = softmax_cross_entropy(matmul(h, V), y)\n";
  // The bias's gradient taken from dy's rows as dW = xᵀ·dy packs them (the blocked path
  // packing B by rows: 1100 rows, blocks of 256 cut by depth blocks; 64 columns), then a
  // product small enough for a pass of its own; with the activation's vjp absorbed too.
  check_fuses("input x [N, 500]\nlabels y [N]\nparam W [500, 64] normal(0, 0.05)\nparam b [64] normal(0, 0.3)\n"
              "param V [64, 5] normal(0, 0.3)\nh = tanh(bias_add(matmul(x, W), b))\n" + tail,
              2, {}, 2, 1100);
  check_fuses(head + "h = bias_add(matmul(x, W), b)\n" + tail, 1, {}, 1);
  // W stored transposed (dW = dyᵀ·x: dy is no B), and a batched product (one GEMM per
  // sequence): the sums in a pass of their own, absorbed all the same.
  check_fuses(head + "param Wt [40, 24] normal(0, 0.3)\nh = bias_add(matmul(x, Wt, trans_b=true), b)\n" + tail, 1, {},
              1);
  check_fuses("input x [N, 6, 8]\nlabels y [N]\nparam W [8, 8] normal(0, 0.3)\nparam b [6] normal(0, 0.3)\n"
              "param V [36, 5] normal(0, 0.3)\nq = bias_add(matmul(tanh(matmul(x, W)), x, trans_b=true), b)\n"
              "loss xent = softmax_cross_entropy(matmul(reshape(q, shape=[-1, 36]), V), y)\n",
              2, {}, 2);
  // Not absorbed: one bias in two layers (its gradient a sum of two vjps'), or a product
  // whose vjp does not run (nothing before it needs a gradient).
  check_fuses(head + "param U [24, 40] normal(0, 0.3)\n"
                     "h = bias_add(matmul(x, W), b) + tanh(bias_add(matmul(x, U), b))\n" + tail,
              3, {}, 0);
  check_fuses(head + "input z [24, 40]\nh = bias_add(matmul(x, z), b)\n" + tail, 1, {}, 0);
}

TEST_CASE("fuse: a relu before max_pool2d leaves its vjp to the pool's, to the same bits, only where the pool alone reads it") {
  const std::string head = "input x [N, 3, 10, 10]\nlabels y [N]\nparam K [4, 3, 3, 3] normal(0, 0.4)\n"
                           "param b [4] normal(0, 0.3)\nparam V [4, 5] normal(0, 0.3)\n";
  const std::string tail = "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n";
  const std::string layer = "relu(bias_add(conv2d(x, K, padding=1), b, axis=1))";
  // The 2x2 pool (a vector path) and an overlapping, padded one (the general path, windows
  // sharing winners): the relu's vjp absorbed, the bias and relu forward in the product
  // (and the pool per item in it, both passes, with the bias's vjp: three of each).
  check_fuses(head + "h = max_pool2d(" + layer + ", kernel=2)\n" + tail, 3, {}, 3);
  check_fuses(head + "h = max_pool2d(" + layer + ", kernel=3, stride=2, padding=1)\n" + tail, 3, {}, 3);
  // A relu of its own (after a tanh, which the convolution runs): absorbed all the same.
  check_fuses(head + "h = max_pool2d(relu(tanh(conv2d(x, K, padding=1))), kernel=2)\n" + tail, 1, {}, 1);
  // A tanh in the relu's place: the bias, the tanh and the pool run inside the
  // convolution's forward pass (the pool per item); the vjps, with no relu for the pool
  // to take over, each as planned.
  check_fuses(head + "h = max_pool2d(tanh(bias_add(conv2d(x, K, padding=1), b, axis=1)), kernel=2)\n" + tail, 3);
  // The relu's value kept for the user: its gradient is not, so the vjp is absorbed still.
  check_fuses(head + "r = " + layer + "\nh = max_pool2d(r, kernel=2)\n" + tail, 3, {"r"}, 3);
  // Not absorbed: the relu's output read by another node too, pooled by average, or its
  // vjp not run at all (a relu of the input, which needs no gradient).
  check_fuses(head + "r = " + layer + "\nh = max_pool2d(r, kernel=2) + avg_pool2d(r, kernel=2)\n" + tail, 2);
  // Nor when the relu's input is read by another node whose vjp writes its gradient first:
  // the relu's vjp then adds into scratch (fan-out), not over its own output's gradient.
  check_fuses(head + "z = bias_add(conv2d(x, K, padding=1), b, axis=1)\n"
                     "h = max_pool2d(relu(z), kernel=2) + avg_pool2d(z, kernel=2)\n" + tail,
              1);
  check_fuses(head + "h = avg_pool2d(" + layer + ", kernel=2)\n" + tail, 2);
  check_fuses(head + "h = conv2d(max_pool2d(relu(x), kernel=2), K, padding=1)\n" + tail, 0);
}

TEST_CASE("fuse: a profile names the pool that does a relu's vjp, and anomaly checks run every vjp") {
  const ModelFile m = parse_model(
      "input x [N, 3, 10, 10]\nlabels y [N]\nparam K [4, 3, 3, 3] normal(0, 0.4)\nparam V [4, 5] normal(0, 0.3)\n"
      "h = max_pool2d(relu(conv2d(x, K, padding=1)), kernel=2)\n"
      "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n");
  const Run r = run(m, true, 1, {}, true);
  int absorbed = 0;
  for (const auto& n : r.profile) {
    CAPTURE(n.name);
    if (n.op == "relu") {
      CHECK(n.vjp_absorbed_by == "h");  // the pool
      CHECK(n.backward_calls == 0);
      ++absorbed;
    } else if (n.op == "max_pool2d") {
      CHECK(n.vjp_absorbed_by == "conv2d_1");  // per item, inside the convolution
      CHECK(n.backward_calls == 0);
      ++absorbed;
    } else {
      CHECK(n.vjp_absorbed_by.empty());
    }
  }
  CHECK(absorbed == 2);
  Params params = m.graph.init_params(3);
  Plan checked(m.graph, params, {.batch = 4, .detect_anomaly = true});
  CHECK(checked.stats().vjps_absorbed == 0);
  // A bias right after the convolution, not run inside it there (nothing in place): it
  // could still run per item inside it, but anomaly checks run every node alone.
  const ModelFile biased = parse_model(
      "input x [N, 3, 10, 10]\nlabels y [N]\nparam K [4, 3, 3, 3] normal(0, 0.4)\nparam b [4] normal(0, 0.3)\n"
      "param V [4, 5] normal(0, 0.3)\nh = tanh(bias_add(conv2d(x, K, padding=1), b, axis=1))\n"
      "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n");
  Params bp = biased.graph.init_params(3);
  Plan anomaly(biased.graph, bp, {.batch = 4, .detect_anomaly = true});
  CHECK(anomaly.stats().fused == 0);
  CHECK(anomaly.stats().vjps_absorbed == 0);
}

TEST_CASE("fuse: a max_pool2d after a convolution runs image by image inside it, both passes, to the same bits") {
  // Every path of the convolution (positions in the lanes, channels in the lanes, im2col
  // with stride 2, groups) and both of the pool (2x2 vectors, the general windows): the
  // bias and relu forward in the product, the pool forward per image; in the vjp the
  // relu's left to the pool, the pool's and the bias's per image before the convolution
  // reads each image's gradient.
  for (const char* conv : kConvPaths)
    for (const char* pool : {"kernel=2", "kernel=3, stride=2, padding=1"}) {
      const std::string c = conv, head = conv_head(c);
      const std::string tail = "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n";
      const std::string p = std::string(", ") + pool + ")\n";
      check_fuses(head + "h = max_pool2d(relu(bias_add(" + c + ", b, axis=1))" + p + tail, 3, {}, 3);
      // No bias, no relu, neither.
      check_fuses(head + "h = max_pool2d(relu(" + c + ")" + p + tail, 2, {}, 2);
      check_fuses(head + "h = max_pool2d(bias_add(" + c + ", b, axis=1)" + p + tail, 2, {}, 2);
      check_fuses(head + "h = max_pool2d(" + c + p + tail, 1, {}, 1);
    }
  const std::string head = "input x [N, 3, 10, 10]\nlabels y [N]\nparam K [4, 3, 3, 3] normal(0, 0.4)\n"
                           "param J [4, 3, 3, 3] normal(0, 0.4)\nparam b [4] normal(0, 0.3)\nparam V [4, 5] normal(0, 0.3)\n";
  const std::string tail = "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n";
  // One bias in two layers: its gradient is the sum of two vjps', one written after the
  // other's wave (fan-out), so neither may move into its convolution's wave; the pools
  // run per item in the forward passes only (3 + 3 forward steps skipped; the relus' vjps).
  check_fuses(head + "h = max_pool2d(relu(bias_add(conv2d(x, K, padding=1), b, axis=1)), kernel=2) + "
                     "max_pool2d(relu(bias_add(conv2d(x, J, padding=1), b, axis=1)), kernel=2)\n" + tail,
              6, {}, 2);
  // The pool's input read by another node too, or a pool that is not per item: none.
  check_fuses(head + "r = relu(conv2d(x, K, padding=1))\n"
                     "h = max_pool2d(r, kernel=2) + max_pool2d(r, kernel=3, stride=2, padding=1)\n" + tail,
              1);
  check_fuses(head + "h = avg_pool2d(relu(conv2d(x, K, padding=1)), kernel=2)\n" + tail, 1);
}

TEST_CASE("fuse: a pool run inside a convolution gets buffers nothing else uses in the convolution's wave") {
  // Inference: the convolution's input (a tanh's output) dies with the convolution's wave,
  // and the pool's output, written in that wave now, must not take its place.
  const ModelFile m = parse_model(
      "input x [N, 3, 10, 10]\nparam K [4, 3, 3, 3] normal(0, 0.4)\nparam b [4] normal(0, 0.3)\n"
      "z = tanh(x)\noutput h = max_pool2d(relu(bias_add(conv2d(z, K, padding=1), b, axis=1)), kernel=2)\n");
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    ThreadCount scope(threads);
    std::vector<Tensor> outs;
    for (bool fuse : {false, true}) {
      Params params = m.graph.init_params(3);
      Plan plan(m.graph, params, {.batch = 9, .backward = false, .fuse = fuse});
      CHECK(plan.stats().fused == (fuse ? 3 : 0));
      Tensor t(Shape{9, 3, 10, 10});
      Rng rng(1);
      for (std::int64_t i = 0; i < t.numel(); ++i) t.set(i, rng.uniform(-1, 1));
      plan.set_input("x", t);
      plan.forward();
      outs.push_back(plan.value("h").clone());
    }
    CHECK(same_tensor_bits(outs[0], outs[1]));
  }
}

TEST_CASE("fuse: a bias gradient computed inside the convolution is final when on_gradient names it") {
  const ModelFile m = parse_model(
      "input x [N, 3, 10, 10]\nlabels y [N]\nparam K [4, 3, 3, 3] normal(0, 0.4)\nparam b [4] normal(0, 0.3)\n"
      "param V [4, 5] normal(0, 0.3)\nh = max_pool2d(relu(bias_add(conv2d(x, K, padding=1), b, axis=1)), kernel=2)\n"
      "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n");
  Params params = m.graph.init_params(3);
  std::vector<std::pair<std::size_t, Tensor>> at_callback;
  Plan* self = nullptr;
  Plan plan(m.graph, params, {.batch = 8, .on_gradient = [&](std::size_t p) {
                                at_callback.emplace_back(p, self->parameters()[p].grad.clone());
                              }});
  self = &plan;
  CHECK(plan.stats().vjps_absorbed == 3);
  Tensor y(Shape{8});
  for (std::int64_t i = 0; i < 8; ++i) y.set(i, static_cast<double>(i % 5));
  plan.set_input("y", y);
  // Two steps on different images: a callback too early sees the first step's gradient.
  for (int step = 0; step < 2; ++step) {
    Rng rng(2 + static_cast<std::uint64_t>(step));
    Tensor x(Shape{8, 3, 10, 10});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.set(i, rng.uniform(-1, 1));
    plan.set_input("x", x);
    at_callback.clear();
    plan.forward();
    plan.backward();
  }
  const auto slots = plan.parameters();
  REQUIRE(at_callback.size() == slots.size());
  for (const auto& called : at_callback) {  // (no structured binding: CAPTURE's lambda could not see it under clang)
    const std::string& name = slots[called.first].name;
    CAPTURE(name);
    CHECK(same_tensor_bits(called.second, slots[called.first].grad));
  }
}

TEST_CASE("fuse: a relu whose vjp the pool does is not kept for the backward pass") {
  // The relu's output (with the convolution's and the bias's, written in place before it:
  // one buffer of [N, 8, 24, 24]) was kept until the relu's vjp, which reads it; absorbed,
  // that vjp is the pool's, which reads its winners only: the buffer dies with the pool's
  // forward pass, and the arena shrinks.
  const std::string text =
      "input x [N, 3, 24, 24]\nlabels y [N]\nparam K [8, 3, 3, 3] normal(0, 0.4)\nparam b [8] normal(0, 0.3)\n"
      "param V [8, 5] normal(0, 0.3)\nh = max_pool2d(relu(bias_add(conv2d(x, K, padding=1), b, axis=1)), kernel=2)\n"
      "loss xent = softmax_cross_entropy(matmul(mean(mean(h, axis=3), axis=2), V), y)\n";
  const ModelFile m = parse_model(text);
  NodeId relu = m.graph.size(), pool = m.graph.size();
  for (NodeId id = 0; id < m.graph.size(); ++id) {
    const Node& node = m.graph.node(id);
    if (node.kind != NodeKind::op) continue;
    if (node.op->name == "relu") relu = id;
    if (node.op->name == "max_pool2d") pool = id;
  }
  REQUIRE(relu < m.graph.size());
  REQUIRE(pool < m.graph.size());
  const PlanOptions options{.batch = 37};
  const planning::Analysis a = planning::analyse(m.graph, options, sizeof(float));
  const planning::Schedule s = planning::schedule(m.graph, a, planning::declared_costs(m.graph, a));
  planning::MemoryPlan memory = planning::plan_memory(m.graph, a, s, sizeof(float));
  const auto buffer = static_cast<std::size_t>(memory.value_buf[relu]);
  CHECK(memory.buffers[buffer].last == s.bwave[relu]);  // unfused: kept for the relu's vjp
  const planning::Fusions f = planning::fuse_epilogues(m.graph, a, s, memory);
  CHECK(f.vjp_into[relu] == pool);
  CHECK(memory.buffers[buffer].last == s.fwave[pool]);  // fused: read last by the pool's forward
  CHECK(s.fwave[pool] < s.bwave[relu]);

  const Run plain = run(m, false, 1), fused = run(m, true, 1);
  CHECK(fused.stats.vjps_absorbed == 3);
  CHECK(fused.stats.arena_bytes < plain.stats.arena_bytes);
  // The backward dump says the same: the relu's vjp reads nothing of its own.
  Params params = m.graph.init_params(3);
  const Plan plan(m.graph, params, options);
  const auto step = std::find_if(plan.backward_steps().begin(), plan.backward_steps().end(),
                                 [&](const BackwardStep& b) { return b.node == relu; });
  REQUIRE(step != plan.backward_steps().end());
  CHECK(step->done_by == pool);
  CHECK(step->reads.empty());
  check_fuses(text, 3, {}, 3);
}

TEST_CASE("passes: the analysis lists every node's consumers as the graph does, in its order") {
  // Fan-out, a node reading one value twice, an op with parts, an unused input.
  Graph g;
  const NodeId x = g.add_input("x", {N, 7});
  g.add_input("unused", {N, 7});
  const NodeId sq = g.add_op("mul", {x, x});
  const NodeId s = g.add_op("split", {sq}, {{"sizes", IntList{3, 4}}}, "s");
  const NodeId t = g.add_op("tanh", {g.parts(s)[1]});
  const NodeId st = g.add_op("sum", {t});
  const NodeId sx = g.add_op("sum", {x});
  const NodeId both = g.add_op("add", {st, sx});
  g.set_loss(g.add_op("add", {both, g.add_op("sum", {g.parts(s)[0]})}));
  const planning::Analysis a = planning::analyse(g, PlanOptions{.batch = 3}, sizeof(float));
  REQUIRE(a.consumer_lists.start.size() == g.size() + 1);
  std::size_t edges = 0;
  for (NodeId id = 0; id < g.size(); ++id) {
    CAPTURE(g.node(id).name);
    const auto c = a.consumers(id);
    CHECK(std::vector<NodeId>(c.begin(), c.end()) == g.consumers(id));
    edges += c.size();
  }
  CHECK(edges == a.consumer_lists.entries.size());
  CHECK(g.consumers(x) == std::vector<NodeId>{sq, sq, sx});  // mul twice, then sum(x)
  CHECK(a.consumers(s).size() == 2);                                   // its parts
  CHECK(a.consumers(1).empty());
}
