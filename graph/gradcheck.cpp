// Gradient checker: shapes from patterns, inputs from domains, directional central differences.
#include <opgraph/graph/gradcheck.hpp>
#include <opgraph/graph/numeric.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include <opgraph/graph/plan.hpp>
#include <opgraph/graph/random.hpp>

namespace opgraph {

std::vector<Shape> instantiate_shapes(const std::vector<std::string>& patterns, std::uint64_t seed,
                                      const std::vector<std::int64_t>& given, std::int64_t scale, bool broadcast) {
  Rng rng(seed);
  std::vector<std::int64_t> sizes = {2, 3, 4, 5, 6, 7};
  for (std::size_t i = sizes.size() - 1; i > 0; --i) std::swap(sizes[i], sizes[rng.below(i + 1)]);
  if (!given.empty()) sizes = given;
  std::map<char, std::int64_t> letters;
  std::vector<Shape> out;
  for (const auto& pattern : patterns) {
    std::vector<std::int64_t> dims;
    std::size_t i = 0;
    auto fail = [&] { throw ParseError(fmt::format("check shape '{}': expected a list like [a,3]", pattern)); };
    if (pattern.empty() || pattern.front() != '[' || pattern.back() != ']') fail();
    i = 1;
    while (i + 1 < pattern.size()) {
      const char c = pattern[i];
      if (std::isalpha(static_cast<unsigned char>(c))) {
        if (!letters.count(c)) letters[c] = sizes[letters.size() % sizes.size()];
        dims.push_back(letters[c] * scale);
        ++i;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        std::int64_t v = 0;
        while (i + 1 < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[i]))) v = v * 10 + (pattern[i++] - '0');
        dims.push_back(v);
      } else {
        fail();
      }
      if (i + 1 < pattern.size()) {
        if (pattern[i] != ',') fail();
        ++i;
      }
    }
    out.emplace_back(std::move(dims));
  }
  if (broadcast) {
    Rng pattern(seed ^ 0x9e3779b97f4a7c15ULL);
    for (auto& shape : out) {
      std::vector<std::int64_t> dims = shape.dims();
      for (auto& d : dims)
        if (pattern.below(3) == 0) d = 1;
      if (dims.size() > 1 && pattern.below(4) == 0) dims.erase(dims.begin());
      shape = Shape(std::move(dims));
    }
  }
  return out;
}

std::vector<Tensor> sample_inputs(const OpDef& op, const std::vector<Shape>& shapes, double shift,
                                  std::uint64_t seed, DType dtype) {
  Rng rng(seed);
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const Domain& d = op.domains[std::min(i, op.domains.size() - 1)];
    const bool index = op.input(i).kind == ValueKind::index ||
                       (op.input(i).kind == ValueKind::any && d.kind == Domain::Kind::indices);
    Tensor t(shapes[i], index ? DType::i64 : dtype);
    const std::int64_t classes = shapes[0].rank() > 0 ? shapes[0].last() : 1;
    switch (d.kind) {
      case Domain::Kind::real: {
        const double lo = d.lo + shift, hi = d.hi + shift;
        for (std::int64_t j = 0; j < t.numel(); ++j) {
          double v = rng.uniform(lo, hi);
          for (int tries = 0; tries < 1000; ++tries) {
            const bool near_kink = std::any_of(d.kinks.begin(), d.kinks.end(),
                                               [&](double k) { return std::abs(v - (k + shift)) < d.margin; });
            if (!near_kink) break;
            v = rng.uniform(lo, hi);
          }
          t.set(j, v);
        }
        break;
      }
      case Domain::Kind::distinct: {
        const std::int64_t n = t.numel();
        std::vector<double> v(static_cast<std::size_t>(n));
        for (std::int64_t j = 0; j < n; ++j)
          v[static_cast<std::size_t>(j)] = d.lo + shift + (d.hi - d.lo) * (static_cast<double>(j) + 0.5) / static_cast<double>(n);
        for (std::size_t j = v.size(); j > 1; --j) std::swap(v[j - 1], v[rng.below(j)]);
        for (std::int64_t j = 0; j < n; ++j) t.set(j, v[static_cast<std::size_t>(j)]);
        break;
      }
      case Domain::Kind::class_labels: {
        if (shapes[i].rank() == shapes[0].rank()) {  // one-hot rows
          const std::int64_t rows = t.numel() / std::max<std::int64_t>(classes, 1);
          for (std::int64_t r = 0; r < rows; ++r) t.set(r * classes + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(classes))), 1.0);
        } else {
          for (std::int64_t j = 0; j < t.numel(); ++j) t.set(j, static_cast<double>(rng.below(static_cast<std::uint64_t>(classes))));
        }
        break;
      }
      case Domain::Kind::binary_labels:
        for (std::int64_t j = 0; j < t.numel(); ++j) t.set(j, static_cast<double>(rng.below(2)));
        break;
      case Domain::Kind::indices: {
        const auto lo = static_cast<std::int64_t>(std::ceil(d.lo));
        const auto span = std::max<std::int64_t>(static_cast<std::int64_t>(std::ceil(d.hi)) - lo, 1);
        for (std::int64_t j = 0; j < t.numel(); ++j)
          t.set(j, static_cast<double>(lo + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(span)))));
        break;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

namespace {

double dot(const Tensor& a, const Tensor& b) {
  const double* x = a.data<double>();
  const double* y = b.data<double>();
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += x[i] * y[i];
  return s;
}

/// x + alpha * d
Tensor axpy(const Tensor& x, double alpha, const Tensor& d) {
  Tensor out = x.clone();
  double* o = out.data<double>();
  const double* dd = d.data<double>();
  for (std::int64_t i = 0; i < out.numel(); ++i) o[i] += alpha * dd[i];
  return out;
}

/// |a - n| relative to the larger of the two, but never to less than ||g|| / sqrt(elements):
/// the typical size of <g, d> for a random unit direction d. A direction that happens to
/// be nearly orthogonal to g cannot make a correct vjp look wrong, and an error reads as
/// the relative error of the derivative it is.
double relative_error(double analytic, double numeric, double gnorm2, std::int64_t elements) {
  const double typical = std::sqrt(gnorm2 / static_cast<double>(std::max<std::int64_t>(elements, 1)));
  const double scale = std::max({std::abs(analytic), std::abs(numeric), typical, 1e-300});
  return std::abs(analytic - numeric) / scale;
}

std::string describe_case(const std::vector<Shape>& shapes, const CheckCase& c) {
  std::vector<std::string> parts;
  for (const auto& sh : shapes) parts.push_back(sh.str());
  for (const auto& [k, v] : c.attrs) parts.push_back(k + "=" + v.str());
  std::string s = fmt::format("{}", fmt::join(parts, " "));
  if (c.shift != 0.0) s += fmt::format(" shift={}", c.shift);
  return s;
}

}  // namespace

std::string check_input_name(const OpDef& op, std::size_t i) {
  return fmt::format("{}{}", op.input(i).name, i);
}

CheckInstance check_instance(const OpDef& op, std::size_t case_index, std::uint64_t seed,
                             const std::vector<std::int64_t>& sizes, std::int64_t scale) {
  const CheckCase& check = op.checks.at(case_index);
  const std::uint64_t case_seed = seed + case_index + 1;
  CheckInstance c;
  c.shapes = instantiate_shapes(check.shapes, case_seed, sizes, scale, check.broadcast);
  c.attrs = check.attrs;
  c.config = describe_case(c.shapes, check);
  const bool arity_ok = op.variadic() ? c.shapes.size() >= op.inputs.size() : c.shapes.size() == op.inputs.size();
  if (!arity_ok)
    throw GraphError(op.name, fmt::format("check case gives {} shapes for {}{} inputs", c.shapes.size(),
                                          op.variadic() ? "at least " : "", op.inputs.size()));
  // The output shapes, through the same validation a graph gives.
  Graph g;
  std::vector<NodeId> ins;
  for (std::size_t i = 0; i < c.shapes.size(); ++i)
    ins.push_back(g.add_input(check_input_name(op, i), c.shapes[i], {}, op.input(i).kind == ValueKind::index));
  const NodeId out = g.add_op(op.name, ins, check.attrs, "out");
  const auto& parts = g.node(out).parts;
  c.inputs = sample_inputs(op, c.shapes, check.shift, case_seed * 7919);
  Rng rng(case_seed * 104729);
  std::vector<double> flat;
  for (std::size_t o = 0; o < std::max<std::size_t>(parts.size(), 1); ++o) {
    const Node& n = g.node(parts.empty() ? out : parts[o]);
    c.outputs.push_back(n.shape);
    if (n.index) {
      c.cotangents.emplace_back();
      continue;
    }
    Tensor t(n.shape, DType::f64);
    for (std::int64_t j = 0; j < t.numel(); ++j) {
      t.set(j, rng.normal());
      flat.push_back(t.at(j));
    }
    c.cotangents.push_back(std::move(t));
  }
  c.cotangent = Tensor::from(Shape{static_cast<std::int64_t>(flat.size())}, flat, DType::f64);
  return c;
}

std::vector<GradCheckResult> check_op_gradients(const OpDef& op, const GradCheckOptions& options) {
  std::vector<GradCheckResult> results;
  for (std::size_t index = 0; index < op.checks.size(); ++index) {
    // One check per real output: f(x) = <c, output(x)>, the other outputs taking no
    // gradient (so a vjp that mishandles an absent cotangent fails too).
    std::size_t outputs = 1;
    if (options.max_elements > 0) {
      const CheckCase& check = op.checks[index];
      const auto shapes = instantiate_shapes(check.shapes, options.seed + index + 1, options.sizes, 1, check.broadcast);
      if (std::any_of(shapes.begin(), shapes.end(), [&](const Shape& s) { return s.numel() > options.max_elements; }))
        continue;
    }
    // One instance (shapes, inputs, cotangents) serves every output's check: sampling it
    // is a third of the check's time at realistic sizes.
    CheckInstance inst;
    std::string invalid;
    try {
      inst = check_instance(op, index, options.seed, options.sizes);
      outputs = inst.outputs.size();
    } catch (const std::exception& e) {
      invalid = e.what();  // reported below, by the first check
    }
    for (std::size_t o = 0; o < outputs; ++o) {
      if (op.output(o).kind == ValueKind::index) continue;
      GradCheckResult r;
      r.subject = op.name;
      r.case_index = index;
      if (!invalid.empty()) {
        r.failure = invalid;
        results.push_back(std::move(r));
        continue;
      }
      try {
        r.config = inst.config + (outputs > 1 ? fmt::format(" output={}", o) : "");
        const auto& x = inst.inputs;
        const auto& shapes = inst.shapes;
        Graph g;
        std::vector<NodeId> ins;
        std::vector<std::string> diff, names;
        for (std::size_t i = 0; i < shapes.size(); ++i) {
          names.push_back(check_input_name(op, i));
          ins.push_back(g.add_input(names.back(), shapes[i], {}, op.input(i).kind == ValueKind::index));
          if (op.input(i).differentiable) diff.push_back(names.back());
        }
        const NodeId out = g.add_op(op.name, ins, inst.attrs, "out");
        const std::string target = g.node(out).parts.empty() ? "out" : g.node(g.node(out).parts[o]).name;
        Params params = g.init_params(1, DType::f64);  // no parameters; the op's state, if any
        PlanOptions po;
        po.loss = target;
        po.input_grads = diff;
        po.mode = Mode::train;
        Plan plan(g, params, po);
        for (std::size_t i = 0; i < x.size(); ++i) plan.set_input(names[i], x[i]);
        const Tensor& cot = inst.cotangents[o];
        Rng rng(options.seed * 31 + index * 17 + o);

        plan.forward();
        plan.backward(cot);
        std::vector<Tensor> grads;
        double gnorm2 = 0.0;
        std::int64_t elements = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
          if (!op.input(i).differentiable) {
            grads.emplace_back();
            continue;
          }
          grads.push_back(plan.grad(names[i]).clone());
          gnorm2 += dot(grads.back(), grads.back());
          elements += grads.back().numel();
        }
        // The step along a unit direction, grown with the element count so that each element
        // still moves by about `step`: over 10^5 elements a fixed step would move each by
        // 1e-8 of itself, and rounding the moved inputs would swamp the difference.
        const double h = options.step * std::max(1.0, std::sqrt(static_cast<double>(elements) / 16.0));
        auto phi = [&](double alpha, const std::vector<Tensor>& dir) {
          std::vector<Tensor> moved(x.size());
          for (std::size_t i = 0; i < x.size(); ++i) {
            moved[i] = op.input(i).differentiable ? axpy(x[i], alpha, dir[i]) : x[i];
            plan.set_input(names[i], moved[i]);
          }
          plan.forward();
          return dot(cot, plan.value(target));
        };
        for (int k = 0; k < options.directions; ++k) {
          std::vector<Tensor> dir(x.size());
          double dnorm2 = 0.0;
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (!op.input(i).differentiable) continue;
            dir[i] = Tensor(shapes[i], DType::f64);
            for (double& v : dir[i].values<double>()) v = rng.normal();
            dnorm2 += dot(dir[i], dir[i]);
          }
          double analytic = 0.0;
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (!op.input(i).differentiable) continue;
            for (double& v : dir[i].values<double>()) v /= std::sqrt(dnorm2);
            analytic += dot(grads[i], dir[i]);
          }
          const double numeric = (phi(h, dir) - phi(-h, dir)) / (2.0 * h);
          r.max_error = worst_of(r.max_error, relative_error(analytic, numeric, gnorm2, elements));
        }
        r.passed = within(r.max_error, options.tolerance);
      } catch (const std::exception& e) {
        r.passed = false;
        r.failure = e.what();
      }
      results.push_back(std::move(r));
    }
  }
  return results;
}

GradCheckResult check_graph_gradients(const Graph& graph, Params& params,
                                      const std::vector<std::pair<std::string, Tensor>>& inputs,
                                      std::int64_t batch, const GradCheckOptions& options) {
  GradCheckResult r;
  r.subject = "graph";
  r.config = fmt::format("batch {}", batch);
  try {
    if (params.dtype() != DType::f64) throw GraphError("gradient check", "parameters must be f64");
    PlanOptions po;
    po.batch = batch;
    Plan plan(graph, params, po);
    for (const auto& [name, t] : inputs) plan.set_input(name, t);
    plan.forward();
    plan.backward();
    std::vector<Tensor> grads, saved;
    double gnorm2 = 0.0;
    std::int64_t elements = 0;
    for (const auto& slot : plan.parameters()) {
      grads.push_back(slot.grad.clone());
      saved.push_back(slot.value.clone());
      gnorm2 += dot(grads.back(), grads.back());
      elements += grads.back().numel();
    }
    auto slots = plan.parameters();
    const double h = options.step;
    Rng rng(options.seed);
    auto loss_at = [&](double alpha, const std::vector<Tensor>& dir) {
      for (std::size_t i = 0; i < slots.size(); ++i) slots[i].value.copy_from(axpy(saved[i], alpha, dir[i]));
      plan.forward();
      return plan.loss();
    };
    for (int k = 0; k < options.directions; ++k) {
      std::vector<Tensor> dir;
      double dnorm2 = 0.0;
      for (const auto& s : saved) {
        Tensor d(s.shape(), DType::f64);
        for (std::int64_t j = 0; j < d.numel(); ++j) d.set(j, rng.normal());
        dnorm2 += dot(d, d);
        dir.push_back(std::move(d));
      }
      double analytic = 0.0;
      for (std::size_t i = 0; i < dir.size(); ++i) {
        for (double& v : dir[i].values<double>()) v /= std::sqrt(dnorm2);
        analytic += dot(grads[i], dir[i]);
      }
      const double numeric = (loss_at(h, dir) - loss_at(-h, dir)) / (2.0 * h);
      r.max_error = worst_of(r.max_error, relative_error(analytic, numeric, gnorm2, elements));
    }
    for (std::size_t i = 0; i < slots.size(); ++i) slots[i].value.copy_from(saved[i]);
    r.passed = within(r.max_error, options.tolerance);
  } catch (const std::exception& e) {
    r.passed = false;
    r.failure = e.what();
  }
  return r;
}

}  // namespace opgraph
