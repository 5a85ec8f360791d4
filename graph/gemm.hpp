// Dense matrix product for kernels: packed, register-blocked, parallel, deterministic.
#pragma once

#include <cstdint>

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

/// The instruction set the micro-kernel was compiled for ("avx512", "avx2", "sse2", "generic").
const char* gemm_isa();

}  // namespace opgraph
