// Plugins through the C++ API: loading, using a plugin op in a graph, every refusal.
// Its own binary: loading plugins changes the process-wide registry.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/plugin.hpp>
#include <opgraph/graph/registry.hpp>

#include "../test_files.hpp"

using namespace opgraph;

namespace {
const std::string kDir = OPGRAPH_PLUGIN_DIR;
std::string plugin(const std::string& name) { return kDir + "/" + name + ".so"; }
}  // namespace

TEST_CASE("plugin: the example plugin's ops register, check, and train a model") {
  const auto ops = load_plugin(plugin("activations"));
  CHECK(ops == std::vector<std::string>{"mish", "smoothed_cross_entropy", "snake"});
  const OpDef& snake = Registry::global().get("snake");
  CHECK(snake.source == std::filesystem::canonical(plugin("activations")).string());
  CHECK(snake.signature() == "snake(x, a=1.0)");
  for (const auto& name : ops) {
    const ConformanceReport r = check_conformance(Registry::global().get(name));
    CAPTURE(name);
    CHECK(r.passed());
  }
  // Loading again does nothing and says what it holds.
  CHECK(load_plugin(plugin("activations")) == ops);

  // A model file uses the plugin's ops by name, like built-in ones.
  ModelFile f = load_model(OPGRAPH_SOURCE_DIR "/examples/plugin/moons.og");
  Model m{f.graph, f.graph.init_params(1), f.input, f.labels};
  const Split s = train_test_split(make_moons(600, 0.1, 1), 0.3, 1);
  auto adam = make_adam({.lr = 0.01});
  Trainer t(m);
  t.fit(s.train, *adam, {.epochs = 60, .batch = 32, .seed = 1});
  CHECK(t.evaluate(s.test).accuracy >= 0.95);
}

TEST_CASE("plugin: every way to be refused names the file and says how to fix it") {
  test::ScratchDir dir("plugins");
  test::write_file(dir.file("text.so"), "this is not a shared library\n");
  CHECK_THROWS_WITH_AS(load_plugin(dir.file("text.so")),
                       (dir.file("text.so") + ": not a shared library (no ELF header): a plugin is a .so built with "
                                              "opgraph_add_plugin")
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(load_plugin(dir.file("none.so")), (dir.file("none.so") + ": no such plugin file").c_str(), Error);
  CHECK_THROWS_WITH_AS(load_plugin(dir.path()), (dir.path() + ": is a directory, expected a plugin (.so)").c_str(), Error);
  CHECK_THROWS_WITH_AS(load_plugin(plugin("no_entry")),
                       (plugin("no_entry") + ": not an opgraph plugin: no entry point 'opgraph_plugin_abi' (build it "
                                             "with opgraph_add_plugin, or put OPGRAPH_PLUGIN_ENTRY() in one of its sources)")
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(load_plugin(plugin("wrong_abi")),
                       (plugin("wrong_abi") + ": built for opgraph plugin ABI 999, this opgraph has ABI 13: rebuild the "
                                              "plugin against this version")
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(load_plugin(plugin("duplicate_op")),
                       (plugin("duplicate_op") + ": relu: op 'relu' is already registered (by built-in)").c_str(), Error);
  CHECK_THROWS_WITH_AS(load_plugin(plugin("stale")),
                       (plugin("stale") + ": cannot load: undefined symbol opgraph::function_of_another_version(double): "
                                          "it was built against another opgraph; rebuild it against this one")
                           .c_str(),
                       Error);
  // Nothing of a refused plugin was registered.
  CHECK(Registry::global().find("orphan") == nullptr);
  CHECK(Registry::global().find("from_the_future") == nullptr);
  CHECK(Registry::global().get("relu").source == "built-in");
}

TEST_CASE("plugin: loading while plans run leaves them untouched") {
  // A plan holds OpDef pointers, which never move; registering takes the registry's
  // write lock only while it adds. Train on one thread while another loads a plugin: the
  // training gives the same bits as without the loading.
  const ModelFile f = parse_model("input x [N, 2]\nlabels y [N]\nparam W [2, 2]\nloss l = softmax_cross_entropy(tanh(matmul(x, W)), y)\n");
  const Dataset d = make_moons(2000, 0.1, 3);
  auto train = [&] {
    Model m{f.graph, f.graph.init_params(1), f.input, f.labels};
    auto sgd = make_sgd({.lr = 0.1});
    return fit(m, d, *sgd, {.epochs = 20, .batch = 16});
  };
  const History alone = train();
  std::thread loader([] { load_plugin(plugin("broken_ops")); });
  const History h = train();
  loader.join();
  CHECK(Registry::global().find("bad_mean") != nullptr);
  CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss);
  REQUIRE(h.epochs.size() == alone.epochs.size());
  for (std::size_t e = 0; e < h.epochs.size(); ++e) CHECK(h.epochs[e].train_loss == alone.epochs[e].train_loss);
}
