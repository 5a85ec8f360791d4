// Optimizers against values computed by hand for three steps; clipping, schedules, specs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>

#include <opgraph/graph/parallel.hpp>
#include <opgraph/optim/optimizer.hpp>

using namespace opgraph;

namespace {

/// Runs three steps from w = [1, -2] with gradients [0.5, -1], [0.1, 0.2], [-0.3, 0.4]
/// and returns w after each step.
std::vector<std::vector<double>> three_steps(Optimizer& opt) {
  ParamSlot p{"w", Tensor::from({2}, {1.0, -2.0}, DType::f64), Tensor({2}, DType::f64)};
  const double grads[3][2] = {{0.5, -1.0}, {0.1, 0.2}, {-0.3, 0.4}};
  std::vector<std::vector<double>> out;
  for (const auto& g : grads) {
    p.grad.set(0, g[0]);
    p.grad.set(1, g[1]);
    opt.step({p});
    out.push_back(p.value.to_vector());
  }
  return out;
}

void check_steps(Optimizer& opt, const std::vector<std::vector<double>>& expected) {
  const auto got = three_steps(opt);
  for (std::size_t s = 0; s < 3; ++s)
    for (std::size_t i = 0; i < 2; ++i) {
      CAPTURE(s);
      CAPTURE(i);
      CHECK(got[s][i] == doctest::Approx(expected[s][i]).epsilon(1e-12));
    }
}

}  // namespace

TEST_CASE("optim: sgd, with and without L2 weight decay") {
  check_steps(*make_sgd({.lr = 0.1}), {{0.95, -1.9}, {0.94, -1.92}, {0.97, -1.96}});
  check_steps(*make_sgd({.lr = 0.1, .weight_decay = 0.01}),
              {{0.949, -1.898}, {0.938051, -1.916102}, {0.967112949, -1.954185898}});
}

TEST_CASE("optim: classical momentum v = gamma v + lr g, w -= v") {
  check_steps(*make_momentum({.lr = 0.1, .momentum = 0.9}), {{0.95, -1.9}, {0.895, -1.83}, {0.8755, -1.807}});
}

TEST_CASE("optim: nesterov") {
  check_steps(*make_nesterov({.lr = 0.1, .momentum = 0.9}),
              {{0.905, -1.81}, {0.8455, -1.767}, {0.85795, -1.7863}});
}

TEST_CASE("optim: adam with bias correction") {
  check_steps(*make_adam({.lr = 0.1}), {{0.900000002, -1.900000001},
                                        {0.8196959063846518, -1.8488973939904947},
                                        {0.7986246117635081, -1.8354734342081562}});
}

TEST_CASE("optim: adamw decays the weights outside the gradient") {
  check_steps(*make_adamw({.lr = 0.1, .weight_decay = 0.1}), {{0.890000002, -1.880000001},
                                                               {0.8007959063646517, -1.8100973939804947},
                                                               {0.7717166526798616, -1.7785724602583513}});
}

TEST_CASE("optim: rmsprop") {
  check_steps(*make_rmsprop({.lr = 0.1, .rho = 0.99}), {{1.9999996048181146e-07, -1.0000000999999905},
                                                        {-0.19706561679795428, -1.1970659362153753},
                                                        {0.31374374046542775, -1.5653425672739716}});
}

TEST_CASE("optim: gradients are clipped to a global norm over every parameter") {
  auto sgd = make_sgd({.lr = 1.0, .clip_norm = 1.0});
  ParamSlot a{"a", Tensor::from({1}, {1.0}, DType::f64), Tensor::from({1}, {3.0}, DType::f64)};
  ParamSlot b{"b", Tensor::from({1}, {-2.0}, DType::f64), Tensor::from({1}, {4.0}, DType::f64)};
  sgd->step({a, b});
  CHECK(sgd->last_grad_norm() == doctest::Approx(5.0));
  CHECK(a.value.at(0) == doctest::Approx(0.4));
  CHECK(b.value.at(0) == doctest::Approx(-2.8));
  // Under the limit nothing changes.
  auto loose = make_sgd({.lr = 1.0, .clip_norm = 10.0});
  loose->step({a, b});
  CHECK(a.value.at(0) == doctest::Approx(0.4 - 3.0));
}

TEST_CASE("optim: learning-rate schedules") {
  Schedule step{.kind = Schedule::Kind::step, .every = 10, .gamma = 0.5};
  CHECK(step.rate(1.0, 1.0) == 1.0);
  CHECK(step.rate(1.0, 10.0) == 1.0);  // a step ending exactly at epoch 10 still belongs to epoch 10
  CHECK(step.rate(1.0, 10.5) == 0.5);
  CHECK(step.rate(1.0, 25.0) == 0.25);
  Schedule exp{.kind = Schedule::Kind::exponential, .gamma = 0.9};
  CHECK(exp.rate(2.0, 3.0) == doctest::Approx(2.0 * 0.729));
  Schedule cosine{.kind = Schedule::Kind::cosine, .epochs = 100, .min_lr = 0.1};
  CHECK(cosine.rate(1.0, 0.0) == doctest::Approx(1.0));
  CHECK(cosine.rate(1.0, 50.0) == doctest::Approx(0.55));
  CHECK(cosine.rate(1.0, 100.0) == doctest::Approx(0.1));
  CHECK(cosine.rate(1.0, 150.0) == doctest::Approx(0.1));
  Schedule warm{.kind = Schedule::Kind::cosine, .epochs = 10, .warmup = 5};
  CHECK(warm.rate(1.0, 1.0) == doctest::Approx(0.2));
  CHECK(warm.rate(1.0, 5.0) == doctest::Approx(1.0));
  CHECK(warm.rate(1.0, 10.0) == doctest::Approx(0.5));
  CHECK(warm.str() == "cosine(epochs=10, min_lr=0) after warmup(5)");

  auto sgd = make_sgd({.lr = 1.0, .schedule = step});
  sgd->set_time(12.0);
  CHECK(sgd->learning_rate() == 0.5);
}

TEST_CASE("optim: state is named per parameter and can be restored") {
  auto a = make_adam({.lr = 0.1});
  const auto first = three_steps(*a);
  REQUIRE(a->state().size() == 2);
  CHECK(a->state()[0].first == "w.m");
  CHECK(a->state()[1].first == "w.v");
  CHECK(a->steps() == 3);

  // Two steps, save, restore into a fresh optimizer, third step: the same as three straight.
  auto b = make_adam({.lr = 0.1});
  ParamSlot p{"w", Tensor::from({2}, {1.0, -2.0}, DType::f64), Tensor({2}, DType::f64)};
  const double grads[3][2] = {{0.5, -1.0}, {0.1, 0.2}, {-0.3, 0.4}};
  for (int s = 0; s < 2; ++s) {
    p.grad.set(0, grads[s][0]);
    p.grad.set(1, grads[s][1]);
    b->step({p});
  }
  std::vector<std::pair<std::string, Tensor>> saved;
  for (const auto& [name, t] : b->state()) saved.emplace_back(name, t.clone());
  auto c = make_adam({.lr = 0.1});
  c->load_state(saved, b->steps(), b->time());
  p.grad.set(0, grads[2][0]);
  p.grad.set(1, grads[2][1]);
  c->step({p});
  CHECK(p.value.at(0) == first[2][0]);
  CHECK(p.value.at(1) == first[2][1]);
}

TEST_CASE("optim: specs name an optimizer, its hyper-parameters and a schedule") {
  auto m = parse_optimizer("momentum:lr=0.01,gamma=0.9");
  CHECK(m->name() == "momentum");
  CHECK(m->options().lr == 0.01);
  CHECK(m->options().momentum == 0.9);
  CHECK(m->describe() == "momentum(lr=0.01, gamma=0.9)");
  auto a = parse_optimizer("adam:lr=1e-3,wd=1e-4,clip=1,schedule=cosine,warmup=2");
  CHECK(a->options().lr == 1e-3);
  CHECK(a->options().weight_decay == 1e-4);
  CHECK(a->options().clip_norm == 1.0);
  CHECK(a->options().schedule.kind == Schedule::Kind::cosine);
  CHECK(a->options().schedule.warmup == 2.0);
  CHECK(parse_optimizer("sgd")->options().lr == 0.01);
  CHECK(parse_optimizer("adam")->options().lr == 1e-3);

  CHECK_THROWS_WITH_AS(parse_optimizer("adma:lr=0.1"), "optimizer 'adma:lr=0.1': unknown optimizer 'adma' (did you mean 'adam'?)",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:lr=fast"), "optimizer 'sgd:lr=fast': lr: 'fast' is not a number", ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:lr=-1"), "optimizer 'sgd:lr=-1': lr must be positive, got -1", ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:lf=0.1"), "optimizer 'sgd:lf=0.1': unknown key 'lf' for sgd (did you mean 'lr'?)",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("momentum:gamma=1.5"),
                       "optimizer 'momentum:gamma=1.5': gamma must be in [0, 1), got 1.5", ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:schedule=cosin"),
                       "optimizer 'sgd:schedule=cosin': schedule: expected constant, step, exp, exponential, cosine, got "
                       "'cosin' (did you mean 'cosine'?)", ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer(":lr=1"),
                       "optimizer ':lr=1': expected a name before ':'", ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:lr"), "optimizer 'sgd:lr': lr needs a value (lr=...)", ParseError);
  // A key of another optimizer is not silently ignored; nor is a key given twice, or a
  // schedule key the chosen schedule does not read.
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:momentum=0.9"),
                       "optimizer 'sgd:momentum=0.9': unknown key 'momentum' for sgd (did you mean the momentum or "
                       "nesterov optimizer?)",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("adam:rho=0.9"),
                       "optimizer 'adam:rho=0.9': unknown key 'rho' for adam (did you mean the rmsprop optimizer?)",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:lr=0.1,lr=0.2"), "optimizer 'sgd:lr=0.1,lr=0.2': key 'lr' given twice",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:every=3"), "optimizer 'sgd:every=3': every applies to schedule=step, not constant",
                       ParseError);
  CHECK_THROWS_WITH_AS(parse_optimizer("sgd:"), "optimizer 'sgd:': nothing after 'sgd:': drop the ':' or add key=value",
                       ParseError);
}

TEST_CASE("optim: the factories and the specs agree on every default") {
  for (const auto& name : optimizer_names()) {
    CAPTURE(name);
    const auto made = make_optimizer(name, {});
    const auto parsed = parse_optimizer(name);
    CHECK(made->options().lr == parsed->options().lr);
    CHECK(made->options().weight_decay == parsed->options().weight_decay);
    CHECK(made->describe() == parsed->describe());
  }
  CHECK(make_adam({})->options().lr == 1e-3);
  CHECK(make_adamw({})->options().weight_decay == 0.01);
  CHECK(make_sgd({.lr = 0.5})->options().lr == 0.5);
  CHECK_THROWS_WITH_AS(make_sgd({.lr = -1.0}), "sgd: lr must be positive, got -1", ParseError);
}

namespace {

/// An independent reference of one optimizer step, written from the rules in
/// docs/design.md in plain double arithmetic: clip by the global norm of the raw gradients,
/// add L2 decay (not for adamw, which decays the weights directly), then the rule.
struct Reference {
  std::string kind;
  OptimizerOptions o;
  std::vector<std::vector<double>> v, m, s;  // per parameter
  int t = 0;

  void step(std::vector<std::vector<double>>& w, const std::vector<std::vector<double>>& g, double lr) {
    if (v.empty()) {
      for (const auto& p : w) {
        v.emplace_back(p.size(), 0.0);
        m.emplace_back(p.size(), 0.0);
        s.emplace_back(p.size(), 0.0);
      }
    }
    ++t;
    double norm2 = 0.0;
    for (const auto& p : g)
      for (double x : p) norm2 += x * x;
    const double norm = std::sqrt(norm2);
    const double scale = o.clip_norm > 0 && norm > o.clip_norm ? o.clip_norm / norm : 1.0;
    for (std::size_t k = 0; k < w.size(); ++k)
      for (std::size_t i = 0; i < w[k].size(); ++i) {
        double& x = w[k][i];
        const double decay = kind == "adamw" ? 0.0 : o.weight_decay;
        const double gi = scale * g[k][i] + decay * x;
        if (kind == "sgd") {
          x -= lr * gi;
        } else if (kind == "momentum" || kind == "nesterov") {
          v[k][i] = o.momentum * v[k][i] + lr * gi;
          x -= kind == "momentum" ? v[k][i] : o.momentum * v[k][i] + lr * gi;
        } else if (kind == "adam" || kind == "adamw") {
          if (kind == "adamw") x -= lr * o.weight_decay * x;
          const double gg = kind == "adamw" ? scale * g[k][i] : gi;
          m[k][i] = o.beta1 * m[k][i] + (1 - o.beta1) * gg;
          s[k][i] = o.beta2 * s[k][i] + (1 - o.beta2) * gg * gg;
          const double mh = m[k][i] / (1 - std::pow(o.beta1, t)), vh = s[k][i] / (1 - std::pow(o.beta2, t));
          x -= lr * mh / (std::sqrt(vh) + o.eps);
        } else if (kind == "rmsprop") {
          s[k][i] = o.rho * s[k][i] + (1 - o.rho) * gi * gi;
          x -= lr * gi / (std::sqrt(s[k][i]) + o.eps);
        }
      }
  }
};

/// The schedules' rates at time t, from their definitions.
double reference_rate(const Schedule& sc, double lr, double t) {
  if (sc.warmup > 0 && t < sc.warmup) return lr * t / sc.warmup;
  const double u = t - sc.warmup;
  switch (sc.kind) {
    case Schedule::Kind::constant: return lr;
    case Schedule::Kind::step: return lr * std::pow(sc.gamma, std::floor((u - 1e-9) / sc.every));
    case Schedule::Kind::exponential: return lr * std::pow(sc.gamma, std::max(0.0, u - 1e-9));
    case Schedule::Kind::cosine:
      return sc.min_lr + 0.5 * (lr - sc.min_lr) * (1 + std::cos(3.141592653589793 * std::min(std::max(0.0, u - 1e-9) / sc.epochs, 1.0)));
  }
  return lr;
}

}  // namespace

TEST_CASE("optim: every optimizer x weight decay x clipping x schedule, three steps against an independent reference") {
  const std::vector<std::string> schedules = {"", ",schedule=step,every=1,decay=0.5", ",schedule=exp,decay=0.8",
                                              ",schedule=cosine,epochs=2,min_lr=0.001", ",warmup=1"};
  int combinations = 0;
  for (const auto& kind : optimizer_names())
    for (const char* wd : {"", ",wd=0.1"})
      for (const char* clip : {"", ",clip=0.5"})
        for (const auto& schedule : schedules) {
          const std::string spec = kind + ":lr=0.1" + wd + clip + schedule;
          CAPTURE(spec);
          auto opt = parse_optimizer(spec);
          Reference ref{kind, opt->options(), {}, {}, {}, 0};
          std::vector<std::vector<double>> w = {{1.0, -2.0, 0.5}, {0.25, -0.75}};
          std::vector<ParamSlot> slots = {{"a", Tensor::from({3}, {1.0, -2.0, 0.5}, DType::f64), Tensor({3}, DType::f64)},
                                          {"b", Tensor::from({2}, {0.25, -0.75}, DType::f64), Tensor({2}, DType::f64)}};
          const double grads[3][5] = {{0.5, -1.0, 2.0, 0.3, -0.2}, {0.1, 0.2, -0.4, 1.5, 0.6}, {-0.3, 0.4, 0.2, -0.9, 1.1}};
          for (int step = 0; step < 3; ++step) {
            CAPTURE(step);
            // Times as fit sets them: after each of three steps of an epoch of two steps.
            const double time = 0.5 * (step + 1);
            std::vector<std::vector<double>> g = {{grads[step][0], grads[step][1], grads[step][2]},
                                                  {grads[step][3], grads[step][4]}};
            for (std::size_t k = 0; k < 2; ++k)
              for (std::size_t i = 0; i < g[k].size(); ++i) slots[k].grad.set(static_cast<std::int64_t>(i), g[k][i]);
            opt->set_time(time);
            opt->step(slots);
            ref.step(w, g, reference_rate(opt->options().schedule, opt->options().lr, time));
            for (std::size_t k = 0; k < 2; ++k)
              for (std::size_t i = 0; i < w[k].size(); ++i)
                CHECK(slots[k].value.at(static_cast<std::int64_t>(i)) == doctest::Approx(w[k][i]).epsilon(1e-12));
          }
          ++combinations;
        }
  CHECK(combinations == 6 * 2 * 2 * 5);
}

namespace {

/// A rule that keeps a state its state_kinds() does not declare.
class Undeclared final : public Optimizer {
 public:
  Undeclared() : Optimizer("undeclared", {.lr = 0.1}) {}

 protected:
  void update(const ParamSlot& p, double, double, std::int64_t) override { state_buffer(p.name, "trace", p.value); }
  std::string describe_options() const override { return ""; }
};

}  // namespace

TEST_CASE("optim: state that a rule does not declare is an error, not a race between parameters") {
  Undeclared opt;
  ParamSlot p{"w", Tensor::from({2}, {1.0, -2.0}, DType::f64), Tensor({2}, DType::f64)};
  CHECK_THROWS_WITH(opt.step({p}), "optimizer: undeclared asks for state 'w.trace' that its state_kinds() does not "
                                   "declare: declare it there, so that step() creates it before the updates start");
  CHECK(opt.state().empty());
}

TEST_CASE("optim: parameters updated side by side give the bits of one thread, and their state in parameter order") {
  // Sizes below and above a kernel chunk (2^14 values), so that some updates split further.
  const std::vector<std::int64_t> sizes = {3, 70000, 1, 16384, 40000, 5, 20000, 2};
  auto run = [&](int threads, const std::string& spec) {
    ThreadCount count(threads);
    auto opt = parse_optimizer(spec);
    std::vector<ParamSlot> slots;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      ParamSlot s{"p" + std::to_string(k), Tensor(Shape{sizes[k]}), Tensor(Shape{sizes[k]})};
      for (std::int64_t i = 0; i < sizes[k]; ++i) s.value.data<float>()[i] = std::sin(0.37f * static_cast<float>(i + k));
      slots.push_back(std::move(s));
    }
    for (int step = 0; step < 3; ++step) {
      for (std::size_t k = 0; k < sizes.size(); ++k)
        for (std::int64_t i = 0; i < sizes[k]; ++i)
          slots[k].grad.data<float>()[i] = std::cos(0.11f * static_cast<float>(i) + static_cast<float>(step + k));
      opt->step(slots);
    }
    std::vector<float> values;
    for (const auto& s : slots) values.insert(values.end(), s.value.data<float>(), s.value.data<float>() + s.value.numel());
    std::vector<std::string> names;
    for (const auto& [name, t] : opt->state()) names.push_back(name);
    return std::make_pair(values, names);
  };
  for (const char* spec : {"sgd:lr=0.1,wd=0.01", "momentum:lr=0.1", "adam:lr=0.01,clip=1", "rmsprop:lr=0.01"}) {
    CAPTURE(spec);
    const auto one = run(1, spec), two = run(2, spec);
    REQUIRE(one.first.size() == two.first.size());
    CHECK(std::memcmp(one.first.data(), two.first.data(), one.first.size() * sizeof(float)) == 0);
    CHECK(one.second == two.second);
    CHECK(one.first[0] != std::sin(0.0f));  // the steps moved the weights
  }
  const auto adam = run(2, "adam:lr=0.01");
  REQUIRE(adam.second.size() == 2 * sizes.size());
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    CHECK(adam.second[2 * k] == "p" + std::to_string(k) + ".m");
    CHECK(adam.second[2 * k + 1] == "p" + std::to_string(k) + ".v");
  }
}
