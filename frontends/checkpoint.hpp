// Checkpoints: parameters, optimizer state, the model text, and where training stood.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <opgraph/graph/graph.hpp>

namespace opgraph {

/// Everything needed to resume training bitwise where it stopped.
struct Checkpoint {
  std::string model;  // the .og text of the model
  Params params;
  std::string optimizer;  // the optimizer spec it was trained with
  std::vector<std::pair<std::string, Tensor>> optimizer_state;
  std::int64_t optimizer_steps = 0;
  double optimizer_time = 0.0;
  int epoch = 0;           // epochs completed
  std::uint64_t seed = 0;  // the training seed; with the epoch it fixes the data order
  /// Free-form facts: the data spec, batch size, standardisation, ...
  std::map<std::string, std::string> meta;
  /// Other tensors, e.g. the standardisation statistics "data.mean" and "data.std".
  std::vector<std::pair<std::string, Tensor>> extra;
};

/// The current checkpoint format version; files of a newer version are refused.
inline constexpr std::uint32_t kCheckpointVersion = 1;

/// Serialises a checkpoint: magic "OPGRAPHC", version, sections, CRC-32 of all before it.
std::string encode_checkpoint(const Checkpoint& c);
/// Parses and verifies a checkpoint; `name` stands for the file in messages. Throws
/// DataError for a truncated or corrupt file, a bad magic or a newer version.
Checkpoint decode_checkpoint(std::string_view bytes, const std::string& name);

/// Why `path` cannot name a checkpoint, or "": a name ending in .onnx, which every tool
/// would then read as an ONNX file (opgraph's own, og.load, ONNX Runtime).
std::string checkpoint_path_problem(const std::string& path);
/// Writes atomically (a temporary file renamed into place): an interrupted save never
/// leaves a broken checkpoint. Throws DataError for a path checkpoint_path_problem refuses.
void save_checkpoint(const std::string& path, const Checkpoint& c);
Checkpoint load_checkpoint(const std::string& path);

/// Copies the checkpoint's parameter values into `params`, after checking that every
/// parameter exists on both sides with the same shape; says which one differs.
void restore_params(const Checkpoint& c, Params& params, const std::string& name);

/// A tensor as a NumPy .npy file (format 1.0, little-endian f4 or f8).
std::string encode_npy(const Tensor& t);

}  // namespace opgraph
