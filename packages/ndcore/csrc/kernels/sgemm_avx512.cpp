// sgemm_avx512.cpp: nd's packed float32 GEMM for AVX-512 CPUs, with OpenBLAS as the fallback.
//
// Note [Packed SGEMM]
// The blocking of Goto and van de Geijn ("Anatomy of High-Performance Matrix Multiplication",
// 2008), laid out for row-major C so that C's rows are the vector direction:
//  - a kKC x kNC block of op(B) is packed into strips kNR = 32 columns wide (two zmm per k,
//    zero-padded past N), so the micro-kernel reads B sequentially whatever its layout; B^T is
//    packed through 16x16 in-register transposes;
//  - A is not packed: the micro-kernel broadcasts its 12 elements per k straight from A (12 row
//    streams when A is [M, K], one 12-float run per k when A is stored [K, M]). Packing A
//    (12-float runs per k, transposed for [M, K]) measured 0-20% slower on every shape tried, most
//    on narrow C (N <= 128: 1.2x at 256x2048x64) where the packing is paid for by few columns.
//    The exception is A stored [K, M] under wide C: its runs sit lda apart, often a multiple of
//    4 KB, so a band's kKC runs share a few L1 sets and are evicted before the next strip of C
//    reads them again, and a band spanning megabytes of A (lda of thousands) also misses the
//    TLB on every re-read; there each 12-row band is first copied to a 12 KB buffer
//    (1024x256x768: 0.85x -> 1.05x of OpenBLAS, conv's 2304x256x196: 0.8x -> 1.0x);
//  - the micro-kernel keeps a 12x32 tile of C in 24 zmm accumulators and per k does two loads
//    of B, twelve broadcasts of A and 24 FMAs;
//  - loop order jc (kNC) > pc (kKC) > ir (kMR) > jr (kNR): one 12-row band of A (12 x kKC
//    floats) stays in the 48 KB L1d while the micro-kernel sweeps the packed B block (kKC x kNC
//    floats = 1 MB) from the 2 MB L2, and C is written a band of 12 rows at a time, left to
//    right, which the prefetchers follow. (Sweeping A under a fixed B strip instead, as BLIS
//    does for column-major C, ran 5-20% slower once C outgrew L2: each tile then jumps twelve
//    rows down C.)
// Edge tiles run the same code: a template per row count (1..12) and per vector count (1 or 2),
// with masked loads and stores of C for the last columns, so nothing is computed or written
// past M or N and no scalar loop remains.
// A short A (M <= 32 rows, plain layouts, alpha 1, beta 0) skips the packing of B: sgemm_short
// reads B in place through 5 x 64 register tiles over the same K blocks.
// K is cut into balanced kKC blocks; the first applies beta, the later ones accumulate into C,
// so every element of C sums its K products in the same order (k ascending, one FMA chain per
// block) wherever it sits in C. A product therefore has the same bits however the caller splits
// M or N across threads, as long as every piece takes this kernel.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "sgemm.h"
#include "simd_dispatch.h"
#include "simd_transpose.h"
#include "tile64.h"

namespace nd {
namespace {

#ifdef ND_SIMD_X86

constexpr int kMR = 12;
constexpr int kNR = 32;
constexpr int64_t kKC = 256;
constexpr int64_t kNC = 1024;  // a multiple of kNR
// A stored [K, M] is copied band by band (12 x kKC) when more than this many columns of C reuse
// each band, or when a band spans this many floats of A (Note [Packed SGEMM]).
constexpr int64_t kBandN = 256;
constexpr int64_t kBandSpan = int64_t(1) << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Packing space (B's blocks, A's bands), one per thread, grown on demand and kept (64-byte
// aligned for aligned zmm loads).
struct PackBuffer {
  float* p = nullptr;
  size_t cap = 0;
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (p == nullptr) throw std::bad_alloc();
      cap = n;
    }
    return p;
  }
};
thread_local PackBuffer tl_pack_b, tl_pack_a;

inline __mmask16 low_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// op(B)[k, n] = B[k * ldb + n]: strips of kNR columns, each kc rows of kNR floats. B is read
// row by row (one stream the prefetchers follow), not strip by strip (kc streams ldb apart).
ND_SIMD_TARGET_AVX512 void pack_b_rows(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) {
  const int64_t full = nc / kNR * kNR;
  const __mmask16 m0 = low_mask(nc - full), m1 = low_mask(nc - full - 16);
  for (int64_t k = 0; k < kc; ++k, B += ldb) {
    float* d = dst + k * kNR;
    int64_t n0 = 0;
    for (; n0 < full; n0 += kNR, d += kc * kNR) {
      _mm512_store_ps(d, _mm512_loadu_ps(B + n0));
      _mm512_store_ps(d + 16, _mm512_loadu_ps(B + n0 + 16));
    }
    if (n0 < nc) {
      _mm512_store_ps(d, _mm512_maskz_loadu_ps(m0, B + n0));
      _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(m1, B + n0 + 16));
    }
  }
}

// op(B)[k, n] = B[n * ldb + k]: the same packed layout, through 16x16 transposes.
ND_SIMD_TARGET_AVX512 void pack_b_cols(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) {
  __m512 r[16];
  for (int64_t n0 = 0; n0 < nc; n0 += kNR, dst += kc * kNR) {
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      int64_t kw = std::min<int64_t>(16, kc - k0);
      __mmask16 km = low_mask(kw);
      for (int h = 0; h < 2; ++h) {
        int64_t rows = std::min<int64_t>(16, nc - n0 - 16 * h);
        const float* src = B + (n0 + 16 * h) * ldb + k0;
        for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(km, src + i * ldb) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t kk = 0; kk < kw; ++kk) _mm512_store_ps(dst + (k0 + kk) * kNR + 16 * h, r[kk]);
      }
    }
  }
}

// op(A)[i, k] = A[k * lda + i], rows [0, mc) with mc <= kMR: one run of kMR floats per k.
ND_SIMD_TARGET_AVX512 void pack_a_band(int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst) {
  const __mmask16 m = low_mask(mc);
  for (int64_t k = 0; k < kc; ++k, A += lda) _mm512_mask_storeu_ps(dst + k * kMR, m, _mm512_maskz_loadu_ps(m, A));
}

// C[0:R, 0:16V] (columns masked by m0, m1) = alpha * op(A)[0:R, 0:kc] @ b_strip + beta * C;
// beta == 0 does not read C. op(A)[r, k] is a[r * lda + k], or a[k * lda + r] when ATrans.
template <int R, int V, bool ATrans>
ND_SIMD_TARGET_AVX512 void micro(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                                 float alpha, float beta, const float* bias, __mmask16 m0, __mmask16 m1) {
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  // The tile's rows (two cache lines each when V == 2) arrive while the k loop runs.
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * v), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b0 = _mm512_load_ps(b);
    __m512 b1 = V > 1 ? _mm512_load_ps(b + 16) : b0;
    for (int r = 0; r < R; ++r) {
      __m512 ar = _mm512_set1_ps(ATrans ? a[r] : a[r * lda]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      if (V > 1) acc[r][V - 1] = _mm512_fmadd_ps(ar, b1, acc[r][V - 1]);
    }
    a += ATrans ? lda : 1;
    b += kNR;
  }
  __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 mask[2] = {m0, m1};
  if (beta == 0 && bias != nullptr) {
    // the same fmadd a beta == 1 pass over C pre-filled with the bias would run, so the bits agree
    __m512 bv[V];
    for (int v = 0; v < V; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], bias + 16 * v);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v)
        _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], _mm512_fmadd_ps(va, acc[r][v], bv[v]));
  } else if (beta == 0) {
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], _mm512_mul_ps(va, acc[r][v]));
  } else if (beta == 1) {
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v) {
        float* p = c + r * ldc + 16 * v;
        _mm512_mask_storeu_ps(p, mask[v], _mm512_fmadd_ps(va, acc[r][v], _mm512_maskz_loadu_ps(mask[v], p)));
      }
  } else {
    __m512 vb = _mm512_set1_ps(beta);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v) {
        float* p = c + r * ldc + 16 * v;
        __m512 old = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask[v], p));
        _mm512_mask_storeu_ps(p, mask[v], _mm512_fmadd_ps(va, acc[r][v], old));
      }
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, float, float, const float*,
                        __mmask16, __mmask16);
#define ND_MICRO_ROW(R, P) {&micro<R, 1, P>, &micro<R, 2, P>}
#define ND_MICRO_ROWS(P)                                                                                    \
  {ND_MICRO_ROW(1, P), ND_MICRO_ROW(2, P), ND_MICRO_ROW(3, P),  ND_MICRO_ROW(4, P),  ND_MICRO_ROW(5, P),  \
   ND_MICRO_ROW(6, P), ND_MICRO_ROW(7, P), ND_MICRO_ROW(8, P),  ND_MICRO_ROW(9, P),  ND_MICRO_ROW(10, P), \
   ND_MICRO_ROW(11, P), ND_MICRO_ROW(12, P)}
// kMicro[A transposed][rows - 1][vectors - 1]
const MicroFn kMicro[2][kMR][2] = {ND_MICRO_ROWS(false), ND_MICRO_ROWS(true)};
#undef ND_MICRO_ROWS
#undef ND_MICRO_ROW

// The blocked product for M, N, K >= 1 and alpha != 0 (Note [Packed SGEMM]).
// bias (N floats or null) is added to every row of C with the first K block; it requires beta == 0.
ND_SIMD_TARGET_AVX512 void sgemm_packed(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K, float alpha,
                                        const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                                        float* C, int64_t ldc, const float* bias = nullptr) {
  // Balanced blocks: K = 300 runs as 2 x 150 rather than 256 + 44.
  const int64_t kc_step = ceil_div(K, ceil_div(K, kKC));
  const int64_t nc_step = round_up(ceil_div(N, ceil_div(N, kNC)), kNR);
  // (Reading B's rows in place instead of packing them ran at 0.4x: each k then touches two new
  // cache lines ldb apart, which the prefetchers do not follow.)
  float* bp = tl_pack_b.get(size_t(round_up(std::min(N, nc_step), kNR) * kc_step));
  const MicroFn(&micro_for)[kMR][2] = kMicro[a_trans];
  float* abuf = tl_pack_a.get(size_t(kMR * kc_step));
  for (int64_t jc = 0; jc < N; jc += nc_step) {
    const int64_t nc = std::min(nc_step, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;
      if (b_trans) pack_b_cols(kc, nc, B + jc * ldb + pc, ldb, bp);
      else pack_b_rows(kc, nc, B + pc * ldb + jc, ldb, bp);
      for (int64_t ir = 0; ir < M; ir += kMR) {
        const int64_t h = std::min<int64_t>(kMR, M - ir);
        const float* as = a_trans ? A + pc * lda + ir : A + ir * lda + pc;
        int64_t lda_k = lda;
        if (a_trans && (nc > kBandN || kc * lda >= kBandSpan)) {
          pack_a_band(h, kc, as, lda, abuf);
          as = abuf;
          lda_k = kMR;
        }
        float* ci = C + ir * ldc + jc;
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int64_t w = std::min<int64_t>(kNR, nc - jr);
          micro_for[h - 1][w > 16](kc, as, lda_k, bp + (jr / kNR) * kc * kNR, ci + jr, ldc, alpha, beta_k,
                                   pc == 0 && bias != nullptr ? bias + jc + jr : nullptr, low_mask(w),
                                   low_mask(w - 16));
        }
      }
    }
  }
}

// C = A @ B for a short A (M <= kShortM rows) with B read in place, no packing: with few rows to
// reuse it, packing B cost as much as the product (20 x 250 @ 250 x 1024 at one thread: 108 ->
// 64 us). Each 64-column strip runs 5 x 64 register tiles (tile64.h) over the same balanced K
// blocks as sgemm_packed, each block one FMA chain from zero added to C, so every element gets
// the packed kernel's bits and a product split across threads stays bitwise the same.
constexpr int64_t kShortM = 32;
ND_SIMD_TARGET_AVX512 void sgemm_short(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                                       int64_t ldb, float* C, int64_t ldc) {
  const int64_t kc_step = ceil_div(K, ceil_div(K, kKC));
  float* part = tl_pack_a.get(size_t(kShortM * 64));
  const int64_t full = N / 64 * 64;
  for (int64_t n0 = 0; n0 < full; n0 += 64)
    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, K - pc);
      if (pc == 0) {
        tile64::rows<false>(M, kc, A, lda, B + n0, ldb, C + n0, ldc);
        continue;
      }
      tile64::rows<false>(M, kc, A + pc, lda, B + pc * ldb + n0, ldb, part, 64);
      for (int64_t r = 0; r < M; ++r)
        for (int64_t j = 0; j < 64; j += 16) {
          float* c = C + r * ldc + n0 + j;
          _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), _mm512_loadu_ps(part + r * 64 + j)));
        }
    }
  if (full < N) sgemm_packed(false, false, M, N - full, K, 1.0f, A, lda, B + full, ldb, 0.0f, C + full, ldc);
}

enum class Backend { Auto, OpenBlas, Nd };

Backend env_backend() {
  static const Backend b = [] {
    const char* env = std::getenv("ND_SGEMM");
    if (env == nullptr || *env == '\0') return Backend::Auto;
    if (std::strcmp(env, "openblas") == 0) return Backend::OpenBlas;
    if (std::strcmp(env, "nd") == 0) return Backend::Nd;
    return Backend::Auto;  // anything else: as if unset
  }();
  return b;
}

#endif  // ND_SIMD_X86

bool use_nd(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K) {
#ifdef ND_SIMD_X86
  if (simd_level() != SimdLevel::Avx512) return false;
  Backend b = env_backend();
  if (b != Backend::Auto) return b == Backend::Nd;
  // Measured against OpenBLAS 0.3.34 (SkylakeX kernels) at one thread on Sapphire Rapids:
  //  - A @ B^T (nn.Linear's forward): OpenBLAS is slow on it below ~256 (32^3: nd 2.2x, 96^3
  //    1.3x, 64x1000x100 1.2x); only narrow C with few rows (N < 16, M < 512: 0.75-0.9x, where
  //    our 16-lane tile is mostly masked off) goes to OpenBLAS.
  //  - the other layouts: OpenBLAS's unpacked small-matrix kernels win up to 100^3 (0.8-0.9x)
  //    and on N < 16 (0.6-0.9x); above that nd is 2-25% faster (128^3 1.2x, 256x256x16 1.3-1.7x,
  //    64x1000x100 1.05x, 1024x256x256 1.06x).
  if (!a_trans && b_trans) return N >= 16 || M >= 512;
  return N >= 16 && double(M) * double(N) * double(K) > 1e6;
#else
  return false;
#endif
}

}  // namespace

const char* sgemm_backend(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K) {
  return use_nd(a_trans, b_trans, M, N, K) ? "nd" : "openblas";
}

void sgemm(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0) {
    // BLAS semantics: neither operand is read, so NaN in A or B does not reach C.
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      if (beta == 0) std::fill(c, c + N, 0.0f);
      else if (beta != 1)
        for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
    return;
  }
#ifdef ND_SIMD_X86
  if (use_nd(a_trans, b_trans, M, N, K)) {
    if (!a_trans && !b_trans && alpha == 1 && beta == 0 && M <= kShortM && N >= 64)
      return sgemm_short(M, N, K, A, lda, B, ldb, C, ldc);
    return sgemm_packed(a_trans, b_trans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
#endif
  scipy_cblas_sgemm(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)M,
                    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void sgemm_bias(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef ND_SIMD_X86
  if (K > 0 && alpha != 0 && use_nd(a_trans, b_trans, M, N, K))
    return sgemm_packed(a_trans, b_trans, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, bias);
#endif
  for (int64_t i = 0; i < M; ++i) std::memcpy(C + i * ldc, bias, sizeof(float) * N);
  sgemm(a_trans, b_trans, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc);
}

}  // namespace nd

// For tests through ctypes (no binding needed): nd::sgemm on raw pointers, and the backend it
// takes for a shape.
extern "C" __attribute__((visibility("default"))) void nd_sgemm(int a_trans, int b_trans, int64_t M, int64_t N,
                                                                int64_t K, float alpha, const float* A, int64_t lda,
                                                                const float* B, int64_t ldb, float beta, float* C,
                                                                int64_t ldc) {
  nd::sgemm(a_trans != 0, b_trans != 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

extern "C" __attribute__((visibility("default"))) const char* nd_sgemm_backend(int a_trans, int b_trans, int64_t M,
                                                                               int64_t N, int64_t K) {
  return nd::sgemm_backend(a_trans != 0, b_trans != 0, M, N, K);
}
