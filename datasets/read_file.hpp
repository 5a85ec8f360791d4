// Reading whole files, gzip-compressed or not, with errors that name the file.
#pragma once

#include <string>

namespace opgraph {

/// The bytes of `path`, decompressed when it is gzip (detected from its first bytes, not
/// its name). Throws DataError "<path>: ..." when it is missing, a directory, unreadable,
/// or corrupt gzip.
std::string read_file(const std::string& path);

}  // namespace opgraph
