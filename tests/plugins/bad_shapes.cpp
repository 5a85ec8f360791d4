// Ops whose shape rules return what no tensor can have: the engine must refuse the node,
// naming the op, where it comes from, and what is wrong.
#include <opgraph/graph/op.hpp>

using namespace opgraph;

OPGRAPH_OP(negative_shape)
    .doc("a shape rule returning [-3, 2] (broken on purpose)")
    .input("x")
    .shape([](const ShapeContext&) { return Shape{-3, 2}; })
    .forward([](auto&) {});

OPGRAPH_OP(huge_shape)
    .doc("a shape rule returning [2^62, 2^62] (broken on purpose)")
    .input("x")
    .shape([](const ShapeContext&) { return Shape{std::int64_t{1} << 62, std::int64_t{1} << 62}; })
    .forward([](auto&) {});

