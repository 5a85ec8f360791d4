// GEMM. B is packed into panels NR columns wide, shared by every task of a call; A is
// read in place by the micro-kernel (MR row streams, or one strided stream for a
// transposed A), which removes the cost of packing A; only a ragged last row panel is
// packed. A register-blocked micro-kernel multiplies one MR x NR tile of C; it is written
// once with GCC vector extensions, for float and double.
// Why our own and not a BLAS: see docs/design.md ("Matmul"); figures in bench/RESULTS.md.
#include <opgraph/graph/gemm.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include <opgraph/graph/kernel.hpp>
#include <opgraph/graph/parallel.hpp>

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace opgraph {

namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kVectorRegisters = 32;
constexpr const char* kIsa = "avx512";
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
constexpr int kVectorRegisters = 16;
constexpr const char* kIsa = "avx2";
#elif defined(__SSE2__)
constexpr int kVectorBytes = 16;
constexpr int kVectorRegisters = 16;
constexpr const char* kIsa = "sse2";
#else
constexpr int kVectorBytes = 16;
constexpr int kVectorRegisters = 16;
constexpr const char* kIsa = "generic";
#endif

/// Kernels that keep arrays of vectors on the stack (the 16x16 transpose, the inner
/// products) are left out of AddressSanitizer builds: GCC gives such arrays 64-byte
/// alignment and moves them with aligned instructions, but ASan's use-after-return check
/// (detect_stack_use_after_return, on in scripts/sanitize) moves frames to its fake stack,
/// which does not keep that alignment, and the moves fault. Marking the kernels
/// no_sanitize_address instead made ASan report the instrumented helpers they call.
/// Release and TSan builds run them; gemm_test checks them against a reference.
/// In ASan builds the vector types also keep their natural alignment: clang's ASan lays
/// out a frame by the declared alignment (the element's, below), yet clang moves the
/// accumulator arrays with aligned instructions, and every tile faulted.
#if defined(__SANITIZE_ADDRESS__)
#define OPGRAPH_GEMM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OPGRAPH_GEMM_ASAN 1
#endif
#endif
#if defined(OPGRAPH_GEMM_ASAN)
constexpr bool kVectorFrames = false;
#else
constexpr bool kVectorFrames = true;
#endif

template <class T>
struct Vec;
template <>
struct Vec<float> {
#if defined(OPGRAPH_GEMM_ASAN)
  typedef float type __attribute__((vector_size(kVectorBytes)));
#else
  typedef float type __attribute__((vector_size(kVectorBytes), aligned(4)));
#endif
  typedef float in_memory __attribute__((vector_size(kVectorBytes), aligned(4), may_alias));
};
template <>
struct Vec<double> {
#if defined(OPGRAPH_GEMM_ASAN)
  typedef double type __attribute__((vector_size(kVectorBytes)));
#else
  typedef double type __attribute__((vector_size(kVectorBytes), aligned(8)));
#endif
  typedef double in_memory __attribute__((vector_size(kVectorBytes), aligned(8), may_alias));
};

template <class T>
using V = typename Vec<T>::type;

// Unaligned loads and stores of a whole vector. Not through memcpy: GCC tuned for recent
// Intel cores (which prefer 256-bit moves) copies 64 bytes as two 32-byte halves into a
// stack slot and reloads them as one register, a failed store-to-load forward on every
// load of the kernel's inner loop; the micro-kernel ran at a quarter of its speed there.
template <class T>
inline V<T> load(const T* p) {
  return *reinterpret_cast<const typename Vec<T>::in_memory*>(p);
}

template <class T>
inline void store(T* p, V<T> v) {
  *reinterpret_cast<typename Vec<T>::in_memory*>(p) = v;
}

/// Register blocking, fixed by the instruction set. A tile of C is MR x NR accumulators
/// held in registers: with 32 vector registers 12 rows x 2 vectors (24 accumulators; 8
/// rows where that pads m less, eight_row_tiles), with 16 registers 6 x 2. Narrow outputs
/// (n fits one vector, e.g. the 10 classes of MNIST) use MR rows x 1 vector. The cache blocking (kc, mc, nc) is the machine's:
/// gemm_blocking().
template <class T>
struct Blocking {
  static constexpr int W = kVectorBytes / static_cast<int>(sizeof(T));
  static constexpr int MR = kVectorRegisters >= 32 ? 12 : 6;
  static constexpr int NR = 2 * W;
};

// ---- buffers ----

struct AlignedDelete {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t{64}); }
};
using AlignedBuffer = std::unique_ptr<void, AlignedDelete>;

AlignedBuffer aligned_alloc_bytes(std::size_t bytes) {
  return AlignedBuffer(::operator new(bytes, std::align_val_t{64}));
}

/// Packed B blocks are shared by the tasks of one call. A pool rather than a thread_local:
/// a thread waiting inside one gemm may run tasks of another gemm (nested parallelism).
class BufferPool {
 public:
  struct Lease {
    BufferPool* pool;
    AlignedBuffer buffer;
    std::size_t bytes;
    ~Lease() { pool->give_back(std::move(buffer), bytes); }
  };

  /// A buffer of at least `bytes`; none (a null one) for 0.
  Lease take(std::size_t bytes) {
    if (bytes == 0) return Lease{this, nullptr, 0};
    AlignedBuffer buffer;
    std::size_t capacity = 0;
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < free_.size(); ++i) {
        if (free_[i].second >= bytes) {
          buffer = std::move(free_[i].first);
          capacity = free_[i].second;
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
    }
    if (!buffer) {
      buffer = aligned_alloc_bytes(bytes);
      capacity = bytes;
    }
    return Lease{this, std::move(buffer), capacity};
  }

 private:
  void give_back(AlignedBuffer buffer, std::size_t bytes) {
    if (!buffer) return;
    std::lock_guard lock(mutex_);
    free_.emplace_back(std::move(buffer), bytes);
  }
  std::mutex mutex_;
  std::vector<std::pair<AlignedBuffer, std::size_t>> free_;
};

BufferPool& b_pool() {
  static BufferPool pool;
  return pool;
}

/// A buffer of one task: no nested parallelism runs inside a task, so a per-thread
/// buffer is safe. Grown once, reused for every later call. Slot 0 holds a packed A (a
/// ragged row panel, or a task's row block), slot 1 a task's own packed B panels (the
/// one-pass mode of gemm_blocked); slots 2 and 3 the packed B and shared A of a product
/// that runs all its tasks on the calling thread (gemm_blocked's serial ones).
template <class T, int Slot>
T* task_buffer(std::size_t elements) {
  thread_local AlignedBuffer buffer;
  thread_local std::size_t capacity = 0;
  if (capacity < elements) {
    buffer = aligned_alloc_bytes(elements * sizeof(T));
    capacity = elements;
  }
  return static_cast<T*>(buffer.get());
}
template <class T>
T* a_buffer(std::size_t elements) {
  return task_buffer<T, 0>(elements);
}

// ---- cache blocking ----

std::atomic<int> strided_a_override{-1};
std::atomic<int> twelve_rows_override{-1};

/// Whether this is an AMD core ("AuthenticAMD"): the two choices below were measured
/// opposite ways on AMD's cores and Intel's.
bool amd_core() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(0, &eax, &ebx, &ecx, &edx) && ebx == 0x68747541;  // "Auth" of AuthenticAMD
  }();
  return amd;
#else
  return false;
#endif
}

/// Whether this CPU's prefetchers follow a transposed A read in place (a new line of A for
/// each depth of a tile) well enough to skip packing a short one: AMD's (gemm_blocked).
bool strided_a_in_place() {
  const int forced = strided_a_override.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  return amd_core();
}

/// Whether a product whose A is read in place (rows of A, not transposed) and whose depth
/// is longer than kc takes tiles of 12 rows where they pad m no more than 2 % beyond 8
/// (eight_row_tiles): Intel's cores, not AMD's. A depth longer than kc is cut into depth
/// blocks whose B panel fills the L1 ways left for it, and twelve rows of A beside it do
/// not fit: on the Intel Xeon (48 KiB L1d, 2 MiB L2) the panel then streams from L2, and
/// 12 rows of broadcasts load it a third less often for each multiply-add than 8. Medians
/// of five alternated runs on the Xeon, W1's x·W1 (10000x256x784): 117.5 -> 130.6 GFLOP/s
/// at 1 thread, 261.6 -> 276.5 at 2. On the Zen 5 the 8-row tiles measured faster
/// (eight_row_tiles), and stay. The tile height never changes the order of any sum: the
/// same bits either way. (Taking the whole depth in one block as well gave 2-4 % more here,
/// but a single chain of 784 additions rounds C differently from two of 392, and the
/// reference MNIST experiment, trained at the edge of stability, lost its test accuracy
/// with it: seeds 1-5 0.9226-0.9258 -> 0.8893-0.9225.)
[[maybe_unused]] bool long_depth_twelve_rows() {  // unused where tiles are 6 rows (AVX2)
  const int forced = twelve_rows_override.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  return !amd_core();
}

#if defined(__x86_64__) || defined(__i386__)
/// The caches of AMD's older leaves 0x80000005/6 into c, when they describe an L1d and an L2.
void read_amd_legacy_leaves(CacheSizes& c) {
  unsigned eax = 0, ebx = 0, l1 = 0, edx = 0, l2 = 0, l3 = 0;
  if (!__get_cpuid(0x80000005, &eax, &ebx, &l1, &edx) || !__get_cpuid(0x80000006, &eax, &ebx, &l2, &l3)) return;
  const CacheSizes legacy = amd_legacy_caches(l1, l2, l3);
  if (legacy.source[0] != '\0') c = legacy;
}
#endif

/// One cache level as cpuid's deterministic cache parameters describe it (leaf 4 on
/// Intel, 0x8000001D on AMD: the same layout); on AMD, the older leaves when that one is
/// missing or empty.
void read_cpuid_caches(CacheSizes& c) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return;
  const bool amd = ebx == 0x68747541;  // "Auth" of AuthenticAMD
  unsigned leaf = 4;
  if (amd) {
    if (!__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) || eax < 0x80000006) return;
    if (eax < 0x8000001D) {
      read_amd_legacy_leaves(c);
      return;
    }
    leaf = 0x8000001D;
  } else if (eax < 4) {
    return;
  }
  for (unsigned index = 0; index < 16; ++index) {
    if (!__get_cpuid_count(leaf, index, &eax, &ebx, &ecx, &edx)) return;
    const unsigned type = eax & 0x1f, level = (eax >> 5) & 0x7;
    if (type == 0) break;  // no more caches
    if (type == 2) continue;  // instructions
    const std::int64_t ways = ((ebx >> 22) & 0x3ff) + 1, partitions = ((ebx >> 12) & 0x3ff) + 1,
                       line = (ebx & 0xfff) + 1, sets = std::int64_t{ecx} + 1;
    const std::int64_t bytes = ways * partitions * line * sets;
    if (level == 1) c.l1d = bytes, c.l1d_ways = static_cast<int>(ways);
    else if (level == 2) c.l2 = bytes, c.l2_ways = static_cast<int>(ways);
    else if (level == 3) c.l3 = bytes;
  }
  if (c.l1d > 0 && c.l2 > 0) c.source = "cpuid";
  // Some hypervisors pass the leaf through empty (an EPYC of family 26 under KVM reports no
  // cache at index 0) while the legacy leaves still answer.
  else if (amd) read_amd_legacy_leaves(c);
#else
  (void)c;
#endif
}

/// The same from Linux's sysfs ("48K", "2048K", "32M").
void read_sysfs_caches(CacheSizes& c) {
  const auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::string word;
    in >> word;
    return word;
  };
  const auto bytes_of = [](const std::string& text) -> std::int64_t {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return 0;
    std::int64_t v = std::stoll(text);
    if (text.back() == 'K') v <<= 10;
    else if (text.back() == 'M') v <<= 20;
    return v;
  };
  for (int index = 0; index < 16; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    const std::string level = read(dir + "level"), type = read(dir + "type");
    if (level.empty()) break;
    if (type == "Instruction") continue;
    const std::int64_t bytes = bytes_of(read(dir + "size"));
    const std::string ways_text = read(dir + "ways_of_associativity");
    const int ways = ways_text.empty() || !std::isdigit(static_cast<unsigned char>(ways_text[0])) ? 0 : std::stoi(ways_text);
    if (level == "1") c.l1d = bytes, c.l1d_ways = ways;
    else if (level == "2") c.l2 = bytes, c.l2_ways = ways;
    else if (level == "3") c.l3 = bytes;
  }
  if (c.l1d > 0 && c.l2 > 0) c.source = "sysfs";
}

template <class T>
const GemmBlocking& machine_blocking() {
  static const GemmBlocking blocking = gemm_blocking_for(detect_caches(), static_cast<int>(sizeof(T)));
  return blocking;
}

/// Whether a product of depth k whose A is read in place (not transposed) is longer than
/// this machine's kc on a CPU that then prefers 12-row tiles (long_depth_twelve_rows).
template <class T>
bool long_depth_in_place(bool ta, std::int64_t k) {
  return !ta && k > machine_blocking<T>().kc && long_depth_twelve_rows();
}

// ---- packing ----

/// Packs rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into panels of MR rows:
/// out[panel][p][r], zero-padded past m.
template <class T, int MR>
void pack_a(bool trans, const T* a, std::int64_t lda, std::int64_t i0, std::int64_t mc, std::int64_t p0,
            std::int64_t kc, T* out) {
  if (trans) {
    // A stored [k, m]: each depth p is one contiguous run of the block's mc rows, read
    // once and dealt out to the panels (a panel at a time would stride through A once per
    // panel); full panels copy MR elements, a count the compiler knows.
    constexpr std::int64_t kAhead = 8;
    constexpr std::int64_t kLine = 64 / sizeof(T);
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = a + (p0 + p) * lda + i0;
      if (p + kAhead < kc)
        for (std::int64_t r = 0; r < mc; r += kLine) __builtin_prefetch(src + kAhead * lda + r);
      for (std::int64_t ir = 0; ir < mc; ir += MR) {
        T* d = out + ir * kc + p * MR;
        if (mc - ir >= MR) {
          std::memcpy(d, src + ir, MR * sizeof(T));  // a few vector moves
        } else {
          const int mr = static_cast<int>(mc - ir);
          for (int r = 0; r < mr; ++r) d[r] = src[ir + r];
          for (int r = mr; r < MR; ++r) d[r] = T(0);
        }
      }
    }
    return;
  }
  for (std::int64_t ir = 0; ir < mc; ir += MR) {
    const int mr = static_cast<int>(std::min<std::int64_t>(MR, mc - ir));
    T* dst = out + ir * kc;
    for (int r = 0; r < mr; ++r) {
      const T* src = a + (i0 + ir + r) * lda + p0;
      for (std::int64_t p = 0; p < kc; ++p) dst[p * MR + r] = src[p];
    }
    for (int r = mr; r < MR; ++r)
      for (std::int64_t p = 0; p < kc; ++p) dst[p * MR + r] = T(0);
  }
}

#if defined(__AVX512F__)
/// A 16 x 16 block of floats transposed in registers: rows[i] (16 depths of column i)
/// become out[p * ld + i]. Three rounds of shuffles (pairs of rows, pairs of pairs, then
/// 128-bit lanes) instead of 256 scalar loads and strided stores.
[[gnu::always_inline, maybe_unused]] inline void transpose_square(const float* const* rows, float* out, std::int64_t ld) {
  using F = V<float>;  // 16 floats
  F r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = load(rows[i]);
  for (int i = 0; i < 16; i += 2) {  // per 128-bit lane: a0 b0 a1 b1 / a2 b2 a3 b3
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
  }
  for (int g = 0; g < 16; g += 4) {  // r[g + j], lane k: element 4k + j of rows g .. g+3
    const auto lo = [](F a, F c) {
      return __builtin_shufflevector(a, c, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    };
    const auto hi = [](F a, F c) {
      return __builtin_shufflevector(a, c, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    };
    r[g] = lo(t[g], t[g + 2]);
    r[g + 1] = hi(t[g], t[g + 2]);
    r[g + 2] = lo(t[g + 1], t[g + 3]);
    r[g + 3] = hi(t[g + 1], t[g + 3]);
  }
  for (int j = 0; j < 4; ++j) {  // depth 4k + j: lane k of r[j], r[4 + j], r[8 + j], r[12 + j]
    const auto lanes01 = [](F x, F y) {
      return __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    };
    const auto lanes23 = [](F x, F y) {
      return __builtin_shufflevector(x, y, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    };
    const auto even = [](F x, F y) {
      return __builtin_shufflevector(x, y, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    };
    const auto odd = [](F x, F y) {
      return __builtin_shufflevector(x, y, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    };
    const F v0 = lanes01(r[j], r[4 + j]), v1 = lanes23(r[j], r[4 + j]);
    const F v2 = lanes01(r[8 + j], r[12 + j]), v3 = lanes23(r[8 + j], r[12 + j]);
    store(out + (j + 0) * ld, even(v0, v2));
    store(out + (j + 4) * ld, odd(v0, v2));
    store(out + (j + 8) * ld, even(v1, v3));
    store(out + (j + 12) * ld, odd(v1, v3));
  }
}
#elif defined(__AVX2__)
/// An 8 x 8 block of floats transposed in registers, as the 16 x 16 with 8-lane vectors:
/// pairs of rows, pairs of pairs, then the 128-bit halves.
[[gnu::always_inline, maybe_unused]] inline void transpose_square(const float* const* rows, float* out, std::int64_t ld) {
  using F = V<float>;  // 8 floats
  F r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = load(rows[i]);
  for (int i = 0; i < 8; i += 2) {  // per 128-bit half: a0 b0 a1 b1 / a2 b2 a3 b3
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int g = 0; g < 8; g += 4) {  // r[g + j]: depths j and 4 + j of rows g .. g+3
    r[g] = __builtin_shufflevector(t[g], t[g + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    r[g + 1] = __builtin_shufflevector(t[g], t[g + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    r[g + 2] = __builtin_shufflevector(t[g + 1], t[g + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    r[g + 3] = __builtin_shufflevector(t[g + 1], t[g + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int j = 0; j < 4; ++j) {
    store(out + j * ld, __builtin_shufflevector(r[j], r[4 + j], 0, 1, 2, 3, 8, 9, 10, 11));
    store(out + (j + 4) * ld, __builtin_shufflevector(r[j], r[4 + j], 4, 5, 6, 7, 12, 13, 14, 15));
  }
}
#endif

/// Packs depths [q0, q1) of a block of B (not transposed; columns [j0, j0 + nc), depths
/// from p0, kc of them) into its panels: out[panel][q][c], zero-padded past n. Row by
/// row, so that each row of B is read once and contiguously: panel by panel, every
/// 64-byte read was a row stride apart, which for a power-of-two width maps all of a
/// panel's reads to one cache set and one page each (on a Zen 3, a quarter of W5's
/// 256x1024x784 product went into packing B that way).
///
/// With `sums` (GemmEpilogue::b_sums), each row packed is also added to sums[0, nc), in
/// row order: the caller gives rows of one block of kColumnSumRows rows, whose sums start
/// at 0 (column_sums' block sums, taken from the rows as they are packed).
template <class T, int NR>
void pack_b_rows(const T* b, std::int64_t ldb, std::int64_t p0, std::int64_t kc, std::int64_t q0, std::int64_t q1,
                 std::int64_t j0, std::int64_t nc, T* out, T* sums = nullptr) {
  constexpr int W = Blocking<T>::W;
  const std::int64_t full = nc / NR, panels = (nc + NR - 1) / NR;
  for (std::int64_t q = q0; q < q1; ++q) {
    const T* src = b + (p0 + q) * ldb + j0;
    T* d = out + q * NR;
    if (sums) {
      for (std::int64_t panel = 0; panel < full; ++panel) {
#pragma GCC unroll 4
        for (int v = 0; v < NR; v += W) {
          const V<T> x = load(src + panel * NR + v);
          store(d + panel * NR * kc + v, x);
          store(sums + panel * NR + v, load(sums + panel * NR + v) + x);
        }
      }
      for (std::int64_t c = full * NR; c < nc; ++c) sums[c] += src[c];
    } else {
      for (std::int64_t panel = 0; panel < full; ++panel) {
#pragma GCC unroll 4
        for (int v = 0; v < NR; v += W) store(d + panel * NR * kc + v, load(src + panel * NR + v));
      }
    }
    if (full < panels) {
      const int nr = static_cast<int>(nc - full * NR);
      T* last = d + full * NR * kc;
      for (int c = 0; c < nr; ++c) last[c] = src[full * NR + c];
      for (int c = nr; c < NR; ++c) last[c] = T(0);
    }
  }
}

/// Packs the panel of columns [j, j + NR) x depths [p0, p0 + kc) of op(B) for a B stored
/// transposed ([n, k]): out[p][c], zero-padded past n.
template <class T, int NR>
void pack_bt_panel(const T* b, std::int64_t ldb, std::int64_t p0, std::int64_t kc, std::int64_t j, std::int64_t n,
                   T* out) {
  const int nr = static_cast<int>(std::min<std::int64_t>(NR, n - j));
  // B is stored [n, k]: read each column of op(B) contiguously, 16 depths at a time so
  // that the rows being written (16 x NR) stay in L1; whole 16 x 16 blocks of floats
  // transposed in registers (W5's dh = da·W2ᵀ: 128 -> 144-148 GFLOP/s on one thread of
  // the Xeon), 8 x 8 blocks with AVX2 (the same product 48 -> 62 on the Zen 3).
  std::int64_t q0 = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
  constexpr int S = Blocking<float>::W;  // the square transposed in registers: 16 or 8
  if constexpr (std::is_same_v<T, float> && NR % S == 0 && kVectorFrames) {
    if (nr == NR)
      for (; q0 + S <= kc; q0 += S)
        for (int c0 = 0; c0 < NR; c0 += S) {
          const float* rows[S];
          for (int i = 0; i < S; ++i) rows[i] = b + (j + c0 + i) * ldb + p0 + q0;
          transpose_square(rows, out + q0 * NR + c0, NR);
        }
  }
#endif
  for (std::int64_t q = q0; q < kc; q += 16) {
    const std::int64_t qe = std::min(kc, q + 16);
    for (int c = 0; c < nr; ++c) {
      const T* src = b + (j + c) * ldb + p0;
      for (std::int64_t p = q; p < qe; ++p) out[p * NR + c] = src[p];
    }
    for (int c = nr; c < NR; ++c)
      for (std::int64_t p = q; p < qe; ++p) out[p * NR + c] = T(0);
  }
}

// ---- micro-kernel ----

/// How the micro-kernel finds A(i, p) for the MR rows i of its tile.
enum class ALayout {
  packed,  // a packed panel: a[p * MR + i]
  rows,    // op(A) = A stored [m, k]: a[i * lda + p], MR row streams
  cols,    // op(A) = A stored transposed [k, m]: a[p * lda + i], one strided stream
};

/// Every accumulator of a register tile to zero (unrolled whole, as the tiles' loops).
template <class T, int R, int NV>
[[gnu::always_inline]] inline void zero_tile(V<T> (&acc)[R][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) acc[i][j] = V<T>{};
}

/// `act` on `rows` rows of `cols` values, ldc apart: a tile of C just stored (out of line:
/// the tiles' loops stay those of a product with a bias or ReLU).
template <class T>
[[gnu::noinline]] void activate_rows(math::Activation act, T* c, std::int64_t ldc, int rows, int cols) {
  for (int i = 0; i < rows; ++i) math::activate(act, c + i * ldc, cols);
}

/// C (R x NV vectors from c, rows ldc apart) = alpha * acc + beta * C, for the tiles of
/// the blocked and few-rows paths; then, for the last depth block of a product with an
/// epilogue (GemmEpilogue), + bias (the NV vectors at `bias`) and ReLU in registers, or
/// another activation on each row of the tile once stored (in L1): the add and the
/// function that bias_add and the activation's op would apply after, to the same bits.
/// The epilogue's code is compiled only into the tiles that take one (kEpilogue): the
/// others' registers and loops are those of a plain product.
template <class T, int R, int NV, bool kEpilogue = false>
[[gnu::always_inline]] inline void store_tile(const V<T> (&acc)[R][NV], T* c, std::int64_t ldc, T alpha, T beta,
                                              const T* bias = nullptr,
                                              math::Activation act = math::Activation::none) {
  [[maybe_unused]] const bool relu = act == math::Activation::relu;
  constexpr int W = Blocking<T>::W;
  V<T> bv[NV] = {};
  if constexpr (kEpilogue) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) bv[j] = bias ? load(bias + j * W) : V<T>{};
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) {
      T* cp = c + i * ldc + j * W;
      V<T> r = alpha == T(1) ? acc[i][j] : alpha * acc[i][j];
      if (beta != T(0)) r += beta * load(cp);
      if constexpr (kEpilogue) {
        if (bias) r += bv[j];
        if (relu) r = r <= V<T>{} ? V<T>{} : r;  // NaN stays NaN, as relu keeps it
      }
      store(cp, r);
    }
  if constexpr (kEpilogue) {
    if (act != math::Activation::none && !relu) activate_rows(act, c, ldc, R, NV * W);
  }
}

/// B's rows (NV vectors each) are ldb apart: NV * W when packed, B's own row stride when
/// read in place.
template <class T, int MR, int NV, ALayout L, bool kEpilogue = false>
[[gnu::always_inline]] inline void micro_kernel(std::int64_t kc, const T* __restrict a, std::int64_t lda,
                                                const T* __restrict b, std::int64_t ldb, T* c, std::int64_t ldc,
                                                T alpha, T beta, const T* bias, math::Activation act) {
  constexpr int W = Blocking<T>::W;
  // Every loop over the tile is unrolled whole, so that acc lives in registers: GCC
  // otherwise keeps it in memory for the row-stream layout (40 -> 67 GFLOP/s at k = 10).
  V<T> acc[MR][NV];
  zero_tile<T, MR, NV>(acc);
  if constexpr (L == ALayout::rows) {
    const T* row[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) row[i] = a + i * lda;
    for (std::int64_t p = 0; p < kc; ++p) {
      V<T> bv[NV];
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) bv[j] = load(b + p * ldb + j * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const T av = row[i][p];
#pragma GCC unroll 16
        for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
      }
    }
  } else {
    const std::int64_t step = L == ALayout::packed ? MR : lda;
    for (std::int64_t p = 0; p < kc; ++p) {
      V<T> bv[NV];
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) bv[j] = load(b + p * ldb + j * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const T av = a[i];
#pragma GCC unroll 16
        for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
      }
      a += step;
    }
  }
  // With 16 vector registers the 6 x 2 tile takes 12 accumulators, 2 of B and a broadcast
  // of A: one short. GCC kept alpha (or beta) in the sixteenth through the loop, for the
  // store after it, and spilled an accumulator instead: a store and a reload of it on every
  // depth, a dependency through memory that halved the row-stream tiles on the Zen 3 (W5's
  // x·W1, 256x1024x784: 41.8 GFLOP/s against OpenBLAS's 92). Passed through memory here,
  // they are reloaded after the loop and hold no register in it.
  if constexpr (kVectorRegisters < 32) asm("" : "+m"(alpha), "+m"(beta));
  store_tile<T, MR, NV, kEpilogue>(acc, c, ldc, alpha, beta, bias, act);
}

/// A product's epilogue as gemm passes it down: the caller's GemmEpilogue, read where it
/// is, and where C starts, from which a tile's offset into grad_y is its offset into C.
/// Not a copy: the caller has just stored the fields one by one, and a copy loaded them
/// as one 32-byte vector, which no store can forward (a stall on every call: 4 % of XOR's
/// training step in `perf`, its step 2.6 % faster without, alternated runs).
template <class T>
struct EpilogueAt {
  const GemmEpilogue<T>& of;
  const T* c = nullptr;
  mutable bool b_summed = false;  // the blocked path wrote b_sums as it packed B
};

/// The backward epilogue on `rows` rows of `cols` values of C at c, ldc apart: each the
/// gradient through e.grad_act at the output grad_y holds at the same place
/// (math::activation_vjp). Out of line, as activate_rows.
template <class T>
[[gnu::noinline]] void activation_vjp_rows(const EpilogueAt<T>& e, T* c, std::int64_t ldc, std::int64_t rows,
                                           std::int64_t cols) {
  const T* y = e.of.grad_y + (c - e.c);
  // Whole rows at once where they are contiguous: a narrow product's rows (W4's three
  // columns) are too short for a vector loop of their own.
  if (ldc == cols) {
    math::activation_vjp(e.of.grad_act, y, c, rows * cols);
    return;
  }
  for (std::int64_t i = 0; i < rows; ++i) math::activation_vjp(e.of.grad_act, y + i * ldc, c + i * ldc, cols);
}

/// C (rows x cols at c, rows ldc apart; its first column is column j0 of the product) =
/// act(C + bias): bias_add's add, then the activation's function, each element rounded as
/// those ops round it (GemmEpilogue); or the backward epilogue (activation_vjp_rows).
template <class T>
void apply_epilogue(const EpilogueAt<T>& e, T* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols,
                    std::int64_t j0) {
  if (e.of.grad_y) {
    activation_vjp_rows(e, c, ldc, rows, cols);
    return;
  }
  const T* bias = e.of.bias ? e.of.bias + j0 : nullptr;
  const bool bias_relu = bias && e.of.act == math::Activation::relu;
  for (std::int64_t i = 0; bias && i < rows; ++i) {
    T* row = c + i * ldc;
    if (bias_relu)
      for (std::int64_t j = 0; j < cols; ++j) row[j] = math::relu(row[j] + bias[j]);
    else
      for (std::int64_t j = 0; j < cols; ++j) row[j] = row[j] + bias[j];
  }
  if (bias_relu || e.of.act == math::Activation::none) return;
  // The function over whole rows at once where they are contiguous: a narrow product's
  // rows (XOR's two columns) are too short for a vector loop of their own.
  if (ldc == cols) {
    math::activate(e.of.act, c, rows * cols);
    return;
  }
  for (std::int64_t i = 0; i < rows; ++i) math::activate(e.of.act, c + i * ldc, cols);
}

/// One tile of C at (i, j) of size mr x nr (at most MR x NR); partial tiles go through a
/// local buffer so that the micro-kernel always runs at full size. `epilogue` (or null):
/// the product's, on its last depth block, its bias from this tile's first column.
template <class T, int MR, int NV, ALayout L>
inline void tile(std::int64_t kc, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
                 int mr, int nr, T alpha, T beta, const EpilogueAt<T>* epilogue, std::int64_t j0) {
  constexpr int NR = NV * Blocking<T>::W;
  if (mr == MR && nr == NR) {
    if (epilogue && epilogue->of.grad_y) {
      micro_kernel<T, MR, NV, L>(kc, a, lda, b, ldb, c, ldc, alpha, beta, nullptr, math::Activation::none);
      activation_vjp_rows(*epilogue, c, ldc, MR, NR);  // the tile just stored, in L1
    } else if (epilogue)
      micro_kernel<T, MR, NV, L, true>(kc, a, lda, b, ldb, c, ldc, alpha, beta,
                                       epilogue->of.bias ? epilogue->of.bias + j0 : nullptr, epilogue->of.act);
    else
      micro_kernel<T, MR, NV, L>(kc, a, lda, b, ldb, c, ldc, alpha, beta, nullptr, math::Activation::none);
    return;
  }
  alignas(64) T local[MR * NR];
  micro_kernel<T, MR, NV, L>(kc, a, lda, b, ldb, local, NR, T(1), T(0), nullptr, math::Activation::none);
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      T& out = c[i * ldc + j];
      out = beta != T(0) ? alpha * local[i * NR + j] + beta * out : alpha * local[i * NR + j];
    }
  if (epilogue) apply_epilogue(*epilogue, c, ldc, mr, nr, j0);
}

constexpr std::int64_t kSerialWork = std::int64_t{1} << 18;
/// gemm_blocked reads a B not transposed in place, unpacked, for at most this many rows of
/// C in one pass, when B takes at most kInPlaceBBytes (an L1's worth).
constexpr std::int64_t kInPlaceBRows = 64;
constexpr std::size_t kInPlaceBBytes = std::size_t{32} << 10;
/// The one-pass mode of gemm_blocked: when a shared transposed A packed for every depth
/// block at once takes at most this many bytes.
constexpr std::size_t kOnePassSharedA = std::size_t{8} << 20;

template <class T, int MR, int NV>
void gemm_blocked(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                  std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                  const EpilogueAt<T>* epilogue) {
  constexpr int NR = NV * Blocking<T>::W;
  const GemmBlocking& blocking = machine_blocking<T>();
  const std::int64_t KC = gemm_depth_block(blocking.kc, k);
  const std::int64_t NC = std::max<std::int64_t>(NR, blocking.nc / NR * NR);
  const std::int64_t nc_max = std::min(NC, (n + NR - 1) / NR * NR);
  // B's column sums (GemmEpilogue::b_sums), asked of a B packed by rows: each block of
  // kColumnSumRows rows summed as it is packed, into a row of `b_block_sums` (a ring of
  // `sum_slots` rows: the blocks a depth block touches, and one carried from the one
  // before), and each block, once complete, added to the running totals in its last row
  // in block order (column_sums' additions). W1's bias gradient was a pass of its own over
  // dz (10 MB) before dW1 = xᵀ·dz packed it.
  const EpilogueAt<T>* const asked = epilogue;
  T* const b_sums = epilogue && !tb ? epilogue->of.b_sums : nullptr;
  if (epilogue && !epilogue->of.any()) epilogue = nullptr;  // nothing for the tiles to do
  const std::int64_t sum_slots = (KC + kColumnSumRows - 1) / kColumnSumRows + 1;
  // A product of under kSerialWork multiply-adds runs its tasks on the calling thread (a
  // head's attention scores, 64x64x32, ran at 52 GFLOP/s on 2 threads against 95 on 1):
  // handing them to the pool costs more than it saves. Same tasks, same order of every
  // sum: the same bits either way. Its shared buffers are then that thread's own
  // (task_buffer's slots 2 and 3), with no lock to take: W8's attention makes six such
  // products per head and sequence, and at 2 threads the pool's lock, contended, took
  // 1.3 % of the step's time (`perf`); the step 2 % faster (in-process alternated runs).
  const bool serial = m * n * k < kSerialWork;
  auto sums_lease =
      b_pool().take(b_sums && !serial ? static_cast<std::size_t>((sum_slots + 1) * nc_max) * sizeof(T) : 0);
  T* const b_block_sums = static_cast<T*>(sums_lease.buffer.get());
  if (b_block_sums) asked->b_summed = true;
  const std::size_t b_elements = static_cast<std::size_t>(KC * nc_max);
  auto lease = b_pool().take(serial ? 0 : b_elements * sizeof(T));
  T* packed_b = serial ? task_buffer<T, 2>(b_elements) : static_cast<T*>(lease.buffer.get());

  for (std::int64_t jc = 0; jc < n; jc += NC) {
    const std::int64_t nc = std::min(NC, n - jc);
    const std::int64_t panels = (nc + NR - 1) / NR;
    // At least 8 tasks to balance the threads, from the shape alone. Row blocks of up to
    // mc rows reuse each packed B panel best; with few rows, split the columns first,
    // and shrink the row blocks only when there are too few column panels.
    //
    // A transposed A (the weight gradients xᵀ·dy) is packed by each task into MR-row
    // panels: read in place, each depth of a tile is a new line of A, a stride the
    // prefetchers of some cores follow well (AMD Zen) and others do not (Intel Xeon: 55-70 %
    // of OpenBLAS there; packed, 85-110 %). Its tasks split the rows only, into 16 blocks,
    // so that no block is packed twice and 16 tasks balance the threads; with at most 16
    // row panels that would leave each task one tile per B panel (streaming all of packed
    // B from L2 for it), so A is then packed once per depth block into a buffer the tasks
    // share, and they split as for an A read in place. So too up to 32 row panels: blocks
    // of two panels would make 11 to 16 tasks, which two threads share unevenly, and each
    // depth block would cost a wait (W6's 256x256x256 xᵀ·dy at 2 threads on the Zen 5: 258
    // -> 273 GFLOP/s shared, 256x1024x256 260 -> 305); from 512 rows each task packing its
    // own block measured faster (1024x1024x256: 341 against 301). Not when the block has a single
    // column panel: each value of A is then used once either way, and
    // packing only adds a pass over it (W1's dW2 = hᵀ·dz, 256x10x10000, spent 80 % of its
    // time packing: 4 -> 11 GFLOP/s on the Zen 3 without it).
    constexpr std::int64_t kTasks = 8, kRowBlocks = 16, kSharedRowPanels = 32;
    const std::int64_t row_panels = (m + MR - 1) / MR;
    // On AMD cores a transposed A of up to kSharedRowPanels panels is read in place: the
    // shared packing pass cost more than it saved, a pass over all of A with a wait for
    // the pool after it (W8's xᵀ·dy for a 128x128 weight, k = 2048, on the Zen 5: 188 ->
    // 207 GFLOP/s at 1 thread and 195 -> 285 at 2; for the 128x512 weight 201 -> 205 and
    // 356 -> 417). Taller ones keep packing (W5's 1024x1024x256 at 2 threads: 7 % slower
    // in place). Intel cores keep packing every transposed A (above). The same tiles and
    // sums either way: the same bits.
    const bool pack_a_mode =
        ta && NV > 1 && panels > 1 && !(row_panels <= kSharedRowPanels && strided_a_in_place());
    const bool shared_a = pack_a_mode && row_panels <= kSharedRowPanels;
    const bool own_a = pack_a_mode && !shared_a;  // each task packs its own row block
    std::int64_t mc = std::max<std::int64_t>(MR, blocking.mc / MR * MR);
    // An A read in place with rows enough for kTasks blocks: blocks of half the height.
    // Each block of mc rows is read once per B panel, from L2; at half of L2 (blocking.mc)
    // it did not stay there beside the B panels and C's tiles, and the prefetchers' lines
    // past each row's kc values: W1's x·W1 (10000x256x784) on the Zen 5, 152 -> 165
    // GFLOP/s at 1 thread and 311 -> 329 at 2. The same tiles and sums: the same bits.
    if (!pack_a_mode && m >= kTasks * mc) mc = std::max<std::int64_t>(MR, mc / 2 / MR * MR);
    std::int64_t m_blocks = (m + mc - 1) / mc;
    const std::int64_t threads = serial ? 1 : num_threads();
    // On one thread there is nothing to balance: a transposed A packed by row blocks keeps
    // blocks of mc rows (half of L2), one task each, when a depth block of packed B is no
    // larger than such a block (both then stay in L2). The 16 narrow blocks made each
    // depth's run of A a few lines long, a new line of A for every few values packed.
    // Alternated runs on the Zen 5 (GFLOP/s, medians of five): W1's xᵀ·da (784x256x10000)
    // 173 -> 179, W8's uᵀ·dy (512x128x2048) 166 -> 179, LeNet's xᵀ·dz (400x120x64) 156 ->
    // 169; with a wide B (1024 columns, W5's hᵀ·da) the narrow blocks stay: their A stays
    // in L1 while B streams (4 % faster). At two threads the narrow blocks measured faster
    // (512x128x2048: 285 against 251 in two blocks). The same tiles and sums: the same bits.
    const bool one_block_per_l2 = own_a && threads == 1 && nc_max <= blocking.mc;
    if (own_a && !one_block_per_l2) m_blocks = std::max(m_blocks, std::min(row_panels, kRowBlocks));
    std::int64_t chunks =
        one_block_per_l2 || m_blocks >= kTasks ? 1 : std::min(panels, (kTasks + m_blocks - 1) / m_blocks);
    // One row block runs as one pass (below), which packs each B panel in the task that
    // uses it; splitting the rows to make more tasks would pack every panel twice, as
    // costly as the tiles for 64 rows (LeNet's x·W3, 64x120x400: 125 -> 113 GFLOP/s at 1
    // thread). It keeps its row block and has as many tasks as column panels.
    const std::size_t a_all_depths = static_cast<std::size_t>(row_panels * MR * k) * sizeof(T);
    const bool one_pass = m_blocks == 1 && (!pack_a_mode || (shared_a && a_all_depths <= kOnePassSharedA));
    if (!one_block_per_l2 && !one_pass && m_blocks * chunks < kTasks) {
      const std::int64_t want_blocks = (kTasks + chunks - 1) / chunks;
      mc = std::max<std::int64_t>(MR, ((m + want_blocks - 1) / want_blocks + MR - 1) / MR * MR);
      m_blocks = (m + mc - 1) / mc;
    }
    // Row blocks as tasks: a multiple of the threads, so that each thread has as many. 15
    // blocks made 8 for one thread and 7 for the other (W5's hᵀ·da, 1024x1024x256, at 2
    // threads: 1.48 ms against 1.39 with 16).
    if (chunks == 1 && threads > 1 && m_blocks > 1)
      m_blocks = std::min(row_panels, (m_blocks + threads - 1) / threads * threads);
    // The row blocks share the row panels out evenly: block b has panels [b P / B,
    // (b + 1) P / B), so that their sizes differ by one panel at most. Blocks of one size
    // rounded up to whole panels left the last one a sliver: W1's xᵀ·da (784 rows) made 13
    // blocks of 60 rows and one of 4, and at 2 threads one thread did 420 rows of every
    // depth block while the other did 364 and waited.
    const auto block_start = [&](std::int64_t blk) { return std::min(m, blk * row_panels / m_blocks * MR); };
    const std::int64_t MC = (row_panels + m_blocks - 1) / m_blocks * MR;  // the largest block
    const std::int64_t panels_per_chunk = (panels + chunks - 1) / chunks;
    chunks = (panels + panels_per_chunk - 1) / panels_per_chunk;
    // With one row block, the product runs as one pass: each task packs the B panels it
    // uses itself, depth block after depth block, and a shared A is packed for every depth
    // block first. Otherwise each depth block is three passes (pack B, pack A, the tiles)
    // with a wait for the pool after each, which for few rows cost more than the tiles: at
    // 2 threads on the Zen 5, W8's xᵀ·dy for a 128x128 weight (7 depth blocks) 132 -> 159
    // GFLOP/s, LeNet's x·W3 (64x120x400) 96 -> 147, W5's x·W1 (256x1024x784) 277 -> 338.
    // The same sums in the same order: the same bits.
    const std::size_t a_bytes =
        !shared_a ? 0 : one_pass ? a_all_depths : static_cast<std::size_t>(row_panels * MR * KC) * sizeof(T);
    auto a_lease = b_pool().take(serial ? 0 : a_bytes);
    T* shared_packed_a = serial ? task_buffer<T, 3>(a_bytes / sizeof(T)) : static_cast<T*>(a_lease.buffer.get());
    // The packed A of depth block pc: all blocks one after another in the one-pass mode.
    const auto shared_a_at = [&](std::int64_t pc) { return shared_packed_a + (one_pass ? pc * row_panels * MR : 0); };

    const auto loop = [serial](std::int64_t count, std::int64_t grain, auto&& body) {
      if (serial) body(std::int64_t{0}, count);
      else parallel_for(count, grain, body);
    };
    const auto pack_shared_a = [&](std::int64_t pc, std::int64_t kc, std::int64_t p0, std::int64_t p1) {
      pack_a<T, MR>(true, a, lda, p0 * MR, std::min(m, p1 * MR) - p0 * MR, pc, kc, shared_a_at(pc) + p0 * MR * kc);
    };
    // A small B not transposed, for few rows of A, is read in place in the one-pass mode:
    // its full panels are rows of NR values ldb apart, which every tile after the first
    // reads from L1 (a ragged last panel is packed, zero-padded). Packing it was a pass
    // over B for a handful of tiles: the attention's p·v, dq, dk and dv products (64x32x64
    // and the like, once per head) spent a sixth of their time in it. Not a large B: read
    // in place, a new row (a page apart at 1024 columns) for every depth of the first
    // tile, it missed the prefetchers and the TLB (64x1024x784 from L3: 77 -> 61
    // GFLOP/s).
    const bool b_in_place = !tb && one_pass && m <= kInPlaceBRows &&
                            static_cast<std::size_t>(k * n) * sizeof(T) <= kInPlaceBBytes;
    // Task t's tiles of depth block pc; `bpanels` is the packed B of its first panel (with
    // b_in_place, only a ragged last panel is there, at its place).
    const auto run_task = [&](std::int64_t t, std::int64_t pc, std::int64_t kc, const T* bpanels) {
      const T beta_here = pc == 0 ? beta : T(1);
      // The epilogue goes on each tile's registers as its last depth block is stored.
      const EpilogueAt<T>* epilogue_here = pc + kc == k ? epilogue : nullptr;
      // A task's tiles go down its row block for each B panel (the panel stays in L1 while
      // the row block streams from L2). When all its panels together are no larger than one
      // panel of full depth, they stay in L1 either way, and the tiles go along each row of
      // tiles instead: a short depth makes the product a pass that writes C, and a tile's
      // stores then follow the previous tile's along the same rows. Down the rows, C's rows
      // one power of two apart made the stores of successive tiles alias 4 KiB apart (W5's
      // dz·W3ᵀ, 256x1024x10: 46 -> 128 GFLOP/s on the Zen 5).
      const bool rows_first = panels_per_chunk * kc <= KC;
      const std::int64_t ic = block_start(t / chunks);
      const std::int64_t mc = block_start(t / chunks + 1) - ic;
      const std::int64_t full = mc / MR * MR;  // rows in full panels
      T* packed_a = nullptr;  // the whole block, zero-padded to whole panels, when A is packed
      T* ragged = nullptr;    // the last panel when it is partial: always packed
      if (shared_a) {
        packed_a = shared_a_at(pc) + ic * kc;
        if (full < mc) ragged = packed_a + full * kc;
      } else if (pack_a_mode) {
        packed_a = a_buffer<T>(static_cast<std::size_t>(MC * KC));
        pack_a<T, MR>(ta, a, lda, ic, mc, pc, kc, packed_a);
        if (full < mc) ragged = packed_a + full * kc;
      } else if (full < mc) {
        ragged = a_buffer<T>(static_cast<std::size_t>(MR * KC));
        pack_a<T, MR>(ta, a, lda, ic + full, mc - full, pc, kc, ragged);
      }
      const std::int64_t first_panel = (t % chunks) * panels_per_chunk;
      const std::int64_t last_panel = std::min(panels, first_panel + panels_per_chunk);
      // Prefetch of the next depth block's rows of A for this row block, spread over the tiles.
      const T* pf_base = nullptr;
      std::int64_t pf_rows = 0, pf_row = 0, pf_step = 0;
      if (own_a && pc + KC < k) {
        pf_base = a + (pc + KC) * lda + ic;
        pf_rows = std::min(KC, k - pc - KC);
        const std::int64_t tiles = (last_panel - first_panel) * ((mc + MR - 1) / MR);
        pf_step = (pf_rows + tiles - 1) / tiles;
      }
      const auto one = [&](std::int64_t p, std::int64_t ir) {
        for (std::int64_t e = std::min(pf_rows, pf_row + pf_step); pf_row < e; ++pf_row) {
          const T* r = pf_base + pf_row * lda;
          for (std::int64_t x = 0; x < mc; x += 64 / static_cast<std::int64_t>(sizeof(T)))
            __builtin_prefetch(r + x, 0, 2);
          __builtin_prefetch(r + mc - 1, 0, 2);
        }
        const std::int64_t j = jc + p * NR;
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, n - j));
        const bool in_place = b_in_place && nr == NR;
        const T* bp = in_place ? b + pc * ldb + j : bpanels + (p - first_panel) * NR * kc;
        const std::int64_t bs = in_place ? ldb : NR;
        T* ct = c + (ic + ir) * ldc + j;
        if (ir == full)
          tile<T, MR, NV, ALayout::packed>(kc, ragged, 0, bp, bs, ct, ldc, static_cast<int>(mc - full), nr, alpha,
                                           beta_here, epilogue_here, j);
        else if (packed_a)
          tile<T, MR, NV, ALayout::packed>(kc, packed_a + ir * kc, 0, bp, bs, ct, ldc, MR, nr, alpha, beta_here,
                                           epilogue_here, j);
        else if (ta)
          tile<T, MR, NV, ALayout::cols>(kc, a + pc * lda + ic + ir, lda, bp, bs, ct, ldc, MR, nr, alpha, beta_here,
                                         epilogue_here, j);
        else {
          // The first pass over a row block brings A in from memory (each later panel finds
          // it in L2): the next tile's rows are prefetched during this one. The transformer
          // W8's products with A fresh from memory (12 buffers in turn), medians of six
          // alternated runs on the Zen 4: u·W2 (2048x128x512) 92.5 -> 97.3 GFLOP/s at 1
          // thread, x·Wq (2048x128x128) 84.6 -> 88.6; the W5 and W1 shapes unchanged.
          if (p == first_panel && ir + MR < full) {
            const T* next = a + (ic + ir + MR) * lda + pc;
            for (int r = 0; r < MR; ++r)
              for (std::int64_t x = 0; x < kc; x += 64 / static_cast<std::int64_t>(sizeof(T)))
                __builtin_prefetch(next + r * lda + x, 0, 2);
          }
          tile<T, MR, NV, ALayout::rows>(kc, a + (ic + ir) * lda + pc, lda, bp, bs, ct, ldc, MR, nr, alpha, beta_here,
                                         epilogue_here, j);
        }
      };
      const std::int64_t row_end = ragged ? full + 1 : full;
      if (rows_first) {
        for (std::int64_t ir = 0; ir < row_end; ir += MR)
          for (std::int64_t p = first_panel; p < last_panel; ++p) one(p, ir);
      } else {
        for (std::int64_t p = first_panel; p < last_panel; ++p)
          for (std::int64_t ir = 0; ir < row_end; ir += MR) one(p, ir);
      }
    };

    if (one_pass) {
      if (shared_a) {
        loop(row_panels, 4, [&](std::int64_t p0, std::int64_t p1) {
          for (std::int64_t pc = 0; pc < k; pc += KC) pack_shared_a(pc, std::min(KC, k - pc), p0, p1);
        });
      }
      loop(m_blocks * chunks, 1, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) {
          const std::int64_t first_panel = (t % chunks) * panels_per_chunk;
          const std::int64_t own = std::min(panels, first_panel + panels_per_chunk) - first_panel;
          T* bpanels = task_buffer<T, 1>(static_cast<std::size_t>(panels_per_chunk * NR * KC));
          for (std::int64_t pc = 0; pc < k; pc += KC) {
            const std::int64_t kc = std::min(KC, k - pc);
            if (tb) {
              for (std::int64_t p = 0; p < own; ++p)
                pack_bt_panel<T, NR>(b, ldb, pc, kc, jc + (first_panel + p) * NR, n, bpanels + p * NR * kc);
            } else if (b_in_place) {
              const std::int64_t j0 = (first_panel + own - 1) * NR;  // the task's last panel
              if (nc - j0 < NR) pack_b_rows<T, NR>(b, ldb, pc, kc, 0, kc, jc + j0, nc - j0, bpanels + (own - 1) * NR * kc);
            } else {
              const std::int64_t j0 = first_panel * NR;
              pack_b_rows<T, NR>(b, ldb, pc, kc, 0, kc, jc + j0, std::min(nc - j0, own * NR), bpanels);
            }
            run_task(t, pc, kc, bpanels);
          }
        }
      });
      if (b_block_sums) column_sums(b + jc, k, nc, ldb, b_sums + jc);  // these columns in a pass
      continue;
    }
    const bool sum_b = b_block_sums != nullptr;
    T* const totals = sum_b ? b_block_sums + sum_slots * nc_max : nullptr;
    if (sum_b) std::fill(totals, totals + nc, T(0));
    for (std::int64_t pc = 0; pc < k; pc += KC) {
      const std::int64_t kc = std::min(KC, k - pc);
      if (tb) {
        loop(panels, 4, [&](std::int64_t p0, std::int64_t p1) {
          for (std::int64_t p = p0; p < p1; ++p)
            pack_bt_panel<T, NR>(b, ldb, pc, kc, jc + p * NR, n, packed_b + p * NR * kc);
        });
      } else if (sum_b) {
        // One task a block of kColumnSumRows rows (of those in this depth block): its
        // rows summed in order, the sums of a block cut by a depth block carried on.
        const std::int64_t g0 = pc / kColumnSumRows, g1 = (pc + kc - 1) / kColumnSumRows + 1;
        loop(g1 - g0, 1, [&](std::int64_t t0, std::int64_t t1) {
          for (std::int64_t g = g0 + t0; g < g0 + t1; ++g) {
            const std::int64_t r0 = std::max(pc, g * kColumnSumRows);
            const std::int64_t r1 = std::min(pc + kc, (g + 1) * kColumnSumRows);
            T* sums = b_block_sums + g % sum_slots * nc_max;
            if (r0 == g * kColumnSumRows) std::fill(sums, sums + nc, T(0));
            pack_b_rows<T, NR>(b, ldb, pc, kc, r0 - pc, r1 - pc, jc, nc, packed_b, sums);
          }
        });
        // The blocks this depth block completed, into the totals in order.
        for (std::int64_t g = g0; g < g1 && std::min(k, (g + 1) * kColumnSumRows) <= pc + kc; ++g) {
          const T* sums = b_block_sums + g % sum_slots * nc_max;
          for (std::int64_t c = 0; c < nc; ++c) totals[c] += sums[c];
        }
      } else {
        loop(kc, 16, [&](std::int64_t q0, std::int64_t q1) { pack_b_rows<T, NR>(b, ldb, pc, kc, q0, q1, jc, nc, packed_b); });
      }
      if (shared_a) loop(row_panels, 4, [&](std::int64_t p0, std::int64_t p1) { pack_shared_a(pc, kc, p0, p1); });
      loop(m_blocks * chunks, 1, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) run_task(t, pc, kc, packed_b + (t % chunks) * panels_per_chunk * NR * kc);
      });
    }
    if (sum_b) std::copy(totals, totals + nc, b_sums + jc);
  }
}

// ---- few rows ----

/// Few rows of C (m <= kShortRows) by many columns, B read in place (not transposed):
/// conv2d's W·cols (6 or 16 output channels by hundreds of positions per image), a
/// forward pass of one sample. Packing B would copy it for a single use, and the blocked
/// path's 12-row tiles would compute 12 rows for 6. C is done in column blocks of NV
/// vectors, R rows at a time (R x NV accumulators in registers: 6 x 4, or 8 x 3 where that
/// makes fewer tiles); each element of C is summed over k in order by one task, whatever
/// the thread count.
constexpr std::int64_t kShortRows = 16;

template <class T, int RowsPerTile = 6>
struct ShortBlocking {
  static constexpr int R = RowsPerTile;
  // 24 (12) accumulators: 6 rows x 4 vectors, or 8 x 3 (the tall tiles, below).
  static constexpr int NV = kVectorRegisters >= 32 ? 24 / RowsPerTile : 12 / RowsPerTile;
  static constexpr int NB = NV * Blocking<T>::W;
};

template <class T, int R, bool TA, int NV = ShortBlocking<T>::NV>
[[gnu::always_inline]] inline void short_tile(std::int64_t k, const T* __restrict a, std::int64_t lda,
                                              const T* __restrict b, std::int64_t ldb, T* c, std::int64_t ldc,
                                              T alpha, T beta) {
  constexpr int W = Blocking<T>::W;
  V<T> acc[R][NV];
  zero_tile<T, R, NV>(acc);
  for (std::int64_t p = 0; p < k; ++p) {
    V<T> bv[NV];
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) bv[q] = load(b + p * ldb + q * W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const T av = TA ? a[p * lda + i] : a[i * lda + p];
#pragma GCC unroll 16
      for (int q = 0; q < NV; ++q) acc[i][q] += av * bv[q];
    }
  }
  store_tile<T, R, NV>(acc, c, ldc, alpha, beta);
}

/// Rows [0, m) of one column block of C (NV vectors wide), R at a time and the rest together.
template <class T, bool TA, int R, int NV, int... Rs>
void short_block(std::integer_sequence<int, Rs...>, std::int64_t m, std::int64_t k, const T* a, std::int64_t lda,
                 const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta) {
  const auto row = [&](std::int64_t i) { return TA ? a + i : a + i * lda; };
  std::int64_t i = 0;
  for (; i + R <= m; i += R) short_tile<T, R, TA, NV>(k, row(i), lda, b, ldb, c + i * ldc, ldc, alpha, beta);
  const std::int64_t rest = m - i;
  ((rest == Rs + 1 ? short_tile<T, Rs + 1, TA, NV>(k, row(i), lda, b, ldb, c + i * ldc, ldc, alpha, beta) : void()),
   ...);
}

/// The ragged last column block, `nv` vectors wide (1 to NV), from B packed that wide (or read
/// in place when the block is whole vectors), into C scaled by alpha and beta.
template <class T, bool TA, int R, int... Vs>
void short_ragged(std::integer_sequence<int, Vs...>, int nv, std::int64_t m, std::int64_t k, const T* a,
                  std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta) {
  using Rest = std::make_integer_sequence<int, R - 1>;
  ((nv == Vs + 1 ? short_block<T, TA, R, Vs + 1>(Rest{}, m, k, a, lda, b, ldb, c, ldc, alpha, beta) : void()), ...);
}

template <class T, bool TA, int RowsPerTile>
void gemm_short(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  using SB = ShortBlocking<T, RowsPerTile>;
  constexpr int NB = SB::NB, R = SB::R, NV = SB::NV;
  using Rest = std::make_integer_sequence<int, R - 1>;
  const std::int64_t full = n / NB, blocks = (n + NB - 1) / NB;
  const auto body = [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t jb = j0; jb < j1; ++jb) {
      const std::int64_t j = jb * NB;
      if (jb < full) {
        short_block<T, TA, R, NV>(Rest{}, m, k, a, lda, b + j, ldb, c + j, ldc, alpha, beta);
        continue;
      }
      // The ragged last block: its columns copied into as few whole vectors as hold them
      // (zeros after), the tile computed that wide into a local C, then the valid part
      // written. Computed the full NB wide, conv2d's 6x784x25 spent a twelfth of its
      // time on 48 columns of zeros (94 -> 101 GFLOP/s on the Zen 4). Each element is
      // summed over k in the same order either way: the same bits.
      const std::int64_t nr = n - j;
      const int nv = static_cast<int>((nr + Blocking<T>::W - 1) / Blocking<T>::W);
      const std::int64_t width = nv * Blocking<T>::W;
      // Whole vectors (conv1's 784 columns: 12 blocks of 64 and one vector) run in place:
      // the copy, the local C and its scalar write-back were 4 % of the product (6x784x25 on
      // the Zen 4: 2.31-2.33 -> 2.23-2.24 us, alternated).
      if (nr == width) {
        short_ragged<T, TA, R>(std::make_integer_sequence<int, NV>{}, nv, m, k, a, lda, b + j, ldb, c + j, ldc, alpha,
                               beta);
        continue;
      }
      T* packed = a_buffer<T>(static_cast<std::size_t>(k * width));
      for (std::int64_t p = 0; p < k; ++p) {
        std::copy_n(b + p * ldb + j, nr, packed + p * width);
        std::fill(packed + p * width + nr, packed + (p + 1) * width, T(0));
      }
      alignas(64) T local[kShortRows * NB];
      short_ragged<T, TA, R>(std::make_integer_sequence<int, NV>{}, nv, m, k, a, lda, packed, width,
                          local, width, T(1), T(0));
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t q = 0; q < nr; ++q) {
          T& out = c[i * ldc + j + q];
          out = beta != T(0) ? alpha * local[i * width + q] + beta * out : alpha * local[i * width + q];
        }
    }
  };
  if (m * n * k < kSerialWork) body(0, blocks);
  else parallel_for(blocks, 1, body);
}

// ---- inner products ----

/// Few rows and columns over a long depth, A by rows and B transposed (both read along
/// k): conv2d's kernel gradient gy · colsᵀ (6 or 16 output channels by 25 or 150 taps over
/// hundreds of positions). Each element of C is a dot product: the depth is split across
/// the lanes of a vector, RI x RJ of them at a time in registers (RI + RJ loads for RI x
/// RJ multiply-adds), the last k mod W depths as one more vector with the lanes past k
/// zero (AVX-512's masked loads; elsewhere one by one after the lanes are added), and the
/// lanes added as a tree of halves. One task per block of at most RJ columns, the blocks
/// of equal width: the same bits on any thread count.
constexpr std::int64_t kDotRows = 16, kDotCols = 256, kDotDepth = 256;
constexpr int kDotRI = 4, kDotRJ = kVectorRegisters >= 32 ? 6 : 2;

/// Keeps a loaded vector in a register. GCC otherwise drops the RI + RJ loads of the
/// inner-product tile and reads B again as a memory operand of every multiply-add (28
/// loads for 24 of them at 4 x 6; with 4 x 4, two loads per multiply-add). With the lanes
/// added as a tree, conv1's 6x25x784 went 68 -> 125 GFLOP/s on the Zen 5.
template <class T>
[[gnu::always_inline]] inline void in_register(V<T>& v) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+v"(v));
#else
  (void)v;
#endif
}

/// The first `count` (< W) elements at p, zeros after, reading nothing past them.
template <class T>
[[gnu::always_inline]] inline V<T> load_first(const T* p, std::int64_t count) {
#if defined(__AVX512F__)
  const auto mask = static_cast<std::uint32_t>((std::uint64_t{1} << count) - 1);
  if constexpr (sizeof(T) == 4) return std::bit_cast<V<T>>(_mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), p));
  else return std::bit_cast<V<T>>(_mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), p));
#else
  V<T> v = {};
  for (std::int64_t l = 0; l < count; ++l) v[l] = p[l];
  return v;
#endif
}

/// Where lane `pos` of one fold of a pair of vectors (x, y) comes from: each holds W / L
/// groups of L lanes, one partial sum per group, and the fold's result holds twice as many
/// groups of L / 2 lanes, x's groups then y's, each the lower half of its group (Upper
/// false, u below) added to the upper half (Upper true, v): lane l + (l + L/2).
template <int W, int L, bool Upper>
constexpr int fold_index(int pos) {
  const int half = L / 2, groups = W / L;
  const int group = pos / half, offset = pos % half;
  const int base = group < groups ? group * L : W + (group - groups) * L;
  return base + offset + (Upper ? half : 0);
}

template <class T, int L, std::size_t... P>
[[gnu::always_inline]] inline V<T> fold_pair(V<T> x, V<T> y, std::index_sequence<P...>) {
  constexpr int W = static_cast<int>(sizeof...(P));
  const V<T> u = __builtin_shufflevector(x, y, fold_index<W, L, false>(static_cast<int>(P))...);
  const V<T> v = __builtin_shufflevector(x, y, fold_index<W, L, true>(static_cast<int>(P))...);
  return u + v;
}

/// The folds from groups of L lanes down to single lanes, over M vectors (in place).
template <class T, int L, int M>
[[gnu::always_inline]] inline void fold_stages(V<T>* v) {
  if constexpr (L >= 2) {
    using Lanes = std::make_index_sequence<static_cast<std::size_t>(Blocking<T>::W)>;
#pragma GCC unroll 32
    for (int j = 0; j < M / 2; ++j) v[j] = fold_pair<T, L>(v[2 * j], v[2 * j + 1], Lanes{});
    if constexpr (M % 2 == 1) v[M / 2] = fold_pair<T, L>(v[M - 1], V<T>{}, Lanes{});
    fold_stages<T, L / 2, (M + 1) / 2>(v);
  }
}

/// out[i] = the lanes of acc[i] added up, for N accumulators at once, as a tree of halves:
/// lane l + (l + W/2), then + W/4, down to one (the same tree for every accumulator, so
/// the same bits for any tile). Each level folds two vectors with two shuffles and one
/// add; one vector at a time, a level had cost a shuffle and an add per vector. A tile of
/// 4 x 5 dot products (conv1's kernel gradient, 6x25x784) took 160 such operations to add
/// up its lanes, now 60: that product 1.29 -> 1.23 µs and W7's 16x150x1000 34.3 -> 31.0
/// on the Zen 5 (medians of alternated runs, 1 thread; OpenBLAS 1.37 and 54.6).
template <class T, int N>
[[gnu::always_inline]] inline void sum_each(const V<T>* acc, T* out) {
  constexpr int W = Blocking<T>::W;
  V<T> v[N];
#pragma GCC unroll 32
  for (int i = 0; i < N; ++i) v[i] = acc[i];
  fold_stages<T, W, N>(v);
#pragma GCC unroll 32
  for (int i = 0; i < N; ++i) out[i] = v[i / W][i % W];
}

/// acc[i][j] += a_i * b_j for the RI + RJ vectors given (pinned in registers first).
template <class T, int RI, int RJ>
[[gnu::always_inline]] inline void dot_step(V<T> (&acc)[RI][RJ], V<T> (&av)[RI], V<T> (&bv)[RJ]) {
#pragma GCC unroll 16
  for (int i = 0; i < RI; ++i) in_register<T>(av[i]);
#pragma GCC unroll 16
  for (int j = 0; j < RJ; ++j) in_register<T>(bv[j]);
#pragma GCC unroll 16
  for (int i = 0; i < RI; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < RJ; ++j) acc[i][j] += av[i] * bv[j];
}

template <class T, int RI, int RJ>
[[gnu::always_inline]] inline void dot_tile(std::int64_t k, const T* a, std::int64_t lda, const T* b,
                                            std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta) {
  constexpr int W = Blocking<T>::W;
  constexpr bool kMasked = kVectorBytes == 64;  // AVX-512: the tail as one masked vector
  V<T> acc[RI][RJ];
  zero_tile<T, RI, RJ>(acc);
  const std::int64_t kv = k / W * W;
  for (std::int64_t p = 0; p < kv; p += W) {
    V<T> av[RI], bv[RJ];
#pragma GCC unroll 16
    for (int i = 0; i < RI; ++i) av[i] = load(a + i * lda + p);
#pragma GCC unroll 16
    for (int j = 0; j < RJ; ++j) bv[j] = load(b + j * ldb + p);
    dot_step<T, RI, RJ>(acc, av, bv);
  }
  if (kMasked && kv < k) {
    V<T> av[RI], bv[RJ];
#pragma GCC unroll 16
    for (int i = 0; i < RI; ++i) av[i] = load_first(a + i * lda + kv, k - kv);
#pragma GCC unroll 16
    for (int j = 0; j < RJ; ++j) bv[j] = load_first(b + j * ldb + kv, k - kv);
    dot_step<T, RI, RJ>(acc, av, bv);
  }
  T sums[RI * RJ];
  sum_each<T, RI * RJ>(&acc[0][0], sums);
#pragma GCC unroll 16
  for (int i = 0; i < RI; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < RJ; ++j) {
      T sum = sums[i * RJ + j];
      if (!kMasked)
        for (std::int64_t p = kv; p < k; ++p) sum += a[i * lda + p] * b[j * ldb + p];
      T& out = c[i * ldc + j];
      out = beta != T(0) ? alpha * sum + beta * out : alpha * sum;
    }
}

/// Rows [0, m) of RJ columns (rj of them, at most RJ), RI rows at a time, the rest together.
template <class T, int RJ, int... RIs>
void dot_rows(std::integer_sequence<int, RIs...>, std::int64_t m, std::int64_t k, const T* a, std::int64_t lda,
              const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta) {
  std::int64_t i = 0;
  for (; i + kDotRI <= m; i += kDotRI) dot_tile<T, kDotRI, RJ>(k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, alpha, beta);
  const std::int64_t rest = m - i;
  ((rest == RIs + 1 ? dot_tile<T, RIs + 1, RJ>(k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, alpha, beta) : void()),
   ...);
}

template <class T, int... RJs>
void dot_columns(std::integer_sequence<int, RJs...>, std::int64_t rj, std::int64_t m, std::int64_t k, const T* a,
                 std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta) {
  using Rest = std::make_integer_sequence<int, kDotRI - 1>;
  ((rj == RJs + 1 ? dot_rows<T, RJs + 1>(Rest{}, m, k, a, lda, b, ldb, c, ldc, alpha, beta) : void()), ...);
}

template <class T>
void gemm_dot(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
              std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  // Blocks of equal width: 25 columns as 5 x 5, not 4 x 6 and a last column alone (whose
  // tiles load an A vector for every multiply-add).
  const std::int64_t blocks = (n + kDotRJ - 1) / kDotRJ, width = (n + blocks - 1) / blocks;
  const auto body = [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t jb = j0; jb < j1; ++jb) {
      const std::int64_t j = jb * width;
      if (j >= n) break;
      dot_columns<T>(std::make_integer_sequence<int, kDotRJ>{}, std::min<std::int64_t>(width, n - j), m, k, a, lda,
                     b + j * ldb, ldb, c + j, ldc, alpha, beta);
    }
  };
  if (m * n * k < kSerialWork) body(0, blocks);
  else parallel_for(blocks, 1, body);
}

/// A long depth, A transposed, C one vector wide: a narrow layer's weight gradient hᵀ·dz
/// (W1's output layer, 256x10x10000: h's 10000 rows of 256 by dz's of 10). The blocked
/// path splits a product by the rows of C only, so each of its tasks read a few values of
/// every row of h (a new line a row apart for each depth) and waited for the pool after
/// each depth block; at 2 threads it ran no faster than at 1. Here the depth is cut into
/// kSplitRanges ranges fixed by k alone; each task sums its range for all of C into a
/// partial of its own, kSplitSlice depths at a time (B's slice packed one vector wide, A
/// read in place in tiles of MR rows: the slice's rows of A stay in L2 while the tiles go
/// across them, and the next slice's are prefetched meanwhile), and the partials are added
/// in range order: the same bits on any thread count. On the Intel Xeon, A cold from
/// memory (medians of 15): 256x10x10000 1.61 -> 1.29 ms at 1 thread, 1.69 -> 0.68 at 2
/// (in W1's 2-thread step 2.10 -> 0.69 ms); 84x10x4096 0.19 -> 0.13 ms at 2. Not for a
/// depth under 32 times the rows: W8's head, 128x16x2048 (one slice a range, nothing to
/// prefetch), took 0.169 ms against 0.140 at 1 thread. Its tiles are the blocked path's
/// (micro_kernel), so it runs in AddressSanitizer builds too.
constexpr std::int64_t kSplitRanges = 8, kSplitSlice = 256, kSplitMaxRows = 1024;

template <class T>
bool split_depth_fits(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k) {
  return ta && !tb && n <= Blocking<T>::W && m <= kSplitMaxRows && k >= 32 * m &&
         k >= kSplitRanges * kSplitSlice;
}

template <class T>
void gemm_split_depth(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                      const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  constexpr int W = Blocking<T>::W, MR = Blocking<T>::MR;
  const std::int64_t rows = (m + MR - 1) / MR * MR, full = m / MR * MR;
  const std::int64_t span = (k + kSplitRanges - 1) / kSplitRanges;  // every range non-empty: k >= 8 * 256
  auto lease = b_pool().take(static_cast<std::size_t>(kSplitRanges * rows * W) * sizeof(T));
  T* partials = static_cast<T*>(lease.buffer.get());
  parallel_for(kSplitRanges, 1, [&](std::int64_t r0, std::int64_t r1) {
    T* bp = task_buffer<T, 1>(static_cast<std::size_t>(kSplitSlice * W));
    T* ragged = a_buffer<T>(static_cast<std::size_t>(MR * kSplitSlice));
    for (std::int64_t r = r0; r < r1; ++r) {
      T* part = partials + r * rows * W;
      const std::int64_t begin = r * span, end = std::min(k, begin + span);
      for (std::int64_t p0 = begin; p0 < end; p0 += kSplitSlice) {
        const std::int64_t d = std::min(kSplitSlice, end - p0);
        const T beta_here = p0 == begin ? T(0) : T(1);
        pack_b_rows<T, W>(b, ldb, p0, d, 0, d, 0, n, bp);
        // The range's next slice of A is prefetched, a share of its rows during each tile.
        const std::int64_t ahead = std::min(kSplitSlice, end - p0 - d), tiles = full / MR;
        const std::int64_t per = tiles > 0 ? (ahead + tiles - 1) / tiles : 0;
        std::int64_t next = 0;
        for (std::int64_t i = 0; i < full; i += MR) {
          for (const std::int64_t e = std::min(ahead, next + per); next < e; ++next) {
            const T* row = a + (p0 + d + next) * lda;
            for (std::int64_t x = 0; x < m; x += 64 / static_cast<std::int64_t>(sizeof(T))) __builtin_prefetch(row + x, 0, 2);
            __builtin_prefetch(row + m - 1, 0, 2);
          }
          micro_kernel<T, MR, 1, ALayout::cols>(d, a + p0 * lda + i, lda, bp, W, part + i * W, W, T(1), beta_here,
                                                nullptr, math::Activation::none);
        }
        if (full < m) {
          pack_a<T, MR>(true, a, lda, full, m - full, p0, d, ragged);
          micro_kernel<T, MR, 1, ALayout::packed>(d, ragged, 0, bp, W, part + full * W, W, T(1), beta_here,
                                                  nullptr, math::Activation::none);
        }
      }
    }
  });
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T s = partials[i * W + j];
      for (std::int64_t r = 1; r < kSplitRanges; ++r) s += partials[(r * rows + i) * W + j];
      T& out = c[i * ldc + j];
      out = beta != T(0) ? alpha * s + beta * out : alpha * s;
    }
}

/// Small products (XOR, iris, the 3-3-3 net): no packing of A, no threads. C is done in
/// column blocks NB wide (NB known at compile time, so a row of the block is one or two
/// short vectors), a few rows at a time: per k, each row's a[i,p] times the block's row of B.
/// A transposed B is first copied into a [k, NB] block. Every element of C is summed over
/// k in order.
constexpr std::int64_t kSmallBlock = 16;
constexpr std::int64_t kSmallPack = 4096;  // elements of a packed transposed-B block

/// Short vectors for the small path: 8 floats or 4 doubles.
template <class T>
struct Short;
template <>
struct Short<float> {
#if defined(OPGRAPH_GEMM_ASAN)
  typedef float type __attribute__((vector_size(32)));
#else
  typedef float type __attribute__((vector_size(32), aligned(4)));
#endif
  typedef float in_memory __attribute__((vector_size(32), aligned(4), may_alias));
};
template <>
struct Short<double> {
#if defined(OPGRAPH_GEMM_ASAN)
  typedef double type __attribute__((vector_size(32)));
#else
  typedef double type __attribute__((vector_size(32), aligned(8)));
#endif
  typedef double in_memory __attribute__((vector_size(32), aligned(8), may_alias));
};

template <class T>
using ShortV = typename Short<T>::type;
template <class T>
inline constexpr int kShortLanes = static_cast<int>(sizeof(ShortV<T>) / sizeof(T));

/// The first `count` elements at p into a short vector, zeros after, reading nothing past
/// them (masked loads, which never fault on the masked-off part).
template <class T, int count>
[[gnu::always_inline]] inline ShortV<T> load_part(const T* p) {
  if constexpr (count == kShortLanes<T>) {
    return *reinterpret_cast<const typename Short<T>::in_memory*>(p);  // not memcpy: see load()
  } else {
#if defined(__AVX512VL__)
    constexpr auto mask = static_cast<__mmask8>((1u << count) - 1);
    if constexpr (sizeof(T) == 4) return std::bit_cast<ShortV<T>>(_mm256_maskz_loadu_ps(mask, p));
    else return std::bit_cast<ShortV<T>>(_mm256_maskz_loadu_pd(mask, p));
#else
    ShortV<T> v = {};
    for (int l = 0; l < count; ++l) v[l] = p[l];
    return v;
#endif
  }
}

/// Row `row` of a block NB wide into NV short vectors, zeros past NB.
template <class T, int NB, int NV>
[[gnu::always_inline]] inline void load_short(const T* row, ShortV<T>* v) {
  constexpr int L = kShortLanes<T>;
  for (int q = 0; q + 1 < NV; ++q) v[q] = load_part<T, L>(row + q * L);
  v[NV - 1] = load_part<T, NB - (NV - 1) * L>(row + (NV - 1) * L);
}

/// Stores the first `count` elements of v at p, writing nothing past them.
template <class T, int count>
[[gnu::always_inline]] inline void store_part(T* p, ShortV<T> v) {
  if constexpr (count == kShortLanes<T>) {
    *reinterpret_cast<typename Short<T>::in_memory*>(p) = v;
  } else {
#if defined(__AVX512VL__)
    constexpr auto mask = static_cast<__mmask8>((1u << count) - 1);
    if constexpr (sizeof(T) == 4) _mm256_mask_storeu_ps(p, mask, std::bit_cast<__m256>(v));
    else _mm256_mask_storeu_pd(p, mask, std::bit_cast<__m256d>(v));
#else
    for (int l = 0; l < count; ++l) p[l] = v[l];
#endif
  }
}

/// alpha * acc (+ beta * C) into the NB elements of a row of C. With CT the "row" is a
/// column of C, `ldc` apart, stored element by element.
template <class T, int NB, int NV, bool CT>
[[gnu::always_inline]] inline void store_short(T* crow, std::int64_t ldc, const ShortV<T>* acc, T alpha, T beta) {
  constexpr int L = kShortLanes<T>;
  if constexpr (CT) {
    for (int j = 0; j < NB; ++j) {
      T& out = crow[j * ldc];
      const T v = alpha * acc[j / L][j % L];
      out = beta != T(0) ? v + beta * out : v;
    }
  } else {
    constexpr int TAIL = NB - (NV - 1) * L;
    for (int q = 0; q + 1 < NV; ++q) {
      ShortV<T> v = alpha * acc[q];
      if (beta != T(0)) v += beta * load_part<T, L>(crow + q * L);
      store_part<T, L>(crow + q * L, v);
    }
    ShortV<T> v = alpha * acc[NV - 1];
    if (beta != T(0)) v += beta * load_part<T, TAIL>(crow + (NV - 1) * L);
    store_part<T, TAIL>(crow + (NV - 1) * L, v);
  }
}

/// R rows of C from row i: per k, the block's row of B times each row's a[i, p].
template <class T, int NB, bool TA, bool CT, int R>
[[gnu::always_inline]] inline void small_rows(std::int64_t i, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                                              const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  using S = ShortV<T>;
  constexpr int NV = (NB + kShortLanes<T> - 1) / kShortLanes<T>;
  S acc[R][NV] = {};
  for (std::int64_t p = 0; p < k; ++p) {
    S bv[NV];
    load_short<T, NB, NV>(b + p * ldb, bv);
    for (int r = 0; r < R; ++r) {
      const T av = TA ? a[p * lda + i + r] : a[(i + r) * lda + p];
      for (int q = 0; q < NV; ++q) acc[r][q] += av * bv[q];
    }
  }
  for (int r = 0; r < R; ++r) store_short<T, NB, NV, CT>(c + (CT ? i + r : (i + r) * ldc), ldc, acc[r], alpha, beta);
}

template <class T, int NB, bool TA, bool CT>
void small_block_t(std::int64_t m, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb,
                   T beta, T* c, std::int64_t ldc) {
  constexpr int NV = (NB + kShortLanes<T> - 1) / kShortLanes<T>;
  std::int64_t i = 0;
  if constexpr (NV <= 2) {  // four rows at a time, and the last one to three together
    for (; i + 4 <= m; i += 4) small_rows<T, NB, TA, CT, 4>(i, k, alpha, a, lda, b, ldb, beta, c, ldc);
    switch (m - i) {
      case 3: small_rows<T, NB, TA, CT, 3>(i, k, alpha, a, lda, b, ldb, beta, c, ldc); break;
      case 2: small_rows<T, NB, TA, CT, 2>(i, k, alpha, a, lda, b, ldb, beta, c, ldc); break;
      case 1: small_rows<T, NB, TA, CT, 1>(i, k, alpha, a, lda, b, ldb, beta, c, ldc); break;
      default: break;
    }
  } else {  // wide double blocks: two rows at a time
    for (; i + 2 <= m; i += 2) small_rows<T, NB, TA, CT, 2>(i, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (i < m) small_rows<T, NB, TA, CT, 1>(i, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template <class T, int NB>
void small_block(bool ta, bool ct, std::int64_t m, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                 std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (ta) {
    if (ct) small_block_t<T, NB, true, true>(m, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else small_block_t<T, NB, true, false>(m, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    if (ct) small_block_t<T, NB, false, true>(m, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else small_block_t<T, NB, false, false>(m, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template <class T, int... NBs>
void small_dispatch(std::integer_sequence<int, NBs...>, std::int64_t nb, bool ta, bool ct, std::int64_t m,
                    std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                    std::int64_t ldc) {
  using Fn = void (*)(bool, bool, std::int64_t, std::int64_t, T, const T*, std::int64_t, const T*, std::int64_t, T, T*,
                      std::int64_t);
  static constexpr Fn table[] = {&small_block<T, NBs + 1>...};
  table[nb - 1](ta, ct, m, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// With `ct`, the product computed is C transposed: element (i, j) goes to c[j * ldc + i].
template <class T>
void gemm_small(bool ta, bool tb, bool ct, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  constexpr std::int64_t L = kShortLanes<T>;
  alignas(64) T packed[kSmallPack];
  for (std::int64_t j0 = 0; j0 < n; j0 += kSmallBlock) {
    const std::int64_t nb = std::min(kSmallBlock, n - j0);
    const T* block = b + j0;
    std::int64_t stride = ldb;
    if (tb) {
      // Copy the block's columns of op(B) into rows padded to whole vectors, zeros after.
      const std::int64_t padded = (nb + L - 1) / L * L;
      for (std::int64_t p = 0; p < k; ++p) {
        T* row = packed + p * padded;
        for (std::int64_t j = 0; j < nb; ++j) row[j] = b[(j0 + j) * ldb + p];
        for (std::int64_t j = nb; j < padded; ++j) row[j] = T(0);
      }
      block = packed;
      stride = padded;
    }
    small_dispatch<T>(std::make_integer_sequence<int, kSmallBlock>{}, nb, ta, ct, m, k, alpha, a, lda, block, stride,
                      beta, ct ? c + j0 * ldc : c + j0, ldc);
  }
}

/// The small path. It computes Cᵀ = op(B)ᵀ op(A)ᵀ instead when A is transposed (so op(A)ᵀ
/// is read in place) and that reads whole vectors where op(B) would need packing (B
/// transposed) or partial vectors (dW = xᵀ dz with a narrow dz). Either way each element
/// of C is summed over k in order.
template <class T>
void gemm_small_any(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                    std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  constexpr std::int64_t L = kShortLanes<T>;
  if (ta && (tb || (n % L != 0 && m % L == 0)))
    gemm_small(!tb, !ta, true, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
  else
    gemm_small(ta, tb, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// Products of at most kTinyOutputs elements and kTinyWork multiply-adds (XOR's layers:
/// 4x2x2, 4x1x2, 2x2x4) skip the small path's dispatch, packing and vector set-up: each
/// element of C is summed over k in order from zero, then scaled as store_short does, so
/// the bits are the same. Measured on the Zen 5: 4x2x2 takes 12.8 ns against 19.6 (24.4
/// with B transposed), 2x2x4 9.3 against 20.6; at 16 outputs the two paths tie (4x4x2:
/// 19.4 against 19.7) and beyond them the scalar loop loses (8x2x2: 23.3 against 21.4;
/// 8x4x4: 52 against 23).
constexpr std::int64_t kTinyOutputs = 8, kTinyWork = 64;

/// x * y + z rounded as the vector kernels round it: once where the CPU has fused
/// multiply-add (they are contracted to it), twice where it has not. Written out, because
/// GCC would otherwise vectorise the products of a scalar sum and add them separately.
template <class T>
[[gnu::always_inline]] inline T multiply_add(T x, T y, T z) {
#if defined(__FMA__) || defined(__aarch64__)
  return std::fma(x, y, z);
#else
  return x * y + z;
#endif
}

template <class T>
void gemm_tiny(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const std::int64_t ai = ta ? 1 : lda, ap = ta ? lda : 1, bp = tb ? 1 : ldb, bj = tb ? ldb : 1;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T s = T(0);
      for (std::int64_t p = 0; p < k; ++p) s = multiply_add(a[i * ai + p * ap], b[p * bp + j * bj], s);
      T& out = c[i * ldc + j];
      const T v = alpha * s;
      out = beta != T(0) ? multiply_add(beta, out, v) : v;
    }
}

/// Whether the blocked path's tiles take 8 rows instead of 12 (with 32 vector registers).
/// Tiles of 12 rows pad m to a multiple of 12: a batch of 64 computes 72 rows, 12 % more
/// than it keeps (LeNet's x·W3, 64x120x400: 90 % of OpenBLAS's rate on the Zen 5). With
/// an A read in place (rows of A, not transposed) and two vectors of columns, 8 rows
/// measured as fast as 12 or faster on the Zen 5 whenever they pad no more (8 row streams
/// instead of 12: 256x1024x784 at 1 thread 2.03 -> 1.95 ms, 10000x256x784 20.9 -> 19.9 ms,
/// and 64x120x400 38 -> 33 µs). On Intel's cores a depth longer than kc (`long_depth`,
/// long_depth_twelve_rows) takes 12 unless 8 save at least 2 % of the rows (W1's 10000
/// rows: 12; W5's 256: 8, as 264 would pad 3 %; LeNet's 64: 8). A packed transposed A
/// (the weight gradients) and one-vector tiles (10 classes: 8 accumulators, a load per
/// multiply-add) run at their best with 12 rows (512x128x2048 xᵀ·dy 3 % slower with 8,
/// 10000x10x256 7 %), so they take 8 only when that saves at least 2 % of the rows
/// (128x512x2048 xᵀ·dy: 2-6 % faster). The sums are the same, in the same order, whatever
/// the tile: the same bits.
[[maybe_unused]] inline bool eight_row_tiles(bool trans_a, bool two_vectors, std::int64_t m, bool long_depth) {
  const std::int64_t pad8 = (m + 7) / 8 * 8, pad12 = (m + 11) / 12 * 12;
  if (!trans_a && two_vectors && !long_depth) return pad8 <= pad12;
  return pad8 * 50 <= pad12 * 49;
}

}  // namespace

/// The product by its path; true when the blocked path ran, which applied `epilogue`
/// (when given) to its tiles, false when the caller must apply it to C.
template <class T>
bool gemm_paths(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                const EpilogueAt<T>* epilogue) {
  if (k <= 0) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta != T(0) ? beta * c[i * ldc + j] : T(0);
    return false;
  }
  if (m * n <= kTinyOutputs && m * n * k <= kTinyWork) {
    gemm_tiny(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return false;
  }
  // The small path also takes outputs narrower than one short vector when the product is
  // small enough for one thread: a 12 x 16 tile of the blocked path would compute 16 lanes
  // for 6 (conv2d's 6 output channels: 35 GFLOP/s there).
  const bool narrow = n <= kShortLanes<T> && m * n * k < kSerialWork;
  if ((m * n * k <= 32768 || narrow) && k * kSmallBlock <= kSmallPack) {
    gemm_small_any(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return false;
  }
  if (kVectorFrames && !trans_a && trans_b && m <= kDotRows && n <= kDotCols && k >= kDotDepth) {
    gemm_dot(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return false;
  }
  if (split_depth_fits<T>(trans_a, trans_b, m, n, k)) {
    gemm_split_depth(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return false;
  }
  if (m <= kShortRows && !trans_b && n >= ShortBlocking<T>::NB) {
    // Each tile of rows streams its column block of B (k x NB) once: 16 rows in tiles of 6
    // read it three times, and at k = 150 the 64-column block (38 KiB) does not stay in a
    // 32 KiB L1. Tiles of 8 rows by 3 vectors (the same 24 accumulators) read a 48-column
    // block twice: conv2's W·cols of LeNet, 16x1000x150, 84 -> 103 GFLOP/s at 1 thread on
    // the Zen 4 (141 -> 168 at 2), 8x1000x150 77 -> 97. Used where they make fewer tiles
    // (7-8 and 13-16 rows); each element is summed over k in order either way: the same bits.
    if (kVectorRegisters >= 32 && (m + 7) / 8 < (m + 5) / 6) {
      if (trans_a) gemm_short<T, true, 8>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      else gemm_short<T, false, 8>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
      if (trans_a) gemm_short<T, true, 6>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      else gemm_short<T, false, 6>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    return false;
  }
  constexpr int MR = Blocking<T>::MR;
  if constexpr (MR == 12) {
    if (eight_row_tiles(trans_a, n > Blocking<T>::W, m, long_depth_in_place<T>(trans_a, k))) {
      if (n <= Blocking<T>::W)
        gemm_blocked<T, 8, 1>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
      else
        gemm_blocked<T, 8, 2>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
      return true;
    }
  }
  if (n <= Blocking<T>::W)
    gemm_blocked<T, MR, 1>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
  else
    gemm_blocked<T, MR, 2>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
  return true;
}

template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  gemm_paths<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr);
}

template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmEpilogue<T>& epilogue) {
  if (n <= 0) return;
  const EpilogueAt<T> at{epilogue, c};
  const EpilogueAt<T>* e = epilogue.any() || epilogue.b_sums ? &at : nullptr;
  const bool blocked = m > 0 && gemm_paths<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, e);
  if (epilogue.b_sums && !at.b_summed) {
    // Not summed while packing (B transposed, or another path): a pass of its own, the
    // same additions.
    if (!trans_b) column_sums(b, k, n, ldb, epilogue.b_sums);
    else
      parallel_for(n, 16, [&](std::int64_t j0, std::int64_t j1) {
        for (std::int64_t j = j0; j < j1; ++j) {
          T total = T(0);
          for (std::int64_t p0 = 0; p0 < k; p0 += kColumnSumRows) {
            T block = T(0);
            for (std::int64_t p = p0; p < std::min(k, p0 + kColumnSumRows); ++p) block += b[j * ldb + p];
            total += block;
          }
          epilogue.b_sums[j] = total;
        }
      });
  }
  if (blocked || !epilogue.any() || m <= 0) return;
  // The other paths' products are small or few rows: C is still in cache, and the rows
  // are split as the elementwise kernels split theirs; up to one chunk's worth, on this
  // thread without working out the rows a chunk takes (a division: XOR's products are a
  // few dozen multiply-adds).
  constexpr std::int64_t kChunk = std::int64_t{1} << 14;
  if (m * n <= kChunk) {
    apply_epilogue(*e, c, ldc, m, n, 0);
    return;
  }
  parallel_for(m, std::max<std::int64_t>(1, kChunk / n), [&](std::int64_t i0, std::int64_t i1) {
    apply_epilogue(*e, c + i0 * ldc, ldc, i1 - i0, n, 0);
  });
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t, const GemmEpilogue<float>&);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*, std::int64_t,
                           const double*, std::int64_t, double, double*, std::int64_t, const GemmEpilogue<double>&);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*,
                           std::int64_t, const double*, std::int64_t, double, double*, std::int64_t);

const char* gemm_isa() { return kIsa; }

CacheSizes amd_legacy_caches(unsigned l1_ecx, unsigned l2_ecx, unsigned l3_edx) {
  // The ways an associativity code of 0x80000006 stands for (0: none; 9: see 0x8000001D;
  // 15: fully associative, counted as 16 since only the number of ways is used).
  static constexpr int kWays[16] = {0, 1, 2, 3, 4, 6, 8, 0, 16, 0, 32, 48, 64, 96, 128, 16};
  CacheSizes c;
  c.l1d = std::int64_t{l1_ecx >> 24} << 10;
  const int l1_ways = static_cast<int>((l1_ecx >> 16) & 0xff);
  c.l1d_ways = l1_ways == 0xff ? 16 : l1_ways;
  c.l2 = std::int64_t{l2_ecx >> 16} << 10;
  c.l2_ways = kWays[(l2_ecx >> 12) & 0xf];
  c.l3 = std::int64_t{l3_edx >> 18} << 19;
  if (c.l1d > 0 && c.l2 > 0) c.source = "cpuid";
  return c;
}

CacheSizes detect_caches() {
  CacheSizes c;
  read_cpuid_caches(c);
  if (c.source[0] == '\0') {
    c = CacheSizes{};
    read_sysfs_caches(c);
  }
  if (c.source[0] == '\0') c = CacheSizes{32 << 10, 1 << 20, 8 << 20, 8, 16, "default"};
  return c;
}

GemmBlocking gemm_blocking_for(const CacheSizes& c, int element_bytes) {
  const int w = kVectorBytes / element_bytes;
  GemmBlocking b;
  b.mr = kVectorRegisters >= 32 ? 12 : 6;
  b.nr = 2 * w;
  const std::int64_t l1 = c.l1d > 0 ? c.l1d : 32 << 10, l2 = c.l2 > 0 ? c.l2 : 1 << 20;
  const std::int64_t l3 = c.l3 > 0 ? c.l3 : l2;
  const std::int64_t ways = c.l1d_ways >= 4 ? c.l1d_ways : 8;
  // The B panel (kc x nr) may take the L1 ways left once one way holds the A values of a
  // tile's rows and one the tile of C: (ways - 2) / ways of L1. A multiple of 16 depths.
  const std::int64_t row = static_cast<std::int64_t>(b.nr) * element_bytes;
  // At least 1280 bytes of each row of A (320 floats, 160 doubles): a depth block pays a
  // pass over C (each tile loaded and stored) and a start of the prefetchers on each row
  // of an A read in place, whatever its depth. With 12 broadcasts of A to 2 vectors of B,
  // a B panel streamed from L2 keeps the multiply-adds fed. Zen 4's 32 KiB L1 gave 192
  // depths: W1's x·W1 (10000x256x784) took 44-50 ms at 1 thread, 40-41 with 320.
  b.kc = std::max<std::int64_t>(1280 / element_bytes, l1 * (ways - 2) / ways / row / 16 * 16);
  // An A block (mc x kc) fills half of L2, the other half B's panel and C's tiles.
  b.mc = std::max<std::int64_t>(b.mr, l2 / 2 / (b.kc * element_bytes) / b.mr * b.mr);
  // A packed block of B (kc x nc) fills at most half of L3, at most 8192 columns.
  b.nc = std::clamp<std::int64_t>(l3 / 2 / (b.kc * element_bytes) / b.nr * b.nr, b.nr, 8192);
  return b;
}

// Each depth block is a pass over C, every tile loaded and stored, however little
// arithmetic it holds: W1's x·W1 (k = 784) ran as blocks of 320, 320 and 144 on the
// Zen 4 in 40-41 ms (1 thread); as two of 392, in 38.5-41.
std::int64_t gemm_depth_block(std::int64_t kc, std::int64_t k) {
  const std::int64_t blocks = (k + kc - 1) / kc;
  if (blocks < 2 || k - (blocks - 1) * kc >= kc / 2) return kc;
  return (k + blocks - 2) / (blocks - 1);  // blocks - 1 of nearly equal depth
}

GemmBlocking gemm_blocking(int element_bytes) {
  return element_bytes == 8 ? machine_blocking<double>() : machine_blocking<float>();
}

namespace detail {
void force_strided_a_in_place(int mode) { strided_a_override.store(mode < 0 ? -1 : mode > 0 ? 1 : 0); }
void force_long_depth_twelve_rows(int mode) { twelve_rows_override.store(mode < 0 ? -1 : mode > 0 ? 1 : 0); }
}  // namespace detail

}  // namespace opgraph
