// A shared library with an op but without the plugin entry point.
#include <opgraph/graph/op.hpp>

OPGRAPH_OP(orphan)
    .doc("never registered: no entry point")
    .input("x")
    .shape(opgraph::same_shape_as(0))
    .forward([](auto& k) { opgraph::map(k.in(0), k.out(), [](auto v) { return v; }); });
