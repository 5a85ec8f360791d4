// GEMM against a double-precision reference, all transposes, every blocking path.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <type_traits>
#include <vector>

#include <opgraph/graph/gemm.hpp>
#include <opgraph/graph/kernel.hpp>
#include <opgraph/graph/parallel.hpp>
#include <opgraph/graph/random.hpp>

#include "../test_util.hpp"

using namespace opgraph;

namespace {

template <class T>
struct Problem {
  std::int64_t m, n, k;
  bool ta, tb;
  std::vector<T> a, b;
  Problem(std::int64_t m_, std::int64_t n_, std::int64_t k_, bool ta_, bool tb_, std::uint64_t seed)
      : m(m_), n(n_), k(k_), ta(ta_), tb(tb_), a(static_cast<std::size_t>(m_ * k_)), b(static_cast<std::size_t>(k_ * n_)) {
    Rng rng(seed);
    for (auto& v : a) v = static_cast<T>(rng.uniform(-1, 1));
    for (auto& v : b) v = static_cast<T>(rng.uniform(-1, 1));
  }
  std::int64_t lda() const { return ta ? m : k; }
  std::int64_t ldb() const { return tb ? k : n; }
  double A(std::int64_t i, std::int64_t p) const { return ta ? a[p * m + i] : a[i * k + p]; }
  double B(std::int64_t p, std::int64_t j) const { return tb ? b[j * k + p] : b[p * n + j]; }
  std::vector<T> run(T alpha, T beta, const std::vector<T>& c0) const {
    std::vector<T> c = c0;
    gemm<T>(ta, tb, m, n, k, alpha, a.data(), lda(), b.data(), ldb(), beta, c.data(), n);
    return c;
  }
};

template <class T>
void check_against_reference(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, T alpha, T beta) {
  Problem<T> pr(m, n, k, ta, tb, static_cast<std::uint64_t>(m * 1000 + n * 10 + k));
  std::vector<T> c0(static_cast<std::size_t>(m * n));
  Rng rng(7);
  for (auto& v : c0) v = static_cast<T>(rng.uniform(-1, 1));
  const auto c = pr.run(alpha, beta, c0);
  const double tol = std::is_same_v<T, float> ? 2e-5 * std::sqrt(static_cast<double>(k)) : 1e-12 * k;
  double worst = 0.0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = beta * static_cast<double>(c0[i * n + j]);
      for (std::int64_t p = 0; p < k; ++p) ref += alpha * pr.A(i, p) * pr.B(p, j);
      worst = test::worse(worst, std::abs(ref - c[i * n + j]));
    }
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(ta);
  CAPTURE(tb);
  CHECK(worst <= tol);
}

}  // namespace

TEST_CASE("gemm: matches a double reference for every transpose and blocking path") {
  // Small path, narrow (one vector) outputs, wide outputs with partial tiles, a K split
  // over several depth blocks, tiles of 8 rows and of 12 (36 and 120 rows: 12 for a
  // transposed A, and 8 or 12 in place), and shapes from the reference networks.
  const std::vector<std::array<std::int64_t, 3>> shapes = {
      {4, 2, 2},    {1, 1, 1},     {3, 5, 7},      {150, 8, 4},   {97, 10, 256},  {300, 10, 33},
      {100, 45, 130}, {37, 1000, 65}, {256, 1024, 70}, {64, 33, 1100}, {500, 256, 10}, {13, 17, 2100},
      {36, 40, 300}, {120, 64, 400},
      // few rows over many columns, the last column block 1, 3, 4 and 2 vectors wide
      {6, 784, 25}, {16, 1000, 150}, {13, 113, 7}, {5, 97, 9}};
  for (const auto& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_against_reference<float>(s[0], s[1], s[2], ta, tb, 1.0f, 0.0f);
        check_against_reference<double>(s[0], s[1], s[2], ta, tb, 1.0, 0.0);
      }
  check_against_reference<float>(100, 45, 600, false, false, -0.5f, 1.0f);
  check_against_reference<float>(103, 45, 1300, true, false, -0.5f, 1.0f);  // packed A, ragged panel, 3 depth blocks
  check_against_reference<double>(70, 90, 20, true, true, 2.0, 0.25);
  check_against_reference<float>(5, 6, 7, false, true, 1.5f, -1.0f);
  // A read in place with rows for 8 blocks of the machine's mc: blocks of half that height,
  // the last one ragged; two depth blocks.
  const std::int64_t tall = 8 * gemm_blocking(4).mc + 5;
  check_against_reference<float>(tall, 40, 350, false, false, 1.0f, 0.0f);
  check_against_reference<float>(tall, 40, 350, false, true, -0.5f, 1.0f);
}

TEST_CASE("gemm: few rows, in tiles of 6 rows or of 8, every row count and ragged block width") {
  // Up to 16 rows over many columns: 7-8 and 13-16 rows take tiles of 8 rows by 3 vectors
  // (with 32 vector registers), the others 6 by 4. The widths put the last column block at
  // each of 0-3 vectors past the full ones for both, with alpha and beta.
  for (std::int64_t m = 1; m <= 16; ++m)
    for (std::int64_t n : {96, 100, 120, 130, 144, 200})
      for (bool ta : {false, true}) {
        check_against_reference<float>(m, n, 3 + 5 * m, ta, false, 1.0f, 0.0f);
        check_against_reference<float>(m, n, 40, ta, false, -0.5f, 1.0f);
        check_against_reference<double>(m, n, 2 + 3 * m, ta, false, 0.5, 2.0);
      }
}

TEST_CASE("gemm: the small path covers every column-block width and row remainder") {
  // Products up to 32768 multiply-adds take the small path: column blocks of 1..16 and
  // rows four at a time (and Cᵀ computed instead when A is transposed with m a multiple
  // of the vector), so n runs through 1..35 and m over remainders and multiples of 8.
  for (std::int64_t n = 1; n <= 35; ++n)
    for (std::int64_t m : {1, 3, 4, 5, 8, 9, 16})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          check_against_reference<float>(m, n, 1 + (n * 7 + m) % 40, ta, tb, 1.0f, 0.0f);
          check_against_reference<double>(m, n, 1 + (n * 3 + m) % 50, ta, tb, 0.5, 2.0);
        }
}

/// The first m rows of op(A)·op(B), computed as a product of m rows and again inside
/// one of m + extra rows (which takes the small path for a tiny product, B packed for a
/// small B), bitwise compared.
template <class T>
void check_tiny_against_small(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, T alpha, T beta,
                              std::int64_t extra = 32) {
  const std::int64_t big = m + extra;
  const Problem<T> tall(big, n, k, ta, tb, static_cast<std::uint64_t>(m * 100 + n * 10 + k));
  std::vector<T> a(static_cast<std::size_t>(m * k));  // tall's first m rows of op(A), in its layout
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < k; ++p) (ta ? a[p * m + i] : a[i * k + p]) = static_cast<T>(tall.A(i, p));
  std::vector<T> c0(static_cast<std::size_t>(big * n));
  Rng rng(5);
  for (auto& v : c0) v = static_cast<T>(rng.uniform(-1, 1));
  const std::vector<T> whole = tall.run(alpha, beta, c0);
  std::vector<T> part(c0.begin(), c0.begin() + m * n);
  gemm<T>(ta, tb, m, n, k, alpha, a.data(), ta ? m : k, tall.b.data(), tall.ldb(), beta, part.data(), n);
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(ta);
  CAPTURE(tb);
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__NO_INLINE__)
  // GCC's optimised build (Release) contracts the small path's vector sums to fused
  // multiply-adds, as the tiny path writes them: the same bits (and XOR's checksum equals
  // the hand-written reference's).
  CHECK(std::memcmp(part.data(), whole.data(), part.size() * sizeof(T)) == 0);
#else
  // The sanitizer builds (clang's ASan at -O1, GCC's TSan at -O1) fuse some of the vector
  // sums apart (CI, 2026-12-03: by one rounding): the two paths agree to the rounding of
  // their terms.
  const double eps = std::is_same_v<T, float> ? 0x1p-24 : 0x1p-53;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double size = std::abs(static_cast<double>(beta) * c0[static_cast<std::size_t>(i * n + j)]);
      for (std::int64_t p = 0; p < k; ++p) size += std::abs(alpha * tall.A(i, p) * tall.B(p, j));
      CHECK(std::abs(static_cast<double>(part[static_cast<std::size_t>(i * n + j)]) -
                     whole[static_cast<std::size_t>(i * n + j)]) <= 4 * eps * size);
    }
#endif
}

TEST_CASE("gemm: a small B read in place gives the bits of B packed, and the right product") {
  // Up to 64 rows with B at most 32 KiB and not transposed: B's full panels are read in
  // place, a ragged last panel packed (70 and 100 columns). Against the reference, and bit
  // for bit against the same rows inside a product of 48 more rows, which packs B: rows in
  // whole tiles both (multiples of 24: of 6, 8 and 12, every machine's tile heights), so
  // that only B's layout differs (a ragged row panel goes through other code, whose sums
  // GCC may fuse otherwise), A read in place and transposed, alpha and beta.
  for (const auto& s : std::vector<std::array<std::int64_t, 3>>{
           {64, 32, 64}, {48, 64, 64}, {48, 70, 100}, {20, 100, 80}, {24, 32, 256}, {33, 96, 40}})
    for (bool ta : {false, true}) {
      check_against_reference<float>(s[0], s[1], s[2], ta, false, 1.0f, 0.0f);
      check_against_reference<float>(s[0], s[1], s[2], ta, false, -0.75f, 1.5f);
      check_against_reference<double>(s[0], s[1], s[2] / 2, ta, false, 0.3, -2.0);
      if (s[0] % 24 != 0) continue;
      check_tiny_against_small<float>(s[0], s[1], s[2], ta, false, 1.0f, 0.0f, 48);
      check_tiny_against_small<float>(s[0], s[1], s[2], ta, false, -0.75f, 1.5f, 48);
      check_tiny_against_small<double>(s[0], s[1], s[2] / 2, ta, false, 0.3, -2.0, 48);
    }
  // B's rows further apart than its columns (a head of attention: 32 of 128 columns), the
  // columns between them NaN: read in place, B must be read at its row stride only.
  const std::int64_t m = 64, n = 70, k = 64, ldb = 128;
  const Problem<float> pr(m, n, k, false, false, 77);
  std::vector<float> b(static_cast<std::size_t>(k * ldb), std::nanf(""));
  for (std::int64_t p = 0; p < k; ++p)
    for (std::int64_t j = 0; j < n; ++j) b[static_cast<std::size_t>(p * ldb + j)] = static_cast<float>(pr.B(p, j));
  std::vector<float> c(static_cast<std::size_t>(m * n));
  gemm<float>(false, false, m, n, k, 1.0f, pr.a.data(), k, b.data(), ldb, 0.0f, c.data(), n);
  double worst = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0;
      for (std::int64_t p = 0; p < k; ++p) ref += pr.A(i, p) * pr.B(p, j);
      worst = test::worse(worst, std::abs(ref - c[static_cast<std::size_t>(i * n + j)]));
    }
  CAPTURE(worst);
  CHECK(worst <= 1e-4);
}

TEST_CASE("gemm: a tiny product has the same bits as the same rows of a larger one") {
  // Up to 8 outputs and 64 multiply-adds (XOR's layers) skip the small path for a scalar
  // loop; both sum each element over k in order with the same fused multiply-adds.
  for (std::int64_t m = 1; m <= 8; ++m)
    for (std::int64_t n = 1; m * n <= 8; ++n)
      for (std::int64_t k : {1, 2, 3, 4, 7, 8, 16, 64}) {
        if (m * n * k > 64) continue;
        for (bool ta : {false, true})
          for (bool tb : {false, true}) {
            check_tiny_against_small<float>(m, n, k, ta, tb, 1.0f, 0.0f);
            check_tiny_against_small<float>(m, n, k, ta, tb, -0.75f, 1.5f);
            check_tiny_against_small<double>(m, n, k, ta, tb, 1.0, 0.0);
            check_tiny_against_small<double>(m, n, k, ta, tb, 0.3, -2.0);
            check_against_reference<float>(m, n, k, ta, tb, 1.0f, 0.0f);
          }
      }
}

TEST_CASE("gemm: the few-rows path covers every row count, ragged column blocks and both A layouts") {
  // Up to 16 rows by at least a column block (4 vectors), B not transposed: conv2d's
  // W·cols. Rows six at a time and every remainder; n with and without a ragged last block.
  for (std::int64_t m = 1; m <= 16; ++m)
    for (std::int64_t n : {64, 130, 784})
      for (std::int64_t k : {1, 25, 300})
        for (bool ta : {false, true}) {
          check_against_reference<float>(m, n, k, ta, false, 1.0f, 0.0f);
          check_against_reference<double>(m, n, k, ta, false, -0.5, 1.5);
        }
  check_against_reference<float>(6, 200, 40, false, false, 2.0f, -1.0f);
  check_against_reference<float>(17, 200, 40, false, false, 1.0f, 0.0f);  // one row more: the blocked path
}

TEST_CASE("gemm: the inner-product path covers every row and column remainder and a ragged depth") {
  // Up to 16 rows by up to 256 columns over at least 256 depths, A by rows and B
  // transposed: conv2d's kernel gradient gy·colsᵀ. Tiles of 4 rows by 6 (2) columns and
  // every remainder; k with and without a tail past whole vectors.
  for (std::int64_t m = 1; m <= 16; ++m)
    for (std::int64_t n : {1, 2, 3, 5, 6, 7, 11, 13, 25, 150})
      for (std::int64_t k : {256, 300, 785}) {
        check_against_reference<float>(m, n, k, false, true, 1.0f, 0.0f);
        check_against_reference<double>(m, n, k, false, true, -0.5, 1.5);
      }
  check_against_reference<float>(6, 256, 1000, false, true, 2.0f, -1.0f);
  check_against_reference<float>(6, 257, 1000, false, true, 1.0f, 0.0f);  // one column more: the blocked path
}

TEST_CASE("gemm: a long depth over one vector of columns is summed in fixed ranges: right, every row remainder") {
  // A transposed, B not, n at most one vector, k at least 2048 and 32 times m: W1's
  // hᵀ·dz (256x10x10000). Tiles of MR rows and a ragged last panel; a depth that does not
  // split evenly into the eight ranges or their slices of 256.
  for (std::int64_t m : {1, 7, 12, 13, 25, 64})
    for (std::int64_t n : {1, 3, 8, 10, 16})
      for (std::int64_t k : {std::max<std::int64_t>(2048, 32 * m), 32 * m + 2317}) {
        check_against_reference<float>(m, n, k, true, false, 1.0f, 0.0f);
        check_against_reference<float>(m, n, k, true, false, -0.5f, 1.5f);
        if (n <= 8) check_against_reference<double>(m, n, k, true, false, 2.0, -1.0);
      }
  check_against_reference<float>(256, 10, 10000, true, false, 1.0f, 0.0f);
  check_against_reference<float>(256, 17, 10000, true, false, 1.0f, 0.0f);  // one column more: the blocked path
}

TEST_CASE("gemm: with beta = 0 the output is only written, so garbage in C does not leak") {
  Problem<float> pr(200, 40, 300, false, false, 3);
  std::vector<float> nan_c(200 * 40, std::nanf(""));
  const auto c = pr.run(1.0f, 0.0f, nan_c);
  for (float v : c) REQUIRE(std::isfinite(v));
  Problem<float> small(3, 3, 3, false, false, 4);
  for (float v : small.run(1.0f, 0.0f, std::vector<float>(9, std::nanf("")))) REQUIRE(std::isfinite(v));
}

namespace {

/// The product has the same bits at 1 and 2 threads.
void same_bits(const Problem<float>& pr) {
  CAPTURE(pr.m);
  CAPTURE(pr.n);
  CAPTURE(pr.k);
  std::vector<float> c0(static_cast<std::size_t>(pr.m * pr.n));
  set_num_threads(1);
  const auto one = pr.run(1.0f, 0.0f, c0);
  set_num_threads(2);
  const auto two = pr.run(1.0f, 0.0f, c0);
  set_num_threads(0);
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("gemm: results are bitwise identical with 1 and 2 threads") {
  same_bits(Problem<float>(6, 6272, 25, false, false, 6));   // few rows
  same_bits(Problem<float>(16, 6000, 150, false, false, 6));  // few rows, a ragged last block
  same_bits(Problem<float>(16, 1600, 150, false, false, 6));
  same_bits(Problem<float>(16, 150, 4000, false, true, 6));  // inner products
  same_bits(Problem<float>(128, 512, 700, true, false, 6));  // a transposed A packed once, shared
  const std::int64_t tall = 8 * gemm_blocking(4).mc + 5;  // row blocks of half height
  for (auto [m, n, k] : std::vector<std::array<std::int64_t, 3>>{{1000, 256, 784}, {256, 10, 3000}, {256, 10, 10000}, {256, 1024, 512}, {tall, 256, 784}})
    for (bool ta : {false, true}) same_bits(Problem<float>(m, n, k, ta, !ta, 5));
}

TEST_CASE("gemm: products small enough for the calling thread alone, in several blocks, on two threads at once") {
  // Under 2^18 multiply-adds a blocked product runs its tasks on the calling thread, with
  // that thread's own buffers for the packed B and a shared A (no pool, no lock). Shapes
  // that take several row blocks or depth blocks, whose tasks pack their own A beside
  // them: right against the double reference, and with two threads each running one of
  // them at once, the bits of each run alone.
  const std::vector<std::array<std::int64_t, 3>> shapes = {{1008, 17, 6}, {300, 300, 2}, {512, 64, 4}, {300, 2, 300}, {257, 300, 3}};
  for (const auto& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) check_against_reference<float>(s[0], s[1], s[2], ta, tb, 1.0f, 0.0f);
  const Problem<float> first(1008, 17, 6, true, true, 3), second(300, 300, 2, false, true, 4);
  const std::vector<float> c1(static_cast<std::size_t>(first.m * first.n)), c2(static_cast<std::size_t>(second.m * second.n));
  set_num_threads(1);
  const auto alone1 = first.run(1.0f, 0.0f, c1);
  const auto alone2 = second.run(1.0f, 0.0f, c2);
  set_num_threads(2);
  for (int round = 0; round < 20; ++round) {
    std::vector<float> together1, together2;
    parallel_for(2, 1, [&](std::int64_t which, std::int64_t) {
      for (int r = 0; r < 5; ++r) {
        if (which == 0) together1 = first.run(1.0f, 0.0f, c1);
        else together2 = second.run(1.0f, 0.0f, c2);
      }
    });
    CHECK(together1 == alone1);
    CHECK(together2 == alone2);
  }
  set_num_threads(0);
}

TEST_CASE("gemm: the cache blocking follows the caches it is given") {
  const CacheSizes intel{48 << 10, 2 << 20, 480 << 20, 12, 16, "test"};  // Sapphire Rapids per core
  const CacheSizes zen4{32 << 10, 1 << 20, 32 << 20, 8, 8, "test"};
  const CacheSizes zen5{48 << 10, 1 << 20, 32 << 20, 12, 16, "test"};
  for (int bytes : {4, 8}) {
    CAPTURE(bytes);
    for (const CacheSizes& c : {intel, zen4, zen5}) {
      const GemmBlocking b = gemm_blocking_for(c, bytes);
      CAPTURE(c.l1d);
      CAPTURE(c.l2);
      // The B panel fits the L1 ways left for it unless that is under 1280 bytes of depth
      // (then it is 1280 bytes deep), an A block half of L2, whole tiles.
      const std::int64_t l1_depth = c.l1d * (c.l1d_ways - 2) / c.l1d_ways / (b.nr * bytes) / 16 * 16;
      CHECK(b.kc == std::max<std::int64_t>(l1_depth, 1280 / bytes));
      CHECK(b.kc % 16 == 0);
      CHECK(b.mc * b.kc * bytes <= c.l2 / 2);
      CHECK(b.mc % b.mr == 0);
      CHECK(b.mc >= b.mr);
      CHECK(b.nc % b.nr == 0);
      CHECK(b.nc <= 8192);
    }
    CHECK(gemm_blocking_for(zen4, bytes).kc <= gemm_blocking_for(zen5, bytes).kc);
    CHECK(gemm_blocking_for(zen5, bytes).mc < gemm_blocking_for(intel, bytes).mc);
  }
  if (std::strcmp(gemm_isa(), "avx512") == 0) {  // 12 x 32 float tiles
    const GemmBlocking b = gemm_blocking_for(intel, 4);
    CHECK(b.kc == 320);
    CHECK(b.mc == 816);
    CHECK(b.nc == 8192);
    // Zen 4's 32 KiB L1 holds a B panel of 192 depths; the floor makes it 320.
    CHECK(gemm_blocking_for(zen4, 4).kc == 320);
    CHECK(gemm_blocking_for(zen4, 4).mc == 408);
    CHECK(gemm_blocking_for(zen4, 8).kc == 192);  // doubles: L1's 192 is over the floor of 160
  }
  // Nothing known: a small, safe default.
  const GemmBlocking unknown = gemm_blocking_for(CacheSizes{}, 4);
  CHECK(unknown.kc >= 64);
  CHECK(unknown.mc >= unknown.mr);
}

TEST_CASE("gemm: a last depth block shallower than half of kc is shared out among the others") {
  CHECK(gemm_depth_block(320, 200) == 320);   // one block
  CHECK(gemm_depth_block(320, 960) == 320);   // three whole blocks
  CHECK(gemm_depth_block(320, 800) == 320);   // 320, 320, 160: half of kc stays a block
  CHECK(gemm_depth_block(320, 784) == 392);   // 320, 320, 144 -> 392, 392 (W1's x·W1)
  CHECK(gemm_depth_block(320, 1024) == 342);  // 320 x 3, 64 -> 342, 342, 340
  CHECK(gemm_depth_block(320, 330) == 330);   // 320, 10 -> one block of 330
  CHECK(gemm_depth_block(160, 1281) == 161);  // 160 x 8, 1 -> 161 x 7, 154
  for (std::int64_t kc : {160, 192, 320, 384})
    for (std::int64_t k = 1; k <= 4000; ++k) {
      CAPTURE(kc);
      CAPTURE(k);
      const std::int64_t d = gemm_depth_block(kc, k);
      const std::int64_t blocks = (k + d - 1) / d, last = k - (blocks - 1) * d;
      CHECK(d >= kc);
      CHECK(d < kc + kc / 2);
      if (d == kc) CHECK((last == k || last >= kc / 2));  // kept: no shallow last block
      else CHECK(last > d - blocks);                      // folded: blocks of nearly equal depth
    }
  // Products whose last block is folded are right, and have the same bits at 1 and 2 threads.
  for (int bytes : {4, 8}) {
    const std::int64_t kc = gemm_blocking(bytes).kc, k = 2 * kc + kc / 4;
    REQUIRE(gemm_depth_block(kc, k) > kc);
    for (bool ta : {false, true})
      for (std::int64_t m : {30, 300}) {
        if (bytes == 4) check_against_reference<float>(m, 70, k, ta, !ta, 1.0f, 0.5f);
        else check_against_reference<double>(m, 70, k, ta, !ta, 1.0, 0.5);
      }
  }
  const std::int64_t k = 2 * gemm_blocking(4).kc + gemm_blocking(4).kc / 4;
  for (bool ta : {false, true}) same_bits(Problem<float>(300, 70, k, ta, !ta, 7));
}

TEST_CASE("gemm: a long depth with A in place in 12-row or 8-row tiles, the same bits, right") {
  // An A read in place (not transposed) and a depth longer than kc: 12-row tiles on Intel's
  // cores unless 8 save 2 % of the rows, 8 wherever they pad no more on AMD's
  // (long_depth_twelve_rows); both forced here, on any machine, at 1 and 2 threads. The
  // tile height changes no sum's order: every run the same bits, and right. Rows that
  // both heights divide (1200), that only 8 divides with 12 padding under 2 % (2056 =
  // 12 * 171 + 4) or over it (64), ragged ones (37); depth blocks folded and not; B either
  // way round, with the epilogue of a dense layer (bias, then logistic) and without;
  // doubles (whose kc is shorter still) against the reference too.
  const std::int64_t kc = gemm_blocking(4).kc;
  struct Case {
    std::int64_t m, n, k;
  };
  for (const Case& cs : {Case{1200, 40, 2 * kc + 40}, Case{2056, 70, kc + kc / 2 + 8}, Case{64, 70, kc + 7},
                         Case{37, 40, 2 * kc + kc / 4}})
    for (bool tb : {false, true}) {
      const std::int64_t m = cs.m, n = cs.n, k = cs.k;
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      CAPTURE(tb);
      const Problem<float> pr(m, n, k, false, tb, static_cast<std::uint64_t>(m + k));
      const std::vector<float> c0(static_cast<std::size_t>(m * n), 0.25f);
      std::vector<float> bias(static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j) bias[static_cast<std::size_t>(j)] = 0.01f * static_cast<float>(j) - 0.2f;
      GemmEpilogue<float> dense;
      dense.bias = bias.data();
      dense.act = math::Activation::logistic;
      std::vector<std::vector<float>> plain, fused;
      for (int mode : {0, 1})
        for (int threads : {1, 2}) {
          detail::force_long_depth_twelve_rows(mode);
          set_num_threads(threads);
          plain.push_back(pr.run(1.0f, 0.5f, c0));
          std::vector<float> c(static_cast<std::size_t>(m * n));
          gemm<float>(false, tb, m, n, k, 1.0f, pr.a.data(), pr.lda(), pr.b.data(), pr.ldb(), 0.0f, c.data(), n, dense);
          fused.push_back(std::move(c));
          if (threads == 1 && m <= 1200) check_against_reference<float>(m, n, k, false, tb, 1.0f, 0.5f);
          if (threads == 1 && m <= 64) check_against_reference<double>(m, n, k, false, tb, 1.0, 0.5);  // kc of doubles: shorter
        }
      detail::force_long_depth_twelve_rows(-1);
      set_num_threads(0);
      for (std::size_t r = 1; r < plain.size(); ++r) {
        CHECK(std::memcmp(plain[0].data(), plain[r].data(), plain[0].size() * sizeof(float)) == 0);
        CHECK(std::memcmp(fused[0].data(), fused[r].data(), fused[0].size() * sizeof(float)) == 0);
      }
      // The epilogue: bias_add's add, then the logistic, on the product without one.
      const std::vector<float> zero(static_cast<std::size_t>(m * n), 0.0f);
      std::vector<float> expect = pr.run(1.0f, 0.0f, zero);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          float& v = expect[static_cast<std::size_t>(i * n + j)];
          v = math::logistic(v + bias[static_cast<std::size_t>(j)]);
        }
      CHECK(std::memcmp(expect.data(), fused[0].data(), expect.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("gemm: AMD's older cpuid cache leaves") {
  // An EPYC of family 26 under KVM, whose leaf 0x8000001D is empty: 48 KiB 12-way L1d,
  // 1 MiB L2 (code 6: 8 ways), 1016 x 512 KiB of L3.
  const CacheSizes zen5 = amd_legacy_caches(0x300c0140, 0x04006140, 0x0fe09140);
  CHECK(std::string(zen5.source) == "cpuid");
  CHECK(zen5.l1d == 48 << 10);
  CHECK(zen5.l1d_ways == 12);
  CHECK(zen5.l2 == 1 << 20);
  CHECK(zen5.l2_ways == 8);
  CHECK(zen5.l3 == std::int64_t{1016} << 19);
  // Another: 32 KiB 8-way L1d, 512 KiB L2 (code 8: 16 ways), 64 x 512 KiB = 32 MiB of L3.
  const CacheSizes zen3 = amd_legacy_caches(0x20080140, 0x02008140, 0x01009140);
  CHECK(zen3.l1d == 32 << 10);
  CHECK(zen3.l1d_ways == 8);
  CHECK(zen3.l2 == 512 << 10);
  CHECK(zen3.l2_ways == 16);
  CHECK(zen3.l3 == 32 << 20);
  // Leaves that describe nothing are not taken for caches.
  CHECK(std::string(amd_legacy_caches(0, 0, 0).source).empty());
  CHECK(std::string(amd_legacy_caches(0x300c0140, 0, 0).source).empty());
}

TEST_CASE("gemm: the blocking in use is the one of this machine's caches") {
  const CacheSizes c = detect_caches();
  CAPTURE(c.source);
  CHECK(c.l1d > 0);
  CHECK(c.l2 > c.l1d);
#if defined(__x86_64__) && defined(__linux__)
  CHECK(std::strcmp(c.source, "default") != 0);  // cpuid or sysfs answered
#endif
  for (int bytes : {4, 8}) {
    const GemmBlocking used = gemm_blocking(bytes), derived = gemm_blocking_for(c, bytes);
    CHECK(used.kc == derived.kc);
    CHECK(used.mc == derived.mc);
    CHECK(used.nc == derived.nc);
  }
}

TEST_CASE("gemm: a short transposed A read in place and packed give the same bits, both right") {
  // Up to 32 row panels, a transposed A is read in place on AMD cores and packed once and
  // shared elsewhere: both paths on any machine, at 1 and 2 threads, against each other
  // and the reference. Ragged row panels and depth blocks, one and several column panels.
  for (const auto& shape : std::vector<std::array<std::int64_t, 3>>{{128, 128, 2048}, {256, 256, 256}, {100, 84, 700}, {37, 200, 1300}}) {
    const std::int64_t m = shape[0], n = shape[1], k = shape[2];  // clang before 16 cannot capture bindings
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const Problem<float> pr(m, n, k, true, false, 11);
    const std::vector<float> c0(static_cast<std::size_t>(m * n), 0.5f);
    std::vector<std::vector<float>> runs;
    for (int mode : {0, 1})
      for (int threads : {1, 2}) {
        detail::force_strided_a_in_place(mode);
        set_num_threads(threads);
        runs.push_back(pr.run(1.0f, 1.0f, c0));
        if (threads == 1) check_against_reference<float>(m, n, k, true, false, 1.0f, 1.0f);
      }
    detail::force_strided_a_in_place(-1);
    set_num_threads(0);
    for (std::size_t r = 1; r < runs.size(); ++r) CHECK(std::memcmp(runs[0].data(), runs[r].data(), runs[0].size() * sizeof(float)) == 0);
  }
}

TEST_CASE("gemm: B's column sums taken as B is packed give column_sums' bits, on every path, the product unchanged") {
  // Weight-gradient shapes xᵀ·dy, whose B is dy and its column sums the bias's gradient:
  // the blocked path packing B by rows (several depth blocks, 256-row blocks cut by them,
  // one and two vectors, a ragged last panel), its one-pass mode, column blocks of nc, a
  // transposed B, the small, few-rows and depth-split paths.
  const std::int64_t deep = 3 * gemm_blocking(4).kc + 77;
  const std::int64_t wide = gemm_blocking(4).nc + 40;
  for (const auto& shape : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool>>{
           {784, 256, 2000, true, false}, {500, 100, deep, true, false}, {600, 16, 1000, true, false},
           {700, 48, 900, false, false}, {64, 120, 400, true, false}, {13, wide, 300, false, false},
           {300, 70, 600, true, true}, {4, 2, 2, true, false}, {9, 7, 30, false, false}, {256, 10, 10000, true, false},
           {16, 150, 4000, false, false}}) {
    const std::int64_t m = std::get<0>(shape), n = std::get<1>(shape), k = std::get<2>(shape);
    const bool ta = std::get<3>(shape), tb = std::get<4>(shape);
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    CAPTURE(tb);
    Problem<float> pr(m, n, k, ta, tb, 5);
    // op(B) as rows of n values, for column_sums.
    std::vector<float> opb(static_cast<std::size_t>(k * n));
    for (std::int64_t p = 0; p < k; ++p)
      for (std::int64_t j = 0; j < n; ++j) opb[static_cast<std::size_t>(p * n + j)] = static_cast<float>(pr.B(p, j));
    std::vector<float> want(static_cast<std::size_t>(n));
    column_sums(opb.data(), k, n, n, want.data());
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      ThreadCount scope(threads);
      std::vector<float> plain(static_cast<std::size_t>(m * n)), c(plain.size());
      std::vector<float> got(static_cast<std::size_t>(n), -7.0f);
      gemm<float>(ta, tb, m, n, k, 1.0f, pr.a.data(), pr.lda(), pr.b.data(), pr.ldb(), 0.0f, plain.data(), n);
      GemmEpilogue<float> e;
      e.b_sums = got.data();
      gemm<float>(ta, tb, m, n, k, 1.0f, pr.a.data(), pr.lda(), pr.b.data(), pr.ldb(), 0.0f, c.data(), n, e);
      CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(plain.data(), c.data(), c.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("gemm: an epilogue gives the bits of the product with the bias added and the activation taken after, on every path") {
  // Tiny, small, few-rows, inner-product, blocked (one and two vectors, eight- and
  // twelve-row tiles, a ragged last tile, several depth blocks, column blocks of nc) paths.
  const std::int64_t deep = 3 * gemm_blocking(4).kc + 7;
  const std::int64_t wide = gemm_blocking(4).nc + 40;
  for (const auto& shape : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool>>{
           {4, 2, 2, false, false}, {9, 7, 30, false, true}, {6, 6272, 25, false, false}, {16, 150, 4000, false, true},
           {64, 10, 84, false, false}, {64, 120, 400, false, false}, {77, 33, deep, false, false},
           {256, 256, 256, true, false}, {100, 70, 50, false, true}, {13, wide, 20, false, false}}) {
    // Plain variables, not structured bindings: clang (the sanitizer builds) does not let
    // CAPTURE's lambda capture a binding.
    const std::int64_t m = std::get<0>(shape), n = std::get<1>(shape), k = std::get<2>(shape);
    const bool ta = std::get<3>(shape), tb = std::get<4>(shape);
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    Problem<float> pr(m, n, k, ta, tb, 11);
    std::vector<float> bias(static_cast<std::size_t>(n));
    Rng rng(3);
    for (auto& v : bias) v = static_cast<float>(rng.uniform(-1, 1));
    bias[0] = std::numeric_limits<float>::quiet_NaN();  // NaN stays NaN through the activation
    using A = math::Activation;
    // Bias and ReLU, bias alone, ReLU alone; bias and logistic, logistic alone, bias and tanh.
    const std::pair<bool, A> modes[] = {{true, A::relu},      {true, A::none},      {false, A::relu},
                                        {true, A::logistic}, {false, A::logistic}, {true, A::tanh}};
    for (int mode = 0; mode < 6; ++mode) {
      const bool with_bias = modes[mode].first;
      const A act = modes[mode].second;
      for (int threads : {1, 2}) {
        ThreadCount scope(threads);
        std::vector<float> want(static_cast<std::size_t>(m * n)), got(want.size(), -7.0f);
        gemm<float>(ta, tb, m, n, k, 1.0f, pr.a.data(), pr.lda(), pr.b.data(), pr.ldb(), 0.0f, want.data(), n);
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            float& v = want[static_cast<std::size_t>(i * n + j)];
            if (with_bias) v = v + bias[static_cast<std::size_t>(j)];
            if (act == A::relu) v = v <= 0.0f ? 0.0f : v;
            if (act == A::logistic) v = math::logistic(v);
            if (act == A::tanh) v = math::tanh(v);
          }
        gemm<float>(ta, tb, m, n, k, 1.0f, pr.a.data(), pr.lda(), pr.b.data(), pr.ldb(), 0.0f, got.data(), n,
                    GemmEpilogue<float>{with_bias ? bias.data() : nullptr, act});
        CAPTURE(mode);
        CAPTURE(threads);
        CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        if (with_bias) CHECK(std::isnan(got[0]));
      }
    }
  }
}
