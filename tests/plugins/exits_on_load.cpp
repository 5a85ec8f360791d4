// A plugin whose static initialiser calls exit(3): the run must fail with the plugin named,
// not end quietly with the plugin's status.
#include <cstdlib>

#include <opgraph/graph/op.hpp>

namespace {
[[maybe_unused]] const int kExit = [] {
  std::exit(3);
  return 0;
}();
}  // namespace

