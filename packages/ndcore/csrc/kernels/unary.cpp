// Elementwise unary kernels: the functors of unary_ops.h over StridedLoop.
#include "loops.h"
#include "simd_dispatch.h"
#include "unary_ops.h"

namespace nd {
namespace {

// float32 functors with a hand-vectorised AVX-512 form (Note [vecmath x16]).
template <typename F>
constexpr bool has_x16 = std::is_same_v<F, ufn::Exp> || std::is_same_v<F, ufn::Log> || std::is_same_v<F, ufn::Log1p> ||
                         std::is_same_v<F, ufn::Tanh> || std::is_same_v<F, ufn::Erf>;

template <typename F, typename T>
inline __attribute__((always_inline)) void unary_contig_body(const T* __restrict a, T* __restrict o, int64_t n) {
  F f;
  for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
}

#ifdef ND_VM_HAVE_X16
template <typename F>
ND_VM_X16 __m512 apply_x16(__m512 x) {
  if constexpr (std::is_same_v<F, ufn::Exp>) return vm::exp_x16(x);
  else if constexpr (std::is_same_v<F, ufn::Log>) return vm::log_x16(x);
  else if constexpr (std::is_same_v<F, ufn::Log1p>) return vm::log1p_x16(x);
  else if constexpr (std::is_same_v<F, ufn::Tanh>) return vm::tanh_x16(x);
  else return vm::erf_x16(x);
}
// The tail is one masked vector; its zero lanes take the special-value path, once.
template <typename F>
ND_VM_X16 void unary_x16(const float* __restrict a, float* __restrict o, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(o + i, apply_x16<F>(_mm512_loadu_ps(a + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(o + i, m, apply_x16<F>(_mm512_maskz_loadu_ps(m, a + i)));
  }
}
#endif

// Contiguous float/double loops in ISA variants: vecmath.h's functions and the plain arithmetic
// functors vectorise at the CPU's full width (see Note [ISA variants]); the AVX-512 variant of
// the functors in has_x16 runs their hand-vectorised form.
template <typename F, typename T>
struct UnaryContig {
  __attribute__((flatten)) static void base(const T* __restrict a, T* __restrict o, int64_t n) {
    unary_contig_body<F, T>(a, o, n);
  }
#ifdef ND_SIMD_X86
  ND_SIMD_TARGET_AVX2 static void avx2(const T* __restrict a, T* __restrict o, int64_t n) {
    unary_contig_body<F, T>(a, o, n);
  }
  ND_SIMD_TARGET_AVX512 static void avx512(const T* __restrict a, T* __restrict o, int64_t n) {
#ifdef ND_VM_HAVE_X16
    if constexpr (std::is_same_v<T, float> && has_x16<F>) return unary_x16<F>(a, o, n);
#endif
    unary_contig_body<F, T>(a, o, n);
  }
#endif
};

// Strided float rows (sliced with a step, broadcast, 0-d) are gathered into a stack buffer so
// they run through the same vectorised kernel as dense ones: vecmath's functions cost more per
// element than the gather and scatter, and every layout gives bit-identical results.
constexpr int64_t kGatherBlock = 256;

template <typename F, typename T>
void unary_gather_row(char* po, const char* pa, int64_t so, int64_t sa, int64_t n) {
  alignas(64) T buf[kGatherBlock], res[kGatherBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kGatherBlock) {
    const int64_t m = std::min(kGatherBlock, n - i0);
    const char* a = pa + i0 * sa;
    char* o = po + i0 * so;
    for (int64_t i = 0; i < m; ++i) buf[i] = *reinterpret_cast<const T*>(a + i * sa);
    simd_run<UnaryContig<F, T>>(buf, res, m);
    for (int64_t i = 0; i < m; ++i) *reinterpret_cast<T*>(o + i * so) = res[i];
  }
}

// A block of rows whose input is dense down the rows rather than along them (a transposed
// input, dense output). Tiles of kTileRows x kTileCols are computed down the input's dense
// columns straight from memory, then stored transposed: every cache line read or written is
// used whole while it is in L1.
constexpr int64_t kTileRows = 64, kTileCols = 16;

template <typename F, typename T>
ND_SIMD_KERNEL(UnaryCols, (const char* a, int64_t sa, T* __restrict o, int64_t m, int64_t cols), {
  F f;
  for (int64_t c = 0; c < cols; ++c) {
    const T* __restrict x = reinterpret_cast<const T*>(a + c * sa);
    T* __restrict oc = o + c * m;
    for (int64_t i = 0; i < m; ++i) oc[i] = f(x[i]);
  }
})

template <typename F, typename T>
void unary_tile_rows(char* po, const char* pa, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  alignas(64) T res[kTileRows * kTileCols];
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int64_t rr = std::min(kTileRows, rows - r0);
    for (int64_t i0 = 0; i0 < n; i0 += kTileCols) {
      const int64_t cc = std::min(kTileCols, n - i0);
      simd_run<UnaryCols<F, T>>(pa + r0 * so[1] + i0 * s[1], s[1], res, rr, cc);
      store_transposed<T>(reinterpret_cast<T*>(po + r0 * so[0] + i0 * s[0]), so[0] / (int64_t)sizeof(T), res, rr, cc);
    }
  }
}

template <typename F, typename In, typename Out>
void unary_loop(char** p, const int64_t* s, int64_t n) {
  using C = typename compute_type<In>::type;
  F f;
  if (s[0] == (int64_t)sizeof(Out) && s[1] == (int64_t)sizeof(In)) {
    if constexpr (std::is_same_v<In, Out> && (std::is_same_v<In, float> || std::is_same_v<In, double>)) {
      simd_run<UnaryContig<F, In>>(reinterpret_cast<const In*>(p[1]), reinterpret_cast<Out*>(p[0]), n);
    } else {
      Out* __restrict o = reinterpret_cast<Out*>(p[0]);
      const In* __restrict a = reinterpret_cast<const In*>(p[1]);
      for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i])));
    }
    return;
  }
  if constexpr (std::is_same_v<In, Out> && (std::is_same_v<In, float> || std::is_same_v<In, double>)) {
    return unary_gather_row<F, In>(p[0], p[1], s[0], s[1], n);
  }
  for (int64_t i = 0; i < n; ++i) store<Out>(p[0] + i * s[0], f(load<In>(p[1] + i * s[1])));
}

template <typename F, typename In, typename Out>
void unary_loop2d(char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  if constexpr (std::is_same_v<In, Out> && (std::is_same_v<In, float> || std::is_same_v<In, double>)) {
    constexpr int64_t z = sizeof(In);
    if (rows >= 16 && n >= 4 && s[0] == z && so[1] == z && s[1] != z)
      return unary_tile_rows<F, In>(p[0], p[1], s, so, n, rows);
  }
  char* q[2] = {p[0], p[1]};
  for (int64_t r = 0; r < rows; ++r, q[0] += so[0], q[1] += so[1]) unary_loop<F, In, Out>(q, s, n);
}

// Integer and bool inputs of floating ops compute in the default float dtype (torch's rule).
template <typename F>
void unary_float(Call& c) {
  Tensor x = c.inputs[0];
  DType dt = is_floating(x.dtype()) ? x.dtype() : default_float_dtype();
  x = cast_keep_layout(x, dt);
  Tensor out = prepare_output_like(c, {x}, x.sizes(), dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_FLOAT(dt, c.name(), [&] { loop.run2d(unary_loop2d<F, scalar_t, scalar_t>, kGrainExpensive); });
  finish_output(c, out);
}

template <typename F>
void unary_same(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dtype() == DType::Bool)
    throw TypeError(std::string("[") + c.name() + "] is not supported for bool tensors (got shape " +
                    shape_str(x.sizes()) + ", dtype bool)");
  Tensor out = prepare_output_like(c, {x}, x.sizes(), x.dtype(), x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] {
    if constexpr (!std::is_same_v<scalar_t, bool>) loop.run2d(unary_loop2d<F, scalar_t, scalar_t>, kGrainCheap);
  });
  finish_output(c, out);
}

template <typename F>
void unary_pred(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor out = prepare_output_like(c, {x}, x.sizes(), DType::Bool, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] { loop.run(unary_loop<F, scalar_t, bool>, kGrainCheap); });
  finish_output(c, out);
}

template <typename F>
void unary_int(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor out = prepare_output_like(c, {x}, x.sizes(), x.dtype(), x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_INT(x.dtype(), c.name(), [&] { loop.run(unary_loop<F, scalar_t, scalar_t>, kGrainCheap); });
  finish_output(c, out);
}

}  // namespace

#define ND_DEFINE_FLOAT(name, F) void k_##name(Call& c) { unary_float<ufn::F>(c); }
#define ND_DEFINE_SAME(name, F) void k_##name(Call& c) { unary_same<ufn::F>(c); }
#define ND_DEFINE_PRED(name, F) void k_##name(Call& c) { unary_pred<ufn::F>(c); }
#define ND_DEFINE_INT(name, F) void k_##name(Call& c) { unary_int<ufn::F>(c); }
ND_UNARY_FLOAT_OPS(ND_DEFINE_FLOAT)
ND_UNARY_SAME_OPS(ND_DEFINE_SAME)
ND_UNARY_PRED_OPS(ND_DEFINE_PRED)
ND_UNARY_INT_OPS(ND_DEFINE_INT)

}  // namespace nd
