// Eight floats in a register (GCC's vector extension: AVX with -march=native, two SSE
// registers without), for the loops of the ops that the compiler does not vectorise.
#pragma once

namespace opgraph::ops::detail {

typedef float F8 __attribute__((vector_size(32)));
typedef int I8 __attribute__((vector_size(32)));  // a lane mask of a comparison: -1 or 0
typedef float F8Unaligned __attribute__((vector_size(32), aligned(4), may_alias));

/// Eight floats loaded from and stored to any float's address.
inline F8 load8(const float* p) { return *reinterpret_cast<const F8Unaligned*>(p); }
inline void store8(float* p, F8 v) { *reinterpret_cast<F8Unaligned*>(p) = v; }

/// The even and the odd values of the sixteen at p: p[2i] and p[2i + 1], i < 8.
inline F8 evens8(const float* p) { return __builtin_shufflevector(load8(p), load8(p + 8), 0, 2, 4, 6, 8, 10, 12, 14); }
inline F8 odds8(const float* p) { return __builtin_shufflevector(load8(p), load8(p + 8), 1, 3, 5, 7, 9, 11, 13, 15); }

}  // namespace opgraph::ops::detail
