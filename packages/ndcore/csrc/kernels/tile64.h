// A register-tiled float32 product for short-M GEMMs (the LSTM/GRU step products in rnn.cpp
// and rnn_fast.cpp): C (R x 64, row stride ldc) += A (R x K, row stride lda) @ B (K x 64, row
// stride ldb), with R <= 5 rows x 64 columns = 20 AVX-512 accumulators.
#pragma once
#include <cstdint>

namespace nd {
namespace tile64 {

// aligned(4): rows of the operands are only float-aligned; the type also allows aliasing floats
typedef float v16f __attribute__((vector_size(64), aligned(4), may_alias));

// always_inline: compiled inside the AVX-512 callers, never as a generic (SSE-emulated) copy.
template <int R>
__attribute__((always_inline)) inline void tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                                                int64_t ldc, int64_t K) {
  v16f acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = *reinterpret_cast<const v16f*>(C + r * ldc + 16 * j);
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

}  // namespace tile64
}  // namespace nd
