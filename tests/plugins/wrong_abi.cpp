// A plugin that says it was built for another version of the op contract.
#include <cstdint>

#include <opgraph/graph/op.hpp>

extern "C" __attribute__((visibility("default"))) std::uint32_t opgraph_plugin_abi() { return 999; }

OPGRAPH_OP(from_the_future)
    .doc("never registered: the plugin's ABI differs")
    .input("x")
    .shape(opgraph::same_shape_as(0))
    .forward([](auto& k) { opgraph::map(k.in(0), k.out(), [](auto v) { return v; }); });
