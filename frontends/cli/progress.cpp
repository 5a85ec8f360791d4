// Progress bar and per-epoch lines, on stderr.
#include "progress.hpp"

#include <cmath>
#include <cstdio>
#include <string>

#include <unistd.h>

#include <fmt/format.h>

namespace opgraph::cli {

namespace {
std::string rate(double per_second) {
  if (per_second >= 1e6) return fmt::format("{:.1f}M", per_second / 1e6);
  if (per_second >= 1e3) return fmt::format("{:.1f}k", per_second / 1e3);
  return fmt::format("{:.0f}", per_second);
}
}  // namespace

Progress::Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2) != 0) {}

void Progress::step(const StepReport& s) {
  if (quiet_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (s.batch != s.batches && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kBar = 24;
  const double done = static_cast<double>(s.samples_done) / static_cast<double>(std::max<std::int64_t>(s.samples_total, 1));
  const int filled = static_cast<int>(std::lround(done * kBar));
  const double speed = s.seconds > 0 ? static_cast<double>(s.samples_done) / s.seconds : 0.0;
  const double eta = speed > 0 ? static_cast<double>(s.samples_total - s.samples_done) / speed : 0.0;
  std::string line = fmt::format("\repoch {:>3} [{}{}] {}/{}  {} samples/s  loss {:.4f}  ETA {:.1f}s", s.epoch,
                                 std::string(static_cast<std::size_t>(filled), '#'),
                                 std::string(static_cast<std::size_t>(kBar - filled), '.'), s.samples_done,
                                 s.samples_total, rate(speed), s.running_loss, eta);
  const int len = static_cast<int>(line.size());
  if (len < width_) line += std::string(static_cast<std::size_t>(width_ - len), ' ');
  width_ = len;
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void Progress::epoch(const EpochReport& e) {
  if (quiet_) return;
  std::string line = fmt::format("epoch {:>3}/{}  loss {:.4f}", e.epoch, e.epochs, e.train_loss);
  if (e.has_accuracy()) line += fmt::format("  accuracy {:.4f}", e.train_accuracy);
  if (e.has_validation()) {
    line += fmt::format("  val_loss {:.4f}", e.val_loss);
    if (!std::isnan(e.val_accuracy)) line += fmt::format("  val_accuracy {:.4f}", e.val_accuracy);
  }
  line += fmt::format("  {} samples/s  {:.2f}s", rate(e.seconds > 0 ? static_cast<double>(e.samples) / e.seconds : 0.0),
                      e.seconds);
  if (tty_) {
    const int len = static_cast<int>(line.size()) + 1;
    if (len < width_) line += std::string(static_cast<std::size_t>(width_ - len), ' ');
    std::fprintf(stderr, "\r%s\n", line.c_str());
    width_ = 0;
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

}  // namespace opgraph::cli
