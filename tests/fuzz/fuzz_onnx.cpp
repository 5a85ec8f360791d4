// libFuzzer target: the ONNX importer. Any input must import or throw opgraph::Error; what
// imports must export again (or refuse with an Error), and that export must import.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <opgraph/frontends/onnx/onnx.hpp>
#include <opgraph/graph/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  opgraph::OnnxModel model;
  try {
    model = opgraph::parse_onnx(bytes, "fuzz.onnx");
  } catch (const opgraph::Error&) {
    return 0;  // a clear error is the right answer to bad input
  }
  std::string again;
  try {
    again = opgraph::export_onnx(model.file.graph, model.params);
  } catch (const opgraph::Error&) {
    return 0;  // an imported graph the exporter cannot express (a symbolic reshape, say)
  }
  try {
    opgraph::parse_onnx(again, "exported.onnx");
  } catch (const opgraph::Error&) {
    __builtin_trap();  // our own export must import
  }
  return 0;
}
