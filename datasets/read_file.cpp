// read_file: plain or gzip through zlib, which passes plain files through unchanged.
#include <opgraph/datasets/read_file.hpp>

#include <filesystem>

#include <fmt/format.h>
#include <zlib.h>

#include <opgraph/graph/error.hpp>

namespace opgraph {

namespace {
/// zlib's message without the "PATH: " it puts in front.
std::string without_path(std::string message, const std::string& path) {
  if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
  return message;
}
}  // namespace

std::string read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw DataError(path, "no such file");
  if (fs::is_directory(status)) throw DataError(path, "is a directory, expected a file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(path, "cannot open for reading");
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    const int n = gzread(f, buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      const std::string message = without_path(gzerror(f, &code), path);
      gzclose(f);
      throw DataError(path, fmt::format("corrupt gzip data ({})", message));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  int code = Z_OK;
  const std::string message = without_path(gzerror(f, &code), path);
  gzclose(f);
  // A gzip stream cut short reads as far as it goes and then reports Z_BUF_ERROR.
  if (code == Z_BUF_ERROR) throw DataError(path, fmt::format("truncated gzip stream after {} bytes", out.size()));
  if (code != Z_OK && code != Z_STREAM_END) throw DataError(path, fmt::format("corrupt gzip data ({})", message));
  return out;
}

}  // namespace opgraph
