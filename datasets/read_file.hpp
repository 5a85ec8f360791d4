// Reading input files, gzip-compressed or not: the file kind checked, what is read or
// inflated capped, every error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace opgraph {

/// How much a reader takes from one file, after decompression. `bytes` = 0 means the
/// process's memory limit (graph/size.hpp) is the only bound. `what` and `hint` finish
/// the error: "<path>: 50.0 MiB is too large for <what> (the limit is 16 MiB): <hint>".
struct ReadLimit {
  std::size_t bytes = 0;
  std::string_view what = "a data file";
  std::string_view hint = {};
  /// A text format: a NUL byte is refused as soon as it is read, so that a binary file,
  /// or a gzip bomb of zeros, is not read up to the limit first.
  bool text = false;
};

/// Throws DataError naming `path` unless it is a regular file that can be opened for
/// reading (following symbolic links): missing, a loop of links, a folder, a FIFO, a
/// device or a socket is refused before anything is read (a FIFO with no writer would
/// block forever, /dev/zero would never end).
void check_input_file(const std::string& path);

/// A regular file read in pieces, decompressed when it is gzip (told by its first bytes,
/// not its name). Every read counts against `limit` (by default: the memory limit).
class InputFile {
 public:
  InputFile(const std::string& path, ReadLimit limit = {});
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// Appends up to `n` more bytes to `out`; returns how many (0 at the end). Throws
  /// DataError when the file would pass the limit, or is corrupt or truncated gzip.
  std::size_t read(std::string& out, std::size_t n);
  /// Appends everything left.
  void read_rest(std::string& out);
  /// True once the end was reached (reads one byte ahead when it must).
  bool at_end();
  /// Bytes handed out so far (decompressed).
  std::uint64_t position() const { return position_; }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void too_large() const;
  std::string path_;
  ReadLimit limit_;
  void* gz_ = nullptr;
  std::uint64_t position_ = 0;
  std::uint64_t plain_size_ = 0;  // the file's size on disk
  std::string ahead_;             // a byte read by at_end()
  bool eof_ = false;
};

/// The whole of `path` (decompressed when gzip) within `limit`. Throws DataError
/// "<path>: ..." when it is missing, not a regular file, unreadable, too large, or
/// corrupt gzip.
std::string read_file(const std::string& path, ReadLimit limit = {});

/// "16 MiB", "1.5 GiB": sizes in messages about files (powers of 1024).
std::string human_mib(std::uint64_t bytes);

}  // namespace opgraph
