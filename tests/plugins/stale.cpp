// A plugin built against an opgraph that had a function this one lacks: dlopen fails
// with an undefined symbol, which load_plugin reports demangled and explained.
#include <opgraph/graph/op.hpp>

namespace opgraph {
double function_of_another_version(double x);  // not in this opgraph
}

OPGRAPH_OP(stale)
    .doc("never loads: an undefined symbol")
    .input("x")
    .shape(opgraph::same_shape_as(0))
    .forward([](auto& k) {
      using T = opgraph::scalar_of<decltype(k)>;
      opgraph::map(k.in(0), k.out(), [](T v) { return static_cast<T>(opgraph::function_of_another_version(v)); });
    });
