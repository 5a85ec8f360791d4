// Strided copies for the layout ops (transpose, slice, expand): one loop over a contiguous
// tensor of `dims` whose element j sits at base + sum(j_d * strides[d]) in another.
#pragma once

#include <cstdint>

#include <opgraph/graph/kernel.hpp>

namespace opgraph::ops::detail {

/// A tensor viewed as [outer, len, inner] around one axis.
struct AroundAxis {
  std::int64_t outer = 1, len = 1, inner = 1;
};

/// x (a View) around `axis`, in [0, rank).
template <class V>
AroundAxis around(const V& x, int axis) {
  AroundAxis s;
  for (int i = 0; i < x.rank; ++i) (i < axis ? s.outer : i == axis ? s.len : s.inner) *= x.dims[i];
  return s;
}

/// Row-major strides of dims.
inline void contiguous_strides(const std::int64_t* dims, int rank, std::int64_t* strides) {
  std::int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= dims[d];
  }
}

/// With `gather`, dense[j] = other[base + offset(j)]; otherwise other[base + offset(j)] =
/// dense[j]. Rows of the last dimension in parallel chunks; each element is written once,
/// so the result does not depend on the thread count.
template <class T>
void strided_copy(bool gather, const T* src, T* dst, std::int64_t base, const std::int64_t* dims,
                  const std::int64_t* strides, int rank) {
  std::int64_t size = 1;
  for (int d = 0; d < rank; ++d) size *= dims[d];
  if (size == 0) return;
  const std::int64_t inner = rank ? dims[rank - 1] : 1, step = rank ? strides[rank - 1] : 1;
  const std::int64_t outer = size / inner;
  parallel_for(outer, row_grain(inner), [&](std::int64_t r0, std::int64_t r1) {
    std::int64_t index[kMaxRank] = {}, offset = base, o = r0;
    for (int d = rank - 2; d >= 0; --d) {
      index[d] = o % dims[d];
      o /= dims[d];
      offset += index[d] * strides[d];
    }
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t dense = r * inner;
      if (gather) {
        if (step == 1) std::copy(src + offset, src + offset + inner, dst + dense);
        else for (std::int64_t j = 0; j < inner; ++j) dst[dense + j] = src[offset + j * step];
      } else {
        if (step == 1) std::copy(src + dense, src + dense + inner, dst + offset);
        else for (std::int64_t j = 0; j < inner; ++j) dst[offset + j * step] = src[dense + j];
      }
      for (int d = rank - 2; d >= 0; --d) {  // odometer to the next row
        offset += strides[d];
        if (++index[d] < dims[d]) break;
        index[d] = 0;
        offset -= strides[d] * dims[d];
      }
    }
  });
}

}  // namespace opgraph::ops::detail
