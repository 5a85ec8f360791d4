// The update rules, clipping, schedules and the optimizer spec parser.
#include <opgraph/optim/optimizer.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <map>
#include <numbers>
#include <type_traits>

#include <fmt/format.h>

#include <opgraph/graph/kernel.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/spec.hpp>

namespace opgraph {

// ---- schedules ----

double Schedule::rate(double lr, double t) const {
  if (warmup > 0.0 && t < warmup) return lr * t / warmup;
  // Time after warmup, a hair early so that a step ending exactly on an epoch boundary
  // still belongs to the epoch it ends.
  const double u = std::max(0.0, t - warmup - 1e-9);
  switch (kind) {
    case Kind::constant: return lr;
    case Kind::step: return lr * std::pow(gamma, std::floor(u / every));
    case Kind::exponential: return lr * std::pow(gamma, u);
    case Kind::cosine: {
      if (epochs <= 0.0) return lr;
      const double x = std::min(u / epochs, 1.0);
      return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * x));
    }
  }
  return lr;
}

std::string Schedule::str() const {
  std::string s;
  switch (kind) {
    case Kind::constant: s = "constant"; break;
    case Kind::step: s = fmt::format("step(every={}, gamma={})", every, gamma); break;
    case Kind::exponential: s = fmt::format("exponential(gamma={})", gamma); break;
    case Kind::cosine: s = fmt::format("cosine(epochs={}, min_lr={})", epochs, min_lr); break;
  }
  if (warmup > 0.0) s += fmt::format(" after warmup({})", warmup);
  return s;
}

// ---- the base ----

Optimizer::Optimizer(std::string name, OptimizerOptions options) : options_(options), name_(std::move(name)) {}

namespace {

/// Calls f(w, g, n) with typed pointers for one parameter. The slot's tensors are handles
/// sharing the plan's buffers, so a const slot still gives write access to the values
/// (no handle is copied: a step allocates nothing).
template <class F>
void with_typed(const ParamSlot& p, F&& f) {
  auto* w = const_cast<void*>(p.value.raw());
  auto* g = const_cast<void*>(p.grad.raw());
  if (p.value.dtype() == DType::f32) f(static_cast<float*>(w), static_cast<float*>(g), p.value.numel());
  else f(static_cast<double*>(w), static_cast<double*>(g), p.value.numel());
}

}  // namespace

double grad_norm(const std::vector<ParamSlot>& params) {
  double norm2 = 0.0;
  for (const auto& p : params) {
    if (!p.grad.defined()) throw GraphError("optimizer", fmt::format("parameter '{}' has no gradient", p.name));
    with_typed(p, [&](auto*, auto* g, std::int64_t n) { norm2 += sum_over(n, [&](std::int64_t i) { return g[i] * g[i]; }); });
  }
  return std::sqrt(norm2);
}

void Optimizer::step(const std::vector<ParamSlot>& params) {
  for (const auto& p : params)
    if (!p.grad.defined()) throw GraphError("optimizer", fmt::format("parameter '{}' has no gradient", p.name));
  // The norm costs a pass over every gradient: only clipping pays for it.
  last_norm_ = options_.clip_norm > 0.0 ? grad_norm(params) : std::numeric_limits<double>::quiet_NaN();
  const double scale =
      options_.clip_norm > 0.0 && last_norm_ > options_.clip_norm ? options_.clip_norm / last_norm_ : 1.0;
  ++steps_;
  const double lr = learning_rate();
  detail::FloatModeGuard mode;
  for (const auto& p : params)
    for (const char* kind : state_kinds()) state_buffer(p.name, kind, p.value);
  // The parameters side by side, a task each, each update splitting further into the
  // kernels' chunks: every value is updated alone, so the bits are those of one parameter
  // after another. One after another, each small parameter was a wait for the pool of its
  // own (W6's 17 parameters at 2 threads on the Zen 5: 158 -> 113 us a step). Not with
  // less than two chunks' work in all: handing the parameters to the pool then costs more
  // than their updates (XOR's 9 weights: 0.29 -> 0.48 us a step at 1 thread, 0.94 at 2).
  std::int64_t values = 0;
  for (const auto& p : params) values += p.value.numel();
  const bool side_by_side = params.size() > 1 && values >= 2 * kElementwiseGrain;
  updating_ = true;
  try {
    if (!side_by_side)
      for (const auto& p : params) update(p, lr, scale, steps_);
    else
      parallel_for(static_cast<std::int64_t>(params.size()), 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) update(params[static_cast<std::size_t>(i)], lr, scale, steps_);
      });
  } catch (...) {
    updating_ = false;
    throw;
  }
  updating_ = false;
}

void* Optimizer::state_buffer(const std::string& param, const char* kind, const Tensor& like) {
  // "<param>.<kind>", compared piecewise so that looking it up allocates nothing.
  const std::string_view k(kind);
  auto is_key = [&](const std::string& name) {
    return name.size() == param.size() + 1 + k.size() && name.compare(0, param.size(), param) == 0 &&
           name[param.size()] == '.' && name.compare(param.size() + 1, k.size(), k) == 0;
  };
  for (auto& [name, t] : state_)
    if (is_key(name)) {
      if (t.shape() != like.shape() || t.dtype() != like.dtype())
        throw DataError("optimizer state",
                        fmt::format("'{}' has shape {} {}, the parameter has {} {}", name, t.shape(), t.dtype(),
                                    like.shape(), like.dtype()));
      return t.raw();
    }
  if (updating_)
    throw GraphError("optimizer", fmt::format("{} asks for state '{}.{}' that its state_kinds() does not declare: "
                                              "declare it there, so that step() creates it before the updates start",
                                              name_, param, kind));
  state_.emplace_back(param + "." + kind, Tensor(like.shape(), like.dtype()));
  return state_.back().second.raw();
}

void Optimizer::load_state(std::vector<std::pair<std::string, Tensor>> state, std::int64_t steps, double time) {
  state_ = std::move(state);
  steps_ = steps;
  time_ = time;
}

std::string Optimizer::describe() const {
  std::string s = name_ + "(lr=" + fmt::format("{}", options_.lr) + describe_options();
  if (options_.weight_decay > 0.0) s += fmt::format(", wd={}", options_.weight_decay);
  if (options_.clip_norm > 0.0) s += fmt::format(", clip={}", options_.clip_norm);
  s += ")";
  if (options_.schedule.kind != Schedule::Kind::constant || options_.schedule.warmup > 0.0)
    s += ", schedule " + options_.schedule.str();
  return s;
}

// ---- the rules ----

namespace {

/// y[i] = f(i) for every element, in the fixed chunks of the kernels.
template <class F>
void each(std::int64_t n, F f) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) f(i);
  });
}

class Sgd final : public Optimizer {
 public:
  using Optimizer::Optimizer;

 protected:
  void update(const ParamSlot& p, double lr, double scale, std::int64_t) override {
    const double wd = options_.weight_decay;
    with_typed(p, [&](auto* w, auto* g, std::int64_t n) {
      using T = std::remove_pointer_t<decltype(w)>;
      const T a = static_cast<T>(lr * scale), b = static_cast<T>(lr * wd);
      each(n, [&](std::int64_t i) { w[i] -= a * g[i] + b * w[i]; });
    });
  }
  std::string describe_options() const override { return ""; }
};

class Momentum final : public Optimizer {
 public:
  Momentum(std::string name, OptimizerOptions o, bool nesterov) : Optimizer(std::move(name), o), nesterov_(nesterov) {}

 protected:
  void update(const ParamSlot& p, double lr, double scale, std::int64_t) override {
    void* velocity = state_buffer(p.name, "velocity", p.value);
    const double wd = options_.weight_decay, gamma = options_.momentum;
    with_typed(p, [&](auto* w, auto* g, std::int64_t n) {
      using T = std::remove_pointer_t<decltype(w)>;
      T* v = static_cast<T*>(velocity);
      const T ga = static_cast<T>(gamma), s = static_cast<T>(scale), d = static_cast<T>(wd), l = static_cast<T>(lr);
      each(n, [&](std::int64_t i) {
        const T step = l * (s * g[i] + d * w[i]);
        v[i] = ga * v[i] + step;
        w[i] -= nesterov_ ? ga * v[i] + step : v[i];
      });
    });
  }
  std::string describe_options() const override { return fmt::format(", gamma={}", options_.momentum); }
  std::span<const char* const> state_kinds() const override { return kKinds; }
  static constexpr const char* kKinds[] = {"velocity"};

 private:
  bool nesterov_;
};

class Adam final : public Optimizer {
 public:
  Adam(std::string name, OptimizerOptions o, bool decoupled) : Optimizer(std::move(name), o), decoupled_(decoupled) {}

 protected:
  void update(const ParamSlot& p, double lr, double scale, std::int64_t t) override {
    void* m_state = state_buffer(p.name, "m", p.value);
    void* v_state = state_buffer(p.name, "v", p.value);
    const double b1 = options_.beta1, b2 = options_.beta2;
    const double c1 = 1.0 - std::pow(b1, static_cast<double>(t)), c2 = 1.0 - std::pow(b2, static_cast<double>(t));
    with_typed(p, [&](auto* w, auto* g, std::int64_t n) {
      using T = std::remove_pointer_t<decltype(w)>;
      T* m = static_cast<T*>(m_state);
      T* v = static_cast<T*>(v_state);
      const T s = static_cast<T>(scale), l = static_cast<T>(lr), eps = static_cast<T>(options_.eps);
      const T beta1 = static_cast<T>(b1), beta2 = static_cast<T>(b2);
      const T inv_c1 = static_cast<T>(1.0 / c1), inv_c2 = static_cast<T>(1.0 / c2);
      const T l2 = decoupled_ ? T(0) : static_cast<T>(options_.weight_decay);
      const T decay = decoupled_ ? static_cast<T>(lr * options_.weight_decay) : T(0);
      each(n, [&](std::int64_t i) {
        w[i] -= decay * w[i];
        const T gi = s * g[i] + l2 * w[i];
        m[i] = beta1 * m[i] + (T(1) - beta1) * gi;
        v[i] = beta2 * v[i] + (T(1) - beta2) * gi * gi;
        w[i] -= l * (m[i] * inv_c1) / (std::sqrt(v[i] * inv_c2) + eps);
      });
    });
  }
  std::string describe_options() const override {
    return fmt::format(", beta1={}, beta2={}, eps={}", options_.beta1, options_.beta2, options_.eps);
  }
  std::span<const char* const> state_kinds() const override { return kKinds; }
  static constexpr const char* kKinds[] = {"m", "v"};

 private:
  bool decoupled_;
};

class RmsProp final : public Optimizer {
 public:
  using Optimizer::Optimizer;

 protected:
  void update(const ParamSlot& p, double lr, double scale, std::int64_t) override {
    void* sq_state = state_buffer(p.name, "square_avg", p.value);
    with_typed(p, [&](auto* w, auto* g, std::int64_t n) {
      using T = std::remove_pointer_t<decltype(w)>;
      T* sq = static_cast<T*>(sq_state);
      const T s = static_cast<T>(scale), l = static_cast<T>(lr), eps = static_cast<T>(options_.eps);
      const T rho = static_cast<T>(options_.rho), d = static_cast<T>(options_.weight_decay);
      each(n, [&](std::int64_t i) {
        const T gi = s * g[i] + d * w[i];
        sq[i] = rho * sq[i] + (T(1) - rho) * gi * gi;
        w[i] -= l * gi / (std::sqrt(sq[i]) + eps);
      });
    });
  }
  std::string describe_options() const override { return fmt::format(", rho={}, eps={}", options_.rho, options_.eps); }
  std::span<const char* const> state_kinds() const override { return kKinds; }
  static constexpr const char* kKinds[] = {"square_avg"};
};

}  // namespace

namespace {

/// Every optimizer in one table: its name, what it does, the keys of its spec beyond the
/// common ones, its defaults, and how to make it.
struct OptimizerKind {
  const char* name;
  const char* doc;
  std::vector<std::string> keys;
  double lr;
  double weight_decay;
  std::unique_ptr<Optimizer> (*make)(OptimizerOptions);
};

const std::vector<std::string> kCommonKeys = {"lr",       "wd",    "weight_decay", "clip",   "clip_norm",
                                              "schedule", "every", "decay",        "epochs", "min_lr", "warmup"};

const std::vector<OptimizerKind>& kinds() {
  static const std::vector<OptimizerKind> k = {
      {"sgd", "w -= lr g", {}, 0.01, 0.0, [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<Sgd>("sgd", o); }},
      {"momentum", "v = gamma v + lr g; w -= v", {"gamma", "momentum"}, 0.01, 0.0,
       [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<Momentum>("momentum", o, false); }},
      {"nesterov", "v = gamma v + lr g; w -= gamma v + lr g", {"gamma", "momentum"}, 0.01, 0.0,
       [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<Momentum>("nesterov", o, true); }},
      {"adam", "bias-corrected moments; w -= lr m / (sqrt(v) + eps)", {"beta1", "beta2", "eps"}, 1e-3, 0.0,
       [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<Adam>("adam", o, false); }},
      {"adamw", "adam with decoupled weight decay (default wd 0.01)", {"beta1", "beta2", "eps"}, 1e-3, 0.01,
       [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<Adam>("adamw", o, true); }},
      {"rmsprop", "s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps)", {"rho", "eps"}, 1e-3, 0.0,
       [](OptimizerOptions o) -> std::unique_ptr<Optimizer> { return std::make_unique<RmsProp>("rmsprop", o); }},
  };
  return k;
}

const OptimizerKind* find_kind(std::string_view name) {
  if (name == "gd") name = "sgd";
  for (const auto& k : kinds())
    if (name == k.name) return &k;
  return nullptr;
}

/// Fills what the caller left to the optimizer (NaN): its own learning rate and decay.
OptimizerOptions with_defaults(const OptimizerKind& k, OptimizerOptions o) {
  if (std::isnan(o.lr)) o.lr = k.lr;
  if (std::isnan(o.weight_decay)) o.weight_decay = k.weight_decay;
  return o;
}

}  // namespace

std::unique_ptr<Optimizer> make_sgd(OptimizerOptions o) { return make_optimizer("sgd", o); }
std::unique_ptr<Optimizer> make_momentum(OptimizerOptions o) { return make_optimizer("momentum", o); }
std::unique_ptr<Optimizer> make_nesterov(OptimizerOptions o) { return make_optimizer("nesterov", o); }
std::unique_ptr<Optimizer> make_adam(OptimizerOptions o) { return make_optimizer("adam", o); }
std::unique_ptr<Optimizer> make_adamw(OptimizerOptions o) { return make_optimizer("adamw", o); }
std::unique_ptr<Optimizer> make_rmsprop(OptimizerOptions o) { return make_optimizer("rmsprop", o); }

std::vector<std::string> optimizer_names() {
  std::vector<std::string> out;
  for (const auto& k : kinds()) out.emplace_back(k.name);
  return out;
}

std::string optimizer_help() {
  std::string s = "Optimizer specs: NAME[:key=value,...]\n\nOptimizers (default lr; keys beyond the common ones):\n";
  for (const auto& k : kinds())
    s += fmt::format("  {:<9} lr {:<6} {}{}\n", k.name, k.lr, k.doc,
                     k.keys.empty() ? std::string() : fmt::format(" [{}]", fmt::join(k.keys, ", ")));
  s += fmt::format("\nCommon keys: {}\n", fmt::join(kCommonKeys, ", "));
  return s;
}

std::unique_ptr<Optimizer> make_optimizer(std::string_view name, OptimizerOptions o) {
  const OptimizerKind* k = find_kind(name);
  if (!k) throw ParseError(fmt::format("unknown optimizer '{}'{}", name, suggestion(name, optimizer_names())));
  o = with_defaults(*k, o);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) throw ParseError(fmt::format("{}: lr must be positive, got {}", k->name, o.lr));
  return k->make(o);
}

std::unique_ptr<Optimizer> parse_optimizer(std::string_view text) {
  const Spec spec(text, "optimizer");
  const OptimizerKind* k = find_kind(spec.name());
  if (!k) spec.fail(fmt::format("unknown optimizer '{}'{}", spec.name(), suggestion(spec.name(), optimizer_names())));
  std::vector<std::string> keys = k->keys;
  keys.insert(keys.end(), kCommonKeys.begin(), kCommonKeys.end());
  spec.allow(keys, [&](const std::string& key) -> std::string {
    std::vector<std::string> owners;
    for (const auto& other : kinds())
      if (std::find(other.keys.begin(), other.keys.end(), key) != other.keys.end()) owners.emplace_back(other.name);
    if (owners.empty()) return {};
    return fmt::format("did you mean the {} optimizer?", fmt::join(owners, " or "));
  });
  if (spec.has("gamma") && spec.has("momentum")) spec.fail("gamma and momentum are the same key: give one");
  if (spec.has("wd") && spec.has("weight_decay")) spec.fail("wd and weight_decay are the same key: give one");
  if (spec.has("clip") && spec.has("clip_norm")) spec.fail("clip and clip_norm are the same key: give one");
  constexpr double inf = std::numeric_limits<double>::infinity();
  OptimizerOptions o;
  o.lr = spec.real("lr", k->lr, 0.0, inf, true);
  const char* gamma = spec.has("momentum") ? "momentum" : "gamma";
  o.momentum = spec.real(gamma, o.momentum, 0.0, 1.0, false, true);
  o.beta1 = spec.real("beta1", o.beta1, 0.0, 1.0, false, true);
  o.beta2 = spec.real("beta2", o.beta2, 0.0, 1.0, false, true);
  o.rho = spec.real("rho", o.rho, 0.0, 1.0, false, true);
  o.eps = spec.real("eps", o.eps, 0.0, inf, true);
  o.weight_decay = spec.real(spec.has("wd") ? "wd" : "weight_decay", k->weight_decay, 0.0, inf);
  o.clip_norm = spec.real(spec.has("clip") ? "clip" : "clip_norm", 0.0, 0.0, inf);
  const std::string schedule = spec.choice("schedule", "constant", {"constant", "step", "exp", "exponential", "cosine"});
  o.schedule.kind = schedule == "step"                              ? Schedule::Kind::step
                    : schedule == "exp" || schedule == "exponential" ? Schedule::Kind::exponential
                    : schedule == "cosine"                            ? Schedule::Kind::cosine
                                                                      : Schedule::Kind::constant;
  // A schedule key the chosen schedule does not read would be silently ignored.
  auto only_for = [&](const char* key, const char* schedules, bool ok) {
    if (spec.has(key) && !ok) spec.fail(fmt::format("{} applies to schedule={}, not {}", key, schedules, schedule));
  };
  only_for("every", "step", o.schedule.kind == Schedule::Kind::step);
  only_for("decay", "step or exp", o.schedule.kind == Schedule::Kind::step || o.schedule.kind == Schedule::Kind::exponential);
  only_for("epochs", "cosine", o.schedule.kind == Schedule::Kind::cosine);
  only_for("min_lr", "cosine", o.schedule.kind == Schedule::Kind::cosine);
  o.schedule.every = spec.real("every", o.schedule.every, 0.0, inf, true);
  o.schedule.gamma = spec.real("decay", o.schedule.gamma, 0.0, inf, true);
  o.schedule.epochs = spec.real("epochs", o.schedule.epochs, 0.0, inf);
  o.schedule.min_lr = spec.real("min_lr", o.schedule.min_lr, 0.0, inf);
  o.schedule.warmup = spec.real("warmup", o.schedule.warmup, 0.0, inf);
  return k->make(o);
}

}  // namespace opgraph
