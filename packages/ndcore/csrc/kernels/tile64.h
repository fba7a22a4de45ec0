// A register-tiled float32 product for short-M GEMMs (the LSTM/GRU step products in rnn.cpp
// and rnn_fast.cpp, the attention blocks in attention.cpp): C (R x 64, row stride ldc) += A
// (R x K, row stride lda) @ B (K x 64, row stride ldb), with R <= 5 rows x 64 columns = 20
// AVX-512 accumulators.
#pragma once
#include <cstdint>

namespace nd {
namespace tile64 {

// aligned(4): rows of the operands are only float-aligned; the type also allows aliasing floats
typedef float v16f __attribute__((vector_size(64), aligned(4), may_alias));

// always_inline: compiled inside the AVX-512 callers, never as a generic (SSE-emulated) copy.
// Acc = false overwrites C instead of adding to it (no read of C, which may be uninitialised).
template <int R, bool Acc = true>
__attribute__((always_inline)) inline void tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                                                int64_t ldc, int64_t K) {
  v16f acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) {
      if constexpr (Acc) acc[r][j] = *reinterpret_cast<const v16f*>(C + r * ldc + 16 * j);
      else acc[r][j] = v16f{};
    }
  for (int64_t k = 0; k < K; ++k) {
    const v16f* b = reinterpret_cast<const v16f*>(B + k * ldb);
    const v16f b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
    for (int r = 0; r < R; ++r) {
      const float a = A[r * lda + k];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
      acc[r][2] += a * b2;
      acc[r][3] += a * b3;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) *reinterpret_cast<v16f*>(C + r * ldc + 16 * j) = acc[r][j];
}

// C (M x 64) = A (M x K) @ B (K x 64) (Acc = false) or += (Acc = true), M of any size: 5-row
// tiles, then one tile for the remaining rows. K runs in slices of 128 so a slice of B (32 KB)
// stays in L1 while every row tile passes over it.
template <bool Acc>
__attribute__((always_inline)) inline void rows(int64_t M, int64_t K, const float* A, int64_t lda, const float* B,
                                                int64_t ldb, float* C, int64_t ldc) {
  constexpr int64_t kKc = 128;
  for (int64_t k0 = 0; k0 < K || (k0 == 0 && !Acc); k0 += kKc) {
    const int64_t kc = K - k0 < kKc ? K - k0 : kKc;
    const float* a = A + k0;
    const float* b = B + k0 * ldb;
    const bool first = k0 == 0 && !Acc;
    int64_t m = 0;
    for (; m + 5 <= M; m += 5) {
      if (first) tile<5, false>(a + m * lda, lda, b, ldb, C + m * ldc, ldc, kc);
      else tile<5>(a + m * lda, lda, b, ldb, C + m * ldc, ldc, kc);
    }
#define ND_TILE64_REST(R)                                                     \
  case R:                                                                     \
    if (first) tile<R, false>(a + m * lda, lda, b, ldb, C + m * ldc, ldc, kc); \
    else tile<R>(a + m * lda, lda, b, ldb, C + m * ldc, ldc, kc);            \
    break;
    switch (M - m) {
      ND_TILE64_REST(4)
      ND_TILE64_REST(3)
      ND_TILE64_REST(2)
      ND_TILE64_REST(1)
      default: break;
    }
#undef ND_TILE64_REST
    if (K == 0) break;
  }
}

}  // namespace tile64
}  // namespace nd
