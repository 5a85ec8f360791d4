// Output files: one policy, one writer. A failure never leaves a torn file behind, and an
// output never replaces what it must not (docs/reliability.md, "Output files").
//
// The policy:
//  - opgraph writes only regular files: an output path naming a device, a FIFO, a socket
//    or a folder is refused (`--save /dev/null` never replaces the device);
//  - a symbolic link is followed deliberately: the file it points to is replaced, the link
//    stays a link; a loop of links is refused;
//  - an output is never the same file (device and inode) as an input of the run (the model,
//    the data, a plugin) or as another output;
//  - a file is written whole or not at all: into a temporary file of a name unique to the
//    process, flushed, then renamed over the target; clean-up touches only temporary files
//    of processes that no longer run.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace opgraph {

/// Declares `path` an input of this process (`role`: "the model file", "the training
/// data", ...): no output may replace it. Paths that do not exist are ignored.
void protect_input(const std::string& path, std::string_view role);
/// Forgets every protected input (for tests and long-lived processes).
void clear_protected_inputs();

/// Checks before any work that `path` can be written as an output (`option`, e.g.
/// "--save", names it in errors): not a device, FIFO, socket or folder; its folder exists
/// and takes a new file (tried, not guessed); not a protected input. Throws DataError.
void check_writable(const std::string& path, std::string_view option = "the output");
/// Checks several outputs at once: each as check_writable, and no two the same file.
/// `outputs` holds (option, path) pairs; empty paths are skipped.
void check_outputs(const std::vector<std::pair<std::string, std::string>>& outputs);
/// Checks before any work that `dir` can hold output files: a folder, or not yet existing
/// with an existing parent folder. Throws DataError.
void check_folder_for_output(const std::string& dir);

/// Writes `bytes` to `path` atomically under the policy above. On any error the old file
/// (or none) stays and DataError says what failed.
void write_file_atomic(const std::string& path, std::string_view bytes);
/// Writes several files all or nothing (as far as a file system allows): every temporary
/// file is written and flushed first; only when all succeeded are they renamed into place.
/// On an error before the renames, no target changes.
void write_files_atomic(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace opgraph
