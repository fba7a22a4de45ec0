// Softmax, log-softmax and normalization kernels (layer, batch, group norm), forward and backward.
//
// Note [Row layouts for softmax and norms]
// Inputs are made contiguous first (one copy for a strided input), so the reduced span is either
// one contiguous run per row (softmax over the last dim, layer norm, group norm) or `n` runs of
// length `inner` (softmax over a middle dim, batch norm's N x C x S), which are processed as
// column blocks so the inner loops still stride by one and vectorise. 16-bit floats compute in
// float. Every loop is parallel over rows (or channels / column blocks).
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "layer_norm_f32.h"
#include "loops.h"
#include "simd_dispatch.h"
#include "unary_ops.h"

#if defined(__GNUC__)
#define ND_INLINE inline __attribute__((always_inline))
#else
#define ND_INLINE inline
#endif

namespace nd {
namespace {

template <typename T> using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct RowLayout {
  int64_t outer = 1, n = 1, inner = 1;
};
RowLayout row_layout(const Shape& s, int64_t dim) {
  RowLayout l;
  for (int64_t d = 0; d < (int64_t)s.size(); ++d) {
    if (d < dim) l.outer *= s[d];
    else if (d == dim) l.n = s[d];
    else l.inner *= s[d];
  }
  return l;
}

void require_float(const Tensor& t, const char* op, const char* what) {
  if (!is_floating(t.dtype()))
    throw TypeError(std::string("[") + op + "] expected a floating point " + what + ", got " + dtype_name(t.dtype()));
}

// Horizontal max / sum of a contiguous run with independent lanes so the compiler vectorises.
template <typename C> ND_INLINE C run_max(const C* x, int64_t n) {
  constexpr int L = 16;
  C lanes[L];
  for (int k = 0; k < L; ++k) lanes[k] = -std::numeric_limits<C>::infinity();
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) lanes[k] = x[i + k] > lanes[k] ? x[i + k] : lanes[k];
  C m = -std::numeric_limits<C>::infinity();
  for (int k = 0; k < L; ++k) m = lanes[k] > m ? lanes[k] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
template <typename C> ND_INLINE C run_sum(const C* x, int64_t n) {
  constexpr int L = 16;
  C lanes[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) lanes[k] += x[i + k];
  C s = 0;
  for (int k = 0; k < L; ++k) s += lanes[k];
  for (; i < n; ++i) s += x[i];
  return s;
}

// Softmax / log-softmax of one contiguous row (already in the compute type). Each pass is a
// plain loop (max, exp into y, sum of y, rescale) so every one of them vectorises fully.
template <typename C, bool Log> ND_INLINE void softmax_row(const C* x, C* y, int64_t n) {
  const C m = run_max(x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = ufn::exp_any<C>(x[i] - m);
  const C s = run_sum(y, n);
  if constexpr (Log) {
    const C shift = m + std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - shift;
  } else {
    const C inv = C(1) / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// Rows of `n` runs of length `inner`: max, exp-sum and normalise per column, a block at a time.
template <typename C, bool Log> ND_INLINE void softmax_cols(const C* x, C* y, int64_t n, int64_t inner, int64_t j0, int64_t j1, C* m, C* s) {
  const int64_t w = j1 - j0;
  for (int64_t j = 0; j < w; ++j) {
    m[j] = -std::numeric_limits<C>::infinity();
    s[j] = 0;
  }
  for (int64_t i = 0; i < n; ++i) {
    const C* xi = x + i * inner + j0;
    for (int64_t j = 0; j < w; ++j) m[j] = xi[j] > m[j] ? xi[j] : m[j];
  }
  for (int64_t i = 0; i < n; ++i) {
    const C* xi = x + i * inner + j0;
    C* yi = y + i * inner + j0;
    for (int64_t j = 0; j < w; ++j) {
      C e = ufn::exp_any<C>(xi[j] - m[j]);
      if constexpr (!Log) yi[j] = e;
      s[j] += e;
    }
  }
  for (int64_t j = 0; j < w; ++j) s[j] = Log ? m[j] + std::log(s[j]) : C(1) / s[j];
  for (int64_t i = 0; i < n; ++i) {
    const C* xi = x + i * inner + j0;
    C* yi = y + i * inner + j0;
    for (int64_t j = 0; j < w; ++j) yi[j] = Log ? xi[j] - s[j] : yi[j] * s[j];
  }
}

// grad_input of softmax: y * (g - sum(g * y)); of log-softmax: g - exp(y) * sum(g).
template <typename C, bool Log> ND_INLINE void softmax_bwd_row(const C* g, const C* y, C* out, int64_t n) {
  C s;
  if constexpr (Log) {
    s = run_sum(g, n);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] * y[i];
    s = run_sum(out, n);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = Log ? g[i] - ufn::exp_any<C>(y[i]) * s : y[i] * (g[i] - s);
}
template <typename C, bool Log> ND_INLINE void softmax_bwd_cols(const C* g, const C* y, C* out, int64_t n, int64_t inner, int64_t j0,
                                                      int64_t j1, C* s) {
  if (inner == 1) {
    softmax_bwd_row<C, Log>(g, y, out, n);
    return;
  }
  const int64_t w = j1 - j0;
  for (int64_t j = 0; j < w; ++j) s[j] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const C* gi = g + i * inner + j0;
    const C* yi = y + i * inner + j0;
    for (int64_t j = 0; j < w; ++j) s[j] += Log ? gi[j] : gi[j] * yi[j];
  }
  for (int64_t i = 0; i < n; ++i) {
    const C* gi = g + i * inner + j0;
    const C* yi = y + i * inner + j0;
    C* oi = out + i * inner + j0;
    for (int64_t j = 0; j < w; ++j) oi[j] = Log ? gi[j] - ufn::exp_any<C>(yi[j]) * s[j] : yi[j] * (gi[j] - s[j]);
  }
}

constexpr int64_t kColBlock = 256;

// Note [ISA variants of the softmax loops]
// The library is built for baseline x86-64 (SSE2), where the float32 exp polynomial runs 3-4x
// slower than with AVX2/AVX-512. The float32 softmax loops are therefore compiled three times
// (baseline, AVX2+FMA, AVX-512) and picked once at run time by simd_level() (see Note [ISA
// variants] in simd_dispatch.h); the AVX-512 rows are hand-vectorised (softmax_rows_f32_x16).
#define ND_SOFTMAX_F32_ROWS(ATTR, SUFFIX)                                                                   \
  ATTR void softmax_rows_f32##SUFFIX(bool log, const float* x, float* y, int64_t rows, int64_t n) {        \
    for (int64_t r = 0; r < rows; ++r)                                                                     \
      log ? softmax_row<float, true>(x + r * n, y + r * n, n) : softmax_row<float, false>(x + r * n, y + r * n, n); \
  }
#define ND_SOFTMAX_F32_COLS_BWD(ATTR, SUFFIX)                                                              \
  ATTR void softmax_cols_f32##SUFFIX(bool log, const float* x, float* y, int64_t n, int64_t inner, int64_t j0, \
                                     int64_t j1, float* m, float* s) {                                      \
    log ? softmax_cols<float, true>(x, y, n, inner, j0, j1, m, s) : softmax_cols<float, false>(x, y, n, inner, j0, j1, m, s); \
  }                                                                                                        \
  ATTR void softmax_bwd_f32##SUFFIX(bool log, const float* g, const float* y, float* out, int64_t n, int64_t inner, \
                                    int64_t j0, int64_t j1, float* s) {                                     \
    log ? softmax_bwd_cols<float, true>(g, y, out, n, inner, j0, j1, s)                                     \
        : softmax_bwd_cols<float, false>(g, y, out, n, inner, j0, j1, s);                                   \
  }

#if defined(__GNUC__) && defined(__x86_64__)
ND_SOFTMAX_F32_COLS_BWD(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), _avx512)
ND_SOFTMAX_F32_ROWS(__attribute__((target("avx2,fma"))), _avx2)
ND_SOFTMAX_F32_COLS_BWD(__attribute__((target("avx2,fma"))), _avx2)
#endif
ND_SOFTMAX_F32_ROWS(, _base)
ND_SOFTMAX_F32_COLS_BWD(, _base)

#ifdef ND_VM_HAVE_X16
// float32 softmax rows on whole 16-lane vectors (the AVX-512 variant): the max, then exp_x16 of
// x - max with the sum accumulated in the same pass (log-softmax stores nothing there), then the
// rescale or shift, against four passes with the auto-vectorised scalar exp. A NaN is skipped by
// the max as in run_max and reaches the whole row through the sum.
ND_VM_X16 __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
// Horizontal max (NaN lanes lose, as in run_max) and sum through memory: GCC 12 reports the
// _mm512_reduce_* intrinsics' internal undefined vectors under -Wmaybe-uninitialized.
ND_VM_X16 float lanes_max(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float m = t[0];
  for (int k = 1; k < 16; ++k) m = t[k] > m ? t[k] : m;
  return m;
}
ND_VM_X16 float lanes_sum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0.0f;
  for (int k = 0; k < 16; ++k) s += t[k];
  return s;
}

template <bool Log>
ND_VM_X16 void softmax_row_x16(const float* x, float* y, int64_t n) {
  __m512 m0 = vm::f16(-std::numeric_limits<float>::infinity()), m1 = m0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_maskz_max_ps(vm::kAll16, m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_maskz_max_ps(vm::kAll16, m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    m0 = _mm512_mask_max_ps(m0, k, m0, _mm512_maskz_loadu_ps(k, x + i));
  }
  const float m = lanes_max(_mm512_maskz_max_ps(vm::kAll16, m0, m1));
  const __m512 mv = vm::f16(m);
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  for (i = 0; i + 32 <= n; i += 32) {
    const __m512 e0 = vm::exp_x16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
    const __m512 e1 = vm::exp_x16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mv));
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
    if constexpr (!Log) {
      _mm512_storeu_ps(y + i, e0);
      _mm512_storeu_ps(y + i + 16, e1);
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(k, vm::exp_x16(_mm512_sub_ps(_mm512_mask_loadu_ps(mv, k, x + i), mv)));
    s0 = _mm512_add_ps(s0, e);
    if constexpr (!Log) _mm512_mask_storeu_ps(y + i, k, e);
  }
  const float s = lanes_sum(_mm512_add_ps(s0, s1));
  if constexpr (Log) {
    const __m512 shift = vm::f16(m + std::log(s));
    for (i = 0; i < n; i += 16) {
      const __mmask16 k = tail_mask(n - i);
      _mm512_mask_storeu_ps(y + i, k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), shift));
    }
  } else {
    const __m512 inv = vm::f16(1.0f / s);
    for (i = 0; i < n; i += 16) {
      const __mmask16 k = tail_mask(n - i);
      _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), inv));
    }
  }
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))) void softmax_rows_f32_x16(
    bool log, const float* x, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    log ? softmax_row_x16<true>(x + r * n, y + r * n, n) : softmax_row_x16<false>(x + r * n, y + r * n, n);
}
#endif

struct SoftmaxF32 {
  void (*rows)(bool, const float*, float*, int64_t, int64_t);
  void (*cols)(bool, const float*, float*, int64_t, int64_t, int64_t, int64_t, float*, float*);
  void (*bwd)(bool, const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, float*);
};


const SoftmaxF32& softmax_f32() {
  static const SoftmaxF32 fns = [] {
#if defined(__GNUC__) && defined(__x86_64__)
    // the level shared by every kernel's variants, ND_SIMD included (simd_dispatch.h)
    if (simd_level() == SimdLevel::Avx512)
      return SoftmaxF32{softmax_rows_f32_x16, softmax_cols_f32_avx512, softmax_bwd_f32_avx512};
    if (simd_level() == SimdLevel::Avx2)
      return SoftmaxF32{softmax_rows_f32_avx2, softmax_cols_f32_avx2, softmax_bwd_f32_avx2};
#endif
    return SoftmaxF32{softmax_rows_f32_base, softmax_cols_f32_base, softmax_bwd_f32_base};
  }();
  return fns;
}

// Runs fn(src_row_or_block, dst, ...) over a contiguous tensor's rows in the compute type,
// converting 16-bit storage through per-thread buffers.
template <bool Log> void softmax_forward(const Tensor& x, const Tensor& y, const RowLayout& l) {
  const char* op = Log ? "_log_softmax" : "_softmax";
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    constexpr bool direct = std::is_same_v<T, C>;
    const T* xd = x.data<T>();
    const int64_t row = l.n * l.inner;
    auto store_row = [&](const C* src, int64_t o, int64_t count) {  // into y, whose dtype may be float (half_to_float)
      if (y.dtype() == DType::Float32) {
        float* yd = y.data<float>() + o;
        for (int64_t k = 0; k < count; ++k) yd[k] = (float)src[k];
      } else {
        T* yd = y.data<T>() + o;
        for (int64_t k = 0; k < count; ++k) yd[k] = T(src[k]);
      }
    };
    const bool in_place_out = direct && y.dtype() == x.dtype();
    if (l.inner == 1) {
      parallel_for(l.outer, std::max<int64_t>(1, kGrainExpensive / std::max<int64_t>(l.n, 1)), [&](int64_t r0, int64_t r1) {
        std::vector<C> xb(direct ? 0 : l.n), yb(in_place_out ? 0 : l.n);
        for (int64_t r = r0; r < r1; ++r) {
          const C* xr;
          if constexpr (direct) {
            xr = reinterpret_cast<const C*>(xd + r * l.n);
          } else {
            for (int64_t k = 0; k < l.n; ++k) xb[k] = C(xd[r * l.n + k]);
            xr = xb.data();
          }
          if constexpr (std::is_same_v<T, float>) {
            if (in_place_out) {  // rows r0..r1 in one call of the ISA variant
              softmax_f32().rows(Log, xr, y.data<float>() + r * l.n, r1 - r, l.n);
              break;
            }
          }
          if (in_place_out) {
            softmax_row<C, Log>(xr, reinterpret_cast<C*>(y.data<T>() + r * l.n), l.n);
          } else {
            softmax_row<C, Log>(xr, yb.data(), l.n);
            store_row(yb.data(), r * l.n, l.n);
          }
        }
      });
      return;
    }
    const int64_t blocks = (l.inner + kColBlock - 1) / kColBlock;
    parallel_for(l.outer * blocks, std::max<int64_t>(1, kGrainExpensive / std::max<int64_t>(l.n * kColBlock, 1)),
                 [&](int64_t t0, int64_t t1) {
      std::vector<C> m(kColBlock), s(kColBlock), xb(direct ? 0 : row), yb(in_place_out ? 0 : row);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = t / blocks, j0 = (t % blocks) * kColBlock, j1 = std::min(l.inner, j0 + kColBlock);
        const C* xo;
        if constexpr (direct) {
          xo = reinterpret_cast<const C*>(xd + o * row);
        } else {
          for (int64_t i = 0; i < l.n; ++i)
            for (int64_t j = j0; j < j1; ++j) xb[i * l.inner + j] = C(xd[o * row + i * l.inner + j]);
          xo = xb.data();
        }
        if constexpr (std::is_same_v<T, float>) {
          if (in_place_out) {
            softmax_f32().cols(Log, xo, y.data<float>() + o * row, l.n, l.inner, j0, j1, m.data(), s.data());
            continue;
          }
        }
        if (in_place_out) {
          softmax_cols<C, Log>(xo, reinterpret_cast<C*>(y.data<T>() + o * row), l.n, l.inner, j0, j1, m.data(), s.data());
        } else {
          softmax_cols<C, Log>(xo, yb.data(), l.n, l.inner, j0, j1, m.data(), s.data());
          for (int64_t i = 0; i < l.n; ++i) store_row(yb.data() + i * l.inner + j0, o * row + i * l.inner + j0, j1 - j0);
        }
      }
    });
  });
}

template <bool Log> void k_softmax_impl(Call& c) {
  const char* op = Log ? "_log_softmax" : "_softmax";
  const Tensor& self = c.inputs[0];
  require_float(self, op, "input");
  const int64_t dim = wrap_dim(c.attrs[0].i, std::max<int64_t>(self.dim(), 1), op);
  const bool half_to_float = c.attrs[1].b;
  if (half_to_float && self.dtype() != DType::Float16 && self.dtype() != DType::BFloat16)
    throw ValueError(std::string("[") + op + "] half_to_float expects a float16 or bfloat16 input, got " + dtype_name(self.dtype()));
  Tensor x = self.contiguous();
  Tensor y = empty_tensor(x.sizes(), half_to_float ? DType::Float32 : x.dtype());
  if (x.numel() > 0) softmax_forward<Log>(x, y, self.dim() ? row_layout(x.sizes(), dim) : RowLayout{});
  set_outputs(c, {y});
}

template <bool Log> void k_softmax_backward_impl(Call& c) {
  const char* op = Log ? "_log_softmax_backward_data" : "_softmax_backward_data";
  const Tensor &go = c.inputs[0], &out = c.inputs[1];
  require_float(go, op, "grad_output");
  if (go.sizes() != out.sizes())
    throw ValueError(std::string("[") + op + "] grad_output shape " + shape_str(go.sizes()) + " does not match output shape " +
                     shape_str(out.sizes()));
  const int64_t dim = wrap_dim(c.attrs[0].i, std::max<int64_t>(go.dim(), 1), op);
  const DType in_dt = c.attrs[1].is_none() ? go.dtype() : c.attrs[1].to_dtype();
  Tensor g = go.contiguous(), y = cast_to(out, go.dtype()).contiguous();
  Tensor r = empty_tensor(g.sizes(), g.dtype());
  const RowLayout l = go.dim() ? row_layout(g.sizes(), dim) : RowLayout{};
  if (g.numel() > 0) {
    ND_DISPATCH_FLOAT(g.dtype(), op, [&] {
      using T = scalar_t;
      using C = acc_t<T>;
      constexpr bool direct = std::is_same_v<T, C>;
      const int64_t row = l.n * l.inner;
      const int64_t inner = l.inner == 1 ? 1 : l.inner;
      const int64_t blocks = inner == 1 ? 1 : (inner + kColBlock - 1) / kColBlock;
      parallel_for(l.outer * blocks, std::max<int64_t>(1, kGrainExpensive / std::max<int64_t>(l.n * std::min(inner, kColBlock), 1)),
                   [&](int64_t t0, int64_t t1) {
        std::vector<C> s(kColBlock), gb(direct ? 0 : row), yb(direct ? 0 : row), ob(direct ? 0 : row);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t o = t / blocks, j0 = (t % blocks) * kColBlock, j1 = std::min(inner, j0 + kColBlock);
          if constexpr (std::is_same_v<T, float>) {
            softmax_f32().bwd(Log, g.data<T>() + o * row, y.data<T>() + o * row, r.data<T>() + o * row, l.n, inner, j0, j1, s.data());
          } else if constexpr (direct) {
            softmax_bwd_cols<C, Log>(g.data<T>() + o * row, y.data<T>() + o * row, r.data<T>() + o * row, l.n, inner, j0, j1,
                                     s.data());
          } else {
            const T *gs = g.data<T>() + o * row, *ys = y.data<T>() + o * row;
            for (int64_t k = 0; k < row; ++k) {
              gb[k] = C(gs[k]);
              yb[k] = C(ys[k]);
            }
            softmax_bwd_cols<C, Log>(gb.data(), yb.data(), ob.data(), l.n, inner, j0, j1, s.data());
            T* rs = r.data<T>() + o * row;
            for (int64_t i = 0; i < l.n; ++i)
              for (int64_t j = j0; j < j1; ++j) rs[i * inner + j] = T(ob[i * inner + j]);
          }
        }
      });
    });
  }
  set_outputs(c, {cast_to(r, in_dt)});
}

// ---- shared pieces of the norms -----------------------------------------------------------------
// Optional per-feature parameter (weight/bias) as a contiguous tensor in the compute type, or empty.
template <typename C> std::vector<C> param_vec(const Tensor& t, int64_t n, const char* op, const char* what) {
  if (!t.defined()) return {};
  if (t.numel() != n)
    throw ValueError(std::string("[") + op + "] expected " + what + " with " + std::to_string(n) + " elements, got shape " +
                     shape_str(t.sizes()));
  Tensor f = cast_to(t, std::is_same_v<C, double> ? DType::Float64 : DType::Float32).contiguous();
  const C* p = f.data<C>();
  return std::vector<C>(p, p + n);
}

bool mask_at(const Value& v, size_t i) { return v.list.empty() || (i < v.list.size() && v.list[i] != 0); }

// Mean and 1/sqrt(var + eps) (biased variance) of a contiguous run, two passes in C.
template <typename C, typename T> void moments(const T* x, int64_t n, double eps, C& mean, C& rstd) {
  constexpr int L = 8;
  C lanes[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) lanes[k] += C(x[i + k]);
  C s = 0;
  for (int k = 0; k < L; ++k) s += lanes[k];
  for (; i < n; ++i) s += C(x[i]);
  mean = n ? s / C(n) : C(0);
  C q[L] = {};
  for (i = 0; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) {
      C d = C(x[i + k]) - mean;
      q[k] += d * d;
    }
  C v = 0;
  for (int k = 0; k < L; ++k) v += q[k];
  for (; i < n; ++i) {
    C d = C(x[i]) - mean;
    v += d * d;
  }
  rstd = C(1) / std::sqrt(std::max(v / C(std::max<int64_t>(n, 1)), C(0)) + C(eps));
}

// Adds per-chunk partial column sums into `total` (under a lock: a handful of chunks).
template <typename C> struct ColumnSums {
  std::vector<C> total;
  std::mutex mu;
  explicit ColumnSums(int64_t n) : total(n, C(0)) {}
  void add(const std::vector<C>& part) {
    std::lock_guard<std::mutex> g(mu);
    for (size_t k = 0; k < part.size(); ++k) total[k] += part[k];
  }
};

template <typename C> Tensor vec_tensor(const std::vector<C>& v, const Shape& shape, DType dt) {
  Tensor t = empty_tensor(shape, std::is_same_v<C, double> ? DType::Float64 : DType::Float32);
  std::copy(v.begin(), v.end(), t.data<C>());
  return cast_to(t, dt);
}

}  // namespace

void k__softmax(Call& c) { k_softmax_impl<false>(c); }
void k__log_softmax(Call& c) { k_softmax_impl<true>(c); }
void k__softmax_backward_data(Call& c) { k_softmax_backward_impl<false>(c); }
void k__log_softmax_backward_data(Call& c) { k_softmax_backward_impl<true>(c); }

// ---- layer norm ---------------------------------------------------------------------------------
namespace {
int64_t layer_norm_rows(const Tensor& x, const Shape& ns, const char* op) {
  const int64_t k = (int64_t)ns.size();
  bool ok = k >= 1 && k <= x.dim();
  for (int64_t i = 0; ok && i < k; ++i) ok = x.sizes()[x.dim() - k + i] == ns[i];
  if (!ok) {
    std::string dims;
    for (auto v : ns) dims += ", " + std::to_string(v);
    throw ValueError(std::string("[") + op + "] given normalized_shape=" + shape_str(ns) + ", expected input with shape (*" + dims +
                     "), but got input of size " + shape_str(x.sizes()));
  }
  int64_t m = 1;
  for (int64_t d = 0; d < x.dim() - k; ++d) m *= x.sizes()[d];
  return m;
}
Shape stats_shape(const Tensor& x, int64_t k) {
  Shape s(x.sizes().begin(), x.sizes().end() - k);
  for (int64_t i = 0; i < k; ++i) s.push_back(1);
  return s;
}
}  // namespace

void k_native_layer_norm(Call& c) {
  const char* op = "native_layer_norm";
  const Tensor& input = c.inputs[0];
  require_float(input, op, "input");
  const Shape ns = c.attrs[0].list;
  const double eps = c.attrs[1].to_double();
  const int64_t M = layer_norm_rows(input, ns, op), N = numel_of(ns);
  Tensor x = input.contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype());
  Tensor mean = empty_tensor(stats_shape(x, (int64_t)ns.size()), x.dtype()), rstd = empty_tensor(mean.sizes(), x.dtype());
  if (x.dtype() == DType::Float32 && N > 0) {
    std::vector<float> w = param_vec<float>(c.inputs[1], N, op, "weight"), b = param_vec<float>(c.inputs[2], N, op, "bias");
    if (w.empty()) w.assign(N, 1.0f);
    if (b.empty()) b.assign(N, 0.0f);
    parallel_for(M, std::max<int64_t>(1, kGrainCheap / 4 / N), [&](int64_t r0, int64_t r1) {
      layer_norm_rows_f32(x.data<float>() + r0 * N, w.data(), b.data(), out.data<float>() + r0 * N,
                          mean.data<float>() + r0, rstd.data<float>() + r0, r1 - r0, N, float(eps));
    });
    set_outputs(c, {out, mean, rstd});
    return;
  }
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(c.inputs[1], N, op, "weight"), b = param_vec<C>(c.inputs[2], N, op, "bias");
    const T* xd = x.data<T>();
    T *od = out.data<T>(), *md = mean.data<T>(), *rd = rstd.data<T>();
    parallel_for(M, std::max<int64_t>(1, kGrainCheap / 4 / std::max<int64_t>(N, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xd + r * N;
        T* orow = od + r * N;
        C mu, rs;
        moments<C>(xr, N, eps, mu, rs);
        md[r] = T(mu);
        rd[r] = T(rs);
        const C* wp = w.empty() ? nullptr : w.data();
        const C* bp = b.empty() ? nullptr : b.data();
        if (wp && bp) {
          for (int64_t j = 0; j < N; ++j) orow[j] = T((C(xr[j]) - mu) * rs * wp[j] + bp[j]);
        } else {
          for (int64_t j = 0; j < N; ++j) {
            C v = (C(xr[j]) - mu) * rs;
            if (wp) v *= wp[j];
            if (bp) v += bp[j];
            orow[j] = T(v);
          }
        }
      }
    });
  });
  set_outputs(c, {out, mean, rstd});
}

void k_native_layer_norm_backward(Call& c) {
  const char* op = "native_layer_norm_backward";
  const Tensor &go = c.inputs[0], &input = c.inputs[1], &mean_t = c.inputs[2], &rstd_t = c.inputs[3];
  const Tensor& weight = c.inputs[4];
  const Shape ns = c.attrs[0].list;
  const Value& mask = c.attrs[1];
  const int64_t M = layer_norm_rows(input, ns, op), N = numel_of(ns);
  if (go.sizes() != input.sizes())
    throw ValueError(std::string("[") + op + "] grad_out shape " + shape_str(go.sizes()) + " does not match input shape " +
                     shape_str(input.sizes()));
  Tensor x = input.contiguous(), g = cast_to(go, input.dtype()).contiguous();
  Tensor mean = cast_to(mean_t, input.dtype()).contiguous(), rstd = cast_to(rstd_t, input.dtype()).contiguous();
  const bool want_in = mask_at(mask, 0), want_w = mask_at(mask, 1) && weight.defined(), want_b = mask_at(mask, 2) && c.inputs[5].defined();
  Tensor gi = want_in ? empty_tensor(x.sizes(), x.dtype()) : Tensor(), gw, gb;
  if (x.dtype() == DType::Float32) {
    const std::vector<float> w = param_vec<float>(weight, N, op, "weight");
    const std::vector<float> ones(w.empty() ? N : 0, 1.0f);
    const float* wp = w.empty() ? ones.data() : w.data();
    ColumnSums<float> sw(want_w ? N : 0), sb(want_b ? N : 0);
    parallel_for(M, std::max<int64_t>(1, kGrainCheap / 4 / std::max<int64_t>(N, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<float> pw(N, 0.0f), pb(N, 0.0f);
      layer_norm_backward_rows_f32(x.data<float>() + r0 * N, g.data<float>() + r0 * N, mean.data<float>() + r0,
                                   rstd.data<float>() + r0, wp, want_in ? gi.data<float>() + r0 * N : nullptr,
                                   pw.data(), pb.data(), r1 - r0, N);
      if (want_w) sw.add(pw);
      if (want_b) sb.add(pb);
    });
    if (want_w) gw = vec_tensor(sw.total, weight.sizes(), weight.dtype());
    if (want_b) gb = vec_tensor(sb.total, c.inputs[5].sizes(), c.inputs[5].dtype());
    c.outputs = {gi, gw, gb};
    return;
  }
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(weight, N, op, "weight");
    const T *xd = x.data<T>(), *gd = g.data<T>(), *md = mean.data<T>(), *rd = rstd.data<T>();
    ColumnSums<C> sw(want_w ? N : 0), sb(want_b ? N : 0);
    parallel_for(M, std::max<int64_t>(1, kGrainCheap / 4 / std::max<int64_t>(N, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<C> pw(want_w ? N : 0, C(0)), pb(want_b ? N : 0, C(0));
      for (int64_t r = r0; r < r1; ++r) {
        const T *xr = xd + r * N, *gr = gd + r * N;
        const C mu = C(md[r]), rs = C(rd[r]);
        if (want_w)
          for (int64_t j = 0; j < N; ++j) pw[j] += C(gr[j]) * (C(xr[j]) - mu) * rs;
        if (want_b)
          for (int64_t j = 0; j < N; ++j) pb[j] += C(gr[j]);
        if (!want_in) continue;
        C s1 = 0, s2 = 0;  // mean of g*w and of g*w*xhat
        for (int64_t j = 0; j < N; ++j) {
          C gw_ = w.empty() ? C(gr[j]) : C(gr[j]) * w[j];
          s1 += gw_;
          s2 += gw_ * (C(xr[j]) - mu) * rs;
        }
        s1 /= C(N);
        s2 /= C(N);
        T* o = gi.data<T>() + r * N;
        for (int64_t j = 0; j < N; ++j) {
          C gw_ = w.empty() ? C(gr[j]) : C(gr[j]) * w[j];
          o[j] = T(rs * (gw_ - s1 - (C(xr[j]) - mu) * rs * s2));
        }
      }
      if (want_w) sw.add(pw);
      if (want_b) sb.add(pb);
    });
    if (want_w) gw = vec_tensor(sw.total, weight.sizes(), weight.dtype());
    if (want_b) gb = vec_tensor(sb.total, c.inputs[5].sizes(), c.inputs[5].dtype());
  });
  c.outputs = {gi, gw, gb};
}

// ---- batch norm -----------------------------------------------------------------------------------
namespace {
struct NCS {
  int64_t N, C, S;
};
NCS ncs_of(const Tensor& x, const char* op) {
  if (x.dim() < 2)
    throw ValueError(std::string("[") + op + "] expected an input of shape (N, C, *), got " + shape_str(x.sizes()));
  NCS d{x.sizes()[0], x.sizes()[1], 1};
  for (int64_t k = 2; k < x.dim(); ++k) d.S *= x.sizes()[k];
  return d;
}
}  // namespace

void k_native_batch_norm(Call& c) {
  const char* op = "native_batch_norm";
  const Tensor& input = c.inputs[0];
  const Tensor &weight = c.inputs[1], &bias = c.inputs[2], &rmean = c.inputs[3], &rvar = c.inputs[4];
  require_float(input, op, "input");
  const bool training = c.attrs[0].b;
  const double momentum = c.attrs[1].to_double(), eps = c.attrs[2].to_double();
  const NCS d = ncs_of(input, op);
  if (!training && (!rmean.defined() || !rvar.defined()))
    throw ValueError(std::string("[") + op + "] running_mean and running_var must be defined in evaluation mode");
  for (const Tensor* t : {&rmean, &rvar})
    if (t->defined() && (t->numel() != d.C || !t->is_contiguous()))
      throw ValueError(std::string("[") + op + "] expected contiguous running stats with " + std::to_string(d.C) +
                       " elements (the input's channels), got shape " + shape_str(t->sizes()));
  Tensor x = input.contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype());
  Tensor smean = empty_tensor({training ? d.C : 0}, x.dtype()), sinv = empty_tensor({training ? d.C : 0}, x.dtype());
  const int64_t count = d.N * d.S;
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(weight, d.C, op, "weight"), b = param_vec<C>(bias, d.C, op, "bias");
    std::vector<C> mu(d.C), inv(d.C);
    const T* xd = x.data<T>();
    if (training) {
      parallel_for(d.C, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(count, 1)), [&](int64_t c0, int64_t c1) {
        for (int64_t ch = c0; ch < c1; ++ch) {
          C s = 0;
          for (int64_t n = 0; n < d.N; ++n) {
            const T* p = xd + (n * d.C + ch) * d.S;
            C part = 0;
            for (int64_t k = 0; k < d.S; ++k) part += C(p[k]);
            s += part;
          }
          const C m = count ? s / C(count) : C(0);
          C q = 0;
          for (int64_t n = 0; n < d.N; ++n) {
            const T* p = xd + (n * d.C + ch) * d.S;
            C part = 0;
            for (int64_t k = 0; k < d.S; ++k) {
              C v = C(p[k]) - m;
              part += v * v;
            }
            q += part;
          }
          mu[ch] = m;
          inv[ch] = C(1) / std::sqrt(q / C(std::max<int64_t>(count, 1)) + C(eps));
          if (rmean.defined()) {  // torch: the running variance is the unbiased one
            ND_DISPATCH_FLOAT(rmean.dtype(), op, [&] {
              scalar_t* rm = rmean.data<scalar_t>() + ch;
              *rm = scalar_t((1 - momentum) * (double)(acc_t<scalar_t>)(*rm) + momentum * (double)m);
            });
          }
          if (rvar.defined()) {
            const double unbiased = count > 1 ? (double)q / (double)(count - 1) : std::numeric_limits<double>::quiet_NaN();
            ND_DISPATCH_FLOAT(rvar.dtype(), op, [&] {
              scalar_t* rv = rvar.data<scalar_t>() + ch;
              *rv = scalar_t((1 - momentum) * (double)(acc_t<scalar_t>)(*rv) + momentum * unbiased);
            });
          }
        }
      });
      for (int64_t ch = 0; ch < d.C; ++ch) {
        smean.data<T>()[ch] = T(mu[ch]);
        sinv.data<T>()[ch] = T(inv[ch]);
      }
      if (rmean.defined()) rmean.bump_version();
      if (rvar.defined()) rvar.bump_version();
    } else {
      const std::vector<C> rm = param_vec<C>(rmean, d.C, op, "running_mean"), rv = param_vec<C>(rvar, d.C, op, "running_var");
      for (int64_t ch = 0; ch < d.C; ++ch) {
        mu[ch] = rm[ch];
        inv[ch] = C(1) / std::sqrt(rv[ch] + C(eps));
      }
    }
    // out = x * scale + shift per channel
    std::vector<C> scale(d.C), shift(d.C);
    for (int64_t ch = 0; ch < d.C; ++ch) {
      scale[ch] = inv[ch] * (w.empty() ? C(1) : w[ch]);
      shift[ch] = (b.empty() ? C(0) : b[ch]) - mu[ch] * scale[ch];
    }
    T* od = out.data<T>();
    parallel_for(d.N * d.C, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(d.S, 1)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const C sc = scale[p % d.C], sh = shift[p % d.C];
        const T* xs = xd + p * d.S;
        T* os = od + p * d.S;
        for (int64_t k = 0; k < d.S; ++k) os[k] = T(C(xs[k]) * sc + sh);
      }
    });
  });
  set_outputs(c, {out, smean, sinv});
}

void k_native_batch_norm_backward(Call& c) {
  const char* op = "native_batch_norm_backward";
  const Tensor &go = c.inputs[0], &input = c.inputs[1], &weight = c.inputs[2];
  const Tensor &rmean = c.inputs[3], &rvar = c.inputs[4], &smean = c.inputs[5], &sinv = c.inputs[6];
  const bool train = c.attrs[0].b;
  const double eps = c.attrs[1].to_double();
  const Value& mask = c.attrs[2];
  const NCS d = ncs_of(input, op);
  if (go.sizes() != input.sizes())
    throw ValueError(std::string("[") + op + "] grad_out shape " + shape_str(go.sizes()) + " does not match input shape " +
                     shape_str(input.sizes()));
  if (train && (!smean.defined() || !sinv.defined()))
    throw ValueError(std::string("[") + op + "] save_mean and save_invstd must be defined in training mode");
  if (!train && (!rmean.defined() || !rvar.defined()))
    throw ValueError(std::string("[") + op + "] running_mean and running_var must be defined in evaluation mode");
  Tensor x = input.contiguous(), g = cast_to(go, input.dtype()).contiguous();
  const bool want_in = mask_at(mask, 0), want_w = mask_at(mask, 1) && weight.defined(), want_b = mask_at(mask, 2);
  Tensor gi = want_in ? empty_tensor(x.sizes(), x.dtype()) : Tensor(), gw, gb;
  const int64_t count = d.N * d.S;
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(weight, d.C, op, "weight");
    std::vector<C> mu(d.C), inv(d.C), sum_g(d.C), sum_gx(d.C);
    if (train) {
      mu = param_vec<C>(smean, d.C, op, "save_mean");
      inv = param_vec<C>(sinv, d.C, op, "save_invstd");
    } else {
      mu = param_vec<C>(rmean, d.C, op, "running_mean");
      std::vector<C> rv = param_vec<C>(rvar, d.C, op, "running_var");
      for (int64_t ch = 0; ch < d.C; ++ch) inv[ch] = C(1) / std::sqrt(rv[ch] + C(eps));
    }
    const T *xd = x.data<T>(), *gd = g.data<T>();
    parallel_for(d.C, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(count, 1)), [&](int64_t c0, int64_t c1) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        C sg = 0, sgx = 0;
        for (int64_t n = 0; n < d.N; ++n) {
          const T *xs = xd + (n * d.C + ch) * d.S, *gs = gd + (n * d.C + ch) * d.S;
          for (int64_t k = 0; k < d.S; ++k) {
            sg += C(gs[k]);
            sgx += C(gs[k]) * (C(xs[k]) - mu[ch]);
          }
        }
        sum_g[ch] = sg;
        sum_gx[ch] = sgx;
      }
    });
    if (want_in) {
      T* od = gi.data<T>();
      parallel_for(d.N * d.C, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(d.S, 1)), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t ch = p % d.C;
          const C wv = w.empty() ? C(1) : w[ch], iv = inv[ch], m = mu[ch];
          const T *xs = xd + p * d.S, *gs = gd + p * d.S;
          T* os = od + p * d.S;
          if (train) {  // dx = w * inv * (g - mean(g) - xhat * mean(g * xhat))
            const C mg = sum_g[ch] / C(count), k2 = sum_gx[ch] * iv * iv / C(count);
            for (int64_t k = 0; k < d.S; ++k) os[k] = T(wv * iv * (C(gs[k]) - mg - (C(xs[k]) - m) * k2));
          } else {
            for (int64_t k = 0; k < d.S; ++k) os[k] = T(C(gs[k]) * wv * iv);
          }
        }
      });
    }
    if (want_w) {
      std::vector<C> v(d.C);
      for (int64_t ch = 0; ch < d.C; ++ch) v[ch] = sum_gx[ch] * inv[ch];
      gw = vec_tensor(v, weight.sizes(), weight.dtype());
    }
    if (want_b) gb = vec_tensor(sum_g, {d.C}, weight.defined() ? weight.dtype() : x.dtype());
  });
  c.outputs = {gi, gw, gb};
}

// ---- group norm -----------------------------------------------------------------------------------
namespace {
void check_group_norm(const Tensor& x, int64_t N, int64_t C, int64_t HxW, int64_t G, const char* op) {
  if (G <= 0 || C % G != 0)
    throw ValueError(std::string("[") + op + "] expected the number of channels (" + std::to_string(C) +
                     ") to be divisible by num_groups (" + std::to_string(G) + ")");
  if (x.numel() != N * C * HxW || (x.dim() >= 2 && (x.sizes()[0] != N || x.sizes()[1] != C)))
    throw ValueError(std::string("[") + op + "] input of shape " + shape_str(x.sizes()) + " does not match N=" + std::to_string(N) +
                     ", C=" + std::to_string(C) + ", HxW=" + std::to_string(HxW));
}
}  // namespace

void k_native_group_norm(Call& c) {
  const char* op = "native_group_norm";
  const Tensor& input = c.inputs[0];
  require_float(input, op, "input");
  const int64_t N = c.attrs[0].i, Ch = c.attrs[1].i, HxW = c.attrs[2].i, G = c.attrs[3].i;
  const double eps = c.attrs[4].to_double();
  check_group_norm(input, N, Ch, HxW, G, op);
  Tensor x = input.contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype());
  Tensor mean = empty_tensor({N, G}, x.dtype()), rstd = empty_tensor({N, G}, x.dtype());
  const int64_t cpg = Ch / G, D = cpg * HxW;
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(c.inputs[1], Ch, op, "weight"), b = param_vec<C>(c.inputs[2], Ch, op, "bias");
    const T* xd = x.data<T>();
    T *od = out.data<T>(), *md = mean.data<T>(), *rd = rstd.data<T>();
    parallel_for(N * G, std::max<int64_t>(1, kGrainCheap / 4 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        C mu, rs;
        moments<C>(xd + r * D, D, eps, mu, rs);
        md[r] = T(mu);
        rd[r] = T(rs);
        for (int64_t cc = 0; cc < cpg; ++cc) {
          const int64_t ch = (r % G) * cpg + cc;
          const C sc = rs * (w.empty() ? C(1) : w[ch]), sh = (b.empty() ? C(0) : b[ch]) - mu * sc;
          const T* xs = xd + r * D + cc * HxW;
          T* os = od + r * D + cc * HxW;
          for (int64_t k = 0; k < HxW; ++k) os[k] = T(C(xs[k]) * sc + sh);
        }
      }
    });
  });
  set_outputs(c, {out, mean, rstd});
}

void k_native_group_norm_backward(Call& c) {
  const char* op = "native_group_norm_backward";
  const Tensor &go = c.inputs[0], &input = c.inputs[1], &weight = c.inputs[4];
  const int64_t N = c.attrs[0].i, Ch = c.attrs[1].i, HxW = c.attrs[2].i, G = c.attrs[3].i;
  const Value& mask = c.attrs[4];
  check_group_norm(input, N, Ch, HxW, G, op);
  if (go.sizes() != input.sizes())
    throw ValueError(std::string("[") + op + "] grad_out shape " + shape_str(go.sizes()) + " does not match input shape " +
                     shape_str(input.sizes()));
  Tensor x = input.contiguous(), g = cast_to(go, input.dtype()).contiguous();
  Tensor mean = cast_to(c.inputs[2], x.dtype()).contiguous(), rstd = cast_to(c.inputs[3], x.dtype()).contiguous();
  const bool want_in = mask_at(mask, 0), want_w = mask_at(mask, 1) && weight.defined(), want_b = mask_at(mask, 2);
  Tensor gi = want_in ? empty_tensor(x.sizes(), x.dtype()) : Tensor(), gw, gb;
  const int64_t cpg = Ch / G, D = cpg * HxW;
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const std::vector<C> w = param_vec<C>(weight, Ch, op, "weight");
    const T *xd = x.data<T>(), *gd = g.data<T>(), *md = mean.data<T>(), *rd = rstd.data<T>();
    // per (n, c): sum(g) and sum(g * x); everything else follows from them
    std::vector<C> sg(N * Ch), sgx(N * Ch);
    parallel_for(N * Ch, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(HxW, 1)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T *xs = xd + p * HxW, *gs = gd + p * HxW;
        C a = 0, bq = 0;
        for (int64_t k = 0; k < HxW; ++k) {
          a += C(gs[k]);
          bq += C(gs[k]) * C(xs[k]);
        }
        sg[p] = a;
        sgx[p] = bq;
      }
    });
    if (want_in) {
      T* od = gi.data<T>();
      parallel_for(N * G, std::max<int64_t>(1, kGrainCheap / 4 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t n = r / G, gr = r % G;
          const C mu = C(md[r]), rs = C(rd[r]);
          C ds = 0, db = 0;  // sum over the group of w*g*x and w*g
          for (int64_t cc = 0; cc < cpg; ++cc) {
            const int64_t ch = gr * cpg + cc;
            const C wv = w.empty() ? C(1) : w[ch];
            ds += wv * sgx[n * Ch + ch];
            db += wv * sg[n * Ch + ch];
          }
          // dx = rs*w*g + b1*x + c1 with b1, c1 from the group sums (torch's GroupNorm backward algebra)
          const C b1 = (db * mu - ds) * rs * rs * rs / C(D);
          const C c1 = -b1 * mu - db * rs / C(D);
          for (int64_t cc = 0; cc < cpg; ++cc) {
            const int64_t ch = gr * cpg + cc;
            const C a = rs * (w.empty() ? C(1) : w[ch]);
            const T *xs = xd + r * D + cc * HxW, *gs = gd + r * D + cc * HxW;
            T* os = od + r * D + cc * HxW;
            for (int64_t k = 0; k < HxW; ++k) os[k] = T(a * C(gs[k]) + b1 * C(xs[k]) + c1);
          }
        }
      });
    }
    if (want_w || want_b) {
      std::vector<C> vw(Ch, C(0)), vb(Ch, C(0));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t ch = 0; ch < Ch; ++ch) {
          const int64_t r = n * G + ch / cpg;
          vw[ch] += (sgx[n * Ch + ch] - C(md[r]) * sg[n * Ch + ch]) * C(rd[r]);
          vb[ch] += sg[n * Ch + ch];
        }
      if (want_w) gw = vec_tensor(vw, weight.sizes(), weight.dtype());
      if (want_b) gb = vec_tensor(vb, {Ch}, weight.defined() ? weight.dtype() : x.dtype());
    }
  });
  c.outputs = {gi, gw, gb};
}

}  // namespace nd
