// Runs one case of tests/bad/cases.txt through the opgraph binary and checks it: the exit
// status, the exact error line (the last on stderr), no crash, hang or stack trace, and
// that nothing changed: the case's scratch folder holds exactly what its setup put there,
// byte for byte (no torn, clobbered or leftover file), and every path named by %same
// (inside or outside the folder) is of the same kind with the same bytes.
//
//   bad_input_case CASE MANIFEST OPGRAPH FILES GEN MODELS PLUGINS SCRATCH
//
// A case line: name | exit status | the error line | [directives] arguments
// Placeholders: @F@ tests/bad/files, @G@ generated files, @M@ examples/models, @P@ the
// test plugins, @O@ the case's scratch folder. In the error line @HEX@ matches a 0x...
// number and @ANY@ any text; '?' accepts any line.
// Directives (before the arguments, each one word):
//   %write=PATH:TEXT      create a file (\n in TEXT is a newline)
//   %copy=SRC:PATH        copy a file
//   %link=TARGET:PATH     make a symbolic link PATH -> TARGET
//   %fifo=PATH            make a FIFO
//   %mkdir=PATH           make a folder
//   %stdout=PATH|closed   send stdout to PATH (e.g. /dev/full) or start with it closed
//   %fsize=BYTES          limit the size of files the run may write (ulimit -f)
//   %same=PATH            PATH must be unchanged (kind and bytes) after the run
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

/// How long a case may run before it counts as hung. A sanitizer build runs the binary
/// several times slower: reading a gzip bomb up to the CSV limit (1 GiB decompressed)
/// takes 12 s in the Release build, 17 s under ASan and over 60 s under TSan (a Zen 5).
/// (The detection is GCC's macros or clang's __has_feature, as in graph/gemm.cpp and
/// graph/parallel.cpp.)
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define OPGRAPH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define OPGRAPH_SANITIZED 1
#endif
#endif
#ifdef OPGRAPH_SANITIZED
constexpr int kDeadlineSeconds = 300;
#else
constexpr int kDeadlineSeconds = 60;
#endif

std::vector<std::string> problems;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// What a path is, for before/after comparison: its kind, a link's target, a file's bytes.
std::string describe(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return "absent";
  if (S_ISLNK(st.st_mode)) {
    char t[4096];
    const ssize_t n = ::readlink(path.c_str(), t, sizeof t - 1);
    return "link -> " + std::string(t, n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  if (S_ISDIR(st.st_mode)) return "folder";
  if (S_ISFIFO(st.st_mode)) return "fifo";
  if (S_ISCHR(st.st_mode)) return "character device";
  if (S_ISBLK(st.st_mode)) return "block device";
  if (S_ISSOCK(st.st_mode)) return "socket";
  const std::string bytes = read_bytes(path);
  return "file of " + std::to_string(bytes.size()) + " bytes, hash " + std::to_string(std::hash<std::string>{}(bytes));
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    out[it->path().lexically_relative(dir).string()] = describe(it->path().string());
    if (it->is_symlink()) it.disable_recursion_pending();
  }
  return out;
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::pair<std::string, std::string> two(const std::string& v) {
  const auto colon = v.find(':');
  if (colon == std::string::npos) return {v, ""};
  return {v.substr(0, colon), v.substr(colon + 1)};
}

std::string regex_escape(const std::string& s) {
  static const std::string special = "[]{}().*+?^$|\\";
  std::string out;
  for (char c : s) {
    if (special.find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: bad_input_case CASE MANIFEST OPGRAPH FILES GEN MODELS PLUGINS SCRATCH\n");
    return 2;
  }
  const std::string name = argv[1], manifest = argv[2], opgraph = argv[3];
  const std::string out_dir = (fs::path(argv[8]) / name).string();
  const std::map<std::string, std::string> places = {
      {"@F@", argv[4]}, {"@G@", argv[5]}, {"@M@", argv[6]}, {"@P@", argv[7]}, {"@O@", out_dir}};
  auto expand = [&](std::string s) {
    for (const auto& [k, v] : places) s = replace_all(s, k, v);
    return s;
  };

  std::string line;
  {
    std::istringstream in(read_bytes(manifest));
    for (std::string l; std::getline(in, l);)
      if (l.rfind(name + " | ", 0) == 0) line = l;
  }
  if (line.empty()) {
    std::fprintf(stderr, "no case '%s' in %s\n", name.c_str(), manifest.c_str());
    return 2;
  }
  // name | exit | message | arguments (the message may hold '|' only if escaped: it never does)
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const auto bar = line.find(" |", start);
    if (bar == std::string::npos || parts.size() == 3) {
      parts.push_back(line.substr(start));
      break;
    }
    parts.push_back(line.substr(start, bar - start));
    start = bar + 2;
    if (start < line.size() && line[start] == ' ') ++start;
  }
  if (parts.size() < 3) {
    std::fprintf(stderr, "malformed case line: %s\n", line.c_str());
    return 2;
  }
  const int want_exit = std::stoi(parts[1]);
  const std::string want_message = expand(parts[2]);
  const std::vector<std::string> words = split_words(parts.size() > 3 ? parts[3] : "");

  fs::remove_all(out_dir);
  fs::create_directories(out_dir);
  std::vector<std::string> args{opgraph}, same;
  std::string stdout_to;
  long fsize = -1;
  for (const auto& raw : words) {
    if (raw.size() > 1 && raw[0] == '%') {
      const auto eq = raw.find('=');
      const std::string key = raw.substr(1, eq - 1), value = expand(eq == std::string::npos ? "" : raw.substr(eq + 1));
      auto in_scratch = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (fs::path(out_dir) / p).string(); };
      if (key == "write") {
        const auto [path, text] = two(value);
        std::ofstream(in_scratch(path), std::ios::binary) << replace_all(text, "\\n", "\n");
      } else if (key == "copy") {
        const auto [src, dst] = two(value);
        fs::copy_file(src, in_scratch(dst), fs::copy_options::overwrite_existing);
      } else if (key == "link") {
        const auto [target, path] = two(value);
        fs::create_symlink(target, in_scratch(path));
      } else if (key == "fifo") {
        ::mkfifo(in_scratch(value).c_str(), 0644);
      } else if (key == "mkdir") {
        fs::create_directories(in_scratch(value));
      } else if (key == "stdout") {
        stdout_to = value;
      } else if (key == "fsize") {
        fsize = std::stol(value);
      } else if (key == "same") {
        same.push_back(in_scratch(value));
      } else {
        std::fprintf(stderr, "unknown directive %s\n", raw.c_str());
        return 2;
      }
      continue;
    }
    args.push_back(expand(raw));
  }
  if (want_message.find("@O@") != std::string::npos) return 2;
  const auto before = snapshot(out_dir);
  std::map<std::string, std::string> same_before;
  for (const auto& p : same) same_before[p] = describe(p);

  int err_pipe[2], out_pipe[2];
  if (::pipe(err_pipe) != 0 || ::pipe(out_pipe) != 0) return 2;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::chdir(out_dir.c_str());
    ::dup2(err_pipe[1], 2);
    if (stdout_to == "closed") {
      ::close(1);
    } else if (!stdout_to.empty()) {
      const int fd = ::open(stdout_to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
    } else {
      ::dup2(out_pipe[1], 1);
    }
    ::close(err_pipe[0]);
    ::close(out_pipe[0]);
    if (fsize >= 0) {
      struct rlimit r{static_cast<rlim_t>(fsize), static_cast<rlim_t>(fsize)};
      ::setrlimit(RLIMIT_FSIZE, &r);
    }
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execv(cargs[0], cargs.data());
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  ::close(out_pipe[1]);
  std::string err, out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kDeadlineSeconds);
  bool timed_out = false;
  pollfd fds[2] = {{err_pipe[0], POLLIN, 0}, {out_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(f.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(f.fd);
        f.fd = -1;
        --open_fds;
      } else {
        (f.fd == err_pipe[0] ? err : out).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);

  std::string trimmed = err;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.pop_back();
  const std::string last_line = trimmed.substr(trimmed.rfind('\n') == std::string::npos ? 0 : trimmed.rfind('\n') + 1);
  std::printf("opgraph");
  for (std::size_t i = 1; i < args.size(); ++i) std::printf(" %s", args[i].c_str());
  std::printf("\nstderr:\n%s\n", err.c_str());

  if (timed_out) problems.push_back("did not finish within " + std::to_string(kDeadlineSeconds) + " s (killed)");
  else if (WIFSIGNALED(status)) problems.push_back("killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")");
  else if (WEXITSTATUS(status) != want_exit)
    problems.push_back("exit status " + std::to_string(WEXITSTATUS(status)) + ", expected " + std::to_string(want_exit));
  if (want_message != "?") {
    std::string pattern = regex_escape(want_message);
    pattern = replace_all(pattern, "@HEX@", "0x[0-9a-f]+");
    pattern = replace_all(pattern, "@ANY@", ".*");
    if (!std::regex_match(last_line, std::regex(pattern)))
      problems.push_back("last line of stderr:\n  " + last_line + "\nexpected:\n  " + want_message);
  }
  static const std::regex crash("terminate called|Aborted|Segmentation|[Ss]tack trace|Sanitizer|runtime error|core dumped");
  if (std::regex_search(err, crash)) problems.push_back("crash report on stderr");
  const auto after = snapshot(out_dir);
  for (const auto& [path, what] : after) {
    const auto it = before.find(path);
    if (it == before.end()) problems.push_back("left behind: " + path + " (" + what + ")");
    else if (it->second != what) problems.push_back("changed: " + path + ": " + it->second + " -> " + what);
  }
  for (const auto& [path, what] : before)
    if (!after.count(path)) problems.push_back("removed: " + path);
  for (const auto& [path, what] : same_before)
    if (describe(path) != what) problems.push_back("changed: " + path + ": " + what + " -> " + describe(path));
  for (const auto& p : problems) std::printf("PROBLEM: %s\n", p.c_str());
  return problems.empty() ? 0 : 1;
}
