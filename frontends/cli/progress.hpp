// Training progress on the terminal: a live bar per epoch on a tty, one line per epoch
// otherwise, nothing with --quiet.
#pragma once

#include <chrono>

#include <opgraph/frontends/train.hpp>

namespace opgraph::cli {

class Progress {
 public:
  explicit Progress(bool quiet);
  void step(const StepReport& s);
  void epoch(const EpochReport& e);

 private:
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point last_draw_{};
  int width_ = 0;  // length of the bar line last drawn
};

}  // namespace opgraph::cli
