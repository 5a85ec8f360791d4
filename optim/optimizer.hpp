// Optimizers and learning-rate schedules: they read (parameter, gradient) pairs from a
// plan and update the parameters in place.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <opgraph/graph/plan.hpp>

namespace opgraph {

/// How the learning rate changes during training. Time t counts epochs, with fractions
/// inside an epoch, so a schedule reads the same for any batch size.
struct Schedule {
  enum class Kind : std::uint8_t { constant, step, exponential, cosine };
  Kind kind = Kind::constant;
  double every = 10.0;    // step: epochs between drops
  double gamma = 0.1;     // step: factor per drop; exponential: factor per epoch
  double epochs = 0.0;    // cosine: epochs from the base rate down to min_lr (0: the training length)
  double min_lr = 0.0;    // cosine: the floor
  double warmup = 0.0;    // linear warmup from 0 over this many epochs, before any kind

  /// The learning rate at time t for base rate `lr`.
  double rate(double lr, double t) const;
  /// "cosine(epochs=100, min_lr=0)", "step(every=30, gamma=0.1) after warmup(5)".
  std::string str() const;
};

/// Options of every optimizer. NaN (the default of lr and weight_decay) means "the
/// optimizer's own default": lr 0.01 for sgd, momentum, nesterov; 1e-3 for adam, adamw,
/// rmsprop; weight decay 0.01 for adamw, 0 otherwise (the table optimizer_help prints).
struct OptimizerOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();
  double momentum = 0.9;      // gamma of momentum and nesterov
  double beta1 = 0.9;         // adam, adamw
  double beta2 = 0.999;       // adam, adamw
  double eps = 1e-8;          // adam, adamw, rmsprop
  double rho = 0.99;          // rmsprop: decay of the squared-gradient average
  double weight_decay = std::numeric_limits<double>::quiet_NaN();  // L2: adds wd * w to the gradient; adamw: decoupled
  double clip_norm = 0.0;     // scale gradients down to this global L2 norm (0: off)
  Schedule schedule = {};
};

/// Base of every optimizer. step() clips the gradients to `clip_norm` (one global norm over
/// every parameter) and applies the rule to each parameter. State (velocities, moments)
/// is created on the first step, named "<parameter>.<kind>", and can be saved and
/// restored for checkpoints.
class Optimizer {
 public:
  Optimizer(std::string name, OptimizerOptions options);
  virtual ~Optimizer() = default;

  /// One update of every parameter from its gradient.
  void step(const std::vector<ParamSlot>& params);
  /// Training time in epochs; drives the schedule.
  void set_time(double epochs) { time_ = epochs; }
  double time() const { return time_; }
  /// The learning rate the next step uses.
  double learning_rate() const { return options_.schedule.rate(options_.lr, time_); }
  /// Updates done so far.
  std::int64_t steps() const { return steps_; }
  /// The global gradient norm seen by the last step, before clipping; NaN when clipping is
  /// off (the norm costs a pass over every gradient; grad_norm() computes it on demand).
  double last_grad_norm() const { return last_norm_; }

  const std::string& name() const { return name_; }
  const OptimizerOptions& options() const { return options_; }
  OptimizerOptions& options() { return options_; }
  /// "momentum(lr=0.01, gamma=0.9)".
  std::string describe() const;

  /// Every state tensor by name, for a checkpoint.
  const std::vector<std::pair<std::string, Tensor>>& state() const { return state_; }
  /// Restores state saved from an optimizer of the same kind; throws DataError on a mismatch.
  void load_state(std::vector<std::pair<std::string, Tensor>> state, std::int64_t steps, double time);

 protected:
  /// Applies the rule to one parameter. `scale` multiplies the gradient (clipping);
  /// `t` is the 1-based step number.
  /// step() updates the parameters side by side when they hold work enough, so update()
  /// may run on several threads at once (each call on its own parameter).
  virtual void update(const ParamSlot& p, double lr, double scale, std::int64_t t) = 0;
  /// The kinds of state tensor update() keeps for every parameter ("velocity"; "m", "v"):
  /// step() creates them, in parameter order, before the updates start.
  virtual std::span<const char* const> state_kinds() const { return {}; }
  /// The buffer of state tensor `<param>.<kind>`, zero-filled like `like` on first use.
  /// A pointer to the values, which stay put: a reference to the tensor would dangle once
  /// the next state tensor is added, and a copy of its handle would allocate its shape.
  /// Within update(), only kinds that state_kinds() declares (GraphError otherwise).
  void* state_buffer(const std::string& param, const char* kind, const Tensor& like);
  virtual std::string describe_options() const = 0;

  OptimizerOptions options_;

 private:
  std::string name_;
  std::vector<std::pair<std::string, Tensor>> state_;
  std::int64_t steps_ = 0;
  bool updating_ = false;  // inside step()'s updates: state_ is read-only
  double time_ = 0.0;
  double last_norm_ = 0.0;
};

/// The global L2 norm of every gradient, as clipping measures it.
double grad_norm(const std::vector<ParamSlot>& params);

/// w -= lr * g
std::unique_ptr<Optimizer> make_sgd(OptimizerOptions options);
/// Classical momentum as the reference experiments write it: v = gamma v + lr g; w -= v.
std::unique_ptr<Optimizer> make_momentum(OptimizerOptions options);
/// Nesterov momentum in the same form: v = gamma v + lr g; w -= gamma v + lr g.
std::unique_ptr<Optimizer> make_nesterov(OptimizerOptions options);
/// Adam with bias correction: m, v moments; w -= lr m^ / (sqrt(v^) + eps).
std::unique_ptr<Optimizer> make_adam(OptimizerOptions options);
/// AdamW: Adam with decoupled weight decay, w -= lr wd w, not through the gradient.
std::unique_ptr<Optimizer> make_adamw(OptimizerOptions options);
/// RMSProp: s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps).
std::unique_ptr<Optimizer> make_rmsprop(OptimizerOptions options);

/// By name: sgd, momentum, nesterov, adam, adamw, rmsprop. Throws ParseError for an
/// unknown name or a learning rate that is not positive.
std::unique_ptr<Optimizer> make_optimizer(std::string_view kind, OptimizerOptions options);
std::vector<std::string> optimizer_names();
/// Every optimizer, its default learning rate, rule and keys: what `opgraph train --help` shows.
std::string optimizer_help();

/// From a spec such as "momentum:lr=0.01,gamma=0.9" or
/// "adam:lr=1e-3,wd=1e-4,clip=1,schedule=cosine,warmup=2". Keys: lr, gamma (or
/// momentum), beta1, beta2, eps, rho, wd (or weight_decay), clip (or clip_norm),
/// schedule=constant|step|exp|cosine, every, decay (the schedule's factor), epochs, min_lr,
/// warmup. Throws ParseError naming the bad part, with a suggestion.
std::unique_ptr<Optimizer> parse_optimizer(std::string_view spec);

}  // namespace opgraph
