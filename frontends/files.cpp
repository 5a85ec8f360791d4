// write_file_atomic: temp file, fsync, rename.
#include <opgraph/frontends/files.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>

namespace opgraph {

void check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (fs::is_directory(target)) throw DataError(path, "is a directory, expected a file to write");
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(folder)) throw DataError(path, fmt::format("no folder {} to write into", folder.string()));
}

void check_folder_for_output(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  if (fs::exists(d)) {
    if (!fs::is_directory(d)) throw DataError(dir, "is a file, expected a folder to write into");
    return;
  }
  const fs::path parent = d.has_parent_path() ? d.parent_path() : fs::path(".");
  if (!fs::is_directory(parent))
    throw DataError(dir, fmt::format("no folder {} to create it in", parent.string()));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  check_writable(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (folder / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = mkstemp(tmp.data());
  if (fd < 0) throw DataError(path, fmt::format("cannot create a file next to it: {}", std::strerror(errno)));
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw DataError(path, fmt::format("{}: {}", what, std::strerror(err)));
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0) fail("cannot set permissions");
  if (::fsync(fd) != 0) fail("cannot flush to disk");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw DataError(path, fmt::format("close failed: {}", std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw DataError(path, fmt::format("cannot replace the file: {}", std::strerror(err)));
  }
  // Make the rename itself durable.
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  // A process killed in the middle of an earlier write of this file left its temporary
  // file behind: remove such leftovers now that the file is whole again.
  const std::string prefix = "." + target.filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0)
      fs::remove(entry.path(), ec);
  }
}

}  // namespace opgraph
