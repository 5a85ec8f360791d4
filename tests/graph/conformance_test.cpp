// Conformance of every registered op (generated from the registry), property by property.
#include <doctest/doctest.h>

#include <opgraph/graph/conformance.hpp>
#include <opgraph/graph/registry.hpp>

using namespace opgraph;

TEST_CASE("conformance: every registered op keeps its whole contract") {
  int checked = 0;
  for (const OpDef* op : Registry::global().ops()) {
    if (op->source != "built-in") continue;
    const ConformanceReport r = check_conformance(*op);
    CAPTURE(op->name);
    for (const auto& item : r.items) {
      CAPTURE(item.property);
      CAPTURE(item.detail);
      CHECK(item.passed);
    }
    CHECK(r.items.size() == 8);  // metadata, shapes, finite, gradient, f32, threads, linearity, saves
    CHECK(op->has_vjp());
    ++checked;
  }
  CHECK(checked >= 21);
}
