// libFuzzer target: the .og model parser. Any input must parse or throw opgraph::Error;
// what parses must print back to text that parses to the same graph.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  opgraph::ModelFile model;
  try {
    model = opgraph::parse_model(text, "fuzz.og");
  } catch (const opgraph::Error&) {
    return 0;  // a clear error is the right answer to bad input
  }
  const std::string printed = opgraph::print_model(model.graph);
  const opgraph::ModelFile again = opgraph::parse_model(printed, "printed.og");  // must not throw
  std::string why;
  if (!opgraph::same_graph(model.graph, again.graph, &why)) __builtin_trap();
  return 0;
}
