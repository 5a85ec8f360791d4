// The gradient checker must catch wrong vjps. This binary registers two deliberately
// broken ops (kept out of the main test binary, whose generated check covers every op).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/plugin.hpp>
#include <opgraph/graph/registry.hpp>

using namespace opgraph;

namespace {

// mean over all elements whose vjp forgets the 1/N.
OPGRAPH_OP(broken_mean)
    .doc("mean with a vjp missing its 1/N (test only)")
    .input("x")
    .shape(scalar_shape())
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      k.out().data[0] = static_cast<T>(sum_over(k.in(0).size, [&](std::int64_t i) { return k.in(0).data[i]; }) /
                                       static_cast<double>(k.in(0).size));
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      const T g = k.grad_out().data[0];
      map(k.grad_in(0), k.grad_in(0), [g](T) { return g; });
    })
    .check({"[a,b]"});

// tanh whose vjp is off by one part in a thousand.
OPGRAPH_OP(slightly_wrong_tanh)
    .doc("tanh with a vjp 0.1% too large (test only)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::tanh(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.out(), k.grad_out(), k.grad_in(0), [](T y, T g) { return T(1.001) * g * (T(1) - y * y); });
    })
    .check({"[a,b]"});

// tanh whose vjp returns NaN: right forward, NaN gradient.
OPGRAPH_OP(nan_vjp_tanh)
    .doc("tanh with a vjp that returns NaN (test only)")
    .input("x")
    .shape(same_shape_as(0))
    .saves_output()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return std::tanh(x); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.grad_out(), k.grad_in(0), [](T) { return std::numeric_limits<T>::quiet_NaN(); });
    })
    .check({"[a,b]"});

// relu that maps NaN to 0 on purpose, and says so: not held to NaN in, NaN out.
OPGRAPH_OP(declared_nan_to_zero_relu)
    .doc("relu with NaN mapped to 0, declared .replaces_nan() (test only)")
    .input("x")
    .shape(same_shape_as(0))
    .saves({"x"})
    .replaces_nan()
    .forward([](auto& k) {
      using T = scalar_of<decltype(k)>;
      map(k.in(0), k.out(), [](T x) { return x > T(0) ? x : T(0); });
    })
    .vjp([](auto& k) {
      using T = scalar_of<decltype(k)>;
      zip(k.in(0), k.grad_out(), k.grad_in(0), [](T x, T g) { return x > T(0) ? g : T(0); });
    })
    .domain("x", {.kinks = {0.0}})
    .check({"[a,b]"});

/// The broken op `name` (tests/plugins/broken_ops.cpp) fails conformance's `property`,
/// first and alone, with `detail` in the message (at its start when `at_start`); the
/// message.
std::string fails_only(const char* name, const std::string& property, const std::string& detail, bool at_start = false) {
  CAPTURE(name);
  load_plugin(OPGRAPH_PLUGIN_DIR "/broken_ops.so");
  const ConformanceReport r = check_conformance(Registry::global().get(name));
  CHECK_FALSE(r.passed());
  REQUIRE(r.first_failure() != nullptr);
  CHECK(r.first_failure()->property == property);
  const std::size_t at = r.first_failure()->detail.find(detail);
  CHECK_MESSAGE((at_start ? at == 0 : at != std::string::npos), r.first_failure()->detail);
  for (const auto& item : r.items)
    if (item.property != property) CHECK_MESSAGE(item.passed, item.property, ": ", item.detail);
  return r.first_failure()->detail;
}

/// The built-in op `name` is asked `property` and passes it (asked: false, is not asked).
void built_in(const char* name, const std::string& property, bool asked = true) {
  CAPTURE(name);
  const ConformanceReport r = check_conformance(Registry::global().get(name));
  if (!asked) {
    CHECK(r.item(property) == nullptr);
    return;
  }
  REQUIRE(r.item(property) != nullptr);
  CHECK(r.item(property)->passed);
}

}  // namespace

TEST_CASE("conformance: an op declared in place whose kernels are not fails 'in place', nothing else") {
  // unsafe_in_place (tests/plugins/broken_ops.cpp) reads x[i+1] where x[i+1] was overwritten.
  fails_only("unsafe_in_place", "in place", "(f64): forward written over 'x' differs from forward into its own buffer");
}

TEST_CASE("conformance: an op declaring an epilogue it never applies fails 'epilogue', nothing else") {
  // ignored_epilogue (tests/plugins/broken_ops.cpp): a product that leaves out the bias and
  // ReLU a plan would have fused into it. The real product passes it.
  fails_only("ignored_epilogue", "epilogue", "(f64): forward with the epilogue bias differs from forward, then the bias added");
  built_in("matmul", "epilogue");
}

TEST_CASE("conformance: an op declaring an activation whose function it computes with other bits fails 'activation', nothing else") {
  // tanh_form_sigmoid (tests/plugins/broken_ops.cpp): 0.5 (1 + tanh(x / 2)) declared the
  // logistic activation, which a plan fusing it into a product runs as math::logistic.
  fails_only("tanh_form_sigmoid", "activation", "[6,3] (f64): forward gives ", true);
  fails_only("tanh_form_sigmoid", "activation", ", logistic of ");
  // The built-in activations pass it; ops that declare none are not asked.
  for (const char* name : {"relu", "logistic", "tanh"}) built_in(name, "activation");
  built_in("gelu", "activation", false);
}

TEST_CASE("conformance: an op declaring that its vjp takes over a relu's, which it never does, fails 'relu vjp', nothing else") {
  // ignored_relu_vjp (tests/plugins/broken_ops.cpp): 2x, its vjp 2g whatever x is. The
  // real pool passes it.
  fails_only("ignored_relu_vjp", "relu vjp",
             " (f64): the vjp told that it takes over a relu's vjp gives another gradient of 'x' than the vjp, then "
             "the relu's (zero where 'x' is not positive)");
  built_in("max_pool2d", "relu vjp");
  built_in("avg_pool2d", "relu vjp", false);
}

TEST_CASE("conformance: an op declaring that its vjp takes over any activation's, which it does for a relu only, fails 'activation vjp'") {
  // relu_only_activation_vjp (tests/plugins/broken_ops.cpp): 2x, its vjp 2g taken through
  // a relu when told so, and left as 2g when told it took over a logistic's. The real
  // product passes it; the pool, which takes over a relu's only, has no such item.
  fails_only("relu_only_activation_vjp", "activation vjp",
             " (f64): the vjp told that it takes over a logistic's vjp gives another gradient of 'x' than the vjp, "
             "then the logistic's (with 'x' as its output)");
  built_in("matmul", "activation vjp");
  built_in("max_pool2d", "activation vjp", false);
}

TEST_CASE("conformance: an op declaring that its vjp writes a fused bias's gradient, which it never does, fails 'bias vjp', nothing else") {
  // ignored_bias_vjp (tests/plugins/broken_ops.cpp): 2x with its epilogue, the bias's
  // gradient left unwritten. The real product passes it; the convolution, whose bias's vjp
  // runs per item inside it instead, is not asked.
  fails_only("ignored_bias_vjp", "bias vjp", "[6,3] (f64): the bias's gradient at 0 is ", true);
  fails_only("ignored_bias_vjp", "bias vjp", ", the column sum of the output's gradient (as bias_add's vjp adds it)");
  built_in("matmul", "bias vjp");
  built_in("conv2d", "bias vjp", false);
}

TEST_CASE("conformance: an activation whose vjp is not math::activation_vjp's bits fails 'activation', nothing else") {
  // expanded_logistic_vjp (tests/plugins/broken_ops.cpp): the logistic, its vjp g (y - y^2).
  fails_only("expanded_logistic_vjp", "activation", "(f64): the vjp gives ");
  fails_only("expanded_logistic_vjp", "activation", "logistic's gradient at output ");
}

TEST_CASE("fuse: a plan skips the relu's vjp its consumer takes over, trusting the declaration") {
  // ignored_relu_vjp declares it takes over a relu's vjp and never masks: through it, the
  // weight gradient differs with the relu's vjp skipped (fuse on) and run (fuse off). So
  // the relu's vjp really does not run, and a consumer that does not keep the declaration
  // is what `opgraph check` catches (the test above). With every gradient kept, nothing
  // is written in place and nothing absorbed.
  load_plugin(OPGRAPH_PLUGIN_DIR "/broken_ops.so");
  Graph g;
  const NodeId x = g.add_input("x", {N, 4});
  const NodeId w = g.add_param("w", {4, 4});
  g.set_loss(g.add_op("sum", {g.add_op("ignored_relu_vjp", {g.add_op("relu", {g.add_op("matmul", {x, w})})})}));
  Params params = g.init_params(1);
  const Tensor xs = Tensor::from({3, 4}, {1, -2, 3, -4, 5, -6, 7, -8, -1, 2, -3, 4});
  auto weight_grad = [&](bool fuse, bool keep_grads, int absorbed) {
    Plan plan(g, params, {.batch = 3, .keep_grads = keep_grads, .fuse = fuse});
    plan.set_input("x", xs);
    plan.forward();
    plan.backward();
    CHECK(plan.stats().vjps_absorbed == absorbed);
    return plan.parameters().at(0).grad.clone();
  };
  const Tensor skipped = weight_grad(true, false, 1), run = weight_grad(false, false, 0);
  CHECK(std::memcmp(skipped.raw(), run.raw(), run.nbytes()) != 0);
  const Tensor kept = weight_grad(true, true, 0);
  CHECK(std::memcmp(kept.raw(), run.raw(), run.nbytes()) == 0);
}

TEST_CASE("conformance: an op whose per-item kernels ignore where their range starts fails 'per item', nothing else") {
  // unshifted_items (tests/plugins/broken_ops.cpp): 2x, each range of items written over
  // the first. The real pool and bias pass it; a bias along the last axis is not per item.
  CHECK(fails_only("unshifted_items", "per item", "[6,3] (f64): forward item by item") ==
        "[6,3] (f64): forward item by item (pieces cut at 1) differs from forward");
  for (const char* op : {"max_pool2d", "bias_add"}) built_in(op, "per item");
  built_in("avg_pool2d", "per item", false);
}

TEST_CASE("fuse: a plan runs a per-item node inside the convolution before it, trusting the declaration") {
  // unshifted_items after a convolution: run per image in the convolution's lanes (fuse
  // on), every lane's images land on the first ones, so the output differs from the node
  // run on its own (fuse off); the forward step is skipped. One thread: on two, the lanes'
  // broken writes to the same images would race (ThreadSanitizer says so).
  load_plugin(OPGRAPH_PLUGIN_DIR "/broken_ops.so");
  ThreadCount one(1);
  Graph g;
  const NodeId x = g.add_input("x", {N, 2, 6, 6});
  const NodeId w = g.add_param("w", {3, 2, 3, 3});
  const NodeId y = g.add_op("unshifted_items", {g.add_op("conv2d", {x, w}, {{"padding", std::int64_t{1}}})});
  g.add_output(y);
  Params params = g.init_params(1);
  Tensor xs(Shape{5, 2, 6, 6});
  for (std::int64_t i = 0; i < xs.numel(); ++i) xs.set(i, static_cast<double>(i % 7) - 3.0);
  auto output = [&](bool fuse) {
    Plan plan(g, params, {.batch = 5, .backward = false, .fuse = fuse});
    CHECK(plan.stats().fused == (fuse ? 1 : 0));
    plan.set_input("x", xs);
    plan.forward();
    return plan.value(g.node(y).name).clone();
  };
  const Tensor fused = output(true), alone = output(false);
  CHECK(std::memcmp(fused.raw(), alone.raw(), alone.nbytes()) != 0);
}

TEST_CASE("conformance: an op that turns NaN into a number fails 'nan', nothing else") {
  // nan_dropping_relu (tests/plugins/broken_ops.cpp) is std::max(0, x): right on every
  // number, its gradient too, but a NaN input comes out as 0.
  load_plugin(OPGRAPH_PLUGIN_DIR "/broken_ops.so");
  const ConformanceReport r = check_conformance(Registry::global().get("nan_dropping_relu"));
  CHECK_FALSE(r.passed());
  REQUIRE(r.first_failure() != nullptr);
  CHECK(r.first_failure()->property == "nan");
  CHECK(r.first_failure()->detail.find(
            "[6,3] (f64): NaN at element ") == 0);
  CHECK(r.first_failure()->detail.find(
            " of 'x', which the output depends on, gives no NaN in the output: a comparison drops it (std::max(0, x) "
            "keeps 0, a > b ? a : b keeps b); let NaN through (x != x, or std::isnan)") != std::string::npos);
  for (const auto& item : r.items)
    if (item.property != "nan") CHECK_MESSAGE(item.passed, item.property, ": ", item.detail);
  // A vjp that turns a NaN cotangent into 0 fails it too, through the vjp.
  const ConformanceReport vjp = check_conformance(Registry::global().get("nan_dropping_vjp_tanh"));
  REQUIRE(vjp.first_failure() != nullptr);
  CHECK(vjp.first_failure()->property == "nan");
  CHECK(vjp.first_failure()->detail ==
        "[6,3] (f64): NaN in the cotangent of output element 0, which the gradients depend on, gives no NaN in any "
        "input's gradient: the vjp drops it (a comparison or a select on the cotangent); let NaN through");
  for (const auto& item : vjp.items)
    if (item.property != "nan") CHECK_MESSAGE(item.passed, item.property, ": ", item.detail);
  // relu itself keeps NaN, and passes.
  CHECK(check_conformance(Registry::global().get("relu")).item("nan")->passed);
  // The same kernel declared .replaces_nan() is not asked, and says so.
  const ConformanceReport declared = check_conformance(Registry::global().get("declared_nan_to_zero_relu"));
  CHECK(declared.passed());
  REQUIRE(declared.item("nan") != nullptr);
  CHECK(declared.item("nan")->detail == "not asked: the op replaces NaN on purpose (.replaces_nan())");
}

TEST_CASE("gradcheck and conformance: a vjp returning NaN fails every checker that reads it") {
  const OpDef& op = Registry::global().get("nan_vjp_tanh");
  const auto results = check_op_gradients(op);
  REQUIRE_FALSE(results.empty());
  for (const auto& r : results) {
    CHECK_FALSE(r.passed);
    CHECK(std::isnan(r.max_error));
  }
  const ConformanceReport report = check_conformance(op);
  CHECK_FALSE(report.passed());
  CHECK(report.item("finite")->detail.find("the vjp gives nan at element 0 of the gradient of 'x'") != std::string::npos);
  CHECK_FALSE(report.item("gradient")->passed);
  CHECK(std::isnan(report.item("gradient")->measure));
  // A whole graph through the op: the graph checker fails too.
  Graph g;
  const NodeId x = g.add_input("x", {N, 3});
  const NodeId w = g.add_param("w", {3, 3});
  g.set_loss(g.add_op("mean", {g.add_op("nan_vjp_tanh", {g.add_op("matmul", {x, w})})}));
  Params params = g.init_params(1, DType::f64);
  const GradCheckResult whole = check_graph_gradients(g, params, {{"x", Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}, DType::f64)}}, 2);
  CHECK_FALSE(whole.passed);
  CHECK(std::isnan(whole.max_error));
}

TEST_CASE("gradcheck: a vjp missing 1/N fails the check") {
  const auto results = check_op_gradients(Registry::global().get("broken_mean"));
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].passed);
  CHECK(results[0].failure.empty());
  // The analytic gradient is N times the true one: the error relative to it is 1 - 1/N.
  CHECK(results[0].max_error > 0.75);
}

TEST_CASE("gradcheck: a vjp off by 0.1% fails the check") {
  const auto results = check_op_gradients(Registry::global().get("slightly_wrong_tanh"));
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].passed);
  // Reported as the relative error it is: about 1e-3.
  CHECK(results[0].max_error == doctest::Approx(1e-3 / 1.001).epsilon(0.01));
}

TEST_CASE("conformance: the broken ops fail and the explanation names the culprit") {
  const ConformanceReport mean = check_conformance(Registry::global().get("broken_mean"));
  CHECK_FALSE(mean.passed());
  REQUIRE(mean.first_failure() != nullptr);
  CHECK(mean.first_failure()->property == "gradient");
  const std::string why = explain_gradient(Registry::global().get("broken_mean"));
  CHECK(why.find("analytic / numeric = 18 everywhere (the element count of [6,3])") != std::string::npos);
  CHECK(why.find("a missing or extra 1/N") != std::string::npos);
  const ConformanceReport tanh = check_conformance(Registry::global().get("slightly_wrong_tanh"));
  CHECK_FALSE(tanh.passed());
  CHECK(tanh.item("linearity")->passed);  // 1.001 g is still linear in g
  CHECK(tanh.item("saves")->passed);
  CHECK(explain_gradient(Registry::global().get("slightly_wrong_tanh")).find("= 1.001 everywhere") != std::string::npos);
}
