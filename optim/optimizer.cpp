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
  for (const auto& p : params) update(p, lr, scale, steps_);
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
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(OptimizerOptions o) { return std::make_unique<Sgd>("sgd", o); }
std::unique_ptr<Optimizer> make_momentum(OptimizerOptions o) { return std::make_unique<Momentum>("momentum", o, false); }
std::unique_ptr<Optimizer> make_nesterov(OptimizerOptions o) { return std::make_unique<Momentum>("nesterov", o, true); }
std::unique_ptr<Optimizer> make_adam(OptimizerOptions o) { return std::make_unique<Adam>("adam", o, false); }
std::unique_ptr<Optimizer> make_adamw(OptimizerOptions o) { return std::make_unique<Adam>("adamw", o, true); }
std::unique_ptr<Optimizer> make_rmsprop(OptimizerOptions o) { return std::make_unique<RmsProp>("rmsprop", o); }

std::vector<std::string> optimizer_names() { return {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"}; }

std::unique_ptr<Optimizer> make_optimizer(std::string_view kind, OptimizerOptions o) {
  if (kind == "sgd" || kind == "gd") return make_sgd(o);
  if (kind == "momentum") return make_momentum(o);
  if (kind == "nesterov") return make_nesterov(o);
  if (kind == "adam") return make_adam(o);
  if (kind == "adamw") return make_adamw(o);
  if (kind == "rmsprop") return make_rmsprop(o);
  throw ParseError(fmt::format("unknown optimizer '{}'{}", kind, suggestion(kind, optimizer_names())));
}

std::unique_ptr<Optimizer> parse_optimizer(std::string_view spec) {
  const std::string where = fmt::format("optimizer '{}'", spec);
  const std::size_t colon = spec.find(':');
  const std::string_view kind = spec.substr(0, colon);
  if (kind.empty()) throw ParseError(where, "expected a name such as sgd, momentum or adam before ':'");
  OptimizerOptions o;
  if (kind == "momentum" || kind == "nesterov") o.lr = 0.01;
  if (kind == "adam" || kind == "adamw" || kind == "rmsprop") o.lr = 1e-3;
  if (kind == "adamw") o.weight_decay = 0.01;
  if (colon != std::string_view::npos) {
    std::string_view rest = spec.substr(colon + 1);
    static const std::vector<std::string> keys = {"lr",   "gamma",  "momentum", "beta1", "beta2", "eps",
                                                  "rho",  "wd",     "weight_decay", "clip", "clip_norm", "schedule",
                                                  "every", "decay", "epochs",   "min_lr", "warmup"};
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      const std::size_t eq = item.find('=');
      if (eq == std::string_view::npos) throw ParseError(where, fmt::format("expected key=value, got '{}'", item));
      const std::string key(item.substr(0, eq));
      const std::string_view text = item.substr(eq + 1);
      if (key == "schedule") {
        if (text == "constant") o.schedule.kind = Schedule::Kind::constant;
        else if (text == "step") o.schedule.kind = Schedule::Kind::step;
        else if (text == "exp" || text == "exponential") o.schedule.kind = Schedule::Kind::exponential;
        else if (text == "cosine") o.schedule.kind = Schedule::Kind::cosine;
        else {
          const std::vector<std::string> kinds = {"constant", "step", "exp", "cosine"};
          throw ParseError(where, fmt::format("unknown schedule '{}'{}", text, suggestion(text, kinds)));
        }
        continue;
      }
      double v = 0.0;
      const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
        throw ParseError(where, fmt::format("{}: '{}' is not a number", key, text));
      auto non_negative = [&] {
        if (v < 0) throw ParseError(where, fmt::format("{} must not be negative, got {}", key, v));
      };
      if (key == "lr") {
        if (v <= 0) throw ParseError(where, fmt::format("lr must be positive, got {}", v));
        o.lr = v;
      } else if (key == "gamma" || key == "momentum") {
        if (v < 0 || v >= 1) throw ParseError(where, fmt::format("{} must be in [0, 1), got {}", key, v));
        o.momentum = v;
      } else if (key == "beta1" || key == "beta2" || key == "rho") {
        if (v < 0 || v >= 1) throw ParseError(where, fmt::format("{} must be in [0, 1), got {}", key, v));
        (key == "beta1" ? o.beta1 : key == "beta2" ? o.beta2 : o.rho) = v;
      } else if (key == "eps") {
        if (v <= 0) throw ParseError(where, fmt::format("eps must be positive, got {}", v));
        o.eps = v;
      } else if (key == "wd" || key == "weight_decay") {
        non_negative();
        o.weight_decay = v;
      } else if (key == "clip" || key == "clip_norm") {
        non_negative();
        o.clip_norm = v;
      } else if (key == "every") {
        if (v <= 0) throw ParseError(where, fmt::format("every must be positive, got {}", v));
        o.schedule.every = v;
      } else if (key == "decay") {
        if (v <= 0) throw ParseError(where, fmt::format("decay must be positive, got {}", v));
        o.schedule.gamma = v;
      } else if (key == "epochs") {
        non_negative();
        o.schedule.epochs = v;
      } else if (key == "min_lr") {
        non_negative();
        o.schedule.min_lr = v;
      } else if (key == "warmup") {
        non_negative();
        o.schedule.warmup = v;
      } else {
        throw ParseError(where, fmt::format("unknown key '{}'{}", key, suggestion(key, keys)));
      }
    }
  }
  try {
    return make_optimizer(kind, o);
  } catch (const ParseError& e) {
    throw ParseError(where, e.detail());
  }
}

}  // namespace opgraph
