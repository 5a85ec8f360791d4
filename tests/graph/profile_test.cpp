// Per-node profiles: calls counted, FLOPs from the op's cost, time where the work is.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>

using namespace opgraph;

TEST_CASE("profile: calls, FLOPs and bytes of the 784-256-10 net, times recorded (never compared: no timing in tests)") {
  ModelFile m = load_model(OPGRAPH_SOURCE_DIR "/examples/models/mnist_multiclass.og");
  Model model{m.graph, m.graph.init_params(1), m.input, m.labels};
  Trainer t(model);
  const Dataset d = make_blobs(2000, 10, 1.0, 784, 1);
  const std::vector<NodeProfile> nodes = t.profile(d, 1000, 3);
  REQUIRE(nodes.size() == 6);
  for (const auto& n : nodes) {
    // The warm-up pass is not counted; the biases and the hidden layer's logistic run
    // inside their products (PlanOptions::fuse), and so do their vjps: the logistic's
    // inside the output layer's product's, each bias's inside its own product's.
    const bool fused = n.op == "bias_add" || n.op == "logistic";
    const std::string by = n.name == "logits" || n.op == "logistic" ? "matmul_2" : "matmul_1";
    CHECK(n.forward_calls == (fused ? 0 : 3));
    CHECK(n.fused_into == (fused ? (n.name == "logits" ? "matmul_2" : "matmul_1") : ""));
    CHECK(n.backward_calls == (fused ? 0 : 3));
    CHECK(n.vjp_absorbed_by == (fused ? by : ""));
    CHECK(n.forward_seconds >= 0.0);
    CHECK(std::isfinite(n.forward_seconds + n.backward_seconds));
  }
  CHECK(nodes[0].name == "matmul_1");
  CHECK(nodes[0].forward_flops == 2.0 * 1000 * 784 * 256);
  CHECK(nodes[0].backward_flops == 2.0 * 1000 * 784 * 256);  // dW only: x needs no gradient
  CHECK(nodes[3].backward_flops == 4.0 * 1000 * 256 * 10);   // dh and dW2
  CHECK(nodes[0].forward_bytes == 4.0 * (1000 * 784 + 784 * 256 + 1000 * 256));
}

TEST_CASE("profile: a plan compiled without profiling says so") {
  ModelFile m = parse_model("input x [N, 2]\nh = relu(x)\n");
  Params p;
  Plan plan(m.graph, p, {.batch = 1});
  CHECK_THROWS_WITH_AS(plan.profile(), "profile: compile the plan with PlanOptions::profile to time its nodes", GraphError);
}
