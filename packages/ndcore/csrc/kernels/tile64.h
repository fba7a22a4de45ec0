// A register-tiled float32 product for short-M GEMMs (the LSTM/GRU step products in rnn.cpp
// and rnn_fast.cpp, the attention blocks in attention.cpp): C (R x 64, row stride ldc) += A
// (R x K, row stride lda) @ B (K x 64, row stride ldb), with R <= 5 rows x 64 columns = 20
// AVX-512 accumulators.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace nd {
namespace tile64 {

// Compiled only inside AVX-512 callers (always_inline; the target lets the intrinsics inline
// here). The FMAs are explicit: left to the compiler to contract, an unoptimised build (the
// sanitizer's -O0) rounds a * b and the add separately, and sgemm_short would no longer give the
// packed kernel's bits (Note [Packed SGEMM]).
#define ND_TILE64_INLINE __attribute__((always_inline, target("avx512f,fma"))) inline

// Acc = false overwrites C instead of adding to it (no read of C, which may be uninitialised).
// Rows of the operands are only float-aligned: unaligned loads and stores throughout.
template <int R, bool Acc = true>
ND_TILE64_INLINE void tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t K) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = Acc ? _mm512_loadu_ps(C + r * ldc + 16 * j) : _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                 b3 = _mm512_loadu_ps(b + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(C + r * ldc + 16 * j, acc[r][j]);
}

// C (M x 64) = A (M x K) @ B (K x 64) (Acc = false) or += (Acc = true), M of any size: 5-row
// tiles, then one tile for the remaining rows. K runs in slices of 128 so a slice of B (32 KB)
// stays in L1 while every row tile passes over it.
template <bool Acc>
ND_TILE64_INLINE void rows(int64_t M, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                           int64_t ldc) {
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

#undef ND_TILE64_INLINE

}  // namespace tile64
}  // namespace nd
