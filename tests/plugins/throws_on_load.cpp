// A plugin whose static initialiser throws: loading it must fail with the plugin named.
#include <stdexcept>

#include <opgraph/graph/op.hpp>

namespace {
[[maybe_unused]] const int kBoom = [] {
  throw std::runtime_error("boom in a static initialiser");
  return 0;
}();
}  // namespace

