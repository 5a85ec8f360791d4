// Writing output files so that a failure never leaves a torn file behind.
#pragma once

#include <string>
#include <string_view>

namespace opgraph {

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder,
/// flushed to disk, then renamed over `path`. On any error the old file (or none) stays
/// and DataError says what failed.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace opgraph
