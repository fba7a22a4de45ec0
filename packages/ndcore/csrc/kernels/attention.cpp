// Fused scaled-dot-product attention for CPU (float32/float64): _fused_attention and its backward.
//
// Note [Fused attention]
// softmax(scale * Q K^T + mask) V is computed per (batch, block of query rows) with two GEMMs and
// one pass over the scores in between, so the (L, S) score matrix lives only in a per-thread
// scratch block and no mask tensor is built for is_causal (key j is visible to query i iff j <= i,
// the top-left alignment torch uses). The forward saves each row's log-sum-exp; the backward
// recomputes the probabilities from it block by block (flash-attention style):
//   P = exp(S - lse), dV += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
//   dQ = scale * dS K, dK += scale * dS^T Q.
// The backward runs one task per batch element so dK/dV accumulate without races.
// A query row with no visible key (all -inf) outputs zeros, as torch's CPU kernels do; its lse
// is +inf so the backward's P row is zero too.
// Q/K/V (and grad_out) may be any strided views whose last dim is contiguous: GEMMs read rows
// through the leading dimension. For 4-D inputs (B, H, L, E) the output and the gradients are
// laid out as (B, L, H, E) and returned as the (B, H, L, E) view, so the usual
// `out.transpose(1, 2).reshape(B, L, H * E)` that follows is free (torch does the same). When q,
// k and v are the column blocks of one packed projection (packed_qkv), their gradients are too.
//
// Note [Attention register tiles]
// The blocks are small (64 query rows x a few hundred keys x a head dim of 64 in GPT-sized
// models), where OpenBLAS spends much of each call packing. On AVX-512 CPUs float32 blocks run
// the products whose right operand has rows of 64-column multiples on the 5 x 64 register tiles
// of tile64.h instead: the scores against scale * K^T (and dP = dO V^T against V^T), K^T/V^T
// packed once per batch entry and thread into scratch whose columns are padded to 64 with zeros
// (the padded scores are never read); P V (forward, value width a multiple of 64) and dQ = dS K
// (backward, head dim a multiple of 64) straight from V's and K's rows. The backward's dV and
// dK, whose left operand is transposed, stay GEMMs, as does everything in float64.
#include <cblas.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "blas_threads.h"
#include "loops.h"
#include "sgemm.h"
#include "simd_dispatch.h"
#include "tile64.h"
#include "vecmath.h"

namespace nd {

namespace {

constexpr int64_t kQueryBlock = 64;

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  sgemm(ta == CblasTrans, tb == CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);  // nd's kernel where it wins
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

// Row softmax of a (rows, n) block with leading dimension ld, in place. Row r is query i0 + r;
// under causal masking only its first min(n, i0 + r + 1) entries are visible, the rest become 0.
// lse[r] receives log(sum(exp(row))), +inf for a row with nothing visible. The max and the sum
// keep kLanes partial results: a single accumulator would serialise each loop on its latency.
// The row reductions use GCC vector types: with plain arrays of partial results GCC keeps one
// scalar register per lane (a max or a float sum is not reassociated for it), with a vector type
// it emits one vmaxps/vaddps per 16 elements in the AVX-512 variant (and 4 SSE ops in baseline).
constexpr int kLanes = 16;
constexpr float kExpFloor = -87.0f;  // exp(-87) ~ 1.6e-38, just above float32's smallest normal
typedef float f32xL __attribute__((vector_size(kLanes * sizeof(float))));
ND_VM_INLINE float lane_max(const float* x, int64_t n) {
  f32xL mv;
  for (int l = 0; l < kLanes; ++l) mv[l] = -vm::kInfF;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    f32xL v;
    std::memcpy(&v, x + j, sizeof(v));
    mv = v > mv ? v : mv;
  }
  float m = -vm::kInfF;
  for (int l = 0; l < kLanes; ++l) m = mv[l] > m ? mv[l] : m;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}
ND_VM_INLINE float lane_dot(const float* a, const float* b, int64_t n) {
  f32xL sv = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    f32xL va, vb;
    std::memcpy(&va, a + j, sizeof(va));
    if (b) {
      std::memcpy(&vb, b + j, sizeof(vb));
      va *= vb;
    }
    sv += va;
  }
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += sv[l];
  for (; j < n; ++j) s += b ? a[j] * b[j] : a[j];
  return s;
}
ND_SIMD_KERNEL(SoftmaxRowsF32, (float* __restrict s, int64_t rows, int64_t n, int64_t ld, int64_t i0, bool causal,
                                float* __restrict lse), {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * ld;
    // every pass runs over the whole row (n is usually a multiple of the vector width): hidden
    // keys become -inf, whose exp is 0, instead of leaving ragged scalar tails per row
    const int64_t lim = causal ? (i0 + r + 1 < n ? i0 + r + 1 : n) : n;
    for (int64_t k = 0; k < n; ++k) row[k] = k < lim ? row[k] : -vm::kInfF;
    const float m = lane_max(row, n);
    if (m == -vm::kInfF) {
      // nothing visible, or only NaN scores (the max skips NaN): NaN spreads to the row as in
      // torch, a row with no visible key outputs zeros
      bool nan = false;
      for (int64_t k = 0; k < n; ++k) nan |= row[k] != row[k];
      for (int64_t k = 0; k < n; ++k) row[k] = nan ? vm::kNanF : 0.0f;
      lse[r] = nan ? vm::kNanF : vm::kInfF;
      continue;
    }
    // hidden keys (-inf) and anything below e^-87 become exact zeros without going through exp:
    // exp_f32 would scale them into denormals, and every vector holding one costs a microcode
    // assist (most of the exp loop's time for a causal block); what is dropped is < 1e-37 of
    // the row's largest term
    for (int64_t k = 0; k < n; ++k) {
      const float x = row[k] - m;
      const bool keep = !(x <= kExpFloor);  // NaN stays, and propagates as before
      const float e = vm::exp_f32(keep ? x : 0.0f);
      row[k] = keep ? e : 0.0f;
    }
    const float sum = lane_dot(row, nullptr, n);
    const float inv = 1.0f / sum;
    for (int64_t k = 0; k < n; ++k) row[k] *= inv;
    lse[r] = m + vm::log_f32(sum);
  }
})

// P = exp(S - lse) for the backward (same visibility rule); then dS = P * (dP - D) in `dp`.
ND_SIMD_KERNEL(SoftmaxGradRowsF32, (float* __restrict s, float* __restrict dp, int64_t rows, int64_t n, int64_t ld,
                                    int64_t i0, bool causal, const float* __restrict lse,
                                    const float* __restrict d), {
  for (int64_t r = 0; r < rows; ++r) {
    float *row = s + r * ld, *drow = dp + r * ld;
    const int64_t lim = causal ? (i0 + r + 1 < n ? i0 + r + 1 : n) : n;
    const float l = lse[r], dr = d[r];
    for (int64_t j = 0; j < n; ++j) {  // whole rows, as in the forward
      const float x = row[j] - l;  // the forward's rule for hidden keys and negligible terms
      const bool keep = j < lim && !(x <= kExpFloor);
      const float e = vm::exp_f32(keep ? x : 0.0f);
      const float p = keep ? e : 0.0f;
      row[j] = p;
      drow[j] = p * (drow[j] - dr);
    }
  }
})

// out[r] = sum_j a[r, j] * b[r, j] (the backward's rowsum(dO * O)).
ND_SIMD_KERNEL(RowDotsF32, (const float* __restrict a, int64_t lda, const float* __restrict b, int64_t ldb,
                            int64_t rows, int64_t n, float* __restrict out), {
  for (int64_t r = 0; r < rows; ++r) out[r] = lane_dot(a + r * lda, b + r * ldb, n);
})

template <typename T>
void row_dots(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t n, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    simd_run<RowDotsF32>(a, lda, b, ldb, rows, n, out);
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      T acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += a[r * lda + j] * b[r * ldb + j];
      out[r] = acc;
    }
  }
}

template <typename T>
void softmax_rows(T* s, int64_t rows, int64_t n, int64_t ld, int64_t i0, bool causal, T* lse) {
  if constexpr (std::is_same_v<T, float>) {
    simd_run<SoftmaxRowsF32>(s, rows, n, ld, i0, causal, lse);
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      T* row = s + r * ld;
      const int64_t lim = causal ? std::min(n, i0 + r + 1) : n;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < lim; ++j) m = std::max(m, row[j]);
      if (m == -std::numeric_limits<T>::infinity()) {  // as in the float32 loop
        bool nan = false;
        for (int64_t j = 0; j < lim; ++j) nan |= row[j] != row[j];
        const T fill = nan ? std::numeric_limits<T>::quiet_NaN() : T(0);
        for (int64_t j = 0; j < n; ++j) row[j] = fill;
        lse[r] = nan ? fill : std::numeric_limits<T>::infinity();
        continue;
      }
      T sum = 0;
      for (int64_t j = 0; j < lim; ++j) sum += (row[j] = std::exp(row[j] - m));
      for (int64_t j = 0; j < lim; ++j) row[j] /= sum;
      for (int64_t j = lim; j < n; ++j) row[j] = T(0);
      lse[r] = m + std::log(sum);
    }
  }
}

template <typename T>
void softmax_grad_rows(T* s, T* dp, int64_t rows, int64_t n, int64_t ld, int64_t i0, bool causal, const T* lse,
                       const T* d) {
  if constexpr (std::is_same_v<T, float>) {
    simd_run<SoftmaxGradRowsF32>(s, dp, rows, n, ld, i0, causal, lse, d);
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      T *row = s + r * ld, *drow = dp + r * ld;
      const int64_t lim = causal ? std::min(n, i0 + r + 1) : n;
      for (int64_t j = 0; j < lim; ++j) {
        row[j] = std::exp(row[j] - lse[r]);
        drow[j] = row[j] * (drow[j] - d[r]);
      }
      for (int64_t j = lim; j < n; ++j) row[j] = drow[j] = T(0);
    }
  }
}

// Geometry shared by forward and backward: flattened batch, sizes and per-batch element offsets.
struct Geo {
  Shape batch;
  int64_t nb = 1, L = 0, S = 0, E = 0, Ev = 0;
  std::vector<int64_t> qo, ko, vo, mo;  // per-batch offsets (elements)
  int64_t mask_si = 0, mask_sj = 0;     // mask strides over (L, S) after broadcasting
};

// Offsets of each flat batch index into `t`, whose leading dims have (broadcast) strides `st`.
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& st) {
  int64_t nb = numel_of(batch);
  std::vector<int64_t> off((size_t)nb, 0);
  const int64_t nd_ = (int64_t)batch.size();
  std::vector<int64_t> idx((size_t)nd_, 0);
  for (int64_t b = 0; b < nb; ++b) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd_; ++d) o += idx[(size_t)d] * st[(size_t)d];
    off[(size_t)b] = o;
    for (int64_t d = nd_ - 1; d >= 0; --d) {
      if (++idx[(size_t)d] < batch[(size_t)d]) break;
      idx[(size_t)d] = 0;
    }
  }
  return off;
}

// The last dim must be unit-stride for the GEMMs; anything else is copied once.
Tensor rows_contig(const Tensor& t) { return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous(); }

Geo geometry(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const char* op) {
  for (const Tensor* t : {&q, &k, &v})
    if (t->dim() < 2)
      throw ValueError(std::string("[") + op + "] expected query, key and value with at least 2 dims, got shapes " +
                       shape_str(q.sizes()) + ", " + shape_str(k.sizes()) + ", " + shape_str(v.sizes()));
  if (q.dtype() != k.dtype() || q.dtype() != v.dtype() || (q.dtype() != DType::Float32 && q.dtype() != DType::Float64))
    throw TypeError(std::string("[") + op + "] expected float32 or float64 query, key and value of one dtype, got " +
                    dtype_name(q.dtype()) + ", " + dtype_name(k.dtype()) + " and " + dtype_name(v.dtype()));
  Geo g;
  g.batch = Shape(q.sizes().begin(), q.sizes().end() - 2);
  Shape kb(k.sizes().begin(), k.sizes().end() - 2), vb(v.sizes().begin(), v.sizes().end() - 2);
  g.L = q.size(-2), g.E = q.size(-1), g.S = k.size(-2), g.Ev = v.size(-1);
  if (kb != g.batch || vb != g.batch || k.size(-1) != g.E || v.size(-2) != g.S)
    throw ValueError(std::string("[") + op + "] expected query (..., L, E), key (..., S, E) and value (..., S, Ev) "
                     "with the same batch dims, got " + shape_str(q.sizes()) + ", " + shape_str(k.sizes()) + " and " +
                     shape_str(v.sizes()));
  g.nb = numel_of(g.batch);
  auto lead = [](const Tensor& t) { return Shape(t.strides().begin(), t.strides().end() - 2); };
  g.qo = batch_offsets(g.batch, lead(q));
  g.ko = batch_offsets(g.batch, lead(k));
  g.vo = batch_offsets(g.batch, lead(v));
  if (mask.defined()) {
    if (mask.dtype() != q.dtype())
      throw TypeError(std::string("[") + op + "] expected attn_mask of dtype " + dtype_name(q.dtype()) + ", got " +
                      dtype_name(mask.dtype()));
    Shape full = g.batch;
    full.push_back(g.L);
    full.push_back(g.S);
    Shape ms = broadcast_strides(mask, full, op);
    g.mask_si = ms[ms.size() - 2];
    g.mask_sj = ms[ms.size() - 1];
    g.mo = batch_offsets(g.batch, Shape(ms.begin(), ms.end() - 2));
  }
  return g;
}

// An output of batch + (rows, cols); for 4-D shapes stored as (B, rows, H, cols) (Note [Fused attention]).
Tensor attention_layout(const Geo& g, int64_t rows, int64_t cols, DType dt) {
  Shape sizes = g.batch;
  sizes.push_back(rows);
  sizes.push_back(cols);
  if (sizes.size() != 4) return empty_tensor(sizes, dt);
  const int64_t B = sizes[0], H = sizes[1];
  Tensor phys = empty_tensor({B, rows, H, cols}, dt);
  return phys.view_of(sizes, {rows * H * cols, cols, H * cols, 1}, phys.offset());
}

// Element offsets of each batch entry of a tensor made by attention_layout (or any strided one).
std::vector<int64_t> offsets_of(const Geo& g, const Tensor& t) {
  return batch_offsets(g.batch, Shape(t.strides().begin(), t.strides().end() - 2));
}

// scale * Q_blk K^T (+ mask) into scr (rows x n, ld n).
template <typename T>
void scores_block(const Geo& g, int64_t b, int64_t i0, int64_t rows, int64_t n, const T* q, int64_t ldq, const T* k,
                  int64_t ldk, const T* mask, T scale, T* scr) {
  gemm(CblasNoTrans, CblasTrans, rows, n, g.E, scale, q + g.qo[(size_t)b] + i0 * ldq, ldq, k + g.ko[(size_t)b], ldk,
       T(0), scr, n);
  if (!mask) return;
  const T* mb = mask + g.mo[(size_t)b] + i0 * g.mask_si;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) scr[r * n + j] += mb[r * g.mask_si + j * g.mask_sj];
}

// ---- float32 register-tile products (Note [Attention register tiles]) ------------------------
constexpr int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }

bool tiles_isa() {
#ifdef ND_SIMD_X86
  return simd_level() == SimdLevel::Avx512;
#else
  return false;
#endif
}

// The forward's tiles need a value width that is a multiple of 64 (the P V product's columns).
bool tiles_apply(const Geo& g) { return g.Ev > 0 && g.Ev % 64 == 0 && g.E > 0 && tiles_isa(); }

#ifdef ND_SIMD_X86
// kt (E x ldkt) = scale * K^T for keys [0, n); columns [n, ldkt) zero. One 16-key gather per
// row of kt: a plain loop would store one float at a time with a stride of ldkt.
ND_SIMD_TARGET_AVX512 void pack_kt(const float* k, int64_t ldk, int64_t n, int64_t E, float scale, float* kt,
                                   int64_t ldkt) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)ldk));
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t j0 = 0; j0 < ldkt; j0 += 16) {
    const int64_t m = std::max<int64_t>(0, std::min<int64_t>(16, n - j0));
    const __mmask16 mk = (__mmask16)((1u << m) - 1);  // keys past n: zeros, nothing read
    const float* base = k + std::min(j0, n) * ldk;
    for (int64_t e = 0; e < E; ++e) {
      const __m512 col = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, base + e, 4);
      _mm512_storeu_ps(kt + e * ldkt + j0, _mm512_mul_ps(col, sc));
    }
  }
}

// scr (rows x npad, ld npad) = Q_blk (rows x E) @ kt (E x npad).
ND_SIMD_TARGET_AVX512 void scores_tiles(int64_t rows, int64_t npad, int64_t E, const float* q, int64_t ldq,
                                        const float* kt, int64_t ldkt, float* scr) {
  for (int64_t j0 = 0; j0 < npad; j0 += 64) tile64::rows<false>(rows, E, q, ldq, kt + j0, ldkt, scr + j0, npad);
}

// out (rows x Ev, ld ldo) = P (rows x n, ld ldp) @ V (n x Ev, ld ldv).
ND_SIMD_TARGET_AVX512 void pv_tiles(int64_t rows, int64_t n, int64_t Ev, const float* p, int64_t ldp, const float* v,
                                    int64_t ldv, float* out, int64_t ldo) {
  for (int64_t c = 0; c < Ev; c += 64) tile64::rows<false>(rows, n, p, ldp, v + c, ldv, out + c, ldo);
}

// The forward of one block with the register tiles; kt holds scale * K^T of the block's batch entry.
void forward_block_tiles(const Geo& g, int64_t b, int64_t i0, int64_t rows, int64_t n, const float* q, int64_t ldq,
                         const float* kt, int64_t ldkt, const float* v, int64_t ldv, const float* mask, bool causal,
                         float* scr, float* orow, int64_t ldo, float* lrow) {
  const int64_t npad = round64(n);
  scores_tiles(rows, npad, g.E, q + g.qo[(size_t)b] + i0 * ldq, ldq, kt, ldkt, scr);
  if (mask) {
    const float* mb = mask + g.mo[(size_t)b] + i0 * g.mask_si;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) scr[r * npad + j] += mb[r * g.mask_si + j * g.mask_sj];
  }
  softmax_rows<float>(scr, rows, n, npad, i0, causal, lrow);
  pv_tiles(rows, n, g.Ev, scr, npad, v + g.vo[(size_t)b], ldv, orow, ldo);
}

// dq (rows x E, ld ldq) = scale * dS (rows x n, ld lds) @ K (n x E, ld ldk); E a multiple of 64.
ND_SIMD_TARGET_AVX512 void dq_tiles(int64_t rows, int64_t n, int64_t E, const float* ds, int64_t lds, const float* k,
                                    int64_t ldk, float scale, float* dq, int64_t ldq) {
  for (int64_t c = 0; c < E; c += 64) tile64::rows<false>(rows, n, ds, lds, k + c, ldk, dq + c, ldq);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t e = 0; e < E; ++e) dq[r * ldq + e] *= scale;
}

// The backward of one block with the register tiles for the scores, dP = dO V^T and dQ (the
// two transposed-A products, dV and dK, stay GEMMs); kt/vt hold scale * K^T and V^T of the
// block's batch entry, d the rows' sum(dO * O).
struct BwdTiles {
  const float *q, *k, *kt, *vt, *mask;
  int64_t ldq, ldk, ldkt;
  bool causal;
  float scale;
};
void backward_block_tiles(const Geo& g, const BwdTiles& a, int64_t b, int64_t i0, int64_t rows, int64_t n,
                          const float* gob, int64_t ldgo, const float* lse, const float* d, float* p, float* dp,
                          float* gqb, int64_t ldgq, float* gkb, int64_t ldgk, float* gvb, int64_t ldgv) {
  const int64_t npad = round64(n);
  const float* qb = a.q + g.qo[(size_t)b] + i0 * a.ldq;
  scores_tiles(rows, npad, g.E, qb, a.ldq, a.kt, a.ldkt, p);
  if (a.mask) {
    const float* mb = a.mask + g.mo[(size_t)b] + i0 * g.mask_si;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) p[r * npad + j] += mb[r * g.mask_si + j * g.mask_sj];
  }
  scores_tiles(rows, npad, g.Ev, gob, ldgo, a.vt, a.ldkt, dp);
  softmax_grad_rows<float>(p, dp, rows, n, npad, i0, a.causal, lse, d);
  gemm(CblasTrans, CblasNoTrans, n, g.Ev, rows, 1.0f, p, npad, gob, ldgo, 1.0f, gvb, ldgv);
  dq_tiles(rows, n, g.E, dp, npad, a.k + g.ko[(size_t)b], a.ldk, a.scale, gqb, ldgq);
  gemm(CblasTrans, CblasNoTrans, n, g.E, rows, a.scale, dp, npad, qb, a.ldq, 1.0f, gkb, ldgk);
}
#endif

template <typename T>
void attention_forward(const Geo& g, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       bool causal, double scale, Tensor& out, Tensor& lse) {
  const T *qd = q.data<T>(), *kd = k.data<T>(), *vd = v.data<T>();
  const T* md = mask.defined() ? mask.data<T>() : nullptr;
  const int64_t ldq = q.stride(-2), ldk = k.stride(-2), ldv = v.stride(-2), ldo = out.stride(-2);
  const std::vector<int64_t> oo = offsets_of(g, out);
  T *od = out.data<T>(), *ld = lse.data<T>();
  const int64_t nqb = (g.L + kQueryBlock - 1) / kQueryBlock;
  SingleThreadBlas one_thread;
  // the gather in pack_kt takes 32-bit offsets
  [[maybe_unused]] const bool tiles = std::is_same_v<T, float> && tiles_apply(g) && ldk < (int64_t(1) << 26);
  [[maybe_unused]] const int64_t ldkt = round64(g.S);
  parallel_for(g.nb * nqb, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> scr, kt;
    [[maybe_unused]] int64_t kt_b = -1;  // the batch entry whose K^T is in kt (a thread's tasks are contiguous)
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nqb, i0 = (t % nqb) * kQueryBlock, rows = std::min(kQueryBlock, g.L - i0);
      // keys past the block's last query are invisible to all its rows under causal masking
      const int64_t n = causal ? std::min(g.S, i0 + rows) : g.S;
      T* orow = od + oo[(size_t)b] + i0 * ldo;
      T* lrow = ld + b * g.L + i0;
      if (n == 0) {
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < g.Ev; ++j) orow[r * ldo + j] = T(0);
          lrow[r] = std::numeric_limits<T>::infinity();
        }
        continue;
      }
#ifdef ND_SIMD_X86
      if constexpr (std::is_same_v<T, float>) {
        if (tiles) {
          if (kt_b != b) {
            kt.resize((size_t)(g.E * ldkt));
            pack_kt(kd + g.ko[(size_t)b], ldk, g.S, g.E, float(scale), kt.data(), ldkt);
            kt_b = b;
          }
          scr.resize((size_t)(rows * round64(n)));
          forward_block_tiles(g, b, i0, rows, n, qd, ldq, kt.data(), ldkt, vd, ldv, md, causal, scr.data(), orow, ldo,
                              lrow);
          continue;
        }
      }
#endif
      scr.resize((size_t)(rows * n));
      scores_block<T>(g, b, i0, rows, n, qd, ldq, kd, ldk, md, T(scale), scr.data());
      softmax_rows<T>(scr.data(), rows, n, n, i0, causal, lrow);
      gemm(CblasNoTrans, CblasNoTrans, rows, g.Ev, n, T(1), scr.data(), n, vd + g.vo[(size_t)b], ldv, T(0), orow, ldo);
    }
  });
}

template <typename T>
void attention_backward(const Geo& g, const Tensor& go, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& mask, const Tensor& out, const Tensor& lse, bool causal, double scale, Tensor& gq,
                        Tensor& gk, Tensor& gv) {
  const T *qd = q.data<T>(), *kd = k.data<T>(), *vd = v.data<T>(), *gd = go.data<T>(), *od = out.data<T>();
  const T* md = mask.defined() ? mask.data<T>() : nullptr;
  const T* ld = lse.data<T>();
  const int64_t ldq = q.stride(-2), ldk = k.stride(-2), ldv = v.stride(-2), ldgo = go.stride(-2), ldo = out.stride(-2);
  const int64_t ldgq = gq.stride(-2), ldgk = gk.stride(-2), ldgv = gv.stride(-2);
  const std::vector<int64_t> goo = offsets_of(g, go), oo = offsets_of(g, out), gqo = offsets_of(g, gq),
                             gko = offsets_of(g, gk), gvo = offsets_of(g, gv);
  T *gqd = gq.data<T>(), *gkd = gk.data<T>(), *gvd = gv.data<T>();
  SingleThreadBlas one_thread;
  // register tiles (Note [Attention register tiles]) for a head dim that is a multiple of 64
  [[maybe_unused]] const bool tiles = std::is_same_v<T, float> && g.E % 64 == 0 && g.E > 0 && g.Ev > 0 &&
                                      tiles_isa() && ldk < (int64_t(1) << 26) && ldv < (int64_t(1) << 26);
  [[maybe_unused]] const int64_t ldkt = round64(g.S);
  parallel_for(g.nb, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> p, dp, d, kt, vt;
    for (int64_t b = b0; b < b1; ++b) {
      T *gkb = gkd + gko[(size_t)b], *gvb = gvd + gvo[(size_t)b];
      for (int64_t j = 0; j < g.S; ++j) {
        std::fill(gkb + j * ldgk, gkb + j * ldgk + g.E, T(0));
        std::fill(gvb + j * ldgv, gvb + j * ldgv + g.Ev, T(0));
      }
#ifdef ND_SIMD_X86
      if constexpr (std::is_same_v<T, float>) {
        if (tiles) {
          kt.resize((size_t)(g.E * ldkt));
          vt.resize((size_t)(g.Ev * ldkt));
          pack_kt(kd + g.ko[(size_t)b], ldk, g.S, g.E, float(scale), kt.data(), ldkt);
          pack_kt(vd + g.vo[(size_t)b], ldv, g.S, g.Ev, 1.0f, vt.data(), ldkt);
        }
      }
#endif
      for (int64_t i0 = 0; i0 < g.L; i0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, g.L - i0);
        const int64_t n = causal ? std::min(g.S, i0 + rows) : g.S;
        T* gqb = gqd + gqo[(size_t)b] + i0 * ldgq;
        if (n == 0) {
          for (int64_t r = 0; r < rows; ++r) std::fill(gqb + r * ldgq, gqb + r * ldgq + g.E, T(0));
          continue;
        }
        const T* gob = gd + goo[(size_t)b] + i0 * ldgo;
        const T* ob = od + oo[(size_t)b] + i0 * ldo;
#ifdef ND_SIMD_X86
        if constexpr (std::is_same_v<T, float>) {
          if (tiles) {
            p.resize((size_t)(rows * round64(n)));
            dp.resize((size_t)(rows * round64(n)));
            d.resize((size_t)rows);
            row_dots<T>(gob, ldgo, ob, ldo, rows, g.Ev, d.data());
            const BwdTiles ta{qd, kd, kt.data(), vt.data(), md, ldq, ldk, ldkt, causal, float(scale)};
            backward_block_tiles(g, ta, b, i0, rows, n, gob, ldgo, ld + b * g.L + i0, d.data(), p.data(), dp.data(),
                                 gqb, ldgq, gkb, ldgk, gvb, ldgv);
            continue;
          }
        }
#endif
        p.resize((size_t)(rows * n));
        dp.resize((size_t)(rows * n));
        d.resize((size_t)rows);
        row_dots<T>(gob, ldgo, ob, ldo, rows, g.Ev, d.data());
        scores_block<T>(g, b, i0, rows, n, qd, ldq, kd, ldk, md, T(scale), p.data());
        gemm(CblasNoTrans, CblasTrans, rows, n, g.Ev, T(1), gob, ldgo, vd + g.vo[(size_t)b], ldv, T(0), dp.data(), n);
        softmax_grad_rows<T>(p.data(), dp.data(), rows, n, n, i0, causal, ld + b * g.L + i0, d.data());
        gemm(CblasTrans, CblasNoTrans, n, g.Ev, rows, T(1), p.data(), n, gob, ldgo, T(1), gvb, ldgv);
        gemm(CblasNoTrans, CblasNoTrans, rows, g.E, n, T(scale), dp.data(), n, kd + g.ko[(size_t)b], ldk, T(0), gqb,
             ldgq);
        gemm(CblasTrans, CblasNoTrans, n, g.E, rows, T(scale), dp.data(), n, qd + g.qo[(size_t)b] + i0 * ldq, ldq, T(1),
             gkb, ldgk);
      }
    }
  });
}

// Whether q, k and v are the three column blocks of one packed (B, L, 3, H, E) tensor: the views
// `qkv.split(H * E, -1)` -> `.reshape(B, L, H, E).transpose(1, 2)` of GPT-style attention.
bool packed_qkv(const Tensor& q, const Tensor& k, const Tensor& v) {
  if (q.dim() != 4 || k.sizes() != q.sizes() || v.sizes() != q.sizes() || k.strides() != q.strides() ||
      v.strides() != q.strides() || &k.storage() != &q.storage() || &v.storage() != &q.storage())
    return false;
  const int64_t H = q.size(1), L = q.size(2), E = q.size(3), D = H * E;
  const Shape want{L * 3 * D, E, 3 * D, 1};
  return q.strides() == want && k.offset() == q.offset() + D && v.offset() == q.offset() + 2 * D;
}

}  // namespace

void k_fused_attention(Call& c) {
  const char* op = "_fused_attention";
  Tensor q = rows_contig(c.inputs[0]), k = rows_contig(c.inputs[1]), v = rows_contig(c.inputs[2]);
  const Tensor& mask = c.inputs[3];
  const bool causal = c.attrs[0].b;
  const double scale = c.attrs[1].to_double();
  Geo g = geometry(q, k, v, mask, op);
  Tensor out = attention_layout(g, g.L, g.Ev, q.dtype());
  Shape ls = g.batch;
  ls.push_back(g.L);
  Tensor lse = empty_tensor(ls, q.dtype());
  if (g.nb && g.L && g.Ev && g.E == 0) {  // empty head dim: every score is 0 (+ mask); rare, keep it simple
    throw ValueError(std::string("[") + op + "] expected a non-empty head dim, got query " + shape_str(q.sizes()));
  }
  if (g.nb && g.L) {
    if (q.dtype() == DType::Float32) attention_forward<float>(g, q, k, v, mask, causal, scale, out, lse);
    else attention_forward<double>(g, q, k, v, mask, causal, scale, out, lse);
  }
  set_outputs(c, {out, lse});
}

void k_fused_attention_backward(Call& c) {
  const char* op = "_fused_attention_backward";
  Tensor go = rows_contig(c.inputs[0]), q = rows_contig(c.inputs[1]), k = rows_contig(c.inputs[2]),
         v = rows_contig(c.inputs[3]);
  const Tensor& mask = c.inputs[4];
  Tensor out = rows_contig(c.inputs[5]), lse = c.inputs[6].contiguous();
  const bool causal = c.attrs[0].b;
  const double scale = c.attrs[1].to_double();
  Geo g = geometry(q, k, v, mask, op);
  Shape os = g.batch;
  os.push_back(g.L);
  os.push_back(g.Ev);
  if (go.sizes() != os || out.sizes() != os || go.dtype() != q.dtype() || out.dtype() != q.dtype() ||
      lse.numel() != g.nb * g.L || lse.dtype() != q.dtype())
    throw ValueError(std::string("[") + op + "] expected grad_out and output of shape " + shape_str(os) +
                     " and logsumexp with " + std::to_string(g.nb * g.L) + " elements, all of dtype " +
                     dtype_name(q.dtype()) + "; got " + shape_str(go.sizes()) + ", " + shape_str(out.sizes()) + ", " +
                     shape_str(lse.sizes()));
  Tensor gq, gk, gv;
  if (packed_qkv(q, k, v)) {
    // the gradients are the same column blocks of one (B, L, 3, H, E) buffer, so the split's
    // backward (ndnn's _SplitLast) hands that buffer on instead of concatenating three
    const int64_t B = q.size(0), H = q.size(1), L = q.size(2), E = q.size(3);
    const Tensor phys = empty_tensor({B, L, 3, H, E}, q.dtype());
    gq = phys.view_of(q.sizes(), q.strides(), phys.offset());
    gk = phys.view_of(q.sizes(), q.strides(), phys.offset() + H * E);
    gv = phys.view_of(q.sizes(), q.strides(), phys.offset() + 2 * H * E);
  } else {
    gq = attention_layout(g, g.L, g.E, q.dtype());
    gk = attention_layout(g, g.S, g.E, q.dtype());
    gv = attention_layout(g, g.S, g.Ev, q.dtype());
  }
  if (g.nb) {
    if (q.dtype() == DType::Float32) attention_backward<float>(g, go, q, k, v, mask, out, lse, causal, scale, gq, gk, gv);
    else attention_backward<double>(g, go, q, k, v, mask, out, lse, causal, scale, gq, gk, gv);
  }
  set_outputs(c, {gq, gk, gv});
}

}  // namespace nd
