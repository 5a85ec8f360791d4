// opgraph check: conformance of registered ops (built-in, or a plugin's).
#include <cstdio>
#include <limits>

#include <fmt/format.h>

#include <opgraph/frontends/json.hpp>
#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/registry.hpp>

#include "cli.hpp"

namespace opgraph::cli {

int check(int argc, char** argv) {
  const std::vector<Option> options = {
      {"op", "NAME", "check only this op (repeatable)", true},
      {"explain", "", "for a failing op, show analytic against numeric gradients and the likely culprit"},
      {"json", "", "print the results as one JSON object"},
      {"seed", "N", "seed of the random shapes, inputs and directions (default 1)"},
  };
  const Args a("check", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph check [--plugin FILE.so] [--op NAME] [--explain] [--json]",
                         "Checks ops against their contract: metadata; the shape rule against the kernel on random "
                         "shapes; the vjp against f64 central differences; f32 against f64; 1 against 2 threads "
                         "(bitwise); linearity of the vjp; that the vjp reads only what the op saves, that forward gives the same "
                         "outputs when no vjp follows, that a NaN input gives a NaN output, and that a declared "
                         "epilogue (a fused bias and activation) gives the bits of the separate ops, that a "
                         "declared activation's forward is its function to the bit, and that a vjp "
                         "declared to take over an activation's (or a relu's) gives its gradient, and one "
                         "declared to write a fused bias's gradient writes bias_add's bits. Checks a "
                         "plugin's ops when given --plugin, else every registered op.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  if (!a.positional().empty()) a.fail(fmt::format("unexpected argument '{}'", a.positional()[0]));
  std::vector<const OpDef*> selected;
  if (a.has("op")) {
    for (const auto& name : a.all("op")) selected.push_back(&Registry::global().get(name));
  } else if (!plugin_ops().empty()) {
    for (const auto& name : plugin_ops()) selected.push_back(&Registry::global().get(name));
  } else {
    selected = Registry::global().ops();
  }
  ConformanceOptions o;
  o.seed = static_cast<std::uint64_t>(a.integer("seed", 1, 0, std::numeric_limits<std::int64_t>::max()));
  int failed = 0;
  std::vector<std::string> rows;
  if (!a.has("json"))
    std::printf("%-34s %-6s %-10s %-10s %s\n", "op", "result", "gradient", "f32", "first failure or note");
  for (const OpDef* op : selected) {
    const ConformanceReport r = check_conformance(*op, o);
    const ConformanceItem* bad = r.first_failure();
    failed += !r.passed();
    const ConformanceItem* grad = r.item("gradient");
    const ConformanceItem* f32 = r.item("f32");
    if (a.has("json")) {
      std::vector<std::string> items;
      for (const auto& i : r.items)
        items.push_back(json::Object()
                            .add("property", i.property)
                            .add("passed", i.passed)
                            .add("measure", i.measure)
                            .add("detail", i.detail)
                            .str());
      rows.push_back(json::Object()
                         .add("op", op->name)
                         .add("source", op->source)
                         .add("passed", r.passed())
                         .raw("checks", json::array(items))
                         .str());
    } else {
      const std::string note = bad ? bad->property + ": " + bad->detail : (r.items[0].detail.empty() ? "" : r.items[0].detail);
      std::printf("%-34s %-6s %-10s %-10s %s\n", op->name.c_str(), r.passed() ? "PASS" : "FAIL",
                  grad ? fmt::format("{:.1e}", grad->measure).c_str() : "-",
                  f32 ? fmt::format("{:.1e}", f32->measure).c_str() : "-", note.c_str());
      if (bad && a.has("explain")) {
        if (bad->property == "gradient") std::printf("%s", explain_gradient(*op, o).c_str());
        for (const auto& i : r.items)
          if (!i.passed && i.property != "gradient") std::printf("  %s: %s\n", i.property.c_str(), i.detail.c_str());
      }
    }
  }
  if (a.has("json")) {
    std::printf("%s\n", json::Object()
                            .add("command", "check")
                            .add("ops", static_cast<int>(selected.size()))
                            .add("failed", failed)
                            .raw("results", json::array(rows))
                            .str()
                            .c_str());
  } else {
    std::printf("%zu ops: %zu passed, %d failed\n", selected.size(), selected.size() - static_cast<std::size_t>(failed),
                failed);
  }
  return failed ? 1 : 0;
}

}  // namespace opgraph::cli
