// Checkpoint encoding: tagged sections, little-endian, CRC-32 trailer.
#include <opgraph/frontends/checkpoint.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <zlib.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/frontends/files.hpp>

namespace opgraph {

namespace {

constexpr char kMagic[8] = {'O', 'P', 'G', 'R', 'A', 'P', 'H', 'C'};
enum Section : std::uint32_t { kMeta = 1, kModel = 2, kParams = 3, kOptimizer = 4, kExtra = 5, kState = 6 };

class Writer {
 public:
  void bytes(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  template <class T>
  void put(T v) {
    bytes(&v, sizeof v);
  }
  void text(const std::string& s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void tensor(const std::string& name, const Tensor& t) {
    text(name);
    put<std::uint8_t>(static_cast<std::uint8_t>(t.dtype()));
    put<std::uint8_t>(static_cast<std::uint8_t>(t.shape().rank()));
    for (auto d : t.shape().dims()) put<std::int64_t>(d);
    bytes(t.raw(), t.nbytes());
  }
  void tensors(const std::vector<std::pair<std::string, Tensor>>& list) {
    put<std::uint32_t>(static_cast<std::uint32_t>(list.size()));
    for (const auto& [n, t] : list) tensor(n, t);
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string_view s, const std::string& name) : s_(s), name_(name) {}
  [[noreturn]] void corrupt(const std::string& what) const {
    throw DataError(name_, fmt::format("corrupt checkpoint: {}", what));
  }
  void need(std::size_t n) const {
    if (n > s_.size() - pos_) corrupt(fmt::format("a record at byte {} runs past the end", pos_));
  }
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string text() {
    const auto n = get<std::uint32_t>();
    need(n);
    std::string t(s_.substr(pos_, n));
    pos_ += n;
    return t;
  }
  std::pair<std::string, Tensor> tensor() {
    std::string name = text();
    const auto dtype = get<std::uint8_t>();
    const auto rank = get<std::uint8_t>();
    if (dtype > static_cast<std::uint8_t>(DType::i64))
      corrupt(fmt::format("tensor '{}' has dtype code {}", name, dtype));
    if (rank > 8) corrupt(fmt::format("tensor '{}' has rank {}", name, rank));
    std::vector<std::int64_t> dims;
    std::uint64_t count = 1;
    for (int i = 0; i < rank; ++i) {
      const auto d = get<std::int64_t>();
      if (d < 0 || (d > 0 && count > (std::uint64_t{1} << 40) / static_cast<std::uint64_t>(d)))
        corrupt(fmt::format("tensor '{}' has an impossible dimension {}", name, d));
      dims.push_back(d);
      count *= static_cast<std::uint64_t>(d);
    }
    // The bytes must be there before anything is allocated: a corrupt header cannot ask
    // for terabytes (found by fuzzing with the checksum repaired).
    need(count * size_of(static_cast<DType>(dtype)));
    Tensor t(Shape(dims), static_cast<DType>(dtype));
    std::memcpy(t.raw(), s_.data() + pos_, t.nbytes());
    pos_ += t.nbytes();
    return {std::move(name), std::move(t)};
  }
  std::vector<std::pair<std::string, Tensor>> tensors() {
    const auto n = get<std::uint32_t>();
    std::vector<std::pair<std::string, Tensor>> out;
    for (std::uint32_t i = 0; i < n; ++i) out.push_back(tensor());
    return out;
  }
  std::size_t pos() const { return pos_; }
  void seek(std::size_t p) { pos_ = p; }

 private:
  std::string_view s_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string encode_checkpoint(const Checkpoint& c) {
  Writer w;
  w.bytes(kMagic, sizeof kMagic);
  w.put<std::uint32_t>(kCheckpointVersion);
  // The section count is patched in once every section is written: a hand-written
  // count once said 5 while a model with state wrote 6, and the last (the data
  // statistics) was never read back.
  const std::size_t count_at = w.str().size();
  w.put<std::uint32_t>(0);
  std::uint32_t sections = 0;
  auto section = [&](Section kind, const std::string& payload) {
    ++sections;
    w.put<std::uint32_t>(kind);
    w.put<std::uint64_t>(payload.size());
    w.bytes(payload.data(), payload.size());
  };
  Writer meta;
  std::map<std::string, std::string> m = c.meta;
  m["epoch"] = std::to_string(c.epoch);
  m["seed"] = std::to_string(c.seed);
  m["optimizer"] = c.optimizer;
  m["optimizer_steps"] = std::to_string(c.optimizer_steps);
  m["optimizer_time"] = fmt::format("{}", c.optimizer_time);
  meta.put<std::uint32_t>(static_cast<std::uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    meta.text(k);
    meta.text(v);
  }
  section(kMeta, meta.str());
  section(kModel, c.model);
  // Trainable parameters, then the ops' state (running statistics) in a section of its
  // own: the same tensors, but never handed to an optimizer.
  std::vector<std::pair<std::string, Tensor>> trainable, state;
  for (const auto& [name, t] : c.params) (c.params.trainable(name) ? trainable : state).emplace_back(name, t);
  Writer params;
  params.tensors(trainable);
  section(kParams, params.str());
  if (!state.empty()) {
    Writer st;
    st.tensors(state);
    section(kState, st.str());
  }
  Writer optim;
  optim.tensors(c.optimizer_state);
  section(kOptimizer, optim.str());
  Writer extra;
  extra.tensors(c.extra);
  section(kExtra, extra.str());
  std::memcpy(w.str().data() + count_at, &sections, sizeof sections);
  const auto crc = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(w.str().data()), static_cast<uInt>(w.str().size())));
  w.put<std::uint32_t>(crc);
  return std::move(w.str());
}

Checkpoint decode_checkpoint(std::string_view bytes, const std::string& name) {
  constexpr std::size_t header = sizeof kMagic + 8;
  if (bytes.size() < header + 4)
    throw DataError(name, fmt::format("truncated after {} bytes: not a complete opgraph checkpoint", bytes.size()));
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw DataError(name, "not an opgraph checkpoint (bad magic)");
  Reader r(bytes, name);
  r.seek(sizeof kMagic);
  const auto version = r.get<std::uint32_t>();
  if (version > kCheckpointVersion)
    throw DataError(name, fmt::format("checkpoint format version {} is newer than this opgraph reads ({}): "
                                      "upgrade opgraph",
                                      version, kCheckpointVersion));
  if (version == 0) throw DataError(name, "corrupt checkpoint: format version 0");
  std::uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  const auto computed =
      static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size() - 4)));
  if (stored != computed)
    throw DataError(name, fmt::format("checksum mismatch (stored 0x{:08x}, computed 0x{:08x}): the file is truncated "
                                      "or corrupt",
                                      stored, computed));
  const std::string_view body = bytes.substr(0, bytes.size() - 4);
  Reader s(body, name);
  s.seek(sizeof kMagic + 4);
  const auto sections = s.get<std::uint32_t>();
  Checkpoint c;
  bool has_params = false;
  // Sections past the count are read too: before 2026-11-30 a checkpoint with state
  // (running statistics) said 5 sections and wrote 6, and its last one (the data
  // statistics) must not be dropped. The checksum has already vouched for those bytes.
  for (std::uint32_t i = 0; i < sections || s.pos() < body.size(); ++i) {
    const auto kind = s.get<std::uint32_t>();
    const auto length = s.get<std::uint64_t>();
    s.need(length);
    const std::size_t start = s.pos();
    Reader part(body.substr(start, length), name);
    switch (kind) {
      case kMeta: {
        const auto n = part.get<std::uint32_t>();
        for (std::uint32_t k = 0; k < n; ++k) {
          std::string key = part.text();
          c.meta[key] = part.text();
        }
        break;
      }
      case kModel: c.model = std::string(body.substr(start, length)); break;
      case kParams:
      case kState: {
        auto list = part.tensors();
        if (!list.empty() && c.params.size() == 0) c.params = Params(list.front().second.dtype());
        for (auto& [n, t] : list) {
          if (!is_float(t.dtype()))
            part.corrupt(fmt::format("{} '{}' is {}: parameters and state are f32 or f64",
                                     kind == kState ? "state" : "parameter", n, t.dtype()));
          if (t.dtype() != c.params.dtype())
            part.corrupt(fmt::format("{} '{}' is {}, the others are {}", kind == kState ? "state" : "parameter", n,
                                     t.dtype(), c.params.dtype()));
          if (c.params.contains(n)) part.corrupt(fmt::format("'{}' is stored twice", n));
          if (kind == kState) c.params.set_state(n, std::move(t));
          else c.params.set(n, std::move(t));
        }
        has_params = has_params || kind == kParams;
        break;
      }
      case kOptimizer: c.optimizer_state = part.tensors(); break;
      case kExtra: c.extra = part.tensors(); break;
      default: break;  // sections of later minor versions are skipped
    }
    s.seek(start + length);
  }
  if (!has_params) s.corrupt("no parameter section");
  // Numbers in the meta section, read exactly (seeds use all 64 bits).
  auto integer = [&](const char* key) -> std::int64_t {
    const auto it = c.meta.find(key);
    if (it == c.meta.end()) return 0;
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec != std::errc() || p != it->second.data() + it->second.size())
      s.corrupt(fmt::format("'{}' is '{}'", key, it->second));
    return v;
  };
  const std::int64_t epoch = integer("epoch");
  if (epoch < 0 || epoch > std::numeric_limits<int>::max()) s.corrupt(fmt::format("epoch {}", epoch));
  c.epoch = static_cast<int>(epoch);
  c.optimizer_steps = integer("optimizer_steps");
  if (c.optimizer_steps < 0) s.corrupt(fmt::format("optimizer step count {}", c.optimizer_steps));
  if (const auto it = c.meta.find("seed"); it != c.meta.end()) {
    const auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), c.seed);
    if (ec != std::errc() || p != it->second.data() + it->second.size()) s.corrupt("'seed' is not a number");
  }
  if (const auto it = c.meta.find("optimizer_time"); it != c.meta.end()) {
    const auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), c.optimizer_time);
    if (ec != std::errc() || p != it->second.data() + it->second.size()) s.corrupt("'optimizer_time' is not a number");
  }
  c.optimizer = c.meta.count("optimizer") ? c.meta["optimizer"] : "";
  for (const char* k : {"epoch", "seed", "optimizer", "optimizer_steps", "optimizer_time"}) c.meta.erase(k);
  return c;
}

std::string checkpoint_path_problem(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  std::string lower(ext.size(), ' ');
  std::transform(ext.begin(), ext.end(), lower.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (lower != ".onnx") return "";
  return "a checkpoint (opgraph's own format) would be written under an .onnx name, which every tool would then read "
         "as an ONNX file: name it .ckpt; to write ONNX, export the trained model (opgraph export MODEL --load CKPT "
         "--onnx FILE.onnx; Python: model.export_onnx)";
}

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  if (const std::string problem = checkpoint_path_problem(path); !problem.empty()) throw DataError(path, problem);
  // A checkpoint is where training resumes: one whose parameters hold NaN or infinity
  // could never be trained further, and would replace the last good one.
  for (const auto& [name, t] : c.params)
    for (std::int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t.at(i)))
        throw NumericError(path, fmt::format("{} '{}' holds {} at index {}: a checkpoint is never written "
                                             "with non-finite parameters",
                                             c.params.trainable(name) ? "parameter" : "state", name, t.at(i), i));
  write_file_atomic(path, encode_checkpoint(c));
}

Checkpoint load_checkpoint(const std::string& path) {
  return decode_checkpoint(read_file(path, {0, "a checkpoint", "raise --memory-limit if it really is that large"}), path);
}

void restore_params(const Checkpoint& c, Params& params, const std::string& name) {
  if (c.params.size() > 0 && c.params.dtype() != params.dtype())
    throw DataError(name, fmt::format("the checkpoint holds {} parameters, the model uses {}", c.params.dtype(),
                                      params.dtype()));
  auto kind = [](const Params& p, const std::string& n) { return p.trainable(n) ? "parameter" : "state"; };
  for (const auto& [pname, value] : params) {
    if (!c.params.contains(pname))
      throw DataError(name, fmt::format("no {} '{}' in the checkpoint: it was saved from another model", kind(params, pname),
                                        pname));
    const Tensor& saved = c.params.at(pname);
    if (saved.shape() != value.shape())
      throw DataError(name, fmt::format("{} '{}' has shape {} in the checkpoint, the model declares {}",
                                        kind(params, pname), pname, saved.shape(), value.shape()));
    if (c.params.trainable(pname) != params.trainable(pname))
      throw DataError(name, fmt::format("'{}' is {} in the checkpoint but {} in the model", pname, kind(c.params, pname),
                                        kind(params, pname)));
  }
  for (const auto& [pname, value] : c.params)
    if (!params.contains(pname))
      throw DataError(name, fmt::format("the checkpoint's {} '{}' is not in the model: it was saved from "
                                        "another model",
                                        kind(c.params, pname), pname));
  for (auto& [pname, value] : params) value.copy_from(c.params.at(pname));
}

std::string encode_npy(const Tensor& t) {
  std::string shape = "(";
  for (auto d : t.shape().dims()) shape += std::to_string(d) + ",";
  if (t.shape().rank() > 1) shape.pop_back();
  shape += ")";
  std::string header = fmt::format("{{'descr': '<{}', 'fortran_order': False, 'shape': {}, }}",
                                   t.dtype() == DType::f32 ? "f4" : "f8", shape);
  // Magic, version 1.0, header length; the header is padded with spaces and a newline
  // so that the data starts on a 64-byte boundary.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(1);
  out += static_cast<char>(0);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

}  // namespace opgraph
