// Input files: kind checks, capped reads, gzip through zlib (which passes plain files
// through unchanged).
#include <opgraph/datasets/read_file.hpp>

#include <cerrno>
#include <cstring>
#include <new>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <zlib.h>

#include <opgraph/graph/error.hpp>
#include <opgraph/graph/size.hpp>

namespace opgraph {

namespace {

/// zlib's message without the "PATH: " it puts in front.
std::string without_path(std::string message, const std::string& path) {
  if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
  if (message.rfind("<fd:", 0) == 0)  // gzdopen names the stream by its descriptor
    if (const auto colon = message.find(">: "); colon != std::string::npos) message.erase(0, colon + 3);
  return message;
}

std::string kind_problem(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory, expected a file";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), expected a regular file";
  if (S_ISCHR(mode)) return "is a character device, expected a regular file";
  if (S_ISBLK(mode)) return "is a block device, expected a regular file";
  if (S_ISSOCK(mode)) return "is a socket, expected a regular file";
  if (!S_ISREG(mode)) return "is not a regular file";
  return {};
}

[[noreturn]] void open_failed(const std::string& path, int err) {
  switch (err) {
    case ENOENT: throw DataError(path, "no such file");
    case ELOOP: throw DataError(path, "too many levels of symbolic links (a loop of links?)");
    case EACCES: throw DataError(path, "permission denied");
    case ENOTDIR: throw DataError(path, "no such file (a part of the path is not a folder)");
    case ENAMETOOLONG: throw DataError(path, "file name too long");
    default: throw DataError(path, fmt::format("cannot open for reading: {}", std::strerror(err)));
  }
}

std::size_t effective_limit(const ReadLimit& limit) {
  if (limit.bytes > 0) return limit.bytes;
  const std::size_t budget = memory_limit();
  return budget > 0 ? budget : static_cast<std::size_t>(kMaxBytes);
}

}  // namespace

std::string human_mib(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (std::uint64_t{1} << 30))
    return bytes % (std::uint64_t{1} << 30) == 0 ? fmt::format("{} GiB", bytes >> 30) : fmt::format("{:.1f} GiB", b / (1 << 30));
  return bytes % (std::uint64_t{1} << 20) == 0 ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{:.1f} MiB", b / (1 << 20));
}

void check_input_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) open_failed(path, errno);
  if (auto problem = kind_problem(st.st_mode); !problem.empty()) throw DataError(path, problem);
}

InputFile::InputFile(const std::string& path, ReadLimit limit) : path_(path), limit_(limit) {
  check_input_file(path);
  // O_NONBLOCK: should the path have become a FIFO since the check, open must not wait
  // for a writer; the kind is checked again on the open descriptor.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) open_failed(path, errno);
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !kind_problem(st.st_mode).empty()) {
    ::close(fd);
    throw DataError(path, kind_problem(st.st_mode).empty() ? "cannot read its size" : kind_problem(st.st_mode));
  }
  plain_size_ = static_cast<std::uint64_t>(st.st_size);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (plain_size_ > effective_limit(limit_) && plain_size_ > 0) {
    ::close(fd);
    too_large();
  }
  gz_ = gzdopen(fd, "rb");
  if (!gz_) {
    ::close(fd);
    throw DataError(path, "cannot open for reading (out of memory)");
  }
}

InputFile::~InputFile() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

void InputFile::too_large() const {
  const std::size_t limit = effective_limit(limit_);
  const std::string hint = limit_.hint.empty() ? std::string() : fmt::format(": {}", limit_.hint);
  if (plain_size_ > limit)
    throw DataError(path_, fmt::format("{:.1f} MiB is too large for {} (the limit is {}){}",
                                       static_cast<double>(plain_size_) / (1 << 20), limit_.what, human_mib(limit), hint));
  throw DataError(path_, fmt::format("decompresses to more than {}, too large for {} (the limit is {}){}",
                                     human_mib(limit), limit_.what, human_mib(limit), hint));
}

std::size_t InputFile::read(std::string& out, std::size_t n) {
  std::size_t got = 0;
  if (!ahead_.empty() && n > 0) {
    out += ahead_;
    ahead_.clear();
    ++got;
    --n;
  }
  const std::size_t limit = effective_limit(limit_);
  char buffer[1 << 16];
  while (n > 0 && !eof_) {
    const unsigned want = static_cast<unsigned>(std::min<std::size_t>(n, sizeof buffer));
    const int r = gzread(static_cast<gzFile>(gz_), buffer, want);
    if (r < 0) {
      int code = 0;
      throw DataError(path_, fmt::format("corrupt gzip data ({})", without_path(gzerror(static_cast<gzFile>(gz_), &code), path_)));
    }
    if (r == 0) {
      eof_ = true;
      int code = Z_OK;
      const std::string message = without_path(gzerror(static_cast<gzFile>(gz_), &code), path_);
      // A gzip stream cut short reads as far as it goes and then reports Z_BUF_ERROR.
      if (code == Z_BUF_ERROR)
        throw DataError(path_, fmt::format("truncated gzip stream after {} bytes", position_ + got));
      if (code != Z_OK && code != Z_STREAM_END) throw DataError(path_, fmt::format("corrupt gzip data ({})", message));
      break;
    }
    if (limit_.text) {
      if (const void* nul = std::memchr(buffer, 0, static_cast<std::size_t>(r)))
        throw DataError(path_, fmt::format("a NUL byte at offset {}: not text, which {} must be",
                                           position_ + got + static_cast<std::uint64_t>(static_cast<const char*>(nul) - buffer),
                                           limit_.what));
    }
    if (position_ + got + static_cast<std::uint64_t>(r) > limit) too_large();
    try {
      out.append(buffer, static_cast<std::size_t>(r));
    } catch (const std::bad_alloc&) {
      throw DataError(path_, fmt::format("out of memory after reading {} bytes of it", position_ + got));
    }
    got += static_cast<std::size_t>(r);
    n -= static_cast<std::size_t>(r);
  }
  position_ += got;
  return got;
}

void InputFile::read_rest(std::string& out) {
  if (plain_size_ > 0 && plain_size_ <= effective_limit(limit_)) {
    try {
      out.reserve(out.size() + static_cast<std::size_t>(plain_size_));
    } catch (const std::bad_alloc&) {
      throw DataError(path_, fmt::format("out of memory reserving {} to read it", human_mib(plain_size_)));
    }
  }
  while (read(out, std::size_t{1} << 20) > 0) {
  }
}

bool InputFile::at_end() {
  if (!ahead_.empty()) return false;
  if (eof_) return true;
  std::string one;
  if (read(one, 1) == 0) return true;
  --position_;
  ahead_ = std::move(one);
  return false;
}

std::string read_file(const std::string& path, ReadLimit limit) {
  InputFile f(path, limit);
  std::string out;
  f.read_rest(out);
  return out;
}

}  // namespace opgraph
