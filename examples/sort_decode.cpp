// The sorting transformer from C++: loads examples/models/transformer_sort.og, trains it on
// sort_digits with Adam, then decodes a few held-out sequences and prints them beside the
// right answer, with the per-position and exact-sequence accuracy.
//   sort_decode [--epochs N] [--seed N] [--model FILE.og]
#include <cstdio>
#include <string>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/train.hpp>

#include "example.hpp"

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  example::Stopwatch clock;
  Model model = example::load_model(args, "examples/models/transformer_sort.og");
  const Split split = train_test_split(make_sort_digits(20000, 8, 10, args.seed), 0.1, args.seed);
  auto adam = make_adam({.lr = 0.002});
  const int epochs = args.epochs ? args.epochs : 4;
  fit(model, split.train, *adam, {.epochs = epochs, .batch = 64, .seed = args.seed});
  const Evaluation test = evaluate(model, split.test);

  // Decode: the most likely digit at each position of the first few test sequences.
  const std::int64_t shown = 5, length = 8;
  const Dataset few = split.test.rows({0, 1, 2, 3, 4});
  const Predictions p = predict(model, few.features);
  std::printf("input      predicted  sorted\n");
  for (std::int64_t i = 0; i < shown; ++i) {
    std::string in, out, want;
    for (std::int64_t t = 0; t < length; ++t) {
      in += std::to_string(static_cast<int>(few.features.at(i * length + t)));
      out += std::to_string(p.labels[static_cast<std::size_t>(i * length + t)]);
      want += std::to_string(static_cast<int>(few.labels.at(i * length + t)));
    }
    std::printf("%s   %s   %s%s\n", in.c_str(), out.c_str(), want.c_str(), out == want ? "" : "  (wrong)");
  }
  std::printf("test: %.4f of positions, %.4f of sequences right\n", test.accuracy, test.sequence_accuracy);
  example::Json json("sort_decode");
  json.add("test_accuracy", test.accuracy).add("test_sequence_accuracy", test.sequence_accuracy);
  json.add("epochs", epochs).add("seconds", clock.seconds()).print();
  return 0;
}
