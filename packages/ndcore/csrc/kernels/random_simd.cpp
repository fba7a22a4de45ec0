// random_simd.cpp: the vectorised halves of the random kernels (see Note [Vectorised Philox]).
//
// Note [Vectorised Philox]
// One Philox-4x32-10 block is a chain of ten dependent rounds (two 32x32->64 multiplies each),
// so a block-at-a-time loop waits on multiply latency. Here 16 counters run side by side, one
// per SIMD lane, giving the words as four 16-lane rows (row j = word j of each block). With
// AVX-512 each round is four vpmuludq (even and odd lanes of the two multiplied words), vpshufd
// and masked moves to split the products into halves (on the shuffle port, leaving the multiply
// port to the multiplies) and two three-way XORs. The other ISA levels run the same rows as lane
// loops for the compiler to vectorise. Consumers work on the rows (Box-Muller pairs row 0 with
// row 1 and row 2 with row 3) and a 4x16 transpose stores results in Philox::block's order
// (block k's four values at out[4k..4k+3]). Every level yields exactly Philox::block's words,
// so fills stay identical across machines and thread counts.
//
// Bit-identical floats across ISA levels: GCC's default for GNU C++ (-ffp-contract=fast) would
// fuse the Box-Muller polynomials' multiply-adds into FMAs in the AVX2/AVX-512 variants only,
// changing the last bits of randn between machines (and against the baseline build nd always
// had). Contraction is therefore off in this file; every step is a correctly rounded IEEE
// operation, identical at every vector width. (Clang contracts within one expression by
// default; the standard pragma stops that. GCC ignores that pragma in C++.)
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>

#include "philox.h"
#include "simd_dispatch.h"
#ifdef ND_SIMD_X86
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nd {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kBump0 = 0x9E3779B9u, kBump1 = 0xBB67AE85u;
constexpr int kLanes = 16;

// Rows of 16 blocks from counter ctr: c[j][l] = word j of block ctr + l. The portable form, for
// targets without SSE2.
inline void philox16_lanes(uint32_t k0, uint32_t k1, uint64_t ctr, uint32_t c[4][kLanes]) {
  for (int l = 0; l < kLanes; ++l) {
    uint64_t v = ctr + (uint64_t)l;
    c[0][l] = (uint32_t)v;
    c[1][l] = (uint32_t)(v >> 32);
    c[2][l] = 0;
    c[3][l] = 0;
  }
  uint32_t a = k0, b = k1;
  for (int r = 0; r < 10; ++r) {
    for (int l = 0; l < kLanes; ++l) {
      uint64_t p0 = (uint64_t)kMul0 * c[0][l], p1 = (uint64_t)kMul1 * c[2][l];
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1][l] ^ a, n2 = (uint32_t)(p0 >> 32) ^ c[3][l] ^ b;
      c[1][l] = (uint32_t)p1;
      c[3][l] = (uint32_t)p0;
      c[0][l] = n0;
      c[2][l] = n2;
    }
    a += kBump0;
    b += kBump1;
  }
}

// out[4l + j] = c[j][l]
template <typename T>
inline void interleave16_lanes(const T c[4][kLanes], T* out) {
  for (int l = 0; l < kLanes; ++l)
    for (int j = 0; j < 4; ++j) out[4 * l + j] = c[j][l];
}

#ifdef __SSE2__
// The baseline x86-64 form: four lanes per __m128i, the products' halves regrouped by unpacks
// (GCC leaves the lane loops above scalar, with spills).
inline void mul_hilo4(__m128i x, __m128i m, __m128i* hi, __m128i* lo) {
  const __m128i pe = _mm_mul_epu32(x, m), po = _mm_mul_epu32(_mm_srli_epi64(x, 32), m);  // lanes 0,2 and 1,3
  const __m128i t0 = _mm_unpacklo_epi32(pe, po), t1 = _mm_unpackhi_epi32(pe, po);         // l0 l1 h0 h1, l2 l3 h2 h3
  *lo = _mm_unpacklo_epi64(t0, t1);
  *hi = _mm_unpackhi_epi64(t0, t1);
}

// Two 4-lane sets advance in lockstep so one set's multiplies overlap the other's latency.
inline void philox16_sse2(uint32_t k0, uint32_t k1, uint64_t ctr, uint32_t c[4][kLanes]) {
  constexpr int P = 2;
  const __m128i m0 = _mm_set1_epi64x(kMul0), m1 = _mm_set1_epi64x(kMul1);
  for (int q = 0; q < kLanes; q += 4 * P) {
    alignas(16) uint32_t lo[4 * P], hi[4 * P];
    for (int l = 0; l < 4 * P; ++l) {
      uint64_t v = ctr + (uint64_t)(q + l);
      lo[l] = (uint32_t)v;
      hi[l] = (uint32_t)(v >> 32);
    }
    __m128i c0[P], c1[P], c2[P], c3[P];
    for (int p = 0; p < P; ++p) {
      c0[p] = _mm_load_si128((const __m128i*)(lo + 4 * p));
      c1[p] = _mm_load_si128((const __m128i*)(hi + 4 * p));
      c2[p] = c3[p] = _mm_setzero_si128();
    }
    uint32_t a = k0, b = k1;
    for (int r = 0; r < 10; ++r) {
      const __m128i ka = _mm_set1_epi32((int)a), kb = _mm_set1_epi32((int)b);
      for (int p = 0; p < P; ++p) {
        __m128i hi0, lo0, hi1, lo1;
        mul_hilo4(c0[p], m0, &hi0, &lo0);
        mul_hilo4(c2[p], m1, &hi1, &lo1);
        c0[p] = _mm_xor_si128(_mm_xor_si128(hi1, c1[p]), ka);
        c2[p] = _mm_xor_si128(_mm_xor_si128(hi0, c3[p]), kb);
        c1[p] = lo1;
        c3[p] = lo0;
      }
      a += kBump0;
      b += kBump1;
    }
    for (int p = 0; p < P; ++p) {
      _mm_store_si128((__m128i*)(c[0] + q + 4 * p), c0[p]);
      _mm_store_si128((__m128i*)(c[1] + q + 4 * p), c1[p]);
      _mm_store_si128((__m128i*)(c[2] + q + 4 * p), c2[p]);
      _mm_store_si128((__m128i*)(c[3] + q + 4 * p), c3[p]);
    }
  }
}

// out[4l + j] = c[j][l] (any 32-bit rows), by 4x4 transposes
inline void interleave16_sse2(const void* rows, void* out) {
  const uint32_t(*c)[kLanes] = static_cast<const uint32_t(*)[kLanes]>(rows);
  __m128i* o = static_cast<__m128i*>(out);
  for (int q = 0; q < kLanes; q += 4) {
    const __m128i r0 = _mm_load_si128((const __m128i*)(c[0] + q)), r1 = _mm_load_si128((const __m128i*)(c[1] + q));
    const __m128i r2 = _mm_load_si128((const __m128i*)(c[2] + q)), r3 = _mm_load_si128((const __m128i*)(c[3] + q));
    const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
    const __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
    _mm_storeu_si128(o + q, _mm_unpacklo_epi64(t0, t2));
    _mm_storeu_si128(o + q + 1, _mm_unpackhi_epi64(t0, t2));
    _mm_storeu_si128(o + q + 2, _mm_unpacklo_epi64(t1, t3));
    _mm_storeu_si128(o + q + 3, _mm_unpackhi_epi64(t1, t3));
  }
}
#endif

#ifdef ND_SIMD_X86
// AVX2: eight lanes per __m256i; both halves of the 16 blocks advance in lockstep.
__attribute__((target("avx2"), always_inline)) inline void philox16_avx2(uint32_t k0, uint32_t k1, uint64_t ctr, uint32_t c[4][kLanes]) {
  const __m256i m0 = _mm256_set1_epi64x(kMul0), m1 = _mm256_set1_epi64x(kMul1);
  alignas(32) uint32_t lo[kLanes], hi[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    uint64_t v = ctr + (uint64_t)l;
    lo[l] = (uint32_t)v;
    hi[l] = (uint32_t)(v >> 32);
  }
  __m256i c0[2], c1[2], c2[2], c3[2];
  for (int p = 0; p < 2; ++p) {
    c0[p] = _mm256_load_si256((const __m256i*)(lo + 8 * p));
    c1[p] = _mm256_load_si256((const __m256i*)(hi + 8 * p));
    c2[p] = c3[p] = _mm256_setzero_si256();
  }
  uint32_t a = k0, b = k1;
  for (int r = 0; r < 10; ++r) {
    const __m256i ka = _mm256_set1_epi32((int)a), kb = _mm256_set1_epi32((int)b);
    for (int p = 0; p < 2; ++p) {
      const __m256i pe0 = _mm256_mul_epu32(c0[p], m0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[p], 32), m0);
      const __m256i pe1 = _mm256_mul_epu32(c2[p], m1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[p], 32), m1);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
      c0[p] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[p]), ka);
      c2[p] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[p]), kb);
      c1[p] = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);  // lo halves
      c3[p] = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
    }
    a += kBump0;
    b += kBump1;
  }
  for (int p = 0; p < 2; ++p) {
    _mm256_store_si256((__m256i*)(c[0] + 8 * p), c0[p]);
    _mm256_store_si256((__m256i*)(c[1] + 8 * p), c1[p]);
    _mm256_store_si256((__m256i*)(c[2] + 8 * p), c2[p]);
    _mm256_store_si256((__m256i*)(c[3] + 8 * p), c3[p]);
  }
}

#define ND_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline
// The zero-masked intrinsics with full masks are the plain instructions; GCC 12 warns
// (-Wmaybe-uninitialized) about the unmasked ones' internal _mm512_undefined_epi32 once inlined.
constexpr __mmask8 k8 = 0xFF;
constexpr __mmask16 k16 = 0xFFFF, kOdd = 0xAAAA;

// hi and lo halves of the 32x32->64 products x[l] * m for all 16 lanes: vpmuludq multiplies the
// even lanes; the odd lanes are moved down (vpshufd) for a second one.
ND_AVX512_INLINE void mul_hilo16(__m512i x, __m512i m, __m512i* hi, __m512i* lo) {
  const __m512i pe = _mm512_maskz_mul_epu32(k8, x, m);
  const __m512i po = _mm512_maskz_mul_epu32(k8, _mm512_maskz_shuffle_epi32(k16, x, _MM_PERM_DDBB), m);
  *hi = _mm512_mask_mov_epi32(_mm512_maskz_shuffle_epi32(k16, pe, _MM_PERM_DDBB), kOdd, po);
  *lo = _mm512_mask_mov_epi32(pe, kOdd, _mm512_maskz_shuffle_epi32(k16, po, _MM_PERM_CCAA));
}

ND_AVX512_INLINE void philox16_avx512(uint32_t k0, uint32_t k1, uint64_t ctr, __m512i c[4]) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)ctr), iota);
  __m512i c1 = _mm512_set1_epi32((int)(uint32_t)(ctr >> 32));
  // lanes whose low word wrapped carry into the high word
  c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, iota), c1, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = c2;
  const __m512i m0 = _mm512_set1_epi64(kMul0), m1 = _mm512_set1_epi64(kMul1);
  uint32_t a = k0, b = k1;
  for (int r = 0; r < 10; ++r) {
    __m512i hi0, lo0, hi1, lo1;
    mul_hilo16(c0, m0, &hi0, &lo0);
    mul_hilo16(c2, m1, &hi1, &lo1);
    c0 = _mm512_maskz_ternarylogic_epi32(k16, hi1, c1, _mm512_set1_epi32((int)a), 0x96);  // three-way XOR
    c2 = _mm512_maskz_ternarylogic_epi32(k16, hi0, c3, _mm512_set1_epi32((int)b), 0x96);
    c1 = lo1;
    c3 = lo0;
    a += kBump0;
    b += kBump1;
  }
  c[0] = c0;
  c[1] = c1;
  c[2] = c2;
  c[3] = c3;
}

// out[4l + j] = lane l of c[j]: 4x4 transposes within 128-bit lanes give u0 = blocks
// {0,4,8,12}, u1 = {1,5,9,13}, ...; then a 4x4 transpose of the 128-bit lanes puts them in order.
ND_AVX512_INLINE void interleave16_avx512(const __m512i c[4], void* out) {
  const __m512i t0 = _mm512_maskz_unpacklo_epi32(k16, c[0], c[1]), t1 = _mm512_maskz_unpackhi_epi32(k16, c[0], c[1]);
  const __m512i t2 = _mm512_maskz_unpacklo_epi32(k16, c[2], c[3]), t3 = _mm512_maskz_unpackhi_epi32(k16, c[2], c[3]);
  const __m512i u0 = _mm512_maskz_unpacklo_epi64(k8, t0, t2), u1 = _mm512_maskz_unpackhi_epi64(k8, t0, t2);
  const __m512i u2 = _mm512_maskz_unpacklo_epi64(k8, t1, t3), u3 = _mm512_maskz_unpackhi_epi64(k8, t1, t3);
  const __m512i v0 = _mm512_maskz_shuffle_i32x4(k16, u0, u1, 0x44), v1 = _mm512_maskz_shuffle_i32x4(k16, u0, u1, 0xEE);
  const __m512i v2 = _mm512_maskz_shuffle_i32x4(k16, u2, u3, 0x44), v3 = _mm512_maskz_shuffle_i32x4(k16, u2, u3, 0xEE);
  char* o = static_cast<char*>(out);
  _mm512_storeu_si512(o, _mm512_maskz_shuffle_i32x4(k16, v0, v2, 0x88));
  _mm512_storeu_si512(o + 64, _mm512_maskz_shuffle_i32x4(k16, v0, v2, 0xDD));
  _mm512_storeu_si512(o + 128, _mm512_maskz_shuffle_i32x4(k16, v1, v3, 0x88));
  _mm512_storeu_si512(o + 192, _mm512_maskz_shuffle_i32x4(k16, v1, v3, 0xDD));
}
#endif

// Box-Muller for float32 without libm calls, so the loop vectorises: log by exponent split +
// polynomial on the mantissa (Cephes logf), sin/cos of 2*pi*u by quarter-turn reduction +
// minimax polynomials. Errors are ~1e-7 relative, below float32 sampling noise.
inline float log_f32(float x) {  // x in (0, 1]
  int32_t bits;
  std::memcpy(&bits, &x, 4);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  int32_t mb = (bits & 0x007fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &mb, 4);
  bool small = m < 0.70710678f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  float fe = (float)e;
  y += fe * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + fe * 0.693359375f;
}
inline void sincos_2pi_f32(float u, float* s, float* c) {  // u in [0, 1)
  float q = (u * 4.0f + 12582912.0f) - 12582912.0f;  // nearest quarter turn
  int32_t j = (int32_t)q & 3;
  float r = (u - q * 0.25f) * 6.28318530717958648f;  // r in [-pi/4, pi/4]
  float r2 = r * r;
  float sp = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
  float cp = 1.0f - 0.5f * r2 + r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
  float sv = (j == 0) ? sp : (j == 1) ? cp : (j == 2) ? -sp : -cp;
  float cv = (j == 0) ? cp : (j == 1) ? -sp : (j == 2) ? -cp : sp;
  *s = sv;
  *c = cv;
}

// Rows (w0, w1) -> (mean + std * r * cos, mean + std * r * sin) into (v0, v1).
inline void box_muller16(const uint32_t* w0, const uint32_t* w1, float mean, float std, float* v0, float* v1) {
  for (int l = 0; l < kLanes; ++l) {
    float u1 = 1.0f - u01_24(w0[l]), u2 = u01_24(w1[l]);
    float r = std::sqrt(-2.0f * log_f32(u1)), sv, cv;
    sincos_2pi_f32(u2, &sv, &cv);
    v0[l] = mean + std * r * cv;
    v1[l] = mean + std * r * sv;
  }
}

// The kernels take groups of 16 blocks from counter ctr and write 64 values per group.
// Written out rather than with ND_SIMD_KERNEL because the AVX-512 variants have their own bodies.
#ifdef __SSE2__
#define ND_PHILOX16_BASE philox16_sse2
#define ND_INTERLEAVE16 interleave16_sse2
#else
#define ND_PHILOX16_BASE philox16_lanes
#define ND_INTERLEAVE16 interleave16_lanes
#endif
#define ND_PHILOX_ROWS_BODY(PHILOX16)                                            \
  for (int64_t g = 0; g < groups; ++g) {                                         \
    alignas(64) uint32_t c[4][kLanes];                                           \
    PHILOX16(k0, k1, ctr + (uint64_t)(g * kLanes), c);                           \
    ND_INTERLEAVE16(c, out + g * 4 * kLanes);                                    \
  }
#define ND_NORMAL_ROWS_BODY(PHILOX16)                                            \
  for (int64_t g = 0; g < groups; ++g) {                                         \
    alignas(64) uint32_t c[4][kLanes];                                           \
    alignas(64) float v[4][kLanes];                                              \
    PHILOX16(k0, k1, ctr + (uint64_t)(g * kLanes), c);                           \
    box_muller16(c[0], c[1], mean, std, v[0], v[1]);                             \
    box_muller16(c[2], c[3], mean, std, v[2], v[3]);                             \
    ND_INTERLEAVE16(v, out + g * 4 * kLanes);                                    \
  }

struct PhiloxWords {
  __attribute__((flatten)) static void base(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, uint32_t* out) {
    ND_PHILOX_ROWS_BODY(ND_PHILOX16_BASE)
  }
#ifdef ND_SIMD_X86
  ND_SIMD_TARGET_AVX2 static void avx2(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, uint32_t* out) {
    ND_PHILOX_ROWS_BODY(philox16_avx2)
  }
  ND_SIMD_TARGET_AVX512 static void avx512(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, uint32_t* out) {
    for (int64_t g = 0; g < groups; ++g) {
      __m512i c[4];
      philox16_avx512(k0, k1, ctr + (uint64_t)(g * kLanes), c);
      interleave16_avx512(c, out + g * 4 * kLanes);
    }
  }
#endif
};

struct NormalF32 {
  __attribute__((flatten)) static void base(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, float mean, float std, float* out) {
    ND_NORMAL_ROWS_BODY(ND_PHILOX16_BASE)
  }
#ifdef ND_SIMD_X86
  ND_SIMD_TARGET_AVX2 static void avx2(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, float mean, float std, float* out) {
    ND_NORMAL_ROWS_BODY(philox16_avx2)
  }
  ND_SIMD_TARGET_AVX512 static void avx512(uint32_t k0, uint32_t k1, uint64_t ctr, int64_t groups, float mean, float std, float* out) {
    for (int64_t g = 0; g < groups; ++g) {
      __m512i c[4];
      philox16_avx512(k0, k1, ctr + (uint64_t)(g * kLanes), c);
      alignas(64) uint32_t w[4][kLanes];
      alignas(64) float v[4][kLanes];
      for (int j = 0; j < 4; ++j) _mm512_store_si512(w[j], c[j]);
      box_muller16(w[0], w[1], mean, std, v[0], v[1]);  // vectorised by the compiler: one zmm per row
      box_muller16(w[2], w[3], mean, std, v[2], v[3]);
      for (int j = 0; j < 4; ++j) c[j] = _mm512_load_si512(v[j]);
      interleave16_avx512(c, out + g * 4 * kLanes);
    }
  }
#endif
};
#undef ND_PHILOX_ROWS_BODY
#undef ND_NORMAL_ROWS_BODY
#undef ND_PHILOX16_BASE
#undef ND_INTERLEAVE16

}  // namespace

void philox_words(const Philox& ph, uint64_t ctr, int64_t nb, uint32_t* out) {
  const int64_t groups = nb / kLanes, done = groups * kLanes;
  simd_run<PhiloxWords>(ph.k0, ph.k1, ctr, groups, out);
  if (done == nb) return;
  // the last partial group: all 16 blocks into a buffer (the extra counters' words are unused)
  alignas(64) uint32_t tail[4 * kLanes];
  simd_run<PhiloxWords>(ph.k0, ph.k1, ctr + (uint64_t)done, int64_t(1), tail);
  std::memcpy(out + 4 * done, tail, sizeof(uint32_t) * 4 * (size_t)(nb - done));
}

void normal_f32(const Philox& ph, uint64_t ctr, int64_t nb, float mean, float std, float* out) {
  const int64_t groups = nb / kLanes, done = groups * kLanes;
  simd_run<NormalF32>(ph.k0, ph.k1, ctr, groups, mean, std, out);
  if (done == nb) return;
  alignas(64) float tail[4 * kLanes];
  simd_run<NormalF32>(ph.k0, ph.k1, ctr + (uint64_t)done, int64_t(1), mean, std, tail);
  std::memcpy(out + 4 * done, tail, sizeof(float) * 4 * (size_t)(nb - done));
}

}  // namespace nd
