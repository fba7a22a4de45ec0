// simd_transpose.h: in-register transposes shared by the packing routines of the AVX-512
// kernels (sgemm_avx512.cpp's B^T strips, rnn_fast.cpp's weight panels).
#pragma once
#include "simd_dispatch.h"

#ifdef ND_SIMD_X86
#include <immintrin.h>

namespace nd {

// r[i] (row i of a 16x16 block) becomes column i. The zero-masked forms with a full mask are
// the plain instructions; GCC 12 warns (-Wmaybe-uninitialized) about the unmasked intrinsics'
// internal _mm512_undefined_ps once they are inlined here.
ND_SIMD_TARGET_AVX512 inline void transpose16(__m512 r[16]) {
  const __mmask16 all = 0xFFFF;
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(all, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(all, r[2 * i], r[2 * i + 1]);
  }
  // Per 128-bit lane l, u[4g + j] now holds element 4l + j of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, t1, t3));
  }
  for (int j = 0; j < 4; ++j) {
    __m512 v02 = _mm512_maskz_shuffle_f32x4(all, u[j], u[4 + j], 0x88);
    __m512 w02 = _mm512_maskz_shuffle_f32x4(all, u[8 + j], u[12 + j], 0x88);
    __m512 v13 = _mm512_maskz_shuffle_f32x4(all, u[j], u[4 + j], 0xdd);
    __m512 w13 = _mm512_maskz_shuffle_f32x4(all, u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_maskz_shuffle_f32x4(all, v02, w02, 0x88);
    r[8 + j] = _mm512_maskz_shuffle_f32x4(all, v02, w02, 0xdd);
    r[4 + j] = _mm512_maskz_shuffle_f32x4(all, v13, w13, 0x88);
    r[12 + j] = _mm512_maskz_shuffle_f32x4(all, v13, w13, 0xdd);
  }
}

}  // namespace nd

#endif  // ND_SIMD_X86
