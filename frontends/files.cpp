// The output-file policy and the atomic writer: temp file, fsync, rename.
#include <opgraph/frontends/files.hpp>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <opgraph/graph/error.hpp>

namespace opgraph {

namespace {

namespace fs = std::filesystem;

using FileId = std::pair<dev_t, ino_t>;

std::mutex& inputs_mutex() {
  static std::mutex m;
  return m;
}
struct Input {
  std::string role, path;
};
std::map<FileId, Input>& inputs() {
  static std::map<FileId, Input> m;
  return m;
}

std::string kind_of(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/// Where an output at `path` really goes: symbolic links followed to the file they name
/// (which may not exist yet). Throws DataError for a loop of links.
std::string resolve(const std::string& path) {
  std::string p = path;
  for (int hops = 0;; ++hops) {
    struct stat st{};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    if (hops >= 40) throw DataError(path, "too many levels of symbolic links (a loop of links?)");
    char target[PATH_MAX];
    const ssize_t n = ::readlink(p.c_str(), target, sizeof target - 1);
    if (n < 0) throw DataError(path, fmt::format("cannot read the symbolic link: {}", std::strerror(errno)));
    target[n] = '\0';
    const fs::path t(target);
    p = t.is_absolute() ? t.string() : (fs::path(p).parent_path() / t).string();
  }
}

fs::path folder_of(const std::string& path) {
  const fs::path target(path);
  return target.has_parent_path() ? target.parent_path() : fs::path(".");
}

/// The policy's checks of one resolved target; `option` names it in messages.
void check_target(const std::string& path, const std::string& real, std::string_view option) {
  struct stat st{};
  if (::stat(real.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw DataError(path, "is a directory, expected a file to write");
    if (!S_ISREG(st.st_mode))
      throw DataError(path, fmt::format("is {}: {} writes only regular files", kind_of(st.st_mode), option));
    std::lock_guard lock(inputs_mutex());
    if (auto it = inputs().find({st.st_dev, st.st_ino}); it != inputs().end())
      throw DataError(path, fmt::format("{} would overwrite {}{}: choose another path", option, it->second.role,
                                        it->second.path == path ? "" : " (" + it->second.path + ")"));
  } else if (errno == ELOOP) {
    throw DataError(path, "too many levels of symbolic links (a loop of links?)");
  }
  const fs::path folder = folder_of(real);
  struct stat fst{};
  if (::stat(folder.c_str(), &fst) != 0 || !S_ISDIR(fst.st_mode))
    throw DataError(path, fmt::format("no folder {} to write into", folder.string()));
}

/// A temporary name beside `real`, unique to this process: ".NAME.tmp.PID.XXXXXX".
std::string temp_template(const std::string& real) {
  return (folder_of(real) / fmt::format(".{}.tmp.{}.XXXXXX", fs::path(real).filename().string(), ::getpid())).string();
}

/// Removes temporary files left beside `real` by processes that were killed mid-write
/// (their PID no longer runs); never another running process's.
void remove_stale_temps(const std::string& real) {
  const std::string prefix = "." + fs::path(real).filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder_of(real), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() + 7 || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());  // "PID.XXXXXX"
    const auto dot = rest.find('.');
    if (dot == std::string::npos || rest.size() - dot != 7) continue;
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (end != rest.c_str() + dot || pid <= 0) continue;
    if (pid == ::getpid() || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) fs::remove(entry.path(), ec);
  }
}

struct Temp {
  std::string target;  // the path as given
  std::string real;    // where it goes
  std::string tmp;
};

/// Writes `bytes` into a new temporary file beside the target and flushes it to disk.
Temp write_temp(const std::string& path, std::string_view bytes) {
  Temp t{path, resolve(path), {}};
  check_target(path, t.real, "the output");
  t.tmp = temp_template(t.real);
  const int fd = ::mkstemp(t.tmp.data());
  if (fd < 0) throw DataError(path, fmt::format("cannot create a file next to it: {}", std::strerror(errno)));
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(t.tmp.c_str());
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
    ::unlink(t.tmp.c_str());
    throw DataError(path, fmt::format("close failed: {}", std::strerror(err)));
  }
  return t;
}

/// Test hook for tests/cli/reliability_test.cpp: with OPGRAPH_TEST_HOLD_SAVE=N:MARKER in
/// the environment, the N-th atomic write of the process stops after its temporary file is
/// complete and before the rename, creates MARKER, and waits (up to a minute) to be killed,
/// so that a test can kill a process inside a save deterministically, not by timing.
void test_hold_before_rename() {
  static int writes = 0;
  ++writes;
  const char* hold = std::getenv("OPGRAPH_TEST_HOLD_SAVE");
  if (!hold) return;
  char* end = nullptr;
  const long n = std::strtol(hold, &end, 10);
  if (n != writes || !end || *end != ':') return;
  if (const int fd = ::open(end + 1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); fd >= 0) ::close(fd);
  for (int i = 0; i < 600; ++i) ::usleep(100'000);
}

void commit(const Temp& t) {
  test_hold_before_rename();
  if (::rename(t.tmp.c_str(), t.real.c_str()) != 0) {
    const int err = errno;
    ::unlink(t.tmp.c_str());
    throw DataError(t.target, fmt::format("cannot replace the file: {}", std::strerror(err)));
  }
  // Make the rename itself durable.
  if (const int dir = ::open(folder_of(t.real).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  remove_stale_temps(t.real);
}

FileId id_or_zero(const std::string& real) {
  struct stat st{};
  if (::stat(real.c_str(), &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

}  // namespace

void protect_input(const std::string& path, std::string_view role) {
  struct stat st{};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return;
  std::lock_guard lock(inputs_mutex());
  inputs()[{st.st_dev, st.st_ino}] = Input{std::string(role), path};
}

void clear_protected_inputs() {
  std::lock_guard lock(inputs_mutex());
  inputs().clear();
}

void check_writable(const std::string& path, std::string_view option) {
  const std::string real = resolve(path);
  check_target(path, real, option);
  // Whether the folder takes a new file is tried, not guessed from permission bits (root
  // passes every access() test, and a read-only file system fails them all the same).
  std::string probe = temp_template(real);
  const int fd = ::mkstemp(probe.data());
  if (fd < 0)
    throw DataError(path, fmt::format("cannot write into folder {}: {}", folder_of(real).string(), std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
}

void check_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::vector<std::tuple<std::string, std::string, FileId, std::string>> seen;  // option, path, id, where
  for (const auto& [option, path] : outputs) {
    if (path.empty()) continue;
    check_writable(path, option);
    const std::string real = resolve(path);
    std::error_code ec;
    const std::string where = fs::weakly_canonical(fs::absolute(real, ec), ec).string();
    const FileId id = id_or_zero(real);
    for (const auto& [other_option, other_path, other_id, other_where] : seen)
      if ((id != FileId{0, 0} && id == other_id) || where == other_where)
        throw DataError(path, fmt::format("{} and {} name the same file: give each its own", other_option, option));
    seen.emplace_back(option, path, id, where);
  }
}

void check_folder_for_output(const std::string& dir) {
  const fs::path d(dir);
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw DataError(dir, "is a file, expected a folder to write into");
    return;
  }
  if (errno == ELOOP) throw DataError(dir, "too many levels of symbolic links (a loop of links?)");
  const fs::path parent = d.has_parent_path() ? d.parent_path() : fs::path(".");
  if (!fs::is_directory(parent)) throw DataError(dir, fmt::format("no folder {} to create it in", parent.string()));
}

void write_file_atomic(const std::string& path, std::string_view bytes) { commit(write_temp(path, bytes)); }

void write_files_atomic(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<Temp> temps;
  try {
    for (const auto& [path, bytes] : files) temps.push_back(write_temp(path, bytes));
  } catch (...) {
    for (const auto& t : temps) ::unlink(t.tmp.c_str());
    throw;
  }
  for (std::size_t i = 0; i < temps.size(); ++i) {
    try {
      commit(temps[i]);
    } catch (...) {
      for (std::size_t j = i + 1; j < temps.size(); ++j) ::unlink(temps[j].tmp.c_str());
      throw;
    }
  }
}

}  // namespace opgraph
