// The C++ quick start of README.md, as a program the test suite builds and runs (the
// README quotes the part between the markers; a test checks the quote is this text).
#include <cstdio>

// readme:begin
#include <opgraph/datasets/locate.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>
using namespace opgraph;

int main() {
  Model model;                                      // a graph, its parameters, input names
  auto x = nn::input(model.graph, "x", {N, 4});     // N: the batch dimension
  auto y = nn::input(model.graph, "y", {N});        // class indices
  auto logits = nn::dense(nn::logistic(nn::dense(x, 8, "hidden")), 3, "out");
  model.graph.set_loss(nn::softmax_cross_entropy(logits, y));
  model.params = model.graph.init_params(/*seed=*/1);

  Split split = train_test_split(load_builtin("iris"), 0.3, /*seed=*/1, /*stratified=*/true);
  auto optimizer = parse_optimizer("momentum:lr=0.01,gamma=0.9");   // or make_momentum({...})
  History h = fit(model, split.train, *optimizer, {.epochs = 200, .batch = 16, .validation = &split.test});
  Evaluation e = evaluate(model, split.test);      // loss, accuracy, confusion matrix
  // readme:end
  std::printf("{\"example\":\"readme\",\"test_accuracy\":%g,\"epochs\":%zu}\n", e.accuracy, h.epochs.size());
  return e.accuracy >= 0.9 ? 0 : 1;
}
