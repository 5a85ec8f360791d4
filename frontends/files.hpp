// Writing output files so that a failure never leaves a torn file behind.
#pragma once

#include <string>
#include <string_view>

namespace opgraph {

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder,
/// flushed to disk, then renamed over `path`. On any error the old file (or none) stays
/// and DataError says what failed. A process killed mid-write leaves a hidden
/// `.NAME.tmp.XXXXXX` beside the file; the next successful write of NAME removes it.
void write_file_atomic(const std::string& path, std::string_view bytes);

/// Checks before any work that write_file_atomic(path, ...) can succeed as far as the
/// folders go: `path` is not a folder and its folder exists. Throws the DataError the
/// write would.
void check_writable(const std::string& path);
/// Checks before any work that `dir` can hold output files: it is a folder, or it does
/// not exist yet and its parent folder does. Throws DataError.
void check_folder_for_output(const std::string& dir);

}  // namespace opgraph
