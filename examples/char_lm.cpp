// The character-level language model from C++: trains examples/models/char_lm.og on
// text windows, reports bits per character on the held-out tail against the unigram
// entropy, then samples 200 characters at a temperature, one forward pass per character
// through a Plan compiled once for a batch of one window.
//   char_lm [--epochs N] [--seed N] [--model FILE.og]
#include <cmath>
#include <cstdio>
#include <string>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/datasets/text.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>

#include "example.hpp"

int main(int argc, char** argv) {
  using namespace opgraph;
  const example::Args args = example::parse_args(argc, argv, /*default_seed=*/1);
  example::Stopwatch clock;
  Model model = example::load_model(args, "examples/models/char_lm.og");
  const std::string text = read_file(example::source_file("examples/text/design_notes.txt"));
  const std::int64_t context = 64;
  const TextWindows data = make_text_windows(text, context, 16, 0.1);
  auto adam = make_adam({.lr = 0.003});
  const int epochs = args.epochs ? args.epochs : 5;
  fit(model, data.train, *adam, {.epochs = epochs, .batch = 32, .seed = args.seed});
  const double bits = evaluate(model, data.test).loss / std::log(2.0);
  std::printf("held-out bits per character %.3f (unigram entropy %.3f)\n", bits, data.unigram_bits);

  // Sampling: the window slides one character per step; the next character is drawn from
  // softmax(logits / temperature) at the window's last position.
  const double temperature = 0.8;
  Plan plan(model.graph, model.params, {.batch = 1, .mode = Mode::eval, .backward = false, .keep = {"logits"}});
  Tensor window({1, context}, DType::i64), unused({1, context}, DType::i64);
  plan.set_input(model.labels, unused);  // the loss is computed too; its labels do not matter here
  // The prompt: the first line start of the held-out tail, and the window after it.
  const std::size_t start = text.find('\n', text.size() - text.size() / 10) + 1;
  const std::string prompt = text.substr(start, static_cast<std::size_t>(context));
  for (std::int64_t t = 0; t < context; ++t) window.set(t, static_cast<unsigned char>(prompt[static_cast<std::size_t>(t)]));
  Rng rng(args.seed);
  std::string sample;
  for (int step = 0; step < 200; ++step) {
    plan.set_input(model.input, window);
    plan.forward();
    const Tensor logits = plan.value("logits");  // [1, context, 256]
    const std::int64_t last = (context - 1) * 256;
    double top = -1e300;
    for (int c = 0; c < 256; ++c) top = std::max(top, logits.at(last + c));
    double total = 0;
    std::vector<double> p(256);
    for (int c = 0; c < 256; ++c) total += p[static_cast<std::size_t>(c)] = std::exp((logits.at(last + c) - top) / temperature);
    double u = rng.uniform() * total;
    int next = 255;
    for (int c = 0; c < 256; ++c)
      if ((u -= p[static_cast<std::size_t>(c)]) < 0) {
        next = c;
        break;
      }
    sample += static_cast<char>(next);
    for (std::int64_t t = 0; t + 1 < context; ++t) window.set(t, window.at(t + 1));
    window.set(context - 1, next);
  }
  std::printf("prompt: %s\nsample (temperature %.1f): %s\n", prompt.c_str(), temperature, sample.c_str());
  example::Json json("char_lm");
  json.add("test_bits_per_char", bits).add("unigram_bits_per_char", data.unigram_bits);
  json.add("sampled_characters", static_cast<int>(sample.size())).add("epochs", epochs).add("seconds", clock.seconds()).print();
  return 0;
}
