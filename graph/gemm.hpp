// Dense matrix product for kernels: packed, register-blocked, parallel, deterministic.
#pragma once

#include <cstdint>

#include <opgraph/graph/math.hpp>

namespace opgraph {

/// C = alpha * op(A) * op(B) + beta * C on row-major matrices.
/// op(A) is [m, k]: A itself is [m, k] with row stride lda, or [k, m] when trans_a.
/// op(B) is [k, n]: B itself is [k, n] with row stride ldb, or [n, k] when trans_b.
/// Transposes are read in place (no copy of the matrix). With beta == 0, C is only
/// written, never read. Every element of C is summed over k in the same order whatever
/// the thread count, so results are bitwise reproducible.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

extern template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                                 std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
extern template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*,
                                  std::int64_t, const double*, std::int64_t, double, double*, std::int64_t);

/// What a product does to C once C's sums are complete: C = act(C + bias), with bias one
/// value per column ([n], a dense layer's bias; or none) and act an activation
/// (math::activate: ReLU, logistic, tanh) or none. The blocked path applies it to each
/// tile of C as the tile's last depth block is stored (ReLU in registers, the others on
/// the stored tile), while the tile is in L1 and on the core that computed it; the other
/// paths (small products, few rows) to all of C after it. The same operations as bias_add
/// and the activation's op applied after the product, each element rounded as each
/// rounds it: the same bits.
///
/// Or, in a backward pass, C = the gradient through the activation `grad_act` whose
/// output `grad_y` is laid out as C (its element (i, j) at grad_y[i * ldc + j]), C being
/// the gradient of that output (math::activation_vjp): a product that writes the gradient
/// of an activation's output gives the activation's input gradient instead, to the bits
/// of the activation's vjp after it (matmul's dx = dy·Wᵀ with x a logistic's output).
///
/// And, beside either, `b_sums`: where to write op(B)'s column sums over the depth (n
/// values; for B = dy in a weight gradient xᵀ·dy, the bias's gradient), with the
/// additions of column_sums (graph/kernel.hpp): the same bits. The blocked path takes them
/// from B's rows as it packs them, where a pass of its own would read B again; the other
/// paths (and a transposed B) make that pass.
template <class T>
struct GemmEpilogue {
  const T* bias = nullptr;
  math::Activation act = math::Activation::none;
  const T* grad_y = nullptr;
  math::Activation grad_act = math::Activation::none;
  T* b_sums = nullptr;
  /// Whether anything is to be done to C (b_sums is not).
  bool any() const { return bias != nullptr || act != math::Activation::none || grad_y != nullptr; }
};

/// gemm, then `epilogue` on C (see GemmEpilogue).
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmEpilogue<T>& epilogue);

extern template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                                 std::int64_t, const float*, std::int64_t, float, float*, std::int64_t,
                                 const GemmEpilogue<float>&);
extern template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*,
                                  std::int64_t, const double*, std::int64_t, double, double*, std::int64_t,
                                  const GemmEpilogue<double>&);

/// The instruction set the micro-kernel was compiled for ("avx512", "avx2", "sse2", "generic").
const char* gemm_isa();

/// A CPU's data caches, as the GEMM sizes its blocks from them.
struct CacheSizes {
  std::int64_t l1d = 0, l2 = 0, l3 = 0;  // bytes (of one core's L1 and L2; L3 as reported)
  int l1d_ways = 0, l2_ways = 0;
  const char* source = "";  // "cpuid", "sysfs" or "default"
};

/// The caches of the CPU this process runs on: cpuid (leaf 4 on Intel, 0x8000001D on AMD,
/// or AMD's older 0x80000005/6 when a hypervisor leaves 0x8000001D empty), else
/// /sys/devices/system/cpu/cpu0/cache, else 32 KiB 8-way L1d, 1 MiB 16-way L2, 8 MiB L3.
CacheSizes detect_caches();

/// The caches AMD's older cpuid leaves describe: 0x80000005's ECX (L1d: KiB in bits
/// 31-24, ways in 23-16) and 0x80000006's ECX (L2: KiB in 31-16, a code for its ways in
/// 15-12) and EDX (L3: 512 KiB units in 31-18). Source "" when they describe no L1d or L2.
CacheSizes amd_legacy_caches(unsigned l1_ecx, unsigned l2_ecx, unsigned l3_edx);

/// The GEMM's blocks: a tile of C is mr x nr (registers; 8 x nr where 8 rows pad less), kc
/// the depth of a packed block of B (its nr-wide panel, reused by every tile of a row
/// block, fits the L1 where the L1 is large enough; at the floor of 1280 bytes of depth it
/// streams from L2), mc the rows of A a task streams against it (kept in L2), nc the
/// columns of B packed at once.
struct GemmBlocking {
  std::int64_t kc = 0, mc = 0, nc = 0;
  int mr = 0, nr = 0;
};

/// The blocking for elements of `element_bytes` (4 or 8) on caches `c` (the analytical
/// model of Low et al., 2016): kc so that a B panel takes the L1 ways one A stream and C
/// leave free, but at least 1280 bytes of depth (320 floats: on a 32 KiB L1 the panel
/// then streams from L2), mc so that an A block fills half of L2, nc so that a packed
/// block of B fills half of L3 (at most 8192 columns).
GemmBlocking gemm_blocking_for(const CacheSizes& c, int element_bytes);

/// The depth of the blocks a product of depth k is summed in, for the machine's kc: kc,
/// except when the last block would be shallower than kc / 2; then the blocks before it
/// share its depths (blocks of nearly equal depth, less than kc / 2 deeper). Depends on k
/// and kc only.
std::int64_t gemm_depth_block(std::int64_t kc, std::int64_t k);

/// The blocking in use on this machine (from detect_caches(), decided once).
GemmBlocking gemm_blocking(int element_bytes);

namespace detail {
/// For tests: whether a short transposed A (the weight gradients xᵀ·dy with up to 32 row
/// panels) is read in place (1) or packed (0) whatever the CPU, or as the CPU prefers (-1,
/// the default: in place on AMD). Both give the same bits.
void force_strided_a_in_place(int mode);
/// For tests: whether a product with A read in place (not transposed) and a depth longer
/// than kc takes 12-row tiles where 8 save under 2 % of the rows (1), 8-row tiles wherever
/// they pad no more (0), or as the CPU prefers (-1, the default: 12 on Intel, 8 on AMD).
/// Both give the same bits.
void force_long_depth_twelve_rows(int mode);
}  // namespace detail

}  // namespace opgraph
